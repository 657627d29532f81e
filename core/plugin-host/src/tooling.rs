//! `shoal plugin inspect` and `shoal plugin test`: a vendor's tools, running a module
//! through the real runtime without a server or database.
//!
//! A test fixture is one JSON file:
//!
//! ```json
//! { "export": "settle",
//!   "params": { "tier1_cities": ["上海"] },
//!   "input": { "bill_id": "B1", "currency": "CNY", … },
//!   "expect": { "ok": { "total": { "amount": "250.00", "currency": "CNY" }, … } } }
//! ```
//!
//! `export` is `describe`, `tag-templates`, `sop-templates`, `settle` or `evaluate-tags`;
//! `expect` is `{"ok": …}`, `{"error": {"code", "message"}}` (the module's refusal) or
//! `{"host_error": "<kind>"}` (e.g. `fuel_exhausted`, `panic`).

use std::{fmt::Write, path::Path, sync::Arc};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Runtime,
    abi::latest as types,
    call::{CallError, CallReport, Params},
    manifest::{capability_names, industry_name},
};
use shoal_base::config::PluginsConfig;

/// What `shoal plugin inspect` prints.
pub fn inspect(limits: &PluginsConfig, wasm: &Path) -> Result<String, String> {
    let runtime = Runtime::new(limits)?;
    let module = runtime.load_file(wasm)?;
    let bytes = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
    let info = &module.info;
    let mut out = String::new();
    let _ = writeln!(out, "file          {} ({bytes} bytes)", wasm.display());
    let _ = writeln!(out, "sha256        {}", module.manifest.sha256);
    let _ = writeln!(
        out,
        "abi           shoal:plugin@{} (supported by this host)",
        module.abi
    );
    let _ = writeln!(out, "id            {}", info.id);
    let _ = writeln!(out, "name          {}", info.name);
    let _ = writeln!(out, "version       {}", info.version);
    let _ = writeln!(out, "industry      {}", industry_name(info.industry));
    let _ = writeln!(out, "description   {}", info.description);
    let _ = writeln!(
        out,
        "capabilities  {}",
        capability_names(&info.capabilities).join(", ")
    );
    let _ = writeln!(out, "imports       {}", module.imports.join(", "));
    let _ = writeln!(
        out,
        "load          {:.1} ms{}",
        module.load_time.as_secs_f64() * 1000.0,
        if module.from_cache {
            " (precompiled, from cache)"
        } else {
            " (compiled; cached for next time)"
        }
    );
    let _ = writeln!(out, "\ntag templates ({}):", module.tag_templates.len());
    for t in &module.tag_templates {
        let params: Vec<String> = t
            .params
            .iter()
            .map(|p| format!("{}={}", p.name, p.default_value))
            .collect();
        let _ = writeln!(
            out,
            "  {:<20} {} — {}   [{}]",
            t.id,
            t.name,
            t.rule,
            params.join(", ")
        );
    }
    let _ = writeln!(out, "\nSOP templates ({}):", module.sop_templates.len());
    for s in &module.sop_templates {
        let trigger = match &s.trigger.event_name {
            Some(name) => format!("{}:{name}", s.trigger.event_type),
            None => s.trigger.event_type.clone(),
        };
        let _ = writeln!(
            out,
            "  {:<20} {} — on {trigger}, {} steps, exits on [{}]",
            s.id,
            s.name,
            s.steps.len(),
            s.exit_on.join(", ")
        );
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    export: String,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    input: Value,
    expect: Value,
}

/// Runs every `*.json` fixture in `dir`; returns the report and whether all passed.
pub fn test(limits: &PluginsConfig, wasm: &Path, dir: &Path) -> Result<(String, bool), String> {
    let runtime = Runtime::new(limits)?;
    let module = runtime.load_file(wasm)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.json fixtures in {}", dir.display()));
    }
    let mut out = String::new();
    let mut failed = 0;
    let _ = writeln!(
        out,
        "{} {} (abi {}) — {} fixtures\n",
        module.info.id,
        module.info.version,
        module.abi,
        files.len()
    );
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fixture: Fixture = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "FAIL {name}: unreadable fixture: {e}\n");
                continue;
            }
        };
        let (actual, report) = match run_fixture(&runtime, &module, &fixture) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "FAIL {name}: {e}\n");
                continue;
            }
        };
        let passed = actual == fixture.expect;
        if !passed {
            failed += 1;
        }
        let _ = writeln!(
            out,
            "{} {name} ({})",
            if passed { "PASS" } else { "FAIL" },
            fixture.export
        );
        let _ = writeln!(out, "     {}", usage(limits, &report));
        for line in &report.logs {
            let _ = writeln!(out, "     log [{}] {}", line.level, line.message);
        }
        if report.logs_dropped > 0 {
            let _ = writeln!(
                out,
                "     log … {} bytes dropped (limit {} per call)",
                report.logs_dropped, limits.max_log_bytes
            );
        }
        if !passed {
            let _ = writeln!(out, "     --- expected\n     +++ actual");
            out.push_str(&diff(&pretty(&fixture.expect), &pretty(&actual)));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{} passed, {failed} failed", files.len() - failed);
    Ok((out, failed == 0))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn usage(limits: &PluginsConfig, r: &CallReport) -> String {
    let pct = |used: f64, limit: f64| {
        if limit > 0.0 {
            used * 100.0 / limit
        } else {
            0.0
        }
    };
    format!(
        "fuel {} / {} ({:.1}%)   memory {:.1} MiB / {:.1} MiB   output {} B / {} B   time {:.2} ms",
        r.fuel_used,
        limits.fuel,
        pct(r.fuel_used as f64, limits.fuel as f64),
        r.peak_memory as f64 / 1_048_576.0,
        limits.memory_bytes as f64 / 1_048_576.0,
        r.output_bytes,
        limits.max_output_bytes,
        r.elapsed.as_secs_f64() * 1000.0
    )
}

fn outcome<T: serde::Serialize>(result: Result<Result<T, types::PluginError>, CallError>) -> Value {
    match result {
        Ok(Ok(v)) => json!({ "ok": v }),
        Ok(Err(e)) => json!({ "error": e }),
        Err(e) => json!({ "host_error": e.kind() }),
    }
}

fn run_fixture(
    runtime: &Runtime,
    module: &super::Loaded,
    f: &Fixture,
) -> Result<(Value, CallReport), String> {
    let params = Arc::new(Params::from_json(f.params.clone()));
    let input_err =
        |e: serde_json::Error| format!("`input` does not fit the {} export: {e}", f.export);
    let (value, mut report) = match f.export.as_str() {
        "describe" => {
            let (r, rep) = runtime.call(module, params, |m, s| m.describe(s));
            (outcome(r.map(Ok)), rep)
        }
        "tag-templates" => {
            let (r, rep) = runtime.call(module, params, |m, s| m.tag_templates(s));
            (outcome(r.map(Ok)), rep)
        }
        "sop-templates" => {
            let (r, rep) = runtime.call(module, params, |m, s| m.sop_templates(s));
            (outcome(r.map(Ok)), rep)
        }
        "settle" => {
            let request: types::SettleRequest =
                serde_json::from_value(f.input.clone()).map_err(input_err)?;
            let (r, rep) = runtime.call(module, params, |m, s| m.settle(s, &request));
            (outcome(r), rep)
        }
        "evaluate-tags" => {
            let profile: types::CustomerProfile =
                serde_json::from_value(f.input.clone()).map_err(input_err)?;
            let (r, rep) = runtime.call(module, params, |m, s| m.evaluate_tags(s, &profile));
            (outcome(r), rep)
        }
        "ticket-templates" => {
            let (r, rep) = runtime.call(module, params, |m, s| m.ticket_templates(s));
            (outcome(r.map(Ok)), rep)
        }
        "propose-ticket" => {
            let request: types::TicketRequest =
                serde_json::from_value(f.input.clone()).map_err(input_err)?;
            let (r, rep) = runtime.call(module, params, |m, s| m.propose_ticket(s, &request));
            (outcome(r), rep)
        }
        other => {
            return Err(format!(
                "unknown export `{other}` (describe, tag-templates, sop-templates, settle, evaluate-tags, ticket-templates, propose-ticket)"
            ));
        }
    };
    report.output_bytes = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
    Ok((value, report))
}

/// A line diff (longest common subsequence), lines prefixed `-` (expected) / `+` (actual).
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "       {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "     + {}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "     - {}", a[i]);
            i += 1;
        }
    }
    out
}

