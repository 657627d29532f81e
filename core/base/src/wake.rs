//! Waking a tenant's background loop on this host when a request left it work (events for
//! the dispatcher to evaluate), instead of letting the work wait for the loop's next poll.
//! A wake-up carries nothing: the loop reads the work itself, so a wake-up that finds no
//! loop waiting is kept for the next wait (one permit), and one that is lost costs a poll
//! interval, never the work. Other hosts find the work on their own polls.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

/// The wake-ups of one host, one per tenant.
#[derive(Debug, Clone, Default)]
pub struct Wakers {
    by_tenant: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Wakers {
    /// The wake-up `tenant`'s loop waits on.
    pub fn of(&self, tenant: &str) -> Arc<Notify> {
        let mut map = self.by_tenant.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_owned()).or_default().clone()
    }

    /// Wakes `tenant`'s loop now, or at its next wait if it is busy.
    pub fn wake(&self, tenant: &str) {
        self.of(tenant).notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_before_the_wait_is_kept_for_it() {
        let wakers = Wakers::default();
        let notify = wakers.of("alpha");
        wakers.wake("alpha");
        tokio::time::timeout(Duration::from_secs(5), notify.notified())
            .await
            .expect("the permit left before the wait wakes it");
    }

    #[tokio::test]
    async fn a_wake_reaches_only_its_tenant() {
        let wakers = Wakers::default();
        wakers.wake("beta");
        let waited =
            tokio::time::timeout(Duration::from_millis(50), wakers.of("alpha").notified()).await;
        assert!(waited.is_err(), "alpha was woken by beta's wake-up");
    }
}
