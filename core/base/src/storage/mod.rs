//! Storage: one SQL code path over SQLite (embedded default) and PostgreSQL (scale-out).
//!
//! Queries are written once with `$n` placeholders and run through sqlx's `Any` driver; the
//! few places where the two dialects differ are functions of [`Backend`] in `dialect`.
//! Conventions shared by every table: `tenant_id` first in every key and index, times as
//! UTC microseconds (`BIGINT`), money as scaled integers (see `money`), JSON as text
//! (PostgreSQL: `jsonb` where it is queried).

pub mod dialect;
mod migrate;
pub mod money;
pub mod sql;
pub mod time;

use std::time::Duration;

use sqlx::{
    AnyConnection, Connection, Executor,
    any::{AnyPoolOptions, install_default_drivers},
    pool::PoolConnection,
};

pub use migrate::{MigrateError, migrate, migrate_up_to};
pub use sqlx::{Any, AnyPool, Transaction};

/// The page cache of a [`Db::bulk_connection`] on SQLite, in MiB.
pub const BULK_CACHE_MIB: u32 = 64;

/// WAL pages after which a [`Db::bulk_connection`] on SQLite checkpoints (4 KiB each).
pub const BULK_WAL_PAGES: u32 = 20_000;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How long a connection may sit in the pool and still be handed out without a ping.
pub const TRUSTED_IDLE: Duration = Duration::from_secs(1);

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// What a `SELECT` that leases rows for work ends with: on PostgreSQL `FOR UPDATE SKIP
    /// LOCKED` (rows another worker holds are passed over); nothing on SQLite, whose write
    /// transaction already excludes every other writer.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A connection pool and the dialect it speaks.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The tenants' keys: what is sealed in this database is opened with them (empty until
    /// [`crate::vault::Vault::open`]).
    pub vault: crate::vault::Vault,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
}

impl Db {
    /// Opens a pool. A SQLite file (and its folder) is created on first use and put in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, ConnectError> {
        install_default_drivers();
        let (backend, url) = match url.strip_prefix("sqlite://") {
            Some(path) => {
                let file = path.split('?').next().unwrap_or(path);
                crate::config::ensure_parent_dir(std::path::Path::new(file)).map_err(|source| {
                    ConnectError::DataDir {
                        path: file.to_owned(),
                        source,
                    }
                })?;
                let sep = if path.contains('?') { '&' } else { '?' };
                (Backend::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
            }
            None => (Backend::Postgres, url.to_owned()),
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: one more round trip per
            // statement run on the pool (on PostgreSQL a network round trip, on SQLite a hop
            // to the connection's thread). A connection back in the pool for less than
            // TRUSTED_IDLE was working a moment ago; one idle for longer (the database may have
            // restarted meanwhile) is still checked, and replaced when the ping fails.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= TRUSTED_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let redacted = crate::config::redact_url(&url);
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| ConnectError::Connect {
                url: redacted.clone(),
                source,
            })?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(|source| ConnectError::Connect {
                    url: redacted,
                    source,
                })?;
        }
        Ok(Db {
            pool,
            backend,
            vault: Default::default(),
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before writing waits for other
    /// writers instead of failing with `SQLITE_BUSY` when it upgrades its lock.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin_with(self.begin_write_statement()).await
    }

    /// [`Db::begin_write`] on a connection the caller holds (see [`Db::bulk_connection`]).
    pub async fn begin_write_on<'c>(
        &self,
        conn: &'c mut AnyConnection,
    ) -> Result<Transaction<'c, Any>, sqlx::Error> {
        conn.begin_with(self.begin_write_statement()).await
    }

    /// The statement that begins a write transaction (see [`Db::begin_write`]).
    fn begin_write_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// A connection of its own for a long run of large write transactions (an import). On
    /// SQLite it gets a page cache of [`BULK_CACHE_MIB`] and checkpoints the WAL every
    /// [`BULK_WAL_PAGES`] pages instead of every 1,000: with the 2 MiB default cache every
    /// index page a batch touches was read again from the file, and each commit of a batch
    /// checkpointed the pages it had just written (plain SQL writing 1M customers into
    /// Shoal's tables: 154 s with the defaults, 34 s with these settings and batches of
    /// 5,000; see docs/benchmarks.md). The connection is closed when dropped, so the pool's
    /// other connections keep the defaults.
    pub async fn bulk_connection(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Sqlite {
            conn.execute(
                format!(
                    "PRAGMA cache_size = -{}; PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}",
                    BULK_CACHE_MIB * 1024
                )
                .as_str(),
            )
            .await?;
            conn.close_on_drop();
        }
        Ok(conn)
    }

    /// True when the database answers a trivial query (`/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
