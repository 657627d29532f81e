//! The wasmtime engine shared by every module, and the linker that decides what a module
//! can reach: `shoal:plugin/host` and an empty, deterministic WASI.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    component::{HasSelf, Linker},
};

use super::{
    abi::{v1_0, v1_1},
    call::{CallState, EPOCH_TICK},
};
use shoal_base::config::PluginsConfig;

/// Imports a module may have. WASI interfaces are linked, but with nothing behind them:
/// no files, environment, network, real clock or randomness.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "shoal:plugin/host@",
    "shoal:plugin/types@",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

pub fn engine(limits: &PluginsConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let slots = (limits.max_concurrent_calls as u32) * 2 + 16;
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 4)
        .total_tables(slots * 8)
        .max_memory_size(limits.memory_bytes);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.stack_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Every import a module of a supported ABI may use, bound to [`CallState`].
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    v1_0::IndustryModule::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    v1_1::IndustryModule::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        thread::Builder::new()
            .name("shoal-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The imports that are not allowed.
pub fn forbidden_imports(imports: &[String]) -> Vec<String> {
    imports
        .iter()
        .filter(|name| {
            !ALLOWED_IMPORTS
                .iter()
                .any(|allowed| name.starts_with(allowed))
        })
        .cloned()
        .collect()
}

/// The version of `shoal:plugin/module` a component exports, if it exports one.
pub fn exported_abi(engine: &Engine, component: &wasmtime::component::Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix("shoal:plugin/module@").map(str::to_owned))
}
