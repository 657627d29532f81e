//! Staff sign-in (docs/console.md): argon2id passwords (checked against argon2-cffi),
//! sessions in httpOnly cookies with a CSRF token, the lockout, signing out here and
//! everywhere — and a session goes through the same door as an API key.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shoal_base::storage::Db;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::harness::{
    ALPHA, ALPHA_READONLY, Backend, TestServer, add_key, code, http_with_head, python_json,
};

const AGENT_KEY: &str = "alpha-agent-key-0000000009";
const PASSWORD: &str = "长城-horse-battery-staple";

async fn server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| add_key(c, "agent-a", AGENT_KEY)).await
}

crate::on_both_backends_with!(
    server,
    a_session_acts_as_its_user_through_the_same_door,
    repeated_failures_lock_the_user_out,
    failures_from_one_address_refuse_it_whoever_signs_in,
    behind_a_proxy_its_header_names_the_address_and_ipv6_counts_by_slash_64,
    a_session_subscribes_with_its_csrf_token_until_it_signs_out,
    hashes_are_argon2id_that_another_implementation_reads,
);

/// What a browser keeps from a sign-in.
struct Browser {
    session: String,
    csrf: String,
}

/// `(status, response head, body)` of `POST /auth/sign-in`.
async fn sign_in(
    s: &TestServer,
    tenant: &str,
    login: &str,
    password: &str,
) -> (u16, String, Value) {
    let body = json!({ "tenant": tenant, "login": login, "password": password }).to_string();
    let (status, head, body) = http_with_head(
        s.addr,
        "POST",
        "/auth/sign-in",
        "Content-Type: application/json\r\n",
        &body,
    )
    .await;
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// `(status, Retry-After, body)` of `POST /auth/sign-in` with `extra` headers.
async fn sign_in_from(
    s: &TestServer,
    extra: &str,
    login: &str,
    password: &str,
) -> (u16, Option<i64>, Value) {
    let body = json!({ "tenant": "alpha", "login": login, "password": password }).to_string();
    let headers = format!("Content-Type: application/json\r\n{extra}");
    let (status, head, body) =
        http_with_head(s.addr, "POST", "/auth/sign-in", &headers, &body).await;
    let retry = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after: ")
            .map(|v| v.trim().parse().unwrap())
    });
    (
        status,
        retry,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// The `Set-Cookie` line for `name`.
fn set_cookie<'h>(head: &'h str, name: &str) -> &'h str {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
}

fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn signed_in(s: &TestServer, login: &str, password: &str) -> Browser {
    let (status, head, body) = sign_in(s, "alpha", login, password).await;
    assert_eq!(status, 200, "{body}");
    Browser {
        session: cookie_value(set_cookie(&head, "shoal_session")),
        csrf: cookie_value(set_cookie(&head, "shoal_csrf")),
    }
}

