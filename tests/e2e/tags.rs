//! Tags end to end: manual and dynamic, groups, history, filters, templates from modules,
//! plugin decisions, incremental and bulk evaluation, the schedule, tenant isolation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    ALPHA, BETA, Backend, Install, TestServer, code, eventually, fields, install_plugin,
    plugin_wasm,
};

const CREATE: &str =
    "mutation($i: TagInputValue!) { createTag(input: $i) { id name kind rule ruleVersion } }";
const RECORD: &str =
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }";
const TAGS_OF: &str = "query($id: ID!) { customer(id: $id) { tags { tag { name } source } tagHistory { tag change source ruleVersion } } }";

async fn tag(s: &TestServer, input: Value) -> String {
    s.ok(ALPHA, CREATE, json!({ "i": input })).await["createTag"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn stage_of(s: &TestServer, customer: &str) -> String {
    let data = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { lifecycleStage } }",
            json!({ "id": customer }),
        )
        .await;
    data["customer"]["lifecycleStage"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the dispatcher has evaluated the customer's recorded events, as their
/// derived lifecycle stage shows (tags, stage and module decisions follow `recordEvents`
/// by a short lag, evaluated together).
async fn until_stage(s: &TestServer, customer: &str, stage: &str) {
    eventually(
        &format!("lifecycle stage {stage} of {customer}"),
        async || stage_of(s, customer).await,
        |got: &String| got == stage,
    )
    .await;
}

/// Waits until the customer's tags are `expected` (in the order `names_of` gives).
async fn until_names(s: &TestServer, customer: &str, expected: &[&str]) -> Vec<String> {
    eventually(
        &format!("tags {expected:?} of {customer}"),
        async || names_of(s, customer).await,
        |got: &Vec<String>| got == expected,
    )
    .await
}

async fn names_of(s: &TestServer, customer: &str) -> Vec<String> {
    let data = s.ok(ALPHA, TAGS_OF, json!({ "id": customer })).await;
    data["customer"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn order(customer: &str, days_ago: i64, amount: &str) -> Value {
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    json!({ "customerId": customer, "type": "ORDER", "occurredAt": at.to_rfc3339(), "amount": { "amount": amount, "currency": "CNY" } })
}

async fn manual_tags_groups_history_and_filters(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "A", "sourceChannel": "WEB", "attributes": { "city": "北京" } }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "B", "sourceChannel": "WEB", "attributes": { "city": "北京" } }),
        )
        .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "C", "sourceChannel": "SHOP" }),
        )
        .await;
    s.ok(ALPHA, "mutation { upsertTagGroup(name: \"价值层级\", exclusive: true, description: \"value tier\") }", json!({})).await;
    let gold = tag(
        s,
        json!({ "name": "金牌", "group": "价值层级", "color": "#f5b301" }),
    )
    .await;
    let silver = tag(s, json!({ "name": "银牌", "group": "价值层级" })).await;
    let follow = tag(s, json!({ "name": "待跟进" })).await;

    let by_ids = s
        .ok(
            ALPHA,
            "mutation($t: ID!, $ids: [ID!]) { applyTag(tagId: $t, customerIds: $ids) }",
            json!({ "t": silver, "ids": [a, b] }),
        )
        .await;
    assert_eq!(by_ids["applyTag"], 2);
    let by_filter = s
        .ok(
            ALPHA,
            "mutation($t: ID!, $f: CustomerFilterInput) { applyTag(tagId: $t, filter: $f) }",
            json!({ "t": follow, "f": { "attributes": { "city": "北京" } } }),
        )
        .await;
    assert_eq!(by_filter["applyTag"], 2);
    // gold is exclusive with silver: a moves up a tier
    s.ok(
        ALPHA,
        "mutation($t: ID!, $ids: [ID!]) { applyTag(tagId: $t, customerIds: $ids) }",
        json!({ "t": gold, "ids": [a] }),
    )
    .await;
    assert_eq!(names_of(s, &a).await, ["待跟进", "金牌"]);
    // a list page loads every customer's tags at once: the same as each customer's own
    let page = s
        .ok(
            ALPHA,
            "{ customers(first: 100) { edges { node { id tags { tag { name } source } } } } }",
            json!({}),
        )
        .await;
    let edges = page["customers"]["edges"].as_array().unwrap().clone();
    assert!(edges.len() >= 3);
    for e in &edges {
        let id = e["node"]["id"].as_str().unwrap();
        let own = s.ok(ALPHA, TAGS_OF, json!({ "id": id })).await;
        assert_eq!(e["node"]["tags"], own["customer"]["tags"], "{id}");
    }
    assert!(
        edges
            .iter()
            .any(|e| e["node"]["id"] == a.as_str()
                && e["node"]["tags"].as_array().unwrap().len() == 2)
    );
    let history = s.ok(ALPHA, TAGS_OF, json!({ "id": a })).await["customer"]["tagHistory"].clone();
    let changes: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["tag"].as_str().unwrap().to_owned(),
                h["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("银牌".into(), "removed".into()))
            && changes.contains(&("金牌".into(), "added".into())),
        "{changes:?}"
    );

    let q = "query($f: CustomerFilterInput) { customers(filter: $f) { totalCount edges { node { displayName } } } }";
    let count = |f: Value| async move {
        s.ok(ALPHA, q, json!({ "f": { "tags": f } })).await["customers"]["totalCount"].clone()
    };
    assert_eq!(count(json!({ "all": ["待跟进", "金牌"] })).await, 1);
    assert_eq!(count(json!({ "any": ["金牌", "银牌"] })).await, 2);
    assert_eq!(count(json!({ "none": ["待跟进"] })).await, 1);
    let unknown = s
        .err(ALPHA, q, json!({ "f": { "tags": { "any": ["不存在"] } } }))
        .await;
    assert_eq!(fields(&unknown), ["filter.tags.any[0]"]);

    let removed = s
        .ok(
            ALPHA,
            "mutation($t: ID!, $ids: [ID!]) { removeTag(tagId: $t, customerIds: $ids) }",
            json!({ "t": follow, "ids": [a, c] }),
        )
        .await;
    assert_eq!(removed["removeTag"], 1, "c never had it");
    let bad = s
        .err(
            ALPHA,
            "mutation($t: ID!, $ids: [ID!]) { applyTag(tagId: $t, customerIds: $ids) }",
            json!({ "t": follow, "ids": ["nobody"] }),
        )
        .await;
    assert_eq!(code(&bad), "NOT_FOUND", "unknown reads like out of scope");
    s.ok(
        ALPHA,
        "mutation($t: ID!) { deleteTag(id: $t) }",
        json!({ "t": gold }),
    )
    .await;
    assert!(names_of(s, &a).await.is_empty());

    // tenant isolation
    assert_eq!(
        s.ok(BETA, "{ tags { id } }", json!({})).await["tags"],
        json!([])
    );
    let foreign = s
        .err(
            BETA,
            "mutation($t: ID!, $ids: [ID!]) { applyTag(tagId: $t, customerIds: $ids) }",
            json!({ "t": silver, "ids": [b] }),
        )
        .await;
    assert_eq!(code(&foreign), "NOT_FOUND");
}

