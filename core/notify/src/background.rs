//! The notification workers of one host: for every tenant, a loop that relays internal
//! events onto the feed (waking subscribers), delivers due webhook messages and robot
//! notifications and, now and then, prunes the feed and the delivery log. Supervised and
//! fair like the SOP workers: a loop per tenant, every unit of work under
//! [`Supervision::guard`], a dead loop restarted.

use std::{sync::Arc, time::Duration};

use chrono::Duration as Span;
use tokio::task::JoinHandle;

use shoal_base::{config::NotifyConfig, storage::Db, storage::time, supervise::Supervision};
use shoal_crm::tenancy::Tenant;
use shoal_sop::transport::Transport;

use crate::{bus::Bus, email::Mailer, feed, hooks, relay, staff};

/// How often the feed and the delivery log are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

struct Shared {
    db: Db,
    cfg: NotifyConfig,
    transport: Transport,
    mailer: Option<Mailer>,
    bus: Bus,
    supervision: Arc<Supervision>,
}

/// One round for one tenant; returns whether any work was found.
async fn round(s: &Shared, t: &Arc<Tenant>) -> bool {
    let mut busy = false;
    match s
        .supervision
        .guard("notify.relay", relay::relay(&s.db, t, &s.cfg))
        .await
    {
        Ok(changes) => {
            if let Some(last) = changes.last() {
                s.bus.wake(&t.id, last.seq);
                busy = true;
            }
        }
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "feed relay failed"),
    }
    let hooks = hooks::deliver_due(&s.db, t, &s.cfg, &s.transport, time::now());
    match s.supervision.guard("notify.webhooks", hooks).await {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "webhook delivery failed"),
    }
    let sends = staff::deliver_due(
        &s.db,
        t,
        &s.cfg,
        &s.transport,
        s.mailer.as_ref(),
        time::now(),
    );
    match s.supervision.guard("notify.staff", sends).await {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::error!(tenant = %t.id, error = %e, "staff notification delivery failed"),
    }
    busy
}

async fn prune(s: &Shared, t: &Tenant) {
    let now = time::now();
    let retention = Span::hours(s.cfg.feed_retention_hours as i64);
    if let Err(e) = feed::prune(&s.db, &t.id, now, retention).await {
        tracing::error!(tenant = %t.id, error = %e, "feed pruning failed");
    }
    let before = now - Span::days(s.cfg.delivery_log_days as i64);
    if let Err(e) = hooks::prune(&s.db, &t.id, before).await {
        tracing::error!(tenant = %t.id, error = %e, "delivery log pruning failed");
    }
}

async fn tenant_loop(s: Arc<Shared>, t: Arc<Tenant>) {
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|l| l.elapsed() >= PRUNE_EVERY) {
            prune(&s, &t).await;
            last_prune = Some(tokio::time::Instant::now());
        }
        if !round(&s, &t).await {
            tokio::time::sleep(Duration::from_millis(s.cfg.poll_ms.max(1))).await;
        }
    }
}

/// Starts one supervised loop per tenant; the returned task runs until aborted.
pub fn spawn(
    db: Db,
    tenants: Vec<Arc<Tenant>>,
    cfg: NotifyConfig,
    transport: Transport,
    mailer: Option<Mailer>,
    bus: Bus,
    supervision: Arc<Supervision>,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared {
        db,
        cfg,
        transport,
        mailer,
        bus,
        supervision,
    });
    shoal_base::supervise::each_forever(
        tenants,
        "notify.worker",
        shared.supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(shared.clone(), t),
    )
}
