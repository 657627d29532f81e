//! The plugin runtime: industry modules as WebAssembly components, run by wasmtime.
//!
//! - `abi`: the contract versions this host accepts;
//! - `engine`: one shared engine (pooling allocator, fuel, epoch deadline) and the linker
//!   with a deny-all, deterministic WASI;
//! - `manifest`, `cache`, `runtime`: from a plugins folder to ready-to-instantiate modules;
//! - `call`: one call = one fresh store, with limits, logs and typed failures;
//! - `trust`: whether a module is signed by a key the trust store accepts for it;
//! - `versions`: several versions of one module side by side, ordered;
//! - `host`: the registry the rest of Shoal uses, swapped atomically on reload.

pub mod abi;
mod cache;
mod call;
mod engine;
mod host;
pub mod keys;
mod manifest;
mod reload;
mod runtime;
mod stats;
pub mod tooling;
mod trust;
mod versions;

pub use abi::latest as types;
pub use call::{CallError, CallReport, LogLine, Params};
pub use host::{
    LoadFailure, ModuleView, PluginHost, PluginStatus, Proposed, ReloadReport, ReplayError,
    Settled, Withdraw,
};
pub use manifest::{Manifest, ManifestFile, capability_name, capability_names, industry_name};
pub use reload::{ConfigProvider, Reloader};
pub use runtime::{Loaded, Runtime, sha256_hex};
pub use stats::StatsSnapshot;
pub use trust::{Trust, judge as judge_trust};
pub use versions::VersionKey;
