//! Merging two profiles into one, and undoing it.
//!
//! A merge keeps everything: the survivor takes the absorbed profile's identities, events,
//! tasks, follow-up records, manual tags and opt-outs; fields are settled by
//! [`resolve`](super::resolve) and every conflict is recorded; the absorbed profile is
//! soft-deleted (`merged_into`). The merge row stores both profiles as they were and the id
//! of every row it moved, so [`unmerge`](super::unmerge) restores both profiles and their links. The
//! absorbed side may also be an incoming import row (never stored on its own): undoing that
//! merge stores it as a customer of its own.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal_base::vault::Vault;
use sqlx::{AnyConnection, Row};

use super::{
    resolve::{self, Conflict, Side},
    suggestions,
};
use shoal_base::{
    config::ConflictRule,
    error::{Error, Problems, Result},
    kinds::{Action, Channel, LifecycleStage, Resource},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{
    access::ScopedId,
    audit,
    customers::{self, Attributes, Customer, Identity, Prepared},
    tenancy::Actor,
};
use shoal_tags::{self as tags, Tag, TagKind};

/// Every row a merge moved to the survivor (or added to it), by table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub identities: Vec<(String, String)>,
    pub events: Vec<String>,
    pub tasks: Vec<String>,
    pub follow_ups: Vec<String>,
    /// Manual tags the survivor gained.
    pub tags: Vec<String>,
    /// Opt-out channels the survivor gained.
    pub opt_outs: Vec<String>,
    /// Rows of the absorbed profile's consent ledger (the same person's grants and
    /// withdrawals), by id.
    #[serde(default)]
    pub consents: Vec<String>,
}

/// A recorded merge.
#[derive(Debug, Clone)]
pub struct Merge {
    pub id: String,
    pub survivor_id: String,
    pub absorbed_id: String,
    /// False when the absorbed side was an incoming import row.
    pub absorbed_stored: bool,
    /// `manual`, `suggestion` or `import`.
    pub origin: String,
    /// What matched, e.g. `phone +8613800138000`.
    pub reason: String,
    pub rule: String,
    pub conflicts: Vec<Conflict>,
    pub moved: Moved,
    pub survivor_before: Value,
    pub absorbed_before: Value,
    pub survivor_after: Value,
    pub actor_id: String,
    pub merged_at: DateTime<Utc>,
    pub undone_at: Option<DateTime<Utc>>,
    pub undone_by: Option<String>,
}

/// The fields a caller may settle by hand in [`MergeRequest::prefer`].
pub const FIELDS: &[&str] = &["displayName", "lifecycleStage", "ownerId", "sourceChannel"];

/// A merge of two stored customers, asked for through the API.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    pub survivor_id: String,
    pub absorbed_id: String,
    /// The tenant's rule unless given.
    pub rule: Option<ConflictRule>,
    /// Fields (`displayName`, `attributes.city`, …) settled by hand.
    pub prefer: HashMap<String, Side>,
    /// The suggestion this merge accepts, if any.
    pub suggestion_id: Option<String>,
}

pub(super) const ENTITY: &str = "customer";
pub(super) const CHUNK: usize = 500;

/// A customer as a merge remembers it: every field, for restoring.
pub(super) fn stored_json(c: &Customer, identities: &[Identity]) -> Value {
    json!({
        "displayName": c.display_name,
        "phones": c.phones,
        "emails": c.emails,
        "attributes": c.attributes,
        "lifecycleStage": c.lifecycle_stage.as_str(),
        "stageManual": c.stage_manual,
        "ownerId": c.owner_id,
        "sourceChannel": c.source_channel.as_str(),
        "createdAt": time::to_micros(c.created_at),
        "updatedAt": time::to_micros(c.updated_at),
        "identities": customers::identities_json(identities),
    })
}

