//! Trust, as a tenant's staff would try it: an agent cannot reach a customer outside its
//! scope through a dry run, a bulk tag or an opt-out; what a dry run shows is masked for its
//! reader; no number from input can crash the host; a webhook step reaches neither the
//! host's network nor the body's structure; a poisoned enrolment is parked while every
//! other tenant's SOPs go on, before and after a restart.

use std::time::Duration;

use serde_json::{Value, json};
use shoal_base::config::Config;

use crate::harness::{ALPHA, BETA, Backend, TestServer, add_key, add_user, code, fields};

const AGENT: &str = "alpha-agent-key-00000000004";
const MASKED: &str = "alpha-masked-key-0000000005";

/// Alpha gets a key for `agent-a` (scope: own customers) and for `masked`, who reaches every
/// customer but sees names and phones masked and `attributes.income` hidden.
fn keys(config: &mut Config) {
    add_user(
        config,
        "masked",
        r#"
        name = "Masked"
        scopes = { "*" = "all" }
        fields = { displayName = "masked", phones = "masked", "attributes.income" = "hidden" }
        actions = ["create", "update"]
        "#,
        MASKED,
    );
    add_key(config, "agent-a", AGENT);
}

async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, keys).await
}

/// A customer of the admin's, nobody's in the agent's scope.
async fn someone_elses(s: &TestServer) -> String {
    s.create_customer(
        ALPHA,
        json!({
            "displayName": "钱七", "phones": ["13912345678"], "emails": ["qian@example.com"],
            "sourceChannel": "WEB", "attributes": { "income": 880000 }
        }),
    )
    .await
}

fn leaks(response: &Value) -> Vec<&'static str> {
    let text = response.to_string();
    ["13912345678", "qian@example.com", "880000", "钱七"]
        .into_iter()
        .filter(|secret| text.contains(secret))
        .collect()
}

const SIMULATE: &str = "query($c: [ID!], $d: SopDefinitionInput, $to: DateTime!) { simulateSop(definition: $d, customerIds: $c, to: $to) { customerId outcome detail } }";

