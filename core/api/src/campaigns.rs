//! Campaigns (群发) in GraphQL: drafts, the preview, the sensitive-word check, submit /
//! approve / reject / cancel, stats and each recipient's result.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, db, sops::StatusCount};
use shoal_base::error::{Error, Problems};
use shoal_campaigns::{
    self as campaigns,
    model::{Audience, Content, Exclusion, Metric, Schedule, Variant},
    store::Draft,
};

/// Where a campaign stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CampaignStatus {
    Draft,
    PendingApproval,
    Rejected,
    Scheduled,
    Running,
    Completed,
    Cancelled,
}

impl CampaignStatus {
    fn of(s: campaigns::Status) -> Self {
        use campaigns::Status as S;
        match s {
            S::Draft => Self::Draft,
            S::PendingApproval => Self::PendingApproval,
            S::Rejected => Self::Rejected,
            S::Scheduled => Self::Scheduled,
            S::Running => Self::Running,
            S::Completed => Self::Completed,
            S::Cancelled => Self::Cancelled,
        }
    }
    fn domain(self) -> campaigns::Status {
        use campaigns::Status as S;
        match self {
            Self::Draft => S::Draft,
            Self::PendingApproval => S::PendingApproval,
            Self::Rejected => S::Rejected,
            Self::Scheduled => S::Scheduled,
            Self::Running => S::Running,
            Self::Completed => S::Completed,
            Self::Cancelled => S::Cancelled,
        }
    }
}

/// Where one recipient stands (never moves backwards).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecipientStatus {
    Queued,
    Deferred,
    Skipped,
    Cancelled,
    Sent,
    Failed,
    Delivered,
    Opened,
    Clicked,
    Converted,
}

impl RecipientStatus {
    fn domain(self) -> campaigns::Recipient {
        use campaigns::Recipient as R;
        match self {
            Self::Queued => R::Queued,
            Self::Deferred => R::Deferred,
            Self::Skipped => R::Skipped,
            Self::Cancelled => R::Cancelled,
            Self::Sent => R::Sent,
            Self::Failed => R::Failed,
            Self::Delivered => R::Delivered,
            Self::Opened => R::Opened,
            Self::Clicked => R::Clicked,
            Self::Converted => R::Converted,
        }
    }
}

/// What an A/B test is decided by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CampaignMetric {
    Delivered,
    Opened,
    Clicked,
    Converted,
}

/// One reason to leave customers out: set exactly one of the fields (`boughtWithinDays`
/// with an optional `boughtProduct`).
#[derive(InputObject, Debug, Clone, Default)]
pub struct ExclusionInput {
    /// Members of this saved segment.
    pub segment: Option<ID>,
    /// Holders of this tag.
    pub tag: Option<String>,
    /// Customers with an order in the last this many days…
    pub bought_within_days: Option<u32>,
    /// …of this product: the order event's name or its payload's `product` (e.g.
    /// `课程包`); any order when absent.
    pub bought_product: Option<String>,
    /// Customers enrolled in this SOP.
    pub in_sop: Option<ID>,
    /// Customers who opted out of the campaign's channel.
    pub opted_out: Option<bool>,
    /// Customers who received any message in the last this many hours.
    pub contacted_within_hours: Option<u32>,
}

/// Who the campaign is for: every part given must hold.
#[derive(InputObject, Debug, Clone, Default)]
pub struct AudienceInput {
    pub segment: Option<ID>,
    pub tags_all: Option<Vec<String>>,
    pub tags_any: Option<Vec<String>>,
    /// A rule of the rule language.
    pub rule: Option<String>,
    /// These customers, by id.
    pub customers: Option<Vec<ID>>,
    pub exclude: Option<Vec<ExclusionInput>>,
}

/// One version of the message.
#[derive(InputObject, Debug, Clone)]
pub struct VariantInput {
    pub key: String,
    /// The text, with `{{customer.name}}`-style placeholders.
    pub template: String,
    /// Holders of this tag get this variant.
    pub tag: Option<String>,
    /// Members of this segment get this variant.
    pub segment: Option<ID>,
    /// The A/B share (percent) of the variants without a tag or segment.
    #[graphql(default)]
    pub weight: u32,
}

/// When the messages go out: nothing for now, `at` for an instant, or `localDate` with
/// `localStart` / `localEnd` (`HH:MM`) for a window in each customer's own time zone.
#[derive(InputObject, Debug, Clone, Default)]
pub struct ScheduleInput {
    pub at: Option<DateTime<Utc>>,
    pub local_date: Option<NaiveDate>,
    pub local_start: Option<String>,
    pub local_end: Option<String>,
}

