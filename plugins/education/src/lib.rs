//! Education (training schools, online courses): learner tags (deep interest, trial not
//! enrolled, renewal due, at risk), the consult-to-enrolment SOP and the trial-link SOP,
//! tuition settlement (installments, pro-rata refunds by lessons consumed, advisor and
//! teacher commissions), and ticket templates: a refund request whose amount the module
//! proposes from the learner's lessons and payments, and a class complaint. See README.md.

use serde::Deserialize;
use serde_json::{Value, json};
use shoal_sdk::{
    Capability, Decimal, Industry, Module, PluginError, PluginInfo, SettleRequest, SettledLine,
    Settlement, SopAction, SopTemplate, Split, TagTemplate, TicketFieldKind, TicketProposal,
    TicketRequest, TicketTemplate, decimal, decimal_of, money, params, split_exactly,
};

pub struct Education;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

impl Module for Education {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "education",
            "教育 Education",
            env!("CARGO_PKG_VERSION"),
            Industry::Education,
        )
        .description("Learner tags, enrolment SOPs, tuition settlement and refund tickets")
        .capabilities(&[
            Capability::TagTemplates,
            Capability::SopTemplates,
            Capability::Settlement,
            Capability::TicketTemplates,
        ])
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![
            TagTemplate::new("deep-interest", "deep-interest")
                .description(
                    "深度意向: watched at least N lessons (`lesson_watched` events) in 14 days",
                )
                .rule("count(\"lesson_watched\", 14d) >= ${lessons}")
                .param("lessons", "lessons watched in 14 days", "3"),
            TagTemplate::new("trial-not-enrolled", "trial-not-enrolled")
                .description(
                    "试听未报名: attended a trial class in the last 30 days, no order since",
                )
                .rule("exists(\"trial_attended\", 30d) and not exists(order, 30d)"),
            TagTemplate::new("renewal-due", "renewal-due")
                .description("待续费: at most N lessons left (attribute `lessons_left`)")
                .rule("attr.lessons_left <= ${lessons_left}")
                .param("lessons_left", "lessons left", "3"),
            TagTemplate::new("at-risk", "at-risk")
                .description(
                    "学习风险: at least N late homework submissions (`homework_late`) in 30 days",
                )
                .rule("count(\"homework_late\", 30d) >= ${late}")
                .param("late", "late submissions in 30 days", "2"),
        ]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        vec![
            SopTemplate::new("consult-to-enrol", "Consult to enrolment 咨询转化", "consult", None)
                .description("After a consultation: course pack (24 h), trial reminder (3 d), pre-class reminder, survey (48 h after class), renewal discount; an order (enrolment) ends it")
                .exit_on("order")
                .step("course-pack", DAY, SopAction::message("wecom", "{{customer.name}}，您咨询的课程资料包已发送，请查收"))
                .step("trial-reminder", 3 * DAY, SopAction::message("wecom", "{{customer.name}}，免费试听课已为您预留，点击预约时间"))
                .step("pre-class", 2 * DAY - 2 * HOUR, SopAction::message("sms", "{{customer.name}}，您的试听课将在2小时后开始"))
                .step("survey", 2 * HOUR + 2 * DAY, SopAction::message("wecom", "{{customer.name}}，试听课感觉如何？填写问卷领取学习资料"))
                .step("renewal-offer", 3 * DAY, SopAction::message("wecom", "{{customer.name}}，本周报名立享${discount}"))
                .param("discount", "the enrolment offer", "\"9折\""),
            SopTemplate::new("trial-link-opened", "Trial link opened, not enrolled 试听未报名", "custom", Some("trial_link_opened"))
                .description("When a trial link is opened and no order follows within a day, a task for the advisor (the owner)")
                .exit_on("order")
                .step_if(
                    "advisor",
                    DAY,
                    "not exists(order, 1d)",
                    SopAction::task("试听链接已打开未报名: 跟进 {{customer.name}}", "owner", 4 * HOUR),
                ),
        ]
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        settle_bill(&request)
    }

    fn ticket_templates() -> Vec<TicketTemplate> {
        vec![
            TicketTemplate::new("refund", "退费申请 Refund")
                .description("A learner asks for a refund: the module proposes the amount, pro-rata to the lessons not yet taken (as the refund bill settles it), from the lessons bought and used and the tuition paid")
                .field("course", "课程", TicketFieldKind::Text, true)
                .attribute_field("lessons_total", "购买课时", "lessons_total")
                .attribute_field("lessons_left", "剩余课时", "lessons_left")
                .field("lessons_used", "已上课时", TicketFieldKind::Number, false)
                .field("paid", "已缴学费", TicketFieldKind::Money, false)
                .field("refund_amount", "建议退费金额", TicketFieldKind::Money, false)
                .field("reason", "退费原因", TicketFieldKind::Text, false)
                .proposes()
                // five working days of nine hours
                .sla(Some(240), None, Some(5 * 9 * 60))
                .routing("advisors", &[("退费", 2)], &[]),
            TicketTemplate::new("class_complaint", "课程投诉 Class complaint")
                .description("About teaching, scheduling or a teacher; goes to the academic team")
                .field("course", "课程", TicketFieldKind::Text, true)
                .choice("issue", "问题", &["教学质量", "排课", "老师态度", "其他"])
                .field("teacher", "老师", TicketFieldKind::Text, false)
                .sla(Some(120), None, Some(3 * 9 * 60))
                .routing("academic", &[], &["投诉"]),
        ]
    }

    fn propose_ticket(request: TicketRequest) -> Result<TicketProposal, PluginError> {
        match request.template.as_str() {
            "refund" => propose_refund(&request),
            other => Err(PluginError::new(
                "unsupported",
                &format!("no proposals for `{other}` tickets"),
            )),
        }
    }
}

