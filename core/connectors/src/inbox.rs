//! Deliveries received and not yet processed (`inbound_deliveries`).
//!
//! The endpoint stores a delivery once per `(source, key)` — its identity at the sender —
//! and answers; a worker claims due ones by leasing them (moving `next_at` ahead), does the
//! work and marks the delivery done **in the work's transaction**, on condition that its
//! lease still holds: a host that stalls past its lease and another that took the delivery
//! over cannot both commit. A failure is tried again with backoff, and after
//! [`MAX_ATTEMPTS`] the delivery is `failed` with the reason (kept for the operator).

use chrono::{DateTime, Duration, Utc};
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::Result,
    storage::{Db, time},
};

/// Tries before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// How long a claim holds a delivery.
pub const LEASE: Duration = Duration::seconds(60);

/// A delivery a worker holds.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    /// `wecom:<app>` or `hook:<name>`.
    pub source: String,
    /// The sender's identity of the delivery (a WeCom message's SHA-256, a `webhook-id`).
    pub key: String,
    pub body: String,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// The lease: the claim holds while the row's `next_at` is this.
    pub lease: i64,
    pub received_at: DateTime<Utc>,
}

/// Stores a delivery; `false` when the same one (same source and key) was stored before.
pub async fn receive(db: &Db, tenant: &str, source: &str, key: &str, body: &str) -> Result<bool> {
    let now = time::to_micros(time::now());
    let done = sqlx::query(
        "INSERT INTO inbound_deliveries (tenant_id, id, source, dedupe_key, body, status, attempts, next_at, received_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
         ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(source)
    .bind(key)
    .bind(body)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `limit` due deliveries, oldest first.
pub async fn claim(db: &Db, tenant: &str, now: DateTime<Utc>, limit: i64) -> Result<Vec<Delivery>> {
    let at = time::to_micros(now);
    let rows = sqlx::query(
        "SELECT id, source, dedupe_key, body, attempts, next_at, received_at FROM inbound_deliveries \
         WHERE tenant_id = $1 AND status = 'pending' AND next_at <= $2 ORDER BY next_at, id LIMIT $3",
    )
    .bind(tenant)
    .bind(at)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let lease = time::to_micros(now + LEASE);
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let seen: i64 = row.try_get("next_at")?;
        let taken = sqlx::query(
            "UPDATE inbound_deliveries SET next_at = $1, attempts = attempts + 1 \
             WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND next_at = $4",
        )
        .bind(lease)
        .bind(tenant)
        .bind(&id)
        .bind(seen)
        .execute(&db.pool)
        .await?;
        if taken.rows_affected() == 1 {
            claimed.push(Delivery {
                id,
                source: row.try_get("source")?,
                key: row.try_get("dedupe_key")?,
                body: row.try_get("body")?,
                attempts: row.try_get::<i64, _>("attempts")? + 1,
                lease,
                received_at: time::from_micros(row.try_get("received_at")?),
            });
        }
    }
    Ok(claimed)
}

/// Marks `d` done with its outcome, in the caller's transaction; `false` when the lease was
/// lost (another worker holds the delivery: roll back).
pub async fn done(
    conn: &mut AnyConnection,
    tenant: &str,
    d: &Delivery,
    outcome: &str,
) -> Result<bool> {
    let marked = sqlx::query(
        "UPDATE inbound_deliveries SET status = 'done', outcome = $1, processed_at = $2 \
         WHERE tenant_id = $3 AND id = $4 AND status = 'pending' AND next_at = $5",
    )
    .bind(outcome)
    .bind(time::to_micros(time::now()))
    .bind(tenant)
    .bind(&d.id)
    .bind(d.lease)
    .execute(&mut *conn)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Backoff before try `attempts + 1`: 2 s, 4 s, 8 s, … capped at 10 minutes.
pub fn backoff(attempts: i64) -> Duration {
    Duration::seconds((1i64 << attempts.clamp(1, 20)).min(600))
}

/// Records a failed try: again after [`backoff`], or `failed` for good when `final_` or
/// after [`MAX_ATTEMPTS`]. Answers whether the delivery was given up.
pub async fn failed(db: &Db, tenant: &str, d: &Delivery, why: &str, final_: bool) -> Result<bool> {
    let give_up = final_ || d.attempts >= MAX_ATTEMPTS;
    let now = time::now();
    sqlx::query(
        "UPDATE inbound_deliveries SET status = $1, outcome = $2, next_at = $3, processed_at = $4 \
         WHERE tenant_id = $5 AND id = $6 AND status = 'pending' AND next_at = $7",
    )
    .bind(if give_up { "failed" } else { "pending" })
    .bind(why)
    .bind(time::to_micros(now + backoff(d.attempts)))
    .bind(give_up.then(|| time::to_micros(now)))
    .bind(tenant)
    .bind(&d.id)
    .bind(d.lease)
    .execute(&db.pool)
    .await?;
    Ok(give_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::seconds(2));
        assert_eq!(backoff(3), Duration::seconds(8));
        assert_eq!(backoff(30), Duration::seconds(600));
    }
}
