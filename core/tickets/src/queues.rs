//! Queues (teams) and their agents: who may take a queue's tickets, and whether they can
//! now — availability (online, away, off), a shift calendar, a capacity of open tickets and
//! skills with levels. [`crate::routing`] decides with what this module reads.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::{
    audit,
    tenancy::{Actor, Tenant},
};

use crate::calendar::{BusinessCalendar, CalendarSpec};

/// Most queues a tenant may have.
pub const MAX_QUEUES: usize = 100;
/// Most members of one queue.
pub const MAX_MEMBERS: usize = 500;
/// Most skills of one agent, or required by one ticket.
pub const MAX_SKILLS: usize = 30;
/// Highest skill level (levels are 1–5).
pub const MAX_LEVEL: u8 = 5;
/// The capacity of an agent nobody configured.
pub const DEFAULT_CAPACITY: u32 = 10;
/// The largest capacity.
pub const MAX_CAPACITY: u32 = 1000;

/// How a queue picks among the members who can take a ticket now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The next member after the one assigned last, in the queue's order.
    RoundRobin,
    /// The member with the lightest weighted load (P1 counts 4, P2 3, P3 2, P4 1).
    LeastLoaded,
    /// The member whose levels in the ticket's required skills are highest (then the
    /// lightest load).
    Skills,
}

impl Strategy {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
            Strategy::Skills => "skills",
        }
    }

    /// The strategy stored as `s`.
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "round_robin" => Some(Strategy::RoundRobin),
            "least_loaded" => Some(Strategy::LeastLoaded),
            "skills" => Some(Strategy::Skills),
            _ => None,
        }
    }
}

/// A queue (team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub key: String,
    pub name: String,
    pub strategy: Strategy,
    /// User ids, in round-robin order.
    pub members: Vec<String>,
    /// The member round robin assigned to last.
    pub last_assigned: Option<String>,
}

/// Whether an agent takes tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Takes tickets (within their shift, if they have one).
    Online,
    /// Keeps their tickets, takes no new ones.
    Away,
    /// Gone: takes no new tickets, and a reopened ticket of theirs is routed again.
    Off,
}

impl Availability {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Off => "off",
        }
    }

    /// The availability stored as `s`.
    pub fn parse(s: &str) -> Option<Availability> {
        match s {
            "online" => Some(Availability::Online),
            "away" => Some(Availability::Away),
            "off" => Some(Availability::Off),
            _ => None,
        }
    }
}

/// A user as an agent: availability, capacity, skills and shift. A user nobody configured
/// is online, with capacity [`DEFAULT_CAPACITY`], no skills and no shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub user_id: String,
    pub availability: Availability,
    /// Most open tickets (not resolved or closed) assigned at once.
    pub capacity: u32,
    /// Skill → level (1–5).
    pub skills: BTreeMap<String, u8>,
    /// Working time: outside it the agent takes no new tickets. `None`: always.
    pub shift: Option<BusinessCalendar>,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

impl Agent {
    /// The agent nobody configured.
    pub fn unconfigured(user_id: &str) -> Agent {
        Agent {
            user_id: user_id.to_owned(),
            availability: Availability::Online,
            capacity: DEFAULT_CAPACITY,
            skills: BTreeMap::new(),
            shift: None,
            last_assigned_at: None,
        }
    }

    /// Why the agent takes no new ticket at `now`, or `None` when they do (capacity aside).
    pub fn unavailable(&self, tenant: &Tenant, now: DateTime<Utc>) -> Option<String> {
        if !tenant.users.contains_key(&self.user_id) {
            return Some("no longer a user of the tenant".into());
        }
        match self.availability {
            Availability::Away => return Some("away".into()),
            Availability::Off => return Some("off".into()),
            Availability::Online => {}
        }
        match &self.shift {
            Some(shift) if shift.add(now, Duration::zero(), &[]) != Some(now) => {
                Some("off shift".into())
            }
            _ => None,
        }
    }

    /// Whether the agent is gone: no longer a user, or off (a reopened ticket of theirs is
    /// routed again).
    pub fn gone(&self, tenant: &Tenant) -> bool {
        !tenant.users.contains_key(&self.user_id) || self.availability == Availability::Off
    }

