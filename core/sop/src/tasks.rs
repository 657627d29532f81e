//! Tasks: work for a person (or a role) about a customer, created by SOP steps or by hand.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    error::{Error, Problems, Result},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::access::ScopedId;
use shoal_crm::{audit, tenancy::Actor};

/// The cursor ordering of task lists.
pub const ORDER: &str = "tasks:created_at";

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub customer_id: String,
    pub title: String,
    /// A user id, `role:<name>`, or `unassigned`.
    pub assignee: String,
    pub due_at: Option<DateTime<Utc>>,
    /// `open`, `done` or `cancelled`.
    pub status: String,
    pub sop_id: Option<String>,
    pub enrolment_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A task to create.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub customer_id: String,
    pub title: String,
    pub assignee: String,
    pub due_at: Option<DateTime<Utc>>,
    pub sop_id: Option<String>,
    pub enrolment_id: Option<String>,
    /// Makes a retried creation a no-op.
    pub idempotency_key: Option<String>,
}

const COLUMNS: &str = "id, customer_id, title, assignee, due_at, status, sop_id, enrolment_id, created_by, created_at, completed_at";

fn from_row(r: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        title: r.try_get("title")?,
        assignee: r.try_get("assignee")?,
        due_at: r
            .try_get::<Option<i64>, _>("due_at")?
            .map(time::from_micros),
        status: r.try_get("status")?,
        sop_id: r.try_get("sop_id")?,
        enrolment_id: r.try_get("enrolment_id")?,
        created_by: r.try_get("created_by")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        completed_at: r
            .try_get::<Option<i64>, _>("completed_at")?
            .map(time::from_micros),
    })
}

fn check(p: &mut Problems, t: &NewTask) {
    if t.title.trim().is_empty() || t.title.chars().count() > 200 {
        p.push("input.title", "1–200 characters");
    }
    if t.assignee.trim().is_empty() || t.assignee.len() > 128 {
        p.push(
            "input.assignee",
            "a user id or `role:<name>` (1–128 characters)",
        );
    }
}

/// Inserts a task in the caller's transaction (with its audit record); `None` when the
/// idempotency key was used before.
pub async fn insert(
    conn: &mut AnyConnection,
    actor: &Actor,
    t: &NewTask,
) -> Result<Option<String>> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = sqlx::query(
        "INSERT INTO tasks (tenant_id, id, idempotency_key, customer_id, title, assignee, due_at, status, sop_id, enrolment_id, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(actor.tenant_id())
    .bind(&id)
    .bind(t.idempotency_key.clone())
    .bind(&t.customer_id)
    .bind(&t.title)
    .bind(&t.assignee)
    .bind(t.due_at.map(time::to_micros))
    .bind(t.sop_id.clone())
    .bind(t.enrolment_id.clone())
    .bind(&actor.user_id)
    .bind(time::to_micros(time::now()))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    audit::record(
        conn,
        actor,
        "tasks.create",
        "customer",
        &t.customer_id,
        json!({ "taskId": id, "title": t.title, "assignee": t.assignee }),
    )
    .await?;
    Ok(Some(id))
}

/// Creates a task by hand about `customer` (checked by `Access` for tasks); the task's
/// `customer_id` is the customer's.
pub async fn create(db: &Db, actor: &Actor, customer: &ScopedId, t: &NewTask) -> Result<Task> {
    actor.require(shoal_base::kinds::Action::Create)?;
    let customer_id = customer.for_use(actor.tenant_id(), shoal_base::kinds::Resource::Tasks)?;
    let t = &NewTask {
        customer_id: customer_id.to_owned(),
        ..t.clone()
    };
    let mut p = Problems::default();
    check(&mut p, t);
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let id = insert(&mut tx, actor, t)
        .await?
        .ok_or_else(|| Error::Internal("a task without idempotency key conflicted".into()))?;
    tx.commit().await?;
    get(db, actor.tenant_id(), &id).await
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Task> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::not_found("task", id))?;
    from_row(&row)
}

/// A change to a task.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    /// `open`, `done` or `cancelled`.
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
}

