//! Dry run: what an SOP would do to whom and when, after quiet hours and caps, without
//! writing anything. The same step machine as the runner, on a snapshot of each customer:
//! conditions see today's profile, no future event arrives (waits for events time out),
//! the contact history is the real one plus the simulated messages.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{
    contact::{self, History, Sent, Verdict},
    definition::{Action, Compiled, EventSpec, Purpose, Step},
    machine::{self, Next, Position, World},
    opt_outs,
    runner::{render, render_on, sent_since, ticket_subject, time_zone_of},
};
use shoal_base::{
    error::{Error, Result},
    storage::{Db, time},
};
use shoal_crm::{
    access::ScopedIds,
    customers::Customer,
    tenancy::{Actor, Tenant},
};
use shoal_rules::Rule;

use crate::contact::Policy;

/// Most customers one simulation covers.
pub const MAX_CUSTOMERS: usize = 1000;
/// Longest simulated period.
pub const MAX_DAYS: i64 = 400;

/// One thing that would happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub customer_id: String,
    pub at: DateTime<Utc>,
    pub step_id: String,
    /// `done`, `skipped`, `deferred`, `dropped`, `completed`, `exited`, `pending`.
    pub outcome: String,
    pub detail: String,
}

struct SimWorld<'a> {
    tenant: &'a Tenant,
    customer: Customer,
    /// The customer as the reader of the plan may see it: what texts are rendered from.
    shown: Customer,
    facts: shoal_tags::Loaded,
    history: History,
    tags: &'a [shoal_tags::Tag],
    from: DateTime<Utc>,
}

