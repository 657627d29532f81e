//! Repository hygiene written as tests (rust-analyzer's `tidy`): the crate graph is the
//! architecture, so a crate that reaches up, a module of the old monolith that comes back,
//! or an import cycle between the modules of a crate fails `cargo xtask test`.

#![cfg(test)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The host crates under `core/`, lowest floor first, with the host crates each may depend
/// on. A crate depends only on crates listed before it; a new crate must be placed here.
const FLOORS: &[(&str, &[&str])] = &[
    ("shoal-signing", &[]),
    ("shoal-base", &["shoal-signing"]),
    ("shoal-rules", &["shoal-base"]),
    ("shoal-plugin-host", &["shoal-base", "shoal-signing"]),
    ("shoal-crm", &["shoal-base", "shoal-rules"]),
    (
        "shoal-tags",
        &[
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-plugin-host",
        ],
    ),
    (
        "shoal-settlement",
        &["shoal-base", "shoal-crm", "shoal-plugin-host"],
    ),
    (
        "shoal-tickets",
        &[
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-tags",
            "shoal-settlement",
            "shoal-plugin-host",
        ],
    ),
    (
        "shoal-sop",
        &[
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-tags",
            "shoal-plugin-host",
            "shoal-tickets",
        ],
    ),
    (
        "shoal-data",
        &["shoal-base", "shoal-crm", "shoal-tags", "shoal-plugin-host"],
    ),
    (
        "shoal-notify",
        &[
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-tags",
            "shoal-sop",
        ],
    ),
    (
        "shoal-campaigns",
        &["shoal-base", "shoal-crm", "shoal-tags", "shoal-sop"],
    ),
    (
        "shoal-connectors",
        &[
            "shoal-base",
            "shoal-crm",
            "shoal-data",
            "shoal-sop",
            "shoal-tags",
            "shoal-plugin-host",
        ],
    ),
    ("shoal-privacy", &["shoal-base", "shoal-crm"]),
    (
        "shoal-analytics",
        &["shoal-base", "shoal-crm", "shoal-tickets"],
    ),
    (
        "shoal-api",
        &[
            "shoal-analytics",
            "shoal-privacy",
            "shoal-connectors",
            "shoal-campaigns",
            "shoal-tickets",
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-tags",
            "shoal-settlement",
            "shoal-sop",
            "shoal-data",
            "shoal-notify",
            "shoal-plugin-host",
        ],
    ),
    (
        "shoal-server",
        &[
            "shoal-analytics",
            "shoal-privacy",
            "shoal-signing",
            "shoal-base",
            "shoal-rules",
            "shoal-crm",
            "shoal-tags",
            "shoal-settlement",
            "shoal-sop",
            "shoal-data",
            "shoal-notify",
            "shoal-campaigns",
            "shoal-tickets",
            "shoal-connectors",
            "shoal-plugin-host",
            "shoal-api",
        ],
    ),
];

/// Outside crates that stand for a floor's invariant: only these host crates may depend on
/// them (the base only optionally, behind its `graphql` feature).
const GATED: &[(&str, &[&str])] = &[
    ("async-graphql", &["shoal-api", "shoal-server"]),
    ("async-graphql-axum", &["shoal-api"]),
    ("axum", &["shoal-api", "shoal-server"]),
    ("wasmtime", &["shoal-plugin-host"]),
    ("wasmtime-wasi", &["shoal-plugin-host"]),
    ("clap", &["shoal-server"]),
    ("hyper", &["shoal-sop"]),
];

fn root() -> PathBuf {
    crate::root()
}

/// `(package name, folder)` of every crate under `core/`.
fn host_crates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root().join("core")).expect("core/ exists") {
        let dir = entry.expect("entry").path();
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file() {
            out.push((package_name(&manifest), dir));
        }
    }
    out.sort();
    out
}

fn package_name(manifest: &Path) -> String {
    let text = fs::read_to_string(manifest).expect("manifest");
    text.lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("package name")
        .to_owned()
}

