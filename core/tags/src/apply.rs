//! Who holds which tag: manual application, rule evaluation (one customer in memory when an
//! event arrives, or everyone at once in SQL), plugin decisions; every change is recorded in
//! the customer's tag history and emitted as an internal event (`tag.added`/`tag.removed`)
//! for the SOP engine.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::store::{self, Tag, TagKind};
use shoal_base::{
    error::{Error, Result},
    storage::{Db, money, sql::Sql, time},
};
use shoal_crm::{
    access::ScopedIds,
    customers::{self, CustomerFilter},
    tenancy::{Actor, Tenant},
};
use shoal_plugin_host::{PluginHost, types};
use shoal_rules::{
    self as rules,
    eval::{EventFact, Facts},
};

/// The actor of scheduled and event-driven evaluation.
pub fn system(tenant: &std::sync::Arc<Tenant>) -> Actor {
    Actor::system(tenant, "system")
}

/// Adds `tag` to `add` and removes it from `remove` (customer ids), with history and
/// internal events. Adding a tag of an exclusive group removes the group's other tags.
pub async fn write_changes(
    conn: &mut AnyConnection,
    actor: &Actor,
    tag: &Tag,
    add: &[String],
    remove: &[String],
    source: &str,
) -> Result<()> {
    let tenant = actor.tenant_id();
    let now = time::to_micros(time::now());
    let version = (tag.kind == TagKind::Dynamic).then_some(tag.rule_version);
    let exclusive_peers: Vec<Tag> = match &tag.group {
        Some(g) if !add.is_empty() => {
            let exclusive = store::groups(conn, tenant)
                .await?
                .into_iter()
                .any(|(name, ex, _)| &name == g && ex);
            if exclusive {
                store::all(conn, tenant)
                    .await?
                    .into_iter()
                    .filter(|t| t.group.as_ref() == Some(g) && t.id != tag.id)
                    .collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    for customer in add {
        for peer in &exclusive_peers {
            let held = sqlx::query("DELETE FROM customer_tags WHERE tenant_id = $1 AND customer_id = $2 AND tag_id = $3")
                .bind(tenant)
                .bind(customer)
                .bind(&peer.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if held > 0 {
                record(
                    conn,
                    actor,
                    peer,
                    customer,
                    "removed",
                    &format!("exclusive group: {}", tag.name),
                    None,
                    now,
                )
                .await?;
            }
        }
        let added = sqlx::query(
            "INSERT INTO customer_tags (tenant_id, customer_id, tag_id, source, applied_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(customer)
        .bind(&tag.id)
        .bind(source)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if added > 0 {
            record(conn, actor, tag, customer, "added", source, version, now).await?;
        }
    }
    for customer in remove {
        let removed = sqlx::query(
            "DELETE FROM customer_tags WHERE tenant_id = $1 AND customer_id = $2 AND tag_id = $3",
        )
        .bind(tenant)
        .bind(customer)
        .bind(&tag.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if removed > 0 {
            record(conn, actor, tag, customer, "removed", source, version, now).await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one history row and its internal event
async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    tag: &Tag,
    customer: &str,
    change: &str,
    source: &str,
    version: Option<i64>,
    at: i64,
) -> Result<()> {
    let tenant = actor.tenant_id();
    sqlx::query(
        "INSERT INTO tag_history (tenant_id, id, customer_id, tag_id, change, source, rule_version, actor_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(customer)
    .bind(&tag.id)
    .bind(change)
    .bind(source)
    .bind(version)
    .bind(&actor.user_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    shoal_crm::internal_events::emit(
        conn,
        tenant,
        &format!("tag.{change}"),
        customer,
        &json!({ "tagId": tag.id, "tag": tag.name, "source": source, "ruleVersion": version }),
        at,
    )
    .await
}

/// Which customers a manual change targets.
#[derive(Debug, Clone)]
pub enum Target {
    /// Customers checked against the caller's reach.
    Ids(ScopedIds),
    Filter(Box<CustomerFilter>),
}

/// Most customers one bulk change may touch.
pub const MAX_BULK: usize = 100_000;

/// Applies or removes a manual tag in bulk; returns how many customers changed.
pub async fn apply_manual(
    db: &Db,
    actor: &Actor,
    tag_id: &str,
    target: &Target,
    apply: bool,
) -> Result<usize> {
    actor.require(shoal_base::kinds::Action::Update)?;
    let tag = store::get(db, actor.tenant_id(), tag_id).await?;
    if tag.kind == TagKind::Dynamic {
        return Err(Error::invalid(
            "tagId",
            format!(
                "\"{}\" is a dynamic tag: its rule decides who holds it",
                tag.name
            ),
        ));
    }
    let ids = match target {
        Target::Ids(ids) => {
            if ids.len() > MAX_BULK {
                return Err(Error::LimitExceeded {
                    field: "customerIds".into(),
                    message: format!("at most {MAX_BULK} customers at once"),
                });
            }
            ids.ids().to_vec()
        }
        Target::Filter(filter) => customers::ids_matching(db, actor, filter, MAX_BULK)
            .await?
            .into_ids(),
    };
    let mut tx = db.begin_write().await?;
    let before = holders(&mut tx, actor.tenant_id(), &tag.id).await?;
    let changed: Vec<String> = ids
        .into_iter()
        .filter(|id| before.contains(id) != apply)
        .collect();
    let (add, remove) = if apply {
        (changed.clone(), Vec::new())
    } else {
        (Vec::new(), changed.clone())
    };
    write_changes(&mut tx, actor, &tag, &add, &remove, "manual").await?;
    let entries: Vec<(String, serde_json::Value)> = changed
        .iter()
        .map(|id| (id.clone(), json!({ "tag": tag.name, "tagId": tag.id })))
        .collect();
    let action = if apply { "tag.apply" } else { "tag.remove" };
    shoal_crm::audit::record_many(&mut tx, actor, action, "customer", &entries).await?;
    tx.commit().await?;
    Ok(changed.len())
}

/// The customers holding a tag.
pub(super) async fn holders(
    conn: &mut AnyConnection,
    tenant: &str,
    tag: &str,
) -> Result<HashSet<String>> {
    Ok(
        sqlx::query("SELECT customer_id FROM customer_tags WHERE tenant_id = $1 AND tag_id = $2")
            .bind(tenant)
            .bind(tag)
            .fetch_all(conn)
            .await?
            .iter()
            .map(|r| r.try_get("customer_id"))
            .collect::<Result<_, _>>()?,
    )
}

/// Dynamic tags with their parsed rules, each after the tags its rule refers to.
fn ordered_rules(tags: &[Tag]) -> Vec<(Tag, rules::Rule)> {
    let mut parsed: Vec<(Tag, rules::Rule)> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Dynamic)
        .filter_map(|t| {
            // a stored rule reading a key sealed since holds for nobody: the value
            // is no longer in the column it reads
            store::parse_rule(t.rule.as_deref().unwrap_or(""), tags, &[], "")
                .ok()
                .map(|r| (t.clone(), r))
        })
        .collect();
    let mut out = Vec::with_capacity(parsed.len());
    while !parsed.is_empty() {
        let ready = parsed
            .iter()
            .position(|(_, r)| {
                r.tag_refs
                    .iter()
                    .all(|d| !parsed.iter().any(|(t, _)| &t.id == d))
            })
            .unwrap_or(0); // a cycle cannot be stored; take any to make progress
        out.push(parsed.remove(ready));
    }
    out
}

/// Counts of one tag's recompute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recomputed {
    pub tag: String,
    pub added: usize,
    pub removed: usize,
}

/// Evaluates every dynamic tag (or one) for every customer in SQL and applies the
/// differences. Returns what changed per tag.
pub async fn recompute(db: &Db, actor: &Actor, only: Option<&str>) -> Result<Vec<Recomputed>> {
    let tenant = actor.tenant_id();
    let mut conn = db.pool.acquire().await?;
    let tags = store::all(&mut conn, tenant).await?;
    drop(conn);
    if let Some(id) = only
        && !tags
            .iter()
            .any(|t| t.id == id && t.kind == TagKind::Dynamic)
    {
        return Err(Error::invalid("tagId", "not a dynamic tag of this tenant"));
    }
    if only.is_none() {
        let moved = super::lifecycle::recompute(db, actor).await?;
        if moved > 0 {
            tracing::info!(customers = moved, "lifecycle stages derived");
        }
    }
    let now = time::to_micros(time::now());
    let mut out = Vec::new();
    for (tag, rule) in ordered_rules(&tags) {
        if only.is_some_and(|id| id != tag.id) {
            continue;
        }
        let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
        let t = sql.arg(tenant);
        sql.push(&t).push(" AND c.deleted_at IS NULL AND ");
        rules::sql::push_cond(&mut sql, db.backend, tenant, &rule.cond, now);
        let selected: HashSet<String> = sql
            .query()
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut tx = db.begin_write().await?;
        let current = holders(&mut tx, tenant, &tag.id).await?;
        let add: Vec<String> = selected.difference(&current).cloned().collect();
        let remove: Vec<String> = current.difference(&selected).cloned().collect();
        write_changes(&mut tx, actor, &tag, &add, &remove, "rule").await?;
        tx.commit().await?;
        out.push(Recomputed {
            tag: tag.name.clone(),
            added: add.len(),
            removed: remove.len(),
        });
    }
    if only.is_none() {
        super::rfm::recompute(db, tenant).await?;
        crate::segments::refresh_memberships(db, actor, None).await?;
    }
    Ok(out)
}

/// One customer's facts for the in-memory evaluator.
/// What rules see of one customer, loaded from storage.
pub struct Loaded {
    pub created_at: i64,
    pub stage: String,
    pub stage_manual: bool,
    pub channel: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub tags: HashSet<String>,
    pub events: Vec<EventFact>,
}

impl Loaded {
    /// The facts a rule evaluates at `now` (UTC microseconds).
    pub fn facts(&self, now: i64) -> Facts<'_> {
        Facts {
            now,
            created_at: self.created_at,
            stage: &self.stage,
            channel: &self.channel,
            attributes: &self.attributes,
            tags: &self.tags,
            events: &self.events,
        }
    }
}

/// A live customer's facts, or `None` when there is no such customer.
pub async fn load(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &str,
    id: &str,
) -> Result<Option<Loaded>> {
    Ok(load_many(conn, db, tenant, &[id]).await?.remove(id))
}

/// The facts of those of `ids` that are live customers, by id: three statements per 500
/// customers (profiles, events, tags), not three per customer.
pub async fn load_many(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, Loaded>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // `base WHERE tenant_id = $1 AND <column> IN (…)`, one-off (see `Sql::query_once`)
        let select = |base: &str, column: &str| {
            let mut sql = Sql::new(base);
            let t = sql.arg(tenant);
            sql.push(&format!(" WHERE tenant_id = {t} AND {column}"))
                .push_in(chunk);
            sql.on(db.backend)
        };
        let sql = select(
            &format!(
                "SELECT id, created_at, lifecycle_stage, stage_manual, source_channel, {} AS attributes, deleted_at FROM customers",
                shoal_base::storage::dialect::json_text(db.backend, "attributes")
            ),
            "id",
        );
        let mut live = 0;
        for row in sql.query_once().fetch_all(&mut *conn).await? {
            // deleted rows are skipped here so that the primary key is the obvious index
            if row.try_get::<Option<i64>, _>("deleted_at")?.is_some() {
                continue;
            }
            let attributes: String = row.try_get("attributes")?;
            out.insert(
                row.try_get::<String, _>("id")?,
                Loaded {
                    created_at: row.try_get("created_at")?,
                    stage: row.try_get("lifecycle_stage")?,
                    stage_manual: row.try_get::<i64, _>("stage_manual")? == 1,
                    channel: row.try_get("source_channel")?,
                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                    tags: HashSet::new(),
                    events: Vec::new(),
                },
            );
            live += 1;
        }
        if live == 0 {
            continue;
        }
        let sql = select(
            "SELECT customer_id, event_type, name, occurred_at, amount_units FROM events",
            "customer_id",
        );
        for r in sql.query_once().fetch_all(&mut *conn).await? {
            let customer: String = r.try_get("customer_id")?;
            let Some(loaded) = out.get_mut(&customer) else {
                continue;
            };
            let t: String = r.try_get("event_type")?;
            let Some(event_type) = shoal_base::kinds::EventType::parse(&t) else {
                continue;
            };
            loaded.events.push(EventFact {
                event_type,
                name: r.try_get("name")?,
                occurred_at: r.try_get("occurred_at")?,
                amount_units: r.try_get("amount_units")?,
            });
        }
        let sql = select(
            "SELECT customer_id, tag_id FROM customer_tags",
            "customer_id",
        );
        for r in sql.query_once().fetch_all(&mut *conn).await? {
            let customer: String = r.try_get("customer_id")?;
            if let Some(loaded) = out.get_mut(&customer) {
                loaded.tags.insert(r.try_get("tag_id")?);
            }
        }
    }
    Ok(out)
}

/// What a module's `evaluate-tags` sees of a customer.
fn profile(id: &str, l: &Loaded, now: i64, tags: &[Tag]) -> types::CustomerProfile {
    let mut stats: BTreeMap<String, types::EventStat> = BTreeMap::new();
    for e in &l.events {
        let key = match &e.name {
            Some(n) => format!("custom:{n}"),
            None => e.event_type.as_str().to_owned(),
        };
        let s = stats
            .entry(key.clone())
            .or_insert_with(|| types::EventStat {
                event_type: key,
                count_30d: 0,
                count_90d: 0,
                count_total: 0,
                seconds_since_last: None,
                amount_total: "0".into(),
            });
        let age = (now - e.occurred_at).max(0) / 1_000_000;
        s.count_total += 1;
        if age <= 30 * 86_400 {
            s.count_30d += 1;
        }
        if age <= 90 * 86_400 {
            s.count_90d += 1;
        }
        s.seconds_since_last = Some(
            s.seconds_since_last
                .map_or(age as u64, |prev| prev.min(age as u64)),
        );
        let total: rust_decimal::Decimal = s.amount_total.parse().unwrap_or_default();
        s.amount_total = (total + money::from_units(e.amount_units.unwrap_or(0))).to_string();
    }
    types::CustomerProfile {
        id: id.to_owned(),
        lifecycle_stage: l.stage.clone(),
        attributes: serde_json::Value::Object(l.attributes.clone()).to_string(),
        tags: tags
            .iter()
            .filter(|t| l.tags.contains(&t.id))
            .map(|t| t.name.clone())
            .collect(),
        stats: stats.into_values().collect(),
    }
}

/// What a module sees of a customer on a reader's behalf (for a ticket proposal): the
/// profile `evaluate-tags` gets, keeping only the attributes the reader sees in full (a
/// module cannot pass on what the reader may not read); `None` when there is no such live
/// customer or it is outside the reader's `customers` scope (a ticket may reach an agent
/// through its queue while its customer does not).
pub async fn profile_for(
    db: &Db,
    actor: &Actor,
    id: &str,
) -> Result<Option<types::CustomerProfile>> {
    let mut conn = db.pool.acquire().await?;
    let reached = actor
        .access
        .scope_customers_in(
            &mut conn,
            db.backend,
            shoal_base::kinds::Resource::Customers,
            [id.to_owned()],
        )
        .await;
    let reached = match reached {
        Ok(ids) => ids.into_ids(),
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    if reached.is_empty() {
        return Ok(None);
    }
    let Some(mut loaded) = load(&mut conn, db, actor.tenant_id(), id).await? else {
        return Ok(None);
    };
    let tags = store::all(&mut conn, actor.tenant_id()).await?;
    drop(conn);
    loaded.attributes.retain(|key, _| {
        actor.access.visibility(&format!("attributes.{key}"))
            == shoal_base::kinds::Visibility::Visible
    });
    Ok(Some(profile(
        id,
        &loaded,
        time::to_micros(time::now()),
        &tags,
    )))
}

/// What to evaluate customers against: the tenant's tags in rule order and its modules
/// that evaluate tags.
struct Evaluator<'a> {
    host: Option<&'a PluginHost>,
    tenant: &'a std::sync::Arc<Tenant>,
    tags: Vec<Tag>,
    ordered: Vec<(Tag, rules::Rule)>,
    modules: Vec<String>,
    now: i64,
}

/// One customer's changes: a derived lifecycle stage (from, to) and the tags to add or
/// remove with their source.
#[derive(Default)]
struct Decision {
    stage: Option<(String, shoal_base::kinds::LifecycleStage)>,
    tags: Vec<(Tag, bool, String)>,
}

impl Decision {
    fn changes(&self) -> usize {
        usize::from(self.stage.is_some()) + self.tags.len()
    }
}

impl<'a> Evaluator<'a> {
    async fn new(
        conn: &mut AnyConnection,
        host: Option<&'a PluginHost>,
        tenant: &'a std::sync::Arc<Tenant>,
    ) -> Result<Evaluator<'a>> {
        let tags = store::all(conn, &tenant.id).await?;
        let modules = host
            .map(|h| {
                h.modules(&tenant.id)
                    .into_iter()
                    .filter(|m| m.capabilities.contains(&"evaluate-tags"))
                    .map(|m| m.info.id)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Evaluator {
            host,
            tenant,
            ordered: ordered_rules(&tags),
            tags,
            modules,
            now: time::to_micros(time::now()),
        })
    }

    /// The lifecycle stage, then every dynamic tag in memory, then each module's
    /// `evaluate-tags` (fail open; decisions apply to manual tags of the names they give).
    async fn decide(&self, id: &str, facts: &mut Loaded) -> Decision {
        let now = self.now;
        let mut decision = Decision::default();
        if !facts.stage_manual {
            let derived = super::lifecycle::derive(&Facts {
                now,
                created_at: facts.created_at,
                stage: &facts.stage,
                channel: &facts.channel,
                attributes: &facts.attributes,
                tags: &facts.tags,
                events: &facts.events,
            });
            if derived.as_str() != facts.stage {
                let from = std::mem::replace(&mut facts.stage, derived.as_str().to_owned());
                decision.stage = Some((from, derived));
            }
        }
        for (tag, rule) in &self.ordered {
            let holds = rules::eval::holds(
                &rule.cond,
                &Facts {
                    now,
                    created_at: facts.created_at,
                    stage: &facts.stage,
                    channel: &facts.channel,
                    attributes: &facts.attributes,
                    tags: &facts.tags,
                    events: &facts.events,
                },
            );
            if holds != facts.tags.contains(&tag.id) {
                decision.tags.push((tag.clone(), holds, "rule".into()));
                if holds {
                    facts.tags.insert(tag.id.clone());
                } else {
                    facts.tags.remove(&tag.id);
                }
            }
        }
        let Some(host) = self.host else {
            return decision;
        };
        for module in &self.modules {
            let decisions = host
                .evaluate_tags(&self.tenant.id, module, profile(id, facts, now, &self.tags))
                .await;
            for d in decisions {
                match self
                    .tags
                    .iter()
                    .find(|t| t.name == d.tag && t.kind == TagKind::Manual)
                {
                    Some(tag) if d.apply != facts.tags.contains(&tag.id) => {
                        decision
                            .tags
                            .push((tag.clone(), d.apply, format!("plugin:{module}")));
                        if d.apply {
                            facts.tags.insert(tag.id.clone());
                        } else {
                            facts.tags.remove(&tag.id);
                        }
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(module, tag = %d.tag, "evaluate-tags names no manual tag of this tenant")
                    }
                }
            }
        }
        decision
    }

    /// Writes `decision` for customer `id` in the caller's transaction.
    async fn apply(&self, conn: &mut AnyConnection, id: &str, decision: &Decision) -> Result<()> {
        let actor = system(self.tenant);
        if let Some((from, to)) = &decision.stage {
            super::lifecycle::set(&mut *conn, &actor, id, from, *to).await?;
        }
        for (tag, add, source) in &decision.tags {
            let who = [id.to_owned()];
            let (a, r): (&[String], &[String]) = if *add { (&who, &[]) } else { (&[], &who) };
            write_changes(&mut *conn, &actor, tag, a, r, source).await?;
        }
        Ok(())
    }
}

/// Re-evaluates the tags of some customers (after their events or profile changed): the
/// derived lifecycle stage, every dynamic tag in memory, then each enabled module's
/// `evaluate-tags` (fail open; decisions apply to manual tags of the names they give).
/// Each customer's changes commit in a transaction of their own.
pub async fn evaluate_customers(
    db: &Db,
    host: Option<&PluginHost>,
    tenant: &std::sync::Arc<Tenant>,
    ids: &[String],
) -> Result<usize> {
    let mut conn = db.pool.acquire().await?;
    let evaluator = Evaluator::new(&mut conn, host, tenant).await?;
    drop(conn);
    let mut changes = 0;
    // facts are loaded 500 customers at a time (three statements), then evaluated one by one
    for chunk in ids.chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let mut conn = db.pool.acquire().await?;
        let mut loaded = load_many(&mut conn, db, &tenant.id, &refs).await?;
        drop(conn);
        for id in chunk {
            let Some(mut facts) = loaded.remove(id) else {
                continue;
            };
            let decision = evaluator.decide(id, &mut facts).await;
            if decision.changes() == 0 {
                continue;
            }
            let mut tx = db.begin_write().await?;
            evaluator.apply(&mut tx, id, &decision).await?;
            tx.commit().await?;
            changes += decision.changes();
        }
    }
    Ok(changes)
}

/// A tag a customer holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub tag: Tag,
    pub source: String,
    pub applied_at: DateTime<Utc>,
}

/// The tags of some customers.
pub async fn tags_of(db: &Db, tenant: &str, ids: &[&str]) -> Result<HashMap<String, Vec<Held>>> {
    let mut conn = db.pool.acquire().await?;
    let tags: HashMap<String, Tag> = store::all(&mut conn, tenant)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let mut out: HashMap<String, Vec<Held>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(
        "SELECT customer_id, tag_id, source, applied_at FROM customer_tags WHERE tenant_id = ",
    );
    let t = sql.arg(tenant);
    sql.push(&t).push(" AND customer_id IN (");
    for (i, id) in ids.iter().enumerate() {
        let p = sql.arg(*id);
        sql.push(if i == 0 { "" } else { ", " }).push(&p);
    }
    sql.push(")");
    for r in sql.query().fetch_all(&mut *conn).await? {
        let tag_id: String = r.try_get("tag_id")?;
        if let Some(tag) = tags.get(&tag_id) {
            out.entry(r.try_get("customer_id")?)
                .or_default()
                .push(Held {
                    tag: tag.clone(),
                    source: r.try_get("source")?,
                    applied_at: time::from_micros(r.try_get("applied_at")?),
                });
        }
    }
    for held in out.values_mut() {
        held.sort_by(|a, b| a.tag.name.cmp(&b.tag.name));
    }
    Ok(out)
}

/// One entry of a customer's tag history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub tag: String,
    pub change: String,
    pub source: String,
    pub rule_version: Option<i64>,
    pub actor_id: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn history(
    db: &Db,
    tenant: &str,
    customer: &str,
    limit: i64,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT t.name, h.change, h.source, h.rule_version, h.actor_id, h.at FROM tag_history h \
         JOIN tags t ON t.tenant_id = h.tenant_id AND t.id = h.tag_id \
         WHERE h.tenant_id = $1 AND h.customer_id = $2 ORDER BY h.at DESC, h.id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(customer)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                tag: r.try_get("name")?,
                change: r.try_get("change")?,
                source: r.try_get("source")?,
                rule_version: r.try_get("rule_version")?,
                actor_id: r.try_get("actor_id")?,
                at: time::from_micros(r.try_get("at")?),
            })
        })
        .collect()
}

/// Deletes a tag: it is removed from every customer (recorded in their history).
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let tags = store::all(&mut tx, tenant).await?;
    let tag = tags
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::not_found("tag", id))?;
    if let Some(user) = tags.iter().find(|t| {
        t.rule
            .as_deref()
            .is_some_and(|r| r.contains(&format!("\"{}\"", tag.name)))
    }) {
        return Err(Error::invalid(
            "id",
            format!("the rule of tag \"{}\" refers to this tag", user.name),
        ));
    }
    let holders: Vec<String> = holders(&mut tx, tenant, id).await?.into_iter().collect();
    write_changes(&mut tx, actor, tag, &[], &holders, "manual").await?;
    sqlx::query("UPDATE tags SET deleted_at = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(time::to_micros(time::now()))
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    shoal_crm::audit::record(
        &mut tx,
        actor,
        "tag.delete",
        "tag",
        id,
        json!({ "name": tag.name, "removedFrom": holders.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
