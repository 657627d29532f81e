//! The campaign worker of one host: for every tenant, a supervised loop that starts due
//! campaigns, releases their due recipients within each channel's throttle
//! (`channels.per_second`, one second's worth per round), copies the outbox's verdicts
//! back, polls WeCom, and completes what is done.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use shoal_base::{config::SopConfig, storage::Db, storage::time, supervise::Supervision};
use shoal_crm::tenancy::Tenant;
use shoal_sop::{channels, transport::Transport};

use crate::{model::Status, release, store, throttle, track};

struct Shared {
    db: Db,
    transport: Transport,
    timeout: Duration,
    supervision: Arc<Supervision>,
}

/// One round for one tenant: answers whether it found work. Each campaign is an item of
/// its own: one that fails (or panics) is logged and counted, and the others go on.
async fn round(s: &Shared, t: &Arc<Tenant>) -> shoal_base::error::Result<bool> {
    let now = time::now();
    let campaigns = store::in_status(&s.db, &t.id, &[Status::Scheduled, Status::Running]).await?;
    let mut busy = false;
    // a tenant's campaigns on one channel share its throttle (with every other host)
    let mut budgets: std::collections::HashMap<String, usize> = Default::default();
    for c in &campaigns {
        if !budgets.contains_key(&c.channel) {
            let rate = channels::release_per_second(t, &c.channel);
            let n = throttle::take(&s.db, &t.id, &c.channel, rate, now).await?;
            budgets.insert(c.channel.clone(), n);
        }
        let budget = budgets.get_mut(&c.channel).expect("inserted above");
        if *budget > 0 {
            match s
                .supervision
                .guard(
                    "campaigns.release",
                    release::release(&s.db, t, c, now, *budget),
                )
                .await
            {
                Ok(n) => {
                    *budget -= n.min(*budget);
                    busy |= n > 0;
                }
                Err(e) => {
                    tracing::error!(tenant = %t.id, campaign = %c.id, error = %e, "campaign release failed")
                }
            }
        }
    }
    // verdicts for running ones, and for the recently cancelled (messages in flight)
    let mut watched = campaigns;
    watched.extend(
        store::in_status(&s.db, &t.id, &[Status::Cancelled, Status::Completed])
            .await?
            .into_iter()
            .filter(|c| {
                c.finished_at
                    .is_some_and(|f| now - f < chrono::Duration::days(2))
            }),
    );
    for c in &watched {
        let tracked = async {
            let moved = track::sync(&s.db, t, c, now).await?;
            if c.channel == "wecom" {
                let ctx = channels::Ctx {
                    transport: &s.transport,
                    timeout: s.timeout,
                };
                track::poll_wecom(&s.db, t, c, ctx).await?;
            }
            Ok(moved)
        };
        match s.supervision.guard("campaigns.track", tracked).await {
            Ok(moved) => busy |= moved > 0,
            Err(e) => {
                tracing::error!(tenant = %t.id, campaign = %c.id, error = %e, "campaign tracking failed")
            }
        }
    }
    Ok(busy)
}

async fn tenant_loop(s: Arc<Shared>, t: Arc<Tenant>) {
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = s.supervision.guard("campaigns.round", round(&s, &t)).await {
            tracing::error!(tenant = %t.id, error = %e, "campaign round failed");
        }
        // one round per second: the throttle is per second
        tokio::time::sleep_until(started + Duration::from_secs(1)).await;
    }
}

/// Starts one supervised loop per tenant; the returned task runs until aborted.
pub fn spawn(
    db: Db,
    tenants: Vec<Arc<Tenant>>,
    cfg: &SopConfig,
    transport: Transport,
    supervision: Arc<Supervision>,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared {
        db,
        transport,
        timeout: Duration::from_millis(cfg.webhook_timeout_ms),
        supervision,
    });
    shoal_base::supervise::each_forever(
        tenants,
        "campaigns.worker",
        shared.supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(shared.clone(), t),
    )
}
