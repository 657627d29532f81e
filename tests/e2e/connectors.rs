//! Inbound connectors (docs/connectors.md): WeCom callbacks encrypted by Python's
//! `cryptography` package (`tests/fixtures/wecom/encrypt.py`, never our own encryptor),
//! a local WeCom stand-in serving `gettoken` and `externalcontact/get` in their documented
//! shapes, and a shop relay's signed orders (signed by Python too).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    harness::{ALPHA, Backend, TestServer, http},
    webhooks::python_standard_signature,
};

const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "ww0123456789";

/// A contact as the stand-in knows it: name, unionid, the phones staff noted.
type Contact = (String, String, Vec<String>);

/// WeCom, for the calls the connector makes: the token and a contact's details.
#[derive(Clone, Default)]
struct FakeWecom {
    tokens_issued: Arc<Mutex<u32>>,
    /// external_userid → (name, unionid, phones staff noted)
    contacts: Arc<Mutex<BTreeMap<String, Contact>>>,
    fetched: Arc<Mutex<Vec<String>>>,
}

impl FakeWecom {
    async fn start() -> (String, FakeWecom) {
        let w = FakeWecom::default();
        async fn gettoken(State(w): State<FakeWecom>) -> Json<Value> {
            let mut n = w.tokens_issued.lock().unwrap();
            *n += 1;
            Json(
                json!({ "errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN{n}"), "expires_in": 7200 }),
            )
        }
        // the answer WeCom documents for 获取客户详情
        async fn contact(
            State(w): State<FakeWecom>,
            Query(q): Query<HashMap<String, String>>,
        ) -> Json<Value> {
            if q.get("access_token")
                .is_none_or(|t| !t.starts_with("TOKEN"))
            {
                return Json(json!({ "errcode": 40014, "errmsg": "invalid access_token" }));
            }
            let id = q.get("external_userid").cloned().unwrap_or_default();
            w.fetched.lock().unwrap().push(id.clone());
            let Some((name, unionid, phones)) = w.contacts.lock().unwrap().get(&id).cloned() else {
                return Json(json!({ "errcode": 84061, "errmsg": "not external contact" }));
            };
            Json(json!({
                "errcode": 0, "errmsg": "ok",
                "external_contact": {
                    "external_userid": id, "name": name, "type": 1, "gender": 1,
                    "unionid": unionid, "avatar": "http://p.qlogo.cn/x/0"
                },
                "follow_user": [{
                    "userid": "zhangsan", "remark": "", "description": "", "createtime": 1_700_000_000,
                    "tags": [], "remark_mobiles": phones, "add_way": 1, "oper_userid": "zhangsan",
                    "state": "repair-qr"
                }],
                "next_cursor": ""
            }))
        }
        let app = Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/externalcontact/get", get(contact))
            .with_state(w.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), w)
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

async fn connector_server(backend: Backend, wecom_url: String) -> Option<TestServer> {
    TestServer::start_with(backend, move |c| {
        let alpha = c.tenants.get_mut("alpha").unwrap();
        alpha.channels.wecom = Some(shoal_base::config::WecomConfig {
            base_url: wecom_url,
            corp_id: CORP.into(),
            secret_env: "SHOAL_TEST_WECOM_SECRET".into(),
            default_sender: None,
            senders: BTreeMap::new(),
        });
        alpha.connectors.wecom.insert(
            "sales".into(),
            shoal_base::config::WecomCallbackConfig {
                receiver_id: CORP.into(),
                token_env: "SHOAL_TEST_WECOM_TOKEN".into(),
                aes_key_env: "SHOAL_TEST_WECOM_AES_KEY".into(),
            },
        );
        alpha.connectors.hooks.insert(
            "shop".into(),
            shoal_base::config::HookConfig {
                secret_env: "SHOAL_TEST_HOOK_SECRET".into(),
                customers: Some(fixture("connectors/shop-customers.toml")),
                events: Some(fixture("connectors/shop-events.toml")),
            },
        );
    })
    .await
}