/// One task, if the actor's scope for tasks reaches it (`NOT_FOUND` otherwise).
pub async fn get_visible(db: &Db, actor: &Actor, id: &str) -> Result<Task> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM tasks WHERE tenant_id = "));
    let t = sql.arg(actor.tenant_id());
    let i = sql.arg(id);
    sql.push(&format!("{t} AND id = {i}"));
    actor.access.push_assigned_scope(
        &mut sql,
        db.backend,
        &t,
        "tasks.assignee",
        "tasks.customer_id",
    );
    let row = sql
        .query()
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::not_found("task", id))?;
    from_row(&row)
}

pub async fn update(db: &Db, actor: &Actor, id: &str, patch: &TaskPatch) -> Result<Task> {
    actor.require(shoal_base::kinds::Action::Update)?;
    if patch.assignee.is_some() {
        actor.require(shoal_base::kinds::Action::Assign)?;
    }
    get_visible(db, actor, id).await?;
    let mut p = Problems::default();
    if let Some(s) = &patch.status
        && !["open", "done", "cancelled"].contains(&s.as_str())
    {
        p.push("input.status", "open, done or cancelled");
    }
    if let Some(a) = &patch.assignee
        && (a.trim().is_empty() || a.len() > 128)
    {
        p.push(
            "input.assignee",
            "a user id or `role:<name>` (1–128 characters)",
        );
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2{}",
        shoal_base::storage::dialect::for_update(db.backend)
    ))
    .bind(actor.tenant_id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("task", id))?;
    let before = from_row(&row)?;
    let status = patch.status.clone().unwrap_or(before.status.clone());
    let completed = match (status.as_str(), before.completed_at) {
        ("open", _) => None,
        (_, Some(at)) if before.status == status => Some(time::to_micros(at)),
        _ => Some(time::to_micros(time::now())),
    };
    sqlx::query("UPDATE tasks SET status = $3, assignee = $4, due_at = $5, completed_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .bind(&status)
        .bind(patch.assignee.clone().unwrap_or(before.assignee.clone()))
        .bind(patch.due_at.or(before.due_at).map(time::to_micros))
        .bind(completed)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "tasks.update",
        "customer",
        &before.customer_id,
        json!({ "taskId": id, "status": status, "assignee": patch.assignee, "dueAt": patch.due_at }),
    )
    .await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), id).await
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub assignee: Option<String>,
    pub status: Option<String>,
    pub customer_id: Option<String>,
    pub sop_id: Option<String>,
    /// Open tasks due before now.
    pub overdue: bool,
}

/// Tasks, newest first.
pub async fn list(
    db: &Db,
    actor: &Actor,
    f: &TaskFilter,
    page: &Page,
) -> Result<Paged<(Task, Cursor)>> {
    let tenant = actor.tenant_id();
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM tasks WHERE tenant_id = "));
    let t = sql.arg(tenant);
    sql.push(&t);
    actor.access.push_assigned_scope(
        &mut sql,
        db.backend,
        &t,
        "tasks.assignee",
        "tasks.customer_id",
    );
    for (col, v) in [
        ("assignee", &f.assignee),
        ("status", &f.status),
        ("customer_id", &f.customer_id),
        ("sop_id", &f.sop_id),
    ] {
        if let Some(v) = v {
            let a = sql.arg(v.clone());
            sql.push(&format!(" AND {col} = {a}"));
        }
    }
    if f.overdue {
        let now = sql.arg(time::to_micros(time::now()));
        sql.push(&format!(" AND status = 'open' AND due_at < {now}"));
    }
    page.push_conditions(&mut sql, "created_at", "id", true);
    page.push_order_limit(&mut sql, "created_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let tasks = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(tasks).with_cursors(|t| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(t.created_at)),
        id: t.id.clone(),
    }))
}

/// Moves the open tasks of `from` about these customers to `to` (handover).
pub(crate) async fn reassign(
    conn: &mut AnyConnection,
    tenant: &str,
    customer_id: &str,
    from: &str,
    to: &str,
) -> Result<u64> {
    Ok(sqlx::query("UPDATE tasks SET assignee = $4 WHERE tenant_id = $1 AND customer_id = $2 AND assignee = $3 AND status = 'open'")
        .bind(tenant)
        .bind(customer_id)
        .bind(from)
        .bind(to)
        .execute(conn)
        .await?
        .rows_affected())
}
