//! The binary's data commands: `shoal import customers|events`, `shoal report quality` and
//! `shoal dedupe scan`. They open the database like the server does (migrating it and
//! mirroring tenants from config first) and act as a configured user or as `cli`.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use shoal_base::{
    config::Config,
    error::Error,
    storage::{self, Db},
};
use shoal_crm::tenancy::{self, Actor, Directory, Principal};
use shoal_data::{
    import::{self, Format, Input, Job, Kind, Observer, Progress, Request, RowError},
    quality,
};

type BoxError = Box<dyn std::error::Error>;

/// `shoal import` arguments.
#[derive(Debug)]
pub struct ImportArgs {
    pub kind: Kind,
    pub file: PathBuf,
    pub tenant: String,
    pub mapping: Option<PathBuf>,
    pub user: Option<String>,
    pub dry_run: bool,
    pub resume: Option<String>,
    pub errors: Option<PathBuf>,
    pub batch: usize,
}

/// The database, migrated, with the configured tenants mirrored (and, with `--demo`, the
/// demo tenant seeded as `serve --demo` seeds it), and the actor.
async fn open(
    config: &Config,
    demo: bool,
    tenant: &str,
    user: Option<&str>,
) -> Result<(Db, Actor), BoxError> {
    let db = Db::connect(&config.storage.url, 4).await?;
    storage::migrate(&db).await?;
    tenancy::sync_to_db(&db, config).await?;
    shoal_server::server::open_vault(&db, config).await?;
    let directory = Directory::from_config(config, &db.vault);
    if demo && let Some(t) = directory.tenant(shoal_server::demo::TENANT_ID) {
        let seeded = shoal_server::demo::seed(&db, t).await?;
        if seeded > 0 {
            eprintln!("seeded the demo tenant with {seeded} customers");
        }
    }
    let Some(t) = directory.tenant(tenant) else {
        let known: Vec<&str> = config.tenants.keys().map(String::as_str).collect();
        let hint = if tenant == shoal_server::demo::TENANT_ID && !demo {
            "; add --demo to reach the demo tenant `serve --demo` shows"
        } else {
            ""
        };
        return Err(format!(
            "no tenant `{tenant}` in the configuration (it has: {}){hint}",
            known.join(", ")
        )
        .into());
    };
    let request_id = format!("cli:{}", uuid::Uuid::now_v7());
    let actor = match user {
        Some(u) if t.users.contains_key(u) => {
            Principal {
                tenant: t.clone(),
                user_id: u.to_owned(),
            }
            .resolve(&db, Default::default(), request_id)
            .await?
        }
        Some(u) => return Err(format!("no user `{u}` in tenant `{tenant}`").into()),
        None => Actor::system(t, "cli"),
    };
    Ok((db, actor))
}

