//! Duplicates: fuzzy suggestions queued (never merged), merges that keep every identity,
//! event, task, follow-up, tag and opt-out, conflicts shown, undo restoring both profiles,
//! and the data-quality report.

use serde_json::{Value, json};

use crate::harness::{ALPHA, ALPHA_READONLY, BETA, TestServer, code, fields};

const SUGGESTIONS: &str = "query($status: String) { duplicateSuggestions(first: 10, status: $status) { edges { node {
    id score status reasons { code detail } customerA { displayName } customerB { displayName } } } } }";
const MERGE: &str = "mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) {
    id survivorId absorbedId origin rule conflicts { field kept discarded keptFrom rule }
    moved { identities events tasks followUps tags optOuts } } }";
const UNMERGE: &str =
    "mutation($id: ID!) { unmergeCustomers(mergeId: $id) { keptFields merge { undoneAt }
    survivor { id } restored { id } } }";
const PROFILE: &str = "query($id: ID!) { customer(id: $id) { displayName phones emails attributes ownerId
    identities { channel externalId } tags { tag { name } } timeline(first: 10) { edges { node { name } } } } }";

fn nodes(v: &Value, key: &str) -> Vec<Value> {
    v[key]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn event(s: &TestServer, customer: &str, name: &str) {
    s.ok(
        ALPHA,
        "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }",
        json!({ "input": [{ "customerId": customer, "type": "CUSTOM", "name": name, "occurredAt": "2026-11-01T00:00:00Z" }] }),
    )
    .await;
}

async fn fuzzy_pairs_are_suggested_and_never_merged(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王芳", "phones": ["13800138000"], "sourceChannel": "WECOM" }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王芳", "phones": ["13800138001"], "sourceChannel": "STORE" }),
        )
        .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "Li Na", "emails": ["lina.sh@qq.com"], "sourceChannel": "WEB" }),
    )
    .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "Nina", "emails": ["lina.sh@gmail.com"], "sourceChannel": "SHOP" }),
    )
    .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "未知", "emails": ["info@a.com"], "sourceChannel": "WEB" }),
    )
    .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "未知", "emails": ["info@b.com"], "sourceChannel": "WEB" }),
    )
    .await;
    let list = nodes(
        &s.ok(ALPHA, SUGGESTIONS, json!({})).await,
        "duplicateSuggestions",
    );
    assert_eq!(
        list.len(),
        2,
        "placeholders and generic mailboxes link nobody: {list:?}"
    );
    assert_eq!(list[0]["score"], 85);
    assert_eq!(
        list[0]["reasons"],
        json!([{ "code": "same_name", "detail": "王芳" }, { "code": "phone_one_digit_apart", "detail": "+8613800138001 / +8613800138000" }])
    );
    assert_eq!(list[1]["score"], 55);
    assert_eq!(list[1]["reasons"][0]["code"], "same_email_local_part");
    for id in [&a, &b] {
        s.ok(ALPHA, PROFILE, json!({ "id": id })).await; // both still there
    }

    // dismissed pairs stay dismissed, even after a full scan
    let dismissed = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { dismissDuplicateSuggestion(id: $id) { status decidedBy } }",
            json!({ "id": list[1]["id"] }),
        )
        .await;
    assert_eq!(
        dismissed["dismissDuplicateSuggestion"],
        json!({ "status": "dismissed", "decidedBy": "boss" })
    );
    let scan = s
        .ok(
            ALPHA,
            "mutation { scanDuplicates { customersScanned newSuggestions } }",
            json!({}),
        )
        .await;
    assert_eq!(
        scan["scanDuplicates"],
        json!({ "customersScanned": 6, "newSuggestions": 0 })
    );
    let pending = nodes(
        &s.ok(ALPHA, SUGGESTIONS, json!({})).await,
        "duplicateSuggestions",
    );
    assert_eq!(pending.len(), 1);
    let e = s
        .err(
            ALPHA,
            "mutation($id: ID!) { dismissDuplicateSuggestion(id: $id) { status } }",
            json!({ "id": list[1]["id"] }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");

    // accepting a suggestion merges the pair and closes it
    let merged = s
        .ok(
            ALPHA,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": b, "suggestionId": list[0]["id"] } }),
        )
        .await;
    assert_eq!(merged["mergeCustomers"]["origin"], "suggestion");
    let done = nodes(
        &s.ok(ALPHA, SUGGESTIONS, json!({ "status": "merged" }))
            .await,
        "duplicateSuggestions",
    );
    assert_eq!(done.len(), 1);
    assert_eq!(
        s.err(ALPHA, PROFILE, json!({ "id": b })).await["extensions"]["code"],
        "NOT_FOUND"
    );
    // another tenant sees none of it
    let theirs = nodes(
        &s.ok(BETA, SUGGESTIONS, json!({ "status": "merged" })).await,
        "duplicateSuggestions",
    );
    assert!(theirs.is_empty());
}

async fn a_merge_keeps_everything_and_unmerge_restores_both(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({
                "displayName": "王芳", "phones": ["13800138000"], "sourceChannel": "WECOM",
                "identities": [{ "channel": "WECOM", "externalId": "wm001" }],
                "attributes": { "city": "上海" }
            }),
        )
        .await;
    let b = s
        .create_customer(ALPHA, json!({
            "displayName": "Fang Wang", "emails": ["fang@example.com"], "sourceChannel": "SHOP", "ownerId": "agent-a",
            "identities": [{ "channel": "SHOP", "externalId": "buyer-9" }],
            "attributes": { "city": "北京", "vip": true }
        }))
        .await;
    event(s, &a, "a_event").await;
    event(s, &b, "b_event").await;
    let tag = s
        .ok(
            ALPHA,
            "mutation { createTag(input: { name: \"老客户\" }) { id } }",
            json!({}),
        )
        .await["createTag"]["id"]
        .clone();
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": [b] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { createTask(input: { customerId: $c, title: \"call back\" }) { id } }",
        json!({ "c": b }),
    )
    .await;
    s.ok(ALPHA, "mutation($c: ID!) { recordFollowUp(input: { customerId: $c, kind: \"call\", note: \"asked for a catalogue\" }) { id } }", json!({ "c": b })).await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"sms\", optedOut: true) }",
        json!({ "c": b }),
    )
    .await;

    let m = s
        .ok(
            ALPHA,
            MERGE,
            json!({ "input": {
            "survivorId": a, "absorbedId": b, "rule": "MOST_RECENT",
            "prefer": [{ "field": "displayName", "side": "SURVIVOR" }]
        } }),
        )
        .await["mergeCustomers"]
        .clone();
    assert_eq!(
        m["moved"],
        json!({ "identities": 1, "events": 1, "tasks": 1, "followUps": 1, "tags": 1, "optOuts": 1 })
    );
    let conflicts: Vec<(&str, &str)> = m["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["field"].as_str().unwrap(), c["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conflicts,
        [
            ("displayName", "preferred"),
            ("attributes.city", "most_recent"),
            ("sourceChannel", "first_seen")
        ]
    );
    let city = &m["conflicts"][1];
    assert_eq!(
        (&city["kept"], &city["discarded"], &city["keptFrom"]),
        (&json!("北京"), &json!("上海"), &json!("ABSORBED"))
    );

    let merged = &s.ok(ALPHA, PROFILE, json!({ "id": a })).await["customer"];
    assert_eq!(merged["displayName"], "王芳");
    assert_eq!(merged["phones"], json!(["+8613800138000"]));
    assert_eq!(merged["emails"], json!(["fang@example.com"]));
    assert_eq!(
        merged["ownerId"], "agent-a",
        "an empty owner is filled, not a conflict"
    );
    assert_eq!(merged["attributes"], json!({ "city": "北京", "vip": true }));
    assert_eq!(merged["identities"].as_array().unwrap().len(), 2);
    assert_eq!(merged["tags"], json!([{ "tag": { "name": "老客户" } }]));
    assert_eq!(merged["timeline"]["edges"].as_array().unwrap().len(), 2);
    let opt = s
        .ok(
            ALPHA,
            "query($c: ID!) { contactOptOuts(customerId: $c) }",
            json!({ "c": a }),
        )
        .await;
    assert_eq!(opt["contactOptOuts"], json!(["sms"]));
    // the absorbed identity now finds the survivor
    let found = s
        .ok(ALPHA, "{ customers(first: 5, filter: { identity: { channel: SHOP, externalId: \"buyer-9\" } }) { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(found["customers"]["edges"][0]["node"]["id"], json!(a));
    let history = s
        .ok(ALPHA, "query($c: ID) { mergeHistory(customerId: $c, first: 5) { edges { node { id origin survivor { id } } } } }", json!({ "c": b }))
        .await;
    assert_eq!(history["mergeHistory"]["edges"][0]["node"]["id"], m["id"]);

    // changed after the merge: that change survives the unmerge
    s.ok(ALPHA, "mutation($id: ID!) { updateCustomer(id: $id, input: { attributes: { city: \"深圳\" } }) { id } }", json!({ "id": a }))
        .await;
    let u = s.ok(ALPHA, UNMERGE, json!({ "id": m["id"] })).await["unmergeCustomers"].clone();
    assert_eq!(
        u["keptFields"],
        json!(["attributes.city", "optOuts.sms"]),
        "an opt-out is never dropped"
    );
    assert!(u["merge"]["undoneAt"].is_string());
    assert_eq!(u["restored"]["id"], json!(b));
    let a_now = &s.ok(ALPHA, PROFILE, json!({ "id": a })).await["customer"];
    let b_now = &s.ok(ALPHA, PROFILE, json!({ "id": b })).await["customer"];
    assert_eq!(a_now["emails"], json!([]));
    assert_eq!(a_now["ownerId"], Value::Null);
    assert_eq!(
        a_now["attributes"],
        json!({ "city": "深圳" }),
        "vip went back with b; the later city stays"
    );
    assert_eq!(
        a_now["identities"],
        json!([{ "channel": "WECOM", "externalId": "wm001" }])
    );
    assert_eq!(a_now["tags"], json!([]));
    assert_eq!(a_now["timeline"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(b_now["displayName"], "Fang Wang");
    assert_eq!(b_now["attributes"], json!({ "city": "北京", "vip": true }));
    assert_eq!(
        b_now["identities"],
        json!([{ "channel": "SHOP", "externalId": "buyer-9" }])
    );
    assert_eq!(b_now["tags"], json!([{ "tag": { "name": "老客户" } }]));
    assert_eq!(b_now["timeline"]["edges"][0]["node"]["name"], "b_event");
    let tasks = s
        .ok(
            ALPHA,
            "query($c: ID!) { tasks(filter: { customerId: $c }) { edges { node { title } } } }",
            json!({ "c": b }),
        )
        .await;
    assert_eq!(tasks["tasks"]["edges"].as_array().unwrap().len(), 1);
    for id in [&a, &b] {
        let opt = s
            .ok(
                ALPHA,
                "query($c: ID!) { contactOptOuts(customerId: $c) }",
                json!({ "c": id }),
            )
            .await;
        assert_eq!(
            opt["contactOptOuts"],
            json!(["sms"]),
            "opt-outs are never lost"
        );
    }

    let e = s.err(ALPHA, UNMERGE, json!({ "id": m["id"] })).await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");
    assert!(e["message"].as_str().unwrap().contains("already undone"));
    // both sides of the audit trail
    let audit = s
        .ok(ALPHA, "query($id: ID!) { auditLog(filter: { entityId: $id, action: \"customer.\" }) { edges { node { action } } } }", json!({ "id": b }))
        .await;
    let actions: Vec<Value> = nodes(&audit, "auditLog")
        .iter()
        .map(|n| n["action"].clone())
        .collect();
    assert_eq!(
        actions[..2],
        [json!("customer.unmerge"), json!("customer.merged_into")]
    );
}

async fn an_import_merge_can_be_undone_into_its_own_profile(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王芳", "phones": ["13800138000"], "sourceChannel": "WECOM" }),
        )
        .await;
    let job = &s
        .ok(
            ALPHA,
            "mutation($input: ImportInput!) { importCustomers(input: $input) { merged } }",
            json!({ "input": {
                "content": "name,phone,shop\nFang W.,13800138000,buyer-77\n",
                "mapping": "[columns]\ndisplay_name = \"name\"\nphones = \"phone\"\n[identities]\nshop = \"shop\"\n"
            } }),
        )
        .await["importCustomers"];
    assert_eq!(job["merged"], 1);
    let history = s
        .ok(ALPHA, "query($c: ID) { mergeHistory(customerId: $c, first: 5) { edges { node { id origin reason absorbedStored conflicts { field } } } } }", json!({ "c": a }))
        .await;
    let m = nodes(&history, "mergeHistory")[0].clone();
    assert_eq!(
        (&m["origin"], &m["absorbedStored"]),
        (&json!("import"), &json!(false))
    );
    assert!(
        m["reason"]
            .as_str()
            .unwrap()
            .contains("phone +8613800138000"),
        "{m}"
    );
    assert_eq!(
        m["conflicts"],
        json!([{ "field": "displayName" }, { "field": "sourceChannel" }])
    );
    let merged = &s.ok(ALPHA, PROFILE, json!({ "id": a })).await["customer"];
    assert_eq!(merged["displayName"], "Fang W.");
    let u = s.ok(ALPHA, UNMERGE, json!({ "id": m["id"] })).await["unmergeCustomers"].clone();
    let restored = u["restored"]["id"].as_str().unwrap().to_owned();
    let a_now = &s.ok(ALPHA, PROFILE, json!({ "id": a })).await["customer"];
    let row = &s.ok(ALPHA, PROFILE, json!({ "id": restored })).await["customer"];
    assert_eq!(a_now["displayName"], "王芳");
    assert_eq!(a_now["identities"], json!([]));
    assert_eq!(row["displayName"], "Fang W.");
    assert_eq!(
        row["identities"],
        json!([{ "channel": "SHOP", "externalId": "buyer-77" }])
    );
}

async fn merges_refuse_bad_requests(s: &TestServer) {
    let a = s
        .create_customer(ALPHA, json!({ "displayName": "A", "sourceChannel": "WEB" }))
        .await;
    let b = s
        .create_customer(ALPHA, json!({ "displayName": "B", "sourceChannel": "WEB" }))
        .await;
    let e = s
        .err(
            ALPHA,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": a } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.absorbedId"]);
    let e = s
        .err(ALPHA, MERGE, json!({ "input": { "survivorId": a, "absorbedId": b, "prefer": [{ "field": "phones", "side": "ABSORBED" }] } }))
        .await;
    assert_eq!(fields(&e), ["input.prefer"]);
    let e = s
        .err(
            ALPHA,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": "nope" } }),
        )
        .await;
    assert_eq!(code(&e), "NOT_FOUND");
    let e = s
        .err(
            ALPHA_READONLY,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": b } }),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
    let theirs = s
        .create_customer(BETA, json!({ "displayName": "B", "sourceChannel": "WEB" }))
        .await;
    let e = s
        .err(
            ALPHA,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": theirs } }),
        )
        .await;
    assert_eq!(
        code(&e),
        "NOT_FOUND",
        "another tenant's customer does not exist here"
    );
    // a survivor absorbed later must be unmerged first
    let m1 = s
        .ok(
            ALPHA,
            MERGE,
            json!({ "input": { "survivorId": a, "absorbedId": b } }),
        )
        .await["mergeCustomers"]["id"]
        .clone();
    let c = s
        .create_customer(ALPHA, json!({ "displayName": "C", "sourceChannel": "WEB" }))
        .await;
    s.ok(
        ALPHA,
        MERGE,
        json!({ "input": { "survivorId": c, "absorbedId": a } }),
    )
    .await;
    let e = s.err(ALPHA, UNMERGE, json!({ "id": m1 })).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("undo that merge first"),
        "{e}"
    );
    // nothing was half-done: a and b are both still merged away
    assert_eq!(
        code(&s.err(ALPHA, PROFILE, json!({ "id": b })).await),
        "NOT_FOUND"
    );
}

