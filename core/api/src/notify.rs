//! Notifications in GraphQL: integrators' webhooks (endpoints, delivery log, redelivery),
//! the staff inbox and notification rules, and the subscriptions `changes` (the change
//! feed, resumable with a cursor) and `notificationAdded` (the caller's inbox).

use std::{collections::VecDeque, sync::Arc, time::Duration};

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Json, Object, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, stream};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{ErrorExt, actor, customers::CustomerNode, db, page::page};
use shoal_base::{error::Error, kinds::Resource, pagination::PageArgs, storage::Db};
use shoal_crm::{access::Access, customers, tenancy::Actor};
use shoal_notify::{
    bus::Bus,
    event_types,
    feed::{self, Change, Read},
    hooks,
    staff::{self, Channel, Priority, Recipients, RuleInput},
};

/// Whether this host sends e-mail notifications (`notify.smtp_url` is set).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmailChannel(pub bool);

/// An event type of the change feed and what it means.
#[derive(SimpleObject, Debug)]
pub struct EventTypeInfo {
    pub name: String,
    pub description: String,
}

/// A webhook endpoint of an integrator.
pub struct Webhook(hooks::Endpoint);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Event types it receives; empty: every type.
    async fn event_types(&self) -> &[String] {
        &self.0.event_types
    }
    /// A rule on the customer; only changes of customers it holds for are sent.
    async fn filter(&self) -> Option<&str> {
        self.0.filter.as_deref()
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why it was disabled (`410 Gone`, days of failures, an administrator).
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// `whsec_…`: the key (base64 after the prefix) of the `webhook-signature` HMAC.
    async fn secret(&self) -> &str {
        &self.0.secret
    }
    /// Until when the secret before the last rotation still signs, beside this one.
    async fn previous_secret_valid_until(&self) -> Option<DateTime<Utc>> {
        self.0
            .previous_until
            .filter(|u| *u > shoal_base::storage::time::now())
    }
    /// Since when deliveries fail without a success (none when the last one succeeded).
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The delivery log: messages newest first, optionally of one status.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        status: Option<WebhookMessageStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<WebhookMessageConnection> {
        let actor = actor(ctx).gql()?;
        let args = PageArgs {
            first,
            after,
            last: None,
            before: None,
        };
        let page = page(ctx, actor, args, hooks::ORDER)?;
        let status = status.map(WebhookMessageStatus::as_str);
        Ok(WebhookMessageConnection::from_paged(
            hooks::messages(db(ctx), actor, &self.0.id, status, &page)
                .await
                .gql()?,
        ))
    }
}

/// Where a webhook message stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookMessageStatus {
    Pending,
    Delivered,
    Failed,
}

impl WebhookMessageStatus {
    fn as_str(self) -> &'static str {
        match self {
            WebhookMessageStatus::Pending => "pending",
            WebhookMessageStatus::Delivered => "delivered",
            WebhookMessageStatus::Failed => "failed",
        }
    }
}

/// One change sent (or to be sent) to one endpoint.
pub struct WebhookMessage(hooks::Message);

impl From<hooks::Message> for WebhookMessage {
    fn from(m: hooks::Message) -> Self {
        WebhookMessage(m)
    }
}

#[Object]
impl WebhookMessage {
    /// The `webhook-id` header: the same on every attempt and redelivery.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn webhook_id(&self) -> ID {
        ID(self.0.endpoint_id.clone())
    }
    /// The change's cursor on the feed.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The body exactly as signed and sent.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
    async fn status(&self) -> WebhookMessageStatus {
        match self.0.status.as_str() {
            "delivered" => WebhookMessageStatus::Delivered,
            "failed" => WebhookMessageStatus::Failed,
            _ => WebhookMessageStatus::Pending,
        }
    }
    /// Attempts made since it was (re)queued.
    async fn attempts(&self) -> i64 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// Every attempt, oldest first: status, first bytes of the answer, latency.
    async fn delivery_attempts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookAttempt>> {
        let actor = actor(ctx).gql()?;
        Ok(hooks::attempts(db(ctx), actor, &self.0.id)
            .await
            .gql()?
            .into_iter()
            .map(|a| WebhookAttempt {
                attempt: a.attempt,
                at: a.at,
                url: a.url,
                status_code: a.status_code,
                response_head: a.response_head,
                latency_ms: a.latency_ms,
                error: a.error,
            })
            .collect())
    }
}

