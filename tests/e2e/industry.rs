//! The industry modules of `plugins/`, each enabled for a tenant: its tag templates tag,
//! its SOP templates enrol, its settlement rules produce the expected bill.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ALPHA, Backend, Install, TestServer, install_plugin, plugin_wasm};

async fn with_module(id: &'static str, params: &str) -> TestServer {
    let params: toml::Table = toml::from_str(params).unwrap();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.tenants.get_mut("alpha").unwrap().modules.insert(
            id.into(),
            shoal::config::ModuleConfig {
                enabled: true,
                params: params.into_iter().collect(),
            },
        );
    })
    .await
    .unwrap();
    install_plugin(&s.plugins_dir, id, &plugin_wasm(id), &Install::industry(id));
    let report = s.reload().await;
    assert!(
        report.loaded.contains(&id.to_owned()),
        "{:?}",
        report.failed
    );
    s
}

async fn tags_of(s: &TestServer, c: &str) -> Vec<String> {
    let data = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { tags { tag { name } } } }",
            json!({ "id": c }),
        )
        .await;
    data["customer"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn event(c: &str, ty: &str, name: Option<&str>, days_ago: i64, amount: Option<&str>) -> Value {
    let at = (chrono::Utc::now() - chrono::Duration::days(days_ago)).to_rfc3339();
    let mut e = json!({ "customerId": c, "type": ty, "occurredAt": at });
    if let Some(n) = name {
        e["name"] = json!(n);
    }
    if let Some(a) = amount {
        e["amount"] = json!({ "amount": a, "currency": "CNY" });
    }
    e
}

const RECORD: &str =
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retail_tags_sops_and_franchise_settlement() {
    let s = with_module(
        "retail",
        "region_tiers = { \"上海\" = \"tier-1\", \"洛阳\" = \"tier-3\" }",
    )
    .await;
    // tags: a tuned template, and a decision made in code
    s.ok(ALPHA, "mutation { instantiateTagTemplate(module: \"retail\", template: \"super-user\", params: {repeat_purchases: 2}) { id } }", json!({})).await;
    s.ok(
        ALPHA,
        "mutation { createTag(input: {name: \"price-sensitive\"}) { id } }",
        json!({}),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "陈女士", "sourceChannel": "SHOP", "ownerId": "agent-a" }),
        )
        .await;
    let mut events = Vec::new();
    for d in [40, 20, 5] {
        events.push(event(&c, "ORDER", None, d, Some("199")));
        events.push(event(&c, "COUPON_USED", None, d, None));
    }
    s.ok(ALPHA, RECORD, json!({ "input": events })).await;
    let tags = tags_of(&s, &c).await;
    assert!(tags.contains(&"super-user".to_owned()), "{tags:?}");
    assert!(tags.contains(&"price-sensitive".to_owned()), "{tags:?}");

    // an SOP: abandoned cart, ended by an order
    let sop = s.ok(ALPHA, "mutation { instantiateSopTemplate(module: \"retail\", template: \"abandoned-cart\", params: {coupon: \"20元\"}) { id definition } }", json!({})).await;
    let sop_id = sop["instantiateSopTemplate"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sop["instantiateSopTemplate"]["definition"]["steps"][3]["template"],
        "{{customer.name}}，送您一张20元优惠券，24小时内有效"
    );
    s.ok(
        ALPHA,
        "mutation($id: ID!) { activateSop(id: $id) { id } }",
        json!({ "id": sop_id }),
    )
    .await;
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [event(&c, "CUSTOM", Some("cart_abandoned"), 0, None)] }),
    )
    .await;
    let q = "query($s: ID, $c: ID) { enrolments(sopId: $s, customerId: $c) { edges { node { status stepIndex nextRunAt exitReason } } } }";
    let mut enrolment = Value::Null;
    for _ in 0..200 {
        enrolment = s.ok(ALPHA, q, json!({ "s": sop_id, "c": c })).await["enrolments"]["edges"][0]
            ["node"]
            .clone();
        if !enrolment.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        enrolment["status"], "active",
        "waiting 30 minutes for the reminder"
    );
    let due: chrono::DateTime<chrono::Utc> =
        enrolment["nextRunAt"].as_str().unwrap().parse().unwrap();
    let wait = due - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::minutes(29) && wait <= chrono::Duration::minutes(30),
        "{wait:?}"
    );
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [event(&c, "ORDER", None, 0, Some("99"))] }),
    )
    .await;
    for _ in 0..200 {
        enrolment = s.ok(ALPHA, q, json!({ "s": sop_id, "c": c })).await["enrolments"]["edges"][0]
            ["node"]
            .clone();
        if enrolment["status"] == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(enrolment["exitReason"], "exit event: order");

    // settlement: tier-1 prices, the host's coupon line, HQ 3% / guide 5% / store the rest
    s.ok(ALPHA, "mutation($i: [SparePartInput!]!) { upsertSpareParts(input: $i) }", json!({ "i": [
        { "sku": "SKU-CREAM", "name": "面霜", "cost": "80", "listPrice": "199.00", "currency": "CNY", "unit": "pcs" } ] })).await;
    s.ok(
        ALPHA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "hq", "name": "总部", "role": "hq" },
        { "id": "store-sh", "name": "上海徐汇店", "role": "store", "parentId": "hq" },
        { "id": "guide-li", "name": "导购小李", "role": "staff", "parentId": "store-sh" } ] }),
    )
    .await;
    let bill = s
        .ok(
            ALPHA,
            "mutation($input: SettleBillInput!) { settleBill(input: $input) { total { amount } lines { code amount { amount } note } splits { participantId amount { amount } reason } } }",
            json!({ "input": { "reference": "POS-1", "region": "上海", "currency": "CNY", "participantIds": ["guide-li"], "lines": [
                { "kind": "PART", "code": "SKU-CREAM", "quantity": "2" },
                { "kind": "COUPON", "code": "COUPON-20", "quantity": "1", "unitPrice": "20" } ] } }),
        )
        .await["settleBill"]
        .clone();
    // 2 × 199 × 1.10 − 20
    assert_eq!(bill["total"]["amount"], "417.80");
    assert_eq!(bill["lines"][0]["note"], "tier-1: +10%");
    let splits: Vec<(String, String)> = bill["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["participantId"].as_str().unwrap().to_owned(),
                s["amount"]["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        splits,
        [
            ("hq".to_owned(), "12.53".to_owned()),
            ("store-sh".to_owned(), "384.38".to_owned()),
            ("guide-li".to_owned(), "20.89".to_owned())
        ]
    );
    s.stop().await;
}