/// `POST /graphql` with the session cookie, and the CSRF header when given.
async fn graphql(s: &TestServer, b: &Browser, csrf: Option<&str>, query: &str) -> (u16, Value) {
    let mut headers = format!(
        "Content-Type: application/json\r\nCookie: shoal_session={}\r\n",
        b.session
    );
    if let Some(csrf) = csrf {
        headers.push_str(&format!("X-CSRF-Token: {csrf}\r\n"));
    }
    let body = json!({ "query": query }).to_string();
    let (status, _, body) = http_with_head(s.addr, "POST", "/graphql", &headers, &body).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn post_auth(s: &TestServer, path: &str, b: &Browser, csrf: &str) -> (u16, String, Value) {
    let headers = format!(
        "Cookie: shoal_session={}\r\nX-CSRF-Token: {csrf}\r\n",
        b.session
    );
    let (status, head, body) = http_with_head(s.addr, "POST", path, &headers, "").await;
    (
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

async fn set_password(s: &TestServer, key: &str, user: &str, password: &str) -> Value {
    s.gql(
        key,
        "mutation($u: ID!, $p: String!) { setUserPassword(userId: $u, password: $p) }",
        json!({ "u": user, "p": password }),
    )
    .await
}

const VIEWER: &str = "{ viewer { user { id } } }";
const PAGE: &str =
    "{ customers(first: 10) { totalCount edges { node { id displayName phones } } } }";

async fn a_session_acts_as_its_user_through_the_same_door(s: &TestServer) {
    // who may set a password, and which
    let short = set_password(s, ALPHA, "agent-a", "short").await;
    assert_eq!(code(&short["errors"][0]), "BAD_USER_INPUT", "{short}");
    assert!(
        short["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at least 10"),
        "{short}"
    );
    let forbidden = set_password(s, ALPHA_READONLY, "agent-a", PASSWORD).await;
    assert_eq!(code(&forbidden["errors"][0]), "FORBIDDEN", "{forbidden}");
    let set = set_password(s, ALPHA, "agent-a", PASSWORD).await;
    assert_eq!(set["data"]["setUserPassword"], true, "{set}");

    // one answer for a wrong password, an unknown user and an unknown tenant
    for (tenant, login, password) in [
        ("alpha", "agent-a", "wrong password!!"),
        ("alpha", "nobody", PASSWORD),
        ("gamma", "agent-a", PASSWORD),
        ("alpha", "boss", PASSWORD), // no password set
    ] {
        let (status, _, body) = sign_in(s, tenant, login, password).await;
        assert_eq!(status, 401, "{tenant}/{login}: {body}");
        assert_eq!(body["errors"][0]["message"], "wrong user or password");
    }

    // a form posted from another site (text/plain, no preflight) is refused
    let (status, _, _) = http_with_head(
        s.addr,
        "POST",
        "/auth/sign-in",
        "Content-Type: text/plain\r\n",
        &json!({ "tenant": "alpha", "login": "agent-a", "password": PASSWORD }).to_string(),
    )
    .await;
    assert_eq!(status, 415);

    let (status, head, body) = sign_in(s, "alpha", "agent-a", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let session = set_cookie(&head, "shoal_session");
    for attribute in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=43200",
    ] {
        assert!(session.contains(attribute), "{session}");
    }
    let csrf_line = set_cookie(&head, "shoal_csrf");
    assert!(
        !csrf_line.contains("HttpOnly"),
        "the page reads it: {csrf_line}"
    );
    assert_eq!(body["user"]["id"], "agent-a");
    assert_eq!(body["csrfToken"], cookie_value(csrf_line));
    let browser = Browser {
        session: cookie_value(session),
        csrf: cookie_value(csrf_line),
    };

    // the session is agent-a, seeing exactly what agent-a's API key sees
    for i in 0..3 {
        s.create_customer(ALPHA, json!({ "displayName": format!("客户{i}"), "sourceChannel": "WEB", "phones": [format!("1380013800{i}")] }))
            .await;
    }
    let (status, me) = graphql(s, &browser, Some(&browser.csrf), VIEWER).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["viewer"]["user"]["id"], "agent-a");
    let (_, by_session) = graphql(s, &browser, Some(&browser.csrf), PAGE).await;
    let by_key = s.ok(AGENT_KEY, PAGE, json!({})).await;
    assert_eq!(by_session["data"], by_key, "the same door");

    // a request that may change something needs the CSRF token; a GET does not
    for csrf in [None, Some("forged"), Some("")] {
        let (status, body) = graphql(s, &browser, csrf, VIEWER).await;
        assert_eq!(status, 403, "{csrf:?}: {body}");
        assert_eq!(code(&body["errors"][0]), "FORBIDDEN");
    }
    let (status, _, body) = http_with_head(
        s.addr,
        "GET",
        "/graphql?query=%7Bviewer%7Buser%7Bid%7D%7D%7D",
        &format!("Cookie: shoal_session={}\r\n", browser.session),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("agent-a"), "{body}");
    let (status, _, body) = http_with_head(
        s.addr,
        "GET",
        "/auth/session",
        &format!("Cookie: shoal_session={}\r\n", browser.session),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["csrfToken"], browser.csrf.as_str());
    assert_eq!(body["user"]["name"], "User agent-a");

    // the database keeps no token
    let db = Db::connect(&s.storage_url, 1).await.unwrap();
    let token = browser.session.rsplit_once('.').unwrap().1.to_owned();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE id = $1")
        .bind(&token)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // signing out everywhere ends every session of the user, on every host
    let other = signed_in(s, "agent-a", PASSWORD).await;
    let (status, _, body) = post_auth(s, "/auth/sign-out-everywhere", &browser, "forged").await;
    assert_eq!(status, 403, "{body}");
    let (status, head, body) =
        post_auth(s, "/auth/sign-out-everywhere", &browser, &browser.csrf).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended"], 2);
    assert!(
        set_cookie(&head, "shoal_session").contains("Max-Age=0"),
        "{head}"
    );
    for b in [&browser, &other] {
        let (status, body) = graphql(s, b, Some(&b.csrf), VIEWER).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            "the session is over: sign in again"
        );
    }

    // signing out ends this browser's session only
    let first = signed_in(s, "agent-a", PASSWORD).await;
    let second = signed_in(s, "agent-a", PASSWORD).await;
    let (status, _, body) = post_auth(s, "/auth/sign-out", &first, &first.csrf).await;
    assert_eq!((status, body["ended"].clone()), (200, json!(1)));
    assert_eq!(graphql(s, &first, Some(&first.csrf), VIEWER).await.0, 401);
    assert_eq!(graphql(s, &second, Some(&second.csrf), VIEWER).await.0, 200);

    // an administrator ends someone's sessions; a changed password ends them too
    let ended = s
        .ok(
            ALPHA,
            "mutation { endUserSessions(userId: \"agent-a\") }",
            json!({}),
        )
        .await;
    assert_eq!(ended["endUserSessions"], 1);
    assert_eq!(graphql(s, &second, Some(&second.csrf), VIEWER).await.0, 401);
    let third = signed_in(s, "agent-a", PASSWORD).await;
    set_password(s, ALPHA, "agent-a", "另一个-new-password").await;
    assert_eq!(graphql(s, &third, Some(&third.csrf), VIEWER).await.0, 401);
    assert_eq!(sign_in(s, "alpha", "agent-a", PASSWORD).await.0, 401);

    // a user changes their own password with the current one
    let mine = signed_in(s, "agent-a", "另一个-new-password").await;
    let (_, wrong) = graphql(
        s,
        &mine,
        Some(&mine.csrf),
        "mutation { setUserPassword(userId: \"agent-a\", password: \"third-password-ok\", currentPassword: \"nope\") }",
    )
    .await;
    assert_eq!(code(&wrong["errors"][0]), "BAD_USER_INPUT", "{wrong}");
    assert!(
        wrong["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("currentPassword:"),
        "{wrong}"
    );
    let (_, changed) = graphql(
        s,
        &mine,
        Some(&mine.csrf),
        "mutation { setUserPassword(userId: \"agent-a\", password: \"third-password-ok\", currentPassword: \"另一个-new-password\") }",
    )
    .await;
    assert_eq!(changed["data"]["setUserPassword"], true, "{changed}");

    // a session past its lifetime is over
    let late = signed_in(s, "agent-a", "third-password-ok").await;
    sqlx::query("UPDATE sessions SET expires_at = 0 WHERE tenant_id = 'alpha'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(graphql(s, &late, Some(&late.csrf), VIEWER).await.0, 401);
    // the next sign-in clears the sessions that are over
    signed_in(s, "agent-a", "third-password-ok").await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions WHERE tenant_id = 'alpha' AND user_id = 'agent-a'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, 1, "only the live session is kept");

    // sign-ins, password changes and ended sessions are in the audit log
    for action in ["user.signed_in", "user.password_set", "user.sessions_ended"] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = 'alpha' AND entity_type = 'user' AND action = $1",
        )
        .bind(action)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(n >= 1, "{action}");
    }
    db.pool.close().await;
}

