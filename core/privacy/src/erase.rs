//! `eraseCustomer`: a person's personal data removed from every table of the register in
//! one transaction, with a certificate of what was done.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    export::person,
    register::{self, ERASED, OnErase},
    rows,
};
use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};

/// What an erasure did: kept in `erasures` and returned. It names the pseudonymous profile
/// ids, never a personal value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub id: String,
    pub customer_id: String,
    /// The profiles erased: the customer and every profile merged into it.
    pub profiles: Vec<String>,
    pub reason: String,
    pub actor_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Per table: `{"deleted": n}`, `{"redacted": n}` or `{"kept": n, "why": …}`.
    pub tables: Map<String, Value>,
}

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Erases customer `id` (live or deleted, not yet erased) and the profiles merged into it:
/// every register table's linked rows deleted or redacted, bills and ledger postings kept
/// under the pseudonymous id, audit details replaced by tombstones. Requires `delete` and
/// `administer`; irreversible; the erasure itself is audited (who, when, why, how many rows).
pub async fn erase(db: &Db, actor: &Actor, id: &str, reason: &str) -> Result<Certificate> {
    actor.require(Action::Delete)?;
    actor.require(Action::Administer)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(
            "reason",
            format!("say why, in 1–{MAX_REASON_CHARS} characters (the certificate keeps it)"),
        ));
    }
    let ids = person(db, actor, id, true).await?;
    let erasure_id = uuid::Uuid::now_v7().to_string();
    let now = time::now();
    let tombstone = format!(r#"{{"redacted":"erasure","erasure":"{erasure_id}"}}"#);
    let mut tables = Map::new();
    let mut tx = db.begin_write().await?;
    for table in register::TABLES {
        let mut sql = match table.on_erase {
            OnErase::Delete => Sql::new(&format!(
                "DELETE FROM {} AS x WHERE x.tenant_id = ",
                table.name
            )),
            OnErase::Redact(columns) => {
                let mut sql = Sql::new(&format!("UPDATE {} AS x SET ", table.name));
                // the tokens of `OnErase::Redact`, each bound where it is used
                let sets: Vec<String> = columns
                    .iter()
                    .map(|(c, e)| {
                        let mut e = (*e).to_owned();
                        if e.contains(":erased") {
                            e = e.replace(":erased", &sql.arg(ERASED));
                        }
                        if e.contains(":now") {
                            e = e.replace(":now", &sql.arg(time::to_micros(now)));
                        }
                        if e.contains(":tombstone") {
                            e = e.replace(":tombstone", &sql.arg(tombstone.clone()));
                        }
                        format!("{c} = {e}")
                    })
                    .collect();
                sql.push(&sets.join(", ")).push(" WHERE x.tenant_id = ");
                sql
            }
            OnErase::Keep(why) => {
                let mut count = Sql::new(&format!(
                    "SELECT COUNT(*) AS n FROM {} x WHERE x.tenant_id = ",
                    table.name
                ));
                let t = count.arg(actor.tenant_id());
                count.push(&t);
                rows::push_link(&mut count, db.backend, table, &t, &ids);
                let n: i64 = sqlx::Row::try_get(&count.query().fetch_one(&mut *tx).await?, "n")?;
                tables.insert(table.name.into(), json!({ "kept": n, "why": why }));
                continue;
            }
        };
        let t = sql.arg(actor.tenant_id());
        sql.push(&t);
        rows::push_link(&mut sql, db.backend, table, &t, &ids);
        let n = sql.query().execute(&mut *tx).await?.rows_affected();
        let verb = if matches!(table.on_erase, OnErase::Delete) {
            "deleted"
        } else {
            "redacted"
        };
        tables.insert(table.name.into(), json!({ verb: n }));
    }
    let certificate = Certificate {
        id: erasure_id,
        customer_id: id.to_owned(),
        profiles: ids,
        reason: reason.to_owned(),
        actor_id: actor.user_id.clone(),
        at: now,
        tables,
    };
    sqlx::query(
        "INSERT INTO erasures (tenant_id, id, customer_id, reason, actor_id, at, certificate) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.tenant_id())
    .bind(&certificate.id)
    .bind(id)
    .bind(reason)
    .bind(&actor.user_id)
    .bind(time::to_micros(now))
    .bind(serde_json::to_string(&certificate).unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "customer.erase",
        "customer",
        id,
        json!({ "erasureId": certificate.id, "profiles": certificate.profiles, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(certificate)
}

/// The certificates of the tenant's erasures, newest first (`audit` permission).
pub async fn certificates(
    db: &Db,
    actor: &Actor,
    customer_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Value>> {
    actor.require(Action::Audit)?;
    if !actor
        .access
        .reaches_all(shoal_base::kinds::Resource::Customers)
    {
        return Err(Error::Forbidden(
            "erasure certificates are read by those who reach every customer".into(),
        ));
    }
    let mut sql = Sql::new("SELECT certificate FROM erasures WHERE tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    if let Some(c) = customer_id {
        let a = sql.arg(c);
        sql.push(&format!(" AND customer_id = {a}"));
    }
    let l = sql.arg(limit.clamp(1, 500));
    sql.push(&format!(" ORDER BY at DESC, id DESC LIMIT {l}"));
    sql.query()
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            let text: String = sqlx::Row::try_get(r, "certificate")?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .collect()
}
