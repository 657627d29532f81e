//! The waitlist worker of one host: for every tenant, a supervised loop that offers the
//! tickets waiting in its queues once a minute — what no change of capacity or
//! availability set moving (a shift that began, a host that stopped mid-way).

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use shoal_base::{storage::Db, supervise::Supervision};
use shoal_crm::tenancy::{Actor, Tenant};

/// How often waiting tickets are offered again.
pub const EVERY: Duration = Duration::from_secs(60);

async fn tenant_loop(db: Db, supervision: Arc<Supervision>, t: Arc<Tenant>) {
    let actor = Actor::system(&t, "routing");
    loop {
        let started = tokio::time::Instant::now();
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
        tokio::time::sleep_until(started + EVERY).await;
    }
}

/// Starts one supervised loop per tenant; the returned task runs until aborted.
pub fn spawn(db: Db, tenants: Vec<Arc<Tenant>>, supervision: Arc<Supervision>) -> JoinHandle<()> {
    shoal_base::supervise::each_forever(
        tenants,
        "tickets.worker",
        supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(db.clone(), supervision.clone(), t),
    )
}
