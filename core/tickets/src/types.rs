//! Ticket types: what a tenant's tickets of one kind carry (a custom-field schema) and how
//! they move (statuses, each in a category, and the transitions allowed between them).
//! A type is checked as a whole when saved, and every ticket's fields are checked against
//! it on every write, with field paths.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use shoal_base::error::Problems;

/// Most custom fields one type may declare.
pub const MAX_FIELDS: usize = 50;
/// Most statuses one workflow may have.
pub const MAX_STATUSES: usize = 20;
/// Longest text field value, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most choices of a choice field.
pub const MAX_CHOICES: usize = 100;
/// Most transitions of a workflow.
pub const MAX_TRANSITIONS: usize = 400;
/// Longest number or amount, as written.
const MAX_NUMBER_CHARS: usize = 40;

/// What a custom field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One line or a paragraph (at most [`MAX_TEXT_CHARS`] characters).
    Text,
    /// A number (a JSON number, or a decimal string).
    Number,
    /// An amount with its currency: `{"amount": "199.00", "currency": "CNY"}`.
    Money,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// One of the field's `choices`.
    Choice,
    /// Copied from the customer's attribute `attribute` when the ticket is opened (the
    /// ticket keeps the value it had then); may be given explicitly.
    CustomerAttribute,
}

/// One custom field of a type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDef {
    /// The key values are stored under (`[a-z0-9_]`, 1–40 characters).
    pub key: String,
    /// What staff read (`退款金额`).
    pub label: String,
    pub kind: FieldKind,
    /// Must have a value from the ticket's opening on.
    #[serde(default)]
    pub required: bool,
    /// The values a `choice` field takes.
    #[serde(default)]
    pub choices: Vec<String>,
    /// The customer attribute a `customer_attribute` field copies.
    #[serde(default)]
    pub attribute: Option<String>,
}

/// Where a status stands in a ticket's life: what SLA clocks and queues go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Someone on the team has to act.
    Open,
    /// Waiting for the customer: SLA clocks pause.
    WaitingOnCustomer,
    /// Waiting for a third party (a carrier, a supplier): SLA clocks pause.
    WaitingOnThirdParty,
    /// Solved; the customer may still reopen it.
    Resolved,
    /// Done for good.
    Closed,
}

impl Category {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Open => "open",
            Category::WaitingOnCustomer => "waiting_on_customer",
            Category::WaitingOnThirdParty => "waiting_on_third_party",
            Category::Resolved => "resolved",
            Category::Closed => "closed",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Category> {
        [
            Category::Open,
            Category::WaitingOnCustomer,
            Category::WaitingOnThirdParty,
            Category::Resolved,
            Category::Closed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether SLA clocks stop in this category.
    pub fn pauses_sla(self) -> bool {
        matches!(
            self,
            Category::WaitingOnCustomer | Category::WaitingOnThirdParty
        )
    }

    /// Whether a ticket in this category is done (resolved or closed).
    pub fn is_done(self) -> bool {
        matches!(self, Category::Resolved | Category::Closed)
    }
}

/// One status of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusDef {
    /// `[a-z0-9_]`, 1–40 characters.
    pub key: String,
    pub label: String,
    pub category: Category,
}

/// An allowed move between two statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    pub from: String,
    pub to: String,
}

/// A ticket type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketType {
    /// `[a-z0-9_]`, 1–40 characters (`after_sales`, `refund_request`).
    pub key: String,
    /// What staff read (`售后`).
    pub name: String,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// The workflow's statuses; the first is where tickets start.
    pub statuses: Vec<StatusDef>,
    /// The moves allowed; empty means any status may follow any other.
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// The satisfaction survey (CSAT) sent when a ticket of this type is resolved; none
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
    /// The industry module's template it was made from, if any (its proposals apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateOrigin>,
}

/// Which module template a ticket type was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateOrigin {
    pub module: String,
    pub template: String,
    /// Whether the module proposes field values for its tickets.
    #[serde(default)]
    pub proposes: bool,
}

/// Most questions of a survey.
pub const MAX_QUESTIONS: usize = 10;

/// What a survey question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// 1 (very dissatisfied) to 5 (very satisfied).
    Rating,
    /// Free text, at most 1,000 characters.
    Text,
    /// One of the question's choices.
    Choice,
}

/// One question of a survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub key: String,
    pub label: String,
    pub kind: QuestionKind,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

