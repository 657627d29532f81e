//! Notifications for real: webhook endpoints posting to a local receiver (signed as the
//! Standard Webhooks specification says, checked with Python's `hmac`), retried on its
//! schedule with `Retry-After` honoured, disabled on 410, redelivered under the same id;
//! the `changes` subscription over WebSocket, resumed from a cursor, across two hosts on
//! one PostgreSQL; staff rules reaching an inbox and a WeCom robot, in quiet hours and in
//! digests; and a host killed with SIGKILL mid-delivery losing nothing.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{OriginalUri, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::post,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Row;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::{
    harness::{ALPHA, ALPHA_READONLY, Backend, TestServer, eventually_within},
    webhooks::python_standard_signature,
};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) at: Instant,
}

/// A scripted answer: status, `Retry-After`, body, delay before answering.
pub(crate) type Answer = (u16, Option<&'static str>, &'static str, u64);

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    /// A receiver on a local port answering `script` in order, then 200 `ok`.
    pub(crate) async fn start(script: Vec<Answer>) -> (String, Receiver) {
        let r = Receiver {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        async fn handle(
            State(r): State<Receiver>,
            uri: OriginalUri,
            headers: HeaderMap,
            body: Bytes,
        ) -> impl IntoResponse {
            r.got.lock().unwrap().push(Got {
                uri: uri.0.to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: Instant::now(),
            });
            let (status, retry_after, body, delay) = r
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((200, None, "ok", 0));
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let mut h = HeaderMap::new();
            if let Some(v) = retry_after {
                h.insert("retry-after", v.parse().unwrap());
            }
            (StatusCode::from_u16(status).unwrap(), h, body)
        }
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), r)
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until `enough` holds for what was received.
    pub(crate) async fn until(&self, enough: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        eventually_within(
            Duration::from_secs(20),
            Duration::from_millis(50),
            "the receiver getting what was expected",
            async || self.got(),
            |got: &Vec<Got>| enough(got),
        )
        .await
    }
}

/// Test servers whose notification workers run briskly, with a short retry schedule.
async fn brisk(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        c.notify.poll_ms = 20;
        c.notify.retry_schedule_seconds = vec![0, 1, 1, 1];
    })
    .await
}

async fn create_webhook(s: &TestServer, url: &str, types: Value) -> (String, String) {
    let w = s
        .ok(
            ALPHA,
            "mutation($i: WebhookInput!) { createWebhook(input: $i) { id secret } }",
            json!({ "i": { "url": url, "eventTypes": types, "description": "CRM 同步" } }),
        )
        .await;
    (
        w["createWebhook"]["id"].as_str().unwrap().to_owned(),
        w["createWebhook"]["secret"].as_str().unwrap().to_owned(),
    )
}

fn key_of(secret: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap()
}

fn header<'a>(g: &'a Got, name: &str) -> &'a str {
    g.headers[name].to_str().unwrap()
}

