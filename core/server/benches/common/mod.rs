//! Set-up shared by the benchmarks: the `bench` tenant, its database on each backend.

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use std::path::Path;

use shoal_base::{
    config::{self, ApiKeyConfig, Config, ConfigSource, TenantConfig, UserConfig},
    storage::{self, Db},
};
use shoal_crm::tenancy;
use sqlx::Connection;

pub const TENANT: &str = "bench";
pub const KEY: &str = "bench-key-0123456789abcdef";

/// The built-in defaults plus tenant `bench` with an admin user whose API key is [`KEY`].
pub fn config() -> Config {
    let mut config = shoal_server::load_config(&ConfigSource::default()).unwrap();
    let mut tenant = TenantConfig::new("Bench", chrono_tz::Asia::Shanghai);
    tenant
        .users
        .insert("admin".into(), UserConfig::new("Admin", "admin"));
    tenant.api_keys.insert(
        "k".into(),
        ApiKeyConfig {
            user: "admin".into(),
            sha256: Some(config::sha256_hex(KEY)),
            env: None,
        },
    );
    config.tenants.insert(TENANT.into(), tenant);
    // one master key for every bench run, outside the source tree
    config.keys.master.insert(
        "local".into(),
        config::MasterKeyConfig {
            env: None,
            file: Some(std::env::temp_dir().join("shoal-bench-master.key")),
            generate: true,
        },
    );
    config
}

/// The actor [`KEY`] acts as, with its permissions loaded.
pub async fn actor(db: &Db, directory: &tenancy::Directory) -> tenancy::Actor {
    let principal = directory.authenticate(KEY).unwrap();
    principal
        .resolve(db, Default::default(), "bench".into())
        .await
        .unwrap()
}

/// Connects, migrates and mirrors the config's tenants.
pub async fn open(url: &str, config: &Config) -> Db {
    let db = Db::connect(url, 4).await.unwrap();
    storage::migrate(&db).await.unwrap();
    tenancy::sync_to_db(&db, config).await.unwrap();
    shoal_server::server::open_vault(&db, config).await.unwrap();
    db
}

/// The `p` quantile (0–1) of `sorted` (nearest rank).
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A process's memory, read from `/proc/<pid>/status` (Linux; NaN elsewhere).
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident now (`VmRSS`), MiB.
    pub rss_mb: f64,
    /// Resident at most since start or the last [`reset_peak_memory`] (`VmHWM`), MiB.
    pub peak_rss_mb: f64,
}

/// The memory of process `pid`.
pub fn memory_of(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Memory {
        rss_mb: mib("VmRSS:"),
        peak_rss_mb: mib("VmHWM:"),
    }
}

/// Starts a new peak: the kernel resets `VmHWM` to the present resident size when 5 is
/// written to `clear_refs` (Linux 4.0 and later).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Prints this process's peak memory since the last reset, under `label`, and resets it.
pub fn report_peak_memory(label: &str) {
    let m = memory_of(std::process::id());
    println!("peak RSS, {label}: {:.0} MiB", m.peak_rss_mb);
    reset_peak_memory();
}

/// A database to benchmark on.
pub struct Target {
    pub url: String,
    /// What the run is called (`sop`, …), for the memory line.
    label: String,
    /// The PostgreSQL admin URL and database created for the run.
    pg: Option<(String, String)>,
}

/// A SQLite file in `dir` and, if reachable, a fresh PostgreSQL database
/// (`SHOAL_TEST_POSTGRES_URL`); `SHOAL_BENCH_BACKENDS=sqlite|postgres` keeps one.
pub async fn targets(dir: &Path, label: &str) -> Vec<Target> {
    reset_peak_memory();
    let only = std::env::var("SHOAL_BENCH_BACKENDS").unwrap_or_default();
    let mut out = Vec::new();
    if only.is_empty() || only.contains("sqlite") {
        out.push(Target {
            url: format!("sqlite://{}", dir.join(format!("{label}.db")).display()),
            label: label.to_owned(),
            pg: None,
        });
    }
    let pg = std::env::var("SHOAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if only.is_empty() || only.contains("postgres") {
        match sqlx::PgConnection::connect(&pg).await {
            Ok(mut admin) => {
                let name = format!("shoal_{label}_bench_{}", std::process::id());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let cut = pg.rfind('/').unwrap();
                out.push(Target {
                    url: format!("{}/{name}", &pg[..cut]),
                    label: label.to_owned(),
                    pg: Some((pg.clone(), name)),
                });
            }
            Err(e) => eprintln!("PostgreSQL unreachable ({e}): benchmarking SQLite only"),
        }
    }
    out
}

impl Target {
    /// Prints the bench process's peak memory on this backend (Shoal's engine, and SQLite
    /// itself, which runs in the process; PostgreSQL's own processes are not counted), then
    /// drops the PostgreSQL database created for the run.
    pub async fn cleanup(self) {
        let backend = if self.pg.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        report_peak_memory(&format!("{} on {backend}", self.label));
        if let Some((admin_url, name)) = self.pg {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
}

/// Writes generated customers and their events for tenant `bench` in one transaction.
pub async fn insert_generated(
    db: &Db,
    customers: &[shoal_crm::customers::Prepared],
    events: &[shoal_crm::events::Event],
) {
    let mut tx = db.pool.begin().await.unwrap();
    shoal_crm::customers::insert_many(&mut tx, db, TENANT, customers)
        .await
        .unwrap();
    shoal_crm::events::insert_many(&mut tx, TENANT, events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Writes `n` generated customers (no events) of tenant `bench`, in chunks of 20,000 —
/// seeded per chunk with `seed + chunk number`.
pub async fn seed_customers(db: &Db, n: usize, seed: u64) {
    for (i, chunk) in (0..n).collect::<Vec<_>>().chunks(20_000).enumerate() {
        let (cs, _) = shoal_server::demo::generate(chunk.len(), chunk[0], seed + i as u64, false);
        let mut tx = db.pool.begin().await.unwrap();
        shoal_crm::customers::insert_many(&mut tx, db, TENANT, &cs)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}