/// `shoal plugin rollback <id>`: withdraws the newest installed version of a module from
/// the plugins folder (moved to `.withdrawn/`, which hosts skip), so the version before it
/// runs again after the next reload. `pins` are the (tenant, version) pins of the module:
/// a version a tenant pins is not withdrawn from under it. Returns what to print.
pub fn rollback(dir: &Path, id: &str, pins: &[(String, String)]) -> Result<String, String> {
    let mut versions: Vec<(crate::VersionKey, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|p| {
            let (m, _) = super::Manifest::read(&p).ok()?;
            (m.id == id).then(|| (crate::VersionKey::new(&m.version), p))
        })
        .collect();
    versions.sort();
    if versions.is_empty() {
        return Err(format!(
            "no version of `{id}` is installed in {}",
            dir.display()
        ));
    }
    // the version tenants without a pin run: the newest release (else the newest)
    let at = versions
        .iter()
        .rposition(|(v, _)| !v.is_pre_release())
        .unwrap_or(versions.len() - 1);
    let (newest, folder) = &versions[at];
    let Some((previous, _)) = at.checked_sub(1).map(|i| &versions[i]) else {
        return Err(format!(
            "`{id}` {} has no older version installed: nothing to roll back to",
            newest.as_str()
        ));
    };
    withdraw(dir, id, newest, folder, previous, pins)
}

/// Moves the folder of `id` `version` into `.withdrawn/` (named after the folder and the
/// version, both checked when the manifest was read), unless a tenant pins that version.
pub fn withdraw(
    dir: &Path,
    id: &str,
    version: &crate::VersionKey,
    folder: &Path,
    previous: &crate::VersionKey,
    pins: &[(String, String)],
) -> Result<String, String> {
    let pinned: Vec<&str> = pins
        .iter()
        .filter(|(_, v)| v == version.as_str())
        .map(|(t, _)| t.as_str())
        .collect();
    if !pinned.is_empty() {
        return Err(format!(
            "`{id}` {} is pinned by tenant(s) {}: change their `version` first",
            version.as_str(),
            pinned.join(", ")
        ));
    }
    let withdrawn = dir.join(".withdrawn");
    std::fs::create_dir_all(&withdrawn).map_err(|e| format!("{}: {e}", withdrawn.display()))?;
    let name = folder
        .file_name()
        .ok_or_else(|| format!("{} is not a module folder", folder.display()))?
        .to_string_lossy()
        .into_owned();
    let mut target = withdrawn.join(format!("{name}@{}", version.as_str()));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = withdrawn.join(format!("{name}@{}.{n}", version.as_str()));
    }
    std::fs::rename(folder, &target)
        .map_err(|e| format!("cannot move {}: {e}", folder.display()))?;
    Ok(format!(
        "`{id}` {} withdrawn (moved to {}); {} runs after the next reload (`reloadPlugins`, or `kill -HUP` the server). \
         Move the folder back to undo.\n",
        version.as_str(),
        target.display(),
        previous.as_str()
    ))
}
