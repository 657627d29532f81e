//! Validating, storing and reading events.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{CustomerRef, Event, EventType, Money, NewEvent, Outcome};
use crate::{audit, tenancy::Actor};
use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Channel,
    pagination::{Cursor, Key, Page, Paged},
    storage::{
        Db, money,
        sql::{Arg, Sql},
        time,
    },
};

const MAX_NAME_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 128;
const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Tolerated clock skew for `occurredAt` in the future.
const MAX_FUTURE: Duration = Duration::minutes(5);
const CHUNK: usize = 200;

const COLUMNS: &str = "id, customer_id, event_type, name, occurred_at, recorded_at, channel, \
                       amount_units, currency, payload, idempotency_key";

fn from_row(row: &AnyRow) -> Result<Event> {
    let event_type: String = row.try_get("event_type")?;
    let channel: Option<String> = row.try_get("channel")?;
    let units: Option<i64> = row.try_get("amount_units")?;
    let currency: Option<String> = row.try_get("currency")?;
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| Error::Internal(format!("unknown event type `{event_type}`")))?,
        name: row.try_get("name")?,
        occurred_at: time::from_micros(row.try_get("occurred_at")?),
        recorded_at: time::from_micros(row.try_get("recorded_at")?),
        channel: channel.as_deref().and_then(Channel::parse),
        amount: units.zip(currency).map(|(u, c)| Money {
            amount: money::from_units(u),
            currency: c,
        }),
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

/// Checks one event; problems are pushed with paths under `field` (e.g. `input[3]`).
pub fn check(p: &mut Problems, field: &str, e: &NewEvent) {
    let at = |name: &str| format!("{field}.{name}");
    if e.customer.is_none() {
        p.push(at("customerId"), "give `customerId` or `identity`");
    }
    match (&e.name, e.event_type) {
        (None, EventType::Custom) => p.push(at("name"), "required for custom events"),
        (Some(name), _) => {
            let ok = (1..=MAX_NAME_CHARS).contains(&name.chars().count())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
            if !ok {
                p.push(
                    at("name"),
                    format!("1–{MAX_NAME_CHARS} characters of a-z, 0-9, `_`, `.` and `-`"),
                );
            }
        }
        (None, _) => {}
    }
    let now = Utc::now();
    if e.occurred_at > now + MAX_FUTURE {
        p.push(at("occurredAt"), "is in the future");
    }
    if e.occurred_at < Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap() {
        p.push(at("occurredAt"), "is before 2000-01-01");
    }
    match &e.amount {
        None if e.event_type.requires_amount() => p.push(
            at("amount"),
            format!("required for {} events", e.event_type.as_str()),
        ),
        None => {}
        Some(m) => {
            if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                p.push(at("amount.currency"), "an ISO 4217 code such as CNY or USD");
            }
            if m.amount.is_sign_negative() && !m.amount.is_zero() {
                p.push(at("amount.amount"), "must not be negative");
            }
            if let Err(e) = money::to_units(m.amount) {
                p.push(at("amount.amount"), e.to_string());
            }
        }
    }
    if let Some(payload) = &e.payload {
        if !payload.is_object() {
            p.push(at("payload"), "must be a JSON object");
        } else if payload.to_string().len() > MAX_PAYLOAD_BYTES {
            p.push(
                at("payload"),
                format!("must be at most {MAX_PAYLOAD_BYTES} bytes as JSON"),
            );
        }
    }
    if let Some(key) = &e.idempotency_key
        && !(1..=MAX_KEY_CHARS).contains(&key.chars().count())
    {
        p.push(
            at("idempotencyKey"),
            format!("1–{MAX_KEY_CHARS} characters"),
        );
    }
}

