//! The `shoal` binary: config errors, `config check`, `migrate`, `schema print`, and the
//! README's run command (`serve --demo`) end to end.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use serde_json::json;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shoal(args: &[&str], config: &str, dir: &PathBuf) -> std::process::Output {
    let file = dir.join("shoal.toml");
    std::fs::write(&file, config).unwrap();
    Command::new(SHOAL)
        .args(args)
        .arg("--config")
        .arg(&file)
        .current_dir(dir)
        .env_remove("SHOAL_CONFIG")
        .output()
        .expect("run shoal")
}

#[test]
fn config_errors_stop_the_process_before_it_binds() {
    let dir = temp_dir("bad-config");
    for (config, expected) in [
        ("[server]\nbind = \"127.0.0.1:0\"\nbnd = 1\n", "bnd"),
        ("[limits]\nmax_page_size = \"lots\"\n", "max_page_size"),
        (
            "[tenants.x]\nname = \"X\"\ntime_zone = \"Nowhere/Land\"\n",
            "time_zone",
        ),
    ] {
        let out = shoal(&["serve"], config, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(
            stderr.contains(expected),
            "`{stderr}` should name `{expected}`"
        );
        assert!(
            stderr.contains("shoal.toml"),
            "`{stderr}` should name the file"
        );
        assert!(
            !stdout.contains("listening"),
            "must not have started: {stdout}"
        );
    }
}

#[test]
fn config_check_prints_the_effective_config_without_secrets() {
    let dir = temp_dir("check");
    let config = "[storage]\nurl = \"postgres://shoal:hunter2@db.internal/shoal\"\n\
        [tenants.acme]\nname = \"Acme\"\ntime_zone = \"Europe/Berlin\"\n\
        [tenants.acme.users.bot]\nname = \"Bot\"\nrole = \"admin\"\n\
        [tenants.acme.api_keys.ci]\nuser = \"bot\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n";
    let out = shoal(&["config", "check"], config, &dir);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("postgres://shoal:***@db.internal/shoal"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("9f86d081"),
        "{stdout}"
    );
    assert!(stdout.contains("time_zone = \"Europe/Berlin\""), "{stdout}");
}

/// The README's run command: a fresh data folder, demo data, a printed key, real queries.
#[test]
fn serve_demo_seeds_and_answers_with_the_printed_key() {
    let dir = temp_dir("demo");
    let key = "readme-demo-key-0123456789";
    let mut child = Command::new(SHOAL)
        .args(["serve", "--demo"])
        .current_dir(&dir)
        .env_remove("SHOAL_CONFIG")
        .env("SHOAL_SERVER__BIND", "127.0.0.1:0")
        .env("SHOAL_DEMO_API_KEY", key)
        .env("SHOAL_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shoal");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    let mut printed_key = false;
    for line in lines.by_ref().take(10) {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Shoal is listening on ") {
            url = Some(rest.trim().to_owned());
        }
        printed_key |= line.contains(key);
        if printed_key && url.is_some() {
            break;
        }
    }
    assert!(printed_key, "the demo key is printed");
    let url = url.expect("the URL is printed");
    let addr = url.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body = json!({ "query": "{ customers(filter: { stages: [LOYAL] }, first: 1) { totalCount edges { node { timeline(first: 1) { edges { node { type } } } } } } all: customers { totalCount } }" }).to_string();
    let (status, response) = runtime.block_on(crate::harness::http(
        addr,
        "POST",
        "/graphql",
        &format!("Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"),
        &body,
    ));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(response["data"]["all"]["totalCount"], 3000, "{response}");
    assert!(
        response["data"]["customers"]["totalCount"]
            .as_i64()
            .unwrap()
            > 100
    );

    // the database was created under ./data and is already migrated
    let out = Command::new(SHOAL)
        .arg("migrate")
        .current_dir(&dir)
        .env_remove("SHOAL_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 0 migration(s)"));
    assert!(dir.join("data/shoal.db").is_file());
}

