//! Schema migrations: embedded SQL, applied in order, each in a transaction. Portable
//! migrations live once in `migrations/shared/`; those that differ by dialect have a file in
//! `migrations/sqlite/` and one in `migrations/postgres/`.
//!
//! Applied versions are recorded in `schema_migrations` (the one table without `tenant_id`:
//! it describes the database, not a tenant). On PostgreSQL an advisory lock serialises hosts
//! that start at the same time.

use sqlx::{Acquire, Executor, Row};

use super::{Backend, Db, time};

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    /// A migration whose SQL is the same on both backends.
    const fn shared(version: i64, description: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            description,
            sqlite: sql,
            postgres: sql,
        }
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "foundation",
        sqlite: include_str!("../../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../../migrations/postgres/0001_foundation.sql"),
    },
    Migration::shared(
        2,
        "settlement",
        include_str!("../../migrations/shared/0002_settlement.sql"),
    ),
    Migration::shared(
        3,
        "tags",
        include_str!("../../migrations/shared/0003_tags.sql"),
    ),
    Migration::shared(
        4,
        "rfm and segments",
        include_str!("../../migrations/shared/0004_rfm_segments.sql"),
    ),
    Migration {
        version: 5,
        description: "id collation",
        sqlite: include_str!("../../migrations/sqlite/0005_id_collation.sql"),
        postgres: include_str!("../../migrations/postgres/0005_id_collation.sql"),
    },
    Migration::shared(
        6,
        "sop engine, outbox, tasks, follow-ups",
        include_str!("../../migrations/shared/0006_sop.sql"),
    ),
    Migration::shared(
        7,
        "departments, roles, audit request ids",
        include_str!("../../migrations/shared/0007_permissions.sql"),
    ),
    Migration {
        version: 8,
        description: "append-only audit log",
        sqlite: include_str!("../../migrations/sqlite/0008_audit_append_only.sql"),
        postgres: include_str!("../../migrations/postgres/0008_audit_append_only.sql"),
    },
    Migration::shared(
        9,
        "imports, duplicate suggestions, merges",
        include_str!("../../migrations/shared/0009_data_integration.sql"),
    ),
    Migration {
        version: 10,
        description: "email local parts",
        sqlite: include_str!("../../migrations/sqlite/0010_email_local_parts.sql"),
        postgres: include_str!("../../migrations/postgres/0010_email_local_parts.sql"),
    },
    Migration::shared(
        11,
        "webhook endpoints with secrets of their own",
        include_str!("../../migrations/shared/0011_webhook_endpoints.sql"),
    ),
    Migration::shared(
        12,
        "change feed, webhook endpoints for integrators, staff notifications",
        include_str!("../../migrations/shared/0012_notifications.sql"),
    ),
    Migration::shared(
        13,
        "campaigns and their recipients",
        include_str!("../../migrations/shared/0013_campaigns.sql"),
    ),
    Migration::shared(
        14,
        "the per-channel throttle shared by hosts",
        include_str!("../../migrations/shared/0014_channel_throttles.sql"),
    ),
    Migration::shared(
        15,
        "tickets, their types and histories",
        include_str!("../../migrations/shared/0015_tickets.sql"),
    ),
    Migration::shared(
        16,
        "SOP ticket requests become tickets",
        include_str!("../../migrations/shared/0016_ticket_requests_to_tickets.sql"),
    ),
    Migration::shared(
        17,
        "ticket settings: business calendar, SLA policies",
        include_str!("../../migrations/shared/0017_ticket_settings.sql"),
    ),
    Migration::shared(
        18,
        "ticket routing: queues, agents, a ticket's queue and skills",
        include_str!("../../migrations/shared/0018_ticket_routing.sql"),
    ),
    Migration::shared(
        19,
        "SLA timers; ticket watchers",
        include_str!("../../migrations/shared/0019_ticket_timers.sql"),
    ),
    Migration::shared(
        20,
        "merged tickets",
        include_str!("../../migrations/shared/0020_ticket_merges.sql"),
    ),
    Migration::shared(
        21,
        "repairs: spare-part stock, ticket lines, a ticket's bill",
        include_str!("../../migrations/shared/0021_repairs.sql"),
    ),
    Migration::shared(
        22,
        "ticket satisfaction surveys",
        include_str!("../../migrations/shared/0022_ticket_surveys.sql"),
    ),
    Migration::shared(
        23,
        "SLA policies by customer tier",
        include_str!("../../migrations/shared/0023_sla_customer_tiers.sql"),
    ),
    Migration::shared(
        24,
        "inbound connector deliveries",
        include_str!("../../migrations/shared/0024_inbound_deliveries.sql"),
    ),
    Migration::shared(
        25,
        "tenant keys, sealed identities, erasures, consent ledger",
        include_str!("../../migrations/shared/0025_vault.sql"),
    ),
    Migration {
        version: 26,
        description: "audit tombstones",
        sqlite: include_str!("../../migrations/sqlite/0026_audit_tombstones.sql"),
        postgres: include_str!("../../migrations/postgres/0026_audit_tombstones.sql"),
    },
    Migration::shared(
        27,
        "sealed attributes, re-encryption jobs",
        include_str!("../../migrations/shared/0027_sealed_attributes.sql"),
    ),
    Migration::shared(
        28,
        "staff passwords and sessions",
        include_str!("../../migrations/shared/0028_staff_sign_in.sql"),
    ),
    Migration::shared(
        29,
        "failed sign-ins per client address",
        include_str!("../../migrations/shared/0029_sign_in_addresses.sql"),
    ),
    Migration {
        version: 30,
        description: "stage history (by trigger) and RFM history",
        sqlite: include_str!("../../migrations/sqlite/0030_stage_rfm_history.sql"),
        postgres: include_str!("../../migrations/postgres/0030_stage_rfm_history.sql"),
    },
    Migration::shared(
        31,
        "data-quality snapshots",
        include_str!("../../migrations/shared/0031_data_quality_snapshots.sql"),
    ),
    Migration {
        version: 32,
        description: "access versions (bumped by trigger)",
        sqlite: include_str!("../../migrations/sqlite/0032_access_versions.sql"),
        postgres: include_str!("../../migrations/postgres/0032_access_versions.sql"),
    },
    Migration::shared(
        33,
        "import provenance of customers (one audit entry per import batch)",
        include_str!("../../migrations/shared/0033_import_provenance.sql"),
    ),
];

