//! Retail: the tags a retail CRM segments by (super users, dormant and churning customers,
//! swing and price-sensitive buyers, high value), the follow-ups that win sales back
//! (abandoned cart, replenishment, birthday, win-back), and franchise settlement (regional
//! price tiers, coupons, HQ / store / shopping-guide split). See README.md.

use shoal_sdk::{
    Capability, CustomerProfile, Decimal, Industry, LineKind, Module, PluginError, PluginInfo,
    SettleRequest, SettledLine, Settlement, SopAction, SopTemplate, Split, TagDecision,
    TagTemplate, TicketFieldKind, TicketTemplate, decimal, decimal_of, money, params,
    split_exactly, tiers,
};

pub struct Retail;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

impl Module for Retail {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "retail",
            "零售 Retail",
            env!("CARGO_PKG_VERSION"),
            Industry::Retail,
        )
        .description("Retail tags, follow-up SOPs and franchise settlement")
        .capabilities(&[
            Capability::TagTemplates,
            Capability::SopTemplates,
            Capability::Settlement,
            Capability::EvaluateTags,
            Capability::TicketTemplates,
        ])
    }

    fn tag_templates() -> Vec<TagTemplate> {
        vec![
            TagTemplate::new("super-user", "super-user")
                .description("超级用户: at least N repeat purchases (orders after the first)")
                .rule("count(order) > ${repeat_purchases}")
                .param("repeat_purchases", "repeat purchases", "5"),
            TagTemplate::new("dormant", "dormant")
                .description("沉睡客户: bought before, no order for N days")
                .rule("exists(order) and days_since(order) >= ${days}")
                .param("days", "days without an order", "90"),
            TagTemplate::new("churn-warning", "churn-warning")
                .description("流失预警: bought regularly (≥3 orders in 180 days), then nothing for N days, not yet dormant")
                .rule("count(order, 180d) >= 3 and days_since(order) >= ${days} and days_since(order) < ${dormant_days}")
                .param("days", "days of silence that break the rhythm", "30")
                .param("dormant_days", "from here on the customer counts as dormant", "90"),
            TagTemplate::new("swing", "swing")
                .description("摇摆客户: consulted at least N times in 30 days without ordering")
                .rule("count(consult, 30d) >= ${consults} and not exists(order, 30d)")
                .param("consults", "consultations in 30 days", "3"),
            TagTemplate::new("high-value", "high-value")
                .description("高价值: recent (ordered within 90 days), frequent (≥ N orders a year) and big spenders (≥ amount a year)")
                .rule("days_since(order) <= 90 and count(order, 365d) >= ${orders} and sum(order, 365d) >= ${amount}")
                .param("orders", "orders in the last year", "4")
                .param("amount", "spend in the last year", "3000"),
        ]
    }

    fn sop_templates() -> Vec<SopTemplate> {
        vec![
            SopTemplate::new("abandoned-cart", "Abandoned cart 购物车挽回", "custom", Some("cart_abandoned"))
                .description("30 minutes after a cart is abandoned a reminder, 24 hours later a coupon; an order ends it")
                .exit_on("order")
                .step("reminder", 30 * 60, SopAction::message("wecom", "{{customer.name}}，您的购物车还有商品等您结算哦"))
                .step("coupon", 24 * HOUR, SopAction::message("wecom", "{{customer.name}}，送您一张${coupon}优惠券，24小时内有效"))
                .param("coupon", "coupon offered after a day", "\"10元\""),
            SopTemplate::new("replenishment", "Replenishment 复购提醒", "order", Some("consumable"))
                .description("28 days after an order labelled `consumable`, a replenishment reminder; a new order ends it")
                .exit_on("order")
                .step("remind", 28 * DAY, SopAction::message("wecom", "{{customer.name}}，您上次购买的商品快用完了吧？点击即可一键复购"))
                .param("days", "documentation only: edit the wait step to change it", "28"),
            SopTemplate::new("birthday", "Birthday coupon 生日礼", "date", Some("birthday:0:annual"))
                .description("On the customer's birthday (attribute `birthday`, YYYY-MM-DD), a birthday coupon")
                .step("greet", 0, SopAction::message("wecom", "{{customer.name}}，生日快乐！送您一张${coupon}生日券"))
                .param("coupon", "the birthday coupon", "\"50元\""),
            SopTemplate::new("win-back", "Win-back 沉睡唤醒", "tag_added", Some("dormant"))
                .description("When a customer becomes dormant: a we-miss-you offer, 7 days later a task for the owner; an order ends it")
                .exit_on("order")
                .step("offer", 0, SopAction::message("wecom", "{{customer.name}}，好久不见！回店即享${discount}"))
                .step(
                    "call",
                    7 * DAY,
                    SopAction::task("沉睡客户回访: {{customer.name}}", "owner", 2 * DAY),
                )
                .param("discount", "the offer", "\"八折\""),
        ]
    }

    fn ticket_templates() -> Vec<TicketTemplate> {
        vec![
            TicketTemplate::new("after_sales", "售后/退货 After-sales and returns")
                .description(
                    "A return, a product question or a fault after purchase; goes to the technical team",
                )
                .field("order_no", "订单号", TicketFieldKind::Text, true)
                .field("product", "商品", TicketFieldKind::Text, false)
                .choice(
                    "issue",
                    "问题类型",
                    &["退货", "质量问题", "功能故障", "安装", "其他"],
                )
                .sla(Some(120), Some(240), Some(3 * 24 * 60))
                .routing("tech", &[], &["着急", "投诉"]),
            TicketTemplate::new("logistics_complaint", "物流投诉 Logistics complaint")
                .description("A late, damaged, lost or wrong parcel; goes to supply chain")
                .field("order_no", "订单号", TicketFieldKind::Text, true)
                .field("tracking_no", "运单号", TicketFieldKind::Text, false)
                .choice("issue", "问题类型", &["延迟", "破损", "丢件", "错发"])
                .sla(Some(120), None, Some(2 * 24 * 60))
                .routing("supply_chain", &[], &["投诉"]),
            TicketTemplate::new("repair", "维修 Repair")
                .description("A repair that consumes spare parts and settles as an itemised bill")
                .field("device", "设备", TicketFieldKind::Text, true)
                .field("serial_no", "序列号", TicketFieldKind::Text, false)
                .choice("warranty", "保修", &["在保", "过保"])
                .field("fault", "故障描述", TicketFieldKind::Text, false)
                .sla(Some(240), None, Some(2 * 24 * 60))
                .routing("tech", &[("维修", 2)], &[]),
        ]
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        settle_bill(&request)
    }

    fn evaluate_tags(profile: CustomerProfile) -> Result<Vec<TagDecision>, PluginError> {
        Ok(vec![TagDecision {
            tag: "price-sensitive".into(),
            apply: price_sensitive(&profile)?,
        }])
    }
}

