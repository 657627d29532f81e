//! The relay: moves a tenant's internal events onto the change feed, in commit order, and
//! writes their webhook messages and staff notifications in the same transaction.
//!
//! It appends under the tenant's `feed_heads` row (held until its transaction ends), so
//! sequence numbers become visible in increasing order on every backend: a reader that
//! has seen `n` never later finds a row below `n` it had not seen.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use shoal_base::{
    config::NotifyConfig,
    error::Result,
    storage::{Backend, Db, sql::Sql, time},
};
use shoal_crm::tenancy::Tenant;

use crate::{feed::Change, hooks, staff};

/// Internal events one relay transaction moves.
pub const BATCH: i64 = 500;

/// Locks the tenant's head row (made on first use) and returns its sequence number.
async fn lock_head(conn: &mut AnyConnection, backend: Backend, tenant: &str) -> Result<i64> {
    sqlx::query(
        "INSERT INTO feed_heads (tenant_id, seq, pruned_through) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING",
    )
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let lock = match backend {
        // the write transaction (BEGIN IMMEDIATE) already excludes every other writer
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    };
    let row = sqlx::query(&format!(
        "SELECT seq FROM feed_heads WHERE tenant_id = $1{lock}"
    ))
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("seq")?)
}

/// Moves up to [`BATCH`] of the tenant's unrelayed internal events onto the feed, writing
/// their webhook messages and staff notifications in the same transaction; returns what was
/// appended (the caller announces it on the [`crate::bus`]).
pub async fn relay(db: &Db, tenant: &Tenant, cfg: &NotifyConfig) -> Result<Vec<Change>> {
    let mut tx = db.begin_write().await?;
    let head = lock_head(&mut tx, db.backend, &tenant.id).await?;
    let rows = sqlx::query(
        "SELECT id, kind, customer_id, payload, at FROM internal_events \
         WHERE tenant_id = $1 AND fed_at IS NULL ORDER BY at, id LIMIT $2",
    )
    .bind(&tenant.id)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let now = time::to_micros(time::now());
    let mut changes = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let payload: String = r.try_get("payload")?;
        changes.push(Change {
            seq: head + 1 + i as i64,
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            customer_id: r.try_get("customer_id")?,
            payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            at: time::from_micros(r.try_get("at")?),
        });
    }
    // a few statements per batch, not two per change
    for chunk in changes.chunks(100) {
        let mut sql = Sql::new(
            "INSERT INTO change_feed (tenant_id, seq, id, kind, customer_id, payload, at, fed_at) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            sql.push_row(
                i == 0,
                [
                    tenant.id.as_str().into(),
                    c.seq.into(),
                    c.id.as_str().into(),
                    c.kind.as_str().into(),
                    c.customer_id.as_str().into(),
                    c.payload.to_string().into(),
                    time::to_micros(c.at).into(),
                    now.into(),
                ],
            );
        }
        sql.on(db.backend).query().execute(&mut *tx).await?;
        let mut sql = Sql::new("UPDATE internal_events SET fed_at = ");
        let at = sql.arg(now);
        let t = sql.arg(tenant.id.as_str());
        let ids: Vec<String> = chunk.iter().map(|c| c.id.clone()).collect();
        sql.push(&format!("{at} WHERE tenant_id = {t} AND id"))
            .push_in(&ids);
        sql.on(db.backend).query().execute(&mut *tx).await?;
    }
    let last = head + changes.len() as i64;
    sqlx::query("UPDATE feed_heads SET seq = $2 WHERE tenant_id = $1")
        .bind(&tenant.id)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    hooks::fan_out(&mut tx, db, tenant, &changes, cfg).await?;
    staff::fan_out(&mut tx, db, tenant, &changes).await?;
    if db.backend == Backend::Postgres {
        crate::bus::announce(&mut tx, &tenant.id, last).await?;
    }
    tx.commit().await?;
    Ok(changes)
}
