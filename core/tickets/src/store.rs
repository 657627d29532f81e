//! Tickets in the database: types saved whole, tickets opened, moved along their workflow,
//! answered and annotated — each change with its history entry and audit entry in one
//! transaction. Tickets are reached through their customer (`tickets` scope): one outside
//! the caller's reach is NOT_FOUND.

use serde_json::{Map, Value, json};
use sqlx::Row;

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Action, Resource},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, dialect, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};

pub use crate::records::{Entry, GENERAL, Ticket, type_in};
use crate::{
    records::{from_row, general},
    types::{Category, TicketType},
};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest reply or note, in characters.
pub const MAX_BODY_CHARS: usize = 20_000;
/// The condition of a ticket waiting in its queue for an agent.
const WAITING: &str = "tickets.queue IS NOT NULL AND tickets.assignee IS NULL AND tickets.category NOT IN ('resolved', 'closed')";
/// The order of ticket pages.
pub const ORDER: &str = "tickets:created_at";

/// What opening a ticket takes.
#[derive(Debug, Clone, Default)]
pub struct NewTicket {
    pub type_key: String,
    pub subject: String,
    /// The first message (the customer's words, or the agent's description).
    pub body: Option<String>,
    /// 1–4; 3 when not given.
    pub priority: Option<i64>,
    /// `low`, `medium` (default) or `high`.
    pub impact: Option<String>,
    pub customer_id: Option<String>,
    /// `api` when not given.
    pub channel: Option<String>,
    pub fields: Map<String, Value>,
    pub assignee: Option<String>,
    /// The idempotency key of the request that opens it (an SOP step, a webhook
    /// delivery): a key seen before opens nothing new.
    pub source_key: Option<String>,
}

// ---- types ----

/// Saves a ticket type (a new one, or a new version of one: tickets already in a status the
/// new workflow lacks keep it, and may move only to the new workflow's statuses).
pub async fn save_type(db: &Db, actor: &Actor, t: &TicketType) -> Result<TicketType> {
    let mut tx = db.begin_write().await?;
    let saved = save_type_in(&mut tx, actor, t).await?;
    tx.commit().await?;
    Ok(saved)
}

/// [`save_type`] in the caller's transaction.
pub async fn save_type_in(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    t: &TicketType,
) -> Result<TicketType> {
    actor.require(Action::Configure)?;
    let mut p = Problems::default();
    t.check(&mut p, "input.");
    p.into_result(())?;
    let now = time::to_micros(time::now());
    // a new version of a type made from a module template stays made from it
    let mut t = t.clone();
    if t.template.is_none()
        && let Ok(before) = type_in(conn, actor.tenant_id(), &t.key, "key").await
    {
        t.template = before.template;
    }
    let definition = serde_json::to_string(&t).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO ticket_types (tenant_id, key, name, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (tenant_id, key) DO UPDATE SET name = excluded.name, definition = excluded.definition, updated_at = excluded.updated_at",
    )
    .bind(actor.tenant_id())
    .bind(&t.key)
    .bind(&t.name)
    .bind(&definition)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "ticket_type.saved",
        "ticket_type",
        &t.key,
        serde_json::to_value(&t).unwrap_or(Value::Null),
    )
    .await?;
    Ok(t)
}

/// The tenant's ticket types, by key (with the built-in [`GENERAL`] unless replaced).
pub async fn types(db: &Db, tenant: &str) -> Result<Vec<TicketType>> {
    let rows = sqlx::query("SELECT definition FROM ticket_types WHERE tenant_id = $1 ORDER BY key")
        .bind(tenant)
        .fetch_all(&db.pool)
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            let d: String = r.try_get("definition")?;
            serde_json::from_str(&d)
                .map_err(|e| Error::Internal(format!("a stored ticket type: {e}")))
        })
        .collect::<Result<Vec<TicketType>>>()?;
    if !out.iter().any(|t| t.key == GENERAL) {
        out.push(general());
        out.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(out)
}

/// The type `key`, or an error naming `field`.
pub async fn type_of(db: &Db, tenant: &str, key: &str, field: &str) -> Result<TicketType> {
    let mut conn = db.pool.acquire().await?;
    type_in(&mut conn, tenant, key, field).await
}

// ---- tickets ----

/// Most attachments of one reply or note.
pub const MAX_ATTACHMENTS: usize = 20;

/// A file attached to a reply or note by reference: where it is kept (the host stores and
/// fetches nothing), its name, type and size as the uploader gave them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub name: String,
    /// An `https://` (or `http://`) link to the file.
    pub url: String,
    pub content_type: Option<String>,
    pub size: Option<u64>,
}

