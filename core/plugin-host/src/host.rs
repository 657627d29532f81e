//! The registry of loaded modules and the tenants that enable them, swapped atomically on
//! reload, and the calls the rest of Shoal makes (bounded, off the async threads).

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::{
    abi::latest as types,
    call::{CallError, CallReport, Params},
    manifest::{Manifest, capability_name, capability_names},
    runtime::{Loaded, Runtime},
    stats::{Stats, StatsSnapshot},
    trust::{self, Trust},
    versions::VersionKey,
};
use shoal_base::config::{Config, TrustMode};

/// A module that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The module's folder.
    pub source: PathBuf,
    /// The id from its manifest, when the manifest could be read.
    pub id: Option<String>,
    /// The version from its manifest, when the manifest could be read.
    pub version: Option<String>,
    /// The trust store's verdict, when the manifest could be read.
    pub trust: Option<Trust>,
    pub error: String,
}

/// What a reload did.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub failed: Vec<LoadFailure>,
}

/// A module version as an administrator sees it.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    pub id: String,
    pub version: Option<String>,
    pub abi_version: Option<String>,
    pub sha256: Option<String>,
    pub loaded: bool,
    pub load_error: Option<String>,
    /// Tenants that run this version (the newest, or the one they pin).
    pub tenants: Vec<String>,
    /// The trust store's verdict (`None` when the module could not be judged).
    pub trust: Option<Trust>,
    pub stats: StatsSnapshot,
}

/// A module as a tenant sees it: what it is and the templates it supplies.
#[derive(Debug, Clone)]
pub struct ModuleView {
    pub info: types::PluginInfo,
    pub capabilities: Vec<&'static str>,
    pub params: serde_json::Value,
    pub tag_templates: Vec<types::TagTemplate>,
    pub sop_templates: Vec<types::SopTemplate>,
    /// Since ABI 1.1 (none from a 1.0 module).
    pub ticket_templates: Vec<types::TicketTemplate>,
}

/// A module's proposal for a ticket, with the version that made it.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub result: Result<types::TicketProposal, types::PluginError>,
    pub module_version: String,
}

/// A settlement with the exact module and parameters that produced it, for the record.
#[derive(Debug, Clone)]
pub struct Settled {
    pub result: Result<types::Settlement, types::PluginError>,
    pub module_version: String,
    pub module_sha256: String,
    /// The parameters the module saw (config merged with overrides), as a JSON object.
    pub params: serde_json::Value,
    pub report: CallReport,
}

/// Why a tenant's rollback did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Withdraw {
    /// Other tenants run the version: not one tenant's to withdraw.
    #[error("{0}")]
    Shared(String),
    /// Nothing to roll back to, a pinned version, or the folder could not be moved.
    #[error("{0}")]
    Refused(String),
}

/// Why a bill cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("module `{0}` is not loaded on this host")]
    NotLoaded(String),
    /// The version is archived but the trust store no longer accepts it (production).
    #[error("{0}")]
    Refused(String),
    #[error(
        "the bill was settled by `{id}` {version} (sha256 {sha256}); the loaded version is {loaded_version} (sha256 {loaded_sha256})"
    )]
    OtherVersion {
        id: String,
        version: String,
        sha256: String,
        loaded_version: String,
        loaded_sha256: String,
    },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// One installed version of a module and the trust store's verdict on it.
#[derive(Debug, Clone)]
struct Installed {
    loaded: Arc<Loaded>,
    trust: Trust,
}

/// A module a tenant enables: its parameters and the version it pins, if any.
#[derive(Debug)]
struct Enabled {
    params: Arc<Params>,
    json: serde_json::Value,
    pin: Option<String>,
}

