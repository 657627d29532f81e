//! Importing events (orders, visits, …): each row finds its customer by id, phone, email
//! or a channel identity (an id merged away leads to the profile that absorbed it), is
//! checked like a live event, and is stored with an idempotency key — the mapped one, or
//! one derived from the file and row — so importing the same file twice adds nothing.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row as _};

use super::{
    convert::{Checked, Rejects, RowContext, RowError, cells_of, datetime, decimal, typed, values},
    job::Counts,
    mapping::Target,
    source::Row,
};
use crate::dedupe::candidates;
use shoal_base::{
    error::{Problems, Result},
    kinds::Channel,
    storage::{Backend, Db, sql::Sql},
};
use shoal_crm::{
    customers::{Identity, validate},
    events::{self, CustomerRef, EventType, Money, NewEvent, Outcome},
    tenancy::Actor,
};

/// What an events import needs besides the rows.
#[derive(Debug)]
pub struct Context<'a> {
    pub db: &'a Db,
    pub actor: &'a Actor,
    /// Write the internal events that start SOPs.
    pub trigger_automations: bool,
}

/// How a row names its customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(String),
    Phone(String),
    Email(String),
    Identity(Channel, String),
}

#[derive(Debug)]
pub struct Draft {
    row: u64,
    keys: Vec<(Key, String, String)>,
    event: NewEvent,
}

fn read(ctx: &RowContext, row: &Row) -> std::result::Result<Option<Draft>, Vec<RowError>> {
    let Some(cells) = cells_of(row)? else {
        return Ok(None);
    };
    let tenant = &ctx.actor.tenant;
    let mut rejects = Rejects::new(row.number);
    let mut reject =
        |column: &str, value: &str, reason: String| rejects.push(column, value, reason);
    let mut keys = Vec::new();
    let mut event_type = None;
    let mut name = None;
    let mut occurred_at = None;
    let mut amount = None;
    let mut currency = None;
    let mut channel = None;
    let mut key = None;
    let mut payload = Map::new();
    let mut columns: Vec<(&'static str, String)> = Vec::new();
    for (target, spec, idx) in &ctx.bound.fields {
        let cells = match values(spec, idx, cells) {
            Ok(v) => v,
            Err((cell, reason)) => {
                reject(&cell.column, &cell.value, reason);
                continue;
            }
        };
        let Some(cell) = cells.first() else { continue };
        let (column, value) = (cell.column.clone(), cell.value.as_str());
        match target {
            Target::CustomerId => keys.push((Key::Id(value.to_owned()), column, value.to_owned())),
            Target::CustomerPhone => match validate::phone(value, tenant.default_region) {
                Ok(p) => keys.push((Key::Phone(p), column, value.to_owned())),
                Err(reason) => reject(&column, value, reason),
            },
            Target::CustomerEmail => match validate::email(value) {
                Ok(e) => keys.push((Key::Email(e), column, value.to_owned())),
                Err(reason) => reject(&column, value, reason),
            },
            Target::CustomerIdentity(ch) => keys.push((
                Key::Identity(*ch, value.to_owned()),
                column,
                value.to_owned(),
            )),
            Target::EventType => match EventType::parse(&value.to_lowercase()) {
                Some(t) => {
                    event_type = Some(t);
                    columns.push(("type", column));
                }
                None => reject(
                    &column,
                    value,
                    format!(
                        "`{value}` is not an event type ({}); map it in {}.map",
                        EventType::ALL
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        spec.path
                    ),
                ),
            },
            Target::EventName => {
                name = Some(value.to_owned());
                columns.push(("name", column));
            }
            Target::OccurredAt => match datetime(&spec.formats, value, ctx.bound.time_zone) {
                Ok(at) => {
                    occurred_at = Some(at);
                    columns.push(("occurredAt", column));
                }
                Err(reason) => reject(&column, value, reason),
            },
            Target::Amount => match decimal(value) {
                Ok(a) => {
                    amount = Some(a);
                    columns.push(("amount.amount", column));
                }
                Err(reason) => reject(&column, value, reason),
            },
            Target::Currency => {
                currency = Some(value.to_uppercase());
                columns.push(("amount.currency", column));
            }
            Target::EventChannel => match Channel::parse(&value.to_lowercase()) {
                Some(c) => channel = Some(c),
                None => reject(
                    &column,
                    value,
                    format!("`{value}` is not a channel; map it in {}.map", spec.path),
                ),
            },
            Target::IdempotencyKey => {
                key = Some(format!("{}{value}", spec.prefix));
                columns.push(("idempotencyKey", column));
            }
            Target::Payload(k) => match typed(spec, value, ctx.bound.time_zone) {
                Ok(v) => {
                    payload.insert(k.clone(), v);
                }
                Err(reason) => reject(&column, value, reason),
            },
            _ => {}
        }
    }
    // however the mapping lists them: an id first, then identities, then phone, then email
    keys.sort_by_key(|(k, _, _): &(Key, String, String)| match k {
        Key::Id(_) => 0,
        Key::Identity(..) => 1,
        Key::Phone(_) => 2,
        Key::Email(_) => 3,
    });
    if rejects.errors.is_empty() {
        if keys.is_empty() {
            rejects.push("-", "", "no customer column holds a value".into());
        }
        if occurred_at.is_none() {
            rejects.push("-", "", "occurred_at is empty".into());
        }
        if event_type.is_none() {
            rejects.push(
                "-",
                "",
                "type is empty (give the column a `default`, e.g. \"order\")".into(),
            );
        }
    }
    let mut errors = rejects.errors;
    if !errors.is_empty() {
        ctx.bound.sort(&mut errors);
        return Err(errors);
    }
    let event = NewEvent {
        // resolved per batch; a placeholder keeps `check` from reporting it
        customer: Some(CustomerRef::Id(String::new())),
        event_type: event_type.unwrap_or(EventType::Custom),
        name,
        occurred_at: occurred_at.unwrap_or_default(),
        channel,
        amount: amount.map(|a| Money {
            amount: a,
            currency: currency.unwrap_or_else(|| "CNY".into()),
        }),
        payload: Some(Value::Object(payload)),
        idempotency_key: Some(key.unwrap_or_else(|| format!("{}{}", ctx.key_prefix, row.number))),
    };
    let mut p = Problems::default();
    events::check(&mut p, "row", &event);
    let problems = p.into_errors();
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|p| {
                let field = p.field.trim_start_matches("row.").to_owned();
                let column = columns
                    .iter()
                    .find(|(f, _)| field == *f)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| "-".into());
                RowError {
                    row: row.number,
                    column,
                    value: String::new(),
                    reason: format!("{field}: {}", p.message),
                }
            })
            .collect());
    }
    Ok(Some(Draft {
        row: row.number,
        keys,
        event,
    }))
}

