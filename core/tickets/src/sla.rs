//! SLA clocks: a tenant's policies (first response, next response and resolution targets in
//! business minutes, chosen by ticket type, priority and customer tier, first match wins)
//! measured on its business calendar. The resolution clock pauses while a ticket waits on
//! the customer or a third party; the response clocks do not (a customer's message waits on
//! nobody but the team). Clocks are computed from the ticket and its history on every read,
//! so they are exact whatever happened in between.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;

use crate::{
    calendar::{BusinessCalendar, Pause},
    records::{Entry, Ticket},
    settings,
    types::{Category, TicketType},
};

/// Most policies a tenant may have.
pub const MAX_POLICIES: usize = 50;

/// One SLA policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// What staff read (`VIP P1`).
    pub name: String,
    /// Ticket types it applies to (any when empty).
    #[serde(default)]
    pub types: Vec<String>,
    /// Priorities (1–4) it applies to (any when empty).
    #[serde(default)]
    pub priorities: Vec<i64>,
    /// The customers it applies to — a tier — as a condition in the rule language
    /// (`has_tag("VIP")`, `attr.会员等级 == "金卡"`, `stage == "customer"`); any customer
    /// when unset, none for a ticket without a customer. Read when the ticket opens and
    /// again for open tickets whenever the policies are saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Business minutes to the first public reply.
    #[serde(default)]
    pub first_response_minutes: Option<u32>,
    /// Business minutes from a customer's message (after the first response) to the team's
    /// next public reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_response_minutes: Option<u32>,
    /// Business minutes to resolution, paused while waiting.
    #[serde(default)]
    pub resolution_minutes: Option<u32>,
    /// The share of a target (percent) past which a clock is at risk (80 when unset).
    #[serde(default = "eighty")]
    pub warn_at_percent: u8,
    /// What happens when a clock gets at risk or breaches (each once per ticket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
}

fn eighty() -> u8 {
    80
}

/// Most escalations of one policy.
pub const MAX_ESCALATIONS: usize = 10;

/// When an escalation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The clock passed the policy's `warnAtPercent` of its target.
    AtRisk,
    /// The clock passed its target.
    Breached,
}

impl Stage {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AtRisk => "at_risk",
            Stage::Breached => "breached",
        }
    }

    /// The stage stored as `s`.
    pub fn parse(s: &str) -> Option<Stage> {
        match s {
            "at_risk" => Some(Stage::AtRisk),
            "breached" => Some(Stage::Breached),
            _ => None,
        }
    }
}

