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

/// A re-encryption of the tenant's sealed values under a new data key, and its progress.
#[derive(SimpleObject)]
pub struct Reencryption {
    pub id: ID,
    /// `requested`, `waiting` (the new data key exists; hosts are loading it), `running`,
    /// `done` or `failed`.
    pub state: String,
    /// The data key version values are sealed under, once made.
    pub version: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Values sealed again so far.
    pub resealed: i64,
    /// Values still under an older data key, as of the last batch.
    pub remaining: Option<i64>,
    /// The `table.column` of the last batch.
    pub step: Option<String>,
    /// Why it failed (asking again resumes where it stopped).
    pub error: Option<String>,
}

impl From<shoal_privacy::reencryption::Reencryption> for Reencryption {
    fn from(r: shoal_privacy::reencryption::Reencryption) -> Self {
        Reencryption {
            id: ID(r.id),
            state: r.state,
            version: r.version.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            resealed: i64::try_from(r.resealed).unwrap_or(i64::MAX),
            remaining: r.remaining.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            step: r.step,
            error: r.error,
        }
    }
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

    /// The tenant's re-encryptions, newest first, with their progress (action
    /// `administer`).
    async fn reencryptions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Reencryption>> {
        let actor = actor(ctx).gql()?;
        Ok(shoal_privacy::reencryption::list(db(ctx), actor)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
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

    /// Seals every sealed value of the tenant again under a new data key, in the background
    /// (a host's worker makes the key, waits until every host has loaded it, then works in
    /// batches; a host that stops hands the job to another). Follow it with
    /// `reencryptions`. Action `administer`; audited; refused while one is under way.
    async fn reencrypt_customer_data(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Reencryption> {
        let actor = actor(ctx).gql()?;
        Ok(shoal_privacy::reencryption::request(db(ctx), actor)
            .await
            .gql()?
            .into())
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