/// The customer `id` as `v` (from [`stored_json`]) describes it.
pub(super) fn from_stored(id: &str, v: &Value, version: i64) -> Result<Customer> {
    let bad = || Error::Internal(format!("merge snapshot of {id} is malformed"));
    let list = |k: &str| -> Vec<String> {
        serde_json::from_value(v.get(k).cloned().unwrap_or(Value::Null)).unwrap_or_default()
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    Ok(Customer {
        id: id.to_owned(),
        display_name: text("displayName").ok_or_else(bad)?.to_owned(),
        phones: list("phones"),
        emails: list("emails"),
        attributes: match v.get("attributes") {
            Some(Value::Object(m)) => m.clone(),
            _ => Attributes::new(),
        },
        lifecycle_stage: text("lifecycleStage")
            .and_then(LifecycleStage::parse)
            .ok_or_else(bad)?,
        stage_manual: v
            .get("stageManual")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        owner_id: text("ownerId").map(str::to_owned),
        source_channel: text("sourceChannel")
            .and_then(Channel::parse)
            .ok_or_else(bad)?,
        created_at: time::from_micros(v.get("createdAt").and_then(Value::as_i64).ok_or_else(bad)?),
        updated_at: time::from_micros(v.get("updatedAt").and_then(Value::as_i64).ok_or_else(bad)?),
        version,
    })
}

pub(super) fn identities_from(v: &Value) -> Vec<Identity> {
    v.get("identities")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    Some(Identity {
                        channel: Channel::parse(i.get("channel")?.as_str()?)?,
                        external_id: i.get("externalId")?.as_str()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) async fn live_identities(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    id: &str,
) -> Result<Vec<Identity>> {
    let rows = sqlx::query(
        "SELECT channel, external_id, external_id_sealed FROM customer_identities \
         WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NULL ORDER BY created_at, channel",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Identity {
                channel: Channel::parse(&r.try_get::<String, _>("channel").ok()?)?,
                external_id: customers::sealed::open_identity(
                    vault,
                    tenant,
                    &r.try_get::<String, _>("external_id").ok()?,
                    r.try_get::<Option<String>, _>("external_id_sealed")
                        .ok()?
                        .as_deref(),
                )
                .ok()?,
            })
        })
        .collect())
}

/// Checks the hand-settled fields of a request.
fn check_prefer(prefer: &HashMap<String, Side>) -> Result<()> {
    let mut p = Problems::default();
    for field in prefer.keys() {
        let known = FIELDS.contains(&field.as_str())
            || field
                .strip_prefix("attributes.")
                .is_some_and(|k| shoal_base::kinds::attribute_key(k).is_ok());
        if !known {
            p.push(
                "input.prefer",
                format!(
                    "`{field}` is not a field a merge settles ({}, or attributes.<name>)",
                    FIELDS.join(", ")
                ),
            );
        }
    }
    p.into_result(())
}