/// The refund a `refund` ticket proposes: tuition paid × lessons not taken ÷ lessons
/// bought, rounded half-even to the cent (as [`settle_bill`]'s refund line). Each fact comes
/// from the ticket's fields when staff filled them in, else from the learner: lessons bought
/// from attribute `lessons_total`, lessons used as bought − `lessons_left`, tuition paid as
/// the learner's orders (`order` events' amounts).
pub fn propose_refund(request: &TicketRequest) -> Result<TicketProposal, PluginError> {
    let fields: Value = serde_json::from_str(&request.fields).unwrap_or_default();
    let (attributes, paid_in_orders) = match &request.customer {
        Some(c) => (
            serde_json::from_str::<Value>(&c.attributes).unwrap_or_default(),
            c.stats
                .iter()
                .find(|s| s.event_type == "order")
                .and_then(|s| s.amount_total.parse::<Decimal>().ok()),
        ),
        None => (Value::Null, None),
    };
    let fact = |key: &str| decimal_of(&fields[key]).or_else(|| decimal_of(&attributes[key]));
    let missing = |what: &str| {
        PluginError::new(
            "missing-facts",
            &format!("{what}: fill in the ticket's field or the learner's attribute"),
        )
    };
    let total = fact("lessons_total").ok_or_else(|| missing("lessons_total (lessons bought)"))?;
    let used = match decimal_of(&fields["lessons_used"]) {
        Some(used) => used,
        None => {
            let left = fact("lessons_left")
                .ok_or_else(|| missing("lessons_used, or lessons_left (lessons left)"))?;
            total - left
        }
    };
    if total <= Decimal::ZERO || used < Decimal::ZERO || used > total {
        return Err(PluginError::new(
            "bad-lessons",
            &format!("lessons used ({used}) must be between 0 and lessons bought ({total})"),
        ));
    }
    let currency = &request.currency;
    let (paid, from) = match fields["paid"]["amount"].as_str() {
        Some(_) if fields["paid"]["currency"].as_str() != Some(currency) => {
            return Err(PluginError::new(
                "currency-mismatch",
                &format!("paid is not in {currency}: ask for the proposal in its currency"),
            ));
        }
        Some(amount) => (decimal("paid.amount", amount)?, "the ticket"),
        None => (
            paid_in_orders.ok_or_else(|| missing("paid (no orders on the learner)"))?,
            "the learner's orders",
        ),
    };
    let unused = total - used;
    let refund = paid
        .checked_mul(unused)
        .and_then(|x| x.checked_div(total))
        .ok_or_else(|| PluginError::new("bad-amount", "paid × lessons left is out of range"))?;
    let refund = money(refund, currency);
    let paid = money(paid, currency);
    Ok(TicketProposal::new(
        &json!({
            "lessons_used": used.to_string(),
            "paid": { "amount": paid.amount, "currency": currency },
            "refund_amount": { "amount": refund.amount, "currency": currency },
        }),
        vec![
            format!("已上 {used}/{total} 课时，未上 {unused} 课时"),
            format!(
                "已缴 {} {currency}（来自{}）",
                paid.amount,
                if from == "the ticket" {
                    "工单"
                } else {
                    "订单"
                }
            ),
            format!(
                "建议退费 {} × {unused}/{total} = {} {currency}",
                paid.amount, refund.amount
            ),
        ],
    ))
}

