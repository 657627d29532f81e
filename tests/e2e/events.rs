//! Recording events: atomic batches, idempotency, exact money, the timeline.

use serde_json::{Value, json};

use crate::harness::{ALPHA, TestServer, code, fields};

const RECORD: &str = "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) {
    createdCount duplicateCount results { index status event { id type name amount { amount currency } customerId } } } }";

const TIMELINE: &str = "query($id: ID!, $first: Int, $after: String, $types: [EventType!]) {
    customer(id: $id) { timeline(first: $first, after: $after, types: $types) {
        edges { node { type occurredAt amount { amount currency } payload } } pageInfo { hasNextPage endCursor } } } }";

fn order(customer: &str, day: u32, amount: &str, key: Option<&str>) -> Value {
    json!({ "customerId": customer, "type": "ORDER", "occurredAt": format!("2026-01-{day:02}T08:00:00Z"),
            "amount": { "amount": amount, "currency": "CNY" }, "channel": "SHOP",
            "payload": { "order_no": format!("SO-{day}") }, "idempotencyKey": key })
}

async fn events_are_recorded_with_exact_amounts(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Amy", "sourceChannel": "SHOP" }),
        )
        .await;
    let data = s
        .ok(ALPHA, RECORD, json!({ "input": [
            order(&c, 1, "199.90", None),
            order(&c, 3, "0.0001", None),
            { "customerId": c, "type": "PAGE_VIEW", "occurredAt": "2026-01-02T08:00:00Z", "payload": { "path": "/courses/trial" } },
            { "customerId": c, "type": "CUSTOM", "name": "trial_link_opened", "occurredAt": "2026-01-04T08:00:00Z" },
        ]}))
        .await;
    let r = &data["recordEvents"];
    assert_eq!(r["createdCount"], 4);
    assert_eq!(
        r["results"][0]["event"]["amount"],
        json!({ "amount": "199.90", "currency": "CNY" })
    );
    assert_eq!(r["results"][1]["event"]["amount"]["amount"], "0.0001");
    assert_eq!(r["results"][3]["event"]["name"], "trial_link_opened");

    let timeline = s.ok(ALPHA, TIMELINE, json!({ "id": c })).await;
    let types: Vec<&str> = timeline["customer"]["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["CUSTOM", "ORDER", "PAGE_VIEW", "ORDER"],
        "newest first"
    );
    let orders = s
        .ok(ALPHA, TIMELINE, json!({ "id": c, "types": ["ORDER"] }))
        .await;
    let edges = orders["customer"]["timeline"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[1]["node"]["payload"], json!({ "order_no": "SO-1" }));
}

async fn timeline_pages_do_not_overlap(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Pager", "sourceChannel": "WEB" }),
        )
        .await;
    let input: Vec<Value> = (1..=9).map(|d| order(&c, d, "10", None)).collect();
    s.ok(ALPHA, RECORD, json!({ "input": input })).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = s
            .ok(
                ALPHA,
                TIMELINE,
                json!({ "id": c, "first": 4, "after": after }),
            )
            .await;
        let t = &data["customer"]["timeline"];
        for e in t["edges"].as_array().unwrap() {
            seen.push(e["node"]["occurredAt"].as_str().unwrap().to_owned());
        }
        if !t["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = t["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (1..=9)
        .rev()
        .map(|d| format!("2026-01-{d:02}T08:00:00+00:00"))
        .collect();
    assert_eq!(seen, expected);
}

async fn a_batch_is_all_or_nothing(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Bo", "sourceChannel": "WEB" }),
        )
        .await;
    let error = s
        .err(ALPHA, RECORD, json!({ "input": [
            order(&c, 1, "10.00", Some("k1")),
            { "customerId": c, "type": "ORDER", "occurredAt": "2026-01-02T00:00:00Z" },
            { "customerId": c, "type": "REFUND", "occurredAt": "2026-01-02T00:00:00Z", "amount": { "amount": "1.234567", "currency": "cny" } },
            { "customerId": "no-such-customer", "type": "VISIT", "occurredAt": "2026-01-02T00:00:00Z" },
            { "type": "VISIT", "occurredAt": "2026-01-02T00:00:00Z" },
            { "customerId": c, "type": "CUSTOM", "occurredAt": "2099-01-01T00:00:00Z" },
        ]}))
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
    assert_eq!(
        fields(&error),
        [
            "input[1].amount",
            "input[2].amount.currency",
            "input[2].amount.amount",
            "input[4].customerId",
            "input[5].name",
            "input[5].occurredAt",
        ]
    );
    // Existence of customers is checked once the input is well-formed.
    let error = s
        .err(ALPHA, RECORD, json!({ "input": [
            order(&c, 1, "10.00", Some("k1")),
            { "customerId": "no-such-customer", "type": "VISIT", "occurredAt": "2026-01-02T00:00:00Z" },
        ]}))
        .await;
    assert_eq!(fields(&error), ["input[1].customerId"]);
    let timeline = s.ok(ALPHA, TIMELINE, json!({ "id": c })).await;
    assert_eq!(
        timeline["customer"]["timeline"]["edges"],
        json!([]),
        "nothing was stored"
    );
    // the key of the refused batch is still free
    let data = s
        .ok(
            ALPHA,
            RECORD,
            json!({ "input": [order(&c, 1, "10.00", Some("k1"))] }),
        )
        .await;
    assert_eq!(data["recordEvents"]["createdCount"], 1);
}

