//! Import jobs: one row per run, updated with its checkpoint in the transaction of every
//! batch, so a crashed import resumes after the last committed row and counts stay exact.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{convert::RowError, mapping::Kind};
use shoal_base::{
    error::{Error, Result},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;

/// Rejected rows kept in the database per job (all of them go to the CLI's error file).
pub const MAX_STORED_ERRORS: i64 = 1000;

/// What an import did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Data rows read (rejected and skipped ones included).
    pub rows_read: i64,
    /// Customers (or events) stored as new.
    pub created: i64,
    /// Rows merged into an existing profile (customers).
    pub merged: i64,
    /// New duplicate suggestions queued.
    pub suggested: i64,
    /// Events whose idempotency key was seen before.
    pub duplicates: i64,
    /// Rows refused (see the errors).
    pub rejected: i64,
    /// Customers whose profile changed because of this import (merges included).
    pub updated: i64,
}

/// A recorded import.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: Kind,
    pub source: String,
    pub fingerprint: String,
    pub mapping: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub dry_run: bool,
    pub checkpoint_row: i64,
    pub counts: Counts,
    pub actor_id: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Job> {
    let kind: String = r.try_get("kind")?;
    Ok(Job {
        id: r.try_get("id")?,
        kind: Kind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("unknown import kind `{kind}`")))?,
        source: r.try_get("source")?,
        fingerprint: r.try_get("fingerprint")?,
        mapping: r.try_get("mapping")?,
        status: r.try_get("status")?,
        dry_run: r.try_get::<i64, _>("dry_run")? == 1,
        checkpoint_row: r.try_get("checkpoint_row")?,
        counts: Counts {
            rows_read: r.try_get("rows_read")?,
            created: r.try_get("created")?,
            merged: r.try_get("merged")?,
            suggested: r.try_get("suggested")?,
            duplicates: r.try_get("duplicates")?,
            rejected: r.try_get("rejected")?,
            updated: r.try_get("updated")?,
        },
        actor_id: r.try_get("actor_id")?,
        started_at: time::from_micros(r.try_get("started_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
        finished_at: r
            .try_get::<Option<i64>, _>("finished_at")?
            .map(time::from_micros),
        error: r.try_get("error")?,
    })
}