async fn webhook_messages(s: &TestServer, id: &str) -> Vec<Value> {
    s.ok(
        ALPHA,
        "query($id: ID!) { webhook(id: $id) { messages(first: 50) { edges { node { id seq eventType status attempts payload \
         deliveryAttempts { attempt statusCode responseHead latencyMs error } } } } } }",
        json!({ "id": id }),
    )
    .await["webhook"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// A customer created through the API reaches the endpoint as `customer.created`: signed
/// (checked by Python), answered 503 with `Retry-After: 1` first — the retry waits that
/// second and keeps its `webhook-id` — then delivered; the log shows both attempts. A type
/// the endpoint did not subscribe to is not sent.
async fn webhooks_are_signed_retried_after_and_logged(s: &TestServer) {
    let (url, rx) = Receiver::start(vec![
        (503, Some("1"), "busy", 0),
        (200, None, "ok-thanks", 0),
    ])
    .await;
    let (id, secret) =
        create_webhook(s, &format!("{url}/hooks"), json!(["customer.created"])).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "钱七", "sourceChannel": "WEB", "phones": ["+8613800000007"] }),
        )
        .await;
    // an event: not subscribed
    s.ok(
        ALPHA,
        "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: CUSTOM, name: \"x\", occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }",
        json!({ "c": c }),
    )
    .await;
    let got = rx.until(|g| g.len() >= 2).await;
    assert_eq!(
        header(&got[0], "webhook-id"),
        header(&got[1], "webhook-id"),
        "a retry keeps its id"
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({:?})",
        got[1].at - got[0].at
    );
    for g in &got {
        let expected = python_standard_signature(
            &key_of(&secret),
            header(g, "webhook-id"),
            header(g, "webhook-timestamp"),
            &g.body,
        );
        assert_eq!(
            header(g, "webhook-signature"),
            expected,
            "signed as the spec says"
        );
        assert!(header(g, "webhook-id").starts_with("msg_"));
        let age =
            chrono::Utc::now().timestamp() - header(g, "webhook-timestamp").parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "a current timestamp");
    }
    let body: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(body["type"], "customer.created");
    assert_eq!(body["version"], 1);
    assert_eq!(body["data"]["customerId"], c);
    assert_eq!(body["data"]["tenant"], "alpha");
    assert!(
        !got[1].body.contains("13800000007"),
        "ids only, no contact fields: {}",
        got[1].body
    );
    // the log, once the host has recorded the second answer
    let mut messages = Vec::new();
    for _ in 0..100 {
        messages = webhook_messages(s, &id).await;
        if messages.first().is_some_and(|m| m["status"] == "DELIVERED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(messages.len(), 1, "only the subscribed type: {messages:#?}");
    let m = &messages[0];
    assert_eq!(m["status"], "DELIVERED");
    assert_eq!(m["attempts"], 2);
    assert_eq!(m["id"], header(&got[0], "webhook-id"));
    assert_eq!(
        m["payload"],
        got[1].body.as_str(),
        "the log holds the body as sent"
    );
    let attempts = m["deliveryAttempts"].as_array().unwrap();
    assert_eq!(attempts[0]["statusCode"], 503);
    assert_eq!(attempts[0]["responseHead"], "busy");
    assert_eq!(attempts[1]["statusCode"], 200);
    assert_eq!(attempts[1]["responseHead"], "ok-thanks");
    assert_eq!(rx.got().len(), 2, "nothing else was sent");
}

/// `410 Gone` disables the endpoint (its administrators get an inbox notice); enabled
/// again, `redeliverFailedWebhookMessages` sends the failed message under its first id.
async fn gone_disables_and_redelivery_keeps_the_id(s: &TestServer) {
    let (url, rx) = Receiver::start(vec![(410, None, "gone", 0)]).await;
    let since = chrono::Utc::now().to_rfc3339();
    let (id, _) = create_webhook(s, &format!("{url}/gone"), json!(["customer.created"])).await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "孙八", "sourceChannel": "WEB" }),
    )
    .await;
    let first = rx.until(|g| !g.is_empty()).await;
    let mut w = Value::Null;
    for _ in 0..100 {
        w = s
            .ok(
                ALPHA,
                "query($id: ID!) { webhook(id: $id) { enabled disabledReason } }",
                json!({ "id": id }),
            )
            .await;
        if w["webhook"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w["webhook"]["enabled"], false);
    assert!(
        w["webhook"]["disabledReason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{w}"
    );
    let inbox = s
        .ok(ALPHA, "{ unreadNotificationCount notifications(first: 10) { edges { node { eventType title priority } } } }", json!({}))
        .await;
    let notices = inbox["notifications"]["edges"].as_array().unwrap();
    assert!(
        notices
            .iter()
            .any(|n| n["node"]["eventType"] == "webhook.disabled"
                && n["node"]["title"].as_str().unwrap().contains(&id)),
        "the administrator is told: {inbox}"
    );
    // disabled: no redelivery until enabled again
    let refused = s
        .err(ALPHA, "mutation($id: ID!, $s: DateTime!) { redeliverFailedWebhookMessages(webhookId: $id, since: $s) }", json!({ "id": id, "s": since }))
        .await;
    assert_eq!(
        crate::harness::code(&refused),
        "BAD_USER_INPUT",
        "{refused}"
    );
    s.ok(
        ALPHA,
        "mutation($id: ID!) { updateWebhook(id: $id, input: { enabled: true }) { enabled } }",
        json!({ "id": id }),
    )
    .await;
    let n = s
        .ok(ALPHA, "mutation($id: ID!, $s: DateTime!) { redeliverFailedWebhookMessages(webhookId: $id, since: $s) }", json!({ "id": id, "s": since }))
        .await;
    assert_eq!(n["redeliverFailedWebhookMessages"], 1);
    let got = rx.until(|g| g.len() >= 2).await;
    assert_eq!(
        header(&got[1], "webhook-id"),
        header(&first[0], "webhook-id")
    );
    assert_eq!(got[1].body, first[0].body);
}

/// After a rotation, messages carry two signatures for a day: one verifies with the new
/// secret, one with the old.
async fn a_rotated_secret_signs_beside_the_new_one(s: &TestServer) {
    let (url, rx) = Receiver::start(vec![]).await;
    let (id, old) = create_webhook(s, &format!("{url}/rotate"), json!(["tag.added"])).await;
    let new = s
        .ok(ALPHA, "mutation($id: ID!) { rotateWebhookSigningSecret(id: $id) { secret previousSecretValidUntil } }", json!({ "id": id }))
        .await;
    let new_secret = new["rotateWebhookSigningSecret"]["secret"]
        .as_str()
        .unwrap();
    assert_ne!(new_secret, old);
    assert!(new["rotateWebhookSigningSecret"]["previousSecretValidUntil"].is_string());
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周九", "sourceChannel": "WEB" }),
        )
        .await;
    let tag = s.manual_tag(ALPHA, "旋转").await;
    s.ok(
        ALPHA,
        "mutation($c: ID!, $t: ID!) { applyTag(tagId: $t, customerIds: [$c]) }",
        json!({ "c": c, "t": tag }),
    )
    .await;
    let got = rx.until(|g| !g.is_empty()).await;
    let g = &got[0];
    let sigs: Vec<&str> = header(g, "webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    let (wid, ts) = (header(g, "webhook-id"), header(g, "webhook-timestamp"));
    assert_eq!(
        sigs[0],
        python_standard_signature(&key_of(new_secret), wid, ts, &g.body)
    );
    assert_eq!(
        sigs[1],
        python_standard_signature(&key_of(&old), wid, ts, &g.body)
    );
    let body: Value = serde_json::from_str(&g.body).unwrap();
    assert_eq!(body["data"]["tag"], "旋转");
}

/// A webhook URL on a private or loopback network the tenant did not allow is refused
/// with the field named; an unknown event type too.
async fn bad_endpoints_are_refused_by_field(s: &TestServer) {
    let e = s
        .err(
            crate::harness::BETA,
            "mutation { createWebhook(input: { url: \"http://127.0.0.1:9/x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(crate::harness::fields(&e), ["input.url"], "{e}");
    let e = s
        .err(ALPHA, "mutation { createWebhook(input: { url: \"https://example.com/x\", eventTypes: [\"customer.created\", \"customer.exploded\"] }) { id } }", json!({}))
        .await;
    assert_eq!(crate::harness::fields(&e), ["input.eventTypes[1]"], "{e}");
    let e = s
        .err(ALPHA, "mutation { saveNotificationRule(input: { name: \"a\\r\\nBcc: x@evil.test\", recipients: { owner: true }, channels: [INBOX] }) { id } }", json!({}))
        .await;
    assert_eq!(crate::harness::fields(&e), ["input.name"], "{e}");
    let e = s
        .err(ALPHA_READONLY, "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(crate::harness::code(&e), "FORBIDDEN");
}

/// An SOP step's outcome is on the feed: a webhook subscribed to `sop.step` hears of the
/// greeting step that ran.
async fn sop_steps_are_announced(s: &TestServer) {
    let (url, rx) = Receiver::start(vec![]).await;
    create_webhook(s, &format!("{url}/steps"), json!(["sop.step"])).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "步骤", "sourceChannel": "WEB" }),
        )
        .await;
    let sop = s.greeted(ALPHA, &[&c]).await;
    let got = rx.until(|g| !g.is_empty()).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "sop.step");
    assert_eq!(body["data"]["customerId"], c);
    assert_eq!(body["data"]["sopId"], sop);
    assert_eq!(body["data"]["stepId"], "m");
}

