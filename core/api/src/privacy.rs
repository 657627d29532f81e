//! Customer data protection (docs/data-protection.md): data-subject export and erasure, the
//! erasure certificates and the consent ledger.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, db};
use shoal_crm::consent;

/// One grant or withdrawal in a customer's consent ledger.
#[derive(SimpleObject)]
pub struct Consent {
    pub id: ID,
    /// `marketing` or `profiling`.
    pub purpose: String,
    /// A channel, or `*` for every channel.
    pub channel: String,
    pub granted: bool,
    /// Where it came from (`api`, `opt_out`, `opt_in`, a form's name…).
    pub source: String,
    pub actor_id: String,
    pub at: DateTime<Utc>,
}

impl From<consent::Consent> for Consent {
    fn from(c: consent::Consent) -> Self {
        Consent {
            id: ID(c.id),
            purpose: c.purpose,
            channel: c.channel,
            granted: c.granted,
            source: c.source,
            actor_id: c.actor_id,
            at: c.at,
        }
    }
}

/// What an erasure removed, when and by whom (no personal value).
#[derive(SimpleObject)]
pub struct ErasureCertificate {
    pub id: ID,
    pub customer_id: ID,
    /// The profiles erased: the customer and every profile merged into it.
    pub profiles: Vec<ID>,
    pub reason: String,
    pub actor_id: String,
    pub at: DateTime<Utc>,
    /// Per table: `{"deleted": n}`, `{"redacted": n}` or `{"kept": n, "why": …}`.
    pub tables: Json<Value>,
}

#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Everything Shoal holds about one person (the customer and the profiles merged into
    /// it): a JSON document with a row of every table that holds personal data, sealed
    /// values opened (format `shoal.customer-data/1`). Action `export`, and a role that sees
    /// the customer's fields unmasked; recorded in the audit log.
    async fn export_customer_data(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> async_graphql::Result<Json<Value>> {
        let actor = actor(ctx).gql()?;
        Ok(Json(
            shoal_privacy::export::export(db(ctx), actor, &customer_id)
                .await
                .gql()?,
        ))
    }

    /// Certificates of erasures, newest first (action `audit`).
    async fn erasures(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 500))] first: i32,
    ) -> async_graphql::Result<Vec<Json<Value>>> {
        let actor = actor(ctx).gql()?;
        Ok(shoal_privacy::erase::certificates(
            db(ctx),
            actor,
            customer_id.as_ref().map(|c| c.as_str()),
            i64::from(first),
        )
        .await
        .gql()?
        .into_iter()
        .map(Json)
        .collect())
    }
}

#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a person's personal data (the data subject's right to deletion): the customer
    /// — live or deleted — and every profile merged into it lose their names, contacts,
    /// identities, attributes, events, tags and messages; audit details become tombstones;
    /// bills and ledger postings keep their amounts under the customer id, now a pseudonym.
    /// Irreversible. Actions `delete` and `administer`; the certificate is kept (`erasures`).
    async fn erase_customer(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        reason: String,
    ) -> async_graphql::Result<ErasureCertificate> {
        let actor = actor(ctx).gql()?;
        let c = shoal_privacy::erase::erase(db(ctx), actor, &customer_id, &reason)
            .await
            .gql()?;
        Ok(ErasureCertificate {
            id: ID(c.id),
            customer_id: ID(c.customer_id),
            profiles: c.profiles.into_iter().map(ID).collect(),
            reason: c.reason,
            actor_id: c.actor_id,
            at: c.at,
            tables: Json(Value::Object(c.tables)),
        })
    }

    /// Records a grant or withdrawal of a customer's consent (`marketing` on a channel or
    /// `*`, `profiling`) in their consent ledger; the newest row stands. Action `update`;
    /// audited.
    async fn record_consent(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        purpose: String,
        #[graphql(default_with = "\"*\".to_string()")] channel: String,
        granted: bool,
        source: String,
    ) -> async_graphql::Result<Consent> {
        let actor = actor(ctx).gql()?;
        Ok(consent::record(
            db(ctx),
            actor,
            &customer_id,
            &purpose,
            &channel,
            granted,
            &source,
        )
        .await
        .gql()?
        .into())
    }
}
