//! The plugin supply chain: vendors sign module manifests with Ed25519 keys (checked
//! against OpenSSL, an independent implementation), the trust store decides which keys may
//! sign which modules, production refuses every untrusted module with its own reason,
//! development warns; an upgrade from version A to version B (different code) under load
//! fails no call, bills record the version that settled them and still replay on it; a
//! tenant pins a version; a rollback is one mutation.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};
use shoal_base::config::{TrustMode, TrustedKey};
use shoal_signing::{SignatureFile, SigningKey};

use crate::harness::{
    ALPHA, BETA, Backend, Install, TestServer, install_plugin, plugin_wasm, plugin_wasm_v2,
};
use crate::settlement::reference_data;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-supply-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    run(Command::new("openssl").args(args).current_dir(dir))
}

fn shoal(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    run(Command::new(SHOAL)
        .args(args)
        .current_dir(dir)
        .env_remove("SHOAL_CONFIG")
        .envs(env.iter().copied()))
}

/// The `sample` module installed as version `version` in `plugins/<folder>`.
fn install(plugins: &Path, folder: &str, version: &str, wasm: &Path) -> PathBuf {
    install_plugin(
        plugins,
        folder,
        wasm,
        &Install {
            version,
            ..Install::sample()
        },
    );
    plugins.join(folder)
}

/// Signs a module folder as `shoal plugin sign` does.
fn sign(dir: &Path, key: &SigningKey) {
    let manifest = std::fs::read(dir.join("manifest.toml")).unwrap();
    let mut file = SignatureFile::default();
    file.add(key.sign(&manifest));
    std::fs::write(dir.join("manifest.sig"), file.render()).unwrap();
}

fn key(id: &str) -> SigningKey {
    SigningKey::generate(id).unwrap().0
}

fn trusted(key: &SigningKey, modules: &[&str]) -> TrustedKey {
    TrustedKey {
        id: key.id.clone(),
        public_key: key.public_key().to_string(),
        modules: modules.iter().map(|m| m.to_string()).collect(),
        valid_from: None,
        valid_until: None,
    }
}