/// One consistent view: modules plus the tenants' module settings.
#[derive(Debug, Default)]
struct Snapshot {
    /// id → version → module: every version installed, side by side.
    modules: BTreeMap<String, BTreeMap<VersionKey, Installed>>,
    failures: Vec<LoadFailure>,
    /// tenant → enabled module id → settings.
    tenants: BTreeMap<String, BTreeMap<String, Enabled>>,
    /// The trust store, also for versions replayed from the archive.
    trust: shoal_base::config::TrustConfig,
}

impl Snapshot {
    /// The version `tenant` runs: the one it pins, else the default.
    fn active(&self, tenant: &str, id: &str) -> Option<&Installed> {
        let versions = self.modules.get(id)?;
        let pin = self
            .tenants
            .get(tenant)
            .and_then(|m| m.get(id))
            .and_then(|e| e.pin.as_deref());
        match pin {
            Some(v) => versions.get(&VersionKey::new(v)),
            None => Self::default_version(versions).map(|(_, i)| i),
        }
    }

    /// The version tenants without a pin run: the newest release, or the newest
    /// pre-release when only pre-releases are installed.
    fn default_version(
        versions: &BTreeMap<VersionKey, Installed>,
    ) -> Option<(&VersionKey, &Installed)> {
        versions
            .iter()
            .rev()
            .find(|(v, _)| !v.is_pre_release())
            .or_else(|| versions.iter().next_back())
    }

    /// Any installed version of `id` whose wasm has this SHA-256.
    fn by_sha(&self, id: &str, sha256: &str) -> Option<Arc<Loaded>> {
        self.modules
            .get(id)?
            .values()
            .find(|i| i.loaded.manifest.sha256.eq_ignore_ascii_case(sha256))
            .map(|i| i.loaded.clone())
    }
}

#[derive(Debug)]
pub struct PluginHost {
    runtime: Arc<Runtime>,
    snapshot: RwLock<Arc<Snapshot>>,
    stats: Mutex<HashMap<(String, String), Arc<Stats>>>,
    /// Versions no longer installed, loaded again from the archive to replay bills.
    replays: Mutex<HashMap<String, Arc<Loaded>>>,
    permits: Arc<Semaphore>,
    /// Serialises reloads (calls never wait for it).
    reloading: Mutex<()>,
}

impl PluginHost {
    /// Creates the engine and loads the modules and tenant settings of `config`.
    pub fn start(config: &Config) -> Result<(Arc<PluginHost>, ReloadReport), String> {
        let runtime = Arc::new(Runtime::new(&config.plugins)?);
        let host = Arc::new(PluginHost {
            permits: Arc::new(Semaphore::new(config.plugins.max_concurrent_calls)),
            runtime,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            stats: Mutex::new(HashMap::new()),
            replays: Mutex::new(HashMap::new()),
            reloading: Mutex::new(()),
        });
        let report = host.reload(config);
        Ok((host, report))
    }

