//! Staff sessions: a signed-in user's browser holds a random token (in an httpOnly cookie,
//! set by the API); the database keeps only its SHA-256, with the user, a CSRF token and the
//! expiry, so every host of a tenant knows every session and signing out anywhere ends it
//! everywhere.
//!
//! A session lasts [`LIFETIME`] from sign-in and ends earlier after [`IDLE`] without a
//! request. Sign-in answers the same way for an unknown user and a wrong password (and takes
//! as long: an unknown user's attempt is hashed too).

use std::sync::{Arc, LazyLock};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use sqlx::{AnyConnection, Row};

use super::{addresses, passwords};
use crate::tenancy::{Actor, Directory, Principal, Tenant};
use shoal_base::{
    config::sha256_hex,
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};

/// A session's longest life, from sign-in.
pub const LIFETIME: Duration = Duration::hours(12);
/// A session unused this long is over.
pub const IDLE: Duration = Duration::hours(2);
/// `last_seen_at` is written at most this often per session (not on every request).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A session just opened: what the browser is given.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The cookie value: `<tenant>.<random token>`.
    pub cookie: String,
    /// Sent back by the page in `X-CSRF-Token` with every request that changes something.
    pub csrf: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown tenant or user, no password set, or a wrong password: one answer for all.
    #[error("wrong user or password")]
    Wrong,
    /// Too many failures in a row; the user may try again after `until`.
    #[error("too many failed sign-ins: try again after {until}")]
    Locked { until: DateTime<Utc> },
    /// Too many failures from the client's address ([`super::addresses`]); it may try again
    /// after `until`.
    #[error("too many failed sign-ins from this address: try again after {until}")]
    AddressLimited { until: DateTime<Utc> },
    #[error(transparent)]
    Other(#[from] Error),
}

/// Who is signing in, as the request tells.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The client's address as counted ([`addresses::key`]); `None` when unknown (no limit
    /// per address applies).
    pub address: Option<&'a str>,
    /// The browser's `User-Agent`, kept with the session (200 characters at most).
    pub user_agent: Option<&'a str>,
}

/// A live session, found from its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A hash no password matches, verified for unknown users so they take as long as known ones.
static DECOY: LazyLock<String> =
    LazyLock::new(|| passwords::hash("decoy password, never set").unwrap_or_default());

/// Takes as long as checking a real password: for sign-ins naming no known tenant.
pub async fn decoy_verify(password: String) {
    let _ = passwords::verify_off_thread(password, DECOY.clone()).await;
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(shoal_base::vault::random_bytes::<32>())
}

/// What the database keeps of a token: its SHA-256, as API keys are kept.
fn digest(token: &str) -> String {
    sha256_hex(token)
}

/// Records a sign-in event of `user` in the audit log (as the user; the host acts).
async fn audit_user(
    db: &Db,
    tenant: &Arc<Tenant>,
    user: &str,
    action: &str,
    changes: serde_json::Value,
) -> Result<()> {
    crate::audit::record_alone(
        db,
        &Actor::system(tenant, user),
        action,
        "user",
        user,
        changes,
    )
    .await
}

/// The user `login` names: a user id, or the e-mail address of exactly one user.
fn find_user<'t>(tenant: &'t Tenant, login: &str) -> Option<&'t str> {
    let login = login.trim();
    if let Some((id, _)) = tenant.users.get_key_value(login) {
        return Some(id);
    }
    let mut by_email = tenant.users.iter().filter(|(_, u)| {
        u.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(login))
    });
    match (by_email.next(), by_email.next()) {
        (Some((id, _)), None) => Some(id),
        _ => None,
    }
}

