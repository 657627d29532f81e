//! Spare-part stock: per SKU of the spare-part library, the count on hand and the count
//! reserved (by open repairs). A SKU without a recorded count is not tracked: nothing is
//! reserved or consumed for it. Counts are decimals with at most four places (metres of
//! pipe), stored as units of 10⁻⁴; every change is one conditional statement, so two
//! reservations at once never take more than is available.

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, money, time},
};
use shoal_crm::{audit, tenancy::Actor};

use crate::library::{self, PriceKind};

/// A SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    pub sku: String,
    pub on_hand: Decimal,
    pub reserved: Decimal,
}

impl Stock {
    /// What can still be reserved.
    pub fn available(&self) -> Decimal {
        self.on_hand - self.reserved
    }
}

fn units(field: &str, q: Decimal) -> Result<i64> {
    if q.is_sign_negative() || q.scale() > 4 {
        return Err(Error::invalid(
            field,
            "a count of 0 or more, at most 4 decimals",
        ));
    }
    money::to_units(q).map_err(|e| Error::invalid(field, e.to_string()))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Stock> {
    Ok(Stock {
        sku: r.try_get("sku")?,
        on_hand: money::from_units(r.try_get("on_hand_units")?),
        reserved: money::from_units(r.try_get("reserved_units")?),
    })
}

/// The stock of `sku`, if counted.
pub async fn of(conn: &mut AnyConnection, tenant: &str, sku: &str) -> Result<Option<Stock>> {
    sqlx::query("SELECT * FROM spare_part_stock WHERE tenant_id = $1 AND sku = $2")
        .bind(tenant)
        .bind(sku)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every counted SKU's stock, by SKU.
pub async fn all(db: &Db, tenant: &str) -> Result<Vec<Stock>> {
    sqlx::query("SELECT * FROM spare_part_stock WHERE tenant_id = $1 ORDER BY sku")
        .bind(tenant)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Records the count on hand of `sku` (permission `configure`; a SKU of the spare-part
/// library): a stocktake. Reservations stay; the count may fall below them (then nothing
/// more can be reserved until it is raised).
pub async fn set_on_hand(db: &Db, actor: &Actor, sku: &str, on_hand: Decimal) -> Result<Stock> {
    actor.require(Action::Configure)?;
    let on_hand_units = units("onHand", on_hand)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    if !library::exists(&mut tx, tenant, PriceKind::Part, sku).await? {
        return Err(Error::invalid("sku", format!("unknown spare part `{sku}`")));
    }
    sqlx::query(
        "INSERT INTO spare_part_stock (tenant_id, sku, on_hand_units, reserved_units, updated_at) VALUES ($1, $2, $3, 0, $4) \
         ON CONFLICT (tenant_id, sku) DO UPDATE SET on_hand_units = excluded.on_hand_units, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(sku)
    .bind(on_hand_units)
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "stock.counted",
        "spare_part",
        sku,
        json!({ "onHand": on_hand.to_string() }),
    )
    .await?;
    let s = of(&mut tx, tenant, sku)
        .await?
        .ok_or_else(|| Error::Internal("the counted stock is gone".into()))?;
    tx.commit().await?;
    Ok(s)
}

/// Reserves `quantity` of `sku` in the caller's transaction: `Ok(true)` reserved, `Ok(false)`
/// not tracked; an error naming `field` with what is available when there is not enough.
pub async fn reserve_in(
    conn: &mut AnyConnection,
    tenant: &str,
    sku: &str,
    quantity: Decimal,
    field: &str,
) -> Result<bool> {
    let q = units(field, quantity)?;
    let done = sqlx::query(
        "UPDATE spare_part_stock SET reserved_units = reserved_units + $3, updated_at = $4 \
         WHERE tenant_id = $1 AND sku = $2 AND on_hand_units - reserved_units >= $3",
    )
    .bind(tenant)
    .bind(sku)
    .bind(q)
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 1 {
        return Ok(true);
    }
    match of(conn, tenant, sku).await? {
        None => Ok(false),
        Some(s) => Err(Error::invalid(
            field,
            format!(
                "not enough `{sku}` in stock: {} available ({} on hand, {} reserved)",
                s.available().normalize(),
                s.on_hand.normalize(),
                s.reserved.normalize()
            ),
        )),
    }
}

/// Gives back a reservation of `quantity` of `sku` (caller's transaction).
pub async fn release_in(
    conn: &mut AnyConnection,
    tenant: &str,
    sku: &str,
    quantity: Decimal,
) -> Result<()> {
    adjust(conn, tenant, sku, quantity, (true, false)).await
}

/// Takes `quantity` of `sku` out of stock without a reservation (parts used by a repair
/// whose reservation was given back before it was billed); a SKU not counted is left alone.
pub async fn take_in(
    conn: &mut AnyConnection,
    tenant: &str,
    sku: &str,
    quantity: Decimal,
) -> Result<()> {
    adjust(conn, tenant, sku, quantity, (false, true)).await
}

/// Takes a reservation of `quantity` of `sku` out of stock: used (caller's transaction).
pub async fn consume_in(
    conn: &mut AnyConnection,
    tenant: &str,
    sku: &str,
    quantity: Decimal,
) -> Result<()> {
    adjust(conn, tenant, sku, quantity, (true, true)).await
}

/// Lowers the reserved count (never below zero) and/or the count on hand of `sku` by
/// `quantity`; a SKU not counted is left alone.
async fn adjust(
    conn: &mut AnyConnection,
    tenant: &str,
    sku: &str,
    quantity: Decimal,
    (reserved, on_hand): (bool, bool),
) -> Result<()> {
    let q = units("quantity", quantity)?;
    let mut set = Vec::new();
    if reserved {
        set.push(
            "reserved_units = CASE WHEN reserved_units >= $3 THEN reserved_units - $3 ELSE 0 END",
        );
    }
    if on_hand {
        set.push("on_hand_units = on_hand_units - $3");
    }
    sqlx::query(&format!(
        "UPDATE spare_part_stock SET {}, updated_at = $4 WHERE tenant_id = $1 AND sku = $2",
        set.join(", ")
    ))
    .bind(tenant)
    .bind(sku)
    .bind(q)
    .bind(time::to_micros(time::now()))
    .execute(conn)
    .await?;
    Ok(())
}
