//! Routing: which queue a new ticket goes to (the tenant's routing rules, first match wins)
//! and which agent of the queue takes it (the queue's strategy among the members who are
//! available, under capacity and skilled enough). A ticket nobody can take waits in its
//! queue; waiting tickets are offered again, most urgent then oldest first, whenever
//! capacity frees or an agent comes back. Every decision is a history entry saying why.
//!
//! Decisions are taken under one lock per tenant (PostgreSQL: a transaction advisory lock;
//! SQLite: the write lock), so two hosts never give an agent more than their capacity.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Action, RfmCell},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};

use crate::queues::{self, Agent, Load, Queue, Strategy};

/// Most routing rules a tenant may have.
pub const MAX_RULES: usize = 100;
/// Most keywords of one rule.
pub const MAX_KEYWORDS: usize = 50;
/// Waiting tickets read at once while offering.
pub const DRAIN_BATCH: i64 = 200;
/// Most waiting tickets one offer round looks at per queue.
pub const DRAIN_EXAMINED: usize = 2000;

/// One routing rule: conditions (all that are given must hold) and where a matching ticket
/// goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// What staff read in the ticket's history (`投诉升级`).
    pub name: String,
    /// Ticket types (any when empty).
    #[serde(default)]
    pub types: Vec<String>,
    /// Source channels (any when empty).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Priorities 1–4 as opened (any when empty).
    #[serde(default)]
    pub priorities: Vec<i64>,
    /// Words of which one must appear in the subject or the first message (any when
    /// empty): `着急`, `投诉`.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Custom field values the ticket must hold, each exactly (as JSON).
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// A condition on the ticket's customer in the rule language (tags, stage, attributes,
    /// events): `has_tag("VIP")`. A ticket without a customer does not match.
    #[serde(default)]
    pub customer: Option<String>,
    /// RFM cells the customer must be in (any when empty): `champions`.
    #[serde(default)]
    pub rfm_cells: Vec<String>,
    /// The queue the ticket goes to.
    pub queue: String,
    /// Raise the priority to this (1 most urgent); a more urgent ticket keeps its own.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Skills (and least levels) the agent must hold.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
}

fn tag_lookup(tags: &[shoal_tags::Tag]) -> impl Fn(&str) -> Option<String> + '_ {
    move |n: &str| tags.iter().find(|t| t.name == n).map(|t| t.id.clone())
}

impl Rule {
    /// Checks one rule against the queues and tags there are and the attributes the tenant
    /// seals (which a customer condition may not read); problems under `at`.
    pub(crate) fn check(
        &self,
        p: &mut Problems,
        at: &str,
        queues: &[Queue],
        tags: &[shoal_tags::Tag],
        sealed: &[String],
    ) {
        let n = self.name.trim().chars().count();
        if n == 0 || n > 100 || self.name.chars().any(char::is_control) {
            p.push(format!("{at}name"), "1–100 characters on one line");
        }
        if !queues.iter().any(|q| q.key == self.queue) {
            p.push(
                format!("{at}queue"),
                format!("`{}` is not a queue of this tenant", self.queue),
            );
        }
        if self.keywords.len() > MAX_KEYWORDS {
            p.push(format!("{at}keywords"), format!("at most {MAX_KEYWORDS}"));
        }
        for (i, k) in self.keywords.iter().enumerate() {
            let n = k.trim().chars().count();
            if n == 0 || n > 50 || k.chars().any(char::is_control) {
                p.push(format!("{at}keywords[{i}]"), "1–50 characters on one line");
            }
        }
        for (i, pr) in self.priorities.iter().enumerate() {
            if !(1..=4).contains(pr) {
                p.push(format!("{at}priorities[{i}]"), "1 (P1, most urgent) to 4");
            }
        }
        if let Some(pr) = self.priority
            && !(1..=4).contains(&pr)
        {
            p.push(format!("{at}priority"), "1 (P1, most urgent) to 4");
        }
        for (i, c) in self.rfm_cells.iter().enumerate() {
            if RfmCell::parse(c).is_none() {
                let all: Vec<&str> = RfmCell::ALL.iter().map(|c| c.as_str()).collect();
                p.push(
                    format!("{at}rfmCells[{i}]"),
                    format!("`{c}` is not an RFM cell ({})", all.join(", ")),
                );
            }
        }
        if let Some(text) = &self.customer
            && let Err(e) = shoal_rules::parse(text, &tag_lookup(tags), sealed)
        {
            p.push(format!("{at}customer"), e.to_string());
        }
        queues::check_skills(p, &format!("{at}skills"), &self.skills);
        for (list, name) in [(&self.types, "types"), (&self.channels, "channels")] {
            if list.len() > 100 {
                p.push(format!("{at}{name}"), "at most 100");
            }
        }
    }
}

