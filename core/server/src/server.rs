//! Starting and stopping a host: storage, migrations, tenants, demo data, HTTP.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::TcpListener,
    sync::{broadcast, oneshot},
    task::JoinHandle,
};

use crate::demo;
use shoal_api::{self as api, AppState, metrics::Metrics};
use shoal_base::{
    config::Config,
    storage::{self, Db},
    supervise::Supervision,
};
use shoal_crm::tenancy::{self, Directory};
use shoal_plugin_host::{ConfigProvider, PluginHost, Reloader};
use shoal_sop::transport::Transport;

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] storage::ConnectError),
    #[error(transparent)]
    Migrate(#[from] storage::MigrateError),
    #[error("cannot mirror tenants into the database: {0}")]
    Tenants(sqlx::Error),
    #[error("cannot open the tenants' keys: {0}")]
    Keys(shoal_base::error::Error),
    #[error("cannot seed the demo tenant: {0}")]
    Demo(shoal_base::error::Error),
    #[error("cannot start the plugin runtime: {0}")]
    Plugins(String),
    #[error("cannot set up notifications: {0}")]
    Notify(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Options of `shoal serve` beyond the config.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Seed the demo tenant on first run.
    pub demo: bool,
    /// The demo admin's console password, set at start (with `demo`).
    pub demo_password: Option<String>,
    /// How a reload gets the configuration anew; without one, reloads re-scan the plugins
    /// folder with the configuration the host started with.
    pub config_provider: Option<ConfigProvider>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

/// A running host.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub db: Db,
    pub reloader: Reloader,
    background: Vec<JoinHandle<()>>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections, lets requests in flight finish, and closes the pool.
    pub async fn stop(self) {
        for job in &self.background {
            job.abort();
        }
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        self.db.pool.close().await;
    }
}

/// Recomputes every tenant's dynamic tags on its `tag_recompute_seconds` cadence.
fn schedule_tag_recompute(db: &Db, config: &Config, directory: &Directory) -> Vec<JoinHandle<()>> {
    let mut jobs = Vec::new();
    for (id, tenant) in &config.tenants {
        let (Some(t), seconds) = (directory.tenant(id), tenant.tag_recompute_seconds) else {
            continue;
        };
        if seconds == 0 {
            continue;
        }
        let (db, actor) = (db.clone(), shoal_crm::tenancy::Actor::system(t, "system"));
        jobs.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(seconds));
            every.tick().await; // the first tick is immediate: wait one period
            loop {
                every.tick().await;
                match shoal_tags::recompute(&db, &actor, None).await {
                    Ok(done) => tracing::info!(tenant = actor.tenant_id(), ?done, "scheduled tag recompute"),
                    Err(e) => tracing::error!(tenant = actor.tenant_id(), error = %e, "scheduled tag recompute failed"),
                }
            }
        }));
    }
    jobs
}

/// Takes each tenant's daily data-quality snapshot: at start, then hourly (a day that has
/// one is skipped; docs/analytics.md#data-quality-over-time). Each snapshot is supervised:
/// a failure or panic is logged and counted (`quality.snapshots`), and the loop goes on.
fn schedule_quality_snapshots(
    db: &Db,
    directory: &Directory,
    supervision: &Arc<Supervision>,
) -> Vec<JoinHandle<()>> {
    directory
        .tenants()
        .cloned()
        .map(|tenant| {
            let (db, supervision) = (db.clone(), supervision.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
                loop {
                    every.tick().await;
                    let taken = supervision
                        .guard(
                            "quality.snapshots",
                            shoal_data::quality_trend::take(&db, &tenant),
                        )
                        .await;
                    match taken {
                        Ok(true) => tracing::info!(tenant = %tenant.id, "data-quality snapshot taken"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(tenant = %tenant.id, error = %e, "data-quality snapshot failed"),
                    }
                }
            })
        })
        .collect()
}

/// Opens every configured tenant's keys (creating those of new tenants) and seals what an
/// earlier version stored in clear (see `shoal_crm::customers::sealed`).
pub async fn open_vault(db: &Db, config: &Config) -> Result<(), shoal_base::error::Error> {
    let tenants: Vec<String> = config.tenants.keys().cloned().collect();
    db.vault.open(&db.pool, &config.keys, &tenants).await?;
    for (id, tenant) in &config.tenants {
        db.vault
            .set_sealed_attributes(id, &tenant.contact.sealed_attributes);
        let moved = shoal_crm::customers::sealed::apply_sealed_attributes(db, id).await?;
        if moved > 0 {
            tracing::info!(
                tenant = id,
                rows = moved,
                sealed = ?tenant.contact.sealed_attributes,
                "moved attributes between clear and sealed storage (contact.sealed_attributes changed)"
            );
        }
    }
    for tenant in &tenants {
        let sealed = shoal_crm::customers::sealed::seal_legacy(db, tenant).await?;
        if sealed > 0 {
            tracing::info!(
                tenant,
                rows = sealed,
                "sealed contacts and identities stored in clear by an earlier version"
            );
        }
    }
    Ok(())
}

