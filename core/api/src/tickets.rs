//! Tickets (工单) in GraphQL: ticket types (fields and workflows), tickets opened, read,
//! moved along their workflow, answered, annotated and their fields changed.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{ErrorExt, actor, db, page::page};
use shoal_base::pagination::PageArgs;
use shoal_tickets::{
    sla,
    store::{self, Entry, NewTicket, Ticket as Domain, TicketFilter},
    types::{Category, FieldDef, FieldKind, StatusDef, TicketType as TypeDomain, Transition},
};

/// What a custom field holds.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TicketFieldKind {
    Text,
    Number,
    /// `{"amount": "199.00", "currency": "CNY"}`.
    Money,
    /// `YYYY-MM-DD`.
    Date,
    Choice,
    /// Copied from the customer's attribute when the ticket is opened.
    CustomerAttribute,
}

impl TicketFieldKind {
    fn of(k: FieldKind) -> Self {
        match k {
            FieldKind::Text => Self::Text,
            FieldKind::Number => Self::Number,
            FieldKind::Money => Self::Money,
            FieldKind::Date => Self::Date,
            FieldKind::Choice => Self::Choice,
            FieldKind::CustomerAttribute => Self::CustomerAttribute,
        }
    }
    fn domain(self) -> FieldKind {
        match self {
            Self::Text => FieldKind::Text,
            Self::Number => FieldKind::Number,
            Self::Money => FieldKind::Money,
            Self::Date => FieldKind::Date,
            Self::Choice => FieldKind::Choice,
            Self::CustomerAttribute => FieldKind::CustomerAttribute,
        }
    }
}

/// Where a status stands in a ticket's life (SLA clocks pause while waiting).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TicketCategory {
    Open,
    WaitingOnCustomer,
    WaitingOnThirdParty,
    Resolved,
    Closed,
}

impl TicketCategory {
    fn of(c: Category) -> Self {
        match c {
            Category::Open => Self::Open,
            Category::WaitingOnCustomer => Self::WaitingOnCustomer,
            Category::WaitingOnThirdParty => Self::WaitingOnThirdParty,
            Category::Resolved => Self::Resolved,
            Category::Closed => Self::Closed,
        }
    }
    fn domain(self) -> Category {
        match self {
            Self::Open => Category::Open,
            Self::WaitingOnCustomer => Category::WaitingOnCustomer,
            Self::WaitingOnThirdParty => Category::WaitingOnThirdParty,
            Self::Resolved => Category::Resolved,
            Self::Closed => Category::Closed,
        }
    }
}

/// One custom field of a ticket type.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TicketFieldInput")]
pub struct TicketField {
    /// `[a-z0-9_]`, 1–40 characters.
    pub key: String,
    pub label: String,
    pub kind: TicketFieldKind,
    #[graphql(default)]
    pub required: bool,
    /// The values of a `CHOICE` field.
    #[graphql(default)]
    pub choices: Vec<String>,
    /// The customer attribute a `CUSTOMER_ATTRIBUTE` field copies.
    pub attribute: Option<String>,
}

/// One status of a ticket type's workflow.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TicketStatusInput")]
pub struct TicketStatus {
    pub key: String,
    pub label: String,
    pub category: TicketCategory,
}

/// An allowed move between two statuses.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TicketTransitionInput")]
pub struct TicketTransition {
    pub from: String,
    pub to: String,
}

/// What a survey question takes.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SurveyQuestionKind {
    /// 1 (very dissatisfied) to 5 (very satisfied); the first is the CSAT score.
    Rating,
    /// Free text, at most 1,000 characters.
    Text,
    /// One of the question's choices.
    Choice,
}

/// One question of a type's satisfaction survey.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TicketSurveyQuestionInput")]
pub struct TicketSurveyQuestion {
    pub key: String,
    pub label: String,
    pub kind: SurveyQuestionKind,
    #[graphql(default)]
    pub choices: Vec<String>,
    #[graphql(default)]
    pub required: bool,
}

fn questions_of(s: shoal_tickets::types::Survey) -> Vec<TicketSurveyQuestion> {
    use shoal_tickets::types::QuestionKind as K;
    s.questions
        .into_iter()
        .map(|q| TicketSurveyQuestion {
            key: q.key,
            label: q.label,
            kind: match q.kind {
                K::Rating => SurveyQuestionKind::Rating,
                K::Text => SurveyQuestionKind::Text,
                K::Choice => SurveyQuestionKind::Choice,
            },
            choices: q.choices,
            required: q.required,
        })
        .collect()
}