/// Merges two stored customers the actor reaches (`survivor` and `absorbed`, checked by
/// `Access`; they must be the ids the request names); the absorbed one is soft-deleted.
pub async fn merge(
    db: &Db,
    actor: &Actor,
    (survivor, absorbed): (&ScopedId, &ScopedId),
    req: &MergeRequest,
) -> Result<Merge> {
    actor.require(Action::Update)?;
    actor.require(Action::Delete)?;
    let pair = (
        survivor.for_use(actor.tenant_id(), Resource::Customers)?,
        absorbed.for_use(actor.tenant_id(), Resource::Customers)?,
    );
    if pair != (req.survivor_id.as_str(), req.absorbed_id.as_str()) {
        return Err(Error::Internal(
            "a merge was checked for another pair of customers".into(),
        ));
    }
    if req.survivor_id == req.absorbed_id {
        return Err(Error::invalid(
            "input.absorbedId",
            "a customer cannot be merged with itself",
        ));
    }
    check_prefer(&req.prefer)?;
    let mut tx = db.begin_write().await?;
    let origin = match &req.suggestion_id {
        Some(id) => {
            let s = suggestions::get(&mut tx, actor, id).await?;
            let pair = [s.customer_a.as_str(), s.customer_b.as_str()];
            if !pair.contains(&req.survivor_id.as_str())
                || !pair.contains(&req.absorbed_id.as_str())
            {
                return Err(Error::invalid(
                    "input.suggestionId",
                    "the suggestion is about another pair of customers",
                ));
            }
            if s.status != "pending" {
                return Err(Error::invalid(
                    "input.suggestionId",
                    format!("the suggestion is already {}", s.status),
                ));
            }
            let reasons: Vec<String> = s
                .reasons
                .iter()
                .map(|r| format!("{} {}", r.code, r.detail))
                .collect();
            ("suggestion", reasons.join("; "))
        }
        None => ("manual", "chosen by hand".to_owned()),
    };
    let survivor = customers::fetch(&mut tx, db, actor.tenant_id(), &req.survivor_id, true).await?;
    let absorbed = customers::fetch(&mut tx, db, actor.tenant_id(), &req.absorbed_id, true).await?;
    let absorbed_ids = live_identities(&mut tx, &db.vault, actor.tenant_id(), &absorbed.id).await?;
    let rule = req.rule.unwrap_or(actor.tenant.dedupe.conflict_rule);
    let (mut merged, mut conflicts) = settle(actor, &survivor, &absorbed, rule, &req.prefer);
    let mut moved = Moved::default();
    write_survivor(&mut tx, db, actor, &survivor, &mut merged).await?;

    let t = actor.tenant_id();
    sqlx::query(
        "UPDATE customer_identities SET customer_id = $1 WHERE tenant_id = $2 AND customer_id = $3 AND deleted_at IS NULL",
    )
    .bind(&survivor.id)
    .bind(t)
    .bind(&absorbed.id)
    .execute(&mut *tx)
    .await?;
    moved.identities = absorbed_ids
        .iter()
        .map(|i| (i.channel.as_str().to_owned(), i.external_id.clone()))
        .collect();
    moved.events = repoint_all(&mut tx, "events", t, &absorbed.id, &survivor.id).await?;
    moved.tasks = repoint_all(&mut tx, "tasks", t, &absorbed.id, &survivor.id).await?;
    moved.follow_ups = repoint_all(&mut tx, "follow_ups", t, &absorbed.id, &survivor.id).await?;
    moved.consents = repoint_all(&mut tx, "consents", t, &absorbed.id, &survivor.id).await?;
    let absorbed_tags = held_tags(&mut tx, t, &absorbed.id).await?;
    moved.tags = give_tags(&mut tx, actor, &survivor.id, &absorbed_tags, &mut conflicts).await?;
    moved.opt_outs = give_opt_outs(&mut tx, t, &absorbed.id, &survivor.id).await?;

    let now = time::to_micros(time::now());
    sqlx::query(
        "UPDATE customers SET deleted_at = $1, updated_at = $1, version = version + 1, merged_into = $2 \
         WHERE tenant_id = $3 AND id = $4",
    )
    .bind(now)
    .bind(&survivor.id)
    .bind(t)
    .bind(&absorbed.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM customer_contacts WHERE tenant_id = $1 AND customer_id = $2")
        .bind(t)
        .bind(&absorbed.id)
        .execute(&mut *tx)
        .await?;
    suggestions::decide(&mut tx, actor, &survivor.id, &absorbed.id, "merged").await?;
    let survivor_ids = live_identities(&mut tx, &db.vault, t, &survivor.id).await?;
    let m = Merge {
        id: uuid::Uuid::now_v7().to_string(),
        survivor_id: survivor.id.clone(),
        absorbed_id: absorbed.id.clone(),
        absorbed_stored: true,
        origin: origin.0.into(),
        reason: origin.1,
        rule: rule.as_str().into(),
        conflicts,
        moved,
        survivor_before: stored_json(&survivor, &[]),
        absorbed_before: stored_json(&absorbed, &absorbed_ids),
        survivor_after: stored_json(&merged, &survivor_ids),
        actor_id: actor.user_id.clone(),
        merged_at: time::now(),
        undone_at: None,
        undone_by: None,
    };
    record(&mut tx, actor, &m, &survivor, &merged).await?;
    tx.commit().await?;
    Ok(m)
}

/// Merges an incoming import row into the stored customer `survivor_id`, in the caller's
/// transaction: fields settled by the tenant's rule, new identities and `tags` added.
pub(crate) async fn absorb_incoming(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    survivor_id: &str,
    incoming: &Prepared,
    tags: &[Tag],
    reason: &str,
) -> Result<Merge> {
    let t = actor.tenant_id();
    let survivor = customers::fetch(conn, db, t, survivor_id, true).await?;
    let (absorbed, identities) = incoming;
    let rule = actor.tenant.dedupe.conflict_rule;
    let (mut merged, mut conflicts) = settle(actor, &survivor, absorbed, rule, &HashMap::new());
    write_survivor(conn, db, actor, &survivor, &mut merged).await?;
    let mut moved = Moved::default();
    let now = time::to_micros(time::now());
    for identity in identities {
        let holder: Option<String> = sqlx::query(
            "SELECT customer_id FROM customer_identities WHERE tenant_id = $1 AND channel = $2 AND external_id = $3 AND deleted_at IS NULL",
        )
        .bind(t)
        .bind(identity.channel.as_str())
        .bind(customers::sealed::identity_index(&db.vault, t, identity.channel, &identity.external_id)?)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("customer_id"))
        .transpose()?;
        match holder {
            Some(h) if h == survivor.id => {}
            Some(h) => conflicts.push(Conflict {
                field: "identities".into(),
                kept: json!(format!("{}:{} stays with customer {h}", identity.channel.as_str(), identity.external_id)),
                discarded: json!({"channel": identity.channel.as_str(), "externalId": identity.external_id}),
                kept_from: Side::Survivor,
                rule: "identity_held".into(),
            }),
            None => {
                sqlx::query(
                    "INSERT INTO customer_identities (tenant_id, customer_id, channel, external_id, external_id_sealed, created_at) VALUES ($1, $2, $3, $4, $6, $5)",
                )
                .bind(t)
                .bind(&survivor.id)
                .bind(identity.channel.as_str())
                .bind(customers::sealed::identity_index(&db.vault, t, identity.channel, &identity.external_id)?)
                .bind(now)
                .bind(customers::sealed::seal_identity(&db.vault, t, &identity.external_id)?)
                .execute(&mut *conn)
                .await
                .map_err(customers::identity_conflict)?;
                moved.identities.push((identity.channel.as_str().to_owned(), identity.external_id.clone()));
            }
        }
    }
    let tag_ids: Vec<String> = tags.iter().map(|t| t.id.clone()).collect();
    moved.tags = give_tags(conn, actor, &survivor.id, &tag_ids, &mut conflicts).await?;
    let survivor_ids = live_identities(conn, &db.vault, t, &survivor.id).await?;
    let mut absorbed_before = stored_json(absorbed, identities);
    absorbed_before["tags"] = json!(tag_ids);
    let m = Merge {
        id: uuid::Uuid::now_v7().to_string(),
        survivor_id: survivor.id.clone(),
        absorbed_id: absorbed.id.clone(),
        absorbed_stored: false,
        origin: "import".into(),
        reason: reason.to_owned(),
        rule: rule.as_str().into(),
        conflicts,
        moved,
        survivor_before: stored_json(&survivor, &[]),
        absorbed_before,
        survivor_after: stored_json(&merged, &survivor_ids),
        actor_id: actor.user_id.clone(),
        merged_at: time::now(),
        undone_at: None,
        undone_by: None,
    };
    record(conn, actor, &m, &survivor, &merged).await?;
    Ok(m)
}

