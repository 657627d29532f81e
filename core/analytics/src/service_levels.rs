//! Ticket service levels (docs/analytics.md#tickets): SLA attainment per target, tickets
//! opened, resolved and waiting (the backlog) per period in the tenant's zone, and each
//! agent's load — over the tickets the reader reaches (the `tickets` scope).
//!
//! SLA clocks are shoal-tickets' own ([`shoal_tickets::sla::clocks`]: business calendar,
//! pauses, the first policy that applies), read now, as each ticket's page shows them. The
//! backlog replays each ticket's status history, so a ticket reopened and resolved again
//! counts as waiting in between. Merged duplicates are not counted (their ticket carries on).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use shoal_base::{
    error::Result,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;
use shoal_tickets::{
    records::{Entry, Ticket, entry_from_row, from_row},
    sla::{self, State, Target},
    types::TicketType,
};

use crate::period::{Period, midnight};

/// The most periods a series has.
pub const MAX_POINTS: usize = 400;

/// What to count.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Tickets opened in `[from, to)` for SLA attainment; periods of the series cover it.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: Period,
    /// Only tickets of this type.
    pub type_key: Option<String>,
    /// Only tickets in this queue.
    pub queue: Option<String>,
}

/// One SLA target's clocks over the tickets opened in the range that have it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFigures {
    pub target: Target,
    /// Done within target.
    pub met: i64,
    /// Done late, or still not done past the target.
    pub breached: i64,
    /// Still running within target (on track, at risk or paused).
    pub running: i64,
    /// `met / (met + breached)`; none before any clock is decided.
    pub attainment: Option<f64>,
}

/// One period of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The period's first local day.
    pub start: NaiveDate,
    /// Tickets opened in it.
    pub opened: i64,
    /// Moves from a not-done status into a resolved or closed one in it.
    pub resolved: i64,
    /// Tickets not done at its end (for the period not over yet: now).
    pub backlog: i64,
}

/// One agent's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLoad {
    pub user_id: String,
    /// Tickets assigned to them and not done now.
    pub open: i64,
    /// Of those, tickets with a clock past its target now.
    pub breached: i64,
    /// Of those, tickets with a clock at risk (and none breached) now.
    pub at_risk: i64,
    /// Tickets they moved to a resolved or closed status in the range.
    pub resolved: i64,
}

/// The figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// First response, next response, resolution: the targets some policy sets.
    pub targets: Vec<TargetFigures>,
    pub series: Vec<Point>,
    /// Agents with open tickets or resolutions in the range, most open first.
    pub agents: Vec<AgentLoad>,
    /// Tickets not done now.
    pub backlog_now: i64,
    /// Of those, without an assignee.
    pub unassigned_now: i64,
}

/// A ticket with the entries its clocks and backlog are read from (oldest first).
struct Read {
    ticket: Ticket,
    entries: Vec<Entry>,
}

/// `user`'s load, counted from nothing the first time they are seen.
fn agent<'a>(agents: &'a mut BTreeMap<String, AgentLoad>, user: &str) -> &'a mut AgentLoad {
    agents.entry(user.to_owned()).or_insert_with(|| AgentLoad {
        user_id: user.to_owned(),
        open: 0,
        breached: 0,
        at_risk: 0,
        resolved: 0,
    })
}

/// The status an entry moved a ticket to.
fn moved_to(e: &Entry) -> Option<&str> {
    (e.kind == "status")
        .then(|| e.detail.as_ref()?.get("to")?.as_str())
        .flatten()
}

/// Whether `status` of `ty` is resolved or closed (an unknown status — the type changed
/// since — counts as not done).
fn done(ty: &TicketType, status: &str) -> bool {
    ty.status(status).is_some_and(|s| s.category.is_done())
}

