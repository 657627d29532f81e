//! The per-channel throttle of campaign releases, one per tenant and channel and shared by
//! every host on the database (table `channel_throttles`): a token bucket whose capacity
//! accrues at the channel's rate, at most one second's worth. A host takes what accrued
//! and moves the bucket's clock forward by exactly that much, in one transaction holding
//! the row, so two hosts releasing the same tenant's campaigns take half each, not twice
//! the rate.

use chrono::{DateTime, Utc};

use shoal_base::{
    error::Result,
    storage::{Db, dialect, time},
};

/// Takes the release capacity of `channel` for `tenant` that accrued by `now` at
/// `per_second` messages a second (at most `per_second`): answers how many messages may be
/// released now. The capacity taken is spent whether or not it is used.
pub async fn take(
    db: &Db,
    tenant: &str,
    channel: &str,
    per_second: usize,
    now: DateTime<Utc>,
) -> Result<usize> {
    const SECOND: i64 = 1_000_000;
    if per_second == 0 {
        return Ok(0);
    }
    let now = time::to_micros(now);
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO channel_throttles (tenant_id, channel, released_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, channel) DO NOTHING",
    )
    .bind(tenant)
    .bind(channel)
    .bind(now - SECOND)
    .execute(&mut *tx)
    .await?;
    let released_at: i64 = sqlx::query_scalar(&format!(
        "SELECT released_at FROM channel_throttles WHERE tenant_id = $1 AND channel = $2{}",
        dialect::for_update(db.backend)
    ))
    .bind(tenant)
    .bind(channel)
    .fetch_one(&mut *tx)
    .await?;
    // capacity accrues for at most a second: an idle channel does not save up a burst
    let from = released_at.max(now - SECOND);
    let accrued = (now - from).max(0);
    let rate = per_second as i64;
    let n = accrued.saturating_mul(rate) / SECOND;
    if n == 0 {
        return Ok(0);
    }
    // forward by exactly the time `n` messages take, so no fraction is lost
    sqlx::query(
        "UPDATE channel_throttles SET released_at = $3 WHERE tenant_id = $1 AND channel = $2",
    )
    .bind(tenant)
    .bind(channel)
    .bind(from + n * SECOND / rate)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n as usize)
}
