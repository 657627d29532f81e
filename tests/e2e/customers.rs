//! Creating, reading, changing and deleting customers, and how bad input is refused.

use serde_json::json;

use crate::harness::{ALPHA, ALPHA_READONLY, TestServer, code, fields};

const CUSTOMER: &str = "query($id: ID!) { customer(id: $id) { id displayName phones emails attributes
    lifecycleStage ownerId owner { name } sourceChannel version identities { channel externalId } } }";

async fn create_normalises_contacts(s: &TestServer) {
    let id = s
        .create_customer(
            ALPHA,
            json!({
                "displayName": "  李娜 ",
                "phones": ["138 0013 8000", "+1 (415) 555-2671", "13800138000"],
                "emails": ["Li.Na@Example.COM"],
                "identities": [{ "channel": "WECOM", "externalId": "wmXYZ001" }],
                "attributes": { "city": "上海", "vip": true },
                "lifecycleStage": "PROSPECT",
                "ownerId": "agent-a",
                "sourceChannel": "WECOM"
            }),
        )
        .await;
    let c = &s.ok(ALPHA, CUSTOMER, json!({ "id": id })).await["customer"];
    assert_eq!(c["displayName"], "李娜");
    assert_eq!(
        c["phones"],
        json!(["+8613800138000", "+14155552671"]),
        "E.164, duplicates dropped"
    );
    assert_eq!(c["emails"], json!(["li.na@example.com"]));
    assert_eq!(c["attributes"], json!({ "city": "上海", "vip": true }));
    assert_eq!(c["lifecycleStage"], "PROSPECT");
    assert_eq!(c["owner"]["name"], "User agent-a");
    assert_eq!(
        c["identities"],
        json!([{ "channel": "WECOM", "externalId": "wmXYZ001" }])
    );
    assert_eq!(c["version"], 1);
}

async fn every_invalid_field_is_reported(s: &TestServer) {
    let error = s
        .err(
            ALPHA,
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({ "input": {
                "displayName": " ",
                "phones": ["13800138000", "12345"],
                "emails": ["not-an-email"],
                "attributes": { "ok": 1, "bad\"key": 2 },
                "ownerId": "ghost",
                "sourceChannel": "WEB"
            }}),
        )
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
    assert_eq!(
        fields(&error),
        [
            "input.displayName",
            "input.phones[1]",
            "input.emails[0]",
            "input.attributes.bad\"key",
            "input.ownerId"
        ]
    );
    assert_eq!(error["extensions"]["field"], "input.displayName");
    let total = s.ok(ALPHA, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(total["customers"]["totalCount"], 0, "nothing was stored");
}

async fn unknown_input_fields_are_refused(s: &TestServer) {
    let error = s
        .err(
            ALPHA,
            "mutation { createCustomer(input: { displayName: \"A\", sourceChannel: WEB, nickname: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
    assert!(
        error["message"].as_str().unwrap().contains("nickname"),
        "{error}"
    );
}

async fn update_merges_attributes_and_is_audited(s: &TestServer) {
    let id = s
        .create_customer(ALPHA, json!({ "displayName": "张伟", "sourceChannel": "STORE", "attributes": { "city": "北京", "level": "银卡" } }))
        .await;
    let data = s
        .ok(
            ALPHA,
            "mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) {
                displayName attributes lifecycleStage version ownerId } }",
            json!({ "id": id, "input": {
                "displayName": "张伟 (VIP)",
                "attributes": { "level": null, "city": "上海", "vip": true },
                "lifecycleStage": "LOYAL",
                "ownerId": "agent-a"
            }}),
        )
        .await;
    let c = &data["updateCustomer"];
    assert_eq!(c["attributes"], json!({ "city": "上海", "vip": true }));
    assert_eq!(c["lifecycleStage"], "LOYAL");
    assert_eq!(c["version"], 2);
    let cleared = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { updateCustomer(id: $id, input: { ownerId: null }) { ownerId version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(cleared["updateCustomer"]["ownerId"], json!(null));

    let history = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { history { action actorId changes } } }",
            json!({ "id": id }),
        )
        .await;
    let entries = history["customer"]["history"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["customer.update", "customer.update", "customer.create"]
    );
    assert_eq!(entries[0]["actorId"], "boss");
    assert_eq!(
        entries[1]["changes"]["lifecycleStage"],
        json!({ "from": "lead", "to": "loyal" })
    );
    assert_eq!(entries[1]["changes"]["displayName"]["to"], "张伟 (VIP)");
}