/// A user watching a customer is told of its changes by a rule naming `watchers`; one who
/// does not watch is not.
async fn watchers_are_told(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "关注", "sourceChannel": "WEB" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation { saveNotificationRule(input: { name: \"关注的客户\", eventTypes: [\"tag.added\"], recipients: { watchers: true }, channels: [INBOX] }) { id } }",
        json!({}),
    )
    .await;
    let watched = s
        .ok(
            ALPHA_READONLY,
            "mutation($c: ID!) { watchCustomer(customerId: $c) }",
            json!({ "c": c }),
        )
        .await;
    assert_eq!(watched["watchCustomer"], true);
    let tag = s.manual_tag(ALPHA, "关注标签").await;
    s.ok(
        ALPHA,
        "mutation($c: ID!, $t: ID!) { applyTag(tagId: $t, customerIds: [$c]) }",
        json!({ "c": c, "t": tag }),
    )
    .await;
    let mut n = Value::Null;
    for _ in 0..100 {
        n = s.ok(ALPHA_READONLY, "{ unreadNotificationCount notifications(first: 1) { edges { node { id title customerId } } } }", json!({})).await;
        if n["unreadNotificationCount"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n["unreadNotificationCount"], 1, "{n}");
    assert_eq!(n["notifications"]["edges"][0]["node"]["customerId"], c);
    assert!(
        n["notifications"]["edges"][0]["node"]["title"]
            .as_str()
            .unwrap()
            .contains("关注标签")
    );
    let boss = s.ok(ALPHA, "{ unreadNotificationCount }", json!({})).await;
    assert_eq!(boss["unreadNotificationCount"], 0, "not watching, not told");
    // marked read by id: only the caller's own
    let id = n["notifications"]["edges"][0]["node"]["id"].clone();
    let other = s
        .ok(
            ALPHA,
            "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }",
            json!({ "ids": [id] }),
        )
        .await;
    assert_eq!(
        other["markNotificationsRead"], 0,
        "another user's notification is not theirs to mark"
    );
    let read = s
        .ok(
            ALPHA_READONLY,
            "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }",
            json!({ "ids": [id] }),
        )
        .await;
    assert_eq!(read["markNotificationsRead"], 1);
    let after = s
        .ok(ALPHA_READONLY, "{ unreadNotificationCount }", json!({}))
        .await;
    assert_eq!(after["unreadNotificationCount"], 0);
}

crate::on_both_backends_with!(
    brisk,
    watchers_are_told,
    sop_steps_are_announced,
    webhooks_are_signed_retried_after_and_logged,
    gone_disables_and_redelivery_keeps_the_id,
    a_rotated_secret_signs_beside_the_new_one,
    bad_endpoints_are_refused_by_field,
    changes_resume_from_a_cursor,
    staff_rules_reach_the_owner,
);

/// A `graphql-transport-ws` connection authenticated in `connection_init`.
async fn ws(
    s: &TestServer,
    key: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
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
    ws.send(Message::Text(
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    ws
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(ws: &mut Ws, query: &str, variables: Value) {
    ws.send(Message::Text(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
}

/// The next `next` (or `error`) message's payload, within 15 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a pushed item in time")
            .expect("open")
            .unwrap();
        let v: Value = match m.to_text() {
            Ok(t) if !t.is_empty() => serde_json::from_str(t).unwrap(),
            _ => continue,
        };
        match v["type"].as_str() {
            Some("next") | Some("error") => return v["payload"].clone(),
            _ => continue,
        }
    }
}

const CHANGES: &str = "subscription($t: [String!], $a: String) { changes(types: $t, after: $a) { cursor type customerId customer { displayName phones } } }";

/// Changes arrive in order with cursors; a subscriber that reconnects with its last cursor
/// receives what it missed, one whose cursor was pruned gets `GAP`; a reader whose role
/// masks phones sees them masked in pushed items too.
async fn changes_resume_from_a_cursor(s: &TestServer) {
    let mut w = ws(s, ALPHA).await;
    subscribe(&mut w, CHANGES, json!({ "t": ["customer.created"] })).await;
    // subscriptions are not acknowledged: give the stream a moment to read the head
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "一号", "sourceChannel": "WEB" }),
        )
        .await;
    let first = next(&mut w).await;
    assert_eq!(first["data"]["changes"]["customerId"], a, "{first}");
    assert_eq!(first["data"]["changes"]["type"], "customer.created");
    let cursor = first["data"]["changes"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(w);
    // while away
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "二号", "sourceChannel": "WEB", "phones": ["+8613900000002"] }),
        )
        .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "三号", "sourceChannel": "WEB" }),
        )
        .await;
    let mut w = ws(s, ALPHA).await;
    subscribe(
        &mut w,
        CHANGES,
        json!({ "t": ["customer.created"], "a": cursor }),
    )
    .await;
    let got_b = next(&mut w).await;
    let got_c = next(&mut w).await;
    assert_eq!(got_b["data"]["changes"]["customerId"], b);
    assert_eq!(
        got_b["data"]["changes"]["customer"]["phones"],
        json!(["+8613900000002"])
    );
    assert_eq!(got_c["data"]["changes"]["customerId"], c);
    // a reader that sees phones masked sees them masked here too
    let mut r = ws(s, ALPHA_READONLY).await;
    subscribe(
        &mut r,
        CHANGES,
        json!({ "t": ["customer.created"], "a": cursor }),
    )
    .await;
    let masked = next(&mut r).await;
    assert_eq!(masked["data"]["changes"]["customerId"], b);
    let plain = s
        .ok(
            ALPHA_READONLY,
            "query($id: ID!) { customer(id: $id) { phones } }",
            json!({ "id": b }),
        )
        .await;
    assert_eq!(
        masked["data"]["changes"]["customer"]["phones"], plain["customer"]["phones"],
        "as masked as the query shows it"
    );
    // pruned: a gap, said once
    let pruned = shoal_notify::feed::prune(
        s.db(),
        "alpha",
        chrono::Utc::now() + chrono::Duration::hours(1),
        chrono::Duration::zero(),
    )
    .await
    .unwrap();
    assert!(pruned >= 3);
    let mut g = ws(s, ALPHA).await;
    subscribe(&mut g, CHANGES, json!({ "a": "0" })).await;
    let gap = next(&mut g).await;
    assert_eq!(gap["errors"][0]["extensions"]["code"], "GAP", "{gap}");
}

