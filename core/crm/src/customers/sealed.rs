//! How a customer's personal fields are kept at rest: the one place that knows.
//!
//! - `customers.phones` / `customers.emails`: the JSON list sealed by the tenant's data key
//!   (`[]` when empty, so "has no phone" stays countable);
//! - `customer_contacts.value`: the blind index of each normalised phone, e-mail and e-mail
//!   local part (exact look-ups: search, dedupe, import matching);
//! - `customer_identities.external_id`: the blind index of the identity (kind
//!   `identity:<channel>`), with the value sealed in `external_id_sealed`;
//! - `customers.attributes_sealed`: the attributes the tenant lists under
//!   `contact.sealed_attributes`, as one sealed JSON object (NULL when the customer has
//!   none); `customers.attributes` keeps the others, which rules and filters read in SQL.
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
/// See [`PHONES`].
pub const ATTRIBUTES: &str = "customers.attributes_sealed";

/// What `customers.attributes` and `customers.attributes_sealed` store for a customer's
/// attributes: the JSON object of those the tenant does not seal, and the sealed object of
/// those it does (`None` when there are none).
pub fn split_attributes(
    vault: &Vault,
    tenant: &str,
    attributes: &serde_json::Map<String, serde_json::Value>,
) -> Result<(String, Option<String>)> {
    let sealed_keys = vault.sealed_attributes(tenant);
    if sealed_keys.is_empty() {
        return Ok((
            serde_json::Value::Object(attributes.clone()).to_string(),
            None,
        ));
    }
    let (hidden, clear): (serde_json::Map<_, _>, serde_json::Map<_, _>) = attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| sealed_keys.contains(k));
    let sealed = if hidden.is_empty() {
        None
    } else {
        Some(vault.seal(
            tenant,
            ATTRIBUTES,
            &serde_json::Value::Object(hidden).to_string(),
        )?)
    };
    Ok((serde_json::Value::Object(clear).to_string(), sealed))
}

/// A customer's attributes from its two columns: the clear ones with the sealed ones opened
/// (whether or not the tenant still seals them: a host reads what any host wrote).
pub fn join_attributes(
    vault: &Vault,
    tenant: &str,
    clear: serde_json::Map<String, serde_json::Value>,
    sealed: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut all = clear;
    if let Some(sealed) = sealed {
        let text = vault.unseal(tenant, ATTRIBUTES, sealed)?;
        match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(hidden)) => all.extend(hidden),
            _ => return Err(Error::Internal(format!("{ATTRIBUTES} holds bad JSON"))),
        }
    }
    Ok(all)
}

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
    identity_index_named(vault, tenant, channel.as_str(), external_id)
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

/// Moves attribute values between `customers.attributes` and `attributes_sealed` where the
/// tenant's `contact.sealed_attributes` changed since a host last started (values of keys
/// it now seals that are still in clear — also those a host on the earlier list wrote —
/// and values of keys it no longer seals), in batches of 500 rows per transaction, then
/// records the list. Returns how many rows it rewrote.
pub async fn apply_sealed_attributes(db: &shoal_base::storage::Db, tenant: &str) -> Result<u64> {
    use shoal_base::storage::Backend;
    let now: Vec<String> = db.vault.sealed_attributes(tenant).to_vec();
    let before: Vec<String> = sqlx::query(
        "SELECT attribute FROM sealed_attribute_keys WHERE tenant_id = $1 ORDER BY attribute",
    )
    .bind(tenant)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<std::result::Result<_, _>>()?;
    let released = before.iter().any(|k| !now.contains(k));
    if now.is_empty() && !released {
        return Ok(0);
    }
    // rows holding a sealed key in clear, or (when keys were released) any sealed object
    let mut sql = shoal_base::storage::sql::Sql::new("SELECT id, attributes_sealed, ");
    sql.push(&format!(
        "{} AS attributes FROM customers WHERE tenant_id = ",
        shoal_base::storage::dialect::json_text(db.backend, "attributes")
    ));
    let t = sql.arg(tenant);
    sql.push(&t);
    let mut any: Vec<String> = now
        .iter()
        .map(|k| match db.backend {
            Backend::Sqlite => format!(
                "json_type(attributes, {}) IS NOT NULL",
                sql.arg(format!("$.\"{k}\""))
            ),
            Backend::Postgres => format!("(attributes -> {}) IS NOT NULL", sql.arg(k.clone())),
        })
        .collect();
    if released {
        any.push("attributes_sealed IS NOT NULL".into());
    }
    sql.push(&format!(" AND ({})", any.join(" OR ")));
    let mut rewritten = 0u64;
    let mut after = String::new();
    loop {
        let mut page = sql.clone();
        let a = page.arg(after.clone());
        let limit = page.arg(LEGACY_BATCH);
        page.push(&format!(" AND id > {a} ORDER BY id LIMIT {limit}"));
        let mut tx = db.begin_write().await?;
        let rows = page.on(db.backend).query().fetch_all(&mut *tx).await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let clear = match serde_json::from_str(&row.try_get::<String, _>("attributes")?) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            let sealed: Option<String> = row.try_get("attributes_sealed")?;
            let all = join_attributes(&db.vault, tenant, clear, sealed.as_deref())?;
            let (clear, sealed) = split_attributes(&db.vault, tenant, &all)?;
            sqlx::query(&format!(
                "UPDATE customers SET attributes = {}, attributes_sealed = $2 WHERE tenant_id = $3 AND id = $4",
                shoal_base::storage::dialect::json_cast(db.backend, "$1")
            ))
            .bind(clear)
            .bind(sealed)
            .bind(tenant)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            after = id;
        }
        if rows.is_empty() {
            sqlx::query("DELETE FROM sealed_attribute_keys WHERE tenant_id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            for key in &now {
                sqlx::query(
                    "INSERT INTO sealed_attribute_keys (tenant_id, attribute) VALUES ($1, $2)",
                )
                .bind(tenant)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(rewritten);
        }
        tx.commit().await?;
        rewritten += rows.len() as u64;
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
