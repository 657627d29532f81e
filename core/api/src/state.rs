//! What every HTTP handler shares.

use std::sync::Arc;

use super::{ShoalSchema, metrics::Metrics};
use shoal_base::{config::Limits, storage::Db};
use shoal_crm::tenancy::Directory;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub schema: ShoalSchema,
    pub directory: Arc<Directory>,
    /// For the sensitive fields of each tenant's modules.
    pub host: Arc<shoal_plugin_host::PluginHost>,
    pub db: Db,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The background workers' panics, failures and restarts, rendered with the metrics.
    pub supervision: Arc<shoal_base::supervise::Supervision>,
    /// The header a reverse proxy puts the client's address in (`server.client_address_header`,
    /// lower-cased); `None`: the connection's own address.
    pub client_address_header: Option<String>,
}
