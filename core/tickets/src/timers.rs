//! SLA timers that act. Every running clock of a ticket has two timers — at risk and
//! breached, one row each, due when the clock gets there on the business calendar (what
//! the SLA filters of ticket lists read) — rewritten whenever the ticket changes and when
//! the calendar or the policies change. A policy's escalations act on them. A due timer fires once: in one transaction it is marked fired, checked against
//! the ticket as it is now (a clock met, paused or moved since does not fire), and its
//! escalation runs — the `ticket.sla_at_risk` / `ticket.sla_breached` change (which
//! notification rules and webhooks deliver through their outboxes), a higher priority, a
//! transfer, watchers added — with a history entry saying why. A host that dies mid-way
//! leaves the timer due; a second host deciding at once waits on the row and finds it
//! fired.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_crm::{
    audit, internal_events,
    tenancy::{Actor, Tenant},
};

use crate::{
    calendar::BusinessCalendar,
    records::{self, Ticket},
    sla::{self, Escalation, Policy, Stage, Target},
    types::TicketType,
};

/// Most due timers one round fires per tenant.
pub const BATCH: i64 = 100;
/// Tickets re-armed per transaction after the calendar or the policies change.
pub const REARM_BATCH: i64 = 500;

/// What arming timers reads once for many tickets.
pub struct Context {
    policies: Vec<Policy>,
    calendar: BusinessCalendar,
    types: HashMap<String, TicketType>,
}

impl Context {
    /// The tenant's policies and calendar.
    pub async fn load(conn: &mut AnyConnection, tenant: &Tenant) -> Result<Context> {
        Ok(Context {
            policies: sla::policies_in(conn, &tenant.id).await?,
            calendar: sla::calendar_in(conn, &tenant.id, tenant.time_zone).await?,
            types: HashMap::new(),
        })
    }

    /// When each (clock, stage) of `t` falls due; clocks done or paused have none.
    async fn due(
        &mut self,
        conn: &mut AnyConnection,
        tenant: &str,
        t: &Ticket,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Target, Stage, DateTime<Utc>)>> {
        if t.category.is_done() || !self.policies.iter().any(|p| p.applies(t)) {
            return Ok(Vec::new());
        }
        if !self.types.contains_key(&t.type_key) {
            let ty = records::type_in(conn, tenant, &t.type_key, "type").await?;
            self.types.insert(t.type_key.clone(), ty);
        }
        let ty = &self.types[&t.type_key];
        let entries = records::clock_entries_in(conn, tenant, &t.id).await?;
        let clocks = sla::clocks(&self.policies, &self.calendar, ty, t, &entries, now);
        let mut out = Vec::new();
        // every running clock's instants (the SLA filters read them), escalating or not
        for c in clocks.iter().filter(|c| c.done_at.is_none()) {
            for stage in [Stage::AtRisk, Stage::Breached] {
                let at = match stage {
                    Stage::AtRisk => c.warn_at,
                    Stage::Breached => c.due_at,
                };
                if let Some(at) = at {
                    out.push((c.target, stage, at));
                }
            }
        }
        Ok(out)
    }