fn survey_of(
    list: Vec<TicketSurveyQuestion>,
    channel: Option<String>,
    message: Option<String>,
) -> shoal_tickets::types::Survey {
    use shoal_tickets::types::QuestionKind as K;
    shoal_tickets::types::Survey {
        channel,
        message,
        questions: list
            .into_iter()
            .map(|q| shoal_tickets::types::Question {
                key: q.key,
                label: q.label,
                kind: match q.kind {
                    SurveyQuestionKind::Rating => K::Rating,
                    SurveyQuestionKind::Text => K::Text,
                    SurveyQuestionKind::Choice => K::Choice,
                },
                choices: q.choices,
                required: q.required,
            })
            .collect(),
    }
}

/// A ticket type: its fields and workflow.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketType {
    pub key: String,
    pub name: String,
    pub fields: Vec<TicketField>,
    /// The first is where tickets start.
    pub statuses: Vec<TicketStatus>,
    /// Empty: any status may follow any other.
    pub transitions: Vec<TicketTransition>,
    /// The satisfaction survey sent when a ticket is resolved (null: none).
    pub survey: Option<Vec<TicketSurveyQuestion>>,
    /// The channel the survey's link goes out on (null: webhooks only).
    pub survey_channel: Option<String>,
    /// The survey message's text (`{{survey.url}}` is the link).
    pub survey_message: Option<String>,
    /// The module template it was made from (`instantiateTicketTemplate`), if any.
    pub template: Option<TicketTypeOrigin>,
}

/// Which module template a ticket type was made from.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketTypeOrigin {
    pub module: String,
    pub template: String,
    /// Whether the module proposes field values for its tickets (`ticketProposal`).
    pub proposes: bool,
}

fn status_of(s: &StatusDef) -> TicketStatus {
    TicketStatus {
        key: s.key.clone(),
        label: s.label.clone(),
        category: TicketCategory::of(s.category),
    }
}

impl From<TypeDomain> for TicketType {
    fn from(t: TypeDomain) -> Self {
        TicketType {
            key: t.key,
            name: t.name,
            fields: t
                .fields
                .into_iter()
                .map(|f| TicketField {
                    key: f.key,
                    label: f.label,
                    kind: TicketFieldKind::of(f.kind),
                    required: f.required,
                    choices: f.choices,
                    attribute: f.attribute,
                })
                .collect(),
            survey_channel: t.survey.as_ref().and_then(|s| s.channel.clone()),
            survey_message: t.survey.as_ref().and_then(|s| s.message.clone()),
            survey: t.survey.clone().map(questions_of),
            template: t.template.map(|o| TicketTypeOrigin {
                module: o.module,
                template: o.template,
                proposes: o.proposes,
            }),
            statuses: t.statuses.iter().map(status_of).collect(),
            transitions: t
                .transitions
                .into_iter()
                .map(|t| TicketTransition {
                    from: t.from,
                    to: t.to,
                })
                .collect(),
        }
    }
}

/// A ticket type to save (a new one, or a new version).
#[derive(InputObject, Debug)]
pub struct TicketTypeInput {
    pub key: String,
    pub name: String,
    #[graphql(default)]
    pub fields: Vec<TicketField>,
    /// When left out: 新建 (new) → 处理中 (in_progress) → 待客户回复 / 待第三方 → 已解决
    /// (resolved) → 已关闭 (closed).
    pub statuses: Option<Vec<TicketStatus>>,
    #[graphql(default)]
    pub transitions: Vec<TicketTransition>,
    /// A satisfaction survey sent when a ticket is resolved (1–10 questions, at least one
    /// `RATING`).
    pub survey: Option<Vec<TicketSurveyQuestion>>,
    /// The channel the survey's link goes out on to the customer (`sms`, `wecom`, `email`,
    /// …: a service message through the contact policy and the outbox); left out, the
    /// `ticket.survey_ready` change alone tells integrations.
    pub survey_channel: Option<String>,
    /// The message's text, `{{survey.url}}` being the link and `{{customer.name}}` etc. as
    /// in SOP messages (default: `{{customer.name}}，您的工单已处理完毕，请为本次服务评分：{{survey.url}}`).
    pub survey_message: Option<String>,
}

