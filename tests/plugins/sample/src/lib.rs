//! A small but complete module: one tag template, one SOP, a tiered settlement with an
//! exact revenue split, and a tag evaluated in code. Used by the host's tests and by the
//! benchmark that compares it with the same rule compiled natively.

use shoal_sdk::{
    Capability, CustomerProfile, Decimal, Industry, LineKind, Module, PluginError, PluginInfo,
    SettleRequest, SettledLine, Settlement, SopAction, SopTemplate, Split, TagDecision,
    TagTemplate, TaskAction, decimal, log, money, params, split_exactly,
};

pub struct Sample;

/// The version this build reports: 2.0.0 with the `v2` feature (the upgrade test's "B").
const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else {
    env!("CARGO_PKG_VERSION")
};

/// What tier-1 cities pay by default, in percent: 110, or 120 in version B.
const TIER_1_PERCENT: i64 = if cfg!(feature = "v2") { 120 } else { 110 };

impl Module for Sample {
    fn describe() -> PluginInfo {
        PluginInfo::new("sample", "Sample module", VERSION, Industry::Other)
            .description("Reference module for Shoal's own tests")
            .capabilities(&[
                Capability::TagTemplates,
                Capability::SopTemplates,
                Capability::Settlement,
                Capability::EvaluateTags,
            ])
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![
            TagTemplate::new("repeat-buyer", "Repeat buyer")
                .description("Ordered at least N times in 90 days")
                .rule("count(order, 90d) >= ${orders}")
                .param("orders", "orders in 90 days", "3"),
        ]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        vec![
            SopTemplate::new("welcome", "Welcome", "custom", Some("signup"))
                .exit_on("order")
                .step("tag", 0, SopAction::AddTag("new".into()))
                .step(
                    "call",
                    24 * 3600,
                    SopAction::CreateTask(TaskAction {
                        title: "Call the new customer".into(),
                        assignee: "owner".into(),
                        due_in_seconds: 8 * 3600,
                    }),
                ),
        ]
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        log::info(&format!(
            "settling {} lines of bill {}",
            request.lines.len(),
            request.bill_id
        ));
        settle_bill(&request)
    }

    fn evaluate_tags(profile: CustomerProfile) -> Result<Vec<TagDecision>, PluginError> {
        let threshold: Decimal = params::get("big_spender").unwrap_or(Decimal::new(1000, 0));
        let mut spent = Decimal::ZERO;
        for stat in profile.stats.iter().filter(|s| s.event_type == "order") {
            spent += decimal("amount-total", &stat.amount_total)?;
        }
        Ok(vec![TagDecision {
            tag: "big-spender".into(),
            apply: spent >= threshold,
        }])
    }
}

/// The settlement rule: labour and parts are priced by the region's tier — `region_tiers`
/// (region → tier, set through the host's API) or else the `tier1_cities` / `tier3_cities`
/// lists — adjusted by `tier_adjustments` (tier → `{percent}` or `{amount}` per unit; by
/// default tier-1 +10%, tier-2 flat, tier-3 −5%); other lines at their given price. The total
/// is split by role weights (`split_weights`), exactly.
pub fn settle_bill(request: &SettleRequest) -> Result<Settlement, PluginError> {
    let tier = region_tier(&request.region);
    let adjustments: std::collections::BTreeMap<String, Adjustment> =
        params::get("tier_adjustments").unwrap_or_default();
    let (factor, fixed) = match adjustments.get(&tier) {
        Some(Adjustment {
            percent: Some(p), ..
        }) => (Decimal::ONE + *p / Decimal::ONE_HUNDRED, Decimal::ZERO),
        Some(Adjustment {
            amount: Some(a), ..
        }) => (Decimal::ONE, *a),
        _ => match tier.as_str() {
            "tier-1" => (Decimal::new(TIER_1_PERCENT, 2), Decimal::ZERO),
            "tier-3" => (Decimal::new(95, 2), Decimal::ZERO),
            _ => (Decimal::ONE, Decimal::ZERO),
        },
    };
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut total = Decimal::ZERO;
    for (i, line) in request.lines.iter().enumerate() {
        if line.unit_price.currency != request.currency {
            return Err(PluginError::new(
                "currency-mismatch",
                &format!(
                    "line {i} is priced in {}, the bill in {}",
                    line.unit_price.currency, request.currency
                ),
            ));
        }
        let quantity = decimal("quantity", &line.quantity)?;
        let list = decimal("unit-price", &line.unit_price.amount)?;
        let tiered = matches!(line.kind, LineKind::Labour | LineKind::Part);
        let unit = if tiered { list * factor + fixed } else { list };
        let amount = money(unit * quantity, &request.currency);
        total += decimal("amount", &amount.amount)?;
        lines.push(SettledLine {
            code: line.code.clone(),
            description: line.description.clone(),
            kind: line.kind,
            quantity: line.quantity.clone(),
            unit_price: money(unit, &request.currency),
            amount,
            note: (tiered && (factor != Decimal::ONE || !fixed.is_zero()))
                .then(|| adjustment_note(&tier, factor, fixed)),
        });
    }
    let weights: serde_weights::Weights = params::get("split_weights").unwrap_or_default();
    // a participant's own agreement (`{"weight": n}`) wins over the weight of its role
    let attributes: serde_json::Value =
        serde_json::from_str(&request.attributes).unwrap_or_default();
    let shares: Vec<Decimal> = request
        .participants
        .iter()
        .map(|p| {
            attributes["agreements"][&p.id]["weight"]
                .as_f64()
                .map(|_| attributes["agreements"][&p.id]["weight"].to_string())
                .or_else(|| {
                    attributes["agreements"][&p.id]["weight"]
                        .as_str()
                        .map(str::to_owned)
                })
                .and_then(|w| w.parse::<Decimal>().ok())
                .unwrap_or_else(|| weights.of(&p.role))
        })
        .collect();
    let amounts = split_exactly(total, &shares, 2);
    let splits = request
        .participants
        .iter()
        .zip(amounts)
        .map(|(p, amount)| Split {
            participant_id: p.id.clone(),
            amount: money(amount, &request.currency),
            reason: format!("{} share", p.role),
        })
        .collect();
    Ok(Settlement {
        lines,
        total: money(total, &request.currency),
        splits,
        notes: vec![format!("region {} is {tier}", request.region)],
    })
}