/// A satisfaction survey: its first rating question is the ticket's CSAT score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    pub questions: Vec<Question>,
    /// The channel the customer's link goes out on (`sms`, `wecom`, `email`, …), as a
    /// service message through the contact policy and the outbox; none: the
    /// `ticket.survey_ready` change only (webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The message's text, with the link as `{{survey.url}}` and the customer's fields as
    /// in SOP messages ([`DEFAULT_SURVEY_MESSAGE`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The survey message when a type sets a channel but no text.
pub const DEFAULT_SURVEY_MESSAGE: &str =
    "{{customer.name}}，您的工单已处理完毕，请为本次服务评分：{{survey.url}}";

/// Most characters of a survey message.
pub const MAX_SURVEY_MESSAGE_CHARS: usize = 500;

impl Survey {
    /// Checks the survey; problems under `at` (`input.survey.`), its channel and message as
    /// `input.surveyChannel` and `input.surveyMessage`.
    pub fn check(&self, p: &mut Problems, at: &str) {
        let base = at.trim_end_matches('.');
        if let Some(c) = &self.channel
            && !key_ok(c)
        {
            p.push(
                format!("{base}Channel"),
                "a channel name: 1–40 of a–z, 0–9 and _",
            );
        }
        if let Some(m) = &self.message {
            if self.channel.is_none() {
                p.push(format!("{base}Message"), "give the channel it goes out on");
            }
            let n = m.chars().count();
            if n == 0 || n > MAX_SURVEY_MESSAGE_CHARS {
                p.push(
                    format!("{base}Message"),
                    format!("1–{MAX_SURVEY_MESSAGE_CHARS} characters"),
                );
            } else if !m.contains("{{survey.url}}") {
                p.push(
                    format!("{base}Message"),
                    "put the link in it: {{survey.url}}",
                );
            } else if m.chars().any(|c| c.is_control() && c != '\n') {
                p.push(
                    format!("{base}Message"),
                    "no control characters but line breaks",
                );
            }
        }
        if self.questions.is_empty() || self.questions.len() > MAX_QUESTIONS {
            p.push(
                format!("{at}questions"),
                format!("1–{MAX_QUESTIONS} questions"),
            );
        }
        if !self
            .questions
            .iter()
            .any(|q| q.kind == QuestionKind::Rating)
        {
            p.push(
                format!("{at}questions"),
                "at least one RATING question (the first is the CSAT score)",
            );
        }
        let mut keys = BTreeSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let qp = format!("{at}questions[{i}]");
            if !key_ok(&q.key) {
                p.push(format!("{qp}.key"), "1–40 of a–z, 0–9 and _");
            } else if !keys.insert(q.key.as_str()) {
                p.push(format!("{qp}.key"), format!("`{}` is used twice", q.key));
            }
            if !label_ok(&q.label) {
                p.push(format!("{qp}.label"), "1–100 characters on one line");
            }
            match q.kind {
                QuestionKind::Choice
                    if q.choices.is_empty()
                        || q.choices.len() > 20
                        || q.choices.iter().any(|c| !label_ok(c)) =>
                {
                    p.push(format!("{qp}.choices"), "1–20 choices of 1–100 characters");
                }
                QuestionKind::Rating | QuestionKind::Text if !q.choices.is_empty() => {
                    p.push(
                        format!("{qp}.choices"),
                        "only CHOICE questions have choices",
                    );
                }
                _ => {}
            }
        }
    }

    /// Checks `answers` (question key → value) against the questions; problems under
    /// `answers.<key>`.
    pub fn check_answers(&self, answers: &serde_json::Map<String, Value>, p: &mut Problems) {
        for k in answers.keys() {
            if !self.questions.iter().any(|q| &q.key == k) {
                p.push(format!("answers.{k}"), "not a question of this survey");
            }
        }
        for q in &self.questions {
            let at = format!("answers.{}", q.key);
            match (answers.get(&q.key), q.kind) {
                (None | Some(Value::Null), _) if q.required => p.push(at, "required"),
                (None | Some(Value::Null), _) => {}
                (Some(v), QuestionKind::Rating) => {
                    if !v.as_i64().is_some_and(|n| (1..=5).contains(&n)) {
                        p.push(at, "a whole number from 1 to 5");
                    }
                }
                (Some(v), QuestionKind::Text) => {
                    if !v
                        .as_str()
                        .is_some_and(|t| t.chars().count() <= 1000 && !t.contains('\0'))
                    {
                        p.push(at, "text of at most 1000 characters");
                    }
                }
                (Some(v), QuestionKind::Choice) => {
                    if !v.as_str().is_some_and(|c| q.choices.iter().any(|x| x == c)) {
                        p.push(at, format!("one of: {}", q.choices.join(", ")));
                    }
                }
            }
        }
    }

    /// The CSAT score of `answers`: the first rating question's value.
    pub fn score(&self, answers: &serde_json::Map<String, Value>) -> Option<i64> {
        self.questions
            .iter()
            .find(|q| q.kind == QuestionKind::Rating)
            .and_then(|q| answers.get(&q.key))
            .and_then(Value::as_i64)
    }
}