/// Live customer ids among `ids`, following merges to the profile that absorbed each.
async fn live_ids(
    conn: &mut AnyConnection,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql =
            Sql::new("SELECT id, deleted_at, merged_into FROM customers WHERE tenant_id = ");
        let t = sql.arg(tenant);
        sql.push(&t).push(" AND id").push_in(chunk);
        for r in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            let id: String = r.try_get("id")?;
            let deleted: Option<i64> = r.try_get("deleted_at")?;
            let into: Option<String> = r.try_get("merged_into")?;
            match (deleted, into) {
                (None, _) => {
                    out.insert(id.clone(), id);
                }
                (Some(_), Some(into)) => {
                    out.insert(id, into);
                }
                _ => {}
            }
        }
    }
    // a survivor may itself have been absorbed since: follow the chain (bounded)
    for _ in 0..4 {
        let targets: Vec<String> = out
            .values()
            .filter(|v| !out.contains_key(*v))
            .cloned()
            .collect();
        if targets.is_empty() {
            break;
        }
        let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        let next = Box::pin(live_ids(conn, tenant, &refs)).await?;
        for v in out.values_mut() {
            if let Some(n) = next.get(v) {
                *v = n.clone();
            }
        }
        for (k, v) in next {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

/// Imports one batch in the caller's transaction; returns the customers that got events.
/// Reads a batch of rows (no storage: it runs on the blocking pool).
pub fn check(ctx: &RowContext, rows: &[Row]) -> Checked<Draft> {
    Checked::of(rows, |row| read(ctx, row))
}

pub async fn batch(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    checked: Checked<Draft>,
    counts: &mut Counts,
    errors: &mut Vec<RowError>,
) -> Result<Vec<String>> {
    let drafts = checked.into_items(counts, errors);
    let t = ctx.actor.tenant_id();
    let mut identities = Vec::new();
    let (mut phones, mut emails, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for d in &drafts {
        for (k, _, _) in &d.keys {
            match k {
                Key::Id(v) => ids.push(v.as_str()),
                Key::Phone(v) => phones.push(v.as_str()),
                Key::Email(v) => emails.push(v.as_str()),
                Key::Identity(c, v) => identities.push(Identity {
                    channel: *c,
                    external_id: v.clone(),
                }),
            }
        }
    }
    let holders = candidates::holders(
        &mut *conn,
        &ctx.actor.tenant.vault,
        t,
        &identities,
        &phones,
        &emails,
    )
    .await?;
    let live = live_ids(&mut *conn, t, &ids).await?;
    let mut ready = Vec::with_capacity(drafts.len());
    for mut d in drafts {
        let found = d.keys.iter().find_map(|(k, _, _)| match k {
            Key::Id(v) => live.get(v).cloned(),
            Key::Phone(v) => holders.phones.get(v).cloned(),
            Key::Email(v) => holders.emails.get(v).cloned(),
            Key::Identity(c, v) => holders.identities.get(&(*c, v.clone())).cloned(),
        });
        match found {
            Some(id) => {
                d.event.customer = Some(CustomerRef::Id(id));
                ready.push(d);
            }
            None => {
                counts.rejected += 1;
                let (_, column, value) = &d.keys[0];
                errors.push(RowError {
                    row: d.row,
                    column: column.clone(),
                    value: value.clone(),
                    reason: "no customer of this tenant matches (by id, phone, email or identity)"
                        .into(),
                });
            }
        }
    }
    let inputs: Vec<NewEvent> = ready.iter().map(|d| d.event.clone()).collect();
    let results = events::record_in(
        &mut *conn,
        ctx.db,
        ctx.actor,
        &inputs,
        ctx.trigger_automations,
    )
    .await?;
    let mut touched: Vec<String> = Vec::new();
    for (outcome, event) in &results {
        match outcome {
            Outcome::Created => {
                counts.created += 1;
                if !touched.contains(&event.customer_id) {
                    touched.push(event.customer_id.clone());
                }
            }
            Outcome::Duplicate => counts.duplicates += 1,
        }
    }
    counts.updated += touched.len() as i64;
    Ok(touched)
}
