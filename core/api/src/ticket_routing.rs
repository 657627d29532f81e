//! Ticket routing in GraphQL: queues (teams), agents (availability, capacity, skills,
//! shifts, load), routing rules, and transfers between queues.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use serde_json::{Map, Value};

use super::{
    ErrorExt, actor, db,
    tickets::{Skill, Ticket},
};
use shoal_tickets::{
    queues::{self, AgentInput, AgentStatus, Availability, Strategy},
    routing, store,
};

/// How a queue picks among the members who can take a ticket now.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueStrategy {
    /// The next member after the one assigned last.
    RoundRobin,
    /// The lightest weighted load (P1 counts 4, P2 3, P3 2, P4 1).
    LeastLoaded,
    /// The highest levels in the ticket's required skills, then the lightest load.
    Skills,
}

impl QueueStrategy {
    fn of(s: Strategy) -> Self {
        match s {
            Strategy::RoundRobin => Self::RoundRobin,
            Strategy::LeastLoaded => Self::LeastLoaded,
            Strategy::Skills => Self::Skills,
        }
    }
    fn domain(self) -> Strategy {
        match self {
            Self::RoundRobin => Strategy::RoundRobin,
            Self::LeastLoaded => Strategy::LeastLoaded,
            Self::Skills => Strategy::Skills,
        }
    }
}

/// Whether an agent takes tickets.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AgentAvailability {
    /// Takes tickets (within their shift, if they have one).
    Online,
    /// Keeps their tickets, takes no new ones.
    Away,
    /// Gone: takes no new tickets; a reopened ticket of theirs is routed again.
    Off,
}

impl AgentAvailability {
    fn of(a: Availability) -> Self {
        match a {
            Availability::Online => Self::Online,
            Availability::Away => Self::Away,
            Availability::Off => Self::Off,
        }
    }
    fn domain(self) -> Availability {
        match self {
            Self::Online => Availability::Online,
            Self::Away => Availability::Away,
            Self::Off => Availability::Off,
        }
    }
}

fn skills_of(m: &BTreeMap<String, u8>) -> Vec<Skill> {
    m.iter()
        .map(|(name, level)| Skill {
            name: name.clone(),
            level: *level,
        })
        .collect()
}

fn skill_map(list: Vec<Skill>) -> BTreeMap<String, u8> {
    list.into_iter().map(|s| (s.name, s.level)).collect()
}

/// An agent now: settings, load, and whether they take tickets.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketAgent {
    pub user_id: String,
    pub availability: AgentAvailability,
    /// Most open tickets assigned at once.
    pub capacity: u32,
    pub skills: Vec<Skill>,
    /// Their shift (a business calendar), or null for always.
    pub shift: Option<Json<Value>>,
    /// Open tickets (not resolved or closed) assigned to them.
    pub open_tickets: u32,
    /// The same, weighted by priority (P1 counts 4 … P4 1).
    pub weighted_load: u32,
    /// Why they take no new ticket now, or null when they do.
    pub unavailable_because: Option<String>,
}

impl From<AgentStatus> for TicketAgent {
    fn from(s: AgentStatus) -> Self {
        TicketAgent {
            user_id: s.agent.user_id,
            availability: AgentAvailability::of(s.agent.availability),
            capacity: s.agent.capacity,
            skills: skills_of(&s.agent.skills),
            shift: s
                .agent
                .shift
                .map(|c| Json(serde_json::to_value(c.spec()).unwrap_or(Value::Null))),
            open_tickets: s.load.open,
            weighted_load: s.load.weighted,
            unavailable_because: s.unavailable,
        }
    }
}

/// A queue (team).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct TicketQueue {
    pub key: String,
    pub name: String,
    pub strategy: QueueStrategy,
    /// User ids, in round-robin order.
    pub members: Vec<String>,
    /// The member round robin assigned to last.
    pub last_assigned: Option<String>,
    /// Tickets waiting in it for an agent.
    pub waiting: i64,
}

#[async_graphql::ComplexObject]
impl TicketQueue {
    /// Its members as agents now.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketAgent>> {
        let actor = actor(ctx).gql()?;
        Ok(queues::roster(db(ctx), actor, Some(&self.members))
            .await
            .gql()?
            .into_iter()
            .map(TicketAgent::from)
            .collect())
    }
}

