//! The `shoal` host as a program: start-up order and background workers ([`server`]),
//! the demo tenants and their sample data ([`demo`]). The binary (`main.rs`) adds the CLI.
//!
//! Invariant: the only crate that sees every other host crate; nothing depends on it.

pub mod demo;
pub mod server;

use shoal_base::config::{self, Config, ConfigError, ConfigSource, TenantCheck};

/// Every engine's check of its own sections of a tenant's configuration.
pub const CONFIG_CHECKS: &[TenantCheck] = &[
    shoal_crm::access::check_config,
    shoal_sop::contact::check_config,
    shoal_sop::channels::check_config,
    shoal_campaigns::check_config,
    shoal_tickets::check_config,
    shoal_connectors::check_config,
];

/// Loads the configuration with every engine's checks (see [`CONFIG_CHECKS`]).
pub fn load_config(source: &ConfigSource) -> Result<Config, ConfigError> {
    config::load(source, CONFIG_CHECKS)
}