/// Writes rejected rows to the error file (opened at the first one) and shows progress on
/// stderr.
struct Cli {
    errors: Option<csv::Writer<std::fs::File>>,
    /// Append to the file (a resumed import) rather than replace it.
    append: bool,
    failed: bool,
    errors_path: PathBuf,
    written: u64,
    tty: bool,
    last: Instant,
    shown: bool,
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Observer for Cli {
    fn started(&mut self, job: &Job) {
        eprintln!(
            "import {} ({}){}{}",
            job.id,
            job.kind.as_str(),
            if job.dry_run { ", dry run" } else { "" },
            if job.checkpoint_row > 0 {
                format!(", resuming after row {}", job.checkpoint_row)
            } else {
                String::new()
            }
        );
    }

    fn progress(&mut self, p: &Progress) {
        // called after each commit: what the error file holds matches what is stored
        if let Some(w) = &mut self.errors {
            let _ = w.flush();
        }
        let now = Instant::now();
        if !self.tty && now.duration_since(self.last) < Duration::from_secs(5) {
            return;
        }
        self.last = now;
        let secs = p.elapsed.as_secs_f64().max(0.001);
        let rate = p.rows_this_run as f64 / secs;
        let (share, eta) = match p.total {
            Some(total) if total > 0 && p.done > 0 => {
                let share = (p.done as f64 / total as f64).min(1.0);
                let left = secs * (1.0 - share) / share;
                (
                    format!("{:5.1}%", share * 100.0),
                    format!("ETA {}", clock(Duration::from_secs_f64(left))),
                )
            }
            _ => ("    ?%".into(), "ETA ?".into()),
        };
        let c = p.counts;
        let line = format!(
            "{share} {} rows  {} rows/s  {eta}  created {} merged {} suggested {} rejected {}",
            thousands(c.rows_read),
            thousands(rate as i64),
            thousands(c.created),
            thousands(c.merged),
            thousands(c.suggested),
            thousands(c.rejected),
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            self.shown = true;
        } else {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
    }

    fn rejected(&mut self, e: &RowError) {
        if self.errors.is_none() && !self.failed {
            match open_errors(&self.errors_path, self.append) {
                Ok(w) => self.errors = Some(w),
                Err(err) => {
                    eprintln!("warning: {err}; rejected rows are kept in the database only");
                    self.failed = true;
                }
            }
        }
        if let Some(w) = &mut self.errors {
            let _ = w.write_record([
                e.row.to_string(),
                e.column.clone(),
                e.value.clone(),
                e.reason.clone(),
            ]);
            self.written += 1;
        }
    }
}

fn open_errors(path: &Path, append: bool) -> Result<csv::Writer<std::fs::File>, BoxError> {
    let existed = append && path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| format!("cannot write the error file {}: {e}", path.display()))?;
    let mut w = csv::Writer::from_writer(file);
    if !existed {
        w.write_record(["row", "column", "value", "reason"])?;
    }
    Ok(w)
}

/// `shoal import customers|events FILE …`
pub async fn import(config: &Config, demo: bool, args: ImportArgs) -> Result<(), BoxError> {
    let mapping = match (&args.mapping, &args.resume) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the mapping {}: {e}", path.display()))?,
        (None, Some(_)) => String::new(),
        (None, None) => return Err("give --mapping FILE (see docs/import.md)".into()),
    };
    let (db, actor) = open(config, demo, &args.tenant, args.user.as_deref()).await?;
    let errors_path = args.errors.clone().unwrap_or_else(|| {
        let mut name = args.file.file_name().unwrap_or_default().to_os_string();
        name.push(".errors.csv");
        args.file.with_file_name(name)
    });
    let mut cli = Cli {
        errors: None,
        append: args.resume.is_some(),
        failed: false,
        errors_path: errors_path.clone(),
        written: 0,
        tty: std::io::stderr().is_terminal(),
        last: Instant::now() - Duration::from_secs(60),
        shown: false,
    };
    let request = Request {
        input: Input::File(args.file.clone()),
        format: Format::of(&args.file),
        mapping,
        source_name: args.file.display().to_string(),
        dry_run: args.dry_run,
        resume: args.resume.clone(),
        batch_size: args.batch,
        expect: Some(args.kind),
    };
    let started = Instant::now();
    let result = import::run(&db, &actor, None, &request, &mut cli).await;
    if cli.shown {
        eprintln!();
    }
    if let Some(mut w) = cli.errors.take() {
        w.flush()?;
    }
    let job = match result {
        Ok(job) => job,
        Err(Error::Invalid(problems)) => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("  {}: {}", p.field, p.message))
                .collect();
            return Err(format!("the import was refused:\n{}", lines.join("\n")).into());
        }
        Err(e) => return Err(e.into()),
    };
    let secs = started.elapsed().as_secs_f64();
    let c = job.counts;
    println!(
        "import {} {}{}: {} rows read in {:.1} s ({} rows/s)",
        job.id,
        job.status,
        if job.dry_run {
            " (dry run: nothing was kept)"
        } else {
            ""
        },
        thousands(c.rows_read),
        secs,
        thousands((c.rows_read as f64 / secs.max(0.001)) as i64)
    );
    match job.kind {
        Kind::Customers => println!(
            "  created {} · merged {} · suggested {} · rejected {}",
            thousands(c.created),
            thousands(c.merged),
            thousands(c.suggested),
            thousands(c.rejected)
        ),
        Kind::Events => println!(
            "  created {} · already imported {} · customers {} · rejected {}",
            thousands(c.created),
            thousands(c.duplicates),
            thousands(c.updated),
            thousands(c.rejected)
        ),
    }
    if cli.written > 0 {
        println!("  rejected rows: {}", cli.errors_path.display());
    } else if args.resume.is_none() {
        // an error file left by an earlier run of this file no longer applies
        let _ = std::fs::remove_file(&errors_path);
    }
    Ok(())
}

