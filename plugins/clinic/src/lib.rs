//! Clinics (dental, medical): patient tags (first visit, no return, recall due, treatment
//! plan in progress), care SOPs (post-treatment care, 7-day follow-up, 6-month recall,
//! no-show rebooking) and itemised treatment bills (labour from the service-item library,
//! materials and implants from the parts library, regional tiers, insurance co-pay, doctor
//! commission). See README.md.

use shoal_sdk::{
    Capability, Decimal, Industry, LineKind, Module, PluginError, PluginInfo, SettleRequest,
    SettledLine, Settlement, SopAction, SopTemplate, Split, TagTemplate, TicketFieldKind,
    TicketTemplate, decimal, decimal_of, money, params, split_exactly, tiers,
};

pub struct Clinic;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

impl Module for Clinic {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "clinic",
            "诊所 Clinic",
            env!("CARGO_PKG_VERSION"),
            Industry::Clinic,
        )
        .description("Patient tags, care SOPs and itemised treatment bills")
        .capabilities(&[
            Capability::TagTemplates,
            Capability::SopTemplates,
            Capability::Settlement,
            Capability::TicketTemplates,
        ])
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![
            TagTemplate::new("first-visit", "first-visit")
                .description("初诊: exactly one visit so far")
                .rule("count(visit) = 1"),
            TagTemplate::new("no-return", "no-return")
                .description("未复诊: one visit only, at least N days ago")
                .rule("count(visit) = 1 and days_since(visit) >= ${days}")
                .param("days", "days since the first visit", "30"),
            TagTemplate::new("recall-due", "recall-due")
                .description("待复查: the last visit was at least N days ago (6-month recall)")
                .rule("days_since(visit) >= ${days}")
                .param("days", "days since the last visit", "180"),
            TagTemplate::new("treatment-in-progress", "treatment-in-progress")
                .description("治疗中: attribute `treatment_plan` is `in_progress`")
                .rule("attr.treatment_plan in [\"in_progress\"]"),
        ]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        vec![
            SopTemplate::new("post-treatment", "Post-treatment care 术后关怀", "custom", Some("treatment_done"))
                .description("1 day after a treatment, care instructions; 7 days after, a follow-up call task for the doctor's assistant (the owner)")
                .step("care", DAY, SopAction::message("sms", "{{customer.name}}，术后请注意: ${care_note}。如有不适请及时联系我们"))
                .step("follow-up", 6 * DAY, SopAction::task("术后7天回访: {{customer.name}}", "owner", DAY))
                .param("care_note", "the care instructions", "\"24小时内勿用患侧咀嚼，忌辛辣\""),
            SopTemplate::new("recall", "6-month recall 定期复查", "visit", None)
                .description("180 days after a visit, a recall invitation; another visit ends it")
                .exit_on("visit")
                .step("invite", 180 * DAY, SopAction::message("wecom", "{{customer.name}}，距上次检查已半年，建议预约口腔复查"))
                .param("months", "documentation only: edit the wait step to change it", "6"),
            SopTemplate::new("no-show", "No-show rebooking 爽约改约", "custom", Some("appointment_missed"))
                .description("After a missed appointment, a rebooking message at once and a task for reception 2 hours later; a visit ends it")
                .exit_on("visit")
                .step("rebook", 0, SopAction::message("sms", "{{customer.name}}，您今天的预约未能到诊，点击链接重新预约"))
                .step("reception", 2 * HOUR, SopAction::task("爽约改约: 致电 {{customer.name}}", "role:reception", 4 * HOUR)),
        ]
    }

    fn ticket_templates() -> Vec<TicketTemplate> {
        vec![
            TicketTemplate::new("adverse_reaction", "术后不良反应 Adverse reaction")
                .description("A patient reports a reaction after a treatment; severe ones are P1 for the doctors")
                .field("treatment", "项目", TicketFieldKind::Text, true)
                .field("treated_on", "治疗日期", TicketFieldKind::Date, false)
                .choice("severity", "程度", &["轻度", "中度", "重度"])
                .sla(Some(30), Some(60), Some(24 * 60))
                .routing("doctors", &[], &["重度", "过敏", "出血"]),
            TicketTemplate::new("no_show", "爽约回访 No-show follow-up")
                .description("The clinic's system opens one for each missed appointment; the front desk calls back")
                .field("appointment_on", "预约日期", TicketFieldKind::Date, true)
                .field("doctor", "医生", TicketFieldKind::Text, false)
                .choice("outcome", "回访结果", &["已改约", "不再就诊", "未接通"])
                .sla(Some(240), None, Some(24 * 60))
                .routing("front_desk", &[], &[]),
            TicketTemplate::new("reschedule", "改约 Reschedule")
                .description("A patient asks to move an appointment")
                .field("appointment_on", "原预约日期", TicketFieldKind::Date, true)
                .field("wanted_on", "期望日期", TicketFieldKind::Date, false)
                .routing("front_desk", &[], &[]),
        ]
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        settle_bill(&request)
    }
}

