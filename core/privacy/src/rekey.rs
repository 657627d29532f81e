//! Re-encryption under a new data key (`shoal keys rotate --reencrypt`): a tenant gets a new
//! data key version, and every sealed value of the register is opened and sealed again under
//! it, in batches, until none is left under an older version. Resumable by construction: a
//! run that stops leaves values under the old version, which the next run picks up.

use std::time::Duration;

use sqlx::Row as _;

use crate::register;
use shoal_base::{config::KeysConfig, error::Result, storage::Db};

/// Values re-sealed per transaction.
const BATCH: i64 = 500;

/// How long a new data key version waits before values are sealed under it: running hosts
/// reload the tenants' keys every [`REFRESH`], so by then every host can open them.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Re-seals every sealed value of `tenant` under a new data key version; `progress` is told
/// `(table.column, done, total)` after each batch. Returns the version and how many values
/// were re-sealed.
pub async fn reencrypt(
    db: &Db,
    keys: &KeysConfig,
    tenant: &str,
    wait: Duration,
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<(u32, u64)> {
    let version = db.vault.add_data_version(&db.pool, keys, tenant).await?;
    tokio::time::sleep(wait).await;
    let current = format!("s1:{version}:%");
    let mut all = 0;
    for table in register::TABLES {
        for (column, field) in table.sealed {
            let name = format!("{}.{column}", table.name);
            let pending = format!(
                "FROM {} WHERE tenant_id = $1 AND {column} LIKE 's1:%' AND {column} NOT LIKE $2",
                table.name
            );
            let total: i64 = sqlx::query(&format!("SELECT COUNT(*) {pending}"))
                .bind(tenant)
                .bind(&current)
                .fetch_one(&db.pool)
                .await?
                .try_get(0)?;
            let total = total as u64;
            let mut done = 0u64;
            loop {
                let mut tx = db.begin_write().await?;
                let old: Vec<String> = sqlx::query(&format!("SELECT {column} {pending} LIMIT $3"))
                    .bind(tenant)
                    .bind(&current)
                    .bind(BATCH)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                if old.is_empty() {
                    break;
                }
                for value in &old {
                    let plain = db.vault.unseal(tenant, field, value)?;
                    let fresh = db.vault.seal(tenant, field, &plain)?;
                    // a sealed value is unique (its nonce is random), so it names its row
                    sqlx::query(&format!(
                        "UPDATE {} SET {column} = $1 WHERE tenant_id = $2 AND {column} = $3",
                        table.name
                    ))
                    .bind(&fresh)
                    .bind(tenant)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                done += old.len() as u64;
                progress(&name, done, total.max(done));
            }
            all += done;
        }
    }
    Ok((version, all))
}
