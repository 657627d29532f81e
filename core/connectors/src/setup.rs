//! A tenant's connectors as configured (`[tenants.<id>.connectors]`), read once: each WeCom
//! app's keys and each webhook's key and mappings. Checked when the configuration loads
//! ([`check_config`]), so a server never starts with a connector that cannot work.

use std::{collections::BTreeMap, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};

use crate::wecom_crypto::Crypt;
use shoal_base::config::{HookConfig, Invalid, TenantConfig, WecomCallbackConfig};
use shoal_crm::tenancy::Tenant;
use shoal_data::import::{Kind, document, mapping::Mapping};

/// A signed JSON webhook, ready.
#[derive(Debug)]
pub struct Hook {
    /// The Standard Webhooks key (a `whsec_` key decoded).
    pub secret: Vec<u8>,
    pub customers: Option<Mapping>,
    pub events: Option<Mapping>,
}

/// A tenant's connectors (kept in `Tenant::derived`).
#[derive(Debug, Default)]
pub struct Connectors {
    pub wecom: BTreeMap<String, Crypt>,
    pub hooks: BTreeMap<String, Hook>,
}

impl Connectors {
    /// The tenant's connectors (checked at load; one that does not read is left out, and
    /// its endpoint answers 404).
    pub fn of(tenant: &Tenant) -> Arc<Connectors> {
        tenant.derived.get_or_init(|| {
            let mut c = Connectors::default();
            for (name, app) in &tenant.connectors.wecom {
                match wecom_app(app) {
                    Ok(crypt) => {
                        c.wecom.insert(name.clone(), crypt);
                    }
                    Err((key, why)) => {
                        tracing::error!(tenant = %tenant.id, app = %name, key, %why, "WeCom connector left out")
                    }
                }
            }
            for (name, hook) in &tenant.connectors.hooks {
                match read_hook(hook) {
                    Ok(h) => {
                        c.hooks.insert(name.clone(), h);
                    }
                    Err((key, why)) => {
                        tracing::error!(tenant = %tenant.id, hook = %name, key, %why, "webhook connector left out")
                    }
                }
            }
            c
        })
    }

    /// Whether the tenant has any connector (the worker runs only for those).
    pub fn any(&self) -> bool {
        !self.wecom.is_empty() || !self.hooks.is_empty()
    }
}

fn env(var: &str, key: &str) -> Result<String, (String, String)> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err((
            key.to_owned(),
            format!("environment variable {var} is not set"),
        )),
    }
}

fn wecom_app(app: &WecomCallbackConfig) -> Result<Crypt, (String, String)> {
    if app.receiver_id.trim().is_empty() {
        return Err(("receiver_id".into(), "must not be empty".into()));
    }
    let token = env(&app.token_env, "token_env")?;
    let key = env(&app.aes_key_env, "aes_key_env")?;
    Crypt::new(&token, &key, &app.receiver_id).map_err(|e| ("aes_key_env".into(), e.to_string()))
}

/// A webhook key: `whsec_` and base64 (Standard Webhooks), or at least 16 characters.
fn hook_secret(var: &str) -> Result<Vec<u8>, (String, String)> {
    let raw = env(var, "secret_env")?;
    if let Some(b64) = raw.strip_prefix("whsec_") {
        return B64.decode(b64).map_err(|_| {
            (
                "secret_env".into(),
                format!("{var}: a `whsec_` key must continue in base64"),
            )
        });
    }
    if raw.chars().count() < 16 {
        return Err((
            "secret_env".into(),
            format!("{var} must hold a key of at least 16 characters (or `whsec_` and base64)"),
        ));
    }
    Ok(raw.into_bytes())
}

fn read_mapping(
    path: &std::path::Path,
    kind: Kind,
    key: &str,
) -> Result<Mapping, (String, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            key.to_owned(),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    document::parse(&text, kind).map_err(|e| {
        (
            if e.path.is_empty() {
                key.to_owned()
            } else {
                format!("{key}: {}", e.path)
            },
            e.message,
        )
    })
}

fn read_hook(hook: &HookConfig) -> Result<Hook, (String, String)> {
    let secret = hook_secret(&hook.secret_env)?;
    let customers = hook
        .customers
        .as_deref()
        .map(|p| read_mapping(p, Kind::Customers, "customers"))
        .transpose()?;
    let events = hook
        .events
        .as_deref()
        .map(|p| read_mapping(p, Kind::Events, "events"))
        .transpose()?;
    if customers.is_none() && events.is_none() {
        return Err((
            "events".into(),
            "a webhook needs a `customers` or an `events` mapping (or both)".into(),
        ));
    }
    Ok(Hook {
        secret,
        customers,
        events,
    })
}

/// Checks `[tenants.<id>.connectors]` (a `TenantCheck`): names usable in a URL, the keys in
/// the environment, the mappings readable.
pub fn check_config(tenant: &TenantConfig) -> Result<(), Invalid> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let invalid = |key: String, message: String| Invalid { key, message };
    for (name, app) in &tenant.connectors.wecom {
        let at = format!("connectors.wecom.{name}");
        if !name_ok(name) {
            return Err(invalid(at, "a name of letters, digits, `-` and `_`".into()));
        }
        wecom_app(app).map_err(|(k, m)| invalid(format!("{at}.{k}"), m))?;
    }
    for (name, hook) in &tenant.connectors.hooks {
        let at = format!("connectors.hooks.{name}");
        if !name_ok(name) {
            return Err(invalid(at, "a name of letters, digits, `-` and `_`".into()));
        }
        read_hook(hook).map_err(|(k, m)| invalid(format!("{at}.{k}"), m))?;
    }
    Ok(())
}
