//! Staff passwords: argon2id hashes (PHC strings, the format every argon2 library reads),
//! set by the user (with the current one) or by an administrator, checked at sign-in with a
//! lockout after repeated failures.
//!
//! Hashing takes tens of milliseconds and 19 MiB by design (OWASP's argon2id floor:
//! m = 19456 KiB, t = 2, p = 1); it runs on the blocking pool, never on a request's thread.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use crate::tenancy::Actor;
use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};

/// The fewest characters (not bytes) a password may have.
pub const MIN_CHARS: usize = 10;
/// The most characters a password may have (argon2 would take more, a sign-in form not).
pub const MAX_CHARS: usize = 200;
/// Failed sign-ins in a row that lock a user out.
pub const LOCK_AFTER: i64 = 5;
/// How long a lockout lasts.
pub const LOCKED_FOR: Duration = Duration::minutes(15);

fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String> {
    let salt: [u8; 16] = shoal_base::vault::random_bytes();
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches a stored PHC string (its own parameters, so hashes made with
/// other argon2 settings or by another system still verify). A malformed hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// [`hash`] on the blocking pool.
pub async fn hash_off_thread(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Error::Internal(format!("password hashing stopped: {e}")))?
}

/// [`verify`] on the blocking pool.
pub async fn verify_off_thread(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &stored))
        .await
        .unwrap_or(false)
}

/// Checks a new password against the policy; the error names `field`.
pub fn check_policy(password: &str, user_id: &str, field: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(Error::invalid(
            field,
            format!("a password needs at least {MIN_CHARS} characters (this one has {chars})"),
        ));
    }
    if chars > MAX_CHARS {
        return Err(Error::invalid(
            field,
            format!("a password may have at most {MAX_CHARS} characters"),
        ));
    }
    if password.trim().eq_ignore_ascii_case(user_id) {
        return Err(Error::invalid(field, "a password may not be the user's id"));
    }
    Ok(())
}

/// A user's stored password and lockout state.
#[derive(Debug, Clone)]
pub struct Stored {
    pub hash: String,
    pub locked_until: Option<DateTime<Utc>>,
}

/// The stored password of a user, if one was set.
pub async fn stored(db: &Db, tenant: &str, user_id: &str) -> Result<Option<Stored>> {
    let row = sqlx::query(
        "SELECT hash, locked_until FROM user_passwords WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| Stored {
        hash: r.get("hash"),
        locked_until: r
            .get::<Option<i64>, _>("locked_until")
            .map(time::from_micros),
    }))
}

/// Sets `user_id`'s password: an administrator may set anyone's, a user their own with the
/// current one (`current_password`) when they have one. Every session of the user ends (a
/// changed password signs out everywhere); the audit log records who set it, never the
/// password.
pub async fn set(
    db: &Db,
    actor: &Actor,
    user_id: &str,
    password: &str,
    current_password: Option<&str>,
) -> Result<()> {
    if !actor.tenant.users.contains_key(user_id) {
        return Err(Error::not_found("user", user_id));
    }
    let own = actor.user_id == user_id;
    if !own {
        actor.require(Action::Administer)?;
    }
    check_policy(password, user_id, "password")?;
    let existing = stored(db, actor.tenant_id(), user_id).await?;
    if own
        && actor.require(Action::Administer).is_err()
        && let Some(existing) = &existing
    {
        let current = current_password.ok_or_else(|| {
            Error::invalid(
                "currentPassword",
                "the current password is needed to change it",
            )
        })?;
        if !verify_off_thread(current.to_owned(), existing.hash.clone()).await {
            return Err(Error::invalid(
                "currentPassword",
                "the current password is not right",
            ));
        }
    }
    let hash = hash_off_thread(password.to_owned()).await?;
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO user_passwords (tenant_id, user_id, hash, set_at, set_by, failures, locked_until) \
         VALUES ($1, $2, $3, $4, $5, 0, NULL) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET hash = excluded.hash, \
         set_at = excluded.set_at, set_by = excluded.set_by, failures = 0, locked_until = NULL",
    )
    .bind(actor.tenant_id())
    .bind(user_id)
    .bind(&hash)
    .bind(now)
    .bind(&actor.user_id)
    .execute(&mut *tx)
    .await?;
    let ended = super::sessions::end_all_in(&mut tx, actor.tenant_id(), user_id).await?;
    crate::audit::record(
        &mut tx,
        actor,
        "user.password_set",
        "user",
        user_id,
        serde_json::json!({ "sessions_ended": ended, "had_password": existing.is_some() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Counts a failed sign-in; the [`LOCK_AFTER`]th in a row locks the user for [`LOCKED_FOR`].
/// Answers whether this failure locked the user.
pub async fn count_failure(db: &Db, tenant: &str, user_id: &str) -> Result<bool> {
    let now = time::now();
    let mut tx = db.begin_write().await?;
    let failures: i64 = sqlx::query(
        "UPDATE user_passwords SET failures = failures + 1 \
         WHERE tenant_id = $1 AND user_id = $2 RETURNING failures",
    )
    .bind(tenant)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .map_or(0, |r| r.get("failures"));
    let locks = failures >= LOCK_AFTER;
    if locks {
        sqlx::query(
            "UPDATE user_passwords SET failures = 0, locked_until = $3 \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(time::to_micros(now + LOCKED_FOR))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(locks)
}

/// Clears the failure count after a successful sign-in.
pub async fn clear_failures(db: &Db, tenant: &str, user_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE user_passwords SET failures = 0, locked_until = NULL \
         WHERE tenant_id = $1 AND user_id = $2 AND (failures <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(tenant)
    .bind(user_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies() {
        let h = hash("长城-correct-horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("长城-correct-horse", &h));
        assert!(!verify("长城-correct-hors", &h));
        assert_ne!(h, hash("长城-correct-horse").unwrap(), "salted");
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn the_policy_counts_characters_and_names_the_field() {
        assert!(check_policy("密码密码密码密码密码", "u1", "password").is_ok());
        let e = check_policy("short", "u1", "password")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("password: a password needs at least 10"),
            "{e}"
        );
        assert!(check_policy("advisor-zhang", "advisor-zhang", "p").is_err());
    }
}