impl World for SimWorld<'_> {
    async fn exit_reason(&mut self, sop: &Compiled, now: DateTime<Utc>) -> Result<Option<String>> {
        for spec in &sop.definition.exit_on {
            if self.seen(spec, self.from, now) {
                return Ok(Some(format!("exit event: {}", spec.key())));
            }
        }
        if let Some(rule) = &sop.exit_condition
            && self.holds(rule, now).await?
        {
            return Ok(Some("the exit condition holds".into()));
        }
        Ok(None)
    }

    async fn holds(&mut self, rule: &Rule, now: DateTime<Utc>) -> Result<bool> {
        Ok(shoal_rules::eval::holds(
            &rule.cond,
            &self.facts.facts(time::to_micros(now)),
        ))
    }

    async fn event_since(&mut self, spec: &EventSpec, since: DateTime<Utc>) -> Result<bool> {
        Ok(self.seen(spec, since, time::now()))
    }

    async fn contact(
        &mut self,
        sop: &Compiled,
        channel: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Verdict> {
        Ok(contact::judge(
            &Policy::of(self.tenant),
            self.time_zone(),
            channel,
            purpose,
            now,
            &self.history,
            sop.definition.on_cap,
        ))
    }

    async fn perform(&mut self, step: &Step, now: DateTime<Utc>) -> Result<String> {
        let c = &self.shown;
        Ok(match &step.action {
            Action::SendMessage {
                channel,
                template,
                purpose,
            } => {
                if !crate::definition::staff_facing(channel) {
                    self.history.sent.push(Sent {
                        at: now,
                        channel: channel.clone(),
                        purpose: *purpose,
                    });
                }
                format!(
                    "would send on {channel}: {}",
                    render_on(channel, template, c)
                )
            }
            Action::CallWebhook { url, .. } => format!("would call {url}"),
            Action::CreateTask {
                title, assignee, ..
            } => {
                let who = match assignee.as_str() {
                    "owner" => c.owner_id.clone().unwrap_or_else(|| "unassigned".into()),
                    other => other.to_owned(),
                };
                format!("would create a task for {who}: {}", render(title, c))
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => {
                let add = matches!(step.action, Action::AddTag { .. });
                match self.tags.iter().find(|t| &t.name == tag) {
                    Some(t) if add => {
                        self.facts.tags.insert(t.id.clone());
                    }
                    Some(t) => {
                        self.facts.tags.remove(&t.id);
                    }
                    None => return Err(Error::invalid("tag", format!("no tag named \"{tag}\""))),
                }
                format!("would {} tag \"{tag}\"", if add { "add" } else { "remove" })
            }
            Action::CreateTicket {
                title,
                priority,
                ticket_type,
            } => {
                format!(
                    "would open a {priority} {} ticket: {}",
                    ticket_type
                        .as_deref()
                        .unwrap_or(shoal_tickets::store::GENERAL),
                    ticket_subject(title, c)
                )
            }
            _ => String::new(),
        })
    }

    fn time_zone(&self) -> Tz {
        time_zone_of(&self.customer, self.tenant)
    }

    /// A dry run starts from no event: a wait on the event's time does not wait.
    async fn trigger_time(&mut self, _field: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

impl SimWorld<'_> {
    fn seen(&self, spec: &EventSpec, since: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        let (since, until) = (time::to_micros(since), time::to_micros(until));
        self.facts.events.iter().any(|e| {
            spec.matches(e.event_type.as_str(), e.name.as_deref())
                && e.occurred_at >= since
                && e.occurred_at <= until
        })
    }
}

/// Simulates `sop` for the customers from `from` to `to`, as if each enrolled at `from`.
/// Conditions see the real profiles; what the plan shows (message texts, task and ticket
/// titles) is rendered from each profile as `actor` may see it.
pub async fn simulate(
    db: &Db,
    actor: &Actor,
    sop: &Compiled,
    customers: &ScopedIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Planned>> {
    let tenant: &Tenant = &actor.tenant;
    let customer_ids = customers.ids();
    if to <= from {
        return Err(Error::invalid("to", "must be after `from`"));
    }
    if to - from > Duration::days(MAX_DAYS) {
        return Err(Error::invalid(
            "to",
            format!("at most {MAX_DAYS} days after `from`"),
        ));
    }
    if customer_ids.len() > MAX_CUSTOMERS {
        return Err(Error::LimitExceeded {
            field: "customerIds".into(),
            message: format!("at most {MAX_CUSTOMERS} customers per simulation"),
        });
    }
    let mut conn = db.pool.acquire().await?;
    let tags = shoal_tags::store_all(&mut conn, &tenant.id).await?;
    let refs: Vec<&str> = customer_ids.iter().map(String::as_str).collect();
    let customers = shoal_crm::customers::get_many(&mut conn, db, &tenant.id, &refs).await?;
    let mut p = shoal_base::error::Problems::default();
    for (i, id) in customer_ids.iter().enumerate() {
        if !customers.contains_key(id) {
            p.push(
                format!("customerIds[{i}]"),
                format!("no customer `{id}` in this tenant"),
            );
        }
    }
    p.into_result(())?;
    let opted = opt_outs::of_customers(&mut conn, &tenant.id, &refs).await?;
    let mut consents = shoal_crm::consent::marketing(&mut conn, &tenant.id, &refs).await?;
    let longest = Policy::of(tenant)
        .caps
        .iter()
        .map(|c| c.window)
        .max()
        .unwrap_or_default();
    let mut out = Vec::new();
    for id in customer_ids {
        let Some(facts) = shoal_tags::load(&mut conn, db, &tenant.id, id).await? else {
            continue;
        };
        let history = History {
            sent: sent_since(&mut conn, &tenant.id, id, from - longest).await?,
            last_human_follow_up: crate::follow_ups::last_human(&mut conn, &tenant.id, id).await?,
            opted_out: opted.get(id).cloned().unwrap_or_default(),
            marketing: consents.remove(id.as_str()).unwrap_or_default(),
        };
        let mut shown = customers[id].clone();
        actor.access.mask_customer(&mut shown);
        let mut world = SimWorld {
            tenant,
            customer: customers[id].clone(),
            shown,
            facts,
            history,
            tags: &tags,
            from,
        };
        let mut pos = Position {
            index: 0,
            step_started_at: from,
        };
        let mut now = from;
        for _ in 0..10_000 {
            let mut log = Vec::new();
            let next = machine::advance(sop, &mut pos, now, &mut world, &mut log).await;
            out.extend(log.into_iter().map(|r| Planned {
                customer_id: id.clone(),
                at: r.at,
                step_id: r.step_id,
                outcome: r.outcome.to_owned(),
                detail: r.detail,
            }));
            let step_id = |i: usize| {
                sop.definition
                    .steps
                    .get(i)
                    .map_or("end".to_owned(), |s| s.id.clone())
            };
            match next {
                Ok(Next::At { at, .. }) if at > to => {
                    out.push(Planned {
                        customer_id: id.clone(),
                        at,
                        step_id: step_id(pos.index),
                        outcome: "pending".into(),
                        detail: "due after the simulated period".into(),
                    });
                    break;
                }
                Ok(Next::At { at, .. }) => now = at,
                Ok(Next::Completed) => {
                    out.push(Planned {
                        customer_id: id.clone(),
                        at: now,
                        step_id: "end".into(),
                        outcome: "completed".into(),
                        detail: "all steps done".into(),
                    });
                    break;
                }
                Ok(Next::Exited(reason)) => {
                    out.push(Planned {
                        customer_id: id.clone(),
                        at: now,
                        step_id: step_id(pos.index),
                        outcome: "exited".into(),
                        detail: reason,
                    });
                    break;
                }
                Err(e) => {
                    out.push(Planned {
                        customer_id: id.clone(),
                        at: now,
                        step_id: step_id(pos.index),
                        outcome: "failed".into(),
                        detail: e.to_string(),
                    });
                    break;
                }
            }
        }
    }
    out.sort_by(|a, b| (a.at, &a.customer_id).cmp(&(b.at, &b.customer_id)));
    Ok(out)
}