/// What a policy does when a ticket's clock gets to a stage: tell people (the
/// `ticket.sla_at_risk` / `ticket.sla_breached` change, which notification rules and
/// webhooks deliver), raise its priority, transfer it to another queue, add watchers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Escalation {
    pub when: Stage,
    /// The clock it watches; both when unset.
    #[serde(default)]
    pub target: Option<Target>,
    /// Emit the change notification rules and webhooks deliver (true when unset).
    #[serde(default = "yes")]
    pub notify: bool,
    /// Raise the priority to this (1 most urgent); a more urgent ticket keeps its own.
    #[serde(default)]
    pub raise_priority_to: Option<i64>,
    /// Transfer the ticket to this queue.
    #[serde(default)]
    pub transfer_to: Option<String>,
    /// Users to add to the ticket's watchers (told of this and later escalations).
    #[serde(default)]
    pub add_watchers: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Policy {
    /// Checks one policy, each problem under `at` (`policies[2].`).
    pub fn check(&self, p: &mut Problems, at: &str) {
        let n = self.name.trim().chars().count();
        if n == 0 || n > 100 {
            p.push(format!("{at}name"), "1–100 characters");
        }
        if self.types.len() > 50 || self.priorities.len() > 4 {
            p.push(format!("{at}types"), "at most 50 types and 4 priorities");
        }
        if let Some(i) = self.priorities.iter().position(|x| !(1..=4).contains(x)) {
            p.push(format!("{at}priorities[{i}]"), "1 (P1) to 4");
        }
        if self.first_response_minutes.is_none()
            && self.next_response_minutes.is_none()
            && self.resolution_minutes.is_none()
        {
            p.push(
                format!("{at}firstResponseMinutes"),
                "a policy sets a first-response, next-response or resolution target",
            );
        }
        for (field, m) in [
            ("firstResponseMinutes", self.first_response_minutes),
            ("nextResponseMinutes", self.next_response_minutes),
            ("resolutionMinutes", self.resolution_minutes),
        ] {
            if m.is_some_and(|m| m == 0 || m > 525_600) {
                p.push(format!("{at}{field}"), "1 minute to a year");
            }
        }
        if !(1..=100).contains(&self.warn_at_percent) {
            p.push(format!("{at}warnAtPercent"), "1–100");
        }
        if self.escalations.len() > MAX_ESCALATIONS {
            p.push(
                format!("{at}escalations"),
                format!("at most {MAX_ESCALATIONS}"),
            );
        }
        for (i, e) in self.escalations.iter().enumerate() {
            let at = format!("{at}escalations[{i}].");
            if e.raise_priority_to.is_some_and(|x| !(1..=4).contains(&x)) {
                p.push(format!("{at}raisePriorityTo"), "1 (P1) to 4");
            }
            if e.add_watchers.len() > 20 {
                p.push(format!("{at}addWatchers"), "at most 20");
            }
            let watches = |t: Target| e.target.is_none_or(|x| x == t);
            let has = |t: Target| match t {
                Target::FirstResponse => self.first_response_minutes.is_some(),
                Target::NextResponse => self.next_response_minutes.is_some(),
                Target::Resolution => self.resolution_minutes.is_some(),
            };
            if ![
                Target::FirstResponse,
                Target::NextResponse,
                Target::Resolution,
            ]
            .into_iter()
            .any(|t| watches(t) && has(t))
            {
                p.push(format!("{at}target"), "the policy sets no such target");
            }
            if !e.notify
                && e.raise_priority_to.is_none()
                && e.transfer_to.is_none()
                && e.add_watchers.is_empty()
            {
                p.push(format!("{at}notify"), "an escalation does something");
            }
        }
    }

    /// Whether it applies to `t` (its customer condition as read into `t.sla_customer`).
    pub fn applies(&self, t: &Ticket) -> bool {
        (self.types.is_empty() || self.types.contains(&t.type_key))
            && (self.priorities.is_empty() || self.priorities.contains(&t.priority))
            && (self.customer.is_none() || t.sla_customer.contains(&self.name))
    }
}

/// Which target a clock measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    FirstResponse,
    /// The team's next public reply after a customer's message.
    NextResponse,
    Resolution,
}

impl Target {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::NextResponse => "next_response",
            Target::Resolution => "resolution",
        }
    }

    /// The target stored as `s`.
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "first_response" => Some(Target::FirstResponse),
            "next_response" => Some(Target::NextResponse),
            "resolution" => Some(Target::Resolution),
            _ => None,
        }
    }
}

/// Where a clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Done within its target.
    Met,
    /// Running, below the warning share.
    OnTrack,
    /// Running, past the warning share.
    AtRisk,
    /// Past its target (done late, or still not done).
    Breached,
    /// Stopped: the ticket waits on the customer or a third party.
    Paused,
}

/// One SLA clock of a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub policy: String,
    pub target: Target,
    pub state: State,
    /// When the target falls due (`None` while paused, the deadline being unknown).
    pub due_at: Option<DateTime<Utc>>,
    /// When the clock gets at risk (`warnAtPercent` of the target; `None` while paused).
    pub warn_at: Option<DateTime<Utc>>,
    /// When it was done (the first response, the resolution), if it was.
    pub done_at: Option<DateTime<Utc>>,
    /// Business time the clock has run, in seconds.
    pub elapsed_seconds: i64,
    /// The target, in seconds.
    pub target_seconds: i64,
}

