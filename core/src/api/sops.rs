//! SOPs, enrolments and the dry run in GraphQL.

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, Object, OneofObject, SimpleObject,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, db, page::page};
use crate::{
    error::Error,
    events::EventType,
    pagination::PageArgs,
    sop::{
        self,
        definition::{Action, CapPolicy, Definition, EventSpec, Purpose, Reentry, Step, Trigger},
        enrolments::{self, Enrolment, EnrolmentFilter},
        store::Sop,
    },
};

#[derive(InputObject, Debug, Clone)]
pub struct EventSpecInput {
    #[graphql(name = "type")]
    pub event_type: EventType,
    /// Which custom event (required for `CUSTOM`), or a label to match.
    pub name: Option<String>,
}

impl From<EventSpecInput> for EventSpec {
    fn from(e: EventSpecInput) -> Self {
        EventSpec {
            event_type: e.event_type.as_str().to_owned(),
            name: e.name,
        }
    }
}

#[derive(InputObject, Debug, Clone)]
pub struct EventTriggerInput {
    pub event: EventSpecInput,
    /// A rule the customer must satisfy when the event arrives.
    pub condition: Option<String>,
}

#[derive(InputObject, Debug, Clone)]
pub struct DateTriggerInput {
    /// An attribute holding a date (`YYYY-MM-DD…`), e.g. `birthday`, `renewalDate`.
    pub attribute: String,
    /// Days after the date (negative: before it).
    #[graphql(default)]
    pub offset_days: i32,
    /// Match month and day every year (birthdays).
    #[graphql(default)]
    pub annual: bool,
}

/// What enrols a customer (manual enrolment is always possible too).
#[derive(OneofObject, Debug, Clone)]
pub enum SopTriggerInput {
    Event(EventTriggerInput),
    /// A tag (by name) was added.
    TagAdded(String),
    TagRemoved(String),
    /// The customer entered a saved segment (by id).
    SegmentEntered(ID),
    SegmentLeft(ID),
    Date(DateTriggerInput),
    /// No follow-up record for this many hours.
    NoFollowUpHours(u32),
}

impl From<SopTriggerInput> for Trigger {
    fn from(t: SopTriggerInput) -> Self {
        match t {
            SopTriggerInput::Event(e) => Trigger::Event {
                event: e.event.into(),
                condition: e.condition,
            },
            SopTriggerInput::TagAdded(tag) => Trigger::TagAdded { tag },
            SopTriggerInput::TagRemoved(tag) => Trigger::TagRemoved { tag },
            SopTriggerInput::SegmentEntered(id) => Trigger::SegmentEntered { segment_id: id.0 },
            SopTriggerInput::SegmentLeft(id) => Trigger::SegmentLeft { segment_id: id.0 },
            SopTriggerInput::Date(d) => Trigger::Date {
                attribute: d.attribute,
                offset_days: d.offset_days,
                annual: d.annual,
            },
            SopTriggerInput::NoFollowUpHours(hours) => Trigger::NoFollowUp { hours },
        }
    }
}

#[derive(InputObject, Debug, Clone)]
pub struct WaitForEventInput {
    pub event: EventSpecInput,
    pub timeout_seconds: u64,
    /// Step id to continue at on timeout (`end` ends); default: the next step.
    pub on_timeout: Option<String>,
}

