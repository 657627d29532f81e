//! Configuration: built-in defaults → an optional TOML file → `SHOAL_…` environment variables.
//!
//! Loading is a pure function of its inputs ([`ConfigSource`]): nothing here reads process
//! globals except through the source it is handed, so tests can build any environment.

mod load;
mod redact;
mod roles;
mod tenants;
mod trust;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

pub use load::{
    ConfigError, ConfigSource, Invalid, TenantCheck, ensure_parent_dir, load, sha256_hex,
};
pub use redact::url as redact_url;
pub use roles::{GrantSpec, RoleSpec};
pub use tenants::{
    ApiKeyConfig, CampaignsConfig, CapConfig, ChannelsConfig, ConflictRule, ConnectorsConfig,
    ContactConfig, DedupeConfig, DepartmentConfig, EmailChannelConfig, HookConfig, MatchKey,
    ModuleConfig, QualityConfig, QuietHoursConfig, RetentionConfig, RobotConfig, SmsConfig,
    TenantConfig, TicketsConfig, UserConfig, WecomCallbackConfig, WecomConfig,
};
pub use trust::{TrustConfig, TrustMode, TrustedKey, id_matches};

/// The built-in defaults, compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/default.toml");

/// The whole effective configuration of one Shoal host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub limits: Limits,
    pub plugins: PluginsConfig,
    pub sop: SopConfig,
    pub notify: NotifyConfig,
    pub keys: KeysConfig,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// The master keys that wrap each tenant's data keys (see `docs/data-protection.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The master key new and re-wrapped tenant keys are wrapped with (a name in `master`).
    pub current: String,
    /// Every master key that may still wrap a tenant key, by name; a key may be dropped once
    /// `shoal keys rotate` has re-wrapped everything under `current`.
    pub master: BTreeMap<String, MasterKeyConfig>,
}

/// Where one master key (32 random bytes, base64) is read from: exactly one of `env` and
/// `file`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyConfig {
    /// An environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding the key (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Create `file` with a fresh random key when it does not exist (development; production
    /// keeps the master key away from the database and its backups).
    #[serde(default)]
    pub generate: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// The address customers reach this host at (`https://crm.example.com`): e-mail open
    /// and click tracking links start with it. None: e-mails go untracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The request header a reverse proxy in front of this host puts the client's address in
    /// (`X-Real-IP`); set it only behind a proxy that overwrites the header. None: the
    /// address the connection comes from. Sign-in limits failures per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address_header: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://<file>` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// API limits; each one, when hit, is answered with `extensions.code = LIMIT_EXCEEDED`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_page_size: u32,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    pub max_batch_events: usize,
}

/// Where industry modules live and what one call may use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Instructions (fuel units) one call may execute.
    pub fuel: u64,
    /// Wall-clock backstop for one call, in milliseconds.
    pub deadline_ms: u64,
    pub memory_bytes: usize,
    pub stack_bytes: usize,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub max_log_bytes: usize,
    pub max_binary_bytes: usize,
    pub max_concurrent_calls: usize,
    /// Which vendor keys may sign which modules, and what to do with the others.
    #[serde(default)]
    pub trust: TrustConfig,
}

/// The SOP workers every host runs: the dispatcher (triggers → enrolments), the step runner
/// and the outbox delivery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SopConfig {
    /// Run the workers on this host (several hosts on one PostgreSQL share the work).
    pub workers: bool,
    /// How often the workers look for due work, in milliseconds.
    pub poll_ms: u64,
    /// Enrolments one transaction advances.
    pub batch_size: u32,
    /// Attempts of a failing step before its enrolment is parked.
    pub max_attempts: u32,
    /// First retry delay; doubled on every further attempt.
    pub retry_base_seconds: u64,
    /// How often date triggers and "no follow-up" triggers are scanned, in seconds.
    pub scan_seconds: u64,
    /// Delivery attempts of an outbox message before it is marked failed.
    pub delivery_attempts: u32,
    /// Timeout of one webhook POST, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// PEM file of root certificates trusted for HTTPS webhook calls besides the built-in
    /// Mozilla roots (an on-premise CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_roots: Option<PathBuf>,
}

