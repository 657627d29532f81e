//! Campaigns (群发), end to end: an audience with exclusions frozen at submit and previewed
//! beforehand, per-tag and A/B variants, approval, the SOP engine's caps shared, local
//! windows, cancel, per-recipient status from the outbox and from channel reports, and the
//! SMS and WeCom adapters against local servers that check the documented request shapes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    harness::{ALPHA, Backend, TestServer, code, eventually_within, fields},
    notify::Receiver,
    webhooks::python_standard_signature,
};

const MANAGER: &str = "alpha-manager-key-000000009";
const CREATE: &str = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id status } }";
const SUBMIT: &str = "mutation($id: ID!) { submitCampaign(id: $id) { id status frozenCount } }";
const READ: &str = "query($id: ID!) { campaign(id: $id) { status frozenCount \
    stats { leader variants { variant recipients sent delivered failed converted } } \
    recipients(first: 1000) { customerId variant status reason messageId } } }";
const SMS_SECRET: &str = "e2e-sms-gateway-key-0123456789";

async fn customer(s: &TestServer, name: &str, extra: Value) -> String {
    let mut input = json!({ "displayName": name, "sourceChannel": "WEB", "ownerId": "agent-a" });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s.create_customer(ALPHA, input).await
}

async fn tag(s: &TestServer, tag: &str, customers: &[&str]) {
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": customers }),
    )
    .await;
}

