//! SOPs, enrolments and the dry run in GraphQL: the resolvers. Inputs are in [`inputs`],
//! answers in [`values`].

mod inputs;
mod values;

use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, db, page::page};
use shoal_base::{error::Error, kinds::Resource, pagination::PageArgs};
use shoal_sop::{
    self as sop,
    definition::Definition,
    enrolments::{self, EnrolmentFilter},
};

pub use inputs::*;
pub use values::*;

#[derive(Default)]
pub struct SopQuery;

#[Object]
impl SopQuery {
    /// The endpoints the tenant's `callWebhook` steps call, each with the secret its calls
    /// are signed with (`X-Shoal-Signature`; administrators only).
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookEndpointValue>> {
        let actor = actor(ctx).gql()?;
        Ok(sop::endpoints::list(db(ctx), actor)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

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
                sop::store::check(db(ctx), &actor.tenant, &s.definition, "sopId")
                    .await
                    .gql()?
            }
            (None, Some(d)) => sop::store::check(db(ctx), &actor.tenant, &d.into(), "definition")
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
        let ids = customers_or_segment(
            ctx,
            actor,
            customer_ids,
            segment_id,
            sop::simulate::MAX_CUSTOMERS,
        )
        .await
        .gql()?;
        let from = from.unwrap_or_else(Utc::now);
        Ok(
            sop::simulate::simulate(db(ctx), actor, &compiled, &ids, from, to)
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

/// The customers an operation names — `customerIds` (each checked by `access`) or a
/// segment's members the caller reaches (at most `limit`) — never both.
async fn customers_or_segment(
    ctx: &Context<'_>,
    actor: &shoal_crm::tenancy::Actor,
    customer_ids: Option<Vec<ID>>,
    segment_id: Option<ID>,
    limit: usize,
) -> shoal_base::error::Result<shoal_crm::access::ScopedIds> {
    match (customer_ids, segment_id) {
        (Some(ids), None) => {
            actor
                .access
                .scope_customers(db(ctx), Resource::Customers, ids.into_iter().map(|i| i.0))
                .await
        }
        (None, Some(seg)) => {
            let filter = shoal_tags::segments::as_filter(db(ctx), &actor.tenant, &seg).await?;
            shoal_crm::customers::ids_matching(db(ctx), actor, &filter, limit).await
        }
        _ => Err(Error::invalid(
            "customerIds",
            "give `customerIds` or `segmentId`, not both",
        )),
    }
}

#[derive(Default)]
pub struct SopMutation;

#[Object]
impl SopMutation {
    /// Gives a webhook endpoint a new secret; calls signed from now on use it
    /// (administrators only).
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        url: String,
    ) -> async_graphql::Result<WebhookEndpointValue> {
        let actor = actor(ctx).gql()?;
        Ok(sop::endpoints::rotate(db(ctx), actor, &url)
            .await
            .gql()?
            .into())
    }

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
        if customer_ids.is_none() && segment_id.is_some() {
            // a whole segment at once is bulk messaging
            actor
                .require(shoal_base::kinds::Action::BulkMessage)
                .gql()?;
        }
        let ids =
            customers_or_segment(ctx, actor, customer_ids, segment_id, enrolments::MAX_MANUAL)
                .await
                .gql()?;
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