/// 价格敏感: at least `price_sensitive_share` (default 0.5) of the orders of the last 90 days
/// used a coupon, with at least 2 orders.
pub fn price_sensitive(profile: &CustomerProfile) -> Result<bool, PluginError> {
    let count = |t: &str| {
        profile
            .stats
            .iter()
            .find(|s| s.event_type == t)
            .map_or(0, |s| s.count_90d)
    };
    let (orders, coupons) = (count("order"), count("coupon_used"));
    let share = params::get::<serde_json::Value>("price_sensitive_share")
        .and_then(|v| decimal_of(&v))
        .unwrap_or(Decimal::new(5, 1));
    Ok(orders >= 2 && Decimal::from(coupons) >= share * Decimal::from(orders))
}

/// Who takes what in a franchise sale (`split` parameter, percentages of the total):
/// HQ a fixed share (default 3), the shopping guide a commission (default 5), the store the
/// rest.
struct SplitRule {
    hq: Decimal,
    guide: Decimal,
}

impl SplitRule {
    fn from_params() -> SplitRule {
        let v: serde_json::Value = params::get("split").unwrap_or_default();
        SplitRule {
            hq: decimal_of(&v["hq"]).unwrap_or(Decimal::new(3, 0)),
            guide: decimal_of(&v["guide"]).unwrap_or(Decimal::new(5, 0)),
        }
    }
}

