//! Webhook endpoints for integrators: a URL, the event types it subscribes to, an optional
//! rule on the customer, and a `whsec_` secret of its own. Messages follow the Standard
//! Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`); see
//! docs/notifications.md.

mod deliver;
mod log;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    config::NotifyConfig,
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::{
    audit,
    tenancy::{Actor, Tenant},
};
use shoal_sop::{contact::Policy, endpoints::new_secret, outbound};

pub use deliver::{deliver_due, signature_header};
pub use log::{Attempt, Message, ORDER, attempts, messages, prune, redeliver, redeliver_failed};

use crate::{event_types, feed::Change};

/// How long a rotated-out secret still signs (beside the new one), so receivers can switch.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// The version of the payload shape (`"version"` in every body).
pub const PAYLOAD_VERSION: i64 = 1;

/// An endpoint as its administrators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// Whether the endpoint takes the change (its types, qualifiers included).
    pub fn subscribes(&self, c: &Change) -> bool {
        event_types::any_matches(&self.event_types, &c.kind, &c.payload)
    }

    /// The keys that sign a message at `now`: the current secret, and the previous one
    /// during a rotation's overlap.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Vec<Vec<u8>> {
        let mut keys = vec![shoal_sop::endpoints::key_bytes(&self.secret)];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until)
            && now < until
        {
            keys.push(shoal_sop::endpoints::key_bytes(previous));
        }
        keys
    }
}

fn from_row(r: &AnyRow) -> Result<Endpoint> {
    let types: String = r.try_get("event_types")?;
    Ok(Endpoint {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        filter: r.try_get("filter")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        secret: r.try_get("secret")?,
        previous_secret: r.try_get("previous_secret")?,
        previous_until: r
            .try_get::<Option<i64>, _>("previous_until")?
            .map(time::from_micros),
        failing_since: r
            .try_get::<Option<i64>, _>("failing_since")?
            .map(time::from_micros),
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
    })
}

/// What an administrator gives to create an endpoint.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub enabled: Option<bool>,
}

/// What an administrator changes; `None` keeps the value (`filter: Some(None)` removes it).
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub filter: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Checks a URL, types, filter and description given under `field` (`input`).
async fn check(
    conn: &mut AnyConnection,
    tenant: &Tenant,
    url: Option<&str>,
    types: Option<&[String]>,
    filter: Option<&str>,
    description: Option<&str>,
) -> Result<()> {
    if let Some(url) = url {
        outbound::check(url, &Policy::of(tenant).outbound_allow)
            .map_err(|e| Error::invalid("input.url", e))?;
    }
    if let Some(types) = types {
        event_types::check(types, "input.eventTypes")?;
    }
    if let Some(text) = filter {
        crate::facts::parse_rule(conn, tenant, text, "input.filter").await?;
    }
    if let Some(d) = description
        && d.chars().count() > 200
    {
        return Err(Error::invalid(
            "input.description",
            "at most 200 characters",
        ));
    }
    Ok(())
}