/// Two hosts on one PostgreSQL: a change committed through host A reaches a subscriber of
/// host B (LISTEN/NOTIFY wakes B; the rows are read back), and B's `notificationAdded`
/// pushes the inbox notification a rule made of it.
async fn a_change_on_one_host_reaches_a_subscriber_on_another(s: &TestServer) {
    let b = s.start_beside(|c| c.notify.poll_ms = 20).await;
    s.ok(
        ALPHA,
        "mutation { saveNotificationRule(input: { name: \"新客户\", eventTypes: [\"customer.created\"], recipients: { users: [\"boss\"] }, channels: [INBOX] }) { id } }",
        json!({}),
    )
    .await;
    let mut w = ws(&b, ALPHA).await;
    subscribe(&mut w, CHANGES, json!({ "t": ["customer.created"] })).await;
    let mut inbox = ws(&b, ALPHA).await;
    subscribe(
        &mut inbox,
        "subscription { notificationAdded { eventType customerId title } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "跨主机", "sourceChannel": "WEB" }),
        )
        .await;
    let pushed = next(&mut w).await;
    assert_eq!(pushed["data"]["changes"]["customerId"], id, "{pushed}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let note = next(&mut inbox).await;
    assert_eq!(
        note["data"]["notificationAdded"]["customerId"], id,
        "{note}"
    );
    assert_eq!(
        note["data"]["notificationAdded"]["eventType"],
        "customer.created"
    );
    b.stop().await;
}

mod two_hosts {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_on_one_host_reaches_a_subscriber_on_another() {
        if let Some(s) = super::brisk(super::Backend::Postgres).await {
            super::a_change_on_one_host_reaches_a_subscriber_on_another(&s).await;
            s.stop().await;
        }
    }
}

/// The seed "an abandoned payment pings the owner within seconds": a rule on
/// `event.recorded:payment_abandoned` for the owner, on the inbox and a WeCom robot (the
/// documented body, the owner @-mentioned); an agent outside the customer's scope is not
/// told; the owner's quiet hours hold a normal notification's robot message, not a high
/// one (the on-duty agent's out-of-hours question); low ones go out as one digest; a
/// DingTalk robot gets its documented body, signed.
async fn staff_rules_reach_the_owner(s: &TestServer) {
    const TOOK: Answer = (200, None, r#"{"errcode":0,"errmsg":"ok"}"#, 0);
    let (url, robot) = Receiver::start(vec![TOOK; 8]).await;
    let robot_url = format!("{url}/cgi-bin/webhook/send?key=test-key");
    let rule = |name: &str, priority: &str| {
        json!({ "name": name, "eventTypes": ["event.recorded:payment_abandoned"],
            "recipients": { "owner": true, "roles": ["agent"] }, "channels": ["INBOX", "WECOM_ROBOT"],
            "robotUrl": robot_url, "priority": priority, "digestMinutes": 1 })
    };
    let save = "mutation($i: NotificationRuleInput!) { saveNotificationRule(input: $i) { id } }";
    let high = s
        .ok_id(
            ALPHA,
            save,
            json!({ "i": rule("支付未完成", "HIGH") }),
            "saveNotificationRule",
        )
        .await;
    // the owner's quiet hours are now (in their zone): a high-priority rule goes through
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let (start, end) = (
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    );
    s.ok(ALPHA, "mutation($s: String, $e: String) { setNotificationPreferences(input: { quietStart: $s, quietEnd: $e, timeZone: \"Asia/Shanghai\", imUserId: \"zhangsan\" }) { quietStart } }",
        json!({ "s": start.format("%H:%M").to_string(), "e": end.format("%H:%M").to_string() })).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "吴十", "sourceChannel": "WEB", "ownerId": "boss" }),
        )
        .await;
    let abandon = "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: CUSTOM, name: \"payment_abandoned\", occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }";
    let started = Instant::now();
    s.ok(ALPHA, abandon, json!({ "c": c })).await;
    let got = robot.until(|g| !g.is_empty()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within seconds"
    );
    // the robot took it: the send is settled as sent
    for _ in 0..100 {
        let sent: i64 = sqlx::query("SELECT COUNT(*) AS n FROM notification_sends WHERE tenant_id = 'alpha' AND status = 'sent'")
            .fetch_one(&s.db().pool)
            .await
            .unwrap()
            .get("n");
        if sent == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got[0].uri, "/cgi-bin/webhook/send?key=test-key");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["mentioned_list"], json!(["zhangsan"]));
    let content = body["text"]["content"].as_str().unwrap();
    assert!(
        content.contains("支付未完成")
            && content.contains("payment_abandoned")
            && content.contains(&c),
        "{content}"
    );
    let inbox = s.ok(ALPHA, "{ unreadNotificationCount notifications(first: 5) { edges { node { id customerId title } } } }", json!({})).await;
    assert_eq!(inbox["unreadNotificationCount"], 1, "{inbox}");
    assert_eq!(inbox["notifications"]["edges"][0]["node"]["customerId"], c);
    // agent-a (role agent, own customers only) was named by role but may not see this customer
    let agent: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM notifications WHERE tenant_id = 'alpha' AND user_id = 'agent-a'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(agent, 0, "receiving needs the customer in scope");
    let read = s
        .ok(ALPHA, "mutation { markNotificationsRead }", json!({}))
        .await;
    assert_eq!(read["markNotificationsRead"], 1);

    // in the same quiet hours, a normal rule's robot message waits
    s.ok(
        ALPHA,
        "mutation($id: ID!) { deleteNotificationRule(id: $id) }",
        json!({ "id": high }),
    )
    .await;
    s.ok_id(
        ALPHA,
        save,
        json!({ "i": rule("夜间提醒", "NORMAL") }),
        "saveNotificationRule",
    )
    .await;
    s.ok(ALPHA, abandon, json!({ "c": c })).await;
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending = sqlx::query("SELECT due_at FROM notification_sends WHERE tenant_id = 'alpha' AND status = 'pending'")
            .fetch_all(&s.db().pool)
            .await
            .unwrap();
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pending.len(),
        1,
        "{:?}",
        sqlx::query("SELECT user_id, channel, status, due_at, last_error FROM notification_sends")
            .fetch_all(&s.db().pool)
            .await
            .unwrap()
            .iter()
            .map(|r| format!(
                "{:?} {:?} {:?} {:?}",
                r.get::<String, _>("user_id"),
                r.get::<String, _>("status"),
                r.get::<i64, _>("due_at"),
                r.get::<Option<String>, _>("last_error")
            ))
            .collect::<Vec<_>>()
    );
    let due: i64 = pending[0].get("due_at");
    let wait = due - chrono::Utc::now().timestamp_micros();
    assert!(
        wait > 55 * 60 * 1_000_000,
        "held until the quiet hours end ({wait} µs)"
    );
    assert_eq!(robot.got().len(), 1, "nothing sent in quiet hours");

    // low priority: two notifications, one digest message
    sqlx::query("DELETE FROM notification_sends WHERE tenant_id = 'alpha'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    s.ok(
        ALPHA,
        "mutation { setNotificationPreferences(input: { imUserId: \"zhangsan\" }) { imUserId } }",
        json!({}),
    )
    .await;
    sqlx::query("DELETE FROM notification_rules WHERE tenant_id = 'alpha'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    s.ok_id(
        ALPHA,
        save,
        json!({ "i": rule("日报", "LOW") }),
        "saveNotificationRule",
    )
    .await;
    s.ok(ALPHA, abandon, json!({ "c": c })).await;
    s.ok(ALPHA, abandon, json!({ "c": c })).await;
    let mut digests = 0;
    for _ in 0..100 {
        digests = sqlx::query("SELECT COUNT(*) AS n FROM notification_sends WHERE tenant_id = 'alpha' AND digest = 1 AND status = 'pending'")
            .fetch_one(&s.db().pool)
            .await
            .unwrap()
            .get::<i64, _>("n");
        if digests == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(digests, 2);
    // the digest boundary, now rather than at the next minute
    sqlx::query(
        "UPDATE notification_sends SET due_at = 0 WHERE tenant_id = 'alpha' AND status = 'pending'",
    )
    .execute(&s.db().pool)
    .await
    .unwrap();
    let got = robot.until(|g| g.len() >= 2).await;
    let digest: Value = serde_json::from_str(&got[1].body).unwrap();
    let content = digest["text"]["content"].as_str().unwrap();
    assert!(content.contains("日报 (2 notifications)"), "{content}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(robot.got().len(), 2, "one message for both");

    // DingTalk: `timestamp` and `sign` on the URL, checked with Python's hmac
    let (url, ding) = Receiver::start(vec![TOOK]).await;
    sqlx::query("DELETE FROM notification_rules WHERE tenant_id = 'alpha'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    s.ok_id(ALPHA, save, json!({ "i": { "name": "钉钉", "eventTypes": ["event.recorded:payment_abandoned"],
        "recipients": { "owner": true }, "channels": ["DINGTALK_ROBOT"], "robotUrl": format!("{url}/robot/send?access_token=abc"),
        "robotSecret": "SECtest", "priority": "HIGH" } }), "saveNotificationRule").await;
    s.ok(ALPHA, abandon, json!({ "c": c })).await;
    let got = ding.until(|g| !g.is_empty()).await;
    let query: BTreeMap<String, String> = got[0]
        .uri
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(query["access_token"], "abc");
    let script = "import base64,hmac,hashlib,sys,urllib.parse\n\
        t=sys.argv[1];s='SECtest'\n\
        print(urllib.parse.quote_plus(base64.b64encode(hmac.new(s.encode(),(t+'\\n'+s).encode(),hashlib.sha256).digest())))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &query["timestamp"]])
        .output()
        .unwrap();
    assert_eq!(
        query["sign"],
        String::from_utf8(out.stdout).unwrap().trim(),
        "signed as DingTalk documents"
    );
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["at"]["atUserIds"], json!(["zhangsan"]));
    assert!(body["text"]["content"].as_str().unwrap().contains("钉钉"));
}