/// Prices goods and services by the region's tier, takes off a coupon (`attributes.coupon`,
/// an amount), and splits the total: HQ `split.hq`% (default 3), the shopping guide
/// `split.guide`% (default 5), the store the rest — to the cent, adding up exactly.
pub fn settle_bill(request: &SettleRequest) -> Result<Settlement, PluginError> {
    let currency = &request.currency;
    let tier = tiers::region_tier(&request.region);
    let percent = tiers::percent(&tier);
    let factor = Decimal::ONE + percent / Decimal::ONE_HUNDRED;
    let mut lines = Vec::new();
    let mut total = Decimal::ZERO;
    for (i, line) in request.lines.iter().enumerate() {
        if &line.unit_price.currency != currency {
            return Err(PluginError::new(
                "currency-mismatch",
                &format!(
                    "line {i} is priced in {}, the bill in {currency}",
                    line.unit_price.currency
                ),
            ));
        }
        let quantity = decimal("quantity", &line.quantity)?;
        let list = decimal("unit-price", &line.unit_price.amount)?;
        let tiered = !matches!(line.kind, LineKind::Adjustment | LineKind::Transport);
        let unit = if tiered { list * factor } else { list };
        let amount = money(unit * quantity, currency);
        total += decimal("amount", &amount.amount)?;
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
    let attributes: serde_json::Value =
        serde_json::from_str(&request.attributes).unwrap_or_default();
    if let Some(coupon) = attributes.get("coupon").and_then(|c| {
        c.as_str()
            .map(str::to_owned)
            .or_else(|| c.as_f64().map(|f| f.to_string()))
    }) {
        let value = decimal("attributes.coupon", &coupon)?;
        if value.is_sign_negative() {
            return Err(PluginError::new(
                "bad-coupon",
                "a coupon is a positive amount",
            ));
        }
        // a coupon never makes a bill negative
        let off = value.min(total);
        total -= off;
        lines.push(SettledLine {
            code: "COUPON".into(),
            description: "优惠券 coupon".into(),
            kind: LineKind::Adjustment,
            quantity: "1".into(),
            unit_price: money(-off, currency),
            amount: money(-off, currency),
            note: (off < value).then(|| format!("coupon {value} capped at the bill's {off}")),
        });
    }
    let rule = SplitRule::from_params();
    let by_role = |role: &str| request.participants.iter().find(|p| p.role == role);
    let (Some(hq), Some(store)) = (by_role("hq"), by_role("store")) else {
        return Err(PluginError::new(
            "missing-participant",
            "a franchise bill needs an `hq` and a `store` participant",
        ));
    };
    let guide = by_role("staff").or_else(|| by_role("guide"));
    let guide_percent = if guide.is_some() {
        rule.guide
    } else {
        Decimal::ZERO
    };
    let store_percent = Decimal::ONE_HUNDRED - rule.hq - guide_percent;
    if store_percent.is_sign_negative() {
        return Err(PluginError::new(
            "bad-split",
            "hq and guide shares exceed 100%",
        ));
    }
    let mut weights = vec![rule.hq, store_percent];
    if guide.is_some() {
        weights.push(guide_percent);
    }
    let amounts = split_exactly(total, &weights, 2);
    let mut splits = vec![
        Split {
            participant_id: hq.id.clone(),
            amount: money(amounts[0], currency),
            reason: format!("HQ franchise fee {}%", rule.hq),
        },
        Split {
            participant_id: store.id.clone(),
            amount: money(amounts[1], currency),
            reason: format!("store {store_percent}%"),
        },
    ];
    if let Some(g) = guide {
        splits.push(Split {
            participant_id: g.id.clone(),
            amount: money(amounts[2], currency),
            reason: format!("shopping-guide commission {guide_percent}%"),
        });
    }
    Ok(Settlement {
        lines,
        total: money(total, currency),
        splits,
        notes: vec![format!(
            "region {} is {tier} ({percent:+}%)",
            request.region
        )],
    })
}

shoal_sdk::register_module!(Retail);

#[cfg(test)]
mod tests {
    use shoal_sdk::{BillLine, EventStat, Money, Participant};

    use super::*;

    fn line(code: &str, kind: LineKind, qty: &str, price: &str) -> BillLine {
        BillLine {
            code: code.into(),
            description: code.into(),
            kind,
            quantity: qty.into(),
            unit_price: Money {
                amount: price.into(),
                currency: "CNY".into(),
            },
        }
    }

    fn request(region: &str, attributes: &str, guide: bool) -> SettleRequest {
        let mut participants = vec![
            Participant {
                id: "hq".into(),
                role: "hq".into(),
                parent: None,
            },
            Participant {
                id: "store-sh-01".into(),
                role: "store".into(),
                parent: Some("hq".into()),
            },
        ];
        if guide {
            participants.push(Participant {
                id: "guide-li".into(),
                role: "staff".into(),
                parent: Some("store-sh-01".into()),
            });
        }
        SettleRequest {
            bill_id: "B-1".into(),
            currency: "CNY".into(),
            region: region.into(),
            lines: vec![
                line("SKU-CREAM", LineKind::Part, "2", "199.00"),
                line("SHIP", LineKind::Transport, "1", "12.00"),
            ],
            participants,
            attributes: attributes.into(),
        }
    }

    fn amounts(s: &Settlement) -> Vec<&str> {
        s.splits.iter().map(|s| s.amount.amount.as_str()).collect()
    }

    #[test]
    fn tier_one_cities_pay_ten_percent_more_and_the_split_adds_up() {
        params::set_for_tests(
            serde_json::json!({"region_tiers": {"上海": "tier-1", "洛阳": "tier-3"}}),
        );
        let s = settle_bill(&request("上海", "{}", true)).unwrap();
        assert_eq!(s.lines[0].unit_price.amount, "218.90");
        assert_eq!(
            s.lines[1].unit_price.amount, "12.00",
            "shipping is not tiered"
        );
        assert_eq!(s.total.amount, "449.80");
        // HQ 3%, guide 5%, store the rest, to the cent
        assert_eq!(amounts(&s), ["13.49", "413.82", "22.49"]);
        let sum: Decimal = s
            .splits
            .iter()
            .map(|x| x.amount.amount.parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(sum.to_string(), s.total.amount);
        let s = settle_bill(&request("洛阳", "{}", false)).unwrap();
        assert_eq!(s.lines[0].unit_price.amount, "189.05");
        assert_eq!(s.splits.len(), 2, "no guide, no commission");
    }

    #[test]
    fn coupons_come_off_the_total_but_never_below_zero() {
        params::set_for_tests(serde_json::json!({}));
        let s = settle_bill(&request("北京", r#"{"coupon": 20}"#, false)).unwrap();
        assert_eq!(s.total.amount, "390.00");
        assert_eq!(s.lines.last().unwrap().amount.amount, "-20.00");
        let s = settle_bill(&request("北京", r#"{"coupon": "1000"}"#, false)).unwrap();
        assert_eq!(s.total.amount, "0.00");
        assert!(
            s.lines
                .last()
                .unwrap()
                .note
                .as_deref()
                .unwrap()
                .contains("capped")
        );
        let e = settle_bill(&request("北京", r#"{"coupon": "-5"}"#, false)).unwrap_err();
        assert_eq!(e.code, "bad-coupon");
    }

    #[test]
    fn a_bill_without_hq_or_store_is_refused() {
        params::set_for_tests(serde_json::json!({}));
        let mut r = request("北京", "{}", false);
        r.participants.remove(0);
        assert_eq!(settle_bill(&r).unwrap_err().code, "missing-participant");
    }

    #[test]
    fn price_sensitive_customers_use_coupons_on_half_their_orders() {
        params::set_for_tests(serde_json::json!({}));
        let stat = |t: &str, n: u32| EventStat {
            event_type: t.into(),
            count_30d: n,
            count_90d: n,
            count_total: n,
            seconds_since_last: Some(3600),
            amount_total: "0".into(),
        };
        let profile = |orders, coupons| CustomerProfile {
            id: "c".into(),
            lifecycle_stage: "customer".into(),
            attributes: "{}".into(),
            tags: vec![],
            stats: vec![stat("order", orders), stat("coupon_used", coupons)],
        };
        assert!(price_sensitive(&profile(4, 2)).unwrap());
        assert!(!price_sensitive(&profile(4, 1)).unwrap());
        assert!(
            !price_sensitive(&profile(1, 1)).unwrap(),
            "one order says nothing"
        );
    }

    #[test]
    fn templates_are_complete() {
        assert_eq!(Retail::tag_templates().len(), 5);
        let sops = Retail::sop_templates();
        let ids: Vec<&str> = sops.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["abandoned-cart", "replenishment", "birthday", "win-back"]
        );
        assert_eq!(sops[0].steps[0].delay_seconds, 1800);
    }
}
