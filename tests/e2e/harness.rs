//! Starts a real Shoal server (real HTTP on an ephemeral port, real SQLite file or a fresh
//! PostgreSQL database) and speaks GraphQL to it.

use std::{
    fmt::Debug,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use shoal_base::config::{self, ApiKeyConfig, Config, ConfigSource, TenantConfig, UserConfig};
use shoal_plugin_host::{PluginHost, ReloadReport, sha256_hex};
use shoal_server::server::{self, Running, ServeOptions};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// API keys of the two test tenants.
pub const ALPHA: &str = "alpha-admin-key-0000000001";
pub const ALPHA_READONLY: &str = "alpha-readonly-key-000000002";
pub const BETA: &str = "beta-admin-key-00000000003";

/// The master key file of every test host (generated on first use).
pub const TEST_MASTER_KEY: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/test-master.key");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn postgres_url() -> String {
    std::env::var("SHOAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL tests should run. Unreachable PostgreSQL is a loud skip locally and a
/// failure under `CI=true`.
fn postgres_available() -> bool {
    let url = postgres_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let reachable = std::net::TcpStream::connect(&host_port).is_ok();
    if !reachable {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "PostgreSQL at {url} is unreachable and CI=true: PostgreSQL tests must run in CI"
            );
        }
        eprintln!("\n!!! PostgreSQL at {url} is unreachable: SKIPPING this PostgreSQL test !!!\n");
    }
    reachable
}

fn tenant(name: &str, users: &[(&str, &str)], keys: &[(&str, &str)]) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        time_zone: chrono_tz::Asia::Shanghai,
        default_region: "CN".into(),
        users: users
            .iter()
            .map(|(id, role)| (id.to_string(), UserConfig::new(format!("User {id}"), role)))
            .collect(),
        api_keys: keys
            .iter()
            .map(|(user, key)| {
                (
                    format!("{user}-key"),
                    ApiKeyConfig {
                        user: user.to_string(),
                        sha256: Some(config::sha256_hex(key)),
                        env: None,
                    },
                )
            })
            .collect(),
        modules: Default::default(),
        // no background recompute unless a test asks for it
        tag_recompute_seconds: 0,
        contact: Default::default(),
        departments: Default::default(),
        roles: Default::default(),
        dedupe: Default::default(),
        quality: Default::default(),
        channels: Default::default(),
        campaigns: Default::default(),
        tickets: Default::default(),
        connectors: Default::default(),
        retention: Default::default(),
    }
}

/// The configuration every test server starts from: defaults plus tenants `alpha` and `beta`.
pub fn base_config() -> Config {
    let mut config =
        shoal_server::load_config(&ConfigSource::default()).expect("built-in defaults load");
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.log.level = "warn".into();
    // SOP workers run in every test server, briskly
    config.sop.poll_ms = 20;
    config.sop.scan_seconds = 1;
    // the built-in industry demo tenants stay out of tests
    config.tenants.clear();
    config.tenants.insert(
        "alpha".into(),
        tenant(
            "Alpha Retail",
            &[
                ("boss", "admin"),
                ("agent-a", "agent"),
                ("viewer", "readonly"),
            ],
            &[("boss", ALPHA), ("viewer", ALPHA_READONLY)],
        ),
    );
    // alpha enables the `sample` module (loaded once a test installs it)
    let sample = toml::from_str("tier1_cities = [\"上海\"]\ntier3_cities = [\"洛阳\"]\nsplit_weights = { hq = 1, store = 2 }")
        .expect("sample params");
    config
        .tenants
        .get_mut("alpha")
        .expect("alpha")
        .modules
        .insert(
            "sample".into(),
            config::ModuleConfig {
                enabled: true,
                params: sample,
                version: None,
            },
        );
    // alpha's step webhooks may call the tests' local receivers; beta's may not
    config
        .tenants
        .get_mut("alpha")
        .expect("alpha")
        .contact
        .outbound_allow = vec!["127.0.0.1".into()];
    config.tenants.insert(
        "beta".into(),
        tenant("Beta Clinic", &[("boss", "admin")], &[("boss", BETA)]),
    );
    // every host of a test shares one master key, wherever it runs from
    config.keys.master.insert(
        "local".into(),
        config::MasterKeyConfig {
            env: None,
            file: Some(TEST_MASTER_KEY.into()),
            generate: true,
        },
    );
    config
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's plugins folder (empty at start; see `install_plugin`).
    pub plugins_dir: PathBuf,
    /// The storage URL, for processes that share the server's database.
    pub storage_url: String,
    running: Option<Running>,
    dir: PathBuf,
    pg_database: Option<String>,
}