/// `shoal serve` processes share the database; the one delivering is killed with SIGKILL
/// while the receiver holds its requests; a new one finishes: every change reaches the
/// receiver, repeats carry the id of their first attempt.
async fn no_webhook_is_lost_across_a_kill(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| c.notify.workers = false).await else {
        return;
    };
    let script: Vec<Answer> = (0..8).map(|_| (200, None, "ok", 400)).collect();
    let (url, rx) = Receiver::start(script).await;
    create_webhook(&s, &format!("{url}/kill"), json!(["customer.created"])).await;
    const N: usize = 20;
    for i in 0..N {
        s.create_customer(
            ALPHA,
            json!({ "displayName": format!("客户{i}"), "sourceChannel": "WEB" }),
        )
        .await;
    }
    let dir = std::env::temp_dir().join(format!(
        "shoal-notify-kill-{}-{}",
        std::process::id(),
        backend == Backend::Sqlite
    ));
    let env = [
        ("SHOAL_NOTIFY__POLL_MS", "10"),
        ("SHOAL_SOP__WORKERS", "false"),
    ];
    let mut first = s.spawn_host(&dir, &env);
    rx.until(|g| g.len() >= 3).await;
    first.kill().unwrap(); // SIGKILL, mid-request
    first.wait().unwrap();
    let mut second = s.spawn_host(&dir, &env);
    let got = rx
        .until(|g| {
            let seqs: std::collections::BTreeSet<i64> = g
                .iter()
                .map(|x| {
                    serde_json::from_str::<Value>(&x.body).unwrap()["data"]["seq"]
                        .as_i64()
                        .unwrap()
                })
                .collect();
            seqs.len() == N
        })
        .await;
    let _ = second.kill();
    let _ = second.wait();
    let mut id_of: BTreeMap<i64, String> = BTreeMap::new();
    for g in &got {
        let seq = serde_json::from_str::<Value>(&g.body).unwrap()["data"]["seq"]
            .as_i64()
            .unwrap();
        let id = header(g, "webhook-id").to_owned();
        assert_eq!(
            id_of.entry(seq).or_insert(id.clone()),
            &id,
            "a repeat keeps its webhook-id"
        );
    }
    assert_eq!(id_of.len(), N, "no change lost");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

