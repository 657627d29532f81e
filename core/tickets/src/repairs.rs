//! Repairs that settle: a ticket records the service items and spare parts of its repair
//! (codes of the settlement libraries); a part whose SKU is counted reserves stock when
//! recorded and gives it back when removed. `settle` turns the lines into a bill for the
//! ticket's customer (the tenant's settlement module prices and splits it), consumes the
//! reserved parts, and links the two both ways: the ticket holds the bill's id, the bill's
//! reference is `ticket:<id>`.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Action, Resource},
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;
use shoal_plugin_host::PluginHost;
use shoal_settlement::{self as settlement, Bill, LineInput, LineKind, PriceKind, stock};

pub use crate::lines::{Kind, NewLine, RepairLine};
use crate::{lines::lines_in, store};

/// Most lines on one ticket.
pub const MAX_LINES: usize = 200;

/// How long a billing in progress holds a ticket before another may take it over (a host
/// that stopped mid-way).
const CLAIM_SECONDS: i64 = 300;

/// The ticket's `bill_id` as stored, read under the write lock (the row locked on
/// PostgreSQL): what lines may change against, and what billing claims.
async fn bill_of(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    tenant: &str,
    id: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT bill_id FROM tickets WHERE tenant_id = $1 AND id = $2{}",
        shoal_base::storage::dialect::for_update(db.backend)
    ))
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// Refuses a change of ticket `id`'s lines once it is billed or being billed.
fn unbilled(id: &str, bill: &Option<String>) -> Result<()> {
    match bill {
        None => Ok(()),
        Some(b) if b.starts_with("pending:") => {
            Err(Error::invalid("id", format!("ticket {id} is being billed")))
        }
        Some(b) => Err(Error::invalid(
            "id",
            format!("ticket {id} is billed already (bill {b})"),
        )),
    }
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
    store::get(db, actor, id).await?;
    let tenant = actor.tenant_id();
    let mut p = Problems::default();
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
    if let Err(Error::Invalid(errors)) = unbilled(id, &bill_of(&mut tx, db, tenant, id).await?) {
        p.extend(errors);
    }
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
    store::get(db, actor, id).await?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    unbilled(id, &bill_of(&mut tx, db, tenant, id).await?)?;
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
    store::record_change(conn, actor, id, kind, None, (detail.clone(), detail), at).await
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
/// one transaction, the ticket holds the bill's id, the billed lines' reserved parts leave
/// stock, and its history says so. Once: the ticket is claimed first (lines cannot change
/// while it is billed; a second call is refused), and a bill settled for it whose link was
/// not written (a host stopped in between) is linked instead of settled again.
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
    // the customer within the caller's reach in bills, before anything is claimed
    let scoped = match &t.customer_id {
        Some(c) => Some(
            actor
                .access
                .scope_customer(db, Resource::Bills, c.clone())
                .await?,
        ),
        None => None,
    };
    // the claim
    let now = time::to_micros(time::now());
    let claim = format!("pending:{now}:{}", uuid::Uuid::now_v7());
    let mut tx = db.begin_write().await?;
    match bill_of(&mut tx, db, tenant, id).await? {
        None => {}
        Some(b) if b.starts_with("pending:") => {
            let since: i64 = b
                .split(':')
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            if now - since < CLAIM_SECONDS * 1_000_000 {
                return Err(Error::invalid("id", format!("ticket {id} is being billed")));
            }
        }
        Some(b) => {
            return Err(Error::invalid(
                "id",
                format!("ticket {id} is billed already (bill {b})"),
            ));
        }
    }
    sqlx::query("UPDATE tickets SET bill_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(&claim)
        .execute(&mut *tx)
        .await?;
    let recorded = lines_in(&mut tx, tenant, id).await?;
    tx.commit().await?;
    let release = || async {
        sqlx::query(
            "UPDATE tickets SET bill_id = NULL WHERE tenant_id = $1 AND id = $2 AND bill_id = $3",
        )
        .bind(tenant)
        .bind(id)
        .bind(&claim)
        .execute(&db.pool)
        .await
    };
    // a bill an earlier attempt settled for this ticket (and its customer) but did not link
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM bills WHERE tenant_id = $1 AND reference = $2 AND kind = 'sale' \
         AND (customer_id = $3 OR (customer_id IS NULL AND $4 = 1)) ORDER BY created_at LIMIT 1",
    )
    .bind(tenant)
    .bind(reference(id))
    .bind(t.customer_id.clone().unwrap_or_default())
    .bind(i64::from(t.customer_id.is_none()))
    .fetch_optional(&db.pool)
    .await?;
    let settled = match existing {
        Some(b) => settlement::get(db, tenant, &b).await,
        None if recorded.is_empty() => Err(Error::invalid(
            "id",
            "nothing to bill: record the repair's service items and parts first",
        )),
        None => {
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
            settlement::settle(db, host, actor, scoped.as_ref(), &settle_input).await
        }
    };
    let bill = match settled {
        Ok(b) => b,
        Err(e) => {
            // one bill per ticket (a unique index): another host's billing won the race
            let other: Option<String> = sqlx::query_scalar(
                "SELECT id FROM bills WHERE tenant_id = $1 AND reference = $2 AND kind = 'sale'",
            )
            .bind(tenant)
            .bind(reference(id))
            .fetch_optional(&db.pool)
            .await?;
            release().await?;
            return Err(match other {
                Some(b) => {
                    Error::invalid("id", format!("ticket {id} is billed already (bill {b})"))
                }
                None => e,
            });
        }
    };
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let linked = sqlx::query(
        "UPDATE tickets SET bill_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND bill_id = $5",
    )
    .bind(tenant)
    .bind(id)
    .bind(&bill.id)
    .bind(now)
    .bind(&claim)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if linked == 0 {
        return Err(Error::Internal(format!(
            "ticket {id}: its billing was taken over; bill {} is linked by the next settleTicket",
            bill.id
        )));
    }
    // the lines billed (none added or removed under the claim), as they are now: a
    // reservation given back meanwhile (the ticket closed) is taken from stock directly
    let billed: Vec<&str> = recorded.iter().map(|l| l.id.as_str()).collect();
    for l in lines_in(&mut tx, tenant, id)
        .await?
        .iter()
        .filter(|l| billed.contains(&l.id.as_str()) && l.kind == Kind::Part)
    {
        if l.reserved {
            stock::consume_in(&mut tx, tenant, &l.code, l.quantity).await?;
        } else {
            stock::take_in(&mut tx, tenant, &l.code, l.quantity).await?;
        }
    }
    sqlx::query("UPDATE ticket_lines SET reserved = 0 WHERE tenant_id = $1 AND ticket_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let detail =
        json!({ "billId": bill.id, "total": bill.total.to_string(), "currency": bill.currency });
    record(&mut tx, actor, id, "billed", detail, now).await?;
    tx.commit().await?;
    Ok(bill)
}