impl TicketTypeInput {
    fn domain(self) -> TypeDomain {
        TypeDomain {
            survey: match (self.survey, &self.survey_channel, &self.survey_message) {
                (None, None, None) => None,
                // a channel or message without questions: checked (and refused) as a survey
                (list, channel, message) => Some(survey_of(
                    list.unwrap_or_default(),
                    channel.clone(),
                    message.clone(),
                )),
            },
            // kept from the stored type by `save_type`
            template: None,
            key: self.key,
            name: self.name,
            fields: self
                .fields
                .into_iter()
                .map(|f| FieldDef {
                    key: f.key,
                    label: f.label,
                    kind: f.kind.domain(),
                    required: f.required,
                    choices: f.choices,
                    attribute: f.attribute,
                })
                .collect(),
            statuses: match self.statuses {
                None => TypeDomain::standard_statuses(),
                Some(list) => list
                    .into_iter()
                    .map(|s| StatusDef {
                        key: s.key,
                        label: s.label,
                        category: s.category.domain(),
                    })
                    .collect(),
            },
            transitions: self
                .transitions
                .into_iter()
                .map(|t| Transition {
                    from: t.from,
                    to: t.to,
                })
                .collect(),
        }
    }
}

/// A ticket (工单).
#[derive(Clone, Debug)]
pub struct Ticket(pub(crate) Domain);

impl From<Domain> for Ticket {
    fn from(t: Domain) -> Self {
        Ticket(t)
    }
}

/// Which target an SLA clock measures.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlaTarget {
    /// The first public reply.
    FirstResponse,
    /// The next public reply after a customer's message (`addCustomerMessage`).
    NextResponse,
    /// Resolved (paused while waiting on the customer or a third party).
    Resolution,
}

/// Where an SLA clock stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlaState {
    Met,
    OnTrack,
    /// Past the policy's warning share (80 % by default).
    AtRisk,
    Breached,
    /// The ticket waits on the customer or a third party.
    Paused,
}

/// One SLA clock of a ticket, computed on the tenant's business calendar.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaClock {
    pub policy: String,
    pub target: SlaTarget,
    pub state: SlaState,
    /// When the target falls due (null while paused).
    pub due_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    /// Business time the clock has run.
    pub elapsed_seconds: i64,
    pub target_seconds: i64,
}

impl From<sla::Clock> for SlaClock {
    fn from(c: sla::Clock) -> Self {
        SlaClock {
            policy: c.policy,
            target: SlaTarget::of(c.target),
            state: match c.state {
                sla::State::Met => SlaState::Met,
                sla::State::OnTrack => SlaState::OnTrack,
                sla::State::AtRisk => SlaState::AtRisk,
                sla::State::Breached => SlaState::Breached,
                sla::State::Paused => SlaState::Paused,
            },
            due_at: c.due_at,
            done_at: c.done_at,
            elapsed_seconds: c.elapsed_seconds,
            target_seconds: c.target_seconds,
        }
    }
}

impl SlaTarget {
    pub(crate) fn of(t: sla::Target) -> Self {
        match t {
            sla::Target::FirstResponse => Self::FirstResponse,
            sla::Target::NextResponse => Self::NextResponse,
            sla::Target::Resolution => Self::Resolution,
        }
    }
    fn domain(self) -> sla::Target {
        match self {
            Self::FirstResponse => sla::Target::FirstResponse,
            Self::NextResponse => sla::Target::NextResponse,
            Self::Resolution => sla::Target::Resolution,
        }
    }
}

/// When an escalation fires.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlaStage {
    /// The clock passed the policy's `warnAtPercent` of its target.
    AtRisk,
    /// The clock passed its target.
    Breached,
}

/// What a policy does when a ticket's clock gets to a stage (once per ticket): emit the
/// `ticket.sla_at_risk` / `ticket.sla_breached` change (notification rules and webhooks
/// deliver it), raise the priority, transfer the ticket, add watchers.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "SlaEscalationInput")]
pub struct SlaEscalation {
    pub when: SlaStage,
    /// The clock it watches; both when null.
    pub target: Option<SlaTarget>,
    #[graphql(default = true)]
    pub notify: bool,
    pub raise_priority_to: Option<i64>,
    /// A queue key.
    pub transfer_to: Option<String>,
    #[graphql(default)]
    pub add_watchers: Vec<String>,
}