async fn repeated_failures_lock_the_user_out(s: &TestServer) {
    set_password(s, ALPHA, "agent-a", PASSWORD).await;
    set_password(s, ALPHA, "boss", "boss-password-123").await;
    for _ in 0..4 {
        assert_eq!(
            sign_in(s, "alpha", "agent-a", "wrong-password-x").await.0,
            401
        );
    }
    // a success clears the count
    signed_in(s, "agent-a", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(
            sign_in(s, "alpha", "agent-a", "wrong-password-x").await.0,
            401
        );
    }
    let (status, head, body) = sign_in(s, "alpha", "agent-a", PASSWORD).await;
    assert_eq!(status, 429, "locked even with the right password: {body}");
    assert_eq!(code(&body["errors"][0]), "LIMIT_EXCEEDED");
    let retry: i64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Retry-After");
    assert!((890..=900).contains(&retry), "{retry}");
    // others are not locked; an administrator's new password unlocks
    signed_in(s, "boss", "boss-password-123").await;
    set_password(s, ALPHA, "agent-a", "a-fresh-password").await;
    signed_in(s, "agent-a", "a-fresh-password").await;
}

async fn hashes_are_argon2id_that_another_implementation_reads(s: &TestServer) {
    set_password(s, ALPHA, "agent-a", PASSWORD).await;
    let db = Db::connect(&s.storage_url, 1).await.unwrap();
    let stored: String = sqlx::query_scalar(
        "SELECT hash FROM user_passwords WHERE tenant_id = 'alpha' AND user_id = 'agent-a'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_eq!(
        python_json("password_hash.py", &json!({ "verify": [stored, PASSWORD] }))["ok"],
        true
    );
    assert_eq!(
        python_json(
            "password_hash.py",
            &json!({ "verify": [stored, "长城-horse-battery"] })
        )["ok"],
        false
    );

    // a hash made elsewhere (argon2-cffi's own parameters) signs in: users can be brought over
    let imported = python_json(
        "password_hash.py",
        &json!({ "hash": "从别处带来的-password" }),
    )["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !imported.contains("m=19456"),
        "other parameters: {imported}"
    );
    sqlx::query(
        "UPDATE user_passwords SET hash = $1 WHERE tenant_id = 'alpha' AND user_id = 'agent-a'",
    )
    .bind(&imported)
    .execute(&db.pool)
    .await
    .unwrap();
    signed_in(s, "agent-a", "从别处带来的-password").await;
    assert_eq!(sign_in(s, "alpha", "agent-a", PASSWORD).await.0, 401);
    db.pool.close().await;
}