fn check_attachments(p: &mut Problems, list: &[Attachment]) {
    if list.len() > MAX_ATTACHMENTS {
        p.push("attachments", format!("at most {MAX_ATTACHMENTS}"));
    }
    for (i, a) in list.iter().enumerate() {
        let at = format!("attachments[{i}]");
        let n = a.name.trim().chars().count();
        if n == 0 || n > 200 || a.name.chars().any(char::is_control) {
            p.push(format!("{at}.name"), "1–200 characters on one line");
        }
        let rest = a
            .url
            .strip_prefix("https://")
            .or_else(|| a.url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        if a.url.len() > 2048
            || a.url.chars().any(|c| c.is_control() || c.is_whitespace())
            || host.is_none_or(str::is_empty)
        {
            p.push(
                format!("{at}.url"),
                "an http(s) link with a host, at most 2048 characters, no spaces",
            );
        }
        if a.content_type
            .as_ref()
            .is_some_and(|t| t.len() > 100 || !t.contains('/') || t.chars().any(char::is_control))
        {
            p.push(
                format!("{at}.contentType"),
                "a media type such as image/jpeg",
            );
        }
    }
}

/// Checks a reply, note or first message: 1 to [`MAX_BODY_CHARS`] characters, no NUL.
pub(crate) fn check_body(p: &mut Problems, field: &str, body: &str) {
    let n = body.trim().chars().count();
    if n == 0 || n > MAX_BODY_CHARS {
        p.push(field, format!("1–{MAX_BODY_CHARS} characters"));
    }
    if body.contains('\0') {
        p.push(field, "no NUL characters");
    }
}

/// Opens a ticket: its type must exist, its fields fit the type, its customer be within the
/// caller's reach; `customer_attribute` fields not given are copied from the customer.
pub async fn open(db: &Db, actor: &Actor, n: NewTicket) -> Result<Ticket> {
    let mut tx = db.begin_write().await?;
    let id = open_in(&mut tx, db, actor, n).await?;
    tx.commit().await?;
    get(db, actor, &id).await
}

/// The ticket the request with idempotency key `source_key` opened, if one did.
pub async fn opened_by(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    source_key: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM tickets WHERE tenant_id = $1 AND source_key = $2")
            .bind(tenant)
            .bind(source_key)
            .fetch_optional(conn)
            .await?,
    )
}

