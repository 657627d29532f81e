//! Supervised background work (Quickwit's actors and tokio's `JoinSet` + `catch_unwind`, at
//! small scale): a unit of work that panics becomes an error its caller handles like any
//! other — the SOP runner parks the enrolment, the worker loop goes on — and every panic and
//! failure is counted for `/metrics`.

use std::{
    collections::BTreeMap,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    sync::Mutex,
    task::{Context, Poll},
};

use crate::error::{Error, Result};

/// Counts of supervised work by kind (`sop.steps`, `outbox`, …) and outcome, shared by the
/// workers of one host and rendered by `/metrics`.
#[derive(Debug, Default)]
pub struct Supervision {
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Supervision {
    /// Runs `work`; a panic inside it is logged, counted and returned as
    /// [`Error::Internal`] naming the panic, an error is counted and returned as it is.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// use shoal_base::supervise::Supervision;
    /// let s = Supervision::default();
    /// let answer = s.guard("demo", async { Ok::<_, shoal_base::error::Error>(42) }).await;
    /// assert_eq!(answer.unwrap(), 42);
    /// let panicked = s.guard("demo", async { if true { panic!("boom") } Ok(1) }).await;
    /// assert!(panicked.unwrap_err().to_string().contains("boom"));
    /// assert!(s.render().contains(r#"shoal_background_work_total{work="demo",outcome="panicked"} 1"#));
    /// # });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// ```
    pub async fn guard<T>(&self, work: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
        let outcome = CatchUnwind(Box::pin(future)).await;
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => {
                tracing::error!(work, panic = %panic, "background work panicked; it is handed back as an error and the loop goes on");
                self.count(work, "panicked");
                return Err(Error::Internal(format!("panicked: {panic}")));
            }
        };
        self.count(work, if result.is_ok() { "ok" } else { "failed" });
        result
    }

    /// Counts one outcome of `work` (`parked`, `restarted`, …).
    pub fn count(&self, work: &str, outcome: &'static str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((work.to_owned(), outcome)).or_default() += 1;
    }

    /// The counts in Prometheus text format.
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP shoal_background_work_total Supervised background work by kind and outcome.\n\
             # TYPE shoal_background_work_total counter\n",
        );
        for ((work, outcome), n) in counts.iter() {
            out.push_str(&format!(
                "shoal_background_work_total{{work=\"{work}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out
    }
}

/// Runs `work` with its panics caught: a panic is logged and returned as
/// [`Error::Internal`] naming it (uncounted; see [`Supervision::guard`] for counted work).
pub async fn catch<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    match CatchUnwind(Box::pin(work)).await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!(panic = %panic, "work panicked; it is handed back as an error");
            Err(Error::Internal(format!("panicked: {panic}")))
        }
    }
}

/// The message of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A future whose panics are caught, each poll under `catch_unwind`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        }
    }
}

/// Runs `run(item)` for every item as a task of its own, forever: a task that ends or
/// panics is logged (with `label(item)`), counted under `work` / `restarted`, and started
/// again after a second. The returned task runs until aborted; aborting it stops them all.
/// The workers of a host run one such loop per tenant, so one tenant's trouble stays its own.
pub fn each_forever<T, F, Fut>(
    items: Vec<T>,
    work: &'static str,
    supervision: std::sync::Arc<Supervision>,
    label: fn(&T) -> String,
    run: F,
) -> tokio::task::JoinHandle<()>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut loops = tokio::task::JoinSet::new();
        let mut item_of = std::collections::HashMap::new();
        for item in items {
            let id = loops.spawn(run(item.clone())).id();
            item_of.insert(id, item);
        }
        while let Some(ended) = loops.join_next_with_id().await {
            let id = match &ended {
                Ok((id, ())) => *id,
                Err(e) => e.id(),
            };
            let Some(item) = item_of.remove(&id) else {
                continue;
            };
            tracing::error!(item = %label(&item), work, error = ?ended.err(), "a worker loop died; restarting it");
            supervision.count(work, "restarted");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let id = loops.spawn(run(item.clone())).id();
            item_of.insert(id, item);
        }
    })
}
