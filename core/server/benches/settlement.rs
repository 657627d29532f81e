//! Bills settled per second end to end (GraphQL → module → checks → store) on SQLite and
//! PostgreSQL, beside the floor: the same rows (the bill, its lines and postings, the audit
//! entry and the `bill.settled` change) written by plain SQL in one transaction, in
//! interleaved rounds; and the module's share of the time (the same settle calls made
//! directly).
//!
//! Run with `cargo xtask bench` (it builds the test modules first).

// building the whole schema in one async fn: its layout is deeper than the default 128
#![recursion_limit = "256"]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use shoal_api as api;
use shoal_base::{
    config::ModuleConfig,
    storage::{
        Db,
        sql::{Arg, Sql},
    },
};
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
            r.data.into_json().unwrap()
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
    let mut last = serde_json::Value::Null;
    for _ in 0..20 {
        last = run(settle, input.clone()).await;
    }
    let floor = Floor::read(&db, last["settleBill"]["id"].as_str().unwrap()).await;
    for i in 0..20 {
        floor.write(&db, &format!("warm-{i}")).await;
    }
    // interleaved: a bill through GraphQL, then the same rows by plain SQL
    let (mut e2e_times, mut floor_times) = (Vec::new(), Vec::new());
    for i in 0..BILLS {
        let started = Instant::now();
        run(settle, input.clone()).await;
        e2e_times.push(started.elapsed());
        let started = Instant::now();
        floor.write(&db, &format!("floor-{i}")).await;
        floor_times.push(started.elapsed());
    }
    let e2e: Duration = e2e_times.iter().sum();
    let floor_total: Duration = floor_times.iter().sum();
    e2e_times.sort();
    floor_times.sort();

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
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend:<9} {:>7.0} bills/s end to end ({:.2} ms per bill, median {:.2} ms, p99 {:.2} ms); \
         floor (the same {} rows by plain SQL) {:>7.0} bills/s (median {:.2} ms); end to end / floor {:.2}×; \
         module alone {:.3} ms per bill = {:.0}% of the time",
        BILLS as f64 / e2e.as_secs_f64(),
        ms(e2e) / BILLS as f64,
        ms(common::percentile(&e2e_times, 0.5)),
        ms(common::percentile(&e2e_times, 0.99)),
        floor.rows(),
        BILLS as f64 / floor_total.as_secs_f64(),
        ms(common::percentile(&floor_times, 0.5)),
        floor_total.as_secs_f64() / e2e.as_secs_f64(),
        ms(plugin) / BILLS as f64,
        plugin.as_secs_f64() * 100.0 / e2e.as_secs_f64()
    );
    db.pool.close().await;
}

/// The rows one settled bill wrote, read back as text and numbers, to be written again
/// under new ids by plain SQL: the floor of what `settleBill` stores.
struct Floor {
    bill: Vec<Arg>,
    lines: Vec<Vec<Arg>>,
    postings: Vec<Vec<Arg>>,
    audit: Vec<Arg>,
    change: Vec<Arg>,
}