/// The dependencies named in a manifest's `[dependencies]` table, with whether each is
/// optional.
fn dependencies(manifest: &Path) -> Vec<(String, bool)> {
    let text = fs::read_to_string(manifest).expect("manifest");
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.'])
            .next()
            .expect("a key")
            .trim()
            .to_owned();
        out.push((name, line.contains("optional = true")));
    }
    out
}

#[test]
fn every_host_crate_has_a_floor_and_depends_only_on_floors_below() {
    let floors: BTreeMap<&str, &[&str]> = FLOORS.iter().copied().collect();
    let mut problems = Vec::new();
    for (name, dir) in host_crates() {
        let Some(allowed) = floors.get(name.as_str()) else {
            problems.push(format!(
                "{name} ({}) has no floor: add it to FLOORS in xtask/src/tidy.rs and to ARCHITECTURE.md",
                dir.display()
            ));
            continue;
        };
        for (dep, _) in dependencies(&dir.join("Cargo.toml")) {
            if dep.starts_with("shoal-") && !allowed.contains(&dep.as_str()) {
                problems.push(format!(
                    "{name} depends on {dep}, which is not below it (see FLOORS and ARCHITECTURE.md)"
                ));
            }
        }
    }
    // FLOORS itself lists only crates of lower floors
    for (i, (name, allowed)) in FLOORS.iter().enumerate() {
        for dep in *allowed {
            if !FLOORS[..i].iter().any(|(n, _)| n == dep) {
                problems.push(format!(
                    "FLOORS lets {name} depend on {dep}, which is not below it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn gated_crates_stay_on_their_floor() {
    let mut problems = Vec::new();
    for (name, dir) in host_crates() {
        for (dep, optional) in dependencies(&dir.join("Cargo.toml")) {
            if let Some((_, owners)) = GATED.iter().find(|(d, _)| *d == dep)
                && !owners.contains(&name.as_str())
                && !(optional && name == "shoal-base" && dep == "async-graphql")
            {
                problems.push(format!(
                    "{name} depends on {dep}: only {} may (see ARCHITECTURE.md)",
                    owners.join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_sdk_and_the_modules_depend_on_no_host_crate() {
    let mut manifests = vec![root().join("sdk/Cargo.toml")];
    for folder in ["plugins", "tests/plugins"] {
        for entry in fs::read_dir(root().join(folder)).expect("folder") {
            let manifest = entry.expect("entry").path().join("Cargo.toml");
            if manifest.is_file() {
                manifests.push(manifest);
            }
        }
    }
    let host: BTreeSet<String> = host_crates().into_iter().map(|(n, _)| n).collect();
    for manifest in manifests {
        for (dep, _) in dependencies(&manifest) {
            assert!(
                !host.contains(&dep),
                "{} depends on the host crate {dep}: guests see only the SDK",
                manifest.display()
            );
        }
    }
}

#[test]
fn the_monolith_does_not_come_back() {
    assert!(
        !root().join("core/src").exists(),
        "core/src is back: host code lives in the crates under core/ (see ARCHITECTURE.md)"
    );
    let workspace = fs::read_to_string(root().join("Cargo.toml")).expect("workspace manifest");
    assert!(
        !workspace.contains("shoal-core"),
        "the shoal-core package is gone: name the crate that holds the code"
    );
}

/// A domain module (`customers`, `tags`, `tasks`, …) has one home: apart from the API, whose
/// resolver files are named after the domains they serve, and the binary, no two host crates
/// declare a top-level module of the same name, and no crate declares a module named after
/// another crate.
/// Names a module may have in several crates: a crate's own rows (`store`). This list
/// should only get shorter.
const SHARED_MODULE_NAMES: &[&str] = &["store"];

#[test]
fn each_domain_module_has_one_home() {
    let mut homes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, dir) in host_crates() {
        if name == "shoal-api" || name == "shoal-server" {
            continue;
        }
        for module in top_modules(&dir.join("src")) {
            homes.entry(module).or_default().push(name.clone());
        }
    }
    let crates: BTreeSet<String> = host_crates()
        .into_iter()
        .map(|(n, _)| n.trim_start_matches("shoal-").replace('-', "_"))
        .collect();
    let mut problems = Vec::new();
    for (module, owners) in &homes {
        if owners.len() > 1 && !SHARED_MODULE_NAMES.contains(&module.as_str()) {
            problems.push(format!(
                "module `{module}` is declared in {}",
                owners.join(" and ")
            ));
        }
        if crates.contains(module)
            && owners
                .iter()
                .all(|o| o.trim_start_matches("shoal-") != module)
        {
            problems.push(format!(
                "module `{module}` of {} shares its name with a crate",
                owners.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Top-level modules of a crate: files and folders beside `lib.rs`.
fn top_modules(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if ["lib", "main", "tests"].contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            out.push(name);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every `.rs` file of a top-level module, without its `#[cfg(test)] mod tests` block and
/// its comments.
fn module_text(src: &Path, module: &str) -> String {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut stack = vec![src.join(module)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut text = String::new();
    for f in files {
        let t = fs::read_to_string(&f).expect("source");
        let cut = t.find("#[cfg(test)]\nmod tests").unwrap_or(t.len());
        // comments (intra-doc links included) are no dependency
        for line in t[..cut]
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// Whether `text` (the code of a module directly below the crate root) refers to the sibling
/// module `other`: `crate::other`, `super::other`, or `other` inside a `use crate::{…}` or
/// `use super::{…}` group.
fn refers_to(text: &str, other: &str) -> bool {
    let word = |s: &str, at: usize| {
        let before = s[..at].chars().next_back();
        let after = s[at + other.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    for prefix in ["crate::", "super::"] {
        let needle = format!("{prefix}{other}");
        if text.match_indices(&needle).any(|(i, _)| {
            let end = i + needle.len();
            !text[end..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        }) {
            return true;
        }
        let group = format!("use {prefix}{{");
        for (start, _) in text.match_indices(&group) {
            let body_start = start + group.len();
            let Some(len) = text[body_start..].find("};") else {
                continue;
            };
            let body = &text[body_start..body_start + len];
            // only names at the group's top level count
            let mut depth = 0;
            let mut top = String::new();
            for c in body.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ if depth == 0 => top.push(c),
                    _ => {}
                }
            }
            if top.match_indices(other).any(|(i, _)| word(&top, i)) {
                return true;
            }
        }
    }
    false
}

/// The cycles among a crate's top-level modules (strongly connected components of more
/// than one module).
fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    let modules = top_modules(src);
    let edges: BTreeMap<&str, Vec<&str>> = modules
        .iter()
        .map(|m| {
            let text = module_text(src, m);
            let to = modules
                .iter()
                .filter(|o| *o != m && refers_to(&text, o))
                .map(String::as_str)
                .collect();
            (m.as_str(), to)
        })
        .collect();
    // Tarjan's algorithm
    struct State<'a> {
        edges: &'a BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        cycles: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for &w in &s.edges[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.cycles.push(component);
            }
        }
    }
    let mut state = State {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        cycles: Vec::new(),
    };
    for m in &modules {
        if !state.index.contains_key(m.as_str()) {
            visit(&mut state, m);
        }
    }
    state.cycles
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut problems = Vec::new();
    for (name, dir) in host_crates() {
        for cycle in module_cycles(&dir.join("src")) {
            problems.push(format!("{name}: {} import each other", cycle.join(" ↔ ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles (move the shared piece down, or the caller up):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let dir = std::env::temp_dir().join(format!("shoal-tidy-{}", std::process::id()));
    fs::create_dir_all(dir.join("b")).expect("temp dir");
    fs::write(dir.join("lib.rs"), "mod a; mod b; mod c;").expect("write");
    fs::write(dir.join("a.rs"), "use crate::{b::X, c};").expect("write");
    fs::write(dir.join("b/mod.rs"), "fn f() { super::a::g() }").expect("write");
    fs::write(
        dir.join("c.rs"),
        "use crate::cc;\n#[cfg(test)]\nmod tests { use crate::a; }",
    )
    .expect("write");
    let cycles = module_cycles(&dir);
    fs::remove_dir_all(&dir).ok();
    assert_eq!(cycles, vec![vec!["a".to_owned(), "b".to_owned()]]);
}
