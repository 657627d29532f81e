//! Campaigns (群发): one message to many customers (docs/campaigns.md).
//!
//! - [`model`]: audiences and exclusions, variants, schedules, the statuses;
//! - [`store`]: drafts, checked on every write; [`words`]: the sensitive-word check;
//! - [`audience`]: the audience in SQL — the preview and the frozen list;
//! - [`review`]: submit, approve / reject, cancel;
//! - [`release`]: due recipients → the contact policy → the SOP outbox (one history, one
//!   set of channel adapters for SOPs and campaigns);
//! - [`track`]: outbox verdicts, channel reports and conversions onto recipients;
//! - [`figures`]: the numbers per variant, and each recipient's result;
//! - [`throttle`]: each channel's release rate, shared by every host;
//! - [`rounds`]: the supervised loop per tenant, one round a second.

pub mod audience;
pub mod figures;
pub mod model;
pub mod release;
pub mod review;
pub mod rounds;
pub mod store;
pub mod throttle;
pub mod track;
pub mod words;

pub use model::{Campaign, Recipient, Status};

/// Checks the `campaigns` section of a tenant's configuration (a `TenantCheck`): roles
/// named must exist, words must not be empty.
pub fn check_config(
    tenant: &shoal_base::config::TenantConfig,
) -> Result<(), shoal_base::config::Invalid> {
    let c = &tenant.campaigns;
    let known = |role: &str| {
        ["admin", "manager", "agent", "readonly"].contains(&role) || tenant.roles.contains_key(role)
    };
    for (key, roles) in [
        ("trusted_roles", &c.trusted_roles),
        ("approver_roles", &c.approver_roles),
    ] {
        if let Some(r) = roles.iter().find(|r| !known(r)) {
            return Err(shoal_base::config::Invalid {
                key: format!("campaigns.{key}"),
                message: format!("`{r}` is not a role of the tenant"),
            });
        }
    }
    if c.sensitive_words.iter().any(|w| w.trim().is_empty()) {
        return Err(shoal_base::config::Invalid {
            key: "campaigns.sensitive_words".into(),
            message: "a word must not be empty".into(),
        });
    }
    Ok(())
}