impl TestServer {
    /// A server with the base config; `None` when the backend is unavailable (local only).
    pub async fn start(backend: Backend) -> Option<TestServer> {
        TestServer::start_with(backend, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
        // server logs (internal errors among them) show in a failing test's output;
        // SHOAL_TEST_LOG (an env filter, e.g. `shoal_campaigns=debug`) shows more
        let filter = std::env::var("SHOAL_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}_{}", std::process::id(), n);
        let dir = std::env::temp_dir().join(format!("shoal-e2e-{tag}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut config = base_config();
        config.plugins.dir = dir.join("plugins");
        config.plugins.cache_dir = fixtures_dir().join("cache");
        std::fs::create_dir_all(&config.plugins.dir).expect("plugins dir");
        let mut pg_database = None;
        match backend {
            Backend::Sqlite => {
                config.storage.url = format!("sqlite://{}", dir.join("shoal.db").display());
            }
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database(&tag).await?;
                config.storage.url = url;
                pg_database = Some(name);
            }
        }
        tweak(&mut config);
        let running = server::start(&config, &ServeOptions::default())
            .await
            .expect("server starts");
        Some(TestServer {
            addr: running.addr,
            plugins_dir: config.plugins.dir.clone(),
            storage_url: config.storage.url.clone(),
            running: Some(running),
            dir,
            pg_database,
        })
    }

    /// Another host on this server's database (the base config, `tweak`ed), in this
    /// process: its own pool, workers and subscription bus, as a second machine would have.
    /// Stopping it leaves the database to this server.
    pub async fn start_beside(&self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("shoal-e2e-{}_{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
        let mut config = base_config();
        config.plugins.dir = dir.join("plugins");
        config.plugins.cache_dir = fixtures_dir().join("cache");
        config.storage.url = self.storage_url.clone();
        tweak(&mut config);
        let running = server::start(&config, &ServeOptions::default())
            .await
            .expect("second host starts");
        TestServer {
            addr: running.addr,
            plugins_dir: config.plugins.dir.clone(),
            storage_url: config.storage.url.clone(),
            running: Some(running),
            dir,
            pg_database: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        if let Some(name) = &self.pg_database {
            drop_postgres_database(name).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Starts a `shoal serve` process on this server's database, with tenant `alpha` and the
    /// built-in defaults, its SOP workers on, plus `env` overrides; run from `dir`.
    pub fn spawn_host(&self, dir: &Path, env: &[(&str, &str)]) -> std::process::Child {
        std::fs::create_dir_all(dir).expect("host dir");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("serve")
            .current_dir(dir)
            .env_remove("SHOAL_CONFIG")
            .env("SHOAL_SERVER__BIND", "127.0.0.1:0")
            .env("SHOAL_STORAGE__URL", &self.storage_url)
            .env("SHOAL_LOG__LEVEL", "error")
            .env("SHOAL_KEYS__MASTER__LOCAL__FILE", TEST_MASTER_KEY)
            .env("SHOAL_TENANTS__ALPHA__NAME", "Alpha Retail")
            .env("SHOAL_TENANTS__ALPHA__TIME_ZONE", "Asia/Shanghai")
            .env(
                "SHOAL_TENANTS__ALPHA__CONTACT__OUTBOUND_ALLOW",
                "[\"127.0.0.1\"]",
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("start shoal")
    }

    /// The server's database, for the few checks that look under the API.
    pub fn db(&self) -> &shoal_base::storage::Db {
        &self.running.as_ref().expect("running").db
    }

    /// The server's plugin host.
    pub fn host(&self) -> Arc<PluginHost> {
        self.running
            .as_ref()
            .expect("running")
            .reloader
            .host
            .clone()
    }

    /// Reloads configuration and plugins, as `reloadPlugins` does.
    pub async fn reload(&self) -> ReloadReport {
        self.running
            .as_ref()
            .expect("running")
            .reloader
            .reload()
            .await
            .expect("reload")
    }

    /// Creates a manual tag named `name` as `key`; returns its id.
    pub async fn manual_tag(&self, key: &str, name: &str) -> String {
        self.ok_id(
            key,
            "mutation($n: String!) { createTag(input: {name: $n}) { id } }",
            json!({ "n": name }),
            "createTag",
        )
        .await
    }

    /// An active SOP `hello` that greets on the `log` channel with the customer's name and
    /// phone, `customers` enrolled in it, and the workers given time to render their
    /// messages into the outbox; returns the SOP's id.
    pub async fn greeted(&self, key: &str, customers: &[&str]) -> String {
        let sop = self
            .active_sop(
                key,
                "hello",
                json!({ "steps": [ { "id": "m", "action": { "sendMessage": {
                    "channel": "log", "template": "你好 {{customer.name}} {{customer.phone}}" } } } ] }),
            )
            .await;
        self.enrol(key, &sop, customers).await;
        for _ in 0..200 {
            let out = self
                .ok(
                    key,
                    "{ outboxMessages { edges { node { id } } } }",
                    json!({}),
                )
                .await;
            if out["outboxMessages"]["edges"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        sop
    }

    /// POSTs a GraphQL request with `key`; returns the HTTP status and the JSON body.
    pub async fn post(&self, key: Option<&str>, body: &str) -> (u16, Value) {
        let mut headers = String::from("Content-Type: application/json\r\n");
        if let Some(key) = key {
            headers.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        let (status, body) = http(self.addr, "POST", "/graphql", &headers, body).await;
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}"));
        (status, json)
    }

    /// POSTs a GraphQL body as `key` with one more header; returns the whole response.
    pub async fn post_with_header(&self, key: &str, name: &str, value: &str, body: &str) -> Value {
        let headers = format!(
            "Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n{name}: {value}\r\n"
        );
        let (_, body) = http(self.addr, "POST", "/graphql", &headers, body).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}"))
    }

    /// Runs a GraphQL operation as `key` and returns the whole response.
    pub async fn gql(&self, key: &str, query: &str, variables: Value) -> Value {
        self.post(
            Some(key),
            &json!({ "query": query, "variables": variables }).to_string(),
        )
        .await
        .1
    }

    /// Runs an operation that must succeed and returns its `data`.
    pub async fn ok(&self, key: &str, query: &str, variables: Value) -> Value {
        let response = self.gql(key, query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {}",
            serde_json::to_string_pretty(&response).unwrap()
        );
        response["data"].clone()
    }

    /// Runs an operation that must fail; returns its first error.
    /// Runs an operation that must succeed and returns the `id` that `field` answered.
    pub async fn ok_id(&self, key: &str, query: &str, variables: Value, field: &str) -> String {
        self.ok(key, query, variables).await[field]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{field} answers an id"))
            .to_owned()
    }

    /// Creates an SOP named `name` of `definition` as `key` and activates it; its id.
    pub async fn active_sop(&self, key: &str, name: &str, definition: Value) -> String {
        let id = self
            .ok_id(
                key,
                "mutation($n: String!, $d: SopDefinitionInput!) { createSop(input: {name: $n, definition: $d}) { id } }",
                json!({ "n": name, "d": definition }),
                "createSop",
            )
            .await;
        self.ok(
            key,
            "mutation($id: ID!) { activateSop(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        id
    }

    /// Enrols customers in an SOP by hand, as `key`.
    pub async fn enrol(&self, key: &str, sop: &str, customers: &[&str]) {
        self.ok(
            key,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": sop, "c": customers }),
        )
        .await;
    }

    pub async fn err(&self, key: &str, query: &str, variables: Value) -> Value {
        let response = self.gql(key, query, variables).await;
        response["errors"][0].clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http(self.addr, "GET", path, "", "").await
    }

    /// Creates a customer in `key`'s tenant and returns its id.
    pub async fn create_customer(&self, key: &str, input: Value) -> String {
        let data = self
            .ok(
                key,
                "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        data["createCustomer"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// How long [`eventually`] waits for its state, and how often it reads.
pub const EVENTUALLY_WITHIN: Duration = Duration::from_secs(10);
pub const EVENTUALLY_EVERY: Duration = Duration::from_millis(25);

/// Reads with `read` until `done` holds for what it read, and returns that; panics naming
/// `what`, with the last value read, if it does not within 10 s (reading every 25 ms).
///
/// For state that background work settles shortly after a request: the tags, lifecycle
/// stage and module decisions the SOP dispatcher evaluates after `recordEvents`
/// (docs/tags.md), enrolments, deliveries. Poll for the expected state, then assert as
/// before; to assert that something did *not* happen, first wait for a sign that the work
/// which could have done it has run (another effect of the same batch).
pub async fn eventually<T: Debug>(
    what: &str,
    read: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    eventually_within(EVENTUALLY_WITHIN, EVENTUALLY_EVERY, what, read, done).await
}

/// [`eventually`] with its own deadline and reading interval.
pub async fn eventually_within<T: Debug>(
    within: Duration,
    every: Duration,
    what: &str,
    mut read: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not reached within {within:?}; last seen: {value:#?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The code of an error (`extensions.code`).
pub fn code(error: &Value) -> &str {
    error["extensions"]["code"].as_str().unwrap_or("<no code>")
}

/// The field paths listed in a BAD_USER_INPUT error.
pub fn fields(error: &Value) -> Vec<String> {
    error["extensions"]["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A new, empty PostgreSQL database `shoal_e2e_<tag>` (the tag starts with this process's
/// id, so an abandoned one is dropped by a later run): its URL and name; `None` when
/// PostgreSQL is unreachable (locally).
pub async fn fresh_postgres_database(tag: &str) -> Option<(String, String)> {
    if !postgres_available() {
        return None;
    }
    drop_abandoned_databases().await;
    let name = format!("shoal_e2e_{tag}");
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    admin_sql(&format!("CREATE DATABASE {name}")).await;
    let base = postgres_url();
    let cut = base.rfind('/').expect("postgres URL names a database");
    Some((format!("{}/{name}", &base[..cut]), name))
}

/// Drops a database made by [`fresh_postgres_database`].
pub async fn drop_postgres_database(name: &str) {
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// Drops test databases left by runs whose process is gone (a panicking test cannot drop
/// its own); those of live processes, this one included, are kept. Once per process.
async fn drop_abandoned_databases() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        use sqlx::{Connection, Row};
        let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await else {
            return;
        };
        let names: Vec<String> =
            sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'shoal_e2e_%'")
                .fetch_all(&mut conn)
                .await
                .map(|rows| rows.iter().map(|r| r.get("datname")).collect())
                .unwrap_or_default();
        for name in names {
            let pid = name
                .trim_start_matches("shoal_e2e_")
                .split('_')
                .next()
                .unwrap_or("");
            let alive = std::path::Path::new("/proc").join(pid).exists();
            if !alive && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    })
    .await;
}

async fn admin_sql(statement: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// A minimal HTTP/1.1 exchange (`Connection: close`), enough for tests.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_with_head(addr, method, path, headers, body).await;
    (status, body)
}

/// [`http`], answering the status, the response head (status line and headers) and the body.
pub async fn http_with_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("receive");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Declares each listed `async fn(&TestServer)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        async fn base_server(
            backend: $crate::harness::Backend,
        ) -> Option<$crate::harness::TestServer> {
            $crate::harness::TestServer::start(backend).await
        }
        $crate::on_both_backends_with!(base_server, $($name),+);
    };
}

/// [`on_both_backends!`] for servers started by `$start(backend)` (a config of their own).
#[macro_export]
macro_rules! on_both_backends_with {
    ($start:ident, $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = super::$start($crate::harness::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    super::$name(&server).await;
                    server.stop().await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(server) = super::$start($crate::harness::Backend::Postgres).await {
                        super::$name(&server).await;
                        server.stop().await;
                    }
                }
            )+
        }
    };
}

/// Where test plugins are built (a target folder of its own: the outer `cargo test` holds
/// the lock of the main one).
fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugin-fixtures")
}

/// The wasm of a test plugin crate in `tests/plugins/` (`sample`, `misbehave`,
/// `future-abi`), built for `wasm32-wasip2` once per test run — real components, no mocks.
pub fn plugin_wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for package in [
            "shoal-plugin-sample",
            "shoal-plugin-misbehave",
            "shoal-plugin-future-abi",
            "shoal-plugin-networked",
            "shoal-plugin-legacy",
            "shoal-plugin-retail",
            "shoal-plugin-education",
            "shoal-plugin-finance",
            "shoal-plugin-clinic",
        ] {
            // plugin crates are plain libraries natively; the component is a cdylib
            let out = Command::new(&cargo)
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .args([
                    "rustc",
                    "--package",
                    package,
                    "--lib",
                    "--profile",
                    "plugin",
                    "--target",
                    "wasm32-wasip2",
                ])
                .args(["--crate-type", "cdylib"])
                .env("CARGO_TARGET_DIR", fixtures_dir())
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        Ok(())
    });
    if let Err(e) = built {
        panic!(
            "building the test plugins failed (is the wasm32-wasip2 target installed? `cargo xtask test` installs it):\n{e}"
        );
    }
    fixtures_dir().join(format!(
        "wasm32-wasip2/plugin/shoal_plugin_{}.wasm",
        name.replace('-', "_")
    ))
}

/// The `sample` module built with its `v2` feature: "version B" of the upgrade test
/// (version 2.0.0, tier-1 +20% instead of +10%) — different code, built once per run into
/// a target folder of its own.
pub fn plugin_wasm_v2() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let target = fixtures_dir().join("v2");
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .args([
                "rustc",
                "--package",
                "shoal-plugin-sample",
                "--features",
                "v2",
                "--lib",
                "--profile",
                "plugin",
                "--target",
                "wasm32-wasip2",
                "--crate-type",
                "cdylib",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("building the sample module's version B failed:\n{e}");
    }
    target.join("wasm32-wasip2/plugin/shoal_plugin_sample.wasm")
}

/// What to write into a test module's manifest.
pub struct Install<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub abi: &'a str,
    pub capabilities: &'a [&'a str],
    /// Overrides the real SHA-256 (to test a mismatch).
    pub sha256: Option<&'a str>,
}

impl Install<'_> {
    /// An industry module of `plugins/` (version 1.0.0) with its capabilities.
    pub fn industry(id: &'static str, capabilities: &'static [&'static str]) -> Install<'static> {
        Install {
            id,
            capabilities,
            ..Install::sample()
        }
    }

    pub fn sample() -> Install<'static> {
        Install {
            id: "sample",
            version: "1.0.0",
            abi: "1.1.0",
            capabilities: &[
                "tag-templates",
                "sop-templates",
                "settlement",
                "evaluate-tags",
            ],
            sha256: None,
        }
    }

    pub fn misbehave() -> Install<'static> {
        Install {
            id: "misbehave",
            version: "1.0.0",
            abi: "1.1.0",
            capabilities: &["settlement"],
            sha256: None,
        }
    }
}

/// Gives tenant `alpha` a role named like `user` (`spec`: the role in TOML), the user
/// holding it, and `key` as that user's API key.
pub fn add_user(config: &mut Config, user: &str, spec: &str, key: &str) {
    let alpha = config.tenants.get_mut("alpha").expect("alpha");
    let role: shoal_base::config::RoleSpec = toml::from_str(spec).expect("role");
    alpha.roles.insert(user.into(), role);
    alpha
        .users
        .insert(user.into(), UserConfig::new(format!("User {user}"), user));
    add_key(config, user, key);
}

/// Gives user `user` of tenant `alpha` the API key `key`.
pub fn add_key(config: &mut Config, user: &str, key: &str) {
    let alpha = config.tenants.get_mut("alpha").expect("alpha");
    alpha.api_keys.insert(
        format!("{user}-key"),
        ApiKeyConfig {
            user: user.into(),
            sha256: Some(config::sha256_hex(key)),
            env: None,
        },
    );
}

/// Installs `wasm` into `plugins_dir/<folder>/` with a manifest.
pub fn install_plugin(plugins_dir: &Path, folder: &str, wasm: &Path, spec: &Install<'_>) {
    let dir = plugins_dir.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    std::fs::write(dir.join(format!("{}.wasm", spec.id)), &bytes).unwrap();
    let caps: Vec<String> = spec
        .capabilities
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    let manifest = format!(
        "id = \"{}\"\nversion = \"{}\"\nabi_version = \"{}\"\nsha256 = \"{}\"\ncapabilities = [{}]\n",
        spec.id,
        spec.version,
        spec.abi,
        spec.sha256
            .map(str::to_owned)
            .unwrap_or_else(|| sha256_hex(&bytes)),
        caps.join(", ")
    );
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
}

/// Runs a Python script of `tests/fixtures/` with `request` as JSON on stdin and returns its
/// stdout as JSON: the independent implementations (Python's `cryptography`) the tests check
/// our formats against. `cargo xtask test` installs the package.
pub fn python_json(script: &str, request: &Value) -> Value {
    use std::io::Write;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(script);
    let mut child = std::process::Command::new("python3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (cargo xtask test installs `cryptography`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