async fn create(s: &TestServer, key: &str, input: Value) -> String {
    s.ok(key, CREATE, json!({ "i": input })).await["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn read(s: &TestServer, id: &str) -> Value {
    s.ok(ALPHA, READ, json!({ "id": id })).await["campaign"].clone()
}

/// Waits (up to 20 s) until the campaign satisfies `done`.
async fn until(s: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually_within(
        Duration::from_secs(20),
        Duration::from_millis(100),
        &format!("campaign {id}"),
        async || read(s, id).await,
        done,
    )
    .await
}

/// Each recipient's (status, variant, reason) by customer id.
fn by_customer(c: &Value) -> HashMap<String, (String, String, Option<String>)> {
    c["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["customerId"].as_str().unwrap().to_owned(),
                (
                    r["status"].as_str().unwrap().to_owned(),
                    r["variant"].as_str().unwrap().to_owned(),
                    r["reason"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

async fn outbox_of(s: &TestServer, customer: &str) -> Vec<Value> {
    s.ok(
        ALPHA,
        "query($c: ID) { outboxMessages(filter: { customerId: $c }) { edges { node { channel body status purpose } } } }",
        json!({ "c": customer }),
    )
    .await["outboxMessages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn the_audience_is_previewed_frozen_and_each_recipient_gets_its_variant(s: &TestServer) {
    let asked = s.manual_tag(ALPHA, "问过产品").await;
    let vip = s.manual_tag(ALPHA, "VIP").await;
    let bought = s.manual_tag(ALPHA, "已购").await;
    let zhang = customer(s, "张三", json!({})).await;
    let li = customer(s, "李四", json!({})).await;
    let wang = customer(s, "王五", json!({})).await;
    let zhao = customer(s, "赵六", json!({})).await;
    let outsider = customer(s, "路人", json!({})).await;
    tag(s, &asked, &[&zhang, &li, &wang, &zhao]).await;
    tag(s, &vip, &[&li]).await;
    tag(s, &bought, &[&wang]).await;
    // 赵六 ordered yesterday
    s.ok(
        ALPHA,
        "mutation($i: [RecordEventInput!]!) { recordEvents(input: $i) { createdCount } }",
        json!({ "i": [{ "customerId": zhao, "type": "ORDER", "name": "course_pack", "payload": { "product": "课程包" },
            "occurredAt": (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339(),
            "amount": { "amount": "99", "currency": "CNY" } }] }),
    )
    .await;
    let input = json!({
        "name": "新品推荐 · 十二月",
        "channel": "log",
        "audience": {
            "tagsAny": ["问过产品"],
            "exclude": [{ "tag": "已购" }, { "boughtWithinDays": 30, "boughtProduct": "课程包" }]
        },
        "variants": [
            { "key": "vip", "tag": "VIP", "template": "尊敬的{{customer.name}}，VIP 专享新品" },
            { "key": "a", "weight": 50, "template": "{{customer.name}}，新品到了" },
            { "key": "b", "weight": 50, "template": "{{customer.name}}，来看看新品" }
        ],
        "winnerMetric": "CONVERTED"
    });
    let preview = s
        .ok(
            ALPHA,
            "query($i: CampaignInput!) { campaignPreview(input: $i) { audience recipients excluded { exclusion count } } }",
            json!({ "i": input }),
        )
        .await;
    assert_eq!(
        preview["campaignPreview"],
        json!({ "audience": 4, "recipients": 2, "excluded": [
            { "exclusion": "tagged 已购", "count": 1 },
            { "exclusion": "bought 课程包 in the last 30 days", "count": 1 }
        ] })
    );
    let id = create(s, ALPHA, input).await;
    let submitted = s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    assert_eq!(
        submitted["submitCampaign"]["frozenCount"], 2,
        "the preview's count"
    );
    // a customer tagged after the audience froze is not added
    tag(s, &asked, &[&outsider]).await;
    let done = until(s, &id, |c| c["status"] == "COMPLETED").await;
    let r = by_customer(&done);
    assert_eq!(r.len(), 4, "the frozen audience, exclusions included");
    assert!(!r.contains_key(&outsider));
    assert_eq!(r[&li].0, "sent");
    assert_eq!(r[&li].1, "vip", "the tag variant wins over the split");
    assert_eq!(r[&zhang].0, "sent");
    assert!(["a", "b"].contains(&r[&zhang].1.as_str()));
    assert_eq!(
        (r[&wang].0.as_str(), r[&wang].2.as_deref()),
        ("skipped", Some("excluded: tagged 已购"))
    );
    assert_eq!(
        (r[&zhao].0.as_str(), r[&zhao].2.as_deref()),
        (
            "skipped",
            Some("excluded: bought 课程包 in the last 30 days")
        )
    );
    let sent = outbox_of(s, &li).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"], "尊敬的李四，VIP 专享新品");
    assert_eq!(
        (sent[0]["channel"].as_str(), sent[0]["purpose"].as_str()),
        (Some("log"), Some("marketing"))
    );
    assert!(
        outbox_of(s, &wang).await.is_empty(),
        "nothing for the excluded"
    );

    // 张三 orders after the message: converted, and the split variant leads on conversions
    s.ok(
        ALPHA,
        "mutation($i: [RecordEventInput!]!) { recordEvents(input: $i) { createdCount } }",
        json!({ "i": [{ "customerId": zhang, "type": "ORDER", "occurredAt": chrono::Utc::now().to_rfc3339(),
            "amount": { "amount": "199", "currency": "CNY" } }] }),
    )
    .await;
    let converted = until(s, &id, |c| by_customer(c)[&zhang].0 == "converted").await;
    let variant = &by_customer(&converted)[&zhang].1;
    assert_eq!(converted["stats"]["leader"], json!(variant));
    let stats: Vec<&Value> = converted["stats"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let of = |k: &str| stats.iter().find(|v| v["variant"] == k).unwrap();
    assert_eq!(of(variant)["converted"], 1);
    assert_eq!(of(variant)["sent"], 1, "a conversion was sent first");
    assert_eq!(of("vip")["sent"], 1);
}

async fn bad_campaigns_are_refused_with_the_field_named(s: &TestServer) {
    let e = s
        .err(
            ALPHA,
            CREATE,
            json!({ "i": { "name": "", "channel": "pigeon", "audience": {},
                "variants": [{ "key": "a", "weight": 60, "template": "{{customer.password}}" },
                             { "key": "b", "weight": 30, "template": "hi" }] } }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    let f = fields(&e);
    for field in [
        "name",
        "channel",
        "content.variants",
        "content.variants[0].template",
    ] {
        assert!(f.contains(&field.to_owned()), "{field} in {f:?}");
    }
    // an exclusion is one thing
    let e = s
        .err(
            ALPHA,
            CREATE,
            json!({ "i": { "name": "x", "channel": "log", "audience": { "tagsAny": ["x"],
                "exclude": [{ "tag": "a", "optedOut": true }] },
                "variants": [{ "key": "a", "template": "hi" }] } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.audience.exclude[0]"]);
    // a channel without an adapter is refused at submit, not "sent"
    let c = customer(s, "钱七", json!({})).await;
    let id = create(
        s,
        ALPHA,
        json!({ "name": "企微群发", "channel": "wecom", "audience": { "customers": [c] },
            "variants": [{ "key": "a", "template": "hi" }] }),
    )
    .await;
    let e = s.err(ALPHA, SUBMIT, json!({ "id": id })).await;
    assert_eq!(fields(&e), ["channel"]);
    assert!(e["message"].as_str().unwrap().contains("no adapter"), "{e}");
    // sensitive words, with positions in characters
    let id = create(
        s,
        ALPHA,
        json!({ "name": "夸张", "channel": "log", "audience": { "customers": [c] },
            "variants": [{ "key": "a", "template": "本店全网第一，１００％有效" }] }),
    )
    .await;
    let e = s.err(ALPHA, SUBMIT, json!({ "id": id })).await;
    assert_eq!(
        fields(&e),
        [
            "content.variants[0].template",
            "content.variants[0].template"
        ]
    );
    let words = s
        .ok(
            ALPHA,
            "query($t: String!) { sensitiveWords(text: $t) { word position } }",
            json!({ "t": "本店全网第一，１００％有效" }),
        )
        .await;
    assert_eq!(
        words["sensitiveWords"],
        json!([{ "word": "全网第一", "position": 2 }, { "word": "100%有效", "position": 7 }])
    );
    // an agent may not message in bulk
    let agent = s
        .err(
            "alpha-agent-key-00000000008",
            CREATE,
            json!({ "i": { "name": "x", "channel": "log", "audience": { "customers": [c] },
                "variants": [{ "key": "a", "template": "hi" }] } }),
        )
        .await;
    assert_eq!(code(&agent), "FORBIDDEN");
    // a listed audience names, to an agent, only the customers the agent may see
    let mine = customer(s, "自己的客户", json!({ "ownerId": "agent-b" })).await;
    let id = create(
        s,
        ALPHA,
        json!({ "name": "名单", "channel": "log", "audience": { "customers": [c, mine] },
            "variants": [{ "key": "a", "template": "hi" }] }),
    )
    .await;
    let read_audience = |key: &'static str| {
        let id = id.clone();
        async move {
            s.ok(
                key,
                "query($id: ID!) { campaign(id: $id) { audience } }",
                json!({ "id": id }),
            )
            .await["campaign"]["audience"]["customers"]
                .clone()
        }
    };
    assert_eq!(
        read_audience("alpha-agent-key-00000000008").await,
        json!([mine])
    );
    assert_eq!(read_audience(ALPHA).await, json!([c, mine]));
    // a page of recipients holds 1–1000
    for first in [0, 1001] {
        let e = s
            .err(
                ALPHA,
                "query($id: ID!, $f: Int!) { campaign(id: $id) { recipients(first: $f) { customerId } } }",
                json!({ "id": id, "f": first }),
            )
            .await;
        assert_eq!(code(&e), "LIMIT_EXCEEDED", "{e}");
        assert_eq!(e["extensions"]["field"], "first", "{e}");
    }
}

async fn approval_is_by_someone_else_and_a_rejection_says_why(s: &TestServer) {
    // the audience is what the submitter may see: the manager's own customer
    let c = customer(s, "孙八", json!({ "ownerId": "mgr" })).await;
    let input = json!({ "name": "周年庆", "channel": "log", "audience": { "customers": [c] },
        "variants": [{ "key": "a", "template": "周年庆，{{customer.name}}" }] });
    let id = create(s, MANAGER, input.clone()).await;
    let submitted = s.ok(MANAGER, SUBMIT, json!({ "id": id })).await;
    assert_eq!(submitted["submitCampaign"]["status"], "PENDING_APPROVAL");
    const REJECT: &str = "mutation($id: ID!, $n: String!) { rejectCampaign(id: $id, note: $n) { status reviewNote } }";
    const APPROVE: &str = "mutation($id: ID!) { approveCampaign(id: $id) { status reviewedBy } }";
    // the submitter cannot approve, nor can a manager (approvers are admins)
    assert_eq!(
        code(&s.err(MANAGER, APPROVE, json!({ "id": id })).await),
        "FORBIDDEN"
    );
    let e = s.err(ALPHA, REJECT, json!({ "id": id, "n": " " })).await;
    assert_eq!(fields(&e), ["note"]);
    let rejected = s
        .ok(ALPHA, REJECT, json!({ "id": id, "n": "换个标题" }))
        .await;
    assert_eq!(
        rejected["rejectCampaign"],
        json!({ "status": "REJECTED", "reviewNote": "换个标题" })
    );
    assert!(
        read(s, &id).await["recipients"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // changed and submitted again, approved, sent
    s.ok(
        MANAGER,
        "mutation($id: ID!, $i: CampaignInput!) { updateCampaign(id: $id, input: $i) { status } }",
        json!({ "id": id, "i": input }),
    )
    .await;
    s.ok(MANAGER, SUBMIT, json!({ "id": id })).await;
    let approved = s.ok(ALPHA, APPROVE, json!({ "id": id })).await;
    assert_eq!(
        approved["approveCampaign"],
        json!({ "status": "SCHEDULED", "reviewedBy": "boss" })
    );
    let done = until(s, &id, |c| c["status"] == "COMPLETED").await;
    assert_eq!(by_customer(&done)[&c].0, "sent");
}

async fn campaign_and_sop_messages_count_against_one_cap(s: &TestServer) {
    let capped = customer(s, "周九", json!({})).await;
    let free = customer(s, "吴十", json!({})).await;
    let opted = customer(s, "郑十一", json!({})).await;
    // an SOP's marketing message to 周九 a moment ago
    s.greeted(ALPHA, &[&capped]).await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"log\", optedOut: true) }",
        json!({ "c": opted }),
    )
    .await;
    for (on_cap, expect) in [("DEFER", "deferred"), ("DROP", "skipped")] {
        let id = create(
            s,
            ALPHA,
            json!({ "name": format!("cap {on_cap}"), "channel": "log", "onCap": on_cap.to_lowercase(),
                "audience": { "customers": [capped, free, opted] },
                "variants": [{ "key": "a", "template": "hi" }] }),
        )
        .await;
        s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
        let c = until(s, &id, |c| {
            let r = by_customer(c);
            r.values().all(|(status, ..)| status != "queued")
        })
        .await;
        let r = by_customer(&c);
        assert_eq!(r[&capped].0, expect, "{on_cap}");
        assert!(
            r[&capped]
                .2
                .as_deref()
                .unwrap()
                .starts_with("frequency cap"),
            "{:?}",
            r[&capped]
        );
        assert_eq!(r[&opted].0, "skipped");
        assert!(r[&opted].2.as_deref().unwrap().contains("opted out"));
        if on_cap == "DEFER" {
            // the first campaign's message to 吴十 counts against the cap of the second
            assert_eq!(r[&free].0, "sent");
        } else {
            assert_eq!(r[&free].0, "skipped", "{:?}", r[&free]);
        }
        s.ok(
            ALPHA,
            "mutation($id: ID!) { cancelCampaign(id: $id) { cancelled } }",
            json!({ "id": id }),
        )
        .await;
    }
}

async fn each_customer_is_reached_in_their_own_window(s: &TestServer) {
    // UTC+14 and UTC−11: the same calendar date begins 25 hours apart
    let east = customer(
        s,
        "基里巴斯",
        json!({ "attributes": { "timeZone": "Pacific/Kiritimati" } }),
    )
    .await;
    let west = customer(
        s,
        "美属萨摩亚",
        json!({ "attributes": { "timeZone": "Pacific/Pago_Pago" } }),
    )
    .await;
    let today_east = chrono::Utc::now()
        .with_timezone(&chrono_tz::Pacific::Kiritimati)
        .date_naive();
    let id = create(
        s,
        ALPHA,
        json!({ "name": "本地时间", "channel": "log", "audience": { "customers": [east, west] },
            "variants": [{ "key": "a", "template": "早上好" }],
            "schedule": { "localDate": today_east.to_string(), "localStart": "00:00", "localEnd": "23:59" } }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    let c = until(s, &id, |c| by_customer(c)[&east].0 == "sent").await;
    // in Pago Pago that date has not begun: still queued
    assert_eq!(by_customer(&c)[&west].0, "queued");
    assert_eq!(c["status"], "RUNNING");
}

async fn a_cancel_stops_everything_not_yet_handed_over(s: &TestServer) {
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(customer(s, &format!("客户{i}"), json!({})).await);
    }
    let id = create(
        s,
        ALPHA,
        json!({ "name": "慢慢发", "channel": "log", "audience": { "customers": ids },
            "variants": [{ "key": "a", "template": "hi" }] }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    // the log channel takes 5 a second here: cancel once some went out
    until(s, &id, |c| {
        by_customer(c).values().any(|(status, ..)| status == "sent")
    })
    .await;
    let cancelled = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { cancelCampaign(id: $id) { cancelled alreadyHanded } }",
            json!({ "id": id }),
        )
        .await["cancelCampaign"]
        .clone();
    let (n, handed) = (
        cancelled["cancelled"].as_i64().unwrap(),
        cancelled["alreadyHanded"].as_i64().unwrap(),
    );
    assert!(n > 0 && handed > 0, "{cancelled}");
    assert_eq!(n + handed, 60);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = read(s, &id).await;
    assert_eq!(c["status"], "CANCELLED");
    let r = by_customer(&c);
    let count = |s: &str| r.values().filter(|(status, ..)| status == s).count() as i64;
    assert_eq!(
        count("cancelled"),
        n,
        "nothing cancelled was sent afterwards"
    );
    assert_eq!(count("sent"), handed);
    // and a cancelled campaign cannot be cancelled again
    let e = s
        .err(
            ALPHA,
            "mutation($id: ID!) { cancelCampaign(id: $id) { cancelled } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
}

/// Servers for these tests: a manager who may message in bulk (campaigns need an admin's
/// approval when a manager submits them), a cap of one marketing message a day, the log
/// channel throttled to 5 a second.
async fn campaign_server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        let alpha = c.tenants.get_mut("alpha").unwrap();
        alpha.users.insert(
            "mgr".into(),
            shoal_base::config::UserConfig::new("Manager", "manager"),
        );
        alpha.users.insert(
            "agent-b".into(),
            shoal_base::config::UserConfig::new("Agent B", "agent"),
        );
        for (user, key) in [("mgr", MANAGER), ("agent-b", "alpha-agent-key-00000000008")] {
            alpha.api_keys.insert(
                format!("{user}-key"),
                shoal_base::config::ApiKeyConfig {
                    user: user.into(),
                    sha256: Some(shoal_base::config::sha256_hex(key)),
                    env: None,
                },
            );
        }
        alpha.campaigns.approval = true;
        alpha.campaigns.trusted_roles = vec!["admin".into()];
        alpha.contact.caps = vec![shoal_base::config::CapConfig {
            channel: "*".into(),
            purpose: "marketing".into(),
            max: 1,
            window_hours: 24,
        }];
        alpha.channels.per_second.insert("log".into(), 5);
    })
    .await
}

crate::on_both_backends_with!(
    campaign_server,
    the_audience_is_previewed_frozen_and_each_recipient_gets_its_variant,
    bad_campaigns_are_refused_with_the_field_named,
    approval_is_by_someone_else_and_a_rejection_says_why,
    campaign_and_sop_messages_count_against_one_cap,
    each_customer_is_reached_in_their_own_window,
    a_cancel_stops_everything_not_yet_handed_over,
);

/// Servers whose `sms` channel is a local gateway (`url`).
async fn sms_server(backend: Backend, url: &str) -> Option<TestServer> {
    let url = url.to_owned();
    TestServer::start_with(backend, move |c| {
        c.sop.retry_base_seconds = 1;
        c.tenants.get_mut("alpha").unwrap().channels.sms = Some(shoal_base::config::SmsConfig {
            url: format!("{url}/sms/send"),
            secret_env: "SHOAL_TEST_SMS_SECRET".into(),
            template_id: "SMS_20261202".into(),
            sign_name: Some("【Shoal】".into()),
        });
    })
    .await
}

async fn the_sms_gateway_gets_signed_requests_and_reports_back(backend: Backend) {
    let (url, gateway) = Receiver::start(vec![(500, None, "busy", 0)]).await;
    let Some(s) = sms_server(backend, &url).await else {
        return;
    };
    let with_phone = customer(&s, "冯十二", json!({ "phones": ["13800138012"] })).await;
    let without = customer(&s, "陈十三", json!({})).await;
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "短信", "channel": "sms", "audience": { "customers": [with_phone, without] },
            "variants": [{ "key": "a", "template": "{{customer.name}}，您的优惠券已到账" }] }),
    )
    .await;
    let preview = s
        .ok(
            ALPHA,
            "query($i: CampaignInput!) { campaignPreview(input: $i) { recipients excluded { exclusion count } } }",
            json!({ "i": { "name": "短信", "channel": "sms", "audience": { "customers": [with_phone, without] },
                "variants": [{ "key": "a", "template": "x" }] } }),
        )
        .await;
    assert_eq!(
        preview["campaignPreview"],
        json!({ "recipients": 1, "excluded": [{ "exclusion": "no phone number", "count": 1 }] })
    );
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    // the first answer is a 500: retried with the same message id and idempotency key
    let got = gateway.until(|g| g.len() >= 2).await;
    let header = |i: usize, h: &str| got[i].headers[h].to_str().unwrap().to_owned();
    assert_eq!(got[0].uri, "/sms/send");
    assert_eq!(header(0, "webhook-id"), header(1, "webhook-id"));
    assert_eq!(header(0, "idempotency-key"), header(1, "idempotency-key"));
    let body: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(
        body,
        json!({ "id": header(1, "webhook-id"), "to": "+8613800138012", "templateId": "SMS_20261202",
            "signName": "【Shoal】", "params": { "content": "冯十二，您的优惠券已到账" } })
    );
    // the signature, recomputed by Python's hmac
    assert_eq!(
        header(1, "webhook-signature"),
        python_standard_signature(
            SMS_SECRET.as_bytes(),
            &header(1, "webhook-id"),
            &header(1, "webhook-timestamp"),
            &got[1].body
        )
    );
    let sent = until(&s, &id, |c| by_customer(c)[&with_phone].0 == "sent").await;
    assert_eq!(
        by_customer(&sent)[&without],
        (
            "skipped".into(),
            "a".into(),
            Some("excluded: no phone number".into())
        )
    );
    let message = sent["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["customerId"] == with_phone.as_str())
        .unwrap()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(message, header(1, "webhook-id"));
    // the gateway's delivery report, signed (by Python) with the same key
    let report = |status: &str| json!({ "messageId": message, "status": status }).to_string();
    let post = |body: String, signature: Option<String>| {
        let addr = s.addr;
        async move {
            let ts = chrono::Utc::now().timestamp().to_string();
            let signature = signature.unwrap_or_else(|| {
                python_standard_signature(SMS_SECRET.as_bytes(), "rcpt_1", &ts, &body)
            });
            let headers = format!(
                "webhook-id: rcpt_1\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Type: application/json\r\n"
            );
            crate::harness::http(
                addr,
                "POST",
                "/channels/alpha/sms/receipts",
                &headers,
                &body,
            )
            .await
            .0
        }
    };
    assert_eq!(
        post(report("delivered"), Some("v1,Zm9yZ2Vk".into())).await,
        401
    );
    assert_eq!(by_customer(&read(&s, &id).await)[&with_phone].0, "sent");
    assert_eq!(post(report("delivered"), None).await, 204);
    assert_eq!(
        by_customer(&read(&s, &id).await)[&with_phone].0,
        "delivered"
    );
    // a late failure report cannot move a delivered message backwards
    assert_eq!(post(report("failed"), None).await, 204);
    assert_eq!(
        by_customer(&read(&s, &id).await)[&with_phone].0,
        "delivered"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_sms_gateway_gets_signed_requests_and_reports_back() {
    the_sms_gateway_gets_signed_requests_and_reports_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_sms_gateway_gets_signed_requests_and_reports_back() {
    the_sms_gateway_gets_signed_requests_and_reports_back(Backend::Postgres).await;
}

/// A stand-in for WeCom's API that checks what the documentation says each call carries.
#[derive(Clone, Default)]
struct FakeWecom {
    /// Calls in order: (path, access_token or corpsecret, JSON body).
    calls: Arc<Mutex<Vec<(String, String, Value)>>>,
    tokens_issued: Arc<Mutex<u32>>,
    /// The send result each external_userid reports.
    results: Arc<Mutex<BTreeMap<String, i64>>>,
    /// The tasks `add_msg_template` made: msgid → (sender, external_userids).
    tasks: Arc<Mutex<BTreeMap<String, Task>>>,
}

/// A WeCom mass-message task: its sender and customers.
type Task = (String, Vec<String>);

impl FakeWecom {
    async fn start() -> (String, FakeWecom) {
        let w = FakeWecom::default();
        async fn gettoken(
            State(w): State<FakeWecom>,
            Query(q): Query<HashMap<String, String>>,
        ) -> Json<Value> {
            w.calls.lock().unwrap().push((
                "gettoken".into(),
                q.get("corpsecret").cloned().unwrap_or_default(),
                json!({ "corpid": q.get("corpid") }),
            ));
            let mut n = w.tokens_issued.lock().unwrap();
            *n += 1;
            Json(
                json!({ "errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN{n}"), "expires_in": 7200 }),
            )
        }
        async fn api(
            State(w): State<FakeWecom>,
            axum::extract::Path(name): axum::extract::Path<String>,
            Query(q): Query<HashMap<String, String>>,
            Json(body): Json<Value>,
        ) -> Json<Value> {
            let token = q.get("access_token").cloned().unwrap_or_default();
            w.calls
                .lock()
                .unwrap()
                .push((name.clone(), token.clone(), body.clone()));
            // the first token "expires" at its first use: the adapter must fetch another
            if token == "TOKEN1" {
                return Json(json!({ "errcode": 42001, "errmsg": "access_token expired" }));
            }
            Json(match name.as_str() {
                "add_msg_template" => {
                    let to: Vec<String> = body["external_userid"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    let ok = body["chat_type"] == "single"
                        && body["text"]["content"].is_string()
                        && body["sender"].is_string()
                        && (1..=10_000).contains(&to.len());
                    if !ok {
                        json!({ "errcode": 40058, "errmsg": "invalid parameter" })
                    } else {
                        // customers who deleted the sender cannot be sent to
                        let (gone, reached): (Vec<String>, Vec<String>) =
                            to.into_iter().partition(|t| t.starts_with("wmGONE"));
                        let mut tasks = w.tasks.lock().unwrap();
                        let msgid = format!("msg-{:04}", tasks.len() + 1);
                        tasks.insert(
                            msgid.clone(),
                            (body["sender"].as_str().unwrap().to_owned(), reached),
                        );
                        json!({ "errcode": 0, "errmsg": "ok", "fail_list": gone, "msgid": msgid })
                    }
                }
                "get_groupmsg_send_result" => {
                    let msgid = body["msgid"].as_str().unwrap_or("");
                    let task = w.tasks.lock().unwrap().get(msgid).cloned();
                    match task {
                        Some((sender, to)) if body["userid"] == sender => {
                            let results = w.results.lock().unwrap();
                            let list: Vec<Value> = to.iter().map(|t| json!({ "external_userid": t, "userid": sender,
                                "status": results.get(t).copied().unwrap_or(0), "send_time": 1764633600 })).collect();
                            json!({ "errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": list })
                        }
                        _ => json!({ "errcode": 41063, "errmsg": "msgid or userid not found" }),
                    }
                }
                _ => json!({ "errcode": 0, "errmsg": "ok" }),
            })
        }
        let app = Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/externalcontact/{name}", post(api))
            .with_state(w.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), w)
    }
}

async fn wecom_mass_messages_follow_the_documented_calls(backend: Backend) {
    let (url, wecom) = FakeWecom::start().await;
    let Some(s) = TestServer::start_with(backend, move |c| {
        let alpha = c.tenants.get_mut("alpha").unwrap();
        alpha.channels.wecom = Some(shoal_base::config::WecomConfig {
            base_url: url,
            corp_id: "ww0123456789".into(),
            secret_env: "SHOAL_TEST_WECOM_SECRET".into(),
            default_sender: Some("front-desk".into()),
            senders: BTreeMap::from([("agent-a".into(), "zhangsan".into())]),
        });
    })
    .await
    else {
        return;
    };
    let identity = |id: &str| json!({ "identities": [{ "channel": "WECOM", "externalId": id }] });
    let friend = customer(&s, "好友", identity("wmFRIEND")).await;
    let stranger = customer(&s, "非好友", identity("wmSTRANGER")).await;
    wecom.results.lock().unwrap().insert("wmFRIEND".into(), 1);
    wecom.results.lock().unwrap().insert("wmSTRANGER".into(), 2);
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "企微群发", "channel": "wecom", "audience": { "customers": [friend, stranger] },
            "variants": [{ "key": "a", "template": "{{customer.name}}，新品上架" }] }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    let done = until(&s, &id, |c| {
        let r = by_customer(c);
        r[&friend].0 == "delivered" && r[&stranger].0 == "failed"
    })
    .await;
    assert!(
        by_customer(&done)[&stranger]
            .2
            .as_deref()
            .unwrap()
            .contains("not (any more) a contact"),
    );
    let calls = wecom.calls.lock().unwrap().clone();
    // the secret went to gettoken only; the expired token was replaced once, then cached
    assert_eq!(calls[0].0, "gettoken");
    assert_eq!(calls[0].1, "e2e-wecom-corp-secret");
    assert_eq!(calls[0].2, json!({ "corpid": "ww0123456789" }));
    assert_eq!(*wecom.tokens_issued.lock().unwrap(), 2);
    let sends: Vec<&(String, String, Value)> =
        calls.iter().filter(|c| c.0 == "add_msg_template").collect();
    let accepted: Vec<&&(String, String, Value)> =
        sends.iter().filter(|c| c.1 == "TOKEN2").collect();
    assert_eq!(accepted.len(), 2);
    let to_friend = accepted
        .iter()
        .find(|c| c.2["external_userid"] == json!(["wmFRIEND"]))
        .unwrap();
    assert_eq!(
        to_friend.2,
        json!({ "chat_type": "single", "external_userid": ["wmFRIEND"], "sender": "zhangsan",
            "allow_select": false, "text": { "content": "好友，新品上架" } })
    );
    assert!(
        calls
            .iter()
            .any(|c| c.0 == "get_groupmsg_send_result" && c.2["userid"] == "zhangsan")
    );
    // cancelled after the hand-over, before the sender confirmed: the task is withdrawn
    let waiting = customer(&s, "未确认", identity("wmWAITING")).await;
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "撤回", "channel": "wecom", "audience": { "customers": [waiting] },
            "variants": [{ "key": "a", "template": "限时活动" }] }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    until(&s, &id, |c| by_customer(c)[&waiting].0 == "sent").await;
    let cancel = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { cancelCampaign(id: $id) { cancelled alreadyHanded } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        cancel["cancelCampaign"],
        json!({ "cancelled": 0, "alreadyHanded": 1 })
    );
    let withdrawn = until(&s, &id, |c| by_customer(c)[&waiting].0 == "failed").await;
    assert!(
        by_customer(&withdrawn)[&waiting]
            .2
            .as_deref()
            .unwrap()
            .starts_with("withdrawn"),
    );
    let task = wecom
        .tasks
        .lock()
        .unwrap()
        .iter()
        .find(|(_, (_, to))| to == &["wmWAITING"])
        .map(|(msgid, _)| msgid.clone())
        .unwrap();
    assert!(
        wecom
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.0 == "cancel_groupmsg_send" && c.2 == json!({ "msgid": task }))
    );

    // one text to many customers: one task per sender, not one per customer
    let before = wecom.tasks.lock().unwrap().len();
    let a1 = customer(&s, "甲", identity("wmA1")).await;
    let a2 = customer(&s, "乙", identity("wmA2")).await;
    let gone = customer(&s, "丙", identity("wmGONE3")).await;
    let desk = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "丁", "sourceChannel": "WEB",
                "identities": [{ "channel": "WECOM", "externalId": "wmDESK" }] }),
        )
        .await;
    wecom.results.lock().unwrap().insert("wmA1".into(), 1);
    wecom.results.lock().unwrap().insert("wmDESK".into(), 1);
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "双十二", "channel": "wecom", "audience": { "customers": [a1, a2, gone, desk] },
            "variants": [{ "key": "a", "template": "双十二活动今晚八点开始" }] }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    let done = until(&s, &id, |c| {
        let r = by_customer(c);
        r[&a1].0 == "delivered" && r[&desk].0 == "delivered" && r[&gone].0 == "failed"
    })
    .await;
    let r = by_customer(&done);
    assert_eq!(r[&a2].0, "sent", "not confirmed by the sender yet");
    assert!(
        r[&gone]
            .2
            .as_deref()
            .unwrap()
            .contains("cannot send to wmGONE3 as zhangsan")
    );
    let mut tasks: Vec<(String, Vec<String>)> = wecom
        .tasks
        .lock()
        .unwrap()
        .values()
        .skip(before)
        .map(|(sender, to)| {
            let mut to = to.clone();
            to.sort();
            (sender.clone(), to)
        })
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            ("front-desk".to_owned(), vec!["wmDESK".to_owned()]),
            (
                "zhangsan".to_owned(),
                vec!["wmA1".to_owned(), "wmA2".to_owned()]
            ),
        ],
        "one add_msg_template per sender (the customer WeCom refused is in its fail_list)"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wecom_mass_messages_follow_the_documented_calls() {
    wecom_mass_messages_follow_the_documented_calls(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wecom_mass_messages_follow_the_documented_calls() {
    wecom_mass_messages_follow_the_documented_calls(Backend::Postgres).await;
}

/// A host killed with SIGKILL in the middle of a send: after a restart every recipient is
/// sent, each customer's message went to the gateway under one message id and one
/// idempotency key however often it was handed over, and nobody got two messages.
async fn a_host_killed_mid_send_loses_nothing_and_sends_once(backend: Backend) {
    const N: usize = 200;
    let (url, gateway) = Receiver::start(vec![]).await;
    let sms = format!("{url}/sms/send");
    // this server sets up and reads: its own workers are off
    let setup = sms.clone();
    let Some(s) = TestServer::start_with(backend, move |c| {
        c.sop.workers = false;
        c.tenants.get_mut("alpha").unwrap().channels.sms = Some(shoal_base::config::SmsConfig {
            url: setup,
            secret_env: "SHOAL_TEST_SMS_SECRET".into(),
            template_id: "SMS_20261202".into(),
            sign_name: None,
        });
    })
    .await
    else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..N {
        let phone = format!("1380013{i:04}");
        ids.push(customer(&s, &format!("客户{i}"), json!({ "phones": [phone] })).await);
    }
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "断电演练", "channel": "sms", "audience": { "customers": ids },
            "variants": [{ "key": "a", "template": "{{customer.name}}，周末特惠" }] }),
    )
    .await;
    assert_eq!(
        s.ok(ALPHA, SUBMIT, json!({ "id": id })).await["submitCampaign"]["frozenCount"],
        N as i64
    );
    let dir = std::env::temp_dir().join(format!("shoal-campaign-crash-{}", std::process::id()));
    let env = [
        ("SHOAL_SOP__POLL_MS", "5"),
        ("SHOAL_SOP__WEBHOOK_TIMEOUT_MS", "1000"),
        ("SHOAL_SOP__RETRY_BASE_SECONDS", "1"),
        ("SHOAL_TENANTS__ALPHA__CHANNELS__SMS__URL", sms.as_str()),
        (
            "SHOAL_TENANTS__ALPHA__CHANNELS__SMS__SECRET_ENV",
            "SHOAL_TEST_SMS_SECRET",
        ),
        (
            "SHOAL_TENANTS__ALPHA__CHANNELS__SMS__TEMPLATE_ID",
            "SMS_20261202",
        ),
        ("SHOAL_TENANTS__ALPHA__CHANNELS__PER_SECOND__SMS", "50"),
    ];
    let mut host = s.spawn_host(&dir, &env);
    // kill the host once the send is under way, before it ends
    gateway.until(|g| g.len() >= 40).await;
    host.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    host.wait().unwrap();
    let at_kill = gateway.got().len();
    assert!(at_kill < N, "the kill came mid-send: {at_kill} of {N}");
    let mut host = s.spawn_host(&dir, &env);
    let mut done = Value::Null;
    for _ in 0..600 {
        done = read(&s, &id).await;
        if done["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let statuses = by_customer(&done);
    assert_eq!(statuses.len(), N);
    assert!(
        statuses.values().all(|(status, ..)| status == "sent"),
        "{statuses:?}"
    );
    // at least once, with stable ids: a repeat carries the same message id and key
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in gateway.got() {
        let h = |name: &str| g.headers[name].to_str().unwrap().to_owned();
        by_key
            .entry(h("idempotency-key"))
            .or_default()
            .push(h("webhook-id"));
    }
    assert_eq!(
        by_key.len(),
        N,
        "every customer's message reached the gateway"
    );
    for (key, ids) in &by_key {
        assert!(ids.iter().all(|i| i == &ids[0]), "{key}: {ids:?}");
        assert!(
            key.starts_with(&format!("campaign:{id}:")),
            "the key names the campaign and customer: {key}"
        );
    }
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_messages WHERE tenant_id = 'alpha' AND campaign_id = $1",
    )
    .bind(&id)
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(queued, N as i64, "one outbox message per recipient");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_host_killed_mid_send_loses_nothing_and_sends_once() {
    a_host_killed_mid_send_loses_nothing_and_sends_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_host_killed_mid_send_loses_nothing_and_sends_once() {
    a_host_killed_mid_send_loses_nothing_and_sends_once(Backend::Postgres).await;
}

/// The response head of a GET (status line and headers, lower-cased names).
async fn head_of(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(h, _)| h.to_owned())
}

/// E-mail through a real SMTP server (Python's): from the tenant's address, the first line
/// as the subject, the links kept in the text part and tracked in the HTML part; the pixel
/// and the link move the recipient to `opened` and `clicked`, and the host redirects only
/// to links the message holds.
async fn email_goes_through_the_relay_and_opens_and_clicks_are_tracked(backend: Backend) {
    let smtp = crate::notify::SmtpServer::start();
    let port = smtp.port;
    let Some(s) = TestServer::start_with(backend, move |c| {
        c.notify.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.server.public_url = Some("https://crm.example.com/".into());
        c.tenants.get_mut("alpha").unwrap().channels.email =
            Some(shoal_base::config::EmailChannelConfig {
                from: "星河零售 <news@xinghe.example>".into(),
                reply_to: Some("service@xinghe.example".into()),
            });
    })
    .await
    else {
        return;
    };
    let reader = customer(&s, "李雷", json!({ "emails": ["lilei@example.com"] })).await;
    let without = customer(&s, "韩梅梅", json!({})).await;
    let link = "https://shop.example/p?id=7&c=a";
    let id = create(
        &s,
        ALPHA,
        json!({ "name": "双十二", "channel": "email", "audience": { "customers": [reader, without] },
            "variants": [{ "key": "a", "template": format!("双十二预告\n{{{{customer.name}}}}，您好：新品见 {link}，回复 TD 退订。") }] }),
    )
    .await;
    s.ok(ALPHA, SUBMIT, json!({ "id": id })).await;
    let sent = until(&s, &id, |c| by_customer(c)[&reader].0 == "sent").await;
    assert_eq!(
        by_customer(&sent)[&without].2.as_deref(),
        Some("excluded: no e-mail address")
    );
    let message = sent["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["customerId"] == reader.as_str())
        .unwrap()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = {
        let mut got = None;
        for _ in 0..100 {
            if let Some(m) = smtp.lines.lock().unwrap().first() {
                got = Some(m.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        got.expect("the SMTP server got the message")
    };
    assert_eq!(mail["from"], "news@xinghe.example");
    assert_eq!(mail["to"], json!(["lilei@example.com"]));
    assert_eq!(mail["subject"], "双十二预告");
    assert_eq!(mail["reply_to"], "service@xinghe.example");
    assert_eq!(
        mail["body"].as_str().unwrap().trim_end(),
        format!("李雷，您好：新品见 {link}，回复 TD 退订。")
    );
    let html = mail["html"].as_str().unwrap();
    let base = format!("https://crm.example.com/t/alpha/{message}");
    assert!(
        html.contains(&format!("<img src=\"{base}/open.gif\"")),
        "{html}"
    );
    let at = html
        .find(&format!("{base}/click/"))
        .expect("a tracked link");
    let href = &html[at..at + html[at..].find('"').unwrap()];
    assert!(html.contains("李雷，您好"), "{html}");

    // the pixel: a GIF, and the recipient opened it
    let pixel = head_of(s.addr, &format!("/t/alpha/{message}/open.gif")).await;
    assert!(pixel.starts_with("HTTP/1.1 200"), "{pixel}");
    assert!(
        pixel.to_lowercase().contains("content-type: image/gif"),
        "{pixel}"
    );
    assert_eq!(by_customer(&read(&s, &id).await)[&reader].0, "opened");
    // a link the message does not hold is nobody's redirect
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("https://evil.example/");
    let refused = head_of(s.addr, &format!("/t/alpha/{message}/click/{forged}")).await;
    assert!(refused.starts_with("HTTP/1.1 404"), "{refused}");
    // the tracked link redirects to the one written, and the recipient clicked
    let path = href.trim_start_matches("https://crm.example.com");
    let followed = head_of(s.addr, path).await;
    assert!(followed.starts_with("HTTP/1.1 302"), "{followed}");
    assert!(
        followed
            .to_lowercase()
            .contains(&format!("location: {link}")),
        "{followed}"
    );
    assert_eq!(by_customer(&read(&s, &id).await)[&reader].0, "clicked");
    // another tenant's path to the same message changes nothing
    let other = head_of(s.addr, &format!("/t/beta/{message}/open.gif")).await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_email_goes_through_the_relay_and_opens_and_clicks_are_tracked() {
    email_goes_through_the_relay_and_opens_and_clicks_are_tracked(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_email_goes_through_the_relay_and_opens_and_clicks_are_tracked() {
    email_goes_through_the_relay_and_opens_and_clicks_are_tracked(Backend::Postgres).await;
}

/// The per-channel throttle is one per tenant and channel, whichever host releases: two
/// hosts asking at the same instant share one second's capacity; capacity accrues at the
/// channel's rate, never more than a second's worth, and no fraction is lost.
async fn hosts_share_one_throttle_per_channel(backend: Backend) {
    use chrono::{Duration, TimeZone, Utc};
    use shoal_campaigns::throttle::take;
    let Some(a) = TestServer::start(backend).await else {
        return;
    };
    let b = a.start_beside(|_| {}).await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let ms = Duration::milliseconds;
    // the first ask finds a full second's worth
    assert_eq!(take(a.db(), "alpha", "sms", 10, t0).await.unwrap(), 10);
    // the other host, at the same instant, finds nothing left
    assert_eq!(take(b.db(), "alpha", "sms", 10, t0).await.unwrap(), 0);
    // 250 ms accrue 2.5 messages: 2 now, and the half is kept
    assert_eq!(
        take(b.db(), "alpha", "sms", 10, t0 + ms(250))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        take(a.db(), "alpha", "sms", 10, t0 + ms(300))
            .await
            .unwrap(),
        1
    );
    // an idle minute saves up one second's worth, not sixty
    assert_eq!(
        take(a.db(), "alpha", "sms", 10, t0 + ms(60_000))
            .await
            .unwrap(),
        10
    );
    // channels and tenants have throttles of their own
    assert_eq!(
        take(b.db(), "alpha", "email", 5, t0 + ms(60_000))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        take(b.db(), "beta", "sms", 10, t0 + ms(60_000))
            .await
            .unwrap(),
        10
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hosts_share_one_throttle_per_channel() {
    hosts_share_one_throttle_per_channel(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hosts_share_one_throttle_per_channel() {
    hosts_share_one_throttle_per_channel(Backend::Postgres).await;
}
