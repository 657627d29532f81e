//! The step runner: claims due enrolments of a tenant and advances them, a batch per
//! transaction. Claiming and advancing share the transaction, so a crash loses nothing and
//! repeats nothing: on PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED` (other hosts
//! take other rows), on SQLite the write transaction holds the database lock. Every action
//! writes in the same transaction (messages and webhook calls go to the outbox), under an
//! idempotency key of enrolment, step and attempt.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::{
    contact::{self, History, Sent, Verdict},
    definition::{Action, Compiled, EventSpec, Part, Purpose, Step},
    machine::{self, Next, Position, Record, World},
    opt_outs,
    outbox::Queued,
    store,
};
use crate::contact::Policy;
use shoal_base::{
    config::SopConfig,
    error::{Error, Result},
    storage::{Backend, Db, time},
    supervise::Supervision,
};
use shoal_crm::{
    access::{mask_email, mask_phone, mask_text},
    customers::Customer,
    tenancy::{Actor, Tenant},
};
use shoal_rules::Rule;
use shoal_tags::{Tag, TagKind};

/// The actor SOP actions run as (tag history, audit).
pub fn actor(tenant: &std::sync::Arc<Tenant>) -> Actor {
    Actor::system(tenant, "sop")
}

/// An enrolment as claimed.
#[derive(Debug, Clone)]
struct Claimed {
    id: String,
    sop_id: String,
    version: i64,
    customer_id: String,
    step_index: usize,
    step_started_at: DateTime<Utc>,
    attempt: i64,
    enrolled_at: DateTime<Utc>,
    /// `internal:<id>` when an internal event (an event recorded, …) started it.
    trigger_key: Option<String>,
}

async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    now: DateTime<Utc>,
    limit: u32,
    only: Option<&Claimed>,
) -> Result<Vec<Claimed>> {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF e SKIP LOCKED",
    };
    let one = if only.is_some() {
        " AND e.id = $4 AND e.step_index = $5"
    } else {
        ""
    };
    let sql = format!(
        "SELECT e.id, e.sop_id, e.version, e.customer_id, e.step_index, e.step_started_at, e.attempt, e.enrolled_at, e.trigger_key \
         FROM sop_enrolments e JOIN sops s ON s.tenant_id = e.tenant_id AND s.id = e.sop_id \
         WHERE e.tenant_id = $1 AND e.status = 'active' AND e.next_run_at <= $2 AND s.status = 'active'{one} \
         ORDER BY e.next_run_at LIMIT $3{lock}"
    );
    let mut q = sqlx::query(&sql)
        .bind(tenant)
        .bind(time::to_micros(now))
        .bind(i64::from(limit));
    if let Some(c) = only {
        q = q.bind(c.id.clone()).bind(c.step_index as i64);
    }
    q.fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                sop_id: r.try_get("sop_id")?,
                version: r.try_get("version")?,
                customer_id: r.try_get("customer_id")?,
                step_index: r.try_get::<i64, _>("step_index")? as usize,
                step_started_at: time::from_micros(r.try_get("step_started_at")?),
                attempt: r.try_get("attempt")?,
                enrolled_at: time::from_micros(r.try_get("enrolled_at")?),
                trigger_key: r.try_get("trigger_key")?,
            })
        })
        .collect()
}

