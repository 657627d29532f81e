//! Re-encryption as a background job (`reencryptCustomerData`): an administrator asks, a
//! host's worker gives the tenant a new data key version, waits until every host has loaded
//! it, then seals every sealed value again under it in batches ([`rekey::reseal_batch`]),
//! writing its progress to the job's row after each batch. A job is held by one host at a
//! time through a lease renewed every batch; a host that stops loses it, and another host
//! (or the same one, restarted) resumes where the values say: those still under an older
//! version.
//!
//! States: `requested` → `waiting` (the new version exists; hosts are loading it) →
//! `running` → `done` or `failed` (the error kept; asking again resumes).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Row as _, any::AnyRow};

use crate::rekey;
use shoal_base::{
    config::KeysConfig,
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
    supervise::Supervision,
};
use shoal_crm::{
    audit,
    tenancy::{Actor, Tenant},
};

/// How long a host holds a job without renewing it (it renews after every batch).
pub const LEASE: Duration = Duration::from_secs(60);

/// How often each tenant's worker looks for a job.
pub const POLL: Duration = Duration::from_secs(2);

/// A re-encryption job and its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Reencryption {
    pub id: String,
    /// `requested`, `waiting`, `running`, `done` or `failed`.
    pub state: String,
    /// The data key version values are sealed under (once the worker made it).
    pub version: Option<u32>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Values sealed again so far.
    pub resealed: u64,
    /// Values still under an older version, as of the last count (at start, then after
    /// each batch by subtraction; 0 when done).
    pub remaining: Option<u64>,
    /// The `table.column` of the last batch.
    pub step: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

const COLUMNS: &str = "id, state, version, requested_by, requested_at, started_at, finished_at, \
                       resealed, remaining, step, error";

fn from_row(r: &AnyRow) -> Result<Reencryption> {
    let at = |c: &str| -> Result<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(time::from_micros))
    };
    Ok(Reencryption {
        id: r.try_get("id")?,
        state: r.try_get("state")?,
        version: r
            .try_get::<Option<i64>, _>("version")?
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        requested_by: r.try_get("requested_by")?,
        requested_at: time::from_micros(r.try_get("requested_at")?),
        started_at: at("started_at")?,
        finished_at: at("finished_at")?,
        resealed: r.try_get::<i64, _>("resealed")?.max(0) as u64,
        remaining: r
            .try_get::<Option<i64>, _>("remaining")?
            .map(|n| n.max(0) as u64),
        step: r.try_get("step")?,
        error: r.try_get("error")?,
    })
}

