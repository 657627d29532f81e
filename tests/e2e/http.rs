//! The HTTP surface: authentication, limits, health, metrics, GraphQL over HTTP (the
//! reference audit), GraphiQL offline in a real browser, subscriptions.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::harness::{ALPHA, Backend, TestServer, code, http_with_head};

async fn sqlite() -> TestServer {
    TestServer::start(Backend::Sqlite)
        .await
        .expect("sqlite server")
}

#[tokio::test]
async fn requests_without_a_valid_key_are_unauthenticated() {
    let s = sqlite().await;
    let body = json!({ "query": "{ customers { totalCount } }" }).to_string();
    for key in [None, Some("wrong-key-123456789"), Some("")] {
        let (status, response) = s.post(key, &body).await;
        assert_eq!(status, 401, "key {key:?}");
        assert_eq!(code(&response["errors"][0]), "UNAUTHENTICATED");
        assert_eq!(
            response.get("data"),
            None,
            "a request error has no data entry"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn limits_are_enforced_with_limit_exceeded() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.limits.max_query_depth = 3;
        c.limits.max_body_bytes = 2048;
        c.limits.max_query_complexity = 50;
    })
    .await
    .unwrap();
    let deep = s
        .err(
            ALPHA,
            "{ customers { edges { node { timeline { edges { node { id } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&deep), "LIMIT_EXCEEDED", "{deep}");
    let wide: String = (0..60)
        .map(|i| format!("a{i}: viewer {{ role }} "))
        .collect();
    let complex = s.err(ALPHA, &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(code(&complex), "LIMIT_EXCEEDED", "{complex}");
    let big =
        json!({ "query": format!("{{ viewer {{ role }} }} # {}", "x".repeat(4096)) }).to_string();
    let (status, response) = s.post(Some(ALPHA), &big).await;
    assert_eq!(status, 413);
    assert_eq!(code(&response["errors"][0]), "LIMIT_EXCEEDED");
    s.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_bad_user_input() {
    let s = sqlite().await;
    let (status, response) = s.post(Some(ALPHA), "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(code(&response["errors"][0]), "BAD_USER_INPUT");
    let syntax = s.err(ALPHA, "{ customers { ", json!({})).await;
    assert_eq!(code(&syntax), "BAD_USER_INPUT");
    let unknown = s.err(ALPHA, "{ customers { nope } }", json!({})).await;
    assert_eq!(code(&unknown), "BAD_USER_INPUT");
    let bad_enum = s
        .err(
            ALPHA,
            "{ customers(filter: { stages: [SLEEPY] }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&bad_enum), "BAD_USER_INPUT");
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_graphiql_are_served() {
    let s = sqlite().await;
    assert_eq!(s.get("/healthz").await, (200, "ok".to_owned()));
    assert_eq!(s.get("/readyz").await, (200, "ready".to_owned()));
    s.ok(ALPHA, "{ viewer { role } }", json!({})).await;
    s.err(ALPHA, "{ customer(id: \"missing\") { id } }", json!({}))
        .await;
    let (status, metrics) = s.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("shoal_http_requests_total{route=\"/graphql\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shoal_graphql_errors_total{code=\"NOT_FOUND\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shoal_http_request_duration_seconds_count{route=\"/graphql\"}"),
        "{metrics}"
    );
    let (status, page) = s.get("/graphql").await;
    assert_eq!(status, 200);
    assert!(page.contains("GraphiQL"));
    s.stop().await;
}

/// The GraphQL over HTTP reference audit (`graphql-http` 1.22.4, pinned with its lockfile in
/// `tests/fixtures/graphql-http`; `cargo xtask test` installs it with `npm ci`), run by node
/// against the server: every audit passes, the MAYs and SHOULDs included.
#[tokio::test]
async fn graphql_over_http_passes_every_reference_audit() {
    let s = sqlite().await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/graphql-http");
    assert!(
        dir.join("node_modules/graphql-http").is_dir(),
        "the audit is not installed: run `cargo xtask test` (or `npm ci` in {})",
        dir.display()
    );
    let url = format!("http://{}/graphql", s.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["audit.mjs", &url, ALPHA])
            .current_dir(dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the audit prints JSON");
    assert!(
        results.len() >= 60,
        "{} audits ran (1.22.4 has 60)",
        results.len()
    );
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] != "ok").collect();
    assert!(
        failed.is_empty(),
        "{}",
        serde_json::to_string_pretty(&failed).unwrap()
    );
    s.stop().await;
}

/// What the audit checks only as "some 4xx", and what it cannot see: a GET never runs a
/// mutation (405, `Allow: POST`, nothing changed), a document that cannot run is a 400 without
/// `data` for clients that accept the new media type and a 200 for older ones, and an error
/// while running keeps `data` and 200.
#[tokio::test]
async fn a_get_runs_queries_only_and_request_errors_have_no_data() {
    let s = sqlite().await;
    let key = format!("Authorization: Bearer {ALPHA}\r\n");
    let create = "mutation { createCustomer(input: { displayName: \"Via GET\", sourceChannel: WEB }) { id } }";
    let path = format!("/graphql?query={}", encode(create));
    let (status, head, body) = http_with_head(s.addr, "GET", &path, &key, "").await;
    assert_eq!(status, 405, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nallow: post"),
        "{head}"
    );
    assert_eq!(
        code(&serde_json::from_str::<Value>(&body).unwrap()["errors"][0]),
        "BAD_USER_INPUT"
    );
    let found = s
        .ok(
            ALPHA,
            "{ customers(filter: { search: \"Via GET\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["customers"]["totalCount"], 0,
        "the GET changed nothing"
    );

    let query = format!(
        "/graphql?query={}&variables={}",
        encode("query Q($n: Int) { customers(first: $n) { totalCount } }"),
        encode(r#"{"n": 1}"#)
    );
    let (status, head, body) = http_with_head(s.addr, "GET", &query, &key, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/json"), "{head}");
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["data"]["customers"]["totalCount"]
            .is_number()
    );

    let new_type = format!(
        "{key}Content-Type: application/json\r\nAccept: application/graphql-response+json\r\n"
    );
    let old_type = format!("{key}Content-Type: application/json\r\n");
    let invalid = json!({ "query": "{ customers { nope } }" }).to_string();
    let (status, head, body) =
        http_with_head(s.addr, "POST", "/graphql", &new_type, &invalid).await;
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("application/graphql-response+json"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body.get("data"), None, "{body}");
    assert_eq!(code(&body["errors"][0]), "BAD_USER_INPUT");
    let (status, _, body) = http_with_head(s.addr, "POST", "/graphql", &old_type, &invalid).await;
    assert_eq!(status, 200, "{body}");

    let missing = json!({ "query": "{ customer(id: \"missing\") { id } }" }).to_string();
    let (status, _, body) = http_with_head(s.addr, "POST", "/graphql", &new_type, &missing).await;
    assert_eq!(
        status, 200,
        "an error while running is not a request error: {body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body.as_object().unwrap().contains_key("data"), "{body}");
    assert_eq!(code(&body["errors"][0]), "NOT_FOUND");
    s.stop().await;
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GraphiQL works with no internet: Debian's chromium (installed by `cargo xtask test`),
/// headless, loads `/graphql` from the test server and renders the editor; every script and
/// style comes from `/assets/` under a policy that allows nothing else.
#[tokio::test]
async fn graphiql_renders_in_a_browser_from_embedded_assets_only() {
    let s = sqlite().await;
    let (status, head, page) = http_with_head(s.addr, "GET", "/graphql", "", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Loading GraphiQL"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'self'; script-src 'self';"),
        "{head}"
    );
    let profile = std::env::temp_dir().join(format!("shoal-e2e-chromium-{}", std::process::id()));
    let url = format!("http://{}/graphql", s.addr);
    let user_data = format!("--user-data-dir={}", profile.display());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                &user_data,
                "--virtual-time-budget=15000",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("chromium runs (cargo xtask test installs Debian's chromium)")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("graphiql-container") && dom.contains("FirstCustomers"),
        "GraphiQL did not render:\n{}\n{}",
        &dom[..dom.len().min(2000)],
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dom.contains("Loading GraphiQL"),
        "the placeholder was replaced"
    );
    let _ = std::fs::remove_dir_all(&profile);
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("shoal_http_requests_total{route=\"/assets/{*path}\",status=\"200\"} 6"),
        "the page's six files came from the host: {metrics}"
    );
    s.stop().await;
}

/// `graphql-transport-ws`: connection_init with the API key, then a subscription that
/// receives an event recorded through a mutation; another tenant's events are not seen.
#[tokio::test]
async fn subscriptions_deliver_recorded_events_of_the_tenant() {
    let s = sqlite().await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Live", "sourceChannel": "WEB" }),
        )
        .await;
    let beta_customer = s
        .create_customer(
            crate::harness::BETA,
            json!({ "displayName": "Other", "sourceChannel": "WEB" }),
        )
        .await;
    let mut request = format!("ws://{}/graphql/ws", s.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {ALPHA}") } })))
        .await
        .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    ws.send(send(json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { eventRecorded { type customerId name } }" } })))
        .await
        .unwrap();
    // Subscriptions are not acknowledged, so publish until the first event arrives; beta's
    // event always goes first and must never be delivered.
    let record = "mutation($c: ID!, $n: String) { recordEvents(input: [{ customerId: $c, type: CUSTOM, name: $n, occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }";
    let mut next = None;
    for _ in 0..50 {
        s.ok(
            crate::harness::BETA,
            record,
            json!({ "c": beta_customer, "n": "beta_event" }),
        )
        .await;
        s.ok(ALPHA, record, json!({ "c": c, "n": "alpha_event" }))
            .await;
        if let Ok(message) =
            tokio::time::timeout(std::time::Duration::from_millis(200), ws.next()).await
        {
            next = message;
            break;
        }
    }
    let next = next.expect("an event arrives").unwrap();
    let message: Value = serde_json::from_str(next.to_text().unwrap()).unwrap();
    assert_eq!(message["type"], "next");
    assert_eq!(
        message["payload"]["data"]["eventRecorded"],
        json!({ "type": "CUSTOM", "customerId": c, "name": "alpha_event" }),
        "the first event seen is alpha's, not beta's"
    );
    s.stop().await;
}
