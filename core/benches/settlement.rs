//! Bills settled per second end to end (GraphQL → module → checks → store) on SQLite and
//! PostgreSQL, and the module's share of the time (the same settle calls made directly).
//!
//! Run with `cargo xtask bench` (it builds the test modules first).

use std::{path::PathBuf, sync::Arc, time::Instant};

use serde_json::json;
use shoal::{
    api,
    config::{self, ApiKeyConfig, ConfigSource, ModuleConfig, Role, TenantConfig, UserConfig},
    plugins::{PluginHost, Reloader, sha256_hex, types},
    storage::{self, Db},
    tenancy::{self, Directory},
};
use sqlx::Connection;

const BILLS: usize = 400;
const KEY: &str = "bench-key-0123456789abcdef";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("shoal-settle-bench-{}", std::process::id()));
        let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-fixtures/wasm32-wasip2/plugin/shoal_plugin_sample.wasm");
        let bytes = std::fs::read(&wasm).expect("run `cargo xtask bench`, which builds the sample module");
        std::fs::create_dir_all(dir.join("plugins/sample")).unwrap();
        std::fs::write(dir.join("plugins/sample/sample.wasm"), &bytes).unwrap();
        std::fs::write(
            dir.join("plugins/sample/manifest.toml"),
            format!("id = \"sample\"\nversion = \"1.0.0\"\nabi_version = \"1.0.0\"\nsha256 = \"{}\"\ncapabilities = [\"tag-templates\", \"sop-templates\", \"settlement\", \"evaluate-tags\"]\n", sha256_hex(&bytes)),
        )
        .unwrap();
        let mut backends = vec![("sqlite", format!("sqlite://{}", dir.join("bench.db").display()), None)];
        let pg = std::env::var("SHOAL_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Ok(mut admin) = sqlx::PgConnection::connect(&pg).await {
            let name = format!("shoal_settle_bench_{}", std::process::id());
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
            let cut = pg.rfind('/').unwrap();
            backends.push(("postgres", format!("{}/{name}", &pg[..cut]), Some((pg.clone(), name))));
        }
        println!("{BILLS} bills of 10 lines each, settled one after another");
        for (backend, url, cleanup) in backends {
            bench(backend, &url, &dir).await;
            if let Some((admin_url, name)) = cleanup {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

async fn bench(backend: &str, url: &str, dir: &std::path::Path) {
    let mut config = config::load(&ConfigSource::default()).unwrap();
    config.plugins.dir = dir.join("plugins");
    config.plugins.cache_dir = dir.join("cache");
    let mut tenant = TenantConfig::new("Bench", chrono_tz::Asia::Shanghai);
    tenant.users.insert(
        "admin".into(),
        UserConfig {
            name: "Admin".into(),
            email: None,
            department: None,
            role: Role::Admin,
        },
    );
    tenant.api_keys.insert(
        "k".into(),
        ApiKeyConfig {
            user: "admin".into(),
            sha256: Some(config::sha256_hex(KEY)),
            env: None,
        },
    );
    let params = toml::from_str(
        "tier1_cities = [\"上海\"]\nsplit_weights = { hq = 1, store = 2, staff = 1 }",
    )
    .unwrap();
    tenant.modules.insert(
        "sample".into(),
        ModuleConfig {
            enabled: true,
            params,
        },
    );
    config.tenants.insert("bench".into(), tenant);

    let db = Db::connect(url, 4).await.unwrap();
    storage::migrate(&db).await.unwrap();
    tenancy::sync_to_db(&db, &config).await.unwrap();
    let (host, report) = PluginHost::start(&config).unwrap();
    assert_eq!(report.loaded, ["sample"]);
    let fixed = config.clone();
    let reloader = Reloader::new(host.clone(), Arc::new(move || Ok(fixed.clone())));
    let (bus, _) = tokio::sync::broadcast::channel(16);
    let schema = api::schema(db.clone(), &config.limits, bus, reloader);
    let actor = Directory::from_config(&config).authenticate(KEY).unwrap();
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