async fn the_quality_report_flags_missing_contacts(s: &TestServer) {
    s.create_customer(ALPHA, json!({ "displayName": "有电话", "phones": ["13800138000"], "sourceChannel": "WECOM",
        "identities": [{ "channel": "WECOM", "externalId": "wm1" }], "attributes": { "city": "上海" } })).await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "有邮箱", "emails": ["a@example.com"], "sourceChannel": "WEB" }),
    )
    .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "未知", "sourceChannel": "STORE" }),
    )
    .await;
    s.create_customer(
        ALPHA,
        json!({ "displayName": "13900000000", "sourceChannel": "STORE" }),
    )
    .await;
    let q = &s
        .ok(ALPHA, "{ dataQuality { customers fields { field filled missing missingRate } invalidValues { field count }
            duplicatesPending identitiesPerChannel { channel identities customers } flags { code value threshold } } }", json!({}))
        .await["dataQuality"];
    assert_eq!(q["customers"], 4);
    let field = |name: &str| {
        q["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        field("contact"),
        json!({ "field": "contact", "filled": 2, "missing": 2, "missingRate": 0.5 })
    );
    assert_eq!(field("phone")["missing"], 3);
    assert_eq!(
        field("attributes.city"),
        json!({ "field": "attributes.city", "filled": 1, "missing": 3, "missingRate": 0.75 })
    );
    assert_eq!(
        q["invalidValues"],
        json!([{ "field": "displayName", "count": 2 }]),
        "未知 and a phone number are not names"
    );
    assert_eq!(
        q["identitiesPerChannel"],
        json!([{ "channel": "WECOM", "identities": 1, "customers": 1 }])
    );
    assert_eq!(
        q["flags"],
        json!([{ "code": "MISSING_CONTACT", "value": 0.5, "threshold": 0.15 }])
    );
    // another tenant's report is its own
    let theirs = &s
        .ok(
            BETA,
            "{ dataQuality { customers flags { code } } }",
            json!({}),
        )
        .await["dataQuality"];
    assert_eq!(theirs, &json!({ "customers": 0, "flags": [] }));
}

crate::on_both_backends!(
    fuzzy_pairs_are_suggested_and_never_merged,
    a_merge_keeps_everything_and_unmerge_restores_both,
    an_import_merge_can_be_undone_into_its_own_profile,
    merges_refuse_bad_requests,
    the_quality_report_flags_missing_contacts,
);
