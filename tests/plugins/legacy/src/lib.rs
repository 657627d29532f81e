//! A module built against the frozen `shoal:plugin@1.0.0` (the contract shoal-sdk 1.0
//! compiled in), so the tests can load a 1.0 build beside 1.1 modules: one tag template and
//! a settlement that bills each line at its price and gives the whole total to the first
//! participant, logging through the 1.0 host interface.

#![allow(unsafe_code)] // wit-bindgen's generated glue

wit_bindgen::generate!({ path: "../../../schema/wit/v1.0.0", world: "industry-module" });

use exports::shoal::plugin::module::Guest;
use shoal::plugin::{host, types::*};

struct Legacy;

/// `"12.50"` as hundredths (the test bills use at most two decimals).
fn cents(text: &str) -> Option<i64> {
    let (units, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<2}");
    (frac.len() == 2).then_some(())?;
    Some(units.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}

fn text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "legacy".into(),
            name: "Built with SDK 1.0".into(),
            version: "1.0.0".into(),
            industry: Industry::Other,
            description: "plugin ABI 1.0".into(),
            capabilities: vec![Capability::TagTemplates, Capability::Settlement],
        }
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![TagTemplate {
            id: "big-spender".into(),
            name: "big-spender".into(),
            description: "spent at least N in 90 days".into(),
            rule: "sum(order, 90d) >= ${amount}".into(),
            params: vec![TemplateParam {
                name: "amount".into(),
                description: "spent in 90 days".into(),
                default_value: "1000".into(),
            }],
        }]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        Vec::new()
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        let refuse = |code: &str, message: &str| PluginError {
            code: code.into(),
            message: message.into(),
        };
        let Some(first) = request.participants.first() else {
            return Err(refuse("no-participants", "give at least one participant"));
        };
        let mut lines = Vec::new();
        let mut total = 0;
        for line in &request.lines {
            let (Some(quantity), Some(price)) = (
                line.quantity.parse::<i64>().ok(),
                cents(&line.unit_price.amount),
            ) else {
                return Err(refuse("bad-line", &format!("line {}", line.code)));
            };
            total += quantity * price;
            lines.push(SettledLine {
                code: line.code.clone(),
                description: line.description.clone(),
                kind: line.kind,
                quantity: line.quantity.clone(),
                unit_price: line.unit_price.clone(),
                amount: Money {
                    amount: text(quantity * price),
                    currency: request.currency.clone(),
                },
                note: None,
            });
        }
        host::log(
            host::LogLevel::Info,
            &format!("settled {}", request.bill_id),
        );
        let total = Money {
            amount: text(total),
            currency: request.currency.clone(),
        };
        Ok(Settlement {
            lines,
            splits: vec![Split {
                participant_id: first.id.clone(),
                amount: total.clone(),
                reason: "all to the first participant".into(),
            }],
            total,
            notes: vec!["settled by a 1.0 module".into()],
        })
    }

    fn evaluate_tags(_: CustomerProfile) -> Result<Vec<TagDecision>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Legacy);
