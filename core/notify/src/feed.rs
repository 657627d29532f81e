//! The change feed: a tenant's internal events in the order the relay saw them committed
//! (see [`crate::relay`]), each with a sequence number that is the cursor of subscriptions;
//! reading after a cursor, and pruning.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::{Row, any::AnyRow};

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_crm::access::Access;

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The cursor: increasing per tenant, in commit order.
    pub seq: i64,
    /// The internal event's id.
    pub id: String,
    /// An event type of [`crate::event_types::KINDS`].
    pub kind: String,
    /// Empty for a bill without a customer.
    pub customer_id: String,
    /// Ids and names of what changed, never field values.
    pub payload: Value,
    /// When the change was made.
    pub at: DateTime<Utc>,
}

pub(crate) fn from_row(r: &AnyRow) -> Result<Change> {
    let payload: String = r.try_get("payload")?;
    Ok(Change {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        customer_id: r.try_get("customer_id")?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        at: time::from_micros(r.try_get("at")?),
    })
}

/// Whether a reader with `access` may hear of the change — a subscriber, a notification's
/// recipient: its customer within their scope of the change's resource (see
/// [`crate::event_types::resource_of`]); a change without a customer (a bill without one),
/// or about a deleted customer (out of every scope), only when they reach all of it.
pub async fn reaches(access: &Access, db: &Db, c: &Change) -> bool {
    let resource = crate::event_types::resource_of(&c.kind);
    if resource == shoal_base::kinds::Resource::Tickets && involved(&access.user_id, c) {
        // a ticket's assignee and watchers hear of it, whoever its customer is
        return true;
    }
    if c.customer_id.is_empty() || c.kind == "customer.deleted" {
        return access.reaches_all(resource);
    }
    access
        .ensure_customer(db, resource, &c.customer_id)
        .await
        .is_ok()
}

/// Whether `user` is a ticket change's assignee or one of its watchers.
pub fn involved(user: &str, c: &Change) -> bool {
    c.payload
        .get("assignee")
        .and_then(serde_json::Value::as_str)
        == Some(user)
        || c.payload
            .get("watchers")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|w| w.iter().any(|x| x.as_str() == Some(user)))
}

/// What a reader asking for the changes after a cursor gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The next changes, oldest first (none when the reader is up to date).
    Changes(Vec<Change>),
    /// Changes after the cursor were pruned: the oldest the feed still holds is `oldest`.
    Gap { oldest: i64 },
}

/// The tenant's last sequence number (0 before the first change).
pub async fn head(db: &Db, tenant: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT seq FROM feed_heads WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.try_get("seq"))
            .transpose()?
            .unwrap_or(0),
    )
}

/// Up to `limit` changes after `after`, or a gap when some of them were pruned.
pub async fn read(db: &Db, tenant: &str, after: i64, limit: i64) -> Result<Read> {
    let pruned: i64 = sqlx::query("SELECT pruned_through FROM feed_heads WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get("pruned_through"))
        .transpose()?
        .unwrap_or(0);
    if after < pruned {
        return Ok(Read::Gap { oldest: pruned + 1 });
    }
    let rows = sqlx::query(
        "SELECT * FROM change_feed WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(Read::Changes(
        rows.iter().map(from_row).collect::<Result<Vec<_>>>()?,
    ))
}

/// Deletes feed entries relayed before `now - retention`, and remembers the last one
/// deleted: a subscriber whose cursor falls before it gets a gap.
pub async fn prune(db: &Db, tenant: &str, now: DateTime<Utc>, retention: Duration) -> Result<u64> {
    let cutoff = time::to_micros(now - retention);
    let mut tx = db.begin_write().await?;
    let last: Option<i64> = sqlx::query(
        "SELECT MAX(seq) AS last FROM change_feed WHERE tenant_id = $1 AND fed_at < $2",
    )
    .bind(tenant)
    .bind(cutoff)
    .fetch_one(&mut *tx)
    .await?
    .try_get("last")?;
    let Some(last) = last else {
        tx.rollback().await?;
        return Ok(0);
    };
    let n = sqlx::query("DELETE FROM change_feed WHERE tenant_id = $1 AND seq <= $2")
        .bind(tenant)
        .bind(last)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE feed_heads SET pruned_through = $2 WHERE tenant_id = $1 AND pruned_through < $2",
    )
    .bind(tenant)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}
