//! Tenant isolation: ids, filters, cursors and identities of tenant A are useless to B.

use serde_json::json;

use crate::harness::{ALPHA, BETA, TestServer, code, fields};

async fn another_tenants_data_is_unreachable(s: &TestServer) {
    let a = s
        .create_customer(ALPHA, json!({ "displayName": "Alpha Only", "phones": ["13700001111"], "sourceChannel": "WECOM",
            "identities": [{ "channel": "WECOM", "externalId": "wm-shared" }], "attributes": { "secret": "yes" } }))
        .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "Alpha Two", "sourceChannel": "WEB" }),
    )
    .await;
    s.ok(ALPHA, "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: VISIT, occurredAt: \"2026-01-01T00:00:00Z\", idempotencyKey: \"same-key\" }]) { createdCount } }", json!({ "c": a }))
        .await;

    // by id
    let by_id = s
        .err(
            BETA,
            "query($id: ID!) { customer(id: $id) { displayName } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(code(&by_id), "NOT_FOUND");
    let update = s
        .err(BETA, "mutation($id: ID!) { updateCustomer(id: $id, input: { displayName: \"pwned\" }) { id } }", json!({ "id": a }))
        .await;
    assert_eq!(code(&update), "NOT_FOUND");
    let delete = s
        .err(
            BETA,
            "mutation($id: ID!) { deleteCustomer(id: $id) { id } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(code(&delete), "NOT_FOUND");
    let event = s
        .err(BETA, "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: VISIT, occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }", json!({ "c": a }))
        .await;
    assert_eq!(fields(&event), ["input[0].customerId"]);

    // by filter
    for filter in [
        json!({}),
        json!({ "search": "Alpha" }),
        json!({ "search": "13700001111" }),
        json!({ "attributes": { "secret": "yes" } }),
        json!({ "identity": { "channel": "WECOM", "externalId": "wm-shared" } }),
    ] {
        let data = s
            .ok(BETA, "query($f: CustomerFilterInput) { customers(filter: $f) { totalCount edges { node { id } } } }", json!({ "f": filter }))
            .await;
        assert_eq!(data["customers"]["totalCount"], 0, "filter {filter}");
        assert_eq!(data["customers"]["edges"], json!([]), "filter {filter}");
    }

    // by cursor
    let page = s
        .ok(
            ALPHA,
            "{ customers(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = page["customers"]["pageInfo"]["endCursor"].clone();
    let stolen = s
        .err(
            BETA,
            "query($c: String) { customers(first: 5, after: $c) { edges { node { id } } } }",
            json!({ "c": cursor }),
        )
        .await;
    assert_eq!(code(&stolen), "BAD_USER_INPUT");

    // identities and idempotency keys are per tenant
    let b = s
        .create_customer(BETA, json!({ "displayName": "Beta", "sourceChannel": "WECOM", "identities": [{ "channel": "WECOM", "externalId": "wm-shared" }] }))
        .await;
    let data = s
        .ok(BETA, "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: VISIT, occurredAt: \"2026-01-01T00:00:00Z\", idempotencyKey: \"same-key\" }]) { createdCount } }", json!({ "c": b }))
        .await;
    assert_eq!(data["recordEvents"]["createdCount"], 1);

    let alpha = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { displayName } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(
        alpha["customer"]["displayName"], "Alpha Only",
        "untouched by beta"
    );
}

crate::on_both_backends!(another_tenants_data_is_unreachable);
