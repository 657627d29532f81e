//! Notifications, SQLite and PostgreSQL side by side:
//!
//! 1. webhook deliveries per second to a local receiver (the relay's fan-out, then the
//!    delivery worker's rounds: lease, sign, POST, log the attempt, settle), beside the floor
//!    of the same number of plain sequential POSTs to the same receiver;
//! 2. latency from commit to a `changes` subscriber on another host (two pools, two buses,
//!    the relay on host A's worker, the subscriber on host B — on PostgreSQL woken through
//!    LISTEN/NOTIFY; on SQLite one host), median and p99;
//! 3. memory per idle `changes` subscription (10,000 of them on host B, RSS before and after).
//!
//! Run with `cargo xtask bench --bench notify`.

// building the whole schema in one async fn: its layout is deeper than the default 128
#![recursion_limit = "256"]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::futures_util::StreamExt;
use axum::{Router, routing::post};
use serde_json::json;
use shoal_base::storage::time;
use shoal_crm::{customers, internal_events, tenancy::Directory};
use shoal_notify::{bus::Bus, hooks, relay};
use shoal_sop::transport::Transport;

mod common;

const MESSAGES: usize = 2_000;
const SAMPLES: usize = 200;
const IDLE: usize = 10_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("shoal-notify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a receiver that takes everything
    let app = Router::new().route("/hook", post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/hook");

    let mut config = common::config();
    config
        .tenants
        .get_mut(common::TENANT)
        .unwrap()
        .contact
        .outbound_allow = vec!["127.0.0.1".into()];
    config.notify.poll_ms = 250;
    for target in common::targets(&dir, "notify").await {
        let db = common::open(&target.url, &config).await;
        let backend = db.backend.name();
        let directory = Directory::from_config(&config, &db.vault);
        let tenant = directory.tenant(common::TENANT).unwrap().clone();
        let actor = common::actor(&db, &directory).await;
        let transport = Transport::new(None).unwrap();

        // 1. deliveries per second
        hooks::create(
            &db,
            &actor,
            &hooks::NewEndpoint {
                url: url.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let events: Vec<(&str, &str, serde_json::Value)> = (0..MESSAGES)
            .map(|i| ("tag.added", "c", json!({ "tag": format!("t{i}") })))
            .collect();
        let mut tx = db.pool.begin().await.unwrap();
        internal_events::emit_many(
            &mut tx,
            common::TENANT,
            &events,
            time::to_micros(time::now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let relaying = Instant::now();
        while !relay::relay(&db, &tenant, &config.notify)
            .await
            .unwrap()
            .is_empty()
        {}
        let relayed = relaying.elapsed();
        let delivering = Instant::now();
        while hooks::deliver_due(&db, &tenant, &config.notify, &transport, time::now())
            .await
            .unwrap()
            > 0
        {}
        let delivered = delivering.elapsed();
        // the floor: the same POSTs, one after another, nothing stored
        let floor_started = Instant::now();
        let target_url = shoal_sop::outbound::parse(&url).unwrap();
        for i in 0..MESSAGES {
            transport
                .post_json(
                    &target_url,
                    addr,
                    &[],
                    format!("{{\"i\":{i}}}"),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
        let floor = floor_started.elapsed();
        let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
        println!(
            "{backend}: relay + fan-out {:.0} changes/s; delivery {:.0} messages/s; plain POSTs {:.0}/s; delivery / plain = {:.2}×",
            rate(relayed),
            rate(delivered),
            rate(floor),
            rate(delivered) / rate(floor)
        );

        // 2. commit on host A → subscriber on host B
        let host_b = common::open(&target.url, &config).await;
        let bus_a = Bus::new();
        let bus_b = Bus::new();
        let mut background = vec![shoal_notify::background::spawn(
            db.clone(),
            vec![tenant.clone()],
            config.notify.clone(),
            transport.clone(),
            None,
            bus_a.clone(),
            Arc::default(),
        )];
        if db.backend == shoal_base::storage::Backend::Postgres {
            background.push(shoal_notify::bus::listen(target.url.clone(), bus_b.clone()));
        } else {
            // one host on SQLite: B shares A's bus
            background.push(tokio::spawn({
                let (a, b) = (bus_a.clone(), bus_b.clone());
                async move {
                    let mut rx = a.subscribe();
                    while let Ok(w) = rx.recv().await {
                        b.wake(&w.tenant, w.seq);
                    }
                }
            }));
        }
        let (events_bus, _) = tokio::sync::broadcast::channel(16);
        let (plugins, _) = shoal_plugin_host::PluginHost::start(&config).unwrap();
        let fixed = config.clone();
        let reloader =
            shoal_plugin_host::Reloader::new(plugins, Arc::new(move || Ok(fixed.clone())));
        let schema_b = shoal_api::schema(
            host_b.clone(),
            &config.limits,
            events_bus,
            bus_b.clone(),
            false,
            reloader,
            Default::default(),
        );
        let actor_b = common::actor(&host_b, &directory).await;
        let mut stream = schema_b.execute_stream(
            async_graphql::Request::new(
                "subscription { changes(types: [\"customer.created\"]) { customerId } }",
            )
            .data(actor_b.clone()),
        );
        // the subscription reads the head when first polled
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        let mut latencies = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let input = customers::NewCustomer {
                display_name: format!("延迟{i}"),
                phones: Vec::new(),
                emails: Vec::new(),
                identities: Vec::new(),
                attributes: None,
                lifecycle_stage: customers::LifecycleStage::Lead,
                owner_id: None,
                source_channel: customers::Channel::Web,
            };
            let started = Instant::now();
            let created = customers::create(&db, &actor, &input).await.unwrap();
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("pushed in time")
                .unwrap();
            latencies.push(started.elapsed());
            let got = item.data.into_json().unwrap();
            assert_eq!(got["changes"]["customerId"], created.id.as_str());
        }
        latencies.sort();
        println!(
            "{backend}: commit → subscriber on {} (notify.poll_ms = {}): median {:.1?}, p99 {:.1?}",
            if db.backend == shoal_base::storage::Backend::Postgres {
                "another host"
            } else {
                "the same host"
            },
            config.notify.poll_ms,
            common::percentile(&latencies, 0.5),
            common::percentile(&latencies, 0.99)
        );

        // 3. memory per idle subscription
        let before = rss_kib();
        let mut idle = Vec::with_capacity(IDLE);
        for _ in 0..IDLE {
            let mut s = schema_b.execute_stream(
                async_graphql::Request::new(
                    "subscription { changes(types: [\"bill.settled\"]) { customerId } }",
                )
                .data(actor_b.clone()),
            );
            idle.push(tokio::spawn(async move { s.next().await.map(|_| ()) }));
        }
        // every subscription has read the head and waits
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_kib();
        println!(
            "{backend}: {IDLE} idle subscriptions: RSS {} KiB → {} KiB, {:.1} KiB each",
            before,
            after,
            (after.saturating_sub(before)) as f64 / IDLE as f64
        );
        for t in idle {
            t.abort();
        }
        for t in background {
            t.abort();
        }
        drop(stream);
        target.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