/// Records a batch in one transaction: all events are stored, or none (every problem is
/// reported with its path). Returns, per input, whether it was new and the stored event.
pub async fn record(
    db: &Db,
    actor: &Actor,
    inputs: &[NewEvent],
    max_batch: usize,
) -> Result<Vec<(Outcome, Event)>> {
    actor.require(shoal_base::kinds::Action::Create)?;
    if inputs.len() > max_batch {
        return Err(Error::LimitExceeded {
            field: "input".into(),
            message: format!("at most {max_batch} events per call, got {}", inputs.len()),
        });
    }
    let mut p = Problems::default();
    for (i, e) in inputs.iter().enumerate() {
        check(&mut p, &format!("input[{i}]"), e);
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let results = record_in(&mut tx, db, actor, inputs, true).await?;
    tx.commit().await?;
    Ok(results)
}

/// Stores checked events in the caller's transaction, with their audit entries; `emit`
/// also writes the internal events that start SOPs (imports of history leave it off).
pub async fn record_in(
    tx: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    inputs: &[NewEvent],
    emit: bool,
) -> Result<Vec<(Outcome, Event)>> {
    let tenant_id = actor.tenant_id();
    let customer_ids = resolve_customers(&mut *tx, &db.vault, tenant_id, inputs).await?;
    actor
        .access
        .ensure_customers_in(
            &mut *tx,
            db.backend,
            shoal_base::kinds::Resource::Events,
            &customer_ids,
        )
        .await?;
    let recorded_at = time::now();
    let events: Vec<Event> = inputs
        .iter()
        .zip(&customer_ids)
        .map(|(e, customer_id)| Event {
            id: uuid::Uuid::now_v7().to_string(),
            customer_id: customer_id.clone(),
            event_type: e.event_type,
            name: e.name.clone(),
            occurred_at: time::from_micros(time::to_micros(e.occurred_at)),
            recorded_at,
            channel: e.channel,
            amount: e.amount.clone().map(|m| Money {
                amount: money::from_units(money::to_units(m.amount).unwrap_or_default()),
                currency: m.currency,
            }),
            payload: e.payload.clone().unwrap_or_else(|| json!({})),
            idempotency_key: e.idempotency_key.clone(),
        })
        .collect();
    // one multi-row statement per chunk; a key already stored (or repeated in the batch)
    // inserts nothing and is read back below
    let backend = shoal_base::storage::Backend::of(tx);
    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(CHUNK) {
        let mut sql = Sql::new(&format!(
            "INSERT INTO events (tenant_id, {COLUMNS}) VALUES "
        ));
        push_rows(&mut sql, tenant_id, chunk);
        sql.push(" ON CONFLICT DO NOTHING RETURNING id");
        for row in sql.on(backend).query().fetch_all(&mut *tx).await? {
            inserted.insert(row.try_get("id")?);
        }
    }
    let keys: Vec<&str> = events
        .iter()
        .filter(|e| !inserted.contains(&e.id))
        .filter_map(|e| e.idempotency_key.as_deref())
        .collect();
    let mut stored: HashMap<String, Event> = HashMap::new();
    for chunk in keys.chunks(500) {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM events WHERE tenant_id = "));
        let t = sql.arg(tenant_id);
        sql.push(&format!("{t} AND idempotency_key")).push_in(chunk);
        for row in sql.on(backend).query_once().fetch_all(&mut *tx).await? {
            let event = from_row(&row)?;
            stored.insert(event.idempotency_key.clone().unwrap_or_default(), event);
        }
    }
    let mut results = Vec::with_capacity(events.len());
    let mut by_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        if inserted.contains(&event.id) {
            by_customer
                .entry(event.customer_id.clone())
                .or_default()
                .push(event.id.clone());
            results.push((Outcome::Created, event));
        } else {
            let key = event.idempotency_key.as_deref().unwrap_or_default();
            let original = stored.get(key).cloned().ok_or_else(|| {
                Error::Internal(format!(
                    "event `{}` was neither stored nor a duplicate",
                    event.id
                ))
            })?;
            results.push((Outcome::Duplicate, original));
        }
    }
    let announced: Vec<(&str, &str, Value)> = results
        .iter()
        .filter(|(o, _)| emit && *o == Outcome::Created)
        .map(|(_, e)| {
            let payload = json!({ "eventId": e.id, "type": e.event_type.as_str(), "name": e.name });
            ("event.recorded", e.customer_id.as_str(), payload)
        })
        .collect();
    crate::internal_events::emit_many(
        &mut *tx,
        tenant_id,
        &announced,
        time::to_micros(recorded_at),
    )
    .await?;
    let entries: Vec<(String, Value)> = by_customer
        .into_iter()
        .map(|(customer_id, ids)| (customer_id, json!({ "eventIds": ids })))
        .collect();
    audit::record_many(&mut *tx, actor, "events.record", "customer", &entries).await?;
    Ok(results)
}

/// Pushes one `VALUES` row per event (in [`COLUMNS`] order after the tenant).
fn push_rows(sql: &mut Sql, tenant_id: &str, events: &[Event]) {
    for (i, e) in events.iter().enumerate() {
        sql.push_row(
            i == 0,
            [
                tenant_id.into(),
                e.id.as_str().into(),
                e.customer_id.as_str().into(),
                e.event_type.as_str().into(),
                e.name.clone().into(),
                time::to_micros(e.occurred_at).into(),
                time::to_micros(e.recorded_at).into(),
                e.channel.map(Channel::as_str).into(),
                e.amount.as_ref().map_or(Arg::NullInt, |m| {
                    money::to_units(m.amount).unwrap_or_default().into()
                }),
                e.amount.as_ref().map(|m| m.currency.clone()).into(),
                e.payload.to_string().into(),
                e.idempotency_key.clone().into(),
            ],
        );
    }
}