/// A week from now: the end of every simulated period.
fn to() -> String {
    (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339()
}

fn revealing_definition() -> Value {
    json!({ "steps": [ { "id": "t", "action": { "createTask": {
        "title": "{{customer.phone}} {{customer.email}} {{customer.attributes.income}}",
        "assignee": "owner" } } } ] })
}

async fn a_dry_run_of_a_customer_out_of_scope_is_not_found(s: &TestServer) {
    let target = someone_elses(s).await;
    let r = s
        .gql(
            AGENT,
            SIMULATE,
            json!({ "c": [target], "d": revealing_definition(), "to": to() }),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "NOT_FOUND", "{r}");
    assert!(
        leaks(&r).is_empty(),
        "the dry run showed {:?}: {r}",
        leaks(&r)
    );
}

async fn a_dry_run_shows_fields_as_its_reader_may_see_them(s: &TestServer) {
    let target = someone_elses(s).await;
    let r = s
        .ok(
            MASKED,
            SIMULATE,
            json!({ "c": [target], "d": revealing_definition(), "to": to() }),
        )
        .await;
    let detail = r["simulateSop"][0]["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("139****5678"), "phone masked: {detail}");
    assert!(!detail.contains("13912345678"), "{detail}");
    assert!(!detail.contains("880000"), "hidden attribute: {detail}");
}

async fn a_bulk_tag_or_an_opt_out_cannot_reach_a_customer_out_of_scope(s: &TestServer) {
    let target = someone_elses(s).await;
    let tag = s.manual_tag(ALPHA, "VIP").await;
    let r = s
        .gql(
            AGENT,
            "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
            json!({ "t": tag, "c": [target] }),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "NOT_FOUND", "{r}");
    let r = s
        .gql(
            AGENT,
            "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"*\", optedOut: true) }",
            json!({ "c": target }),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "NOT_FOUND", "{r}");
    let seen = s
        .ok(
            ALPHA,
            "query($c: ID!) { customer(id: $c) { tags { tag { name } } } contactOptOuts(customerId: $c) }",
            json!({ "c": target }),
        )
        .await;
    assert_eq!(seen["customer"]["tags"], json!([]), "nothing was tagged");
    assert_eq!(seen["contactOptOuts"], json!([]), "nothing was opted out");
}

async fn numbers_from_input_are_checked_not_overflowed(s: &TestServer) {
    let r = s
        .gql(
            ALPHA,
            "{ customers(filter: {noFollowUpForHours: 3000000000}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "BAD_USER_INPUT", "{r}");
    assert_eq!(fields(&r["errors"][0]), ["filter.noFollowUpForHours"]);
    let r = s
        .gql(
            ALPHA,
            "mutation($d: SopDefinitionInput!) { createSop(input: {name: \"far\", definition: $d}) { id } }",
            json!({ "d": { "steps": [ { "id": "t", "action": { "createTask": {
                "title": "later", "assignee": "owner", "dueInSeconds": 10000000000000_u64 } } } ] } }),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "BAD_USER_INPUT", "{r}");
    assert!(
        fields(&r["errors"][0])
            .iter()
            .any(|f| f.ends_with("dueInSeconds")),
        "{r}"
    );
}

async fn webhook_steps_cannot_name_the_hosts_network(s: &TestServer) {
    for (key, url) in [
        (ALPHA, "http://169.254.169.254/latest/meta-data"),
        (ALPHA, "http://10.0.0.5/hook"),
        (ALPHA, "http://[::1]:8080/hook"),
        (ALPHA, "http://localhost:8080/hook"),
        // beta does not allow its own loopback, alpha does (for the tests' receivers)
        (BETA, "http://127.0.0.1:9/hook"),
    ] {
        let r = s
            .gql(
                key,
                "mutation($d: SopDefinitionInput!) { createSop(input: {name: \"hook\", definition: $d}) { id } }",
                json!({ "d": { "steps": [ { "id": "w", "action": { "callWebhook": { "url": url } } } ] } }),
            )
            .await;
        assert_eq!(code(&r["errors"][0]), "BAD_USER_INPUT", "{url}: {r}");
        assert!(
            fields(&r["errors"][0]).iter().any(|f| f.ends_with(".url")),
            "{url}: {r}"
        );
    }
    s.ok(
        ALPHA,
        "mutation($d: SopDefinitionInput!) { createSop(input: {name: \"ok\", definition: $d}) { id } }",
        json!({ "d": { "steps": [ { "id": "w", "action": { "callWebhook": { "url": "http://127.0.0.1:9/hook" } } } ] } }),
    )
    .await;
    let r = s
        .gql(
            ALPHA,
            "mutation($d: SopDefinitionInput!) { createSop(input: {name: \"text\", definition: $d}) { id } }",
            json!({ "d": { "steps": [ { "id": "w", "action": { "callWebhook": {
                "url": "http://127.0.0.1:9/hook", "body": "name={{customer.name}}" } } } ] } }),
        )
        .await;
    assert_eq!(
        code(&r["errors"][0]),
        "BAD_USER_INPUT",
        "a body that is not JSON: {r}"
    );
}

async fn renderings_are_masked_for_their_reader(s: &TestServer) {
    let target = someone_elses(s).await;
    // a name seen masked cannot be searched letter by letter; an email seen in full can
    let r = s
        .gql(
            MASKED,
            "{ customers(filter: {search: \"钱\"}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r["errors"][0]), "FORBIDDEN", "{r}");
    let r = s
        .ok(
            MASKED,
            "{ customers(filter: {search: \"qian@example.com\"}) { edges { node { id displayName } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["customers"]["edges"][0]["node"]["id"], target.as_str());
    assert!(leaks(&r).iter().all(|l| *l == "qian@example.com"), "{r}");
    // a hidden attribute is not named by the quality report
    let q = s
        .ok(MASKED, "{ dataQuality { fields { field } } }", json!({}))
        .await;
    assert!(!q.to_string().contains("attributes.income"), "{q}");
    let q = s
        .ok(ALPHA, "{ dataQuality { fields { field } } }", json!({}))
        .await;
    assert!(
        q.to_string().contains("attributes.income"),
        "the admin sees it: {q}"
    );
    // a message rendered from the profile: the body and the step's detail are withheld
    s.greeted(ALPHA, &[&target]).await;
    let query = "{ outboxMessages { edges { node { body } } } enrolments { edges { node { history { outcome detail } } } } }";
    let full = s.ok(ALPHA, query, json!({})).await;
    assert!(
        full.to_string().contains("你好 钱七 +8613912345678"),
        "the admin reads the body: {full}"
    );
    let masked = s.ok(MASKED, query, json!({})).await;
    assert_eq!(
        masked["outboxMessages"]["edges"][0]["node"]["body"],
        "(hidden: rendered from customer fields masked for you)"
    );
    assert!(leaks(&masked).is_empty(), "{masked}");
}

async fn every_change_leaves_an_audit_entry(s: &TestServer) {
    let target = someone_elses(s).await;
    let tag = s.manual_tag(ALPHA, "VIP").await;
    for m in [
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        "mutation($t: ID!, $c: [ID!]) { removeTag(tagId: $t, customerIds: $c) }",
    ] {
        s.ok(ALPHA, m, json!({ "t": tag, "c": [target] })).await;
    }
    s.ok(ALPHA, "mutation { upsertServiceItems(input: [{code: \"S1\", name: \"洗牙\", unitPrice: \"100\", currency: \"CNY\", effectiveFrom: \"2026-01-01T00:00:00Z\"}]) }", json!({})).await;
    s.ok(
        ALPHA,
        "mutation { setRegionTier(region: \"上海\", tier: \"t1\") }",
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation { setTierAdjustment(tier: \"t1\", percent: \"10\") }",
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation { upsertParticipants(input: [{id: \"hq\", name: \"总部\", role: \"hq\"}]) }",
        json!({}),
    )
    .await;
    s.ok(ALPHA, "mutation { reloadPlugins { loaded } }", json!({}))
        .await;
    let log = s
        .ok(
            ALPHA,
            "{ auditLog(first: 100) { edges { node { action entityType entityId } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<(String, String)> = log["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap().to_owned(),
                e["node"]["entityId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (action, entity) in [
        ("tag.apply", target.as_str()),
        ("tag.remove", target.as_str()),
        ("priceLibrary.serviceItem", "S1"),
        ("settlement.regionTier", "上海"),
        ("settlement.tierAdjustment", "t1"),
        ("settlement.participant", "hq"),
        ("plugins.reload", "host"),
    ] {
        assert!(
            actions.iter().any(|(a, e)| a == action && e == entity),
            "no `{action}` entry for {entity}: {actions:?}"
        );
    }
}

async fn exported_cells_never_run_as_formulas(s: &TestServer) {
    s.create_customer(
        ALPHA,
        json!({ "displayName": "=HYPERLINK(\"http://evil.example\",\"点我\")", "sourceChannel": "WEB",
                "attributes": { "note": "@SUM(A1:A9)" } }),
    )
    .await;
    let csv = s
        .ok(ALPHA, "mutation { exportCustomers { csv } }", json!({}))
        .await["exportCustomers"]["csv"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = csv.lines().nth(1).expect("one customer");
    let cells: Vec<&str> = row.split(',').collect();
    assert!(
        cells.iter().any(|c| c.starts_with("\"'=HYPERLINK(")),
        "the name is neutralised: {row}"
    );
    assert!(
        !cells
            .iter()
            .any(|c| c.starts_with("=") || c.starts_with("\"=")),
        "no cell starts a formula: {row}"
    );
}

crate::on_both_backends_with!(
    start,
    a_dry_run_of_a_customer_out_of_scope_is_not_found,
    a_dry_run_shows_fields_as_its_reader_may_see_them,
    a_bulk_tag_or_an_opt_out_cannot_reach_a_customer_out_of_scope,
    numbers_from_input_are_checked_not_overflowed,
    webhook_steps_cannot_name_the_hosts_network,
    renderings_are_masked_for_their_reader,
    every_change_leaves_an_audit_entry,
    exported_cells_never_run_as_formulas,
);

/// Alpha's enrolment is poisoned (a stored definition from before the range check: a task
/// due 10¹³ s from now); beta's SOP runs anyway, the poisoned enrolment is parked with its
/// error, and after a restart beta's next enrolment runs too while alpha's stays parked.
async fn a_poisoned_enrolment_is_parked_and_other_tenants_go_on(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| c.sop.workers = false).await else {
        return;
    };
    let task = json!({ "steps": [ { "id": "t", "action": { "createTask": {
        "title": "call back", "assignee": "owner", "dueInSeconds": 3600 } } } ] });
    let poisoned = s.active_sop(ALPHA, "poisoned", task.clone()).await;
    let healthy = s.active_sop(BETA, "healthy", task).await;
    sqlx::query(
        "UPDATE sop_versions SET definition = REPLACE(definition, '\"dueInSeconds\":3600', '\"dueInSeconds\":10000000000000') \
         WHERE tenant_id = 'alpha' AND sop_id = $1",
    )
    .bind(&poisoned)
    .execute(&s.db().pool)
    .await
    .unwrap();
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "甲", "sourceChannel": "WEB" }),
        )
        .await;
    s.enrol(ALPHA, &poisoned, &[&a]).await;
    let b1 = s
        .create_customer(BETA, json!({ "displayName": "乙", "sourceChannel": "WEB" }))
        .await;
    s.enrol(BETA, &healthy, &[&b1]).await;

    let dir = std::env::temp_dir().join(format!("shoal-poison-{}-{backend:?}", std::process::id()));
    let env = [
        ("SHOAL_SOP__POLL_MS", "10"),
        ("SHOAL_SOP__MAX_ATTEMPTS", "1"),
        ("SHOAL_TENANTS__BETA__NAME", "Beta Clinic"),
        ("SHOAL_TENANTS__BETA__TIME_ZONE", "Asia/Shanghai"),
    ];
    let beta_tasks = || async {
        s.ok(BETA, "{ tasks { edges { node { id } } } }", json!({}))
            .await["tasks"]["edges"]
            .as_array()
            .unwrap()
            .len()
    };
    let within = |want: usize| async move {
        for _ in 0..200 {
            if beta_tasks().await >= want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    let alpha_status = || async {
        s.ok(
            ALPHA,
            "{ enrolments { edges { node { status lastError } } } }",
            json!({}),
        )
        .await
    };
    let mut host = s.spawn_host(&dir, &env);
    let served = within(1).await;
    // the tenants' loops run side by side: wait for alpha's to reach the poisoned one too
    let mut alpha = alpha_status().await;
    for _ in 0..200 {
        if alpha["enrolments"]["edges"][0]["node"]["status"] == "parked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        alpha = alpha_status().await;
    }
    let _ = host.kill();
    let _ = host.wait();
    assert!(
        served,
        "beta's SOP ran while alpha's enrolment was poisoned"
    );
    let node = &alpha["enrolments"]["edges"][0]["node"];
    assert_eq!(node["status"], "parked", "{alpha}");
    assert!(
        node["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("dueInSeconds"),
        "the error is kept: {alpha}"
    );

    // after a restart, beta still gets its steps; alpha's enrolment stays parked
    let b2 = s
        .create_customer(BETA, json!({ "displayName": "丙", "sourceChannel": "WEB" }))
        .await;
    s.enrol(BETA, &healthy, &[&b2]).await;
    let mut host = s.spawn_host(&dir, &env);
    let served = within(2).await;
    let _ = host.kill();
    let _ = host.wait();
    assert!(served, "beta's SOP ran after the restart");
    let alpha = s
        .ok(
            ALPHA,
            "{ enrolments { edges { node { status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(alpha["enrolments"]["edges"][0]["node"]["status"], "parked");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Alpha's webhook receiver accepts the connection and never answers (a slow gateway, up to
/// the 20 s timeout); beta's SOP runs meanwhile: each tenant has a worker loop of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_of_one_tenant_does_not_hold_up_another() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = hole.accept().await {
            open.push(conn); // never read, never answered
        }
    });
    let s = TestServer::start_with(Backend::Sqlite, |c| c.sop.webhook_timeout_ms = 20_000)
        .await
        .unwrap();
    let sop = |key: &'static str, step: Value| {
        let s = &s;
        async move {
            let id = s
                .active_sop(
                    key,
                    "s",
                    json!({ "steps": [ { "id": "x", "action": step } ] }),
                )
                .await;
            let c = s
                .create_customer(key, json!({ "displayName": "客", "sourceChannel": "WEB" }))
                .await;
            s.enrol(key, &id, &[&c]).await;
        }
    };
    sop(
        ALPHA,
        json!({ "callWebhook": { "url": format!("http://{addr}/slow") } }),
    )
    .await;
    // alpha's delivery is under way (and hanging) before beta's enrolment exists
    tokio::time::sleep(Duration::from_millis(300)).await;
    sop(
        BETA,
        json!({ "createTask": { "title": "回访", "assignee": "owner" } }),
    )
    .await;
    let mut served = false;
    for _ in 0..100 {
        let tasks = s
            .ok(BETA, "{ tasks { edges { node { id } } } }", json!({}))
            .await;
        if !tasks["tasks"]["edges"].as_array().unwrap().is_empty() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = s
        .ok(
            ALPHA,
            "{ outboxMessages(filter: {status: \"sending\"}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(
        served,
        "beta's step ran within 5 s while alpha's gateway hung (20 s)"
    );
    assert_eq!(
        pending["outboxMessages"]["edges"].as_array().unwrap().len(),
        1,
        "alpha's call is under way (`sending`), still waiting for its answer"
    );
    held.abort();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_enrolment_is_parked_and_other_tenants_go_on_sqlite() {
    a_poisoned_enrolment_is_parked_and_other_tenants_go_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_enrolment_is_parked_and_other_tenants_go_on_postgres() {
    a_poisoned_enrolment_is_parked_and_other_tenants_go_on(Backend::Postgres).await;
}
