//! The plugin runtime with real WebAssembly components: loading and refusing modules,
//! tenant gating, limits, typed failures, hot reload under load, and the GraphQL surface.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use shoal_base::config::ModuleConfig;
use shoal_plugin_host::{CallError, types};

use crate::harness::{
    ALPHA, ALPHA_READONLY, BETA, Backend, Install, TestServer, code, install_plugin, plugin_wasm,
};

/// A server whose tenant `alpha` enables `sample` and `misbehave` (beta enables nothing).
async fn server_with(tweak: impl FnOnce(&mut shoal_base::config::Config)) -> TestServer {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        let alpha = c.tenants.get_mut("alpha").unwrap();
        let params = toml::from_str(
            "tier1_cities = [\"上海\", \"北京\"]\ntier3_cities = [\"洛阳\"]\nsplit_weights = { hq = 1, store = 2 }\nbig_spender = 500",
        )
        .unwrap();
        alpha.modules.insert("sample".into(), ModuleConfig { enabled: true, params, version: None });
        alpha.modules.insert("misbehave".into(), ModuleConfig { enabled: true, params: Default::default(), version: None });
        tweak(c);
    })
    .await
    .unwrap();
    install_plugin(
        &s.plugins_dir,
        "sample",
        &plugin_wasm("sample"),
        &Install::sample(),
    );
    install_plugin(
        &s.plugins_dir,
        "misbehave",
        &plugin_wasm("misbehave"),
        &Install::misbehave(),
    );
    let report = s.reload().await;
    assert_eq!(
        report.loaded,
        ["misbehave", "sample"],
        "{:?}",
        report.failed
    );
    s
}

fn bill(region: &str, lines: usize, attributes: Value) -> types::SettleRequest {
    serde_json::from_value(json!({
        "bill_id": "B-1", "currency": "CNY", "region": region,
        "lines": (0..lines).map(|i| json!({
            "code": format!("L{i}"), "description": "labour", "kind": if i % 2 == 0 { "Labour" } else { "Transport" },
            "quantity": "1.5", "unit_price": { "amount": "100.00", "currency": "CNY" } })).collect::<Vec<_>>(),
        "participants": [
            { "id": "hq", "role": "hq", "parent": null },
            { "id": "store-7", "role": "store", "parent": "hq" } ],
        "attributes": attributes.to_string(),
    }))
    .unwrap()
}

fn mode(m: &str) -> types::SettleRequest {
    bill("上海", 1, json!({ "mode": m }))
}

