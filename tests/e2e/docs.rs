//! Docs that run: every ```graphql block of README.md and docs/*.md, and every shell block
//! marked runnable, is executed in order against `shoal serve --demo` (the README's server,
//! the industry modules installed) on SQLite and on PostgreSQL. A block that fails names
//! its file and line.
//!
//! What a block needs is said in an HTML comment just before it (invisible on GitHub):
//!
//! ```text
//! <!-- doctest
//! tenant: demo-retail                      the tenant whose demo key is used (default: demo)
//! setup: { customers(first: 1) { edges { node { id } } } } => c = customers.edges.0.node.id
//!                                          run first (its variables: saved values)
//! variables: {"input": {"customerId": "$c"}}   "$name" strings are saved values
//! save: jobId = importCustomers.id         kept for later blocks (variables of that name)
//! expect: recordEvents.createdCount = 1    a value the answer must hold (JSON; with `*`
//!                                          for every item of a list, one must hold it)
//! expect-error: NOT_FOUND                  the block must fail with this code
//! retry: 10                                seconds to retry until the expectations hold
//! skip: <why>                              not runnable (say why)
//! run                                      a ```sh / ```console block to execute
//! file: docs/examples/x.toml               the block is that file (its leading `#` lines
//!                                          aside), so what the reader copies is what runs
//! -->
//! ```
//!
//! A variable an operation declares takes, in order: the `variables:` value, else the value
//! saved under its name. A ```graphql block of signatures (`field(args): Type`, no
//! operation) is checked against the live schema instead: the field exists on Query,
//! Mutation or Subscription, its arguments exist and its type is the one written.
//!
//! Shell lines run with `sh -c` from the repository root, with `target/debug` (the `shoal`
//! binary) first on the `PATH`, the server's database and plugins in `SHOAL_STORAGE__URL` /
//! `SHOAL_PLUGINS__DIR`, and `http://127.0.0.1:8080` pointing at the test's server;
//! `cargo xtask run` is the server already running. A line fails on a non-zero exit or an
//! answer with GraphQL `"errors"`.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness::{self, Backend, Install};

/// The key the README exports as `SHOAL_DEMO_API_KEY`.
const DEMO_KEY: &str = "demo-key-change-me-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md, then docs/*.md by name: the order a newcomer reads them in.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, repo().join("README.md"));
    docs
}

// ---------------------------------------------------------------------------------------
// Reading Markdown

/// One fenced block and what its doctest comment says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    /// `README.md`, `docs/sop.md`, …
    pub file: String,
    /// The line of the opening fence (1-based).
    pub line: usize,
    pub lang: String,
    pub body: String,
    pub directives: Directives,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    pub tenant: Option<String>,
    pub setup: Vec<(String, Vec<(String, String)>)>,
    pub variables: Option<Value>,
    pub save: Vec<(String, String)>,
    pub expect: Vec<(String, Value)>,
    pub expect_error: Option<String>,
    pub retry: Option<Duration>,
    pub skip: Option<String>,
    pub run: bool,
    pub file: Option<String>,
}

