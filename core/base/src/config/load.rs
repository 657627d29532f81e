//! The figment chain and the checks that serde alone cannot make.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use sha2::{Digest, Sha256};

use super::{Config, DEFAULT_TOML};

/// Where the configuration comes from besides the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// A TOML file layered over the defaults (`--config` / `SHOAL_CONFIG`).
    pub file: Option<PathBuf>,
}

/// Why a configuration was refused. Each variant names the key and where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    /// A syntax error, unknown key or wrong type, as figment reports it (key and source named).
    #[error("{0}")]
    Parse(String),
    #[error("invalid config key `{key}` ({source_name}): {message}")]
    Invalid {
        key: String,
        source_name: String,
        message: String,
    },
}

/// Reads, merges and validates the configuration. Environment variables are read from the
/// process: `SHOAL_<SECTION>__<KEY>` (only names containing `__` are config keys, so
/// `SHOAL_CONFIG` and `SHOAL_DEMO_API_KEY` are not mistaken for them). `checks` are the
/// engines' checks of their own tenant sections (see [`TenantCheck`]).
pub fn load(source: &ConfigSource, checks: &[TenantCheck]) -> Result<Config, ConfigError> {
    let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
    if let Some(file) = &source.file {
        if !file.is_file() {
            return Err(ConfigError::MissingFile(file.clone()));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(
        Env::prefixed("SHOAL_")
            .filter(|key| key.as_str().contains("__"))
            .split("__"),
    );
    let mut config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Parse(render_figment_errors(e)))?;
    Validator {
        figment: &figment,
        checks,
    }
    .check(&mut config)?;
    Ok(config)
}

fn render_figment_errors(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

struct Validator<'a> {
    figment: &'a Figment,
    checks: &'a [TenantCheck],
}

/// A problem an engine found in its section of a tenant's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key below `tenants.<id>.`, e.g. `contact.quiet_hours.start`.
    pub key: String,
    pub message: String,
}

/// An engine's check of its own sections of a tenant's configuration (roles and departments
/// are checked by `shoal-crm`'s access, the contact policy by `shoal-sop`). `load` runs every
/// check it is handed after its own, and reports the first problem with its full key and
/// the file or variable that set it. This crate calls no engine: the binary hands the checks
/// in.
pub type TenantCheck = fn(&super::TenantConfig) -> Result<(), Invalid>;