    /// The first required skill the agent lacks or holds below its level, as staff read it
    /// (`退款 ≥ 2 (has 1)`).
    pub fn lacks(&self, required: &BTreeMap<String, u8>) -> Option<String> {
        required.iter().find_map(|(skill, level)| {
            let has = self.skills.get(skill).copied().unwrap_or(0);
            (has < *level).then(|| format!("{skill} ≥ {level} (has {has})"))
        })
    }
}

/// An agent's open tickets: how many, and their weight (P1 counts 4 … P4 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub open: u32,
    pub weighted: u32,
}

/// A ticket's weight in an agent's load.
pub fn weight(priority: i64) -> u32 {
    (5 - priority.clamp(1, 4)) as u32
}

fn key_ok(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Checks required (or held) skills: at most [`MAX_SKILLS`], names of 1–40 characters on
/// one line, levels 1–5; problems under `at`.
pub fn check_skills(p: &mut Problems, at: &str, skills: &BTreeMap<String, u8>) {
    if skills.len() > MAX_SKILLS {
        p.push(at, format!("at most {MAX_SKILLS} skills"));
    }
    for (name, level) in skills {
        let n = name.trim().chars().count();
        if n == 0 || n > 40 || name.chars().any(char::is_control) {
            p.push(format!("{at}.{name}"), "a skill name of 1–40 characters");
        }
        if !(1..=MAX_LEVEL).contains(level) {
            p.push(
                format!("{at}.{name}"),
                format!("a level from 1 to {MAX_LEVEL}"),
            );
        }
    }
}

fn queue_from(r: &sqlx::any::AnyRow) -> Result<Queue> {
    let strategy: String = r.try_get("strategy")?;
    let members: String = r.try_get("members")?;
    Ok(Queue {
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        strategy: Strategy::parse(&strategy)
            .ok_or_else(|| Error::Internal(format!("unknown queue strategy `{strategy}`")))?,
        members: serde_json::from_str(&members)
            .map_err(|e| Error::Internal(format!("stored queue members: {e}")))?,
        last_assigned: r.try_get("last_assigned")?,
    })
}

/// The tenant's queues, by key.
pub async fn queues(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<Queue>> {
    sqlx::query("SELECT * FROM ticket_queues WHERE tenant_id = $1 ORDER BY key")
        .bind(tenant)
        .fetch_all(conn)
        .await?
        .iter()
        .map(queue_from)
        .collect()
}

/// [`queues`], on a connection of its own.
pub async fn all(db: &Db, tenant: &str) -> Result<Vec<Queue>> {
    let mut conn = db.pool.acquire().await?;
    queues(&mut conn, tenant).await
}

/// Queue `key`, if there is one.
pub async fn queue(conn: &mut AnyConnection, tenant: &str, key: &str) -> Result<Option<Queue>> {
    sqlx::query("SELECT * FROM ticket_queues WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(queue_from)
        .transpose()
}

/// Creates or replaces queue `q` in the caller's transaction (permission `configure`): a
/// key of lower-case letters, digits, `_` and `-`; a name; members who are users of the
/// tenant, each once. ([`crate::routing::save_queue`] also offers what waits in it.)
pub async fn save_queue_in(conn: &mut AnyConnection, actor: &Actor, q: &Queue) -> Result<()> {
    actor.require(Action::Configure)?;
    let mut p = Problems::default();
    if !key_ok(&q.key) {
        p.push(
            "input.key",
            "1–64 characters: lower-case letters, digits, `_` and `-`",
        );
    }
    let n = q.name.trim().chars().count();
    if n == 0 || n > 100 || q.name.chars().any(char::is_control) {
        p.push("input.name", "1–100 characters on one line");
    }
    if q.members.len() > MAX_MEMBERS {
        p.push("input.members", format!("at most {MAX_MEMBERS} members"));
    }
    for (i, m) in q.members.iter().enumerate() {
        if !actor.tenant.users.contains_key(m) {
            p.push(
                format!("input.members[{i}]"),
                format!("`{m}` is not a user of this tenant"),
            );
        } else if q.members[..i].contains(m) {
            p.push(
                format!("input.members[{i}]"),
                format!("`{m}` is listed twice"),
            );
        }
    }
    let existing = queues(conn, actor.tenant_id()).await?;
    if existing.len() >= MAX_QUEUES && !existing.iter().any(|e| e.key == q.key) {
        p.push("input.key", format!("at most {MAX_QUEUES} queues"));
    }
    p.into_result(())?;
    let now = time::to_micros(time::now());
    let members = serde_json::to_string(&q.members).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO ticket_queues (tenant_id, key, name, strategy, members, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (tenant_id, key) DO UPDATE SET \
         name = excluded.name, strategy = excluded.strategy, members = excluded.members, updated_at = excluded.updated_at",
    )
    .bind(actor.tenant_id())
    .bind(&q.key)
    .bind(q.name.trim())
    .bind(q.strategy.as_str())
    .bind(&members)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "tickets.queue_saved",
        "ticket_queue",
        &q.key,
        json!({ "name": q.name.trim(), "strategy": q.strategy.as_str(), "members": q.members }),
    )
    .await?;
    Ok(())
}

fn agent_from(r: &sqlx::any::AnyRow) -> Result<Agent> {
    let availability: String = r.try_get("availability")?;
    let skills: String = r.try_get("skills")?;
    let shift: Option<String> = r.try_get("shift")?;
    Ok(Agent {
        user_id: r.try_get("user_id")?,
        availability: Availability::parse(&availability)
            .ok_or_else(|| Error::Internal(format!("unknown availability `{availability}`")))?,
        capacity: u32::try_from(r.try_get::<i64, _>("capacity")?).unwrap_or(0),
        skills: serde_json::from_str(&skills)
            .map_err(|e| Error::Internal(format!("stored agent skills: {e}")))?,
        shift: shift
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| Error::Internal(format!("stored agent shift: {e}")))?,
        last_assigned_at: r
            .try_get::<Option<i64>, _>("last_assigned_at")?
            .map(time::from_micros),
    })
}

/// The agents `users` (unconfigured ones as [`Agent::unconfigured`]), in that order.
pub async fn agents_of(
    conn: &mut AnyConnection,
    tenant: &str,
    users: &[String],
) -> Result<Vec<Agent>> {
    let stored: HashMap<String, Agent> =
        sqlx::query("SELECT * FROM ticket_agents WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(conn)
            .await?
            .iter()
            .map(|r| agent_from(r).map(|a| (a.user_id.clone(), a)))
            .collect::<Result<_>>()?;
    Ok(users
        .iter()
        .map(|u| {
            stored
                .get(u)
                .cloned()
                .unwrap_or_else(|| Agent::unconfigured(u))
        })
        .collect())
}

/// The open-ticket load of each of `users` (absent: none).
pub async fn loads(
    conn: &mut AnyConnection,
    tenant: &str,
    users: &[String],
) -> Result<HashMap<String, Load>> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = shoal_base::storage::sql::Sql::new(
        "SELECT assignee, priority, COUNT(*) AS n FROM tickets WHERE tenant_id = ",
    );
    let t = sql.arg(tenant);
    sql.push(&t);
    let list: Vec<String> = users.iter().map(|u| sql.arg(u.clone())).collect();
    sql.push(&format!(
        " AND assignee IN ({}) AND category NOT IN ('resolved', 'closed') GROUP BY assignee, priority",
        list.join(", ")
    ));
    let mut out: HashMap<String, Load> = HashMap::new();
    for r in sql.query().fetch_all(conn).await? {
        let user: String = r.try_get("assignee")?;
        let n = u32::try_from(r.try_get::<i64, _>("n")?).unwrap_or(u32::MAX);
        let l = out.entry(user).or_default();
        l.open = l.open.saturating_add(n);
        l.weighted = l
            .weighted
            .saturating_add(n.saturating_mul(weight(r.try_get("priority")?)));
    }
    Ok(out)
}

/// What setting an agent takes; `None` keeps what is stored.
#[derive(Debug, Clone, Default)]
pub struct AgentInput {
    pub user_id: String,
    pub availability: Option<Availability>,
    pub capacity: Option<u32>,
    pub skills: Option<BTreeMap<String, u8>>,
    /// `Some(None)` removes the shift.
    pub shift: Option<Option<serde_json::Value>>,
}

/// Sets an agent's availability, capacity, skills or shift in the caller's transaction.
/// Agents set their own availability with permission `update`; anything else needs
/// `configure`. ([`crate::routing::set_agent`] also offers what waits for them.)
pub async fn set_agent_in(
    conn: &mut AnyConnection,
    actor: &Actor,
    input: AgentInput,
) -> Result<Agent> {
    let only_own_availability = input.user_id == actor.user_id
        && input.capacity.is_none()
        && input.skills.is_none()
        && input.shift.is_none();
    actor.require(if only_own_availability {
        Action::Update
    } else {
        Action::Configure
    })?;
    let mut p = Problems::default();
    if !actor.tenant.users.contains_key(&input.user_id) {
        p.push(
            "input.userId",
            format!("`{}` is not a user of this tenant", input.user_id),
        );
    }
    if let Some(c) = input.capacity
        && c > MAX_CAPACITY
    {
        p.push("input.capacity", format!("0–{MAX_CAPACITY}"));
    }
    if let Some(s) = &input.skills {
        check_skills(&mut p, "input.skills", s);
    }
    let shift = match &input.shift {
        Some(Some(v)) => match serde_json::from_value::<CalendarSpec>(v.clone()) {
            Ok(spec) => match BusinessCalendar::new(spec) {
                Ok(c) => Some(Some(c)),
                Err(e) => {
                    p.push(format!("input.shift.{}", e.path()), e.to_string());
                    None
                }
            },
            Err(e) => {
                p.push("input.shift", e.to_string());
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    p.into_result(())?;
    let tenant = actor.tenant_id();
    let mut agent = agents_of(conn, tenant, std::slice::from_ref(&input.user_id))
        .await?
        .remove(0);
    if let Some(a) = input.availability {
        agent.availability = a;
    }
    if let Some(c) = input.capacity {
        agent.capacity = c;
    }
    if let Some(s) = input.skills {
        agent.skills = s;
    }
    if let Some(s) = shift {
        agent.shift = s;
    }
    let skills =
        serde_json::to_string(&agent.skills).map_err(|e| Error::Internal(e.to_string()))?;
    let shift_text = agent
        .shift
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO ticket_agents (tenant_id, user_id, availability, capacity, skills, shift, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
         availability = excluded.availability, capacity = excluded.capacity, skills = excluded.skills, \
         shift = excluded.shift, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(&agent.user_id)
    .bind(agent.availability.as_str())
    .bind(i64::from(agent.capacity))
    .bind(&skills)
    .bind(&shift_text)
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "tickets.agent_set",
        "ticket_agent",
        &agent.user_id,
        json!({ "availability": agent.availability.as_str(), "capacity": agent.capacity,
            "skills": agent.skills, "shift": agent.shift.as_ref().map(|s| s.spec().clone()) }),
    )
    .await?;
    Ok(agent)
}

/// An agent as supervisors see them now: settings, load and whether they take tickets.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStatus {
    pub agent: Agent,
    pub load: Load,
    /// Why they take no new ticket now (`away`, `off shift`, `at capacity (5 of 5)`).
    pub unavailable: Option<String>,
}

/// The status of `users` (every user of the tenant when `None`), in order.
pub async fn roster(db: &Db, actor: &Actor, users: Option<&[String]>) -> Result<Vec<AgentStatus>> {
    let users: Vec<String> = match users {
        Some(u) => u.to_vec(),
        None => actor.tenant.users.keys().cloned().collect(),
    };
    let mut conn = db.pool.acquire().await?;
    let agents = agents_of(&mut conn, actor.tenant_id(), &users).await?;
    let loads = loads(&mut conn, actor.tenant_id(), &users).await?;
    let now = time::now();
    Ok(agents
        .into_iter()
        .map(|agent| {
            let load = loads.get(&agent.user_id).copied().unwrap_or_default();
            let unavailable = agent.unavailable(&actor.tenant, now).or_else(|| {
                (load.open >= agent.capacity)
                    .then(|| format!("at capacity ({} of {})", load.open, agent.capacity))
            });
            AgentStatus {
                agent,
                load,
                unavailable,
            }
        })
        .collect())
}

/// How many tickets wait in each queue (queues without any are absent).
pub async fn waiting_counts(db: &Db, tenant: &str) -> Result<HashMap<String, i64>> {
    sqlx::query(
        "SELECT queue, COUNT(*) AS n FROM tickets WHERE tenant_id = $1 AND queue IS NOT NULL AND assignee IS NULL \
         AND category NOT IN ('resolved', 'closed') GROUP BY queue",
    )
    .bind(tenant)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("queue")?, r.try_get("n")?)))
    .collect()
}