fn parse_saves(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(|pair| {
            let (name, path) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}`: expected name = path"))?;
            Ok((name.trim().to_owned(), path.trim().to_owned()))
        })
        .collect()
}

impl Directives {
    fn parse(text: &str) -> Result<Directives, String> {
        let mut d = Directives::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.trim();
            match key.trim() {
                "tenant" => d.tenant = Some(value.to_owned()),
                "setup" => {
                    let (query, saves) = value.split_once("=>").unwrap_or((value, ""));
                    let saves = if saves.trim().is_empty() {
                        Vec::new()
                    } else {
                        parse_saves(saves)?
                    };
                    d.setup.push((query.trim().to_owned(), saves));
                }
                "variables" => {
                    d.variables =
                        Some(serde_json::from_str(value).map_err(|e| format!("variables: {e}"))?)
                }
                "save" => d.save.extend(parse_saves(value)?),
                "expect" => {
                    let (path, json) = value
                        .split_once('=')
                        .ok_or_else(|| format!("expect: `{value}`: expected path = JSON"))?;
                    let json = serde_json::from_str(json.trim())
                        .map_err(|e| format!("expect: `{}`: {e}", json.trim()))?;
                    d.expect.push((path.trim().to_owned(), json));
                }
                "expect-error" => d.expect_error = Some(value.to_owned()),
                "retry" => {
                    let secs: u64 = value.parse().map_err(|_| format!("retry: `{value}`"))?;
                    d.retry = Some(Duration::from_secs(secs));
                }
                "skip" if !value.is_empty() => d.skip = Some(value.to_owned()),
                "skip" => return Err("skip: say why".into()),
                "run" => d.run = true,
                "file" => d.file = Some(value.to_owned()),
                other => return Err(format!("unknown doctest directive `{other}`")),
            }
        }
        Ok(d)
    }
}

/// The fenced blocks of a Markdown text, each with the doctest comment before it (blank
/// lines may separate them); a malformed comment is an error naming its line.
pub fn blocks(file: &str, text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut pending: Option<Directives> = None;
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim_start();
        if let Some(rest) = line.strip_prefix("<!--")
            && rest.trim_start().starts_with("doctest")
        {
            let mut comment = rest.trim_start().trim_start_matches("doctest").to_owned();
            while !comment.contains("-->") {
                let Some((_, more)) = lines.next() else {
                    return Err(format!("{file}:{}: unclosed doctest comment", i + 1));
                };
                comment.push('\n');
                comment.push_str(more);
            }
            let comment = comment.split("-->").next().unwrap_or("");
            let comment = comment.strip_prefix(':').unwrap_or(comment);
            pending =
                Some(Directives::parse(comment).map_err(|e| format!("{file}:{}: {e}", i + 1))?);
            continue;
        }
        if let Some(lang) = line.strip_prefix("```") {
            let indent = raw.len() - line.len();
            let mut body = String::new();
            for (_, inner) in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(inner.get(indent..).unwrap_or(inner.trim_start()));
                body.push('\n');
            }
            out.push(Block {
                file: file.to_owned(),
                line: i + 1,
                lang: lang.trim().to_owned(),
                body,
                directives: pending.take().unwrap_or_default(),
            });
            continue;
        }
        if !line.is_empty() {
            // a doctest comment belongs to the block right after it
            pending = None;
        }
    }
    Ok(out)
}

/// One operation of a GraphQL document: its name and the variables it declares.
#[derive(Debug, PartialEq)]
pub struct Operation {
    pub name: Option<String>,
    pub variables: Vec<String>,
}

/// The operations of a GraphQL document, or `None` when it is a list of signatures.
pub fn operations(document: &str) -> Option<Vec<Operation>> {
    let mut ops = Vec::new();
    let mut depth = 0usize;
    let mut header: Option<String> = None;
    let mut chars = document.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' if depth > 0 || header.is_some() => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '{' => {
                if depth == 0 {
                    match word.as_str() {
                        "" => {}
                        "query" | "mutation" | "subscription" => header = Some(String::new()),
                        _ => return None,
                    }
                    word.clear();
                    let h = header.take().unwrap_or_default();
                    ops.push(parse_header(&h));
                }
                depth += 1;
            }
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => {
                if let Some(h) = &mut header {
                    h.push(c);
                } else if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                } else if !word.is_empty() {
                    match word.as_str() {
                        "query" | "mutation" | "subscription" => header = Some(String::new()),
                        _ => return None,
                    }
                    word.clear();
                    if let Some(h) = &mut header {
                        h.push(c);
                    }
                }
            }
            _ => {}
        }
    }
    if !word.is_empty() || ops.is_empty() {
        return None;
    }
    Some(ops)
}