/// Records a new running job.
pub async fn start(
    db: &Db,
    actor: &Actor,
    kind: Kind,
    source: &str,
    fingerprint: &str,
    mapping: &str,
    dry_run: bool,
) -> Result<Job> {
    let now = time::to_micros(time::now());
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO import_jobs (tenant_id, id, kind, source, fingerprint, mapping, status, dry_run, checkpoint_row, \
         rows_read, created, updated, merged, suggested, duplicates, rejected, actor_id, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, 0, 0, 0, 0, 0, 0, 0, 0, $8, $9, $9)",
    )
    .bind(actor.tenant_id())
    .bind(&id)
    .bind(kind.as_str())
    .bind(source)
    .bind(fingerprint)
    .bind(mapping)
    .bind(i64::from(dry_run))
    .bind(&actor.user_id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    get(db, actor.tenant_id(), &id).await
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Job> {
    let row = sqlx::query("SELECT * FROM import_jobs WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::not_found("import job", id))?;
    from_row(&row)
}

/// Saves the counts and the last committed row, in the batch's transaction.
pub async fn checkpoint(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    row: u64,
    c: &Counts,
) -> Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET checkpoint_row = $1, rows_read = $2, created = $3, merged = $4, suggested = $5, \
         duplicates = $6, rejected = $7, updated = $8, updated_at = $9 WHERE tenant_id = $10 AND id = $11",
    )
    .bind(row as i64)
    .bind(c.rows_read)
    .bind(c.created)
    .bind(c.merged)
    .bind(c.suggested)
    .bind(c.duplicates)
    .bind(c.rejected)
    .bind(c.updated)
    .bind(time::to_micros(time::now()))
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores rejected rows (up to [`MAX_STORED_ERRORS`] per job), in the batch's transaction.
pub async fn store_errors(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    stored: &mut i64,
    errors: &[RowError],
) -> Result<()> {
    let mut seq_of_row: std::collections::HashMap<u64, i64> = std::collections::HashMap::new();
    for e in errors {
        if *stored >= MAX_STORED_ERRORS {
            break;
        }
        let seq = seq_of_row.entry(e.row).or_default();
        sqlx::query(
            "INSERT INTO import_errors (tenant_id, job_id, row_number, seq, column_name, value, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(id)
        .bind(e.row as i64)
        .bind(*seq)
        .bind(&e.column)
        .bind(e.value.chars().take(200).collect::<String>())
        .bind(&e.reason)
        .execute(&mut *conn)
        .await?;
        *seq += 1;
        *stored += 1;
    }
    Ok(())
}

/// How many rejected rows a job has stored already (when resuming).
pub async fn stored_errors(db: &Db, tenant: &str, id: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM import_errors WHERE tenant_id = $1 AND job_id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}

/// Marks a job finished (`completed`, or `failed` with the reason).
pub async fn finish(
    db: &Db,
    tenant: &str,
    id: &str,
    error: Option<&str>,
    counts: Option<&Counts>,
) -> Result<()> {
    let now = time::to_micros(time::now());
    sqlx::query(
        "UPDATE import_jobs SET status = $1, error = $2, finished_at = $3, updated_at = $3 WHERE tenant_id = $4 AND id = $5",
    )
    .bind(if error.is_some() { "failed" } else { "completed" })
    .bind(error)
    .bind(now)
    .bind(tenant)
    .bind(id)
    .execute(&db.pool)
    .await?;
    if let Some(c) = counts {
        // a dry run's counts were rolled back with its writes (and it committed no row)
        checkpoint(&mut *db.pool.acquire().await?, tenant, id, 0, c).await?;
    }
    Ok(())
}

/// The stored rejected rows of a job, in row order.
pub async fn errors(db: &Db, tenant: &str, id: &str, limit: i64) -> Result<Vec<RowError>> {
    let rows = sqlx::query(
        "SELECT row_number, column_name, value, reason FROM import_errors WHERE tenant_id = $1 AND job_id = $2 \
         ORDER BY row_number, seq LIMIT $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RowError {
                row: r.try_get::<i64, _>("row_number")? as u64,
                column: r.try_get("column_name")?,
                value: r.try_get("value")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
}

/// Import jobs and their rejected rows hold raw values of every customer (a refused row's
/// reason quotes its value): only a reader who reaches every customer (as an importer must)
/// and reads every field in full (no field masked or hidden for them) may see them.
pub fn require_reader(actor: &Actor) -> Result<()> {
    if !actor
        .access
        .reaches_all(shoal_base::kinds::Resource::Customers)
    {
        return Err(Error::Forbidden(
            "import jobs show raw imported values: they need a role whose customers scope is `all`"
                .into(),
        ));
    }
    if !actor.access.sees_customers_in_full() {
        return Err(Error::Forbidden(
            "import jobs show raw imported values: they need a role that masks no customer field"
                .into(),
        ));
    }
    Ok(())
}

/// The cursor ordering of [`list`].
pub const ORDER: &str = "imports:started_at:desc";

/// Jobs of the actor's tenant, newest first.
pub async fn list(db: &Db, actor: &Actor, page: &Page) -> Result<Paged<(Job, Cursor)>> {
    require_reader(actor)?;
    let mut sql =
        shoal_base::storage::sql::Sql::new("SELECT * FROM import_jobs WHERE tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    page.push_conditions(&mut sql, "started_at", "id", true);
    page.push_order_limit(&mut sql, "started_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|j| Cursor {
        tenant: actor.tenant_id().to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(j.started_at)),
        id: j.id.clone(),
    }))
}