impl SlaStage {
    fn domain(self) -> sla::Stage {
        match self {
            SlaStage::AtRisk => sla::Stage::AtRisk,
            SlaStage::Breached => sla::Stage::Breached,
        }
    }
}

impl From<sla::Escalation> for SlaEscalation {
    fn from(e: sla::Escalation) -> Self {
        SlaEscalation {
            when: match e.when {
                sla::Stage::AtRisk => SlaStage::AtRisk,
                sla::Stage::Breached => SlaStage::Breached,
            },
            target: e.target.map(SlaTarget::of),
            notify: e.notify,
            raise_priority_to: e.raise_priority_to,
            transfer_to: e.transfer_to,
            add_watchers: e.add_watchers,
        }
    }
}

impl SlaEscalation {
    fn domain(self) -> sla::Escalation {
        sla::Escalation {
            when: self.when.domain(),
            target: self.target.map(SlaTarget::domain),
            notify: self.notify,
            raise_priority_to: self.raise_priority_to,
            transfer_to: self.transfer_to,
            add_watchers: self.add_watchers,
        }
    }
}

/// An SLA policy: targets in business minutes for the tickets it applies to (first match
/// wins).
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "SlaPolicyInput")]
pub struct SlaPolicy {
    pub name: String,
    /// Ticket types (any when empty).
    #[graphql(default)]
    pub types: Vec<String>,
    /// Priorities 1–4 (any when empty).
    #[graphql(default)]
    pub priorities: Vec<i64>,
    /// The customers (a tier) it applies to, as a rule-language condition: `has_tag("VIP")`,
    /// `attr.会员等级 == "金卡"`. Read when a ticket opens, and again for open tickets when
    /// the policies are saved.
    pub customer: Option<String>,
    pub first_response_minutes: Option<u32>,
    /// Business minutes from a customer's message (after the first response) to the next
    /// public reply.
    pub next_response_minutes: Option<u32>,
    pub resolution_minutes: Option<u32>,
    /// The share of a target (percent) past which a clock is at risk.
    #[graphql(default = 80)]
    pub warn_at_percent: u8,
    /// What happens at risk and on breach.
    #[graphql(default)]
    pub escalations: Vec<SlaEscalation>,
}

impl From<sla::Policy> for SlaPolicy {
    fn from(p: sla::Policy) -> Self {
        SlaPolicy {
            name: p.name,
            types: p.types,
            priorities: p.priorities,
            customer: p.customer,
            first_response_minutes: p.first_response_minutes,
            next_response_minutes: p.next_response_minutes,
            resolution_minutes: p.resolution_minutes,
            warn_at_percent: p.warn_at_percent,
            escalations: p.escalations.into_iter().map(SlaEscalation::from).collect(),
        }
    }
}

impl SlaPolicy {
    fn domain(self) -> sla::Policy {
        sla::Policy {
            name: self.name,
            types: self.types,
            priorities: self.priorities,
            customer: self.customer,
            first_response_minutes: self.first_response_minutes,
            next_response_minutes: self.next_response_minutes,
            resolution_minutes: self.resolution_minutes,
            warn_at_percent: self.warn_at_percent,
            escalations: self
                .escalations
                .into_iter()
                .map(SlaEscalation::domain)
                .collect(),
        }
    }
}

/// A skill and its level (1–5).
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "SkillInput")]
pub struct Skill {
    pub name: String,
    pub level: u8,
}

/// A file attached by reference: where it is kept (the host fetches nothing).
#[derive(InputObject, Debug)]
pub struct AttachmentInput {
    pub name: String,
    /// An `https://` link to the file.
    pub url: String,
    pub content_type: Option<String>,
    pub size: Option<u64>,
}

/// A ticket's satisfaction survey.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketSurvey {
    /// The customer's link is `path` on this host; the token is its capability (shown to
    /// those who may relay answers, permission `configure`; null for others).
    pub token: Option<String>,
    pub path: Option<String>,
    pub questions: Vec<TicketSurveyQuestion>,
    pub sent_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answers: Option<Json<Map<String, Value>>>,
    /// The first rating question's answer (1–5).
    pub rating: Option<i64>,
}