/// Advances the tenant's due enrolments (one batch); returns how many were advanced.
///
/// Each advance runs under `supervision` (a panic becomes an error). When a batch fails its
/// enrolments are advanced one by one, and one that fails alone — with an error or a panic —
/// is retried later and parked after `cfg.max_attempts`, with its error; the rest go on.
pub async fn run_due(
    db: &Db,
    tenant: &std::sync::Arc<Tenant>,
    cfg: &SopConfig,
    supervision: &Supervision,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut tx = db.begin_write().await?;
    let claimed = claim(&mut tx, db.backend, &tenant.id, now, cfg.batch_size, None).await?;
    if claimed.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let batch = advance_all(&mut tx, db, tenant, cfg, &claimed, now);
    match supervision.guard("sop.batch", batch).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(claimed.len())
        }
        Err(e) => {
            drop(tx);
            tracing::warn!(tenant = %tenant.id, error = %e, "an SOP batch failed; advancing its enrolments one by one");
            let mut done = 0;
            for c in &claimed {
                let mut tx = db.begin_write().await?;
                let Some(c) = claim(&mut tx, db.backend, &tenant.id, now, 1, Some(c))
                    .await?
                    .pop()
                else {
                    continue; // another worker advanced it meanwhile
                };
                let one = advance_all(&mut tx, db, tenant, cfg, std::slice::from_ref(&c), now);
                match supervision.guard("sop.enrolment", one).await {
                    Ok(()) => {
                        tx.commit().await?;
                        done += 1;
                    }
                    Err(e) => {
                        drop(tx);
                        let mut tx = db.begin_write().await?;
                        let step_id = store::definition(&mut tx, &tenant.id, &c.sop_id, c.version)
                            .await?
                            .steps
                            .get(c.step_index)
                            .map_or_else(String::new, |s| s.id.clone());
                        let record =
                            fail(&mut tx, &tenant.id, cfg, &c, &step_id, &e.to_string(), now)
                                .await?;
                        let parked = record_parked(&record);
                        insert_runs(
                            &mut tx,
                            &tenant.id,
                            &[(who(&c), c.attempt, c.step_index, record)],
                        )
                        .await?;
                        tx.commit().await?;
                        if parked {
                            supervision.count("sop.enrolment", "parked");
                        }
                    }
                }
            }
            Ok(done)
        }
    }
}

/// What the batch loads once for all its enrolments.
struct Shared<'a> {
    db: &'a Db,
    tenant: &'a std::sync::Arc<Tenant>,
    actor: Actor,
    sops: HashMap<(String, i64), Compiled>,
    tags: Vec<Tag>,
    customers: HashMap<String, Customer>,
    opted_out: HashMap<String, HashSet<String>>,
    /// Standing marketing consent, read when the tenant requires it.
    marketing: HashMap<String, shoal_crm::consent::Marketing>,
}

