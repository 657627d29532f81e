//! The SOP workers of one host: a loop that dispatches triggers, advances due enrolments,
//! delivers the outbox and, less often, scans date and follow-up triggers — for every
//! tenant. Any number of hosts may run it against one database.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use super::{dispatch, outbox, runner};
use shoal_base::{config::SopConfig, storage::Db, storage::time};
use shoal_crm::tenancy::Tenant;

/// One round over every tenant; returns whether any work was found.
pub async fn round(
    db: &Db,
    tenants: &[Arc<Tenant>],
    cfg: &SopConfig,
    deliverer: &outbox::Deliverer,
) -> bool {
    let mut busy = false;
    for t in tenants {
        match dispatch::dispatch(db, t, time::now()).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::error!(tenant = %t.id, error = %e, "SOP trigger dispatch failed"),
        }
        match runner::run_due(db, t, cfg, time::now()).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::error!(tenant = %t.id, error = %e, "SOP step run failed"),
        }
        match outbox::deliver_due(db, t, cfg, deliverer, time::now()).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::error!(tenant = %t.id, error = %e, "outbox delivery failed"),
        }
    }
    busy
}

/// Starts the loop; it runs until the task is aborted.
pub fn spawn(db: Db, tenants: Vec<Arc<Tenant>>, cfg: SopConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let deliverer = outbox::Deliverer::default();
        let mut last_scan: Option<tokio::time::Instant> = None;
        loop {
            let due_scan = last_scan
                .is_none_or(|l| l.elapsed() >= Duration::from_secs(cfg.scan_seconds.max(1)));
            if due_scan {
                for t in &tenants {
                    if let Err(e) = dispatch::scan(&db, t, time::now()).await {
                        tracing::error!(tenant = %t.id, error = %e, "SOP date / follow-up scan failed");
                    }
                }
                last_scan = Some(tokio::time::Instant::now());
            }
            // keep going while there is work; rest when there is none
            if !round(&db, &tenants, &cfg, &deliverer).await {
                tokio::time::sleep(Duration::from_millis(cfg.poll_ms.max(1))).await;
            }
        }
    })
}
