//! Imports and data quality in GraphQL: `importCustomers`, `importEvents`, `importJob(s)`
//! and `dataQuality`.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use base64::Engine;
use chrono::{DateTime, Utc};

use super::{ErrorExt, actor, db, page::page};
use shoal_base::{error::Error, kinds::Channel, pagination::PageArgs};
use shoal_data::{
    import::{self, Format, Input, Job, Kind, Request, RowError},
    quality,
};
use shoal_plugin_host::Reloader;

/// How the file's content is written in `content`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ImportFormat {
    /// CSV text as it is.
    #[default]
    Csv,
    /// An XLSX workbook, base64-encoded.
    Xlsx,
}

/// A file to import and how to read it.
#[derive(InputObject, Debug)]
pub struct ImportInput {
    /// The file: CSV text, or an XLSX workbook in base64 (bounded by `limits.max_body_bytes`;
    /// larger files go through `shoal import`).
    pub content: String,
    #[graphql(default)]
    pub format: ImportFormat,
    /// `content` is base64 (always so for XLSX; for CSV in another encoding than UTF-8,
    /// e.g. GBK with `source.encoding = "gbk"` in the mapping).
    #[graphql(default)]
    pub base64: bool,
    /// The field mapping, in TOML (docs/import.md). Ignored when resuming.
    pub mapping: String,
    /// Do everything, report what would happen, keep nothing.
    #[graphql(default)]
    pub dry_run: bool,
    /// Continue an interrupted import of the same file after its last committed row.
    pub resume_job_id: Option<ID>,
    /// Rows per transaction (default 5000).
    pub batch_size: Option<i32>,
    /// `false`: answer as soon as the job has started (`status: "running"`) and let it run
    /// on; follow it with `importJob(id)`. Default `true`: answer when it is done.
    #[graphql(default = true)]
    pub wait: bool,
}

/// A refused row (or cell): where, what, why.
#[derive(SimpleObject, Debug)]
pub struct ImportRowError {
    /// 1-based, as a spreadsheet numbers rows (the header is row `source.header_row`,
    /// 1 by default).
    pub row: i64,
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl From<RowError> for ImportRowError {
    fn from(e: RowError) -> Self {
        ImportRowError {
            row: e.row as i64,
            column: e.column,
            value: e.value,
            reason: e.reason,
        }
    }
}

/// An import run and what it did.
pub struct ImportJob(Job);

#[Object]
impl ImportJob {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// `customers` or `events`.
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }
    /// The file name, or `graphql`.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// `running`, `completed` or `failed` (a failed job can be resumed).
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    /// The last source row whose batch committed.
    async fn checkpoint_row(&self) -> i64 {
        self.0.checkpoint_row
    }
    async fn rows_read(&self) -> i64 {
        self.0.counts.rows_read
    }
    /// New customers (or events).
    async fn created(&self) -> i64 {
        self.0.counts.created
    }
    /// Rows merged into an existing profile (see `mergeHistory`).
    async fn merged(&self) -> i64 {
        self.0.counts.merged
    }
    /// Existing customers changed (merged into, or given events).
    async fn updated(&self) -> i64 {
        self.0.counts.updated
    }
    /// New duplicate suggestions queued.
    async fn suggested(&self) -> i64 {
        self.0.counts.suggested
    }
    /// Events whose idempotency key was already stored.
    async fn duplicates(&self) -> i64 {
        self.0.counts.duplicates
    }
    async fn rejected(&self) -> i64 {
        self.0.counts.rejected
    }
    /// The SHA-256 of the file.
    async fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    async fn actor_id(&self) -> &str {
        &self.0.actor_id
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Why a failed job stopped.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Refused rows in row order (the first 1000 are kept).
    async fn errors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: i32,
    ) -> async_graphql::Result<Vec<ImportRowError>> {
        let actor = actor(ctx).gql()?;
        Ok(import::job::errors(
            db(ctx),
            actor.tenant_id(),
            &self.0.id,
            i64::from(limit.clamp(0, 1000)),
        )
        .await
        .gql()?
        .into_iter()
        .map(Into::into)
        .collect())
    }
}

impl From<Job> for ImportJob {
    fn from(j: Job) -> Self {
        ImportJob(j)
    }
}