/// The notification workers every host runs: the feed relay (internal events → the change
/// feed, webhook messages and staff notifications), webhook delivery and the staff channels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Run the workers on this host (several hosts on one PostgreSQL share the work).
    pub workers: bool,
    /// How often the workers look for work when nothing woke them, in milliseconds.
    pub poll_ms: u64,
    /// Seconds before each attempt of a webhook message, counted from the previous one (the
    /// first from the change); its length is the number of attempts.
    pub retry_schedule_seconds: Vec<u64>,
    /// Longest `Retry-After` of a receiver honoured, in seconds.
    pub max_retry_after_seconds: u64,
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after_hours: u64,
    /// Timeout of one webhook or robot POST, in milliseconds.
    pub timeout_ms: u64,
    /// Largest webhook payload; a bigger one carries ids only (`"truncated": true`).
    pub max_payload_bytes: usize,
    /// How long the change feed is kept for subscribers that reconnect with a cursor.
    pub feed_retention_hours: u64,
    /// How long delivered webhook messages and their attempts are kept, in days.
    pub delivery_log_days: u64,
    /// SMTP relay for e-mail notifications (`smtp://host:port`); none: e-mail is not a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The `From` of notification e-mails.
    pub email_from: String,
}

impl KeysConfig {
    /// What is wrong, as `(key, message)`: `current` names a configured key, and each key
    /// says where it is read from, once.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.master.contains_key(&self.current) {
            out.push((
                "keys.current".into(),
                format!("names no key of `keys.master` ({:?})", self.current),
            ));
        }
        for (name, key) in &self.master {
            if key.env.is_some() == key.file.is_some() {
                out.push((
                    format!("keys.master.{name}"),
                    "give exactly one of `env` (a variable holding the key) or `file`".into(),
                ));
            }
            if key.generate && key.file.is_none() {
                out.push((
                    format!("keys.master.{name}.generate"),
                    "only a key read from a `file` can be generated".into(),
                ));
            }
        }
        out
    }
}

impl NotifyConfig {
    /// What is out of range, as `(key, message)`: every duration fits the clock arithmetic
    /// it feeds (none may overflow a worker's sums), and the schedule has an attempt.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut range = |key: &str, value: u64, min: u64, max: u64| {
            if !(min..=max).contains(&value) {
                out.push((format!("notify.{key}"), format!("between {min} and {max}")));
            }
        };
        const MONTH_SECONDS: u64 = 30 * 24 * 3600;
        range("poll_ms", self.poll_ms, 1, 60_000);
        range("timeout_ms", self.timeout_ms, 1, 600_000);
        range(
            "max_retry_after_seconds",
            self.max_retry_after_seconds,
            0,
            MONTH_SECONDS,
        );
        range("disable_after_hours", self.disable_after_hours, 0, 24 * 366);
        range(
            "max_payload_bytes",
            self.max_payload_bytes as u64,
            1024,
            16 << 20,
        );
        range(
            "feed_retention_hours",
            self.feed_retention_hours,
            1,
            24 * 366,
        );
        range("delivery_log_days", self.delivery_log_days, 1, 3660);
        range(
            "retry_schedule_seconds",
            self.retry_schedule_seconds.len() as u64,
            1,
            100,
        );
        for (i, s) in self.retry_schedule_seconds.iter().enumerate() {
            range(
                &format!("retry_schedule_seconds[{i}]"),
                *s,
                0,
                MONTH_SECONDS,
            );
        }
        out
    }
}

impl Config {
    /// The storage URL with any password replaced by `***`, fit for logs.
    pub fn storage_url_redacted(&self) -> String {
        redact::url(&self.storage.url)
    }

    /// The effective configuration as TOML, with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        redact::config_toml(self)
    }

    /// Where SQLite files live when the storage URL is relative: the file's parent folder.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.storage
            .url
            .strip_prefix("sqlite://")
            .map(|rest| PathBuf::from(rest.split('?').next().unwrap_or(rest)))
    }
}

#[cfg(test)]
mod tests;