/// The data commands reach the demo tenant with `--demo` (seeding it on first use, as
/// `serve --demo` does); without it, the refusal says how.
#[test]
fn data_commands_reach_the_demo_tenant_with_demo() {
    let dir = temp_dir("demo-data");
    let run = |args: &[&str]| {
        Command::new(SHOAL)
            .args(args)
            .current_dir(&dir)
            .env_remove("SHOAL_CONFIG")
            .env("SHOAL_LOG__LEVEL", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["report", "quality", "--tenant", "demo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no tenant `demo`") && stderr.contains("add --demo"),
        "{stderr}"
    );
    let out = run(&["report", "quality", "--demo", "--tenant", "demo", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("seeded the demo tenant with 3000 customers"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["customers"], 3000, "{report}");
    // the second command finds the same demo, seeded once
    let out = run(&["dedupe", "scan", "--demo", "--tenant", "demo"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("seeded"));
}

#[test]
fn schema_print_matches_the_checked_in_sdl() {
    let out = Command::new(SHOAL)
        .args(["schema", "print"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let live = String::from_utf8(out.stdout).unwrap();
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/graphql/schema.graphql");
    if std::env::var("SHOAL_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &live).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        live == checked_in,
        "the live GraphQL schema differs from schema/graphql/schema.graphql.\n\
         If the change is deliberate, refresh the file with `cargo xtask schema` and review the diff."
    );
}

/// `shoal plugin test` runs fixtures through the real runtime: a passing set, then a
/// fixture whose expectation is wrong, which fails with a diff and a non-zero exit.
#[test]
fn plugin_test_runs_fixtures_and_shows_a_diff_on_failure() {
    let wasm = crate::harness::plugin_wasm("sample");
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/plugins/sample/fixtures");
    let dir = temp_dir("plugin-test");
    let run = |fixtures: &PathBuf| {
        Command::new(SHOAL)
            .args(["plugin", "test"])
            .arg(&wasm)
            .arg(fixtures)
            .current_dir(&dir)
            .env_remove("SHOAL_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&fixtures);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("fuel ")
            && stdout.contains("/ 10000000")
            && stdout.contains("MiB / 16.0 MiB"),
        "{stdout}"
    );
    assert!(
        stdout.contains("log [info] settling 2 lines of bill B-100"),
        "plugin logs are shown: {stdout}"
    );

    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let text = std::fs::read_to_string(fixtures.join("settle-tier1.json"))
        .unwrap()
        .replace("\"250.00\"", "\"251.00\"");
    std::fs::write(broken.join("settle-tier1.json"), text).unwrap();
    let out = run(&broken);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL settle-tier1.json"), "{stdout}");
    assert!(
        stdout.contains("-       \"amount\": \"251.00\","),
        "expected side of the diff: {stdout}"
    );
    assert!(
        stdout.contains("+       \"amount\": \"250.00\","),
        "actual side of the diff: {stdout}"
    );
}

#[test]
fn plugin_inspect_describes_a_module_and_refuses_a_future_abi() {
    let dir = temp_dir("inspect");
    let inspect = |name: &str| {
        Command::new(SHOAL)
            .args(["plugin", "inspect"])
            .arg(crate::harness::plugin_wasm(name))
            .current_dir(&dir)
            .env_remove("SHOAL_CONFIG")
            .output()
            .unwrap()
    };
    let out = inspect("sample");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for expected in [
        "abi           shoal:plugin@1.1.0",
        "id            sample",
        "repeat-buyer",
        "welcome",
        "wasi:cli/stderr",
    ] {
        assert!(stdout.contains(expected), "`{expected}` in {stdout}");
    }
    let out = inspect("future-abi");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("built with SDK 2.0 (plugin ABI 2.0.0); this host supports 1.0–1.1"),
        "{stderr}"
    );
}