/// `shoal report quality --tenant T [--json]`
pub async fn report_quality(
    config: &Config,
    demo: bool,
    tenant: &str,
    json: bool,
) -> Result<(), BoxError> {
    let (db, actor) = open(config, demo, tenant, None).await?;
    let r = quality::report(&db, &actor).await?;
    if json {
        let value = serde_json::json!({
            "tenant": tenant,
            "generatedAt": r.generated_at.to_rfc3339(),
            "customers": r.customers,
            "fields": r.fields.iter().map(|f| serde_json::json!({"field": f.field, "filled": f.filled, "missing": f.missing, "missingRate": f.missing_rate})).collect::<Vec<_>>(),
            "invalidValues": r.invalid.iter().map(|i| serde_json::json!({"field": i.field, "reason": i.reason, "count": i.count, "examples": i.examples})).collect::<Vec<_>>(),
            "duplicatesPending": r.duplicates_pending,
            "identitiesPerChannel": r.identities.iter().map(|c| serde_json::json!({"channel": c.channel.as_str(), "identities": c.identities, "customers": c.customers})).collect::<Vec<_>>(),
            "flags": r.flags.iter().map(|f| serde_json::json!({"code": f.code, "message": f.message, "value": f.value, "threshold": f.threshold})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", r.to_text(tenant));
    }
    Ok(())
}

/// `shoal dedupe scan --tenant T`
pub async fn dedupe_scan(config: &Config, demo: bool, tenant: &str) -> Result<(), BoxError> {
    let (db, actor) = open(config, demo, tenant, None).await?;
    let r = shoal_data::dedupe::suggestions::scan(&db, &actor).await?;
    println!(
        "scanned {} customers: {} new duplicate suggestions",
        thousands(r.customers as i64),
        thousands(r.new_suggestions as i64)
    );
    Ok(())
}

/// `shoal keys rotate [--reencrypt] [--tenant T]`: every tenant key wrapped under the
/// current master key; with `--reencrypt`, a new data key per tenant and every sealed value
/// sealed again under it, with progress on stderr.
pub async fn keys_rotate(
    config: &Config,
    reencrypt: bool,
    tenant: Option<String>,
) -> Result<(), BoxError> {
    let db = Db::connect(&config.storage.url, 4).await?;
    storage::migrate(&db).await?;
    tenancy::sync_to_db(&db, config).await?;
    let done = shoal_base::vault::Vault::rewrap(&db.pool, &config.keys).await?;
    eprintln!(
        "tenant keys: {} wrapped again under master key `{}`, {} already were",
        done.rewrapped, config.keys.current, done.current
    );
    if !reencrypt {
        return Ok(());
    }
    shoal_server::server::open_vault(&db, config).await?;
    let tenants: Vec<String> = match tenant {
        Some(t) if config.tenants.contains_key(&t) => vec![t],
        Some(t) => return Err(format!("no tenant `{t}` in the configuration").into()),
        None => config.tenants.keys().cloned().collect(),
    };
    for t in tenants {
        eprintln!(
            "{t}: new data key; waiting {} s for running hosts to load it",
            shoal_privacy::rekey::REFRESH.as_secs() * 2
        );
        let (version, n) = shoal_privacy::rekey::reencrypt(
            &db,
            &config.keys,
            &t,
            shoal_privacy::rekey::REFRESH * 2,
            |column, done, total| eprintln!("{t}: {column} {done}/{total}"),
        )
        .await?;
        eprintln!("{t}: {n} values sealed again under data key v{version}");
    }
    Ok(())
}