/// Opens storage, applies migrations, mirrors tenants, seeds the demo tenant if asked and
/// starts serving HTTP on `config.server.bind`.
pub async fn start(config: &Config, options: &ServeOptions) -> Result<Running, StartError> {
    let db = Db::connect(&config.storage.url, config.storage.max_connections).await?;
    let applied = storage::migrate(&db).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, backend = db.backend.name(), "applied migrations");
    }
    tenancy::sync_to_db(&db, config)
        .await
        .map_err(StartError::Tenants)?;
    open_vault(&db, config).await.map_err(StartError::Keys)?;
    let directory = Directory::from_config(config, &db.vault);
    if options.demo
        && let Some(tenant) = directory.tenant(demo::TENANT_ID)
    {
        let seeded = demo::seed(&db, tenant).await.map_err(StartError::Demo)?;
        if let Some(password) = &options.demo_password {
            demo::set_console_password(&db, tenant, password)
                .await
                .map_err(StartError::Demo)?;
        }
        if seeded > 0 {
            tracing::info!(customers = seeded, "seeded the demo tenant");
        }
    }
    let (plugins, report) = PluginHost::start(config).map_err(StartError::Plugins)?;
    tracing::info!(dir = %config.plugins.dir.display(), loaded = ?report.loaded, failed = report.failed.len(), "plugin runtime ready");
    let fallback = config.clone();
    let provider = options
        .config_provider
        .clone()
        .unwrap_or_else(|| Arc::new(move || Ok(fallback.clone())));
    let reloader = Reloader::new(plugins, provider);
    let mut background = schedule_tag_recompute(&db, config, &directory);
    let supervision = Arc::new(Supervision::default());
    let wakers = shoal_base::wake::Wakers::default();
    background.extend(schedule_quality_snapshots(&db, &directory, &supervision));
    if config.sop.workers {
        let tenants: Vec<_> = directory.tenants().cloned().collect();
        background.push(shoal_sop::worker::spawn(
            db.clone(),
            tenants.clone(),
            config.sop.clone(),
            shoal_sop::worker::Context {
                supervision: supervision.clone(),
                host: Some(reloader.host.clone()),
                wakers: wakers.clone(),
            },
        ));
        // SLA timers fire; waiting tickets are offered when shifts begin
        background.push(shoal_tickets::upkeep::spawn(
            db.clone(),
            tenants.clone(),
            std::time::Duration::from_millis(config.sop.poll_ms.max(100)),
            supervision.clone(),
        ));
        // campaigns release into the SOP outbox, so they run where its workers run
        let transport = Transport::new(config.sop.tls_roots.as_deref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "TLS roots not loaded; trusting the built-in roots only");
            Transport::new(None).expect("the built-in roots load")
        });
        background.push(shoal_campaigns::rounds::spawn(
            db.clone(),
            tenants.clone(),
            &config.sop,
            transport.clone(),
            supervision.clone(),
        ));
        // what inbound connectors received becomes customers and events
        background.push(shoal_connectors::intake::spawn(
            db.clone(),
            reloader.host.clone(),
            tenants,
            std::time::Duration::from_millis(config.sop.poll_ms.max(20)),
            std::time::Duration::from_millis(config.sop.webhook_timeout_ms),
            transport,
            supervision.clone(),
        ));
    }
    // another host's (or `shoal keys rotate`'s) new data key versions are loaded here
    {
        let (db, keys) = (db.clone(), config.keys.clone());
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(shoal_privacy::rekey::REFRESH).await;
                if let Err(e) = db.vault.refresh(&db.pool, &keys).await {
                    tracing::error!(error = %e, "cannot reload the tenants' keys");
                }
            }
        }));
    }
    if config.sop.workers {
        // old bodies, payloads and details pruned per the tenants' retention
        background.push(shoal_privacy::retention::spawn(
            db.clone(),
            directory.tenants().cloned().collect(),
            std::time::Duration::from_secs(3600),
            supervision.clone(),
        ));
        // requested re-encryptions (`reencryptCustomerData`), leased to one host at a time
        background.push(shoal_privacy::reencryption::spawn(
            db.clone(),
            config.keys.clone(),
            directory.tenants().cloned().collect(),
            format!("host-{}", uuid::Uuid::now_v7()),
            supervision.clone(),
        ));
    }
    let feed = shoal_notify::bus::Bus::new();
    if db.backend == storage::Backend::Postgres {
        // wake-ups from every host's relay (and this one's) arrive through LISTEN
        background.push(shoal_notify::bus::listen(
            config.storage.url.clone(),
            feed.clone(),
        ));
    }
    let mailer = shoal_notify::email::Mailer::from_config(&config.notify)
        .map_err(|(key, message)| StartError::Notify(format!("{key}: {message}")))?;
    let email = mailer.is_some();
    if config.notify.workers {
        let tenants = directory.tenants().cloned().collect();
        let transport = Transport::new(config.sop.tls_roots.as_deref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhook TLS roots not loaded; trusting the built-in roots only");
            Transport::new(None).expect("the built-in roots load")
        });
        background.push(shoal_notify::background::spawn(
            db.clone(),
            tenants,
            config.notify.clone(),
            transport,
            mailer,
            feed.clone(),
            supervision.clone(),
        ));
    }
    let (bus, _) = broadcast::channel(1024);
    let state = AppState {
        schema: api::schema(
            db.clone(),
            &config.limits,
            bus,
            feed,
            email,
            reloader.clone(),
            wakers,
        ),
        directory: Arc::new(directory),
        host: reloader.host.clone(),
        db: db.clone(),
        limits: config.limits.clone(),
        metrics: Arc::new(Metrics::default()),
        supervision,
        client_address_header: config
            .server
            .client_address_header
            .as_ref()
            .map(|h| h.to_ascii_lowercase()),
    };
    let listener = TcpListener::bind(config.server.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.server.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.bind,
        source,
    })?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = api::router(state);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Running {
        addr,
        db,
        reloader,
        background,
        shutdown,
        task,
    })
}
