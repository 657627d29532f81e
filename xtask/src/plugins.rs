//! `cargo xtask plugins` and `cargo xtask plugin new <name>`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::{Result, cargo, ensure_wasm_target, root, status};

/// Where built modules and their manifests go; `cargo xtask run` serves this folder.
pub fn out_dir() -> PathBuf {
    root().join("target/plugins")
}

struct PluginCrate {
    package: String,
    id: String,
    version: String,
    abi: String,
    capabilities: Vec<String>,
    sensitive_fields: Vec<String>,
}

/// Crates under `plugins/` with `[package.metadata.shoal]`.
fn plugin_crates() -> Result<Vec<PluginCrate>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let plugins_dir = root().join("plugins");
    // a module's ABI is its SDK's version (shoal-sdk 1.1 builds `shoal:plugin@1.1.0`)
    let sdk_abi = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "shoal-sdk")
        .and_then(|p| p["version"].as_str())
        .ok_or("cargo metadata: no shoal-sdk package in the workspace")?
        .to_owned();
    let mut crates = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&plugins_dir) {
            continue;
        }
        let shoal = &package["metadata"]["shoal"];
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let id = shoal["id"]
            .as_str()
            .ok_or_else(|| format!("{name}: [package.metadata.shoal] needs `id`"))?;
        crates.push(PluginCrate {
            id: id.to_owned(),
            version: package["version"].as_str().unwrap_or("0.0.0").to_owned(),
            abi: shoal["abi"].as_str().unwrap_or(&sdk_abi).to_owned(),
            capabilities: shoal["capabilities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            sensitive_fields: shoal["sensitive-fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            package: name,
        });
    }
    crates.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(crates)
}

/// `cargo rustc` for one module as a WebAssembly component. Module crates are plain
/// libraries (so they link natively for unit tests); the component is a `cdylib` built here.
pub fn wasm_build(package: &str) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args([
        "rustc",
        "--package",
        package,
        "--lib",
        "--profile",
        "plugin",
        "--target",
        "wasm32-wasip2",
    ])
    .args(["--crate-type", "cdylib"]);
    cmd
}

/// Builds every module in `plugins/` (release, size-optimised) and writes
/// `target/plugins/<id>/{<id>.wasm, manifest.toml}`.
pub fn build() -> Result {
    ensure_wasm_target()?;
    let crates = plugin_crates()?;
    let out = out_dir();
    if crates.is_empty() {
        eprintln!(
            "xtask: no modules in plugins/ yet (create one with `cargo xtask plugin new <name>`)"
        );
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        return Ok(());
    }
    for c in &crates {
        status(wasm_build(&c.package))?;
    }
    let key = dev_key()?;
    for c in &crates {
        let wasm = root().join(format!(
            "target/wasm32-wasip2/plugin/{}.wasm",
            c.package.replace('-', "_")
        ));
        let bytes = fs::read(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
        let sha256: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = out.join(&c.id);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        fs::write(dir.join(format!("{}.wasm", c.id)), &bytes).map_err(|e| e.to_string())?;
        let quoted = |list: &[String]| -> String {
            let items: Vec<String> = list.iter().map(|c| format!("\"{c}\"")).collect();
            items.join(", ")
        };
        let manifest = format!(
            "# Written by `cargo xtask plugins`.\nid = \"{}\"\nversion = \"{}\"\nabi_version = \"{}\"\nsha256 = \"{sha256}\"\ncapabilities = [{}]\nsensitive_fields = [{}]\n",
            c.id,
            c.version,
            c.abi,
            quoted(&c.capabilities),
            quoted(&c.sensitive_fields)
        );
        fs::write(dir.join("manifest.toml"), &manifest).map_err(|e| e.to_string())?;
        let mut signatures = shoal_signing::SignatureFile::default();
        signatures.add(key.sign(manifest.as_bytes()));
        fs::write(dir.join(shoal_signing::SIGNATURE_FILE), signatures.render())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "xtask: {:<10} {} ({} KiB, sha256 {}…, signed by `{}`)",
            c.id,
            c.version,
            bytes.len() / 1024,
            &sha256[..12],
            key.id
        );
    }
    eprintln!("xtask: modules written to {}", out.display());
    Ok(())
}

/// The id of the development signing key.
pub const DEV_KEY_ID: &str = "shoal-dev";

/// This checkout's development signing key (`target/dev-signing.key`, made on first use;
/// never a production key: production trust stores do not list it).
pub fn dev_key() -> Result<shoal_signing::SigningKey> {
    let path = root().join("target/dev-signing.key");
    if let Ok(text) = fs::read_to_string(&path) {
        return shoal_signing::SigningKey::from_pem(&text)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let (key, pem) = shoal_signing::SigningKey::generate(DEV_KEY_ID).map_err(|e| e.to_string())?;
    write(&path, &pem)?;
    eprintln!(
        "xtask: created the development signing key {} ({})",
        path.display(),
        key.public_key()
    );
    Ok(key)
}

/// Scaffolds `plugins/<name>/`: a module that builds and passes its tests.
pub fn new(name: &str) -> Result {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "`{name}` is not a module name: use 1–32 characters of a-z, 0-9 and `-`, starting with a letter"
        ));
    }
    let dir = root().join("plugins").join(name);
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{Type}}", &type_name)
    };
    write(
        &dir.join("Cargo.toml"),
        &fill(include_str!("templates/Cargo.toml.tmpl")),
    )?;
    write(
        &dir.join("src/lib.rs"),
        &fill(include_str!("templates/lib.rs.tmpl")),
    )?;
    write(
        &dir.join("fixtures/describe.json"),
        &fill(include_str!("templates/describe.json.tmpl")),
    )?;
    eprintln!("xtask: created {}", dir.display());
    eprintln!("  test it:   cargo test -p shoal-plugin-{name}");
    eprintln!(
        "  build it:  cargo xtask plugins   (writes target/plugins/{name}/, signed with the development key)"
    );
    eprintln!(
        "  ship it:   shoal plugin sign target/plugins/{name} --key <your key>   (`shoal plugin keygen` makes one)"
    );
    eprintln!(
        "  try it:    cargo run -p shoal-server -- plugin test target/plugins/{name}/{name}.wasm plugins/{name}/fixtures"
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Used by `run`: the folder to serve, built fresh.
pub fn build_for_run() -> Result<PathBuf> {
    build()?;
    Ok(out_dir())
}
