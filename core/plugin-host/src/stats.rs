//! Per-module call statistics: counts, failures by kind, latency percentiles.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

/// Latencies kept for percentiles (the most recent calls).
const WINDOW: usize = 1024;

#[derive(Debug, Default)]
struct Inner {
    calls: u64,
    errors: BTreeMap<&'static str, u64>,
    latencies_us: VecDeque<u64>,
}

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

/// A snapshot for the API.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub p50_us: Option<u64>,
    pub p95_us: Option<u64>,
    pub p99_us: Option<u64>,
}

impl Stats {
    pub fn record(&self, elapsed: Duration, error: Option<&'static str>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.calls += 1;
        if let Some(kind) = error {
            *inner.errors.entry(kind).or_default() += 1;
        }
        if inner.latencies_us.len() == WINDOW {
            inner.latencies_us.pop_front();
        }
        inner.latencies_us.push_back(elapsed.as_micros() as u64);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<u64> = inner.latencies_us.iter().copied().collect();
        sorted.sort_unstable();
        let pick = |p: f64| {
            (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
        };
        StatsSnapshot {
            calls: inner.calls,
            errors: inner.errors.clone(),
            p50_us: pick(0.50),
            p95_us: pick(0.95),
            p99_us: pick(0.99),
        }
    }
}