/// A campaign as written.
#[derive(InputObject, Debug, Clone)]
pub struct CampaignInput {
    pub name: String,
    /// `wecom`, `sms`, `email`, `webhook`, `wechat` or `log`.
    pub channel: String,
    /// `marketing` (default) or `service`.
    #[graphql(default_with = "\"marketing\".to_string()")]
    pub purpose: String,
    pub audience: AudienceInput,
    pub variants: Vec<VariantInput>,
    pub winner_metric: Option<CampaignMetric>,
    pub schedule: Option<ScheduleInput>,
    /// What a frequency cap does to a recipient: `defer` (default) or `drop`.
    #[graphql(default_with = "\"defer\".to_string()")]
    pub on_cap: String,
    /// Hours after sending during which an order counts as a conversion.
    #[graphql(default = 72)]
    pub attribution_hours: i64,
}

fn exclusion(e: ExclusionInput, at: &str, p: &mut Problems) -> Option<Exclusion> {
    let mut found = Vec::new();
    if let Some(s) = e.segment {
        found.push(Exclusion::Segment { segment: s.0 });
    }
    if let Some(tag) = e.tag {
        found.push(Exclusion::Tag { tag });
    }
    match (e.bought_within_days, e.bought_product) {
        (Some(days), product) => found.push(Exclusion::Bought { product, days }),
        (None, Some(_)) => p.push(
            format!("{at}.boughtWithinDays"),
            "say within how many days (boughtWithinDays)",
        ),
        (None, None) => {}
    }
    if let Some(sop) = e.in_sop {
        found.push(Exclusion::InSop { sop: sop.0 });
    }
    if e.opted_out == Some(true) {
        found.push(Exclusion::OptedOut);
    }
    if let Some(hours) = e.contacted_within_hours {
        found.push(Exclusion::ContactedWithin { hours });
    }
    if found.len() != 1 {
        p.push(at, "set exactly one kind of exclusion");
        return None;
    }
    found.pop()
}

fn time_of(text: &str, at: &str, p: &mut Problems) -> chrono::NaiveTime {
    chrono::NaiveTime::parse_from_str(text, "%H:%M").unwrap_or_else(|_| {
        p.push(at, format!("`{text}` is not HH:MM"));
        chrono::NaiveTime::MIN
    })
}

impl CampaignInput {
    fn draft(self) -> Result<Draft, Error> {
        let mut p = Problems::default();
        let a = self.audience;
        let exclude = a
            .exclude
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| exclusion(e, &format!("input.audience.exclude[{i}]"), &mut p))
            .collect();
        let schedule = match self.schedule.unwrap_or_default() {
            ScheduleInput {
                at: None,
                local_date: None,
                local_start: None,
                local_end: None,
            } => Schedule::Now,
            ScheduleInput {
                at: Some(at),
                local_date: None,
                local_start: None,
                local_end: None,
            } => Schedule::At { at },
            ScheduleInput {
                at: None,
                local_date: Some(date),
                local_start: Some(start),
                local_end: Some(end),
            } => Schedule::LocalWindow {
                date,
                start: time_of(&start, "input.schedule.localStart", &mut p),
                end: time_of(&end, "input.schedule.localEnd", &mut p),
            },
            _ => {
                p.push(
                    "input.schedule",
                    "either `at`, or `localDate` with `localStart` and `localEnd`",
                );
                Schedule::Now
            }
        };
        p.into_result(())?;
        Ok(Draft {
            name: self.name,
            channel: self.channel,
            purpose: self.purpose,
            audience: Audience {
                segment: a.segment.map(|s| s.0),
                tags_all: a.tags_all.unwrap_or_default(),
                tags_any: a.tags_any.unwrap_or_default(),
                rule: a.rule,
                customers: a
                    .customers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.0)
                    .collect(),
                exclude,
            },
            content: Content {
                variants: self
                    .variants
                    .into_iter()
                    .map(|v| Variant {
                        key: v.key,
                        template: v.template,
                        tag: v.tag,
                        segment: v.segment.map(|s| s.0),
                        weight: v.weight,
                    })
                    .collect(),
                winner_metric: self.winner_metric.map(|m| match m {
                    CampaignMetric::Delivered => Metric::Delivered,
                    CampaignMetric::Opened => Metric::Opened,
                    CampaignMetric::Clicked => Metric::Clicked,
                    CampaignMetric::Converted => Metric::Converted,
                }),
            },
            schedule,
            on_cap: self.on_cap,
            attribution_hours: self.attribution_hours,
        })
    }
}

