//! `[plugins.trust]`: which vendor keys may sign which industry modules (see
//! docs/plugins.md, "Signatures and trust").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a host does with a module that is not signed by a trusted key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustMode {
    /// Load it and warn (the module shows as untrusted, with the reason).
    #[default]
    Development,
    /// Refuse it, naming the module, the key and the reason.
    Production,
}

/// The trust store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    #[serde(default)]
    pub mode: TrustMode,
    /// Vendor keys and the modules each may sign.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
    /// Key ids whose signatures are no longer accepted, whatever `keys` says.
    #[serde(default)]
    pub revoked_keys: Vec<String>,
    /// Module versions refused whoever signed them: `id@version` (`retail@1.2.0`).
    #[serde(default)]
    pub revoked_modules: Vec<String>,
}

/// A vendor key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// The id signatures name (`key = "acme-2026"` in `manifest.sig`).
    pub id: String,
    /// `ed25519:` and the base64 of the 32-byte key (`shoal plugin keygen` prints it).
    pub public_key: String,
    /// Module ids this key may sign; `*` matches any run of characters (`acme-*`).
    pub modules: Vec<String>,
    /// Signatures count from this time on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Signatures count until this time: a rotated-out key keeps loading the modules it
    /// signed until then (the overlap window), then stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// Whether `id` matches `pattern` (`*` stands for any run of characters). Greedy with
/// one backtrack point, so many stars cost `O(len(pattern) × len(id))` at worst.
pub fn id_matches(pattern: &str, id: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), id.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // the last star seen, and where in the id it started matching
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // let the star take one more character
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl TrustConfig {
    /// Problems with the store, each with its key path.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            let at = |field: &str| format!("plugins.trust.keys[{i}].{field}");
            if key.id.trim().is_empty() {
                out.push((at("id"), "must not be empty".into()));
            } else if !seen.insert(key.id.as_str()) {
                out.push((at("id"), format!("`{}` is listed twice", key.id)));
            }
            if let Err(e) = shoal_signing::PublicKey::parse(&key.public_key) {
                out.push((at("public_key"), e.to_string()));
            }
            if key.modules.is_empty() {
                out.push((
                    at("modules"),
                    "name the modules this key may sign (`[\"*\"]` for any)".into(),
                ));
            }
            if let (Some(from), Some(until)) = (key.valid_from, key.valid_until)
                && until <= from
            {
                out.push((at("valid_until"), "must be after valid_from".into()));
            }
        }
        for (i, entry) in self.revoked_modules.iter().enumerate() {
            if entry
                .split_once('@')
                .is_none_or(|(id, v)| id.is_empty() || v.is_empty())
            {
                out.push((
                    format!("plugins.trust.revoked_modules[{i}]"),
                    format!("`{entry}` is not `id@version`"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_ids_with_stars_anywhere() {
        assert!(id_matches("retail", "retail"));
        assert!(!id_matches("retail", "retail2"));
        assert!(id_matches("acme-*", "acme-retail"));
        assert!(!id_matches("acme-*", "retail"));
        assert!(id_matches("*", "anything"));
        assert!(id_matches("a*-*x", "ab-cx"));
        assert!(!id_matches("a*-*x", "ab-cy"));
        assert!(id_matches("**", ""));
        assert!(!id_matches("a", ""));
        assert!(id_matches("零售-*", "零售-华东"));
        // many stars against a long id that fails at the end: no exponential search
        let stars = "*a".repeat(30) + "b";
        assert!(!id_matches(&stars, &"a".repeat(200)));
    }
}
