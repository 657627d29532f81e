//! Tenant configuration: users, API keys and the industry modules each tenant enables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One tenant: a business running Shoal. Its id is the key of its `[tenants.<id>]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    /// IANA time zone (e.g. `Asia/Shanghai`) for schedules and quiet hours.
    pub time_zone: chrono_tz::Tz,
    /// ISO 3166 region used to read phone numbers written without a country code.
    #[serde(default = "default_region")]
    pub default_region: String,
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKeyConfig>,
    /// Industry modules (plugins) by id, with their per-tenant parameters.
    #[serde(default)]
    pub modules: BTreeMap<String, ModuleConfig>,
    /// How often every dynamic tag is recomputed for every customer, in seconds (0: never;
    /// events and profile changes still re-evaluate their customer at once).
    #[serde(default = "default_recompute")]
    pub tag_recompute_seconds: u64,
    /// Respectful contact: quiet hours, frequency caps, the webhook channel.
    #[serde(default)]
    pub contact: ContactConfig,
    /// The department tree, seeded into the database at start (then edited through
    /// GraphQL). Departments users name without declaring them become top-level ones.
    #[serde(default)]
    pub departments: BTreeMap<String, DepartmentConfig>,
    /// Roles beyond (or redefining) the built-in `admin`, `manager`, `agent`, `readonly`,
    /// seeded into the database at start when absent (then edited through GraphQL).
    #[serde(default)]
    pub roles: BTreeMap<String, super::RoleSpec>,
    /// Duplicate detection and merging (imports, suggestions, merges).
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// Data-quality thresholds (`dataQuality`, `shoal report quality`).
    #[serde(default)]
    pub quality: QualityConfig,
    /// The channel adapters messages go out through, and their throttles.
    #[serde(default)]
    pub channels: ChannelsConfig,
    /// Campaigns (群发): approval and the tenant's sensitive words.
    #[serde(default)]
    pub campaigns: CampaignsConfig,
    /// Tickets (工单): the key other systems sign the tickets they open with.
    #[serde(default)]
    pub tickets: TicketsConfig,
    /// Inbound connectors: WeCom callbacks and signed JSON webhooks (docs/connectors.md).
    #[serde(default)]
    pub connectors: ConnectorsConfig,
    /// How long personal data outside the profiles is kept (docs/data-protection.md).
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Days after which the retention job prunes or redacts what holds personal data beyond
/// the profiles; 0 keeps it for ever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Bodies and addresses of sent or failed outbox messages (the rows stay, for caps and
    /// statistics).
    pub outbox_bodies_days: u32,
    /// Payloads of dispatched internal events.
    pub internal_events_days: u32,
    /// Payloads of delivered webhook messages.
    pub delivered_webhooks_days: u32,
    /// Rejected import rows' values (the error files).
    pub import_errors_days: u32,
    /// Audit details (replaced by tombstones that keep who did what to which entity, when).
    pub audit_details_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            outbox_bodies_days: 180,
            internal_events_days: 90,
            delivered_webhooks_days: 90,
            import_errors_days: 90,
            audit_details_days: 0,
        }
    }
}

/// The inbound connectors a tenant enables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// WeCom apps by a name of the tenant's choosing; each receives its callbacks at
    /// `/connectors/<tenant>/wecom/<name>`.
    #[serde(default)]
    pub wecom: BTreeMap<String, WecomCallbackConfig>,
    /// Signed JSON webhooks by name, at `/connectors/<tenant>/hooks/<name>`.
    #[serde(default)]
    pub hooks: BTreeMap<String, HookConfig>,
}

/// A WeCom app's callback settings (the admin console's 「接收事件服务器」).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WecomCallbackConfig {
    /// The receiver id WeCom writes into every message: the corp id (`ww…`) for a
    /// self-built app or customer contact, the suite id for a third-party app.
    pub receiver_id: String,
    /// Environment variable holding the callback Token.
    pub token_env: String,
    /// Environment variable holding the EncodingAESKey (43 characters).
    pub aes_key_env: String,
}