/// A campaign.
pub struct CampaignValue(campaigns::Campaign);

#[Object(name = "Campaign")]
impl CampaignValue {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    async fn purpose(&self) -> &str {
        &self.0.purpose
    }
    async fn status(&self) -> CampaignStatus {
        CampaignStatus::of(self.0.status)
    }
    /// The audience and its exclusions, as written — a listed audience names only the
    /// customers within the reader's scope.
    async fn audience(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let actor = actor(ctx).gql()?;
        let seen = campaigns::audience::as_seen_by(db(ctx), actor, &self.0.audience)
            .await
            .gql()?;
        Ok(Json(serde_json::to_value(&seen).unwrap_or_default()))
    }
    /// The variants, as written.
    async fn content(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.0.content).unwrap_or_default())
    }
    async fn schedule(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.0.schedule).unwrap_or_default())
    }
    /// Recipients queued when the audience was frozen (at submit).
    async fn frozen_count(&self) -> Option<i64> {
        self.0.frozen_count
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn submitted_by(&self) -> Option<&str> {
        self.0.submitted_by.as_deref()
    }
    async fn reviewed_by(&self) -> Option<&str> {
        self.0.reviewed_by.as_deref()
    }
    async fn review_note(&self) -> Option<&str> {
        self.0.review_note.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// The numbers per variant.
    async fn stats(&self, ctx: &Context<'_>) -> async_graphql::Result<CampaignStats> {
        let actor = actor(ctx).gql()?;
        let s = campaigns::figures::stats(db(ctx), actor.tenant_id(), &self.0)
            .await
            .gql()?;
        Ok(CampaignStats {
            leader: s.leader,
            variants: s
                .variants
                .into_iter()
                .map(|v| VariantStatsValue {
                    variant: v.variant,
                    recipients: v.recipients,
                    sent: v.sent,
                    delivered: v.delivered,
                    opened: v.opened,
                    clicked: v.clicked,
                    converted: v.converted,
                    failed: v.failed,
                    by_status: v
                        .by_status
                        .into_iter()
                        .map(|(status, count)| StatusCount { status, count })
                        .collect(),
                })
                .collect(),
        })
    }
    /// Each recipient's result, by customer id, within the reader's scope.
    async fn recipients(
        &self,
        ctx: &Context<'_>,
        status: Option<RecipientStatus>,
        after: Option<ID>,
        #[graphql(default = 100)] first: i64,
    ) -> async_graphql::Result<Vec<CampaignRecipient>> {
        let actor = actor(ctx).gql()?;
        Ok(campaigns::figures::recipients(
            db(ctx),
            actor,
            &self.0.id,
            status.map(RecipientStatus::domain),
            after.as_ref().map(|a| a.as_str()),
            first,
        )
        .await
        .gql()?
        .into_iter()
        .map(|r| CampaignRecipient {
            customer_id: ID(r.customer_id),
            variant: r.variant,
            status: r.status,
            reason: r.reason,
            message_id: r.message_id.map(ID),
            updated_at: r.updated_at,
        })
        .collect())
    }
}

/// One variant's numbers (`delivered`, `opened`, `clicked` count whoever got at least that
/// far).
#[derive(SimpleObject)]
#[graphql(name = "CampaignVariantStats")]
pub struct VariantStatsValue {
    pub variant: String,
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub converted: i64,
    pub failed: i64,
    pub by_status: Vec<StatusCount>,
}

/// A campaign's numbers.
#[derive(SimpleObject)]
pub struct CampaignStats {
    pub variants: Vec<VariantStatsValue>,
    /// The A/B variant leading on the winner metric.
    pub leader: Option<String>,
}

/// One recipient's result.
#[derive(SimpleObject)]
pub struct CampaignRecipient {
    pub customer_id: ID,
    pub variant: String,
    /// queued, deferred, skipped, cancelled, sent, failed, delivered, opened, clicked or
    /// converted.
    pub status: String,
    /// Why it was deferred, skipped or failed.
    pub reason: Option<String>,
    /// The outbox message that carries it.
    pub message_id: Option<ID>,
    pub updated_at: DateTime<Utc>,
}

/// An exclusion and how many of the audience it matches.
#[derive(SimpleObject)]
pub struct ExclusionCount {
    pub exclusion: String,
    pub count: i64,
}

/// What a campaign would reach, counted before it is frozen.
#[derive(SimpleObject)]
pub struct CampaignPreview {
    /// The audience before exclusions (within your scope).
    pub audience: i64,
    pub excluded: Vec<ExclusionCount>,
    /// Who would be messaged.
    pub recipients: i64,
}

/// A sensitive word found in a text.
#[derive(SimpleObject)]
pub struct SensitiveWord {
    pub word: String,
    /// In characters from the start of the text.
    pub position: i64,
}

/// What a cancel did.
#[derive(SimpleObject)]
pub struct CampaignCancelled {
    /// Recipients stopped before any channel took their message.
    pub cancelled: i64,
    /// Recipients whose message a channel had already taken (or was taking).
    pub already_handed: i64,
}

#[derive(Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    /// The tenant's campaigns, newest first.
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        status: Option<CampaignStatus>,
    ) -> async_graphql::Result<Vec<CampaignValue>> {
        let actor = actor(ctx).gql()?;
        Ok(campaigns::store::list(
            db(ctx),
            actor.tenant_id(),
            status.map(CampaignStatus::domain),
        )
        .await
        .gql()?
        .into_iter()
        .map(CampaignValue)
        .collect())
    }

    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        Ok(CampaignValue(
            campaigns::store::get(db(ctx), actor.tenant_id(), &id)
                .await
                .gql()?,
        ))
    }

    /// Counts what a campaign would reach if submitted now: the audience, each exclusion,
    /// the recipients left (`bulk_message` needed).
    async fn campaign_preview(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> async_graphql::Result<CampaignPreview> {
        let actor = actor(ctx).gql()?;
        let draft = input.draft().gql()?;
        let p = campaigns::review::preview(db(ctx), actor, &draft)
            .await
            .gql()?;
        Ok(CampaignPreview {
            audience: p.audience,
            excluded: p
                .excluded
                .into_iter()
                .map(|(exclusion, count)| ExclusionCount { exclusion, count })
                .collect(),
            recipients: p.recipients,
        })
    }

    /// The sensitive words in a text (the built-in list and the tenant's), with positions in
    /// characters.
    async fn sensitive_words(
        &self,
        ctx: &Context<'_>,
        text: String,
    ) -> async_graphql::Result<Vec<SensitiveWord>> {
        let actor = actor(ctx).gql()?;
        Ok(
            campaigns::words::check(&text, &actor.tenant.campaigns.sensitive_words)
                .into_iter()
                .map(|f| SensitiveWord {
                    word: f.word,
                    position: f.position as i64,
                })
                .collect(),
        )
    }

    /// The channels with an adapter configured for the tenant.
    async fn message_channels(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let actor = actor(ctx).gql()?;
        Ok(shoal_sop::channels::Adapters::of(&actor.tenant)
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect())
    }
}

