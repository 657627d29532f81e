//! How a customer's personal fields are kept at rest: the one place that knows.
//!
//! - `customers.phones` / `customers.emails`: the JSON list sealed by the tenant's data key
//!   (`[]` when empty, so "has no phone" stays countable);
//! - `customer_contacts.value`: the blind index of each normalised phone, e-mail and e-mail
//!   local part (exact look-ups: search, dedupe, import matching);
//! - `customer_identities.external_id`: the blind index of the identity (kind
//!   `identity:<channel>`), with the value sealed in `external_id_sealed`.
//!
//! Rows written before sealing existed (plain lists, plain identities with no sealed column)
//! are still read; the host seals them at start (see [`seal_legacy`]).

use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use shoal_base::{
    error::{Error, Result},
    kinds::Channel,
    vault::{Vault, is_sealed},
};

/// Field names the values are sealed as (the AEAD's associated data).
pub const PHONES: &str = "customers.phones";
/// See [`PHONES`].
pub const EMAILS: &str = "customers.emails";
/// See [`PHONES`].
pub const IDENTITY: &str = "customer_identities.external_id";

/// What `customers.phones` or `customers.emails` stores for a list.
pub fn seal_list(vault: &Vault, tenant: &str, field: &str, list: &[String]) -> Result<String> {
    if list.is_empty() {
        return Ok("[]".into());
    }
    Ok(vault.seal(tenant, field, &json!(list).to_string())?)
}

/// The list a stored `customers.phones` / `emails` holds.
pub fn open_list(vault: &Vault, tenant: &str, field: &str, stored: &str) -> Result<Vec<String>> {
    let text = if is_sealed(stored) {
        vault.unseal(tenant, field, stored)?
    } else {
        stored.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| Error::Internal(format!("{field} holds bad JSON: {e}")))
}

/// The blind index of a contact (`phone`, `email`, `email_local`) as `customer_contacts`
/// holds it.
pub fn contact_index(vault: &Vault, tenant: &str, kind: &str, value: &str) -> Result<String> {
    Ok(vault.index(tenant, kind, value)?)
}

/// The blind index of an identity as `customer_identities.external_id` holds it: every
/// look-up by identity binds this instead of the identity itself.
pub fn identity_index(
    vault: &Vault,
    tenant: &str,
    channel: Channel,
    external_id: &str,
) -> Result<String> {
    Ok(vault.index(
        tenant,
        &format!("identity:{}", channel.as_str()),
        external_id,
    )?)
}

/// [`identity_index`] for a channel given by name.
pub fn identity_index_named(
    vault: &Vault,
    tenant: &str,
    channel: &str,
    external_id: &str,
) -> Result<String> {
    Ok(vault.index(tenant, &format!("identity:{channel}"), external_id)?)
}

/// What `customer_identities.external_id_sealed` stores for an identity.
pub fn seal_identity(vault: &Vault, tenant: &str, external_id: &str) -> Result<String> {
    Ok(vault.seal(tenant, IDENTITY, external_id)?)
}

/// An identity's value from its row: the sealed column, or a legacy plain `external_id`.
pub fn open_identity(
    vault: &Vault,
    tenant: &str,
    external_id: &str,
    sealed: Option<&str>,
) -> Result<String> {
    match sealed {
        Some(s) => Ok(vault.unseal(tenant, IDENTITY, s)?),
        None => Ok(external_id.to_owned()),
    }
}

/// Rows of one batch of [`seal_legacy`].
const LEGACY_BATCH: i64 = 500;

/// Seals what was written before sealing existed: plain phone/e-mail lists (and their plain
/// contact rows, rewritten as blind indexes) and plain identities. Runs at start, in batches
/// of 500 rows per transaction, until nothing is left; returns how many rows it sealed.
pub async fn seal_legacy(db: &shoal_base::storage::Db, tenant: &str) -> Result<u64> {
    let mut sealed = 0u64;
    loop {
        let mut tx = db.begin_write().await?;
        let rows = sqlx::query(
            "SELECT id, phones, emails FROM customers WHERE tenant_id = $1 \
             AND ((phones <> '[]' AND phones NOT LIKE 's1:%') OR (emails <> '[]' AND emails NOT LIKE 's1:%')) \
             ORDER BY id LIMIT $2",
        )
        .bind(tenant)
        .bind(LEGACY_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let phones = open_list(
                &db.vault,
                tenant,
                PHONES,
                &row.try_get::<String, _>("phones")?,
            )?;
            let emails = open_list(
                &db.vault,
                tenant,
                EMAILS,
                &row.try_get::<String, _>("emails")?,
            )?;
            sqlx::query(
                "UPDATE customers SET phones = $1, emails = $2 WHERE tenant_id = $3 AND id = $4",
            )
            .bind(seal_list(&db.vault, tenant, PHONES, &phones)?)
            .bind(seal_list(&db.vault, tenant, EMAILS, &emails)?)
            .bind(tenant)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            rewrite_contacts(&mut tx, &db.vault, tenant, &id, &phones, &emails).await?;
        }
        let identities = sqlx::query(
            "SELECT customer_id, channel, external_id, created_at FROM customer_identities \
             WHERE tenant_id = $1 AND external_id_sealed IS NULL LIMIT $2",
        )
        .bind(tenant)
        .bind(LEGACY_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for row in &identities {
            let (customer, channel, value, created): (String, String, String, i64) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            );
            sqlx::query(
                "UPDATE customer_identities SET external_id = $1, external_id_sealed = $2 \
                 WHERE tenant_id = $3 AND customer_id = $4 AND channel = $5 AND external_id = $6 AND created_at = $7 \
                 AND external_id_sealed IS NULL",
            )
            .bind(identity_index_named(&db.vault, tenant, &channel, &value)?)
            .bind(seal_identity(&db.vault, tenant, &value)?)
            .bind(tenant)
            .bind(&customer)
            .bind(&channel)
            .bind(&value)
            .bind(created)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let n = (rows.len() + identities.len()) as u64;
        sealed += n;
        if n == 0 {
            return Ok(sealed);
        }
    }
}

/// The `customer_contacts` rows of a customer: the blind index of each phone, e-mail and
/// e-mail local part (looked up by fuzzy duplicate detection).
pub fn contact_rows(
    vault: &Vault,
    tenant: &str,
    phones: &[String],
    emails: &[String],
) -> Result<Vec<(&'static str, String)>> {
    let mut plain: Vec<(&'static str, &str)> = Vec::new();
    plain.extend(phones.iter().map(|p| ("phone", p.as_str())));
    plain.extend(emails.iter().map(|e| ("email", e.as_str())));
    for e in emails {
        if let Some((local, _)) = e.split_once('@')
            && !local.is_empty()
            && !plain
                .iter()
                .any(|(k, v)| *k == "email_local" && *v == local)
        {
            plain.push(("email_local", local));
        }
    }
    plain
        .into_iter()
        .map(|(kind, value)| Ok((kind, contact_index(vault, tenant, kind, value)?)))
        .collect()
}

/// Replaces a customer's contact rows with those of `phones` and `emails`.
pub async fn rewrite_contacts(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    customer_id: &str,
    phones: &[String],
    emails: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM customer_contacts WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    for (kind, value) in contact_rows(vault, tenant, phones, emails)? {
        sqlx::query("INSERT INTO customer_contacts (tenant_id, customer_id, kind, value) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(customer_id)
            .bind(kind)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