/// A signed JSON webhook: another system (a mini-program, a shop ISV relay) posts a JSON
/// document, signed as Standard Webhooks says; mappings (the import mapping language, with
/// JSON pointers for columns) turn it into a customer and an event.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Environment variable holding the signing key (at least 16 characters, or `whsec_`
    /// and its base64).
    pub secret_env: String,
    /// A customers mapping file, applied first (find or create the customer).
    #[serde(default)]
    pub customers: Option<std::path::PathBuf>,
    /// An events mapping file (the event on the customer's timeline).
    #[serde(default)]
    pub events: Option<std::path::PathBuf>,
}

/// Tickets of a tenant.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Environment variable holding the key (at least 16 characters) another system signs
    /// its requests to `POST /tickets/<tenant>/inbound` with (Standard Webhooks); without
    /// it the endpoint is closed.
    #[serde(default)]
    pub inbound_secret_env: Option<String>,
}

/// The channel adapters of a tenant (docs/campaigns.md#channels). `log` and `webhook`
/// (the gateway at `contact.webhook_url`) need no section here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    /// A generic HTTP SMS gateway (template id + parameters).
    #[serde(default)]
    pub sms: Option<SmsConfig>,
    /// WeCom external-contact mass messages (企业微信 客户群发).
    #[serde(default)]
    pub wecom: Option<WecomConfig>,
    /// E-mail through the host's SMTP relay (`notify.smtp_url`), from the tenant's address.
    #[serde(default)]
    pub email: Option<EmailChannelConfig>,
    /// A WeCom or DingTalk group robot: staff-facing messages (an SOP step telling the
    /// store's group that a customer needs a call), never a campaign's.
    #[serde(default)]
    pub robot: Option<RobotConfig>,
    /// Campaign messages released to each channel per second, per tenant across hosts (`*` for
    /// the others; 20 when unset). SOP messages are not throttled by it.
    #[serde(default)]
    pub per_second: BTreeMap<String, u32>,
}

/// The tenant's e-mail channel: messages leave through the host's relay (`notify.smtp_url`);
/// opens and clicks are tracked when the host has a `server.public_url`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannelConfig {
    /// The `From` of the tenant's messages, e.g. `"星河零售 <news@xinghe.example>"`.
    pub from: String,
    /// Where replies go, when not to `from`.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// An SMS gateway reached over HTTP: each message is one signed JSON POST.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Where messages are POSTed (`https://…`), the operator's gateway.
    pub url: String,
    /// Environment variable holding the key that signs each request (Standard Webhooks).
    pub secret_env: String,
    /// The template registered with the carrier; the message's text fills its `content`
    /// parameter.
    pub template_id: String,
    /// The signature (签名) the carrier shows, e.g. `【Shoal】`.
    #[serde(default)]
    pub sign_name: Option<String>,
}

/// A group robot's webhook: `kind` is `wecom` (企业微信群机器人,
/// `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`) or `dingtalk` (钉钉群机器人,
/// `https://oapi.dingtalk.com/robot/send?access_token=…`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// `wecom` or `dingtalk`.
    pub kind: String,
    /// The robot's webhook URL, key or access token included.
    pub url: String,
    /// Environment variable holding a DingTalk robot's signing secret (`SEC…`), when the
    /// robot's security setting is 加签; each call then carries `timestamp` and `sign`.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// WeCom's server API for external contacts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// The API's base URL (`https://qyapi.weixin.qq.com` unless a proxy or a test server).
    #[serde(default = "wecom_base_url")]
    pub base_url: String,
    /// The corporation id (`ww…`).
    pub corp_id: String,
    /// Environment variable holding the secret of the customer-contact application.
    pub secret_env: String,
    /// The staff member (WeCom userid) who sends when a customer's owner has none.
    #[serde(default)]
    pub default_sender: Option<String>,
    /// Staff user id → WeCom userid, for senders whose ids differ.
    #[serde(default)]
    pub senders: BTreeMap<String, String>,
}

fn wecom_base_url() -> String {
    "https://qyapi.weixin.qq.com".to_owned()
}

