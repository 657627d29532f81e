//! `shoal`: the host binary. `serve` (default), `migrate`, `schema print`, `config check`,
//! `plugin`, and the data commands `import`, `report` and `dedupe` (in `data_cli.rs`).

mod data_cli;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use shoal_api as api;
use shoal_base::{
    config::{Config, ConfigSource, LogFormat},
    storage::{self, Db},
};
use shoal_plugin_host::{keys, tooling};
use shoal_server::{
    demo,
    server::{self, ServeOptions},
};

#[derive(Parser, Debug)]
#[command(name = "shoal", version, about = "Shoal SCRM host")]
struct Cli {
    /// A TOML file layered over the built-in defaults.
    #[arg(long, global = true, env = "SHOAL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Add the demo tenants (`demo`, and API keys for `demo-retail`, …) as `serve --demo`
    /// does, so every command reaches the data the demo server shows; the demo tenant is
    /// seeded with sample customers on first use.
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default); with `--demo`, the demo tenants too.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// The GraphQL schema.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Industry modules (WebAssembly components), without a server or database.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Import customers or events from a CSV or XLSX file with a field mapping.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Duplicate detection.
    Dedupe {
        #[command(subcommand)]
        command: DedupeCommand,
    },
    /// The keys that seal customer data at rest (docs/data-protection.md).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Wrap every tenant key under the master key `keys.current` (after adding a new master
    /// key); with --reencrypt, also give each tenant a new data key and seal every sealed
    /// value again under it (resumable: run it again after an interruption).
    Rotate {
        #[arg(long)]
        reencrypt: bool,
        /// Only this tenant's data key (with --reencrypt); default: every tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct ImportOptions {
    /// The CSV or XLSX file (the format follows the extension).
    file: PathBuf,
    /// The tenant to import into.
    #[arg(long)]
    tenant: String,
    /// The field mapping (TOML; see docs/import.md). Not needed with --resume.
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Act as this user of the tenant (default: `cli`, with every permission).
    #[arg(long)]
    user: Option<String>,
    /// Do everything, report what would happen, keep nothing.
    #[arg(long)]
    dry_run: bool,
    /// Continue an interrupted import (its id) after its last committed row.
    #[arg(long, value_name = "JOB")]
    resume: Option<String>,
    /// Where rejected rows go (default: FILE.errors.csv).
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// Rows per transaction.
    #[arg(long, default_value_t = shoal_data::import::DEFAULT_BATCH)]
    batch: usize,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Customers: profiles with contacts, identities, attributes and tags; duplicates merged
    /// or suggested per the tenant's policy.
    Customers(ImportOptions),
    /// Events (orders, visits, …) of existing customers.
    Events(ImportOptions),
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Completeness per field, invalid values, pending duplicates, identities per channel.
    Quality {
        #[arg(long)]
        tenant: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DedupeCommand {
    /// Look for duplicates among every customer of a tenant and queue suggestions.
    Scan {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Show a module's ABI version, imports, describe() and templates.
    Inspect { wasm: PathBuf },
    /// Run a module's exports on JSON fixtures through the real runtime and compare the
    /// results with the expected ones; prints fuel, memory and output size against limits.
    Test { wasm: PathBuf, fixtures: PathBuf },
    /// Create an Ed25519 signing key: writes the private key, prints the public key and
    /// the trust-store entry for it.
    Keygen {
        /// The id signatures will name (e.g. `acme-2026`).
        #[arg(long)]
        id: String,
        /// The private key file to create (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a module folder's manifest.toml (writes manifest.sig beside it).
    Sign {
        /// The module folder (manifest.toml and its wasm).
        dir: PathBuf,
        /// The private key file (`shoal plugin keygen`, or an `openssl genpkey -algorithm
        /// ed25519` PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The key id, when the key file names none.
        #[arg(long)]
        id: Option<String>,
    },
    /// Check a module folder against the configured trust store, as a host would; exits 1
    /// when production would refuse it.
    Verify { dir: PathBuf },
    /// Withdraw the newest installed version of a module (to `.withdrawn/` in the plugins
    /// folder) so the previous one runs after the next reload.
    Rollback {
        /// The module id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// Print the GraphQL SDL.
    Print,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate and print the effective configuration, secrets redacted.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let demo = cli.demo;
    if let Command::Schema {
        command: SchemaCommand::Print,
    } = command
    {
        print!("{}", api::sdl());
        return ExitCode::SUCCESS;
    }
    let config_file = cli.config.clone();
    let mut config = match shoal_server::load_config(&ConfigSource { file: cli.config }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // one demo for every command: the server and the data commands see the same tenants
    let demo_key = demo
        .then(demo::api_key)
        .filter(|key| demo::add_tenant(&mut config, key));
    let industry_keys = demo_key
        .as_ref()
        .map(|key| demo::industry_keys(&mut config, key))
        .unwrap_or_default();
    match command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            eprintln!("configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Migrate => run(&config, migrate(&config)),
        Command::Plugin { command } => plugin(&config, command),
        Command::Import { command } => {
            let (kind, o) = match command {
                ImportCommand::Customers(o) => (shoal_data::import::Kind::Customers, o),
                ImportCommand::Events(o) => (shoal_data::import::Kind::Events, o),
            };
            let args = data_cli::ImportArgs {
                kind,
                file: o.file,
                tenant: o.tenant,
                mapping: o.mapping,
                user: o.user,
                dry_run: o.dry_run,
                resume: o.resume,
                errors: o.errors,
                batch: o.batch,
            };
            run(&config, data_cli::import(&config, demo, args))
        }
        Command::Report {
            command: ReportCommand::Quality { tenant, json },
        } => run(
            &config,
            data_cli::report_quality(&config, demo, &tenant, json),
        ),
        Command::Dedupe {
            command: DedupeCommand::Scan { tenant },
        } => run(&config, data_cli::dedupe_scan(&config, demo, &tenant)),
        Command::Keys {
            command: KeysCommand::Rotate { reencrypt, tenant },
        } => run(&config, data_cli::keys_rotate(&config, reencrypt, tenant)),
        Command::Serve => {
            let source = ConfigSource { file: config_file };
            let key = demo_key.clone();
            let provider: shoal_plugin_host::ConfigProvider = Arc::new(move || {
                let mut config = shoal_server::load_config(&source).map_err(|e| e.to_string())?;
                if let Some(key) = &key {
                    demo::add_tenant(&mut config, key);
                    demo::industry_keys(&mut config, key);
                }
                Ok(config)
            });
            run(
                &config,
                serve(&config, demo, demo_key, industry_keys, provider),
            )
        }
        Command::Schema { .. } => unreachable!("handled above"),
    }
}

/// Sets up logging and a runtime, runs `task`, and maps its outcome to an exit code.
fn run(
    config: &Config,
    task: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    init_logging(config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn migrate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::connect(&config.storage.url, 1).await?;
    let applied = storage::migrate(&db).await?;
    println!(
        "{} database {}: applied {} migration(s) {:?}",
        db.backend.name(),
        config.storage_url_redacted(),
        applied.len(),
        applied
    );
    Ok(())
}

fn plugin(config: &Config, command: PluginCommand) -> ExitCode {
    let result = match command {
        PluginCommand::Inspect { wasm } => {
            tooling::inspect(&config.plugins, &wasm).map(|out| (out, true))
        }
        PluginCommand::Test { wasm, fixtures } => tooling::test(&config.plugins, &wasm, &fixtures),
        PluginCommand::Keygen { id, out } => keys::keygen(&id, &out).map(|out| (out, true)),
        PluginCommand::Sign { dir, key, id } => {
            keys::sign(&dir, &key, id.as_deref()).map(|out| (out, true))
        }
        PluginCommand::Verify { dir } => keys::verify(&dir, &config.plugins.trust),
        PluginCommand::Rollback { id } => {
            let pins: Vec<(String, String)> = config
                .tenants
                .iter()
                .filter_map(|(t, c)| Some((t.clone(), c.modules.get(&id)?.version.clone()?)))
                .collect();
            tooling::rollback(&config.plugins.dir, &id, &pins).map(|out| (out, true))
        }
    };
    match result {
        Ok((out, passed)) => {
            print!("{out}");
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(
    config: &Config,
    demo: bool,
    demo_key: Option<String>,
    industry_keys: Vec<(String, String)>,
    config_provider: shoal_plugin_host::ConfigProvider,
) -> Result<(), Box<dyn std::error::Error>> {
    if config.tenants.is_empty() {
        tracing::warn!(
            "no tenants configured: every request will be refused (see docs/config.md, or run with --demo)"
        );
    }
    let demo_password = demo_key.as_ref().map(|_| demo::console_password());
    let options = ServeOptions {
        demo,
        demo_password: demo_password.clone(),
        config_provider: Some(config_provider),
    };
    let running = server::start(config, &options).await?;
    reload_on_sighup(running.reloader.clone());
    let url = format!("http://{}", running.addr);
    tracing::info!(storage = %config.storage_url_redacted(), "listening on {url}");
    println!("Shoal is listening on {url}");
    println!("  console:   {url}/");
    println!("  GraphiQL:  {url}/graphql");
    if let Some(password) = &demo_password {
        println!(
            "  console sign-in: tenant demo, user admin, password {password}   (set {} to fix it)",
            demo::PASSWORD_ENV
        );
    }
    if let Some(key) = demo_key {
        println!(
            "  demo API key: {key}   (set {} to fix it)",
            demo::API_KEY_ENV
        );
        for (tenant, key) in &industry_keys {
            println!("  {tenant} API key: {key}");
        }
        println!(
            "  try: curl -s {url}/graphql -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n         -d '{{\"query\":\"{{ customers(first: 3) {{ totalCount edges {{ node {{ displayName phones }} }} }} }}\"}}'"
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// `kill -HUP <pid>` reloads the configuration and the plugins folder.
fn reload_on_sighup(reloader: shoal_plugin_host::Reloader) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match reloader.reload().await {
                Ok(report) => {
                    tracing::info!(loaded = ?report.loaded, failed = report.failed.len(), "SIGHUP: reloaded")
                }
                Err(e) => {
                    tracing::error!("SIGHUP: reload refused, keeping the running modules: {e}")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = reloader;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