    /// Re-reads the plugins folder and the tenants' module settings and swaps them in at
    /// once. Calls in flight finish on the modules they started with. Every folder holds
    /// one module version; several versions of a module may be installed side by side
    /// (folders starting with `.` are skipped). Each is judged by the trust store, which
    /// in production refuses the untrusted ones before they are compiled. Limits and the
    /// folder location are fixed at start.
    pub fn reload(&self, config: &Config) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::default();
        let dir = &self.runtime.limits.dir;
        let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        folders.sort();
        let current = self.current();
        let store = &config.plugins.trust;
        let now = chrono::Utc::now();
        for folder in folders {
            // the folder is read once: trust is judged, and the module loaded, from the same
            // manifest bytes
            let file = match Manifest::read_file(&folder) {
                Ok(file) => file,
                Err(error) => {
                    tracing::error!(folder = %folder.display(), "module refused: {error}");
                    next.failures.push(LoadFailure {
                        source: folder.clone(),
                        id: None,
                        version: None,
                        trust: None,
                        error,
                    });
                    continue;
                }
            };
            let manifest = &file.manifest;
            let verdict = trust::judge(&file, store, now);
            let refuse = |next: &mut Snapshot, error: String| {
                tracing::error!(folder = %folder.display(), "module refused: {error}");
                next.failures.push(LoadFailure {
                    source: folder.clone(),
                    id: Some(manifest.id.clone()),
                    version: Some(manifest.version.clone()),
                    trust: Some(verdict.clone()),
                    error,
                });
            };
            if let Trust::Untrusted { reason, .. } = &verdict {
                let module = format!("module `{}` {}", manifest.id, manifest.version);
                if store.mode == TrustMode::Production {
                    refuse(
                        &mut next,
                        format!("{module} refused (plugins.trust.mode = production): {reason}"),
                    );
                    continue;
                }
                tracing::warn!(
                    folder = %folder.display(),
                    "{module} is not trusted, loaded anyway (plugins.trust.mode = development; production would refuse it): {reason}"
                );
            }
            // unchanged modules are kept as they are (no recompilation, no re-instantiation)
            let unchanged = current
                .modules
                .get(&manifest.id)
                .and_then(|versions| versions.get(&VersionKey::new(&manifest.version)))
                .filter(|i| i.loaded.manifest == *manifest && i.loaded.source.starts_with(&folder))
                .map(|i| i.loaded.clone());
            let result = match unchanged {
                Some(loaded) => Ok(loaded),
                None => self.runtime.load_manifest(&file).map(Arc::new),
            };
            let loaded = match result {
                Ok(loaded) => loaded,
                Err(error) => {
                    refuse(&mut next, error);
                    continue;
                }
            };
            let id = loaded.manifest.id.clone();
            let version = VersionKey::new(&loaded.manifest.version);
            let versions = next.modules.entry(id.clone()).or_default();
            if let Some(first) = versions.get(&version) {
                let error = format!(
                    "duplicate module `{id}` {}: also loaded from {}",
                    version.as_str(),
                    first.loaded.source.display()
                );
                refuse(&mut next, error);
                continue;
            }
            tracing::info!(
                module = %id, version = %loaded.manifest.version, abi = %loaded.abi,
                signer = verdict.signer().unwrap_or("-"),
                cached = loaded.from_cache, load_ms = loaded.load_time.as_secs_f64() * 1000.0,
                "module loaded"
            );
            versions.insert(
                version,
                Installed {
                    loaded,
                    trust: verdict,
                },
            );
        }
        for (tenant_id, tenant) in &config.tenants {
            let enabled = tenant
                .modules
                .iter()
                .filter(|(_, m)| m.enabled)
                .map(|(id, m)| {
                    let json = serde_json::to_value(&m.params).unwrap_or_default();
                    let enabled = Enabled {
                        params: Arc::new(Params::from_toml(&m.params)),
                        json,
                        pin: m.version.clone(),
                    };
                    (id.clone(), enabled)
                })
                .collect();
            next.tenants.insert(tenant_id.clone(), enabled);
        }
        // a pin naming a version that is not installed is reported (its calls fail)
        for (tenant_id, enabled) in &next.tenants {
            for (id, e) in enabled {
                if let Some(pin) = &e.pin
                    && next.modules.contains_key(id)
                    && next.active(tenant_id, id).is_none()
                {
                    tracing::error!(
                        tenant = %tenant_id, module = %id,
                        "tenants.{tenant_id}.modules.{id}.version pins {pin}, which is not installed"
                    );
                }
            }
        }
        next.trust = config.plugins.trust.clone();
        let report = ReloadReport {
            loaded: next.modules.keys().cloned().collect(),
            failed: next.failures.clone(),
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        // archived versions are loaded again on demand: memory does not grow with history
        self.replays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        report
    }