crate::page::connection!(
    WebhookMessageConnection,
    WebhookMessageEdge,
    WebhookMessage,
    hooks::Message
);

/// One attempt to deliver a webhook message.
#[derive(SimpleObject, Debug)]
pub struct WebhookAttempt {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub url: String,
    /// None when no answer came (connection, TLS, timeout).
    pub status_code: Option<i64>,
    /// The first 256 bytes of the answer's body.
    pub response_head: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(InputObject, Debug)]
pub struct WebhookInput {
    /// `https://…` (or `http://`); never a private or loopback address unless the tenant's
    /// `contact.outbound_allow` names it.
    pub url: String,
    pub description: Option<String>,
    /// Event types to receive (see `webhookEventTypes`); empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    /// A rule on the customer (the rule language); only changes of customers it holds for
    /// are sent.
    pub filter: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(InputObject, Debug)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// A new filter; `""` removes it.
    pub filter: Option<String>,
    /// `true` enables it again (clearing why it was disabled).
    pub enabled: Option<bool>,
}

/// One notification in the caller's inbox.
#[derive(SimpleObject, Debug)]
pub struct Notification {
    pub id: ID,
    /// The rule that made it (`system`: the host's own notices).
    pub rule_id: String,
    /// The change's cursor on the feed.
    pub seq: i64,
    pub event_type: String,
    /// Empty when the change concerns no customer.
    pub customer_id: String,
    pub title: String,
    pub priority: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

impl From<staff::Notification> for Notification {
    fn from(n: staff::Notification) -> Self {
        Notification {
            id: ID(n.id),
            rule_id: n.rule_id,
            seq: n.seq,
            event_type: n.kind,
            customer_id: n.customer_id,
            title: n.title,
            priority: n.priority,
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

crate::page::connection!(
    NotificationConnection,
    NotificationEdge,
    Notification,
    staff::Notification
);

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "NotificationChannel")]
pub enum ChannelValue {
    Inbox,
    WecomRobot,
    DingtalkRobot,
    /// The user's e-mail address, when the host has `notify.smtp_url`.
    Email,
}

impl From<ChannelValue> for Channel {
    fn from(c: ChannelValue) -> Self {
        match c {
            ChannelValue::Inbox => Channel::Inbox,
            ChannelValue::WecomRobot => Channel::WecomRobot,
            ChannelValue::DingtalkRobot => Channel::DingtalkRobot,
            ChannelValue::Email => Channel::Email,
        }
    }
}

impl From<Channel> for ChannelValue {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Inbox => ChannelValue::Inbox,
            Channel::WecomRobot => ChannelValue::WecomRobot,
            Channel::DingtalkRobot => ChannelValue::DingtalkRobot,
            Channel::Email => ChannelValue::Email,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "NotificationPriority")]
pub enum PriorityValue {
    /// At once, through the recipient's quiet hours.
    High,
    /// At once, or when the recipient's quiet hours end.
    Normal,
    /// In the recipient's next digest.
    Low,
}

#[derive(InputObject, SimpleObject, Debug, Clone, Default)]
#[graphql(
    input_name = "NotificationRecipientsInput",
    name = "NotificationRecipients"
)]
pub struct RecipientsValue {
    /// The customer's owner.
    #[graphql(default)]
    pub owner: bool,
    /// A task's or ticket's assignee (task and ticket events).
    #[graphql(default)]
    pub assignee: bool,
    /// The users watching the customer (`watchCustomer`), and a ticket's watchers.
    #[graphql(default)]
    pub watchers: bool,
    #[graphql(default)]
    pub users: Vec<String>,
    #[graphql(default)]
    pub roles: Vec<String>,
    #[graphql(default)]
    pub departments: Vec<String>,
}

#[derive(InputObject, Debug)]
pub struct NotificationRuleInput {
    pub name: String,
    /// Event types it fires on; empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    /// A rule on the customer (e.g. only VIP customers).
    pub condition: Option<String>,
    pub recipients: RecipientsValue,
    pub channels: Vec<ChannelValue>,
    /// The group robot's webhook URL (robot channels).
    pub robot_url: Option<String>,
    /// DingTalk's signing secret (`SEC…`); write-only.
    pub robot_secret: Option<String>,
    #[graphql(default_with = "PriorityValue::Normal")]
    pub priority: PriorityValue,
    /// Low-priority notifications are batched into one message per user every this many
    /// minutes (default 30).
    pub digest_minutes: Option<i64>,
    #[graphql(default = true)]
    pub enabled: bool,
}

