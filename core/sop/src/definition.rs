//! What an SOP is: triggers, steps and exit conditions, stored as JSON per version, and the
//! checks a definition passes before it is saved.

use crate::outbound::{self, Allowed};
use std::collections::HashSet;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use shoal_base::{
    error::{Problems, Result},
    kinds::EventType,
};
use shoal_rules::{self as rules, Rule};
use shoal_tags::Tag;

/// Longest wait a step may ask for (a bit over a year: renewals, recalls).
pub const MAX_WAIT_SECONDS: u64 = 400 * 86_400;
/// Most steps one SOP may have.
pub const MAX_STEPS: usize = 50;
/// Channels a message step may use, each through its adapter (`channels`); a messaging
/// channel without one goes through the tenant's webhook (a channel gateway) when set.
pub const CHANNELS: &[&str] = &["log", "webhook", "wecom", "wechat", "sms", "email", "robot"];
/// Channels that reach the tenant's staff, not the customer (a group robot): the customer's
/// contact policy neither holds their messages nor counts them.
pub const STAFF_CHANNELS: &[&str] = &["robot"];

/// Whether `channel` reaches staff rather than the customer ([`STAFF_CHANNELS`]).
pub fn staff_facing(channel: &str) -> bool {
    STAFF_CHANNELS.contains(&channel)
}

/// An SQL condition that `column` (an outbox message's channel) reaches the customer: what
/// counts against caps and "contacted within".
pub fn customer_facing_sql(column: &str) -> String {
    let list: Vec<String> = STAFF_CHANNELS.iter().map(|c| format!("'{c}'")).collect();
    format!("{column} NOT IN ({})", list.join(", "))
}
/// The target of a jump that ends the enrolment.
pub const END: &str = "end";

/// An event type, optionally narrowed to one name (`custom:trial_signup`, `order`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSpec {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl EventSpec {
    /// `order` or `custom:trial_signup`.
    pub fn key(&self) -> String {
        match &self.name {
            Some(n) => format!("{}:{n}", self.event_type),
            None => self.event_type.clone(),
        }
    }

    /// Reads `order` / `custom:trial_signup`.
    pub fn parse(text: &str) -> EventSpec {
        match text.split_once(':') {
            Some((t, n)) => EventSpec {
                event_type: t.to_owned(),
                name: Some(n.to_owned()),
            },
            None => EventSpec {
                event_type: text.to_owned(),
                name: None,
            },
        }
    }

    pub fn matches(&self, event_type: &str, name: Option<&str>) -> bool {
        self.event_type == event_type && (self.name.is_none() || self.name.as_deref() == name)
    }

    fn check(&self, p: &mut Problems, field: &str) {
        if EventType::parse(&self.event_type).is_none() {
            p.push(
                format!("{field}.eventType"),
                format!("`{}` is not an event type", self.event_type),
            );
        }
        if self.event_type == "custom" && self.name.is_none() {
            p.push(format!("{field}.name"), "required for custom events");
        }
    }
}

/// What enrols a customer. Manual enrolment is always possible as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Trigger {
    /// An event, optionally with a rule-language condition on the customer.
    Event {
        event: EventSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    TagAdded {
        tag: String,
    },
    TagRemoved {
        tag: String,
    },
    SegmentEntered {
        segment_id: String,
    },
    SegmentLeft {
        segment_id: String,
    },
    /// A date attribute (`YYYY-MM-DD…`) `offset_days` ago (negative: before the date);
    /// `annual` matches month and day only (birthdays).
    Date {
        attribute: String,
        #[serde(default)]
        offset_days: i32,
        #[serde(default)]
        annual: bool,
    },
    /// No follow-up record for `hours` (since creation when there is none).
    NoFollowUp {
        hours: u32,
    },
}