async fn dynamic_tags_follow_events_and_bulk_recompute(s: &TestServer) {
    let a = s
        .create_customer(ALPHA, json!({ "displayName": "A", "sourceChannel": "WEB" }))
        .await;
    let b = s
        .create_customer(ALPHA, json!({ "displayName": "B", "sourceChannel": "WEB" }))
        .await;
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [order(&b, 5, "50"), order(&b, 6, "50"), order(&b, 7, "50")] }),
    )
    .await;
    // the orders are evaluated (b became loyal) before the rule below exists
    until_stage(s, &b, "LOYAL").await;
    let bad = s
        .err(
            ALPHA,
            CREATE,
            json!({ "i": { "name": "x", "rule": "count(ordr) >= 3" } }),
        )
        .await;
    assert_eq!(fields(&bad), ["input.rule"]);
    assert!(
        bad["extensions"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("1:7: unknown event type `ordr`"),
        "{bad}"
    );
    let regular = tag(
        s,
        json!({ "name": "回头客", "rule": "count(order, 30d) >= 3" }),
    )
    .await;
    assert!(
        names_of(s, &b).await.is_empty(),
        "a new rule applies on recompute or on the next event"
    );
    let done = s
        .ok(
            ALPHA,
            "mutation { recomputeTags { tag added removed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        done["recomputeTags"],
        json!([{ "tag": "回头客", "added": 1, "removed": 0 }])
    );
    assert_eq!(names_of(s, &b).await, ["回头客"]);

    // an event re-evaluates its customer (in the dispatcher, shortly after)
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [order(&a, 1, "10"), order(&a, 2, "10")] }),
    )
    .await;
    // evaluated (a became loyal), and two orders are not enough
    until_stage(s, &a, "LOYAL").await;
    assert!(names_of(s, &a).await.is_empty());
    s.ok(ALPHA, RECORD, json!({ "input": [order(&a, 3, "10")] }))
        .await;
    until_names(s, &a, &["回头客"]).await;
    assert_eq!(names_of(s, &a).await, ["回头客"]);
    // a tag referring to another one is evaluated after it
    tag(
        s,
        json!({ "name": "大额回头客", "rule": "has_tag(\"回头客\") and sum(order) >= 100" }),
    )
    .await;
    s.ok(ALPHA, RECORD, json!({ "input": [order(&b, 1, "1")] }))
        .await;
    until_names(s, &b, &["回头客", "大额回头客"]).await;
    assert_eq!(names_of(s, &b).await, ["回头客", "大额回头客"]);

    // a stricter rule: new version, customers dropped on recompute, recorded with the version
    let updated = s
        .ok(ALPHA, "mutation($id: ID!) { updateTag(id: $id, input: { rule: \"count(order, 30d) >= 4\" }) { ruleVersion } }", json!({ "id": regular }))
        .await;
    assert_eq!(updated["updateTag"]["ruleVersion"], 2);
    s.ok(
        ALPHA,
        "mutation { recomputeTags { tag added removed } }",
        json!({}),
    )
    .await;
    assert_eq!(names_of(s, &a).await, Vec::<String>::new());
    let history =
        s.ok(ALPHA, TAGS_OF, json!({ "id": a })).await["customer"]["tagHistory"][0].clone();
    assert_eq!(
        history,
        json!({ "tag": "回头客", "change": "removed", "source": "rule", "ruleVersion": 2 })
    );
    let manual = s
        .err(
            ALPHA,
            "mutation($t: ID!, $ids: [ID!]) { applyTag(tagId: $t, customerIds: $ids) }",
            json!({ "t": regular, "ids": [a] }),
        )
        .await;
    assert!(
        manual["message"].as_str().unwrap().contains("dynamic tag"),
        "{manual}"
    );
    let cycle = s.err(ALPHA, "mutation($id: ID!) { updateTag(id: $id, input: { rule: \"has_tag(\\\"大额回头客\\\")\" }) { id } }", json!({ "id": regular })).await;
    assert!(
        cycle["message"]
            .as_str()
            .unwrap()
            .contains("depends on its own tag"),
        "{cycle}"
    );

    // every change is an internal event for the SOP engine
    let n: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM internal_events WHERE tenant_id = 'alpha' AND kind IN ('tag.added', 'tag.removed')")
            .fetch_one(&s.db().pool)
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(n, 4, "b +回头客, a +回头客, b +大额回头客, a −回头客");
}

