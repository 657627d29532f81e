// figment::Jail closures must return figment::Error, which clippy finds large; not ours to shrink.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;

use super::*;

const TENANT: &str = r#"
[tenants.acme]
name = "Acme"
time_zone = "Asia/Shanghai"
[tenants.acme.users.bot]
name = "Bot"
role = "admin"
[tenants.acme.api_keys.ci]
user = "bot"
env = "ACME_KEY"
"#;

fn load_file(jail: &mut Jail, toml: &str) -> Result<Config, ConfigError> {
    jail.create_file("shoal.toml", toml).expect("write config");
    load(
        &ConfigSource {
            file: Some(PathBuf::from("shoal.toml")),
        },
        &[],
    )
}

fn expect_error(toml: &str, env: &[(&str, &str)], expected: &[&str]) {
    Jail::expect_with(|jail| {
        for (k, v) in env {
            jail.set_env(k, v);
        }
        let err = load_file(jail, toml)
            .expect_err("config must be refused")
            .to_string();
        for part in expected {
            assert!(err.contains(part), "error `{err}` should mention `{part}`");
        }
        Ok(())
    });
}

#[test]
fn defaults_alone_are_valid() {
    Jail::expect_with(|_| {
        let config = load(&ConfigSource::default(), &[]).expect("defaults load");
        assert_eq!(config.storage.url, "sqlite://data/shoal.db");
        assert_eq!(config.limits.max_batch_events, 1000);
        // one demo tenant per industry, its module on, no key (`serve --demo` gives one)
        let ids: Vec<&str> = config.tenants.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "demo-clinic",
                "demo-education",
                "demo-finance",
                "demo-retail"
            ]
        );
        for (id, t) in &config.tenants {
            assert!(t.api_keys.is_empty(), "{id}");
            let industry = id.strip_prefix("demo-").unwrap();
            assert!(t.modules[industry].enabled, "{id}");
        }
        Ok(())
    });
}

#[test]
fn file_then_env_override_defaults() {
    Jail::expect_with(|jail| {
        jail.set_env("ACME_KEY", "a-very-long-secret-key");
        jail.set_env("SHOAL_LIMITS__MAX_PAGE_SIZE", "50");
        jail.set_env("SHOAL_CONFIG", "ignored: not a config key");
        let config = load_file(
            jail,
            &format!("[server]\nbind = \"0.0.0.0:9000\"\n{TENANT}"),
        )
        .expect("valid config");
        assert_eq!(config.server.bind.port(), 9000);
        assert_eq!(config.limits.max_page_size, 50);
        let key = &config.tenants["acme"].api_keys["ci"];
        assert_eq!(
            key.sha256.as_deref(),
            Some(load::sha256_hex("a-very-long-secret-key").as_str())
        );
        Ok(())
    });
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    expect_error("[server]\nbnd = \"x\"\n", &[], &["bnd", "shoal.toml"]);
}

#[test]
fn wrong_type_names_the_key_and_the_file() {
    expect_error(
        "[limits]\nmax_page_size = \"many\"\n",
        &[],
        &["max_page_size", "shoal.toml"],
    );
}

#[test]
fn unknown_env_key_names_the_variable() {
    expect_error("", &[("SHOAL_SERVER__PORT", "1")], &["port", "SHOAL_"]);
}

#[test]
fn bad_time_zone_is_refused() {
    expect_error(
        &TENANT.replace("Asia/Shanghai", "Mars/Olympus"),
        &[("ACME_KEY", "a-very-long-secret-key")],
        &["time_zone", "shoal.toml"],
    );
}

#[test]
fn api_key_env_must_be_set() {
    expect_error(
        TENANT,
        &[],
        &["tenants.acme.api_keys.ci.env", "ACME_KEY", "shoal.toml"],
    );
}

#[test]
fn api_key_must_name_a_known_user() {
    expect_error(
        &TENANT.replace("user = \"bot\"", "user = \"ghost\""),
        &[("ACME_KEY", "a-very-long-secret-key")],
        &["tenants.acme.api_keys.ci.user", "ghost"],
    );
}

#[test]
fn a_key_configured_twice_is_refused() {
    let twice = format!(
        "{TENANT}\n[tenants.other]\nname = \"Other\"\ntime_zone = \"UTC\"\n\
         [tenants.other.users.bot]\nname = \"Bot\"\nrole = \"admin\"\n\
         [tenants.other.api_keys.same]\nuser = \"bot\"\nenv = \"ACME_KEY\"\n"
    );
    expect_error(
        &twice,
        &[("ACME_KEY", "a-very-long-secret-key")],
        &[
            "tenants.other.api_keys.same",
            "the same API key as tenants.acme.api_keys.ci",
        ],
    );
}

#[test]
fn storage_url_scheme_is_checked() {
    expect_error(
        "[storage]\nurl = \"mysql://x\"\n",
        &[],
        &["storage.url", "shoal.toml"],
    );
}