/// A notification rule.
#[derive(SimpleObject, Debug)]
pub struct NotificationRule {
    pub id: ID,
    pub name: String,
    pub event_types: Vec<String>,
    pub condition: Option<String>,
    pub recipients: RecipientsValue,
    pub channels: Vec<ChannelValue>,
    pub robot_url: Option<String>,
    /// Whether a DingTalk signing secret is set (it is never shown).
    pub has_robot_secret: bool,
    pub priority: PriorityValue,
    pub digest_minutes: i64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<staff::Rule> for NotificationRule {
    fn from(r: staff::Rule) -> Self {
        NotificationRule {
            id: ID(r.id),
            name: r.name,
            event_types: r.event_types,
            condition: r.condition,
            recipients: RecipientsValue {
                owner: r.recipients.owner,
                assignee: r.recipients.assignee,
                watchers: r.recipients.watchers,
                users: r.recipients.users,
                roles: r.recipients.roles,
                departments: r.recipients.departments,
            },
            channels: r.channels.into_iter().map(Into::into).collect(),
            robot_url: r.robot_url,
            has_robot_secret: r.robot_secret.is_some(),
            priority: match r.priority {
                Priority::High => PriorityValue::High,
                Priority::Normal => PriorityValue::Normal,
                Priority::Low => PriorityValue::Low,
            },
            digest_minutes: r.digest_minutes,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The caller's notification settings.
#[derive(SimpleObject, Debug)]
pub struct NotificationPreferences {
    /// `HH:MM`: normal and low-priority notifications wait until `quietEnd`.
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    /// The caller's own time zone (the tenant's when none).
    pub time_zone: Option<String>,
    /// The id group robots @-mention.
    pub im_user_id: Option<String>,
}

impl From<staff::Prefs> for NotificationPreferences {
    fn from(p: staff::Prefs) -> Self {
        NotificationPreferences {
            quiet_start: p
                .quiet_hours
                .as_ref()
                .map(|q| q.start.format("%H:%M").to_string()),
            quiet_end: p
                .quiet_hours
                .as_ref()
                .map(|q| q.end.format("%H:%M").to_string()),
            time_zone: p.time_zone.map(|t| t.name().to_owned()),
            im_user_id: p.im_user_id,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct NotificationPreferencesInput {
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    pub time_zone: Option<String>,
    pub im_user_id: Option<String>,
}

#[derive(Default)]
pub struct NotifyQuery;

#[Object]
impl NotifyQuery {
    /// The event types webhooks, subscriptions and notification rules can name.
    async fn webhook_event_types(&self) -> Vec<EventTypeInfo> {
        event_types::KINDS
            .iter()
            .map(|(k, d)| EventTypeInfo {
                name: (*k).to_owned(),
                description: (*d).to_owned(),
            })
            .collect()
    }

    /// The tenant's webhook endpoints (administrators).
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        let actor = actor(ctx).gql()?;
        Ok(hooks::list(db(ctx), actor)
            .await
            .gql()?
            .into_iter()
            .map(Webhook)
            .collect())
    }

    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Webhook> {
        let actor = actor(ctx).gql()?;
        Ok(Webhook(hooks::get(db(ctx), actor, &id).await.gql()?))
    }

    /// The caller's notifications, newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] unread_only: bool,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<NotificationConnection> {
        let actor = actor(ctx).gql()?;
        let args = PageArgs {
            first,
            after,
            last: None,
            before: None,
        };
        let page = page(ctx, actor, args, staff::ORDER)?;
        Ok(NotificationConnection::from_paged(
            staff::list(db(ctx), actor, unread_only, &page)
                .await
                .gql()?,
        ))
    }

    async fn unread_notification_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        staff::unread_count(db(ctx), actor).await.gql()
    }

    /// The tenant's notification rules (administrators).
    async fn notification_rules(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<NotificationRule>> {
        let actor = actor(ctx).gql()?;
        Ok(staff::rules(db(ctx), actor)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<NotificationPreferences> {
        let actor = actor(ctx).gql()?;
        Ok(staff::prefs(db(ctx), actor).await.gql()?.into())
    }
}

#[derive(Default)]
pub struct NotifyMutation;

#[Object]
impl NotifyMutation {
    /// Adds a webhook endpoint with a fresh `whsec_` secret (administrators).
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: WebhookInput,
    ) -> async_graphql::Result<Webhook> {
        let actor = actor(ctx).gql()?;
        let new = hooks::NewEndpoint {
            url: input.url,
            description: input.description,
            event_types: input.event_types.unwrap_or_default(),
            filter: input.filter.filter(|f| !f.trim().is_empty()),
            enabled: input.enabled,
        };
        Ok(Webhook(hooks::create(db(ctx), actor, &new).await.gql()?))
    }

    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookPatch,
    ) -> async_graphql::Result<Webhook> {
        let actor = actor(ctx).gql()?;
        let patch = hooks::EndpointPatch {
            url: input.url,
            description: input.description,
            event_types: input.event_types,
            filter: input
                .filter
                .map(|f| Some(f).filter(|f| !f.trim().is_empty())),
            enabled: input.enabled,
        };
        Ok(Webhook(
            hooks::update(db(ctx), actor, &id, &patch).await.gql()?,
        ))
    }

    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        hooks::delete(db(ctx), actor, &id).await.gql()?;
        Ok(true)
    }

    /// A new secret; for 24 hours messages carry a signature with the old one too.
    async fn rotate_webhook_signing_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Webhook> {
        let actor = actor(ctx).gql()?;
        Ok(Webhook(
            hooks::rotate_secret(db(ctx), actor, &id).await.gql()?,
        ))
    }

    /// Sends one message again now (same `webhook-id`).
    async fn redeliver_webhook_message(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookMessage> {
        let actor = actor(ctx).gql()?;
        Ok(hooks::redeliver(db(ctx), actor, &id).await.gql()?.into())
    }

    /// Sends again every failed message of an endpoint created since `since`; answers how
    /// many.
    async fn redeliver_failed_webhook_messages(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        since: DateTime<Utc>,
    ) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        Ok(hooks::redeliver_failed(db(ctx), actor, &webhook_id, since)
            .await
            .gql()? as i64)
    }

    /// Marks the caller's notifications read (`ids`, or all of them); answers how many.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        let ids: Option<Vec<String>> = ids.map(|v| v.into_iter().map(|i| i.0).collect());
        Ok(staff::mark_read(db(ctx), actor, ids.as_deref())
            .await
            .gql()? as i64)
    }

    /// Creates a notification rule, or replaces rule `id` (administrators).
    async fn save_notification_rule(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        input: NotificationRuleInput,
    ) -> async_graphql::Result<NotificationRule> {
        let actor = actor(ctx).gql()?;
        let rule = RuleInput {
            name: input.name,
            event_types: input.event_types.unwrap_or_default(),
            condition: input.condition.filter(|c| !c.trim().is_empty()),
            recipients: Recipients {
                owner: input.recipients.owner,
                assignee: input.recipients.assignee,
                watchers: input.recipients.watchers,
                users: input.recipients.users,
                roles: input.recipients.roles,
                departments: input.recipients.departments,
            },
            channels: input.channels.into_iter().map(Into::into).collect(),
            robot_url: input.robot_url,
            robot_secret: input.robot_secret,
            priority: match input.priority {
                PriorityValue::High => Priority::High,
                PriorityValue::Normal => Priority::Normal,
                PriorityValue::Low => Priority::Low,
            },
            digest_minutes: input.digest_minutes,
            enabled: input.enabled,
        };
        let email = ctx.data_opt::<EmailChannel>().is_some_and(|e| e.0);
        Ok(staff::save_rule(
            db(ctx),
            actor,
            id.as_ref().map(|i| i.0.as_str()),
            &rule,
            email,
        )
        .await
        .gql()?
        .into())
    }

    async fn delete_notification_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        staff::delete_rule(db(ctx), actor, &id).await.gql()?;
        Ok(true)
    }

    /// The caller follows a customer they can see: rules naming `watchers` notify them of
    /// its changes. Answers `true`.
    async fn watch_customer(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        staff::watch(db(ctx), actor, &customer_id, true).await.gql()
    }

    /// The caller stops following a customer. Answers `false`.
    async fn unwatch_customer(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        staff::watch(db(ctx), actor, &customer_id, false)
            .await
            .gql()
    }

    /// Replaces the caller's notification settings.
    async fn set_notification_preferences(
        &self,
        ctx: &Context<'_>,
        input: NotificationPreferencesInput,
    ) -> async_graphql::Result<NotificationPreferences> {
        let actor = actor(ctx).gql()?;
        let quiet = match (input.quiet_start, input.quiet_end) {
            (Some(s), Some(e)) => Some((s, e)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "input.quietEnd",
                    "give both quietStart and quietEnd",
                ))
                .gql();
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "input.quietStart",
                    "give both quietStart and quietEnd",
                ))
                .gql();
            }
        };
        Ok(
            staff::set_prefs(db(ctx), actor, quiet, input.time_zone, input.im_user_id)
                .await
                .gql()?
                .into(),
        )
    }
}

