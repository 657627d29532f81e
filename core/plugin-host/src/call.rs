//! One call into a module: a fresh store (no state survives between calls or tenants), the
//! per-call limits, the module's logs, and typed failures.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::{Engine, ResourceLimiter, Store, Trap, component::ResourceTable};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
    p2::pipe::MemoryOutputPipe,
};

use super::abi::{
    guest::{Guest, Pre},
    v1_0::{
        self,
        shoal::plugin::host::{self, LogLevel},
    },
    v1_1,
};
use shoal_base::config::PluginsConfig;

/// How often the engine's epoch advances; a call's deadline is counted in these ticks.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// Why a call failed on the host's side (the module's own refusal is the inner
/// `plugin-error`, kept apart from these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("module `{module}` is not enabled for this tenant")]
    NotEnabled { module: String },
    #[error("module `{module}` is not loaded")]
    NotLoaded { module: String },
    #[error("module `{module}` does not declare the capability `{capability}`")]
    MissingCapability {
        module: String,
        capability: &'static str,
    },
    #[error("input is {bytes} bytes as JSON, over the {limit}-byte limit")]
    InputTooLarge { bytes: usize, limit: usize },
    #[error("output is {bytes} bytes as JSON, over the {limit}-byte limit")]
    OutputTooLarge { bytes: usize, limit: usize },
    #[error("ran out of fuel ({limit} units)")]
    FuelExhausted { limit: u64 },
    #[error("exceeded the {ms} ms deadline")]
    DeadlineExceeded { ms: u64 },
    #[error("exceeded the {limit}-byte memory limit")]
    OutOfMemory { limit: usize },
    #[error("panicked: {message}")]
    Panic { message: String },
    #[error("trapped: {message}")]
    Trap { message: String },
    #[error("host failure: {0}")]
    Host(String),
}

impl CallError {
    /// A short stable name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::NotEnabled { .. } => "not_enabled",
            CallError::NotLoaded { .. } => "not_loaded",
            CallError::MissingCapability { .. } => "missing_capability",
            CallError::InputTooLarge { .. } => "input_too_large",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::FuelExhausted { .. } => "fuel_exhausted",
            CallError::DeadlineExceeded { .. } => "deadline_exceeded",
            CallError::OutOfMemory { .. } => "out_of_memory",
            CallError::Panic { .. } => "panic",
            CallError::Trap { .. } => "trap",
            CallError::Host(_) => "host",
        }
    }
}

/// One line a module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// What a call used, for `shoal plugin test` and logs.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    pub fuel_used: u64,
    pub peak_memory: usize,
    pub output_bytes: usize,
    pub elapsed: Duration,
    pub logs: Vec<LogLine>,
    /// Log bytes dropped beyond `plugins.max_log_bytes`.
    pub logs_dropped: usize,
}

/// The tenant's parameters for the module being called (JSON text per name).
#[derive(Debug, Default)]
pub struct Params {
    by_name: BTreeMap<String, String>,
    all: String,
}

impl Params {
    pub fn from_toml(params: &BTreeMap<String, toml::Value>) -> Params {
        let json: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        Params::from_json(json)
    }

    pub fn from_json(json: serde_json::Map<String, serde_json::Value>) -> Params {
        Params {
            by_name: json
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            all: serde_json::Value::Object(json).to_string(),
        }
    }
}

/// Caps linear memory and remembers the peak.
#[derive(Debug)]
struct MemoryLimiter {
    limit: usize,
    peak: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[derive(Debug, Default)]
struct Logs {
    lines: Vec<LogLine>,
    bytes: usize,
    limit: usize,
    dropped: usize,
}

/// Everything one call's store holds.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimiter,
    logs: Logs,
    params: Arc<Params>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        let logs = &mut self.logs;
        if logs.bytes + message.len() > logs.limit {
            logs.dropped += message.len();
            return;
        }
        logs.bytes += message.len();
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        logs.lines.push(LogLine { level, message });
    }

    fn param(&mut self, name: String) -> Option<String> {
        self.params.by_name.get(&name).cloned()
    }

    fn params(&mut self) -> String {
        self.params.all.clone()
    }
}