async fn fetch(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Endpoint> {
    let row = sqlx::query("SELECT * FROM hook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("webhook endpoint", id))?;
    from_row(&row)
}

/// The tenant's endpoints (administrators).
pub async fn list(db: &Db, actor: &Actor) -> Result<Vec<Endpoint>> {
    actor.require(Action::Administer)?;
    sqlx::query("SELECT * FROM hook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id")
        .bind(actor.tenant_id())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// One endpoint (administrators).
pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Endpoint> {
    actor.require(Action::Administer)?;
    let mut conn = db.pool.acquire().await?;
    fetch(&mut conn, actor.tenant_id(), id).await
}

/// Creates an endpoint with a fresh secret (administrators; audited).
pub async fn create(db: &Db, actor: &Actor, input: &NewEndpoint) -> Result<Endpoint> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    check(
        &mut tx,
        &actor.tenant,
        Some(&input.url),
        Some(&input.event_types),
        input.filter.as_deref(),
        input.description.as_deref(),
    )
    .await?;
    let id = format!("ep_{}", uuid::Uuid::now_v7().simple());
    let now = time::to_micros(time::now());
    sqlx::query(
        "INSERT INTO hook_endpoints (tenant_id, id, url, description, event_types, filter, enabled, secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(actor.tenant_id())
    .bind(&id)
    .bind(&input.url)
    .bind(input.description.clone().unwrap_or_default())
    .bind(json!(input.event_types).to_string())
    .bind(input.filter.clone())
    .bind(i64::from(input.enabled.unwrap_or(true)))
    .bind(new_secret())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "webhook.create",
        "webhook_endpoint",
        &id,
        json!({ "url": input.url, "eventTypes": input.event_types, "filter": input.filter }),
    )
    .await?;
    let endpoint = fetch(&mut tx, actor.tenant_id(), &id).await?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Changes an endpoint (administrators; audited). Enabling it again clears why it was
/// disabled and its failure streak.
pub async fn update(db: &Db, actor: &Actor, id: &str, patch: &EndpointPatch) -> Result<Endpoint> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let before = fetch(&mut tx, actor.tenant_id(), id).await?;
    check(
        &mut tx,
        &actor.tenant,
        patch.url.as_deref(),
        patch.event_types.as_deref(),
        patch.filter.as_ref().and_then(|f| f.as_deref()),
        patch.description.as_deref(),
    )
    .await?;
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let reenabled = enabled && !before.enabled;
    sqlx::query(
        "UPDATE hook_endpoints SET url = $3, description = $4, event_types = $5, filter = $6, enabled = $7, \
         disabled_reason = $8, failing_since = $9, updated_at = $10 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(patch.url.clone().unwrap_or(before.url.clone()))
    .bind(patch.description.clone().unwrap_or(before.description.clone()))
    .bind(json!(patch.event_types.clone().unwrap_or(before.event_types.clone())).to_string())
    .bind(patch.filter.clone().unwrap_or(before.filter.clone()))
    .bind(i64::from(enabled))
    .bind(if enabled { None } else { before.disabled_reason.clone().or(Some("disabled by an administrator".into())) })
    .bind(if reenabled { None } else { before.failing_since.map(time::to_micros) })
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "webhook.update",
        "webhook_endpoint",
        id,
        json!({ "url": patch.url, "eventTypes": patch.event_types, "filter": patch.filter, "enabled": patch.enabled }),
    )
    .await?;
    let endpoint = fetch(&mut tx, actor.tenant_id(), id).await?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Deletes an endpoint and its pending messages (administrators; audited); its delivery
/// log stays until it ages out.
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    fetch(&mut tx, actor.tenant_id(), id).await?;
    sqlx::query("DELETE FROM hook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE hook_messages SET status = 'failed', last_error = 'the endpoint was deleted' \
         WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'pending'",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "webhook.delete",
        "webhook_endpoint",
        id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives the endpoint a new secret (administrators; audited); for
/// [`ROTATION_OVERLAP_HOURS`] messages carry a signature with each, so a receiver can
/// switch without losing one.
pub async fn rotate_secret(db: &Db, actor: &Actor, id: &str) -> Result<Endpoint> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let before = fetch(&mut tx, actor.tenant_id(), id).await?;
    let now = time::now();
    sqlx::query(
        "UPDATE hook_endpoints SET secret = $3, previous_secret = $4, previous_until = $5, updated_at = $6 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(new_secret())
    .bind(&before.secret)
    .bind(time::to_micros(now + Duration::hours(ROTATION_OVERLAP_HOURS)))
    .bind(time::to_micros(now))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "webhook.rotate",
        "webhook_endpoint",
        id,
        json!({}),
    )
    .await?;
    let endpoint = fetch(&mut tx, actor.tenant_id(), id).await?;
    tx.commit().await?;
    Ok(endpoint)
}

/// The body of a change's webhook message: the Standard Webhooks shape (`type`,
/// `timestamp`, `data`) with a `version`; ids and names of what changed only. A body over
/// `max_bytes` keeps the ids and says `"truncated": true`.
pub fn payload(tenant: &str, c: &Change, max_bytes: usize) -> String {
    let mut data = json!({
        "tenant": tenant,
        "seq": c.seq,
        "eventId": c.id,
        "customerId": c.customer_id,
    });
    if let (Some(out), Some(fields)) = (data.as_object_mut(), c.payload.as_object()) {
        for (k, v) in fields {
            out.entry(k.clone()).or_insert(v.clone());
        }
    }
    let body = |data: Value| {
        json!({
            "type": c.kind,
            "timestamp": c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "version": PAYLOAD_VERSION,
            "data": data,
        })
        .to_string()
    };
    let full = body(data);
    if full.len() <= max_bytes {
        return full;
    }
    body(json!({
        "tenant": tenant,
        "seq": c.seq,
        "eventId": c.id,
        "customerId": c.customer_id,
        "truncated": true,
    }))
}

/// Writes one message per change and enabled endpoint that subscribes to it (and whose
/// filter holds for the customer), in the relay's transaction.
pub async fn fan_out(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &Tenant,
    changes: &[Change],
    cfg: &NotifyConfig,
) -> Result<()> {
    let endpoints =
        sqlx::query("SELECT * FROM hook_endpoints WHERE tenant_id = $1 AND enabled = 1")
            .bind(&tenant.id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let filters = crate::facts::parse_stored(
        conn,
        &tenant.id,
        endpoints.iter().map(|e| e.filter.as_deref()),
    )
    .await?;
    let now = time::now();
    let first_delay = cfg.retry_schedule_seconds.first().copied().unwrap_or(0);
    let mut facts = crate::facts::Facts::default();
    for c in changes {
        for (e, filter) in endpoints.iter().zip(&filters) {
            if !e.subscribes(c) {
                continue;
            }
            if let Some(rule) = filter {
                let holds = match rule {
                    Some(rule) => {
                        facts
                            .holds(conn, db, &tenant.id, &c.customer_id, rule)
                            .await?
                    }
                    None => false,
                };
                if !holds {
                    continue;
                }
            }
            sqlx::query(
                "INSERT INTO hook_messages (tenant_id, id, endpoint_id, seq, event_type, payload, status, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&tenant.id)
            .bind(format!("msg_{}", uuid::Uuid::now_v7().simple()))
            .bind(&e.id)
            .bind(c.seq)
            .bind(&c.kind)
            .bind(payload(&tenant.id, c, cfg.max_payload_bytes))
            .bind(time::to_micros(now + Duration::seconds(first_delay as i64)))
            .bind(time::to_micros(now))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(payload: Value) -> Change {
        Change {
            seq: 7,
            id: "ev1".into(),
            kind: "tag.added".into(),
            customer_id: "c1".into(),
            payload,
            at: time::from_micros(1_700_000_000_000_000),
        }
    }

    #[test]
    fn a_payload_carries_type_timestamp_version_and_ids() {
        let body: Value =
            serde_json::from_str(&payload("alpha", &change(json!({"tag": "VIP"})), 65536)).unwrap();
        assert_eq!(body["type"], "tag.added");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(body["version"], 1);
        assert_eq!(body["data"]["seq"], 7);
        assert_eq!(body["data"]["customerId"], "c1");
        assert_eq!(body["data"]["tag"], "VIP");
    }

    #[test]
    fn an_oversized_payload_keeps_its_ids_and_says_it_was_truncated() {
        let big = "字".repeat(40_000);
        let text = payload("alpha", &change(json!({"tag": big})), 65536);
        assert!(text.len() <= 65536, "{} bytes", text.len());
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["data"]["truncated"], true);
        assert_eq!(body["data"]["eventId"], "ev1");
        assert!(body["data"].get("tag").is_none());
    }
}