/// The intervals a ticket spent in a waiting category, from its status history.
pub fn waiting(ty: &TicketType, t: &Ticket, entries: &[Entry]) -> Vec<Pause> {
    let waits = |status: &str| ty.status(status).is_some_and(|s| s.category.pauses_sla());
    let mut pauses = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    for e in entries.iter().filter(|e| e.kind == "status") {
        let to = e
            .detail
            .as_ref()
            .and_then(|d| d.get("to"))
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        match (since, waits(to)) {
            (None, true) => since = Some(e.created_at),
            (Some(from), false) => {
                pauses.push((from, Some(e.created_at)));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        // still waiting, unless the ticket's status says otherwise (a type changed since)
        let end = (!waits(&t.status)).then_some(t.updated_at);
        pauses.push((from, end));
    }
    pauses
}

/// The clocks of ticket `t` at `now`: the first policy that applies, measured on
/// `calendar`. No policy applies: no clocks.
pub fn clocks(
    policies: &[Policy],
    calendar: &BusinessCalendar,
    ty: &TicketType,
    t: &Ticket,
    entries: &[Entry],
    now: DateTime<Utc>,
) -> Vec<Clock> {
    let Some(policy) = policies.iter().find(|p| p.applies(t)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(m) = policy.first_response_minutes {
        out.push(clock(
            policy,
            calendar,
            Target::FirstResponse,
            (t.created_at, t.first_response_at, m),
            &[],
            now,
        ));
    }
    if let (Some(m), Some((start, answered))) =
        (policy.next_response_minutes, awaiting_reply(ty, t, entries))
    {
        // resolving or closing the ticket answers what was waiting
        let done = answered.or(match t.category {
            Category::Resolved | Category::Closed => t.resolved_at.or(t.closed_at),
            _ => None,
        });
        out.push(clock(
            policy,
            calendar,
            Target::NextResponse,
            (start, done, m),
            &[],
            now,
        ));
    }
    if let Some(m) = policy.resolution_minutes {
        let done = match t.category {
            Category::Resolved | Category::Closed => t.resolved_at.or(t.closed_at),
            _ => None,
        };
        let pauses = waiting(ty, t, entries);
        out.push(clock(
            policy,
            calendar,
            Target::Resolution,
            (t.created_at, done, m),
            &pauses,
            now,
        ));
    }
    out
}

/// The latest customer message the team owes a reply to, after the first response: when
/// it came (the first of a run of messages) and when the next public reply — or a move to a
/// resolved or closed status — answered it, if one did. `None` before the first response
/// or when the customer has not written since.
pub fn awaiting_reply(
    ty: &TicketType,
    t: &Ticket,
    entries: &[Entry],
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let first = t.first_response_at?;
    let done = |e: &Entry| {
        e.detail
            .as_ref()
            .and_then(|d| d.get("to"))
            .and_then(|v| v.as_str())
            .and_then(|to| ty.status(to))
            .is_some_and(|s| s.category.is_done())
    };
    let mut cycle: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = None;
    for e in entries {
        match (e.kind.as_str(), cycle) {
            (CUSTOMER_MESSAGE, None | Some((_, Some(_)))) if e.created_at >= first => {
                cycle = Some((e.created_at, None));
            }
            ("reply", Some((start, None))) if e.public && e.created_at >= start => {
                cycle = Some((start, Some(e.created_at)));
            }
            ("status", Some((start, None))) if e.created_at >= start && done(e) => {
                cycle = Some((start, Some(e.created_at)));
            }
            _ => {}
        }
    }
    cycle
}

/// The history entry of a message from the customer.
pub const CUSTOMER_MESSAGE: &str = "customer_message";

fn clock(
    policy: &Policy,
    calendar: &BusinessCalendar,
    target: Target,
    (start, done, minutes): (DateTime<Utc>, Option<DateTime<Utc>>, u32),
    pauses: &[Pause],
    now: DateTime<Utc>,
) -> Clock {
    let span = Duration::minutes(i64::from(minutes));
    let due_at = calendar.add(start, span, pauses);
    let warn_at = calendar.add(
        start,
        Duration::seconds(span.num_seconds() * i64::from(policy.warn_at_percent) / 100),
        pauses,
    );
    let until = done.unwrap_or(now);
    let elapsed = calendar.business_between(start, until, pauses);
    let paused_now = done.is_none()
        && pauses
            .iter()
            .any(|(from, to)| *from <= now && to.is_none_or(|to| now < to));
    let state = match (done, due_at) {
        (Some(d), Some(due)) if d <= due => State::Met,
        (Some(_), _) => State::Breached,
        (None, Some(due)) if now >= due => State::Breached,
        (None, _) if paused_now => State::Paused,
        (None, _)
            if elapsed.num_seconds() * 100
                >= span.num_seconds() * i64::from(policy.warn_at_percent) =>
        {
            State::AtRisk
        }
        (None, _) => State::OnTrack,
    };
    Clock {
        policy: policy.name.clone(),
        target,
        state,
        due_at,
        warn_at,
        done_at: done,
        elapsed_seconds: elapsed.num_seconds(),
        target_seconds: span.num_seconds(),
    }
}

// ---- customer tiers ----

/// The names of `policies` whose customer condition holds for `customer` now (policies
/// without one are not named: they apply to every customer).
pub async fn customer_tiers(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    tenant: &str,
    policies: &[Policy],
    customer: Option<&str>,
) -> Result<Vec<String>> {
    let conditional: Vec<(&str, &str)> = policies
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.customer.as_deref()?)))
        .collect();
    let Some(customer) = customer.filter(|_| !conditional.is_empty()) else {
        return Ok(Vec::new());
    };
    let tags = shoal_tags::store_all(conn, tenant).await?;
    let lookup = |n: &str| tags.iter().find(|t| t.name == n).map(|t| t.id.clone());
    let Some(loaded) = shoal_tags::load(conn, db, tenant, customer).await? else {
        return Ok(Vec::new());
    };
    let facts = loaded.facts(time::to_micros(time::now()));
    Ok(conditional
        .into_iter()
        // a tag deleted since the policy was saved: the condition cannot hold
        .filter(|(_, text)| {
            // a condition reading an attribute sealed since cannot hold: not among the facts
            shoal_rules::parse(text, &lookup, &[])
                .is_ok_and(|rule| shoal_rules::eval::holds(&rule.cond, &facts))
        })
        .map(|(name, _)| name.to_owned())
        .collect())
}