fn region_tier(region: &str) -> String {
    let explicit: std::collections::BTreeMap<String, String> =
        params::get("region_tiers").unwrap_or_default();
    if let Some(tier) = explicit.get(region) {
        return tier.clone();
    }
    let listed = |name: &str| {
        params::get::<Vec<String>>(name)
            .unwrap_or_default()
            .iter()
            .any(|c| c == region)
    };
    if listed("tier1_cities") {
        "tier-1".into()
    } else if listed("tier3_cities") {
        "tier-3".into()
    } else {
        "tier-2".into()
    }
}

fn adjustment_note(tier: &str, factor: Decimal, fixed: Decimal) -> String {
    if fixed.is_zero() {
        format!("{tier}: regional factor {factor}")
    } else {
        format!("{tier}: +{fixed} per unit")
    }
}

/// A tier's adjustment: a percentage or a fixed amount per unit.
#[derive(Debug, Default, serde::Deserialize)]
struct Adjustment {
    percent: Option<Decimal>,
    amount: Option<Decimal>,
}

mod serde_weights {
    use std::collections::BTreeMap;

    use shoal_sdk::Decimal;

    /// Role → weight; roles without a weight get 1.
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(transparent)]
    pub struct Weights(BTreeMap<String, Decimal>);

    impl Weights {
        pub fn of(&self, role: &str) -> Decimal {
            self.0.get(role).copied().unwrap_or(Decimal::ONE)
        }
    }
}

shoal_sdk::register_module!(Sample);

#[cfg(test)]
mod tests {
    use shoal_sdk::{BillLine, Money, Participant};

    use super::*;

    fn line(kind: LineKind, quantity: &str, price: &str) -> BillLine {
        BillLine {
            code: "X".into(),
            description: "x".into(),
            kind,
            quantity: quantity.into(),
            unit_price: Money {
                amount: price.into(),
                currency: "CNY".into(),
            },
        }
    }

    #[test]
    fn tier_one_cities_pay_ten_percent_more_on_labour_and_parts() {
        params::set_for_tests(serde_json::json!({
            "tier1_cities": ["上海"], "split_weights": { "hq": 1, "store": 2 }
        }));
        let request = SettleRequest {
            bill_id: "B1".into(),
            currency: "CNY".into(),
            region: "上海".into(),
            lines: vec![
                line(LineKind::Labour, "2", "100"),
                line(LineKind::Transport, "1", "30"),
            ],
            participants: vec![
                Participant {
                    id: "hq".into(),
                    role: "hq".into(),
                    parent: None,
                },
                Participant {
                    id: "s1".into(),
                    role: "store".into(),
                    parent: Some("hq".into()),
                },
            ],
            attributes: "{}".into(),
        };
        let s = settle_bill(&request).unwrap();
        assert_eq!(s.total.amount, "250.00");
        let splits: Vec<&str> = s.splits.iter().map(|s| s.amount.amount.as_str()).collect();
        assert_eq!(splits, ["83.33", "166.67"]);
    }
}
