//! Front-line work in GraphQL: tasks, follow-up records, handovers, the message outbox and
//! contact opt-outs.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{ErrorExt, actor, db, page::page};
use shoal_base::pagination::PageArgs;
use shoal_sop::{
    follow_ups::{self, FollowUp},
    opt_outs,
    outbox::{self, Message, MessageFilter},
    tasks::{self, NewTask, Task, TaskFilter, TaskPatch},
};

/// Work for a person (or a role) about a customer.
#[derive(SimpleObject)]
#[graphql(name = "Task")]
pub struct TaskValue {
    pub id: ID,
    pub customer_id: ID,
    pub title: String,
    /// A user id, `role:<name>`, or `unassigned` (an SOP task for a customer with no owner).
    pub assignee: String,
    pub due_at: Option<DateTime<Utc>>,
    /// `open`, `done` or `cancelled`.
    pub status: String,
    pub sop_id: Option<ID>,
    pub enrolment_id: Option<ID>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<Task> for TaskValue {
    fn from(t: Task) -> Self {
        TaskValue {
            id: ID(t.id),
            customer_id: ID(t.customer_id),
            title: t.title,
            assignee: t.assignee,
            due_at: t.due_at,
            status: t.status,
            sop_id: t.sop_id.map(ID),
            enrolment_id: t.enrolment_id.map(ID),
            created_by: t.created_by,
            created_at: t.created_at,
            completed_at: t.completed_at,
        }
    }
}

super::page::connection!(TaskConnection, TaskEdge, TaskValue, Task);

/// A note of a call, visit or chat (跟进记录), or a handover.
#[derive(SimpleObject)]
#[graphql(name = "FollowUp")]
pub struct FollowUpValue {
    pub id: ID,
    pub customer_id: ID,
    pub user_id: String,
    /// `call`, `visit`, `chat`, `note` or `handover`.
    pub kind: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

impl From<FollowUp> for FollowUpValue {
    fn from(f: FollowUp) -> Self {
        FollowUpValue {
            id: ID(f.id),
            customer_id: ID(f.customer_id),
            user_id: f.user_id,
            kind: f.kind,
            note: f.note,
            at: f.at,
        }
    }
}

super::page::connection!(FollowUpConnection, FollowUpEdge, FollowUpValue, FollowUp);

/// An automated message (or webhook call) and its delivery.
#[derive(SimpleObject)]
#[graphql(name = "OutboxMessage")]
pub struct MessageValue {
    pub id: ID,
    /// Sent with every delivery attempt (`Idempotency-Key`), so receivers can drop repeats.
    pub idempotency_key: String,
    pub customer_id: ID,
    pub channel: String,
    /// `marketing` or `service`.
    pub purpose: String,
    pub body: String,
    /// The URL of a step's own webhook call.
    pub target: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sop_id: Option<ID>,
    pub enrolment_id: Option<ID>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Message> for MessageValue {
    fn from(m: Message) -> Self {
        MessageValue {
            id: ID(m.id),
            idempotency_key: m.idempotency_key,
            customer_id: ID(m.customer_id),
            channel: m.channel,
            purpose: m.purpose,
            body: m.body,
            target: m.target,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            sop_id: m.sop_id.map(ID),
            enrolment_id: m.enrolment_id.map(ID),
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

super::page::connection!(MessageConnection, MessageEdge, MessageValue, Message);

#[derive(InputObject, Debug, Default)]
pub struct TaskFilterInput {
    pub assignee: Option<String>,
    pub status: Option<String>,
    pub customer_id: Option<ID>,
    pub sop_id: Option<ID>,
    /// Open tasks past their due time.
    #[graphql(default)]
    pub overdue: bool,
}

#[derive(InputObject, Debug, Default)]
pub struct MessageFilterInput {
    pub customer_id: Option<ID>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub sop_id: Option<ID>,
    pub enrolment_id: Option<ID>,
}

#[derive(InputObject, Debug)]
pub struct NewTaskInput {
    pub customer_id: ID,
    pub title: String,
    /// A user id or `role:<name>`; default: the caller.
    pub assignee: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct TaskPatchInput {
    /// `open`, `done` or `cancelled`.
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct FollowUpInput {
    pub customer_id: ID,
    /// `call`, `visit`, `chat` or `note`.
    pub kind: String,
    #[graphql(default)]
    pub note: String,
    /// When it happened; default now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Debug)]
pub struct HandoverResult {
    pub customers: i64,
    /// Open tasks of the previous owners that moved along.
    pub tasks_moved: i64,
}

#[derive(Default)]
pub struct WorkQuery;

#[Object]
impl WorkQuery {
    /// Tasks, newest first.
    #[allow(clippy::too_many_arguments)]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: TaskFilterInput,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TaskConnection> {
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
            tasks::ORDER,
        )?;
        let f = TaskFilter {
            assignee: filter.assignee,
            status: filter.status,
            customer_id: filter.customer_id.map(|i| i.0),
            sop_id: filter.sop_id.map(|i| i.0),
            overdue: filter.overdue,
        };
        Ok(TaskConnection::from_paged(
            tasks::list(db(ctx), actor, &f, &page).await.gql()?,
        ))
    }

    /// Follow-up records, newest first, of a customer and/or by a user.
    #[allow(clippy::too_many_arguments)]
    async fn follow_ups(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        user_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<FollowUpConnection> {
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
            follow_ups::ORDER,
        )?;
        Ok(FollowUpConnection::from_paged(
            follow_ups::list(
                db(ctx),
                actor,
                customer_id.as_ref().map(|i| i.0.as_str()),
                user_id.as_deref(),
                &page,
            )
            .await
            .gql()?,
        ))
    }

    /// Automated messages and webhook calls with their delivery status, newest first.
    async fn outbox_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: MessageFilterInput,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
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
            outbox::ORDER,
        )?;
        let f = MessageFilter {
            customer_id: filter.customer_id.map(|i| i.0),
            status: filter.status,
            channel: filter.channel,
            sop_id: filter.sop_id.map(|i| i.0),
            enrolment_id: filter.enrolment_id.map(|i| i.0),
        };
        Ok(MessageConnection::from_paged(
            outbox::list(db(ctx), actor, &f, &page).await.gql()?,
        ))
    }

    /// The channels a customer opted out of (`*`: all automated messages).
    async fn contact_opt_outs(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> async_graphql::Result<Vec<String>> {
        let actor = actor(ctx).gql()?;
        opt_outs::of_customer(db(ctx), actor, &customer_id)
            .await
            .gql()
    }
}

#[derive(Default)]
pub struct WorkMutation;

#[Object]
impl WorkMutation {
    async fn create_task(
        &self,
        ctx: &Context<'_>,
        input: NewTaskInput,
    ) -> async_graphql::Result<TaskValue> {
        let actor = actor(ctx).gql()?;
        let t = NewTask {
            customer_id: input.customer_id.0,
            title: input.title,
            assignee: input.assignee.unwrap_or_else(|| actor.user_id.clone()),
            due_at: input.due_at,
            ..NewTask::default()
        };
        let customer = actor
            .access
            .scope_customer(
                db(ctx),
                shoal_base::kinds::Resource::Tasks,
                t.customer_id.clone(),
            )
            .await
            .gql()?;
        Ok(tasks::create(db(ctx), actor, &customer, &t)
            .await
            .gql()?
            .into())
    }

    async fn update_task(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: TaskPatchInput,
    ) -> async_graphql::Result<TaskValue> {
        let actor = actor(ctx).gql()?;
        let patch = TaskPatch {
            status: input.status,
            assignee: input.assignee,
            due_at: input.due_at,
        };
        Ok(tasks::update(db(ctx), actor, &id, &patch)
            .await
            .gql()?
            .into())
    }

    /// Logs a call, visit, chat or note with a customer, as the caller.
    async fn record_follow_up(
        &self,
        ctx: &Context<'_>,
        input: FollowUpInput,
    ) -> async_graphql::Result<FollowUpValue> {
        let actor = actor(ctx).gql()?;
        let customer = actor
            .access
            .scope_customer(
                db(ctx),
                shoal_base::kinds::Resource::FollowUps,
                input.customer_id.0.clone(),
            )
            .await
            .gql()?;
        Ok(follow_ups::record(
            db(ctx),
            actor,
            &customer,
            &input.kind,
            &input.note,
            input.at,
        )
        .await
        .gql()?
        .into())
    }

    /// Hands customers over to another user: owner, open tasks and a `handover` record;
    /// every earlier follow-up stays with the customer. All or nothing.
    async fn handover_customers(
        &self,
        ctx: &Context<'_>,
        customer_ids: Vec<ID>,
        to_user_id: String,
        #[graphql(default)] note: String,
    ) -> async_graphql::Result<HandoverResult> {
        let actor = actor(ctx).gql()?;
        let customers = actor
            .access
            .scope_customers(
                db(ctx),
                shoal_base::kinds::Resource::Customers,
                customer_ids.into_iter().map(|i| i.0),
            )
            .await
            .gql()?;
        let done = follow_ups::handover(db(ctx), actor, &customers, &to_user_id, &note)
            .await
            .gql()?;
        Ok(HandoverResult {
            customers: done.customers as i64,
            tasks_moved: done.tasks_moved as i64,
        })
    }

    /// Records (or withdraws, with `optedOut: false`) a customer's opt-out of automated
    /// messages on a channel (`*`: all).
    async fn set_contact_opt_out(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        channel: String,
        opted_out: bool,
    ) -> async_graphql::Result<Vec<String>> {
        let actor = actor(ctx).gql()?;
        let customer = actor
            .access
            .scope_customers(
                db(ctx),
                shoal_base::kinds::Resource::Customers,
                [customer_id.0.clone()],
            )
            .await
            .gql()?;
        opt_outs::set(db(ctx), actor, &customer, &channel, opted_out)
            .await
            .gql()?;
        opt_outs::of_customer(db(ctx), actor, &customer_id)
            .await
            .gql()
    }
}
