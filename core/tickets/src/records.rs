//! Ticket records as the database holds them, read raw — no scope, no masking: the rows
//! [`crate::store`] reads for callers (through their scope, masked for them) and the host's
//! own work (SLA timers, routing) reads for itself.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    error::{Error, Result},
    storage::time,
};

use crate::types::{Category, TicketType};

/// A ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub type_key: String,
    pub subject: String,
    pub status: String,
    pub category: Category,
    /// 1 (P1, most urgent) to 4.
    pub priority: i64,
    /// `low`, `medium` or `high`.
    pub impact: String,
    pub customer_id: Option<String>,
    pub channel: String,
    pub fields: Map<String, Value>,
    pub assignee: Option<String>,
    /// The queue (team) routing or a transfer put it in.
    pub queue: Option<String>,
    /// Skills (and least levels) the agent must hold, from the routing rule.
    pub skills: std::collections::BTreeMap<String, u8>,
    /// Users told of its escalations.
    pub watchers: Vec<String>,
    /// The ticket it was merged into (it is closed, its history read as part of that one).
    pub merged_into: Option<String>,
    /// The bill of its repair (whose reference is `ticket:<id>`).
    pub bill_id: Option<String>,
    /// The SLA policies whose customer condition (tier) held for its customer, by name.
    pub sla_customer: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// One entry of a ticket's history: a reply, a note or a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    /// The ticket it belongs to (another one's, merged into this one, in a merged history).
    pub ticket_id: String,
    /// `opened`, `reply`, `note`, `status`, `fields`, `assigned`.
    pub kind: String,
    pub author: String,
    /// Whether the customer sees it (replies), or only staff (notes, changes).
    pub public: bool,
    pub body: Option<String>,
    pub detail: Option<Value>,
    pub created_at: DateTime<Utc>,
}

fn opt_time(r: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<i64>, _>(col)?.map(time::from_micros))
}

/// A ticket from its row.
pub fn from_row(r: &AnyRow) -> Result<Ticket> {
    let category: String = r.try_get("category")?;
    let fields: String = r.try_get("fields")?;
    Ok(Ticket {
        id: r.try_get("id")?,
        type_key: r.try_get("type_key")?,
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
        category: Category::parse(&category)
            .ok_or_else(|| Error::Internal(format!("unknown ticket category `{category}`")))?,
        priority: r.try_get("priority")?,
        impact: r.try_get("impact")?,
        customer_id: r.try_get("customer_id")?,
        channel: r.try_get("channel")?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        assignee: r.try_get("assignee")?,
        queue: r.try_get("queue")?,
        skills: serde_json::from_str(&r.try_get::<String, _>("skills")?).unwrap_or_default(),
        merged_into: r.try_get("merged_into")?,
        bill_id: r.try_get("bill_id")?,
        watchers: serde_json::from_str(&r.try_get::<String, _>("watchers")?).unwrap_or_default(),
        sla_customer: serde_json::from_str(&r.try_get::<String, _>("sla_customer")?)
            .unwrap_or_default(),
        created_by: r.try_get("created_by")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
        first_response_at: opt_time(r, "first_response_at")?,
        resolved_at: opt_time(r, "resolved_at")?,
        closed_at: opt_time(r, "closed_at")?,
    })
}

/// One history entry from its row (as stored: a reader's masking is [`crate::store`]'s).
pub fn entry_from_row(r: &AnyRow) -> Result<Entry> {
    let visibility: String = r.try_get("visibility")?;
    let detail: Option<String> = r.try_get("detail")?;
    Ok(Entry {
        id: r.try_get("id")?,
        ticket_id: r.try_get("ticket_id")?,
        kind: r.try_get("kind")?,
        author: r.try_get("author")?,
        public: visibility == "public",
        body: r.try_get("body")?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: time::from_micros(r.try_get("created_at")?),
    })
}

/// Ticket `id` as stored, if there is one.
pub async fn ticket_in(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Option<Ticket>> {
    sqlx::query("SELECT * FROM tickets WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The status changes, public replies and customer messages of ticket `id`, oldest first
/// (what SLA clocks are read from: pauses, replies owed and given).
pub async fn clock_entries_in(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<Vec<Entry>> {
    sqlx::query(
        "SELECT * FROM ticket_entries WHERE tenant_id = $1 AND ticket_id = $2 \
         AND kind IN ('status', 'reply', 'customer_message') ORDER BY created_at, id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(entry_from_row)
    .collect()
}

/// The type every tenant has until it saves its own under this key: 一般工单, the
/// standard workflow, no custom fields (what SOP steps open when they name no type).
pub const GENERAL: &str = "general";

/// The built-in [`GENERAL`] type.
pub fn general() -> TicketType {
    TicketType {
        key: GENERAL.into(),
        name: "一般工单".into(),
        fields: Vec::new(),
        statuses: TicketType::standard_statuses(),
        transitions: Vec::new(),
        survey: None,
        template: None,
    }
}

/// The type `key` (the built-in [`GENERAL`] until the tenant saves its own), or an error
/// naming `field`; on the caller's connection.
pub async fn type_in(
    conn: &mut AnyConnection,
    tenant: &str,
    key: &str,
    field: &str,
) -> Result<TicketType> {
    let d: Option<String> =
        sqlx::query_scalar("SELECT definition FROM ticket_types WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(conn)
            .await?;
    match d {
        Some(d) => serde_json::from_str(&d)
            .map_err(|e| Error::Internal(format!("a stored ticket type: {e}"))),
        None if key == GENERAL => Ok(general()),
        None => Err(Error::invalid(
            field,
            format!("`{key}` is not a ticket type"),
        )),
    }
}