#[derive(Default)]
pub struct CampaignMutation;

#[Object]
impl CampaignMutation {
    /// Writes a draft campaign (`bulk_message` needed).
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        let draft = input.draft().gql()?;
        Ok(CampaignValue(
            campaigns::store::create(db(ctx), actor, &draft)
                .await
                .gql()?,
        ))
    }

    /// Changes a draft or a rejected campaign.
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CampaignInput,
    ) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        let draft = input.draft().gql()?;
        Ok(CampaignValue(
            campaigns::store::update(db(ctx), actor, &id, &draft)
                .await
                .gql()?,
        ))
    }

    /// Checks the campaign (channel adapter, sensitive words), freezes its audience and
    /// either schedules it or sends it for approval.
    async fn submit_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        Ok(CampaignValue(
            campaigns::review::submit(db(ctx), actor, &id).await.gql()?,
        ))
    }

    /// Approves a campaign waiting for approval (an approver other than its submitter).
    async fn approve_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
    ) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        Ok(CampaignValue(
            campaigns::review::approve(db(ctx), actor, &id, note.as_deref())
                .await
                .gql()?,
        ))
    }

    /// Sends a campaign back to its author with a note.
    async fn reject_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: String,
    ) -> async_graphql::Result<CampaignValue> {
        let actor = actor(ctx).gql()?;
        Ok(CampaignValue(
            campaigns::review::reject(db(ctx), actor, &id, &note)
                .await
                .gql()?,
        ))
    }

    /// Stops a campaign at once: nothing not yet handed to a channel is sent.
    async fn cancel_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CampaignCancelled> {
        let actor = actor(ctx).gql()?;
        let c = campaigns::review::cancel(db(ctx), actor, &id).await.gql()?;
        Ok(CampaignCancelled {
            cancelled: c.cancelled,
            already_handed: c.already_handed,
        })
    }
}