/// Prices labour and parts by the region's tier (`region_tiers` → `tiers` percent, default
/// tier-1 +10, tier-3 −5), states the insurance co-pay (who pays what, adding up to the
/// total), and splits the revenue: the doctor (role `doctor`) `doctor_commission`% of the
/// labour (default 30), the clinic the rest.
pub fn settle_bill(request: &SettleRequest) -> Result<Settlement, PluginError> {
    let currency = &request.currency;
    let tier = tiers::region_tier(&request.region);
    let percent = tiers::percent(&tier);
    let factor = Decimal::ONE + percent / Decimal::ONE_HUNDRED;
    let (mut lines, mut total, mut labour) = (Vec::new(), Decimal::ZERO, Decimal::ZERO);
    for (i, line) in request.lines.iter().enumerate() {
        if &line.unit_price.currency != currency {
            return Err(PluginError::new(
                "currency-mismatch",
                &format!("line {i} is priced in {}", line.unit_price.currency),
            ));
        }
        let tiered = matches!(
            line.kind,
            LineKind::Labour | LineKind::Part | LineKind::Service
        );
        let list = decimal("unit-price", &line.unit_price.amount)?;
        let unit = if tiered { list * factor } else { list };
        let amount = money(unit * decimal("quantity", &line.quantity)?, currency);
        let value = decimal("amount", &amount.amount)?;
        total += value;
        if matches!(line.kind, LineKind::Labour | LineKind::Service) {
            labour += value;
        }
        lines.push(SettledLine {
            code: line.code.clone(),
            description: line.description.clone(),
            kind: line.kind,
            quantity: line.quantity.clone(),
            unit_price: money(unit, currency),
            amount,
            note: (tiered && !percent.is_zero()).then(|| format!("{tier}: {percent:+}%")),
        });
    }
    let mut notes = vec![format!("region {} is {tier}", request.region)];
    let attributes: serde_json::Value =
        serde_json::from_str(&request.attributes).unwrap_or_default();
    let insurance = &attributes["insurance"];
    if !insurance.is_null() {
        // the patient's insurance covers `covered_percent` of the bill, up to `cap`
        let covered_percent = decimal_of(&insurance["covered_percent"])
            .filter(|p| !p.is_sign_negative() && *p <= Decimal::ONE_HUNDRED)
            .ok_or_else(|| {
                PluginError::new("bad-insurance", "insurance.covered_percent is 0–100")
            })?;
        let mut covered = decimal(
            "amount",
            &money(total * covered_percent / Decimal::ONE_HUNDRED, currency).amount,
        )?;
        if !insurance["cap"].is_null() {
            let cap = decimal_of(&insurance["cap"])
                .ok_or_else(|| PluginError::new("bad-insurance", "insurance.cap is an amount"))?;
            covered = covered.min(cap);
        }
        let name = insurance["name"].as_str().unwrap_or("insurer");
        notes.push(format!(
            "co-pay: {name} pays {} {currency}, the patient {} {currency}",
            money(covered, currency).amount,
            money(total - covered, currency).amount
        ));
    }
    let rate = params::get::<serde_json::Value>("doctor_commission")
        .and_then(|v| decimal_of(&v))
        .unwrap_or(Decimal::new(30, 0));
    let role = |r: &str| request.participants.iter().find(|p| p.role == r);
    let Some(clinic) = role("clinic")
        .or_else(|| role("store"))
        .or_else(|| role("hq"))
    else {
        return Err(PluginError::new(
            "missing-participant",
            "a treatment bill needs a `clinic` participant",
        ));
    };
    let mut splits = Vec::new();
    let doctor_share = match role("doctor") {
        Some(d) => {
            let share = split_exactly(labour * rate / Decimal::ONE_HUNDRED, &[Decimal::ONE], 2)[0];
            splits.push(Split {
                participant_id: d.id.clone(),
                amount: money(share, currency),
                reason: format!("doctor commission {rate}% of labour"),
            });
            share
        }
        None => Decimal::ZERO,
    };
    splits.insert(
        0,
        Split {
            participant_id: clinic.id.clone(),
            amount: money(total - doctor_share, currency),
            reason: "clinic".into(),
        },
    );
    Ok(Settlement {
        lines,
        total: money(total, currency),
        splits,
        notes,
    })
}

