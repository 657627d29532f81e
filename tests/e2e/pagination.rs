//! Relay pagination: every customer exactly once, in order, forwards and backwards.

use serde_json::{Value, json};

use crate::harness::{ALPHA, TestServer, code};

const PAGE: &str =
    "query($first: Int, $after: String, $last: Int, $before: String, $order: CustomerOrderInput) {
    customers(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
        totalCount edges { cursor node { displayName } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

fn names(data: &Value) -> Vec<String> {
    data["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["displayName"].as_str().unwrap().to_owned())
        .collect()
}

async fn seed(s: &TestServer, n: usize) -> Vec<String> {
    let mut created = Vec::new();
    for i in 0..n {
        // names out of creation order, so ordering by name differs from ordering by time
        let name = format!("c{:02}", (i * 7) % n);
        s.create_customer(
            ALPHA,
            json!({ "displayName": name, "sourceChannel": "WEB" }),
        )
        .await;
        created.push(name);
    }
    created
}

async fn forward_pages_visit_everyone_once(s: &TestServer) {
    let created = seed(s, 23).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = s
            .ok(ALPHA, PAGE, json!({ "first": 5, "after": after }))
            .await;
        assert_eq!(data["customers"]["totalCount"], 23);
        seen.extend(names(&data));
        pages += 1;
        let info = &data["customers"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], after.is_some());
        if !info["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 5);
    let newest_first: Vec<String> = created.into_iter().rev().collect();
    assert_eq!(seen, newest_first, "default order is newest first");
}

async fn backward_pages_mirror_forward_pages(s: &TestServer) {
    seed(s, 12).await;
    let order = json!({ "field": "DISPLAY_NAME", "direction": "ASC" });
    let all = names(
        &s.ok(ALPHA, PAGE, json!({ "first": 100, "order": order }))
            .await,
    );
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "ordered by name");
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let data = s
            .ok(
                ALPHA,
                PAGE,
                json!({ "last": 5, "before": before, "order": order }),
            )
            .await;
        let mut page = names(&data);
        page.extend(seen);
        seen = page;
        let info = &data["customers"]["pageInfo"];
        if !info["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = info["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, all);
}

async fn page_arguments_are_checked(s: &TestServer) {
    let too_big = s.err(ALPHA, PAGE, json!({ "first": 101 })).await;
    assert_eq!(code(&too_big), "LIMIT_EXCEEDED");
    assert_eq!(too_big["extensions"]["field"], "first");
    let both = s.err(ALPHA, PAGE, json!({ "first": 1, "last": 1 })).await;
    assert_eq!(code(&both), "BAD_USER_INPUT");
    let garbage = s
        .err(
            ALPHA,
            PAGE,
            json!({ "first": 1, "after": "bm90IGEgY3Vyc29y" }),
        )
        .await;
    assert_eq!(code(&garbage), "BAD_USER_INPUT");
    assert_eq!(garbage["extensions"]["field"], "after");
    // a cursor is bound to the ordering it was issued for
    seed(s, 2).await;
    let data = s.ok(ALPHA, PAGE, json!({ "first": 1 })).await;
    let cursor = data["customers"]["pageInfo"]["endCursor"].clone();
    let other_order = s
        .err(
            ALPHA,
            PAGE,
            json!({ "first": 1, "after": cursor, "order": { "field": "DISPLAY_NAME" } }),
        )
        .await;
    assert_eq!(code(&other_order), "BAD_USER_INPUT");
}

crate::on_both_backends!(
    forward_pages_visit_everyone_once,
    backward_pages_mirror_forward_pages,
    page_arguments_are_checked,
);