fn key_ok(key: &str) -> bool {
    (1..=40).contains(&key.chars().count())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn label_ok(label: &str) -> bool {
    let n = label.trim().chars().count();
    (1..=100).contains(&n) && !label.chars().any(char::is_control)
}

impl TicketType {
    /// The type with its defaults: the statuses most help desks start from, when none are
    /// given (新建 → 处理中 → 待客户回复 / 待第三方 → 已解决 → 已关闭, reopenable).
    pub fn standard_statuses() -> Vec<StatusDef> {
        let s = |key: &str, label: &str, category| StatusDef {
            key: key.into(),
            label: label.into(),
            category,
        };
        vec![
            s("new", "新建", Category::Open),
            s("in_progress", "处理中", Category::Open),
            s(
                "waiting_on_customer",
                "待客户回复",
                Category::WaitingOnCustomer,
            ),
            s(
                "waiting_on_third_party",
                "待第三方",
                Category::WaitingOnThirdParty,
            ),
            s("resolved", "已解决", Category::Resolved),
            s("closed", "已关闭", Category::Closed),
        ]
    }

    /// Checks the whole type, each problem under its path (`statuses[2].key`).
    pub fn check(&self, p: &mut Problems, at: &str) {
        if !key_ok(&self.key) {
            p.push(format!("{at}key"), "1–40 of a–z, 0–9 and _");
        }
        if !label_ok(&self.name) {
            p.push(format!("{at}name"), "1–100 characters on one line");
        }
        if self.fields.len() > MAX_FIELDS {
            p.push(
                format!("{at}fields"),
                format!("at most {MAX_FIELDS} fields"),
            );
        }
        let mut keys = BTreeSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            let fp = format!("{at}fields[{i}]");
            if !key_ok(&f.key) {
                p.push(format!("{fp}.key"), "1–40 of a–z, 0–9 and _");
            } else if !keys.insert(f.key.as_str()) {
                p.push(
                    format!("{fp}.key"),
                    format!("`{}` is declared twice", f.key),
                );
            }
            if !label_ok(&f.label) {
                p.push(format!("{fp}.label"), "1–100 characters on one line");
            }
            match f.kind {
                FieldKind::Choice if f.choices.len() > MAX_CHOICES => {
                    p.push(
                        format!("{fp}.choices"),
                        format!("at most {MAX_CHOICES} choices"),
                    );
                }
                FieldKind::Choice => {
                    let distinct: BTreeSet<&String> = f.choices.iter().collect();
                    if f.choices.is_empty() || distinct.len() != f.choices.len() {
                        p.push(
                            format!("{fp}.choices"),
                            "a choice field lists its choices, each once",
                        );
                    }
                    if f.choices.iter().any(|c| !label_ok(c)) {
                        p.push(format!("{fp}.choices"), "each 1–100 characters on one line");
                    }
                }
                _ if !f.choices.is_empty() => {
                    p.push(format!("{fp}.choices"), "only a choice field has choices");
                }
                _ => {}
            }
            match (f.kind, &f.attribute) {
                (FieldKind::CustomerAttribute, None) => p.push(
                    format!("{fp}.attribute"),
                    "a customer attribute field names the attribute it copies",
                ),
                (FieldKind::CustomerAttribute, Some(a)) => {
                    if let Err(e) = shoal_base::kinds::attribute_key(a) {
                        p.push(format!("{fp}.attribute"), e);
                    }
                }
                (_, Some(_)) => p.push(
                    format!("{fp}.attribute"),
                    "only a customer attribute field names an attribute",
                ),
                (_, None) => {}
            }
        }
        if self.statuses.is_empty() || self.statuses.len() > MAX_STATUSES {
            p.push(
                format!("{at}statuses"),
                format!("1–{MAX_STATUSES} statuses"),
            );
        }
        let mut statuses = BTreeSet::new();
        for (i, s) in self.statuses.iter().enumerate() {
            if !key_ok(&s.key) {
                p.push(format!("{at}statuses[{i}].key"), "1–40 of a–z, 0–9 and _");
            } else if !statuses.insert(s.key.as_str()) {
                p.push(
                    format!("{at}statuses[{i}].key"),
                    format!("`{}` is declared twice", s.key),
                );
            }
            if !label_ok(&s.label) {
                p.push(
                    format!("{at}statuses[{i}].label"),
                    "1–100 characters on one line",
                );
            }
        }
        if let Some(first) = self.statuses.first()
            && first.category != Category::Open
        {
            p.push(
                format!("{at}statuses[0].category"),
                "tickets start in the first status, which must be open",
            );
        }
        if self.transitions.len() > MAX_TRANSITIONS {
            p.push(
                format!("{at}transitions"),
                format!("at most {MAX_TRANSITIONS} transitions"),
            );
        }
        for (i, t) in self.transitions.iter().enumerate() {
            for (side, key) in [("from", &t.from), ("to", &t.to)] {
                if !statuses.contains(key.as_str()) {
                    p.push(
                        format!("{at}transitions[{i}].{side}"),
                        format!("`{key}` is not a status of this type"),
                    );
                }
            }
            if t.from == t.to {
                p.push(
                    format!("{at}transitions[{i}]"),
                    "a transition goes to another status",
                );
            }
        }
        if let Some(survey) = &self.survey {
            survey.check(p, &format!("{at}survey."));
        }
    }

    /// The status tickets start in.
    pub fn initial(&self) -> &StatusDef {
        &self.statuses[0]
    }

    /// The status `key`, if the workflow has it.
    pub fn status(&self, key: &str) -> Option<&StatusDef> {
        self.statuses.iter().find(|s| s.key == key)
    }

    /// Whether a ticket may move from `from` to `to`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from != to
            && self.status(to).is_some()
            && (self.transitions.is_empty()
                || self
                    .transitions
                    .iter()
                    .any(|t| t.from == from && t.to == to))
    }

    /// The statuses a ticket in `from` may move to, in workflow order.
    pub fn next(&self, from: &str) -> Vec<&StatusDef> {
        self.statuses
            .iter()
            .filter(|s| self.allows(from, &s.key))
            .collect()
    }

    /// Checks field values (`values`, a JSON object) against the schema, each problem under
    /// `at` + the field's key; unknown keys are refused. With `complete`, required fields
    /// must be present (a ticket being opened); otherwise only the given keys are checked
    /// (an update), and `null` clears a field that is not required.
    pub fn check_values(
        &self,
        values: &serde_json::Map<String, Value>,
        complete: bool,
        p: &mut Problems,
        at: &str,
    ) {
        let defs: BTreeMap<&str, &FieldDef> =
            self.fields.iter().map(|f| (f.key.as_str(), f)).collect();
        for (key, v) in values {
            let path = format!("{at}.{key}");
            let Some(def) = defs.get(key.as_str()) else {
                p.push(
                    path,
                    format!("`{key}` is not a field of the {} type", self.key),
                );
                continue;
            };
            if v.is_null() {
                if def.required {
                    p.push(path, "required");
                }
                continue;
            }
            if let Err(e) = check_value(def, v) {
                p.push(path, e);
            }
        }
        if complete {
            for def in self.fields.iter().filter(|f| f.required) {
                if values.get(&def.key).is_none_or(Value::is_null) {
                    p.push(format!("{at}.{}", def.key), "required");
                }
            }
        }
    }
}

