//! The webhook channel for real: a receiver on a local port, a `shoal serve` process whose
//! tenant posts its SOP messages there — signed, with idempotency keys, retried on failure.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};

use crate::harness::{ALPHA, Backend, TestServer};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A receiver that refuses the first request (500) and accepts the others.
async fn receiver() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = |path: &'static str, seen: Seen| {
        move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let mut s = seen.lock().unwrap();
                s.push((
                    path.to_owned(),
                    headers,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                if s.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }
    };
    let app = Router::new()
        .route("/gateway", post(record("/gateway", seen.clone())))
        .route("/crm", post(record("/crm", seen.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_webhook_calls_are_signed_retried_and_keyed() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.sop.workers = false)
        .await
        .unwrap();
    let (addr, seen) = receiver().await;
    let customer = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "赵六", "sourceChannel": "WEB" }),
        )
        .await;
    let sop = s
        .ok(
            ALPHA,
            "mutation($i: SopInput!) { createSop(input: $i) { id } }",
            json!({ "i": { "name": "Hooks", "definition": { "steps": [
                { "id": "hello", "action": { "sendMessage": { "channel": "webhook", "template": "你好 {{customer.name}}" } } },
                { "id": "crm", "action": { "callWebhook": { "url": format!("http://{addr}/crm"), "body": "{\"name\": \"{{customer.name}}\"}" } } }
            ] } } }),
        )
        .await["createSop"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        ALPHA,
        "mutation($id: ID!) { activateSop(id: $id) { id } }",
        json!({ "id": sop }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
        json!({ "id": sop, "c": [customer] }),
    )
    .await;

    let secret = "test-webhook-secret-0123456789";
    let dir = std::env::temp_dir().join(format!("shoal-hooks-{}", std::process::id()));
    let url = format!("http://{addr}/gateway");
    let mut child = s.spawn_host(
        &dir,
        &[
            ("SHOAL_SOP__POLL_MS", "10"),
            ("SHOAL_SOP__RETRY_BASE_SECONDS", "1"),
            ("SHOAL_TENANTS__ALPHA__CONTACT__WEBHOOK_URL", &url),
            (
                "SHOAL_TENANTS__ALPHA__CONTACT__WEBHOOK_SECRET_ENV",
                "SHOAL_TEST_HOOK_SECRET",
            ),
            ("SHOAL_TEST_HOOK_SECRET", secret),
        ],
    );
    let mut got = Vec::new();
    for _ in 0..300 {
        got = seen.lock().unwrap().clone();
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the host records the last delivery after the receiver answered
    for _ in 0..100 {
        let sent = s
            .ok(
                ALPHA,
                "{ outboxMessages(filter: {status: \"sent\"}) { edges { node { id } } } }",
                json!({}),
            )
            .await;
        if sent["outboxMessages"]["edges"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got.len(),
        3,
        "the refused delivery was retried once: {got:?}"
    );
    let gateway: Vec<_> = got.iter().filter(|(p, ..)| p == "/gateway").collect();
    assert_eq!(gateway.len(), 2, "refused, then retried");
    let key = |h: &HeaderMap| h["idempotency-key"].to_str().unwrap().to_owned();
    assert_eq!(
        key(&gateway[0].1),
        key(&gateway[1].1),
        "a retry carries the same key"
    );
    assert_eq!(
        gateway[0].1["webhook-id"], gateway[1].1["webhook-id"],
        "a retry carries the same webhook-id"
    );
    // the step's endpoint has a secret of its own, made when the SOP was saved
    let endpoints = s
        .ok(ALPHA, "{ webhookEndpoints { url secret } }", json!({}))
        .await;
    assert_eq!(
        endpoints["webhookEndpoints"][0]["url"],
        format!("http://{addr}/crm")
    );
    let endpoint_secret = endpoints["webhookEndpoints"][0]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(
                endpoint_secret
                    .strip_prefix("whsec_")
                    .expect("whsec_ prefix"),
            )
            .unwrap()
    };
    assert_eq!(endpoint_key.len(), 32);
    for (path, headers, body) in &got {
        // the Standard Webhooks headers, checked by Python's hmac (not Shoal's code)
        let key = if path == "/crm" {
            endpoint_key.clone()
        } else {
            secret.as_bytes().to_vec()
        };
        let id = headers["webhook-id"].to_str().unwrap();
        let ts = headers["webhook-timestamp"].to_str().unwrap();
        assert_eq!(
            headers["webhook-signature"].to_str().unwrap(),
            python_standard_signature(&key, id, ts, body),
            "{path}: a valid Standard Webhooks signature"
        );
        let sig = headers["x-shoal-signature"].to_str().unwrap();
        let t: i64 = sig
            .strip_prefix("t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let key = if path == "/crm" {
            endpoint_key.clone()
        } else {
            secret.as_bytes().to_vec()
        };
        assert_eq!(
            sig,
            shoal_sop::outbox::signature(&key, t, body.as_bytes()),
            "{path}: a valid signature"
        );
        if path == "/crm" {
            assert_ne!(
                sig,
                shoal_sop::outbox::signature(secret.as_bytes(), t, body.as_bytes()),
                "a step webhook is never signed with the gateway secret"
            );
        }
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["customerId"], customer.as_str());
        assert_eq!(v["sopId"], sop.as_str());
    }
    let hello: Value = serde_json::from_str(&gateway[1].2).unwrap();
    assert_eq!(
        (hello["channel"].as_str(), hello["body"].as_str()),
        (Some("webhook"), Some("你好 赵六"))
    );
    let crm = got.iter().find(|(p, ..)| p == "/crm").unwrap();
    let crm: Value = serde_json::from_str(&crm.2).unwrap();
    assert_eq!(
        crm["body"],
        json!({ "name": "赵六" }),
        "the step's JSON body, rendered"
    );
    assert!(key(&gateway[0].1).ends_with(":hello:0"));

    let out = s
        .ok(
            ALPHA,
            "{ outboxMessages { edges { node { channel status attempts lastError sentAt } } } }",
            json!({}),
        )
        .await;
    let mut rows: Vec<(String, String, i64)> = out["outboxMessages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["channel"].as_str().unwrap().to_owned(),
                e["node"]["status"].as_str().unwrap().to_owned(),
                e["node"]["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("http".to_owned(), "sent".to_owned(), 1),
            ("webhook".to_owned(), "sent".to_owned(), 2)
        ]
    );
    let rotated = s
        .ok(
            ALPHA,
            "mutation($u: String!) { rotateWebhookSecret(url: $u) { secret rotatedAt } }",
            json!({ "u": format!("http://{addr}/crm") }),
        )
        .await;
    assert_ne!(
        rotated["rotateWebhookSecret"]["secret"],
        endpoint_secret.as_str()
    );
    assert!(!rotated["rotateWebhookSecret"]["rotatedAt"].is_null());
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local HTTPS receiver with a fresh self-signed certificate for 127.0.0.1: its address,
/// the certificate (PEM) and what it received (path, raw head, body).
async fn tls_receiver() -> (
    SocketAddr,
    String,
    Arc<Mutex<Vec<(String, String, String)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                // the head, then as many body bytes as it announces
                let (head, body) = loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_owned(), body.to_owned());
                        }
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push((path, head, body));
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, cert.cert.pem(), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_webhooks_go_over_https_to_certificates_the_host_trusts() {
    let (trusted, pem, seen) = tls_receiver().await;
    let (untrusted, _, unseen) = tls_receiver().await;
    let roots = std::env::temp_dir().join(format!("shoal-roots-{}.pem", std::process::id()));
    std::fs::write(&roots, pem).unwrap();
    let path = roots.clone();
    let s = TestServer::start_with(Backend::Sqlite, move |c| {
        c.sop.tls_roots = Some(path);
        c.sop.retry_base_seconds = 60;
    })
    .await
    .unwrap();
    let customer = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "孙八", "sourceChannel": "WEB" }),
        )
        .await;
    let sop = s
        .active_sop(
            ALPHA,
            "TLS",
            json!({ "steps": [
                { "id": "good", "action": { "callWebhook": { "url": format!("https://{trusted}/secure"), "body": "{\"name\": \"{{customer.name}}\"}" } } },
                { "id": "bad", "action": { "callWebhook": { "url": format!("https://{untrusted}/secure") } } }
            ] }),
        )
        .await;
    s.enrol(ALPHA, &sop, &[&customer]).await;
    let mut refused = Value::Null;
    for _ in 0..200 {
        refused = s
            .ok(
                ALPHA,
                "{ outboxMessages(filter: {status: \"pending\"}) { edges { node { target lastError } } } }",
                json!({}),
            )
            .await;
        let pending = refused["outboxMessages"]["edges"].as_array().unwrap();
        if !seen.lock().unwrap().is_empty()
            && pending.iter().any(|e| !e["node"]["lastError"].is_null())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "the trusted receiver got the call once: {got:?}"
    );
    let (path, head, body) = &got[0];
    assert_eq!(path, "/secure");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["body"], json!({ "name": "孙八" }));
    let endpoints = s
        .ok(ALPHA, "{ webhookEndpoints { url secret } }", json!({}))
        .await;
    let secret = endpoints["webhookEndpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == format!("https://{trusted}/secure"))
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap()
    };
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-shoal-signature: "))
        .expect("signed");
    let t: i64 = sig[2..sig.find(',').unwrap()].parse().unwrap();
    assert_eq!(sig, shoal_sop::outbox::signature(&key, t, body.as_bytes()));
    assert!(
        unseen.lock().unwrap().is_empty(),
        "the untrusted receiver got nothing"
    );
    let error = refused["outboxMessages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["node"]["lastError"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "the untrusted call waits with the TLS error: {refused}"
    );
    s.stop().await;
    let _ = std::fs::remove_file(&roots);
}

/// `v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>` computed by Python's standard
/// library: an implementation independent of Shoal's.
pub(crate) fn python_standard_signature(key: &[u8], id: &str, ts: &str, body: &str) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let script = "import base64,hmac,hashlib,sys\n\
        k,i,t,b=(base64.b64decode(a) for a in sys.argv[1:5])\n\
        m=i+b'.'+t+b'.'+b\n\
        print('v1,'+base64.b64encode(hmac.new(k,m,hashlib.sha256).digest()).decode())";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .args([
            b64(key),
            b64(id.as_bytes()),
            b64(ts.as_bytes()),
            b64(body.as_bytes()),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
