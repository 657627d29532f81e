//! The audit log: one row per change to customer data, written in the same transaction as
//! the change itself, so a change is never stored without its record (or the reverse).

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::{storage::time, tenancy::Actor};

/// One recorded change.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub changes: serde_json::Value,
}

pub async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    changes: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(actor.tenant_id())
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(time::to_micros(time::now()))
    .bind(&actor.user_id)
    .bind(action)
    .bind(entity_type)
    .bind(entity_id)
    .bind(changes.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest `limit` entries about one entity, newest first.
pub async fn for_entity(
    conn: &mut AnyConnection,
    tenant_id: &str,
    entity_type: &str,
    entity_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor_id, action, entity_type, entity_id, changes FROM audit_log \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 \
         ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(entity_type)
    .bind(entity_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let changes: String = r.try_get("changes")?;
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: time::from_micros(r.try_get("at")?),
                actor_id: r.try_get("actor_id")?,
                action: r.try_get("action")?,
                entity_type: r.try_get("entity_type")?,
                entity_id: r.try_get("entity_id")?,
                changes: serde_json::from_str(&changes).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