/// Whether `s` is a decimal number as written (digits, one point, a sign; at most 40
/// characters; exactly representable).
fn decimal(s: &str) -> bool {
    s.len() <= MAX_NUMBER_CHARS
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        && Decimal::from_str_exact(s).is_ok()
}

/// Why one value does not fit its field.
fn check_value(def: &FieldDef, v: &Value) -> Result<(), String> {
    match def.kind {
        FieldKind::Text | FieldKind::CustomerAttribute => match v {
            Value::String(s) if s.contains('\0') => Err("no NUL characters".into()),
            Value::String(s) if s.chars().count() <= MAX_TEXT_CHARS => Ok(()),
            Value::String(_) => Err(format!("at most {MAX_TEXT_CHARS} characters")),
            Value::Number(_) | Value::Bool(_) if def.kind == FieldKind::CustomerAttribute => Ok(()),
            _ => Err("a text".into()),
        },
        FieldKind::Number => match v {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(()),
            Value::String(s) if decimal(s) => Ok(()),
            _ => Err("a number".into()),
        },
        FieldKind::Money => {
            let amount = v.get("amount").and_then(Value::as_str);
            let currency = v.get("currency").and_then(Value::as_str);
            let keys_ok = v.as_object().is_some_and(|o| o.len() == 2);
            match (amount.map(decimal), currency) {
                (Some(true), Some(c))
                    if keys_ok && c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()) =>
                {
                    Ok(())
                }
                _ => Err(
                    "an amount with its currency: {\"amount\": \"199.00\", \"currency\": \"CNY\"}"
                        .into(),
                ),
            }
        }
        FieldKind::Date => match v.as_str() {
            Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(()),
            _ => Err("a date, YYYY-MM-DD".into()),
        },
        FieldKind::Choice => match v.as_str() {
            Some(s) if def.choices.iter().any(|c| c == s) => Ok(()),
            _ => Err(format!("one of: {}", def.choices.join(", "))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refund() -> TicketType {
        serde_json::from_value(json!({
            "key": "refund_request",
            "name": "退费申请",
            "fields": [
                { "key": "amount", "label": "退费金额", "kind": "money", "required": true },
                { "key": "reason", "label": "原因", "kind": "choice", "choices": ["搬家", "不满意", "其他"] },
                { "key": "lessons_left", "label": "剩余课时", "kind": "number" },
                { "key": "paid_on", "label": "缴费日期", "kind": "date" },
                { "key": "level", "label": "会员等级", "kind": "customer_attribute", "attribute": "会员等级" }
            ],
            "statuses": TicketType::standard_statuses(),
            "transitions": [
                { "from": "new", "to": "in_progress" },
                { "from": "in_progress", "to": "resolved" },
                { "from": "resolved", "to": "in_progress" },
                { "from": "resolved", "to": "closed" }
            ]
        }))
        .unwrap()
    }

    fn problems(f: impl FnOnce(&mut Problems)) -> Vec<String> {
        let mut p = Problems::default();
        f(&mut p);
        p.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_well_formed_type_passes() {
        assert!(problems(|p| refund().check(p, "input.")).is_empty());
    }

    #[test]
    fn every_problem_of_a_type_is_named_by_its_path() {
        let mut t = refund();
        t.key = "Refund!".into();
        t.fields[1].choices.clear();
        t.fields[2].key = "amount".into();
        t.fields[3].attribute = Some("x".into());
        t.statuses[0].category = Category::Resolved;
        t.transitions.push(Transition {
            from: "new".into(),
            to: "archived".into(),
        });
        assert_eq!(
            problems(|p| t.check(p, "input.")),
            [
                "input.key",
                "input.fields[1].choices",
                "input.fields[2].key",
                "input.fields[3].attribute",
                "input.statuses[0].category",
                "input.transitions[4].to",
            ]
        );
    }

    #[test]
    fn values_are_checked_by_kind_with_paths() {
        let t = refund();
        let values = json!({
            "amount": { "amount": "12.5x", "currency": "CNY" },
            "reason": "太贵",
            "lessons_left": "many",
            "paid_on": "2026-13-01",
            "colour": "red"
        });
        assert_eq!(
            problems(|p| t.check_values(values.as_object().unwrap(), true, p, "fields")),
            [
                "fields.amount",
                "fields.colour",
                "fields.lessons_left",
                "fields.paid_on",
                "fields.reason",
            ]
        );
        let good = json!({
            "amount": { "amount": "1280.00", "currency": "CNY" },
            "reason": "搬家",
            "lessons_left": 12,
            "paid_on": "2026-09-01"
        });
        assert!(
            problems(|p| t.check_values(good.as_object().unwrap(), true, p, "fields")).is_empty()
        );
        // opening without a required field; an update need not repeat it, but cannot clear it
        assert_eq!(
            problems(|p| t.check_values(json!({}).as_object().unwrap(), true, p, "fields")),
            ["fields.amount"]
        );
        assert!(
            problems(|p| t.check_values(json!({}).as_object().unwrap(), false, p, "f")).is_empty()
        );
        assert_eq!(
            problems(|p| t.check_values(
                json!({ "amount": null }).as_object().unwrap(),
                false,
                p,
                "f"
            )),
            ["f.amount"]
        );
    }

    #[test]
    fn the_workflow_allows_only_its_transitions() {
        let t = refund();
        assert_eq!(t.initial().key, "new");
        assert!(t.allows("new", "in_progress"));
        assert!(!t.allows("new", "closed"));
        assert!(t.allows("resolved", "in_progress"), "reopen");
        assert!(!t.allows("new", "new"));
        let keys: Vec<&str> = t.next("resolved").iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["in_progress", "closed"]);
        // without transitions, any status may follow any other
        let mut free = t.clone();
        free.transitions.clear();
        assert!(free.allows("new", "closed"));
        assert!(!free.allows("new", "archived"));
    }
}