/// Whether a message counts against marketing caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Purpose {
    #[default]
    Marketing,
    Service,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Service => "service",
        }
    }

    /// Reads a stored purpose; anything but `service` counts as marketing.
    pub fn parse(text: &str) -> Purpose {
        if text == "service" {
            Purpose::Service
        } else {
            Purpose::Marketing
        }
    }
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// Waits a duration after the previous step.
    Wait {
        seconds: u64,
    },
    /// Waits until the next `HH:MM` in the customer's (else the tenant's) time zone.
    WaitUntilTime {
        time: String,
    },
    /// Waits until the time in a field of the event that started the enrolment (its
    /// payload's `field`, RFC 3339), shifted by `offset_minutes` (`-120`: two hours before a
    /// class); continues at once when that time has passed or the enrolment was not started
    /// by an event carrying it (the history says which).
    WaitUntilEventTime {
        field: String,
        #[serde(default)]
        offset_minutes: i64,
    },
    /// Waits for an event (since the wait began), at most `timeout_seconds`; on timeout
    /// continues at `on_timeout` (a later step id or `end`), else with the next step.
    WaitForEvent {
        event: EventSpec,
        timeout_seconds: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_timeout: Option<String>,
    },
    /// Jumps to `then` when the condition holds, else to `otherwise` (default: next step).
    Branch {
        condition: String,
        then: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// A message with `{{customer.name}}`-style placeholders.
    SendMessage {
        channel: String,
        template: String,
        #[serde(default)]
        purpose: Purpose,
    },
    /// A task for the customer's owner (`owner`), a user id, or `role:<name>`.
    CreateTask {
        title: String,
        assignee: String,
        #[serde(default)]
        due_in_seconds: u64,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    /// Opens a ticket (`shoal_tickets`) for the customer, of `type` (`general` when left
    /// out), its subject the rendered title.
    CreateTicket {
        title: String,
        #[serde(default = "normal")]
        priority: String,
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        ticket_type: Option<String>,
    },
    /// POSTs a JSON body (a template) to `url`, signed like every webhook.
    CallWebhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
}

fn normal() -> String {
    "normal".to_owned()
}

/// One step of the sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    /// The action runs only when this rule holds (checked when the step is due); otherwise
    /// the step is skipped. (`when`, not `condition`: a branch's own field has that name.)
    #[serde(default, rename = "when", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(flatten)]
    pub action: Action,
}

/// May a customer be enrolled again?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reentry {
    /// Once ever.
    Once,
    /// Again once the previous enrolment finished (never two at a time).
    #[default]
    AfterExit,
}

/// What happens to a message held back by a frequency cap or a human follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CapPolicy {
    /// Sent when the cap allows it again.
    #[default]
    Defer,
    /// Skipped (recorded with the reason).
    Drop,
}

/// A whole SOP definition (one version).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    pub steps: Vec<Step>,
    /// Events that end an enrolment (checked before every step).
    #[serde(default)]
    pub exit_on: Vec<EventSpec>,
    /// A rule that ends an enrolment when it holds (checked before every step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_condition: Option<String>,
    #[serde(default)]
    pub reentry: Reentry,
    #[serde(default)]
    pub on_cap: CapPolicy,
}

/// A definition with its rules parsed, ready to run.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub definition: Definition,
    /// Per step: its condition, and a branch's condition.
    pub conditions: Vec<(Option<Rule>, Option<Rule>)>,
    pub exit_condition: Option<Rule>,
    /// Per trigger: an event trigger's condition.
    pub trigger_conditions: Vec<Option<Rule>>,
}

impl Compiled {
    /// The index a jump target names (`END` is one past the last step).
    pub fn target(&self, id: &str) -> usize {
        if id == END {
            return self.definition.steps.len();
        }
        self.definition
            .steps
            .iter()
            .position(|s| s.id == id)
            .unwrap_or(self.definition.steps.len())
    }
}

fn parse_rule(
    p: &mut Problems,
    field: &str,
    text: &str,
    (tags, sealed): (&[Tag], &[String]),
) -> Option<Rule> {
    match shoal_tags::parse_rule(text, tags, sealed, field) {
        Ok(r) => Some(r),
        Err(shoal_base::error::Error::Invalid(errors)) => {
            p.extend(errors);
            None
        }
        Err(e) => {
            p.push(field, e.to_string());
            None
        }
    }
}

/// `HH:MM` as a time of day.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

fn is_step_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// The `{{customer.…}}` fields a template may use.
const TEMPLATE_FIELDS: &[&str] = &[
    "id", "name", "phone", "email", "stage", "ownerId", "channel",
];

/// A piece of a message template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a str),
    /// The trimmed inside of a `{{…}}` placeholder, e.g. `customer.name`.
    Field(&'a str),
    /// The rest of the text from a `{{` that is never closed.
    Unclosed(&'a str),
}

/// Splits a template into text and `{{…}}` placeholders (read by the checks and by
/// rendering alike).
pub fn parts(text: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Part::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push(Part::Unclosed(&rest[start..]));
            return out;
        };
        out.push(Part::Field(after[..end].trim()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Part::Text(rest));
    }
    out
}

