//! The plugin runtime's costs, side by side in one run:
//! - a fresh instance + `settle` on a 20-line bill through the `sample` module;
//! - the same rule compiled natively into the host (the module's own Rust code);
//! - a warm no-op call (an export that returns nothing, on an existing instance);
//! - what a call to a plugin ABI 1.0 module adds: its request converted to 1.0 and its
//!   20-line settlement converted to 1.1, field by field (`abi::calls_v1_0`, what calls use)
//!   and through serde (`abi::guest::{downgrade, upgrade}`, what loads use);
//! - loading a precompiled module from the disk cache;
//! - the trust store's verdict on it (read `manifest.sig`, verify Ed25519 over the
//!   manifest), which every load in production adds.
//!
//! Run with `cargo xtask bench` (it builds the test modules first).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use shoal_base::config::ConfigSource;
use shoal_plugin_host::{Manifest, Params, Runtime, judge_trust, sha256_hex, types};

mod common;

const ROUNDS: usize = 5000;

fn stats(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<44} median {:>10.2?}   p99 {:>10.2?}   ({} runs)",
        at(0.5),
        at(0.99),
        samples.len()
    );
    at(0.5)
}

fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../target/plugin-fixtures/wasm32-wasip2/plugin/shoal_plugin_{name}.wasm"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask bench`, which builds it",
        path.display()
    );
    path
}

/// Installs a module built with the workspace's SDK (plugin ABI 1.1).
fn install(dir: &std::path::Path, id: &str, wasm: &std::path::Path, caps: &str) {
    let bytes = std::fs::read(wasm).unwrap();
    std::fs::create_dir_all(dir.join(id)).unwrap();
    std::fs::write(dir.join(id).join(format!("{id}.wasm")), &bytes).unwrap();
    std::fs::write(
        dir.join(id).join("manifest.toml"),
        format!("id = \"{id}\"\nversion = \"1.0.0\"\nabi_version = \"1.1.0\"\nsha256 = \"{}\"\ncapabilities = [{caps}]\n", sha256_hex(&bytes)),
    )
    .unwrap();
}

const KINDS: [&str; 3] = ["Labour", "Part", "Transport"];

fn bill_json() -> serde_json::Value {
    json!({
        "bill_id": "B-1", "currency": "CNY", "region": "上海",
        "lines": (0..20).map(|i| json!({
            "code": format!("L{i}"), "description": "line", "kind": KINDS[i % 3],
            "quantity": "1.5", "unit_price": { "amount": format!("{}.90", 10 + i), "currency": "CNY" } })).collect::<Vec<_>>(),
        "participants": [
            { "id": "hq", "role": "hq", "parent": null },
            { "id": "agent", "role": "agent", "parent": "hq" },
            { "id": "store", "role": "store", "parent": "agent" } ],
        "attributes": "{}"
    })
}