/// One message encrypted as WeCom sends it (by Python).
#[derive(Debug, Clone)]
struct Sealed {
    query: String,
    body: String,
    encrypt: String,
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Encrypts each plaintext for `receiver` with the test app's keys, in one Python run.
fn seal(receiver: &str, plaintexts: &[String]) -> Vec<Sealed> {
    let request = json!({
        "token": TOKEN, "aes_key": AES_KEY, "receiver_id": receiver,
        "messages": plaintexts.iter().enumerate().map(|(i, xml)| json!({
            "xml": xml, "timestamp": 1_760_000_000 + i as i64, "nonce": format!("n{i}")
        })).collect::<Vec<_>>(),
    });
    let sealed = crate::harness::python_json("wecom/encrypt.py", &request);
    let sealed = sealed.as_array().unwrap();

    sealed
        .iter()
        .map(|m| Sealed {
            query: format!(
                "msg_signature={}&timestamp={}&nonce={}",
                m["msg_signature"].as_str().unwrap(),
                m["timestamp"].as_str().unwrap(),
                m["nonce"].as_str().unwrap()
            ),
            body: m["body"].as_str().unwrap().to_owned(),
            encrypt: m["encrypt"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn contact_event(change: &str, external: &str, at: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>\
         <UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>\
         <State><![CDATA[repair-qr]]></State><WelcomeCode><![CDATA[WELCOME]]></WelcomeCode></xml>"
    )
}

fn group_event(detail: &str, members: &[&str], at: i64) -> String {
    let items: String = members
        .iter()
        .map(|m| format!("<Item><![CDATA[{m}]]></Item>"))
        .collect();
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrGROUP1]]></ChatId>\
         <ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[{detail}]]></UpdateDetail>\
         <JoinScene>1</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>{}</MemChangeCnt>\
         <MemChangeList>{items}</MemChangeList></xml>",
        members.len()
    )
}

async fn post_wecom(s: &TestServer, m: &Sealed) -> (u16, String) {
    http(
        s.addr,
        "POST",
        &format!("/connectors/alpha/wecom/sales?{}", m.query),
        "Content-Type: text/xml\r\n",
        &m.body,
    )
    .await
}

/// Waits until every delivery was processed; answers the deliveries (source, status,
/// outcome) oldest first.
async fn settled(s: &TestServer) -> Vec<(String, String, String)> {
    use sqlx::Row;
    for _ in 0..3000 {
        let rows = sqlx::query(
            "SELECT source, status, outcome FROM inbound_deliveries WHERE tenant_id = 'alpha' ORDER BY received_at, id",
        )
        .fetch_all(&s.db().pool)
        .await
        .unwrap();
        let all: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.get("source"),
                    r.get("status"),
                    r.get::<Option<String>, _>("outcome").unwrap_or_default(),
                )
            })
            .collect();
        if all.iter().all(|(_, status, _)| status != "pending") {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still pending after 150 s");
}

const BY_IDENTITY: &str = "query($c: Channel!, $id: String!) { customers(filter: {identity: {channel: $c, externalId: $id}}) { edges { node {
    id displayName phones sourceChannel attributes identities { channel externalId }
    timeline(first: 50) { edges { node { type name channel payload idempotencyKey amount { amount currency } } } } } } } }";