    /// Withdraws, for `tenant`, the newest version of `id` this host runs (moved to
    /// `.withdrawn/` in the plugins folder) when an older one is loaded too, no tenant pins
    /// it, and no other tenant runs it (that rollback is the host operator's: `shoal plugin
    /// rollback`); the caller reloads. Returns what was done.
    pub fn withdraw_newest(&self, id: &str, tenant: &str) -> Result<String, Withdraw> {
        let snapshot = self.current();
        let versions = snapshot
            .modules
            .get(id)
            .ok_or_else(|| Withdraw::Refused(format!("no version of `{id}` is loaded")))?;
        let (newest, installed) = Snapshot::default_version(versions)
            .ok_or_else(|| Withdraw::Refused(format!("no version of `{id}` is loaded")))?;
        let shared = snapshot.tenants.iter().any(|(t, m)| {
            t != tenant
                && m.contains_key(id)
                && snapshot
                    .active(t, id)
                    .is_some_and(|i| Arc::ptr_eq(&i.loaded, &installed.loaded))
        });
        if shared {
            return Err(Withdraw::Shared(format!(
                "other tenants run `{id}` {} on this host: withdrawing it is the host operator's (`shoal plugin rollback`); pin this tenant to an older version instead",
                newest.as_str()
            )));
        }
        let (previous, _) = versions
            .range(..newest.clone())
            .next_back()
            .ok_or_else(|| {
                Withdraw::Refused(format!(
                    "`{id}` {} has no older version loaded: nothing to roll back to",
                    newest.as_str()
                ))
            })?;
        let folder = installed
            .loaded
            .source
            .parent()
            .ok_or_else(|| Withdraw::Refused("the module has no folder".into()))?
            .to_owned();
        let pins: Vec<(String, String)> = snapshot
            .tenants
            .iter()
            .filter_map(|(t, m)| Some((t.clone(), m.get(id)?.pin.clone()?)))
            .collect();
        super::tooling::withdraw(self.plugins_dir(), id, newest, &folder, previous, &pins)
            .map_err(Withdraw::Refused)
    }

