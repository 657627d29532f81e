//! Tickets other systems open: a signed request (checked by the HTTP layer) names the
//! customer by id or by an identity on a channel, and opens a ticket as `webhook`, once per
//! `webhook-id` whatever the retries.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use shoal_base::{
    error::{Error, Result},
    storage::Db,
};
use shoal_crm::tenancy::{Actor, Tenant};

use crate::store::{self, NewTicket};

/// The customer's identity on another channel (`{"channel": "shop", "externalId": "…"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    pub channel: String,
    pub external_id: String,
}

/// The body of an inbound ticket.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inbound {
    #[serde(rename = "type")]
    pub type_key: String,
    pub subject: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub impact: Option<String>,
    /// Where it came from; `webhook` when left out.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// Opens the ticket of a verified request `delivery` (its `webhook-id`): answers its id and
/// whether it was opened now (`false`: the delivery came before).
pub async fn open(
    db: &Db,
    tenant: &Arc<Tenant>,
    delivery: &str,
    input: Inbound,
) -> Result<(String, bool)> {
    let actor = Actor::system(tenant, "webhook");
    let source_key = format!("webhook:{delivery}");
    // a delivery seen before answers its ticket, whatever changed since
    let mut conn = db.pool.acquire().await?;
    let before = store::opened_by(&mut conn, &tenant.id, &source_key).await?;
    drop(conn);
    if let Some(id) = before {
        return Ok((id, false));
    }
    let customer_id = match (input.customer_id, input.identity) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "identity",
                "name the customer by `customerId` or by `identity`, not both",
            ));
        }
        (Some(id), None) => Some(id),
        (None, Some(i)) => Some(
            sqlx::query_scalar::<_, String>(
                "SELECT customer_id FROM customer_identities WHERE tenant_id = $1 AND channel = $2 AND external_id = $3 \
                 AND deleted_at IS NULL ORDER BY customer_id LIMIT 1",
            )
            .bind(&tenant.id)
            .bind(&i.channel)
            .bind(shoal_crm::customers::sealed::identity_index_named(
                &db.vault,
                &tenant.id,
                &i.channel,
                &i.external_id,
            )?)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "customer with identity",
                id: format!("{}:{}", i.channel, i.external_id),
            })?,
        ),
        (None, None) => None,
    };
    let n = NewTicket {
        type_key: input.type_key,
        subject: input.subject,
        body: input.body,
        priority: input.priority,
        impact: input.impact,
        customer_id,
        channel: Some(input.channel.unwrap_or_else(|| "webhook".into())),
        fields: input.fields,
        assignee: None,
        source_key: Some(source_key),
    };
    let mut tx = db.begin_write().await?;
    let id = store::open_in(&mut tx, db, &actor, n).await?;
    tx.commit().await?;
    Ok((id, true))
}