async fn by_identity(s: &TestServer, channel: &str, id: &str) -> Vec<Value> {
    let data = s
        .ok(ALPHA, BY_IDENTITY, json!({ "c": channel, "id": id }))
        .await;
    data["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn timeline(c: &Value) -> Vec<Value> {
    c["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// WeCom's URL check answers the decrypted echostr; contact and group events become the
/// customer and timeline events; replays add nothing; bad signatures are 401 and counted.
async fn wecom_callbacks_become_customers_and_events(backend: Backend) {
    let (url, wecom) = FakeWecom::start().await;
    wecom.contacts.lock().unwrap().insert(
        "wmLI".into(),
        ("李四".into(), "ozLI".into(), vec!["13800000001".into()]),
    );
    let Some(s) = connector_server(backend, url).await else {
        return;
    };
    // the URL check an admin's "save" starts
    let echo = &seal(CORP, &["1616140317555161061".into()])[0];
    let (status, body) = http(
        s.addr,
        "GET",
        &format!(
            "/connectors/alpha/wecom/sales?{}&echostr={}",
            echo.query,
            urlencode(&echo.encrypt)
        ),
        "",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "1616140317555161061"));
    let forged = echo.query.replacen("msg_signature=", "msg_signature=0", 1);
    let (status, _) = http(
        s.addr,
        "GET",
        &format!(
            "/connectors/alpha/wecom/sales?{forged}&echostr={}",
            urlencode(&echo.encrypt)
        ),
        "",
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http(
        s.addr,
        "GET",
        &format!("/connectors/alpha/wecom/nope?{}&echostr=x", echo.query),
        "",
        "",
    )
    .await;
    assert_eq!(status, 404);

    // the seed's "scan → service agreement + repair ticket": an SOP on the contact event,
    // for customers who scanned the repair QR code (its state is `repair-qr`)
    s.active_sop(
        ALPHA,
        "扫码报修",
        json!({
            "triggers": [{ "event": {
                "event": { "type": "CUSTOM", "name": "wecom.add_external_contact" },
                "condition": "attr.wecomState = \"repair-qr\""
            } }],
            "steps": [
                { "id": "agreement", "action": { "createTask": { "title": "发送服务协议给 {{customer.name}}", "assignee": "agent-a", "dueInSeconds": 3600 } } },
                { "id": "repair", "action": { "createTicket": { "title": "上门维修：{{customer.name}}", "priority": "high" } } }
            ]
        }),
    )
    .await;
    // a customer adds a store assistant, who later edits the contact; they part ways
    let t0 = 1_764_900_000;
    let sealed = seal(
        CORP,
        &[
            contact_event("add_external_contact", "wmLI", t0),
            contact_event("edit_external_contact", "wmLI", t0 + 60),
            group_event("add_member", &["wmLI", "wmSTRANGER"], t0 + 120),
            contact_event("del_follow_user", "wmLI", t0 + 180),
        ],
    );
    for m in &sealed {
        assert_eq!(post_wecom(&s, m).await, (200, "success".into()));
    }
    // WeCom sends again when it heard no answer in time: the same message, nothing new
    assert_eq!(post_wecom(&s, &sealed[0]).await, (200, "success".into()));
    let deliveries = settled(&s).await;
    assert_eq!(deliveries.len(), 4, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|(_, st, _)| st == "done"),
        "{deliveries:?}"
    );
    assert!(
        deliveries[2].2.contains("1 refused") && deliveries[2].2.contains("no customer"),
        "the unknown group member is counted and why: {}",
        deliveries[2].2
    );
    assert!(
        !deliveries[2].2.contains("wmSTRANGER"),
        "outcomes hold no customer data: {}",
        deliveries[2].2
    );
    // a captured event replayed to the URL check is not decrypted for the caller
    let (status, body) = http(
        s.addr,
        "GET",
        &format!(
            "/connectors/alpha/wecom/sales?{}&echostr={}",
            sealed[0].query,
            urlencode(&sealed[0].encrypt)
        ),
        "",
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("wmLI"), "{body}");

    let found = by_identity(&s, "WECOM", "wmLI").await;
    assert_eq!(found.len(), 1, "one customer: {found:?}");
    let li = &found[0];
    assert_eq!(li["displayName"], "李四");
    assert_eq!(li["sourceChannel"], "WECOM");
    assert_eq!(li["phones"], json!(["+8613800000001"]));
    let mut ids: Vec<(String, String)> = li["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["channel"].as_str().unwrap().into(),
                i["externalId"].as_str().unwrap().into(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("WECHAT".to_owned(), "ozLI".to_owned()),
            ("WECOM".into(), "wmLI".into())
        ]
    );
    assert_eq!(by_identity(&s, "WECHAT", "ozLI").await.len(), 1);
    let events = timeline(li);
    let mut names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "wecom.add_external_contact",
            "wecom.del_follow_user",
            "wecom.edit_external_contact",
            "wecom.group_join"
        ]
    );
    let added = events
        .iter()
        .find(|e| e["name"] == "wecom.add_external_contact")
        .unwrap();
    assert_eq!(added["type"], "CUSTOM");
    assert_eq!(added["channel"], "WECOM");
    assert_eq!(added["payload"]["staff"], "zhangsan");
    assert_eq!(added["payload"]["state"], "repair-qr");
    let joined = events
        .iter()
        .find(|e| e["name"] == "wecom.group_join")
        .unwrap();
    assert_eq!(joined["payload"]["chatId"], "wrGROUP1");
    assert_eq!(li["attributes"]["wecomState"], "repair-qr");
    // the SOP opened the repair ticket (once: the edit is another event) and the task
    let id = li["id"].as_str().unwrap();
    let mut tickets = Value::Null;
    for _ in 0..200 {
        tickets = s
            .ok(
                ALPHA,
                "query($c: ID) { tickets(filter: {customerId: $c}) { edges { node { subject priority channel } } } }",
                json!({ "c": id }),
            )
            .await;
        if !tickets["tickets"]["edges"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        tickets["tickets"]["edges"],
        json!([{ "node": { "subject": "上门维修：李*", "priority": 2, "channel": "sop" } }])
    );
    // contact details fetched twice (add, edit) with one token: it is cached
    assert_eq!(*wecom.fetched.lock().unwrap(), ["wmLI", "wmLI"]);
    assert_eq!(*wecom.tokens_issued.lock().unwrap(), 1);

    // forged, re-addressed and garbled deliveries are refused before anything is stored
    let forged = Sealed {
        query: sealed[0].query.replacen("nonce=", "nonce=x", 1),
        ..sealed[0].clone()
    };
    assert_eq!(post_wecom(&s, &forged).await.0, 401);
    let other = &seal(
        "wwSOMEONEELSE",
        &[contact_event("add_external_contact", "wmLI", t0 + 999)],
    )[0];
    assert_eq!(post_wecom(&s, other).await.0, 401);
    let garbled = Sealed {
        body: "<xml><Encrypt>".into(),
        ..sealed[0].clone()
    };
    assert_eq!(post_wecom(&s, &garbled).await.0, 400);
    assert_eq!(settled(&s).await.len(), 4, "nothing refused was stored");
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l.contains("connectors.wecom")
            && l.contains("bad_signature")
            && l.trim_end().ends_with(" 3")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("connectors"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // a contact WeCom no longer knows: the delivery fails with WeCom's reason, not retried
    let gone = &seal(
        CORP,
        &[contact_event("add_external_contact", "wmGONE", t0 + 300)],
    )[0];
    assert_eq!(post_wecom(&s, gone).await.0, 200);
    let deliveries = settled(&s).await;
    let last = deliveries.last().unwrap();
    assert_eq!(last.1, "failed");
    assert!(last.2.contains("84061"), "{last:?}");
    assert!(by_identity(&s, "WECOM", "wmGONE").await.is_empty());
    // staff see why, and try it again once WeCom knows the contact
    let failed = s
        .ok(
            ALPHA,
            "{ connectorDeliveries(status: \"failed\") { id source status attempts outcome } }",
            json!({}),
        )
        .await;
    let failed = failed["connectorDeliveries"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["source"], "wecom:sales");
    assert_eq!(
        failed[0]["attempts"], 1,
        "WeCom's refusal is final: not retried"
    );
    wecom.contacts.lock().unwrap().insert(
        "wmGONE".into(),
        ("回来了".into(), String::new(), Vec::new()),
    );
    let retried = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { retryConnectorDelivery(id: $id) { status attempts } }",
            json!({ "id": failed[0]["id"] }),
        )
        .await;
    assert_eq!(
        retried["retryConnectorDelivery"],
        json!({ "status": "pending", "attempts": 0 })
    );
    assert!(settled(&s).await.iter().all(|(_, st, _)| st == "done"));
    assert_eq!(
        by_identity(&s, "WECOM", "wmGONE").await[0]["displayName"],
        "回来了"
    );
    let again = s
        .err(
            ALPHA,
            "mutation($id: ID!) { retryConnectorDelivery(id: $id) { status } }",
            json!({ "id": failed[0]["id"] }),
        )
        .await;
    assert_eq!(
        crate::harness::fields(&again),
        ["id"],
        "only a failed delivery is retried"
    );
    s.stop().await;
}

async fn post_hook(s: &TestServer, id: &str, body: &str, signature: Option<&str>) -> (u16, String) {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode("c2hvcC1yZWxheS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3")
        .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = signature
        .map(str::to_owned)
        .unwrap_or_else(|| python_standard_signature(&key, id, &ts, body));
    http(
        s.addr,
        "POST",
        "/connectors/alpha/hooks/shop",
        &format!(
            "webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Type: application/json\r\n"
        ),
        body,
    )
    .await
}

/// A shop relay's signed orders: the mapping (JSON pointers) makes the buyer and the order;
/// a replayed webhook-id and an order posted again under a new id add nothing.
async fn signed_webhooks_map_orders_to_customers_and_events(backend: Backend) {
    let (url, _wecom) = FakeWecom::start().await;
    let Some(s) = connector_server(backend, url).await else {
        return;
    };
    let order = json!({
        "kind": "paid", "shop": "天猫旗舰店", "platform": "tmall", "order_id": "TM20261205001",
        "at": "2026-11-30T10:30:00+08:00", "total": "299.00", "currency": "CNY",
        "items": ["保温杯", "杯套"],
        "buyer": { "id": "tb_wang", "nick": "王小明", "mobile": "13900000002" },
        "address": { "city": "杭州" }
    })
    .to_string();
    let (status, body) = post_hook(&s, "msg_1", &order, None).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"duplicate\":false"), "{body}");
    // the relay retries the same delivery, then posts the same order under a new id
    let (status, body) = post_hook(&s, "msg_1", &order, None).await;
    assert_eq!(status, 202);
    assert!(body.contains("\"duplicate\":true"), "{body}");
    assert_eq!(post_hook(&s, "msg_2", &order, None).await.0, 202);
    // a refund of it, a view by another buyer
    let refund = json!({
        "kind": "refunded", "shop": "天猫旗舰店", "platform": "tmall", "order_id": "TM20261205001-R1",
        "at": "2026-12-01T09:00:00+08:00", "total": "99.00", "currency": "CNY",
        "buyer": { "id": "tb_wang", "nick": "王小明" }
    })
    .to_string();
    assert_eq!(post_hook(&s, "msg_3", &refund, None).await.0, 202);
    // refused: a bad signature, a stale timestamp's signature, not JSON, an unknown hook
    assert_eq!(
        post_hook(&s, "msg_4", &order, Some("v1,Zm9yZ2Vk")).await.0,
        401
    );
    assert_eq!(post_hook(&s, "msg_5", "not json", None).await.0, 400);
    let too_many = Value::Array(vec![json!({}); 1001]).to_string();
    assert_eq!(post_hook(&s, "msg_6", &too_many, None).await.0, 400);
    let (status, _) = http(s.addr, "POST", "/connectors/alpha/hooks/nope", "", "{}").await;
    assert_eq!(status, 404);
    let (status, _) = http(s.addr, "POST", "/connectors/beta/hooks/shop", "", "{}").await;
    assert_eq!(status, 404);

    let deliveries = settled(&s).await;
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|(_, st, _)| st == "done"),
        "{deliveries:?}"
    );
    let found = by_identity(&s, "SHOP", "tb_wang").await;
    assert_eq!(found.len(), 1);
    let wang = &found[0];
    assert_eq!(wang["displayName"], "王小明");
    assert_eq!(wang["phones"], json!(["+8613900000002"]));
    assert_eq!(wang["sourceChannel"], "SHOP");
    assert_eq!(wang["attributes"]["city"], "杭州");
    let events = timeline(wang);
    assert_eq!(
        events.len(),
        2,
        "the order once, the refund: {events:?} {deliveries:?}"
    );
    let paid = events.iter().find(|e| e["type"] == "ORDER").unwrap();
    assert_eq!(
        paid["amount"],
        json!({ "amount": "299.00", "currency": "CNY" })
    );
    assert_eq!(paid["idempotencyKey"], "shop-order:TM20261205001");
    assert_eq!(paid["payload"]["shop"], "天猫旗舰店");
    assert_eq!(paid["payload"]["items"], "保温杯;杯套");
    let refunded = events.iter().find(|e| e["type"] == "REFUND").unwrap();
    assert_eq!(refunded["amount"]["amount"], "99.00");
    s.stop().await;
}

