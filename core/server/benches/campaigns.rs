//! Campaign planning and cancel, SQLite and PostgreSQL side by side. With
//! `SHOAL_BENCH_CUSTOMERS` customers (default 1,000,000), a campaign whose audience is a rule
//! over all of them, with three exclusions (a tag, an order in the last 30 days, contacted in
//! the last 48 hours), a per-tag variant and an A/B split, is submitted: its audience frozen,
//! one row per customer with its variant and exclusion. The floor beside it: the same number
//! of rows written by one plain `INSERT … SELECT id FROM customers`. Then the first
//! `SHOAL_BENCH_RELEASE` (default 10,000) recipients are released to the outbox through the
//! contact policy and the log channel, and the campaign is cancelled with everything not
//! released still queued (`SHOAL_BENCH_CUSTOMERS=100000` for the 100k figure).
//!
//! Run with `cargo xtask bench --bench campaigns`.

use std::time::Instant;

use serde_json::json;
use shoal_base::storage::time;
use shoal_campaigns::{
    model::{Audience, Content, Exclusion, Schedule, Variant},
    release, review, store,
};
use shoal_crm::tenancy::Directory;

mod common;

fn draft(name: &str, audience: Audience) -> store::Draft {
    store::Draft {
        name: name.into(),
        channel: "log".into(),
        purpose: "marketing".into(),
        audience,
        content: Content {
            variants: vec![
                Variant {
                    key: "vip".into(),
                    template: "尊敬的{{customer.name}}，VIP 专享".into(),
                    tag: Some("VIP".into()),
                    segment: None,
                    weight: 0,
                },
                Variant {
                    key: "a".into(),
                    template: "{{customer.name}}，新品到了".into(),
                    tag: None,
                    segment: None,
                    weight: 50,
                },
                Variant {
                    key: "b".into(),
                    template: "{{customer.name}}，来看看新品".into(),
                    tag: None,
                    segment: None,
                    weight: 50,
                },
            ],
            winner_metric: None,
        },
        schedule: Schedule::Now,
        on_cap: "defer".into(),
        attribution_hours: 72,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SHOAL_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let release_n: usize = std::env::var("SHOAL_BENCH_RELEASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("shoal-campaign-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = common::config();
    for target in common::targets(&dir, "campaigns").await {
        let db = common::open(&target.url, &config).await;
        let directory = Directory::from_config(&config, &db.vault);
        let actor = common::actor(&db, &directory).await;
        common::seed_customers(&db, n, 11).await;
        for name in ["VIP", "已购"] {
            shoal_tags::create(
                &db,
                &actor,
                &shoal_tags::TagInput {
                    name: Some(name.into()),
                    rule: None,
                    group: None,
                    color: None,
                    description: None,
                },
                None,
            )
            .await
            .unwrap();
        }
        let audience = Audience {
            rule: Some("days_since_created() >= 0".into()),
            exclude: vec![
                Exclusion::Tag {
                    tag: "已购".into()
                },
                Exclusion::Bought {
                    product: None,
                    days: 30,
                },
                Exclusion::ContactedWithin { hours: 48 },
            ],
            ..Audience::default()
        };
        let campaign = store::create(&db, &actor, &draft("plan", audience))
            .await
            .unwrap();
        let started = Instant::now();
        let submitted = review::submit(&db, &actor, &campaign.id).await.unwrap();
        let plan_secs = started.elapsed().as_secs_f64();
        let frozen = submitted.frozen_count.unwrap_or(0);

        // the floor: the same number of rows, one plain INSERT … SELECT
        let started = Instant::now();
        sqlx::query(
            "INSERT INTO campaign_recipients (tenant_id, campaign_id, customer_id, variant, status, status_rank, due_at, updated_at) \
             SELECT tenant_id, 'floor', id, 'a', 'queued', 0, 0, 0 FROM customers WHERE tenant_id = 'bench'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let floor_secs = started.elapsed().as_secs_f64();

        // release through the contact policy to the outbox (the log channel)
        let tenant = actor.tenant.clone();
        let current = store::get(&db, "bench", &campaign.id).await.unwrap();
        let started = Instant::now();
        let mut released = 0;
        while released < release_n {
            let c = store::get(&db, "bench", &campaign.id).await.unwrap();
            let k = release::release(&db, &tenant, &c, time::now(), 500)
                .await
                .unwrap();
            if k == 0 {
                break;
            }
            released += k;
        }
        let release_secs = started.elapsed().as_secs_f64();
        drop(current);

        // cancel the planned campaign: everything not released yet, in one transaction
        let started = Instant::now();
        let cancelled = review::cancel(&db, &actor, &campaign.id)
            .await
            .unwrap()
            .cancelled;
        let cancel_secs = started.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({
                "backend": db.backend.name(),
                "customers": n,
                "frozen_recipients": frozen,
                "plan_s": format!("{plan_secs:.2}"),
                "plan_recipients_per_s": (n as f64 / plan_secs).round(),
                "floor_rows_per_s": (n as f64 / floor_secs).round(),
                "plan_vs_floor": format!("{:.2}", floor_secs / plan_secs),
                "released": released,
                "release_per_s": (released as f64 / release_secs).round(),
                "cancelled": cancelled,
                "cancel_s": format!("{cancel_secs:.3}"),
            })
        );
        db.pool.close().await;
        target.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
