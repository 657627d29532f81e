//! What a campaign is: its audience and exclusions, its content (variants), its schedule,
//! and the statuses of the campaign and of each recipient.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// Who a campaign is for: a saved segment, a filter, or a list of customers (any of them,
/// all must hold), minus the exclusions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    /// Members of this saved segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// Customers holding every one of these tags (by name).
    #[serde(default)]
    pub tags_all: Vec<String>,
    /// Customers holding at least one of these tags.
    #[serde(default)]
    pub tags_any: Vec<String>,
    /// A rule of the rule language (docs/rules.md).
    #[serde(default)]
    pub rule: Option<String>,
    /// These customers (by id).
    #[serde(default)]
    pub customers: Vec<String>,
    /// Who is left out, each counted in the preview.
    #[serde(default)]
    pub exclude: Vec<Exclusion>,
}

/// A reason to leave a customer out of the audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Exclusion {
    /// Members of another saved segment.
    Segment { segment: String },
    /// Customers holding a tag (by name).
    Tag { tag: String },
    /// Customers with an order (of `product`, the order event's name, when given) in the
    /// last `days` days.
    Bought {
        #[serde(default)]
        product: Option<String>,
        days: u32,
    },
    /// Customers enrolled (active, paused or parked) in an SOP.
    InSop { sop: String },
    /// Customers who opted out of the campaign's channel (or of every channel).
    OptedOut,
    /// Customers who received any message in the last `hours` hours.
    ContactedWithin { hours: u32 },
}

impl Exclusion {
    /// How the exclusion reads in a preview and in a skipped recipient's reason.
    pub fn label(&self) -> String {
        match self {
            Exclusion::Segment { segment } => format!("member of segment {segment}"),
            Exclusion::Tag { tag } => format!("tagged {tag}"),
            Exclusion::Bought {
                product: Some(p),
                days,
            } => format!("bought {p} in the last {days} days"),
            Exclusion::Bought {
                product: None,
                days,
            } => {
                format!("ordered in the last {days} days")
            }
            Exclusion::InSop { sop } => format!("enrolled in SOP {sop}"),
            Exclusion::OptedOut => "opted out of the channel".into(),
            Exclusion::ContactedWithin { hours } => {
                format!("contacted in the last {hours} hours")
            }
        }
    }
}

/// One version of the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// Short name, unique in the campaign (`a`, `b`, `vip`).
    pub key: String,
    /// The text, with `{{customer.…}}` placeholders.
    pub template: String,
    /// Recipients holding this tag (by name) get this variant.
    #[serde(default)]
    pub tag: Option<String>,
    /// Members of this segment get this variant.
    #[serde(default)]
    pub segment: Option<String>,
    /// For variants without a tag or segment: the share (percent) of the remaining
    /// recipients in an A/B split; the shares of those variants add up to 100.
    #[serde(default)]
    pub weight: u32,
}

/// What an A/B test is decided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Delivered,
    Opened,
    Clicked,
    Converted,
}

/// The message: variants tried in order (tag and segment variants first match wins; the
/// others split the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub variants: Vec<Variant>,
    /// The metric the stats name a winner by.
    #[serde(default)]
    pub winner_metric: Option<Metric>,
}

/// When the messages go out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Schedule {
    /// As soon as the campaign starts.
    Now,
    /// At an instant.
    At { at: DateTime<Utc> },
    /// On `date`, between `start` and `end` in each customer's own time zone (their
    /// `timeZone` attribute, else the tenant's); whoever the window cannot reach that day
    /// is skipped.
    LocalWindow {
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
    },
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Being written; can be changed.
    Draft,
    /// Submitted, its audience frozen; waits for an approver.
    PendingApproval,
    /// Sent back by an approver (with a note); can be changed and submitted again.
    Rejected,
    /// Approved (or needing no approval), waiting for its time.
    Scheduled,
    /// Releasing messages.
    Running,
    /// Every recipient reached a final status or was handed over.
    Completed,
    /// Stopped: nothing not yet handed to a channel is sent.
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Draft,
        Status::PendingApproval,
        Status::Rejected,
        Status::Scheduled,
        Status::Running,
        Status::Completed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::PendingApproval => "pending_approval",
            Status::Rejected => "rejected",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Where one recipient stands. The order of [`Recipient::rank`] is the only way a status
/// moves: never backwards, and not at all from a final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// Waiting for its time (or for its release to the outbox, or in the outbox).
    Queued,
    /// Held back for a while: quiet hours, a frequency cap, a human follow-up (the reason
    /// says which and until when).
    Deferred,
    /// Not messaged: excluded, opted out, capped, no address on the channel, outside its
    /// window (the reason says which). Final.
    Skipped,
    /// Stopped by a cancel before any channel took it. Final.
    Cancelled,
    /// Taken by the channel.
    Sent,
    /// The channel could not deliver it (the reason is its error). Final.
    Failed,
    /// The channel reports it delivered.
    Delivered,
    Opened,
    Clicked,
    /// The customer ordered within the attribution window after it was sent.
    Converted,
}

impl Recipient {
    pub const ALL: [Recipient; 10] = [
        Recipient::Queued,
        Recipient::Deferred,
        Recipient::Skipped,
        Recipient::Cancelled,
        Recipient::Sent,
        Recipient::Failed,
        Recipient::Delivered,
        Recipient::Opened,
        Recipient::Clicked,
        Recipient::Converted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Recipient::Queued => "queued",
            Recipient::Deferred => "deferred",
            Recipient::Skipped => "skipped",
            Recipient::Cancelled => "cancelled",
            Recipient::Sent => "sent",
            Recipient::Failed => "failed",
            Recipient::Delivered => "delivered",
            Recipient::Opened => "opened",
            Recipient::Clicked => "clicked",
            Recipient::Converted => "converted",
        }
    }

    pub fn parse(text: &str) -> Option<Recipient> {
        Recipient::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The stored order (`campaign_recipients.status_rank`): a status only ever moves to a
    /// higher rank, and never out of a final one (skipped, cancelled, failed).
    pub fn rank(self) -> i64 {
        match self {
            Recipient::Queued => 0,
            Recipient::Deferred => 1,
            Recipient::Skipped | Recipient::Cancelled => 2,
            Recipient::Sent => 3,
            Recipient::Failed => 4,
            Recipient::Delivered => 5,
            Recipient::Opened => 6,
            Recipient::Clicked => 7,
            Recipient::Converted => 8,
        }
    }

    /// Whether nothing moves it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Recipient::Skipped | Recipient::Cancelled | Recipient::Failed
        )
    }
}

/// The SQL condition under which a stored recipient may move to `to` (by rank, and not
/// out of a final status).
pub fn may_move_to(to: Recipient) -> String {
    format!(
        "status_rank < {} AND status NOT IN ('skipped', 'cancelled', 'failed')",
        to.rank()
    )
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub channel: String,
    /// `marketing` or `service`.
    pub purpose: String,
    pub status: Status,
    pub audience: Audience,
    pub content: Content,
    pub schedule: Schedule,
    /// What a frequency cap does to a recipient: `defer` (until it frees) or `drop`.
    pub on_cap: String,
    pub attribution_hours: i64,
    /// The audience's size when it was frozen (after exclusions).
    pub frozen_count: Option<i64>,
    pub created_by: String,
    pub submitted_by: Option<String>,
    pub reviewed_by: Option<String>,
    pub review_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}
