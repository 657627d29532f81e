//! Tag definitions and groups: create, change, delete, look up.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    error::{Error, Problems, Result},
    storage::{Db, time},
};
use shoal_crm::{audit, tenancy::Actor};
use shoal_rules::{self as rules, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Applied and removed by people or the API.
    Manual,
    /// Held exactly by the customers its rule selects.
    Dynamic,
}

/// Where a dynamic tag came from, if a module's template.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRef {
    pub module: String,
    pub template: String,
    /// The parameter values it was instantiated with (JSON text per name).
    pub params: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub kind: TagKind,
    pub rule: Option<String>,
    /// Incremented when the rule changes; recorded with every change it causes.
    pub rule_version: i64,
    pub group: Option<String>,
    pub color: Option<String>,
    pub description: String,
    pub template: Option<TemplateRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Input for a new tag or a change (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct TagInput {
    pub name: Option<String>,
    pub rule: Option<String>,
    pub group: Option<Option<String>>,
    pub color: Option<Option<String>>,
    pub description: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<Tag> {
    let kind: String = r.try_get("kind")?;
    let template: Option<String> = r.try_get("template")?;
    Ok(Tag {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: if kind == "dynamic" {
            TagKind::Dynamic
        } else {
            TagKind::Manual
        },
        rule: r.try_get("rule")?,
        rule_version: r.try_get("rule_version")?,
        group: r.try_get("group_name")?,
        color: r.try_get("color")?,
        description: r.try_get("description")?,
        template: template.and_then(|t| serde_json::from_str(&t).ok()),
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
    })
}

/// Every live tag of the tenant, by name.
pub async fn all(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<Tag>> {
    let rows =
        sqlx::query("SELECT * FROM tags WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY name")
            .bind(tenant)
            .fetch_all(conn)
            .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Tag> {
    let mut conn = db.pool.acquire().await?;
    all(&mut conn, tenant)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::not_found("tag", id))
}

/// Parses a rule against the tenant's tags and the attributes it seals (which no rule may
/// read: `Db::vault`'s `sealed_attributes`); errors carry line and column.
pub fn parse_rule(text: &str, tags: &[Tag], sealed: &[String], field: &str) -> Result<Rule> {
    let lookup = |name: &str| tags.iter().find(|t| t.name == name).map(|t| t.id.clone());
    rules::parse(text, &lookup, sealed)
        .map_err(|e| Error::invalid(field, format!("{}:{}: {}", e.line, e.column, e.message)))
}

/// Refuses a dynamic tag whose rule, through the tags it refers to, depends on itself.
fn check_no_cycle(tags: &[Tag], id: &str, rule: &Rule) -> Result<()> {
    let mut stack: Vec<String> = rule.tag_refs.clone();
    let mut seen = Vec::new();
    while let Some(next) = stack.pop() {
        if next == id {
            return Err(Error::invalid(
                "input.rule",
                "the rule depends on its own tag (directly or through other tags)",
            ));
        }
        if seen.contains(&next) {
            continue;
        }
        seen.push(next.clone());
        if let Some(t) = tags.iter().find(|t| t.id == next)
            && let Some(text) = &t.rule
            && let Ok(r) = parse_rule(text, tags, &[], "")
        {
            stack.extend(r.tag_refs);
        }
    }
    Ok(())
}

fn check_fields(p: &mut Problems, input: &TagInput) {
    if let Some(name) = &input.name {
        let n = name.trim().chars().count();
        if n == 0 || n > 64 || name.contains('"') {
            p.push("input.name", "1–64 characters, no double quotes");
        }
    }
    if let Some(Some(color)) = &input.color
        && !(color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit()))
    {
        p.push("input.color", "a colour like #3b82f6");
    }
    if let Some(d) = &input.description
        && d.chars().count() > 500
    {
        p.push("input.description", "at most 500 characters");
    }
}

/// Creates a manual tag (no rule) or a dynamic one (with a rule).
pub async fn create(
    db: &Db,
    actor: &Actor,
    input: &TagInput,
    template: Option<&TemplateRef>,
) -> Result<Tag> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    if input.name.is_none() {
        p.push("input.name", "required");
    }
    check_fields(&mut p, input);
    p.into_result(())?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let tags = all(&mut tx, tenant).await?;
    let name = input.name.clone().unwrap_or_default().trim().to_owned();
    if tags.iter().any(|t| t.name == name) {
        return Err(Error::invalid(
            "input.name",
            format!("a tag named \"{name}\" exists"),
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    if let Some(text) = &input.rule {
        let rule = parse_rule(
            text,
            &tags,
            &db.vault.sealed_attributes(tenant),
            "input.rule",
        )?;
        check_no_cycle(&tags, &id, &rule)?;
    }
    let group = input.group.clone().flatten();
    check_group(&mut tx, tenant, group.as_deref()).await?;
    let now = time::to_micros(time::now());
    sqlx::query(
        "INSERT INTO tags (tenant_id, id, name, kind, rule, rule_version, group_name, color, description, template, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10, $10)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&name)
    .bind(if input.rule.is_some() { "dynamic" } else { "manual" })
    .bind(&input.rule)
    .bind(&group)
    .bind(input.color.clone().flatten())
    .bind(input.description.clone().unwrap_or_default())
    .bind(template.map(|t| serde_json::to_string(t).unwrap_or_default()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "tag.create",
        "tag",
        &id,
        json!({ "name": name, "rule": input.rule }),
    )
    .await?;
    tx.commit().await?;
    get(db, tenant, &id).await
}

async fn check_group(conn: &mut AnyConnection, tenant: &str, group: Option<&str>) -> Result<()> {
    if let Some(g) = group {
        let exists = sqlx::query("SELECT 1 FROM tag_groups WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(g)
            .fetch_optional(conn)
            .await?
            .is_some();
        if !exists {
            return Err(Error::invalid(
                "input.group",
                format!("no tag group \"{g}\" (create it with upsertTagGroup)"),
            ));
        }
    }
    Ok(())
}

/// Changes a tag; a changed rule gets a new version (re-evaluate to apply it).
pub async fn update(db: &Db, actor: &Actor, id: &str, input: &TagInput) -> Result<Tag> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    check_fields(&mut p, input);
    p.into_result(())?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let tags = all(&mut tx, tenant).await?;
    let before = tags
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(|| Error::not_found("tag", id))?;
    let mut after = before.clone();
    if let Some(name) = &input.name {
        let name = name.trim().to_owned();
        if tags.iter().any(|t| t.name == name && t.id != id) {
            return Err(Error::invalid(
                "input.name",
                format!("a tag named \"{name}\" exists"),
            ));
        }
        after.name = name;
    }
    if let Some(text) = &input.rule {
        if before.kind == TagKind::Manual {
            return Err(Error::invalid(
                "input.rule",
                "a manual tag has no rule; create a dynamic tag instead",
            ));
        }
        let rule = parse_rule(
            text,
            &tags,
            &db.vault.sealed_attributes(tenant),
            "input.rule",
        )?;
        check_no_cycle(&tags, id, &rule)?;
        if before.rule.as_deref() != Some(text.as_str()) {
            after.rule = Some(text.clone());
            after.rule_version += 1;
        }
    }
    if let Some(g) = &input.group {
        check_group(&mut tx, tenant, g.as_deref()).await?;
        after.group = g.clone();
    }
    if let Some(c) = &input.color {
        after.color = c.clone();
    }
    if let Some(d) = &input.description {
        after.description = d.clone();
    }
    sqlx::query(
        "UPDATE tags SET name = $1, rule = $2, rule_version = $3, group_name = $4, color = $5, description = $6, updated_at = $7 \
         WHERE tenant_id = $8 AND id = $9",
    )
    .bind(&after.name)
    .bind(&after.rule)
    .bind(after.rule_version)
    .bind(&after.group)
    .bind(&after.color)
    .bind(&after.description)
    .bind(time::to_micros(time::now()))
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "tag.update",
        "tag",
        id,
        json!({ "name": after.name, "rule": after.rule, "ruleVersion": after.rule_version }),
    )
    .await?;
    tx.commit().await?;
    get(db, tenant, id).await
}

/// Creates or changes a tag group.
pub async fn upsert_group(
    db: &Db,
    actor: &Actor,
    name: &str,
    exclusive: bool,
    description: &str,
) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(Error::invalid("name", "1–64 characters"));
    }
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM tag_groups WHERE tenant_id = $1 AND name = $2")
        .bind(actor.tenant_id())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tag_groups (tenant_id, name, exclusive, description) VALUES ($1, $2, $3, $4)",
    )
    .bind(actor.tenant_id())
    .bind(name)
    .bind(i64::from(exclusive))
    .bind(description)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Groups by name: (exclusive, description).
pub async fn groups(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<(String, bool, String)>> {
    let rows = sqlx::query(
        "SELECT name, exclusive, description FROM tag_groups WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get::<i64, _>("exclusive")? == 1,
                r.try_get("description")?,
            ))
        })
        .collect()
}

/// The rule of a module's tag template with `${param}` replaced by the given (or default)
/// values; unknown parameter names are refused.
pub fn instantiate_rule(
    rule: &str,
    params: &[(String, String)],
    given: &HashMap<String, Value>,
) -> Result<(String, HashMap<String, String>)> {
    let mut p = Problems::default();
    for name in given.keys() {
        if !params.iter().any(|(n, _)| n == name) {
            p.push(
                format!("params.{name}"),
                "the template has no such parameter",
            );
        }
    }
    p.into_result(())?;
    let mut text = rule.to_owned();
    let mut used = HashMap::new();
    for (name, default) in params {
        let value = given
            .get(name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| default.clone());
        text = text.replace(&format!("${{{name}}}"), &value);
        used.insert(name.clone(), value);
    }
    Ok((text, used))
}