/// The customer id of every input, or every reference that names no live customer.
async fn resolve_customers(
    conn: &mut AnyConnection,
    vault: &shoal_base::vault::Vault,
    tenant_id: &str,
    inputs: &[NewEvent],
) -> Result<Vec<String>> {
    // the customers named by id, live or not, read 500 at a time before the loop
    let mut known: HashMap<String, bool> = HashMap::new();
    let named: Vec<&str> = inputs
        .iter()
        .filter_map(|e| match &e.customer {
            Some(CustomerRef::Id(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in named.chunks(500) {
        let mut sql = Sql::new("SELECT id, deleted_at FROM customers WHERE tenant_id = ");
        let t = sql.arg(tenant_id);
        sql.push(&format!("{t} AND id")).push_in(chunk);
        let rows = sql
            .on(shoal_base::storage::Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let live = r.try_get::<Option<i64>, _>("deleted_at")?.is_none();
            known.insert(r.try_get("id")?, live);
        }
    }
    let mut by_identity: HashMap<(Channel, String), Option<String>> = HashMap::new();
    let mut p = Problems::default();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, e) in inputs.iter().enumerate() {
        match &e.customer {
            Some(CustomerRef::Id(id)) => {
                if !known.get(id).copied().unwrap_or(false) {
                    p.push(
                        format!("input[{i}].customerId"),
                        format!("no customer `{id}` in this tenant"),
                    );
                }
                out.push(id.clone());
            }
            Some(CustomerRef::Identity(identity)) => {
                let key = (identity.channel, identity.external_id.trim().to_owned());
                let holder = match by_identity.get(&key) {
                    Some(h) => h.clone(),
                    None => {
                        let h: Option<String> = sqlx::query(
                            "SELECT customer_id FROM customer_identities WHERE tenant_id = $1 \
                             AND channel = $2 AND external_id = $3 AND deleted_at IS NULL",
                        )
                        .bind(tenant_id)
                        .bind(key.0.as_str())
                        .bind(crate::customers::sealed::identity_index(
                            vault, tenant_id, key.0, &key.1,
                        )?)
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|r| r.try_get("customer_id"))
                        .transpose()?;
                        by_identity.insert(key.clone(), h.clone());
                        h
                    }
                };
                match holder {
                    Some(id) => out.push(id),
                    None => {
                        p.push(
                            format!("input[{i}].identity"),
                            format!("no customer holds {} identity `{}`", key.0.as_str(), key.1),
                        );
                        out.push(String::new());
                    }
                }
            }
            None => out.push(String::new()), // reported by `check`
        }
    }
    p.into_result(out)
}

/// Inserts already-valid events without idempotency checks (seeding and benchmarks).
pub async fn insert_many(
    conn: &mut AnyConnection,
    tenant_id: &str,
    events: &[Event],
) -> Result<()> {
    let backend = shoal_base::storage::Backend::of(conn);
    for chunk in events.chunks(CHUNK) {
        let mut sql = Sql::new(&format!(
            "INSERT INTO events (tenant_id, {COLUMNS}) VALUES "
        ));
        push_rows(&mut sql, tenant_id, chunk);
        sql.on(backend).query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A customer's events, newest first, optionally of some types only.
/// One page of a customer's events, newest first, if the actor's scope for events reaches
/// the customer (else none).
pub async fn timeline(
    db: &Db,
    actor: &Actor,
    customer_id: &str,
    types: &[EventType],
    page: &Page,
) -> Result<Paged<(Event, Cursor)>> {
    let tenant = &actor.tenant;
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM events WHERE tenant_id = "));
    let t = sql.arg(tenant.id.clone());
    let c = sql.arg(customer_id);
    sql.push(&format!("{t} AND customer_id = {c}"));
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        shoal_base::kinds::Resource::Events,
        &t,
        "events.customer_id",
    );
    if !types.is_empty() {
        let ps: Vec<String> = types.iter().map(|ty| sql.arg(ty.as_str())).collect();
        sql.push(&format!(" AND event_type IN ({})", ps.join(", ")));
    }
    page.push_conditions(&mut sql, "occurred_at", "id", true);
    page.push_order_limit(&mut sql, "occurred_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let events = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(events).with_cursors(|e| Cursor {
        tenant: tenant.id.clone(),
        order: TIMELINE_ORDER.to_owned(),
        key: Key::Int(time::to_micros(e.occurred_at)),
        id: e.id.clone(),
    }))
}

/// The cursor ordering name `timeline` issues (for decoding `after`/`before`).
pub const TIMELINE_ORDER: &str = "events:occurred_at:desc";
