//! Enrolments: a customer going through one version of an SOP. Created by triggers (see
//! `dispatch`) or by hand; paused, resumed and cancelled by hand.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::definition::Reentry;
use shoal_base::{
    error::{Error, Problems, Result},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, dialect, sql::Sql, time},
};
use shoal_crm::access::ScopedIds;
use shoal_crm::{audit, tenancy::Actor};

pub const ORDER: &str = "enrolments:enrolled_at";
/// Most customers one manual enrolment may take.
pub const MAX_MANUAL: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Enrolment {
    pub id: String,
    pub sop_id: String,
    pub version: i64,
    pub customer_id: String,
    /// `active`, `paused`, `parked`, `completed`, `exited`, `cancelled`.
    pub status: String,
    pub trigger: String,
    pub step_index: i64,
    pub next_run_at: Option<DateTime<Utc>>,
    pub waiting_for: Option<String>,
    pub attempt: i64,
    pub last_error: Option<String>,
    pub exit_reason: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One line of an enrolment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub step_id: String,
    pub step_index: i64,
    pub attempt: i64,
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

fn from_row(r: &AnyRow) -> Result<Enrolment> {
    Ok(Enrolment {
        id: r.try_get("id")?,
        sop_id: r.try_get("sop_id")?,
        version: r.try_get("version")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        trigger: r.try_get("trigger_info")?,
        step_index: r.try_get("step_index")?,
        next_run_at: r
            .try_get::<Option<i64>, _>("next_run_at")?
            .map(time::from_micros),
        waiting_for: r.try_get("waiting_for")?,
        attempt: r.try_get("attempt")?,
        last_error: r.try_get("last_error")?,
        exit_reason: r.try_get("exit_reason")?,
        enrolled_at: time::from_micros(r.try_get("enrolled_at")?),
        finished_at: r
            .try_get::<Option<i64>, _>("finished_at")?
            .map(time::from_micros),
    })
}

/// Enrols a customer unless the re-entry policy forbids it (or the trigger was handled
/// before); `true` when enrolled.
#[allow(clippy::too_many_arguments)] // one row, every column a caller decides
pub async fn enrol(
    conn: &mut AnyConnection,
    tenant: &str,
    sop_id: &str,
    version: i64,
    reentry: Reentry,
    customer_id: &str,
    trigger_key: &str,
    trigger_info: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    if reentry == Reentry::Once
        && sqlx::query("SELECT 1 FROM sop_enrolments WHERE tenant_id = $1 AND sop_id = $2 AND customer_id = $3 LIMIT 1")
            .bind(tenant)
            .bind(sop_id)
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some()
    {
        return Ok(false);
    }
    let at = time::to_micros(now);
    // The unique indexes make a repeated trigger, or a second running enrolment, a no-op.
    Ok(sqlx::query(
        "INSERT INTO sop_enrolments (tenant_id, id, sop_id, version, customer_id, status, trigger_key, trigger_info, step_index, \
         step_started_at, next_run_at, attempt, enrolled_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, 0, $8, $8, 0, $8, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(sop_id)
    .bind(version)
    .bind(customer_id)
    .bind(trigger_key)
    .bind(trigger_info)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}

/// Enrols customers by hand (the SOP must be active or paused); returns how many were
/// enrolled (the others are running it already, or the SOP runs once per customer).
pub async fn enrol_manually(
    db: &Db,
    actor: &Actor,
    sop_id: &str,
    customers: &ScopedIds,
) -> Result<usize> {
    let customer_ids = customers.ids();
    actor.require(if customer_ids.len() > 1 {
        shoal_base::kinds::Action::BulkMessage
    } else {
        shoal_base::kinds::Action::Update
    })?;
    let sop = super::store::get(db, actor.tenant_id(), sop_id).await?;
    let mut p = Problems::default();
    if !["active", "paused"].contains(&sop.status.as_str()) {
        p.push(
            "sopId",
            format!("the SOP is {}: activate it first", sop.status),
        );
    }
    if customer_ids.len() > MAX_MANUAL {
        return Err(Error::LimitExceeded {
            field: "customerIds".into(),
            message: format!("at most {MAX_MANUAL} customers at once"),
        });
    }
    p.into_result(())?;
    let now = time::now();
    let mut tx = db.begin_write().await?;
    let mut missing = Problems::default();
    let mut enrolled = 0;
    let batch = uuid::Uuid::now_v7().to_string();
    for chunk in customer_ids.chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let live = shoal_crm::customers::get_many(&mut tx, db, actor.tenant_id(), &refs).await?;
        for id in chunk {
            if !live.contains_key(id) {
                if missing.is_empty() || customer_ids.len() <= 100 {
                    let i = customer_ids.iter().position(|c| c == id).unwrap_or(0);
                    missing.push(
                        format!("customerIds[{i}]"),
                        format!("no customer `{id}` in this tenant"),
                    );
                }
                continue;
            }
            let key = format!("manual:{batch}:{id}");
            let info = format!("manual enrolment by {}", actor.user_id);
            if enrol(
                &mut tx,
                actor.tenant_id(),
                sop_id,
                sop.version,
                sop.definition.reentry,
                id,
                &key,
                &info,
                now,
            )
            .await?
            {
                enrolled += 1;
            }
        }
    }
    missing.into_result(())?;
    audit::record(
        &mut tx,
        actor,
        "sops.enrol",
        "sop",
        sop_id,
        json!({ "requested": customer_ids.len(), "enrolled": enrolled }),
    )
    .await?;
    tx.commit().await?;
    Ok(enrolled)
}

/// Which enrolments to list.
#[derive(Debug, Clone, Default)]
pub struct EnrolmentFilter {
    pub sop_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<String>,
}

/// Enrolments, newest first.
pub async fn list(
    db: &Db,
    actor: &Actor,
    f: &EnrolmentFilter,
    page: &Page,
) -> Result<Paged<(Enrolment, Cursor)>> {
    let tenant = actor.tenant_id();
    let mut sql = Sql::new("SELECT * FROM sop_enrolments WHERE tenant_id = ");
    let t = sql.arg(tenant);
    sql.push(&t);
    let resource = shoal_base::kinds::Resource::Customers;
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        resource,
        &t,
        "sop_enrolments.customer_id",
    );
    for (col, v) in [
        ("sop_id", &f.sop_id),
        ("customer_id", &f.customer_id),
        ("status", &f.status),
    ] {
        if let Some(v) = v {
            let a = sql.arg(v.clone());
            sql.push(&format!(" AND {col} = {a}"));
        }
    }
    page.push_conditions(&mut sql, "enrolled_at", "id", true);
    page.push_order_limit(&mut sql, "enrolled_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|e| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(e.enrolled_at)),
        id: e.id.clone(),
    }))
}