/// [`open`] within the caller's transaction (an SOP step's): answers the ticket's id. A
/// `source_key` that opened a ticket before opens nothing new; that ticket's id is the
/// answer.
pub async fn open_in(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    actor: &Actor,
    n: NewTicket,
) -> Result<String> {
    actor.require(Action::Create)?;
    let tenant = actor.tenant_id();
    if let Some(key) = &n.source_key
        && let Some(id) = opened_by(conn, tenant, key).await?
    {
        return Ok(id);
    }
    let mut p = Problems::default();
    let subject_chars = n.subject.trim().chars().count();
    if subject_chars == 0 || subject_chars > MAX_SUBJECT_CHARS {
        p.push("input.subject", format!("1–{MAX_SUBJECT_CHARS} characters"));
    }
    if n.subject.chars().any(char::is_control) {
        p.push("input.subject", "one line: no control characters");
    }
    if let Some(b) = &n.body {
        check_body(&mut p, "input.body", b);
    }
    let priority = n.priority.unwrap_or(3);
    if !(1..=4).contains(&priority) {
        p.push("input.priority", "1 (P1, most urgent) to 4");
    }
    let impact = n.impact.clone().unwrap_or_else(|| "medium".into());
    if !["low", "medium", "high"].contains(&impact.as_str()) {
        p.push("input.impact", "low, medium or high");
    }
    let channel = n.channel.clone().unwrap_or_else(|| "api".into());
    if !(1..=40).contains(&channel.chars().count()) || channel.chars().any(char::is_control) {
        p.push("input.channel", "1–40 characters");
    }
    let ty = match type_in(conn, tenant, &n.type_key, "input.type").await {
        Ok(t) => Some(t),
        Err(Error::Invalid(errors)) => {
            p.extend(errors);
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(a) = &n.assignee
        && !actor.tenant.users.contains_key(a)
    {
        p.push(
            "input.assignee",
            format!("`{a}` is not a user of this tenant"),
        );
    }
    // the customer first: out of reach reads as not found, whatever else is wrong
    let customer_id = match &n.customer_id {
        Some(id) => actor
            .access
            .scope_customers_in(conn, db.backend, Resource::Tickets, [id.clone()])
            .await?
            .into_ids()
            .into_iter()
            .next(),
        None if !actor.access.reaches_all(Resource::Tickets) => {
            // the caller could not see it afterwards
            p.push(
                "input.customerId",
                "a ticket without a customer needs scope `all` on tickets: name its customer",
            );
            None
        }
        None => None,
    };
    let mut fields = n.fields.clone();
    if let (Some(ty), Some(c)) = (&ty, &customer_id) {
        let wanted: Vec<(String, String)> = ty
            .fields
            .iter()
            .filter(|f| !fields.contains_key(&f.key))
            .filter_map(|f| f.attribute.clone().map(|a| (f.key.clone(), a)))
            .collect();
        if !wanted.is_empty() {
            let found = shoal_crm::customers::get_many(conn, db, tenant, &[c.as_str()]).await?;
            // the stored value (reads mask it for each reader); a value that does not fit
            // the field is left out rather than block the ticket
            if let Some(customer) = found.values().next() {
                for (key, attribute) in wanted {
                    if let Some(v) = customer.attributes.get(&attribute) {
                        let mut one = Map::new();
                        one.insert(key.clone(), v.clone());
                        let mut fits = Problems::default();
                        ty.check_values(&one, false, &mut fits, "");
                        if fits.is_empty() {
                            fields.insert(key, v.clone());
                        }
                    }
                }
            }
        }
    }
    if let Some(ty) = &ty {
        ty.check_values(&fields, true, &mut p, "input.fields");
    }
    p.into_result(())?;
    let ty = ty.expect("checked above");
    let status = ty.initial();
    let now = time::to_micros(time::now());
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, customer_id, channel, fields, \
         assignee, created_by, created_at, updated_at, source_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&ty.key)
    .bind(n.subject.trim())
    .bind(&status.key)
    .bind(status.category.as_str())
    .bind(priority)
    .bind(&impact)
    .bind(&customer_id)
    .bind(&channel)
    .bind(Value::Object(fields.clone()).to_string())
    .bind(&n.assignee)
    .bind(actor.user_id.as_str())
    .bind(now)
    .bind(&n.source_key)
    .execute(&mut *conn)
    .await?;
    crate::entries::add(
        conn,
        tenant,
        &id,
        ("opened", actor.user_id.as_str(), false),
        n.body.as_deref(),
        Some(json!({ "status": status.key, "priority": priority, "channel": channel })),
        now,
    )
    .await?;
    let audited_fields = without_copies(&ty, &fields);
    audit::record(
        conn,
        actor,
        "ticket.opened",
        "ticket",
        &id,
        json!({ "type": ty.key, "subject": n.subject.trim(), "customerId": customer_id, "priority": priority,
            "status": status.key, "assignee": n.assignee, "fields": audited_fields }),
    )
    .await?;
    crate::routing::route_new(
        conn,
        db,
        actor,
        &crate::routing::Opened {
            id: &id,
            type_key: &ty.key,
            channel: &channel,
            priority,
            subject: n.subject.trim(),
            body: n.body.as_deref(),
            fields: &fields,
            customer_id: customer_id.as_deref(),
            assignee: n.assignee.as_deref(),
            created_at: now,
        },
    )
    .await?;
    // the customer's tier, for SLA policies that choose by it
    let policies = crate::sla::policies_in(conn, actor.tenant_id()).await?;
    if policies.iter().any(|p| p.customer.is_some()) {
        let tiers = crate::sla::customer_tiers(
            conn,
            db,
            actor.tenant_id(),
            &policies,
            customer_id.as_deref(),
        )
        .await?;
        sqlx::query("UPDATE tickets SET sla_customer = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(actor.tenant_id())
            .bind(&id)
            .bind(serde_json::to_string(&tiers).map_err(|e| Error::Internal(e.to_string()))?)
            .execute(&mut *conn)
            .await?;
    }
    crate::timers::arm_in(conn, &actor.tenant, &id).await?;
    Ok(id)
}

/// The ticket `id`, if the caller reaches it (else NOT_FOUND).
pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Ticket> {
    let mut sql = Sql::new("SELECT * FROM tickets WHERE tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    let i = sql.arg(id);
    sql.push(&format!("{t} AND id = {i}"));
    crate::reach::push_scope(
        actor,
        db,
        &mut sql,
        &t,
        &crate::reach::my_queues(db, actor).await?,
    );
    match sql.query().fetch_optional(&db.pool).await? {
        Some(r) => {
            let mut tk = [from_row(&r)?];
            mask(db, actor, &mut tk).await?;
            let [tk] = tk;
            Ok(tk)
        }
        None => Err(Error::NotFound {
            what: "ticket",
            id: id.to_owned(),
        }),
    }
}

/// Masks, for the reader, the fields that copy a customer attribute (`customer_attribute`):
/// they read as the attribute itself would on the customer.
async fn mask(db: &Db, actor: &Actor, tickets: &mut [Ticket]) -> Result<()> {
    if tickets.is_empty() || actor.access.sees_customers_in_full() {
        return Ok(());
    }
    let types = types(db, actor.tenant_id()).await?;
    for tk in tickets {
        let Some(ty) = types.iter().find(|t| t.key == tk.type_key) else {
            // its type is gone: which fields copy the customer is unknown, so none shows
            for v in tk.fields.values_mut() {
                *v = Value::String("***".into());
            }
            continue;
        };
        for f in &ty.fields {
            let (Some(attribute), Some(v)) = (&f.attribute, tk.fields.get_mut(&f.key)) else {
                continue;
            };
            *v = masked_attribute(actor, attribute, v);
        }
    }
    Ok(())
}

/// `v`, a copy of customer attribute `attribute`, as that attribute reads for the reader.
fn masked_attribute(actor: &Actor, attribute: &str, v: &Value) -> Value {
    let mut attrs = json!({ attribute: v.clone() });
    actor.access.mask_field_value("attributes", &mut attrs);
    attrs.get(attribute).cloned().unwrap_or(Value::Null)
}

/// What a list of tickets is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub type_key: Option<String>,
    pub status: Option<String>,
    pub categories: Vec<Category>,
    pub customer_id: Option<String>,
    pub assignee: Option<String>,
    pub priority: Option<i64>,
    pub queue: Option<String>,
    /// Only tickets waiting in a queue for an agent (or only those that are not).
    pub waiting: Option<bool>,
    /// Only tickets with a running SLA clock in this stage now.
    pub sla: Option<crate::sla::Stage>,
    /// Only tickets whose custom fields hold these values (each exactly).
    pub fields: Option<Map<String, Value>>,
}

/// Checks a filter on field values: 1–10 keys, scalar values; a field that copies a
/// customer attribute is filterable only by readers who see customers in full (else the
/// filter would tell a masked value).
async fn check_field_filter(
    db: &Db,
    actor: &Actor,
    type_key: Option<&str>,
    fields: &Map<String, Value>,
) -> Result<()> {
    let mut p = Problems::default();
    if fields.is_empty() || fields.len() > 10 {
        p.push("filter.fields", "1–10 fields");
    }
    let types = types(db, actor.tenant_id()).await?;
    for (k, v) in fields {
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            p.push(
                format!("filter.fields.{k}"),
                "a text, number or boolean value",
            );
        }
        let copies = types
            .iter()
            .filter(|t| type_key.is_none_or(|k| k == t.key))
            .flat_map(|t| t.fields.iter())
            .any(|d| &d.key == k && d.attribute.is_some());
        if copies && !actor.access.sees_customers_in_full() {
            p.push(
                format!("filter.fields.{k}"),
                "copies a customer attribute: not filterable for your role",
            );
        }
    }
    p.into_result(())
}

/// Tickets the caller reaches, newest first.
pub async fn list(
    db: &Db,
    actor: &Actor,
    f: &TicketFilter,
    page: &Page,
) -> Result<Paged<(Ticket, Cursor)>> {
    let tenant = actor.tenant_id();
    if let Some(fields) = &f.fields {
        check_field_filter(db, actor, f.type_key.as_deref(), fields).await?;
    }
    let mut sql = Sql::new("SELECT * FROM tickets WHERE tenant_id = ");
    let t = sql.arg(tenant);
    sql.push(&t);
    if let Some(fields) = &f.fields {
        let o = sql.arg(Value::Object(fields.clone()).to_string());
        let column = match db.backend {
            shoal_base::storage::Backend::Postgres => "CAST(tickets.fields AS jsonb)",
            shoal_base::storage::Backend::Sqlite => "tickets.fields",
        };
        sql.push(&format!(
            " AND {}",
            dialect::json_key_equals(db.backend, column, &o)
        ));
    }
    crate::reach::push_scope(
        actor,
        db,
        &mut sql,
        &t,
        &crate::reach::my_queues(db, actor).await?,
    );
    for (col, v) in [
        ("type_key", &f.type_key),
        ("status", &f.status),
        ("customer_id", &f.customer_id),
        ("assignee", &f.assignee),
        ("queue", &f.queue),
    ] {
        if let Some(v) = v {
            let a = sql.arg(v.clone());
            sql.push(&format!(" AND {col} = {a}"));
        }
    }
    if let Some(p) = f.priority {
        let a = sql.arg(p);
        sql.push(&format!(" AND priority = {a}"));
    }
    match f.waiting {
        Some(true) => {
            sql.push(&format!(" AND {WAITING}"));
        }
        Some(false) => {
            sql.push(&format!(" AND NOT ({WAITING})"));
        }
        None => {}
    }
    if let Some(stage) = f.sla {
        let now = sql.arg(time::to_micros(time::now()));
        // a running clock: first response not given; a next response owed (its timers exist
        // only while it is); resolution in an open category (a waiting one pauses it)
        let running = |tt: &str| {
            format!(
                "(({tt}.target = 'first_response' AND tickets.first_response_at IS NULL \
                 AND tickets.category NOT IN ('resolved', 'closed')) \
                 OR ({tt}.target = 'next_response' AND tickets.category NOT IN ('resolved', 'closed')) \
                 OR ({tt}.target = 'resolution' AND tickets.category = 'open'))"
            )
        };
        let past = |stage: &str, tt: &str| {
            format!(
                "EXISTS (SELECT 1 FROM ticket_timers {tt} WHERE {tt}.tenant_id = tickets.tenant_id AND {tt}.ticket_id = tickets.id \
                 AND {tt}.stage = '{stage}' AND {tt}.due_at <= {now} AND {})",
                running(tt)
            )
        };
        match stage {
            crate::sla::Stage::Breached => sql.push(&format!(" AND {}", past("breached", "tb"))),
            crate::sla::Stage::AtRisk => sql.push(&format!(
                " AND {} AND NOT {}",
                past("at_risk", "ta"),
                past("breached", "tb")
            )),
        };
    }
    if !f.categories.is_empty() {
        let list: Vec<String> = f.categories.iter().map(|c| sql.arg(c.as_str())).collect();
        sql.push(&format!(" AND category IN ({})", list.join(", ")));
    }
    page.push_conditions(&mut sql, "created_at", "id", true);
    page.push_order_limit(&mut sql, "created_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    mask(db, actor, &mut items).await?;
    Ok(page.finish(items).with_cursors(|tk| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(tk.created_at)),
        id: tk.id.clone(),
    }))
}

