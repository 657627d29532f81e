//! Reference data of settlement: the service-item and spare-part price libraries (versioned
//! by effective time), regional tiers and participants.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{AnyConnection, Row};

use super::{csv, currency_ok};
use serde_json::json;
use shoal_base::{
    error::{Error, Problems, Result},
    storage::{Db, money, time},
};
use shoal_crm::{audit, tenancy::Actor};

/// At most this many rows per upsert call.
pub const MAX_BATCH: usize = 1000;
/// Deepest participant hierarchy (HQ → … → staff).
pub const MAX_LEVELS: usize = 10;

/// A priced service (labour) in the library.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceItem {
    pub code: String,
    pub name: String,
    pub category: String,
    pub unit_price: Decimal,
    pub currency: String,
    pub labour_minutes: i64,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
}

/// A spare part (material) in the library.
#[derive(Debug, Clone, PartialEq)]
pub struct SparePart {
    pub sku: String,
    pub name: String,
    pub cost: Decimal,
    pub list_price: Decimal,
    pub currency: String,
    pub unit: String,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
}

/// Someone who shares in revenue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub name: String,
    pub role: String,
    pub parent_id: Option<String>,
    /// The split/commission agreement (a JSON object interpreted by the settlement module,
    /// e.g. `{"weight": 2}` or `{"commission_rate": "0.05"}`).
    pub agreement: serde_json::Map<String, serde_json::Value>,
}

fn check_code(p: &mut Problems, field: String, code: &str) {
    if code.trim().is_empty() || code.len() > 64 || code.chars().any(char::is_control) {
        p.push(field, "1–64 characters, no control characters");
    }
}

fn check_money(p: &mut Problems, field: String, amount: Decimal) {
    if amount.is_sign_negative() && !amount.is_zero() {
        p.push(field, "must not be negative");
    } else if let Err(e) = money::to_units(amount) {
        p.push(field, e.to_string());
    }
}

fn check_period(p: &mut Problems, field: &str, from: DateTime<Utc>, to: Option<DateTime<Utc>>) {
    if to.is_some_and(|to| to <= from) {
        p.push(
            format!("{field}.effectiveTo"),
            "must be after effectiveFrom",
        );
    }
}

/// Closes the open version of `key` that a new version starting at `from` supersedes.
async fn close_previous(
    conn: &mut AnyConnection,
    table: &str,
    key_col: &str,
    tenant: &str,
    key: &str,
    from: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {table} SET effective_to = $1 WHERE tenant_id = $2 AND {key_col} = $3 \
         AND effective_from < $1 AND (effective_to IS NULL OR effective_to > $1)"
    ))
    .bind(from)
    .bind(tenant)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts or replaces versions of service items; a version without `effective_to` closes
