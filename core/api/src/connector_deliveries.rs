//! What inbound connectors received (docs/connectors.md): deliveries and their outcomes,
//! and trying a failed one again.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{ErrorExt, actor, db};
use shoal_connectors::inbox;

/// A delivery a connector received (its body, the raw contact data, is not shown).
#[derive(SimpleObject)]
pub struct ConnectorDelivery {
    pub id: ID,
    /// `wecom:<app>` or `hook:<name>`.
    pub source: String,
    /// The sender's identity of the delivery: the SHA-256 of a WeCom message, a
    /// `webhook-id`. The same key again is the same delivery.
    pub key: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// What it became (customers created or merged, events recorded, rows refused and
    /// why), or why it failed.
    pub outcome: Option<String>,
}

impl From<inbox::Summary> for ConnectorDelivery {
    fn from(s: inbox::Summary) -> Self {
        ConnectorDelivery {
            id: ID(s.id),
            source: s.source,
            key: s.key,
            status: s.status,
            attempts: s.attempts.clamp(0, i32::MAX as i64) as i32,
            received_at: s.received_at,
            processed_at: s.processed_at,
            outcome: s.outcome,
        }
    }
}

#[derive(Default)]
pub struct ConnectorQuery;

#[Object]
impl ConnectorQuery {
    /// Deliveries of the tenant's connectors, newest first (a role whose customers scope
    /// is `all`): of one `status` (`pending`, `done`, `failed`) and `source` when given.
    async fn connector_deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        source: Option<String>,
        #[graphql(default = 50)] limit: i32,
    ) -> async_graphql::Result<Vec<ConnectorDelivery>> {
        let actor = actor(ctx).gql()?;
        let found = inbox::list(
            db(ctx),
            actor,
            status.as_deref(),
            source.as_deref(),
            limit.into(),
        )
        .await
        .gql()?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct ConnectorMutation;

#[Object]
impl ConnectorMutation {
    /// Tries a failed delivery again, now, its tries counted afresh (audited).
    async fn retry_connector_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ConnectorDelivery> {
        let actor = actor(ctx).gql()?;
        Ok(inbox::retry(db(ctx), actor, &id).await.gql()?.into())
    }
}
