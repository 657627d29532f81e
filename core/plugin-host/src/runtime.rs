//! The engine, its linker and the per-call limits; turning a wasm file into a [`Loaded`]
//! module, and calling it synchronously. Used by the host and by `shoal plugin` commands.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Store, component::Linker};

use super::{
    abi::{
        self, AbiVersion,
        guest::{Guest, Pre},
        latest as types,
    },
    cache,
    call::{self, CallError, CallReport, CallState, Params},
    engine::{self, EpochTicker},
    manifest::{self, Manifest, ManifestFile, capability_names},
};
use shoal_base::config::PluginsConfig;

/// A module ready to be instantiated, with what it told about itself at load.
pub struct Loaded {
    pub manifest: Manifest,
    pub abi: AbiVersion,
    pub info: types::PluginInfo,
    pub tag_templates: Vec<types::TagTemplate>,
    pub sop_templates: Vec<types::SopTemplate>,
    /// Since ABI 1.1 (none from a 1.0 module).
    pub ticket_templates: Vec<types::TicketTemplate>,
    pub source: PathBuf,
    /// The component's imports, e.g. `wasi:cli/stderr@0.2.6`.
    pub imports: Vec<String>,
    pub load_time: Duration,
    pub from_cache: bool,
    pre: Pre<CallState>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("abi", &self.abi)
            .finish_non_exhaustive()
    }
}