    /// The plugins folder this host loads from.
    pub fn plugins_dir(&self) -> &std::path::Path {
        &self.runtime.limits.dir
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stats_of(&self, loaded: &Loaded) -> Arc<Stats> {
        let key = (loaded.manifest.id.clone(), loaded.manifest.version.clone());
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// Calls `f` on a fresh instance of `module` for `tenant`, after checking the tenant
    /// enabled it, it declares `capability`, and `input` fits; on the blocking pool, at most
    /// `plugins.max_concurrent_calls` at once.
    async fn call<I, R>(
        &self,
        tenant: &str,
        module: &str,
        capability: types::Capability,
        overrides: Option<&serde_json::Map<String, serde_json::Value>>,
        input: &I,
        f: impl FnOnce(
            &super::abi::guest::Guest,
            &mut wasmtime::Store<super::call::CallState>,
        ) -> wasmtime::Result<R>
        + Send
        + 'static,
    ) -> Result<(R, CallReport, Arc<Loaded>, serde_json::Value), CallError>
    where
        I: Serialize,
        R: Serialize + Send + 'static,
    {
        let snapshot = self.current();
        let not_enabled = || CallError::NotEnabled {
            module: module.to_owned(),
        };
        let enabled = snapshot
            .tenants
            .get(tenant)
            .and_then(|m| m.get(module))
            .ok_or_else(not_enabled)?;
        let (params, params_json) = (&enabled.params, &enabled.json);
        let (params, params_json) = match overrides.filter(|o| !o.is_empty()) {
            None => (params.clone(), params_json.clone()),
            Some(extra) => {
                let mut merged = params_json.as_object().cloned().unwrap_or_default();
                merged.extend(extra.clone());
                (
                    Arc::new(Params::from_json(merged.clone())),
                    serde_json::Value::Object(merged),
                )
            }
        };
        let loaded = snapshot
            .active(tenant, module)
            .map(|i| i.loaded.clone())
            .ok_or_else(|| CallError::NotLoaded {
                module: match &enabled.pin {
                    Some(pin) => format!("{module} {pin} (the version this tenant pins)"),
                    None => module.to_owned(),
                },
            })?;
        let limits = &self.runtime.limits;
        let refused = |error: CallError| {
            tracing::warn!(
                module,
                tenant,
                kind = error.kind(),
                "module call refused: {error}"
            );
            self.stats_of(&loaded)
                .record(std::time::Duration::ZERO, Some(error.kind()));
            Err(error)
        };
        if !loaded.info.capabilities.contains(&capability) {
            return refused(CallError::MissingCapability {
                module: module.to_owned(),
                capability: capability_name(capability),
            });
        }
        let input_bytes = serde_json::to_vec(input)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if input_bytes > limits.max_input_bytes {
            return refused(CallError::InputTooLarge {
                bytes: input_bytes,
                limit: limits.max_input_bytes,
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CallError::Host("the plugin host is shutting down".into()))?;
        let (runtime, params, module_ref) = (self.runtime.clone(), params.clone(), loaded.clone());
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.call(&module_ref, params, f)
        })
        .await;
        let (result, mut report) =
            joined.map_err(|e| CallError::Host(format!("call task failed: {e}")))?;
        let result = result.and_then(|r| {
            report.output_bytes = serde_json::to_vec(&r)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if report.output_bytes > limits.max_output_bytes {
                Err(CallError::OutputTooLarge {
                    bytes: report.output_bytes,
                    limit: limits.max_output_bytes,
                })
            } else {
                Ok(r)
            }
        });
        let (id, version) = (&loaded.manifest.id, &loaded.manifest.version);
        for line in &report.logs {
            tracing::info!(module = %id, version = %version, tenant, level = line.level, "module: {}", line.message);
        }
        if let Err(e) = &result {
            tracing::warn!(module = %id, version = %version, tenant, kind = e.kind(), fuel = report.fuel_used, "module call failed: {e}");
        }
        self.stats_of(&loaded).record(
            started.elapsed(),
            result.as_ref().err().map(CallError::kind),
        );
        result.map(|r| (r, report, loaded, params_json))
    }

    /// Settles a bill with a module. Fails closed: any failure is an error for the caller.
    pub async fn settle(
        &self,
        tenant: &str,
        module: &str,
        request: types::SettleRequest,
    ) -> Result<Result<types::Settlement, types::PluginError>, CallError> {
        let input = request.clone();
        self.call(
            tenant,
            module,
            types::Capability::Settlement,
            None,
            &input,
            move |m, store| m.settle(store, &request),
        )
        .await
        .map(|(r, ..)| r)
    }

    /// Settles a bill with the tenant's parameters merged with `overrides`, and reports
    /// which module version and parameters produced it (for the bill's record).
    pub async fn settle_recorded(
        &self,
        tenant: &str,
        module: &str,
        request: types::SettleRequest,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Settled, CallError> {
        let input = request.clone();
        let (result, report, loaded, params) = self
            .call(
                tenant,
                module,
                types::Capability::Settlement,
                Some(overrides),
                &input,
                move |m, store| m.settle(store, &request),
            )
            .await?;
        Ok(Settled {
            result,
            module_version: loaded.manifest.version.clone(),
            module_sha256: loaded.manifest.sha256.clone(),
            params,
            report,
        })
    }

    /// Re-runs a recorded settlement on exactly the module (by SHA-256) and parameters that
    /// produced it; the tenant's current settings play no part. The version may be any
    /// installed one, or one no longer installed that this host loaded before (every loaded
    /// module is archived by SHA-256 under the cache folder).
    pub async fn replay_settle(
        &self,
        module: &str,
        sha256: &str,
        version: &str,
        params: serde_json::Map<String, serde_json::Value>,
        request: types::SettleRequest,
    ) -> Result<Result<types::Settlement, types::PluginError>, ReplayError> {
        let snapshot = self.current();
        let loaded = match snapshot.by_sha(module, sha256) {
            Some(loaded) => loaded,
            None => self.archived(module, sha256, version)?.ok_or_else(|| {
                match snapshot
                    .modules
                    .get(module)
                    .and_then(|v| v.values().next_back())
                {
                    None => ReplayError::NotLoaded(module.to_owned()),
                    Some(newest) => ReplayError::OtherVersion {
                        id: module.to_owned(),
                        version: version.to_owned(),
                        sha256: sha256.to_owned(),
                        loaded_version: newest.loaded.manifest.version.clone(),
                        loaded_sha256: newest.loaded.manifest.sha256.clone(),
                    },
                }
            })?,
        };
        let runtime = self.runtime.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CallError::Host("the plugin host is shutting down".into()))?;
        let (result, _) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.call(&loaded, Arc::new(Params::from_json(params)), |m, s| {
                m.settle(s, &request)
            })
        })
        .await
        .map_err(|e| CallError::Host(format!("replay task failed: {e}")))?;
        Ok(result?)
    }