impl Floor {
    async fn read(db: &Db, id: &str) -> Floor {
        use sqlx::Row;
        let text = |r: &sqlx::any::AnyRow, c: &str| -> Arg {
            r.try_get::<Option<String>, _>(c).unwrap().into()
        };
        let int =
            |r: &sqlx::any::AnyRow, c: &str| -> Arg { r.try_get::<i64, _>(c).unwrap().into() };
        let one = |sql: &'static str| {
            sqlx::query(sql)
                .bind(common::TENANT)
                .bind(id.to_owned())
                .fetch_all(&db.pool)
        };
        let b = &one("SELECT * FROM bills WHERE tenant_id = $1 AND id = $2")
            .await
            .unwrap()[0];
        let bill = vec![
            text(b, "kind"),
            text(b, "original_id"),
            text(b, "reference"),
            text(b, "customer_id"),
            text(b, "region"),
            text(b, "currency"),
            int(b, "total_units"),
            text(b, "module_id"),
            text(b, "module_version"),
            text(b, "module_sha256"),
            text(b, "request"),
            text(b, "params"),
            text(b, "response"),
            int(b, "created_at"),
            text(b, "created_by"),
        ];
        let lines =
            one("SELECT * FROM bill_lines WHERE tenant_id = $1 AND bill_id = $2 ORDER BY line_no")
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    vec![
                        int(r, "line_no"),
                        text(r, "code"),
                        text(r, "description"),
                        text(r, "kind"),
                        text(r, "quantity"),
                        int(r, "base_price_units"),
                        int(r, "unit_price_units"),
                        int(r, "amount_units"),
                        text(r, "note"),
                    ]
                })
                .collect();
        let postings =
            one("SELECT * FROM ledger_postings WHERE tenant_id = $1 AND bill_id = $2 ORDER BY id")
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    vec![
                        text(r, "account"),
                        int(r, "amount_units"),
                        text(r, "currency"),
                        text(r, "reason"),
                        int(r, "posted_at"),
                    ]
                })
                .collect();
        let a = &one("SELECT * FROM audit_log WHERE tenant_id = $1 AND entity_id = $2")
            .await
            .unwrap()[0];
        let audit = vec![
            int(a, "at"),
            text(a, "actor_id"),
            text(a, "action"),
            text(a, "entity_type"),
            text(a, "changes"),
            text(a, "request_id"),
        ];
        let c = &sqlx::query("SELECT * FROM internal_events WHERE tenant_id = $1 AND kind = 'bill.settled' ORDER BY id DESC LIMIT 1")
            .bind(common::TENANT)
            .fetch_all(&db.pool)
            .await
            .unwrap()[0];
        let change = vec![
            text(c, "kind"),
            text(c, "customer_id"),
            text(c, "payload"),
            int(c, "at"),
        ];
        Floor {
            bill,
            lines,
            postings,
            audit,
            change,
        }
    }

    /// How many rows one bill is.
    fn rows(&self) -> usize {
        3 + self.lines.len() + self.postings.len()
    }

    /// The rows again for bill `id`: five statements (lines and postings as multi-row
    /// inserts) in one write transaction.
    async fn write(&self, db: &Db, id: &str) {
        let tenant = || Arg::from(common::TENANT);
        let id_arg = || Arg::from(id);
        let mut tx = db.begin_write().await.unwrap();
        let mut statements = Vec::new();
        let mut bill = Sql::new(
            "INSERT INTO bills (tenant_id, id, kind, original_id, reference, customer_id, region, currency, total_units, \
             module_id, module_version, module_sha256, request, params, response, created_at, created_by) VALUES ",
        );
        bill.push_row(
            true,
            [tenant(), id_arg()]
                .into_iter()
                .chain(self.bill.iter().cloned()),
        );
        statements.push(bill);
        let mut lines = Sql::new(
            "INSERT INTO bill_lines (tenant_id, bill_id, line_no, code, description, kind, quantity, base_price_units, \
             unit_price_units, amount_units, note) VALUES ",
        );
        for (i, line) in self.lines.iter().enumerate() {
            lines.push_row(
                i == 0,
                [tenant(), id_arg()].into_iter().chain(line.iter().cloned()),
            );
        }
        statements.push(lines);
        let mut postings = Sql::new(
            "INSERT INTO ledger_postings (tenant_id, id, bill_id, account, amount_units, currency, reason, posted_at) VALUES ",
        );
        for (i, p) in self.postings.iter().enumerate() {
            let row = [tenant(), uuid::Uuid::now_v7().to_string().into(), id_arg()];
            postings.push_row(i == 0, row.into_iter().chain(p.iter().cloned()));
        }
        statements.push(postings);
        let mut audit = Sql::new(
            "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes, request_id) VALUES ",
        );
        let a = &self.audit;
        audit.push_row(
            true,
            [
                tenant(),
                uuid::Uuid::now_v7().to_string().into(),
                a[0].clone(),
                a[1].clone(),
                a[2].clone(),
                a[3].clone(),
                id_arg(),
                a[4].clone(),
                a[5].clone(),
            ],
        );
        statements.push(audit);
        let mut change = Sql::new(
            "INSERT INTO internal_events (tenant_id, id, kind, customer_id, payload, at) VALUES ",
        );
        change.push_row(
            true,
            [tenant(), uuid::Uuid::now_v7().to_string().into()]
                .into_iter()
                .chain(self.change.iter().cloned()),
        );
        statements.push(change);
        for s in &statements {
            s.on(db.backend).query().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}