/// The shared engine and everything a call needs.
pub struct Runtime {
    pub engine: Engine,
    pub limits: PluginsConfig,
    linker: Linker<CallState>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Runtime {
    pub fn new(limits: &PluginsConfig) -> Result<Runtime, String> {
        let engine =
            engine::engine(limits).map_err(|e| format!("cannot create the wasm engine: {e:#}"))?;
        let linker =
            engine::linker(&engine).map_err(|e| format!("cannot link host functions: {e:#}"))?;
        Ok(Runtime {
            _ticker: EpochTicker::start(&engine),
            engine,
            limits: limits.clone(),
            linker,
        })
    }

    /// Loads the module in `dir` (its `manifest.toml` and wasm), refusing it with a message
    /// that says what to do when anything does not match.
    pub fn load_dir(&self, dir: &Path) -> Result<Loaded, String> {
        self.load_manifest(&Manifest::read_file(dir)?)
    }

    /// Loads the module a manifest, read once, describes: its wasm is read once and must
    /// have the manifest's SHA-256. The module is then kept in the archive.
    pub fn load_manifest(&self, file: &ManifestFile) -> Result<Loaded, String> {
        let manifest = &file.manifest;
        let abi = AbiVersion::parse(&manifest.abi_version).ok_or_else(|| {
            format!(
                "abi_version `{}` is not a version like 1.0.0",
                manifest.abi_version
            )
        })?;
        abi::check_supported(abi)?;
        let bytes = self.read_wasm(&file.wasm)?;
        file.check_wasm(&bytes)?;
        let loaded = self.load(manifest.clone(), abi, &bytes, file.wasm.clone())?;
        self.archive(file, &bytes);
        Ok(loaded)
    }

    /// Where a loaded version is kept — by the SHA-256 of its wasm, then its id and
    /// version (one binary may ship under several manifests) — so bills it settled can be
    /// replayed after it is uninstalled; `None` for what cannot name a folder.
    fn archive_dir(&self, sha256: &str, id: &str, version: &str) -> Option<PathBuf> {
        let sha256 = sha256.to_ascii_lowercase();
        // the values come from bills as well as manifests: checked as a manifest's are
        (sha256.len() == 64
            && sha256.chars().all(|c| c.is_ascii_hexdigit())
            && manifest::is_plain_name(id)
            && crate::VersionKey::parse(version).is_some())
        .then(|| {
            self.limits
                .cache_dir
                .join("archive")
                .join(sha256)
                .join(format!("{id}@{version}"))
        })
    }

    /// Keeps a copy of the module folder as it was read — the manifest's exact bytes, its
    /// signatures and the wasm — in the archive, once, so the copy can be judged again.
    fn archive(&self, file: &ManifestFile, wasm: &[u8]) {
        let m = &file.manifest;
        let Some(dir) = self.archive_dir(&m.sha256, &m.id, &m.version) else {
            return;
        };
        if dir.join("manifest.toml").is_file() {
            return;
        }
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(file.manifest.wasm_file()), wasm)?;
            if let Some(signatures) = &file.signatures {
                std::fs::write(dir.join(shoal_signing::SIGNATURE_FILE), signatures)?;
            }
            // the manifest last: its presence says the copy is whole
            std::fs::write(dir.join("manifest.toml"), &file.bytes)
        };
        if let Err(e) = write() {
            tracing::warn!(module = %file.manifest.id, "cannot archive the module for replays: {e}");
        }
    }

    /// A version's folder from the archive, read once (for the trust store to judge).
    pub fn archived(&self, sha256: &str, id: &str, version: &str) -> Result<ManifestFile, String> {
        let dir = self
            .archive_dir(sha256, id, version)
            .ok_or_else(|| format!("`{id}` {version} ({sha256}) names no archive folder"))?;
        Manifest::read_file(&dir)
    }

    /// Loads a wasm file without a manifest (for `shoal plugin inspect` and `test`): the
    /// manifest is derived from the component itself.
    pub fn load_file(&self, path: &Path) -> Result<Loaded, String> {
        let bytes = self.read_wasm(path)?;
        let sha256 = sha256_hex(&bytes);
        let (component, _) = cache::compile(&self.engine, &self.limits.cache_dir, &sha256, &bytes)?;
        let abi_text = engine::exported_abi(&self.engine, &component)
            .ok_or("not a Shoal module: it does not export `shoal:plugin/module`")?;
        let abi =
            AbiVersion::parse(&abi_text).ok_or_else(|| format!("bad ABI version `{abi_text}`"))?;
        abi::check_supported(abi)?;
        let manifest = Manifest {
            id: String::new(),
            version: String::new(),
            abi_version: abi.to_string(),
            sha256,
            capabilities: manifest::CAPABILITIES
                .iter()
                .map(|(n, _)| n.to_string())
                .collect(),
            wasm: None,
            sensitive_fields: Vec::new(),
        };
        let mut loaded = self.load(manifest, abi, &bytes, path.to_owned())?;
        loaded.manifest.id = loaded.info.id.clone();
        loaded.manifest.version = loaded.info.version.clone();
        loaded.manifest.capabilities = capability_names(&loaded.info.capabilities)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(loaded)
    }

    fn read_wasm(&self, path: &Path) -> Result<Vec<u8>, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if bytes.len() > self.limits.max_binary_bytes {
            return Err(format!(
                "{} is {} bytes, over the {}-byte limit (plugins.max_binary_bytes); build with the `plugin` profile (opt-level \"s\", LTO, strip)",
                path.display(),
                bytes.len(),
                self.limits.max_binary_bytes
            ));
        }
        Ok(bytes)
    }

    fn load(
        &self,
        manifest: Manifest,
        abi: AbiVersion,
        bytes: &[u8],
        source: PathBuf,
    ) -> Result<Loaded, String> {
        let started = Instant::now();
        let declared = manifest.capability_set()?;
        let (component, from_cache) = cache::compile(
            &self.engine,
            &self.limits.cache_dir,
            &manifest.sha256,
            bytes,
        )?;
        match engine::exported_abi(&self.engine, &component) {
            Some(exported) if AbiVersion::parse(&exported) == Some(abi) => {}
            Some(exported) => {
                return Err(format!(
                    "the manifest says ABI {abi} but the component exports shoal:plugin/module@{exported}; rebuild with `cargo xtask plugins`"
                ));
            }
            None => {
                return Err("not a Shoal module: it does not export `shoal:plugin/module`".into());
            }
        }
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let forbidden = engine::forbidden_imports(&imports);
        if !forbidden.is_empty() {
            return Err(format!(
                "imports {} — modules may import only shoal:plugin/host and WASI cli, io, clocks, random and filesystem (which the host provides empty and deterministic); remove the dependency that needs it",
                forbidden.join(", ")
            ));
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot link the module: {e:#}"))?;
        let pre = Pre::new(abi, instance_pre)?;
        let (described, report) = call::run(
            &self.engine,
            &pre,
            &self.limits,
            Arc::new(Params::default()),
            |m, store| {
                let info = m.describe(&mut *store)?;
                let has = |c| info.capabilities.contains(&c);
                let tags = if has(types::Capability::TagTemplates) {
                    m.tag_templates(&mut *store)?
                } else {
                    Vec::new()
                };
                let sops = if has(types::Capability::SopTemplates) {
                    m.sop_templates(&mut *store)?
                } else {
                    Vec::new()
                };
                let tickets = if has(types::Capability::TicketTemplates) {
                    m.ticket_templates(&mut *store)?
                } else {
                    Vec::new()
                };
                Ok((info, tags, sops, tickets))
            },
        );
        let (info, tag_templates, sop_templates, ticket_templates) =
            described.map_err(|e| format!("describe() failed: {e} {}", stderr_of(&report)))?;
        if !manifest.id.is_empty() && info.id != manifest.id {
            return Err(format!(
                "the manifest says id `{}` but describe() says `{}`",
                manifest.id, info.id
            ));
        }
        if !manifest.id.is_empty()
            && capability_names(&info.capabilities) != capability_names(&declared)
        {
            return Err(format!(
                "the manifest declares capabilities [{}] but describe() declares [{}]",
                capability_names(&declared).join(", "),
                capability_names(&info.capabilities).join(", ")
            ));
        }
        Ok(Loaded {
            manifest,
            abi,
            info,
            tag_templates,
            sop_templates,
            ticket_templates,
            source,
            imports,
            load_time: started.elapsed(),
            from_cache,
            pre,
        })
    }

    /// Runs `f` on a fresh instance of `module` with the tenant's `params`.
    pub fn call<R>(
        &self,
        module: &Loaded,
        params: Arc<Params>,
        f: impl FnOnce(&Guest, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> (Result<R, CallError>, CallReport) {
        call::run(&self.engine, &module.pre, &self.limits, params, f)
    }
}

fn stderr_of(report: &CallReport) -> String {
    report
        .logs
        .iter()
        .filter(|l| l.level == "stderr")
        .map(|l| l.message.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
