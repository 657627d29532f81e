//! Hot reload: re-read the configuration and the plugins folder, swap modules atomically.
//! Triggered by the `reloadPlugins` mutation and by `SIGHUP`.

use std::sync::Arc;

use super::{PluginHost, ReloadReport};
use shoal_base::config::Config;

/// Produces the current configuration (re-reading files and environment).
pub type ConfigProvider = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

#[derive(Clone)]
pub struct Reloader {
    pub host: Arc<PluginHost>,
    provider: ConfigProvider,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    pub fn new(host: Arc<PluginHost>, provider: ConfigProvider) -> Reloader {
        Reloader { host, provider }
    }

    /// Re-reads everything and swaps; a configuration error leaves the running modules as
    /// they are. Compiling new modules happens on a blocking thread.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let config = (this.provider)()?;
            let report = this.host.reload(&config);
            tracing::info!(loaded = ?report.loaded, failed = report.failed.len(), "modules reloaded");
            Ok(report)
        })
        .await
        .map_err(|e| format!("reload task failed: {e}"))?
    }
}
