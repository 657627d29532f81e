//! The SOP workers of one host: for every tenant, a loop of its own that dispatches
//! triggers, advances due enrolments, delivers the outbox and, less often, scans date and
//! follow-up triggers. Any number of hosts may run them against one database.
//!
//! Supervised and fair: each tenant has one loop (bounded concurrency per tenant), so one
//! tenant's slow gateway or huge segment holds up only that tenant; every unit of work runs
//! under [`Supervision::guard`] (a panic becomes an error: the enrolment that caused it is
//! parked, the loop goes on); and a loop that dies anyway is restarted.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use super::{dispatch, outbox, runner};
use shoal_base::{
    config::SopConfig, storage::Db, storage::time, supervise::Supervision, wake::Wakers,
};
use shoal_crm::tenancy::Tenant;
use shoal_plugin_host::PluginHost;

/// What every tenant loop of a host shares.
struct Shared {
    db: Db,
    cfg: SopConfig,
    deliverer: outbox::Deliverer,
    supervision: Arc<Supervision>,
    /// Modules that evaluate tags, for the customers of recorded events.
    host: Option<Arc<PluginHost>>,
    wakers: Wakers,
}

/// One round for one tenant; returns whether any work was found.
async fn round(shared: &Shared, t: &Arc<Tenant>) -> bool {
    let (db, cfg, s) = (&shared.db, &shared.cfg, &shared.supervision);
    let mut busy = false;
    match s
        .guard(
            "sop.dispatch",
            dispatch::dispatch(db, shared.host.as_deref(), t, time::now()),
        )
        .await
    {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "SOP trigger dispatch failed"),
    }
    match s
        .guard("sop.steps", runner::run_due(db, t, cfg, s, time::now()))
        .await
    {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "SOP step run failed"),
    }
    let delivery = outbox::deliver_due(db, t, cfg, &shared.deliverer, time::now());
    match s.guard("outbox", delivery).await {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "outbox delivery failed"),
    }
    busy
}

/// A tenant's loop; it runs until aborted.
async fn tenant_loop(shared: Arc<Shared>, t: Arc<Tenant>) {
    let scan_every = Duration::from_secs(shared.cfg.scan_seconds.max(1));
    let mut last_scan: Option<tokio::time::Instant> = None;
    let woken = shared.wakers.of(&t.id);
    loop {
        if last_scan.is_none_or(|l| l.elapsed() >= scan_every) {
            let scan = dispatch::scan(&shared.db, &t, time::now());
            if let Err(e) = shared.supervision.guard("sop.scan", scan).await {
                tracing::error!(tenant = %t.id, error = %e, "SOP date / follow-up scan failed");
            }
            last_scan = Some(tokio::time::Instant::now());
        }
        // keep going while there is work; rest when there is none, until the poll interval
        // ends or a request on this host leaves work
        if !round(&shared, &t).await {
            let poll = tokio::time::sleep(Duration::from_millis(shared.cfg.poll_ms.max(1)));
            tokio::select! {
                () = poll => {}
                () = woken.notified() => {}
            }
        }
    }
}

/// The deliverer of `cfg`; with the built-in roots only when the configured ones cannot be
/// read (the error is logged; `shoal config check` reports it before a start).
fn deliverer(cfg: &SopConfig, db: &Db) -> outbox::Deliverer {
    outbox::Deliverer::new(cfg, db.clone()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "webhook TLS roots not loaded; trusting the built-in roots only");
        outbox::Deliverer::new(
            &SopConfig {
                tls_roots: None,
                ..cfg.clone()
            },
            db.clone(),
        )
        .expect("the built-in roots load")
    })
}

/// What the loops of a host are given besides the database and their configuration.
pub struct Context {
    pub supervision: Arc<Supervision>,
    /// The host's modules: those with `evaluate-tags` evaluate the customers of recorded
    /// events (none: dynamic tags and stages only).
    pub host: Option<Arc<PluginHost>>,
    /// Requests on this host wake a tenant's loop through these.
    pub wakers: Wakers,
}

/// Starts one supervised loop per tenant; the returned task runs until aborted (aborting it
/// stops every loop).
pub fn spawn(db: Db, tenants: Vec<Arc<Tenant>>, cfg: SopConfig, cx: Context) -> JoinHandle<()> {
    let shared = Arc::new(Shared {
        deliverer: deliverer(&cfg, &db),
        db,
        cfg,
        supervision: cx.supervision,
        host: cx.host,
        wakers: cx.wakers,
    });
    shoal_base::supervise::each_forever(
        tenants,
        "sop.worker",
        shared.supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(shared.clone(), t),
    )
}
