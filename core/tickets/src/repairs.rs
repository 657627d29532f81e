//! Repairs that settle: a ticket records the service items and spare parts of its repair
//! (codes of the settlement libraries); a part whose SKU is counted reserves stock when
//! recorded and gives it back when removed. `settle` turns the lines into a bill for the
//! ticket's customer (the tenant's settlement module prices and splits it), consumes the
//! reserved parts, and links the two both ways: the ticket holds the bill's id, the bill's
//! reference is `ticket:<id>`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Action, Resource},
    storage::{Db, time},
};
use shoal_crm::{audit, tenancy::Actor};
use shoal_plugin_host::PluginHost;
use shoal_settlement::{self as settlement, Bill, LineInput, LineKind, PriceKind, stock};

use crate::store;

/// Most lines on one ticket.
pub const MAX_LINES: usize = 200;

/// A service item (labour) or a spare part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Part,
}

impl Kind {
    fn as_str(self) -> &'static str {
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

fn from_row(r: &sqlx::any::AnyRow) -> Result<RepairLine> {
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

async fn lines_in(
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

/// The repair lines of ticket `id` (NOT_FOUND out of reach).
pub async fn lines(db: &Db, actor: &Actor, id: &str) -> Result<Vec<RepairLine>> {
    store::get(db, actor, id).await?;
    let mut conn = db.pool.acquire().await?;
    lines_in(&mut conn, actor.tenant_id(), id).await
}

/// Records a line on ticket `id` (permission `update`): a code of the library, a positive
/// quantity with at most four decimals; a counted part reserves stock (refused, naming
/// `input.quantity`, when not enough is available). Not once the ticket is billed.
pub async fn add_line(db: &Db, actor: &Actor, id: &str, line: NewLine) -> Result<RepairLine> {
    actor.require(Action::Update)?;
    let t = store::get(db, actor, id).await?;
    let tenant = actor.tenant_id();
    let mut p = Problems::default();
    if let Some(b) = &t.bill_id {
        p.push("id", format!("ticket {id} is billed already (bill {b})"));
    }
    if line.quantity <= Decimal::ZERO
        || line.quantity.scale() > 4
        || line.quantity > Decimal::from(100_000)
    {
        p.push(
            "input.quantity",
            "more than 0, at most 100000, at most 4 decimals",
        );
    }
    if let Some(n) = &line.note {
        let chars = n.chars().count();
        if chars > 500 || n.chars().any(char::is_control) {
            p.push("input.note", "at most 500 characters on one line");
        }
    }
    let mut tx = db.begin_write().await?;
    let kind = match line.kind {
        Kind::Service => PriceKind::Service,
        Kind::Part => PriceKind::Part,
    };
    if !settlement::exists(&mut tx, tenant, kind, &line.code).await? {
        p.push(
            "input.code",
            format!(
                "unknown {} `{}`",
                if line.kind == Kind::Part {
                    "spare part"
                } else {
                    "service item"
                },
                line.code
            ),
        );
    }
    if lines_in(&mut tx, tenant, id).await?.len() >= MAX_LINES {
        p.push("id", format!("at most {MAX_LINES} lines on a ticket"));
    }
    p.into_result(())?;
    let reserved = line.kind == Kind::Part
        && stock::reserve_in(&mut tx, tenant, &line.code, line.quantity, "input.quantity").await?;
    let now = time::to_micros(time::now());
    let line_id = uuid::Uuid::now_v7().to_string();
    let quantity = line.quantity.normalize();
    sqlx::query(
        "INSERT INTO ticket_lines (tenant_id, id, ticket_id, kind, code, quantity, note, reserved, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(&line_id)
    .bind(id)
    .bind(line.kind.as_str())
    .bind(&line.code)
    .bind(quantity.to_string())
    .bind(&line.note)
    .bind(i64::from(reserved))
    .bind(&actor.user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let detail = json!({ "line": line_id, "kind": line.kind.as_str(), "code": line.code,
        "quantity": quantity.to_string(), "reserved": reserved });
    record(&mut tx, actor, id, "line_added", detail, now).await?;
    tx.commit().await?;
    Ok(RepairLine {
        id: line_id,
        kind: line.kind,
        code: line.code,
        quantity,
        note: line.note,
        reserved,
        created_by: actor.user_id.clone(),
        created_at: time::from_micros(now),
    })
}

/// Removes a line of ticket `id` (permission `update`), giving back its reserved stock. Not
/// once the ticket is billed.
pub async fn remove_line(db: &Db, actor: &Actor, id: &str, line_id: &str) -> Result<()> {
    actor.require(Action::Update)?;
    let t = store::get(db, actor, id).await?;
    if let Some(b) = &t.bill_id {
        return Err(Error::invalid(
            "id",
            format!("ticket {id} is billed already (bill {b})"),
        ));
    }
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let Some(line) = lines_in(&mut tx, tenant, id)
        .await?
        .into_iter()
        .find(|l| l.id == line_id)
    else {
        return Err(Error::NotFound {
            what: "ticket line",
            id: line_id.to_owned(),
        });
    };
    sqlx::query("DELETE FROM ticket_lines WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(line_id)
        .execute(&mut *tx)
        .await?;
    if line.reserved {
        stock::release_in(&mut tx, tenant, &line.code, line.quantity).await?;
    }
    let now = time::to_micros(time::now());
    let detail = json!({ "line": line_id, "kind": line.kind.as_str(), "code": line.code,
        "quantity": line.quantity.to_string(), "released": line.reserved });
    record(&mut tx, actor, id, "line_removed", detail, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn record(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    id: &str,
    kind: &str,
    detail: Value,
    at: i64,
) -> Result<()> {
    crate::entries::add(
        &mut *conn,
        actor.tenant_id(),
        id,
        (kind, &actor.user_id, false),
        None,
        Some(detail.clone()),
        at,
    )
    .await?;
    audit::record(conn, actor, &format!("ticket.{kind}"), "ticket", id, detail).await?;
    Ok(())
}

/// What billing a repair takes beside its lines.
#[derive(Debug, Clone, Default)]
pub struct BillInput {
    pub module: Option<String>,
    pub region: String,
    pub currency: String,
    pub participant_ids: Vec<String>,
    /// More lines: transport, discounts, coupons, adjustments.
    pub extra: Vec<LineInput>,
    pub facts: Option<Value>,
}

/// The reference of the bill of ticket `id`.
pub fn reference(id: &str) -> String {
    format!("ticket:{id}")
}

/// Bills the repair of ticket `id` (permission `settle`, the customer within the caller's
/// reach in `bills`): its lines and `input.extra`, settled by the tenant's module; then, in
/// one transaction, the ticket holds the bill's id, its reserved parts leave stock, and its
/// history says so. Once: a ticket billed already is refused; a bill settled for it whose
/// link was not written (a host stopped in between) is linked instead of settled again.
pub async fn settle(
    db: &Db,
    host: &PluginHost,
    actor: &Actor,
    id: &str,
    input: BillInput,
) -> Result<Bill> {
    actor.require(Action::Settle)?;
    let t = store::get(db, actor, id).await?;
    let tenant = actor.tenant_id();
    if let Some(b) = &t.bill_id {
        return Err(Error::invalid(
            "id",
            format!("ticket {id} is billed already (bill {b})"),
        ));
    }
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM bills WHERE tenant_id = $1 AND reference = $2 AND kind = 'sale' ORDER BY created_at LIMIT 1",
    )
    .bind(tenant)
    .bind(reference(id))
    .fetch_optional(&db.pool)
    .await?;
    let bill = match existing {
        Some(b) => settlement::get(db, tenant, &b).await?,
        None => {
            let mut conn = db.pool.acquire().await?;
            let recorded = lines_in(&mut conn, tenant, id).await?;
            drop(conn);
            if recorded.is_empty() {
                return Err(Error::invalid(
                    "id",
                    "nothing to bill: record the repair's service items and parts first",
                ));
            }
            let mut lines: Vec<LineInput> = recorded
                .iter()
                .map(|l| LineInput {
                    kind: match l.kind {
                        Kind::Service => LineKind::Service,
                        Kind::Part => LineKind::Part,
                    },
                    code: l.code.clone(),
                    quantity: l.quantity,
                    unit_price: None,
                    description: l.note.clone(),
                })
                .collect();
            lines.extend(input.extra);
            let customer = match &t.customer_id {
                Some(c) => Some(
                    actor
                        .access
                        .scope_customer(db, Resource::Bills, c.clone())
                        .await?,
                ),
                None => None,
            };
            let settle_input = settlement::SettleInput {
                module: input.module,
                reference: reference(id),
                customer_id: t.customer_id.clone(),
                region: input.region,
                currency: input.currency,
                priced_at: None,
                lines,
                participant_ids: input.participant_ids,
                facts: input.facts,
            };
            settlement::settle(db, host, actor, customer.as_ref(), &settle_input).await?
        }
    };
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let linked = sqlx::query(
        "UPDATE tickets SET bill_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND bill_id IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(&bill.id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if linked == 1 {
        for l in lines_in(&mut tx, tenant, id).await? {
            if l.reserved {
                stock::consume_in(&mut tx, tenant, &l.code, l.quantity).await?;
            }
        }
        sqlx::query("UPDATE ticket_lines SET reserved = 0 WHERE tenant_id = $1 AND ticket_id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let detail = json!({ "billId": bill.id, "total": bill.total.to_string(), "currency": bill.currency });
        record(&mut tx, actor, id, "billed", detail, now).await?;
    }
    tx.commit().await?;
    Ok(bill)
}