super::page::connection!(ImportJobConnection, ImportJobEdge, ImportJob, Job);

/// How complete one field is.
#[derive(SimpleObject)]
pub struct FieldCompleteness {
    pub field: String,
    pub filled: i64,
    pub missing: i64,
    pub missing_rate: f64,
}

/// Values present but wrong or meaningless.
#[derive(SimpleObject)]
pub struct InvalidValues {
    pub field: String,
    pub reason: String,
    pub count: i64,
    pub examples: Vec<String>,
}

/// Identities of one channel.
#[derive(SimpleObject)]
pub struct ChannelIdentityCount {
    pub channel: Channel,
    pub identities: i64,
    pub customers: i64,
}

/// A threshold the data crossed.
#[derive(SimpleObject)]
pub struct QualityFlag {
    /// `MISSING_CONTACT` (share without phone or email above the tenant's threshold),
    /// `DUPLICATES_PENDING`.
    pub code: String,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
}

/// The data-quality report over the customers the caller reaches.
#[derive(SimpleObject)]
pub struct DataQuality {
    pub generated_at: DateTime<Utc>,
    pub customers: i64,
    pub fields: Vec<FieldCompleteness>,
    pub invalid_values: Vec<InvalidValues>,
    pub duplicates_pending: i64,
    pub identities_per_channel: Vec<ChannelIdentityCount>,
    pub flags: Vec<QualityFlag>,
}

