//! `manifest.toml`: what a module claims to be, checked against what it is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::abi::latest::{Capability, Industry};

/// The name of an industry, as the API writes it.
pub fn industry_name(industry: Industry) -> &'static str {
    match industry {
        Industry::Retail => "retail",
        Industry::Education => "education",
        Industry::Finance => "finance",
        Industry::Clinic => "clinic",
        Industry::Other => "other",
    }
}

/// A module's manifest, written by `cargo xtask plugins` next to the wasm.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable id; tenants enable the module under `[tenants.<t>.modules.<id>]`.
    pub id: String,
    /// The module's own version.
    pub version: String,
    /// The plugin ABI (WIT package version) the module was built for, e.g. `1.0.0`.
    pub abi_version: String,
    /// Hex SHA-256 of the wasm file.
    pub sha256: String,
    /// `tag-templates`, `sop-templates`, `settlement`, `evaluate-tags`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The wasm file, relative to the manifest (default `<id>.wasm`).
    #[serde(default)]
    pub wasm: Option<String>,
    /// Customer fields the module declares sensitive (`attributes.annual_income`): hidden
    /// from roles that do not name them (see docs/permissions.md).
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
}

pub const CAPABILITIES: [(&str, Capability); 5] = [
    ("tag-templates", Capability::TagTemplates),
    ("sop-templates", Capability::SopTemplates),
    ("settlement", Capability::Settlement),
    ("evaluate-tags", Capability::EvaluateTags),
    ("ticket-templates", Capability::TicketTemplates),
];

/// The name of a capability, as manifests and the API write it.
pub fn capability_name(capability: Capability) -> &'static str {
    CAPABILITIES
        .iter()
        .find(|(_, c)| *c == capability)
        .map_or("?", |(n, _)| n)
}

/// The names of a set of capabilities, in declaration order, without repeats.
pub fn capability_names(set: &[Capability]) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .filter(|(_, c)| set.contains(c))
        .map(|(n, _)| *n)
        .collect()
}

/// A module folder's manifest as read once: its exact bytes (what signatures cover), what
/// they say, its wasm's path, and the signatures beside it. Everything the host decides
/// about a folder — trust, loading, archiving — works from this one reading, so the file
/// cannot change between the check and the use.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    pub wasm: PathBuf,
    /// The text of `manifest.sig`, if there is one.
    pub signatures: Option<String>,
}

/// A name that can stand for a file or folder as it is: 1–64 letters, digits, `-`, `_` and
/// `.`, not starting with `.` (module ids, wasm file names).
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with('.')
}

impl ManifestFile {
    /// Whether `wasm` (the bytes read from [`ManifestFile::wasm`]) is what the manifest
    /// names: the same SHA-256, else a message saying what changed and what to do.
    pub fn check_wasm(&self, wasm: &[u8]) -> Result<(), String> {
        let actual = crate::sha256_hex(wasm);
        if actual.eq_ignore_ascii_case(&self.manifest.sha256) {
            return Ok(());
        }
        Err(format!(
            "hash mismatch: the manifest says sha256 {} but {} has {actual}; the file changed after the manifest was written — rebuild with `cargo xtask plugins` or restore the original file",
            self.manifest.sha256,
            self.wasm.display()
        ))
    }
}

impl Manifest {
    /// Reads `dir/manifest.toml`; returns it and the path of its wasm file.
    pub fn read(dir: &Path) -> Result<(Manifest, PathBuf), String> {
        let file = Manifest::read_file(dir)?;
        Ok((file.manifest, file.wasm))
    }

    /// Reads a module folder's manifest and signatures once.
    pub fn read_file(dir: &Path) -> Result<ManifestFile, String> {
        let path = dir.join("manifest.toml");
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text =
            std::str::from_utf8(&bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        manifest
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let wasm = dir.join(manifest.wasm_file());
        let signatures = std::fs::read_to_string(dir.join(shoal_signing::SIGNATURE_FILE)).ok();
        Ok(ManifestFile {
            bytes,
            manifest,
            wasm,
            signatures,
        })
    }

    /// The wasm's file name (beside the manifest).
    pub fn wasm_file(&self) -> String {
        self.wasm
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.id))
    }

    /// What the fields must look like: they name files and folders.
    fn check(&self) -> Result<(), String> {
        let plain = is_plain_name;
        if !plain(&self.id) {
            return Err(format!(
                "id `{}` is not 1–64 characters of letters, digits, `-`, `_` and `.`",
                self.id
            ));
        }
        if crate::VersionKey::parse(&self.version).is_none() {
            return Err(format!(
                "version `{}` is not a version like 1.2.0 (or 1.2.0-rc.1)",
                self.version
            ));
        }
        if let Some(wasm) = &self.wasm
            && !plain(wasm)
        {
            return Err(format!(
                "wasm `{wasm}` must be a file name beside the manifest"
            ));
        }
        Ok(())
    }

    /// The declared capabilities; an unknown name is an error.
    pub fn capability_set(&self) -> Result<Vec<Capability>, String> {
        let mut set = Vec::new();
        for name in &self.capabilities {
            let (_, flag) = CAPABILITIES.iter().find(|(n, _)| n == name).ok_or_else(|| {
                format!(
                    "unknown capability `{name}` in the manifest (known: tag-templates, sop-templates, settlement, evaluate-tags, ticket-templates)"
                )
            })?;
            set.push(*flag);
        }
        Ok(set)
    }
}