/// A ticket's history, oldest first; internal entries only for staff who reach the ticket
/// (every caller of the API is staff: the customer-facing rendering takes `public_only`).
pub async fn entries(db: &Db, actor: &Actor, id: &str, public_only: bool) -> Result<Vec<Entry>> {
    let tk = get(db, actor, id).await?;
    history(db, actor, &tk, None, public_only).await
}

/// [`entries`] of a ticket already read (with its type, when the caller has it).
pub async fn history(
    db: &Db,
    actor: &Actor,
    tk: &Ticket,
    ty: Option<&TicketType>,
    public_only: bool,
) -> Result<Vec<Entry>> {
    let vis = if public_only {
        " AND visibility = 'public'"
    } else {
        ""
    };
    // with the histories of the tickets merged into it
    let rows = sqlx::query(&format!(
        "SELECT * FROM ticket_entries WHERE tenant_id = $1 AND (ticket_id = $2 OR ticket_id IN \
         (SELECT id FROM tickets WHERE tenant_id = $1 AND merged_into = $2)){vis} ORDER BY created_at, id"
    ))
    .bind(actor.tenant_id())
    .bind(&tk.id)
    .fetch_all(&db.pool)
    .await?;
    // fields that copy a customer attribute read, in a change too, as the attribute does
    let copies: Vec<(String, String)> = if actor.access.sees_customers_in_full() {
        Vec::new()
    } else {
        // a type that cannot be read fails the read rather than show copies unmasked
        let fetched;
        let ty = match ty {
            Some(t) => t,
            None => {
                fetched = type_of(db, actor.tenant_id(), &tk.type_key, "id").await?;
                &fetched
            }
        };
        let mut copies: Vec<(String, String)> = ty
            .fields
            .iter()
            .cloned()
            .filter_map(|f| f.attribute.map(|a| (f.key, a)))
            .collect();
        // the types of tickets merged into it
        let merged: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT type_key FROM tickets WHERE tenant_id = $1 AND merged_into = $2",
        )
        .bind(actor.tenant_id())
        .bind(&tk.id)
        .fetch_all(&db.pool)
        .await?;
        for key in merged.iter().filter(|k| **k != ty.key) {
            let other = type_of(db, actor.tenant_id(), key, "id").await?;
            copies.extend(
                other
                    .fields
                    .into_iter()
                    .filter_map(|f| f.attribute.map(|a| (f.key, a))),
            );
        }
        copies
    };
    let mask = |detail: &mut Value| {
        for (key, attribute) in &copies {
            let Some(change) = detail.get_mut(key) else {
                continue;
            };
            for side in ["from", "to"] {
                if let Some(v) = change.get_mut(side) {
                    *v = masked_attribute(actor, attribute, v);
                }
            }
        }
    };
    rows.iter()
        .map(|r| {
            let mut e = crate::records::entry_from_row(r)?;
            if e.kind == "fields"
                && let Some(d) = e.detail.as_mut()
            {
                mask(d);
            }
            Ok(e)
        })
        .collect()
}