    /// A version no longer installed, from the archive (kept loaded until the next reload),
    /// judged by the trust store like any folder: in production a revoked or untrusted
    /// version is not run, not even to replay.
    fn archived(
        &self,
        module: &str,
        sha256: &str,
        version: &str,
    ) -> Result<Option<Arc<Loaded>>, ReplayError> {
        let key = format!("{}/{module}@{version}", sha256.to_ascii_lowercase());
        if let Some(loaded) = self
            .replays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Some(loaded.clone()));
        }
        let file = match self.runtime.archived(sha256, module, version) {
            Ok(file)
                if file.manifest.id == module
                    && file.manifest.sha256.eq_ignore_ascii_case(sha256) =>
            {
                file
            }
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::debug!(module, sha256, "no archived version: {e}");
                return Ok(None);
            }
        };
        let store = &self.current().trust;
        if let Trust::Untrusted { reason, .. } = trust::judge(&file, store, chrono::Utc::now())
            && store.mode == TrustMode::Production
        {
            return Err(ReplayError::Refused(format!(
                "module `{module}` {} is archived, but the trust store refuses it (plugins.trust.mode = production): {reason}",
                file.manifest.version
            )));
        }
        let loaded =
            Arc::new(self.runtime.load_manifest(&file).map_err(|e| {
                ReplayError::Refused(format!("the archived copy does not load: {e}"))
            })?);
        self.replays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, loaded.clone());
        Ok(Some(loaded))
    }

    /// Field values a module proposes for a ticket of one of its templates (capability
    /// `ticket-templates`, ABI 1.1). Fails closed, like settling.
    pub async fn propose_ticket(
        &self,
        tenant: &str,
        module: &str,
        request: types::TicketRequest,
    ) -> Result<Proposed, CallError> {
        let input = request.clone();
        let (result, _, loaded, _) = self
            .call(
                tenant,
                module,
                types::Capability::TicketTemplates,
                None,
                &input,
                move |m, store| m.propose_ticket(store, &request),
            )
            .await?;
        Ok(Proposed {
            result,
            module_version: loaded.manifest.version.clone(),
        })
    }

    /// Tags decided by a module for one customer. Fails open: on any failure (host or
    /// module) it logs and returns no decisions, so tag evaluation goes on without it.
    pub async fn evaluate_tags(
        &self,
        tenant: &str,
        module: &str,
        profile: types::CustomerProfile,
    ) -> Vec<types::TagDecision> {
        let input = profile.clone();
        let outcome = self
            .call(
                tenant,
                module,
                types::Capability::EvaluateTags,
                None,
                &input,
                move |m, store| m.evaluate_tags(store, &profile),
            )
            .await;
        match outcome {
            Ok((Ok(decisions), ..)) => decisions,
            Ok((Err(refusal), ..)) => {
                tracing::warn!(module, tenant, code = %refusal.code, "evaluate-tags refused, skipped: {}", refusal.message);
                Vec::new()
            }
            Err(_) => Vec::new(), // already logged and counted by `call`
        }
    }

    /// The modules `tenant` enabled that are loaded, with their templates.
    pub fn modules(&self, tenant: &str) -> Vec<ModuleView> {
        let snapshot = self.current();
        let Some(enabled) = snapshot.tenants.get(tenant) else {
            return Vec::new();
        };
        enabled
            .iter()
            .filter_map(|(id, e)| {
                let loaded = &snapshot.active(tenant, id)?.loaded;
                let params = &e.json;
                Some(ModuleView {
                    info: loaded.info.clone(),
                    capabilities: capability_names(&loaded.info.capabilities),
                    params: params.clone(),
                    tag_templates: loaded.tag_templates.clone(),
                    sop_templates: loaded.sop_templates.clone(),
                    ticket_templates: loaded.ticket_templates.clone(),
                })
            })
            .collect()
    }

    /// The modules `tenant` enables that it cannot run, and why (not installed, refused,
    /// or pinned to a version that is not installed).
    pub fn unavailable(&self, tenant: &str) -> Vec<(String, String)> {
        let snapshot = self.current();
        let Some(enabled) = snapshot.tenants.get(tenant) else {
            return Vec::new();
        };
        enabled
            .iter()
            .filter(|(id, _)| snapshot.active(tenant, id).is_none())
            .map(|(id, e)| {
                let why = match (&e.pin, snapshot.modules.contains_key(id)) {
                    (Some(pin), true) => {
                        format!("the tenant pins version {pin}, which is not installed")
                    }
                    _ => "not installed, or refused at load (see `plugins`)".to_owned(),
                };
                (id.clone(), why)
            })
            .collect()
    }

    /// The customer fields that the modules a tenant enables declare sensitive.
    pub fn sensitive_fields(&self, tenant: &str) -> std::collections::HashSet<String> {
        let snapshot = self.current();
        let Some(enabled) = snapshot.tenants.get(tenant) else {
            return Default::default();
        };
        enabled
            .keys()
            .filter_map(|id| snapshot.active(tenant, id))
            .flat_map(|i| i.loaded.manifest.sensitive_fields.iter().cloned())
            .collect()
    }

    /// Every module version, loaded or refused, with the tenants running it, the trust
    /// store's verdict and its call stats.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let snapshot = self.current();
        let mut out: Vec<PluginStatus> = Vec::new();
        for versions in snapshot.modules.values() {
            for installed in versions.values() {
                let l = &installed.loaded;
                let tenants = snapshot
                    .tenants
                    .iter()
                    .filter(|(t, m)| {
                        m.contains_key(&l.manifest.id)
                            && snapshot
                                .active(t, &l.manifest.id)
                                .is_some_and(|i| Arc::ptr_eq(&i.loaded, l))
                    })
                    .map(|(t, _)| t.clone())
                    .collect();
                out.push(PluginStatus {
                    id: l.manifest.id.clone(),
                    version: Some(l.manifest.version.clone()),
                    abi_version: Some(l.abi.to_string()),
                    sha256: Some(l.manifest.sha256.clone()),
                    loaded: true,
                    load_error: None,
                    tenants,
                    trust: Some(installed.trust.clone()),
                    stats: self.stats_of(l).snapshot(),
                });
            }
        }
        out.extend(snapshot.failures.iter().map(|f| {
            let id = f.id.clone().unwrap_or_else(|| {
                f.source
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            PluginStatus {
                // a refused version runs for nobody
                tenants: Vec::new(),
                id,
                version: f.version.clone(),
                abi_version: None,
                sha256: None,
                loaded: false,
                load_error: Some(f.error.clone()),
                trust: f.trust.clone(),
                stats: StatsSnapshot::default(),
            }
        }));
        out
    }
}