fn parse_header(header: &str) -> Operation {
    let header = header.trim();
    let name: String = header
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let variables = header
        .split('$')
        .skip(1)
        .map(|v| {
            v.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    Operation {
        name: (!name.is_empty()).then_some(name),
        variables,
    }
}

/// A signature line: `name(arg, arg: Type, …): Type   # comment`.
#[derive(Debug, PartialEq)]
pub struct Signature {
    pub name: String,
    pub args: Vec<String>,
    pub ty: String,
}

pub fn signature(line: &str) -> Option<Signature> {
    let line = line.split('#').next()?.trim();
    if line.is_empty() {
        return None;
    }
    let name_end = line.find(['(', ':']).unwrap_or(line.len());
    let name = line[..name_end].trim().to_owned();
    let mut rest = &line[name_end..];
    let mut args = Vec::new();
    if rest.starts_with('(') {
        let close = rest.rfind(')').unwrap_or(rest.len() - 1);
        args = rest[1..close]
            .split(',')
            .map(|a| a.split(':').next().unwrap_or("").trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        rest = &rest[close + 1..];
    }
    let ty = rest.trim().trim_start_matches(':').trim().to_owned();
    Some(Signature { name, args, ty })
}

/// The value at a dotted path (`a.b.0.c`).
fn at<'v>(value: &'v Value, path: &str) -> &'v Value {
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) if v.is_array() => &v[i],
            _ => &v[key],
        })
}

/// The values at a dotted path where `*` stands for every item of a list
/// (`tags.*.tag.name`).
fn at_all<'v>(value: &'v Value, path: &str) -> Vec<&'v Value> {
    match path.split_once(".*") {
        None => vec![at(value, path)],
        Some((head, tail)) => {
            let tail = tail.trim_start_matches('.');
            let list = if head.is_empty() {
                value
            } else {
                at(value, head)
            };
            list.as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| {
                    if tail.is_empty() {
                        vec![item]
                    } else {
                        at_all(item, tail)
                    }
                })
                .collect()
        }
    }
}

/// Replaces every string `"$name"` by the saved value.
fn substitute(value: &Value, saved: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.starts_with('$') => saved
            .get(&s[1..])
            .cloned()
            .ok_or_else(|| format!("no saved value `{s}`"))?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, saved))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, saved)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

// ---------------------------------------------------------------------------------------
// Running them

/// `shoal serve --demo` as a newcomer starts it, on a database of the backend.
struct Demo {
    child: Child,
    addr: SocketAddr,
    env: Vec<(String, String)>,
    dir: PathBuf,
    pg_database: Option<String>,
}

impl Demo {
    async fn start(backend: Backend) -> Option<Demo> {
        let dir = std::env::temp_dir().join(format!(
            "shoal-docs-{}-{}",
            std::process::id(),
            match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.join("shoal.db").display()), None),
            Backend::Postgres => {
                let (url, name) =
                    harness::fresh_postgres_database(&format!("{}_docs", std::process::id()))
                        .await?;
                (url, Some(name))
            }
        };
        // the industry modules, as `cargo xtask run` builds them for the demo
        let plugins = dir.join("plugins");
        for id in ["retail", "education", "finance", "clinic"] {
            let cargo: toml::Table = toml::from_str(
                &std::fs::read_to_string(repo().join(format!("plugins/{id}/Cargo.toml"))).unwrap(),
            )
            .unwrap();
            let capabilities: Vec<&str> = cargo["package"]["metadata"]["shoal"]["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c.as_str())
                .collect();
            harness::install_plugin(
                &plugins,
                id,
                &harness::plugin_wasm(id),
                &Install {
                    id,
                    capabilities: &capabilities,
                    ..Install::sample()
                },
            );
        }
        let env: Vec<(String, String)> = [
            ("SHOAL_STORAGE__URL", url.as_str()),
            ("SHOAL_PLUGINS__DIR", &plugins.display().to_string()),
            (
                "SHOAL_PLUGINS__CACHE_DIR",
                &dir.join("plugin-cache").display().to_string(),
            ),
            ("SHOAL_LOG__LEVEL", "warn"),
            (
                "SHOAL_KEYS__MASTER__LOCAL__FILE",
                &dir.join("master.key").display().to_string(),
            ),
            ("SHOAL_DEMO_API_KEY", DEMO_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["serve", "--demo"])
            .current_dir(&dir)
            .env_remove("SHOAL_CONFIG")
            .env("SHOAL_SERVER__BIND", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start shoal serve --demo");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("Shoal is listening on ").map(str::to_owned))
            .expect("the server prints its URL");
        // keep reading: a closed pipe would fail the server's next line
        std::thread::spawn(move || lines.for_each(drop));
        let addr = url.trim().trim_start_matches("http://").parse().unwrap();
        Some(Demo {
            child,
            addr,
            env,
            dir,
            pg_database,
        })
    }

    fn key(tenant: Option<&str>) -> String {
        match tenant.and_then(|t| t.strip_prefix("demo-")) {
            Some(industry) => format!("{DEMO_KEY}-{industry}"),
            None => DEMO_KEY.to_owned(),
        }
    }

    async fn post(&self, key: &str, body: &Value) -> Value {
        let (status, text) = harness::http(
            self.addr,
            "POST",
            "/graphql",
            &format!("Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"),
            &body.to_string(),
        )
        .await;
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "status": status, "body": text }))
    }

    async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(name) = &self.pg_database {
            harness::drop_postgres_database(name).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The live schema's root fields: name → (argument names, rendered type).
async fn root_fields(demo: &Demo) -> BTreeMap<String, (Vec<String>, String)> {
    const TYPE: &str = "type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";
    let query = format!(
        "{{ __schema {{ queryType {{ ...F }} mutationType {{ ...F }} subscriptionType {{ ...F }} }} }} \
         fragment F on __Type {{ fields {{ name args {{ name }} {TYPE} }} }}"
    );
    let answer = demo
        .post(&Demo::key(None), &json!({ "query": query }))
        .await;
    fn render(t: &Value) -> String {
        match t["kind"].as_str() {
            Some("NON_NULL") => format!("{}!", render(&t["ofType"])),
            Some("LIST") => format!("[{}]", render(&t["ofType"])),
            _ => t["name"].as_str().unwrap_or("?").to_owned(),
        }
    }
    let mut out = BTreeMap::new();
    for root in ["queryType", "mutationType", "subscriptionType"] {
        for f in answer["data"]["__schema"][root]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let args = f["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str().map(str::to_owned))
                .collect();
            out.insert(
                f["name"].as_str().unwrap().to_owned(),
                (args, render(&f["type"])),
            );
        }
    }
    assert!(!out.is_empty(), "introspection answered {answer}");
    out
}

struct Runner<'d> {
    demo: &'d Demo,
    saved: BTreeMap<String, Value>,
    roots: BTreeMap<String, (Vec<String>, String)>,
    env: BTreeMap<String, String>,
    ran: usize,
    skipped: Vec<String>,
}