/// One change pushed to a `changes` subscriber.
pub struct ChangeNode {
    change: Change,
    customer: Option<CustomerNode>,
}

#[Object(name = "Change")]
impl ChangeNode {
    /// Resume after this item: `changes(after: cursor)`.
    async fn cursor(&self) -> String {
        self.change.seq.to_string()
    }
    async fn seq(&self) -> i64 {
        self.change.seq
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.change.kind
    }
    /// Empty when the change concerns no customer (a bill without one).
    async fn customer_id(&self) -> &str {
        &self.change.customer_id
    }
    async fn at(&self) -> DateTime<Utc> {
        self.change.at
    }
    /// Ids and names of what changed (as in the webhook payload's `data`).
    async fn data(&self) -> Json<Value> {
        Json(self.change.payload.clone())
    }
    /// The customer now, as the subscriber may see it (masked by their current
    /// permissions); none once deleted.
    async fn customer(&self) -> Option<&CustomerNode> {
        self.customer.as_ref()
    }
}

/// How many changes a subscriber reads from the feed at once.
const READ_BATCH: i64 = 100;
/// A subscriber looks at the feed this often even when nothing woke it.
const LOOK_EVERY: Duration = Duration::from_secs(2);

fn gap(oldest: i64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "GAP: changes after your cursor were pruned; the oldest kept is {oldest} (resume from {} after reloading what you hold)",
        oldest - 1
    ))
    .extend_with(|_, e| {
        e.set("code", "GAP");
        e.set("oldest", oldest);
    })
}

