//! The GraphQL API over HTTP. Only this module knows HTTP and GraphQL; it turns requests
//! into calls on the domain modules with the caller's [`Actor`].

mod access;
mod analytics;
mod assets;
mod campaigns;
mod connector_deliveries;
mod customers;
mod dedupe;
mod errors;
mod events;
mod filter;
mod http;
mod identities;
mod imports;
pub mod metrics;
mod notify;
mod over_http;
mod page;
mod plugins;
mod privacy;
mod segments;
mod settlement;
mod sign_in;
mod sops;
mod state;
mod tags;
mod ticket_repairs;
mod ticket_routing;
mod ticket_templates;
mod tickets;
mod viewer;
mod work;

use std::sync::Arc;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema};
use tokio::sync::broadcast;

pub use errors::{ErrorExt, classify};
pub use http::{AppState, router};

use shoal_base::{
    config::Limits,
    error::{Error, Result},
    storage::Db,
};
use shoal_crm::{events::Event, tenancy::Actor};
use shoal_plugin_host::Reloader;

/// Events as they are recorded, for subscriptions on this host: (tenant id, event).
pub type EventBus = broadcast::Sender<Arc<(String, Event)>>;

#[derive(MergedObject, Default)]
pub struct Query(
    viewer::ViewerQuery,
    access::AccessQuery,
    customers::CustomerQuery,
    dedupe::DedupeQuery,
    imports::ImportQuery,
    plugins::PluginQuery,
    settlement::SettlementQuery,
    tags::TagQuery,
    segments::SegmentQuery,
    sops::SopQuery,
    work::WorkQuery,
    notify::NotifyQuery,
    campaigns::CampaignQuery,
    tickets::TicketQuery,
    ticket_routing::RoutingQuery,
    ticket_templates::TicketTemplateQuery,
    connector_deliveries::ConnectorQuery,
    privacy::PrivacyQuery,
    analytics::AnalyticsQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    access::AccessMutation,
    customers::CustomerMutation,
    dedupe::DedupeMutation,
    imports::ImportMutation,
    events::EventMutation,
    plugins::PluginMutation,
    settlement::SettlementMutation,
    tags::TagMutation,
    segments::SegmentMutation,
    sops::SopMutation,
    work::WorkMutation,
    notify::NotifyMutation,
    campaigns::CampaignMutation,
    tickets::TicketMutation,
    ticket_routing::RoutingMutation,
    ticket_repairs::RepairMutation,
    ticket_templates::TicketTemplateMutation,
    connector_deliveries::ConnectorMutation,
    privacy::PrivacyMutation,
    sign_in::SignInMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(events::EventSubscription, notify::NotifySubscription);

pub type ShoalSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema with its shared data and the configured limits.
pub fn schema(
    db: Db,
    limits: &Limits,
    bus: EventBus,
    feed: shoal_notify::bus::Bus,
    email: bool,
    reloader: Reloader,
    wakers: shoal_base::wake::Wakers,
) -> ShoalSchema {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(db)
    .data(reloader)
    .data(limits.clone())
    .data(bus)
    .data(feed)
    .data(notify::EmailChannel(email))
    .data(wakers)
    .limit_depth(limits.max_query_depth)
    .limit_complexity(limits.max_query_complexity)
    .finish()
}

/// The schema as SDL, for `shoal schema print` and the snapshot test.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .finish()
    .sdl()
}

/// The caller; every resolver starts here.
fn actor<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    ctx.data_opt::<Actor>()
        .ok_or_else(|| Error::Internal("request reached a resolver without an actor".into()))
}

/// Re-evaluates the tags of customers whose events or profile changed. Fails open: the
/// change itself is already stored, so a tag failure is logged, not returned.
async fn tags_after_change(ctx: &Context<'_>, actor: &Actor, customers: &[String]) {
    if customers.is_empty() {
        return;
    }
    let host = &ctx.data_unchecked::<Reloader>().host;
    if let Err(e) =
        shoal_tags::evaluate_customers(db(ctx), Some(host), &actor.tenant, customers).await
    {
        tracing::error!(tenant = actor.tenant_id(), error = %e, "tag evaluation after a change failed");
    }
}

/// Looks for duplicates of customers just created or changed and queues suggestions. Fails
/// open, like `tags_after_change`.
async fn suggest_after_change(ctx: &Context<'_>, actor: &Actor, customers: &[String]) {
    let refs: Vec<&str> = customers.iter().map(String::as_str).collect();
    let result = async {
        let mut tx = db(ctx).begin_write().await?;
        shoal_data::dedupe::suggestions::suggest_for(&mut tx, &actor.tenant, &refs).await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(tenant = actor.tenant_id(), error = %e, "duplicate suggestions after a change failed");
    }
}

fn db<'a>(ctx: &Context<'a>) -> &'a Db {
    ctx.data_unchecked::<Db>()
}

fn limits<'a>(ctx: &Context<'a>) -> &'a Limits {
    ctx.data_unchecked::<Limits>()
}