fn settle(
    actor: &Actor,
    survivor: &Customer,
    absorbed: &Customer,
    rule: ConflictRule,
    prefer: &HashMap<String, Side>,
) -> (Customer, Vec<Conflict>) {
    let policy = resolve::Policy {
        rule,
        source_priority: &actor.tenant.dedupe.source_priority,
        prefer,
    };
    resolve::resolve(survivor, absorbed, &policy)
}

/// Stores the merged survivor (a new version) and its contacts.
async fn write_survivor(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    before: &Customer,
    merged: &mut Customer,
) -> Result<()> {
    merged.updated_at = time::now();
    merged.version = before.version + 1;
    if !customers::store_row(conn, db, actor.tenant_id(), merged, before.version).await? {
        return Err(Error::Internal(format!(
            "customer {} changed during the merge",
            before.id
        )));
    }
    customers::replace_contacts(conn, db, actor.tenant_id(), merged).await
}

/// Writes the merge row and an audit entry on each profile.
pub(super) async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    m: &Merge,
    before: &Customer,
    after: &Customer,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO customer_merges (tenant_id, id, survivor_id, absorbed_id, absorbed_stored, origin, reason, rule, \
         survivor_before, absorbed_before, survivor_after, conflicts, moved, actor_id, merged_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(actor.tenant_id())
    .bind(&m.id)
    .bind(&m.survivor_id)
    .bind(&m.absorbed_id)
    .bind(i64::from(m.absorbed_stored))
    .bind(&m.origin)
    .bind(seal(actor, "reason", &m.reason)?)
    .bind(&m.rule)
    .bind(seal(actor, "survivor_before", &m.survivor_before.to_string())?)
    .bind(seal(actor, "absorbed_before", &m.absorbed_before.to_string())?)
    .bind(seal(actor, "survivor_after", &m.survivor_after.to_string())?)
    .bind(seal(actor, "conflicts", &json!(m.conflicts).to_string())?)
    .bind(seal(actor, "moved", &json!(m.moved).to_string())?)
    .bind(&m.actor_id)
    .bind(time::to_micros(m.merged_at))
    .execute(&mut *conn)
    .await?;
    let mut changes = customers::diff(before, after);
    changes.insert("mergeId".into(), json!(m.id));
    changes.insert("absorbedId".into(), json!(m.absorbed_id));
    changes.insert("origin".into(), json!(m.origin));
    changes.insert("conflicts".into(), json!(m.conflicts));
    audit::record(
        conn,
        actor,
        "customer.merge",
        ENTITY,
        &m.survivor_id,
        Value::Object(changes),
    )
    .await?;
    if m.absorbed_stored {
        audit::record(
            conn,
            actor,
            "customer.merged_into",
            ENTITY,
            &m.absorbed_id,
            json!({"mergeId": m.id, "survivorId": m.survivor_id}),
        )
        .await?;
    }
    Ok(())
}