/// Reads ticket `t`'s customer tiers again and stores them when they changed (in the
/// caller's transaction); `t` is updated to match.
pub async fn read_tiers_in(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    tenant: &str,
    policies: &[Policy],
    t: &mut Ticket,
) -> Result<()> {
    let tiers = customer_tiers(conn, db, tenant, policies, t.customer_id.as_deref()).await?;
    if tiers != t.sla_customer {
        sqlx::query("UPDATE tickets SET sla_customer = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(&t.id)
            .bind(serde_json::to_string(&tiers).map_err(|e| Error::Internal(e.to_string()))?)
            .execute(&mut *conn)
            .await?;
        t.sla_customer = tiers;
    }
    Ok(())
}

// ---- settings ----

/// The tenant's business calendar: the one saved, else every hour of every day in the
/// tenant's zone.
pub async fn calendar(db: &Db, actor: &Actor) -> Result<BusinessCalendar> {
    let mut conn = db.pool.acquire().await?;
    calendar_in(&mut conn, actor.tenant_id(), actor.tenant.time_zone).await
}

/// Saves the business calendar (permission `configure`); a problem names its path under
/// `calendar.` (`calendar.week.mon[1]`).
pub async fn set_calendar(
    db: &Db,
    actor: &Actor,
    spec: serde_json::Value,
) -> Result<BusinessCalendar> {
    actor.require(Action::Configure)?;
    let spec: crate::calendar::CalendarSpec =
        serde_json::from_value(spec).map_err(|e| Error::invalid("calendar", e.to_string()))?;
    let calendar = BusinessCalendar::new(spec)
        .map_err(|e| Error::invalid(format!("calendar.{}", e.path()), e.to_string()))?;
    let value = serde_json::to_value(&calendar).map_err(|e| Error::Internal(e.to_string()))?;
    settings::save(db, actor, "calendar", value).await?;
    Ok(calendar)
}

/// [`calendar`] on the caller's connection, for tenant `tenant` in zone `zone`.
pub async fn calendar_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    zone: chrono_tz::Tz,
) -> Result<BusinessCalendar> {
    match settings::get_in(conn, tenant, "calendar").await? {
        Some(v) => serde_json::from_str(&v)
            .map_err(|e| Error::Internal(format!("the stored calendar: {e}"))),
        None => Ok(BusinessCalendar::always(zone)),
    }
}