/// Asks for the tenant's sealed values to be sealed again under a new data key (action
/// `administer`); audited. Refused while a job of the tenant is unfinished (`tenant`).
pub async fn request(db: &Db, actor: &Actor) -> Result<Reencryption> {
    actor.require(Action::Administer)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let open: i64 = sqlx::query(
        "SELECT COUNT(*) FROM reencryptions WHERE tenant_id = $1 AND state IN ('requested', 'waiting', 'running')",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    if open > 0 {
        return Err(Error::invalid(
            "tenant",
            "a re-encryption of this tenant is already under way (see `reencryptions`)",
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::to_micros(time::now());
    sqlx::query(
        "INSERT INTO reencryptions (tenant_id, id, state, requested_by, requested_at, not_before, resealed) \
         VALUES ($1, $2, 'requested', $3, $4, $4, 0)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&actor.user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "keys.reencrypt",
        "reencryption",
        &id,
        json!({ "state": "requested" }),
    )
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM reencryptions WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let job = from_row(&row)?;
    tx.commit().await?;
    Ok(job)
}

/// The tenant's re-encryption jobs, newest first (action `administer`).
pub async fn list(db: &Db, actor: &Actor) -> Result<Vec<Reencryption>> {
    actor.require(Action::Administer)?;
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM reencryptions WHERE tenant_id = $1 ORDER BY requested_at DESC, id DESC LIMIT 100"
    ))
    .bind(actor.tenant_id())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Takes the tenant's oldest unfinished job that is due and not held by a live lease; its
/// id, state and version.
async fn claim(
    db: &Db,
    tenant: &str,
    owner: &str,
) -> Result<Option<(String, String, Option<i64>)>> {
    let now = time::to_micros(time::now());
    let Some(row) = sqlx::query(
        "SELECT id, state, version FROM reencryptions WHERE tenant_id = $1 \
         AND state IN ('requested', 'waiting', 'running') AND not_before <= $2 \
         AND (lease_until IS NULL OR lease_until < $2) ORDER BY requested_at LIMIT 1",
    )
    .bind(tenant)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let taken = sqlx::query(
        "UPDATE reencryptions SET lease_owner = $1, lease_until = $2 WHERE tenant_id = $3 AND id = $4 \
         AND (lease_until IS NULL OR lease_until < $5)",
    )
    .bind(owner)
    .bind(now + LEASE.as_micros() as i64)
    .bind(tenant)
    .bind(&id)
    .bind(now)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok((taken == 1).then(|| {
        (
            id,
            row.try_get("state").unwrap_or_default(),
            row.try_get("version").ok().flatten(),
        )
    }))
}

/// Writes the job's state, renewing the lease while it runs; false when the lease was lost
/// (another host took the job over after this one stalled): the caller stops.
async fn update(
    db: &Db,
    tenant: &str,
    id: &str,
    owner: &str,
    set: &str,
    binds: &[Option<i64>],
) -> Result<bool> {
    let now = time::to_micros(time::now());
    let sql = format!(
        "UPDATE reencryptions SET {set}, lease_until = ${} WHERE tenant_id = ${} AND id = ${} AND lease_owner = ${}",
        binds.len() + 1,
        binds.len() + 2,
        binds.len() + 3,
        binds.len() + 4
    );
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(*b);
    }
    let done = q
        .bind(now + LEASE.as_micros() as i64)
        .bind(tenant)
        .bind(id)
        .bind(owner)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One turn of a tenant's worker: claims a due job and advances it — a new data key version
/// for a requested job, every batch for a waiting or running one — until it is done, fails
/// or its lease is lost. True when there was a job.
pub async fn step(db: &Db, keys: &KeysConfig, tenant: &str, owner: &str) -> Result<bool> {
    let Some((id, state, version)) = claim(db, tenant, owner).await? else {
        return Ok(false);
    };
    if state == "requested" {
        let version = db.vault.add_data_version(&db.pool, keys, tenant).await?;
        // every host loads the new version within one refresh; values wait for that
        let after = time::to_micros(time::now()) + 2 * rekey::REFRESH.as_micros() as i64;
        sqlx::query(
            "UPDATE reencryptions SET state = 'waiting', version = $1, not_before = $2, lease_until = NULL \
             WHERE tenant_id = $3 AND id = $4 AND lease_owner = $5",
        )
        .bind(i64::from(version))
        .bind(after)
        .bind(tenant)
        .bind(&id)
        .bind(owner)
        .execute(&db.pool)
        .await?;
        return Ok(true);
    }
    let failed = |e: Error| {
        let (db, tenant, id, owner) = (db.clone(), tenant.to_owned(), id.clone(), owner.to_owned());
        async move {
            sqlx::query(
                "UPDATE reencryptions SET state = 'failed', error = $1, finished_at = $2, lease_until = NULL \
                 WHERE tenant_id = $3 AND id = $4 AND lease_owner = $5",
            )
            .bind(e.to_string())
            .bind(time::to_micros(time::now()))
            .bind(&tenant)
            .bind(&id)
            .bind(&owner)
            .execute(&db.pool)
            .await?;
            Err::<bool, Error>(e)
        }
    };
    // the version may have been made by another host: load it before sealing under it
    if version.is_some_and(|v| {
        db.vault
            .current_version(tenant)
            .is_none_or(|c| i64::from(c) < v)
    }) && let Err(e) = db.vault.refresh(&db.pool, keys).await
    {
        return failed(e.into()).await;
    }
    let mut remaining = match rekey::pending(db, tenant).await {
        Ok(n) => n,
        Err(e) => return failed(e).await,
    };
    let now = time::to_micros(time::now());
    if !update(
        db,
        tenant,
        &id,
        owner,
        "state = 'running', started_at = COALESCE(started_at, $1), remaining = $2, error = NULL",
        &[Some(now), Some(remaining as i64)],
    )
    .await?
    {
        return Ok(true);
    }
    loop {
        let batch = match rekey::reseal_batch(db, tenant).await {
            Ok(b) => b,
            Err(e) => return failed(e).await,
        };
        let Some((column, n)) = batch else { break };
        remaining = remaining.saturating_sub(n);
        let step = column.clone();
        let renewed = sqlx::query(
            "UPDATE reencryptions SET resealed = resealed + $1, remaining = $2, step = $3, lease_until = $4 \
             WHERE tenant_id = $5 AND id = $6 AND lease_owner = $7",
        )
        .bind(n as i64)
        .bind(remaining as i64)
        .bind(step)
        .bind(time::to_micros(time::now()) + LEASE.as_micros() as i64)
        .bind(tenant)
        .bind(&id)
        .bind(owner)
        .execute(&db.pool)
        .await?
        .rows_affected();
        if renewed == 0 {
            return Ok(true);
        }
        tokio::task::yield_now().await;
    }
    update(
        db,
        tenant,
        &id,
        owner,
        "state = 'done', remaining = 0, finished_at = $1",
        &[Some(time::to_micros(time::now()))],
    )
    .await?;
    Ok(true)
}

/// Runs [`step`] for every tenant every [`POLL`], each tenant in a loop of its own (one
/// tenant's long job does not hold up another's), each turn guarded (a failure or panic is
/// logged and counted as `privacy.reencryption`). `owner` names this host in leases.
pub fn spawn(
    db: Db,
    keys: KeysConfig,
    tenants: Vec<Arc<Tenant>>,
    owner: String,
    supervision: Arc<Supervision>,
) -> tokio::task::JoinHandle<()> {
    let shared = Arc::new((db, keys, owner, supervision.clone()));
    shoal_base::supervise::each_forever(
        tenants,
        "privacy.reencryption",
        supervision,
        |t| t.id.clone(),
        move |tenant| {
            let shared = shared.clone();
            async move {
                let (db, keys, owner, supervision) = (&shared.0, &shared.1, &shared.2, &shared.3);
                loop {
                    match supervision
                        .guard("privacy.reencryption", step(db, keys, &tenant.id, owner))
                        .await
                    {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => tracing::error!(
                            tenant = %tenant.id, error = %e, "re-encryption turn failed"
                        ),
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        },
    )
}
