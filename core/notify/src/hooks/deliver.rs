//! Delivering webhook messages: at least once, every attempt under the message's
//! `webhook-id`, on the configured schedule; `Retry-After` honoured, `410 Gone` disables the
//! endpoint, and an endpoint failing without a success for `disable_after_hours` is
//! disabled with a notice to the tenant's administrators. Every attempt is logged.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use shoal_base::{
    config::NotifyConfig,
    error::Result,
    storage::{Db, time},
};
use shoal_crm::tenancy::Tenant;
use shoal_sop::{outbox::standard_signature, transport::Transport};

use super::{Endpoint, fetch};
use crate::post::{Posted, post_json};

/// Messages one delivery round takes.
const BATCH: i64 = 50;

/// The `webhook-signature` value: a `v1,…` signature per key, space-separated (the
/// Standard Webhooks form for a secret rotation).
pub fn signature_header(keys: &[Vec<u8>], id: &str, unix: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| standard_signature(k, id, unix, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long to wait before the next attempt after `attempts` failed ones, or `None` when
/// the schedule is spent. A `Retry-After` (seconds or an HTTP date) replaces the schedule's
/// delay, up to `max_retry_after_seconds`.
fn next_delay(
    cfg: &NotifyConfig,
    attempts: i64,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let scheduled = *cfg.retry_schedule_seconds.get(attempts as usize)?;
    let asked = retry_after.and_then(|v| {
        v.trim().parse::<u64>().ok().or_else(|| {
            DateTime::parse_from_rfc2822(v.trim())
                .ok()
                .map(|at| (at.with_timezone(&Utc) - now).num_seconds().max(0) as u64)
        })
    });
    let seconds = match asked {
        Some(s) => s.min(cfg.max_retry_after_seconds),
        None => scheduled,
    };
    Some(Duration::seconds(seconds as i64))
}

struct Taken {
    id: String,
    endpoint_id: String,
    payload: String,
    attempts: i64,
}

/// Delivers the tenant's due messages (one batch); returns how many were attempted.
pub async fn deliver_due(
    db: &Db,
    tenant: &Tenant,
    cfg: &NotifyConfig,
    transport: &Transport,
    now: DateTime<Utc>,
) -> Result<usize> {
    // lease the rows (past any attempt's timeout) so another host does not take them
    // meanwhile, without holding a transaction open during the calls
    let lease = now + Duration::milliseconds(cfg.timeout_ms as i64 * 2 + 5_000);
    let lock = db.backend.skip_locked();
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(&format!(
        "SELECT id, endpoint_id, payload, attempts FROM hook_messages \
         WHERE tenant_id = $1 AND status = 'pending' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT {BATCH}{lock}"
    ))
    .bind(&tenant.id)
    .bind(time::to_micros(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut taken = Vec::with_capacity(rows.len());
    for r in &rows {
        taken.push(Taken {
            id: r.try_get("id")?,
            endpoint_id: r.try_get("endpoint_id")?,
            payload: r.try_get("payload")?,
            attempts: r.try_get("attempts")?,
        });
    }
    for m in &taken {
        sqlx::query(
            "UPDATE hook_messages SET next_attempt_at = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&tenant.id)
        .bind(&m.id)
        .bind(time::to_micros(lease))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let mut endpoints: HashMap<String, Option<Endpoint>> = HashMap::new();
    for m in &taken {
        if !endpoints.contains_key(&m.endpoint_id) {
            let mut conn = db.pool.acquire().await?;
            let e = fetch(&mut conn, &tenant.id, &m.endpoint_id).await.ok();
            endpoints.insert(m.endpoint_id.clone(), e);
        }
        let endpoint = endpoints[&m.endpoint_id].clone();
        let outcome = match endpoint {
            Some(e) if e.enabled => {
                let attempt = async { Ok(attempt(db, tenant, cfg, transport, &e, m).await) };
                match shoal_base::supervise::catch(attempt).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Final(format!("delivery failed inside the host: {e}")),
                }
            }
            Some(e) => Outcome::Final(format!(
                "the endpoint is disabled: {}",
                e.disabled_reason.unwrap_or_default()
            )),
            None => Outcome::Final("the endpoint was deleted".into()),
        };
        settle(db, tenant, cfg, m, &outcome).await?;
        if let Outcome::Gone(_) = &outcome {
            // later messages of this batch for the endpoint see it disabled
            endpoints.remove(&m.endpoint_id);
        }
    }
    Ok(taken.len())
}

enum Outcome {
    Delivered,
    /// Try again after this long (or give up when `None`).
    Retry(String, Option<Duration>),
    /// Never again (a refused address, a disabled or deleted endpoint).
    Final(String),
    /// `410 Gone`: the endpoint is disabled.
    Gone(String),
}

async fn attempt(
    db: &Db,
    tenant: &Tenant,
    cfg: &NotifyConfig,
    transport: &Transport,
    e: &Endpoint,
    m: &Taken,
) -> Outcome {
    let now = time::now();
    let unix = now.timestamp();
    let headers = [
        ("webhook-id", m.id.clone()),
        ("webhook-timestamp", unix.to_string()),
        (
            "webhook-signature",
            signature_header(&e.signing_keys(now), &m.id, unix, m.payload.as_bytes()),
        ),
    ];
    let timeout = std::time::Duration::from_millis(cfg.timeout_ms);
    let (posted, latency) = post_json(
        transport,
        tenant,
        &e.url,
        &headers,
        m.payload.clone(),
        timeout,
    )
    .await;
    let number = m.attempts + 1;
    let (status, head, error, outcome) = match posted {
        Posted::Answered(a) if a.status.is_success() => (
            Some(a.status.as_u16()),
            Some(a.head),
            None,
            Outcome::Delivered,
        ),
        Posted::Answered(a) if a.status.as_u16() == 410 => {
            let why = format!("{} answered 410 Gone", e.url);
            (
                Some(410),
                Some(a.head),
                Some(why.clone()),
                Outcome::Gone(why),
            )
        }
        Posted::Answered(a) => {
            let why = format!("{} answered {}", e.url, a.status);
            let honoured = matches!(a.status.as_u16(), 429 | 503);
            let retry_after = a.retry_after.as_deref().filter(|_| honoured);
            let next = next_delay(cfg, number, retry_after, now);
            (
                Some(a.status.as_u16()),
                Some(a.head),
                Some(why.clone()),
                Outcome::Retry(why, next),
            )
        }
        Posted::Failed(why) => {
            let next = next_delay(cfg, number, None, now);
            (None, None, Some(why.clone()), Outcome::Retry(why, next))
        }
        Posted::Refused(why) => (None, None, Some(why.clone()), Outcome::Final(why)),
    };
    let logged = sqlx::query(
        "INSERT INTO hook_attempts (tenant_id, id, message_id, endpoint_id, attempt, at, url, status_code, response_head, latency_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&tenant.id)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&m.id)
    .bind(&e.id)
    .bind(number)
    .bind(time::to_micros(now))
    .bind(&e.url)
    .bind(status.map(i64::from))
    .bind(head.map(|h| String::from_utf8_lossy(&h).into_owned()))
    .bind(latency.as_millis() as i64)
    .bind(error)
    .execute(&db.pool)
    .await;
    if let Err(err) = logged {
        tracing::warn!(tenant = %tenant.id, message = %m.id, error = %err, "webhook attempt not logged");
    }
    outcome
}

/// Stores the outcome on the message and, on failure or success, on its endpoint's streak.
async fn settle(
    db: &Db,
    tenant: &Tenant,
    cfg: &NotifyConfig,
    m: &Taken,
    outcome: &Outcome,
) -> Result<()> {
    let now = time::now();
    let at = time::to_micros(now);
    let attempts = m.attempts + 1;
    let mut tx = db.begin_write().await?;
    let (status, next, error) = match outcome {
        Outcome::Delivered => ("delivered", at, None),
        Outcome::Retry(why, Some(delay)) => ("pending", time::to_micros(now + *delay), Some(why)),
        Outcome::Retry(why, None) | Outcome::Final(why) | Outcome::Gone(why) => {
            ("failed", at, Some(why))
        }
    };
    sqlx::query(
        "UPDATE hook_messages SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6, \
         delivered_at = $7 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&tenant.id)
    .bind(&m.id)
    .bind(status)
    .bind(attempts)
    .bind(next)
    .bind(error.cloned())
    .bind((status == "delivered").then_some(at))
    .execute(&mut *tx)
    .await?;
    match outcome {
        Outcome::Delivered => {
            sqlx::query(
                "UPDATE hook_endpoints SET failing_since = NULL WHERE tenant_id = $1 AND id = $2",
            )
            .bind(&tenant.id)
            .bind(&m.endpoint_id)
            .execute(&mut *tx)
            .await?;
        }
        Outcome::Gone(why) => disable(&mut tx, tenant, &m.endpoint_id, why).await?,
        Outcome::Retry(..) => {
            sqlx::query(
                "UPDATE hook_endpoints SET failing_since = COALESCE(failing_since, $3) WHERE tenant_id = $1 AND id = $2",
            )
            .bind(&tenant.id)
            .bind(&m.endpoint_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let since: Option<i64> = sqlx::query(
                "SELECT failing_since FROM hook_endpoints WHERE tenant_id = $1 AND id = $2 AND enabled = 1",
            )
            .bind(&tenant.id)
            .bind(&m.endpoint_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("failing_since"))
            .transpose()?
            .flatten();
            let limit = Duration::hours(cfg.disable_after_hours as i64);
            if let Some(since) = since
                && now - time::from_micros(since) >= limit
            {
                let why = format!(
                    "no successful delivery for {} hours",
                    cfg.disable_after_hours
                );
                disable(&mut tx, tenant, &m.endpoint_id, &why).await?;
            }
        }
        Outcome::Final(_) => {}
    }
    tx.commit().await?;
    Ok(())
}

/// Disables an endpoint, fails its pending messages and tells the tenant's administrators,
/// in the caller's transaction.
async fn disable(
    conn: &mut sqlx::AnyConnection,
    tenant: &Tenant,
    endpoint_id: &str,
    why: &str,
) -> Result<()> {
    let now = time::to_micros(time::now());
    let changed = sqlx::query(
        "UPDATE hook_endpoints SET enabled = 0, disabled_reason = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND id = $2 AND enabled = 1",
    )
    .bind(&tenant.id)
    .bind(endpoint_id)
    .bind(why)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE hook_messages SET status = 'failed', last_error = $3 \
         WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'pending'",
    )
    .bind(&tenant.id)
    .bind(endpoint_id)
    .bind(format!("the endpoint was disabled: {why}"))
    .execute(&mut *conn)
    .await?;
    tracing::warn!(tenant = %tenant.id, endpoint = endpoint_id, reason = why, "webhook endpoint disabled");
    crate::staff::notify_admins(
        conn,
        tenant,
        "webhook.disabled",
        &format!("Webhook endpoint {endpoint_id} was disabled: {why}"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NotifyConfig {
        let c: shoal_base::config::Config =
            toml::from_str(shoal_base::config::DEFAULT_TOML).unwrap();
        c.notify
    }

    #[test]
    fn the_schedule_is_the_standard_webhooks_one_and_ends() {
        let c = cfg();
        let now = time::now();
        let delays: Vec<i64> = (1..8)
            .map(|n| next_delay(&c, n, None, now).unwrap().num_seconds())
            .collect();
        assert_eq!(delays, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(next_delay(&c, 8, None, now), None);
    }

    #[test]
    fn retry_after_replaces_the_delay_up_to_the_cap() {
        let c = cfg();
        let now = time::now();
        assert_eq!(
            next_delay(&c, 1, Some("120"), now),
            Some(Duration::seconds(120))
        );
        assert_eq!(
            next_delay(&c, 1, Some("999999"), now),
            Some(Duration::seconds(86400))
        );
        let date = (now + Duration::seconds(600)).to_rfc2822();
        let d = next_delay(&c, 1, Some(&date), now).unwrap().num_seconds();
        assert!((598..=600).contains(&d), "{d}");
        // the schedule still ends
        assert_eq!(next_delay(&c, 8, Some("1"), now), None);
    }
}