/// Keys made by `shoal plugin keygen` are the keys OpenSSL reads; signatures made by
/// `shoal plugin sign` are the ones OpenSSL makes and verifies (Ed25519 is deterministic),
/// and OpenSSL's own keys sign modules the host trusts.
#[test]
fn shoal_and_openssl_agree_on_keys_and_signatures() {
    let dir = temp_dir("openssl");
    let module = install(&dir, "mod", "1.0.0", &plugin_wasm("sample"));
    let (ok, printed) = shoal(
        &["plugin", "keygen", "--id", "acme", "--out", "acme.key"],
        &dir,
        &[],
    );
    assert!(ok, "{printed}");
    let public = printed
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .expect("the public key is printed")
        .trim()
        .to_owned();
    // OpenSSL derives the same public key from the private key file
    let (ok, out) = openssl(
        &[
            "pkey",
            "-in",
            "acme.key",
            "-pubout",
            "-outform",
            "DER",
            "-out",
            "acme.pub.der",
        ],
        &dir,
    );
    assert!(ok, "openssl reads the key shoal wrote: {out}");
    let der = std::fs::read(dir.join("acme.pub.der")).unwrap();
    assert_eq!(
        format!("ed25519:{}", B64.encode(&der[der.len() - 32..])),
        public
    );
    // a key file is never overwritten
    let (ok, out) = shoal(
        &["plugin", "keygen", "--id", "acme", "--out", "acme.key"],
        &dir,
        &[],
    );
    assert!(!ok && out.contains("exists"), "{out}");

    // shoal signs; OpenSSL verifies the signature over the manifest's exact bytes
    let (ok, out) = shoal(&["plugin", "sign", "mod", "--key", "acme.key"], &dir, &[]);
    assert!(ok, "{out}");
    let sigs = SignatureFile::parse(&std::fs::read_to_string(module.join("manifest.sig")).unwrap())
        .unwrap();
    assert_eq!(sigs.signatures[0].key, "acme");
    std::fs::write(
        dir.join("sig.bin"),
        B64.decode(&sigs.signatures[0].signature).unwrap(),
    )
    .unwrap();
    openssl(
        &["pkey", "-in", "acme.key", "-pubout", "-out", "acme.pub.pem"],
        &dir,
    );
    let verify = |sig: &str| {
        openssl(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "acme.pub.pem",
                "-rawin",
                "-in",
                "mod/manifest.toml",
                "-sigfile",
                sig,
            ],
            &dir,
        )
    };
    let (ok, out) = verify("sig.bin");
    assert!(
        ok && out.contains("Signature Verified Successfully"),
        "{out}"
    );
    let mut bad = std::fs::read(dir.join("sig.bin")).unwrap();
    bad[10] ^= 1;
    std::fs::write(dir.join("bad.bin"), bad).unwrap();
    assert!(!verify("bad.bin").0, "a changed signature must not verify");

    // an OpenSSL key signs through shoal, byte for byte as OpenSSL itself signs
    openssl(
        &["genpkey", "-algorithm", "ed25519", "-out", "ossl.pem"],
        &dir,
    );
    let (ok, out) = shoal(
        &["plugin", "sign", "mod", "--key", "ossl.pem", "--id", "ossl"],
        &dir,
        &[],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "ossl.pem",
            "-rawin",
            "-in",
            "mod/manifest.toml",
            "-out",
            "ossl.sig",
        ],
        &dir,
    );
    assert!(ok, "{out}");
    let sigs = SignatureFile::parse(&std::fs::read_to_string(module.join("manifest.sig")).unwrap())
        .unwrap();
    assert_eq!(
        sigs.signatures.len(),
        2,
        "acme's signature is kept beside ossl's"
    );
    let ours = &sigs
        .signatures
        .iter()
        .find(|s| s.key == "ossl")
        .unwrap()
        .signature;
    assert_eq!(
        B64.decode(ours).unwrap(),
        std::fs::read(dir.join("ossl.sig")).unwrap()
    );

    // `shoal plugin verify` judges the folder with the configured trust store
    openssl(
        &[
            "pkey", "-in", "ossl.pem", "-pubout", "-outform", "DER", "-out", "ossl.der",
        ],
        &dir,
    );
    let der = std::fs::read(dir.join("ossl.der")).unwrap();
    let ossl_public = format!("ed25519:{}", B64.encode(&der[der.len() - 32..]));
    let store = format!("[{{id=\"ossl\",public_key=\"{ossl_public}\",modules=[\"sample\"]}}]");
    let (ok, out) = shoal(
        &["plugin", "verify", "mod"],
        &dir,
        &[("SHOAL_PLUGINS__TRUST__KEYS", &store)],
    );
    assert!(ok && out.contains("trusted, signed by key `ossl`"), "{out}");
    let (ok, out) = shoal(&["plugin", "verify", "mod"], &dir, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("NOT TRUSTED") && out.contains("the trust store does not know"),
        "{out}"
    );
}

/// `shoal plugin rollback` withdraws the newest version from the plugins folder; with one
/// version left, there is nothing to roll back to.
#[test]
fn the_rollback_command_withdraws_the_newest_version() {
    let dir = temp_dir("rollback");
    let plugins = dir.join("plugins");
    install(&plugins, "sample-a", "1.9.0", &plugin_wasm("sample"));
    install(&plugins, "sample-b", "1.10.0", &plugin_wasm("sample"));
    // a pre-release runs for nobody without a pin: the rollback leaves it
    install(&plugins, "sample-c", "2.0.0-rc.1", &plugin_wasm("sample"));
    let env = [("SHOAL_PLUGINS__DIR", plugins.to_str().unwrap())];
    let (ok, out) = shoal(&["plugin", "rollback", "sample"], &dir, &env);
    assert!(ok, "{out}");
    assert!(
        out.contains("`sample` 1.10.0 withdrawn")
            && out.contains("1.9.0 runs after the next reload"),
        "{out}"
    );
    assert!(!plugins.join("sample-b").exists());
    assert!(
        plugins
            .join(".withdrawn/sample-b@1.10.0/manifest.toml")
            .is_file()
    );
    let (ok, out) = shoal(&["plugin", "rollback", "sample"], &dir, &env);
    assert!(
        !ok && out.contains("1.9.0 has no older version installed"),
        "{out}"
    );
    assert!(plugins.join("sample-c").exists());
}