/// The subscriber's permissions as they are now (roles or departments may have changed
/// since the connection opened).
async fn current(db: &Db, actor: &Actor) -> Option<Actor> {
    let sensitive = actor.access.sensitive_fields().into_iter().collect();
    let access = Access::load(db, actor.tenant_id(), &actor.user_id, sensitive)
        .await
        .ok()?;
    Some(Actor {
        access: Arc::new(access),
        ..actor.clone()
    })
}

/// Whether the subscriber may see the change (see [`feed::reaches`]), and the customer as
/// they may see it.
async fn visible(db: &Db, actor: &Actor, c: &Change) -> Option<Option<CustomerNode>> {
    if !feed::reaches(&actor.access, db, c).await {
        return None;
    }
    if c.customer_id.is_empty() || c.kind == "customer.deleted" {
        return Some(None);
    }
    let customer = if event_types::resource_of(&c.kind) == Resource::Customers {
        // the scope was just checked
        customers::get(db, actor.tenant_id(), &c.customer_id).await
    } else {
        customers::get_visible(db, actor, &c.customer_id).await
    };
    Some(
        customer
            .ok()
            .map(|cu| CustomerNode::new(cu, None, &actor.access)),
    )
}

/// Waits until this host hears that `tenant`'s feed grew past `after`, or [`LOOK_EVERY`]
/// passed (a missed or coalesced wake-up only delays: the reader looks at the rows anyway).
async fn woken(
    rx: &mut tokio::sync::broadcast::Receiver<shoal_notify::bus::Wake>,
    tenant: &str,
    after: i64,
) {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(w) if *w.tenant == *tenant && w.seq > after => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => {
                    tokio::time::sleep(LOOK_EVERY).await;
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LOOK_EVERY, wait).await;
}