/// the one it supersedes. All or nothing.
pub async fn upsert_service_items(
    db: &Db,
    actor: &Actor,
    items: &[ServiceItem],
    field: &str,
) -> Result<usize> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    if items.len() > MAX_BATCH {
        return Err(Error::LimitExceeded {
            field: field.into(),
            message: format!("at most {MAX_BATCH} rows per call"),
        });
    }
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        check_code(&mut p, at("code"), &item.code);
        if item.name.trim().is_empty() {
            p.push(at("name"), "must not be empty");
        }
        check_money(&mut p, at("unitPrice"), item.unit_price);
        if !currency_ok(&item.currency) {
            p.push(at("currency"), "an ISO 4217 code such as CNY");
        }
        if item.labour_minutes < 0 {
            p.push(at("labourMinutes"), "must not be negative");
        }
        check_period(
            &mut p,
            &format!("{field}[{i}]"),
            item.effective_from,
            item.effective_to,
        );
    }
    p.into_result(())?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    for item in items {
        let from = time::to_micros(item.effective_from);
        if item.effective_to.is_none() {
            close_previous(&mut tx, "service_items", "code", tenant, &item.code, from).await?;
        }
        sqlx::query(
            "DELETE FROM service_items WHERE tenant_id = $1 AND code = $2 AND effective_from = $3",
        )
        .bind(tenant)
        .bind(&item.code)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO service_items (tenant_id, code, effective_from, effective_to, name, category, \
             unit_price_units, currency, labour_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(&item.code)
        .bind(from)
        .bind(item.effective_to.map(time::to_micros))
        .bind(&item.name)
        .bind(&item.category)
        .bind(money::to_units(item.unit_price).unwrap_or_default())
        .bind(&item.currency)
        .bind(item.labour_minutes)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "priceLibrary.serviceItem",
            "service_item",
            &item.code,
            json!({
                "effectiveFrom": item.effective_from.to_rfc3339(),
                "effectiveTo": item.effective_to.map(|t| t.to_rfc3339()),
                "unitPrice": item.unit_price.to_string(),
                "currency": item.currency,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(items.len())
}

/// Inserts or replaces versions of spare parts (as `upsert_service_items`).
pub async fn upsert_spare_parts(
    db: &Db,
    actor: &Actor,
    parts: &[SparePart],
    field: &str,
) -> Result<usize> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    if parts.len() > MAX_BATCH {
        return Err(Error::LimitExceeded {
            field: field.into(),
            message: format!("at most {MAX_BATCH} rows per call"),
        });
    }
    let mut p = Problems::default();
    for (i, part) in parts.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        check_code(&mut p, at("sku"), &part.sku);
        if part.name.trim().is_empty() {
            p.push(at("name"), "must not be empty");
        }
        check_money(&mut p, at("cost"), part.cost);
        check_money(&mut p, at("listPrice"), part.list_price);
        if !currency_ok(&part.currency) {
            p.push(at("currency"), "an ISO 4217 code such as CNY");
        }
        if part.unit.trim().is_empty() {
            p.push(at("unit"), "must not be empty (e.g. pcs, ml)");
        }
        check_period(
            &mut p,
            &format!("{field}[{i}]"),
            part.effective_from,
            part.effective_to,
        );
    }
    p.into_result(())?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    for part in parts {
        let from = time::to_micros(part.effective_from);
        if part.effective_to.is_none() {
            close_previous(&mut tx, "spare_parts", "sku", tenant, &part.sku, from).await?;
        }
        sqlx::query(
            "DELETE FROM spare_parts WHERE tenant_id = $1 AND sku = $2 AND effective_from = $3",
        )
        .bind(tenant)
        .bind(&part.sku)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO spare_parts (tenant_id, sku, effective_from, effective_to, name, cost_units, \
             list_price_units, currency, unit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(&part.sku)
        .bind(from)
        .bind(part.effective_to.map(time::to_micros))
        .bind(&part.name)
        .bind(money::to_units(part.cost).unwrap_or_default())
        .bind(money::to_units(part.list_price).unwrap_or_default())
        .bind(&part.currency)
        .bind(&part.unit)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "priceLibrary.sparePart",
            "spare_part",
            &part.sku,
            json!({
                "effectiveFrom": part.effective_from.to_rfc3339(),
                "effectiveTo": part.effective_to.map(|t| t.to_rfc3339()),
                "cost": part.cost.to_string(),
                "listPrice": part.list_price.to_string(),
                "currency": part.currency,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(parts.len())
}

/// A library price: unit price, currency, name.
pub type Price = (Decimal, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceKind {
    Service,
    Part,
}

/// Whether a library code exists at all (to tell "unknown" from "no price at that time").
pub async fn exists(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: PriceKind,
    code: &str,
) -> Result<bool> {
    let (table, key) = match kind {
        PriceKind::Service => ("service_items", "code"),
        PriceKind::Part => ("spare_parts", "sku"),
    };
    Ok(sqlx::query(&format!(
        "SELECT 1 FROM {table} WHERE tenant_id = $1 AND {key} = $2 LIMIT 1"
    ))
    .bind(tenant)
    .bind(code)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Reads a price library from CSV. Service items: `code,name,category,unit_price,currency,
/// labour_minutes[,effective_from]`; spare parts: `sku,name,cost,list_price,currency,unit
/// [,effective_from]`. Dates are RFC 3339 or `YYYY-MM-DD` (UTC). Errors name the line and column.
pub fn parse_csv(text: &str, kind: PriceKind) -> Result<(Vec<ServiceItem>, Vec<SparePart>)> {
    let rows = csv::parse(text).map_err(|e| Error::invalid("csv", e))?;
    let Some((header, body)) = rows.split_first() else {
        return Err(Error::invalid(
            "csv",
            "empty: the first line must name the columns",
        ));
    };
    let required: &[&str] = match kind {
        PriceKind::Service => &[
            "code",
            "name",
            "category",
            "unit_price",
            "currency",
            "labour_minutes",
        ],
        PriceKind::Part => &["sku", "name", "cost", "list_price", "currency", "unit"],
    };
    let col: BTreeMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim(), i))
        .collect();
    let missing: Vec<&&str> = required.iter().filter(|r| !col.contains_key(**r)).collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "csv",
            format!("missing columns: {missing:?}"),
        ));
    }
    let mut p = Problems::default();
    let (mut items, mut parts) = (Vec::new(), Vec::new());
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    for (i, row) in body.iter().enumerate() {
        let line = i + 2;
        let get = |name: &str| {
            col.get(name)
                .and_then(|c| row.get(*c))
                .map(|s| s.trim())
                .unwrap_or("")
        };
        let dec = |p: &mut Problems, name: &str| -> Decimal {
            get(name).parse().unwrap_or_else(|_| {
                p.push(
                    format!("csv line {line}, column {name}"),
                    format!("`{}` is not a decimal number", get(name)),
                );
                Decimal::ZERO
            })
        };
        let from = match get("effective_from") {
            "" => epoch,
            text => match parse_time(text) {
                Some(t) => t,
                None => {
                    p.push(
                        format!("csv line {line}, column effective_from"),
                        format!("`{text}` is not a date"),
                    );
                    epoch
                }
            },
        };
        match kind {
            PriceKind::Service => {
                let unit_price = dec(&mut p, "unit_price");
                let minutes = get("labour_minutes").parse::<i64>().unwrap_or_else(|_| {
                    p.push(
                        format!("csv line {line}, column labour_minutes"),
                        "must be a whole number",
                    );
                    0
                });
                items.push(ServiceItem {
                    code: get("code").into(),
                    name: get("name").into(),
                    category: get("category").into(),
                    unit_price,
                    currency: get("currency").into(),
                    labour_minutes: minutes,
                    effective_from: from,
                    effective_to: None,
                });
            }
            PriceKind::Part => {
                let (cost, list_price) = (dec(&mut p, "cost"), dec(&mut p, "list_price"));
                parts.push(SparePart {
                    sku: get("sku").into(),
                    name: get("name").into(),
                    cost,
                    list_price,
                    currency: get("currency").into(),
                    unit: get("unit").into(),
                    effective_from: from,
                    effective_to: None,
                });
            }
        }
    }
    p.into_result((items, parts))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
}

/// Sets (or replaces) the tier of a region, overriding the module's parameters.
pub async fn set_region_tier(db: &Db, actor: &Actor, region: &str, tier: &str) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    check_code(&mut p, "region".into(), region);
    check_code(&mut p, "tier".into(), tier);
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM region_tiers WHERE tenant_id = $1 AND region = $2")
        .bind(actor.tenant_id())
        .bind(region)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO region_tiers (tenant_id, region, tier) VALUES ($1, $2, $3)")
        .bind(actor.tenant_id())
        .bind(region)
        .bind(tier)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "settlement.regionTier",
        "region",
        region,
        json!({ "tier": tier }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a tier's adjustment: a percentage (`10` = +10%) or a fixed amount per line unit.
pub async fn set_tier_adjustment(
    db: &Db,
    actor: &Actor,
    tier: &str,
    percent: Option<Decimal>,
    amount: Option<Decimal>,
) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let mut p = Problems::default();
    check_code(&mut p, "tier".into(), tier);
    match (percent, amount) {
        (Some(_), Some(_)) | (None, None) => {
            p.push("percent", "give exactly one of percent or amount")
        }
        (Some(pc), None) if pc <= Decimal::from(-100) => p.push("percent", "must be above -100"),
        (None, Some(a)) if money::to_units(a).is_err() => {
            p.push("amount", "at most 4 decimal places")
        }
        _ => {}
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM tier_adjustments WHERE tenant_id = $1 AND tier = $2")
        .bind(actor.tenant_id())
        .bind(tier)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tier_adjustments (tenant_id, tier, percent, amount_units) VALUES ($1, $2, $3, $4)")
        .bind(actor.tenant_id())
        .bind(tier)
        .bind(percent.map(|d| d.normalize().to_string()))
        .bind(amount.map(|a| money::to_units(a).unwrap_or_default()))
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "settlement.tierAdjustment",
        "tier",
        tier,
        json!({
            "percent": percent.map(|d| d.normalize().to_string()),
            "amount": amount.map(|a| a.to_string()),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts or replaces participants. Parents must exist (in this batch or before), the
/// hierarchy must have no cycle and at most [`MAX_LEVELS`] levels.
pub async fn upsert_participants(db: &Db, actor: &Actor, input: &[Participant]) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let mut all = participants(&mut tx, tenant).await?;
    let mut p = Problems::default();
    for (i, part) in input.iter().enumerate() {
        check_code(&mut p, format!("input[{i}].id"), &part.id);
        if part.name.trim().is_empty() {
            p.push(format!("input[{i}].name"), "must not be empty");
        }
        check_code(&mut p, format!("input[{i}].role"), &part.role);
        all.insert(part.id.clone(), part.clone());
    }
    for (i, part) in input.iter().enumerate() {
        if let Some(parent) = &part.parent_id
            && !all.contains_key(parent)
        {
            p.push(
                format!("input[{i}].parentId"),
                format!("no participant `{parent}`"),
            );
        } else if let Err(why) = depth(&all, &part.id) {
            p.push(format!("input[{i}].parentId"), why);
        }
    }
    p.into_result(())?;
    for part in input {
        sqlx::query("DELETE FROM participants WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(&part.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO participants (tenant_id, id, name, role, parent_id, agreement) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(tenant)
            .bind(&part.id)
            .bind(&part.name)
            .bind(&part.role)
            .bind(&part.parent_id)
            .bind(serde_json::Value::Object(part.agreement.clone()).to_string())
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "settlement.participant",
            "participant",
            &part.id,
            json!({
                "name": part.name,
                "role": part.role,
                "parentId": part.parent_id,
                "agreement": part.agreement,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Levels from `id` up to its root (1 for a root); refuses cycles and deep chains.
pub fn depth(all: &BTreeMap<String, Participant>, id: &str) -> Result<usize, String> {
    let mut levels = 1;
    let mut current = all.get(id).and_then(|p| p.parent_id.clone());
    while let Some(parent) = current {
        if parent == id {
            return Err(format!("participant `{id}` is its own ancestor"));
        }
        levels += 1;
        if levels > MAX_LEVELS {
            return Err(format!(
                "the hierarchy above `{id}` is deeper than {MAX_LEVELS} levels"
            ));
        }
        current = all.get(&parent).and_then(|p| p.parent_id.clone());
    }
    Ok(levels)
}

/// A stored agreement: its JSON object, or none when the text is not one.
pub fn agreement_of(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Every participant of a tenant, by id.
pub async fn participants(
    conn: &mut AnyConnection,
    tenant: &str,
) -> Result<BTreeMap<String, Participant>> {
    let rows = sqlx::query(
        "SELECT id, name, role, parent_id, agreement FROM participants WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let p = Participant {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                role: r.try_get("role")?,
                parent_id: r.try_get("parent_id")?,
                agreement: agreement_of(&r.try_get::<String, _>("agreement")?),
            };
            Ok((p.id.clone(), p))
        })
        .collect()
}
