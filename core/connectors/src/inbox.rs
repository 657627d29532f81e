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
    error::{Error, Result},
    kinds::{Action, Resource},
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;

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

/// How long a processed delivery keeps its body (the raw contact data it carried); its
/// key, outcome and times stay, so a replay is still recognised.
pub const KEEP_BODIES: Duration = Duration::days(7);

/// How long a failed delivery keeps its body, to be tried again.
pub const KEEP_FAILED_BODIES: Duration = Duration::days(30);

/// Empties the bodies of deliveries processed more than [`KEEP_BODIES`] ago, and of failed
/// ones after [`KEEP_FAILED_BODIES`] (they can no longer be tried again). Answers how many.
pub async fn forget_bodies(db: &Db, tenant: &str, now: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE inbound_deliveries SET body = '' \
         WHERE tenant_id = $1 AND body <> '' \
         AND ((status = 'done' AND processed_at < $2) OR (status = 'failed' AND processed_at < $3))",
    )
    .bind(tenant)
    .bind(time::to_micros(now - KEEP_BODIES))
    .bind(time::to_micros(now - KEEP_FAILED_BODIES))
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// Renews the claim on `d` as its turn comes: a fresh lease from `now`. `None` when another
/// worker took it over meanwhile.
pub async fn renew(
    db: &Db,
    tenant: &str,
    d: &Delivery,
    now: DateTime<Utc>,
) -> Result<Option<Delivery>> {
    let lease = time::to_micros(now + LEASE);
    let renewed = sqlx::query(
        "UPDATE inbound_deliveries SET next_at = $1 \
         WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND next_at = $4",
    )
    .bind(lease)
    .bind(tenant)
    .bind(&d.id)
    .bind(d.lease)
    .execute(&db.pool)
    .await?;
    Ok((renewed.rows_affected() == 1).then(|| Delivery { lease, ..d.clone() }))
}

/// Backoff before try `attempts + 1`: 2 s, 4 s, 8 s, … capped at 10 minutes.
pub fn backoff(attempts: i64) -> Duration {
    Duration::seconds((1i64 << attempts.clamp(1, 20)).min(600))
}

/// Records a failed try: again after [`backoff`], or `failed` for good when `final_` or
/// after [`MAX_ATTEMPTS`]. Answers whether the delivery was given up; `None` when the lease
/// was lost (another worker holds the delivery, nothing recorded).
pub async fn failed(
    db: &Db,
    tenant: &str,
    d: &Delivery,
    why: &str,
    final_: bool,
) -> Result<Option<bool>> {
    let give_up = final_ || d.attempts >= MAX_ATTEMPTS;
    let now = time::now();
    let marked = sqlx::query(
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
    Ok((marked.rows_affected() == 1).then_some(give_up))
}

/// A delivery as staff see it: where it came from and what became of it, never its body
/// (the raw contact data it carried).
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: String,
    pub source: String,
    pub key: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// What the delivery became, or why it failed.
    pub outcome: Option<String>,
}

/// Statuses a delivery can be in.
pub const STATUSES: [&str; 3] = ["pending", "done", "failed"];

/// Reading deliveries shows what connectors received about any customer: it needs a role
/// whose customers scope is `all` (as import jobs do).
pub fn require_reader(actor: &Actor) -> Result<()> {
    if actor.access.reaches_all(Resource::Customers) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "connector deliveries concern every customer: they need a role whose customers scope is `all`"
                .into(),
        ))
    }
}

fn summary(row: &sqlx::any::AnyRow) -> Result<Summary> {
    Ok(Summary {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        key: row.try_get("dedupe_key")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        received_at: time::from_micros(row.try_get("received_at")?),
        processed_at: row
            .try_get::<Option<i64>, _>("processed_at")?
            .map(time::from_micros),
        outcome: row.try_get("outcome")?,
    })
}

const SUMMARY: &str = "SELECT id, source, dedupe_key, status, attempts, received_at, processed_at, outcome FROM inbound_deliveries";

/// The tenant's deliveries, newest first: of one `status` and one `source` when given, at
/// most `limit` (1–500).
pub async fn list(
    db: &Db,
    actor: &Actor,
    status: Option<&str>,
    source: Option<&str>,
    limit: i64,
) -> Result<Vec<Summary>> {
    require_reader(actor)?;
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(Error::invalid(
            "status",
            format!("`{s}` is not one of {}", STATUSES.join(", ")),
        ));
    }
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit", "from 1 to 500"));
    }
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR source = $3) \
         ORDER BY received_at DESC, id DESC LIMIT $4"
    ))
    .bind(actor.tenant_id())
    .bind(status)
    .bind(source)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(summary).collect()
}

/// Puts a failed delivery back in the queue, due now, with its tries counted afresh (after
/// the cause was mended: the WeCom client configured, a mapping corrected).
pub async fn retry(db: &Db, actor: &Actor, id: &str) -> Result<Summary> {
    require_reader(actor)?;
    actor.require(Action::Update)?;
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT id, source, dedupe_key, status, attempts, received_at, processed_at, outcome, body \
         FROM inbound_deliveries WHERE tenant_id = $1 AND id = $2",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound {
        what: "connector delivery",
        id: id.to_owned(),
    })?;
    let found = summary(&row)?;
    let body: String = row.try_get("body")?;
    if found.status == "failed" && body.is_empty() {
        return Err(Error::invalid(
            "id",
            "the delivery's body was emptied (30 days after it failed): it cannot be tried again",
        ));
    }
    if found.status != "failed" {
        return Err(Error::invalid(
            "id",
            format!(
                "the delivery is {}: only a failed one is tried again",
                found.status
            ),
        ));
    }
    let moved = sqlx::query(
        "UPDATE inbound_deliveries SET status = 'pending', attempts = 0, next_at = $1, processed_at = NULL \
         WHERE tenant_id = $2 AND id = $3 AND status = 'failed'",
    )
    .bind(time::to_micros(time::now()))
    .bind(actor.tenant_id())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        // another call put it back first
        return Err(Error::invalid(
            "id",
            "the delivery is being tried again already",
        ));
    }
    shoal_crm::audit::record(
        &mut tx,
        actor,
        "connector.retry",
        "connector_delivery",
        id,
        serde_json::json!({ "source": found.source, "outcome": found.outcome }),
    )
    .await?;
    tx.commit().await?;
    Ok(Summary {
        status: "pending".into(),
        attempts: 0,
        processed_at: None,
        ..found
    })
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
