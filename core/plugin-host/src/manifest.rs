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

pub const CAPABILITIES: [(&str, Capability); 4] = [
    ("tag-templates", Capability::TagTemplates),
    ("sop-templates", Capability::SopTemplates),
    ("settlement", Capability::Settlement),
    ("evaluate-tags", Capability::EvaluateTags),
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

impl Manifest {
    /// Reads `dir/manifest.toml`; returns it and the path of its wasm file.
    pub fn read(dir: &Path) -> Result<(Manifest, PathBuf), String> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let wasm = dir.join(
            manifest
                .wasm
                .clone()
                .unwrap_or_else(|| format!("{}.wasm", manifest.id)),
        );
        Ok((manifest, wasm))
    }

    /// The declared capabilities; an unknown name is an error.
    pub fn capability_set(&self) -> Result<Vec<Capability>, String> {
        let mut set = Vec::new();
        for name in &self.capabilities {
            let (_, flag) = CAPABILITIES.iter().find(|(n, _)| n == name).ok_or_else(|| {
                format!(
                    "unknown capability `{name}` in the manifest (known: tag-templates, sop-templates, settlement, evaluate-tags)"
                )
            })?;
            set.push(*flag);
        }
        Ok(set)
    }
}
