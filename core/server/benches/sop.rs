//! SOP due-step throughput, SQLite and PostgreSQL side by side: a segment of
//! `SHOAL_BENCH_CUSTOMERS` customers (default 100,000) is enrolled in a one-step SOP (a `log`
//! message), then the runner drains every due step, batch by batch, as the workers do
//! (claim, exit check, contact policy, outbox row, enrolment update, history, one
//! transaction per batch). The floor beside it: the same outbox rows written the same way
//! (multi-row inserts, 500 per transaction) with nothing else.
//!
//! Run with `cargo xtask bench --bench sop`.

use std::time::Instant;

use serde_json::json;
use shoal_base::{config::SopConfig, storage::time};
use shoal_crm::{customers, tenancy::Directory};
use shoal_sop::{
    definition::{Action, Definition as SopDefinition, Purpose, Step},
    enrolments,
    outbox::{self, Queued},
    runner, store,
};
use shoal_tags::{
    self as tags,
    segments::{self, Definition},
};

mod common;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SHOAL_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("shoal-sop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = common::config();
    for target in common::targets(&dir, "sop").await {
        let db = common::open(&target.url, &config).await;
        let directory = Directory::from_config(&config, &db.vault);
        let actor = common::actor(&db, &directory).await;
        common::seed_customers(&db, n, 11).await;
        let segment = segments::save(
            &db,
            &actor,
            None,
            "everyone",
            &Definition {
                rule: Some("days_since_created() >= 0".into()),
                ..Definition::default()
            },
        )
        .await
        .unwrap();
        let definition = SopDefinition {
            steps: vec![Step {
                id: "hello".into(),
                condition: None,
                action: Action::SendMessage {
                    channel: "log".into(),
                    template: "你好 {{customer.name}}".into(),
                    purpose: Purpose::Marketing,
                },
            }],
            ..SopDefinition::default()
        };
        let sop = store::create(&db, &actor, "bench", "", &definition, None)
            .await
            .unwrap();
        store::set_status(&db, &actor, &sop.id, "active")
            .await
            .unwrap();

        let started = Instant::now();
        let filter = segments::as_filter(&db, &actor.tenant, &segment.id)
            .await
            .unwrap();
        let ids = customers::ids_matching(&db, &actor, &filter, n)
            .await
            .unwrap();
        let enrolled = enrolments::enrol_manually(&db, &actor, &sop.id, &ids)
            .await
            .unwrap();
        let enrol_secs = started.elapsed().as_secs_f64();
        assert_eq!(enrolled, n);

        // `SHOAL_BENCH_ANALYZE=1`: statistics as autovacuum would leave them a minute later
        // (without it, PostgreSQL plans the runner's `id IN (…)` reads and updates on the
        // statistics of the empty tables and scans the tenant: docs/benchmarks.md)
        let analyzed = std::env::var_os("SHOAL_BENCH_ANALYZE").is_some();
        if analyzed {
            sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
        }
        let cfg = SopConfig {
            batch_size: 500,
            ..config.sop.clone()
        };
        let started = Instant::now();
        let mut steps = 0;
        loop {
            let done = runner::run_due(&db, &actor.tenant, &cfg, &Default::default(), time::now())
                .await
                .unwrap();
            if done == 0 {
                break;
            }
            steps += done;
        }
        let run_secs = started.elapsed().as_secs_f64();
        assert_eq!(steps, n);

        // the floor: the same outbox rows, 500 per transaction, nothing else
        let started = Instant::now();
        for chunk in ids.ids().chunks(500) {
            let rows: Vec<Queued> = chunk
                .iter()
                .map(|id| Queued {
                    key: format!("floor:{id}"),
                    customer_id: id.clone(),
                    channel: "log".into(),
                    purpose: "marketing",
                    body: "你好".into(),
                    target: None,
                    sop_id: None,
                    enrolment_id: None,
                    campaign_id: None,
                    at: time::now(),
                })
                .collect();
            let mut tx = db.begin_write().await.unwrap();
            outbox::queue_many(&mut tx, "bench", &rows).await.unwrap();
            tx.commit().await.unwrap();
        }
        let floor_secs = started.elapsed().as_secs_f64();
        let _ = tags::list(&db, "bench").await;
        println!(
            "{}",
            json!({
                "backend": db.backend.name(),
                "customers": n,
                "analyzed": analyzed,
                "enrol_segment_s": format!("{enrol_secs:.2}"),
                "enrolments_per_s": (n as f64 / enrol_secs).round(),
                "steps_per_s": (n as f64 / run_secs).round(),
                "outbox_floor_rows_per_s": (n as f64 / floor_secs).round(),
                "steps_vs_floor": format!("{:.2}", floor_secs / run_secs),
            })
        );
        db.pool.close().await;
        target.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