#[derive(InputObject, Debug, Clone)]
pub struct BranchInput {
    pub condition: String,
    /// Step id (later than this one) or `end`.
    pub then: String,
    /// Step id or `end`; default: the next step.
    pub otherwise: Option<String>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessagePurpose {
    /// Counts against marketing frequency caps.
    #[default]
    Marketing,
    /// Transactional (reminders of appointments, notices); capped only by `any` caps.
    Service,
}

#[derive(InputObject, Debug, Clone)]
pub struct SendMessageInput {
    /// `log`, `webhook`, `wecom`, `wechat`, `sms` or `email`.
    pub channel: String,
    /// Text with `{{customer.name}}`, `{{customer.attributes.city}}`, … placeholders.
    pub template: String,
    #[graphql(default)]
    pub purpose: MessagePurpose,
}

#[derive(InputObject, Debug, Clone)]
pub struct CreateTaskInput {
    pub title: String,
    /// `owner` (the customer's owner), a user id, or `role:<name>`.
    pub assignee: String,
    #[graphql(default)]
    pub due_in_seconds: u64,
}

#[derive(InputObject, Debug, Clone)]
pub struct CreateTicketInput {
    pub title: String,
    /// `low`, `normal`, `high` or `urgent`.
    #[graphql(default_with = "\"normal\".to_string()")]
    pub priority: String,
}

#[derive(InputObject, Debug, Clone)]
pub struct CallWebhookInput {
    pub url: String,
    /// JSON body template (placeholders allowed); default `{"customerId": …}`.
    pub body: Option<String>,
}

/// What a step does: exactly one of these.
#[derive(OneofObject, Debug, Clone)]
pub enum SopActionInput {
    /// Wait this many seconds after the previous step.
    WaitSeconds(u64),
    /// Wait until the next `HH:MM` in the customer's (else the tenant's) time zone.
    WaitUntilTime(String),
    WaitForEvent(WaitForEventInput),
    Branch(BranchInput),
    SendMessage(SendMessageInput),
    CreateTask(CreateTaskInput),
    /// Add a manual tag (by name).
    AddTag(String),
    RemoveTag(String),
    CreateTicket(CreateTicketInput),
    CallWebhook(CallWebhookInput),
}

#[derive(InputObject, Debug, Clone)]
pub struct SopStepInput {
    /// Unique within the SOP; jumps name it.
    pub id: String,
    /// The step's action runs only if this rule holds when the step is due.
    pub when: Option<String>,
    pub action: SopActionInput,
}

impl From<SopStepInput> for Step {
    fn from(s: SopStepInput) -> Self {
        let action = match s.action {
            SopActionInput::WaitSeconds(seconds) => Action::Wait { seconds },
            SopActionInput::WaitUntilTime(time) => Action::WaitUntilTime { time },
            SopActionInput::WaitForEvent(w) => Action::WaitForEvent {
                event: w.event.into(),
                timeout_seconds: w.timeout_seconds,
                on_timeout: w.on_timeout,
            },
            SopActionInput::Branch(b) => Action::Branch {
                condition: b.condition,
                then: b.then,
                otherwise: b.otherwise,
            },
            SopActionInput::SendMessage(m) => Action::SendMessage {
                channel: m.channel,
                template: m.template,
                purpose: match m.purpose {
                    MessagePurpose::Marketing => Purpose::Marketing,
                    MessagePurpose::Service => Purpose::Service,
                },
            },
            SopActionInput::CreateTask(t) => Action::CreateTask {
                title: t.title,
                assignee: t.assignee,
                due_in_seconds: t.due_in_seconds,
            },
            SopActionInput::AddTag(tag) => Action::AddTag { tag },
            SopActionInput::RemoveTag(tag) => Action::RemoveTag { tag },
            SopActionInput::CreateTicket(t) => Action::CreateTicket {
                title: t.title,
                priority: t.priority,
            },
            SopActionInput::CallWebhook(w) => Action::CallWebhook {
                url: w.url,
                body: w.body,
            },
        };
        Step {
            id: s.id,
            condition: s.when,
            action,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SopReentry {
    /// A customer goes through the SOP once ever.
    Once,
    /// Again after the previous enrolment ended (never two at a time).
    #[default]
    AfterExit,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SopCapPolicy {
    /// A message held back by a cap or a human follow-up goes out when allowed.
    #[default]
    Defer,
    /// It is skipped, with the reason recorded.
    Drop,
}

#[derive(InputObject, Debug, Clone)]
pub struct SopDefinitionInput {
    #[graphql(default)]
    pub triggers: Vec<SopTriggerInput>,
    pub steps: Vec<SopStepInput>,
    /// Events that end an enrolment (checked before every step), e.g. an order.
    #[graphql(default)]
    pub exit_on: Vec<EventSpecInput>,
    /// A rule that ends an enrolment when it holds.
    pub exit_condition: Option<String>,
    #[graphql(default)]
    pub reentry: SopReentry,
    #[graphql(default)]
    pub on_cap: SopCapPolicy,
}

impl From<SopDefinitionInput> for Definition {
    fn from(d: SopDefinitionInput) -> Self {
        Definition {
            triggers: d.triggers.into_iter().map(Into::into).collect(),
            steps: d.steps.into_iter().map(Into::into).collect(),
            exit_on: d.exit_on.into_iter().map(Into::into).collect(),
            exit_condition: d.exit_condition,
            reentry: match d.reentry {
                SopReentry::Once => Reentry::Once,
                SopReentry::AfterExit => Reentry::AfterExit,
            },
            on_cap: match d.on_cap {
                SopCapPolicy::Defer => CapPolicy::Defer,
                SopCapPolicy::Drop => CapPolicy::Drop,
            },
        }
    }
}

#[derive(InputObject, Debug)]
pub struct SopInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    pub definition: SopDefinitionInput,
}

#[derive(InputObject, Debug)]
pub struct SopPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// A new definition becomes a new version; running enrolments keep theirs.
    pub definition: Option<SopDefinitionInput>,
}

#[derive(SimpleObject, Debug)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// A follow-up sequence.
#[derive(SimpleObject)]
#[graphql(complex, name = "Sop")]
pub struct SopValue {
    pub id: ID,
    pub name: String,
    pub description: String,
    /// `draft`, `active`, `paused` or `archived`.
    pub status: String,
    /// The current version (enrolments may run older ones).
    pub version: i64,
    /// `module/template` it was made from.
    pub template: Option<String>,
    /// Triggers, steps, exit conditions, re-entry and cap policy (docs/sop.md).
    pub definition: Json<Value>,
    pub activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Sop> for SopValue {
    fn from(s: Sop) -> Self {
        SopValue {
            id: ID(s.id),
            name: s.name,
            description: s.description,
            status: s.status,
            version: s.version,
            template: s.template,
            definition: Json(serde_json::to_value(&s.definition).unwrap_or_default()),
            activated_at: s.activated_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[ComplexObject]
impl SopValue {
    /// How many enrolments are in each status.
    async fn enrolment_counts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<StatusCount>> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::counts(db(ctx), actor, &self.id)
            .await
            .gql()?
            .into_iter()
            .map(|(status, count)| StatusCount { status, count })
            .collect())
    }
}

/// One line of an enrolment's history.
#[derive(SimpleObject, Debug)]
pub struct StepRunValue {
    pub step_id: String,
    pub step_index: i64,
    pub attempt: i64,
    /// `done`, `skipped`, `deferred`, `dropped`, `failed`, `completed`, `exited`.
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// A customer going through an SOP.
#[derive(SimpleObject)]
#[graphql(complex, name = "Enrolment")]
pub struct EnrolmentValue {
    pub id: ID,
    pub sop_id: ID,
    /// The SOP version it runs.
    pub version: i64,
    pub customer_id: ID,
    /// `active`, `paused`, `parked` (failed too often; see `lastError`), `completed`,
    /// `exited` or `cancelled`.
    pub status: String,
    /// What enrolled the customer.
    pub trigger: String,
    /// Index of the current step.
    pub step_index: i64,
    /// When the enrolment runs next.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The event a waiting step waits for.
    pub waiting_for: Option<String>,
    pub attempt: i64,
    pub last_error: Option<String>,
    pub exit_reason: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Enrolment> for EnrolmentValue {
    fn from(e: Enrolment) -> Self {
        EnrolmentValue {
            id: ID(e.id),
            sop_id: ID(e.sop_id),
            version: e.version,
            customer_id: ID(e.customer_id),
            status: e.status,
            trigger: e.trigger,
            step_index: e.step_index,
            next_run_at: e.next_run_at,
            waiting_for: e.waiting_for,
            attempt: e.attempt,
            last_error: e.last_error,
            exit_reason: e.exit_reason,
            enrolled_at: e.enrolled_at,
            finished_at: e.finished_at,
        }
    }
}

#[ComplexObject]
impl EnrolmentValue {
    /// Every step run, deferral, skip and failure, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<StepRunValue>> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::history(db(ctx), actor.tenant_id(), &self.id)
            .await
            .gql()?
            .into_iter()
            .map(|r| StepRunValue {
                step_id: r.step_id,
                step_index: r.step_index,
                attempt: r.attempt,
                outcome: r.outcome,
                detail: r.detail,
                at: r.at,
            })
            .collect())
    }
}

super::page::connection!(
    EnrolmentConnection,
    EnrolmentEdge,
    EnrolmentValue,
    Enrolment
);

/// One thing a dry run says would happen.
#[derive(SimpleObject, Debug)]
pub struct PlannedStep {
    pub customer_id: ID,
    pub at: DateTime<Utc>,
    pub step_id: String,
    /// `done`, `skipped`, `deferred`, `dropped`, `completed`, `exited`, `failed`, or
    /// `pending` (due after the simulated period).
    pub outcome: String,
    pub detail: String,
}

#[derive(Default)]
pub struct SopQuery;

#[Object]
impl SopQuery {
    async fn sops(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_archived: bool,
    ) -> async_graphql::Result<Vec<SopValue>> {
        let actor = actor(ctx).gql()?;
        Ok(
            sop::store::list(db(ctx), actor.tenant_id(), include_archived)
                .await
                .gql()?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    async fn sop(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::store::get(db(ctx), actor.tenant_id(), &id)
            .await
            .gql()?
            .into())
    }

    /// Enrolments, newest first, of an SOP and/or a customer, in a status.
    #[allow(clippy::too_many_arguments)]
    async fn enrolments(
        &self,
        ctx: &Context<'_>,
        sop_id: Option<ID>,
        customer_id: Option<ID>,
        status: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<EnrolmentConnection> {
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
            enrolments::ORDER,
        )?;
        let filter = EnrolmentFilter {
            sop_id: sop_id.map(|i| i.0),
            customer_id: customer_id.map(|i| i.0),
            status,
        };
        Ok(EnrolmentConnection::from_paged(
            enrolments::list(db(ctx), actor, &filter, &page)
                .await
                .gql()?,
        ))
    }

    async fn enrolment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<EnrolmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::get_visible(db(ctx), actor, &id)
            .await
            .gql()?
            .into())
    }

    /// Dry run: what the SOP (saved, or a definition not saved yet) would do to these
    /// customers (or a segment's, at most 1000) from `from` to `to`, after quiet hours and
    /// caps — without side effects.
    #[allow(clippy::too_many_arguments)]
    async fn simulate_sop(
        &self,
        ctx: &Context<'_>,
        sop_id: Option<ID>,
        definition: Option<SopDefinitionInput>,
        customer_ids: Option<Vec<ID>>,
        segment_id: Option<ID>,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<Vec<PlannedStep>> {
        let actor = actor(ctx).gql()?;
        let tenant = actor.tenant_id();
        let compiled = match (sop_id, definition) {
            (Some(id), None) => {
                let s = sop::store::get(db(ctx), tenant, &id).await.gql()?;
                sop::store::check(db(ctx), tenant, &s.definition, "sopId")
                    .await
                    .gql()?
            }
            (None, Some(d)) => sop::store::check(db(ctx), tenant, &d.into(), "definition")
                .await
                .gql()?,
            _ => {
                return Err(Error::invalid(
                    "sopId",
                    "give `sopId` or `definition`, not both",
                ))
                .gql();
            }
        };
        let ids: Vec<String> = match (customer_ids, segment_id) {
            (Some(ids), None) => ids.into_iter().map(|i| i.0).collect(),
            (None, Some(seg)) => {
                let filter = crate::segments::as_filter(db(ctx), &actor.tenant, &seg)
                    .await
                    .gql()?;
                crate::customers::ids_matching(
                    db(ctx),
                    actor,
                    &filter,
                    sop::simulate::MAX_CUSTOMERS,
                )
                .await
                .gql()?
            }
            _ => {
                return Err(Error::invalid(
                    "customerIds",
                    "give `customerIds` or `segmentId`, not both",
                ))
                .gql();
            }
        };
        let from = from.unwrap_or_else(Utc::now);
        Ok(
            sop::simulate::simulate(db(ctx), &actor.tenant, &compiled, &ids, from, to)
                .await
                .gql()?
                .into_iter()
                .map(|p| PlannedStep {
                    customer_id: ID(p.customer_id),
                    at: p.at,
                    step_id: p.step_id,
                    outcome: p.outcome,
                    detail: p.detail,
                })
                .collect(),
        )
    }
}

#[derive(Default)]
pub struct SopMutation;

#[Object]
impl SopMutation {
    /// Creates an SOP as a draft (activate it to start enrolling).
    async fn create_sop(
        &self,
        ctx: &Context<'_>,
        input: SopInput,
    ) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::store::create(
            db(ctx),
            actor,
            &input.name,
            &input.description,
            &input.definition.into(),
            None,
        )
        .await
        .gql()?
        .into())
    }

    /// Edits an SOP; a changed definition becomes a new version.
    async fn update_sop(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SopPatch,
    ) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        let definition: Option<Definition> = input.definition.map(Into::into);
        Ok(sop::store::update(
            db(ctx),
            actor,
            &id,
            input.name.as_deref(),
            input.description.as_deref(),
            definition.as_ref(),
        )
        .await
        .gql()?
        .into())
    }

    /// Starts enrolling (events from now on) and advancing enrolments.
    async fn activate_sop(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::store::set_status(db(ctx), actor, &id, "active")
            .await
            .gql()?
            .into())
    }