/// Campaign rules of a tenant.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignsConfig {
    /// Whether a campaign needs an approver before it starts.
    #[serde(default)]
    pub approval: bool,
    /// Roles whose campaigns start without approval even when `approval` is on.
    #[serde(default)]
    pub trusted_roles: Vec<String>,
    /// Roles that may approve or reject (`admin` when empty).
    #[serde(default)]
    pub approver_roles: Vec<String>,
    /// Words no campaign may contain, besides the built-in list.
    #[serde(default)]
    pub sensitive_words: Vec<String>,
}

/// A normalised key two profiles can share exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// The same account on a channel (WeCom external_userid, shop buyer id, …).
    Identity,
    /// The same phone number (E.164).
    Phone,
    /// The same email address (lowercase).
    Email,
}

impl MatchKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKey::Identity => "identity",
            MatchKey::Phone => "phone",
            MatchKey::Email => "email",
        }
    }
}

/// How a field two merged profiles disagree on is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// The profile changed most recently wins (an imported row counts as changed now).
    MostRecent,
    /// The profile whose source channel comes first in `source_priority` wins; on a tie,
    /// the most recent.
    SourcePriority,
}

impl ConflictRule {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictRule::MostRecent => "most_recent",
            ConflictRule::SourcePriority => "source_priority",
        }
    }
}

/// The tenant's duplicate policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Exact matches that merge automatically when an import row meets a stored profile;
    /// an exact match on a key left out is queued as a suggestion instead.
    #[serde(default = "default_auto_merge")]
    pub auto_merge: Vec<MatchKey>,
    #[serde(default = "default_conflict_rule")]
    pub conflict_rule: ConflictRule,
    /// Channels from most to least trusted, for `source_priority` (unlisted ones come last).
    #[serde(default = "default_source_priority")]
    pub source_priority: Vec<String>,
    /// Fuzzy candidates scoring below this (0–100) are not suggested.
    #[serde(default = "default_min_score")]
    pub min_score: u8,
}

fn default_auto_merge() -> Vec<MatchKey> {
    vec![MatchKey::Identity, MatchKey::Phone, MatchKey::Email]
}

fn default_conflict_rule() -> ConflictRule {
    ConflictRule::MostRecent
}

fn default_source_priority() -> Vec<String> {
    [
        "wecom", "wechat", "shop", "store", "app", "web", "phone", "import", "other",
    ]
    .map(String::from)
    .to_vec()
}

fn default_min_score() -> u8 {
    50
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            auto_merge: default_auto_merge(),
            conflict_rule: default_conflict_rule(),
            source_priority: default_source_priority(),
            min_score: default_min_score(),
        }
    }
}

/// When the data-quality report raises flags.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Share of customers with neither phone nor email above which `MISSING_CONTACT` is
    /// flagged (0–1).
    #[serde(default = "default_missing_contact")]
    pub max_missing_contact_rate: f64,
}

fn default_missing_contact() -> f64 {
    0.15
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_missing_contact_rate: default_missing_contact(),
        }
    }
}

/// One department; its id is the key of its `[tenants.<t>.departments.<id>]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentConfig {
    pub name: String,
    /// The department above it (none: a top-level department such as HQ).
    #[serde(default)]
    pub parent: Option<String>,
}