/// Checks the placeholders of a template (SOP steps and campaign variants alike).
pub fn check_template(p: &mut Problems, field: &str, text: &str) {
    for part in parts(text) {
        match part {
            Part::Text(_) => {}
            Part::Unclosed(_) => {
                p.push(field, "a `{{` is never closed");
                return;
            }
            Part::Field(inner) => {
                let known = inner
                    .strip_prefix("customer.")
                    .is_some_and(|f| TEMPLATE_FIELDS.contains(&f) || f.starts_with("attributes."));
                if !known {
                    p.push(
                        field,
                        format!(
                            "unknown placeholder `{{{{{inner}}}}}`: use customer.{} or customer.attributes.<key>",
                            TEMPLATE_FIELDS.join(", customer.")
                        ),
                    );
                }
            }
        }
    }
    if text.contains("${") {
        p.push(field, "has an unreplaced template parameter `${…}`");
    }
}

/// Checks a definition against the tenant's tags (conditions, tag actions), the attributes
/// it seals (which conditions may not read) and known segments; every problem is reported
/// with its path under `field`.
pub fn compile(
    definition: &Definition,
    tags: &[Tag],
    sealed: &[String],
    segments: &HashSet<String>,
    allowed: &Allowed,
    field: &str,
) -> Result<Compiled> {
    let mut p = Problems::default();
    let d = definition;
    let at = |rest: &str| format!("{field}.{rest}");
    let mut trigger_conditions = Vec::new();
    for (i, t) in d.triggers.iter().enumerate() {
        let f = at(&format!("triggers[{i}]"));
        let mut cond = None;
        match t {
            Trigger::Event { event, condition } => {
                event.check(&mut p, &format!("{f}.event"));
                if let Some(c) = condition {
                    cond = parse_rule(&mut p, &format!("{f}.condition"), c, (tags, sealed));
                }
            }
            Trigger::TagAdded { tag } | Trigger::TagRemoved { tag } => {
                if !tags.iter().any(|t| &t.name == tag) {
                    p.push(format!("{f}.tag"), format!("no tag named \"{tag}\""));
                }
            }
            Trigger::SegmentEntered { segment_id } | Trigger::SegmentLeft { segment_id } => {
                if !segments.contains(segment_id) {
                    p.push(
                        format!("{f}.segmentId"),
                        format!("no segment `{segment_id}`"),
                    );
                }
            }
            Trigger::Date {
                attribute,
                offset_days,
                ..
            } => {
                if attribute.is_empty() || attribute.chars().count() > 64 {
                    p.push(format!("{f}.attribute"), "1–64 characters");
                }
                if offset_days.unsigned_abs() > 366 {
                    p.push(format!("{f}.offsetDays"), "between -366 and 366");
                }
            }
            Trigger::NoFollowUp { hours } => {
                if !(1..=24 * 366).contains(hours) {
                    p.push(format!("{f}.hours"), "between 1 and 8784");
                }
            }
        }
        trigger_conditions.push(cond);
    }
    if d.steps.is_empty() {
        p.push(at("steps"), "an SOP needs at least one step");
    }
    if d.steps.len() > MAX_STEPS {
        p.push(at("steps"), format!("at most {MAX_STEPS} steps"));
    }
    let mut seen = HashSet::new();
    for (i, s) in d.steps.iter().enumerate() {
        let f = at(&format!("steps[{i}]"));
        if !is_step_id(&s.id) || s.id == END {
            p.push(
                format!("{f}.id"),
                "1–64 characters of letters, digits, `_`, `-`, `.` (and not `end`)",
            );
        } else if !seen.insert(s.id.as_str()) {
            p.push(
                format!("{f}.id"),
                format!("step id `{}` is used twice", s.id),
            );
        }
    }
    let later = |from: usize, target: &str| {
        target == END || d.steps.iter().skip(from + 1).any(|s| s.id == target)
    };
    let mut conditions = Vec::new();
    for (i, s) in d.steps.iter().enumerate() {
        let f = at(&format!("steps[{i}]"));
        let step_cond = s
            .condition
            .as_deref()
            .and_then(|c| parse_rule(&mut p, &format!("{f}.when"), c, (tags, sealed)));
        let mut branch_cond = None;
        match &s.action {
            Action::Wait { seconds } => {
                if *seconds == 0 || *seconds > MAX_WAIT_SECONDS {
                    p.push(
                        format!("{f}.seconds"),
                        format!("between 1 and {MAX_WAIT_SECONDS}"),
                    );
                }
            }
            Action::WaitUntilTime { time } => {
                if parse_time(time).is_none() {
                    p.push(format!("{f}.time"), "a time of day as HH:MM, e.g. 09:30");
                }
            }
            Action::WaitUntilEventTime {
                field,
                offset_minutes,
            } => {
                if field.is_empty() || field.chars().count() > 64 {
                    p.push(
                        format!("{f}.field"),
                        "a payload field name, 1–64 characters",
                    );
                }
                if offset_minutes.unsigned_abs() > MAX_WAIT_SECONDS / 60 {
                    p.push(
                        format!("{f}.offsetMinutes"),
                        format!("between -{0} and {0}", MAX_WAIT_SECONDS / 60),
                    );
                }
            }
            Action::WaitForEvent {
                event,
                timeout_seconds,
                on_timeout,
            } => {
                event.check(&mut p, &format!("{f}.event"));
                if *timeout_seconds == 0 || *timeout_seconds > MAX_WAIT_SECONDS {
                    p.push(
                        format!("{f}.timeoutSeconds"),
                        format!("between 1 and {MAX_WAIT_SECONDS}"),
                    );
                }
                if let Some(t) = on_timeout
                    && !later(i, t)
                {
                    p.push(
                        format!("{f}.onTimeout"),
                        format!("`{t}` is not a later step (jumps go forward; `end` ends)"),
                    );
                }
            }
            Action::Branch {
                condition,
                then,
                otherwise,
            } => {
                branch_cond =
                    parse_rule(&mut p, &format!("{f}.condition"), condition, (tags, sealed));
                for (name, t) in [("then", Some(then)), ("otherwise", otherwise.as_ref())] {
                    if let Some(t) = t
                        && !later(i, t)
                    {
                        p.push(
                            format!("{f}.{name}"),
                            format!("`{t}` is not a later step (jumps go forward; `end` ends)"),
                        );
                    }
                }
            }
            Action::SendMessage {
                channel, template, ..
            } => {
                if !CHANNELS.contains(&channel.as_str()) {
                    p.push(
                        format!("{f}.channel"),
                        format!("`{channel}` is not a channel ({})", CHANNELS.join(", ")),
                    );
                }
                if template.trim().is_empty() || template.chars().count() > 4000 {
                    p.push(format!("{f}.template"), "1–4000 characters");
                }
                check_template(&mut p, &format!("{f}.template"), template);
            }
            Action::CreateTask {
                title,
                assignee,
                due_in_seconds,
                ..
            } => {
                if title.trim().is_empty() || title.chars().count() > 200 {
                    p.push(format!("{f}.title"), "1–200 characters");
                }
                if *due_in_seconds > MAX_WAIT_SECONDS {
                    p.push(
                        format!("{f}.dueInSeconds"),
                        format!("between 0 and {MAX_WAIT_SECONDS} (400 days)"),
                    );
                }
                check_template(&mut p, &format!("{f}.title"), title);
                if assignee.trim().is_empty() {
                    p.push(
                        format!("{f}.assignee"),
                        "`owner`, a user id or `role:<name>`",
                    );
                }
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => {
                match tags.iter().find(|t| &t.name == tag) {
                    None => p.push(format!("{f}.tag"), format!("no tag named \"{tag}\"")),
                    Some(t) if t.kind == shoal_tags::TagKind::Dynamic => p.push(
                        format!("{f}.tag"),
                        format!("\"{tag}\" is a dynamic tag: its rule decides who holds it"),
                    ),
                    Some(_) => {}
                }
            }
            Action::CreateTicket {
                title,
                priority,
                ticket_type,
            } => {
                if title.trim().is_empty() || title.chars().count() > 200 {
                    p.push(format!("{f}.title"), "1–200 characters");
                }
                if let Some(t) = ticket_type
                    && (t.is_empty()
                        || t.chars().count() > 40
                        || !t
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                {
                    p.push(
                        format!("{f}.type"),
                        "a ticket type's key: 1–40 of a–z, 0–9 and _",
                    );
                }
                if !["low", "normal", "high", "urgent"].contains(&priority.as_str()) {
                    p.push(format!("{f}.priority"), "low, normal, high or urgent");
                }
            }
            Action::CallWebhook { url, body } => {
                if let Err(m) = outbound::check(url, allowed) {
                    p.push(format!("{f}.url"), m);
                }
                if let Some(b) = body {
                    check_template(&mut p, &format!("{f}.body"), b);
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(b) {
                        p.push(
                            format!("{f}.body"),
                            format!("must be JSON, placeholders inside strings (`{{\"name\": \"{{{{customer.name}}}}\"}}`): {e}"),
                        );
                    }
                }
            }
        }
        conditions.push((step_cond, branch_cond));
    }
    for (i, e) in d.exit_on.iter().enumerate() {
        e.check(&mut p, &at(&format!("exitOn[{i}]")));
    }
    let exit_condition = d
        .exit_condition
        .as_deref()
        .and_then(|c| parse_rule(&mut p, &at("exitCondition"), c, (tags, sealed)));
    p.into_result(Compiled {
        definition: definition.clone(),
        conditions,
        exit_condition,
        trigger_conditions,
    })
}

/// Compiles a stored definition, which passed `compile` when saved; a tag deleted since is
/// reported as an error of the step that needs it, at run time.
pub fn compile_stored(definition: &Definition, tags: &[Tag]) -> Compiled {
    let rule = |text: &Option<String>| {
        text.as_deref().and_then(|t| {
            // a condition reading an attribute sealed since cannot hold: it reads SQL
            rules::parse(
                t,
                &|n: &str| tags.iter().find(|t| t.name == n).map(|t| t.id.clone()),
                &[],
            )
            .ok()
        })
    };
    Compiled {
        definition: definition.clone(),
        conditions: definition
            .steps
            .iter()
            .map(|s| {
                let branch = match &s.action {
                    Action::Branch { condition, .. } => rule(&Some(condition.clone())),
                    _ => None,
                };
                (rule(&s.condition), branch)
            })
            .collect(),
        exit_condition: rule(&definition.exit_condition),
        trigger_conditions: definition
            .triggers
            .iter()
            .map(|t| match t {
                Trigger::Event { condition, .. } => rule(condition),
                _ => None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Step {
        Step {
            id: id.into(),
            condition: None,
            action: Action::SendMessage {
                channel: "log".into(),
                template: "Hi {{customer.name}}".into(),
                purpose: Purpose::Marketing,
            },
        }
    }

    #[test]
    fn definitions_round_trip_as_json() {
        let d = Definition {
            triggers: vec![Trigger::Event {
                event: EventSpec::parse("custom:trial_signup"),
                condition: None,
            }],
            steps: vec![
                Step {
                    id: "wait".into(),
                    condition: None,
                    action: Action::Wait { seconds: 86_400 },
                },
                message("pack"),
            ],
            exit_on: vec![EventSpec::parse("order")],
            ..Definition::default()
        };
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""kind":"sendMessage""#), "{json}");
        assert_eq!(serde_json::from_str::<Definition>(&json).unwrap(), d);
    }

    #[test]
    fn templates_split_into_text_and_placeholders() {
        assert_eq!(
            parts("Hi {{ customer.name }}, {{customer.attributes.city}}! {{oops"),
            [
                Part::Text("Hi "),
                Part::Field("customer.name"),
                Part::Text(", "),
                Part::Field("customer.attributes.city"),
                Part::Text("! "),
                Part::Unclosed("{{oops"),
            ]
        );
        assert_eq!(parts(""), []);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let d = Definition {
            steps: vec![
                message("a"),
                message("a"),
                Step {
                    id: "b".into(),
                    condition: Some("nonsense (".into()),
                    action: Action::Branch {
                        condition: "stage in (lead)".into(),
                        then: "a".into(),
                        otherwise: None,
                    },
                },
                Step {
                    id: "c".into(),
                    condition: None,
                    action: Action::SendMessage {
                        channel: "pigeon".into(),
                        template: "{{customer.password}}".into(),
                        purpose: Purpose::Service,
                    },
                },
            ],
            ..Definition::default()
        };
        let Err(shoal_base::error::Error::Invalid(errors)) =
            compile(&d, &[], &[], &HashSet::new(), &Allowed::default(), "input")
        else {
            panic!("accepted")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for want in [
            "input.steps[1].id",
            "input.steps[2].when",
            "input.steps[2].condition",
            "input.steps[2].then",
            "input.steps[3].channel",
            "input.steps[3].template",
        ] {
            assert!(fields.contains(&want), "{want} missing from {fields:?}");
        }
    }
}