/// [`policies`] on the caller's connection.
pub async fn policies_in(conn: &mut sqlx::AnyConnection, tenant: &str) -> Result<Vec<Policy>> {
    match settings::get_in(conn, tenant, "sla_policies").await? {
        Some(v) => serde_json::from_str(&v)
            .map_err(|e| Error::Internal(format!("the stored SLA policies: {e}"))),
        None => Ok(Vec::new()),
    }
}

/// The tenant's SLA policies, in order.
pub async fn policies(db: &Db, tenant: &str) -> Result<Vec<Policy>> {
    let mut conn = db.pool.acquire().await?;
    policies_in(&mut conn, tenant).await
}

/// Replaces the SLA policies (permission `configure`), each checked, problems under
/// `policies[i].`.
pub async fn set_policies(db: &Db, actor: &Actor, list: Vec<Policy>) -> Result<Vec<Policy>> {
    actor.require(Action::Configure)?;
    let mut p = Problems::default();
    if list.len() > MAX_POLICIES {
        p.push("policies", format!("at most {MAX_POLICIES} policies"));
    }
    let queues = crate::queues::all(db, actor.tenant_id()).await?;
    let tags = shoal_tags::list(db, actor.tenant_id()).await?;
    let lookup = |n: &str| tags.iter().find(|t| t.name == n).map(|t| t.id.clone());
    for (i, policy) in list.iter().enumerate() {
        policy.check(&mut p, &format!("policies[{i}]."));
        if list[..i].iter().any(|other| other.name == policy.name) {
            p.push(
                format!("policies[{i}].name"),
                format!("`{}` names an earlier policy too", policy.name),
            );
        }
        if let Some(text) = &policy.customer
            && let Err(e) = shoal_rules::parse(
                text,
                &lookup,
                &db.vault.sealed_attributes(actor.tenant_id()),
            )
        {
            p.push(format!("policies[{i}].customer"), e.to_string());
        }
        for (j, e) in policy.escalations.iter().enumerate() {
            let at = format!("policies[{i}].escalations[{j}].");
            if let Some(q) = &e.transfer_to
                && !queues.iter().any(|x| &x.key == q)
            {
                p.push(
                    format!("{at}transferTo"),
                    format!("`{q}` is not a queue of this tenant"),
                );
            }
            for (k, u) in e.add_watchers.iter().enumerate() {
                if !actor.tenant.users.contains_key(u) {
                    p.push(
                        format!("{at}addWatchers[{k}]"),
                        format!("`{u}` is not a user of this tenant"),
                    );
                }
            }
        }
    }
    p.into_result(())?;
    let value = serde_json::to_value(&list).map_err(|e| Error::Internal(e.to_string()))?;
    settings::save(db, actor, "sla_policies", value).await?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Asia::Shanghai;
    use serde_json::json;

    fn calendar() -> BusinessCalendar {
        serde_json::from_value(json!({
            "time_zone": "Asia/Shanghai",
            "week": { "mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
                      "thu": ["09:00-18:00"], "fri": ["09:00-18:00"] }
        }))
        .unwrap()
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(2026, 12, d, h, m, 0)
            .unwrap()
            .to_utc()
    }

    fn ticket(created: DateTime<Utc>) -> Ticket {
        Ticket {
            id: "t".into(),
            type_key: "general".into(),
            subject: "s".into(),
            status: "new".into(),
            category: Category::Open,
            priority: 2,
            impact: "medium".into(),
            customer_id: None,
            channel: "api".into(),
            fields: Default::default(),
            assignee: None,
            queue: None,
            skills: Default::default(),
            watchers: Vec::new(),
            merged_into: None,
            bill_id: None,
            sla_customer: Vec::new(),
            created_by: "u".into(),
            created_at: created,
            updated_at: created,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
        }
    }

    fn status(at: DateTime<Utc>, from: &str, to: &str) -> Entry {
        Entry {
            id: format!("{at}"),
            ticket_id: "t".into(),
            kind: "status".into(),
            author: "u".into(),
            public: false,
            body: None,
            detail: Some(json!({ "from": from, "to": to })),
            created_at: at,
        }
    }

    fn ty() -> TicketType {
        TicketType {
            key: "general".into(),
            name: "一般".into(),
            fields: vec![],
            statuses: TicketType::standard_statuses(),
            transitions: vec![],
            survey: None,
            template: None,
        }
    }

    fn p2() -> Vec<Policy> {
        vec![
            Policy {
                name: "P1".into(),
                types: vec![],
                priorities: vec![1],
                customer: None,
                next_response_minutes: None,
                first_response_minutes: Some(15),
                resolution_minutes: None,
                warn_at_percent: 80,
                escalations: Vec::new(),
            },
            Policy {
                name: "P2 一般".into(),
                types: vec!["general".into()],
                priorities: vec![2],
                customer: None,
                next_response_minutes: None,
                first_response_minutes: Some(60),
                resolution_minutes: Some(8 * 60),
                warn_at_percent: 80,
                escalations: Vec::new(),
            },
        ]
    }

    fn said(at: DateTime<Utc>, kind: &str) -> Entry {
        Entry {
            kind: kind.into(),
            public: true,
            detail: None,
            ..status(at, "", "")
        }
    }

    #[test]
    fn a_customer_message_waits_until_a_reply_or_a_resolve_and_a_reopen_does_not_revive_it() {
        let mut t = ticket(at(7, 9, 0));
        t.first_response_at = Some(at(7, 9, 10));
        // before the first response: part of the first wait
        let early = [said(at(7, 9, 5), CUSTOMER_MESSAGE)];
        assert_eq!(awaiting_reply(&ty(), &t, &early), None);
        let waits = [
            said(at(7, 10, 0), CUSTOMER_MESSAGE),
            said(at(7, 10, 5), CUSTOMER_MESSAGE),
        ];
        assert_eq!(
            awaiting_reply(&ty(), &t, &waits),
            Some((at(7, 10, 0), None))
        );
        let answered = [
            waits[0].clone(),
            waits[1].clone(),
            said(at(7, 11, 0), "reply"),
        ];
        assert_eq!(
            awaiting_reply(&ty(), &t, &answered),
            Some((at(7, 10, 0), Some(at(7, 11, 0))))
        );
        // resolved without a reply, then reopened: the wait ended at the resolve
        let reopened = [
            waits[0].clone(),
            status(at(7, 12, 0), "in_progress", "resolved"),
            status(at(8, 9, 0), "resolved", "in_progress"),
        ];
        assert_eq!(
            awaiting_reply(&ty(), &t, &reopened),
            Some((at(7, 10, 0), Some(at(7, 12, 0))))
        );
    }

    #[test]
    fn a_tier_policy_applies_only_to_the_customers_read_into_it() {
        let mut policies = p2();
        policies.insert(
            0,
            Policy {
                name: "VIP".into(),
                types: vec![],
                priorities: vec![],
                customer: Some("has_tag(\"VIP\")".into()),
                next_response_minutes: None,
                first_response_minutes: Some(30),
                resolution_minutes: None,
                warn_at_percent: 80,
                escalations: Vec::new(),
            },
        );
        let mut t = ticket(at(7, 9, 0));
        let c = clocks(&policies, &calendar(), &ty(), &t, &[], at(7, 9, 10));
        assert_eq!(c[0].policy, "P2 一般");
        t.sla_customer = vec!["VIP".into()];
        let c = clocks(&policies, &calendar(), &ty(), &t, &[], at(7, 9, 10));
        assert_eq!((c[0].policy.as_str(), c[0].target_seconds), ("VIP", 1800));
    }

    #[test]
    fn a_friday_evening_ticket_is_due_on_monday_morning() {
        // 2026-12-04 is a Friday
        let t = ticket(at(4, 17, 30));
        let c = clocks(&p2(), &calendar(), &ty(), &t, &[], at(4, 17, 45));
        assert_eq!(c[0].policy, "P2 一般", "the first policy that applies");
        assert_eq!(c[0].due_at, Some(at(7, 9, 30)));
        // at risk past 80 %: 30 minutes on Friday, then 18 on Monday
        assert_eq!(c[0].warn_at, Some(at(7, 9, 18)));
        assert_eq!(c[0].state, State::OnTrack);
        assert_eq!(c[0].elapsed_seconds, 15 * 60);
        // resolution: 30 min on Friday, then 7.5 h on Monday
        assert_eq!(c[1].due_at, Some(at(7, 16, 30)));
        // Monday 09:20: 50 of 60 minutes used, past 80 %
        let c = clocks(&p2(), &calendar(), &ty(), &t, &[], at(7, 9, 20));
        assert_eq!(c[0].state, State::AtRisk);
        let c = clocks(&p2(), &calendar(), &ty(), &t, &[], at(7, 9, 31));
        assert_eq!(c[0].state, State::Breached);
        // answered in time: met, whatever the hour now
        let mut answered = t.clone();
        answered.first_response_at = Some(at(7, 9, 10));
        let c = clocks(&p2(), &calendar(), &ty(), &answered, &[], at(9, 12, 0));
        assert_eq!(c[0].state, State::Met);
        assert_eq!(c[0].done_at, Some(at(7, 9, 10)));
    }

    #[test]
    fn waiting_on_the_customer_pauses_resolution_but_not_first_response() {
        // opened Monday 09:00; waits on the customer from 10:00 to Tuesday 10:00
        let mut t = ticket(at(7, 9, 0));
        let history = [
            status(at(7, 9, 30), "new", "in_progress"),
            status(at(7, 10, 0), "in_progress", "waiting_on_customer"),
            status(at(8, 10, 0), "waiting_on_customer", "in_progress"),
        ];
        t.status = "in_progress".into();
        let c = clocks(&p2(), &calendar(), &ty(), &t, &history, at(8, 11, 0));
        assert_eq!(
            c[0].due_at,
            Some(at(7, 10, 0)),
            "first response does not pause"
        );
        // 1 h Monday before the wait, 7 h left from Tuesday 10:00: Tuesday 17:00
        assert_eq!(c[1].due_at, Some(at(8, 17, 0)));
        assert_eq!(c[1].elapsed_seconds, 2 * 3600);
        // while it waits, the clock is paused and its deadline unknown
        t.status = "waiting_on_customer".into();
        t.category = Category::WaitingOnCustomer;
        let c = clocks(&p2(), &calendar(), &ty(), &t, &history[..2], at(7, 15, 0));
        assert_eq!(c[1].state, State::Paused);
        assert_eq!(c[1].due_at, None);
        assert_eq!(c[1].elapsed_seconds, 3600);
    }

    #[test]
    fn no_policy_no_clocks_and_bad_policies_are_named() {
        let mut t = ticket(at(7, 9, 0));
        t.priority = 4;
        assert!(clocks(&p2(), &calendar(), &ty(), &t, &[], at(7, 10, 0)).is_empty());
        let mut p = Problems::default();
        Policy {
            name: String::new(),
            types: vec![],
            priorities: vec![5],
            customer: None,
            next_response_minutes: None,
            first_response_minutes: None,
            resolution_minutes: None,
            warn_at_percent: 0,
            escalations: Vec::new(),
        }
        .check(&mut p, "policies[0].");
        let fields: Vec<String> = p.into_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "policies[0].name",
                "policies[0].priorities[0]",
                "policies[0].firstResponseMinutes",
                "policies[0].warnAtPercent"
            ]
        );
    }
}
