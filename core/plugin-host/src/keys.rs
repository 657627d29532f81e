//! `shoal plugin keygen`, `sign` and `verify`: a vendor's signing tools and an operator's
//! check of a module folder against the configured trust store.

use std::path::Path;

use shoal_base::config::{TrustConfig, TrustMode};
use shoal_signing::{SIGNATURE_FILE, SignatureFile, SigningKey};

use super::{manifest::Manifest, trust};

/// Writes a new private key to `out` (refusing to overwrite one) and returns what to
/// print: the public key and the trust-store entry for it.
pub fn keygen(id: &str, out: &Path) -> Result<String, String> {
    if !valid_key_id(id) {
        return Err(format!(
            "`{id}` is not a key id: use 1–64 letters, digits, `-`, `_` and `.`"
        ));
    }
    if out.exists() {
        return Err(format!(
            "{} exists: choose another file (a key is never overwritten)",
            out.display()
        ));
    }
    let (key, pem) = SigningKey::generate(id).map_err(|e| e.to_string())?;
    write_private(out, &pem).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!(
        "private key: {} (keep it secret; it signs modules as `{id}`)\n\
         public key:  {}\n\n\
         trust it in the host's configuration:\n\n\
         [[plugins.trust.keys]]\n\
         id = \"{id}\"\n\
         public_key = \"{}\"\n\
         modules = [\"*\"]   # the module ids this key may sign\n",
        out.display(),
        key.public_key(),
        key.public_key()
    ))
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Signs the `manifest.toml` of the module folder `dir` with the key in `key_file`
/// (adding to, or replacing the same key's entry in, `manifest.sig`).
pub fn sign(dir: &Path, key_file: &Path, id: Option<&str>) -> Result<String, String> {
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| format!("cannot read {}: {e}", key_file.display()))?;
    let mut key = SigningKey::from_pem(&text).map_err(|e| e.to_string())?;
    if let Some(id) = id {
        key.id = id.to_owned();
    }
    if key.id.is_empty() {
        return Err(format!(
            "{} names no key id (a `# key id: …` line): give --id",
            key_file.display()
        ));
    }
    if !valid_key_id(&key.id) {
        return Err(format!(
            "`{}` is not a key id: use 1–64 letters, digits, `-`, `_` and `.`",
            key.id
        ));
    }
    // the manifest must be one the host can read, and its wasm must match it
    let read = Manifest::read_file(dir)?;
    let (manifest, wasm) = (&read.manifest, &read.wasm);
    let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    read.check_wasm(&bytes)?;
    let sig_path = dir.join(SIGNATURE_FILE);
    // other keys' signatures are kept; a damaged file is not silently replaced
    let mut file = match &read.signatures {
        Some(text) => SignatureFile::parse(text).map_err(|e| {
            format!(
                "{}: {e}; fix or remove it before signing",
                sig_path.display()
            )
        })?,
        None => SignatureFile::default(),
    };
    file.add(key.sign(&read.bytes));
    std::fs::write(&sig_path, file.render())
        .map_err(|e| format!("cannot write {}: {e}", sig_path.display()))?;
    Ok(format!(
        "signed {} {} with key `{}` ({}): {}\n",
        manifest.id,
        manifest.version,
        key.id,
        key.public_key(),
        sig_path.display()
    ))
}

/// Judges the module folder `dir` as the host would with `store`; the text to print and
/// whether the module would load in production.
pub fn verify(dir: &Path, store: &TrustConfig) -> Result<(String, bool), String> {
    let read = Manifest::read_file(dir)?;
    let (manifest, wasm) = (&read.manifest, &read.wasm);
    let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    let module = format!("module `{}` {}", manifest.id, manifest.version);
    if let Err(mismatch) = read.check_wasm(&bytes) {
        return Ok((format!("{module}: REFUSED — {mismatch}\n"), false));
    }
    let verdict = trust::judge(&read, store, chrono::Utc::now());
    let mode = match store.mode {
        TrustMode::Production => "production",
        TrustMode::Development => "development",
    };
    Ok(match verdict {
        trust::Trust::Trusted { key } => {
            (format!("{module}: trusted, signed by key `{key}`\n"), true)
        }
        trust::Trust::Untrusted { reason, .. } => (
            format!(
                "{module}: NOT TRUSTED — {reason}\n(plugins.trust.mode = {mode}: {})\n",
                if store.mode == TrustMode::Production {
                    "the host refuses it"
                } else {
                    "the host loads it with a warning; production refuses it"
                }
            ),
            false,
        ),
    })
}
