//! SOPs and their versions: create, edit (a new version; running enrolments keep theirs),
//! activate, pause, archive.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::definition::{self, Compiled, Definition};
use shoal_base::{
    error::{Error, Problems, Result},
    storage::{Db, dialect, time},
};
use shoal_crm::{
    audit,
    tenancy::{Actor, Tenant},
};

/// `draft` (not running), `active`, `paused` (nothing enrols, nothing advances), `archived`.
pub const STATUSES: &[&str] = &["draft", "active", "paused", "archived"];

#[derive(Debug, Clone, PartialEq)]
pub struct Sop {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub version: i64,
    pub template: Option<String>,
    pub definition: Definition,
    pub activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "s.id, s.name, s.description, s.status, s.version, s.template, s.activated_at, s.created_at, s.updated_at, v.definition";
const FROM: &str = "FROM sops s JOIN sop_versions v ON v.tenant_id = s.tenant_id AND v.sop_id = s.id AND v.version = s.version";

fn from_row(r: &AnyRow) -> Result<Sop> {
    let text: String = r.try_get("definition")?;
    Ok(Sop {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        status: r.try_get("status")?,
        version: r.try_get("version")?,
        template: r.try_get("template")?,
        definition: serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("a stored SOP definition is unreadable: {e}")))?,
        activated_at: r
            .try_get::<Option<i64>, _>("activated_at")?
            .map(time::from_micros),
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
    })
}

/// One version's definition.
pub async fn definition(
    conn: &mut AnyConnection,
    tenant: &str,
    sop: &str,
    version: i64,
) -> Result<Definition> {
    let row = sqlx::query(
        "SELECT definition FROM sop_versions WHERE tenant_id = $1 AND sop_id = $2 AND version = $3",
    )
    .bind(tenant)
    .bind(sop)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("SOP version", format!("{sop}@{version}")))?;
    let text: String = row.try_get("definition")?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("a stored SOP definition is unreadable: {e}")))
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Sop> {
    let mut conn = db.pool.acquire().await?;
    fetch(&mut conn, tenant, id, "").await
}

async fn fetch(conn: &mut AnyConnection, tenant: &str, id: &str, lock: &str) -> Result<Sop> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} {FROM} WHERE s.tenant_id = $1 AND s.id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("SOP", id))?;
    from_row(&row)
}

/// Every SOP of the tenant (archived ones only when asked), by name.
pub async fn list(db: &Db, tenant: &str, with_archived: bool) -> Result<Vec<Sop>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} {FROM} WHERE s.tenant_id = $1{} ORDER BY s.name",
        if with_archived {
            ""
        } else {
            " AND s.status <> 'archived'"
        }
    ))
    .bind(tenant)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The active SOPs with their compiled current definitions (for the dispatcher).
pub async fn active(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<(Sop, Compiled)>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} {FROM} WHERE s.tenant_id = $1 AND s.status = 'active'"
    ))
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let sops = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    if sops.is_empty() {
        return Ok(Vec::new());
    }
    let tags = shoal_tags::store_all(conn, tenant).await?;
    Ok(sops
        .into_iter()
        .map(|s| {
            let c = definition::compile_stored(&s.definition, &tags);
            (s, c)
        })
        .collect())
}

/// Compiles a definition against the tenant's current tags and segments and the networks
/// its webhooks may reach.
pub async fn check(db: &Db, tenant: &Tenant, d: &Definition, field: &str) -> Result<Compiled> {
    let allowed = crate::contact::Policy::of(tenant).outbound_allow.clone();
    let tenant = tenant.id.as_str();
    let mut conn = db.pool.acquire().await?;
    let tags = shoal_tags::store_all(&mut conn, tenant).await?;
    drop(conn);
    let segments: HashSet<String> = shoal_tags::segments::list(db, tenant)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    definition::compile(
        d,
        &tags,
        &db.vault.sealed_attributes(tenant),
        &segments,
        &allowed,
        field,
    )
}

fn check_name(p: &mut Problems, name: &str, description: &str) {
    if name.trim().is_empty() || name.chars().count() > 100 {
        p.push("input.name", "1–100 characters");
    }
    if description.chars().count() > 2000 {
        p.push("input.description", "at most 2000 characters");
    }
}

fn name_taken(e: &sqlx::Error, name: &str) -> Option<Error> {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Some(Error::invalid(
            "input.name",
            format!("an SOP named \"{name}\" exists"),
        )),
        _ => None,
    }
}