/// Commission rates in percent of the tuition (the `commissions` parameter; advisor 8,
/// teacher 20 by default).
fn commissions() -> (Decimal, Decimal) {
    let v: serde_json::Value = params::get("commissions").unwrap_or_default();
    (
        decimal_of(&v["advisor"]).unwrap_or(Decimal::new(8, 0)),
        decimal_of(&v["teacher"]).unwrap_or(Decimal::new(20, 0)),
    )
}

/// The bill's facts (`attributes`): a refund by lessons, installments.
#[derive(Debug, Default, Deserialize)]
struct Facts {
    /// Lessons bought and lessons consumed: the unconsumed share is refunded.
    lessons_total: Option<u32>,
    lessons_used: Option<u32>,
    /// Pay in this many installments (2–24).
    installments: Option<u32>,
}

/// Tuition lines as priced; with `lessons_total`/`lessons_used` a pro-rata refund line takes
/// off the unconsumed lessons; with `installments` the notes give the schedule (exact, the
/// last installment absorbing the cents). Splits: the advisor (role `advisor`) and the
/// teacher (role `teacher`) their commissions, the school (role `school` or `hq`) the rest.
pub fn settle_bill(request: &SettleRequest) -> Result<Settlement, PluginError> {
    let currency = &request.currency;
    let facts: Facts = serde_json::from_str(&request.attributes).unwrap_or_default();
    let mut lines = Vec::new();
    let mut total = Decimal::ZERO;
    for (i, line) in request.lines.iter().enumerate() {
        if &line.unit_price.currency != currency {
            return Err(PluginError::new(
                "currency-mismatch",
                &format!("line {i} is priced in {}", line.unit_price.currency),
            ));
        }
        let amount = money(
            decimal("quantity", &line.quantity)? * decimal("unit-price", &line.unit_price.amount)?,
            currency,
        );
        total += decimal("amount", &amount.amount)?;
        lines.push(SettledLine {
            code: line.code.clone(),
            description: line.description.clone(),
            kind: line.kind,
            quantity: line.quantity.clone(),
            unit_price: line.unit_price.clone(),
            amount,
            note: None,
        });
    }
    let mut notes = Vec::new();
    match (facts.lessons_total, facts.lessons_used) {
        (Some(all), Some(used)) if all > 0 && used <= all => {
            let unused = all - used;
            let refund = decimal(
                "amount",
                &money(total * Decimal::from(unused) / Decimal::from(all), currency).amount,
            )?;
            total -= refund;
            lines.push(SettledLine {
                code: "REFUND-UNUSED".into(),
                description: format!("退还未上课时 {unused}/{all}"),
                kind: shoal_sdk::LineKind::Adjustment,
                quantity: "1".into(),
                unit_price: money(-refund, currency),
                amount: money(-refund, currency),
                note: Some(format!("pro-rata refund: {unused} of {all} lessons unused")),
            });
        }
        (None, None) => {}
        _ => {
            return Err(PluginError::new(
                "bad-lessons",
                "give lessons_total > 0 and lessons_used ≤ lessons_total",
            ));
        }
    }
    if let Some(n) = facts.installments {
        if !(2..=24).contains(&n) {
            return Err(PluginError::new("bad-installments", "2 to 24 installments"));
        }
        let parts = split_exactly(total, &vec![Decimal::ONE; n as usize], 2);
        let plan: Vec<String> = parts.iter().map(|p| money(*p, currency).amount).collect();
        notes.push(format!("{n} installments: {}", plan.join(" + ")));
    }
    let (advisor, teacher) = commissions();
    let role = |r: &str| request.participants.iter().find(|p| p.role == r);
    let Some(school) = role("school").or_else(|| role("hq")) else {
        return Err(PluginError::new(
            "missing-participant",
            "a tuition bill needs a `school` (or `hq`) participant",
        ));
    };
    let mut who = vec![(school, String::new())];
    let mut weights = vec![Decimal::ZERO];
    for (r, rate) in [("advisor", advisor), ("teacher", teacher)] {
        if let Some(p) = role(r) {
            who.push((p, format!("{r} commission {rate}%")));
            weights.push(rate);
        }
    }
    let others: Decimal = weights.iter().copied().sum();
    if others > Decimal::ONE_HUNDRED {
        return Err(PluginError::new(
            "bad-commissions",
            "commissions exceed 100%",
        ));
    }
    weights[0] = Decimal::ONE_HUNDRED - others;
    who[0].1 = format!("school {}%", weights[0]);
    let amounts = split_exactly(total, &weights, 2);
    let splits = who
        .into_iter()
        .zip(amounts)
        .map(|((p, reason), a)| Split {
            participant_id: p.id.clone(),
            amount: money(a, currency),
            reason,
        })
        .collect();
    Ok(Settlement {
        lines,
        total: money(total, currency),
        splits,
        notes,
    })
}

