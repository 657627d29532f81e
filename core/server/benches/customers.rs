//! `customers(first: 100, filter)` through GraphQL vs. the raw sqlx query it executes, on
//! 100k customers, SQLite and PostgreSQL side by side in one run; between the two, the
//! domain call the resolver makes (`customers::list`: the query, rows decoded into customers,
//! sealed contacts opened), so the table shows where the GraphQL layer's time goes.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p shoal-server --bench customers`).
//! `SHOAL_BENCH_CUSTOMERS` changes the data size; PostgreSQL comes from
//! `SHOAL_TEST_POSTGRES_URL` and is skipped, with a note, when unreachable.

// building the whole schema in one async fn: its layout is deeper than the default 128
#![recursion_limit = "256"]

use std::time::Instant;

use serde_json::json;
use shoal_api as api;
use shoal_base::{
    kinds::Channel,
    pagination::{Page, PageArgs},
};
use shoal_crm::{
    customers::{self, CustomerFilter, CustomerOrder, LifecycleStage},
    tenancy::Directory,
};
use shoal_server::demo;

mod common;

const WARMUP: usize = 20;
const ROUNDS: usize = 200;

struct Scenario {
    name: &'static str,
    graphql_filter: serde_json::Value,
    filter: CustomerFilter,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "no filter",
            graphql_filter: json!({}),
            filter: CustomerFilter::default(),
        },
        Scenario {
            name: "stage + channel",
            graphql_filter: json!({ "stages": ["LOYAL"], "channels": ["WECOM"] }),
            filter: CustomerFilter {
                stages: vec![LifecycleStage::Loyal],
                channels: vec![Channel::Wecom],
                ..Default::default()
            },
        },
        Scenario {
            name: "name prefix",
            graphql_filter: json!({ "search": "王" }),
            filter: CustomerFilter {
                search: Some("王".into()),
                ..Default::default()
            },
        },
        Scenario {
            name: "attribute",
            graphql_filter: json!({ "attributes": { "city": "上海" } }),
            filter: CustomerFilter {
                attributes: json!({ "city": "上海" }).as_object().cloned(),
                ..Default::default()
            },
        },
    ]
}

fn main() {
    let n: usize = std::env::var("SHOAL_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("shoal-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        println!("customers(first: 100, filter) on {n} customers; {ROUNDS} interleaved rounds after {WARMUP} warm-up");
        println!("{:<9} {:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7}", "backend", "filter", "raw median", "raw p95", "list median", "gql median", "gql p95", "ratio");
        for target in common::targets(&dir, "customers").await {
            bench_backend(&target.url, n).await;
            target.cleanup().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

async fn bench_backend(url: &str, n: usize) {
    let config = common::config();
    let db = common::open(url, &config).await;
    let backend = db.backend.name();
    let seeding = Instant::now();
    let (rows, _) = demo::generate(n, 0, 42, false);
    let mut tx = db.pool.begin().await.unwrap();
    customers::insert_many(&mut tx, &db, "bench", &rows)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    eprintln!(
        "{backend}: seeded {n} customers in {:.1?}",
        seeding.elapsed()
    );

    let directory = Directory::from_config(&config, &db.vault);
    let actor = common::actor(&db, &directory).await;
    let (bus, _) = tokio::sync::broadcast::channel(16);
    let (plugins, _) = shoal_plugin_host::PluginHost::start(&config).unwrap();
    let fixed = config.clone();
    let reloader =
        shoal_plugin_host::Reloader::new(plugins, std::sync::Arc::new(move || Ok(fixed.clone())));
    let schema = api::schema(
        db.clone(),
        &config.limits,
        bus,
        Default::default(),
        false,
        reloader,
        Default::default(),
    );
    let query = "query($f: CustomerFilterInput) { customers(first: 100, filter: $f) {
        edges { cursor node { id displayName phones emails attributes lifecycleStage ownerId sourceChannel createdAt } } } }";

    for s in scenarios() {
        let page = Page::new(
            &PageArgs {
                first: Some(100),
                ..Default::default()
            },
            100,
            "bench",
            CustomerOrder::default().cursor_name(),
        )
        .unwrap();
        let sql =
            customers::list_sql(&db, &actor, &s.filter, CustomerOrder::default(), &page).unwrap();
        let (mut raw, mut gql) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        let mut domain = Vec::with_capacity(ROUNDS);
        let mut rows_seen = 0;
        for round in 0..WARMUP + ROUNDS {
            let t = Instant::now();
            let rows = sql.query().fetch_all(&db.pool).await.unwrap();
            let raw_time = t.elapsed();
            rows_seen = rows.len();

            let t = Instant::now();
            let listed = customers::list(&db, &actor, &s.filter, CustomerOrder::default(), &page)
                .await
                .unwrap();
            let domain_time = t.elapsed();
            assert_eq!(listed.items.len(), rows_seen.min(100));

            let request = async_graphql::Request::new(query)
                .variables(async_graphql::Variables::from_json(
                    json!({ "f": s.graphql_filter }),
                ))
                .data(actor.clone());
            let t = Instant::now();
            let response = schema.execute(request).await;
            let gql_time = t.elapsed();
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            if round >= WARMUP {
                raw.push(raw_time);
                domain.push(domain_time);
                gql.push(gql_time);
            }
        }
        raw.sort();
        domain.sort();
        gql.sort();
        let (rm, dm, gm) = (
            common::percentile(&raw, 0.5),
            common::percentile(&domain, 0.5),
            common::percentile(&gql, 0.5),
        );
        println!(
            "{:<9} {:<16} {:>12.2?} {:>12.2?} {:>12.2?} {:>12.2?} {:>12.2?} {:>6.2}x   (list = {:.2}x raw; {rows_seen} rows)",
            backend,
            s.name,
            rm,
            common::percentile(&raw, 0.95),
            dm,
            gm,
            common::percentile(&gql, 0.95),
            gm.as_secs_f64() / rm.as_secs_f64(),
            dm.as_secs_f64() / rm.as_secs_f64(),
        );
    }
    db.pool.close().await;
}
