//! The tickets' upkeep on one host: for every tenant, a supervised loop that fires due SLA
//! timers and re-arms them after the calendar or the policies changed (every tick), and
//! offers the tickets waiting in its queues once a minute — what no change of capacity or
//! availability set moving (a shift that began, a host that stopped mid-way).

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use shoal_base::{storage::Db, storage::time, supervise::Supervision};
use shoal_crm::tenancy::{Actor, Tenant};

/// How often waiting tickets are offered again.
pub const DRAIN_EVERY: Duration = Duration::from_secs(60);

async fn tenant_loop(db: Db, supervision: Arc<Supervision>, tick: Duration, t: Arc<Tenant>) {
    let actor = Actor::system(&t, "routing");
    let mut drained = tokio::time::Instant::now();
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = supervision
            .guard("tickets.timers", crate::timers::rearm_if_changed(&db, &t))
            .await
        {
            tracing::error!(tenant = %t.id, error = %e, "re-arming SLA timers failed");
        }
        match supervision
            .guard(
                "tickets.timers",
                crate::timers::fire_due(&db, &t, time::now(), &supervision),
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(tenant = %t.id, escalated = n, "SLA timers fired"),
            Err(e) => tracing::error!(tenant = %t.id, error = %e, "firing SLA timers failed"),
        }
        if started.duration_since(drained) >= DRAIN_EVERY {
            drained = started;
            match supervision
                .guard("tickets.drain", crate::routing::drain_all(&db, &actor))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(tenant = %t.id, assigned = n, "waiting tickets assigned"),
                Err(e) => {
                    tracing::error!(tenant = %t.id, error = %e, "offering waiting tickets failed")
                }
            }
        }
        tokio::time::sleep_until(started + tick).await;
    }
}

/// Starts one supervised loop per tenant, each ticking every `tick`; the returned task runs
/// until aborted.
pub fn spawn(
    db: Db,
    tenants: Vec<Arc<Tenant>>,
    tick: Duration,
    supervision: Arc<Supervision>,
) -> JoinHandle<()> {
    shoal_base::supervise::each_forever(
        tenants,
        "tickets.upkeep",
        supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(db.clone(), supervision.clone(), tick, t),
    )
}
