use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::json;

use super::{
    ast::{Cond, Num, Op},
    eval::{EventFact, Facts, MICROS_PER_DAY, eval},
    parse,
};
use shoal_base::kinds::EventType;

fn tags(name: &str) -> Option<String> {
    (name == "VIP").then(|| "tag-vip".to_owned())
}

fn ok(text: &str) -> Cond {
    parse(text, &tags, &[])
        .unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
        .cond
}

fn err(text: &str) -> String {
    parse(text, &tags, &[]).expect_err(text).to_string()
}

#[test]
fn the_documented_examples_parse() {
    for rule in [
        r#"count(order, 30d) >= 3 and days_since(order) > 30 and attr.city in ["北京","上海"]"#,
        "count(consult, 30d) >= 3 and not exists(order, 30d)",
        "sum(order, 90d) >= 1999.99 or has_tag(\"VIP\")",
        "stage in [customer, loyal] and channel != web",
        "attr.vip = true and attr.age >= 30 and days_since_created() < 7",
        "count(\"trial_link_opened\", 7d) > 0 and not exists(order)",
        "(count(order) >= 5)",
    ] {
        ok(rule);
    }
}

#[test]
fn literals_are_exact_integers() {
    assert_eq!(
        ok("sum(order, 30d) >= 19.99"),
        Cond::Compare(
            Num::SumUnits(
                super::ast::EventFilter {
                    event_type: EventType::Order,
                    name: None
                },
                Some(30 * 86_400)
            ),
            Op::Ge,
            Num::Lit(199_900)
        )
    );
    assert!(err("count(order) > 2.5").contains("whole numbers"));
    assert!(err("sum(order) > 0.00001").contains("decimal places"));
}

#[test]
fn errors_say_where_and_what() {
    assert_eq!(
        err("count(ordr) > 1"),
        "1:7: unknown event type `ordr` (order, refund, page_view, consult, message_in, message_out, visit, coupon_used, or a custom event name in quotes)"
    );
    assert!(err("cnt(order) > 1").starts_with("1:1: unknown function `cnt`"));
    assert!(err("city = \"北京\"").starts_with("1:1: unknown field `city`"));
    assert_eq!(err("has_tag(\"VIPP\")"), "1:9: unknown tag \"VIPP\"");
    assert!(err("stage = sleepy").starts_with("1:9: unknown lifecycle stage `sleepy`"));
    assert!(
        err("count(order) >= 3 and\n  days_since(order) >").starts_with("2:22: expected a number")
    );
    assert!(err("count(order)").contains("expected a comparison"));
    assert!(err("count(order) > 1 count(order) > 2").contains("expected `and`, `or`"));
    assert!(err("attr.city = \"北京").contains("not closed"));
    assert!(err("sum(order) > count(order)").contains("compare sum"));
    assert!(err(&"(".repeat(100)).contains("deeper than"));
}

#[test]
fn a_rule_cannot_read_an_attribute_the_tenant_seals() {
    let sealed = ["id_number".to_owned()];
    let e = parse(
        "attr.city = \"北京\" or\n attr.id_number = \"1\"",
        &tags,
        &sealed,
    )
    .expect_err("a sealed attribute is refused")
    .to_string();
    assert!(
        e.starts_with("2:2: attr.id_number is sealed at rest"),
        "{e}"
    );
    assert!(parse("attr.id_numbers = \"1\"", &tags, &sealed).is_ok());
}

struct Fixture {
    attrs: serde_json::Map<String, serde_json::Value>,
    tags: HashSet<String>,
    events: Vec<EventFact>,
}

fn fixture() -> Fixture {
    let day = MICROS_PER_DAY;
    let ev = |t, days_ago: i64, amount: Option<i64>| EventFact {
        event_type: t,
        name: None,
        occurred_at: 100 * day - days_ago * day,
        amount_units: amount,
    };
    Fixture {
        attrs: json!({ "city": "北京", "age": 31, "vip": true, "nothing": null })
            .as_object()
            .unwrap()
            .clone(),
        tags: HashSet::from(["tag-vip".to_owned()]),
        events: vec![
            ev(EventType::Order, 40, Some(1_000_000)),
            ev(EventType::Order, 10, Some(500_000)),
            ev(EventType::Consult, 2, None),
        ],
    }
}

fn check(rule: &str, expected: Option<bool>) {
    let f = fixture();
    let facts = Facts {
        now: 100 * MICROS_PER_DAY,
        created_at: 0,
        stage: "customer",
        channel: "wecom",
        attributes: &f.attrs,
        tags: &f.tags,
        events: &f.events,
    };
    assert_eq!(eval(&ok(rule), &facts), expected, "{rule}");
}

#[test]
fn rules_evaluate_with_three_valued_logic() {
    check("count(order) = 2 and count(order, 30d) = 1", Some(true));
    check("sum(order) = 150 and sum(order, 30d) < 100", Some(true));
    check(
        "days_since(order) = 10 and days_since(consult) = 2",
        Some(true),
    );
    check("days_since(refund) > 1", None); // never refunded: unknown
    check("not days_since(refund) > 1", None);
    check("days_since(refund) > 1 or has_tag(\"VIP\")", Some(true));
    check("days_since(refund) > 1 and stage = lead", Some(false));
    check(
        "attr.city in [\"北京\", \"上海\"] and attr.age >= 30 and attr.vip = true",
        Some(true),
    );
    check("attr.missing = \"x\"", None);
    check("attr.nothing = \"x\"", Some(false)); // present but JSON null
    check("attr.age = \"31\"", Some(false)); // a number is not a string
    check("attr.city != \"上海\"", Some(true));
    check(
        "channel in [wecom, shop] and stage not in [lead]",
        Some(true),
    );
    check("days_since_created() = 100", Some(true));
    check("exists(visit) or not exists(order, 5d)", Some(true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Nothing panics, whatever the text.
    #[test]
    fn the_parser_never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = parse(&text, &tags, &[]);
    }

    /// Nor on text made of the language's own pieces in random order.
    #[test]
    fn the_parser_never_panics_on_near_rules(pieces in prop::collection::vec(prop::sample::select(vec![
        "count(", "sum(", "days_since(", "exists(", "has_tag(", "attr.", "city", "order", "\"VIP\"", "30d", ",", ")", "(",
        "[", "]", ">=", "=", "!", "and", "or", "not", "in", "3", "-1", "1.5", "\"", "stage", "channel", "true", "\n",
    ]), 0..40)) {
        let text = pieces.join(" ");
        let _ = parse(&text, &tags, &[]);
        let _ = parse(&pieces.concat(), &tags, &[]);
    }
}
