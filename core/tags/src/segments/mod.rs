//! Segments: saved filters over customers (tags all/any/none, RFM cells, stages, channels,
//! attributes and a rule), counted and previewed before saving, usable as a customer filter,
//! and tracked so that customers entering or leaving emit `segment.entered`/`segment.left`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

pub mod filter;

use filter::{FilterSpec, Paths, TagNames};
use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Channel, LifecycleStage, RfmCell},
    storage::{Db, time},
};
use shoal_crm::{
    audit,
    customers::{self, CustomerFilter},
    tenancy::{Actor, Tenant},
};

/// Most members a segment's tracked membership holds (its live count has no limit).
pub const MAX_MEMBERS: usize = 5_000_000;

/// What makes a customer a member; every part given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Definition {
    pub tags_all: Vec<String>,
    pub tags_any: Vec<String>,
    pub tags_none: Vec<String>,
    pub rfm_cells: Vec<String>,
    pub stages: Vec<String>,
    pub channels: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub rule: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub definition: Definition,
}

/// The customer filter a definition stands for (tag names resolved, rule parsed, through
/// [`filter::resolve`]'s look-ups); every problem is reported with its
/// path under `field`.
pub async fn filter_of(
    db: &Db,
    tenant: &str,
    d: &Definition,
    field: &str,
) -> Result<CustomerFilter> {
    let mut p = Problems::default();
    let mut vocab = |key: &str, list: &[String], known: &dyn Fn(&str) -> bool| {
        for (i, v) in list.iter().enumerate() {
            if !known(v) {
                p.push(
                    format!("{field}.{key}[{i}]"),
                    format!("unknown value `{v}`"),
                );
            }
        }
    };
    vocab("rfmCells", &d.rfm_cells, &|v| RfmCell::parse(v).is_some());
    vocab("stages", &d.stages, &|v| LifecycleStage::parse(v).is_some());
    vocab("channels", &d.channels, &|v| Channel::parse(v).is_some());
    let spec = FilterSpec {
        filter: CustomerFilter {
            rfm_cells: d
                .rfm_cells
                .iter()
                .filter_map(|c| RfmCell::parse(c))
                .collect(),
            stages: d
                .stages
                .iter()
                .filter_map(|s| LifecycleStage::parse(s))
                .collect(),
            channels: d
                .channels
                .iter()
                .filter_map(|c| Channel::parse(c))
                .collect(),
            attributes: (!d.attributes.is_empty()).then(|| d.attributes.clone()),
            ..CustomerFilter::default()
        },
        tags: TagNames {
            all: d.tags_all.clone(),
            any: d.tags_any.clone(),
            none: d.tags_none.clone(),
        },
        rule: d.rule.clone(),
        ..FilterSpec::default()
    };
    match filter::resolve_in(db, tenant, spec, &Paths::definition(field)).await {
        Ok(filter) => p.into_result(filter),
        Err(Error::Invalid(errors)) => {
            p.extend(errors);
            p.into_result(CustomerFilter::default())
        }
        Err(e) => Err(e),
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Segment> {
    let definition: String = r.try_get("definition")?;
    Ok(Segment {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        definition: serde_json::from_str(&definition).unwrap_or_default(),
    })
}

pub async fn list(db: &Db, tenant: &str) -> Result<Vec<Segment>> {
    let rows =
        sqlx::query("SELECT id, name, definition FROM segments WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&db.pool)
            .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Segment> {
    let row =
        sqlx::query("SELECT id, name, definition FROM segments WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| Error::not_found("segment", id))?;
    from_row(&row)
}

/// Creates (no `id`) or replaces a segment; the definition is checked first.
pub async fn save(
    db: &Db,
    actor: &Actor,
    id: Option<&str>,
    name: &str,
    definition: &Definition,
) -> Result<Segment> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("input.name", "1–100 characters"));
    }
    filter_of(db, actor.tenant_id(), definition, "input.definition").await?;
    let tenant = actor.tenant_id();
    let now = time::to_micros(time::now());
    let text = serde_json::to_string(definition).unwrap_or_default();
    let mut tx = db.begin_write().await?;
    let clash = sqlx::query("SELECT id FROM segments WHERE tenant_id = $1 AND name = $2")
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<String, _>("id"))
        .transpose()?;
    if clash.is_some_and(|other| Some(other.as_str()) != id) {
        return Err(Error::invalid(
            "input.name",
            format!("a segment named \"{name}\" exists"),
        ));
    }
    let id = match id {
        Some(id) => {
            let n = sqlx::query("UPDATE segments SET name = $1, definition = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5")
                .bind(name)
                .bind(&text)
                .bind(now)
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::not_found("segment", id));
            }
            id.to_owned()
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query("INSERT INTO segments (tenant_id, id, name, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                .bind(tenant)
                .bind(&id)
                .bind(name)
                .bind(&text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            id
        }
    };
    audit::record(
        &mut tx,
        actor,
        "segment.save",
        "segment",
        &id,
        json!({ "name": name, "definition": definition }),
    )
    .await?;
    tx.commit().await?;
    refresh_memberships(db, actor, Some(&id)).await?;
    get(db, tenant, &id).await
}

pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    get(db, actor.tenant_id(), id).await?;
    let mut tx = db.begin_write().await?;
    for table in ["segment_members", "segments"] {
        let key = if table == "segments" {
            "id"
        } else {
            "segment_id"
        };
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND {key} = $2"
        ))
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    audit::record(&mut tx, actor, "segment.delete", "segment", id, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Brings the stored members of every segment (or one) up to date, emitting
/// `segment.entered` / `segment.left` internal events for the differences.
pub async fn refresh_memberships(db: &Db, actor: &Actor, only: Option<&str>) -> Result<usize> {
    let tenant = actor.tenant.clone();
    let mut changed = 0;
    for segment in list(db, &tenant.id).await? {
        if only.is_some_and(|id| id != segment.id) {
            continue;
        }
        let Ok(filter) = filter_of(db, &tenant.id, &segment.definition, "definition").await else {
            tracing::warn!(segment = %segment.name, "segment definition no longer valid (a tag was deleted?); skipped");
            continue;
        };
        // membership is the tenant's, whoever saved the segment: computed unscoped
        let system = Actor::system(&tenant, "system");
        let now_members: HashSet<String> =
            customers::ids_matching(db, &system, &filter, MAX_MEMBERS)
                .await?
                .into_ids()
                .into_iter()
                .collect();
        let before: HashSet<String> = sqlx::query(
            "SELECT customer_id FROM segment_members WHERE tenant_id = $1 AND segment_id = $2",
        )
        .bind(&tenant.id)
        .bind(&segment.id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.try_get("customer_id"))
        .collect::<Result<_, _>>()?;
        let at = time::to_micros(time::now());
        let mut tx = db.begin_write().await?;
        for (who, kind) in now_members
            .difference(&before)
            .map(|c| (c, "entered"))
            .chain(before.difference(&now_members).map(|c| (c, "left")))
        {
            if kind == "entered" {
                sqlx::query("INSERT INTO segment_members (tenant_id, segment_id, customer_id, since) VALUES ($1, $2, $3, $4)")
                    .bind(&tenant.id)
                    .bind(&segment.id)
                    .bind(who)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("DELETE FROM segment_members WHERE tenant_id = $1 AND segment_id = $2 AND customer_id = $3")
                    .bind(&tenant.id)
                    .bind(&segment.id)
                    .bind(who)
                    .execute(&mut *tx)
                    .await?;
            }
            shoal_crm::internal_events::emit(
                &mut tx,
                &tenant.id,
                &format!("segment.{kind}"),
                who,
                &json!({ "segmentId": segment.id, "segment": segment.name }),
                at,
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
    }
    Ok(changed)
}

/// The filter standing for a saved segment (for `customers(filter: {segment})`).
pub async fn as_filter(db: &Db, tenant: &Tenant, id: &str) -> Result<CustomerFilter> {
    let segment = get(db, &tenant.id, id).await?;
    filter_of(db, &tenant.id, &segment.definition, "filter.segment").await
}