async fn validate_rule_reports_positions_and_a_summary(s: &TestServer) {
    tag(s, json!({ "name": "VIP" })).await;
    let q = "query($t: String!) { validateRule(text: $t) { valid errors { line column message } summary { eventTypes functions attributes tags usesStage } } }";
    let ok = s.ok(ALPHA, q, json!({ "t": "count(order, 30d) >= 3 and attr.city in [\"北京\"] and has_tag(\"VIP\") and stage = customer" })).await;
    assert_eq!(ok["validateRule"]["valid"], true);
    assert_eq!(
        ok["validateRule"]["summary"],
        json!({ "eventTypes": ["order"], "functions": ["count"], "attributes": ["city"], "tags": ["VIP"], "usesStage": true })
    );
    let bad = s
        .ok(
            ALPHA,
            q,
            json!({ "t": "count(order) >= 3 and\n has_tag(\"VIPP\")" }),
        )
        .await;
    assert_eq!(
        bad["validateRule"]["errors"],
        json!([{ "line": 2, "column": 10, "message": "unknown tag \"VIPP\"" }])
    );
}

async fn rfm_lifecycle_and_segments(s: &TestServer) {
    let mk = |name: &str| json!({ "displayName": name, "sourceChannel": "SHOP" });
    let (a, b, c, d, e) = (
        s.create_customer(ALPHA, mk("A")).await,
        s.create_customer(ALPHA, mk("B")).await,
        s.create_customer(ALPHA, mk("C")).await,
        s.create_customer(ALPHA, mk("D")).await,
        s.create_customer(ALPHA, mk("E")).await,
    );
    let browsing = s.create_customer(ALPHA, mk("Browser")).await;
    let by_hand = s.create_customer(ALPHA, json!({ "displayName": "VIP by hand", "sourceChannel": "STORE", "lifecycleStage": "LOYAL" })).await;
    let mut events = Vec::new();
    for day in 1..=6 {
        events.push(order(&a, day, "500"));
    }
    events.push(order(&b, 400, "100"));
    events.push(order(&c, 0, "10"));
    for day in [100, 101, 102] {
        events.push(order(&d, day, "200"));
    }
    events.push(order(&e, 20, "300"));
    events.push(order(&e, 21, "300"));
    events.push(json!({ "customerId": browsing, "type": "CONSULT", "occurredAt": chrono::Utc::now().to_rfc3339() }));
    events.push(json!({ "customerId": by_hand, "type": "VISIT", "occurredAt": chrono::Utc::now().to_rfc3339() }));
    s.ok(ALPHA, RECORD, json!({ "input": events })).await;
    // derived by the dispatcher shortly after: wait for the whole batch (evaluated together)
    let derived = [
        (&a, "LOYAL"),
        (&b, "CHURNED"),
        (&c, "CUSTOMER"),
        (&d, "DORMANT"),
        (&browsing, "PROSPECT"),
    ];
    eventually(
        "the batch's derived lifecycle stages",
        async || {
            let mut got = Vec::new();
            for (id, _) in derived {
                got.push(stage_of(s, id).await);
            }
            got
        },
        |got: &Vec<String>| got.iter().zip(derived).all(|(g, (_, want))| g == want),
    )
    .await;
    let stage = |id: String| async move {
        s.ok(ALPHA, "query($id: ID!) { customer(id: $id) { lifecycleStage lifecycleStageManual rfm { r f m cell } } }", json!({ "id": id })).await["customer"].clone()
    };
    // derived as events arrive
    assert_eq!(stage(a.clone()).await["lifecycleStage"], "LOYAL");
    assert_eq!(stage(b.clone()).await["lifecycleStage"], "CHURNED");
    assert_eq!(stage(c.clone()).await["lifecycleStage"], "CUSTOMER");
    assert_eq!(stage(d.clone()).await["lifecycleStage"], "DORMANT");
    assert_eq!(stage(browsing.clone()).await["lifecycleStage"], "PROSPECT");
    let kept = stage(by_hand.clone()).await;
    assert_eq!(
        (
            kept["lifecycleStage"].clone(),
            kept["lifecycleStageManual"].clone()
        ),
        (json!("LOYAL"), json!(true)),
        "set by hand, kept"
    );

    s.ok(ALPHA, "mutation { recomputeTags { tag } }", json!({}))
        .await;
    // quintiles among five buyers (see the derivation in docs/tags.md)
    for (id, cell, rfm) in [
        (&a, "CHAMPIONS", [4, 5, 5]),
        (&b, "LOST", [1, 1, 2]),
        (&c, "NEW_CUSTOMERS", [5, 1, 1]),
        (&d, "AT_RISK", [2, 4, 3]),
        (&e, "NEED_ATTENTION", [3, 3, 3]),
    ] {
        let got = stage(id.clone()).await["rfm"].clone();
        assert_eq!(
            got,
            json!({ "r": rfm[0], "f": rfm[1], "m": rfm[2], "cell": cell }),
            "customer {id}"
        );
    }
    assert_eq!(
        stage(browsing.clone()).await["rfm"],
        json!(null),
        "no orders, no RFM"
    );
    let champions = s
        .ok(
            ALPHA,
            "{ customers(filter: { rfmCells: [CHAMPIONS] }) { edges { node { displayName } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        champions["customers"]["edges"],
        json!([{ "node": { "displayName": "A" } }])
    );

    let definition = json!({ "stages": ["LOYAL", "DORMANT"], "rule": "sum(order) >= 500" });
    let preview = s
        .ok(ALPHA, "query($d: SegmentDefinitionInput!) { previewSegment(definition: $d) { count sample { displayName } } }", json!({ "d": definition }))
        .await;
    assert_eq!(
        preview["previewSegment"]["count"], 3,
        "A, D and E; not the VIP by hand (no orders)"
    );
    let bad = s
        .err(
            ALPHA,
            "query($d: SegmentDefinitionInput!) { previewSegment(definition: $d) { count } }",
            json!({ "d": { "tagsAll": ["nope"], "rule": "count(x) > 1" } }),
        )
        .await;
    assert_eq!(fields(&bad), ["definition.tagsAll[0]", "definition.rule"]);
    let saved = s
        .ok(ALPHA, "mutation($d: SegmentDefinitionInput!) { createSegment(input: { name: \"高价值\", definition: $d }) { id count customers(first: 2) { totalCount edges { node { displayName } } pageInfo { hasNextPage } } } }", json!({ "d": definition }))
        .await["createSegment"]
        .clone();
    assert_eq!(saved["count"], 3);
    assert_eq!(saved["customers"]["totalCount"], 3);
    assert_eq!(saved["customers"]["pageInfo"]["hasNextPage"], true);
    let members = s
        .ok(
            ALPHA,
            "query($s: ID) { customers(filter: { segment: $s, stages: [LOYAL] }) { totalCount } }",
            json!({ "s": saved["id"] }),
        )
        .await;
    assert_eq!(
        members["customers"]["totalCount"], 2,
        "segment and other filters combine: A and E"
    );
    let entered: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM internal_events WHERE tenant_id = 'alpha' AND kind = 'segment.entered'")
            .fetch_one(&s.db().pool)
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(entered, 3);
    let hidden = s
        .err(
            BETA,
            "query($id: ID!) { segment(id: $id) { name } }",
            json!({ "id": saved["id"] }),
        )
        .await;
    assert_eq!(code(&hidden), "NOT_FOUND");
}