/// A server whose plugins folder holds eleven versions of `sample`, signed (or not) every
/// way that matters, under `mode`.
async fn judged(mode: TrustMode) -> TestServer {
    let acme = key("acme");
    let other = key("other");
    let stranger = key("stranger");
    let revoked = key("revoked");
    let expired = key("expired");
    let (rotating_out, rotating_in) = (key("acme-2025"), key("acme-2026"));
    let early = key("acme-2027");
    let now = chrono::Utc::now();
    let keys = vec![
        trusted(&acme, &["sample"]),
        trusted(&other, &["acme-*"]),
        trusted(&revoked, &["*"]),
        TrustedKey {
            valid_until: Some(now - chrono::Duration::days(1)),
            ..trusted(&expired, &["sample"])
        },
        // a rotation: the old key keeps working until the overlap ends
        TrustedKey {
            valid_until: Some(now + chrono::Duration::days(30)),
            ..trusted(&rotating_out, &["sample"])
        },
        trusted(&rotating_in, &["sample"]),
        // the next key, announced before its time
        TrustedKey {
            valid_from: Some(now + chrono::Duration::days(30)),
            ..trusted(&early, &["sample"])
        },
    ];
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.plugins.trust.mode = mode;
        c.plugins.trust.keys = keys;
        c.plugins.trust.revoked_keys = vec!["revoked".into()];
        c.plugins.trust.revoked_modules = vec!["sample@1.0.8".into()];
    })
    .await
    .unwrap();
    let wasm = plugin_wasm("sample");
    let p = &s.plugins_dir;
    sign(&install(p, "v1", "1.0.1", &wasm), &acme);
    install(p, "v2", "1.0.2", &wasm); // unsigned
    let tampered_wasm = install(p, "v3", "1.0.3", &wasm);
    sign(&tampered_wasm, &acme);
    let mut bytes = std::fs::read(tampered_wasm.join("sample.wasm")).unwrap();
    bytes.push(0);
    std::fs::write(tampered_wasm.join("sample.wasm"), bytes).unwrap();
    let tampered_manifest = install(p, "v4", "1.0.4", &wasm);
    sign(&tampered_manifest, &acme);
    // after signing, someone widens what the module may see: the signature no longer holds
    let text = std::fs::read_to_string(tampered_manifest.join("manifest.toml")).unwrap();
    std::fs::write(
        tampered_manifest.join("manifest.toml"),
        format!("{text}sensitive_fields = [\"attributes.annual_income\"]\n"),
    )
    .unwrap();
    sign(&install(p, "v5", "1.0.5", &wasm), &other);
    sign(&install(p, "v6", "1.0.6", &wasm), &stranger);
    sign(&install(p, "v7", "1.0.7", &wasm), &revoked);
    sign(&install(p, "v8", "1.0.8", &wasm), &acme);
    sign(&install(p, "v9", "1.0.9", &wasm), &expired);
    sign(&install(p, "v10", "1.0.10", &wasm), &rotating_out);
    sign(&install(p, "v11", "1.0.11", &wasm), &rotating_in);
    sign(&install(p, "v12", "1.0.12", &wasm), &early);
    s.reload().await;
    s
}

const PLUGINS: &str =
    "{ plugins { id version status loadError tenants signer trust trustReason } }";

fn by_version(plugins: &Value, version: &str) -> Value {
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["version"] == version)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The load errors of the refused versions.
fn load_errors(plugins: &Value) -> Vec<&str> {
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "FAILED")
        .filter_map(|p| p["loadError"].as_str())
        .collect()
}

