//! Project automation, the `cargo xtask` way: plain Rust, no dependencies.
//!
//! - `cargo xtask run [ARGS…]`  set up, build the industry modules, then run the server on
//!   SQLite with demo data and every module loaded (extra arguments go to `shoal serve`);
//! - `cargo xtask plugins`      build every module in `plugins/` into `target/plugins/`;
//! - `cargo xtask plugin new N` scaffold `plugins/N/`, a module that builds and passes tests;
//! - `cargo xtask test`         set up, then run the whole test suite (SQLite and PostgreSQL);
//! - `cargo xtask schema`       refresh the checked-in GraphQL SDL;
//! - `cargo xtask bench`        run the benchmarks (release build; not part of `test`);
//! - `cargo xtask screenshots`  save the console's pages, drawn by headless chromium in the
//!   browser test, under `docs/screenshots/` (the README shows them).

mod plugins;
mod tidy;

use std::{
    env,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

const WASM_TARGET: &str = "wasm32-wasip2";
const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("schema") => schema(),
        Some("plugins") => plugins::build(),
        Some("plugin") => match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("new"), Some(name)) => plugins::new(name),
            _ => Err("usage: cargo xtask plugin new <name>".into()),
        },
        Some("bench") => bench(&args[1..]),
        Some("screenshots") => screenshots(),
        _ => {
            eprintln!(
                "usage: cargo xtask <run [ARGS…] | test [ARGS…] | plugins | plugin new <name> | schema | bench [ARGS…] | screenshots>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub(crate) fn status(mut cmd: Command) -> Result {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// The toolchain target industry plugins are built for.
pub(crate) fn ensure_wasm_target() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]);
    status(cmd)
}

/// Python 3 with the `cryptography` and `argon2-cffi` packages: the tests check Shoal's
/// formats with them, independently of Shoal's own code (WeCom callbacks encrypted by
/// `tests/fixtures/wecom/encrypt.py`, staff password hashes by `tests/fixtures/password_hash.py`).
fn ensure_python_cryptography() -> Result {
    let has = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    if has(Command::new("python3").args(["-c", "import cryptography, argon2"])) {
        return Ok(());
    }
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "install",
        "--user",
        "--quiet",
        "cryptography",
        "argon2-cffi",
    ]);
    status(cmd).map_err(|e| {
        format!("{e}: the tests need python3 with the `cryptography` and `argon2-cffi` packages")
    })
}

/// The GraphQL over HTTP reference audit (`tests/fixtures/graphql-http`), installed from its
/// lockfile with `npm ci` when missing or older than the lockfile.
fn ensure_graphql_http_audit() -> Result {
    let dir = root().join("tests/fixtures/graphql-http");
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    if installed.is_some() && installed >= modified(dir.join("package-lock.json")) {
        return Ok(());
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir);
    status(cmd).map_err(|e| format!("{e}: the HTTP tests run graphql-http's audit with node"))
}

/// A headless browser for the page tests: Debian's `chromium` and `chromedriver` (the tests
/// drive it over WebDriver), installed with apt when absent.
fn ensure_chromium() -> Result {
    let has = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("chromium") && has("chromedriver") {
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver"]).map_err(|e| {
        format!("{e}: the page tests need a headless browser (`apt-get install chromium` as root)")
    })
}

/// Installs Debian packages, refreshing the package lists once if they are older than the
/// mirror.
fn apt_install(packages: &[&str]) -> Result {
    let install = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive");
        status(cmd)
    };
    install().or_else(|_| {
        let mut update = Command::new("apt-get");
        update.args(["update", "-q"]);
        status(update)?;
        install()
    })
}

fn run(extra: &[String]) -> Result {
    let modules = plugins::build_for_run()?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--package",
        "shoal-server",
        "--bin",
        "shoal",
        "--",
        "serve",
        "--demo",
    ]);
    cmd.args(extra);
    if env::var_os("SHOAL_PLUGINS__DIR").is_none() {
        cmd.env("SHOAL_PLUGINS__DIR", modules);
    }
    // the demo trusts the development key the modules were just signed with
    if env::var_os("SHOAL_PLUGINS__TRUST__KEYS").is_none() {
        cmd.env("SHOAL_PLUGINS__TRUST__KEYS", demo_trust_keys()?);
    }
    status(cmd)
}