impl TicketSurvey {
    fn of(tenant: &str, s: shoal_tickets::surveys::Sent, relays: bool) -> Self {
        TicketSurvey {
            path: relays.then(|| shoal_tickets::surveys::path(tenant, &s.token)),
            token: relays.then_some(s.token),
            questions: questions_of(s.survey),
            sent_at: s.sent_at,
            answered_at: s.answered_at,
            answers: s.answers.map(Json),
            rating: s.rating,
        }
    }
}

/// Satisfaction over surveys sent in a period.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketCsat {
    pub sent: i64,
    pub answered: i64,
    /// Mean rating (1–5), two decimals; null without answers.
    pub average: Option<rust_decimal::Decimal>,
    /// How many rated 1, 2, 3, 4 and 5.
    pub distribution: Vec<i64>,
    /// Share (percent) rating 4 or 5: the CSAT score.
    pub satisfied_percent: Option<rust_decimal::Decimal>,
}

/// One entry of a ticket's history.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketEntry {
    pub id: ID,
    /// The ticket it belongs to: this one, or one merged into it.
    pub ticket_id: ID,
    /// `opened`, `reply`, `note`, `status`, `fields`, `assigned`, `routed`, `waiting`,
    /// `queue`, `priority`, `escalated`, `merged`, `absorbed`, `unmerged`.
    pub kind: String,
    pub author: String,
    /// A public reply the customer sees, or internal (notes and changes).
    pub public: bool,
    pub body: Option<String>,
    /// What changed: `{"from": …, "to": …}` per status or field.
    pub detail: Option<Json<Value>>,
    pub created_at: DateTime<Utc>,
}

impl From<Entry> for TicketEntry {
    fn from(e: Entry) -> Self {
        TicketEntry {
            id: ID(e.id),
            ticket_id: ID(e.ticket_id),
            kind: e.kind,
            author: e.author,
            public: e.public,
            body: e.body,
            detail: e.detail.map(Json),
            created_at: e.created_at,
        }
    }
}