/// The figures of `spec` over the tickets `actor` reaches.
pub async fn compute(db: &Db, actor: &Actor, spec: &Spec) -> Result<Figures> {
    let tz = actor.tenant.time_zone;
    let starts = crate::period::series(spec.period, spec.from, spec.to, tz, MAX_POINTS)?;
    let tickets = read(db, actor, spec).await?;
    let types: HashMap<String, TicketType> = shoal_tickets::store::types(db, actor.tenant_id())
        .await?
        .into_iter()
        .map(|t| (t.key.clone(), t))
        .collect();
    let general = shoal_tickets::records::general();
    let type_of = |key: &str| types.get(key).unwrap_or(&general);
    let policies = sla::policies(db, actor.tenant_id()).await?;
    let calendar = sla::calendar(db, actor).await?;
    let now = time::now();

    // SLA clocks now: of tickets opened in the range, and of every open one (agents' load)
    let mut targets: BTreeMap<&'static str, TargetFigures> = BTreeMap::new();
    let mut agents: BTreeMap<String, AgentLoad> = BTreeMap::new();
    let (mut backlog_now, mut unassigned_now) = (0, 0);
    for r in &tickets {
        let t = &r.ticket;
        let ty = type_of(&t.type_key);
        let in_range = spec.from <= t.created_at && t.created_at < spec.to;
        let open = !t.category.is_done();
        if !in_range && !open {
            continue;
        }
        let clocks = sla::clocks(&policies, &calendar, ty, t, &r.entries, now);
        if in_range {
            for c in &clocks {
                let f = targets
                    .entry(c.target.as_str())
                    .or_insert_with(|| TargetFigures {
                        target: c.target,
                        met: 0,
                        breached: 0,
                        running: 0,
                        attainment: None,
                    });
                match c.state {
                    State::Met => f.met += 1,
                    State::Breached => f.breached += 1,
                    State::OnTrack | State::AtRisk | State::Paused => f.running += 1,
                }
            }
        }
        if open {
            backlog_now += 1;
            match &t.assignee {
                None => unassigned_now += 1,
                Some(user) => {
                    let a = agent(&mut agents, user);
                    a.open += 1;
                    let running = |s: State| clocks.iter().any(|c| c.state == s);
                    if running(State::Breached) {
                        a.breached += 1;
                    } else if running(State::AtRisk) {
                        a.at_risk += 1;
                    }
                }
            }
        }
    }
    for f in targets.values_mut() {
        let decided = f.met + f.breached;
        f.attainment = (decided > 0).then(|| f.met as f64 / decided as f64);
    }

    // the series: opened, resolved and waiting per period, from each ticket's history
    let begins: Vec<DateTime<Utc>> = starts.iter().map(|&s| midnight(s, tz)).collect();
    let ends: Vec<DateTime<Utc>> = starts
        .iter()
        .map(|&s| midnight(spec.period.advance(s, 1), tz))
        .collect();
    let period_of =
        |at: DateTime<Utc>| (0..starts.len()).find(|&i| begins[i] <= at && at < ends[i]);
    let mut series: Vec<Point> = starts
        .iter()
        .map(|&start| Point {
            start,
            opened: 0,
            resolved: 0,
            backlog: 0,
        })
        .collect();
    for r in &tickets {
        let t = &r.ticket;
        let ty = type_of(&t.type_key);
        if let Some(i) = period_of(t.created_at) {
            series[i].opened += 1;
        }
        let moves: Vec<(&Entry, &str)> = r
            .entries
            .iter()
            .filter_map(|e| Some((e, moved_to(e)?)))
            .collect();
        // the status it opened in: the first move's `from` (with no move, the one it has)
        let initial = moves
            .first()
            .and_then(|(e, _)| e.detail.as_ref()?.get("from")?.as_str())
            .unwrap_or(t.status.as_str());
        // resolutions: each move from a not-done status into a done one, by whom
        let mut status = initial;
        for &(e, to) in &moves {
            if !done(ty, status) && done(ty, to) {
                if let Some(p) = period_of(e.created_at) {
                    series[p].resolved += 1;
                }
                if spec.from <= e.created_at && e.created_at < spec.to {
                    agent(&mut agents, &e.author).resolved += 1;
                }
            }
            status = to;
        }
        // waiting at each period's end (now, for one not over): opened before it, and the
        // status in force then not done
        let mut status = initial;
        let mut k = 0;
        for (i, end) in ends.iter().enumerate() {
            let end = (*end).min(now);
            while k < moves.len() && moves[k].0.created_at < end {
                status = moves[k].1;
                k += 1;
            }
            if t.created_at < end && !done(ty, status) {
                series[i].backlog += 1;
            }
        }
    }
    let mut agents: Vec<AgentLoad> = agents.into_values().collect();
    agents.sort_by(|a, b| b.open.cmp(&a.open).then(a.user_id.cmp(&b.user_id)));
    Ok(Figures {
        targets: targets.into_values().collect(),
        series,
        agents,
        backlog_now,
        unassigned_now,
    })
}

/// The tickets `actor` reaches that `spec` names (opened before its end, or still open),
/// merged duplicates left out, each with its status changes, public replies and customer
/// messages, oldest first.
async fn read(db: &Db, actor: &Actor, spec: &Spec) -> Result<Vec<Read>> {
    let queues = shoal_tickets::reach::my_queues(db, actor).await?;
    let mut sql = Sql::new("SELECT tickets.* FROM tickets WHERE tickets.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    sql.push(" AND tickets.merged_into IS NULL");
    let to = sql.arg(time::to_micros(spec.to));
    sql.push(&format!(
        " AND (tickets.created_at < {to} OR tickets.category NOT IN ('resolved', 'closed'))"
    ));
    if let Some(k) = &spec.type_key {
        let k = sql.arg(k.clone());
        sql.push(&format!(" AND tickets.type_key = {k}"));
    }
    if let Some(q) = &spec.queue {
        let q = sql.arg(q.clone());
        sql.push(&format!(" AND tickets.queue = {q}"));
    }
    shoal_tickets::reach::push_scope(actor, db, &mut sql, &t, &queues);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut tickets: Vec<Read> = Vec::with_capacity(rows.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let ticket = from_row(row)?;
        at.insert(ticket.id.clone(), tickets.len());
        tickets.push(Read {
            ticket,
            entries: Vec::new(),
        });
    }
    // their entries in one pass (those of tickets out of reach are skipped)
    let entries = sqlx::query(
        "SELECT * FROM ticket_entries WHERE tenant_id = $1 \
         AND kind IN ('status', 'reply', 'customer_message') ORDER BY created_at, id",
    )
    .bind(actor.tenant_id())
    .fetch_all(&db.pool)
    .await?;
    for row in &entries {
        let ticket: String = row.try_get("ticket_id")?;
        if let Some(&i) = at.get(&ticket) {
            tickets[i].entries.push(entry_from_row(row)?);
        }
    }
    Ok(tickets)
}
