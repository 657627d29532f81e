//! The industry modules of `plugins/`, each enabled for a tenant: its tag templates tag,
//! its SOP templates enrol, its settlement rules produce the expected bill.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    ALPHA, Backend, Install, TestServer, eventually, install_plugin, plugin_wasm,
};

async fn with_module(id: &'static str, params: &str) -> TestServer {
    let params: toml::Table = toml::from_str(params).unwrap();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.tenants.get_mut("alpha").unwrap().modules.insert(
            id.into(),
            shoal_base::config::ModuleConfig {
                enabled: true,
                params: params.into_iter().collect(),
                version: None,
            },
        );
    })
    .await
    .unwrap();
    let capabilities: &'static [&'static str] = if id == "retail" {
        &[
            "tag-templates",
            "sop-templates",
            "settlement",
            "evaluate-tags",
            "ticket-templates",
        ]
    } else {
        &[
            "tag-templates",
            "sop-templates",
            "settlement",
            "ticket-templates",
        ]
    };
    install_plugin(
        &s.plugins_dir,
        id,
        &plugin_wasm(id),
        &Install::industry(id, capabilities),
    );
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

/// The customer's tags once the dispatcher has evaluated their recorded events: waits until
/// they include every one of `expected` (the tags follow `recordEvents` by a short lag).
async fn tags_once_evaluated(s: &TestServer, c: &str, expected: &[&str]) -> Vec<String> {
    eventually(
        &format!("tags {expected:?} of {c}"),
        async || tags_of(s, c).await,
        |tags: &Vec<String>| expected.iter().all(|t| tags.iter().any(|x| x == t)),
    )
    .await
}

/// Waits for the customer's enrolment in the SOP.
async fn enrolment(s: &TestServer, sop: &str, c: &str) -> Value {
    let q = "query($s: ID, $c: ID) { enrolments(sopId: $s, customerId: $c) { edges { node { status stepIndex nextRunAt exitReason trigger } } } }";
    eventually(
        &format!("enrolment of {c} in {sop}"),
        async || {
            s.ok(ALPHA, q, json!({ "s": sop, "c": c })).await["enrolments"]["edges"][0]["node"]
                .clone()
        },
        |e: &Value| !e.is_null(),
    )
    .await
}