#[Object]
impl Ticket {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The ticket type's key.
    #[graphql(name = "type")]
    async fn type_key(&self) -> &str {
        &self.0.type_key
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The status's key in its type's workflow.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn category(&self) -> TicketCategory {
        TicketCategory::of(self.0.category)
    }
    /// 1 (P1, most urgent) to 4.
    async fn priority(&self) -> i64 {
        self.0.priority
    }
    /// `low`, `medium` or `high`.
    async fn impact(&self) -> &str {
        &self.0.impact
    }
    async fn customer_id(&self) -> Option<ID> {
        self.0.customer_id.clone().map(ID)
    }
    /// Where it came from (`api`, `sop`, `webhook`, `wecom`, …).
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    /// The type's custom fields (customer-attribute copies masked as the attribute is for
    /// the reader).
    async fn fields(&self) -> Json<Map<String, Value>> {
        Json(self.0.fields.clone())
    }
    async fn assignee(&self) -> Option<&str> {
        self.0.assignee.as_deref()
    }
    /// Its satisfaction survey, once resolved (if its type has one).
    async fn survey(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<TicketSurvey>> {
        let actor = actor(ctx).gql()?;
        // within reach now (the ticket may have left it with the caller's own change)
        store::get(db(ctx), actor, &self.0.id).await.gql()?;
        let relays = actor.access.can(shoal_base::kinds::Action::Configure);
        Ok(
            shoal_tickets::surveys::of_ticket(db(ctx), actor.tenant_id(), &self.0.id)
                .await
                .gql()?
                .map(|s| TicketSurvey::of(actor.tenant_id(), s, relays)),
        )
    }
    /// The bill of its repair (`settleTicket`; the bill's reference is `ticket:<id>`).
    async fn bill_id(&self) -> Option<ID> {
        // a billing in progress holds a claim, not a bill
        self.0
            .bill_id
            .clone()
            .filter(|b| !b.starts_with("pending:"))
            .map(ID)
    }
    /// The service items and spare parts of its repair.
    async fn repair_lines(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::ticket_repairs::TicketLine>> {
        super::ticket_repairs::lines_of(ctx, &self.0.id).await
    }
    /// The ticket it was merged into (it is closed; its history reads as part of that
    /// one's).
    async fn merged_into(&self) -> Option<ID> {
        self.0.merged_into.clone().map(ID)
    }
    /// Users told of its escalations.
    async fn watchers(&self) -> &[String] {
        &self.0.watchers
    }
    /// The queue (team) routing or a transfer put it in.
    async fn queue(&self) -> Option<&str> {
        self.0.queue.as_deref()
    }
    /// Skills the agent must hold, from the routing rule.
    async fn required_skills(&self) -> Vec<Skill> {
        self.0
            .skills
            .iter()
            .map(|(name, level)| Skill {
                name: name.clone(),
                level: *level,
            })
            .collect()
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The first public reply by staff.
    async fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_response_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// The statuses the workflow lets it move to now.
    async fn next_statuses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketStatus>> {
        let actor = actor(ctx).gql()?;
        let ty = store::type_of(db(ctx), actor.tenant_id(), &self.0.type_key, "type")
            .await
            .gql()?;
        Ok(ty.next(&self.0.status).into_iter().map(status_of).collect())
    }
    /// Its SLA clocks now (none when no policy applies).
    async fn sla(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SlaClock>> {
        let actor = actor(ctx).gql()?;
        Ok(store::clocks_of(db(ctx), actor, &self.0.id)
            .await
            .gql()?
            .into_iter()
            .map(SlaClock::from)
            .collect())
    }
    /// Its history, oldest first: replies, internal notes and changes.
    async fn entries(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEntry>> {
        let actor = actor(ctx).gql()?;
        Ok(store::entries(db(ctx), actor, &self.0.id, false)
            .await
            .gql()?
            .into_iter()
            .map(TicketEntry::from)
            .collect())
    }
}

super::page::connection!(TicketConnection, TicketEdge, Ticket, Domain);

/// What a list of tickets is narrowed to.
#[derive(InputObject, Default, Debug)]
pub struct TicketFilterInput {
    #[graphql(name = "type")]
    pub type_key: Option<String>,
    pub status: Option<String>,
    /// Any of these categories (e.g. `[OPEN, WAITING_ON_CUSTOMER]` for the backlog).
    #[graphql(default)]
    pub categories: Vec<TicketCategory>,
    pub customer_id: Option<ID>,
    pub assignee: Option<String>,
    pub priority: Option<i64>,
    pub queue: Option<String>,
    /// Only tickets waiting in a queue for an agent (`false`: only those not waiting).
    pub waiting: Option<bool>,
    /// Only tickets with a running SLA clock past its deadline (`BREACHED`), or past its
    /// policy's warning share but not yet its deadline (`AT_RISK`).
    pub sla: Option<SlaStage>,
    /// Only tickets whose custom fields hold these values, each exactly: `{"reason": "搬家"}`.
    pub fields: Option<Json<Map<String, Value>>>,
}

/// A ticket to open.
#[derive(InputObject, Debug)]
pub struct TicketInput {
    /// The ticket type's key.
    #[graphql(name = "type")]
    pub type_key: String,
    pub subject: String,
    /// The first message: the customer's words or the agent's description.
    pub body: Option<String>,
    /// 1 (P1, most urgent) to 4; 3 when left out.
    pub priority: Option<i64>,
    /// `low`, `medium` (default) or `high`.
    pub impact: Option<String>,
    pub customer_id: Option<ID>,
    /// Where it came from; `api` when left out.
    pub channel: Option<String>,
    /// Custom field values by key, checked against the type.
    pub fields: Option<Json<Map<String, Value>>>,
    pub assignee: Option<String>,
}

#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// The tenant's ticket types.
    async fn ticket_types(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketType>> {
        let actor = actor(ctx).gql()?;
        Ok(store::types(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(TicketType::from)
            .collect())
    }

    /// The business calendar SLA clocks run on (`time_zone`, `week`, `holidays`,
    /// `working_days`); every hour of every day until one is saved.
    async fn business_calendar(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let actor = actor(ctx).gql()?;
        let c = sla::calendar(db(ctx), actor).await.gql()?;
        Ok(Json(serde_json::to_value(c.spec()).unwrap_or(Value::Null)))
    }

    /// The SLA policies, in order (the first that applies to a ticket is its policy).
    async fn sla_policies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SlaPolicy>> {
        let actor = actor(ctx).gql()?;
        Ok(sla::policies(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(SlaPolicy::from)
            .collect())
    }

    /// Satisfaction (CSAT) over the surveys sent in `[from, to)` for tickets the caller
    /// reaches, of one type when given.
    async fn ticket_csat(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(name = "type")] type_key: Option<String>,
    ) -> async_graphql::Result<TicketCsat> {
        let actor = actor(ctx).gql()?;
        let r = shoal_tickets::surveys::report(db(ctx), actor, from, to, type_key.as_deref())
            .await
            .gql()?;
        Ok(TicketCsat {
            sent: r.sent,
            answered: r.answered,
            average: r.average,
            distribution: r.distribution.to_vec(),
            satisfied_percent: r.satisfied_percent,
        })
    }

    /// A ticket the caller reaches (through its customer, `tickets` scope).
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(store::get(db(ctx), actor, &id).await.gql()?))
    }

    /// Tickets the caller reaches, newest first.
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: TicketFilterInput,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TicketConnection> {
        let actor = actor(ctx).gql()?;
        let page = page(
            ctx,
            actor,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            store::ORDER,
        )?;
        let f = TicketFilter {
            type_key: filter.type_key,
            status: filter.status,
            categories: filter
                .categories
                .into_iter()
                .map(TicketCategory::domain)
                .collect(),
            customer_id: filter.customer_id.map(|i| i.0),
            assignee: filter.assignee,
            priority: filter.priority,
            queue: filter.queue,
            waiting: filter.waiting,
            sla: filter.sla.map(SlaStage::domain),
            fields: filter.fields.map(|j| j.0),
        };
        Ok(TicketConnection::from_paged(
            store::list(db(ctx), actor, &f, &page).await.gql()?,
        ))
    }
}

#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Saves a ticket type (permission `configure`); every problem is named by its path.
    async fn save_ticket_type(
        &self,
        ctx: &Context<'_>,
        input: TicketTypeInput,
    ) -> async_graphql::Result<TicketType> {
        let actor = actor(ctx).gql()?;
        // the survey goes to the customer: a channel SOPs send on that reaches customers
        if let Some(c) = &input.survey_channel
            && (!shoal_sop::definition::CHANNELS.contains(&c.as_str())
                || shoal_sop::definition::staff_facing(c))
        {
            let customer_facing: Vec<&str> = shoal_sop::definition::CHANNELS
                .iter()
                .copied()
                .filter(|c| !shoal_sop::definition::staff_facing(c))
                .collect();
            return Err(shoal_base::error::Error::invalid(
                "input.surveyChannel",
                format!(
                    "`{c}` is not a channel that reaches customers ({})",
                    customer_facing.join(", ")
                ),
            ))
            .gql();
        }
        Ok(store::save_type(db(ctx), actor, &input.domain())
            .await
            .gql()?
            .into())
    }

    /// Saves the business calendar (permission `configure`): `{"time_zone":
    /// "Asia/Shanghai", "week": {"mon": ["09:00-12:00", "13:30-18:00"], …}, "holidays":
    /// ["2026-10-01"], "working_days": [{"date": "2026-10-10", "windows": ["09:00-18:00"]}]}`.
    async fn set_business_calendar(
        &self,
        ctx: &Context<'_>,
        calendar: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let actor = actor(ctx).gql()?;
        let c = sla::set_calendar(db(ctx), actor, calendar.0).await.gql()?;
        Ok(Json(serde_json::to_value(c.spec()).unwrap_or(Value::Null)))
    }

    /// Replaces the SLA policies (permission `configure`).
    async fn set_sla_policies(
        &self,
        ctx: &Context<'_>,
        policies: Vec<SlaPolicy>,
    ) -> async_graphql::Result<Vec<SlaPolicy>> {
        let actor = actor(ctx).gql()?;
        let list = policies.into_iter().map(SlaPolicy::domain).collect();
        Ok(sla::set_policies(db(ctx), actor, list)
            .await
            .gql()?
            .into_iter()
            .map(SlaPolicy::from)
            .collect())
    }

    /// Opens a ticket (permission `create`; its customer within the caller's reach).
    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: TicketInput,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        let n = NewTicket {
            type_key: input.type_key,
            subject: input.subject,
            body: input.body,
            priority: input.priority,
            impact: input.impact,
            customer_id: input.customer_id.map(|i| i.0),
            channel: input.channel,
            fields: input.fields.map(|j| j.0).unwrap_or_default(),
            assignee: input.assignee,
            source_key: None,
        };
        Ok(Ticket(store::open(db(ctx), actor, n).await.gql()?))
    }

    /// Moves a ticket to another status of its workflow, with an optional internal note.
    async fn move_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: String,
        note: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            store::transition(db(ctx), actor, &id, &to, note.as_deref())
                .await
                .gql()?,
        ))
    }