/// A queue to create or replace.
#[derive(InputObject, Debug)]
pub struct TicketQueueInput {
    /// Lower-case letters, digits, `_` and `-`.
    pub key: String,
    pub name: String,
    pub strategy: QueueStrategy,
    /// User ids, in round-robin order.
    #[graphql(default)]
    pub members: Vec<String>,
}

/// Settings of an agent; what is left out stays as it is.
#[derive(InputObject, Debug)]
pub struct TicketAgentInput {
    pub user_id: String,
    pub availability: Option<AgentAvailability>,
    pub capacity: Option<u32>,
    pub skills: Option<Vec<Skill>>,
    /// Their shift: a business calendar (`{"time_zone": "Asia/Shanghai", "week": {"mon":
    /// ["09:00-18:00"]}}`); null removes it (with `clearShift`).
    pub shift: Option<Json<Value>>,
    /// Removes the shift: always on shift.
    #[graphql(default)]
    pub clear_shift: bool,
}

/// A routing rule: conditions (every one given must hold) and where a matching ticket goes.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "RoutingRuleInput")]
pub struct RoutingRule {
    /// What staff read in the ticket's history.
    pub name: String,
    /// Ticket types (any when empty).
    #[graphql(default)]
    pub types: Vec<String>,
    /// Source channels (any when empty).
    #[graphql(default)]
    pub channels: Vec<String>,
    /// Priorities 1–4 as opened (any when empty).
    #[graphql(default)]
    pub priorities: Vec<i64>,
    /// One of these must appear in the subject or the first message (`着急`, `投诉`).
    #[graphql(default)]
    pub keywords: Vec<String>,
    /// Custom field values the ticket must hold exactly.
    pub fields: Option<Json<Map<String, Value>>>,
    /// A rule-language condition on the customer: `has_tag("VIP")`.
    pub customer: Option<String>,
    /// RFM cells (`champions`, `loyal`, …) the customer must be in.
    #[graphql(default)]
    pub rfm_cells: Vec<String>,
    /// The queue a matching ticket goes to.
    pub queue: String,
    /// Raise the priority to this (1 most urgent).
    pub priority: Option<i64>,
    /// Skills the agent must hold.
    #[graphql(default)]
    pub skills: Vec<Skill>,
}

impl From<routing::Rule> for RoutingRule {
    fn from(r: routing::Rule) -> Self {
        RoutingRule {
            name: r.name,
            types: r.types,
            channels: r.channels,
            priorities: r.priorities,
            keywords: r.keywords,
            fields: (!r.fields.is_empty()).then_some(Json(r.fields)),
            customer: r.customer,
            rfm_cells: r.rfm_cells,
            queue: r.queue,
            priority: r.priority,
            skills: skills_of(&r.skills),
        }
    }
}

impl RoutingRule {
    fn domain(self) -> routing::Rule {
        routing::Rule {
            name: self.name,
            types: self.types,
            channels: self.channels,
            priorities: self.priorities,
            keywords: self.keywords,
            fields: self.fields.map(|j| j.0).unwrap_or_default(),
            customer: self.customer,
            rfm_cells: self.rfm_cells,
            queue: self.queue,
            priority: self.priority,
            skills: skill_map(self.skills),
        }
    }
}

