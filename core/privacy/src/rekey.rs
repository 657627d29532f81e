//! Re-encryption under a new data key: a tenant gets a new data key version, and every
//! sealed value of the register is opened and sealed again under it, in batches, until none
//! is left under an older version. Resumable by construction: a run that stops leaves values
//! under the old version, which the next run picks up. Run by `shoal keys rotate
//! --reencrypt` in the foreground, or as a background job (`crate::reencryption`).

use std::time::Duration;

use sqlx::Row as _;

use crate::register;
use shoal_base::{config::KeysConfig, error::Result, storage::Db};

/// Values re-sealed per transaction.
pub const BATCH: i64 = 500;

/// How long a new data key version waits before values are sealed under it: running hosts
/// reload the tenants' keys every [`REFRESH`], so by then every host can open them.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The sealed columns of the register: `(table.column, table, column, sealed field)`.
fn columns() -> impl Iterator<Item = (String, &'static str, &'static str, &'static str)> {
    register::TABLES.iter().flat_map(|t| {
        t.sealed
            .iter()
            .map(move |(c, f)| (format!("{}.{c}", t.name), t.name, *c, *f))
    })
}

/// `FROM … WHERE` for the values of one column not under `version`: `$1` the tenant, `$2`
/// the pattern of the version.
fn pending_sql(table: &str, column: &str) -> String {
    format!("FROM {table} WHERE tenant_id = $1 AND {column} LIKE 's1:%' AND {column} NOT LIKE $2")
}

/// The tenant's newest data key version, which [`Db::vault`] seals under.
fn current(db: &Db, tenant: &str) -> Result<u32> {
    db.vault
        .current_version(tenant)
        .ok_or_else(|| shoal_base::vault::VaultError::NoTenant(tenant.into()).into())
}

/// How many sealed values of `tenant` are under an older data key version than its newest.
pub async fn pending(db: &Db, tenant: &str) -> Result<u64> {
    let like = format!("s1:{}:%", current(db, tenant)?);
    let mut n = 0i64;
    for (_, table, column, _) in columns() {
        let row = sqlx::query(&format!("SELECT COUNT(*) {}", pending_sql(table, column)))
            .bind(tenant)
            .bind(&like)
            .fetch_one(&db.pool)
            .await?;
        n += row.try_get::<i64, _>(0)?;
    }
    Ok(n as u64)
}

/// Seals again, in one transaction, up to [`BATCH`] values of the first column that still
/// holds values under an older version: `Some((table.column, values))`, or `None` when
/// every value is under the newest version.
pub async fn reseal_batch(db: &Db, tenant: &str) -> Result<Option<(String, u64)>> {
    let like = format!("s1:{}:%", current(db, tenant)?);
    for (name, table, column, field) in columns() {
        let mut tx = db.begin_write().await?;
        let old: Vec<String> = sqlx::query(&format!(
            "SELECT {column} {} LIMIT $3",
            pending_sql(table, column)
        ))
        .bind(tenant)
        .bind(&like)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        if old.is_empty() {
            continue;
        }
        for value in &old {
            let plain = db.vault.unseal(tenant, field, value)?;
            let fresh = db.vault.seal(tenant, field, &plain)?;
            // a sealed value is unique (its nonce is random), so it names its row
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = $1 WHERE tenant_id = $2 AND {column} = $3"
            ))
            .bind(&fresh)
            .bind(tenant)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok(Some((name, old.len() as u64)));
    }
    Ok(None)
}

/// Re-seals every sealed value of `tenant` under a new data key version, after waiting
/// `wait` for running hosts to load it; `progress` is told `(table.column, done, total)`
/// after each batch. Returns the version and how many values were re-sealed.
pub async fn reencrypt(
    db: &Db,
    keys: &KeysConfig,
    tenant: &str,
    wait: Duration,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<(u32, u64)> {
    let version = db.vault.add_data_version(&db.pool, keys, tenant).await?;
    tokio::time::sleep(wait).await;
    let total = pending(db, tenant).await?;
    let mut done = 0;
    while let Some((column, n)) = reseal_batch(db, tenant).await? {
        done += n;
        progress(&column, done, total.max(done));
    }
    Ok((version, done))
}