struct Follow {
    db: Db,
    actor: Actor,
    rx: tokio::sync::broadcast::Receiver<shoal_notify::bus::Wake>,
    last: i64,
    pending: VecDeque<Change>,
    types: Vec<String>,
    customer: Option<String>,
    done: bool,
}

impl Follow {
    /// The next change the subscriber may see, or the end of the stream.
    async fn next(&mut self) -> Option<async_graphql::Result<ChangeNode>> {
        if self.done {
            return None;
        }
        loop {
            while let Some(c) = self.pending.pop_front() {
                let wanted = event_types::any_matches(&self.types, &c.kind, &c.payload)
                    && self.customer.as_ref().is_none_or(|id| *id == c.customer_id);
                if !wanted {
                    continue;
                }
                if let Some(customer) = visible(&self.db, &self.actor, &c).await {
                    return Some(Ok(ChangeNode {
                        change: c,
                        customer,
                    }));
                }
            }
            match feed::read(&self.db, self.actor.tenant_id(), self.last, READ_BATCH).await {
                Ok(Read::Gap { oldest }) => {
                    self.done = true;
                    return Some(Err(gap(oldest)));
                }
                Ok(Read::Changes(changes)) if !changes.is_empty() => {
                    self.last = changes.last().map_or(self.last, |c| c.seq);
                    // permissions as they are now, for this batch
                    match current(&self.db, &self.actor).await {
                        Some(a) => self.actor = a,
                        None => {
                            self.done = true;
                            return Some(Err(async_graphql::Error::new(
                                "FORBIDDEN: the subscriber's permissions cannot be loaded",
                            )));
                        }
                    }
                    self.pending.extend(changes);
                    continue;
                }
                Ok(Read::Changes(_)) => {}
                Err(e) => tracing::warn!(error = %e, "change feed read failed; retrying"),
            }
            // wait for the feed to grow (any tenant's wake-up, or the timer)
            woken(&mut self.rx, self.actor.tenant_id(), self.last).await;
        }
    }
}

#[derive(Default)]
pub struct NotifySubscription;

#[Subscription]
impl NotifySubscription {
    /// The tenant's changes as they commit, on any host, in order: optionally of some
    /// types or one customer. Each carries a `cursor`; subscribe with `after: <cursor>` to
    /// receive what was missed while away (a `GAP` error when that was pruned, see
    /// `notify.feed_retention_hours`). Without `after`, changes from now on. Every item is
    /// checked against the subscriber's current scope and masking.
    async fn changes(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
        customer_id: Option<ID>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ChangeNode>> + use<>> {
        let actor = actor(ctx).gql()?.clone();
        let db = db(ctx).clone();
        let types = types.unwrap_or_default();
        event_types::check(&types, "types").gql()?;
        let last = match after {
            Some(c) => c
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Error::invalid("after", "not a cursor of `changes`"))
                .gql()?,
            None => feed::head(&db, actor.tenant_id()).await.gql()?,
        };
        let follow = Follow {
            rx: ctx.data_unchecked::<Bus>().subscribe(),
            db,
            actor,
            last,
            pending: VecDeque::new(),
            types,
            customer: customer_id.map(|i| i.0),
            done: false,
        };
        Ok(stream::unfold(follow, |mut f| async move {
            f.next().await.map(|item| (item, f))
        }))
    }

    /// The caller's new notifications, as they arrive.
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Notification> + use<>> {
        let actor = actor(ctx).gql()?.clone();
        let db = db(ctx).clone();
        let rx = ctx.data_unchecked::<Bus>().subscribe();
        // from now on: ids grow with time
        let start = uuid::Uuid::now_v7().to_string();
        let state = (db, actor, rx, start, VecDeque::<staff::Notification>::new());
        Ok(stream::unfold(
            state,
            |(db, actor, mut rx, mut last, mut pending)| async move {
                loop {
                    if let Some(n) = pending.pop_front() {
                        return Some((n.into(), (db, actor, rx, last, pending)));
                    }
                    if let Ok(found) =
                        staff::newer_than(&db, actor.tenant_id(), &actor.user_id, &last, READ_BATCH)
                            .await
                        && let Some(n) = found.last()
                    {
                        last = n.id.clone();
                        pending.extend(found);
                        continue;
                    }
                    // any growth of the tenant's feed may have brought a notification
                    woken(&mut rx, actor.tenant_id(), i64::MIN).await;
                }
            },
        ))
    }
}