/// The tenant's routing rules, in order.
pub async fn rules(db: &Db, tenant: &str) -> Result<Vec<Rule>> {
    let mut conn = db.pool.acquire().await?;
    rules_in(&mut conn, tenant).await
}

pub(crate) async fn rules_in(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<Rule>> {
    match crate::settings::get_in(conn, tenant, "routing_rules").await? {
        Some(v) => serde_json::from_str(&v)
            .map_err(|e| Error::Internal(format!("the stored routing rules: {e}"))),
        None => Ok(Vec::new()),
    }
}

/// Replaces the routing rules (permission `configure`), each checked; problems under
/// `rules[i].`.
pub async fn set_rules(db: &Db, actor: &Actor, list: Vec<Rule>) -> Result<Vec<Rule>> {
    actor.require(Action::Configure)?;
    let mut conn = db.pool.acquire().await?;
    let queues = queues::queues(&mut conn, actor.tenant_id()).await?;
    let tags = shoal_tags::store_all(&mut conn, actor.tenant_id()).await?;
    drop(conn);
    let mut p = Problems::default();
    if list.len() > MAX_RULES {
        p.push("rules", format!("at most {MAX_RULES} rules"));
    }
    for (i, rule) in list.iter().enumerate() {
        rule.check(
            &mut p,
            &format!("rules[{i}]."),
            &queues,
            &tags,
            &db.vault.sealed_attributes(actor.tenant_id()),
        );
    }
    p.into_result(())?;
    let value = serde_json::to_value(&list).map_err(|e| Error::Internal(e.to_string()))?;
    crate::settings::save(db, actor, "routing_rules", value).await?;
    Ok(list)
}

/// Creates or replaces a queue (as [`queues::save_queue_in`]); tickets waiting in it are
/// offered to its members at once.
pub async fn save_queue(db: &Db, actor: &Actor, q: &Queue) -> Result<Queue> {
    let mut tx = db.begin_write().await?;
    queues::save_queue_in(&mut tx, actor, q).await?;
    drain_in(&mut tx, db, actor, std::slice::from_ref(&q.key)).await?;
    let saved = queues::queue(&mut tx, actor.tenant_id(), &q.key).await?;
    tx.commit().await?;
    saved.ok_or_else(|| Error::Internal("the saved queue is gone".into()))
}

/// Sets an agent (as [`queues::set_agent_in`]); tickets waiting in the agent's queues are
/// offered at once (the agent may now take them).
pub async fn set_agent(db: &Db, actor: &Actor, input: queues::AgentInput) -> Result<Agent> {
    let mut tx = db.begin_write().await?;
    let agent = queues::set_agent_in(&mut tx, actor, input).await?;
    drain_of(&mut tx, db, actor, &agent.user_id).await?;
    tx.commit().await?;
    Ok(agent)
}

/// Takes the tenant's routing lock for the rest of the transaction.
pub async fn lock(conn: &mut AnyConnection, db: &Db, tenant: &str) -> Result<()> {
    crate::settings::lock(conn, db, tenant).await
}

/// What routing reads of a new ticket.
pub(crate) struct Opened<'a> {
    pub id: &'a str,
    pub type_key: &'a str,
    pub channel: &'a str,
    pub priority: i64,
    pub subject: &'a str,
    pub body: Option<&'a str>,
    pub fields: &'a Map<String, Value>,
    pub customer_id: Option<&'a str>,
    pub assignee: Option<&'a str>,
    pub created_at: i64,
}