/// Arbitrary, fixed key for `pg_advisory_lock`.
const LOCK_KEY: i64 = 0x0540_454c;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "database schema is at version {found}, newer than this shoal knows ({known}); upgrade shoal"
    )]
    TooNew { found: i64, known: i64 },
    #[error("migration {version} ({description}) failed: {source}")]
    Failed {
        version: i64,
        description: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot read migration state: {0}")]
    State(#[from] sqlx::Error),
}

/// Applies every migration the database lacks; returns the versions applied now.
pub async fn migrate(db: &Db) -> Result<Vec<i64>, MigrateError> {
    migrate_up_to(db, i64::MAX).await
}

/// Applies the migrations the database lacks up to `version` (a test of an upgrade builds
/// the schema as it was, writes rows, then migrates the rest).
pub async fn migrate_up_to(db: &Db, version: i64) -> Result<Vec<i64>, MigrateError> {
    let mut conn = db.pool.acquire().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(db.backend, &mut conn, version).await;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(
    backend: Backend,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    up_to: i64,
) -> Result<Vec<i64>, MigrateError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
         version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        .fetch_one(&mut **conn)
        .await?
        .try_get("v")?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(MigrateError::TooNew {
            found: current,
            known,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= up_to)
    {
        let failed = |source| MigrateError::Failed {
            version: m.version,
            description: m.description,
            source,
        };
        let mut tx = conn.begin().await?;
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(failed)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.description)
        .bind(time::to_micros(time::now()))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        applied.push(m.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// A migration file that is not in the list would never run (the list is what embeds
    /// them): every file under `migrations/` is some version's SQL, under its own number,
    /// and the versions run 1, 2, 3… without a gap.
    #[test]
    fn every_migration_file_is_applied_under_its_number() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions run without a gap");
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for dir in ["shared", "sqlite", "postgres"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let version: i64 = name[..4].parse().unwrap_or_else(|_| panic!("{name}"));
                let sql = std::fs::read_to_string(&path).unwrap();
                let m = MIGRATIONS
                    .iter()
                    .find(|m| m.version == version)
                    .unwrap_or_else(|| panic!("{dir}/{name} is not in MIGRATIONS"));
                let registered = match dir {
                    "sqlite" => m.sqlite == sql,
                    "postgres" => m.postgres == sql,
                    _ => m.sqlite == sql && m.postgres == sql,
                };
                assert!(
                    registered,
                    "{dir}/{name} is not the SQL of version {version}"
                );
            }
        }
    }
}