fn refusal(plugins: &Value, version: &str) -> String {
    let needle = format!("module `sample` {version} ");
    load_errors(plugins)
        .into_iter()
        .find(|e| e.contains(&needle))
        .unwrap_or_else(|| panic!("no refusal of {version} in {plugins}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_every_untrusted_module_with_its_own_reason() {
    let s = judged(TrustMode::Production).await;
    let plugins = s.ok(ALPHA, PLUGINS, json!({})).await;
    for (version, signer) in [
        ("1.0.1", "acme"),
        ("1.0.10", "acme-2025"),
        ("1.0.11", "acme-2026"),
    ] {
        let p = by_version(&plugins, version);
        assert_eq!(p["status"], "LOADED", "{version}: {plugins}");
        assert_eq!(p["trust"], "TRUSTED");
        assert_eq!(p["signer"], signer);
    }
    // the tenant runs the newest trusted version
    assert_eq!(by_version(&plugins, "1.0.11")["tenants"], json!(["alpha"]));
    // refused versions run for nobody
    assert_eq!(by_version(&plugins, "1.0.12")["tenants"], json!([]));
    assert_eq!(by_version(&plugins, "1.0.1")["tenants"], json!([]));
    let hash = load_errors(&plugins)
        .into_iter()
        .find(|e| e.contains("hash mismatch"))
        .expect("the tampered wasm is refused");
    assert!(hash.contains("v3"), "{hash}");
    for (version, reason) in [
        ("1.0.2", "not signed: no manifest.sig"),
        (
            "1.0.4",
            "the signature by key `acme` does not match manifest.toml",
        ),
        ("1.0.5", "key `other` may sign `acme-*` only, not `sample`"),
        (
            "1.0.6",
            "signed by key `stranger`, which the trust store does not know",
        ),
        (
            "1.0.7",
            "signed by key `revoked`, which is revoked (plugins.trust.revoked_keys)",
        ),
        (
            "1.0.8",
            "version sample@1.0.8 is revoked (plugins.trust.revoked_modules)",
        ),
        ("1.0.9", "key `expired` was trusted until"),
        ("1.0.12", "key `acme-2027` is trusted only from"),
    ] {
        let error = refusal(&plugins, version);
        assert!(
            error.contains("refused (plugins.trust.mode = production)") && error.contains(reason),
            "{version}: `{error}` should say `{reason}`"
        );
    }
    assert_eq!(load_errors(&plugins).len(), 9);
    // a refused version still shows who signed it and the verdict
    let revoked = by_version(&plugins, "1.0.7");
    assert_eq!(revoked["status"], "FAILED");
    assert_eq!(revoked["signer"], "revoked");
    assert_eq!(revoked["trust"], "UNTRUSTED");
    assert!(
        revoked["trustReason"]
            .as_str()
            .unwrap()
            .contains("is revoked"),
        "{revoked}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_loads_untrusted_modules_and_says_why() {
    let s = judged(TrustMode::Development).await;
    let plugins = s.ok(ALPHA, PLUGINS, json!({})).await;
    let unsigned = by_version(&plugins, "1.0.2");
    assert_eq!(unsigned["status"], "LOADED");
    assert_eq!(unsigned["trust"], "UNTRUSTED");
    assert_eq!(unsigned["signer"], Value::Null);
    assert!(
        unsigned["trustReason"]
            .as_str()
            .unwrap()
            .starts_with("not signed"),
        "{unsigned}"
    );
    let wrong = by_version(&plugins, "1.0.5");
    assert_eq!(wrong["signer"], "other");
    assert!(
        wrong["trustReason"]
            .as_str()
            .unwrap()
            .contains("may sign `acme-*` only"),
        "{wrong}"
    );
    // a wasm that does not match its manifest is refused in every mode
    let hash = load_errors(&plugins);
    assert_eq!(hash.len(), 1, "{plugins}");
    assert!(hash[0].contains("hash mismatch"));
    s.stop().await;
}

const SETTLE: &str = "mutation($input: SettleBillInput!) { settleBill(input: $input) { id total { amount } module { version sha256 } } }";

fn bill(n: usize) -> Value {
    json!({ "input": { "reference": format!("POS-{n}"), "region": "上海", "currency": "CNY",
        "participantIds": ["store-7"], "lines": [{ "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "1" }] } })
}

/// What each version charges for one installation in a tier-1 city.
fn expected_total(version: &str) -> &'static str {
    match version {
        "1.0.0" => "110.00",
        "2.0.0" => "120.00",
        other => panic!("a bill settled by version {other}"),
    }
}

async fn verify(s: &TestServer, bill: &str) -> Value {
    s.ok(
        ALPHA,
        "query($id: ID!) { verifyBill(id: $id) { status detail } }",
        json!({ "id": bill }),
    )
    .await["verifyBill"]
        .clone()
}

struct Call {
    started: Instant,
    /// When its answer arrived: a request sent before the swap may still be read by the
    /// server after it (the server is busy reloading), so only calls answered before the
    /// swap began are known to have run on A.
    finished: Instant,
    bill: String,
    version: String,
    total: String,
}

async fn an_upgrade_from_a_to_b_under_load_fails_no_call(s: &TestServer) {
    install(
        &s.plugins_dir,
        "sample-1.0.0",
        "1.0.0",
        &plugin_wasm("sample"),
    );
    let v2 = plugin_wasm_v2();
    s.reload().await;
    reference_data(s).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, counter) = (stop.clone(), counter.clone());
            let (addr, key) = (s.addr, ALPHA);
            tokio::spawn(async move {
                let (mut calls, mut failures) = (Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let started = Instant::now();
                    let body = json!({ "query": SETTLE, "variables": bill(n) }).to_string();
                    let (_, text) = crate::harness::http(
                        addr,
                        "POST",
                        "/graphql",
                        &format!(
                            "Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
                        ),
                        &body,
                    )
                    .await;
                    let answer: Value =
                        serde_json::from_str(&text).unwrap_or(json!({ "raw": text }));
                    let b = &answer["data"]["settleBill"];
                    match (b["id"].as_str(), b["module"]["version"].as_str()) {
                        (Some(id), Some(version)) => calls.push(Call {
                            started,
                            finished: Instant::now(),
                            bill: id.to_owned(),
                            version: version.to_owned(),
                            total: b["total"]["amount"].as_str().unwrap_or("").to_owned(),
                        }),
                        _ => failures.push(answer.to_string()),
                    }
                }
                (calls, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let swap_started = Instant::now();
    install(&s.plugins_dir, "sample-2.0.0", "2.0.0", &v2);
    let report = s.reload().await;
    let swap_done = Instant::now();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut calls = Vec::new();
    for worker in workers {
        let (done, failures) = worker.await.unwrap();
        assert!(
            failures.is_empty(),
            "calls failed during the upgrade: {failures:?}"
        );
        calls.extend(done);
    }
    let mut seen = std::collections::BTreeSet::new();
    for call in &calls {
        // every call is answered by one version entirely: its total is that version's rule
        assert_eq!(
            call.total,
            expected_total(&call.version),
            "bill {}",
            call.bill
        );
        if call.finished < swap_started {
            assert_eq!(
                call.version, "1.0.0",
                "a call answered before the swap ran on A"
            );
        }
        if call.started > swap_done {
            assert_eq!(
                call.version, "2.0.0",
                "a call started after the swap runs B"
            );
        }
        seen.insert(call.version.clone());
    }
    assert_eq!(
        seen.len(),
        2,
        "calls ran on both sides of the swap: {seen:?}"
    );
    let before = calls.iter().filter(|c| c.finished < swap_started).count();
    let after = calls.iter().filter(|c| c.started > swap_done).count();
    assert!(
        before >= 4 && after >= 4,
        "the load ran before ({before}) and after ({after}) the swap"
    );
    let a_bill = calls
        .iter()
        .find(|c| c.version == "1.0.0")
        .unwrap()
        .bill
        .clone();
    let b_bill = calls
        .iter()
        .find(|c| c.version == "2.0.0")
        .unwrap()
        .bill
        .clone();
    // both versions are installed: each bill replays on the version that settled it
    assert_eq!(verify(s, &a_bill).await["status"], "IDENTICAL");
    assert_eq!(verify(s, &b_bill).await["status"], "IDENTICAL");

    // a rollback is one mutation: B is withdrawn, A settles again
    let rolled = s
        .ok(
            ALPHA,
            "mutation { rollbackPlugin(id: \"sample\") { loaded failed { plugin error } } }",
            json!({}),
        )
        .await;
    assert_eq!(rolled["rollbackPlugin"]["failed"], json!([]));
    let after = s.ok(ALPHA, SETTLE, bill(100_000)).await["settleBill"].clone();
    assert_eq!(after["module"]["version"], "1.0.0");
    assert_eq!(after["total"]["amount"], "110.00");
    let refused = s
        .err(
            ALPHA,
            "mutation { rollbackPlugin(id: \"sample\") { loaded } }",
            json!({}),
        )
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("1.0.0 has no older version loaded"),
        "{refused}"
    );

    // A uninstalled, B back: A's bills still replay on A (kept in the archive)
    std::fs::remove_dir_all(s.plugins_dir.join("sample-1.0.0")).unwrap();
    install(&s.plugins_dir, "sample-2.0.0", "2.0.0", &v2);
    s.reload().await;
    let plugins = s.ok(ALPHA, "{ plugins { version } }", json!({})).await;
    assert_eq!(plugins["plugins"], json!([{ "version": "2.0.0" }]));
    assert_eq!(verify(s, &a_bill).await["status"], "IDENTICAL");
    assert_eq!(verify(s, &b_bill).await["status"], "IDENTICAL");

    // revoked in production: the archived A is judged again and not run, not even to replay
    let mut config = crate::harness::base_config();
    config.plugins.trust.mode = TrustMode::Production;
    config.plugins.trust.revoked_modules = vec!["sample@1.0.0".into()];
    tokio::task::block_in_place(|| s.host().reload(&config));
    let refused = verify(s, &a_bill).await;
    assert_eq!(refused["status"], "MODULE_UNAVAILABLE");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("archived, but the trust store refuses it")
            && detail.contains("sample@1.0.0 is revoked"),
        "{detail}"
    );
}

crate::on_both_backends!(an_upgrade_from_a_to_b_under_load_fails_no_call);

/// A tenant pins a version: it runs that one while another tenant runs the newest; a pin
/// naming a version that is not installed fails its calls with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_runs_the_version_it_pins() {
    for (pin, expected) in [
        ("1.0.0", Some("1.0.0")),
        ("1.5.0", None),
        ("2.0.0", Some("2.0.0")),
    ] {
        let s = TestServer::start_with(Backend::Sqlite, |c| {
            let alpha = c.tenants.get_mut("alpha").unwrap();
            alpha.modules.get_mut("sample").unwrap().version = Some(pin.into());
        })
        .await
        .unwrap();
        install(
            &s.plugins_dir,
            "sample-1.0.0",
            "1.0.0",
            &plugin_wasm("sample"),
        );
        install(&s.plugins_dir, "sample-2.0.0", "2.0.0", &plugin_wasm_v2());
        s.reload().await;
        reference_data(&s).await;
        match expected {
            Some(version) => {
                let b = s.ok(ALPHA, SETTLE, bill(1)).await["settleBill"].clone();
                assert_eq!(b["module"]["version"], version);
                assert_eq!(b["total"]["amount"], expected_total(version));
                let plugins = s.ok(ALPHA, PLUGINS, json!({})).await;
                let other = if version == "1.0.0" { "2.0.0" } else { "1.0.0" };
                assert_eq!(by_version(&plugins, version)["tenants"], json!(["alpha"]));
                assert_eq!(by_version(&plugins, other)["tenants"], json!([]));
                // the version a tenant pins is not rolled back from under it
                if version == "2.0.0" {
                    let rollback = "mutation { rollbackPlugin(id: \"sample\") { loaded } }";
                    let e = s.err(ALPHA, rollback, json!({})).await;
                    assert!(
                        e["message"]
                            .as_str()
                            .unwrap()
                            .contains("`sample` 2.0.0 is pinned by tenant(s) alpha"),
                        "{e}"
                    );
                }
            }
            None => {
                let e = s.err(ALPHA, SETTLE, bill(1)).await;
                let message = e["message"].as_str().unwrap();
                assert!(
                    message.contains(
                        "`sample`: the tenant pins version 1.5.0, which is not installed"
                    ),
                    "{e}"
                );
            }
        }
        s.stop().await;
    }
}

/// One tenant's administrator cannot roll back a version other tenants run, nor learn
/// which tenants those are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_roll_back_what_other_tenants_run() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        let sample = c.tenants["alpha"].modules["sample"].clone();
        c.tenants
            .get_mut("beta")
            .unwrap()
            .modules
            .insert("sample".into(), sample);
    })
    .await
    .unwrap();
    install(
        &s.plugins_dir,
        "sample-1.0.0",
        "1.0.0",
        &plugin_wasm("sample"),
    );
    install(&s.plugins_dir, "sample-2.0.0", "2.0.0", &plugin_wasm_v2());
    s.reload().await;
    let plugins = s.ok(BETA, PLUGINS, json!({})).await;
    assert_eq!(by_version(&plugins, "2.0.0")["tenants"], json!(["beta"]));
    assert!(!plugins.to_string().contains("alpha"), "{plugins}");
    let rollback = "mutation { rollbackPlugin(id: \"sample\") { loaded } }";
    let e = s.err(BETA, rollback, json!({})).await;
    assert_eq!(crate::harness::code(&e), "FORBIDDEN", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("other tenants run `sample` 2.0.0")
            && !e["message"].as_str().unwrap().contains("alpha"),
        "{e}"
    );
    assert!(
        s.plugins_dir.join("sample-2.0.0").exists(),
        "nothing was withdrawn"
    );
    s.stop().await;
}
