//! The HTTP surface: authentication, limits, health, metrics, GraphiQL, subscriptions.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::harness::{ALPHA, Backend, TestServer, code};

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
        assert_eq!(response["data"], Value::Null);
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