impl From<quality::Report> for DataQuality {
    fn from(r: quality::Report) -> Self {
        DataQuality {
            generated_at: r.generated_at,
            customers: r.customers,
            fields: r
                .fields
                .into_iter()
                .map(|f| FieldCompleteness {
                    field: f.field,
                    filled: f.filled,
                    missing: f.missing,
                    missing_rate: f.missing_rate,
                })
                .collect(),
            invalid_values: r
                .invalid
                .into_iter()
                .map(|i| InvalidValues {
                    field: i.field,
                    reason: i.reason,
                    count: i.count,
                    examples: i.examples,
                })
                .collect(),
            duplicates_pending: r.duplicates_pending,
            identities_per_channel: r
                .identities
                .into_iter()
                .map(|c| ChannelIdentityCount {
                    channel: c.channel,
                    identities: c.identities,
                    customers: c.customers,
                })
                .collect(),
            flags: r
                .flags
                .into_iter()
                .map(|f| QualityFlag {
                    code: f.code,
                    message: f.message,
                    value: f.value,
                    threshold: f.threshold,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    /// One import job of the tenant.
    async fn import_job(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ImportJob> {
        let actor = actor(ctx).gql()?;
        import::job::require_reader(actor).gql()?;
        Ok(import::job::get(db(ctx), actor.tenant_id(), &id)
            .await
            .gql()?
            .into())
    }

    /// Import jobs, newest first.
    async fn import_jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<ImportJobConnection> {
        let actor = actor(ctx).gql()?;
        let page = page(
            ctx,
            actor,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            import::job::ORDER,
        )?;
        Ok(ImportJobConnection::from_paged(
            import::job::list(db(ctx), actor, &page).await.gql()?,
        ))
    }

    /// Completeness per field, invalid values, pending duplicates, identities per channel
    /// and the flags the tenant's thresholds raise.
    async fn data_quality(&self, ctx: &Context<'_>) -> async_graphql::Result<DataQuality> {
        let actor = actor(ctx).gql()?;
        Ok(quality::report(db(ctx), actor).await.gql()?.into())
    }

    /// The tenant-wide data-quality figures of each local day of `[from, to]` (at most 400),
    /// from the daily snapshots (null for a day without one); needs scope `all` on customers
    /// (docs/analytics.md#data-quality-over-time).
    async fn data_quality_trend(
        &self,
        ctx: &Context<'_>,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> async_graphql::Result<Vec<DataQualityDay>> {
        let actor = actor(ctx).gql()?;
        Ok(shoal_data::quality_trend::trend(db(ctx), actor, from, to)
            .await
            .gql()?
            .into_iter()
            .map(|(day, s)| DataQualityDay {
                day,
                snapshot: s.map(|s| DataQualitySnapshot {
                    taken_at: s.taken_at,
                    customers: s.customers,
                    missing_phone: s.missing_phone,
                    missing_email: s.missing_email,
                    missing_contact: s.missing_contact,
                    missing_contact_rate: if s.customers == 0 {
                        0.0
                    } else {
                        s.missing_contact as f64 / s.customers as f64
                    },
                    missing_owner: s.missing_owner,
                    invalid: s.invalid,
                    duplicates_pending: s.duplicates_pending,
                }),
            })
            .collect())
    }
}

/// One local day of the data-quality trend.
#[derive(SimpleObject, Debug, Clone)]
pub struct DataQualityDay {
    pub day: chrono::NaiveDate,
    /// Null: no snapshot was taken that day (no host ran).
    pub snapshot: Option<DataQualitySnapshot>,
}

/// The tenant-wide figures of one day's snapshot.
#[derive(SimpleObject, Debug, Clone)]
pub struct DataQualitySnapshot {
    pub taken_at: DateTime<Utc>,
    pub customers: i64,
    pub missing_phone: i64,
    pub missing_email: i64,
    /// Neither a phone nor an e-mail address.
    pub missing_contact: i64,
    /// `missingContact / customers` (0 without customers).
    pub missing_contact_rate: f64,
    pub missing_owner: i64,
    /// Placeholder names and cells recent imports refused, as `dataQuality` counts them.
    pub invalid: i64,
    pub duplicates_pending: i64,
}

#[derive(Default)]
pub struct ImportMutation;

/// Hands the job over once it has started (for `wait: false`).
struct Started(Option<tokio::sync::oneshot::Sender<Job>>);

impl import::Observer for Started {
    fn started(&mut self, job: &Job) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(job.clone());
        }
    }
}

async fn run_import(
    ctx: &Context<'_>,
    input: ImportInput,
    kind: Kind,
) -> async_graphql::Result<ImportJob> {
    let actor = actor(ctx).gql()?;
    let bytes = if input.base64 || input.format == ImportFormat::Xlsx {
        base64::engine::general_purpose::STANDARD
            .decode(input.content.trim())
            .map_err(|e| Error::invalid("input.content", format!("not base64: {e}")))
            .gql()?
    } else {
        input.content.into_bytes()
    };
    let request = Request {
        input: Input::Bytes(bytes),
        format: match input.format {
            ImportFormat::Csv => Format::Csv,
            ImportFormat::Xlsx => Format::Xlsx,
        },
        mapping: input.mapping,
        source_name: "graphql".into(),
        dry_run: input.dry_run,
        resume: input.resume_job_id.map(|i| i.0),
        batch_size: input
            .batch_size
            .map_or(import::DEFAULT_BATCH, |n| n.max(1) as usize),
        expect: Some(kind),
    };
    // the import runs on its own task: a request that times out (or does not wait) leaves it
    // to finish, and `importJob` to report
    let host = ctx.data_unchecked::<Reloader>().host.clone();
    let (db, actor) = (db(ctx).clone(), actor.clone());
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let mut observer = Started(Some(started_tx));
    let task = tokio::spawn(async move {
        import::run(&db, &actor, Some(&host), &request, &mut observer).await
    });
    if !input.wait {
        // the job's row exists once `started` fires; a refusal before that ends the task
        if let Ok(job) = started.await {
            return Ok(job.into());
        }
    }
    let job = task
        .await
        .map_err(|e| Error::Internal(format!("the import task failed: {e}")))
        .gql()?
        .gql()?;
    Ok(job.into())
}

#[Object]
impl ImportMutation {
    /// Imports customers from a CSV or XLSX file with a field mapping: bad rows are reported
    /// (`errors`) and never stop the import; rows matching a stored profile on a key of the
    /// tenant's `dedupe.auto_merge` are merged into it (undoable); other likely duplicates
    /// are queued as suggestions.
    async fn import_customers(
        &self,
        ctx: &Context<'_>,
        input: ImportInput,
    ) -> async_graphql::Result<ImportJob> {
        run_import(ctx, input, Kind::Customers).await
    }

    /// Imports events (orders, visits, …) the same way; rows find their customer by id,
    /// phone, email or identity, and importing the same file twice adds nothing.
    async fn import_events(
        &self,
        ctx: &Context<'_>,
        input: ImportInput,
    ) -> async_graphql::Result<ImportJob> {
        run_import(ctx, input, Kind::Events).await
    }
}