shoal_sdk::register_module!(Clinic);

#[cfg(test)]
mod tests {
    use shoal_sdk::{BillLine, Money, Participant};

    use super::*;

    fn line(code: &str, kind: LineKind, price: &str) -> BillLine {
        BillLine {
            code: code.into(),
            description: code.into(),
            kind,
            quantity: "1".into(),
            unit_price: Money {
                amount: price.into(),
                currency: "CNY".into(),
            },
        }
    }

    fn request(attributes: &str) -> SettleRequest {
        SettleRequest {
            bill_id: "C-1".into(),
            currency: "CNY".into(),
            region: "上海".into(),
            lines: vec![
                line("IMPLANT-SURGERY", LineKind::Labour, "3000.00"),
                line("IMPLANT-TI", LineKind::Part, "5000.00"),
            ],
            participants: vec![
                Participant {
                    id: "clinic-xh".into(),
                    role: "clinic".into(),
                    parent: None,
                },
                Participant {
                    id: "dr-zhou".into(),
                    role: "doctor".into(),
                    parent: Some("clinic-xh".into()),
                },
            ],
            attributes: attributes.into(),
        }
    }

    #[test]
    fn labour_and_implants_follow_the_tier_and_the_doctor_earns_on_labour() {
        params::set_for_tests(serde_json::json!({ "region_tiers": { "上海": "tier-1" } }));
        let s = settle_bill(&request("{}")).unwrap();
        assert_eq!(s.total.amount, "8800.00");
        let got: Vec<&str> = s.splits.iter().map(|s| s.amount.amount.as_str()).collect();
        assert_eq!(got, ["7810.00", "990.00"], "30% of 3300 labour");
    }

    #[test]
    fn insurance_covers_its_share_up_to_its_cap() {
        params::set_for_tests(serde_json::json!({}));
        let s = settle_bill(&request(
            r#"{"insurance": {"name": "平安健康", "covered_percent": 70, "cap": 5000}}"#,
        ))
        .unwrap();
        assert_eq!(
            s.notes[1],
            "co-pay: 平安健康 pays 5000.00 CNY, the patient 3000.00 CNY"
        );
        let e = settle_bill(&request(r#"{"insurance": {"covered_percent": 120}}"#)).unwrap_err();
        assert_eq!(e.code, "bad-insurance");
    }

    #[test]
    fn templates_are_complete() {
        assert_eq!(Clinic::tag_templates().len(), 4);
        assert_eq!(Clinic::sop_templates().len(), 3);
    }
}
