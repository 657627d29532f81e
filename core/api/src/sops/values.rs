//! What the SOP API answers: SOPs, enrolments, step runs and dry-run plans.

use async_graphql::{ComplexObject, Context, ID, Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{ErrorExt, actor, db};
use shoal_sop::{
    enrolments::{self, Enrolment},
    store::Sop,
};

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
        Ok(enrolments::history(db(ctx), actor, &self.id)
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

crate::page::connection!(
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

/// An endpoint of the tenant's `callWebhook` steps and the secret of its signatures.
#[derive(SimpleObject, Debug)]
#[graphql(name = "WebhookEndpoint")]
pub struct WebhookEndpointValue {
    pub url: String,
    /// `whsec_…`: the HMAC-SHA256 key (base64 after the prefix) of `X-Shoal-Signature`.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

impl From<shoal_sop::endpoints::Endpoint> for WebhookEndpointValue {
    fn from(e: shoal_sop::endpoints::Endpoint) -> Self {
        WebhookEndpointValue {
            url: e.url,
            secret: e.secret,
            created_at: e.created_at,
            rotated_at: e.rotated_at,
        }
    }
}
