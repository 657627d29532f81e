//! The delivery log of an endpoint (its messages and every attempt of each), and manual
//! redelivery: of one message, or of everything that failed since a time. A redelivered
//! message keeps its `webhook-id`, so a receiver that did get it drops the repeat.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Row, any::AnyRow};

use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};

use super::fetch;

/// The pagination order of messages.
pub const ORDER: &str = "hook_messages:created_at";

/// A webhook message and how its delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `webhook-id`.
    pub id: String,
    pub endpoint_id: String,
    /// The change's sequence number on the feed.
    pub seq: i64,
    pub event_type: String,
    /// The body, exactly as signed and sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn message(r: &AnyRow) -> Result<Message> {
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        seq: r.try_get("seq")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        next_attempt_at: (status == "pending")
            .then(|| r.try_get("next_attempt_at").map(time::from_micros))
            .transpose()?,
        status,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        delivered_at: r
            .try_get::<Option<i64>, _>("delivered_at")?
            .map(time::from_micros),
    })
}

/// One attempt to deliver a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub url: String,
    /// The HTTP status; none when no answer came.
    pub status_code: Option<i64>,
    /// The first bytes of the response body.
    pub response_head: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// An endpoint's messages, newest first, optionally with one status (administrators).
pub async fn messages(
    db: &Db,
    actor: &Actor,
    endpoint_id: &str,
    status: Option<&str>,
    page: &Page,
) -> Result<Paged<(Message, Cursor)>> {
    actor.require(Action::Administer)?;
    let tenant = actor.tenant_id();
    let mut sql = Sql::new("SELECT * FROM hook_messages WHERE tenant_id = ");
    let t = sql.arg(tenant);
    let e = sql.arg(endpoint_id);
    sql.push(&format!("{t} AND endpoint_id = {e}"));
    if let Some(s) = status {
        let s = sql.arg(s);
        sql.push(&format!(" AND status = {s}"));
    }
    page.push_conditions(&mut sql, "created_at", "id", true);
    page.push_order_limit(&mut sql, "created_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows.iter().map(message).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|m| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(m.created_at)),
        id: m.id.clone(),
    }))
}

/// The attempts of a message, oldest first (administrators).
pub async fn attempts(db: &Db, actor: &Actor, message_id: &str) -> Result<Vec<Attempt>> {
    actor.require(Action::Administer)?;
    sqlx::query(
        "SELECT * FROM hook_attempts WHERE tenant_id = $1 AND message_id = $2 ORDER BY at, id",
    )
    .bind(actor.tenant_id())
    .bind(message_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Attempt {
            attempt: r.try_get("attempt")?,
            at: time::from_micros(r.try_get("at")?),
            url: r.try_get("url")?,
            status_code: r.try_get("status_code")?,
            response_head: r.try_get("response_head")?,
            latency_ms: r.try_get("latency_ms")?,
            error: r.try_get("error")?,
        })
    })
    .collect()
}

/// Queues one message again, now, with a fresh schedule and the same `webhook-id`
/// (administrators; audited). The endpoint must be enabled.
pub async fn redeliver(db: &Db, actor: &Actor, message_id: &str) -> Result<Message> {
    actor.require(Action::Administer)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let row = sqlx::query("SELECT * FROM hook_messages WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("webhook message", message_id))?;
    let m = message(&row)?;
    let endpoint = fetch(&mut tx, tenant, &m.endpoint_id).await?;
    if !endpoint.enabled {
        return Err(Error::invalid(
            "messageId",
            format!("endpoint {} is disabled; enable it first", endpoint.id),
        ));
    }
    sqlx::query(
        "UPDATE hook_messages SET status = 'pending', attempts = 0, next_attempt_at = $3, delivered_at = NULL \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(message_id)
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "webhook.redeliver",
        "webhook_message",
        message_id,
        json!({ "endpointId": m.endpoint_id }),
    )
    .await?;
    let row = sqlx::query("SELECT * FROM hook_messages WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(message_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    message(&row)
}

/// Queues again every failed message of the endpoint created at or after `since`
/// (administrators; audited); returns how many.
pub async fn redeliver_failed(
    db: &Db,
    actor: &Actor,
    endpoint_id: &str,
    since: DateTime<Utc>,
) -> Result<u64> {
    actor.require(Action::Administer)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let endpoint = fetch(&mut tx, tenant, endpoint_id).await?;
    if !endpoint.enabled {
        return Err(Error::invalid(
            "endpointId",
            format!("endpoint {endpoint_id} is disabled; enable it first"),
        ));
    }
    let n = sqlx::query(
        "UPDATE hook_messages SET status = 'pending', attempts = 0, next_attempt_at = $4 \
         WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3",
    )
    .bind(tenant)
    .bind(endpoint_id)
    .bind(time::to_micros(since))
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit::record(
        &mut tx,
        actor,
        "webhook.redeliver_failed",
        "webhook_endpoint",
        endpoint_id,
        json!({ "since": since.to_rfc3339(), "messages": n }),
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Deletes delivered and failed messages (and their attempts) older than `before`.
pub async fn prune(db: &Db, tenant: &str, before: DateTime<Utc>) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let at = time::to_micros(before);
    sqlx::query("DELETE FROM hook_attempts WHERE tenant_id = $1 AND at < $2")
        .bind(tenant)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query(
        "DELETE FROM hook_messages WHERE tenant_id = $1 AND status <> 'pending' AND created_at < $2",
    )
    .bind(tenant)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}
