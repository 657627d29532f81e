//! Failed sign-ins per client address: the per-user lockout ([`super::passwords`]) stops
//! guessing one user's password; this stops one address trying a few passwords on each of
//! many users (password spraying). [`LIMIT`] failures from one address within a window of
//! [`WINDOW`] refuse every sign-in from it, right password or not, until the window ends.
//! Counted in the database, per tenant, so every host of a tenant counts together.
//!
//! An IPv6 client is counted by its /64 prefix (one subscriber's network: a host given a
//! /64 can use any address in it).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};

/// Failed sign-ins from one address a window allows.
pub const LIMIT: i64 = 20;
/// The length of a window, from its first failure.
pub const WINDOW: Duration = Duration::minutes(15);

/// What an address is counted as: an IPv4 address (an IPv4-mapped IPv6 address as its IPv4
/// address), or an IPv6 address's /64 prefix.
pub fn key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// Until when `address` may not sign in to `tenant`, if it has failed [`LIMIT`] times in
/// its current window.
pub async fn refused_until(db: &Db, tenant: &str, address: &str) -> Result<Option<DateTime<Utc>>> {
    let row = sqlx::query(
        "SELECT window_start, failures FROM sign_in_addresses WHERE tenant_id = $1 AND address = $2",
    )
    .bind(tenant)
    .bind(address)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.and_then(|r| {
        let end = time::from_micros(r.get("window_start")) + WINDOW;
        let failures: i64 = r.get("failures");
        (failures >= LIMIT && end > time::now()).then_some(end)
    }))
}

/// Counts a failed sign-in from `address` (a new window when the last one is over). Answers
/// whether this failure reached the limit.
pub async fn count_failure(db: &Db, tenant: &str, address: &str) -> Result<bool> {
    let now = time::now();
    let start = time::to_micros(now);
    let over = time::to_micros(now - WINDOW);
    let failures: i64 = sqlx::query(
        "INSERT INTO sign_in_addresses (tenant_id, address, window_start, failures) \
         VALUES ($1, $2, $3, 1) \
         ON CONFLICT (tenant_id, address) DO UPDATE SET \
         failures = CASE WHEN sign_in_addresses.window_start <= $4 THEN 1 \
                         ELSE sign_in_addresses.failures + 1 END, \
         window_start = CASE WHEN sign_in_addresses.window_start <= $4 THEN $3 \
                             ELSE sign_in_addresses.window_start END \
         RETURNING failures",
    )
    .bind(tenant)
    .bind(address)
    .bind(start)
    .bind(over)
    .fetch_one(&db.pool)
    .await?
    .get("failures");
    // windows long over go with the next failure anywhere in the tenant (no job needed)
    if failures == 1 {
        sqlx::query("DELETE FROM sign_in_addresses WHERE tenant_id = $1 AND window_start <= $2")
            .bind(tenant)
            .bind(over)
            .execute(&db.pool)
            .await?;
    }
    Ok(failures == LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_counted_by_address_and_ipv6_by_its_slash_64() {
        assert_eq!(key("203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(
            key("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            key("2001:db8:1:2::1".parse().unwrap()),
            key("2001:db8:1:2:ffff::9".parse().unwrap())
        );
        assert_ne!(
            key("2001:db8:1:2::1".parse().unwrap()),
            key("2001:db8:1:3::1".parse().unwrap())
        );
    }
}