/// How automated messages (SOP steps) may reach this tenant's customers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    /// No automated message is sent in this window (customer's time zone if the customer has
    /// a `timeZone` attribute, else the tenant's); due messages wait for its end.
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursConfig>,
    /// At most `max` messages per customer in any `window_hours` on a channel (`*`: all).
    #[serde(default)]
    pub caps: Vec<CapConfig>,
    /// No automated message for this many hours after a human follow-up (0: no pause).
    #[serde(default)]
    pub human_cooldown_hours: u32,
    /// Where `webhook`-channel messages are POSTed (`http://…`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Environment variable holding the HMAC-SHA256 key that signs webhook calls.
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    /// Hours without a follow-up after which a customer counts as neglected.
    #[serde(default = "default_no_follow_up_hours")]
    pub no_follow_up_hours: u32,
    /// Networks this tenant's `callWebhook` steps may reach although they are not public
    /// (CIDR blocks or addresses, e.g. `["10.8.0.0/16"]` for an on-premise gateway); every
    /// other loopback, private, link-local or metadata address is refused.
    #[serde(default)]
    pub outbound_allow: Vec<String>,
    /// Marketing messages (SOP steps and campaigns of purpose `marketing`) go only to
    /// customers whose consent ledger holds a standing marketing grant on the channel.
    #[serde(default)]
    pub marketing_requires_consent: bool,
    /// Attribute keys sealed at rest like phones and e-mails (`["id_number",
    /// "bank_account"]`): opened for whoever may see them, never readable in the database,
    /// and therefore refused by rules, filters and reports, which read attributes in SQL.
    #[serde(default)]
    pub sealed_attributes: Vec<String>,
}

fn default_no_follow_up_hours() -> u32 {
    72
}

impl Default for ContactConfig {
    fn default() -> Self {
        ContactConfig {
            quiet_hours: None,
            caps: Vec::new(),
            human_cooldown_hours: 0,
            webhook_url: None,
            webhook_secret_env: None,
            no_follow_up_hours: default_no_follow_up_hours(),
            outbound_allow: Vec::new(),
            marketing_requires_consent: false,
            sealed_attributes: Vec::new(),
        }
    }
}

/// A daily window, e.g. 21:00–09:00 (it may wrap midnight), on some weekdays.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`, local time; before `start` when the window wraps midnight.
    pub end: String,
    /// Days on which the window starts (`mon` … `sun`); every day when empty.
    #[serde(default)]
    pub days: Vec<String>,
}

/// A frequency cap.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// A channel, or `*` for all.
    #[serde(default = "any_channel")]
    pub channel: String,
    /// `marketing` (default) or `any` (service messages count too).
    #[serde(default = "marketing")]
    pub purpose: String,
    pub max: u32,
    pub window_hours: u32,
}

fn any_channel() -> String {
    "*".to_owned()
}

fn marketing() -> String {
    "marketing".to_owned()
}

fn default_recompute() -> u64 {
    3600
}

impl TenantConfig {
    /// A tenant with no users, keys or modules yet, reading phone numbers as Chinese.
    pub fn new(name: impl Into<String>, time_zone: chrono_tz::Tz) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            time_zone,
            default_region: default_region(),
            users: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            modules: BTreeMap::new(),
            tag_recompute_seconds: default_recompute(),
            contact: ContactConfig::default(),
            departments: BTreeMap::new(),
            roles: BTreeMap::new(),
            dedupe: DedupeConfig::default(),
            quality: QualityConfig::default(),
            channels: ChannelsConfig::default(),
            campaigns: CampaignsConfig::default(),
            tickets: TicketsConfig::default(),
            connectors: ConnectorsConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

fn default_region() -> String {
    "CN".to_owned()
}

/// A person, or an integration (an ERP, a shop connector), acting within a tenant.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// The user's department (data scopes `department` and `subtree` start here).
    #[serde(default)]
    pub department: Option<String>,
    /// One role (`admin`, `manager`, `agent`, `readonly` or a role of `roles`).
    #[serde(default)]
    pub role: Option<String>,
    /// More roles; the user gets the union of what they allow.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl UserConfig {
    /// A user with one role.
    pub fn new(name: impl Into<String>, role: &str) -> UserConfig {
        UserConfig {
            name: name.into(),
            email: None,
            department: None,
            role: Some(role.to_owned()),
            roles: Vec::new(),
        }
    }

    /// `role` and `roles` together, without repeats.
    pub fn role_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for id in self.role.iter().chain(&self.roles) {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// An API key, never stored in clear: either its SHA-256 (hex) or the name of an environment
/// variable holding it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The user this key acts as.
    pub user: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
}

/// One industry module switched on (or off) for a tenant.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Free-form parameters handed to the module (e.g. a regional price-tier table).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Run this version of the module (when several are installed) rather than the
    /// newest: a pin, or a rollback for this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}