    /// Stops enrolling and advancing; running enrolments wait where they are.
    async fn pause_sop(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::store::set_status(db(ctx), actor, &id, "paused")
            .await
            .gql()?
            .into())
    }

    /// Retires the SOP and cancels its running enrolments.
    async fn archive_sop(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::store::set_status(db(ctx), actor, &id, "archived")
            .await
            .gql()?
            .into())
    }

    /// Creates a draft SOP from an enabled module's template, with parameters
    /// (`params: {coupon: "20元"}`; the others keep their defaults).
    async fn instantiate_sop_template(
        &self,
        ctx: &Context<'_>,
        module: String,
        template: String,
        name: Option<String>,
        params: Option<Json<Value>>,
    ) -> async_graphql::Result<SopValue> {
        let actor = actor(ctx).gql()?;
        let found = super::plugins::enabled_module(ctx, actor, &module)
            .gql()?
            .sop_templates
            .into_iter()
            .find(|t| t.id == template)
            .ok_or_else(|| {
                Error::invalid(
                    "template",
                    format!("module `{module}` has no SOP template `{template}`"),
                )
            })
            .gql()?;
        let given = super::plugins::template_params(params).gql()?;
        let definition = sop::templates::definition_of(&found, &given).gql()?;
        let reference = format!("{module}/{template}");
        Ok(sop::store::create(
            db(ctx),
            actor,
            &name.unwrap_or(found.name),
            &found.description,
            &definition,
            Some(&reference),
        )
        .await
        .gql()?
        .into())
    }

    /// Enrols customers by hand: a list, or a segment's members. Returns how many were
    /// enrolled (customers already running the SOP are left alone).
    async fn enrol_customers(
        &self,
        ctx: &Context<'_>,
        sop_id: ID,
        customer_ids: Option<Vec<ID>>,
        segment_id: Option<ID>,
    ) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        let ids: Vec<String> = match (customer_ids, segment_id) {
            (Some(ids), None) => ids.into_iter().map(|i| i.0).collect(),
            (None, Some(seg)) => {
                actor.require(crate::kinds::Action::BulkMessage).gql()?;
                let filter = crate::segments::as_filter(db(ctx), &actor.tenant, &seg)
                    .await
                    .gql()?;
                crate::customers::ids_matching(db(ctx), actor, &filter, enrolments::MAX_MANUAL)
                    .await
                    .gql()?
            }
            _ => {
                return Err(Error::invalid(
                    "customerIds",
                    "give `customerIds` or `segmentId`, not both",
                ))
                .gql();
            }
        };
        Ok(enrolments::enrol_manually(db(ctx), actor, &sop_id, &ids)
            .await
            .gql()? as i64)
    }

    async fn pause_enrolment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EnrolmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::control(db(ctx), actor, &id, "pause")
            .await
            .gql()?
            .into())
    }

    /// Resumes a paused enrolment, or retries a parked one now.
    async fn resume_enrolment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EnrolmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::control(db(ctx), actor, &id, "resume")
            .await
            .gql()?
            .into())
    }

    async fn cancel_enrolment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EnrolmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(enrolments::control(db(ctx), actor, &id, "cancel")
            .await
            .gql()?
            .into())
    }
}
