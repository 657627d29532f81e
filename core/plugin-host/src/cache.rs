//! Precompiled modules on disk. Compiling takes tens of milliseconds, so it happens once per
//! (wasm SHA-256, engine build and settings): later loads deserialize the machine code.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::Path,
};

use wasmtime::{Engine, component::Component};

/// The cache key part that changes with wasmtime's version and the engine's settings.
pub fn engine_key(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The compiled component, and whether it came from the cache.
pub fn compile(
    engine: &Engine,
    cache_dir: &Path,
    sha256: &str,
    wasm: &[u8],
) -> Result<(Component, bool), String> {
    let path = cache_dir.join(format!("{sha256}-{}.cwasm", engine_key(engine)));
    if path.is_file() {
        // SAFETY: the file is in Shoal's own cache folder, written below by this code from
        // a wasm whose SHA-256 is in its name, for an engine whose compatibility hash is in
        // its name; wasmtime also checks the header. A damaged file fails to load (and is
        // recompiled), it is not executed.
        #[allow(unsafe_code)]
        let cached = unsafe { Component::deserialize_file(engine, &path) };
        match cached {
            Ok(component) => return Ok((component, true)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached module: {e}")
            }
        }
    }
    let compiled = engine
        .precompile_component(wasm)
        .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
    if let Err(e) = std::fs::create_dir_all(cache_dir).and_then(|()| {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)
    }) {
        tracing::warn!(dir = %cache_dir.display(), "cannot cache a compiled module: {e}");
    }
    // SAFETY: `compiled` was produced just now by `precompile_component` of this engine.
    #[allow(unsafe_code)]
    let component =
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| format!("{e:#}"))?;
    Ok((component, false))
}