/// Why `rule` matches the ticket (each condition that held), or `None`.
async fn matches(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &str,
    rule: &Rule,
    t: &Opened<'_>,
    tags: &[shoal_tags::Tag],
) -> Result<Option<Vec<String>>> {
    let mut why = Vec::new();
    if !rule.types.is_empty() {
        if !rule.types.iter().any(|x| x == t.type_key) {
            return Ok(None);
        }
        why.push(format!("type {}", t.type_key));
    }
    if !rule.channels.is_empty() {
        if !rule.channels.iter().any(|x| x == t.channel) {
            return Ok(None);
        }
        why.push(format!("channel {}", t.channel));
    }
    if !rule.priorities.is_empty() {
        if !rule.priorities.contains(&t.priority) {
            return Ok(None);
        }
        why.push(format!("P{}", t.priority));
    }
    if !rule.keywords.is_empty() {
        let found = rule.keywords.iter().find_map(|k| {
            let k = k.trim();
            if t.subject.contains(k) {
                Some(format!("「{k}」 in the subject"))
            } else if t.body.is_some_and(|b| b.contains(k)) {
                Some(format!("「{k}」 in the first message"))
            } else {
                None
            }
        });
        match found {
            Some(w) => why.push(w),
            None => return Ok(None),
        }
    }
    for (k, v) in &rule.fields {
        if t.fields.get(k) != Some(v) {
            return Ok(None);
        }
        // the key only: a field may copy a customer attribute a reader sees masked
        why.push(format!("field {k} as the rule asks"));
    }
    if rule.customer.is_some() || !rule.rfm_cells.is_empty() {
        let Some(customer) = t.customer_id else {
            return Ok(None);
        };
        if let Some(text) = &rule.customer {
            // a tag deleted since the rule was saved: the condition cannot hold (nor can
            // one reading an attribute sealed since: it is not among the facts)
            let Ok(parsed) = shoal_rules::parse(text, &tag_lookup(tags), &[]) else {
                return Ok(None);
            };
            let Some(facts) = shoal_tags::load(conn, db, tenant, customer).await? else {
                return Ok(None);
            };
            if !shoal_rules::eval::holds(&parsed.cond, &facts.facts(t.created_at)) {
                return Ok(None);
            }
            why.push(format!("customer: {text}"));
        }
        if !rule.rfm_cells.is_empty() {
            let cell: Option<String> = sqlx::query_scalar(
                "SELECT cell FROM customer_rfm WHERE tenant_id = $1 AND customer_id = $2",
            )
            .bind(tenant)
            .bind(customer)
            .fetch_optional(&mut *conn)
            .await?;
            match cell {
                Some(c) if rule.rfm_cells.contains(&c) => why.push(format!("RFM cell {c}")),
                _ => return Ok(None),
            }
        }
    }
    if why.is_empty() {
        why.push("matches every ticket".into());
    }
    Ok(Some(why))
}

