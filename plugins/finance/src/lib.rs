//! Finance (wealth management, insurance agencies): client tags (risk appetite from the
//! questionnaire, high net worth, dormant, maturity approaching), service SOPs (application
//! progress, maturity reminder 14 days before, KYC refresh) and advisor commissions (tiered
//! by amount, capped per period for compliance, clawed back on early redemption). Declares
//! its sensitive customer fields in [`SENSITIVE_FIELDS`]. See README.md.

use shoal_sdk::{
    Capability, Decimal, Industry, Module, PluginError, PluginInfo, SettleRequest, SettledLine,
    Settlement, SopAction, SopTemplate, Split, TagTemplate, TicketFieldKind, TicketTemplate,
    decimal, decimal_of, money, params,
};

pub struct Finance;

const DAY: u64 = 24 * 3600;

/// Customer attributes this module treats as sensitive (to be masked for roles without
/// access once the permission model reads module declarations; see README.md).
pub const SENSITIVE_FIELDS: &[&str] = &["id_number", "aum", "income", "bank_account", "risk_level"];

impl Module for Finance {
    fn describe() -> PluginInfo {
        PluginInfo::new("finance", "金融 Finance", env!("CARGO_PKG_VERSION"), Industry::Finance)
            .description("Client tags, service SOPs and compliant advisor commissions. Sensitive fields: id_number, aum, income, bank_account, risk_level")
            .capabilities(&[
                Capability::TagTemplates,
                Capability::SopTemplates,
                Capability::Settlement,
                Capability::TicketTemplates,
            ])
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![
            TagTemplate::new("risk-conservative", "risk-conservative")
                .description("风险偏好-保守: questionnaire level C1–C2 (attribute `risk_level`), answered within a year")
                .rule("attr.risk_level in [\"C1\", \"C2\"] and exists(\"risk_questionnaire\", 365d)"),
            TagTemplate::new("risk-balanced", "risk-balanced")
                .description("风险偏好-稳健: level C3, answered within a year")
                .rule("attr.risk_level in [\"C3\"] and exists(\"risk_questionnaire\", 365d)"),
            TagTemplate::new("risk-aggressive", "risk-aggressive")
                .description("风险偏好-进取: level C4–C5, answered within a year")
                .rule("attr.risk_level in [\"C4\", \"C5\"] and exists(\"risk_questionnaire\", 365d)"),
            TagTemplate::new("high-net-worth", "high-net-worth")
                .description("高净值: assets under management (attribute `aum`) of at least the threshold")
                .rule("attr.aum >= ${aum}")
                .param("aum", "assets under management", "6000000"),
            TagTemplate::new("dormant", "dormant")
                .description("休眠客户: no purchase and no visit for N days")
                .rule("not exists(order, ${days}d) and not exists(visit, ${days}d)")
                .param("days", "days without activity", "180"),
            TagTemplate::new("maturity-approaching", "maturity-approaching")
                .description("即将到期: a product matures within N days (attribute `days_to_maturity`, kept by the core system sync)")
                .rule("attr.days_to_maturity <= ${days}")
                .param("days", "days to maturity", "14"),
        ]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        vec![
            SopTemplate::new("application-progress", "Application progress 进度通知", "custom", Some("application_status"))
                .description("Whenever an application changes status, a service notice")
                .step("notice", 0, SopAction::message("sms", "{{customer.name}}，您的申请状态已更新，详情请登录查看")),
            SopTemplate::new("maturity-reminder", "Maturity reminder 到期提醒", "date", Some("maturity_date:-14"))
                .description("14 days before the maturity date (attribute `maturity_date`), a reminder and a task for the advisor to discuss reinvestment")
                .step("remind", 0, SopAction::message("wecom", "{{customer.name}}，您持有的产品将于14天后到期，理财经理将与您联系"))
                .step("advisor", 0, SopAction::task("到期续投沟通: {{customer.name}}", "owner", 3 * DAY)),
            SopTemplate::new("kyc-refresh", "KYC refresh 身份信息更新", "date", Some("kyc_expiry:-30"))
                .description("30 days before the KYC documents expire (attribute `kyc_expiry`), a request to update them; 7 days later a task if still pending")
                .exit_on("custom:kyc_updated")
                .step("request", 0, SopAction::message("sms", "{{customer.name}}，您的身份证件即将过期，请在30天内更新以免影响交易"))
                .step("follow-up", 7 * DAY, SopAction::task("KYC待更新: {{customer.name}}", "owner", 2 * DAY)),
        ]
    }