#[test]
fn notification_durations_are_bounded() {
    expect_error(
        "[notify]\nretry_schedule_seconds = [0, 99999999999]\n",
        &[],
        &["notify.retry_schedule_seconds[1]", "between 0 and 2592000"],
    );
    expect_error(
        "[notify]\ntimeout_ms = 9223372036854775807\n",
        &[],
        &["notify.timeout_ms"],
    );
    expect_error(
        "[notify]\nretry_schedule_seconds = []\n",
        &[],
        &["notify.retry_schedule_seconds"],
    );
}

#[test]
fn redacted_config_hides_secrets() {
    Jail::expect_with(|jail| {
        jail.set_env("ACME_KEY", "a-very-long-secret-key");
        let config = load_file(
            jail,
            &format!("[storage]\nurl = \"postgres://shoal:hunter2@db/shoal\"\n{TENANT}"),
        )
        .expect("valid config");
        let shown = config.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&load::sha256_hex("a-very-long-secret-key")));
        assert!(shown.contains("postgres://shoal:***@db/shoal"));
        assert!(shown.contains("ACME_KEY"));
        Ok(())
    });
}

/// Checks the rows of `table`'s keys (and of its sub-tables' keys, `plugins.trust.mode`);
/// returns how many.
fn documented(docs: &str, path: &str, table: &toml::Table) -> usize {
    let mut checked = 0;
    for (key, value) in table {
        if let Some(inner) = value.as_table() {
            checked += documented(docs, &format!("{path}.{key}"), inner);
            continue;
        }
        let row = format!("| `{path}.{key}` | `{value}` |");
        assert!(
            docs.contains(&row),
            "docs/config.md lacks the row starting `{row}`"
        );
        checked += 1;
    }
    checked
}

/// docs/config.md documents every built-in key with its default value; this fails when a
/// key is added or a default changes without the reference following.
#[test]
fn every_default_is_documented() {
    let docs = include_str!("../../../../docs/config.md");
    let defaults: toml::Table = DEFAULT_TOML.parse().expect("defaults parse");
    let mut checked = 0;
    for (section, table) in &defaults {
        // the demo tenants are examples, described in their own section
        if section == "tenants" {
            continue;
        }
        let Some(table) = table.as_table() else {
            continue;
        };
        checked += documented(docs, section, table);
    }
    assert!(checked >= 10, "only {checked} defaults found");
}

#[test]
fn duplicate_policy_and_quality_thresholds_are_checked() {
    for (extra, expected) in [
        (
            "[tenants.acme.dedupe]\nsource_priority = [\"wecom\", \"weibo\"]\n",
            &[
                "tenants.acme.dedupe.source_priority[1]",
                "`weibo` is not a channel",
            ][..],
        ),
        (
            "[tenants.acme.dedupe]\nauto_merge = [\"name\"]\n",
            &["auto_merge"][..],
        ),
        (
            "[tenants.acme.dedupe]\nconflict_rule = \"newest\"\n",
            &["conflict_rule"][..],
        ),
        (
            "[tenants.acme.dedupe]\nmin_score = 101\n",
            &["tenants.acme.dedupe.min_score"][..],
        ),
        (
            "[tenants.acme.quality]\nmax_missing_contact_rate = 15\n",
            &["tenants.acme.quality.max_missing_contact_rate", "0.15"][..],
        ),
    ] {
        expect_error(&format!("{TENANT}{extra}"), &[], expected);
    }
    Jail::expect_with(|jail| {
        jail.set_env("ACME_KEY", "a-very-long-secret-key");
        let config = load_file(
            jail,
            &format!("{TENANT}[tenants.acme.dedupe]\nauto_merge = [\"identity\"]\nconflict_rule = \"source_priority\"\n"),
        )
        .expect("valid config");
        let dedupe = &config.tenants["acme"].dedupe;
        assert_eq!(dedupe.auto_merge, [crate::config::MatchKey::Identity]);
        assert_eq!(
            dedupe.conflict_rule,
            crate::config::ConflictRule::SourcePriority
        );
        assert_eq!(dedupe.min_score, 50, "defaults fill the rest");
        assert_eq!(
            config.tenants["acme"].quality.max_missing_contact_rate,
            0.15
        );
        Ok(())
    });
}

#[test]
fn sealed_attributes_take_module_field_names_and_refuse_bad_keys() {
    Jail::expect_with(|jail| {
        jail.set_env("ACME_KEY", "0123456789abcdef0123");
        let config = load_file(
            jail,
            &format!(
                "{TENANT}[tenants.acme.contact]\nsealed_attributes = [\"attributes.id_number\", \"bank_account\", \"id_number\"]\n"
            ),
        )
        .expect("loads");
        assert_eq!(
            config.tenants["acme"].contact.sealed_attributes,
            ["bank_account", "id_number"]
        );
        Ok(())
    });
    expect_error(
        &format!("{TENANT}[tenants.acme.contact]\nsealed_attributes = [\"a\\\"b\"]\n"),
        &[("ACME_KEY", "0123456789abcdef0123")],
        &["tenants.acme.contact.sealed_attributes[0]", "quotes"],
    );
}