mod kill {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        no_webhook_is_lost_across_a_kill(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        no_webhook_is_lost_across_a_kill(Backend::Postgres).await;
    }
}

/// An endpoint with no success for `notify.disable_after_hours` (here 0: the first failure)
/// is disabled and its administrators told.
mod failing {
    use super::*;

    async fn impatient(backend: Backend) -> Option<TestServer> {
        TestServer::start_with(backend, |c| {
            c.notify.poll_ms = 20;
            c.notify.retry_schedule_seconds = vec![0, 60];
            c.notify.disable_after_hours = 0;
        })
        .await
    }

    async fn an_endpoint_failing_too_long_is_disabled(s: &TestServer) {
        let (url, rx) = Receiver::start(vec![(500, None, "down", 0)]).await;
        let (id, _) = create_webhook(s, &format!("{url}/down"), json!([])).await;
        s.create_customer(
            ALPHA,
            json!({ "displayName": "郑一", "sourceChannel": "WEB" }),
        )
        .await;
        rx.until(|g| !g.is_empty()).await;
        let mut w = Value::Null;
        for _ in 0..100 {
            w = s.ok(ALPHA, "query($id: ID!) { webhook(id: $id) { enabled disabledReason } unreadNotificationCount }", json!({ "id": id })).await;
            if w["webhook"]["enabled"] == false {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            w["webhook"]["disabledReason"], "no successful delivery for 0 hours",
            "{w}"
        );
        assert_eq!(w["unreadNotificationCount"], 1);
    }

    crate::on_both_backends_with!(impatient, an_endpoint_failing_too_long_is_disabled);
}

/// The legacy `graphql-ws` protocol (`start` / `data`) serves `changes` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_protocol_serves_changes() {
    let s = brisk(Backend::Sqlite).await.unwrap();
    let mut request = format!("ws://{}/graphql/ws", s.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut w, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let send = |v: Value| Message::Text(v.to_string().into());
    w.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {ALPHA}") } }))).await.unwrap();
    w.send(send(json!({ "id": "1", "type": "start", "payload": { "query": "subscription { changes(types: [\"customer.created\"]) { type customerId } }" } }))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "老协议", "sourceChannel": "WEB" }),
        )
        .await;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if v["type"] == "data" {
            assert_eq!(v["payload"]["data"]["changes"]["customerId"], id);
            break;
        }
    }
    s.stop().await;
}