async fn resending_an_event_is_a_no_op(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Cy", "sourceChannel": "WEB" }),
        )
        .await;
    let first = s
        .ok(ALPHA, RECORD, json!({ "input": [order(&c, 1, "5", Some("order-1")), order(&c, 1, "5", Some("order-1"))] }))
        .await;
    let r = &first["recordEvents"];
    assert_eq!(
        (r["createdCount"].as_i64(), r["duplicateCount"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["results"][1]["status"], "DUPLICATE");
    assert_eq!(
        r["results"][0]["event"]["id"],
        r["results"][1]["event"]["id"]
    );
    let again = s
        .ok(
            ALPHA,
            RECORD,
            json!({ "input": [order(&c, 9, "999", Some("order-1"))] }),
        )
        .await;
    let r2 = &again["recordEvents"]["results"][0];
    assert_eq!(r2["status"], "DUPLICATE");
    assert_eq!(r2["event"]["id"], r["results"][0]["event"]["id"]);
    assert_eq!(
        r2["event"]["amount"]["amount"], "5.00",
        "the stored event is unchanged"
    );
    let timeline = s.ok(ALPHA, TIMELINE, json!({ "id": c })).await;
    assert_eq!(
        timeline["customer"]["timeline"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn events_can_name_customers_by_identity(s: &TestServer) {
    let c = s
        .create_customer(ALPHA, json!({ "displayName": "Dee", "sourceChannel": "WECHAT", "identities": [{ "channel": "WECHAT", "externalId": "o-union-7" }] }))
        .await;
    let data = s
        .ok(ALPHA, RECORD, json!({ "input": [{ "identity": { "channel": "WECHAT", "externalId": "o-union-7" }, "type": "MESSAGE_IN", "occurredAt": "2026-02-01T00:00:00Z" }] }))
        .await;
    assert_eq!(
        data["recordEvents"]["results"][0]["event"]["customerId"],
        c.as_str()
    );
    let error = s
        .err(ALPHA, RECORD, json!({ "input": [{ "identity": { "channel": "WECHAT", "externalId": "unknown" }, "type": "VISIT", "occurredAt": "2026-02-01T00:00:00Z" }] }))
        .await;
    assert_eq!(fields(&error), ["input[0].identity"]);
    let error = s
        .err(ALPHA, RECORD, json!({ "input": [{ "customerId": c, "identity": { "channel": "WECHAT", "externalId": "o-union-7" }, "type": "VISIT", "occurredAt": "2026-02-01T00:00:00Z" }] }))
        .await;
    assert_eq!(fields(&error), ["input[0].identity"]);
}

async fn oversized_batches_are_refused(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Ed", "sourceChannel": "WEB" }),
        )
        .await;
    let input: Vec<Value> = (0..1001)
        .map(|i| json!({ "customerId": c, "type": "VISIT", "occurredAt": "2026-01-01T00:00:00Z", "idempotencyKey": format!("v{i}") }))
        .collect();
    let error = s.err(ALPHA, RECORD, json!({ "input": input })).await;
    assert_eq!(code(&error), "LIMIT_EXCEEDED");
    let data = s.ok(ALPHA, RECORD, json!({ "input": input[..1000] })).await;
    assert_eq!(
        data["recordEvents"]["createdCount"], 1000,
        "a full batch of 1,000 is accepted"
    );
}

crate::on_both_backends!(
    events_are_recorded_with_exact_amounts,
    timeline_pages_do_not_overlap,
    a_batch_is_all_or_nothing,
    resending_an_event_is_a_no_op,
    events_can_name_customers_by_identity,
    oversized_batches_are_refused,
);
