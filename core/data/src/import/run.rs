//! The import driver: opens the source, binds the mapping to its header, reads batches,
//! and commits each batch with the job's checkpoint (a dry run does everything in one
//! transaction and rolls it back). Rejected rows go to the observer (the CLI's error file)
//! and to the database; bad rows never stop an import.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::{
    convert::{Bound, Checked, RowContext, RowError},
    customers, events,
    job::{self, Counts, Job},
    mapping::{self, Kind},
    source::{Format, Input, Source, SourceError},
};
use shoal_base::{
    error::{Error, FieldError, Result},
    kinds::{Action, Resource},
    storage::{Backend, Db},
};
use shoal_crm::tenancy::Actor;
use shoal_plugin_host::PluginHost;
use shoal_tags::{self as tags, TagKind};

/// Rows per transaction unless asked otherwise.
pub const DEFAULT_BATCH: usize = 5000;

/// One import to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub input: Input,
    pub format: Format,
    /// The mapping file's text (ignored when resuming: the job's own mapping is used).
    pub mapping: String,
    /// The file name, or `graphql`.
    pub source_name: String,
    pub dry_run: bool,
    /// A job to continue after its checkpoint.
    pub resume: Option<String>,
    pub batch_size: usize,
    /// Only this kind (the mapping's `kind` must agree), when the caller named one.
    pub expect: Option<Kind>,
}

/// Where an import is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub counts: Counts,
    /// Bytes (CSV) or rows (XLSX) read, and their total when known.
    pub done: u64,
    pub total: Option<u64>,
    pub elapsed: Duration,
    /// Rows read in this run (a resumed job counts from where it restarted).
    pub rows_this_run: i64,
}

/// Hears about an import as it runs.
pub trait Observer: Send {
    fn started(&mut self, _job: &Job) {}
    fn progress(&mut self, _p: &Progress) {}
    fn rejected(&mut self, _e: &RowError) {}
}

/// An observer that ignores everything (the API).
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {}

fn mapping_error(e: &mapping::MappingError) -> FieldError {
    let path = if e.path.is_empty() {
        "mapping".to_owned()
    } else {
        format!("mapping.{}", e.path)
    };
    FieldError::new(path, e.message.clone())
}

