//! Printing the configuration without its secrets.

use super::Config;

const REDACTED: &str = "<redacted>";

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

pub fn config_toml(config: &Config) -> String {
    let mut shown = config.clone();
    shown.storage.url = url(&config.storage.url);
    for tenant in shown.tenants.values_mut() {
        for key in tenant.api_keys.values_mut() {
            if key.sha256.is_some() {
                key.sha256 = Some(REDACTED.to_owned());
            }
        }
    }
    toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}