/// Creates an SOP (a draft at version 1).
pub async fn create(
    db: &Db,
    actor: &Actor,
    name: &str,
    description: &str,
    d: &Definition,
    template: Option<&str>,
) -> Result<Sop> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    check_name(&mut p, name, description);
    if let Err(Error::Invalid(errors)) = check(db, &actor.tenant, d, "input.definition").await {
        p.extend(errors);
    }
    p.into_result(())?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    if let Err(e) = sqlx::query(
        "INSERT INTO sops (tenant_id, id, name, description, status, version, template, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'draft', 1, $5, $6, $6)",
    )
    .bind(actor.tenant_id())
    .bind(&id)
    .bind(name.trim())
    .bind(description)
    .bind(template)
    .bind(now)
    .execute(&mut *tx)
    .await
    {
        return Err(name_taken(&e, name).unwrap_or(Error::Storage(e)));
    }
    insert_version(&mut tx, actor.tenant_id(), &id, 1, d, now).await?;
    audit::record(
        &mut tx,
        actor,
        "sops.create",
        "sop",
        &id,
        json!({ "name": name, "template": template }),
    )
    .await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), &id).await
}

async fn insert_version(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    version: i64,
    d: &Definition,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO sop_versions (tenant_id, sop_id, version, definition, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant)
        .bind(id)
        .bind(version)
        .bind(serde_json::to_string(d).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    // every URL the version calls has its endpoint (and secret) from now on
    for step in &d.steps {
        if let definition::Action::CallWebhook { url, .. } = &step.action {
            crate::endpoints::secret_of(&mut *conn, tenant, url).await?;
        }
    }
    Ok(())
}

/// Edits an SOP: name and description in place; a changed definition becomes a new version
/// (enrolments already running keep the version they started with).
pub async fn update(
    db: &Db,
    actor: &Actor,
    id: &str,
    name: Option<&str>,
    description: Option<&str>,
    d: Option<&Definition>,
) -> Result<Sop> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let before = get(db, actor.tenant_id(), id).await?;
    let (name, description) = (
        name.unwrap_or(&before.name),
        description.unwrap_or(&before.description),
    );
    let mut p = Problems::default();
    check_name(&mut p, name, description);
    if let Some(d) = d
        && let Err(Error::Invalid(errors)) = check(db, &actor.tenant, d, "input.definition").await
    {
        p.extend(errors);
    }
    if before.status == "archived" {
        p.push("id", "an archived SOP cannot be edited");
    }
    p.into_result(())?;
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let current = fetch(
        &mut tx,
        actor.tenant_id(),
        id,
        dialect::for_update(db.backend),
    )
    .await?;
    let version = match d {
        Some(d) if *d != current.definition => {
            insert_version(&mut tx, actor.tenant_id(), id, current.version + 1, d, now).await?;
            current.version + 1
        }
        _ => current.version,
    };
    if let Err(e) = sqlx::query("UPDATE sops SET name = $3, description = $4, version = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .bind(name.trim())
        .bind(description)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await
    {
        return Err(name_taken(&e, name).unwrap_or(Error::Storage(e)));
    }
    audit::record(
        &mut tx,
        actor,
        "sops.update",
        "sop",
        id,
        json!({ "name": name, "version": { "from": current.version, "to": version } }),
    )
    .await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), id).await
}

/// Moves an SOP to `active`, `paused` or `archived`. (Re)activation records the time from
/// which events enrol customers (nothing recorded while paused enrols); archiving cancels its running enrolments.
pub async fn set_status(db: &Db, actor: &Actor, id: &str, status: &str) -> Result<Sop> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let current = fetch(
        &mut tx,
        actor.tenant_id(),
        id,
        dialect::for_update(db.backend),
    )
    .await?;
    let allowed = matches!(
        (current.status.as_str(), status),
        ("draft" | "paused", "active")
            | ("active", "paused")
            | ("draft" | "active" | "paused", "archived")
    );
    if !allowed {
        return Err(Error::invalid(
            "status",
            format!("an SOP cannot go from {} to {status}", current.status),
        ));
    }
    sqlx::query(
        "UPDATE sops SET status = $3, updated_at = $4, activated_at = CASE WHEN $3 = 'active' THEN $4 ELSE activated_at END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(status)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if status == "archived" {
        sqlx::query(
            "UPDATE sop_enrolments SET status = 'cancelled', exit_reason = 'the SOP was archived', next_run_at = NULL, finished_at = $3, updated_at = $3 \
             WHERE tenant_id = $1 AND sop_id = $2 AND status IN ('active', 'paused', 'parked')",
        )
        .bind(actor.tenant_id())
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    audit::record(
        &mut tx,
        actor,
        "sops.status",
        "sop",
        id,
        json!({ "status": { "from": current.status, "to": status } }),
    )
    .await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), id).await
}