crate::on_both_backends!(
    rfm_lifecycle_and_segments,
    manual_tags_groups_history_and_filters,
    dynamic_tags_follow_events_and_bulk_recompute,
    validate_rule_reports_positions_and_a_summary,
);

/// A module's template becomes a tuned dynamic tag; its `evaluate-tags` decisions apply to
/// the tenant's manual tag of that name.
#[tokio::test]
async fn module_templates_and_plugin_decisions_drive_tags() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    install_plugin(
        &s.plugins_dir,
        "sample",
        &plugin_wasm("sample"),
        &Install::sample(),
    );
    s.reload().await;
    let t = s
        .ok(ALPHA, "mutation { instantiateTagTemplate(module: \"sample\", template: \"repeat-buyer\", name: \"复购\", params: { orders: 2 }) { name rule kind template { module template params } } }", json!({}))
        .await;
    assert_eq!(
        t["instantiateTagTemplate"]["rule"],
        "count(order, 90d) >= 2"
    );
    assert_eq!(
        t["instantiateTagTemplate"]["template"],
        json!({ "module": "sample", "template": "repeat-buyer", "params": { "orders": "2" } })
    );
    let unknown = s.err(ALPHA, "mutation { instantiateTagTemplate(module: \"sample\", template: \"repeat-buyer\", params: { order: 2 }) { name } }", json!({})).await;
    assert_eq!(fields(&unknown), ["params.order"]);
    tag(&s, json!({ "name": "big-spender" })).await;

    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Big", "sourceChannel": "SHOP" }),
        )
        .await;
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [order(&c, 3, "600"), order(&c, 2, "600")] }),
    )
    .await;
    until_names(&s, &c, &["big-spender", "复购"]).await;
    let data = s.ok(ALPHA, TAGS_OF, json!({ "id": c })).await;
    let held: Vec<(String, String)> = data["customer"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"]["name"].as_str().unwrap().to_owned(),
                t["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("big-spender".to_owned(), "plugin:sample".to_owned()),
            ("复购".to_owned(), "rule".to_owned())
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn dynamic_tags_are_recomputed_on_the_tenants_schedule() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.tenants.get_mut("alpha").unwrap().tag_recompute_seconds = 1
    })
    .await
    .unwrap();
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Old", "sourceChannel": "STORE", "lifecycleStage": "DORMANT" }),
        )
        .await;
    tag(&s, json!({ "name": "沉睡", "rule": "stage = dormant" })).await;
    let mut held = Vec::new();
    for _ in 0..50 {
        held = names_of(&s, &c).await;
        if !held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        held,
        ["沉睡"],
        "applied by the scheduled recompute, without recomputeTags"
    );
    s.stop().await;
}
