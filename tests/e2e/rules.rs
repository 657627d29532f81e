//! The two evaluators of the rule language agree: for every generated customer, the SQL
//! compiled from a rule selects it exactly when the in-memory evaluator says the rule holds.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::json;
use shoal_base::storage::{sql::Sql, time};
use shoal_crm::{
    customers,
    events::{self, Event, EventType, Money},
};
use shoal_rules::{
    self as rules,
    eval::{EventFact, Facts},
};
use shoal_server::demo;

use crate::harness::TestServer;

const RULES: &[&str] = &[
    "count(order) >= 3",
    "count(order, 30d) >= 1",
    "count(consult, 30d) >= 3 and not exists(order, 30d)",
    "sum(order) >= 3000",
    "sum(order, 90d) < 500.50",
    "sum(refund) > 0",
    "days_since(order) > 30",
    "days_since(order) <= 7",
    "not days_since(visit) < 60",
    "days_since(refund) > 1 or count(order) = 0",
    "days_since_created() > 200",
    "exists(coupon_used)",
    "exists(page_view, 14d) and not exists(order, 14d)",
    "count(\"trial_link_opened\") > 0",
    "count(\"trial_link_opened\", 30d) >= 1 and not exists(order)",
    "has_tag(\"VIP\")",
    "not has_tag(\"VIP\") and stage = customer",
    "stage in [customer, loyal]",
    "stage not in [lead, churned]",
    "channel = wecom",
    "channel != shop",
    "attr.city = \"北京\"",
    "attr.city in [\"上海\", \"广州\", \"深圳\"]",
    "attr.city not in [\"北京\"]",
    "attr.city != \"成都\"",
    "attr.vip = true",
    "attr.vip != true",
    "attr.birth_year >= 1990",
    "attr.birth_year < 1975.5",
    "attr.member_level = \"金卡\" or attr.member_level = \"钻石\"",
    "attr.note = \"x\"",
    "not attr.city = \"北京\" or days_since(order) > 90",
    "(count(order, 90d) >= 2 or sum(order, 90d) >= 1000) and days_since(order) < 45",
    "count(order) >= count(refund)",
    "sum(order, 30d) >= sum(refund, 30d)",
    "true and not false",
];

fn tag_lookup(name: &str) -> Option<String> {
    (name == "VIP").then(|| "tag-vip".to_owned())
}

/// Deterministic random compositions of the rules above.
fn composed() -> Vec<String> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    (0..30)
        .map(|_| {
            let (a, b) = (RULES[next(RULES.len())], RULES[next(RULES.len())]);
            match next(4) {
                0 => format!("({a}) and ({b})"),
                1 => format!("({a}) or ({b})"),
                2 => format!("not (({a}) or not ({b}))"),
                _ => format!("not ({a}) and not ({b})"),
            }
        })
        .collect()
}

async fn sql_and_memory_evaluators_agree(s: &TestServer) {
    let db = s.db();
    let (mut generated, mut evs) = demo::generate(160, 0, 0xfeed, true);
    // attribute shapes the rules must cope with: missing, JSON null, wrong type
    for (i, (c, _)) in generated.iter_mut().enumerate() {
        match i % 7 {
            0 => {
                c.attributes.remove("city");
            }
            1 => {
                c.attributes.insert("city".into(), json!(null));
            }
            2 => {
                c.attributes.insert("birth_year".into(), json!("1990"));
            }
            3 => {
                c.attributes.insert("vip".into(), json!("yes"));
            }
            _ => {}
        }
    }
    let now = time::now();
    for (i, (c, _)) in generated.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        for (j, name) in ["trial_link_opened", "trial_signup"].iter().enumerate() {
            evs.push(Event {
                id: uuid::Uuid::now_v7().to_string(),
                customer_id: c.id.clone(),
                event_type: EventType::Custom,
                name: Some((*name).into()),
                occurred_at: now - chrono::Duration::days((i * 7 + j * 20) as i64 % 60),
                recorded_at: now,
                channel: None,
                amount: None,
                payload: json!({}),
                idempotency_key: None,
            });
        }
        if i % 2 == 0 {
            evs.push(Event {
                id: uuid::Uuid::now_v7().to_string(),
                customer_id: c.id.clone(),
                event_type: EventType::Refund,
                name: None,
                occurred_at: now - chrono::Duration::days(3),
                recorded_at: now,
                channel: None,
                amount: Some(Money {
                    amount: "12.34".parse().unwrap(),
                    currency: "CNY".into(),
                }),
                payload: json!({}),
                idempotency_key: None,
            });
        }
    }
    let vip: HashSet<String> = generated
        .iter()
        .step_by(4)
        .map(|(c, _)| c.id.clone())
        .collect();
    {
        let mut tx = db.pool.begin().await.unwrap();
        customers::insert_many(&mut tx, db, "alpha", &generated)
            .await
            .unwrap();
        events::insert_many(&mut tx, "alpha", &evs).await.unwrap();
        for id in &vip {
            sqlx::query("INSERT INTO customer_tags (tenant_id, customer_id, tag_id, source, applied_at) VALUES ('alpha', $1, 'tag-vip', 'manual', 0)")
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let mut by_customer: HashMap<&str, Vec<EventFact>> = HashMap::new();
    for e in &evs {
        by_customer
            .entry(e.customer_id.as_str())
            .or_default()
            .push(EventFact {
                event_type: e.event_type,
                name: e.name.clone(),
                occurred_at: time::to_micros(e.occurred_at),
                amount_units: e
                    .amount
                    .as_ref()
                    .map(|m| shoal_base::storage::money::to_units(m.amount).unwrap()),
            });
    }
    let now_us = time::to_micros(now);
    let no_tags = HashSet::new();
    let vip_tag: HashSet<String> = HashSet::from(["tag-vip".to_owned()]);
    let mut checked = 0;
    let mut nonempty = 0;
    for text in RULES.iter().map(|r| r.to_string()).chain(composed()) {
        let rule = rules::parse(&text, &tag_lookup, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected: BTreeSet<String> = generated
            .iter()
            .filter(|(c, _)| {
                let facts = Facts {
                    now: now_us,
                    created_at: time::to_micros(c.created_at),
                    stage: c.lifecycle_stage.as_str(),
                    channel: c.source_channel.as_str(),
                    attributes: &c.attributes,
                    tags: if vip.contains(&c.id) {
                        &vip_tag
                    } else {
                        &no_tags
                    },
                    events: by_customer
                        .get(c.id.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                };
                rules::eval::holds(&rule.cond, &facts)
            })
            .map(|(c, _)| c.id.clone())
            .collect();
        let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
        let t = sql.arg("alpha");
        sql.push(&t).push(" AND c.deleted_at IS NULL AND ");
        rules::sql::push_cond(&mut sql, db.backend, "alpha", &rule.cond, now_us);
        let rows = sql
            .query()
            .fetch_all(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}\n{}", sql.text()));
        let actual: BTreeSet<String> = rows
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "id"))
            .collect();
        assert_eq!(actual, expected, "rule `{text}` on {:?}", db.backend);
        checked += 1;
        if !expected.is_empty() && expected.len() < generated.len() {
            nonempty += 1;
        }
    }
    assert_eq!(checked, RULES.len() + 30);
    assert!(
        nonempty >= 30,
        "most rules must split the customers ({nonempty})"
    );
}

crate::on_both_backends!(sql_and_memory_evaluators_agree);