/// Checks `password` for the user `login` names and opens a session. Failures count towards
/// the lockout; a locked user is refused before the password is looked at. Failures from
/// `address` (the client's, as [`super::addresses::key`] counts it) count towards its limit,
/// and an address over its limit is refused before anything else.
pub async fn sign_in(
    db: &Db,
    tenant: &Arc<Tenant>,
    login: &str,
    password: &str,
    client: Client<'_>,
) -> Result<Opened, SignInError> {
    if let Some(address) = client.address
        && let Some(until) = addresses::refused_until(db, &tenant.id, address).await?
    {
        return Err(SignInError::AddressLimited { until });
    }
    let user = find_user(tenant, login);
    let stored = match user {
        Some(user) => passwords::stored(db, &tenant.id, user).await?,
        None => None,
    };
    let now = time::now();
    if let Some(until) = stored.as_ref().and_then(|s| s.locked_until)
        && until > now
    {
        return Err(SignInError::Locked { until });
    }
    let hash = stored
        .as_ref()
        .map_or_else(|| DECOY.clone(), |s| s.hash.clone());
    let matches = passwords::verify_off_thread(password.to_owned(), hash).await;
    let (Some(user), Some(_), true) = (user, &stored, matches) else {
        if let Some(address) = client.address
            && addresses::count_failure(db, &tenant.id, address).await?
        {
            tracing::warn!(tenant = %tenant.id, address, "sign-ins refused from an address after repeated failures");
        }
        if let (Some(user), Some(_)) = (user, &stored)
            && passwords::count_failure(db, &tenant.id, user).await?
        {
            tracing::warn!(tenant = %tenant.id, user, "sign-in locked after repeated failures");
            let changes = serde_json::json!({ "for_minutes": passwords::LOCKED_FOR.num_minutes() });
            audit_user(db, tenant, user, "user.locked", changes).await?;
        }
        return Err(SignInError::Wrong);
    };
    passwords::clear_failures(db, &tenant.id, user).await?;
    let user_agent = client.user_agent;
    let changes = serde_json::json!({ "user_agent": user_agent, "address": client.address });
    audit_user(db, tenant, user, "user.signed_in", changes).await?;
    // the user's sessions that are over go now (they are refused anyway; this keeps the
    // table to the live ones without a job)
    sqlx::query(
        "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 \
         AND (expires_at <= $3 OR last_seen_at <= $4)",
    )
    .bind(&tenant.id)
    .bind(user)
    .bind(time::to_micros(now))
    .bind(time::to_micros(now - IDLE))
    .execute(&db.pool)
    .await
    .map_err(Error::from)?;
    let token = random_token();
    let csrf = random_token();
    let expires_at = now + LIFETIME;
    let micros = time::to_micros(now);
    sqlx::query(
        "INSERT INTO sessions (tenant_id, id, user_id, csrf, created_at, last_seen_at, expires_at, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
    )
    .bind(&tenant.id)
    .bind(digest(&token))
    .bind(user)
    .bind(&csrf)
    .bind(micros)
    .bind(time::to_micros(expires_at))
    .bind(user_agent.map(|a| a.chars().take(200).collect::<String>()))
    .execute(&db.pool)
    .await
    .map_err(Error::from)?;
    Ok(Opened {
        cookie: format!("{}.{token}", tenant.id),
        csrf,
        user_id: user.to_owned(),
        expires_at,
    })
}

/// The live session a cookie value names, if any (expired and idle ones are not).
pub async fn find(db: &Db, tenants: &Directory, cookie: &str) -> Result<Option<Session>> {
    let Some((tenant_id, token)) = cookie.rsplit_once('.') else {
        return Ok(None);
    };
    let Some(tenant) = tenants.tenant(tenant_id) else {
        return Ok(None);
    };
    let id = digest(token);
    let Some(row) = sqlx::query(
        "SELECT user_id, csrf, last_seen_at, expires_at FROM sessions WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&tenant.id)
    .bind(&id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let now = time::now();
    let last_seen = time::from_micros(row.get("last_seen_at"));
    let expires_at = time::from_micros(row.get("expires_at"));
    let user_id: String = row.get("user_id");
    if expires_at <= now || last_seen + IDLE <= now || !tenant.users.contains_key(&user_id) {
        return Ok(None);
    }
    if now - last_seen >= TOUCH_EVERY {
        sqlx::query("UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(&tenant.id)
            .bind(&id)
            .bind(time::to_micros(now))
            .execute(&db.pool)
            .await?;
    }
    Ok(Some(Session {
        principal: Principal {
            tenant: tenant.clone(),
            user_id,
        },
        csrf: row.get("csrf"),
        expires_at,
    }))
}

/// Ends the session a cookie value names (signing out in this browser).
pub async fn end(db: &Db, cookie: &str) -> Result<()> {
    if let Some((tenant, token)) = cookie.rsplit_once('.') {
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(digest(token))
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// Ends every session of a user (signing out everywhere); answers how many ended.
pub async fn end_all(db: &Db, tenant: &str, user_id: &str) -> Result<u64> {
    let mut conn = db.pool.acquire().await?;
    Ok(end_all_in(&mut conn, tenant, user_id).await?)
}

/// Ends every session of `user_id` on the actor's behalf: one's own, or anyone's with
/// `administer`; audited. Answers how many ended.
pub async fn end_for(db: &Db, actor: &Actor, user_id: &str) -> Result<u64> {
    if actor.user_id != user_id {
        actor.require(Action::Administer)?;
    }
    if !actor.tenant.users.contains_key(user_id) {
        return Err(Error::not_found("user", user_id));
    }
    let ended = end_all(db, actor.tenant_id(), user_id).await?;
    let changes = serde_json::json!({ "ended": ended });
    crate::audit::record_alone(db, actor, "user.sessions_ended", "user", user_id, changes).await?;
    Ok(ended)
}

/// [`end_all`] in the caller's transaction.
pub async fn end_all_in(
    conn: &mut AnyConnection,
    tenant: &str,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Whether the CSRF token a request carries is the session's (compared in constant time).
pub fn csrf_matches(session: &Session, presented: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn a_token_is_stored_as_its_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
