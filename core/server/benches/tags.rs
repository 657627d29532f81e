//! Tags at scale, SQLite and PostgreSQL side by side:
//! - selecting the holders of 10 template-style rules with Shoal's compiled SQL vs.
//!   hand-written aggregate SQL computing the same sets on the same database;
//! - the full recompute (selection + applying the changes);
//! - the incremental update after one event (median, p99);
//! - a segment count.
//!
//! `SHOAL_BENCH_CUSTOMERS` sets the size (default 1,000,000 customers, ~7.5 events each,
//! generated in chunks by `shoal_server::demo::generate`). Run with `cargo xtask bench --bench tags`.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use serde_json::json;
use shoal_base::storage::{Backend, sql::Sql, time};
use shoal_crm::{
    customers,
    events::{self, EventType, NewEvent},
    tenancy::Directory,
};
use shoal_rules as rules;
use shoal_server::demo;
use shoal_tags::{
    self as tags, TagInput,
    segments::{self, Definition},
};
use sqlx::Row;

mod common;

const DAY: i64 = 86_400_000_000;

/// (rule, hand-written SQL over the same data; `$1` tenant, `$2` now in µs).
fn rules(backend: Backend) -> Vec<(&'static str, String)> {
    let live =
        "customer_id IN (SELECT id FROM customers WHERE tenant_id = $1 AND deleted_at IS NULL)";
    let ev = |t: &str| {
        format!(
            "SELECT customer_id FROM events WHERE tenant_id = $1 AND event_type = '{t}' AND {live}"
        )
    };
    // an anti-join both databases plan well (NOT IN with a subquery is not one on PostgreSQL)
    let none_since = |t: &str, days: i64| {
        format!(
            "SELECT 1 FROM events o WHERE o.tenant_id = $1 AND o.customer_id = events.customer_id AND o.event_type = '{t}' AND o.occurred_at >= $2 - {days} * {DAY}"
        )
    };
    let city = match backend {
        Backend::Sqlite => {
            "json_extract(attributes, '$.\"city\"') IN ('北京', '上海') AND json_type(attributes, '$.\"city\"') = 'text'"
        }
        Backend::Postgres => {
            "jsonb_typeof(attributes -> 'city') = 'string' AND attributes ->> 'city' IN ('北京', '上海')"
        }
    };
    vec![
        (
            "count(order, 30d) >= 3",
            format!(
                "{} AND occurred_at >= $2 - 30 * {DAY} GROUP BY customer_id HAVING COUNT(*) >= 3",
                ev("order")
            ),
        ),
        (
            "days_since(order) > 90",
            format!(
                "{} GROUP BY customer_id HAVING MAX(occurred_at) <= $2 - 91 * {DAY}",
                ev("order")
            ),
        ),
        (
            "count(consult, 30d) >= 3 and not exists(order, 30d)",
            format!(
                "{} AND occurred_at >= $2 - 30 * {DAY} AND NOT EXISTS ({}) GROUP BY customer_id HAVING COUNT(*) >= 3",
                ev("consult"),
                none_since("order", 30)
            ),
        ),
        (
            "count(order) >= 5",
            format!("{} GROUP BY customer_id HAVING COUNT(*) >= 5", ev("order")),
        ),
        (
            "sum(order, 90d) >= 1000",
            format!(
                "{} AND occurred_at >= $2 - 90 * {DAY} GROUP BY customer_id HAVING SUM(amount_units) >= 10000000",
                ev("order")
            ),
        ),
        (
            "exists(coupon_used, 30d)",
            format!(
                "SELECT DISTINCT customer_id FROM ({} AND occurred_at >= $2 - 30 * {DAY}) x",
                ev("coupon_used")
            ),
        ),
        (
            "stage in [customer, loyal] and days_since(order) > 30",
            format!(
                "{} AND customer_id IN (SELECT id FROM customers WHERE tenant_id = $1 AND lifecycle_stage IN ('customer', 'loyal')) GROUP BY customer_id HAVING MAX(occurred_at) <= $2 - 31 * {DAY}",
                ev("order")
            ),
        ),
        (
            "attr.city in [\"北京\", \"上海\"] and count(order, 90d) >= 1",
            format!(
                "SELECT DISTINCT customer_id FROM ({} AND occurred_at >= $2 - 90 * {DAY} AND customer_id IN (SELECT id FROM customers WHERE tenant_id = $1 AND {city})) x",
                ev("order")
            ),
        ),
        (
            "count(page_view, 7d) >= 2 and not exists(order, 7d)",
            format!(
                "{} AND occurred_at >= $2 - 7 * {DAY} AND NOT EXISTS ({}) GROUP BY customer_id HAVING COUNT(*) >= 2",
                ev("page_view"),
                none_since("order", 7)
            ),
        ),
        (
            "days_since(order) <= 7 and sum(order) >= 500",
            format!(
                "{} GROUP BY customer_id HAVING MAX(occurred_at) > $2 - 8 * {DAY} AND SUM(amount_units) >= 5000000",
                ev("order")
            ),
        ),
    ]
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("SHOAL_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("shoal-tags-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for target in common::targets(&dir, "tags").await {
            bench(&target.url, n).await;
            target.cleanup().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

async fn bench(url: &str, n: usize) {
    let config = common::config();
    let db = common::open(url, &config).await;
    let backend = db.backend;
    let actor = common::actor(&db, &Directory::from_config(&config, &db.vault)).await;

    let started = Instant::now();
    let mut events_total = 0;
    for (i, chunk) in (0..n).collect::<Vec<_>>().chunks(20_000).enumerate() {
        let (cs, es) = demo::generate(chunk.len(), chunk[0], 7 + i as u64, true);
        events_total += es.len();
        common::insert_generated(&db, &cs, &es).await;
    }
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    println!(
        "\n{} — {n} customers, {events_total} events (generated in {:.0?})",
        backend.name(),
        started.elapsed()
    );

    let now = time::to_micros(time::now());
    let mut shoal_total = Duration::ZERO;
    let mut hand_total = Duration::ZERO;
    for (i, (rule_text, hand)) in rules(backend).iter().enumerate() {
        let rule = rules::parse(rule_text, &|_| None, &[]).unwrap();
        let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
        let t = sql.arg("bench");
        sql.push(&t).push(" AND c.deleted_at IS NULL AND ");
        rules::sql::push_cond(&mut sql, backend, "bench", &rule.cond, now);
        let t0 = Instant::now();
        let ours: HashSet<String> = sql
            .query()
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("id"))
            .collect();
        let ours_time = t0.elapsed();
        let t0 = Instant::now();
        let theirs: HashSet<String> = sqlx::query(hand)
            .bind("bench")
            .bind(now)
            .fetch_all(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{hand}: {e}"))
            .iter()
            .map(|r| r.get("customer_id"))
            .collect();
        let hand_time = t0.elapsed();
        assert_eq!(
            ours, theirs,
            "rule {i} `{rule_text}` selects the same customers both ways"
        );
        shoal_total += ours_time;
        hand_total += hand_time;
        println!(
            "  {:<56} {:>8} holders  shoal {:>9.1?}  hand {:>9.1?}  {:>5.2}x",
            rule_text,
            ours.len(),
            ours_time,
            hand_time,
            ours_time.as_secs_f64() / hand_time.as_secs_f64()
        );
    }
    println!(
        "  selection of 10 rules: shoal {shoal_total:.2?}, hand-written {hand_total:.2?}: {:.2}x",
        shoal_total.as_secs_f64() / hand_total.as_secs_f64()
    );

    for (i, (rule_text, _)) in rules(backend).iter().enumerate() {
        let input = TagInput {
            name: Some(format!("rule-{i}")),
            rule: Some((*rule_text).into()),
            ..TagInput::default()
        };
        tags::create(&db, &actor, &input, None).await.unwrap();
    }
    let t0 = Instant::now();
    let done = tags::recompute(&db, &actor, None).await.unwrap();
    let first = t0.elapsed();
    let t0 = Instant::now();
    tags::recompute(&db, &actor, None).await.unwrap();
    let steady = t0.elapsed();
    let applied: usize = done.iter().map(|r| r.added).sum();
    println!(
        "  full recompute (10 tags + lifecycle + RFM + segments): first {first:.2?} ({applied} tags applied), again with no changes {steady:.2?}"
    );

    let ids: Vec<String> =
        sqlx::query("SELECT id FROM customers WHERE tenant_id = 'bench' ORDER BY id LIMIT 200")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("id"))
            .collect();
    let mut samples = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let event = NewEvent {
            customer: Some(events::CustomerRef::Id(id.clone())),
            event_type: EventType::Order,
            name: None,
            occurred_at: time::now(),
            channel: None,
            amount: Some(events::Money {
                amount: rust_decimal::Decimal::new(19_900 + i as i64, 2),
                currency: "CNY".into(),
            }),
            payload: Some(json!({})),
            idempotency_key: None,
        };
        let t0 = Instant::now();
        events::record(&db, &actor, &[event], 1000).await.unwrap();
        tags::evaluate_customers(&db, None, &actor.tenant, std::slice::from_ref(id))
            .await
            .unwrap();
        samples.push(t0.elapsed());
    }
    println!(
        "  one event recorded + its customer re-evaluated (lifecycle and 10 tags): median {:.2?}, p99 {:.2?} ({} runs)",
        pct(&mut samples, 0.5),
        pct(&mut samples, 0.99),
        samples.len()
    );

    let definition = Definition {
        tags_any: vec!["rule-0".into(), "rule-9".into()],
        stages: vec!["loyal".into(), "customer".into()],
        rule: Some("sum(order, 90d) >= 300".into()),
        ..Definition::default()
    };
    let filter = segments::filter_of(&db, "bench", &definition, "definition")
        .await
        .unwrap();
    let mut samples = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        count = customers::count(&db, &actor, &filter).await.unwrap();
        samples.push(t0.elapsed());
    }
    println!(
        "  segment count (tags any + stages + rule): {count} members, median {:.2?}",
        pct(&mut samples, 0.5)
    );
    db.pool.close().await;
}