/// How many enrolments of an SOP are in each status, among the customers the actor reaches.
pub async fn counts(db: &Db, actor: &Actor, sop_id: &str) -> Result<Vec<(String, i64)>> {
    let mut sql = Sql::new("SELECT status, COUNT(*) AS n FROM sop_enrolments WHERE tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    let s = sql.arg(sop_id);
    sql.push(&format!("{t} AND sop_id = {s}"));
    let resource = shoal_base::kinds::Resource::Customers;
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        resource,
        &t,
        "sop_enrolments.customer_id",
    );
    sql.push(" GROUP BY status ORDER BY status");
    sql.query()
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect()
}

/// One enrolment, if the actor reaches its customer (`NOT_FOUND` otherwise).
pub async fn get_visible(db: &Db, actor: &Actor, id: &str) -> Result<Enrolment> {
    let resource = shoal_base::kinds::Resource::Customers;
    actor
        .access
        .ensure_linked(db, resource, "sop_enrolments", "enrolment", id)
        .await?;
    get(db, actor.tenant_id(), id).await
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Enrolment> {
    let row = sqlx::query("SELECT * FROM sop_enrolments WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::not_found("enrolment", id))?;
    from_row(&row)
}

/// The enrolment's history, oldest first.
/// The step runs of an enrolment the actor reaches, oldest first. For a reader who sees
/// some customer field masked or hidden, the text a step rendered from customer fields (a
/// message, a task or ticket title: what follows `: ` in a done step's detail) is withheld.
///
/// An enrolment's end is its own row (status `completed`, `finished_at`), not a stored step
/// run: the last line, `end: completed`, is derived from it (older databases stored it).
pub async fn history(db: &Db, actor: &Actor, id: &str) -> Result<Vec<StepRun>> {
    let enrolment = get_visible(db, actor, id).await?;
    let tenant = actor.tenant_id();
    let mut runs = sqlx::query(
        "SELECT * FROM sop_step_runs WHERE tenant_id = $1 AND enrolment_id = $2 ORDER BY at, id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(StepRun {
            step_id: r.try_get("step_id")?,
            step_index: r.try_get("step_index")?,
            attempt: r.try_get("attempt")?,
            outcome: r.try_get("outcome")?,
            detail: r.try_get("detail")?,
            at: time::from_micros(r.try_get("at")?),
        })
    })
    .collect::<Result<Vec<_>>>()?;
    if let Some(end) = completion(&enrolment)
        && runs.last().is_none_or(|r| r.outcome != end.outcome)
    {
        runs.push(end);
    }
    if !actor.access.sees_customers_in_full() {
        for run in runs.iter_mut().filter(|r| r.outcome == "done") {
            if let Some((head, _)) = run.detail.split_once(": ") {
                run.detail = format!("{head}: {}", crate::outbox::HIDDEN_BODY);
            }
        }
    }
    Ok(runs)
}