async fn queue_views(ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketQueue>> {
    let actor = actor(ctx).gql()?;
    let list = queues::all(db(ctx), actor.tenant_id()).await.gql()?;
    let waiting = queues::waiting_counts(db(ctx), actor.tenant_id())
        .await
        .gql()?;
    Ok(list
        .into_iter()
        .map(|q| TicketQueue {
            waiting: waiting.get(&q.key).copied().unwrap_or(0),
            key: q.key,
            name: q.name,
            strategy: QueueStrategy::of(q.strategy),
            members: q.members,
            last_assigned: q.last_assigned,
        })
        .collect())
}

#[derive(Default)]
pub struct RoutingQuery;

#[Object]
impl RoutingQuery {
    /// The tenant's queues, by key, with how many tickets wait in each.
    async fn ticket_queues(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketQueue>> {
        queue_views(ctx).await
    }

    /// The tenant's users as agents now (a user nobody configured is online, capacity 10).
    async fn ticket_agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketAgent>> {
        let actor = actor(ctx).gql()?;
        Ok(queues::roster(db(ctx), actor, None)
            .await
            .gql()?
            .into_iter()
            .map(TicketAgent::from)
            .collect())
    }

    /// The routing rules, in order (the first that matches a new ticket routes it).
    async fn routing_rules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RoutingRule>> {
        let actor = actor(ctx).gql()?;
        Ok(routing::rules(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(RoutingRule::from)
            .collect())
    }
}

#[derive(Default)]
pub struct RoutingMutation;

#[Object]
impl RoutingMutation {
    /// Creates or replaces a queue (permission `configure`); tickets waiting in it are
    /// offered to its members at once.
    async fn save_ticket_queue(
        &self,
        ctx: &Context<'_>,
        input: TicketQueueInput,
    ) -> async_graphql::Result<TicketQueue> {
        let actor = actor(ctx).gql()?;
        let q = queues::Queue {
            key: input.key,
            name: input.name,
            strategy: input.strategy.domain(),
            members: input.members,
            last_assigned: None,
        };
        let saved = routing::save_queue(db(ctx), actor, &q).await.gql()?;
        let waiting = queues::waiting_counts(db(ctx), actor.tenant_id())
            .await
            .gql()?;
        Ok(TicketQueue {
            waiting: waiting.get(&saved.key).copied().unwrap_or(0),
            key: saved.key,
            name: saved.name,
            strategy: QueueStrategy::of(saved.strategy),
            members: saved.members,
            last_assigned: saved.last_assigned,
        })
    }

    /// Sets an agent's availability, capacity, skills or shift (permission `configure`;
    /// agents set their own availability with `update`). Waiting tickets are offered at once.
    async fn set_ticket_agent(
        &self,
        ctx: &Context<'_>,
        input: TicketAgentInput,
    ) -> async_graphql::Result<TicketAgent> {
        let actor = actor(ctx).gql()?;
        let user = input.user_id.clone();
        let shift = if input.clear_shift {
            Some(None)
        } else {
            input.shift.map(|j| Some(j.0))
        };
        routing::set_agent(
            db(ctx),
            actor,
            AgentInput {
                user_id: input.user_id,
                availability: input.availability.map(AgentAvailability::domain),
                capacity: input.capacity,
                skills: input.skills.map(skill_map),
                shift,
            },
        )
        .await
        .gql()?;
        let mut roster = queues::roster(db(ctx), actor, Some(std::slice::from_ref(&user)))
            .await
            .gql()?;
        Ok(roster.remove(0).into())
    }

    /// Sets the caller's own availability (permission `update`).
    async fn set_my_availability(
        &self,
        ctx: &Context<'_>,
        availability: AgentAvailability,
    ) -> async_graphql::Result<TicketAgent> {
        let actor = actor(ctx).gql()?;
        routing::set_agent(
            db(ctx),
            actor,
            AgentInput {
                user_id: actor.user_id.clone(),
                availability: Some(availability.domain()),
                ..Default::default()
            },
        )
        .await
        .gql()?;
        let mut roster = queues::roster(db(ctx), actor, Some(std::slice::from_ref(&actor.user_id)))
            .await
            .gql()?;
        Ok(roster.remove(0).into())
    }

    /// Replaces the routing rules (permission `configure`); every problem is named by its
    /// path (`rules[2].customer`).
    async fn set_routing_rules(
        &self,
        ctx: &Context<'_>,
        rules: Vec<RoutingRule>,
    ) -> async_graphql::Result<Vec<RoutingRule>> {
        let actor = actor(ctx).gql()?;
        let list = rules.into_iter().map(RoutingRule::domain).collect();
        Ok(routing::set_rules(db(ctx), actor, list)
            .await
            .gql()?
            .into_iter()
            .map(RoutingRule::from)
            .collect())
    }

    /// Transfers a ticket to another queue, with an optional internal note: its assignee
    /// keeps it only if a member there; else the new queue offers it.
    async fn transfer_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        queue: String,
        note: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            store::set_queue(db(ctx), actor, &id, &queue, note.as_deref())
                .await
                .gql()?,
        ))
    }
}
