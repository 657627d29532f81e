//! The lines of a ticket's repair as stored (service items and spare parts, with whether
//! stock is reserved for them), and giving reservations back — what [`crate::repairs`]
//! records and bills, and what closing or merging an unbilled ticket releases.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    storage::time,
};
use shoal_settlement::stock;

/// A service item (labour) or a spare part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Part,
}

impl Kind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Part => "part",
        }
    }
}

/// One line of a repair.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairLine {
    pub id: String,
    pub kind: Kind,
    /// The service-item code or the part's SKU.
    pub code: String,
    pub quantity: Decimal,
    pub note: Option<String>,
    /// Whether stock is reserved for it (a part whose SKU is counted).
    pub reserved: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A line to record.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub kind: Kind,
    pub code: String,
    pub quantity: Decimal,
    pub note: Option<String>,
}

/// A line from its row.
pub fn from_row(r: &sqlx::any::AnyRow) -> Result<RepairLine> {
    let kind: String = r.try_get("kind")?;
    let quantity: String = r.try_get("quantity")?;
    Ok(RepairLine {
        id: r.try_get("id")?,
        kind: if kind == "part" {
            Kind::Part
        } else {
            Kind::Service
        },
        code: r.try_get("code")?,
        quantity: quantity
            .parse()
            .map_err(|e| Error::Internal(format!("a stored quantity: {e}")))?,
        note: r.try_get("note")?,
        reserved: r.try_get::<i64, _>("reserved")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: time::from_micros(r.try_get("created_at")?),
    })
}

/// The lines of ticket `ticket`, oldest first (caller's connection).
pub async fn lines_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    ticket: &str,
) -> Result<Vec<RepairLine>> {
    sqlx::query(
        "SELECT * FROM ticket_lines WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY created_at, id",
    )
    .bind(tenant)
    .bind(ticket)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Gives back every reservation of ticket `ticket`'s lines when it is not billed nor
/// being billed (it was just closed or merged: the caller holds its row); answers how many
/// lines held one. Caller's transaction.
pub async fn release_all_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    ticket: &str,
) -> Result<usize> {
    let bill: Option<String> =
        sqlx::query_scalar("SELECT bill_id FROM tickets WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(ticket)
            .fetch_one(&mut *conn)
            .await?;
    if bill.is_some() {
        return Ok(0);
    }
    let held: Vec<RepairLine> = lines_in(conn, tenant, ticket)
        .await?
        .into_iter()
        .filter(|l| l.reserved)
        .collect();
    for l in &held {
        stock::release_in(conn, tenant, &l.code, l.quantity).await?;
    }
    if !held.is_empty() {
        sqlx::query("UPDATE ticket_lines SET reserved = 0 WHERE tenant_id = $1 AND ticket_id = $2")
            .bind(tenant)
            .bind(ticket)
            .execute(conn)
            .await?;
    }
    Ok(held.len())
}
