//! An SOP's figures per step, from its history (`sop_step_runs`) and outbox: how many
//! enrolments reached each step, what became of them there (done, skipped and why, exited
//! and why…), the messages each step queued and what the channel did with them, and how many
//! enrolled customers converted within a window.

use std::collections::BTreeMap;

use chrono::Duration;
use sqlx::Row;

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Resource,
    storage::{Db, sql::Sql},
};
use shoal_crm::tenancy::Actor;

use crate::funnel::EventMatch;

/// The most distinct reasons listed per step and outcome (the rest are summed as "…").
pub const MAX_REASONS: usize = 10;

/// One step's figures. Counts are of enrolments (an enrolment that ran a step twice after a
/// retry counts once, with its last outcome there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFigures {
    pub step_id: String,
    pub step_index: i64,
    /// Enrolments with any outcome at the step.
    pub reached: i64,
    /// Enrolments by their last outcome at the step (`done`, `skipped`, `exited`, …).
    pub outcomes: BTreeMap<String, i64>,
    /// Why steps were skipped, dropped, failed or exited: `(outcome, reason, enrolments)`,
    /// most frequent first.
    pub reasons: Vec<(String, String, i64)>,
    /// The step's outbox messages by status (`sent`, `failed`, `pending`).
    pub messages: BTreeMap<String, i64>,
}

/// Conversion after enrolment: a matching event within the window.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub event: EventMatch,
    pub within: Duration,
}

/// The SOP's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SopFigures {
    pub enrolled: i64,
    /// Enrolments by their status now.
    pub by_status: BTreeMap<String, i64>,
    pub steps: Vec<StepFigures>,
    /// Enrolled customers with a conversion event within the window after enrolling.
    pub converted: Option<i64>,
}

