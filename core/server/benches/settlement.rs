//! Bills settled per second end to end (GraphQL → module → checks → store) on SQLite and
//! PostgreSQL, and the module's share of the time (the same settle calls made directly).
//!
//! Run with `cargo xtask bench` (it builds the test modules first).

// building the whole schema in one async fn: its layout is deeper than the default 128
#![recursion_limit = "256"]

use std::{path::PathBuf, sync::Arc, time::Instant};

use serde_json::json;
use shoal_api as api;
use shoal_base::config::ModuleConfig;
use shoal_crm::tenancy::Directory;
use shoal_plugin_host::{PluginHost, Reloader, sha256_hex, types};

const BILLS: usize = 400;
mod common;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("shoal-settle-bench-{}", std::process::id()));
        let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugin-fixtures/wasm32-wasip2/plugin/shoal_plugin_sample.wasm");
        let bytes = std::fs::read(&wasm).expect("run `cargo xtask bench`, which builds the sample module");
        std::fs::create_dir_all(dir.join("plugins/sample")).unwrap();
        std::fs::write(dir.join("plugins/sample/sample.wasm"), &bytes).unwrap();
        std::fs::write(
            dir.join("plugins/sample/manifest.toml"),
            format!("id = \"sample\"\nversion = \"1.0.0\"\nabi_version = \"1.1.0\"\nsha256 = \"{}\"\ncapabilities = [\"tag-templates\", \"sop-templates\", \"settlement\", \"evaluate-tags\"]\n", sha256_hex(&bytes)),
        )
        .unwrap();
        println!("{BILLS} bills of 10 lines each, settled one after another");
        for target in common::targets(&dir, "settle").await {
            bench(&target.url, &dir).await;
            target.cleanup().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

async fn bench(url: &str, dir: &std::path::Path) {
    let mut config = common::config();
    config.plugins.dir = dir.join("plugins");
    config.plugins.cache_dir = dir.join("cache");
    let params = toml::from_str(
        "tier1_cities = [\"上海\"]\nsplit_weights = { hq = 1, store = 2, staff = 1 }",
    )
    .unwrap();
    let tenant = config.tenants.get_mut(common::TENANT).unwrap();
    tenant.modules.insert(
        "sample".into(),
        ModuleConfig {
            enabled: true,
            params,
            version: None,
        },
    );
    let db = common::open(url, &config).await;
    let backend = db.backend.name();
    let (host, report) = PluginHost::start(&config).unwrap();
    assert_eq!(report.loaded, ["sample"]);
    let fixed = config.clone();
    let reloader = Reloader::new(host.clone(), Arc::new(move || Ok(fixed.clone())));
    let (bus, _) = tokio::sync::broadcast::channel(16);
    let schema = api::schema(
        db.clone(),
        &config.limits,
        bus,
        Default::default(),
        false,
        reloader,
        Default::default(),
    );
    let actor = common::actor(&db, &Directory::from_config(&config, &db.vault)).await;
    let run = |query: &str, vars: serde_json::Value| {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(vars))
            .data(actor.clone());
        let schema = schema.clone();
        async move {
            let r = schema.execute(request).await;
            assert!(r.errors.is_empty(), "{:?}", r.errors);
        }
    };
    run("mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": (0..5).map(|i| json!({
        "code": format!("S{i}"), "name": "service", "unitPrice": format!("{}.50", 50 + i * 10), "currency": "CNY" })).collect::<Vec<_>>() })).await;
    run("mutation($i: [SparePartInput!]!) { upsertSpareParts(input: $i) }", json!({ "i": (0..5).map(|i| json!({
        "sku": format!("P{i}"), "name": "part", "cost": "1", "listPrice": format!("{}.90", 9 + i), "currency": "CNY", "unit": "pcs" })).collect::<Vec<_>>() })).await;
    run("mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }", json!({ "i": [
        { "id": "hq", "name": "HQ", "role": "hq" }, { "id": "store", "name": "Store", "role": "store", "parentId": "hq" },
        { "id": "staff", "name": "Staff", "role": "staff", "parentId": "store" } ] })).await;
    let lines: Vec<_> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                json!({ "kind": "SERVICE", "code": format!("S{}", i / 2), "quantity": "1.5" })
            } else {
                json!({ "kind": "PART", "code": format!("P{}", i / 2), "quantity": "2" })
            }
        })
        .collect();
    let settle =
        "mutation($input: SettleBillInput!) { settleBill(input: $input) { id total { amount } } }";
    let input = json!({ "input": { "reference": "B", "region": "上海", "currency": "CNY", "participantIds": ["staff"], "lines": lines } });
    for _ in 0..20 {
        run(settle, input.clone()).await;
    }
    let started = Instant::now();
    for _ in 0..BILLS {
        run(settle, input.clone()).await;
    }
    let e2e = started.elapsed();

    // the module alone, on the request the host builds for the same bill
    let request: types::SettleRequest = serde_json::from_value(json!({
        "bill_id": "x", "currency": "CNY", "region": "上海", "attributes": "{}",
        "participants": [{ "id": "staff", "role": "staff", "parent": "store" }, { "id": "store", "role": "store", "parent": "hq" }, { "id": "hq", "role": "hq", "parent": null }],
        "lines": (0..10).map(|i| json!({ "code": format!("X{i}"), "description": "x", "kind": if i % 2 == 0 { "Labour" } else { "Part" },
            "quantity": "1.5", "unit_price": { "amount": "59.90", "currency": "CNY" } })).collect::<Vec<_>>() }))
    .unwrap();
    let started = Instant::now();
    for _ in 0..BILLS {
        host.settle("bench", "sample", request.clone())
            .await
            .unwrap()
            .unwrap();
    }
    let plugin = started.elapsed();
    println!(
        "{backend:<9} {:>7.0} bills/s end to end ({:.2} ms per bill); module alone {:.3} ms per bill = {:.0}% of the time",
        BILLS as f64 / e2e.as_secs_f64(),
        e2e.as_secs_f64() * 1000.0 / BILLS as f64,
        plugin.as_secs_f64() * 1000.0 / BILLS as f64,
        plugin.as_secs_f64() * 100.0 / e2e.as_secs_f64()
    );
    db.pool.close().await;
}