async fn delete_hides_the_customer_and_frees_identities(s: &TestServer) {
    let input = json!({ "displayName": "Old", "sourceChannel": "SHOP", "identities": [{ "channel": "SHOP", "externalId": "buyer-1" }] });
    let id = s.create_customer(ALPHA, input.clone()).await;
    let deleted = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { deleteCustomer(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteCustomer"]["id"], id.as_str());
    let error = s.err(ALPHA, CUSTOMER, json!({ "id": id })).await;
    assert_eq!(code(&error), "NOT_FOUND");
    let again = s
        .err(
            ALPHA,
            "mutation($id: ID!) { deleteCustomer(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&again), "NOT_FOUND");
    let total = s.ok(ALPHA, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(total["customers"]["totalCount"], 0);
    // the identity can now belong to a new customer
    s.create_customer(ALPHA, input).await;
}

async fn an_identity_belongs_to_one_customer(s: &TestServer) {
    let identity = json!([{ "channel": "WECHAT", "externalId": "union-42" }]);
    let first = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "A", "sourceChannel": "WECHAT", "identities": identity }),
        )
        .await;
    let error = s
        .err(
            ALPHA,
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({ "input": { "displayName": "B", "sourceChannel": "WECHAT", "identities": identity } }),
        )
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
    assert_eq!(fields(&error), ["input.identities[0]"]);
    assert!(
        error["message"].as_str().unwrap().contains(&first),
        "{error}"
    );
    let second = s
        .create_customer(ALPHA, json!({ "displayName": "B", "sourceChannel": "WEB" }))
        .await;
    let error = s
        .err(
            ALPHA,
            "mutation($id: ID!) { updateCustomer(id: $id, input: { addIdentities: [{ channel: WECHAT, externalId: \"union-42\" }] }) { id } }",
            json!({ "id": second }),
        )
        .await;
    assert_eq!(fields(&error), ["input.addIdentities[0]"]);
}

async fn readonly_users_cannot_change_data(s: &TestServer) {
    let error = s
        .err(
            ALPHA_READONLY,
            "mutation { createCustomer(input: { displayName: \"A\", sourceChannel: WEB }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&error), "FORBIDDEN");
    let viewer = s
        .ok(
            ALPHA_READONLY,
            "{ viewer { role tenant { id } user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        viewer["viewer"],
        json!({ "role": "readonly", "tenant": { "id": "alpha" }, "user": { "id": "viewer" } })
    );
}

async fn filters_select_matching_customers(s: &TestServer) {
    let wang = s
        .create_customer(ALPHA, json!({ "displayName": "王芳", "phones": ["13911112222"], "sourceChannel": "WECOM",
            "lifecycleStage": "CUSTOMER", "ownerId": "agent-a", "attributes": { "city": "北京", "vip": true, "visits": 3 },
            "identities": [{ "channel": "WECOM", "externalId": "wm-wang" }] }))
        .await;
    let emma = s
        .create_customer(ALPHA, json!({ "displayName": "Emma Watson", "emails": ["emma@example.com"], "sourceChannel": "WEB",
            "attributes": { "city": "London", "vip": false } }))
        .await;
    let wangwu = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王五", "sourceChannel": "STORE", "lifecycleStage": "LOYAL",
            "attributes": { "city": "北京" } }),
        )
        .await;
    let ids = |data: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = data["customers"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| -> Vec<String> {
        v.sort();
        v.into_iter().cloned().collect()
    };
    let query = "query($f: CustomerFilterInput) { customers(filter: $f) { totalCount edges { node { id } } } }";
    for (filter, expected) in [
        (json!({ "search": "王" }), sorted(vec![&wang, &wangwu])),
        (json!({ "search": "emma" }), sorted(vec![&emma])),
        (json!({ "search": "139 1111 2222" }), sorted(vec![&wang])),
        (json!({ "search": "+86 13911112222" }), sorted(vec![&wang])),
        (json!({ "search": "EMMA@example.com" }), sorted(vec![&emma])),
        (
            json!({ "stages": ["CUSTOMER", "LOYAL"] }),
            sorted(vec![&wang, &wangwu]),
        ),
        (json!({ "channels": ["WEB"] }), sorted(vec![&emma])),
        (json!({ "ownerId": "agent-a" }), sorted(vec![&wang])),
        (
            json!({ "attributes": { "city": "北京" } }),
            sorted(vec![&wang, &wangwu]),
        ),
        (
            json!({ "attributes": { "city": "北京", "vip": true } }),
            sorted(vec![&wang]),
        ),
        (
            json!({ "attributes": { "visits": 3 } }),
            sorted(vec![&wang]),
        ),
        (
            json!({ "attributes": { "vip": false } }),
            sorted(vec![&emma]),
        ),
        (
            json!({ "identity": { "channel": "WECOM", "externalId": "wm-wang" } }),
            sorted(vec![&wang]),
        ),
        (
            json!({ "createdAfter": "2000-01-01T00:00:00Z", "createdBefore": "2001-01-01T00:00:00Z" }),
            vec![],
        ),
        (
            json!({ "search": "王", "channels": ["STORE"] }),
            sorted(vec![&wangwu]),
        ),
    ] {
        let data = s.ok(ALPHA, query, json!({ "f": filter })).await;
        assert_eq!(ids(&data), expected, "filter {filter}");
        assert_eq!(
            data["customers"]["totalCount"],
            expected.len(),
            "totalCount for {filter}"
        );
    }
    let error = s
        .err(ALPHA, query, json!({ "f": { "attributes": [1, 2] } }))
        .await;
    assert_eq!(fields(&error), ["filter.attributes"]);
}

async fn concurrent_updates_are_not_lost(s: &TestServer) {
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "Busy", "sourceChannel": "WEB" }),
        )
        .await;
    let update = "mutation($id: ID!, $a: JSON) { updateCustomer(id: $id, input: { attributes: $a }) { version } }";
    let updates = (0..12).map(|i| {
        let vars = json!({ "id": id, "a": { format!("k{i}"): i } });
        async move { s.ok(ALPHA, update, vars).await }
    });
    futures_util::future::join_all(updates).await;
    let c = &s.ok(ALPHA, CUSTOMER, json!({ "id": id })).await["customer"];
    let expected: serde_json::Map<String, serde_json::Value> =
        (0..12).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(
        c["attributes"],
        serde_json::Value::Object(expected),
        "every merge survived"
    );
    assert_eq!(c["version"], 13);
}

crate::on_both_backends!(
    concurrent_updates_are_not_lost,
    create_normalises_contacts,
    every_invalid_field_is_reported,
    unknown_input_fields_are_refused,
    update_merges_attributes_and_is_audited,
    delete_hides_the_customer_and_frees_identities,
    an_identity_belongs_to_one_customer,
    readonly_users_cannot_change_data,
    filters_select_matching_customers,
);