/// Routes a ticket just opened (in the opening transaction): the first matching rule sets
/// its queue, required skills and priority; then, unless it was opened with an assignee,
/// the queue offers it to an agent.
pub(crate) async fn route_new(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    t: &Opened<'_>,
) -> Result<()> {
    let tenant = actor.tenant_id();
    let rules = rules_in(conn, tenant).await?;
    if rules.is_empty() {
        return Ok(());
    }
    lock(conn, db, tenant).await?;
    let needs_tags = rules.iter().any(|r| r.customer.is_some());
    let tags = if needs_tags {
        shoal_tags::store_all(conn, tenant).await?
    } else {
        Vec::new()
    };
    let mut chosen = None;
    for rule in &rules {
        if let Some(why) = matches(conn, db, tenant, rule, t, &tags).await? {
            chosen = Some((rule, why));
            break;
        }
    }
    let now = time::to_micros(time::now());
    let Some((rule, why)) = chosen else {
        add_entry(
            conn,
            tenant,
            t.id,
            "routed",
            json!({ "rule": null, "queue": null, "why": "no routing rule matched" }),
            now,
        )
        .await?;
        return Ok(());
    };
    let priority = rule.priority.map_or(t.priority, |p| p.min(t.priority));
    sqlx::query(
        "UPDATE tickets SET queue = $3, skills = $4, priority = $5 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(t.id)
    .bind(&rule.queue)
    .bind(serde_json::to_string(&rule.skills).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(priority)
    .execute(&mut *conn)
    .await?;
    let mut detail = json!({ "rule": rule.name, "queue": rule.queue, "why": why });
    if priority != t.priority {
        detail["priority"] = json!({ "from": t.priority, "to": priority });
    }
    if !rule.skills.is_empty() {
        detail["skills"] = json!(rule.skills);
    }
    add_entry(conn, tenant, t.id, "routed", detail.clone(), now).await?;
    audit::record(conn, actor, "ticket.routed", "ticket", t.id, detail).await?;
    if t.assignee.is_some() {
        return Ok(());
    }
    let Some(queue) = queues::queue(conn, tenant, &rule.queue).await? else {
        return Ok(());
    };
    let mut pool = Pool::load(conn, tenant, queue).await?;
    let waiting = Waiting {
        id: t.id.to_owned(),
        priority,
        skills: rule.skills.clone(),
    };
    offer(conn, actor, &mut pool, &waiting, true).await?;
    Ok(())
}

/// Moves ticket `id` to queue `queue` (a transfer): its assignee, unless a member of the
/// new queue, gives it up and the new queue offers it. In the caller's transaction.
pub(crate) async fn transfer_in(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    id: &str,
    queue_key: &str,
    note: Option<&str>,
) -> Result<()> {
    let tenant = actor.tenant_id();
    lock(conn, db, tenant).await?;
    let Some(queue) = queues::queue(conn, tenant, queue_key).await? else {
        return Err(Error::invalid(
            "queue",
            format!("`{queue_key}` is not a queue of this tenant"),
        ));
    };
    let row = sqlx::query(
        "SELECT queue, assignee, priority, skills, category FROM tickets WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let from: Option<String> = row.try_get("queue")?;
    let assignee: Option<String> = row.try_get("assignee")?;
    let category: String = row.try_get("category")?;
    if from.as_deref() == Some(queue_key) {
        return Ok(());
    }
    let keeps = assignee.as_ref().is_some_and(|a| queue.members.contains(a));
    sqlx::query(&format!(
        "UPDATE tickets SET queue = $3, updated_at = $4{} WHERE tenant_id = $1 AND id = $2",
        if keeps { "" } else { ", assignee = NULL" }
    ))
    .bind(tenant)
    .bind(id)
    .bind(queue_key)
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?;
    let now = time::to_micros(time::now());
    let mut detail = json!({ "from": from, "to": queue_key, "why": "transferred" });
    if let Some(n) = note {
        detail["note"] = json!(n);
    }
    if !keeps && assignee.is_some() {
        detail["unassigned"] = json!(assignee);
    }
    add_entry(conn, tenant, id, "queue", detail.clone(), now).await?;
    audit::record(conn, actor, "ticket.queue", "ticket", id, detail).await?;
    if keeps || matches!(category.as_str(), "resolved" | "closed") {
        return Ok(());
    }
    let waiting = Waiting::from_row(id, &row)?;
    let mut pool = Pool::load(conn, tenant, queue).await?;
    offer(conn, actor, &mut pool, &waiting, true).await?;
    if let Some(a) = assignee {
        drain_of(conn, db, actor, &a).await?;
    }
    Ok(())
}

/// A reopened ticket whose agent is gone (no longer a user, or off): it gives the agent up
/// and its queue offers it again. In the caller's transaction.
pub(crate) async fn reopened_in(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    id: &str,
) -> Result<()> {
    let tenant = actor.tenant_id();
    lock(conn, db, tenant).await?;
    let row = sqlx::query(
        "SELECT queue, assignee, priority, skills FROM tickets WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let Some(assignee) = row.try_get::<Option<String>, _>("assignee")? else {
        return Ok(());
    };
    let agent = queues::agents_of(conn, tenant, std::slice::from_ref(&assignee))
        .await?
        .remove(0);
    if !agent.gone(&actor.tenant) {
        return Ok(());
    }
    let now = time::to_micros(time::now());
    sqlx::query("UPDATE tickets SET assignee = NULL WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let why = agent
        .unavailable(&actor.tenant, time::now())
        .unwrap_or_else(|| "gone".into());
    let detail = json!({ "from": assignee, "to": null, "by": "routing",
        "why": format!("reopened; {assignee} is {why}") });
    add_entry(conn, tenant, id, "assigned", detail.clone(), now).await?;
    audit::record(conn, actor, "ticket.assigned", "ticket", id, detail).await?;
    let Some(key) = row.try_get::<Option<String>, _>("queue")? else {
        return Ok(());
    };
    let Some(queue) = queues::queue(conn, tenant, &key).await? else {
        return Ok(());
    };
    let waiting = Waiting::from_row(id, &row)?;
    let mut pool = Pool::load(conn, tenant, queue).await?;
    offer(conn, actor, &mut pool, &waiting, true).await?;
    Ok(())
}

/// Offers the waiting tickets of every queue `user` belongs to (their capacity freed).
pub(crate) async fn drain_of(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    user: &str,
) -> Result<usize> {
    let theirs: Vec<String> = queues::queues(conn, actor.tenant_id())
        .await?
        .into_iter()
        .filter(|q| q.members.iter().any(|m| m == user))
        .map(|q| q.key)
        .collect();
    drain_in(conn, db, actor, &theirs).await
}

/// Offers the waiting tickets of queues `keys`, most urgent then oldest first, until no
/// member can take more; answers how many were assigned. In the caller's transaction.
pub async fn drain_in(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    keys: &[String],
) -> Result<usize> {
    if keys.is_empty() {
        return Ok(0);
    }
    let tenant = actor.tenant_id();
    lock(conn, db, tenant).await?;
    let mut assigned = 0;
    for key in keys {
        let Some(queue) = queues::queue(conn, tenant, key).await? else {
            continue;
        };
        let mut pool = Pool::load(conn, tenant, queue).await?;
        // pages in (priority, age) order, past tickets nobody free can take (skills), so
        // those do not hold up the ones after them; at most DRAIN_EXAMINED per call
        let mut after: Option<(i64, i64, String)> = None;
        let mut examined = 0;
        'pages: while examined < DRAIN_EXAMINED {
            let mut sql =
                Sql::new("SELECT id, priority, skills, created_at FROM tickets WHERE tenant_id = ");
            let t = sql.arg(tenant);
            let q = sql.arg(key.clone());
            sql.push(&format!(
                "{t} AND queue = {q} AND assignee IS NULL AND category NOT IN ('resolved', 'closed')"
            ));
            if let Some((p, c, i)) = &after {
                let (p, c, i) = (sql.arg(*p), sql.arg(*c), sql.arg(i.clone()));
                sql.push(&format!(
                    " AND (priority > {p} OR (priority = {p} AND (created_at > {c} OR (created_at = {c} AND id > {i}))))"
                ));
            }
            let limit = sql.arg(DRAIN_BATCH);
            sql.push(&format!(" ORDER BY priority, created_at, id LIMIT {limit}"));
            let rows = sql.query().fetch_all(&mut *conn).await?;
            let full = rows.len() as i64 == DRAIN_BATCH;
            for r in rows {
                examined += 1;
                let w = Waiting::from_row(&r.try_get::<String, _>("id")?, &r)?;
                after = Some((w.priority, r.try_get("created_at")?, w.id.clone()));
                match offer(conn, actor, &mut pool, &w, false).await? {
                    Offer::Assigned => assigned += 1,
                    Offer::Waits { anyone_free: false } => break 'pages,
                    Offer::Waits { anyone_free: true } => {}
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(assigned)
}

/// Offers the waiting tickets of every queue of every tenant given (shifts that began,
/// tickets left waiting by a host that stopped): the background worker's round.
pub async fn drain_all(db: &Db, actor: &Actor) -> Result<usize> {
    let mut tx = db.begin_write().await?;
    let keys: Vec<String> = queues::queues(&mut tx, actor.tenant_id())
        .await?
        .into_iter()
        .map(|q| q.key)
        .collect();
    let n = drain_in(&mut tx, db, actor, &keys).await?;
    tx.commit().await?;
    Ok(n)
}

/// A ticket waiting for an agent.
struct Waiting {
    id: String,
    priority: i64,
    skills: BTreeMap<String, u8>,
}

impl Waiting {
    /// Ticket `id` from a row with its `priority` and `skills`.
    fn from_row(id: &str, r: &sqlx::any::AnyRow) -> Result<Waiting> {
        let skills: String = r.try_get("skills")?;
        Ok(Waiting {
            id: id.to_owned(),
            priority: r.try_get("priority")?,
            skills: serde_json::from_str(&skills).unwrap_or_default(),
        })
    }
}

/// A queue with its members as agents and their loads, kept current while offering.
struct Pool {
    queue: Queue,
    agents: Vec<Agent>,
    loads: HashMap<String, Load>,
}

impl Pool {
    async fn load(conn: &mut AnyConnection, tenant: &str, queue: Queue) -> Result<Pool> {
        let agents = queues::agents_of(conn, tenant, &queue.members).await?;
        let loads = queues::loads(conn, tenant, &queue.members).await?;
        Ok(Pool {
            queue,
            agents,
            loads,
        })
    }

    /// The agent to take `w` and why, or why nobody can (per member) and whether anyone
    /// could take some other ticket.
    fn pick(
        &self,
        actor: &Actor,
        w: &Waiting,
        now: DateTime<Utc>,
    ) -> std::result::Result<(usize, String), (BTreeMap<String, String>, bool)> {
        let mut passed = BTreeMap::new();
        let mut candidates = Vec::new();
        let mut anyone_free = false;
        for (i, a) in self.agents.iter().enumerate() {
            let load = self.loads.get(&a.user_id).copied().unwrap_or_default();
            if let Some(why) = a.unavailable(&actor.tenant, now) {
                passed.insert(a.user_id.clone(), why);
            } else if load.open >= a.capacity {
                passed.insert(
                    a.user_id.clone(),
                    format!("at capacity ({} of {})", load.open, a.capacity),
                );
            } else if let Some(lack) = a.lacks(&w.skills) {
                anyone_free = true;
                passed.insert(a.user_id.clone(), format!("lacks {lack}"));
            } else {
                candidates.push((i, a, load));
            }
        }
        if candidates.is_empty() {
            return Err((passed, anyone_free));
        }
        let levels = |a: &Agent| -> u32 {
            w.skills
                .keys()
                .map(|s| u32::from(a.skills.get(s).copied().unwrap_or(0)))
                .sum()
        };
        let (i, why) = match self.queue.strategy {
            Strategy::RoundRobin => {
                let n = self.agents.len();
                let start = self
                    .queue
                    .last_assigned
                    .as_ref()
                    .and_then(|l| self.agents.iter().position(|a| &a.user_id == l))
                    .map_or(0, |p| p + 1);
                let (i, _, _) = candidates
                    .iter()
                    .min_by_key(|(i, _, _)| (i + n - start % n) % n)
                    .expect("not empty");
                let after = self.queue.last_assigned.as_deref().unwrap_or("nobody yet");
                (*i, format!("round robin: next after {after}"))
            }
            Strategy::LeastLoaded => {
                let (i, _, load) = candidates
                    .iter()
                    .min_by_key(|(i, a, l)| (l.weighted, l.open, a.last_assigned_at, *i))
                    .expect("not empty");
                (
                    *i,
                    format!(
                        "least loaded: {} open, weighted {}",
                        load.open, load.weighted
                    ),
                )
            }
            Strategy::Skills => {
                let (i, a, load) = candidates
                    .iter()
                    .min_by_key(|(i, a, l)| {
                        (
                            std::cmp::Reverse(levels(a)),
                            l.weighted,
                            a.last_assigned_at,
                            *i,
                        )
                    })
                    .expect("not empty");
                let held: Vec<String> = w
                    .skills
                    .keys()
                    .map(|s| format!("{s} {}", a.skills.get(s).copied().unwrap_or(0)))
                    .collect();
                (
                    *i,
                    if held.is_empty() {
                        format!(
                            "skill match (none required): weighted load {}",
                            load.weighted
                        )
                    } else {
                        format!(
                            "skill match: {}; weighted load {}",
                            held.join(", "),
                            load.weighted
                        )
                    },
                )
            }
        };
        Ok((i, why))
    }
}

enum Offer {
    Assigned,
    Waits { anyone_free: bool },
}

/// Offers `w` to the pool: assigns it (history, audit, the pool's loads and round-robin
/// position updated) or, when `first` (it has just entered the queue), records why it waits.
async fn offer(
    conn: &mut AnyConnection,
    actor: &Actor,
    pool: &mut Pool,
    w: &Waiting,
    first: bool,
) -> Result<Offer> {
    let tenant = actor.tenant_id();
    let now = time::now();
    let at = time::to_micros(now);
    match pool.pick(actor, w, now) {
        Ok((i, why)) => {
            let user = pool.agents[i].user_id.clone();
            let taken = sqlx::query(
                "UPDATE tickets SET assignee = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND assignee IS NULL",
            )
            .bind(tenant)
            .bind(&w.id)
            .bind(&user)
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if taken == 0 {
                return Ok(Offer::Waits { anyone_free: true });
            }
            let detail = json!({ "from": null, "to": user, "by": "routing", "queue": pool.queue.key,
                "strategy": pool.queue.strategy.as_str(), "why": why });
            add_entry(conn, tenant, &w.id, "assigned", detail.clone(), at).await?;
            audit::record(conn, actor, "ticket.assigned", "ticket", &w.id, detail).await?;
            sqlx::query(
                "UPDATE ticket_queues SET last_assigned = $3 WHERE tenant_id = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(&pool.queue.key)
            .bind(&user)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO ticket_agents (tenant_id, user_id, availability, capacity, skills, shift, last_assigned_at, updated_at) \
                 VALUES ($1, $2, 'online', $3, '{}', NULL, $4, $4) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET last_assigned_at = excluded.last_assigned_at",
            )
            .bind(tenant)
            .bind(&user)
            .bind(i64::from(queues::DEFAULT_CAPACITY))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            let load = pool.loads.entry(user.clone()).or_default();
            load.open += 1;
            load.weighted += queues::weight(w.priority);
            pool.agents[i].last_assigned_at = Some(now);
            pool.queue.last_assigned = Some(user);
            Ok(Offer::Assigned)
        }
        Err((passed, anyone_free)) => {
            if first {
                let why = if pool.agents.is_empty() {
                    json!("the queue has no members")
                } else {
                    json!(passed)
                };
                add_entry(
                    conn,
                    tenant,
                    &w.id,
                    "waiting",
                    json!({ "queue": pool.queue.key, "why": why }),
                    at,
                )
                .await?;
            }
            Ok(Offer::Waits { anyone_free })
        }
    }
}

/// A history entry written by routing (author `routing`, internal).
async fn add_entry(
    conn: &mut AnyConnection,
    tenant: &str,
    ticket: &str,
    kind: &str,
    detail: Value,
    at: i64,
) -> Result<()> {
    crate::entries::add(
        conn,
        tenant,
        ticket,
        (kind, "routing", false),
        None,
        Some(detail),
        at,
    )
    .await
    .map(drop)
}