async fn advance_all(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &std::sync::Arc<Tenant>,
    cfg: &SopConfig,
    claimed: &[Claimed],
    now: DateTime<Utc>,
) -> Result<()> {
    let tags = shoal_tags::store_all(conn, &tenant.id).await?;
    let mut sops = HashMap::new();
    for c in claimed {
        let key = (c.sop_id.clone(), c.version);
        if let std::collections::hash_map::Entry::Vacant(slot) = sops.entry(key) {
            let d = store::definition(conn, &tenant.id, &c.sop_id, c.version).await?;
            slot.insert(super::definition::compile_stored(&d, &tags));
        }
    }
    let ids: Vec<&str> = claimed.iter().map(|c| c.customer_id.as_str()).collect();
    let customers = shoal_crm::customers::get_many(conn, db, &tenant.id, &ids).await?;
    let opted_out = opt_outs::of_customers(conn, &tenant.id, &ids).await?;
    let marketing = if crate::contact::Policy::of(tenant).marketing_requires_consent {
        shoal_crm::consent::marketing(conn, &tenant.id, &ids).await?
    } else {
        HashMap::new()
    };
    let shared = Shared {
        db,
        tenant,
        actor: actor(tenant),
        sops,
        tags,
        customers,
        opted_out,
        marketing,
    };
    let mut runs: Vec<(Who, i64, usize, Record)> = Vec::new();
    let mut queued: Vec<Queued> = Vec::new();
    // completed enrolments by the index they ended at, updated together
    let mut completed: HashMap<usize, Vec<&str>> = HashMap::new();
    for c in claimed {
        let sop = &shared.sops[&(c.sop_id.clone(), c.version)];
        let mut log = Vec::new();
        let Some(customer) = shared.customers.get(&c.customer_id) else {
            finish(
                conn,
                &tenant.id,
                c,
                "exited",
                Some("the customer was deleted"),
                None,
                now,
            )
            .await?;
            continue;
        };
        let mut pos = Position {
            index: c.step_index,
            step_started_at: c.step_started_at,
        };
        let mut world = DbWorld {
            conn: &mut *conn,
            shared: &shared,
            sop,
            enrolment: c,
            customer,
            facts: None,
            queued: &mut queued,
        };
        let result = machine::advance(sop, &mut pos, now, &mut world, &mut log).await;
        let attempt_at = |index: usize| if index == c.step_index { c.attempt } else { 0 };
        match result {
            Ok(next) => {
                let attempt = attempt_at(pos.index);
                match next {
                    Next::At { at, waiting_for } => {
                        sqlx::query(
                            "UPDATE sop_enrolments SET step_index = $3, step_started_at = $4, next_run_at = $5, waiting_for = $6, \
                             attempt = $7, last_error = NULL, updated_at = $8 WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind(&tenant.id)
                        .bind(&c.id)
                        .bind(pos.index as i64)
                        .bind(time::to_micros(pos.step_started_at))
                        .bind(time::to_micros(at))
                        .bind(waiting_for)
                        .bind(attempt)
                        .bind(time::to_micros(now))
                        .execute(&mut *conn)
                        .await?;
                    }
                    Next::Completed => {
                        completed.entry(pos.index).or_default().push(&c.id);
                        // announced like any outcome; not stored (see insert_runs)
                        log.push(record_end(
                            sop,
                            pos.index,
                            "completed",
                            crate::enrolments::COMPLETED_DETAIL.into(),
                            now,
                        ));
                    }
                    Next::Exited(reason) => {
                        finish(
                            conn,
                            &tenant.id,
                            c,
                            "exited",
                            Some(&reason),
                            Some(pos.index),
                            now,
                        )
                        .await?;
                        log.push(record_end(sop, pos.index, "exited", reason, now));
                    }
                }
            }
            Err(Error::Storage(e)) => return Err(Error::Storage(e)),
            Err(e) => {
                let failed = Claimed {
                    step_index: pos.index,
                    step_started_at: pos.step_started_at,
                    attempt: attempt_at(pos.index),
                    ..c.clone()
                };
                for r in log.drain(..) {
                    runs.push((who(c), attempt_at(r.index), r.index, r));
                }
                let step_id = sop
                    .definition
                    .steps
                    .get(pos.index)
                    .map_or_else(String::new, |s| s.id.clone());
                let record = fail(
                    conn,
                    &tenant.id,
                    cfg,
                    &failed,
                    &step_id,
                    &e.to_string(),
                    now,
                )
                .await?;
                runs.push((who(c), failed.attempt, failed.step_index, record));
                continue;
            }
        }
        for r in log {
            runs.push((who(c), attempt_at(r.index), r.index, r));
        }
    }
    super::outbox::queue_many(conn, &tenant.id, &queued).await?;
    for (index, ids) in completed {
        for chunk in ids.chunks(500) {
            let mut sql = shoal_base::storage::sql::Sql::new(
                "UPDATE sop_enrolments SET status = 'completed', next_run_at = NULL, waiting_for = NULL, step_index = ",
            );
            let i = sql.arg(index as i64);
            let at = sql.arg(time::to_micros(now));
            let t = sql.arg(tenant.id.as_str());
            let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
            sql.push(&format!(
                "{i}, updated_at = {at}, finished_at = {at} WHERE tenant_id = {t} AND id IN ({})",
                list.join(", ")
            ));
            sql.on(Backend::of(conn))
                .query_once()
                .execute(&mut *conn)
                .await?;
        }
    }
    insert_runs(conn, &tenant.id, &runs).await
}

fn record_end(
    sop: &Compiled,
    index: usize,
    outcome: &'static str,
    detail: String,
    at: DateTime<Utc>,
) -> Record {
    Record {
        step_id: sop
            .definition
            .steps
            .get(index)
            .map_or(super::definition::END.to_owned(), |s| s.id.clone()),
        index,
        outcome,
        detail,
        at,
    }
}

async fn finish(
    conn: &mut AnyConnection,
    tenant: &str,
    c: &Claimed,
    status: &str,
    reason: Option<&str>,
    index: Option<usize>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE sop_enrolments SET status = $3, exit_reason = $4, step_index = $5, next_run_at = NULL, waiting_for = NULL, \
         updated_at = $6, finished_at = $6 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&c.id)
    .bind(status)
    .bind(reason)
    .bind(index.unwrap_or(c.step_index) as i64)
    .bind(time::to_micros(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt of step `step_id`: retried with backoff, or parked after
/// `max_attempts`. Returns the history line for it.
fn record_parked(record: &Record) -> bool {
    record.detail.ends_with("; parked)")
}

async fn fail(
    conn: &mut AnyConnection,
    tenant: &str,
    cfg: &SopConfig,
    c: &Claimed,
    step_id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Record> {
    let attempt = c.attempt + 1;
    let parked = attempt >= i64::from(cfg.max_attempts.max(1));
    let delay = cfg
        .retry_base_seconds
        .saturating_mul(1 << (attempt - 1).clamp(0, 16)) as i64;
    sqlx::query(
        "UPDATE sop_enrolments SET status = $3, step_index = $4, step_started_at = $5, next_run_at = $6, attempt = $7, \
         last_error = $8, updated_at = $9 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&c.id)
    .bind(if parked { "parked" } else { "active" })
    .bind(c.step_index as i64)
    .bind(time::to_micros(c.step_started_at))
    .bind((!parked).then(|| time::to_micros(now + Duration::seconds(delay))))
    .bind(attempt)
    .bind(error)
    .bind(time::to_micros(now))
    .execute(&mut *conn)
    .await?;
    let detail = if parked {
        format!("{error} (attempt {attempt}; parked)")
    } else {
        format!("{error} (attempt {attempt}; retry in {delay} s)")
    };
    Ok(Record {
        step_id: step_id.to_owned(),
        index: c.step_index,
        outcome: "failed",
        detail,
        at: now,
    })
}

/// Whose step ran: the enrolment, its customer, its SOP.
type Who = (String, String, String);

fn who(c: &Claimed) -> Who {
    (c.id.clone(), c.customer_id.clone(), c.sop_id.clone())
}

/// Writes the history of step outcomes (but completions: the enrolment's row holds those)
/// and announces each on the change feed (`sop.step`), in the caller's transaction.
async fn insert_runs(
    conn: &mut AnyConnection,
    tenant: &str,
    runs: &[(Who, i64, usize, Record)],
) -> Result<()> {
    let announced: Vec<(&str, &str, serde_json::Value)> = runs
        .iter()
        .map(|((enrolment, customer, sop), attempt, _, r)| {
            (
                "sop.step",
                customer.as_str(),
                serde_json::json!({ "sopId": sop, "enrolmentId": enrolment, "stepId": r.step_id, "outcome": r.outcome, "attempt": attempt }),
            )
        })
        .collect();
    if let Some(at) = runs.iter().map(|(.., r)| r.at).max() {
        shoal_crm::internal_events::emit_many(conn, tenant, &announced, time::to_micros(at))
            .await?;
    }
    let backend = Backend::of(conn);
    // an enrolment's completion is its own row (status, finished_at); history and figures
    // derive its `completed` line from it, so it is announced but not stored twice
    let stored: Vec<_> = runs
        .iter()
        .filter(|(.., r)| r.outcome != "completed")
        .collect();
    for chunk in stored.chunks(400) {
        let mut sql = shoal_base::storage::sql::Sql::new(
            "INSERT INTO sop_step_runs (tenant_id, id, enrolment_id, step_id, step_index, attempt, outcome, detail, at) VALUES ",
        );
        for (i, ((enrolment, ..), attempt, index, r)) in chunk.iter().enumerate() {
            sql.push_row(
                i == 0,
                [
                    tenant.into(),
                    uuid::Uuid::now_v7().to_string().into(),
                    enrolment.as_str().into(),
                    r.step_id.as_str().into(),
                    (*index as i64).into(),
                    (*attempt).into(),
                    r.outcome.into(),
                    r.detail.as_str().into(),
                    time::to_micros(r.at).into(),
                ],
            );
        }
        // positional on SQLite: 3,600 `$n` parameters would be bound in n² time
        sql.on(backend).query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The customer's messages in the last `window` (for frequency caps).
pub(crate) async fn sent_since(
    conn: &mut AnyConnection,
    tenant: &str,
    customer: &str,
    since: DateTime<Utc>,
) -> Result<Vec<Sent>> {
    sqlx::query(&format!("SELECT created_at, channel, purpose FROM outbox_messages WHERE tenant_id = $1 AND customer_id = $2 AND created_at > $3 AND {}", crate::definition::customer_facing_sql("channel")))
        .bind(tenant)
        .bind(customer)
        .bind(time::to_micros(since))
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            let purpose: String = r.try_get("purpose")?;
            Ok(Sent {
                at: time::from_micros(r.try_get("created_at")?),
                channel: r.try_get("channel")?,
                purpose: Purpose::parse(&purpose),
            })
        })
        .collect()
}

/// The customer's time zone: its `timeZone` attribute when valid, else the tenant's.
pub fn time_zone_of(customer: &Customer, tenant: &Tenant) -> Tz {
    customer
        .attributes
        .get("timeZone")
        .and_then(Value::as_str)
        .and_then(|z| z.parse().ok())
        .unwrap_or(tenant.time_zone)
}

/// Fills `{{customer.…}}` placeholders.
/// A JSON body template rendered as JSON: the template is parsed first and placeholders are
/// filled into its string values (keys stay as written), so a value can never add or
/// replace a key or break out of its string, whatever it holds.
pub fn render_json(template: &str, c: &Customer) -> Result<Value> {
    fn fill(v: Value, c: &Customer) -> Value {
        match v {
            Value::String(s) => Value::String(render(&s, c)),
            Value::Array(items) => Value::Array(items.into_iter().map(|i| fill(i, c)).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, fill(v, c))).collect())
            }
            other => other,
        }
    }
    let parsed: Value = serde_json::from_str(template)
        .map_err(|e| Error::invalid("body", format!("the body template is not JSON: {e}")))?;
    Ok(fill(parsed, c))
}

/// The body of a step's webhook call: [`render_json`]; a template saved before bodies had to
/// be JSON (`{"age": {{customer.attributes.age}}}`) is still delivered, as one JSON string
/// holding its rendered text — never spliced into JSON.
fn webhook_body(template: &str, c: &Customer) -> Value {
    render_json(template, c).unwrap_or_else(|_| {
        tracing::warn!(
            "a webhook body template is not JSON (saved before bodies had to be); sent as a string"
        );
        Value::String(render(template, c))
    })
}

/// A message step's text for `channel`: [`render`], with the customer's phone and e-mail
/// masked on a channel that reaches staff (a group robot's many readers).
pub fn render_on(channel: &str, template: &str, c: &Customer) -> String {
    if !crate::definition::staff_facing(channel) {
        return render(template, c);
    }
    render_masked(template, c)
}

/// [`render`] with the customer's phone and e-mail masked (`138****5678`): text that staff
/// of every role read.
pub fn render_masked(template: &str, c: &Customer) -> String {
    let mut masked = c.clone();
    masked.display_name = mask_text(&masked.display_name);
    masked.phones = masked.phones.iter().map(|p| mask_phone(p)).collect();
    masked.emails = masked.emails.iter().map(|e| mask_email(e)).collect();
    for v in masked.attributes.values_mut() {
        *v = match v {
            Value::String(s) => Value::String(mask_text(s)),
            Value::Null => Value::Null,
            _ => Value::String("***".into()),
        };
    }
    render(template, &masked)
}

/// A ticket's subject from a step's title: rendered with the customer's fields masked
/// (staff of every role read it), on one line, at most 200 characters; the title as
/// written if nothing is left.
pub fn ticket_subject(title: &str, c: &Customer) -> String {
    let one_line = |s: &str| -> String {
        s.chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .take(shoal_tickets::store::MAX_SUBJECT_CHARS)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let subject = one_line(&render_masked(title, c));
    if subject.is_empty() {
        one_line(title)
    } else {
        subject
    }
}

/// A text template with the customer's fields filled in.
pub fn render(template: &str, c: &Customer) -> String {
    let mut out = String::with_capacity(template.len());
    for part in super::definition::parts(template) {
        match part {
            Part::Text(text) | Part::Unclosed(text) => out.push_str(text),
            Part::Field(field) => {
                let value = match field.strip_prefix("customer.").unwrap_or("") {
                    "id" => c.id.clone(),
                    "name" => c.display_name.clone(),
                    "phone" => c.phones.first().cloned().unwrap_or_default(),
                    "email" => c.emails.first().cloned().unwrap_or_default(),
                    "stage" => c.lifecycle_stage.as_str().to_owned(),
                    "ownerId" => c.owner_id.clone().unwrap_or_default(),
                    "channel" => c.source_channel.as_str().to_owned(),
                    other => match other
                        .strip_prefix("attributes.")
                        .and_then(|k| c.attributes.get(k))
                    {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    },
                };
                out.push_str(&value);
            }
        }
    }
    out
}

/// Whether an event matching one of `specs` occurred since `since`.
pub(crate) async fn any_event_since(
    conn: &mut AnyConnection,
    tenant: &str,
    customer: &str,
    specs: &[EventSpec],
    since: DateTime<Utc>,
) -> Result<Option<String>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut sql = shoal_base::storage::sql::Sql::new(
        "SELECT event_type, name FROM events WHERE tenant_id = ",
    );
    let t = sql.arg(tenant);
    let c = sql.arg(customer);
    let s = sql.arg(time::to_micros(since));
    sql.push(&format!(
        "{t} AND customer_id = {c} AND occurred_at >= {s} AND ("
    ));
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        let ty = sql.arg(spec.event_type.clone());
        match &spec.name {
            Some(n) => {
                let n = sql.arg(n.clone());
                sql.push(&format!("(event_type = {ty} AND name = {n})"));
            }
            None => {
                sql.push(&format!("event_type = {ty}"));
            }
        }
    }
    sql.push(") LIMIT 1");
    let row = sql.query().fetch_optional(conn).await?;
    row.map(|r| {
        let ty: String = r.try_get("event_type")?;
        let name: Option<String> = r.try_get("name")?;
        Ok(EventSpec {
            event_type: ty,
            name,
        }
        .key())
    })
    .transpose()
}

struct DbWorld<'a, 'b> {
    conn: &'a mut AnyConnection,
    shared: &'a Shared<'b>,
    sop: &'a Compiled,
    /// Messages of the batch, written together at its end.
    queued: &'a mut Vec<Queued>,
    enrolment: &'a Claimed,
    customer: &'a Customer,
    facts: Option<shoal_tags::Loaded>,
}

impl DbWorld<'_, '_> {
    /// The idempotency key of a step's action: enrolment, step, attempt (the attempt counts
    /// for the step the enrolment was claimed at; later steps run their first attempt).
    fn key(&self, step: &Step) -> String {
        let claimed = self.sop.definition.steps.get(self.enrolment.step_index);
        let attempt = if claimed.is_some_and(|s| s.id == step.id) {
            self.enrolment.attempt
        } else {
            0
        };
        format!("{}:{}:{attempt}", self.enrolment.id, step.id)
    }

    fn tag(&self, name: &str) -> Result<&Tag> {
        match self.shared.tags.iter().find(|t| t.name == name) {
            Some(t) if t.kind == TagKind::Manual => Ok(t),
            Some(_) => Err(Error::invalid(
                "tag",
                format!("\"{name}\" is a dynamic tag"),
            )),
            None => Err(Error::invalid("tag", format!("no tag named \"{name}\""))),
        }
    }
}

impl World for DbWorld<'_, '_> {
    async fn trigger_time(&mut self, field: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(internal) = self
            .enrolment
            .trigger_key
            .as_deref()
            .and_then(|k| k.strip_prefix("internal:"))
        else {
            return Ok(None);
        };
        let tenant = &self.shared.tenant.id;
        let Some(row) =
            sqlx::query("SELECT payload FROM internal_events WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(internal)
                .fetch_optional(&mut *self.conn)
                .await?
        else {
            return Ok(None);
        };
        let payload: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("payload")?).unwrap_or_default();
        let Some(event_id) = payload.get("eventId").and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let Some(row) = sqlx::query("SELECT payload FROM events WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(event_id)
            .fetch_optional(&mut *self.conn)
            .await?
        else {
            return Ok(None);
        };
        let text: String = row.try_get("payload")?;
        let event: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(event
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    async fn exit_reason(&mut self, sop: &Compiled, now: DateTime<Utc>) -> Result<Option<String>> {
        let tenant = &self.shared.tenant.id;
        if let Some(key) = any_event_since(
            self.conn,
            tenant,
            &self.customer.id,
            &sop.definition.exit_on,
            self.enrolment.enrolled_at,
        )
        .await?
        {
            return Ok(Some(format!("exit event: {key}")));
        }
        if let Some(rule) = &sop.exit_condition
            && self.holds(rule, now).await?
        {
            return Ok(Some("the exit condition holds".into()));
        }
        Ok(None)
    }

    async fn holds(&mut self, rule: &Rule, now: DateTime<Utc>) -> Result<bool> {
        if self.facts.is_none() {
            self.facts = shoal_tags::load(
                self.conn,
                self.shared.db,
                &self.shared.tenant.id,
                &self.customer.id,
            )
            .await?;
        }
        Ok(self
            .facts
            .as_ref()
            .is_some_and(|f| shoal_rules::eval::holds(&rule.cond, &f.facts(time::to_micros(now)))))
    }

    async fn event_since(&mut self, spec: &EventSpec, since: DateTime<Utc>) -> Result<bool> {
        Ok(any_event_since(
            self.conn,
            &self.shared.tenant.id,
            &self.customer.id,
            std::slice::from_ref(spec),
            since,
        )
        .await?
        .is_some())
    }

    async fn contact(
        &mut self,
        sop: &Compiled,
        channel: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Verdict> {
        let policy = Policy::of(self.shared.tenant);
        let tenant = &self.shared.tenant.id;
        let mut history = History {
            opted_out: self
                .shared
                .opted_out
                .get(&self.customer.id)
                .cloned()
                .unwrap_or_default(),
            marketing: self
                .shared
                .marketing
                .get(&self.customer.id)
                .cloned()
                .unwrap_or_default(),
            ..History::default()
        };
        if let Some(longest) = policy.caps.iter().map(|c| c.window).max() {
            history.sent = sent_since(self.conn, tenant, &self.customer.id, now - longest).await?;
            // and what this batch queued already (written at its end)
            history.sent.extend(
                self.queued
                    .iter()
                    .filter(|q| q.customer_id == self.customer.id)
                    .map(|q| Sent {
                        at: q.at,
                        channel: q.channel.clone(),
                        purpose: Purpose::parse(q.purpose),
                    }),
            );
        }
        if policy.human_cooldown > Duration::zero() {
            history.last_human_follow_up =
                crate::follow_ups::last_human(self.conn, tenant, &self.customer.id).await?;
        }
        Ok(contact::judge(
            &policy,
            self.time_zone(),
            channel,
            purpose,
            now,
            &history,
            sop.definition.on_cap,
        ))
    }

    async fn perform(&mut self, step: &Step, now: DateTime<Utc>) -> Result<String> {
        let key = self.key(step);
        let c = self.customer;
        let e = self.enrolment;
        let detail = match &step.action {
            Action::SendMessage {
                channel,
                template,
                purpose,
            } => {
                let body = render_on(channel, template, c);
                self.queued.push(Queued {
                    key,
                    customer_id: c.id.clone(),
                    channel: channel.clone(),
                    purpose: purpose.as_str(),
                    body: body.clone(),
                    target: None,
                    sop_id: Some(e.sop_id.clone()),
                    enrolment_id: Some(e.id.clone()),
                    campaign_id: None,
                    at: now,
                });
                format!("{channel} message queued: {body}")
            }
            Action::CallWebhook { url, body } => {
                let body = match body.as_deref() {
                    Some(template) => webhook_body(template, c).to_string(),
                    None => json!({ "customerId": c.id }).to_string(),
                };
                self.queued.push(Queued {
                    key,
                    customer_id: c.id.clone(),
                    channel: "http".into(),
                    purpose: "service",
                    body,
                    target: Some(url.clone()),
                    sop_id: Some(e.sop_id.clone()),
                    enrolment_id: Some(e.id.clone()),
                    campaign_id: None,
                    at: now,
                });
                format!("webhook call to {url} queued")
            }
            Action::CreateTask {
                title,
                assignee,
                due_in_seconds,
            } => {
                let who = match assignee.as_str() {
                    "owner" => c.owner_id.clone().unwrap_or_else(|| "unassigned".into()),
                    other => other.to_owned(),
                };
                let title = render(title, c);
                crate::tasks::insert(
                    self.conn,
                    &self.shared.actor,
                    &crate::tasks::NewTask {
                        customer_id: c.id.clone(),
                        title: title.clone(),
                        assignee: who.clone(),
                        due_at: Some(
                            i64::try_from(*due_in_seconds)
                                .ok()
                                .and_then(Duration::try_seconds)
                                .and_then(|d| now.checked_add_signed(d))
                                .ok_or_else(|| {
                                    Error::invalid(
                                        "dueInSeconds",
                                        format!("{due_in_seconds} s from now is not a date"),
                                    )
                                })?,
                        ),
                        sop_id: Some(e.sop_id.clone()),
                        enrolment_id: Some(e.id.clone()),
                        idempotency_key: Some(key),
                    },
                )
                .await?;
                format!("task for {who}: {title}")
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => {
                let t = self.tag(tag)?.clone();
                let who = [c.id.clone()];
                let add = matches!(step.action, Action::AddTag { .. });
                let (a, r): (&[String], &[String]) = if add { (&who, &[]) } else { (&[], &who) };
                shoal_tags::write_changes(
                    self.conn,
                    &self.shared.actor,
                    &t,
                    a,
                    r,
                    &format!("sop:{}", e.sop_id),
                )
                .await?;
                self.facts = None;
                format!("tag \"{tag}\" {}", if add { "added" } else { "removed" })
            }
            Action::CreateTicket {
                title,
                priority,
                ticket_type,
            } => {
                let subject = ticket_subject(title, c);
                let p = match priority.as_str() {
                    "urgent" => 1,
                    "high" => 2,
                    "low" => 4,
                    _ => 3,
                };
                let id = shoal_tickets::store::open_in(
                    &mut *self.conn,
                    self.shared.db,
                    &self.shared.actor,
                    shoal_tickets::store::NewTicket {
                        type_key: ticket_type
                            .clone()
                            .unwrap_or_else(|| shoal_tickets::store::GENERAL.into()),
                        subject: subject.clone(),
                        priority: Some(p),
                        customer_id: Some(c.id.clone()),
                        channel: Some("sop".into()),
                        source_key: Some(key),
                        ..Default::default()
                    },
                )
                .await?;
                format!("ticket {id} opened (P{p}): {subject}")
            }
            Action::Wait { .. }
            | Action::WaitUntilTime { .. }
            | Action::WaitUntilEventTime { .. }
            | Action::WaitForEvent { .. }
            | Action::Branch { .. } => {
                return Err(Error::Internal("a control step has no action".into()));
            }
        };
        Ok(detail)
    }

    fn time_zone(&self) -> Tz {
        time_zone_of(self.customer, self.shared.tenant)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use shoal_base::kinds::{Channel, LifecycleStage};
    use shoal_crm::customers::Customer;

    use super::render_json;

    fn customer(name: &str) -> Customer {
        Customer {
            id: "c1".into(),
            display_name: name.into(),
            phones: vec!["+8613800138000".into()],
            emails: vec![],
            attributes: serde_json::Map::from_iter([("city".to_owned(), json!("上海"))]),
            lifecycle_stage: LifecycleStage::Lead,
            stage_manual: false,
            owner_id: None,
            source_channel: Channel::Web,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            version: 1,
        }
    }

    #[test]
    fn a_value_cannot_add_keys_or_leave_its_string() {
        let hostile = r#"a","vip":true,"x":""#;
        let body = render_json(
            r#"{"name": "{{customer.name}}", "city": "{{customer.attributes.city}}"}"#,
            &customer(hostile),
        )
        .unwrap();
        let text = body.to_string();
        let parsed: Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(parsed.as_object().unwrap().len(), 2, "{text}");
        assert_eq!(parsed["name"], hostile);
        assert_eq!(parsed["city"], "上海");
        assert!(parsed.get("vip").is_none());
    }

    #[test]
    fn placeholders_fill_values_never_keys() {
        let body = render_json(
            r#"{"{{customer.name}}": true, "approved": false}"#,
            &customer("approved"),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({ "{{customer.name}}": true, "approved": false })
        );
    }

    #[test]
    fn a_legacy_template_is_sent_as_one_string() {
        assert!(render_json("name={{customer.name}}", &customer("x")).is_err());
        let hostile = r#"1, "vip": true"#;
        let body = super::webhook_body(r#"{"age": {{customer.name}}}"#, &customer(hostile));
        assert_eq!(body, Value::String(format!(r#"{{"age": {hostile}}}"#)));
    }
}