/// Moves a ticket to status `to`, as its type's workflow allows (else an error naming
/// `to` and the statuses it may move to). Entering a resolved or closed status stamps it;
/// leaving one (a reopen) clears the stamp.
pub async fn transition(
    db: &Db,
    actor: &Actor,
    id: &str,
    to: &str,
    note: Option<&str>,
) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let ty = type_of(db, actor.tenant_id(), &tk.type_key, "id").await?;
    let mut p = Problems::default();
    if let Some(n) = note {
        check_body(&mut p, "note", n);
    }
    if let Some(into) = &tk.merged_into {
        p.push(
            "id",
            format!("ticket {id} is merged into {into}: unmerge it first"),
        );
        return p.into_result(tk);
    }
    let Some(target) = ty.status(to) else {
        p.push(
            "to",
            format!("`{to}` is not a status of the {} type", ty.key),
        );
        return p.into_result(tk);
    };
    if !ty.allows(&tk.status, to) {
        let next: Vec<&str> = ty.next(&tk.status).iter().map(|s| s.key.as_str()).collect();
        p.push(
            "to",
            format!(
                "a {} ticket in `{}` may move to: {}",
                ty.key,
                tk.status,
                if next.is_empty() {
                    "nothing".to_owned()
                } else {
                    next.join(", ")
                }
            ),
        );
    }
    p.into_result(())?;
    let now = time::to_micros(time::now());
    let (resolved, closed) = match target.category {
        Category::Resolved => ("$5", "NULL"),
        Category::Closed => ("COALESCE(resolved_at, $5)", "$5"),
        _ => ("NULL", "NULL"),
    };
    let mut tx = db.begin_write().await?;
    crate::routing::lock(&mut tx, db, actor.tenant_id()).await?;
    let moved = sqlx::query(&format!(
        "UPDATE tickets SET status = $3, category = $4, updated_at = $5, resolved_at = {resolved}, closed_at = {closed} \
         WHERE tenant_id = $1 AND id = $2 AND status = $6 AND merged_into IS NULL"
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .bind(&target.key)
    .bind(target.category.as_str())
    .bind(now)
    .bind(&tk.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(Error::invalid(
            "id",
            format!("ticket {id} moved on meanwhile; read it again"),
        ));
    }
    let change = json!({ "from": tk.status, "to": target.key });
    record_change(
        &mut tx,
        actor,
        id,
        "status",
        note,
        (change.clone(), change),
        now,
    )
    .await?;
    if target.category == Category::Resolved
        && !tk.category.is_done()
        && let Some(survey) = &ty.survey
    {
        // the satisfaction survey, once per ticket
        crate::surveys::send_in(&mut tx, actor.tenant_id(), &tk, survey, now).await?;
    }
    if target.category == Category::Closed {
        // closed unbilled: the repair's reserved parts go back to stock
        crate::lines::release_all_in(&mut tx, actor.tenant_id(), id).await?;
    }
    if target.category.is_done() && !tk.category.is_done() {
        // the agent's capacity freed: their queues offer what waits
        if let Some(a) = &tk.assignee {
            crate::routing::drain_of(&mut tx, db, actor, a).await?;
        }
    } else if tk.category.is_done() && !target.category.is_done() {
        crate::routing::reopened_in(&mut tx, db, actor, id).await?;
    }
    crate::timers::arm_in(&mut tx, &actor.tenant, id).await?;
    tx.commit().await?;
    get(db, actor, id).await
}

/// A change's history entry (`kind`, with `note` as its body) and audit entry
/// (`ticket.<kind>`, recording `audited`), in the caller's transaction.
pub(crate) async fn record_change(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    id: &str,
    kind: &str,
    note: Option<&str>,
    (change, audited): (Value, Value),
    at: i64,
) -> Result<()> {
    crate::entries::add(
        &mut *conn,
        actor.tenant_id(),
        id,
        (kind, actor.user_id.as_str(), false),
        note,
        Some(change),
        at,
    )
    .await?;
    audit::record(
        conn,
        actor,
        &format!("ticket.{kind}"),
        "ticket",
        id,
        audited,
    )
    .await?;
    Ok(())
}

/// Records a message the customer sent about ticket `id` (on WeCom, by phone, by mail —
/// `channel`), as an integration or a staff member passes it on (permission `update`): a
/// public entry by `customer` whose detail names the channel and who recorded it. After
/// the first response it starts the next-response clock, unless one is already waiting.
pub async fn customer_message(
    db: &Db,
    actor: &Actor,
    id: &str,
    body: &str,
    channel: Option<&str>,
) -> Result<Entry> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let mut p = Problems::default();
    check_body(&mut p, "body", body);
    if let Some(c) = channel
        && (c.is_empty() || c.chars().count() > 40 || c.chars().any(char::is_control))
    {
        p.push("channel", "1–40 characters on one line");
    }
    p.into_result(())?;
    let detail = json!({ "channel": channel, "recordedBy": actor.user_id });
    let ty = type_of(db, actor.tenant_id(), &tk.type_key, "id").await?;
    let mut tx = db.begin_write().await?;
    // under the ticket's row lock: is a reply already owed?
    sqlx::query(&format!(
        "SELECT id FROM tickets WHERE tenant_id = $1 AND id = $2{}",
        dialect::for_update(db.backend)
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let locked = crate::records::ticket_in(&mut tx, actor.tenant_id(), id)
        .await?
        .unwrap_or(tk);
    // stamped under the lock: a reply committed meanwhile comes before it
    let now = time::to_micros(time::now());
    let entries = crate::records::clock_entries_in(&mut tx, actor.tenant_id(), id).await?;
    let owed = crate::sla::awaiting_reply(&ty, &locked, &entries)
        .is_some_and(|(_, answered)| answered.is_none());
    let entry = crate::entries::add(
        &mut tx,
        actor.tenant_id(),
        id,
        (crate::sla::CUSTOMER_MESSAGE, "customer", true),
        Some(body),
        Some(detail.clone()),
        now,
    )
    .await?;
    sqlx::query("UPDATE tickets SET updated_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if !owed {
        // a new wait: its escalations run afresh
        crate::timers::forget_next_response(&mut tx, actor.tenant_id(), id).await?;
        crate::timers::arm_in(&mut tx, &actor.tenant, id).await?;
    }
    audit::record(
        &mut tx,
        actor,
        "ticket.customer_message",
        "ticket",
        id,
        json!({ "entry": entry, "channel": channel }),
    )
    .await?;
    tx.commit().await?;
    Ok(Entry {
        id: entry,
        ticket_id: id.to_owned(),
        kind: crate::sla::CUSTOMER_MESSAGE.into(),
        author: "customer".into(),
        public: true,
        body: Some(body.to_owned()),
        detail: Some(detail),
        created_at: time::from_micros(now),
    })
}

/// Adds a public reply (the customer sees it; the first one by staff is the first response)
/// or an internal note, with files attached by reference (`attachments` in its detail).
pub async fn comment(
    db: &Db,
    actor: &Actor,
    id: &str,
    body: &str,
    public: bool,
    attachments: &[Attachment],
) -> Result<Entry> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let mut p = Problems::default();
    check_body(&mut p, "body", body);
    check_attachments(&mut p, attachments);
    p.into_result(())?;
    let detail = (!attachments.is_empty()).then(|| json!({ "attachments": attachments }));
    let now = time::to_micros(time::now());
    let kind = if public { "reply" } else { "note" };
    let mut tx = db.begin_write().await?;
    let entry = crate::entries::add(
        &mut tx,
        actor.tenant_id(),
        id,
        (kind, actor.user_id.as_str(), public),
        Some(body),
        detail.clone(),
        now,
    )
    .await?;
    sqlx::query(&format!(
        "UPDATE tickets SET updated_at = $3{} WHERE tenant_id = $1 AND id = $2",
        if public && tk.first_response_at.is_none() {
            ", first_response_at = COALESCE(first_response_at, $3)"
        } else {
            ""
        }
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if public {
        // the first-response or next-response clock is done: its timers go
        crate::timers::forget_next_response(&mut tx, actor.tenant_id(), id).await?;
        crate::timers::arm_in(&mut tx, &actor.tenant, id).await?;
    }
    audit::record(
        &mut tx,
        actor,
        if public {
            "ticket.replied"
        } else {
            "ticket.noted"
        },
        "ticket",
        id,
        json!({ "entry": entry }),
    )
    .await?;
    tx.commit().await?;
    Ok(Entry {
        id: entry,
        ticket_id: id.to_owned(),
        kind: kind.into(),
        author: actor.user_id.clone(),
        public,
        body: Some(body.to_owned()),
        detail,
        created_at: time::from_micros(now),
    })
}

/// Changes custom field values (`null` clears one that is not required), checked against
/// the type.
pub async fn set_fields(
    db: &Db,
    actor: &Actor,
    id: &str,
    values: &Map<String, Value>,
) -> Result<Ticket> {
    set_fields_noted(db, actor, id, values, None).await
}

/// [`set_fields`], with a note on the history entry saying where the values came from.
pub async fn set_fields_noted(
    db: &Db,
    actor: &Actor,
    id: &str,
    values: &Map<String, Value>,
    note: Option<&str>,
) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let ty = type_of(db, actor.tenant_id(), &tk.type_key, "id").await?;
    let mut p = Problems::default();
    ty.check_values(values, false, &mut p, "fields");
    p.into_result(())?;
    // the stored values, not the reader's masked ones, read under the write lock
    let mut tx = db.begin_write().await?;
    let raw: String = sqlx::query_scalar(&format!(
        "SELECT fields FROM tickets WHERE tenant_id = $1 AND id = $2{}",
        dialect::for_update(db.backend)
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let mut fields: Map<String, Value> = serde_json::from_str(&raw).unwrap_or_default();
    let mut changed = Map::new();
    for (k, v) in values {
        let before = fields.get(k).cloned().unwrap_or(Value::Null);
        if &before == v {
            continue;
        }
        changed.insert(k.clone(), json!({ "from": before, "to": v }));
        if v.is_null() {
            fields.remove(k);
        } else {
            fields.insert(k.clone(), v.clone());
        }
    }
    if changed.is_empty() {
        return Ok(tk);
    }
    let now = time::to_micros(time::now());
    sqlx::query("UPDATE tickets SET fields = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .bind(Value::Object(fields).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let audited = without_copies(&ty, &changed);
    let change = Value::Object(changed);
    record_change(&mut tx, actor, id, "fields", note, (change, audited), now).await?;
    tx.commit().await?;
    get(db, actor, id).await
}

/// Field values without those that copy a customer attribute (the audit log records the
/// customer's own changes; a copy there would outlive its masking).
fn without_copies(ty: &TicketType, values: &Map<String, Value>) -> Value {
    Value::Object(
        values
            .iter()
            .filter(|(k, _)| {
                !ty.fields
                    .iter()
                    .any(|f| &f.key == *k && f.attribute.is_some())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Assigns a ticket to a user of the tenant, or (`None`) back to nobody — back to its queue,
/// which offers it again. A supervisor's choice: the agent's availability and capacity do
/// not stop it. The agent it leaves has capacity again: their queues offer what waits.
pub async fn assign(db: &Db, actor: &Actor, id: &str, assignee: Option<&str>) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    if let Some(a) = assignee
        && !actor.tenant.users.contains_key(a)
    {
        return Err(Error::invalid(
            "assignee",
            format!("`{a}` is not a user of this tenant"),
        ));
    }
    if tk.assignee.as_deref() == assignee {
        return Ok(tk);
    }
    let tenant = actor.tenant_id();
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    crate::routing::lock(&mut tx, db, tenant).await?;
    // the assignee as it is under the lock (routing may have assigned it meanwhile)
    let before: Option<String> =
        sqlx::query_scalar("SELECT assignee FROM tickets WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if before.as_deref() == assignee {
        drop(tx);
        return after_change(db, actor, tk, |t| t.assignee = assignee.map(str::to_owned)).await;
    }
    sqlx::query(
        "UPDATE tickets SET assignee = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(assignee)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let change = json!({ "from": before, "to": assignee });
    record_change(
        &mut tx,
        actor,
        id,
        "assigned",
        None,
        (change.clone(), change),
        now,
    )
    .await?;
    if !tk.category.is_done() {
        if let Some(before) = &before {
            crate::routing::drain_of(&mut tx, db, actor, before).await?;
        } else if assignee.is_none()
            && let Some(q) = &tk.queue
        {
            crate::routing::drain_in(&mut tx, db, actor, std::slice::from_ref(q)).await?;
        }
    }
    tx.commit().await?;
    after_change(db, actor, tk, |t| t.assignee = assignee.map(str::to_owned)).await
}

/// The ticket after a change the caller made: read again, or — when the change took it out
/// of the caller's reach (an agent who gave it up) — as they had it, with the change.
async fn after_change(
    db: &Db,
    actor: &Actor,
    mut before: Ticket,
    change: impl FnOnce(&mut Ticket),
) -> Result<Ticket> {
    match get(db, actor, &before.id).await {
        Err(Error::NotFound { .. }) => {
            change(&mut before);
            Ok(before)
        }
        other => other,
    }
}

/// Moves a ticket to another queue (a transfer, with an optional internal note): its
/// assignee keeps it only if a member of the new queue; else the new queue offers it.
pub async fn set_queue(
    db: &Db,
    actor: &Actor,
    id: &str,
    queue: &str,
    note: Option<&str>,
) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let mut p = Problems::default();
    if let Some(n) = note {
        check_body(&mut p, "note", n);
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    crate::routing::transfer_in(&mut tx, db, actor, id, queue, note).await?;
    tx.commit().await?;
    after_change(db, actor, tk, |t| t.queue = Some(queue.to_owned())).await
}

/// Changes a ticket's priority (1, most urgent, to 4), with an optional internal note.
pub async fn set_priority(
    db: &Db,
    actor: &Actor,
    id: &str,
    priority: i64,
    note: Option<&str>,
) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let tk = get(db, actor, id).await?;
    let mut p = Problems::default();
    if !(1..=4).contains(&priority) {
        p.push("priority", "1 (P1, most urgent) to 4");
    }
    if let Some(n) = note {
        check_body(&mut p, "note", n);
    }
    p.into_result(())?;
    if tk.priority == priority {
        return Ok(tk);
    }
    let mut change = json!({ "from": tk.priority, "to": priority });
    if let Some(n) = note {
        change["note"] = json!(n);
    }
    change_column(
        db,
        actor,
        id,
        ("priority", "priority"),
        priority,
        note,
        change,
    )
    .await
}

/// Sets one column of a ticket, with its history entry (`kind`) and audit entry
/// (`ticket.<kind>`) in one transaction.
async fn change_column<T>(
    db: &Db,
    actor: &Actor,
    id: &str,
    (column, kind): (&str, &str),
    value: T,
    note: Option<&str>,
    change: Value,
) -> Result<Ticket>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
{
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    sqlx::query(&format!(
        "UPDATE tickets SET {column} = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .bind(value)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    record_change(
        &mut tx,
        actor,
        id,
        kind,
        note,
        (change.clone(), change),
        now,
    )
    .await?;
    // a priority picks the SLA policy: the timers follow
    crate::timers::arm_in(&mut tx, &actor.tenant, id).await?;
    tx.commit().await?;
    get(db, actor, id).await
}

/// The SLA clocks of ticket `id` now (NOT_FOUND out of the caller's reach).
pub async fn clocks_of(db: &Db, actor: &Actor, id: &str) -> Result<Vec<crate::sla::Clock>> {
    let t = get(db, actor, id).await?;
    let policies = crate::sla::policies(db, actor.tenant_id()).await?;
    if !policies.iter().any(|p| p.applies(&t)) {
        return Ok(Vec::new());
    }
    let ty = type_of(db, actor.tenant_id(), &t.type_key, "id").await?;
    // its own status changes (a merged ticket's do not pause it)
    let mut conn = db.pool.acquire().await?;
    let entries = crate::records::clock_entries_in(&mut conn, actor.tenant_id(), id).await?;
    drop(conn);
    let calendar = crate::sla::calendar(db, actor).await?;
    Ok(crate::sla::clocks(
        &policies,
        &calendar,
        &ty,
        &t,
        &entries,
        time::now(),
    ))
}
