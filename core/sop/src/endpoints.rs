//! Webhook endpoints of `callWebhook` steps: each URL a tenant's SOPs call has a secret of
//! its own — made when an SOP naming it is saved, read and rotated by the tenant's
//! administrators — so a receiver can verify that a call came from Shoal, and no receiver
//! ever holds the key that signs another's calls (or the gateway's).

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::{audit, tenancy::Actor};

/// An endpoint as its administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// `whsec_…`: the HMAC-SHA256 key of this endpoint's signatures.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// A fresh secret: `whsec_` and 32 bytes from the operating system's generator, base64.
pub fn new_secret() -> String {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut bytes = [0u8; 32];
    // two v4 UUIDs are 244 bits from the OS generator
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The secret of `url` for the tenant, made on first use (in the caller's transaction).
pub async fn secret_of(conn: &mut AnyConnection, tenant: &str, url: &str) -> Result<String> {
    if let Some(row) =
        sqlx::query("SELECT secret FROM webhook_endpoints WHERE tenant_id = $1 AND url = $2")
            .bind(tenant)
            .bind(url)
            .fetch_optional(&mut *conn)
            .await?
    {
        return Ok(row.try_get("secret")?);
    }
    sqlx::query(
        "INSERT INTO webhook_endpoints (tenant_id, url, secret, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, url) DO NOTHING",
    )
    .bind(tenant)
    .bind(url)
    .bind(new_secret())
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT secret FROM webhook_endpoints WHERE tenant_id = $1 AND url = $2")
        .bind(tenant)
        .bind(url)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("secret")?)
}

/// The key bytes of a `whsec_…` secret.
pub fn key_bytes(secret: &str) -> Vec<u8> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Endpoint> {
    Ok(Endpoint {
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        rotated_at: r
            .try_get::<Option<i64>, _>("rotated_at")?
            .map(time::from_micros),
    })
}

/// The tenant's endpoints with their secrets (administrators).
pub async fn list(db: &Db, actor: &Actor) -> Result<Vec<Endpoint>> {
    actor.require(Action::Administer)?;
    sqlx::query("SELECT * FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY url")
        .bind(actor.tenant_id())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Replaces an endpoint's secret (administrators); calls signed from now on use the new one.
pub async fn rotate(db: &Db, actor: &Actor, url: &str) -> Result<Endpoint> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let now = time::to_micros(time::now());
    let changed = sqlx::query(
        "UPDATE webhook_endpoints SET secret = $3, rotated_at = $4 WHERE tenant_id = $1 AND url = $2",
    )
    .bind(actor.tenant_id())
    .bind(url)
    .bind(new_secret())
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(Error::not_found("webhook endpoint", url));
    }
    audit::record(
        &mut tx,
        actor,
        "webhookEndpoint.rotate",
        "webhook_endpoint",
        url,
        serde_json::json!({}),
    )
    .await?;
    let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE tenant_id = $1 AND url = $2")
        .bind(actor.tenant_id())
        .bind(url)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    from_row(&row)
}