impl Validator<'_> {
    fn invalid(&self, key: String, message: impl Into<String>) -> ConfigError {
        let source_name = match self.figment.find_metadata(&key) {
            Some(meta) => match &meta.source {
                Some(src) => format!("{} {src}", meta.name),
                None => meta.name.to_string(),
            },
            None => "built-in defaults".to_owned(),
        };
        ConfigError::Invalid {
            key,
            source_name,
            message: message.into(),
        }
    }

    fn check(&self, config: &mut Config) -> Result<(), ConfigError> {
        let url = &config.storage.url;
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(self.invalid(
                "storage.url".into(),
                "must start with sqlite:// or postgres://",
            ));
        }
        if config.storage.max_connections == 0 {
            return Err(self.invalid("storage.max_connections".into(), "must be at least 1"));
        }
        if let Some(h) = &config.server.client_address_header
            && (h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(self.invalid(
                "server.client_address_header".into(),
                "must be a header name (letters, digits, `-`), like X-Real-IP",
            ));
        }
        if let Err(e) = config.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(self.invalid("log.level".into(), format!("not a log filter: {e}")));
        }
        let limits = &config.limits;
        for (key, value) in [
            ("limits.max_page_size", limits.max_page_size as u64),
            ("limits.max_query_depth", limits.max_query_depth as u64),
            (
                "limits.max_query_complexity",
                limits.max_query_complexity as u64,
            ),
            ("limits.max_body_bytes", limits.max_body_bytes as u64),
            ("limits.request_timeout_ms", limits.request_timeout_ms),
            ("limits.max_batch_events", limits.max_batch_events as u64),
        ] {
            if value == 0 {
                return Err(self.invalid(key.into(), "must be greater than 0"));
            }
        }
        let plugins = &config.plugins;
        for (key, value) in [
            ("plugins.fuel", plugins.fuel),
            ("plugins.deadline_ms", plugins.deadline_ms),
            ("plugins.memory_bytes", plugins.memory_bytes as u64),
            ("plugins.stack_bytes", plugins.stack_bytes as u64),
            ("plugins.max_input_bytes", plugins.max_input_bytes as u64),
            ("plugins.max_output_bytes", plugins.max_output_bytes as u64),
            ("plugins.max_binary_bytes", plugins.max_binary_bytes as u64),
            (
                "plugins.max_concurrent_calls",
                plugins.max_concurrent_calls as u64,
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(key.into(), "must be greater than 0"));
            }
        }
        if plugins.memory_bytes > 4 << 30 {
            return Err(self.invalid("plugins.memory_bytes".into(), "must be at most 4 GiB"));
        }
        if let Some((key, message)) = plugins.trust.problems().into_iter().next() {
            return Err(self.invalid(key, message));
        }
        if let Some((key, message)) = config.notify.problems().into_iter().next() {
            return Err(self.invalid(key, message));
        }
        if let Some((key, message)) = config.keys.problems().into_iter().next() {
            return Err(self.invalid(key, message));
        }
        for (tenant_id, tenant) in &mut config.tenants {
            self.check_tenant(tenant_id, tenant)?;
        }
        // one key, one caller: a key configured twice would authenticate as whichever
        // entry was read last, possibly in another tenant
        let mut seen: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        for (tenant_id, tenant) in &config.tenants {
            for (name, key) in &tenant.api_keys {
                let Some(hash) = key.sha256.as_deref() else {
                    continue;
                };
                let here = format!("tenants.{tenant_id}.api_keys.{name}");
                if let Some(first) = seen.insert(hash, here.clone()) {
                    return Err(self.invalid(
                        here,
                        format!("the same API key as {first}: every key belongs to one user"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_tenant(&self, id: &str, tenant: &mut super::TenantConfig) -> Result<(), ConfigError> {
        let at = |rest: &str| format!("tenants.{id}.{rest}");
        if !is_slug(id) {
            return Err(self.invalid(
                format!("tenants.{id}"),
                "a tenant id is 1–64 characters of a-z, 0-9, `-` and `_`",
            ));
        }
        if tenant.name.trim().is_empty() {
            return Err(self.invalid(at("name"), "must not be empty"));
        }
        if tenant
            .default_region
            .parse::<phonenumber::country::Id>()
            .is_err()
        {
            return Err(self.invalid(
                at("default_region"),
                format!(
                    "`{}` is not an ISO 3166 region code such as CN or US",
                    tenant.default_region
                ),
            ));
        }
        for (i, channel) in tenant.dedupe.source_priority.iter().enumerate() {
            if crate::kinds::Channel::parse(channel).is_none() {
                return Err(self.invalid(
                    at(&format!("dedupe.source_priority[{i}]")),
                    format!("`{channel}` is not a channel (wechat, wecom, shop, store, web, app, phone, import, other)"),
                ));
            }
        }
        if tenant.dedupe.min_score > 100 {
            return Err(self.invalid(at("dedupe.min_score"), "a score from 0 to 100"));
        }
        if !(0.0..=1.0).contains(&tenant.quality.max_missing_contact_rate) {
            return Err(self.invalid(
                at("quality.max_missing_contact_rate"),
                "a share from 0 to 1, e.g. 0.15",
            ));
        }
        for (user_id, user) in &tenant.users {
            if !is_slug(user_id) {
                return Err(self.invalid(
                    at(&format!("users.{user_id}")),
                    "a user id is 1–64 characters of a-z, 0-9, `-` and `_`",
                ));
            }
            if user.name.trim().is_empty() {
                return Err(self.invalid(at(&format!("users.{user_id}.name")), "must not be empty"));
            }
            if user.role_ids().is_empty() {
                return Err(self.invalid(
                    at(&format!("users.{user_id}.role")),
                    "give the user a `role` (or `roles`)",
                ));
            }
        }
        // `attributes.id_number` (as modules declare sensitive fields) or `id_number`
        for (i, key) in tenant.contact.sealed_attributes.iter_mut().enumerate() {
            if let Some(bare) = key.strip_prefix("attributes.") {
                *key = bare.to_owned();
            }
            if let Err(message) = crate::kinds::attribute_key(key) {
                return Err(self.invalid(at(&format!("contact.sealed_attributes[{i}]")), message));
            }
        }
        tenant.contact.sealed_attributes.sort();
        tenant.contact.sealed_attributes.dedup();
        for check in self.checks {
            if let Err(Invalid { key, message }) = check(tenant) {
                return Err(self.invalid(at(&key), message));
            }
        }
        for (key_name, key) in &mut tenant.api_keys {
            let key_at = |rest: &str| at(&format!("api_keys.{key_name}.{rest}"));
            if !tenant.users.contains_key(&key.user) {
                return Err(self.invalid(
                    key_at("user"),
                    format!("no user `{}` in tenants.{id}.users", key.user),
                ));
            }
            match (&key.sha256, &key.env) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(self.invalid(
                        at(&format!("api_keys.{key_name}")),
                        "give exactly one of `sha256` (hex digest of the key) or `env` (variable holding the key)",
                    ));
                }
                (Some(hash), None) => {
                    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(self.invalid(
                            key_at("sha256"),
                            "must be 64 hexadecimal characters (the SHA-256 of the key)",
                        ));
                    }
                    key.sha256 = Some(hash.to_ascii_lowercase());
                }
                (None, Some(var)) => {
                    let value = std::env::var(var).unwrap_or_default();
                    if value.len() < 16 {
                        return Err(self.invalid(
                            key_at("env"),
                            format!(
                                "environment variable {var} must hold an API key of at least 16 characters"
                            ),
                        ));
                    }
                    key.sha256 = Some(sha256_hex(&value));
                }
            }
        }
        Ok(())
    }
}

/// The lowercase hex SHA-256 of an API key, as stored in config.
pub fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_slug(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Used by `Config::sqlite_path` callers to make sure the data folder exists.
pub fn ensure_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}