/// A real SMTP server (Python's `smtpd`) on a local port; each message it receives is
/// parsed by Python's `email` package and printed as one JSON line.
pub(crate) struct SmtpServer {
    child: std::process::Child,
    pub(crate) port: u16,
    pub(crate) lines: Arc<Mutex<Vec<Value>>>,
}

impl SmtpServer {
    pub(crate) fn start() -> SmtpServer {
        use std::io::BufRead;
        let script = r#"
import asyncore, email, email.header, email.policy, json, smtpd, sys, warnings
warnings.simplefilter("ignore")
class S(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        m = email.message_from_bytes(data, policy=email.policy.default)
        html = m.get_body(("html",))
        print(json.dumps({"from": mailfrom, "to": rcpttos, "subject": str(m["subject"]),
                          "reply_to": m["reply-to"] and str(m["reply-to"]),
                          "body": m.get_body(("plain",)).get_content(),
                          "html": html.get_content() if html else None}), flush=True)
s = S(("127.0.0.1", 0), None, decode_data=False)
print(s.socket.getsockname()[1], flush=True)
asyncore.loop()
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-W", "ignore", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs an SMTP server");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first.trim().parse().expect("the SMTP server's port");
        let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        SmtpServer { child, port, lines }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// E-mail through a real SMTP server: the owner's address from config, a Chinese subject
/// and body as the rule and change say; a host without `notify.smtp_url` refuses the
/// channel when the rule is saved, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_notifications_reach_a_real_smtp_server() {
    let smtp = SmtpServer::start();
    let port = smtp.port;
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.notify.poll_ms = 20;
        c.notify.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.notify.email_from = "Shoal 通知 <notify@shoal.test>".into();
        c.tenants
            .get_mut("alpha")
            .unwrap()
            .users
            .get_mut("boss")
            .unwrap()
            .email = Some("boss@alpha.test".into());
    })
    .await
    .unwrap();
    s.ok(
        ALPHA,
        "mutation { saveNotificationRule(input: { name: \"新客户提醒\", eventTypes: [\"customer.created\"], recipients: { owner: true }, channels: [INBOX, EMAIL], priority: HIGH }) { id } }",
        json!({}),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "冯二", "sourceChannel": "WEB", "ownerId": "boss" }),
        )
        .await;
    let mut mail = None;
    for _ in 0..200 {
        if let Some(m) = smtp.lines.lock().unwrap().first() {
            mail = Some(m.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = mail.expect("an e-mail arrives");
    assert_eq!(mail["from"], "notify@shoal.test");
    assert_eq!(mail["to"], json!(["boss@alpha.test"]));
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("新客户提醒: customer.created"),
        "{mail}"
    );
    assert!(mail["body"].as_str().unwrap().contains(&c), "{mail}");
    s.stop().await;

    // without an SMTP relay, the channel is refused at save
    let plain = brisk(Backend::Sqlite).await.unwrap();
    let e = plain
        .err(
            ALPHA,
            "mutation { saveNotificationRule(input: { name: \"x\", recipients: { owner: true }, channels: [INBOX, EMAIL] }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(crate::harness::fields(&e), ["input.channels[1]"], "{e}");
    plain.stop().await;
}

/// The seed "a trial lesson reminder goes to the student two hours before class on two
/// channels": an SOP started by the booking event waits until two hours before the
/// `classAt` it carries, then messages the student by SMS and WeCom through the tenant's
/// channel gateway — not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_lesson_reminder_goes_two_hours_before_class_on_two_channels() {
    let (url, gateway) = Receiver::start(vec![]).await;
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.tenants.get_mut("alpha").unwrap().contact.webhook_url = Some(format!("{url}/gateway"));
    })
    .await
    .unwrap();
    let remind = |channel: &str| {
        json!({ "id": format!("remind_{channel}"), "action": { "sendMessage": {
        "channel": channel, "purpose": "SERVICE", "template": "{{customer.name}}，您的试听课两小时后开始" } } })
    };
    s.active_sop(
        ALPHA,
        "试听提醒",
        json!({ "triggers": [{ "event": { "event": { "type": "CUSTOM", "name": "trial_booked" } } }],
            "steps": [
                { "id": "two_hours_before", "action": { "waitUntilEventTime": { "field": "classAt", "offsetMinutes": -120 } } },
                remind("sms"),
                remind("wecom")
            ] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "小明", "sourceChannel": "WEB" }),
        )
        .await;
    let class_at =
        chrono::Utc::now() + chrono::Duration::minutes(120) + chrono::Duration::seconds(4);
    let booked = Instant::now();
    s.ok(
        ALPHA,
        "mutation($c: ID!, $p: JSON) { recordEvents(input: [{ customerId: $c, type: CUSTOM, name: \"trial_booked\", occurredAt: \"2026-12-01T00:00:00Z\", payload: $p }]) { createdCount } }",
        json!({ "c": c, "p": { "classAt": class_at.to_rfc3339() } }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        gateway.got().is_empty(),
        "nothing before two hours ahead of class"
    );
    let got = gateway.until(|g| g.len() >= 2).await;
    assert!(
        booked.elapsed() >= Duration::from_secs(3),
        "{:?}",
        booked.elapsed()
    );
    let channels: std::collections::BTreeSet<String> = got
        .iter()
        .map(|g| {
            serde_json::from_str::<Value>(&g.body).unwrap()["channel"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(channels, ["sms".to_owned(), "wecom".to_owned()].into());
    for g in &got {
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["customerId"], c);
        assert_eq!(body["body"], "小明，您的试听课两小时后开始");
    }
    s.stop().await;
}