    fn ticket_templates() -> Vec<TicketTemplate> {
        vec![
            TicketTemplate::new("complaint", "金融消费投诉 Complaint")
                .description("A consumer complaint, resolved within the regulator's 15 days (calendar days: keep the 24×7 business calendar)")
                .field("product", "产品", TicketFieldKind::Text, true)
                .field("amount", "涉及金额", TicketFieldKind::Money, false)
                .choice("issue", "问题类型", &["销售误导", "收益争议", "费用", "服务", "其他"])
                .sla(Some(24 * 60), Some(24 * 60), Some(15 * 24 * 60))
                .routing("compliance", &[], &["监管", "12378", "媒体"]),
            TicketTemplate::new("risk_review", "风险测评复核 Risk review")
                .description("The client disputes their risk level; copies it (masked for roles that may not see it)")
                .attribute_field("risk_level", "当前风险等级", "risk_level")
                .choice("requested_level", "申请等级", &["C1", "C2", "C3", "C4", "C5"])
                .sla(None, None, Some(2 * 24 * 60))
                .routing("compliance", &[("风险测评", 2)], &[]),
        ]
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        settle_bill(&request)
    }
}

/// The commission on an amount, marginal by tier: `commission_tiers` is a list of
/// `{up_to, percent}` (the last without `up_to`); default 1% to 1,000,000, 0.8% to
/// 5,000,000, 0.5% above.
pub fn tiered_commission(amount: Decimal) -> Decimal {
    let tiers: Vec<serde_json::Value> = params::get("commission_tiers").unwrap_or_else(|| {
        serde_json::from_str(r#"[{"up_to": 1000000, "percent": 1}, {"up_to": 5000000, "percent": 0.8}, {"percent": 0.5}]"#)
            .unwrap_or_default()
    });
    let mut left = amount;
    let mut floor = Decimal::ZERO;
    let mut commission = Decimal::ZERO;
    for t in &tiers {
        let percent = decimal_of(&t["percent"]).unwrap_or_default();
        let band = match decimal_of(&t["up_to"]) {
            Some(up_to) => (up_to - floor).max(Decimal::ZERO).min(left),
            None => left,
        };
        commission += band * percent / Decimal::ONE_HUNDRED;
        left -= band;
        floor = decimal_of(&t["up_to"]).unwrap_or(floor);
        if left.is_zero() {
            break;
        }
    }
    commission
}

/// A product sale: the sold amounts are the bill (what the client invested), the advisor
/// (role `advisor` or `staff`) earns the tiered commission — capped so that with
/// `attributes.commission_paid_in_period` it stays within `period_cap` (default 50,000) —
/// minus `attributes.clawback` (commission taken back after an early redemption, never below
/// zero), and the firm (role `firm` or `hq`) keeps the rest.
pub fn settle_bill(request: &SettleRequest) -> Result<Settlement, PluginError> {
    let currency = &request.currency;
    let mut lines = Vec::new();
    let mut total = Decimal::ZERO;
    for line in &request.lines {
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
    let attributes: serde_json::Value =
        serde_json::from_str(&request.attributes).unwrap_or_default();
    let role = |r: &str| request.participants.iter().find(|p| p.role == r);
    let (Some(firm), Some(advisor)) = (
        role("firm").or_else(|| role("hq")),
        role("advisor").or_else(|| role("staff")),
    ) else {
        return Err(PluginError::new(
            "missing-participant",
            "a sale needs a `firm` (or `hq`) and an `advisor` participant",
        ));
    };
    let mut notes = Vec::new();
    let earned = decimal("amount", &money(tiered_commission(total), currency).amount)?;
    let cap = params::get::<serde_json::Value>("period_cap")
        .and_then(|v| decimal_of(&v))
        .unwrap_or(Decimal::new(50_000, 0));
    let paid = decimal_of(&attributes["commission_paid_in_period"]).unwrap_or_default();
    let room = (cap - paid).max(Decimal::ZERO);
    let mut commission = earned.min(room);
    if commission < earned {
        notes.push(format!("compliance cap: commission {earned} limited to {commission} ({paid} of {cap} already paid this period)"));
    }
    if !attributes["clawback"].is_null() {
        let clawback = decimal_of(&attributes["clawback"])
            .filter(|c| !c.is_sign_negative())
            .ok_or_else(|| {
                PluginError::new("bad-clawback", "attributes.clawback is a positive amount")
            })?;
        let taken = clawback.min(commission);
        commission -= taken;
        notes.push(format!(
            "clawback of {clawback} after an early redemption: {taken} taken from this commission"
        ));
    }
    let splits = vec![
        Split {
            participant_id: firm.id.clone(),
            amount: money(total - commission, currency),
            reason: "firm".into(),
        },
        Split {
            participant_id: advisor.id.clone(),
            amount: money(commission, currency),
            reason: "advisor commission (tiered)".into(),
        },
    ];
    Ok(Settlement {
        lines,
        total: money(total, currency),
        splits,
        notes,
    })
}

shoal_sdk::register_module!(Finance);

#[cfg(test)]
mod tests {
    use shoal_sdk::{BillLine, LineKind, Money, Participant};

    use super::*;

    fn sale(amount: &str, attributes: &str) -> SettleRequest {
        SettleRequest {
            bill_id: "F-1".into(),
            currency: "CNY".into(),
            region: "深圳".into(),
            lines: vec![BillLine {
                code: "FUND-A".into(),
                description: "稳健理财A".into(),
                kind: LineKind::Service,
                quantity: "1".into(),
                unit_price: Money {
                    amount: amount.into(),
                    currency: "CNY".into(),
                },
            }],
            participants: vec![
                Participant {
                    id: "firm".into(),
                    role: "firm".into(),
                    parent: None,
                },
                Participant {
                    id: "adv-liu".into(),
                    role: "advisor".into(),
                    parent: Some("firm".into()),
                },
            ],
            attributes: attributes.into(),
        }
    }

    #[test]
    fn commission_is_marginal_by_tier() {
        params::set_for_tests(serde_json::json!({}));
        // 1% of 1,000,000 + 0.8% of 1,000,000
        assert_eq!(
            tiered_commission(Decimal::new(2_000_000, 0))
                .normalize()
                .to_string(),
            "18000"
        );
        let s = settle_bill(&sale("2000000.00", "{}")).unwrap();
        assert_eq!(s.splits[1].amount.amount, "18000.00");
        assert_eq!(s.splits[0].amount.amount, "1982000.00");
    }

    #[test]
    fn the_period_cap_and_clawbacks_limit_the_commission() {
        params::set_for_tests(serde_json::json!({ "period_cap": 50000 }));
        let s = settle_bill(&sale(
            "2000000.00",
            r#"{"commission_paid_in_period": 40000}"#,
        ))
        .unwrap();
        assert_eq!(s.splits[1].amount.amount, "10000.00");
        assert!(s.notes[0].starts_with("compliance cap"));
        let s = settle_bill(&sale("100000.00", r#"{"clawback": "300"}"#)).unwrap();
        assert_eq!(s.splits[1].amount.amount, "700.00");
        let s = settle_bill(&sale("10000.00", r#"{"clawback": 5000}"#)).unwrap();
        assert_eq!(s.splits[1].amount.amount, "0.00", "never below zero");
    }

    #[test]
    fn templates_are_complete() {
        assert_eq!(Finance::tag_templates().len(), 6);
        assert_eq!(
            Finance::sop_templates()[1].trigger.event_name.as_deref(),
            Some("maturity_date:-14")
        );
    }
}
