//! `exportCustomerData`: everything Shoal holds about one person, as one JSON document.

use serde_json::{Map, Value, json};

use crate::{register, rows};
use shoal_base::{
    error::{Error, Result},
    kinds::{Action, Resource, Visibility},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};

/// The `format` of an export document.
pub const FORMAT: &str = "shoal.customer-data/1";

/// Everything held about customer `id` and the profiles merged into it: a row of every
/// register table linked to them, sealed values opened. Requires `export` and a full view of
/// the customer's fields (an export is never masked, so a reader who sees any field masked
/// is refused rather than shown it); audited.
pub async fn export(db: &Db, actor: &Actor, id: &str) -> Result<Value> {
    actor.require(Action::Export)?;
    let masked: Vec<&str> = ["displayName", "phones", "emails", "identities"]
        .into_iter()
        .filter(|f| actor.access.visibility(f) != Visibility::Visible)
        .collect();
    if !masked.is_empty() {
        return Err(Error::Forbidden(format!(
            "customerId: your role sees {} masked, and an export holds every value in full",
            masked.join(", ")
        )));
    }
    let ids = person(db, actor, id, false).await?;
    let mut conn = db.pool.acquire().await?;
    let mut tables = Map::new();
    let mut counts = Map::new();
    for table in register::TABLES {
        let found = rows::linked_rows(
            &mut conn,
            db.backend,
            &db.vault,
            actor.tenant_id(),
            table,
            &ids,
        )
        .await?;
        counts.insert(table.name.into(), json!(found.len()));
        tables.insert(table.name.into(), Value::Array(found));
    }
    if let Some(Value::Array(profiles)) = tables.get("customers") {
        for p in profiles {
            for key in p
                .get("attributes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if actor.access.visibility(&format!("attributes.{key}")) != Visibility::Visible {
                    return Err(Error::Forbidden(format!(
                        "customerId: your role sees attribute `{key}` masked, and an export holds every value in full"
                    )));
                }
            }
        }
    }
    drop(conn);
    audit::record_alone(
        db,
        actor,
        "customer.export_data",
        "customer",
        id,
        json!({ "profiles": ids, "rows": counts }),
    )
    .await?;
    Ok(json!({
        "format": FORMAT,
        "tenant": actor.tenant_id(),
        "customerId": id,
        "profiles": ids,
        "exportedAt": time::now().to_rfc3339(),
        "exportedBy": actor.user_id,
        "tables": tables,
    }))
}

/// The profile ids of one person: `id` (which the actor's customer scope must reach) and
/// every profile merged into it, at any depth. `erasable`: also a deleted profile (an
/// erasure may follow a deletion), never an erased one.
pub(crate) async fn person(
    db: &Db,
    actor: &Actor,
    id: &str,
    erasable: bool,
) -> Result<Vec<String>> {
    let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    let i = sql.arg(id);
    sql.push(&format!(
        "{t} AND c.id = {i} AND c.erased_at IS NULL{}",
        if erasable {
            ""
        } else {
            " AND c.deleted_at IS NULL"
        }
    ));
    actor
        .access
        .push_customer_scope(&mut sql, db.backend, Resource::Customers, &t);
    if sql.query().fetch_optional(&db.pool).await?.is_none() {
        return Err(Error::not_found("customer", id));
    }
    let rows = sqlx::query(
        "WITH RECURSIVE person(id) AS (SELECT $2 UNION SELECT c.id FROM customers c JOIN person p ON c.merged_into = p.id \
         WHERE c.tenant_id = $1) SELECT id FROM person ORDER BY id",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::try_get(r, "id"))
        .collect::<std::result::Result<_, _>>()?;
    // the person asked about first
    ids.sort_by_key(|x| x != id);
    Ok(ids)
}