fn main() {
    let params = json!({ "tier1_cities": ["上海", "北京"], "split_weights": { "hq": 2, "agent": 3, "store": 5 } });
    let dir = std::env::temp_dir().join(format!("shoal-plugin-bench-{}", std::process::id()));
    let mut limits = shoal_server::load_config(&ConfigSource::default())
        .unwrap()
        .plugins;
    limits.dir = dir.join("plugins");
    limits.cache_dir = dir.join("cache");
    install(
        &limits.dir,
        "sample",
        &fixture("sample"),
        "\"tag-templates\", \"sop-templates\", \"settlement\", \"evaluate-tags\"",
    );
    install(
        &limits.dir,
        "misbehave",
        &fixture("misbehave"),
        "\"settlement\"",
    );
    let runtime = Runtime::new(&limits).unwrap();

    // load: the first compiles (and fills the cache), the rest deserialize
    let started = Instant::now();
    let sample = runtime.load_dir(&limits.dir.join("sample")).unwrap();
    let compile = started.elapsed();
    assert!(!sample.from_cache);
    let loads: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let loaded = runtime.load_dir(&limits.dir.join("sample")).unwrap();
            assert!(loaded.from_cache);
            t.elapsed()
        })
        .collect();
    println!(
        "{:<44} {compile:>10.2?}",
        "plugin load, compiling (first time)"
    );
    let load = stats("plugin load, precompiled from cache", loads);

    // the trust verdict a production load adds
    let folder = limits.dir.join("sample");
    let key = shoal_signing::SigningKey::generate("bench").unwrap().0;
    let mut signatures = shoal_signing::SignatureFile::default();
    signatures.add(key.sign(&std::fs::read(folder.join("manifest.toml")).unwrap()));
    std::fs::write(folder.join("manifest.sig"), signatures.render()).unwrap();
    let store = shoal_base::config::TrustConfig {
        keys: vec![shoal_base::config::TrustedKey {
            id: "bench".into(),
            public_key: key.public_key().to_string(),
            modules: vec!["sample".into()],
            valid_from: None,
            valid_until: None,
        }],
        ..Default::default()
    };
    let verdicts: Vec<Duration> = (0..ROUNDS / 10)
        .map(|_| {
            let t = Instant::now();
            let file = Manifest::read_file(&folder).unwrap();
            let verdict = judge_trust(&file, &store, chrono::Utc::now());
            let elapsed = t.elapsed();
            assert!(verdict.is_trusted());
            elapsed
        })
        .collect();
    let verdict = stats("read manifest + trust verdict (Ed25519)", verdicts);

    let request: types::SettleRequest = serde_json::from_value(bill_json()).unwrap();
    let host_params = Arc::new(Params::from_json(params.as_object().unwrap().clone()));
    let mut wasm = Vec::with_capacity(ROUNDS);
    let mut native = Vec::with_capacity(ROUNDS);
    let native_request: shoal_sdk::SettleRequest = serde_json::from_value(bill_json()).unwrap();
    shoal_sdk::params::set_for_tests(params.clone());
    let mut totals = (String::new(), String::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let (r, _) = runtime.call(&sample, host_params.clone(), |m, s| m.settle(s, &request));
        wasm.push(t.elapsed());
        totals.0 = r.unwrap().unwrap().total.amount;
        let t = Instant::now();
        let s = shoal_plugin_sample::settle_bill(std::hint::black_box(&native_request)).unwrap();
        native.push(t.elapsed());
        totals.1 = s.total.amount;
    }
    assert_eq!(totals.0, totals.1, "the wasm and native rule agree");
    let w = stats("fresh instance + settle (20 lines), wasm", wasm);
    let empty = Arc::new(Params::default());
    let fresh_noop: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let (r, _) = runtime.call(&sample, empty.clone(), |m, s| m.tag_templates(s));
            let elapsed = t.elapsed();
            r.unwrap();
            elapsed
        })
        .collect();
    stats("fresh instance + tag-templates (1 template)", fresh_noop);
    let n = stats("same rule compiled natively", native);

    // a 1.0 module's settle: the request down to 1.0, the settlement up to 1.1
    use shoal_plugin_host::abi::{calls_v1_0, guest, v1_0::shoal::plugin::types as v1_0};
    let answer: types::Settlement = runtime
        .call(&sample, host_params.clone(), |m, s| m.settle(s, &request))
        .0
        .unwrap()
        .unwrap();
    let old_answer: v1_0::Settlement = guest::downgrade(&answer).unwrap();
    let conversions: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let down: v1_0::SettleRequest = guest::downgrade(&request).unwrap();
            let up: types::Settlement = guest::upgrade(old_answer.clone()).unwrap();
            let elapsed = t.elapsed();
            std::hint::black_box((down, up));
            elapsed
        })
        .collect();
    let serde = stats("ABI 1.0 conversions, through serde", conversions);
    let conversions: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let down = calls_v1_0::settle_request(&request);
            let up = calls_v1_0::settlement(old_answer.clone());
            let elapsed = t.elapsed();
            std::hint::black_box((down, up));
            elapsed
        })
        .collect();
    let c = stats("ABI 1.0 conversions, field by field", conversions);

    // warm no-op: one instance, many calls of an export that does nothing
    let mut warm_limits = limits.clone();
    warm_limits.fuel = u64::MAX / 4;
    warm_limits.deadline_ms = 60_000;
    warm_limits.cache_dir = limits.cache_dir.clone();
    let warm_runtime = Runtime::new(&warm_limits).unwrap();
    let misbehave = warm_runtime
        .load_dir(&limits.dir.join("misbehave"))
        .unwrap();
    let (samples, _) = warm_runtime.call(&misbehave, Arc::new(Params::default()), |m, s| {
        m.tag_templates(&mut *s)?;
        let mut samples = Vec::with_capacity(ROUNDS * 4);
        for _ in 0..ROUNDS * 4 {
            let t = Instant::now();
            m.tag_templates(&mut *s)?;
            samples.push(t.elapsed());
        }
        Ok(samples)
    });
    let warm = stats("warm no-op call (existing instance)", samples.unwrap());

    println!();
    println!(
        "ratio wasm / native settle:          {:>8.1}x",
        w.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "ratio 1.0 conversions / 1.1 settle:  {:>8.3}x (through serde {:.3}x)",
        c.as_secs_f64() / w.as_secs_f64(),
        serde.as_secs_f64() / w.as_secs_f64()
    );
    println!(
        "ratio trust verdict / cached load:   {:>8.3}x",
        verdict.as_secs_f64() / load.as_secs_f64()
    );
    println!(
        "goals: fresh+settle ≤ 40 µs: {w:.2?}; warm no-op ≤ 300 ns: {warm:.2?}; cached load ≤ 5 ms: {load:.2?}"
    );
    common::report_peak_memory("plugins");
    let _ = std::fs::remove_dir_all(&dir);
}
