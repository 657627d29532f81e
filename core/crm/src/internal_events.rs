//! Internal events: what happened to a customer inside Shoal (an event recorded, a tag
//! added or removed, a segment entered or left), written in the transaction of the change
//! and consumed once by the SOP dispatcher and once by the notification relay (which puts it
//! on the change feed). Audited customer changes emit theirs through [`crate::audit`].

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::Result,
    storage::{Backend, sql::Sql, time},
};

/// Records an internal event in the caller's transaction.
pub async fn emit(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: &str,
    customer_id: &str,
    payload: &Value,
    at: i64,
) -> Result<()> {
    Ok(emit_raw(conn, tenant, kind, customer_id, payload, at).await?)
}

/// [`emit`] for callers whose errors are sqlx's (the audit log).
pub async fn emit_raw(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: &str,
    customer_id: &str,
    payload: &Value,
    at: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO internal_events (tenant_id, id, kind, customer_id, payload, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(tenant)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(kind)
        .bind(customer_id)
        .bind(payload.to_string())
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records many internal events `(kind, customer id, payload)` in the caller's transaction,
/// in multi-row statements.
pub async fn emit_many(
    conn: &mut AnyConnection,
    tenant: &str,
    events: &[(&str, &str, Value)],
    at: i64,
) -> std::result::Result<(), sqlx::Error> {
    for chunk in events.chunks(100) {
        let mut sql = Sql::new(
            "INSERT INTO internal_events (tenant_id, id, kind, customer_id, payload, at) VALUES ",
        );
        for (i, (kind, customer_id, payload)) in chunk.iter().enumerate() {
            sql.push_row(
                i == 0,
                [
                    tenant.into(),
                    uuid::Uuid::now_v7().to_string().into(),
                    (*kind).into(),
                    (*customer_id).into(),
                    payload.to_string().into(),
                    at.into(),
                ],
            );
        }
        let backend = Backend::of(conn);
        sql.on(backend).query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// An internal event taken for dispatch.
#[derive(Debug, Clone)]
pub struct Internal {
    pub id: String,
    pub kind: String,
    pub customer_id: String,
    pub payload: Value,
    /// UTC microseconds.
    pub at: i64,
}

/// The oldest `limit` undispatched events, `(id, kind, customer id)`, without taking them:
/// a dispatcher that prepares work outside its transaction (the evaluation of customers
/// after their events) reads them first, then takes exactly these with [`take_ids`].
pub async fn peek(
    conn: &mut AnyConnection,
    tenant: &str,
    limit: i64,
) -> Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT id, kind, customer_id FROM internal_events WHERE tenant_id = $1 AND dispatched_at IS NULL \
         ORDER BY at, id LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("kind")?,
                r.try_get("customer_id")?,
            ))
        })
        .collect()
}

/// Marks the events `ids` (from [`peek`]) that are still undispatched as dispatched and
/// returns them, oldest first. Another host's dispatcher may have taken some meanwhile (on
/// PostgreSQL rows it holds are skipped; on SQLite the write transaction excludes every
/// other writer), and events recorded since are left for the next round.
pub async fn take_ids(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Internal>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new("UPDATE internal_events SET dispatched_at = ");
        let now = sql.arg(time::to_micros(time::now()));
        let t = sql.arg(tenant);
        sql.push(&format!(
            "{now} WHERE tenant_id = {t} AND id IN (SELECT id FROM internal_events WHERE tenant_id = {t} \
             AND dispatched_at IS NULL AND id"
        ))
        .push_in(chunk)
        .push(&format!(
            "{}) RETURNING id, kind, customer_id, payload, at",
            backend.skip_locked()
        ));
        let rows = sql.on(backend).query_once().fetch_all(&mut *conn).await?;
        out.extend(rows.iter().map(internal).collect::<Result<Vec<_>>>()?);
    }
    out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(out)
}

fn internal(r: &sqlx::any::AnyRow) -> Result<Internal> {
    let payload: String = r.try_get("payload")?;
    Ok(Internal {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        customer_id: r.try_get("customer_id")?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        at: r.try_get("at")?,
    })
}