/// Moves every row of `table` from customer `from` to `to`; returns their ids.
async fn repoint_all(
    conn: &mut AnyConnection,
    table: &str,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<Vec<String>> {
    let ids: Vec<String> = sqlx::query(&format!(
        "SELECT id FROM {table} WHERE tenant_id = $1 AND customer_id = $2"
    ))
    .bind(tenant)
    .bind(from)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    sqlx::query(&format!(
        "UPDATE {table} SET customer_id = $1 WHERE tenant_id = $2 AND customer_id = $3"
    ))
    .bind(to)
    .bind(tenant)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(ids)
}

/// Moves the listed rows of `table` to customer `to`, if they still belong to `from`.
pub(super) async fn repoint_listed(
    conn: &mut AnyConnection,
    table: &str,
    tenant: &str,
    ids: &[String],
    from: &str,
    to: &str,
) -> Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new(&format!("UPDATE {table} SET customer_id = "));
        let to = sql.arg(to);
        let t = sql.arg(tenant);
        let f = sql.arg(from);
        sql.push(&format!(
            "{to} WHERE tenant_id = {t} AND customer_id = {f} AND id"
        ))
        .push_in(chunk);
        sql.on(shoal_base::storage::Backend::of(conn))
            .query_once()
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn held_tags(
    conn: &mut AnyConnection,
    tenant: &str,
    customer: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query("SELECT tag_id FROM customer_tags WHERE tenant_id = $1 AND customer_id = $2 ORDER BY tag_id")
        .bind(tenant)
        .bind(customer)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("tag_id"))
        .collect::<Result<_, _>>()?)
}

/// Adds the manual tags among `tag_ids` the customer lacks (dynamic tags follow their
/// rules); a tag of an exclusive group where the customer already holds another is a
/// conflict the customer's tag wins. Returns the tags added.
async fn give_tags(
    conn: &mut AnyConnection,
    actor: &Actor,
    customer: &str,
    tag_ids: &[String],
    conflicts: &mut Vec<Conflict>,
) -> Result<Vec<String>> {
    if tag_ids.is_empty() {
        return Ok(Vec::new());
    }
    let t = actor.tenant_id();
    let all: HashMap<String, Tag> = tags::store_all(conn, t)
        .await?
        .into_iter()
        .map(|tag| (tag.id.clone(), tag))
        .collect();
    let exclusive: HashSet<String> = tags::groups(conn, t)
        .await?
        .into_iter()
        .filter(|(_, ex, _)| *ex)
        .map(|(n, _, _)| n)
        .collect();
    let mut held: Vec<String> = held_tags(conn, t, customer).await?;
    let mut added = Vec::new();
    for id in tag_ids {
        let Some(tag) = all.get(id) else { continue };
        if tag.kind != TagKind::Manual || held.contains(id) {
            continue;
        }
        if let Some(group) = tag.group.as_ref().filter(|g| exclusive.contains(*g))
            && let Some(mine) = held
                .iter()
                .filter_map(|h| all.get(h))
                .find(|h| h.group.as_ref() == Some(group))
        {
            conflicts.push(Conflict {
                field: format!("tags.{group}"),
                kept: json!(mine.name),
                discarded: json!(tag.name),
                kept_from: Side::Survivor,
                rule: "exclusive_group".into(),
            });
            continue;
        }
        tags::write_changes(conn, actor, tag, &[customer.to_owned()], &[], "merge").await?;
        held.push(id.clone());
        added.push(id.clone());
    }
    Ok(added)
}