/// The figures of SOP `sop_id` over the enrolments of customers the actor reaches.
pub async fn compute(
    db: &Db,
    actor: &Actor,
    sop_id: &str,
    conversion: Option<&Conversion>,
) -> Result<SopFigures> {
    if let Some(c) = conversion {
        let mut p = Problems::default();
        c.event.check("conversion", &mut p);
        if c.within < Duration::minutes(1) || c.within > Duration::days(365) {
            p.push("conversion.within", "between 1 minute and 365 days");
        }
        p.into_result(())?;
    }
    let tenant = actor.tenant.id.as_str();
    let exists = sqlx::query("SELECT 1 AS one FROM sops WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(sop_id)
        .fetch_optional(&db.pool)
        .await?;
    if exists.is_none() {
        return Err(Error::not_found("sop", sop_id));
    }
    let scoped = |base: &str| -> Sql {
        let mut sql = Sql::new(base);
        let t = sql.arg(tenant);
        let s = sql.arg(sop_id);
        sql.push(&format!(" WHERE en.tenant_id = {t} AND en.sop_id = {s}"));
        actor.access.push_linked_scope(
            &mut sql,
            db.backend,
            Resource::Customers,
            &t,
            "en.customer_id",
        );
        sql
    };

    let mut figures = SopFigures::default();
    let mut sql = scoped("SELECT en.status, COUNT(*) AS n FROM sop_enrolments en");
    sql.push(" GROUP BY en.status");
    for r in sql.query().fetch_all(&db.pool).await? {
        let n: i64 = r.try_get("n")?;
        figures.enrolled += n;
        figures.by_status.insert(r.try_get("status")?, n);
    }

    // each enrolment's last run at each step
    let mut sql = scoped(
        "SELECT r.enrolment_id, r.step_id, r.step_index, r.outcome, r.detail, r.at, r.id \
         FROM sop_enrolments en JOIN sop_step_runs r ON r.tenant_id = en.tenant_id AND r.enrolment_id = en.id",
    );
    sql.push(" ORDER BY r.enrolment_id, r.step_id, r.at, r.id");
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut last: BTreeMap<(String, String), (i64, String, String)> = BTreeMap::new();
    for r in &rows {
        last.insert(
            (r.try_get("enrolment_id")?, r.try_get("step_id")?),
            (
                r.try_get("step_index")?,
                r.try_get("outcome")?,
                r.try_get("detail")?,
            ),
        );
    }
    // a completed enrolment's last line (`end: completed`) is derived from its row, not
    // stored as a run (older databases stored it too: the same key, the same value)
    let mut sql = scoped("SELECT en.id, en.step_index FROM sop_enrolments en");
    sql.push(" AND en.status = 'completed'");
    for r in sql.query().fetch_all(&db.pool).await? {
        last.insert(
            (r.try_get("id")?, "end".to_owned()),
            (
                r.try_get("step_index")?,
                "completed".to_owned(),
                "all steps done".to_owned(),
            ),
        );
    }
    let mut steps: BTreeMap<String, StepFigures> = BTreeMap::new();
    let mut reasons: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for ((_, step), (index, outcome, detail)) in last {
        let f = steps.entry(step.clone()).or_insert_with(|| StepFigures {
            step_id: step.clone(),
            step_index: index,
            ..StepFigures::default()
        });
        f.step_index = f.step_index.min(index);
        f.reached += 1;
        *f.outcomes.entry(outcome.clone()).or_default() += 1;
        if !matches!(outcome.as_str(), "done" | "waiting" | "completed") {
            *reasons.entry((step, outcome, detail)).or_default() += 1;
        }
    }
    let mut by_step: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    for ((step, outcome, detail), n) in reasons {
        by_step.entry(step).or_default().push((outcome, detail, n));
    }
    for (step, mut list) in by_step {
        list.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        if list.len() > MAX_REASONS {
            let rest: i64 = list[MAX_REASONS..].iter().map(|r| r.2).sum();
            list.truncate(MAX_REASONS);
            list.push(("…".into(), "other reasons".into(), rest));
        }
        if let Some(f) = steps.get_mut(&step) {
            f.reasons = list;
        }
    }

    // messages: the outbox key is `<enrolment>:<step>:<attempt>`
    let sql = scoped(
        "SELECT o.idempotency_key, o.status FROM sop_enrolments en \
         JOIN outbox_messages o ON o.tenant_id = en.tenant_id AND o.enrolment_id = en.id",
    );
    for r in sql.query().fetch_all(&db.pool).await? {
        let key: String = r.try_get("idempotency_key")?;
        let status: String = r.try_get("status")?;
        let mut parts = key.splitn(3, ':');
        if let (Some(_), Some(step)) = (parts.next(), parts.next())
            && let Some(f) = steps.get_mut(step)
        {
            *f.messages.entry(status).or_default() += 1;
        }
    }

    if let Some(c) = conversion {
        let mut sql = scoped("SELECT COUNT(DISTINCT en.customer_id) AS n FROM sop_enrolments en");
        let ty = sql.arg(c.event.event_type.as_str());
        let w = sql.arg(c.within.num_microseconds().unwrap_or(i64::MAX));
        let mut cond = format!(
            "e.tenant_id = en.tenant_id AND e.customer_id = en.customer_id AND e.event_type = {ty} \
             AND e.occurred_at >= en.enrolled_at AND e.occurred_at <= en.enrolled_at + {w}"
        );
        if let Some(name) = &c.event.name {
            let p = sql.arg(name.as_str());
            cond.push_str(&format!(" AND e.name = {p}"));
        }
        if let Some(ch) = c.event.channel {
            let p = sql.arg(ch.as_str());
            cond.push_str(&format!(" AND e.channel = {p}"));
        }
        if let Some(min) = c.event.min_amount_units {
            let p = sql.arg(min);
            cond.push_str(&format!(" AND e.amount_units >= {p}"));
        }
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM events e WHERE {cond})"
        ));
        let row = sql.query().fetch_one(&db.pool).await?;
        figures.converted = Some(row.try_get("n")?);
    }

    let mut steps: Vec<StepFigures> = steps.into_values().collect();
    steps.sort_by(|a, b| (a.step_index, &a.step_id).cmp(&(b.step_index, &b.step_id)));
    figures.steps = steps;
    Ok(figures)
}