shoal_sdk::register_module!(Education);

#[cfg(test)]
mod tests {
    use shoal_sdk::{BillLine, LineKind, Money, Participant};

    use super::*;

    fn request(attributes: &str) -> SettleRequest {
        let p = |id: &str, role: &str| Participant {
            id: id.into(),
            role: role.into(),
            parent: None,
        };
        SettleRequest {
            bill_id: "T-1".into(),
            currency: "CNY".into(),
            region: "杭州".into(),
            lines: vec![BillLine {
                code: "COURSE-IELTS".into(),
                description: "雅思20课时".into(),
                kind: LineKind::Service,
                quantity: "1".into(),
                unit_price: Money {
                    amount: "6000.00".into(),
                    currency: "CNY".into(),
                },
            }],
            participants: vec![
                p("school", "school"),
                p("advisor-wang", "advisor"),
                p("teacher-zhao", "teacher"),
            ],
            attributes: attributes.into(),
        }
    }

    #[test]
    fn commissions_go_to_advisor_and_teacher_and_the_school_keeps_the_rest() {
        params::set_for_tests(serde_json::json!({}));
        let s = settle_bill(&request("{}")).unwrap();
        let got: Vec<&str> = s.splits.iter().map(|s| s.amount.amount.as_str()).collect();
        assert_eq!(got, ["4320.00", "480.00", "1200.00"]);
    }