async fn failures_from_one_address_refuse_it_whoever_signs_in(s: &TestServer) {
    set_password(s, ALPHA, "agent-a", PASSWORD).await;
    // twenty wrong guesses at twenty different logins: no user is locked (each failed once,
    // most do not exist), but the address (this loopback connection's) is
    for i in 0..20 {
        let (status, _, body) = sign_in_from(s, "", &format!("guess-{i}"), "Password-123").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, retry, body) = sign_in_from(s, "", "agent-a", PASSWORD).await;
    assert_eq!(status, 429, "refused even with the right password: {body}");
    assert_eq!(code(&body["errors"][0]), "LIMIT_EXCEEDED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("from this address"), "{message}");
    let retry = retry.expect("Retry-After");
    assert!((890..=900).contains(&retry), "{retry}");
    // the user is not locked: the count is the address's
    let db = Db::connect(&s.storage_url, 2).await.unwrap();
    let (failures, locked): (i64, Option<i64>) = sqlx::query_as(
        "SELECT failures, locked_until FROM user_passwords WHERE tenant_id = 'alpha' AND user_id = 'agent-a'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((failures, locked), (0, None));
    db.pool.close().await;
}

async fn behind_a_proxy_its_header_names_the_address_and_ipv6_counts_by_slash_64(s: &TestServer) {
    let s = s
        .start_beside(|c| c.server.client_address_header = Some("X-Real-IP".into()))
        .await;
    set_password(&s, ALPHA, "agent-a", PASSWORD).await;
    let from = |ip: &str| format!("X-Real-IP: {ip}\r\n");
    for i in 0..20 {
        sign_in_from(
            &s,
            &from("203.0.113.7"),
            &format!("guess-{i}"),
            "x-123456789",
        )
        .await;
    }
    assert_eq!(
        sign_in_from(&s, &from("203.0.113.7"), "agent-a", PASSWORD)
            .await
            .0,
        429
    );
    // another client behind the same proxy signs in
    assert_eq!(
        sign_in_from(&s, &from("203.0.113.8"), "agent-a", PASSWORD)
            .await
            .0,
        200
    );
    // an IPv6 client is one /64: another address in it is refused too, the next /64 is not
    for i in 0..20 {
        let ip = format!("2001:db8:1:2::{:x}", i + 1);
        sign_in_from(&s, &from(&ip), &format!("guess-{i}"), "x-123456789").await;
    }
    assert_eq!(
        sign_in_from(&s, &from("2001:db8:1:2:ffff::9"), "agent-a", PASSWORD)
            .await
            .0,
        429
    );
    assert_eq!(
        sign_in_from(&s, &from("2001:db8:1:3::1"), "agent-a", PASSWORD)
            .await
            .0,
        200
    );
    s.stop().await;
}

/// A `graphql-transport-ws` socket opened with the session cookie, and the first message
/// after `connection_init` with `payload`.
async fn socket(
    s: &TestServer,
    b: &Browser,
    payload: Value,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Option<Message>,
) {
    let mut request = format!("ws://{}/graphql/ws", s.addr)
        .into_client_request()
        .unwrap();
    let h = request.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    h.insert(
        "Cookie",
        format!("shoal_session={}", b.session).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let init = json!({ "type": "connection_init", "payload": payload });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let first = ws.next().await.and_then(Result::ok);
    (ws, first)
}

async fn a_session_subscribes_with_its_csrf_token_until_it_signs_out(s: &TestServer) {
    set_password(s, ALPHA, "boss", "boss-password-123").await;
    let b = signed_in(s, "boss", "boss-password-123").await;
    // the cookie alone does not open it: a page of another site could send that
    let (_, first) = socket(s, &b, json!({})).await;
    let text = first.map(|m| m.to_string()).unwrap_or_default();
    assert!(
        !text.contains("connection_ack"),
        "refused without the token: {text}"
    );
    let (_, first) = socket(s, &b, json!({ "csrfToken": "not-the-token" })).await;
    let text = first.map(|m| m.to_string()).unwrap_or_default();
    assert!(
        !text.contains("connection_ack"),
        "refused with another token: {text}"
    );
    // with it, the socket acts as the user
    let (mut ws, first) = socket(s, &b, json!({ "csrfToken": b.csrf })).await;
    let text = first.map(|m| m.to_string()).unwrap_or_default();
    assert!(text.contains("connection_ack"), "{text}");
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Live", "sourceChannel": "WEB" }),
        )
        .await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { eventRecorded { customerId name } }" } });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let record = "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: CUSTOM, name: \"live\", occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }";
    let mut next = None;
    for _ in 0..50 {
        s.ok(ALPHA, record, json!({ "c": c })).await;
        if let Ok(m) = tokio::time::timeout(std::time::Duration::from_millis(200), ws.next()).await
        {
            next = m;
            break;
        }
    }
    let next: Value =
        serde_json::from_str(next.expect("an event").unwrap().to_text().unwrap()).unwrap();
    assert_eq!(
        next["payload"]["data"]["eventRecorded"]["customerId"],
        json!(c)
    );
    // signing out ends the socket too (within the recheck interval)
    let (status, _, _) = post_auth(s, "/auth/sign-out", &b, &b.csrf).await;
    assert_eq!(status, 200);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(25), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket outlived its session");
}
