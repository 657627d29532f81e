//! `shoal`: the host binary. `serve` (default), `migrate`, `schema print`, `config check`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use shoal::{
    api,
    config::{self, Config, ConfigSource, LogFormat},
    demo,
    server::{self, ServeOptions},
    storage::{self, Db},
};

#[derive(Parser, Debug)]
#[command(name = "shoal", version, about = "Shoal SCRM host")]
struct Cli {
    /// A TOML file layered over the built-in defaults.
    #[arg(long, global = true, env = "SHOAL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Add the demo tenant and seed it with sample customers on first run.
        #[arg(long)]
        demo: bool,
    },
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
    let command = cli.command.unwrap_or(Command::Serve { demo: false });
    if let Command::Schema {
        command: SchemaCommand::Print,
    } = command
    {
        print!("{}", api::sdl());
        return ExitCode::SUCCESS;
    }
    let mut config = match config::load(&ConfigSource { file: cli.config }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            eprintln!("configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Migrate => run(&config, migrate(&config)),
        Command::Serve { demo } => {
            let demo_key = if demo {
                demo::add_tenant(&mut config)
            } else {
                None
            };
            run(&config, serve(&config, demo, demo_key))
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

async fn serve(
    config: &Config,
    demo: bool,
    demo_key: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    if config.tenants.is_empty() {
        tracing::warn!(
            "no tenants configured: every request will be refused (see docs/config.md, or run with --demo)"
        );
    }
    let running = server::start(config, &ServeOptions { demo }).await?;
    let url = format!("http://{}", running.addr);
    tracing::info!(storage = %config.storage_url_redacted(), "listening on {url}");
    println!("Shoal is listening on {url}");
    println!("  GraphiQL:  {url}/graphql");
    if let Some(key) = demo_key {
        println!(
            "  demo API key: {key}   (set {} to fix it)",
            demo::API_KEY_ENV
        );
        println!(
            "  try: curl -s {url}/graphql -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n         -d '{{\"query\":\"{{ customers(first: 3) {{ totalCount edges {{ node {{ displayName phones }} }} }} }}\"}}'"
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
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