impl Runner<'_> {
    async fn graphql(&mut self, block: &Block) -> Result<(), String> {
        let d = &block.directives;
        let Some(ops) = operations(&block.body) else {
            return self.signatures(&block.body);
        };
        let key = Demo::key(d.tenant.as_deref());
        for (query, saves) in &d.setup {
            let mut variables = serde_json::Map::new();
            for op in operations(query).ok_or_else(|| format!("setup `{query}`: no operation"))? {
                for name in op.variables {
                    let value = self
                        .saved
                        .get(&name)
                        .ok_or_else(|| format!("setup `{query}`: no saved value ${name}"))?;
                    variables.insert(name, value.clone());
                }
            }
            let answer = self
                .demo
                .post(&key, &json!({ "query": query, "variables": variables }))
                .await;
            if answer.get("errors").is_some() || answer.get("data").is_none() {
                return Err(format!("setup `{query}` answered {answer}"));
            }
            for (name, path) in saves {
                let value = at(&answer["data"], path);
                if value.is_null() {
                    return Err(format!("setup: nothing at `{path}` in {answer}"));
                }
                self.saved.insert(name.clone(), value.clone());
            }
        }
        let given = match &d.variables {
            Some(v) => substitute(v, &self.saved)?,
            None => json!({}),
        };
        let deadline = Instant::now() + d.retry.unwrap_or_default();
        // each operation may save; every save must be made by one of them
        let mut unsaved: Vec<&String> = d.save.iter().map(|(name, _)| name).collect();
        for op in &ops {
            let mut variables = serde_json::Map::new();
            for name in &op.variables {
                let value = given
                    .get(name)
                    .or_else(|| self.saved.get(name))
                    .ok_or_else(|| {
                        format!(
                            "${name} has no value: give it in the doctest comment \
                             (`variables:` or a `setup: … => {name} = path`) or save it earlier"
                        )
                    })?;
                variables.insert(name.clone(), value.clone());
            }
            let mut body = json!({ "query": block.body, "variables": variables });
            if let Some(name) = &op.name {
                body["operationName"] = json!(name);
            }
            loop {
                let answer = self.demo.post(&key, &body).await;
                match self.check(d, &answer) {
                    Ok(()) => {
                        for (name, path) in &d.save {
                            let value = at(&answer["data"], path);
                            if !value.is_null() {
                                self.saved.insert(name.clone(), value.clone());
                                unsaved.retain(|n| *n != name);
                            }
                        }
                        break;
                    }
                    Err(e) if Instant::now() >= deadline => {
                        let op = op.name.as_deref().unwrap_or("the operation");
                        return Err(format!("{op}: {e}"));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        match unsaved.first() {
            Some(name) => Err(format!("save {name}: no operation answered it")),
            None => Ok(()),
        }
    }

    fn check(&self, d: &Directives, answer: &Value) -> Result<(), String> {
        let errors = answer.get("errors");
        match (&d.expect_error, errors) {
            (None, Some(_)) => return Err(format!("answered errors: {answer}")),
            (None, None) if answer.get("data").is_none() => {
                return Err(format!("answered {answer}"));
            }
            (Some(code), None) => return Err(format!("expected {code}, answered {answer}")),
            (Some(code), Some(errors)) if harness::code(&errors[0]) != code => {
                return Err(format!("expected {code}, answered {answer}"));
            }
            _ => {}
        }
        for (path, expected) in &d.expect {
            let expected = &substitute(expected, &self.saved)?;
            // with `*`, one of the values is enough
            if !at_all(&answer["data"], path).contains(&expected) {
                return Err(format!("expected {path} = {expected}, answered {answer}"));
            }
        }
        Ok(())
    }

    fn signatures(&self, body: &str) -> Result<(), String> {
        let mut problems = Vec::new();
        for sig in body.lines().filter_map(signature) {
            let Some((args, ty)) = self.roots.get(&sig.name) else {
                problems.push(format!("`{}` is not a root field of the schema", sig.name));
                continue;
            };
            for arg in &sig.args {
                if !args.contains(arg) {
                    problems.push(format!("`{}` has no argument `{arg}`", sig.name));
                }
            }
            if !sig.ty.is_empty() && &sig.ty != ty {
                problems.push(format!("`{}` returns {ty}, not {}", sig.name, sig.ty));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The commands of a shell block (`\` continuations joined), each with the output a
    /// console block shows after it: there, commands are the `$ ` lines.
    fn commands(block: &Block) -> Vec<(String, Vec<String>)> {
        let console = block.lang == "console";
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut current = String::new();
        for line in block.body.lines() {
            let line = if current.is_empty() {
                let trimmed = line.trim_start();
                match (console, trimmed.strip_prefix("$ ")) {
                    (true, Some(cmd)) => cmd,
                    (true, None) => {
                        if let Some((_, shown)) = out.last_mut() {
                            shown.push(line.to_owned());
                        }
                        continue;
                    }
                    (false, _) => trimmed,
                }
            } else {
                line.trim()
            };
            if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part.trim_end());
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    out.push((std::mem::take(&mut current), Vec::new()));
                }
            }
        }
        out
    }

    fn shell(&mut self, block: &Block) -> Result<(), String> {
        let bin = Path::new(env!("CARGO_BIN_EXE_shoal"))
            .parent()
            .unwrap()
            .to_owned();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for (command, shown) in Self::commands(block) {
            if command.trim_end_matches('&').trim() == "cargo xtask run" {
                continue; // the demo server is running
            }
            if let Some(assignment) = command.strip_prefix("export ") {
                // the shell expands the value (`"$PWD/target/debug:$PATH"`)
                let (k, _) = assignment.split_once('=').ok_or("export without =")?;
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("{command}; printf %s \"${k}\""))
                    .current_dir(repo())
                    .env("PATH", &path)
                    .envs(self.env.iter())
                    .output()
                    .map_err(|e| format!("`{command}`: {e}"))?;
                let mut value = String::from_utf8_lossy(&out.stdout).into_owned();
                if k == "PATH" {
                    // the binary this test was built with comes first, wherever the target
                    // folder is
                    value = format!("{}:{value}", bin.display());
                }
                self.env.insert(k.to_owned(), value);
                continue;
            }
            let command = command.replace(
                "http://127.0.0.1:8080",
                &format!("http://{}", self.demo.addr),
            );
            let out = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .current_dir(repo())
                .env_remove("SHOAL_CONFIG")
                .env("PATH", &path)
                .envs(self.demo.env.iter().map(|(k, v)| (k, v)))
                .envs(self.env.iter())
                .output()
                .map_err(|e| format!("`{command}`: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || stdout.contains("\"errors\"") {
                return Err(format!(
                    "`{command}` exited with {}:\n{stdout}\n{stderr}",
                    out.status
                ));
            }
            let printed: Vec<String> = stdout
                .lines()
                .chain(stderr.lines())
                .map(normalise)
                .collect();
            for line in &shown {
                // a progress line depends on the terminal and the clock
                if line
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.ends_with('%'))
                {
                    continue;
                }
                if !printed.contains(&normalise(line)) {
                    return Err(format!(
                        "`{command}` did not print `{line}`; it printed:\n{stdout}{stderr}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An output line with what differs from run to run (ids, durations, rates) blanked:
/// `import 01a2…-…c7 completed: 4 rows read in 0.2 s (20 rows/s)` →
/// `import <n> completed: 4 rows read in <n> s (<n> rows/s)`.
fn normalise(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let timed = |w: Option<&&str>| {
        w.is_some_and(|w| matches!(w.trim_end_matches(')'), "s" | "rows/s" | "ms"))
    };
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let core = w.trim_matches(|c: char| "(),".contains(c));
            let uuid = core.len() == 36 && core.chars().filter(|c| *c == '-').count() == 4;
            let number = !core.is_empty()
                && core
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ',');
            if uuid || (number && timed(words.get(i + 1))) {
                w.replace(core, "<n>")
            } else {
                (*w).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A block that shows a shipped file holds exactly that file's text, its leading comment
/// lines aside.
fn same_as_file(block: &Block, file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(repo().join(file)).map_err(|e| format!("{file}: {e}"))?;
    let body: String = text
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    if body.trim() == block.body.trim() {
        Ok(())
    } else {
        Err(format!("the block differs from {file}"))
    }
}

async fn docs_run(backend: Backend) {
    // one backend at a time: the shell examples write next to the files they read
    // (`docs/examples/*.errors.csv`)
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    // what earlier runs wrote beside the examples must not stand in for this run's output
    for entry in std::fs::read_dir(repo().join("docs/examples"))
        .unwrap()
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(".errors.csv") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let Some(demo) = Demo::start(backend).await else {
        return;
    };
    let roots = root_fields(&demo).await;
    let mut runner = Runner {
        demo: &demo,
        saved: BTreeMap::new(),
        roots,
        env: BTreeMap::new(),
        ran: 0,
        skipped: Vec::new(),
    };
    let mut failures = Vec::new();
    for path in documents() {
        let name = path
            .strip_prefix(repo())
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let blocks = match blocks(&name, &text) {
            Ok(b) => b,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for block in blocks {
            let at = format!("{}:{}", block.file, block.line);
            if let Some(why) = &block.directives.skip {
                runner.skipped.push(format!("{at}: {why}"));
                continue;
            }
            if let Some(file) = &block.directives.file {
                runner.ran += 1;
                if let Err(e) = same_as_file(&block, file) {
                    failures.push(format!("{at}: {e}"));
                }
                continue;
            }
            let outcome = match block.lang.as_str() {
                "graphql" => runner.graphql(&block).await,
                "sh" | "console" if block.directives.run => runner.shell(&block),
                _ => continue,
            };
            runner.ran += 1;
            if let Err(e) = outcome {
                failures.push(format!("{at}: {e}"));
            }
        }
    }
    eprintln!(
        "docs: {} blocks ran, {} skipped:\n  {}",
        runner.ran,
        runner.skipped.len(),
        runner.skipped.join("\n  ")
    );
    let ran = runner.ran;
    drop(runner);
    demo.stop().await;
    assert!(
        failures.is_empty(),
        "{} doc example(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran > 20, "only {ran} blocks ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_docs_runs_on_sqlite() {
    docs_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_docs_runs_on_postgres() {
    docs_run(Backend::Postgres).await;
}

#[cfg(test)]
mod reading {
    use super::*;

    #[test]
    fn a_doctest_comment_belongs_to_the_block_after_it() {
        let md = "Intro\n\n<!-- doctest\ntenant: demo-retail\nsave: id = a.id\n-->\n\n```graphql\n{ a { id } }\n```\n\ntext\n\n```graphql\n{ b }\n```\n";
        let b = blocks("x.md", md).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].line, 8);
        assert_eq!(b[0].directives.tenant.as_deref(), Some("demo-retail"));
        assert_eq!(b[0].directives.save, vec![("id".into(), "a.id".into())]);
        assert_eq!(b[1].directives, Directives::default());
    }

    #[test]
    fn a_comment_followed_by_prose_applies_to_nothing() {
        let md = "<!-- doctest: skip: later -->\nprose\n```graphql\n{ a }\n```\n";
        assert_eq!(blocks("x.md", md).unwrap()[0].directives.skip, None);
    }

    #[test]
    fn unknown_directives_and_bare_skips_name_their_line() {
        let e = blocks("x.md", "a\n<!-- doctest: frobnicate -->\n").unwrap_err();
        assert!(e.starts_with("x.md:2:") && e.contains("frobnicate"), "{e}");
        let e = blocks("x.md", "<!-- doctest: skip -->\n").unwrap_err();
        assert!(e.contains("say why"), "{e}");
    }

    #[test]
    fn operations_and_their_variables_are_found_and_signatures_are_not_operations() {
        assert_eq!(
            operations(
                "query Job($id: ID!, $n: Int) { a(id: $id) { b } }\nmutation M { c(s: \"{\") }"
            ),
            Some(vec![
                Operation {
                    name: Some("Job".into()),
                    variables: vec!["id".into(), "n".into()],
                },
                Operation {
                    name: Some("M".into()),
                    variables: vec![],
                },
            ])
        );
        assert_eq!(
            operations("# a comment\n{ a }"),
            Some(vec![Operation {
                name: None,
                variables: vec![],
            }])
        );
        assert_eq!(
            operations("customer(id: ID!): Customer!  # NOT_FOUND if absent"),
            None
        );
        assert_eq!(
            signature(
                "customers(first, after, filter: CustomerFilterInput): CustomerConnection! # x"
            ),
            Some(Signature {
                name: "customers".into(),
                args: vec!["first".into(), "after".into(), "filter".into()],
                ty: "CustomerConnection!".into(),
            })
        );
    }

    #[test]
    fn a_star_path_reaches_every_item() {
        let v =
            json!({ "c": { "tags": [{ "tag": { "name": "a" } }, { "tag": { "name": "b" } }] } });
        assert_eq!(
            at_all(&v, "c.tags.*.tag.name"),
            vec![&json!("a"), &json!("b")]
        );
        assert_eq!(at_all(&v, "c.tags.1.tag.name"), vec![&json!("b")]);
        assert_eq!(at_all(&v, "c.none.*.x"), Vec::<&Value>::new());
    }

    #[test]
    fn console_blocks_run_their_prompts_and_shell_blocks_their_lines() {
        let console = Block {
            lang: "console".into(),
            body: "$ shoal import a.csv \\\n    --demo\nimport 01 done\n".into(),
            ..Block::default()
        };
        assert_eq!(
            Runner::commands(&console),
            vec![(
                "shoal import a.csv --demo".to_owned(),
                vec!["import 01 done".to_owned()]
            )]
        );
        let sh = Block {
            lang: "sh".into(),
            body: "# start\nexport K=v\ncurl -s x \\\n  -d '{}'\n".into(),
            ..Block::default()
        };
        assert_eq!(
            Runner::commands(&sh),
            vec![
                ("export K=v".to_owned(), vec![]),
                ("curl -s x -d '{}'".to_owned(), vec![])
            ]
        );
    }

    #[test]
    fn output_lines_are_compared_without_ids_and_timings() {
        assert_eq!(
            normalise(
                "import 01a23616-e5c0-7a41-9c3e-5b8f0d2a61c7 completed: 4 rows read in 0.2 s (20 rows/s)"
            ),
            "import <n> completed: 4 rows read in <n> s (<n> rows/s)"
        );
        assert_eq!(normalise("  created 2 · merged 1"), "created 2 · merged 1");
    }
}