/// `plugins.trust.keys` trusting the development key the modules were signed with.
fn demo_trust_keys() -> Result<String> {
    let key = plugins::dev_key()?;
    Ok(format!(
        "[{{id=\"{}\",public_key=\"{}\",modules=[\"*\"]}}]",
        key.id,
        key.public_key()
    ))
}

fn postgres_reachable(url: &str) -> bool {
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    TcpStream::connect(host_port).is_ok()
}

fn test(extra: &[String]) -> Result {
    ensure_wasm_target()?;
    ensure_python_cryptography()?;
    ensure_graphql_http_audit()?;
    ensure_chromium()?;
    let url = env::var("SHOAL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.into());
    let ci = env::var("CI").is_ok_and(|v| v == "true");
    if !postgres_reachable(&url) {
        if ci {
            return Err(format!(
                "PostgreSQL at {url} is unreachable and CI=true: the PostgreSQL suite must run in CI"
            ));
        }
        eprintln!("\n==========================================================================");
        eprintln!("  PostgreSQL at {url} is unreachable.");
        eprintln!("  Running the SQLite suite only; every PostgreSQL test will be SKIPPED.");
        eprintln!("  Set SHOAL_TEST_POSTGRES_URL or start PostgreSQL to run both backends.");
        eprintln!("==========================================================================\n");
    }
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]).args(extra);
    cmd.env("SHOAL_TEST_POSTGRES_URL", &url);
    status(cmd)
}

fn schema() -> Result {
    let out = cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "shoal-server",
            "--bin",
            "shoal",
            "--",
            "schema",
            "print",
        ])
        .output()
        .map_err(|e| format!("cannot run shoal: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let path = root().join("schema/graphql/schema.graphql");
    std::fs::write(&path, &out.stdout)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "xtask: wrote {}; review the diff before committing",
        path.display()
    );
    Ok(())
}

/// Runs the console's browser test with `SHOAL_SCREENSHOTS`: each page it opens is saved as
/// a PNG under `docs/screenshots/`.
fn screenshots() -> Result {
    ensure_chromium()?;
    ensure_cjk_fonts()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--package",
        "shoal-server",
        "--test",
        "e2e",
        "--",
        "console::",
    ]);
    cmd.env("SHOAL_SCREENSHOTS", root().join("docs/screenshots"));
    status(cmd)
}

/// A font with Chinese glyphs, so the screenshots show text rather than boxes.
fn ensure_cjk_fonts() -> Result {
    let has = Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if has {
        return Ok(());
    }
    apt_install(&["fonts-noto-cjk"])
        .map_err(|e| format!("{e}: the screenshots need a Chinese font"))
}

fn bench(extra: &[String]) -> Result {
    ensure_wasm_target()?;
    // the plugin benchmark runs the test modules, built as components
    for package in ["shoal-plugin-sample", "shoal-plugin-misbehave"] {
        let mut build = plugins::wasm_build(package);
        build.env("CARGO_TARGET_DIR", root().join("target/plugin-fixtures"));
        status(build)?;
    }
    let mut cmd = cargo();
    cmd.args(["bench", "--package", "shoal-server"]).args(extra);
    let url = env::var("SHOAL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.into());
    cmd.env("SHOAL_TEST_POSTGRES_URL", url);
    // the HTTP load run serves the demo with the industry modules, as `cargo xtask run` does
    let runs_http = extra
        .windows(2)
        .any(|w| w[0] == "--bench" && w[1] == "http")
        || !extra.iter().any(|a| a == "--bench");
    if runs_http {
        cmd.env("SHOAL_PLUGINS__DIR", plugins::build_for_run()?);
        cmd.env("SHOAL_PLUGINS__TRUST__KEYS", demo_trust_keys()?);
    }
    status(cmd)
}