/// 10,000 WeCom events (and a tenth of them sent twice, as WeCom does when it hears no
/// answer in time) from four senders at once: every one recorded once.
async fn a_flood_of_callbacks_loses_and_doubles_nothing(backend: Backend) {
    const EVENTS: usize = 10_000;
    const CUSTOMERS: usize = 50;
    let (url, _wecom) = FakeWecom::start().await;
    let Some(s) = connector_server(backend, url).await else {
        return;
    };
    for i in 0..CUSTOMERS {
        s.create_customer(
            ALPHA,
            json!({ "displayName": format!("群成员{i}"), "sourceChannel": "WECOM", "identities": [{ "channel": "WECOM", "externalId": format!("wmF{i}") }] }),
        )
        .await;
    }
    let t0 = 1_764_000_000;
    let plaintexts: Vec<String> = (0..EVENTS)
        .map(|i| {
            let member = format!("wmF{}", i % CUSTOMERS);
            let detail = if i % 2 == 0 {
                "add_member"
            } else {
                "del_member"
            };
            group_event(detail, &[&member], t0 + i as i64)
        })
        .collect();
    let sealed = Arc::new(seal(CORP, &plaintexts));
    let started = std::time::Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for k in 0..4 {
        let sealed = sealed.clone();
        let addr = s.addr;
        senders.spawn(async move {
            let mut bad = 0;
            for (i, m) in sealed.iter().enumerate().filter(|(i, _)| i % 4 == k) {
                let times = if i % 10 == 0 { 2 } else { 1 };
                for _ in 0..times {
                    let (status, _) = http(
                        addr,
                        "POST",
                        &format!("/connectors/alpha/wecom/sales?{}", m.query),
                        "",
                        &m.body,
                    )
                    .await;
                    bad += usize::from(status != 200);
                }
            }
            bad
        });
    }
    while let Some(bad) = senders.join_next().await {
        assert_eq!(bad.unwrap(), 0, "every callback answered 200");
    }
    let posted = started.elapsed();
    let deliveries = settled(&s).await;
    // figures for docs/benchmarks.md (printed, never asserted)
    eprintln!(
        "connector flood ({backend:?}): {} callbacks answered in {posted:?}, all {EVENTS} processed after {:?}",
        EVENTS + EVENTS / 10,
        started.elapsed()
    );
    assert_eq!(deliveries.len(), EVENTS);
    assert!(deliveries.iter().all(|(_, st, _)| st == "done"));
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT idempotency_key) AS k FROM events WHERE tenant_id = 'alpha' AND channel = 'wecom'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>("n"), EVENTS as i64);
    assert_eq!(row.get::<i64, _>("k"), EVENTS as i64);
    s.stop().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wecom_callbacks_become_customers_and_events() {
        super::wecom_callbacks_become_customers_and_events(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signed_webhooks_map_orders_to_customers_and_events() {
        super::signed_webhooks_map_orders_to_customers_and_events(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_callbacks_loses_and_doubles_nothing() {
        super::a_flood_of_callbacks_loses_and_doubles_nothing(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wecom_callbacks_become_customers_and_events() {
        super::wecom_callbacks_become_customers_and_events(Backend::Postgres).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signed_webhooks_map_orders_to_customers_and_events() {
        super::signed_webhooks_map_orders_to_customers_and_events(Backend::Postgres).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_callbacks_loses_and_doubles_nothing() {
        super::a_flood_of_callbacks_loses_and_doubles_nothing(Backend::Postgres).await;
    }
}