    /// Assigns a ticket to a user of the tenant, or to nobody when `assignee` is null.
    async fn assign_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        assignee: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            store::assign(db(ctx), actor, &id, assignee.as_deref())
                .await
                .gql()?,
        ))
    }

    /// Changes a ticket's priority (1, most urgent, to 4), with an optional internal note.
    async fn set_ticket_priority(
        &self,
        ctx: &Context<'_>,
        id: ID,
        priority: i64,
        note: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            store::set_priority(db(ctx), actor, &id, priority, note.as_deref())
                .await
                .gql()?,
        ))
    }

    /// A public reply (the customer sees it) or, with `public: false`, an internal note;
    /// `attachments` are files kept elsewhere, by reference (at most 20).
    async fn comment_on_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        body: String,
        #[graphql(default = true)] public: bool,
        #[graphql(default)] attachments: Vec<AttachmentInput>,
    ) -> async_graphql::Result<TicketEntry> {
        let actor = actor(ctx).gql()?;
        let attachments: Vec<store::Attachment> = attachments
            .into_iter()
            .map(|a| store::Attachment {
                name: a.name,
                url: a.url,
                content_type: a.content_type,
                size: a.size,
            })
            .collect();
        Ok(
            store::comment(db(ctx), actor, &id, &body, public, &attachments)
                .await
                .gql()?
                .into(),
        )
    }

    /// Records a message the customer sent about the ticket (on WeCom, by phone, by mail:
    /// `channel`), as an integration or a staff member passes it on (permission `update`):
    /// a public entry by `customer`. After the first response it starts the next-response
    /// clock, unless a reply is already owed.
    async fn add_customer_message(
        &self,
        ctx: &Context<'_>,
        id: ID,
        body: String,
        channel: Option<String>,
    ) -> async_graphql::Result<TicketEntry> {
        let actor = actor(ctx).gql()?;
        Ok(
            store::customer_message(db(ctx), actor, &id, &body, channel.as_deref())
                .await
                .gql()?
                .into(),
        )
    }

    /// Records a customer's answers to a satisfaction survey, relayed by an integration
    /// (permission `configure`; the customer's own link is `POST /surveys/<tenant>/<token>`).
    /// Once; each answer checked against its question.
    async fn answer_ticket_survey(
        &self,
        ctx: &Context<'_>,
        token: String,
        answers: Json<Map<String, Value>>,
    ) -> async_graphql::Result<TicketSurvey> {
        let actor = actor(ctx).gql()?;
        actor.require(shoal_base::kinds::Action::Configure).gql()?;
        let s = shoal_tickets::surveys::answer(db(ctx), actor, &token, &answers.0)
            .await
            .gql()?;
        Ok(TicketSurvey::of(actor.tenant_id(), s, true))
    }

    /// Merges ticket `from` into ticket `into` (permission `update`): `from` is closed and
    /// its history reads as part of `into`'s. Undone by `unmergeTicket`.
    async fn merge_tickets(
        &self,
        ctx: &Context<'_>,
        into: ID,
        from: ID,
        note: Option<String>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            shoal_tickets::merge::merge(db(ctx), actor, &into, &from, note.as_deref())
                .await
                .gql()?,
        ))
    }

    /// Undoes a merge: the ticket gets back the status it had.
    async fn unmerge_ticket(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            shoal_tickets::merge::unmerge(db(ctx), actor, &id)
                .await
                .gql()?,
        ))
    }

    /// Changes custom field values (`null` clears one that is not required).
    async fn set_ticket_fields(
        &self,
        ctx: &Context<'_>,
        id: ID,
        fields: Json<Map<String, Value>>,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        Ok(Ticket(
            store::set_fields(db(ctx), actor, &id, &fields.0)
                .await
                .gql()?,
        ))
    }
}