#[tokio::test]
async fn a_module_settles_exactly_for_tenants_that_enable_it() {
    let s = server_with(|_| {}).await;
    let host = s.host();
    let settled = host
        .settle("alpha", "sample", bill("上海", 3, json!({})))
        .await
        .unwrap()
        .unwrap();
    // labour lines ×1.1 in a tier-1 city: 2 × 1.5 × 110 + 1.5 × 100 = 480
    assert_eq!(settled.total.amount, "480.00");
    assert_eq!(
        settled.lines[0].note.as_deref(),
        Some("tier-1: regional factor 1.10")
    );
    let splits: Vec<&str> = settled
        .splits
        .iter()
        .map(|s| s.amount.amount.as_str())
        .collect();
    assert_eq!(
        splits,
        ["160.00", "320.00"],
        "hq 1 : store 2, adding up to the total"
    );
    let tier3 = host
        .settle("alpha", "sample", bill("洛阳", 3, json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tier3.total.amount, "435.00");

    assert_eq!(
        host.settle("beta", "sample", bill("上海", 1, json!({})))
            .await
            .unwrap_err(),
        CallError::NotEnabled {
            module: "sample".into()
        },
        "beta did not enable the module"
    );
    assert!(matches!(
        host.settle("alpha", "nonexistent", bill("上海", 1, json!({})))
            .await,
        Err(CallError::NotEnabled { .. })
    ));
    s.stop().await;
}

#[tokio::test]
async fn misbehaving_modules_fail_with_typed_errors_and_the_host_keeps_serving() {
    let s = server_with(|_| {}).await;
    let host = s.host();
    let call = |m: &'static str| {
        let host = host.clone();
        async move { host.settle("alpha", "misbehave", mode(m)).await }
    };
    assert_eq!(
        call("loop").await.unwrap_err(),
        CallError::FuelExhausted { limit: 10_000_000 }
    );
    assert_eq!(
        call("alloc").await.unwrap_err(),
        CallError::OutOfMemory { limit: 16 << 20 }
    );
    match call("panic").await.unwrap_err() {
        CallError::Panic { message } => {
            assert!(message.contains("boom: the bill has no lines"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    match call("recurse").await.unwrap_err() {
        CallError::Trap { message } => {
            assert!(message.contains("call stack exhausted"), "{message}")
        }
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    assert!(matches!(
        call("big-output").await.unwrap_err(),
        CallError::OutputTooLarge { limit: 32768, .. }
    ));
    let refusal = call("error")
        .await
        .expect("the host call succeeded")
        .expect_err("the module refused");
    assert_eq!(
        (refusal.code.as_str(), refusal.message.as_str()),
        ("bad-bill", "bill B-7 has no lines")
    );
    let huge = bill(
        "上海",
        1,
        json!({ "mode": "ok", "pad": "z".repeat(140_000) }),
    );
    assert!(matches!(
        host.settle("alpha", "misbehave", huge).await,
        Err(CallError::InputTooLarge { limit: 131072, .. })
    ));
    // a module cannot see the real clock
    let clock = call("clock").await.unwrap().unwrap();
    assert_eq!(clock.notes, ["clock=0"]);
    // still serving, for this module and others
    assert!(call("ok").await.unwrap().is_ok());
    assert!(
        host.settle("alpha", "sample", bill("上海", 2, json!({})))
            .await
            .unwrap()
            .is_ok()
    );
    // tag evaluation fails open: a module without the capability yields no decisions
    let profile: types::CustomerProfile = serde_json::from_value(json!({
        "id": "c1", "lifecycle_stage": "customer", "attributes": "{}", "tags": [],
        "stats": [{ "event_type": "order", "count_30d": 2, "count_90d": 3, "count_total": 9,
                    "seconds_since_last": 3600, "amount_total": "640.00" }] }))
    .unwrap();
    assert!(
        host.evaluate_tags("alpha", "misbehave", profile.clone())
            .await
            .is_empty()
    );
    let decisions = host.evaluate_tags("alpha", "sample", profile).await;
    assert_eq!(
        (decisions[0].tag.as_str(), decisions[0].apply),
        ("big-spender", true),
        "640 ≥ 500"
    );

    let data = s
        .ok(
            ALPHA,
            "{ plugins { id status calls errors { kind count } latencyP50Us } }",
            json!({}),
        )
        .await;
    let misbehave = data["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "misbehave")
        .unwrap();
    let errors: Vec<(String, i64)> = misbehave["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect();
    for kind in [
        "fuel_exhausted",
        "out_of_memory",
        "panic",
        "trap",
        "output_too_large",
        "missing_capability",
    ] {
        assert!(
            errors.iter().any(|(k, n)| k == kind && *n == 1),
            "{kind} counted once in {errors:?}"
        );
    }
    assert!(misbehave["latencyP50Us"].as_i64().is_some());
    s.stop().await;
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_deadline_when_fuel_allows_it() {
    let s = server_with(|c| c.plugins.fuel = u64::MAX / 2).await;
    let started = std::time::Instant::now();
    let err = s
        .host()
        .settle("alpha", "misbehave", mode("loop"))
        .await
        .unwrap_err();
    assert_eq!(err, CallError::DeadlineExceeded { ms: 50 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near the 50 ms deadline, not hung"
    );
    s.stop().await;
}

#[tokio::test]
async fn modules_that_do_not_match_their_manifest_or_this_host_are_refused() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let sample = plugin_wasm("sample");
    let mut wrong_hash = Install::sample();
    wrong_hash.id = "sample";
    wrong_hash.sha256 = Some("0000000000000000000000000000000000000000000000000000000000000000");
    install_plugin(&s.plugins_dir, "a-wrong-hash", &sample, &wrong_hash);
    let future = Install {
        id: "future",
        version: "1.0.0",
        abi: "2.0.0",
        capabilities: &["tag-templates"],
        sha256: None,
    };
    install_plugin(
        &s.plugins_dir,
        "b-future",
        &plugin_wasm("future-abi"),
        &future,
    );
    let lying = Install {
        abi: "1.0.0",
        ..future
    };
    install_plugin(
        &s.plugins_dir,
        "c-lying",
        &plugin_wasm("future-abi"),
        &lying,
    );
    let garbage = s.plugins_dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really a component").unwrap();
    install_plugin(
        &s.plugins_dir,
        "d-garbage",
        &garbage,
        &Install {
            id: "garbage",
            ..Install::misbehave()
        },
    );
    install_plugin(&s.plugins_dir, "e-sample", &sample, &Install::sample());
    install_plugin(
        &s.plugins_dir,
        "f-sample-again",
        &sample,
        &Install::sample(),
    );
    let networked = Install {
        id: "networked",
        ..Install::misbehave()
    };
    install_plugin(
        &s.plugins_dir,
        "h-networked",
        &plugin_wasm("networked"),
        &networked,
    );
    let caps = Install {
        capabilities: &["settlement"],
        ..Install::sample()
    };
    install_plugin(
        &s.plugins_dir,
        "g-caps",
        &sample,
        &Install {
            id: "sample",
            ..caps
        },
    );

    let report = s.reload().await;
    assert_eq!(report.loaded, ["sample"]);
    let error_of = |folder: &str| {
        report
            .failed
            .iter()
            .find(|f| f.source.ends_with(folder))
            .unwrap_or_else(|| panic!("{folder} should be refused"))
            .error
            .clone()
    };
    assert!(
        error_of("a-wrong-hash").contains("hash mismatch"),
        "{}",
        error_of("a-wrong-hash")
    );
    assert!(error_of("a-wrong-hash").contains("cargo xtask plugins"));
    let future = error_of("b-future");
    assert!(
        future.contains("built with SDK 2.0") && future.contains("supports 1.0–1.1"),
        "{future}"
    );
    assert!(
        error_of("c-lying").contains("exports shoal:plugin/module@2.0.0"),
        "{}",
        error_of("c-lying")
    );
    assert!(
        error_of("d-garbage").contains("not a valid WebAssembly component"),
        "{}",
        error_of("d-garbage")
    );
    assert!(
        error_of("f-sample-again").contains("duplicate module `sample` 1.0.0"),
        "{}",
        error_of("f-sample-again")
    );
    assert!(
        error_of("g-caps").contains("capabilities"),
        "{}",
        error_of("g-caps")
    );
    let networked = error_of("h-networked");
    assert!(networked.contains("imports wasi:sockets/"), "{networked}");

    let data = s
        .ok(ALPHA, "{ plugins { id status loadError } }", json!({}))
        .await;
    let failed = data["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "FAILED")
        .count();
    assert_eq!(failed, 7);
    s.stop().await;
}

#[tokio::test]
async fn hot_reload_under_concurrent_calls_fails_no_call() {
    let s = server_with(|_| {}).await;
    let host = s.host();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (host, stop) = (host.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match host
                        .settle("alpha", "sample", bill("北京", 20, json!({})))
                        .await
                    {
                        Ok(Ok(_)) => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    for version in ["1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5"] {
        install_plugin(
            &s.plugins_dir,
            "sample",
            &plugin_wasm("sample"),
            &Install {
                version,
                ..Install::sample()
            },
        );
        let report = s.reload().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        let (ok, failed) = worker.await.unwrap();
        assert!(failed.is_empty(), "calls failed during reload: {failed:?}");
        total += ok;
    }
    assert!(total > 10, "calls ran during the reloads ({total})");
    let data = s.ok(ALPHA, "{ plugins { id version } }", json!({})).await;
    let sample = data["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "sample")
        .unwrap()
        .clone();
    assert_eq!(sample["version"], "1.0.5");
    s.stop().await;
}

#[tokio::test]
async fn graphql_shows_modules_per_tenant_and_plugins_to_admins() {
    let s = server_with(|_| {}).await;
    let modules = s
        .ok(ALPHA, "{ modules { id industry capabilities params tagTemplates { id rule params { name defaultValue } } sopTemplates { id definition } } }", json!({}))
        .await;
    let sample = modules["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "sample")
        .unwrap();
    assert_eq!(sample["industry"], "other");
    assert_eq!(
        sample["capabilities"],
        json!([
            "tag-templates",
            "sop-templates",
            "settlement",
            "evaluate-tags"
        ])
    );
    assert_eq!(sample["params"]["big_spender"], 500);
    assert_eq!(
        sample["tagTemplates"][0]["rule"],
        "count(order, 90d) >= ${orders}"
    );
    assert_eq!(sample["tagTemplates"][0]["params"][0]["defaultValue"], 3);
    assert_eq!(
        sample["sopTemplates"][0]["definition"]["steps"][1]["delay_seconds"],
        86400
    );
    let beta = s.ok(BETA, "{ modules { id } }", json!({})).await;
    assert_eq!(beta["modules"], json!([]), "beta enabled nothing");

    let plugins = s
        .ok(
            ALPHA,
            "{ plugins { id version abiVersion sha256 status tenants } }",
            json!({}),
        )
        .await;
    let sample = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "sample")
        .unwrap();
    assert_eq!(sample["abiVersion"], "1.1.0");
    assert_eq!(sample["tenants"], json!(["alpha"]));
    assert_eq!(sample["sha256"].as_str().unwrap().len(), 64);
    let forbidden = s.err(ALPHA_READONLY, "{ plugins { id } }", json!({})).await;
    assert_eq!(code(&forbidden), "FORBIDDEN");
    let forbidden = s
        .err(
            ALPHA_READONLY,
            "mutation { reloadPlugins { loaded } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&forbidden), "FORBIDDEN");

    std::fs::remove_dir_all(s.plugins_dir.join("misbehave")).unwrap();
    let reloaded = s
        .ok(
            ALPHA,
            "mutation { reloadPlugins { loaded failed { plugin error } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reloaded["reloadPlugins"],
        json!({ "loaded": ["sample"], "failed": [] })
    );
    s.stop().await;
}
