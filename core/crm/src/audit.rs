//! The audit log: one row per change, written in the same transaction as the change itself,
//! so a change is never stored without its record (or the reverse). Append-only: the
//! database refuses updates and deletes (migration 8). Read back through [`list`], scoped
//! and masked for the reader.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::tenancy::Actor;
use shoal_base::{
    error::Result,
    kinds::{Action, Resource},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};

/// One recorded change.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// For updates `{field: {"from": …, "to": …}}`; for creations and deletions the fields
    /// as they were.
    pub changes: serde_json::Value,
    /// The request that made the change (`X-Request-Id`), when it came through the API.
    pub request_id: Option<String>,
}

/// Records an audit entry in the caller's transaction; a change to a customer that
/// integrators and staff can be told of (see [`announced`]) also writes its internal event
/// there, so the feed, webhooks and notifications cannot miss an audited change.
pub async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    changes: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let id = new_entry_id();
    record_with_id(conn, actor, &id, action, entity_type, entity_id, changes).await
}

/// A new entry's id: a UUIDv7, so ids sort by time.
pub fn new_entry_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Records an entry under an id chosen beforehand (see [`new_entry_id`]): an import batch's
/// entry, whose id the customers it created keep (`customers.import_entry`), as
/// [`customer_history`] reads it.
pub async fn record_with_id(
    conn: &mut AnyConnection,
    actor: &Actor,
    id: &str,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    changes: serde_json::Value,
) -> Result<(), sqlx::Error> {
    if entity_type == "customer"
        && let Some((kind, payload)) = announced(action, &changes)
    {
        let at = time::to_micros(time::now());
        crate::internal_events::emit_raw(
            &mut *conn,
            actor.tenant_id(),
            kind,
            entity_id,
            &payload,
            at,
        )
        .await?;
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(time::to_micros(time::now()))
    .bind(&actor.user_id)
    .bind(action)
    .bind(entity_type)
    .bind(entity_id)
    .bind(seal_changes(actor, &changes)?)
    .bind(&actor.request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The field audit details are sealed as.
pub const SEALED_FIELD: &str = "audit_log.changes";

/// An entry's details as stored: sealed under the tenant's data key (they hold the personal
/// values a change carried), so the log at rest reveals who did what to which entity, never
/// the values.
fn seal_changes(actor: &Actor, changes: &serde_json::Value) -> Result<String, sqlx::Error> {
    actor
        .tenant
        .vault
        .seal(actor.tenant_id(), SEALED_FIELD, &changes.to_string())
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// An entry's details from their stored form: sealed, an erasure's or retention's tombstone
/// (plain JSON without personal values), or an entry written before sealing existed.
pub fn open_changes(
    vault: &shoal_base::vault::Vault,
    tenant: &str,
    stored: &str,
) -> serde_json::Value {
    let text = if shoal_base::vault::is_sealed(stored) {
        match vault.unseal(tenant, SEALED_FIELD, stored) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(tenant, error = %e, "audit details do not open");
                return serde_json::json!({ "unreadable": true });
            }
        }
    } else {
        stored.to_owned()
    };
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Records one entry in a transaction of its own, for a change that writes no other row
/// (a plugin reload: the change is the host's, the entry the tenant's).
pub async fn record_alone(
    db: &shoal_base::storage::Db,
    actor: &Actor,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    changes: serde_json::Value,
) -> shoal_base::error::Result<()> {
    let mut tx = db.begin_write().await?;
    record(&mut tx, actor, action, entity_type, entity_id, changes).await?;
    tx.commit().await?;
    Ok(())
}

/// The internal event an audited customer change announces, and its payload: ids and the
/// names of changed fields, never their values (a subscriber or receiver reads those through
/// the API with its own permissions).
pub fn announced(
    action: &str,
    changes: &serde_json::Value,
) -> Option<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let pick = |keys: &[&str]| {
        let mut out = serde_json::Map::new();
        for k in keys {
            if let Some(v) = changes.get(*k) {
                out.insert((*k).to_owned(), v.clone());
            }
        }
        serde_json::Value::Object(out)
    };
    Some(match action {
        "customer.create" => ("customer.created", json!({})),
        "customer.import" => ("customer.created", pick(&["importJob", "row"])),
        "customer.update" => {
            let fields: Vec<&String> = changes
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            ("customer.updated", json!({ "fields": fields }))
        }
        "customer.delete" => ("customer.deleted", json!({})),
        "customer.merge" => ("customer.merged", pick(&["mergeId", "absorbedId"])),
        "customer.unmerge" => ("customer.unmerged", pick(&["mergeId"])),
        "tasks.create" => ("task.created", pick(&["taskId", "title", "assignee"])),
        "tasks.update" => ("task.updated", pick(&["taskId", "status", "assignee"])),
        _ => return None,
    })
}

/// Records one entry per `(entity id, changes)`, in multi-row statements (bulk imports);
/// announced changes write their internal events too, as [`record`] does.
pub async fn record_many(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    entity_type: &str,
    entries: &[(String, serde_json::Value)],
) -> Result<(), sqlx::Error> {
    let at = time::to_micros(time::now());
    if entity_type == "customer" {
        announce_many(&mut *conn, actor, action, entries).await?;
    }
    for chunk in entries.chunks(100) {
        let mut sql = Sql::new(
            "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes, request_id) VALUES ",
        );
        for (i, (entity_id, changes)) in chunk.iter().enumerate() {
            sql.push_row(
                i == 0,
                [
                    actor.tenant_id().into(),
                    uuid::Uuid::now_v7().to_string().into(),
                    at.into(),
                    actor.user_id.as_str().into(),
                    action.into(),
                    entity_type.into(),
                    entity_id.as_str().into(),
                    seal_changes(actor, changes)?.into(),
                    actor.request_id.as_str().into(),
                ],
            );
        }
        let backend = shoal_base::storage::Backend::of(conn);
        sql.on(backend).query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes the internal events that entries of `action` about these customers announce (see
/// [`announced`]) without recording the entries: for changes recorded otherwise, such as an
/// import batch's one entry for all the customers it created.
pub async fn announce_many(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    entries: &[(String, serde_json::Value)],
) -> Result<(), sqlx::Error> {
    let at = time::to_micros(time::now());
    let events: Vec<(&'static str, &str, serde_json::Value)> = entries
        .iter()
        .filter_map(|(id, changes)| announced(action, changes).map(|(k, p)| (k, id.as_str(), p)))
        .collect();
    crate::internal_events::emit_many(&mut *conn, actor.tenant_id(), &events, at).await
}

/// Which entries to read; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor_id: Option<String>,
    /// An action (`customer.update`) or a prefix ending in `.` (`customer.`).
    pub action: Option<String>,
    pub request_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The cursor ordering name of [`list`].
pub const ORDER: &str = "audit:at:desc";

/// Entries newest first, for a reader with the `audit` action. A reader whose scope does not
/// reach every customer reads only entries about customers it reaches; customer fields in
/// `changes` come back masked as the reader sees them.
pub async fn list(
    db: &Db,
    actor: &Actor,
    f: &AuditFilter,
    page: &Page,
) -> shoal_base::error::Result<Paged<(AuditEntry, Cursor)>> {
    actor.require(Action::Audit)?;
    let mut sql = Sql::new("SELECT * FROM audit_log a WHERE a.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    if !actor.access.reaches_all(Resource::Customers) {
        sql.push(" AND a.entity_type = 'customer'");
        actor.access.push_linked_scope(
            &mut sql,
            db.backend,
            Resource::Customers,
            &t,
            "a.entity_id",
        );
    }
    for (col, v) in [
        ("a.entity_type", &f.entity_type),
        ("a.entity_id", &f.entity_id),
        ("a.actor_id", &f.actor_id),
        ("a.request_id", &f.request_id),
    ] {
        if let Some(v) = v {
            let a = sql.arg(v.clone());
            sql.push(&format!(" AND {col} = {a}"));
        }
    }
    match f.action.as_deref() {
        Some(prefix) if prefix.ends_with('.') => {
            let lo = sql.arg(prefix);
            let hi = sql.arg(format!("{prefix}\u{10FFFF}"));
            sql.push(&format!(" AND a.action >= {lo} AND a.action < {hi}"));
        }
        Some(action) => {
            let a = sql.arg(action);
            sql.push(&format!(" AND a.action = {a}"));
        }
        None => {}
    }
    if let Some(from) = f.from {
        let a = sql.arg(time::to_micros(from));
        sql.push(&format!(" AND a.at >= {a}"));
    }
    if let Some(to) = f.to {
        let a = sql.arg(time::to_micros(to));
        sql.push(&format!(" AND a.at < {a}"));
    }
    page.push_conditions(&mut sql, "a.at", "a.id", true);
    page.push_order_limit(&mut sql, "a.at", "a.id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut entries = rows
        .iter()
        .map(|r| from_row(&db.vault, actor.tenant_id(), r))
        .collect::<Result<Vec<_>, _>>()?;
    for e in &mut entries {
        masked_for(actor, e);
    }
    Ok(page.finish(entries).with_cursors(|e| Cursor {
        tenant: actor.tenant_id().to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(e.at)),
        id: e.id.clone(),
    }))
}

/// Customer fields in the entry's changes, masked as the reader sees them.
pub fn masked_for(actor: &Actor, entry: &mut AuditEntry) {
    if entry.entity_type == "customer" {
        actor.access.mask_changes(&mut entry.changes);
    }
}

fn from_row(
    vault: &shoal_base::vault::Vault,
    tenant: &str,
    r: &sqlx::any::AnyRow,
) -> Result<AuditEntry, sqlx::Error> {
    let changes: String = r.try_get("changes")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at: time::from_micros(r.try_get("at")?),
        actor_id: r.try_get("actor_id")?,
        action: r.try_get("action")?,
        entity_type: r.try_get("entity_type")?,
        entity_id: r.try_get("entity_id")?,
        changes: open_changes(vault, tenant, &changes),
        request_id: r.try_get("request_id")?,
    })
}

/// The newest `limit` entries about one entity, newest first (unmasked: callers mask).
pub async fn for_entity(
    conn: &mut AnyConnection,
    vault: &shoal_base::vault::Vault,
    tenant_id: &str,
    entity_type: &str,
    entity_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM audit_log \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 \
         ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(entity_type)
    .bind(entity_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| from_row(vault, tenant_id, r)).collect()
}

/// The action of an import's entries: the batch's own (entity `import_job`) and the line it
/// gives each customer it created in [`customer_history`].
pub const IMPORT: &str = "customer.import";

/// The newest `limit` entries of a customer's history, newest first (unmasked: callers
/// mask): its own entries, and — for a customer created by an import — the line the import
/// batch's entry gives it, `customer.import` with `{importJob, row}`, the batch entry's time,
/// actor and request, and the id `<batch entry id>/<row>` (unique per customer; the batch
/// entry itself is read under entity `import_job`).
pub async fn customer_history(
    conn: &mut AnyConnection,
    vault: &shoal_base::vault::Vault,
    tenant_id: &str,
    customer_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let mut entries =
        for_entity(&mut *conn, vault, tenant_id, "customer", customer_id, limit).await?;
    let imported = sqlx::query(
        "SELECT a.id, a.at, a.actor_id, a.entity_id, a.request_id, c.import_row \
         FROM customers c JOIN audit_log a ON a.tenant_id = c.tenant_id AND a.id = c.import_entry \
         WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant_id)
    .bind(customer_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = imported {
        let id: String = r.try_get("id")?;
        let row: i64 = r.try_get("import_row")?;
        let job: String = r.try_get("entity_id")?;
        entries.push(AuditEntry {
            id: format!("{id}/{row}"),
            at: time::from_micros(r.try_get("at")?),
            actor_id: r.try_get("actor_id")?,
            action: IMPORT.to_owned(),
            entity_type: "customer".to_owned(),
            entity_id: customer_id.to_owned(),
            changes: serde_json::json!({ "importJob": job, "row": row }),
            request_id: r.try_get("request_id")?,
        });
        entries.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        entries.truncate(usize::try_from(limit).unwrap_or(0));
    }
    Ok(entries)
}