impl v1_0::shoal::plugin::types::Host for CallState {}

/// 1.1's host interface is 1.0's, under the new package version.
impl v1_1::shoal::plugin::host::Host for CallState {
    fn log(&mut self, level: v1_1::shoal::plugin::host::LogLevel, message: String) {
        use v1_1::shoal::plugin::host::LogLevel as L;
        let level = match level {
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        };
        host::Host::log(self, level, message)
    }

    fn param(&mut self, name: String) -> Option<String> {
        host::Host::param(self, name)
    }

    fn params(&mut self) -> String {
        host::Host::params(self)
    }
}

impl v1_1::shoal::plugin::types::Host for CallState {}

/// Time stands still inside a module: the clock reads the epoch, always.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// "Randomness" that is the same on every call, so modules stay deterministic.
struct FixedStream(u64);

impl rand_core::TryRng for FixedStream {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        // splitmix64 from a fixed seed
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// A deny-all WASI context: no files, environment, arguments or network; a frozen clock,
/// fixed randomness; stdout and stderr captured (a panic message lands there).
fn wasi(output: &MemoryOutputPipe) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(output.clone())
        .stderr(output.clone())
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(FixedStream(1))
        .insecure_random(FixedStream(2))
        .insecure_random_seed(3)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Instantiates a fresh copy of the module and runs `f` on it within the limits.
pub fn run<R>(
    engine: &Engine,
    pre: &Pre<CallState>,
    limits: &PluginsConfig,
    params: Arc<Params>,
    f: impl FnOnce(&Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
) -> (Result<R, CallError>, CallReport) {
    let started = Instant::now();
    let output = MemoryOutputPipe::new(limits.max_log_bytes);
    let state = CallState {
        wasi: wasi(&output),
        table: ResourceTable::new(),
        memory: MemoryLimiter {
            limit: limits.memory_bytes,
            peak: 0,
            exceeded: false,
        },
        logs: Logs {
            limit: limits.max_log_bytes,
            ..Logs::default()
        },
        params,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    let outcome = (|| {
        store.set_fuel(limits.fuel)?;
        store.set_epoch_deadline(limits.deadline_ms.div_ceil(EPOCH_TICK.as_millis() as u64));
        store.epoch_deadline_trap();
        let module = pre.instantiate(&mut store)?;
        f(&module, &mut store)
    })();
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let mut report = CallReport {
        fuel_used,
        peak_memory: state.memory.peak,
        output_bytes: 0,
        elapsed: started.elapsed(),
        logs: state.logs.lines,
        logs_dropped: state.logs.dropped,
    };
    let stderr = String::from_utf8_lossy(&output.contents()).into_owned();
    if !stderr.trim().is_empty() {
        report.logs.push(LogLine {
            level: "stderr",
            message: stderr.trim_end().to_owned(),
        });
    }
    let result = outcome.map_err(|e| classify(&e, limits, state.memory.exceeded, &stderr));
    (result, report)
}

fn classify(
    error: &wasmtime::Error,
    limits: &PluginsConfig,
    memory_exceeded: bool,
    stderr: &str,
) -> CallError {
    if memory_exceeded {
        return CallError::OutOfMemory {
            limit: limits.memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::FuelExhausted { limit: limits.fuel },
        Some(Trap::Interrupt) => CallError::DeadlineExceeded {
            ms: limits.deadline_ms,
        },
        Some(Trap::UnreachableCodeReached) if stderr.contains("panicked") => CallError::Panic {
            message: panic_message(stderr),
        },
        Some(trap) => CallError::Trap {
            message: trap.to_string(),
        },
        None => CallError::Trap {
            message: format!("{error:#}"),
        },
    }
}

/// `thread '<main>' panicked at src/lib.rs:3:5:\nboom` → `boom (at src/lib.rs:3:5)`.
fn panic_message(stderr: &str) -> String {
    let Some(start) = stderr.find("panicked at ") else {
        return stderr.trim().to_owned();
    };
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message = message.lines().next().unwrap_or("").trim();
    format!("{message} (at {})", location.trim())
}
