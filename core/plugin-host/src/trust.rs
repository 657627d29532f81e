//! Whether a module folder is signed by a key the trust store accepts for it: the verdict,
//! with the key and the reason, that `plugins.trust.mode` turns into a refusal
//! (production) or a warning (development).

use chrono::{DateTime, Utc};
use shoal_base::config::{TrustConfig, id_matches};
use shoal_signing::{PublicKey, SIGNATURE_FILE, SignatureFile};

use super::manifest::ManifestFile;

/// The verdict on one module version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by `key`, which may sign this module now.
    Trusted { key: String },
    /// Not trusted: who signed it (when a signature names a key) and why not.
    Untrusted { key: Option<String>, reason: String },
}

impl Trust {
    /// The key of the signature the verdict is about.
    pub fn signer(&self) -> Option<&str> {
        match self {
            Trust::Trusted { key } => Some(key),
            Trust::Untrusted { key, .. } => key.as_deref(),
        }
    }

    /// Whether a trusted key signed it.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Trust::Trusted { .. })
    }

    /// Why it is not trusted.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Trust::Trusted { .. } => None,
            Trust::Untrusted { reason, .. } => Some(reason),
        }
    }
}

fn untrusted(key: Option<&str>, reason: String) -> Trust {
    Trust::Untrusted {
        key: key.map(str::to_owned),
        reason,
    }
}

/// Judges a module folder as read once: the manifest's exact bytes against the signatures
/// beside it and the trust store, at `now` (the id a key may sign is the id those same
/// bytes declare). Of several signatures, a trusted one wins; otherwise the first one's
/// problem is reported.
pub fn judge(file: &ManifestFile, store: &TrustConfig, now: DateTime<Utc>) -> Trust {
    let manifest = &file.manifest;
    let module = format!("{}@{}", manifest.id, manifest.version);
    if store.revoked_modules.iter().any(|r| r.trim() == module) {
        return untrusted(
            None,
            format!("version {module} is revoked (plugins.trust.revoked_modules)"),
        );
    }
    let Some(text) = &file.signatures else {
        return untrusted(
            None,
            format!(
                "not signed: no {SIGNATURE_FILE} beside its manifest (sign it with `shoal plugin sign`)"
            ),
        );
    };
    let signatures = match SignatureFile::parse(text) {
        Ok(signatures) => signatures,
        Err(e) => return untrusted(None, e.to_string()),
    };
    let verdicts: Vec<Trust> = signatures
        .signatures
        .iter()
        .map(|s| judge_one(&file.bytes, &manifest.id, &s.key, &s.signature, store, now))
        .collect();
    verdicts
        .iter()
        .find(|v| v.is_trusted())
        .or(verdicts.first())
        .cloned()
        .unwrap_or_else(|| untrusted(None, format!("{SIGNATURE_FILE} holds no signature")))
}

fn judge_one(
    manifest: &[u8],
    id: &str,
    key_id: &str,
    signature: &str,
    store: &TrustConfig,
    now: DateTime<Utc>,
) -> Trust {
    let no = |reason: String| untrusted(Some(key_id), reason);
    let Some(key) = store.keys.iter().find(|k| k.id == key_id) else {
        return no(format!(
            "signed by key `{key_id}`, which the trust store does not know (plugins.trust.keys)"
        ));
    };
    let Ok(public) = PublicKey::parse(&key.public_key) else {
        return no(format!(
            "key `{key_id}` has no valid public key in the trust store"
        ));
    };
    if !public.verifies(manifest, signature) {
        return no(format!(
            "the signature by key `{key_id}` does not match manifest.toml: the manifest changed after it was signed, or another key signed it"
        ));
    }
    if store.revoked_keys.iter().any(|k| k == key_id) {
        return no(format!(
            "signed by key `{key_id}`, which is revoked (plugins.trust.revoked_keys)"
        ));
    }
    if !key.modules.iter().any(|p| id_matches(p, id)) {
        return no(format!(
            "key `{key_id}` may sign {} only, not `{id}`",
            key.modules
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(from) = key.valid_from
        && now < from
    {
        return no(format!(
            "key `{key_id}` is trusted only from {}",
            from.to_rfc3339()
        ));
    }
    if let Some(until) = key.valid_until
        && now >= until
    {
        return no(format!(
            "key `{key_id}` was trusted until {} (its rotation overlap ended): re-sign the module with the current key",
            until.to_rfc3339()
        ));
    }
    Trust::Trusted {
        key: key_id.to_owned(),
    }
}
