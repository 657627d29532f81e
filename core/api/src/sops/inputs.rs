//! The input types of the SOP API and their conversions into SOP definitions.

use async_graphql::{Enum, ID, InputObject, OneofObject};
use shoal_crm::events::EventType;
use shoal_sop::definition::{
    Action, CapPolicy, Definition, EventSpec, Purpose, Reentry, Step, Trigger,
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
    /// The ticket type's key; `general` when left out.
    #[graphql(name = "type")]
    pub ticket_type: Option<String>,
}

/// A time in the triggering event's payload, shifted.
#[derive(InputObject, Debug, Clone)]
pub struct WaitUntilEventTimeInput {
    /// The payload field holding an RFC 3339 time (`classAt`).
    pub field: String,
    /// Minutes to add (negative: before); default 0.
    #[graphql(default)]
    pub offset_minutes: i64,
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
    /// Wait until a time the triggering event carries, shifted (two hours before a class).
    WaitUntilEventTime(WaitUntilEventTimeInput),
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
            SopActionInput::WaitUntilEventTime(w) => Action::WaitUntilEventTime {
                field: w.field,
                offset_minutes: w.offset_minutes,
            },
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
                ticket_type: t.ticket_type,
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
