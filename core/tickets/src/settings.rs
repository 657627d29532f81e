//! A tenant's ticket settings, each saved whole as JSON under a key (`calendar`,
//! `sla_policies`, `routing_rules`) and checked by its owner before it is saved.

use sqlx::AnyConnection;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_crm::{audit, tenancy::Actor};

/// The setting `key` as stored, if saved.
pub async fn get(db: &Db, tenant: &str, key: &str) -> Result<Option<String>> {
    let mut conn = db.pool.acquire().await?;
    get_in(&mut conn, tenant, key).await
}

/// [`get`] on the caller's connection.
pub async fn get_in(conn: &mut AnyConnection, tenant: &str, key: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM ticket_settings WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(conn)
            .await?,
    )
}

/// The tenant's ticket lock, held to the end of the caller's transaction: routing
/// decisions and read-modify-writes of the settings take it (on SQLite the write
/// transaction already excludes every other writer).
pub async fn lock(conn: &mut AnyConnection, db: &Db, tenant: &str) -> Result<()> {
    if db.backend == shoal_base::storage::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("shoal:tickets:routing:{tenant}"))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Saves setting `key` (checked by the caller), with its audit entry (`tickets.<key>`),
/// under the tenant's ticket lock.
pub async fn save(db: &Db, actor: &Actor, key: &str, value: serde_json::Value) -> Result<()> {
    let mut tx = db.begin_write().await?;
    lock(&mut tx, db, actor.tenant_id()).await?;
    save_in(&mut tx, actor, key, value).await?;
    tx.commit().await?;
    Ok(())
}

/// [`save`] in the caller's transaction (which holds the lock).
pub async fn save_in(
    conn: &mut AnyConnection,
    actor: &Actor,
    key: &str,
    value: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticket_settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(actor.tenant_id())
    .bind(key)
    .bind(value.to_string())
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        &format!("tickets.{key}"),
        "ticket_settings",
        key,
        value,
    )
    .await?;
    Ok(())
}
