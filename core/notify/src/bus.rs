//! Waking subscribers when a tenant's feed grows. A wake-up carries a tenant id and a
//! sequence number only; subscribers read the rows themselves, so a missed or coalesced
//! wake-up delays an item, never loses it (subscribers also look on a timer).
//!
//! On PostgreSQL the relay sends `NOTIFY shoal_feed, '<tenant> <seq>'` in its transaction
//! (delivered on commit, to every host listening); [`listen`] turns those into wake-ups on
//! this host. On SQLite (one host) the relay wakes the bus directly.

use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::{sync::broadcast, task::JoinHandle};

/// The PostgreSQL channel of feed wake-ups.
pub const CHANNEL: &str = "shoal_feed";

/// "The feed of `tenant` reached `seq`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub tenant: Arc<str>,
    pub seq: i64,
}

/// The wake-ups of one host.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Wake>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    pub fn new() -> Bus {
        Bus {
            tx: broadcast::channel(4096).0,
        }
    }

    /// Wakes this host's subscribers of `tenant`.
    pub fn wake(&self, tenant: &str, seq: i64) {
        // no subscriber: nobody to wake
        let _ = self.tx.send(Wake {
            tenant: tenant.into(),
            seq,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.tx.subscribe()
    }
}

/// Queues the PostgreSQL notification of a feed that reached `seq`, in the caller's
/// transaction (sent when it commits).
pub async fn announce(conn: &mut AnyConnection, tenant: &str, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{tenant} {seq}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Listens on PostgreSQL at `url` and wakes `bus` for every feed notification, reconnecting
/// after a lost connection (subscribers' timers cover the gap); runs until aborted.
pub fn listen(url: String, bus: Bus) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "cannot LISTEN for feed wake-ups");
                    } else {
                        loop {
                            match listener.recv().await {
                                Ok(n) => {
                                    if let Some((tenant, seq)) = n.payload().rsplit_once(' ')
                                        && let Ok(seq) = seq.parse()
                                    {
                                        bus.wake(tenant, seq);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "feed wake-ups interrupted; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect to listen for feed wake-ups"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}