fn fingerprint(input: &Input) -> Result<String> {
    let mut hasher = Sha256::new();
    match input {
        Input::Bytes(b) => hasher.update(b),
        Input::File(path) => {
            let mut f = std::fs::File::open(path).map_err(|e| {
                Error::invalid("file", format!("cannot open {}: {e}", path.display()))
            })?;
            std::io::copy(&mut f, &mut hasher).map_err(|e| {
                Error::invalid("file", format!("cannot read {}: {e}", path.display()))
            })?;
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn source_error(e: SourceError) -> Error {
    Error::invalid("file", e.to_string())
}

/// Runs an import to its end (or its first storage failure, after which it can resume).
pub async fn run(
    db: &Db,
    actor: &Actor,
    host: Option<&PluginHost>,
    req: &Request,
    observer: &mut dyn Observer,
) -> Result<Job> {
    actor.require(Action::Create)?;
    let fingerprint = fingerprint(&req.input)?;
    let (job, mapping_text) = match &req.resume {
        Some(id) => {
            let job = job::get(db, actor.tenant_id(), id).await?;
            if job.fingerprint != fingerprint {
                return Err(Error::invalid(
                    "resume",
                    format!(
                        "the file differs from the one import {id} read (SHA-256 {} vs {})",
                        &job.fingerprint[..12],
                        &fingerprint[..12]
                    ),
                ));
            }
            if job.status == "completed" {
                return Err(Error::invalid(
                    "resume",
                    format!("import {id} is already complete"),
                ));
            }
            if job.dry_run {
                return Err(Error::invalid(
                    "resume",
                    "a dry run cannot be resumed: run it again",
                ));
            }
            if req.dry_run {
                return Err(Error::invalid(
                    "dryRun",
                    "a resumed import cannot be a dry run",
                ));
            }
            let text = job.mapping.clone();
            (Some(job), text)
        }
        None => (None, req.mapping.clone()),
    };
    let mapping =
        mapping::parse(&mapping_text).map_err(|e| Error::Invalid(vec![mapping_error(&e)]))?;
    if let Some(kind) = req.expect
        && kind != mapping.kind
    {
        return Err(Error::invalid(
            "mapping.kind",
            format!(
                "this is an import of {}, but the mapping describes {}",
                kind.as_str(),
                mapping.kind.as_str()
            ),
        ));
    }
    if mapping.kind == Kind::Customers {
        actor.require(Action::Update)?;
    }
    if !actor.access.reaches_all(Resource::Customers)
        || (mapping.kind == Kind::Events && !actor.access.reaches_all(Resource::Events))
    {
        return Err(Error::Forbidden(format!(
            "importing {} needs a role whose customers{} scope is `all` (rows are matched against every customer)",
            mapping.kind.as_str(),
            if mapping.kind == Kind::Events {
                " and events"
            } else {
                ""
            }
        )));
    }
    let batch_size = req.batch_size.clamp(1, 10_000);
    let job = match job {
        Some(j) => j,
        None => {
            job::start(
                db,
                actor,
                mapping.kind,
                &req.source_name,
                &fingerprint,
                &mapping_text,
                req.dry_run,
            )
            .await?
        }
    };
    observer.started(&job);
    // a panic while importing fails the job (resumable) instead of leaving it `running`
    let outcome = shoal_base::supervise::catch(drive(
        db,
        actor,
        host,
        req,
        &mapping,
        &job,
        &fingerprint,
        batch_size,
        observer,
    ))
    .await;
    match outcome {
        Ok(counts) => {
            job::finish(
                db,
                actor.tenant_id(),
                &job.id,
                None,
                req.dry_run.then_some(&counts),
            )
            .await?;
            if !req.dry_run && counts.created + counts.merged > 0 {
                refresh_dynamic_tags(db, actor).await;
            }
            job::get(db, actor.tenant_id(), &job.id).await
        }
        Err(e) => {
            let message = match &e {
                Error::Storage(_) | Error::Internal(_) => {
                    "an internal failure (see the server log); resume the job to continue"
                        .to_owned()
                }
                other => other.to_string(),
            };
            job::finish(db, actor.tenant_id(), &job.id, Some(&message), None).await?;
            Err(e)
        }
    }
}

/// Recomputes dynamic tags once after an import that stored anything (in bulk, in SQL),
/// when the tenant has dynamic tags; customers changed by merges or given events were
/// already re-evaluated after their batch.
async fn refresh_dynamic_tags(db: &Db, actor: &Actor) {
    let dynamic = match tags::list(db, actor.tenant_id()).await {
        Ok(all) => all.iter().any(|t| t.kind == TagKind::Dynamic),
        Err(_) => false,
    };
    if dynamic && let Err(e) = tags::recompute(db, &tags::system(&actor.tenant), None).await {
        tracing::error!(tenant = actor.tenant_id(), error = %e, "tag recompute after an import failed");
    }
}

/// Refreshes PostgreSQL's statistics of the tables an import fills (after batches 1, 2, 4,
/// 8, …). Plans cached while a table was nearly empty scan it; an import that grows it a
/// thousandfold in minutes outruns autovacuum, and each batch then read whole tables (1M
/// rows: 700 rows/s instead of thousands). `ANALYZE` replaces the statistics and with them
/// the cached plans.
async fn refresh_statistics(db: &Db) {
    let tables =
        "customers, customer_contacts, customer_identities, events, audit_log, merge_suggestions";
    if let Err(e) = sqlx::query(&format!("ANALYZE {tables}"))
        .execute(&db.pool)
        .await
    {
        tracing::warn!(error = %e, "ANALYZE during an import failed");
    }
}

/// A batch of rows read, by kind.
enum Batch {
    Customers(Checked<customers::Incoming>),
    Events(Checked<events::Draft>),
}

type Checking = (usize, u64, tokio::task::JoinHandle<Batch>);

/// Takes the next batch of rows from the source and starts checking it on the blocking
/// pool; `None` at the end of the file. Returns the batch's size and last row number.
async fn next_batch(
    source: &mut Source,
    size: usize,
    ctx: &Arc<RowContext>,
    kind: Kind,
) -> Result<Option<Checking>> {
    let mut rows = Vec::with_capacity(size);
    while rows.len() < size {
        match source.next().await.map_err(source_error)? {
            Some(row) => rows.push(row),
            None => break,
        }
    }
    let Some(last) = rows.last().map(|r| r.number) else {
        return Ok(None);
    };
    let ctx = ctx.clone();
    let n = rows.len();
    let handle = tokio::task::spawn_blocking(move || match kind {
        Kind::Customers => Batch::Customers(customers::check(&ctx, &rows)),
        Kind::Events => Batch::Events(events::check(&ctx, &rows)),
    });
    Ok(Some((n, last, handle)))
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn drive(
    db: &Db,
    actor: &Actor,
    host: Option<&PluginHost>,
    req: &Request,
    mapping: &mapping::Mapping,
    job: &Job,
    fingerprint: &str,
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Counts> {
    let mut source = Source::open(
        req.input.clone(),
        req.format,
        mapping,
        job.checkpoint_row as u64,
    )
    .await
    .map_err(source_error)?;
    let bound = Bound::new(mapping, &source.header, actor.tenant.time_zone)
        .map_err(|errors| Error::Invalid(errors.iter().map(mapping_error).collect()))?;
    let tags_by_name = tags::list(db, actor.tenant_id())
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let rows_ctx = Arc::new(RowContext {
        actor: actor.clone(),
        bound,
        tags: tags_by_name,
        key_prefix: format!("import:{}:", &fingerprint[..16]),
    });
    let customer_ctx = customers::Context {
        db,
        actor,
        job_id: &job.id,
    };
    let event_ctx = events::Context {
        db,
        actor,
        trigger_automations: mapping.trigger_automations,
    };
    let mut counts = job.counts;
    let mut stored_errors = job::stored_errors(db, actor.tenant_id(), &job.id).await?;
    let mut dry_errors: Vec<RowError> = Vec::new();
    let started = Instant::now();
    let mut rows_this_run = 0i64;
    let mut batches = 0u64;
    // a dry run is one transaction, rolled back at the end; a real import commits each batch
    // with its checkpoint, and takes the write lock only once the batch has been read
    let mut dry_tx = if req.dry_run {
        Some(db.begin_write().await?)
    } else {
        None
    };
    // batches are written on a connection of the import's own, tuned for large
    // transactions (a pool of one connection cannot spare it: tag evaluation needs one)
    let mut bulk = if req.dry_run || db.pool.options().get_max_connections() < 2 {
        None
    } else {
        Some(db.bulk_connection().await?)
    };
    // the next batch is read and checked on the blocking pool while this one is written
    let mut checking = next_batch(&mut source, batch_size, &rows_ctx, mapping.kind).await?;
    while let Some((rows, last, handle)) = checking.take() {
        let checked = handle
            .await
            .map_err(|e| Error::Internal(format!("checking rows failed: {e}")))?;
        checking = next_batch(&mut source, batch_size, &rows_ctx, mapping.kind).await?;
        let mut errors = Vec::new();
        let mut batch_tx = match (&dry_tx, bulk.as_deref_mut()) {
            (Some(_), _) => None,
            (None, Some(conn)) => Some(db.begin_write_on(conn).await?),
            (None, None) => Some(db.begin_write().await?),
        };
        let tx: &mut AnyConnection = match (&mut dry_tx, &mut batch_tx) {
            (Some(tx), _) => tx,
            (None, Some(tx)) => tx,
            (None, None) => unreachable!("one of the two transactions is open"),
        };
        let touched = match checked {
            Batch::Customers(c) => {
                customers::batch(tx, &customer_ctx, c, &mut counts, &mut errors).await?
            }
            Batch::Events(c) => events::batch(tx, &event_ctx, c, &mut counts, &mut errors).await?,
        };
        rows_this_run += rows as i64;
        if let Some(mut tx) = batch_tx {
            job::store_errors(
                &mut tx,
                actor.tenant_id(),
                &job.id,
                &mut stored_errors,
                &errors,
            )
            .await?;
            job::checkpoint(&mut tx, actor.tenant_id(), &job.id, last, &counts).await?;
            tx.commit().await?;
            batches += 1;
            if db.backend == Backend::Postgres && batches.is_power_of_two() {
                refresh_statistics(db).await;
            }
            // reported once committed, so an error file never repeats rows a resume reads again
            for e in &errors {
                observer.rejected(e);
            }
            if !touched.is_empty()
                && let Err(e) = tags::evaluate_customers(db, host, &actor.tenant, &touched).await
            {
                tracing::error!(tenant = actor.tenant_id(), error = %e, "tag evaluation after an import batch failed");
            }
        } else {
            let room = (job::MAX_STORED_ERRORS as usize).saturating_sub(dry_errors.len());
            dry_errors.extend(errors.iter().take(room).cloned());
            for e in &errors {
                observer.rejected(e);
            }
        }
        observer.progress(&Progress {
            counts,
            done: source.done.load(std::sync::atomic::Ordering::Relaxed),
            total: source.total,
            elapsed: started.elapsed(),
            rows_this_run,
        });
    }
    if let Some(tx) = dry_tx {
        tx.rollback().await?;
        let mut tx = db.begin_write().await?;
        let mut n = 0;
        job::store_errors(&mut tx, actor.tenant_id(), &job.id, &mut n, &dry_errors).await?;
        tx.commit().await?;
    }
    Ok(counts)
}