    #[test]
    fn unused_lessons_are_refunded_pro_rata() {
        params::set_for_tests(serde_json::json!({}));
        let s = settle_bill(&request(r#"{"lessons_total": 20, "lessons_used": 7}"#)).unwrap();
        assert_eq!(s.lines[1].amount.amount, "-3900.00");
        assert_eq!(s.total.amount, "2100.00");
        assert_eq!(
            settle_bill(&request(r#"{"lessons_total": 20, "lessons_used": 21}"#))
                .unwrap_err()
                .code,
            "bad-lessons"
        );
    }

    #[test]
    fn installments_add_up_to_the_cent() {
        params::set_for_tests(
            serde_json::json!({ "commissions": { "advisor": 10, "teacher": 0 } }),
        );
        let mut r = request(r#"{"installments": 7}"#);
        r.lines[0].unit_price.amount = "1000.00".into();
        let s = settle_bill(&r).unwrap();
        assert_eq!(
            s.notes,
            ["7 installments: 142.86 + 142.86 + 142.86 + 142.86 + 142.86 + 142.85 + 142.85"]
        );
        assert_eq!(s.splits[1].amount.amount, "100.00");
    }

    fn refund(fields: Value, attributes: Value, orders: &str) -> TicketRequest {
        TicketRequest {
            template: "refund".into(),
            currency: "CNY".into(),
            fields: fields.to_string(),
            customer: Some(shoal_sdk::CustomerProfile {
                id: "c1".into(),
                lifecycle_stage: "customer".into(),
                attributes: attributes.to_string(),
                tags: Vec::new(),
                stats: vec![shoal_sdk::EventStat {
                    event_type: "order".into(),
                    count_30d: 1,
                    count_90d: 1,
                    count_total: 1,
                    seconds_since_last: Some(60),
                    amount_total: orders.into(),
                }],
            }),
        }
    }

    #[test]
    fn a_refund_is_proposed_from_the_learners_lessons_and_orders() {
        let p = propose_refund(&refund(
            json!({ "course": "雅思" }),
            json!({ "lessons_total": 20, "lessons_left": 13 }),
            "3000",
        ))
        .unwrap();
        let fields: Value = serde_json::from_str(&p.fields).unwrap();
        // 3000 × 13 / 20 = 1950
        assert_eq!(
            fields["refund_amount"],
            json!({"amount": "1950.00", "currency": "CNY"})
        );
        assert_eq!(fields["lessons_used"], "7");
        assert_eq!(p.notes[2], "建议退费 3000.00 × 13/20 = 1950.00 CNY");
    }

    #[test]
    fn the_tickets_own_facts_win_and_cents_round_half_even() {
        // 1000.00 × 2 / 3 = 666.666… → 666.67
        let p = propose_refund(&refund(
            json!({ "lessons_total": 3, "lessons_used": 1, "paid": {"amount": "1000.00", "currency": "CNY"} }),
            json!({ "lessons_total": 20, "lessons_left": 13 }),
            "3000",
        ))
        .unwrap();
        let fields: Value = serde_json::from_str(&p.fields).unwrap();
        assert_eq!(fields["refund_amount"]["amount"], "666.67");
        let e = propose_refund(&refund(json!({}), json!({}), "3000")).unwrap_err();
        assert_eq!(e.code, "missing-facts");
        assert!(e.message.contains("lessons_total"), "{}", e.message);
        let e = propose_refund(&refund(
            json!({"lessons_used": 30}),
            json!({"lessons_total": 20}),
            "1",
        ))
        .unwrap_err();
        assert_eq!(e.code, "bad-lessons");
    }

    #[test]
    fn templates_are_complete() {
        let tickets = Education::ticket_templates();
        assert_eq!(tickets.len(), 2);
        assert!(tickets[0].proposes && !tickets[1].proposes);
        assert_eq!(Education::tag_templates().len(), 4);
        let sops = Education::sop_templates();
        assert_eq!(sops[0].steps.len(), 5);
        assert_eq!(
            sops[1].steps[0].condition.as_deref(),
            Some("not exists(order, 1d)")
        );
    }
}