    /// The escalations of `t`'s policy for (`target`, `stage`).
    fn escalations(&self, t: &Ticket, target: Target, stage: Stage) -> Vec<Escalation> {
        self.policies
            .iter()
            .find(|p| p.applies(t))
            .map(|p| {
                p.escalations
                    .iter()
                    .filter(|e| e.when == stage && e.target.is_none_or(|x| x == target))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn policy_name(&self, t: &Ticket) -> Option<String> {
        self.policies
            .iter()
            .find(|p| p.applies(t))
            .map(|p| p.name.clone())
    }
}

/// Rewrites the unfired timers of ticket `id` from the ticket as it is (in the caller's
/// transaction). Fired ones stay fired: an escalation runs once per ticket.
pub async fn arm_in(conn: &mut AnyConnection, tenant: &Tenant, id: &str) -> Result<()> {
    let mut ctx = Context::load(conn, tenant).await?;
    if ctx.policies.is_empty() {
        return clear(conn, &tenant.id, id).await;
    }
    let Some(t) = records::ticket_in(conn, &tenant.id, id).await? else {
        return Ok(());
    };
    arm_with(conn, &tenant.id, &mut ctx, &t).await
}

/// Forgets ticket `id`'s next-response timers, fired or not: the reply they waited for came,
/// or a new message starts a new wait whose escalations run afresh.
pub(crate) async fn forget_next_response(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM ticket_timers WHERE tenant_id = $1 AND ticket_id = $2 AND target = 'next_response'",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn clear(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM ticket_timers WHERE tenant_id = $1 AND ticket_id = $2 AND fired_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn arm_with(
    conn: &mut AnyConnection,
    tenant: &str,
    ctx: &mut Context,
    t: &Ticket,
) -> Result<()> {
    clear(conn, tenant, &t.id).await?;
    for (target, stage, at) in ctx.due(conn, tenant, t, time::now()).await? {
        sqlx::query(
            "INSERT INTO ticket_timers (tenant_id, ticket_id, target, stage, due_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, ticket_id, target, stage) DO NOTHING",
        )
        .bind(tenant)
        .bind(&t.id)
        .bind(target.as_str())
        .bind(stage.as_str())
        .bind(time::to_micros(at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Re-arms every ticket not resolved or closed when the calendar or the policies changed
/// since the last time (the `timers_armed` setting holds when that was); answers how many
/// tickets it re-armed. Any host may do it; doing it twice is harmless.
pub async fn rearm_if_changed(db: &Db, tenant: &Tenant) -> Result<usize> {
    let mut conn = db.pool.acquire().await?;
    let changed: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(updated_at) FROM ticket_settings WHERE tenant_id = $1 AND key IN ('calendar', 'sla_policies')",
    )
    .bind(&tenant.id)
    .fetch_one(&mut *conn)
    .await?;
    let Some(changed) = changed else {
        return Ok(0);
    };
    let armed: i64 = crate::settings::get_in(&mut conn, &tenant.id, "timers_armed")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if armed >= changed {
        return Ok(0);
    }
    drop(conn);
    let mut after = String::new();
    let mut n = 0;
    loop {
        let mut tx = db.begin_write().await?;
        let mut ctx = Context::load(&mut tx, tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM tickets WHERE tenant_id = $1 AND id > $2 AND category NOT IN ('resolved', 'closed') ORDER BY id LIMIT $3",
        )
        .bind(&tenant.id)
        .bind(&after)
        .bind(REARM_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let mut tickets = rows
            .iter()
            .map(records::from_row)
            .collect::<Result<Vec<_>>>()?;
        for t in &mut tickets {
            // the policies changed: so may the customer tiers they choose by
            sla::read_tiers_in(&mut tx, db, &tenant.id, &ctx.policies, t).await?;
            arm_with(&mut tx, &tenant.id, &mut ctx, t).await?;
        }
        n += tickets.len();
        match tickets.last() {
            Some(t) => after = t.id.clone(),
            None => {
                sqlx::query(
                    "INSERT INTO ticket_settings (tenant_id, key, value, updated_at) VALUES ($1, 'timers_armed', $2, $3) \
                     ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(&tenant.id)
                .bind(changed.to_string())
                .bind(time::to_micros(time::now()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(n);
            }
        }
        tx.commit().await?;
    }
}

/// Fires the tenant's due timers (up to [`BATCH`]), each in a transaction of its own and
/// supervised on its own: one that fails or panics is logged, counted and left due; the
/// others go on. Answers how many escalated.
pub async fn fire_due(
    db: &Db,
    tenant: &std::sync::Arc<Tenant>,
    now: DateTime<Utc>,
    supervision: &shoal_base::supervise::Supervision,
) -> Result<usize> {
    let due = sqlx::query(
        "SELECT ticket_id, target, stage FROM ticket_timers WHERE tenant_id = $1 AND fired_at IS NULL AND due_at <= $2 \
         ORDER BY due_at LIMIT $3",
    )
    .bind(&tenant.id)
    .bind(time::to_micros(now))
    .bind(BATCH)
    .fetch_all(&db.pool)
    .await?;
    let mut fired = 0;
    for r in due {
        let ticket: String = r.try_get("ticket_id")?;
        let (Some(target), Some(stage)) = (
            Target::parse(&r.try_get::<String, _>("target")?),
            Stage::parse(&r.try_get::<String, _>("stage")?),
        ) else {
            continue;
        };
        match supervision
            .guard(
                "tickets.escalation",
                fire(db, tenant, &ticket, target, stage, now),
            )
            .await
        {
            Ok(true) => fired += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(tenant = %tenant.id, ticket, error = %e, "an SLA escalation failed; it stays due")
            }
        }
    }
    Ok(fired)
}

/// Fires one timer if it is still due and unfired; answers whether it escalated.
async fn fire(
    db: &Db,
    tenant: &std::sync::Arc<Tenant>,
    id: &str,
    target: Target,
    stage: Stage,
    now: DateTime<Utc>,
) -> Result<bool> {
    let at = time::to_micros(now);
    let mut tx = db.begin_write().await?;
    // locks in the order ticket changes take them (routing lock, ticket row, timers), so
    // an escalation and an agent's change never wait on each other in a circle
    crate::routing::lock(&mut tx, db, &tenant.id).await?;
    sqlx::query(&format!(
        "SELECT id FROM tickets WHERE tenant_id = $1 AND id = $2{}",
        shoal_base::storage::dialect::for_update(db.backend)
    ))
    .bind(&tenant.id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    // the claim: a second host blocks here until the first commits, then finds it fired
    let claimed = sqlx::query(
        "UPDATE ticket_timers SET fired_at = $5 WHERE tenant_id = $1 AND ticket_id = $2 AND target = $3 AND stage = $4 \
         AND fired_at IS NULL AND due_at <= $5",
    )
    .bind(&tenant.id)
    .bind(id)
    .bind(target.as_str())
    .bind(stage.as_str())
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(false);
    }
    let Some(t) = records::ticket_in(&mut tx, &tenant.id, id).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    // the ticket as it is now: a clock met, paused or moved since does not fire
    let mut ctx = Context::load(&mut tx, tenant).await?;
    let due = ctx.due(&mut tx, &tenant.id, &t, now).await?;
    match due.iter().find(|(tg, st, _)| *tg == target && *st == stage) {
        Some((_, _, when)) if *when <= now => {}
        Some((_, _, when)) => {
            sqlx::query(
                "UPDATE ticket_timers SET fired_at = NULL, due_at = $5 WHERE tenant_id = $1 AND ticket_id = $2 AND target = $3 AND stage = $4",
            )
            .bind(&tenant.id)
            .bind(id)
            .bind(target.as_str())
            .bind(stage.as_str())
            .bind(time::to_micros(*when))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
        None => {
            sqlx::query(
                "DELETE FROM ticket_timers WHERE tenant_id = $1 AND ticket_id = $2 AND target = $3 AND stage = $4",
            )
            .bind(&tenant.id)
            .bind(id)
            .bind(target.as_str())
            .bind(stage.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
    }
    let escalations = ctx.escalations(&t, target, stage);
    if escalations.is_empty() {
        // a deadline without an escalation: marked, nothing to do
        tx.commit().await?;
        return Ok(false);
    }
    let actor = Actor::system(tenant, "sla");
    let policy = ctx.policy_name(&t).unwrap_or_default();
    let what = format!(
        "{policy}: {} {}",
        match target {
            Target::FirstResponse => "first response",
            Target::NextResponse => "next response",
            Target::Resolution => "resolution",
        },
        match stage {
            Stage::AtRisk => "at risk",
            Stage::Breached => "breached",
        }
    );
    let mut done = Vec::new();
    let mut priority = t.priority;
    let mut watchers = t.watchers.clone();
    let mut notify = false;
    let mut transfer = None;
    for e in escalations {
        notify |= e.notify;
        if let Some(p) = e.raise_priority_to
            && p < priority
        {
            priority = p;
        }
        for w in e.add_watchers {
            if tenant.users.contains_key(&w) && !watchers.contains(&w) {
                watchers.push(w);
            }
        }
        if e.transfer_to.is_some() {
            transfer = e.transfer_to;
        }
    }
    if priority != t.priority {
        sqlx::query(
            "UPDATE tickets SET priority = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&tenant.id)
        .bind(id)
        .bind(priority)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let change = json!({ "from": t.priority, "to": priority, "why": what });
        crate::entries::add(
            &mut tx,
            &tenant.id,
            id,
            ("priority", "sla", false),
            None,
            Some(change.clone()),
            at,
        )
        .await?;
        audit::record(&mut tx, &actor, "ticket.priority", "ticket", id, change).await?;
        done.push(format!("priority P{} → P{priority}", t.priority));
    }
    if watchers != t.watchers {
        sqlx::query("UPDATE tickets SET watchers = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(&tenant.id)
            .bind(id)
            .bind(serde_json::to_string(&watchers).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await?;
        let added: Vec<&String> = watchers
            .iter()
            .filter(|w| !t.watchers.contains(w))
            .collect();
        done.push(format!(
            "watchers added: {}",
            added
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(q) = &transfer {
        crate::routing::transfer_in(&mut tx, db, &actor, id, q, Some(&what)).await?;
        done.push(format!("transferred to {q}"));
    }
    let kind = match stage {
        Stage::AtRisk => "ticket.sla_at_risk",
        Stage::Breached => "ticket.sla_breached",
    };
    // the ticket as the escalation left it
    let after = records::ticket_in(&mut tx, &tenant.id, id)
        .await?
        .unwrap_or(t.clone());
    if notify {
        let payload = json!({
            "ticketId": id, "subject": after.subject, "type": after.type_key,
            "target": target.as_str(), "stage": stage.as_str(), "policy": policy,
            "priority": after.priority, "assignee": after.assignee, "queue": after.queue,
            "watchers": after.watchers,
        });
        internal_events::emit(
            &mut tx,
            &tenant.id,
            kind,
            after.customer_id.as_deref().unwrap_or(""),
            &payload,
            at,
        )
        .await?;
        done.push(format!("{kind} sent"));
    }
    let detail = json!({ "target": target.as_str(), "stage": stage.as_str(), "policy": policy,
        "why": what, "actions": done });
    crate::entries::add(
        &mut tx,
        &tenant.id,
        id,
        ("escalated", "sla", false),
        None,
        Some(detail.clone()),
        at,
    )
    .await?;
    audit::record(&mut tx, &actor, "ticket.escalated", "ticket", id, detail).await?;
    // a new priority may bring another policy: the timers follow the ticket
    arm_with(&mut tx, &tenant.id, &mut ctx, &after).await?;
    tx.commit().await?;
    Ok(true)
}