async fn opt_out_channels(
    conn: &mut AnyConnection,
    tenant: &str,
    customer: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT channel FROM contact_opt_outs WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("channel"))
    .collect::<Result<_, _>>()?)
}

/// Gives `to` every opt-out of `from` it lacks (an opt-out is never lost in a merge).
async fn give_opt_outs(
    conn: &mut AnyConnection,
    tenant: &str,
    from: &str,
    to: &str,
) -> Result<Vec<String>> {
    let mine = opt_out_channels(conn, tenant, to).await?;
    let mut added = Vec::new();
    for channel in opt_out_channels(conn, tenant, from).await? {
        if mine.contains(&channel) {
            continue;
        }
        sqlx::query("INSERT INTO contact_opt_outs (tenant_id, customer_id, channel, at) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(to)
            .bind(&channel)
            .bind(time::to_micros(time::now()))
            .execute(&mut *conn)
            .await?;
        added.push(channel);
    }
    Ok(added)
}

/// A column of `customer_merges` as stored: the merge's reason and snapshots carry the
/// profiles' personal values, so they are sealed like the profiles themselves.
fn seal(actor: &Actor, column: &str, text: &str) -> Result<String> {
    Ok(actor.tenant.vault.seal(
        actor.tenant_id(),
        &format!("customer_merges.{column}"),
        text,
    )?)
}

pub(super) fn from_row(vault: &Vault, tenant: &str, r: &sqlx::any::AnyRow) -> Result<Merge> {
    let open = |col: &str| -> Result<String> {
        let text: String = r.try_get(col)?;
        Ok(vault.open_or_plain(tenant, &format!("customer_merges.{col}"), &text)?)
    };
    let json = |col: &str| -> Result<Value> {
        let text = open(col)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("customer_merges.{col}: {e}")))
    };
    Ok(Merge {
        id: r.try_get("id")?,
        survivor_id: r.try_get("survivor_id")?,
        absorbed_id: r.try_get("absorbed_id")?,
        absorbed_stored: r.try_get::<i64, _>("absorbed_stored")? == 1,
        origin: r.try_get("origin")?,
        reason: open("reason")?,
        rule: r.try_get("rule")?,
        conflicts: serde_json::from_value(json("conflicts")?).unwrap_or_default(),
        moved: serde_json::from_value(json("moved")?).unwrap_or_default(),
        survivor_before: json("survivor_before")?,
        absorbed_before: json("absorbed_before")?,
        survivor_after: json("survivor_after")?,
        actor_id: r.try_get("actor_id")?,
        merged_at: time::from_micros(r.try_get("merged_at")?),
        undone_at: r
            .try_get::<Option<i64>, _>("undone_at")?
            .map(time::from_micros),
        undone_by: r.try_get("undone_by")?,
    })
}

/// One merge of the actor's tenant.
pub async fn get(conn: &mut AnyConnection, vault: &Vault, tenant: &str, id: &str) -> Result<Merge> {
    let row = sqlx::query("SELECT * FROM customer_merges WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("merge", id))?;
    from_row(vault, tenant, &row)
}

/// Merges newest first; with `customer_id`, those it took part in.
pub async fn history(
    db: &Db,
    actor: &Actor,
    customer_id: Option<&str>,
    page: &Page,
) -> Result<Paged<(Merge, Cursor)>> {
    let mut sql = Sql::new("SELECT m.* FROM customer_merges m WHERE m.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    if let Some(id) = customer_id {
        let a = sql.arg(id);
        sql.push(&format!(
            " AND (m.survivor_id = {a} OR m.absorbed_id = {a})"
        ));
    }
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        Resource::Customers,
        &t,
        "m.survivor_id",
    );
    page.push_conditions(&mut sql, "m.merged_at", "m.id", true);
    page.push_order_limit(&mut sql, "m.merged_at", "m.id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows
        .iter()
        .map(|r| from_row(&db.vault, actor.tenant_id(), r))
        .collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|m| Cursor {
        tenant: actor.tenant_id().to_owned(),
        order: HISTORY_ORDER.to_owned(),
        key: Key::Int(time::to_micros(m.merged_at)),
        id: m.id.clone(),
    }))
}

/// The cursor ordering of [`history`].
pub const HISTORY_ORDER: &str = "merges:merged_at:desc";