/// What a completed enrolment's history ends with: `end: completed` at the index it ended
/// at, when it finished.
pub fn completion(enrolment: &Enrolment) -> Option<StepRun> {
    (enrolment.status == "completed").then(|| StepRun {
        step_id: crate::definition::END.to_owned(),
        step_index: enrolment.step_index,
        attempt: 0,
        outcome: "completed".to_owned(),
        detail: COMPLETED_DETAIL.to_owned(),
        at: enrolment.finished_at.unwrap_or(enrolment.enrolled_at),
    })
}

/// The detail of a completed enrolment's last history line.
pub const COMPLETED_DETAIL: &str = "all steps done";

/// `pause`, `resume` (also of a parked enrolment: its step is retried now) or `cancel`.
pub async fn control(db: &Db, actor: &Actor, id: &str, action: &str) -> Result<Enrolment> {
    actor.require(shoal_base::kinds::Action::Update)?;
    get_visible(db, actor, id).await?;
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(&format!(
        "SELECT * FROM sop_enrolments WHERE tenant_id = $1 AND id = $2{}",
        dialect::for_update(db.backend)
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("enrolment", id))?;
    let e = from_row(&row)?;
    let sql = match (action, e.status.as_str()) {
        ("pause", "active") => {
            "UPDATE sop_enrolments SET status = 'paused', updated_at = $3 WHERE tenant_id = $1 AND id = $2"
        }
        ("resume", "paused") => {
            "UPDATE sop_enrolments SET status = 'active', updated_at = $3 WHERE tenant_id = $1 AND id = $2"
        }
        ("resume", "parked") => {
            "UPDATE sop_enrolments SET status = 'active', attempt = 0, next_run_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2"
        }
        ("cancel", "active" | "paused" | "parked") => {
            "UPDATE sop_enrolments SET status = 'cancelled', exit_reason = 'cancelled by hand', next_run_at = NULL, finished_at = $3, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2"
        }
        _ => {
            return Err(Error::invalid(
                "id",
                format!("cannot {action} an enrolment that is {}", e.status),
            ));
        }
    };
    sqlx::query(sql)
        .bind(actor.tenant_id())
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        &format!("enrolments.{action}"),
        "customer",
        &e.customer_id,
        json!({ "enrolmentId": id, "sopId": e.sop_id }),
    )
    .await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), id).await
}
