//! Settling bills: price lines from the libraries, let the tenant's module compute the bill
//! and its splits, check the result, and store bill, lines and balanced ledger postings in
//! one transaction. Refunds are new bills that reverse an original, never edits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::{
    currency_ok,
    ledger::{self, Posting},
    library::{self, PriceKind},
    minor_unit, reference,
};
use shoal_base::{
    error::{Error, FieldError, Problems, Result},
    storage::{
        Db, money,
        sql::{Arg, Sql},
        time,
    },
};
use shoal_crm::{access::ScopedId, audit, tenancy::Actor};
use shoal_plugin_host::{CallError, PluginHost, types};

/// What a line of a bill to settle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A service item from the library (labour).
    Service,
    /// A spare part from the library (material).
    Part,
    Transport,
    Discount,
    Coupon,
    Adjustment,
}

impl LineKind {
    fn priced_by_library(self) -> Option<PriceKind> {
        match self {
            LineKind::Service => Some(PriceKind::Service),
            LineKind::Part => Some(PriceKind::Part),
            _ => None,
        }
    }

    fn wit(self) -> types::LineKind {
        match self {
            LineKind::Service => types::LineKind::Labour,
            LineKind::Part => types::LineKind::Part,
            LineKind::Transport => types::LineKind::Transport,
            LineKind::Discount | LineKind::Coupon | LineKind::Adjustment => {
                types::LineKind::Adjustment
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineInput {
    pub kind: LineKind,
    pub code: String,
    pub quantity: Decimal,
    /// Required for transport, discount, coupon and adjustment lines; taken from the
    /// library for service items and parts.
    pub unit_price: Option<Decimal>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SettleInput {
    /// The module that settles; by default the one settlement module the tenant enabled.
    pub module: Option<String>,
    /// The order, ticket or visit this bill is for.
    pub reference: String,
    pub customer_id: Option<String>,
    pub region: String,
    pub currency: String,
    /// Library prices in effect at this time (default: now).
    pub priced_at: Option<DateTime<Utc>>,
    pub lines: Vec<LineInput>,
    pub participant_ids: Vec<String>,
    /// Facts for the module (a JSON object), passed in the request's `attributes`.
    pub facts: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillKind {
    Sale,
    Refund,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BillLine {
    pub line_no: i64,
    pub code: String,
    pub description: String,
    pub kind: String,
    pub quantity: String,
    /// The library (or given) unit price before the module's adjustments.
    pub base_price: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    pub id: String,
    pub kind: BillKind,
    pub original_id: Option<String>,
    pub reference: String,
    pub customer_id: Option<String>,
    pub region: String,
    pub currency: String,
    pub total: Decimal,
    pub module_id: String,
    pub module_version: String,
    pub module_sha256: String,
    pub lines: Vec<BillLine>,
    pub postings: Vec<Posting>,
    pub notes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

const MAX_LINES: usize = 500;

/// Settles and stores a bill; its customer, if any, is `customer` (checked by `Access`
/// for bills, the id `input.customer_id` names).
pub async fn settle(
    db: &Db,
    host: &PluginHost,
    actor: &Actor,
    customer: Option<&ScopedId>,
    input: &SettleInput,
) -> Result<Bill> {
    actor.require(shoal_base::kinds::Action::Settle)?;
    let tenant = actor.tenant_id();
    let checked = customer
        .map(|c| c.for_use(tenant, shoal_base::kinds::Resource::Bills))
        .transpose()?;
    if checked != input.customer_id.as_deref() {
        return Err(Error::Internal(
            "a bill was checked for another customer".into(),
        ));
    }
    check_input(input)?;
    let module = choose_module(host, tenant, input.module.as_deref())?;
    let at = input.priced_at.unwrap_or_else(time::now);

    let mut conn = db.pool.acquire().await?;
    let mut p = Problems::default();
    match &input.facts {
        None | Some(Value::Object(_)) => {}
        Some(_) => p.push("input.facts", "must be a JSON object"),
    }
    if input
        .facts
        .as_ref()
        .is_some_and(|f| f.to_string().len() > 16 * 1024)
    {
        p.push("input.facts", "at most 16 KiB as JSON");
    }
    let mut lines = Vec::with_capacity(input.lines.len());
    let mut base_prices = Vec::with_capacity(input.lines.len());
    let priced: Vec<(PriceKind, &str)> = input
        .lines
        .iter()
        .filter_map(|l| Some((l.kind.priced_by_library()?, l.code.as_str())))
        .collect();
    let named: Vec<&str> = input.participant_ids.iter().map(String::as_str).collect();
    let reference = reference::read(&mut conn, tenant, &priced, &named, at).await?;
    let prices = &reference.prices;
    for (i, line) in input.lines.iter().enumerate() {
        let (price, name) = match line.kind.priced_by_library() {
            Some(kind) => match prices.get(&kind).and_then(|p| p.get(&line.code)).cloned() {
                Some((price, currency, name)) if currency == input.currency => (price, name),
                Some((_, currency, _)) => {
                    p.push(
                        format!("input.lines[{i}].code"),
                        format!(
                            "`{}` is priced in {currency}, the bill in {}",
                            line.code, input.currency
                        ),
                    );
                    continue;
                }
                None if library::exists(&mut conn, tenant, kind, &line.code).await? => {
                    p.push(
                        format!("input.lines[{i}].code"),
                        format!(
                            "`{}` has no price in effect at {} (expired or not yet valid)",
                            line.code,
                            at.to_rfc3339()
                        ),
                    );
                    continue;
                }
                None => {
                    let what = if kind == PriceKind::Service {
                        "service item"
                    } else {
                        "spare part"
                    };
                    p.push(
                        format!("input.lines[{i}].code"),
                        format!("unknown {what} `{}`", line.code),
                    );
                    continue;
                }
            },
            None => {
                let price = line.unit_price.unwrap_or_default();
                let signed = if matches!(line.kind, LineKind::Discount | LineKind::Coupon) {
                    -price
                } else {
                    price
                };
                (signed, line.code.clone())
            }
        };
        base_prices.push(price);
        lines.push(types::BillLine {
            code: line.code.clone(),
            description: line.description.clone().unwrap_or(name),
            kind: line.kind.wit(),
            quantity: line.quantity.normalize().to_string(),
            unit_price: types::Money {
                amount: price.normalize().to_string(),
                currency: input.currency.clone(),
            },
        });
    }
    let known = &reference.participants;
    let mut chosen: Vec<&library::Participant> = Vec::new();
    for (i, id) in input.participant_ids.iter().enumerate() {
        match known.get(id) {
            None => p.push(
                format!("input.participantIds[{i}]"),
                format!("no participant `{id}`"),
            ),
            Some(first) => {
                // the participant and every ancestor, each once
                let mut current = Some(first);
                while let Some(part) = current {
                    if !chosen.iter().any(|c| c.id == part.id) {
                        chosen.push(part);
                    }
                    current = part.parent_id.as_ref().and_then(|parent| known.get(parent));
                }
            }
        }
    }
    p.into_result(())?;
    drop(conn);
    let overrides = reference.tier_params;

    let request = types::SettleRequest {
        bill_id: uuid::Uuid::now_v7().to_string(),
        currency: input.currency.clone(),
        region: input.region.clone(),
        lines,
        participants: chosen
            .iter()
            .map(|p| types::Participant {
                id: p.id.clone(),
                role: p.role.clone(),
                parent: p.parent_id.clone(),
            })
            .collect(),
        // extensible facts for the module: the participants' agreements travel here
        attributes: {
            // the caller's facts first; the host's own keys win
            let mut facts = match &input.facts {
                Some(Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            };
            facts.insert("reference".into(), json!(input.reference));
            facts.insert("customerId".into(), json!(input.customer_id));
            facts.insert(
                "agreements".into(),
                Value::Object(
                    chosen
                        .iter()
                        .map(|p| (p.id.clone(), Value::Object(p.agreement.clone())))
                        .collect(),
                ),
            );
            Value::Object(facts).to_string()
        },
    };
    let settled = host
        .settle_recorded(tenant, &module, request.clone(), &overrides)
        .await
        .map_err(|e| call_error(&module, e))?;
    let settlement = settled.result.clone().map_err(|refusal| {
        Error::Invalid(vec![FieldError::new(
            "input",
            format!(
                "module `{module}` refused the bill ({}): {}",
                refusal.code, refusal.message
            ),
        )])
    })?;
    let checked = check_settlement(&module, &request, &settlement)?;

    let bill = Bill {
        id: request.bill_id.clone(),
        kind: BillKind::Sale,
        original_id: None,
        reference: input.reference.clone(),
        customer_id: input.customer_id.clone(),
        region: input.region.clone(),
        currency: input.currency.clone(),
        total: checked.total,
        module_id: module.clone(),
        module_version: settled.module_version.clone(),
        module_sha256: settled.module_sha256.clone(),
        lines: settlement
            .lines
            .iter()
            .zip(&checked.line_amounts)
            .enumerate()
            .map(|(i, (l, (unit, amount)))| BillLine {
                line_no: i as i64 + 1,
                code: l.code.clone(),
                description: l.description.clone(),
                kind: line_kind_name(l.kind).into(),
                quantity: l.quantity.clone(),
                base_price: base_price(&request, &base_prices, i, &l.code).unwrap_or(*unit),
                unit_price: *unit,
                amount: *amount,
                note: l.note.clone(),
            })
            .collect(),
        postings: ledger::double_entry(
            &request.bill_id,
            input.customer_id.as_deref(),
            &input.currency,
            checked.total,
            &checked.splits,
            time::now(),
        ),
        notes: settlement.notes.clone(),
        created_at: time::now(),
        created_by: actor.user_id.clone(),
    };
    let record = Record {
        request: serde_json::to_value(&request).unwrap_or_default(),
        params: settled.params,
        response: serde_json::to_value(&settlement).unwrap_or_default(),
    };
    store(db, actor, &bill, &record).await?;
    Ok(bill)
}

fn check_input(input: &SettleInput) -> Result<()> {
    let mut p = Problems::default();
    if input.reference.trim().is_empty() {
        p.push("input.reference", "must not be empty");
    }
    if input.region.trim().is_empty() {
        p.push("input.region", "must not be empty");
    }
    if !currency_ok(&input.currency) {
        p.push("input.currency", "an ISO 4217 code such as CNY");
    }
    if input.lines.is_empty() || input.lines.len() > MAX_LINES {
        p.push("input.lines", format!("1–{MAX_LINES} lines"));
    }
    if input.participant_ids.is_empty() {
        p.push(
            "input.participantIds",
            "at least one participant receives the revenue",
        );
    }
    for (i, line) in input.lines.iter().enumerate() {
        let at = |f: &str| format!("input.lines[{i}].{f}");
        if line.code.trim().is_empty() {
            p.push(at("code"), "must not be empty");
        }
        if line.quantity <= Decimal::ZERO {
            p.push(
                at("quantity"),
                "must be positive (a refund is a refund bill, not a negative line)",
            );
        } else if money::to_units(line.quantity).is_err() {
            p.push(at("quantity"), "at most 4 decimal places");
        }
        match (line.kind.priced_by_library(), line.unit_price) {
            (Some(_), Some(_)) => p.push(
                at("unitPrice"),
                "comes from the price library for service items and parts",
            ),
            (None, None) => p.push(
                at("unitPrice"),
                "required for transport, discount, coupon and adjustment lines",
            ),
            (None, Some(price)) => {
                if price.is_sign_negative() && line.kind != LineKind::Adjustment {
                    p.push(at("unitPrice"), "must not be negative (discounts and coupons are given as positive amounts)");
                } else if money::to_units(price).is_err() {
                    p.push(at("unitPrice"), "at most 4 decimal places");
                }
            }
            (Some(_), None) => {}
        }
    }
    p.into_result(())
}

/// The module to settle with: the one named, or the tenant's only settlement module.
fn choose_module(host: &PluginHost, tenant: &str, named: Option<&str>) -> Result<String> {
    let candidates: Vec<String> = host
        .modules(tenant)
        .into_iter()
        .filter(|m| m.capabilities.contains(&"settlement"))
        .map(|m| m.info.id)
        .collect();
    match named {
        Some(id) if candidates.iter().any(|c| c == id) => Ok(id.to_owned()),
        Some(id) => Err(Error::Forbidden(format!(
            "module `{id}` is not enabled (and loaded) for this tenant with the settlement capability"
        ))),
        None => match candidates.as_slice() {
            [one] => Ok(one.clone()),
            [] => {
                let why: Vec<String> = host
                    .unavailable(tenant)
                    .into_iter()
                    .map(|(id, why)| format!("`{id}`: {why}"))
                    .collect();
                Err(Error::invalid(
                    "input.module",
                    if why.is_empty() {
                        "no settlement module is enabled for this tenant".to_owned()
                    } else {
                        format!(
                            "no settlement module is running for this tenant ({})",
                            why.join("; ")
                        )
                    },
                ))
            }
            many => Err(Error::invalid(
                "input.module",
                format!(
                    "several settlement modules are enabled ({}); name one",
                    many.join(", ")
                ),
            )),
        },
    }
}

fn call_error(module: &str, e: CallError) -> Error {
    match e {
        CallError::NotEnabled { module } => {
            Error::Forbidden(format!("module `{module}` is not enabled for this tenant"))
        }
        other => Error::Plugin {
            module: module.to_owned(),
            kind: other.kind(),
            message: other.to_string(),
        },
    }
}

struct Checked {
    total: Decimal,
    line_amounts: Vec<(Decimal, Decimal)>,
    splits: Vec<(String, Decimal, String)>,
}

/// Exact money from a module's string, at most the currency's minor-unit decimals.
fn amount_of(module: &str, what: &str, m: &types::Money, currency: &str) -> Result<Decimal> {
    let invalid = |message: String| Error::Plugin {
        module: module.into(),
        kind: "invalid_settlement",
        message,
    };
    if m.currency != currency {
        return Err(invalid(format!(
            "{what} is in {}, the bill in {currency}",
            m.currency
        )));
    }
    let d: Decimal = m
        .amount
        .parse()
        .map_err(|_| invalid(format!("{what} `{}` is not a decimal", m.amount)))?;
    if d.normalize().scale() > minor_unit(currency) {
        return Err(invalid(format!(
            "{what} {d} has more decimals than {currency} allows ({})",
            minor_unit(currency)
        )));
    }
    money::to_units(d).map_err(|e| invalid(format!("{what} {e}")))?;
    Ok(d)
}

/// The host does not trust a module's arithmetic: currencies agree, lines add up to the
/// total, splits add up to the total exactly, nothing negative but adjustments, splits go
/// to the bill's participants.
fn check_settlement(
    module: &str,
    request: &types::SettleRequest,
    s: &types::Settlement,
) -> Result<Checked> {
    let invalid = |message: String| Error::Plugin {
        module: module.into(),
        kind: "invalid_settlement",
        message,
    };
    let currency = &request.currency;
    let total = amount_of(module, "the total", &s.total, currency)?;
    if total.is_sign_negative() && !total.is_zero() {
        return Err(invalid(format!("the total {total} is negative")));
    }
    if s.lines.is_empty() {
        return Err(invalid("the settlement has no lines".into()));
    }
    let mut line_amounts = Vec::with_capacity(s.lines.len());
    for (i, l) in s.lines.iter().enumerate() {
        let unit = amount_of(
            module,
            &format!("line {i} unit price"),
            &l.unit_price,
            currency,
        )
        .or_else(|_| {
            l.unit_price
                .amount
                .parse::<Decimal>()
                .map_err(|_| invalid(format!("line {i} unit price is not a decimal")))
        })?;
        let amount = amount_of(module, &format!("line {i} amount"), &l.amount, currency)?;
        if amount.is_sign_negative() && !amount.is_zero() && l.kind != types::LineKind::Adjustment {
            return Err(invalid(format!(
                "line {i} ({}) has a negative amount {amount}",
                l.code
            )));
        }
        line_amounts.push((unit, amount));
    }
    let sum: Decimal = line_amounts.iter().map(|(_, a)| *a).sum();
    if sum != total {
        return Err(invalid(format!(
            "the lines add up to {sum}, the total is {total}"
        )));
    }
    let mut splits = Vec::with_capacity(s.splits.len());
    for (i, split) in s.splits.iter().enumerate() {
        let amount = amount_of(module, &format!("split {i}"), &split.amount, currency)?;
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(invalid(format!(
                "split {i} to `{}` is negative",
                split.participant_id
            )));
        }
        if !request
            .participants
            .iter()
            .any(|p| p.id == split.participant_id)
        {
            return Err(invalid(format!(
                "split {i} goes to `{}`, who is not a participant of the bill",
                split.participant_id
            )));
        }
        splits.push((split.participant_id.clone(), amount, split.reason.clone()));
    }
    let shared: Decimal = splits.iter().map(|(_, a, _)| *a).sum();
    if shared != total {
        return Err(invalid(format!(
            "the splits add up to {shared}, the total is {total}"
        )));
    }
    Ok(Checked {
        total,
        line_amounts,
        splits,
    })
}

fn base_price(
    request: &types::SettleRequest,
    bases: &[Decimal],
    i: usize,
    code: &str,
) -> Option<Decimal> {
    match request.lines.get(i) {
        Some(l) if l.code == code => bases.get(i).copied(),
        _ => request
            .lines
            .iter()
            .position(|l| l.code == code)
            .and_then(|j| bases.get(j).copied()),
    }
}

fn line_kind_name(kind: types::LineKind) -> &'static str {
    match kind {
        types::LineKind::Labour => "labour",
        types::LineKind::Part => "part",
        types::LineKind::Transport => "transport",
        types::LineKind::Service => "service",
        types::LineKind::Adjustment => "adjustment",
        types::LineKind::Other => "other",
    }
}

/// What a bill records for replay: the exact request, parameters and answer.
pub struct Record {
    pub request: Value,
    pub params: Value,
    pub response: Value,
}

async fn store(db: &Db, actor: &Actor, bill: &Bill, record: &Record) -> Result<()> {
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO bills (tenant_id, id, kind, original_id, reference, customer_id, region, currency, total_units, \
         module_id, module_version, module_sha256, request, params, response, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(tenant)
    .bind(&bill.id)
    .bind(match bill.kind { BillKind::Sale => "sale", BillKind::Refund => "refund" })
    .bind(&bill.original_id)
    .bind(&bill.reference)
    .bind(&bill.customer_id)
    .bind(&bill.region)
    .bind(&bill.currency)
    .bind(units(bill.total)?)
    .bind(&bill.module_id)
    .bind(&bill.module_version)
    .bind(&bill.module_sha256)
    .bind(record.request.to_string())
    .bind(record.params.to_string())
    .bind(record.response.to_string())
    .bind(time::to_micros(bill.created_at))
    .bind(&bill.created_by)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e.as_database_error() {
        Some(d) if d.is_unique_violation() => Error::invalid("id", "this bill was already refunded"),
        _ => Error::Storage(e),
    })?;
    // the lines in one statement (at most MAX_LINES rows of 11 values)
    let mut lines = Sql::new(
        "INSERT INTO bill_lines (tenant_id, bill_id, line_no, code, description, kind, quantity, base_price_units, \
         unit_price_units, amount_units, note) VALUES ",
    );
    for (i, line) in bill.lines.iter().enumerate() {
        lines.push_row(
            i == 0,
            [
                Arg::from(tenant),
                bill.id.as_str().into(),
                line.line_no.into(),
                line.code.as_str().into(),
                line.description.as_str().into(),
                line.kind.as_str().into(),
                line.quantity.as_str().into(),
                units(line.base_price)?.into(),
                units(line.unit_price)?.into(),
                units(line.amount)?.into(),
                line.note.clone().into(),
            ],
        );
    }
    if !bill.lines.is_empty() {
        lines.on(db.backend).query().execute(&mut *tx).await?;
    }
    ledger::post(&mut tx, tenant, &bill.id, &bill.postings).await?;
    let action = match bill.kind {
        BillKind::Sale => "bill.settle",
        BillKind::Refund => "bill.refund",
    };
    audit::record(&mut tx, actor, action, "bill", &bill.id, json!({ "total": bill.total.to_string(), "currency": bill.currency, "reference": bill.reference })).await?;
    // on the change feed (webhooks, subscriptions, staff notifications); a bill without a
    // customer is announced with an empty customer id
    let announced = match bill.kind {
        BillKind::Sale => "bill.settled",
        BillKind::Refund => "bill.refunded",
    };
    shoal_crm::internal_events::emit(
        &mut tx,
        tenant,
        announced,
        bill.customer_id.as_deref().unwrap_or(""),
        &json!({ "billId": bill.id, "total": bill.total.to_string(), "currency": bill.currency, "reference": bill.reference }),
        time::to_micros(time::now()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn units(d: Decimal) -> Result<i64> {
    money::to_units(d).map_err(|e| Error::Internal(format!("amount {d} {e}")))
}

/// Refunds a sale in full: a new bill with every line, split and posting reversed.
pub async fn refund(db: &Db, actor: &Actor, id: &str, reason: &str) -> Result<Bill> {
    actor.require(shoal_base::kinds::Action::Settle)?;
    ensure_visible(db, actor, id).await?;
    let (original, record) = get_with_record(db, actor.tenant_id(), id).await?;
    if original.kind != BillKind::Sale {
        return Err(Error::invalid("id", "only a sale can be refunded"));
    }
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "must not be empty"));
    }
    let refund_id = uuid::Uuid::now_v7().to_string();
    let now = time::now();
    let bill = Bill {
        id: refund_id.clone(),
        kind: BillKind::Refund,
        original_id: Some(original.id.clone()),
        total: -original.total,
        lines: original
            .lines
            .iter()
            .map(|l| BillLine {
                amount: -l.amount,
                note: Some(format!("refund: {reason}")),
                ..l.clone()
            })
            .collect(),
        postings: original
            .postings
            .iter()
            .map(|p| Posting {
                bill_id: refund_id.clone(),
                amount: -p.amount,
                reason: format!("refund of {}: {reason}", p.reason),
                posted_at: now,
                ..p.clone()
            })
            .collect(),
        notes: vec![format!("refund of bill {}: {reason}", original.id)],
        created_at: now,
        created_by: actor.user_id.clone(),
        ..original.clone()
    };
    store(db, actor, &bill, &record).await?;
    Ok(bill)
}

/// `NOT_FOUND` unless the actor's scope for bills reaches bill `id` (by its customer; a
/// bill without a customer needs scope `all`).
pub async fn ensure_visible(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor
        .access
        .ensure_linked(db, shoal_base::kinds::Resource::Bills, "bills", "bill", id)
        .await
}

/// The bills a customer paid (or was refunded), newest first, at most `limit`. The customer
/// comes as a proof of the bills scope ([`ScopedId`]), so out of scope is `NOT_FOUND` before
/// any bill is read.
pub async fn of_customer(db: &Db, customer: &ScopedId, limit: i64) -> Result<Vec<Bill>> {
    let tenant = customer.tenant_id();
    let id = customer.for_use(tenant, shoal_base::kinds::Resource::Bills)?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM bills WHERE tenant_id = $1 AND customer_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit.clamp(1, 100))
    .fetch_all(&db.pool)
    .await?;
    let mut bills = Vec::with_capacity(ids.len());
    for id in ids {
        bills.push(get(db, tenant, &id).await?);
    }
    Ok(bills)
}

/// A bill the actor's scope reaches, with its lines and postings.
pub async fn get_visible(db: &Db, actor: &Actor, id: &str) -> Result<Bill> {
    ensure_visible(db, actor, id).await?;
    get(db, actor.tenant_id(), id).await
}

/// A bill of the tenant with its lines and postings.
pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Bill> {
    get_with_record(db, tenant, id).await.map(|(bill, _)| bill)
}

pub async fn get_with_record(db: &Db, tenant: &str, id: &str) -> Result<(Bill, Record)> {
    let mut conn = db.pool.acquire().await?;
    let row = sqlx::query("SELECT * FROM bills WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("bill", id))?;
    let json = |col: &str| -> Result<Value> {
        let text: String = row.try_get(col)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let record = Record {
        request: json("request")?,
        params: json("params")?,
        response: json("response")?,
    };
    let kind: String = row.try_get("kind")?;
    let bill = Bill {
        id: row.try_get("id")?,
        kind: if kind == "refund" {
            BillKind::Refund
        } else {
            BillKind::Sale
        },
        original_id: row.try_get("original_id")?,
        reference: row.try_get("reference")?,
        customer_id: row.try_get("customer_id")?,
        region: row.try_get("region")?,
        currency: row.try_get("currency")?,
        total: money::from_units(row.try_get("total_units")?),
        module_id: row.try_get("module_id")?,
        module_version: row.try_get("module_version")?,
        module_sha256: row.try_get("module_sha256")?,
        lines: lines_of(&mut conn, tenant, id).await?,
        postings: ledger::postings_of(&mut conn, tenant, id).await?,
        notes: record.response["notes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        created_at: time::from_micros(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
    };
    Ok((bill, record))
}

async fn lines_of(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Vec<BillLine>> {
    let rows = sqlx::query(
        "SELECT * FROM bill_lines WHERE tenant_id = $1 AND bill_id = $2 ORDER BY line_no",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(BillLine {
                line_no: r.try_get("line_no")?,
                code: r.try_get("code")?,
                description: r.try_get("description")?,
                kind: r.try_get("kind")?,
                quantity: r.try_get("quantity")?,
                base_price: money::from_units(r.try_get("base_price_units")?),
                unit_price: money::from_units(r.try_get("unit_price_units")?),
                amount: money::from_units(r.try_get("amount_units")?),
                note: r.try_get("note")?,
            })
        })
        .collect()
}

/// The outcome of re-running a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Identical,
    /// The first place where the new answer differs from the recorded one.
    Different(String),
    /// The module version that produced the bill is not loaded (says which is).
    ModuleUnavailable(String),
}

/// Re-runs the bill (a refund: its original) on the recorded module, input and parameters.
pub async fn verify(db: &Db, host: &PluginHost, tenant: &str, id: &str) -> Result<Verification> {
    let (bill, _) = get_with_record(db, tenant, id).await?;
    let target = bill
        .original_id
        .clone()
        .filter(|_| bill.kind == BillKind::Refund)
        .unwrap_or(bill.id.clone());
    let (bill, record) = get_with_record(db, tenant, &target).await?;
    let request: types::SettleRequest = serde_json::from_value(record.request.clone())
        .map_err(|e| Error::Internal(format!("bill {target}: stored request unreadable: {e}")))?;
    let params = record.params.as_object().cloned().unwrap_or_default();
    let replayed = host
        .replay_settle(
            &bill.module_id,
            &bill.module_sha256,
            &bill.module_version,
            params,
            request,
        )
        .await;
    let now = match replayed {
        Ok(Ok(settlement)) => serde_json::to_value(settlement).unwrap_or_default(),
        Ok(Err(refusal)) => {
            return Ok(Verification::Different(format!(
                "the module now refuses the bill ({}): {}",
                refusal.code, refusal.message
            )));
        }
        Err(shoal_plugin_host::ReplayError::Call(e)) => {
            return Ok(Verification::Different(format!(
                "the module now fails: {e}"
            )));
        }
        Err(unavailable) => return Ok(Verification::ModuleUnavailable(unavailable.to_string())),
    };
    Ok(match first_difference("", &record.response, &now) {
        None => Verification::Identical,
        Some(diff) => Verification::Different(diff),
    })
}

/// `splits[1].amount.amount: recorded "166.67", now "166.66"`.
fn first_difference(path: &str, recorded: &Value, now: &Value) -> Option<String> {
    match (recorded, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            keys.keys().find_map(|k| {
                let sub = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(
                    &sub,
                    a.get(*k).unwrap_or(&Value::Null),
                    b.get(*k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: recorded {a}, now {b}")),
    }
}