/// Instantiates and activates a module's SOP template; returns its id.
async fn sop_from(s: &TestServer, module: &str, template: &str) -> String {
    let made = s
        .ok(ALPHA, "mutation($m: String!, $t: String!) { instantiateSopTemplate(module: $m, template: $t) { id } }", json!({ "m": module, "t": template }))
        .await;
    let id = made["instantiateSopTemplate"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        ALPHA,
        "mutation($id: ID!) { activateSop(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    id
}

async fn tag_from(s: &TestServer, module: &str, template: &str, params: Value) {
    s.ok(
        ALPHA,
        "mutation($m: String!, $t: String!, $p: JSON) { instantiateTagTemplate(module: $m, template: $t, params: $p) { id } }",
        json!({ "m": module, "t": template, "p": params }),
    )
    .await;
}

const SETTLE: &str = "mutation($input: SettleBillInput!) { settleBill(input: $input) { total { amount } lines { code amount { amount } note } splits { participantId amount { amount } } notes } }";

fn splits(bill: &Value) -> Vec<(String, String)> {
    bill["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["participantId"].as_str().unwrap().to_owned(),
                s["amount"]["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
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
    let tags = tags_once_evaluated(&s, &c, &["super-user", "price-sensitive"]).await;
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
        // enrolled, and the runner has scheduled the first wait (until then the enrolment
        // is due at once)
        let scheduled = enrolment["nextRunAt"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .is_some_and(|t| t > chrono::Utc::now() + chrono::Duration::minutes(1));
        if scheduled {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn education_tags_sops_and_tuition_settlement() {
    let s = with_module("education", "commissions = { advisor = 8, teacher = 20 }").await;
    tag_from(&s, "education", "deep-interest", json!({ "lessons": 2 })).await;
    let trial = sop_from(&s, "education", "trial-link-opened").await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "小明家长", "sourceChannel": "WECHAT", "ownerId": "agent-a" }),
        )
        .await;
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [
        event(&c, "CUSTOM", Some("lesson_watched"), 3, None),
        event(&c, "CUSTOM", Some("lesson_watched"), 1, None),
        event(&c, "CUSTOM", Some("trial_link_opened"), 0, None) ] }),
    )
    .await;
    let tags = tags_once_evaluated(&s, &c, &["deep-interest"]).await;
    assert!(tags.contains(&"deep-interest".to_owned()));
    let e = enrolment(&s, &trial, &c).await;
    assert_eq!(
        (e["status"].as_str(), e["trigger"].as_str()),
        (Some("active"), Some("event custom:trial_link_opened"))
    );

    s.ok(ALPHA, "mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": [
        { "code": "IELTS-20", "name": "雅思20课时", "category": "course", "unitPrice": "6000.00", "currency": "CNY" } ] })).await;
    s.ok(
        ALPHA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "school", "name": "西湖校区", "role": "school" },
        { "id": "adv-wang", "name": "王顾问", "role": "advisor", "parentId": "school" },
        { "id": "tch-zhao", "name": "赵老师", "role": "teacher", "parentId": "school" } ] }),
    )
    .await;
    let bill = s.ok(ALPHA, SETTLE, json!({ "input": { "reference": "ENROL-1", "region": "杭州", "currency": "CNY",
        "participantIds": ["adv-wang", "tch-zhao"], "lines": [{ "kind": "SERVICE", "code": "IELTS-20", "quantity": "1" }],
        "facts": { "installments": 3 } } })).await["settleBill"].clone();
    assert_eq!(bill["total"]["amount"], "6000.00");
    assert_eq!(
        bill["notes"],
        json!(["3 installments: 2000.00 + 2000.00 + 2000.00"])
    );
    let mut got = splits(&bill);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("adv-wang", "480.00"),
            ("school", "4320.00"),
            ("tch-zhao", "1200.00")
        ])
    );
    // a pro-rata refund: 7 of 20 lessons consumed
    let refund = s.ok(ALPHA, SETTLE, json!({ "input": { "reference": "ENROL-2", "region": "杭州", "currency": "CNY",
        "participantIds": ["adv-wang"], "lines": [{ "kind": "SERVICE", "code": "IELTS-20", "quantity": "1" }],
        "facts": { "lessons_total": 20, "lessons_used": 7 } } })).await["settleBill"].clone();
    assert_eq!(refund["total"]["amount"], "2100.00");
    // facts are an object; anything else is refused before the module runs
    let e = s
        .err(
            ALPHA,
            SETTLE,
            json!({ "input": { "reference": "ENROL-3", "region": "杭州", "currency": "CNY",
                "participantIds": ["adv-wang"], "lines": [{ "kind": "SERVICE", "code": "IELTS-20", "quantity": "1" }],
                "facts": [20, 7] } }),
        )
        .await;
    assert_eq!(crate::harness::fields(&e), ["input.facts"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_tags_sops_and_treatment_bills() {
    let s = with_module(
        "clinic",
        "region_tiers = { \"上海\" = \"tier-1\" }\ndoctor_commission = 30",
    )
    .await;
    tag_from(&s, "clinic", "first-visit", json!({})).await;
    let care = sop_from(&s, "clinic", "post-treatment").await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周先生", "sourceChannel": "STORE", "ownerId": "agent-a" }),
        )
        .await;
    s.ok(ALPHA, RECORD, json!({ "input": [event(&c, "VISIT", None, 0, None), event(&c, "CUSTOM", Some("treatment_done"), 0, None)] })).await;
    let tags = tags_once_evaluated(&s, &c, &["first-visit"]).await;
    assert!(tags.contains(&"first-visit".to_owned()));
    let e = enrolment(&s, &care, &c).await;
    assert_eq!(
        e["status"], "active",
        "care instructions go out a day later"
    );

    s.ok(ALPHA, "mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": [
        { "code": "IMPLANT-SURGERY", "name": "种植手术", "category": "implant", "unitPrice": "3000.00", "currency": "CNY", "labourMinutes": 90 } ] })).await;
    s.ok(ALPHA, "mutation($i: [SparePartInput!]!) { upsertSpareParts(input: $i) }", json!({ "i": [
        { "sku": "IMPLANT-TI", "name": "钛种植体", "cost": "1800", "listPrice": "5000.00", "currency": "CNY", "unit": "pcs" } ] })).await;
    s.ok(
        ALPHA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "clinic-xh", "name": "徐汇门诊", "role": "clinic" },
        { "id": "dr-zhou", "name": "周医生", "role": "doctor", "parentId": "clinic-xh" } ] }),
    )
    .await;
    let bill = s.ok(ALPHA, SETTLE, json!({ "input": { "reference": "VISIT-1", "customerId": c, "region": "上海", "currency": "CNY",
        "participantIds": ["dr-zhou"], "lines": [
            { "kind": "SERVICE", "code": "IMPLANT-SURGERY", "quantity": "1" },
            { "kind": "PART", "code": "IMPLANT-TI", "quantity": "1" } ],
        "facts": { "insurance": { "name": "平安健康", "covered_percent": 70, "cap": 5000 } } } })).await["settleBill"].clone();
    // tier-1 +10%: 3300 + 5500
    assert_eq!(bill["total"]["amount"], "8800.00");
    assert_eq!(
        splits(&bill),
        pairs(&[("clinic-xh", "7810.00"), ("dr-zhou", "990.00")])
    );
    assert_eq!(
        bill["notes"][1],
        "co-pay: 平安健康 pays 5000.00 CNY, the patient 3800.00 CNY"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_tags_sops_and_capped_commissions() {
    let s = with_module("finance", "period_cap = 50000").await;
    tag_from(&s, "finance", "high-net-worth", json!({ "aum": 6000000 })).await;
    tag_from(&s, "finance", "risk-aggressive", json!({})).await;
    let maturity = sop_from(&s, "finance", "maturity-reminder").await;
    let in_14_days = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        + chrono::Duration::days(14))
    .format("%Y-%m-%d")
    .to_string();
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "刘总", "sourceChannel": "STORE", "ownerId": "agent-a",
            "attributes": { "aum": 8000000, "risk_level": "C4", "maturity_date": in_14_days } }),
        )
        .await;
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [event(&c, "CUSTOM", Some("risk_questionnaire"), 10, None)] }),
    )
    .await;
    let tags = tags_once_evaluated(&s, &c, &["high-net-worth", "risk-aggressive"]).await;
    assert!(
        tags.contains(&"high-net-worth".to_owned()) && tags.contains(&"risk-aggressive".to_owned()),
        "{tags:?}"
    );
    // the date scan enrols, the reminder and the advisor's task follow at once
    let mut e = enrolment(&s, &maturity, &c).await;
    for _ in 0..100 {
        if e["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        e = enrolment(&s, &maturity, &c).await;
    }
    assert_eq!(e["status"], "completed");
    assert_eq!(e["trigger"], "date attribute maturity_date -14 days");
    let tasks = s
        .ok(
            ALPHA,
            "{ tasks(filter: {assignee: \"agent-a\"}) { edges { node { title } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        tasks["tasks"]["edges"][0]["node"]["title"],
        "到期续投沟通: 刘总"
    );

    s.ok(ALPHA, "mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": [
        { "code": "FUND-A", "name": "稳健理财A", "category": "fund", "unitPrice": "1.00", "currency": "CNY" } ] })).await;
    s.ok(
        ALPHA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "firm", "name": "财富管理中心", "role": "firm" },
        { "id": "adv-liu", "name": "刘经理", "role": "advisor", "parentId": "firm" } ] }),
    )
    .await;
    let bill = s.ok(ALPHA, SETTLE, json!({ "input": { "reference": "SUB-1", "customerId": c, "region": "深圳", "currency": "CNY",
        "participantIds": ["adv-liu"], "lines": [{ "kind": "SERVICE", "code": "FUND-A", "quantity": "2000000" }],
        "facts": { "commission_paid_in_period": 40000 } } })).await["settleBill"].clone();
    assert_eq!(bill["total"]["amount"], "2000000.00");
    assert_eq!(
        splits(&bill),
        pairs(&[("firm", "1990000.00"), ("adv-liu", "10000.00")])
    );
    assert!(
        bill["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("compliance cap")
    );
    s.stop().await;
}

/// Every module's JSON fixtures pass `shoal plugin test` against its built component.
#[test]
fn every_module_passes_its_fixtures() {
    for module in ["retail", "education", "finance", "clinic"] {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["plugin", "test"])
            .arg(plugin_wasm(module))
            .arg(format!("{fixtures}/{module}/fixtures"))
            .current_dir(std::env::temp_dir())
            .env_remove("SHOAL_CONFIG")
            .output()
            .expect("run shoal plugin test");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{module}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("0 failed") && !stdout.contains(" 0 passed"),
            "{module}: {stdout}"
        );
    }
}
