//! Settlement end to end: price libraries, tiers, participants, bills settled by a real
//! module, postings, statements, refunds, replay; bad input refused with nothing stored.

use serde_json::{Value, json};

use crate::harness::{ALPHA, BETA, Install, TestServer, code, fields, install_plugin, plugin_wasm};

const SETTLE: &str = "mutation($input: SettleBillInput!) { settleBill(input: $input) {
    id kind total { amount currency } module { id version sha256 }
    lines { lineNo code kind quantity basePrice { amount } unitPrice { amount } adjustment { amount } amount { amount } note }
    splits { participantId amount { amount } reason } postings { account amount { amount } } notes } }";

pub(crate) async fn with_sample(s: &TestServer) {
    install_plugin(
        &s.plugins_dir,
        "sample",
        &plugin_wasm("sample"),
        &Install::sample(),
    );
    let report = s.reload().await;
    assert_eq!(report.loaded, ["sample"], "{:?}", report.failed);
}

/// Alpha's price library (two services, two parts) and participants (hq → store-7 →
/// staff-1), shared with the supply-chain tests.
pub(crate) async fn reference_data(s: &TestServer) {
    s.ok(ALPHA, "mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": [
        { "code": "SVC-INSTALL", "name": "空调安装", "category": "install", "unitPrice": "100.00", "currency": "CNY", "labourMinutes": 60 },
        { "code": "SVC-CLEAN", "name": "清洗保养", "category": "maintenance", "unitPrice": "80", "currency": "CNY", "labourMinutes": 45 } ] }))
        .await;
    s.ok(ALPHA, "mutation($i: [SparePartInput!]!) { upsertSpareParts(input: $i) }", json!({ "i": [
        { "sku": "P-FILTER", "name": "滤网", "cost": "20.00", "listPrice": "45.50", "currency": "CNY", "unit": "pcs" },
        { "sku": "P-USD", "name": "Imported valve", "cost": "5", "listPrice": "9.90", "currency": "USD", "unit": "pcs" } ] }))
        .await;
    s.ok(
        ALPHA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "hq", "name": "总部", "role": "hq" },
        { "id": "store-7", "name": "徐汇店", "role": "store", "parentId": "hq" },
        { "id": "staff-1", "name": "王师傅", "role": "staff", "parentId": "store-7" } ] }),
    )
    .await;
}

fn bill_input(region: &str) -> Value {
    json!({ "reference": "ORDER-1001", "region": region, "currency": "CNY", "participantIds": ["staff-1"], "lines": [
        { "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "2" },
        { "kind": "PART", "code": "P-FILTER", "quantity": "1" },
        { "kind": "TRANSPORT", "code": "DELIVERY", "quantity": "1", "unitPrice": "30" },
        { "kind": "COUPON", "code": "COUPON-10", "quantity": "1", "unitPrice": "10" } ] })
}

fn amounts(list: &Value, path: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[path]["amount"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_bill_is_priced_settled_posted_and_refunded(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    let bill = s
        .ok(ALPHA, SETTLE, json!({ "input": bill_input("上海") }))
        .await["settleBill"]
        .clone();
    // tier-1 (上海): labour and parts +10%: 2×110 + 50.05 + 30 − 10
    assert_eq!(
        bill["total"],
        json!({ "amount": "290.05", "currency": "CNY" })
    );
    assert_eq!(
        amounts(&bill["lines"], "amount"),
        ["220.00", "50.05", "30.00", "-10.00"]
    );
    assert_eq!(
        amounts(&bill["lines"], "basePrice"),
        ["100.00", "45.50", "30.00", "-10.00"]
    );
    assert_eq!(
        amounts(&bill["lines"], "adjustment"),
        ["10.00", "4.55", "0.00", "0.00"]
    );
    assert_eq!(bill["lines"][0]["note"], "tier-1: regional factor 1.10");
    assert_eq!(bill["module"]["id"], "sample");
    assert_eq!(bill["module"]["sha256"].as_str().unwrap().len(), 64);
    // staff-1 (weight 1), its store (2) and HQ (1): 290.05 split exactly
    assert_eq!(
        amounts(&bill["splits"], "amount"),
        ["72.51", "145.03", "72.51"]
    );
    let postings: Vec<f64> = bill["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["amount"]["amount"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .collect();
    assert_eq!(postings[0], -290.05, "the customer pays the total");
    let id = bill["id"].as_str().unwrap().to_owned();

    let verified = s
        .ok(
            ALPHA,
            "query($id: ID!) { verifyBill(id: $id) { status detail } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        verified["verifyBill"],
        json!({ "status": "IDENTICAL", "detail": null })
    );

    let statement = "query($p: ID!) { statement(participantId: $p, from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\") {
        participantName totals { amount currency } postings { billId amount { amount } } } }";
    let st = s.ok(ALPHA, statement, json!({ "p": "store-7" })).await;
    assert_eq!(
        st["statement"]["totals"],
        json!([{ "amount": "145.03", "currency": "CNY" }])
    );
    assert_eq!(st["statement"]["participantName"], "徐汇店");
    let (status, csv) = crate::harness::http(
        s.addr,
        "GET",
        "/statements/store-7.csv?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        &format!("Authorization: Bearer {ALPHA}\r\n"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(
        csv.starts_with("posted_at,bill_id,amount,currency,reason\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(",{id},145.03,CNY,store share"))
            && csv.contains(",TOTAL,145.03,CNY,"),
        "{csv}"
    );

    let refund = s
        .ok(ALPHA, "mutation($id: ID!) { refundBill(id: $id, reason: \"customer cancelled\") { id kind total { amount } } }", json!({ "id": id }))
        .await;
    assert_eq!(refund["refundBill"]["kind"], "REFUND");
    assert_eq!(refund["refundBill"]["total"]["amount"], "-290.05");
    let st = s.ok(ALPHA, statement, json!({ "p": "store-7" })).await;
    assert_eq!(
        st["statement"]["totals"],
        json!([{ "amount": "0.00", "currency": "CNY" }]),
        "the refund reverses the share"
    );
    let again = s
        .err(
            ALPHA,
            "mutation($id: ID!) { refundBill(id: $id, reason: \"twice\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&again), "BAD_USER_INPUT");
    let original = s
        .ok(
            ALPHA,
            "query($id: ID!) { bill(id: $id) { kind total { amount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        original["bill"],
        json!({ "kind": "SALE", "total": { "amount": "290.05" } }),
        "never edited"
    );

    let hidden = s
        .err(
            BETA,
            "query($id: ID!) { bill(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&hidden), "NOT_FOUND");

    // a customer's bills: theirs only, newest first, refunds included, within the scope
    let payer = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "付款人", "sourceChannel": "STORE" }),
        )
        .await;
    let mut input = bill_input("上海");
    input["customerId"] = json!(payer);
    input["reference"] = json!("ORDER-2001");
    let paid = s.ok(ALPHA, SETTLE, json!({ "input": input })).await["settleBill"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        ALPHA,
        "mutation($id: ID!) { refundBill(id: $id, reason: \"退货\") { id } }",
        json!({ "id": paid }),
    )
    .await;
    let bills = s
        .ok(
            ALPHA,
            "query($c: ID!) { customerBills(customerId: $c) { reference kind customerId total { amount } } }",
            json!({ "c": payer }),
        )
        .await;
    assert_eq!(
        bills["customerBills"],
        json!([
            { "reference": "ORDER-2001", "kind": "REFUND", "customerId": payer, "total": { "amount": "-290.05" } },
            { "reference": "ORDER-2001", "kind": "SALE", "customerId": payer, "total": { "amount": "290.05" } },
        ]),
        "the first bill (no customer) is not theirs"
    );
    let other = s
        .err(
            BETA,
            "query($c: ID!) { customerBills(customerId: $c) { id } }",
            json!({ "c": payer }),
        )
        .await;
    assert_eq!(code(&other), "NOT_FOUND");
}

async fn participant_agreements_shape_the_split(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    let input = json!({ "reference": "R-5", "region": "成都", "currency": "CNY", "participantIds": ["staff-1"],
        "lines": [{ "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" }] });
    let by_role = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(
        amounts(&by_role["settleBill"]["splits"], "amount"),
        ["20.00", "40.00", "20.00"],
        "role weights 1:2:1"
    );
    s.ok(ALPHA, "mutation { upsertParticipants(input: [{ id: \"staff-1\", name: \"王师傅\", role: \"staff\", parentId: \"store-7\", agreement: { weight: 4 } }]) }", json!({}))
        .await;
    let agreed = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(
        amounts(&agreed["settleBill"]["splits"], "amount"),
        ["45.71", "22.86", "11.43"],
        "staff's own weight 4:2:1 of 80; the two leftover cents go to the largest remainders"
    );
}

/// A bill reads the participants it names and their ancestors, of its own tenant only:
/// another tenant's participants with the same ids change nothing, and are unknown here.
async fn a_bill_reads_its_participants_chain_of_its_own_tenant(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    s.ok(
        BETA,
        "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
        json!({ "i": [
        { "id": "beta-root", "name": "乙总部", "role": "hq" },
        { "id": "store-7", "name": "乙门店", "role": "store", "parentId": "beta-root", "agreement": { "weight": 9 } },
        { "id": "beta-staff", "name": "乙员工", "role": "staff", "parentId": "store-7" } ] }),
    )
    .await;
    // two named participants sharing ancestors: each participant once
    let input = json!({ "reference": "R-6", "region": "成都", "currency": "CNY", "participantIds": ["staff-1", "store-7"],
        "lines": [{ "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" }] });
    let bill = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    let splits = &bill["settleBill"]["splits"];
    let ids: Vec<&str> = splits
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["participantId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["staff-1", "store-7", "hq"],
        "alpha's chain, not beta's `beta-root`"
    );
    assert_eq!(
        amounts(splits, "amount"),
        ["20.00", "40.00", "20.00"],
        "alpha's store-7 has no agreement: beta's weight 9 is not read"
    );
    let error = s
        .err(ALPHA, SETTLE, json!({ "input": { "reference": "R-7", "region": "成都", "currency": "CNY", "participantIds": ["beta-staff"],
            "lines": [{ "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" }] } }))
        .await;
    assert_eq!(fields(&error), ["input.participantIds[0]"]);
    // no line priced by a library: nothing to read but the participants and tiers
    let transport = s
        .ok(ALPHA, SETTLE, json!({ "input": { "reference": "R-8", "region": "成都", "currency": "CNY", "participantIds": ["staff-1"],
            "lines": [{ "kind": "TRANSPORT", "code": "DELIVERY", "quantity": "1", "unitPrice": "30" }] } }))
        .await;
    assert_eq!(transport["settleBill"]["total"]["amount"], "30.00");
}

async fn tiers_set_through_the_api_override_the_modules_defaults(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    let input = json!({ "reference": "R-2", "region": "成都", "currency": "CNY", "participantIds": ["hq"],
        "lines": [{ "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" }] });
    let flat = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(
        flat["settleBill"]["total"]["amount"], "80.00",
        "成都 is tier-2 by default"
    );
    s.ok(
        ALPHA,
        "mutation { setRegionTier(region: \"成都\", tier: \"tier-1\") }",
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation { setTierAdjustment(tier: \"tier-1\", percent: \"20\") }",
        json!({}),
    )
    .await;
    let tier1 = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(tier1["settleBill"]["total"]["amount"], "96.00");
    s.ok(
        ALPHA,
        "mutation { setTierAdjustment(tier: \"tier-1\", amount: \"5\") }",
        json!({}),
    )
    .await;
    let fixed = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(fixed["settleBill"]["total"]["amount"], "85.00");
    let both = s
        .err(
            ALPHA,
            "mutation { setTierAdjustment(tier: \"x\", percent: \"1\", amount: \"1\") }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&both), ["percent"]);
}

async fn prices_are_versioned_by_effective_time(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    s.ok(ALPHA, "mutation($i: [ServiceItemInput!]!) { upsertServiceItems(input: $i) }", json!({ "i": [
        { "code": "SVC-REPAIR", "name": "维修", "unitPrice": "100", "currency": "CNY", "effectiveFrom": "2026-01-01T00:00:00Z" },
        { "code": "SVC-REPAIR", "name": "维修", "unitPrice": "120", "currency": "CNY", "effectiveFrom": "2026-06-01T00:00:00Z" },
        { "code": "SVC-OLD", "name": "旧服务", "unitPrice": "50", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z", "effectiveTo": "2021-01-01T00:00:00Z" } ] }))
        .await;
    let at = |when: &str| {
        json!({ "input": { "reference": "R-3", "region": "成都", "currency": "CNY", "participantIds": ["hq"],
        "pricedAt": when, "lines": [{ "kind": "SERVICE", "code": "SVC-REPAIR", "quantity": "1" }] } })
    };
    let march = s.ok(ALPHA, SETTLE, at("2026-03-01T00:00:00Z")).await;
    assert_eq!(march["settleBill"]["total"]["amount"], "100.00");
    let july = s.ok(ALPHA, SETTLE, at("2026-07-01T00:00:00Z")).await;
    assert_eq!(july["settleBill"]["total"]["amount"], "120.00");
    let before = s.err(ALPHA, SETTLE, at("2025-01-01T00:00:00Z")).await;
    assert!(
        before["message"]
            .as_str()
            .unwrap()
            .contains("no price in effect"),
        "{before}"
    );

    // a bill's prices are read together: a code twice takes one price, and the line whose
    // code has no price then is the one named
    let lines = |codes: &[(&str, &str)]| {
        json!({ "input": { "reference": "R-4", "region": "成都", "currency": "CNY", "participantIds": ["hq"],
        "pricedAt": "2026-07-01T00:00:00Z", "lines": codes.iter().map(|(code, quantity)|
            json!({ "kind": "SERVICE", "code": code, "quantity": quantity })).collect::<Vec<_>>() } })
    };
    let twice = s
        .ok(
            ALPHA,
            SETTLE,
            lines(&[("SVC-REPAIR", "1"), ("SVC-REPAIR", "2")]),
        )
        .await;
    assert_eq!(twice["settleBill"]["total"]["amount"], "360.00");
    let expired = s
        .err(
            ALPHA,
            SETTLE,
            lines(&[("SVC-REPAIR", "1"), ("SVC-OLD", "1"), ("SVC-NONE", "1")]),
        )
        .await;
    assert_eq!(
        fields(&expired),
        ["input.lines[1].code", "input.lines[2].code"]
    );
    let errors = &expired["extensions"]["errors"];
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("no price in effect"),
        "{expired}"
    );
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("unknown service item `SVC-NONE`"),
        "{expired}"
    );
}

async fn bad_bills_are_refused_and_nothing_is_stored(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    let error = s
        .err(ALPHA, SETTLE, json!({ "input": { "reference": "", "region": "上海", "currency": "cny", "participantIds": [], "lines": [
            { "kind": "PART", "code": "P-FILTER", "quantity": "-1" },
            { "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "1", "unitPrice": "1" },
            { "kind": "TRANSPORT", "code": "T", "quantity": "1" } ] } }))
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
    assert_eq!(
        fields(&error),
        [
            "input.reference",
            "input.currency",
            "input.participantIds",
            "input.lines[0].quantity",
            "input.lines[1].unitPrice",
            "input.lines[2].unitPrice"
        ]
    );
    let error = s
        .err(ALPHA, SETTLE, json!({ "input": { "reference": "R", "region": "上海", "currency": "CNY", "participantIds": ["ghost"], "lines": [
            { "kind": "PART", "code": "NO-SUCH-SKU", "quantity": "1" },
            { "kind": "PART", "code": "P-USD", "quantity": "1" },
            { "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "1" } ] } }))
        .await;
    assert_eq!(
        fields(&error),
        [
            "input.lines[0].code",
            "input.lines[1].code",
            "input.participantIds[0]"
        ]
    );
    assert!(
        error["extensions"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown spare part `NO-SUCH-SKU`")
    );
    assert!(
        error["extensions"]["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("priced in USD")
    );
    let st = s
        .ok(ALPHA, "{ statement(participantId: \"hq\", from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\") { postings { billId } } }", json!({}))
        .await;
    assert_eq!(st["statement"]["postings"], json!([]), "nothing was stored");
    let none = s
        .err(BETA, SETTLE, json!({ "input": bill_input("上海") }))
        .await;
    assert_eq!(
        fields(&none),
        ["input.module"],
        "beta enabled no settlement module"
    );
}

async fn libraries_import_from_csv_and_participants_stay_a_shallow_tree(s: &TestServer) {
    let import = "mutation($csv: String!) { importPriceLibrary(library: SPARE_PARTS, csv: $csv) }";
    let good = "sku,name,cost,list_price,currency,unit,effective_from\nP-1,\"Filter, large\",10,19.90,CNY,pcs,2026-01-01\nP-2,Gasket,1,2.50,CNY,pcs,\n";
    assert_eq!(
        s.ok(ALPHA, import, json!({ "csv": good })).await["importPriceLibrary"],
        2
    );
    let bad = "sku,name,cost,list_price,currency,unit\nP-3,Valve,x,5,CNY,pcs\n";
    let error = s.err(ALPHA, import, json!({ "csv": bad })).await;
    assert_eq!(fields(&error), ["csv line 2, column cost"]);
    let missing = s
        .err(ALPHA, import, json!({ "csv": "sku,name\nP-4,x\n" }))
        .await;
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("missing columns"),
        "{missing}"
    );

    let chain: Vec<Value> = (0..11)
        .map(|i| json!({ "id": format!("p{i}"), "name": format!("level {i}"), "role": "agent", "parentId": (i > 0).then(|| format!("p{}", i - 1)) }))
        .collect();
    let deep = s
        .err(
            ALPHA,
            "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
            json!({ "i": chain }),
        )
        .await;
    assert!(
        deep["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 10 levels"),
        "{deep}"
    );
    let cycle = json!([{ "id": "a", "name": "A", "role": "agent", "parentId": "b" }, { "id": "b", "name": "B", "role": "agent", "parentId": "a" }]);
    let error = s
        .err(
            ALPHA,
            "mutation($i: [ParticipantInput!]!) { upsertParticipants(input: $i) }",
            json!({ "i": cycle }),
        )
        .await;
    assert_eq!(code(&error), "BAD_USER_INPUT");
}

crate::on_both_backends!(
    a_bill_is_priced_settled_posted_and_refunded,
    participant_agreements_shape_the_split,
    a_bill_reads_its_participants_chain_of_its_own_tenant,
    tiers_set_through_the_api_override_the_modules_defaults,
    prices_are_versioned_by_effective_time,
    bad_bills_are_refused_and_nothing_is_stored,
    libraries_import_from_csv_and_participants_stay_a_shallow_tree,
);

/// A module whose answer breaks the host's rules fails closed with PLUGIN_FAILED; a bill
/// whose module version was replaced still replays from the archive, and says so when the
/// version is gone from the archive too.
#[tokio::test]
async fn invalid_settlements_fail_closed_and_missing_versions_are_reported() {
    // a cache (and archive) of this server's own: the test empties it
    let cache = std::env::temp_dir().join(format!("shoal-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let own_cache = cache.clone();
    let s = TestServer::start_with(crate::harness::Backend::Sqlite, move |c| {
        c.plugins.cache_dir = own_cache;
        let alpha = c.tenants.get_mut("alpha").unwrap();
        alpha.modules.insert(
            "misbehave".into(),
            shoal_base::config::ModuleConfig {
                enabled: true,
                params: Default::default(),
                version: None,
            },
        );
    })
    .await
    .unwrap();
    install_plugin(
        &s.plugins_dir,
        "sample",
        &plugin_wasm("sample"),
        &Install::sample(),
    );
    install_plugin(
        &s.plugins_dir,
        "misbehave",
        &plugin_wasm("misbehave"),
        &Install::misbehave(),
    );
    s.reload().await;
    reference_data(&s).await;
    let mut input = bill_input("上海");
    let ambiguous = s.err(ALPHA, SETTLE, json!({ "input": input })).await;
    assert!(
        ambiguous["message"]
            .as_str()
            .unwrap()
            .contains("several settlement modules"),
        "{ambiguous}"
    );
    input["module"] = json!("misbehave");
    let invalid = s.err(ALPHA, SETTLE, json!({ "input": input })).await;
    assert_eq!(code(&invalid), "PLUGIN_FAILED");
    assert_eq!(invalid["extensions"]["kind"], "invalid_settlement");
    input["module"] = json!("sample");
    let bill = s.ok(ALPHA, SETTLE, json!({ "input": input })).await;
    let id = bill["settleBill"]["id"].clone();

    // the same module behaviour under a different binary (an extra custom section)
    let mut bytes = std::fs::read(plugin_wasm("sample")).unwrap();
    bytes.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']);
    let other = s.plugins_dir.join("other.wasm");
    std::fs::write(&other, bytes).unwrap();
    install_plugin(
        &s.plugins_dir,
        "sample",
        &other,
        &Install {
            version: "1.0.1",
            ..Install::sample()
        },
    );
    let report = s.reload().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let verify = || {
        s.ok(
            ALPHA,
            "query($id: ID!) { verifyBill(id: $id) { status detail } }",
            json!({ "id": id }),
        )
    };
    // 1.0.0 is no longer installed: the host loads it from its archive
    assert_eq!(verify().await["verifyBill"]["status"], "IDENTICAL");
    // a host that never kept 1.0.0 (another host, an emptied cache) cannot replay it
    std::fs::remove_dir_all(cache.join("archive")).unwrap();
    s.reload().await;
    let verified = s
        .ok(
            ALPHA,
            "query($id: ID!) { verifyBill(id: $id) { status detail } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(verified["verifyBill"]["status"], "MODULE_UNAVAILABLE");
    assert!(
        verified["verifyBill"]["detail"]
            .as_str()
            .unwrap()
            .contains("the loaded version is 1.0.1"),
        "{verified}"
    );
    s.stop().await;
}

/// Random bills through GraphQL: lines add up to the total, splits add up to the total
/// exactly, postings balance to zero, and replaying gives the identical bill.
#[test]
fn random_bills_balance_and_replay_identically() {
    use proptest::{
        prelude::*,
        test_runner::{Config, TestRunner},
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(async {
        let s = TestServer::start(crate::harness::Backend::Sqlite)
            .await
            .unwrap();
        with_sample(&s).await;
        reference_data(&s).await;
        s
    });
    let line = (0usize..4, 1u32..400, 0u32..9999).prop_map(|(kind, tenths, price_cents)| match kind {
        0 => json!({ "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": format!("{}.{}", tenths / 10, tenths % 10) }),
        1 => json!({ "kind": "PART", "code": "P-FILTER", "quantity": (tenths % 7 + 1).to_string() }),
        2 => json!({ "kind": "TRANSPORT", "code": "DELIVERY", "quantity": "1", "unitPrice": format!("{}.{:02}", price_cents / 100, price_cents % 100) }),
        _ => json!({ "kind": "ADJUSTMENT", "code": "ROUNDING", "quantity": "1", "unitPrice": format!("0.{:02}", price_cents % 100) }),
    });
    let bills = (
        prop::collection::vec(line, 1..8),
        prop::sample::select(vec!["staff-1", "store-7", "hq"]),
        prop::sample::select(vec!["上海", "成都", "洛阳"]),
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&bills, |(lines, participant, region)| {
            runtime.block_on(async {
                let input = json!({ "reference": "P", "region": region, "currency": "CNY", "participantIds": [participant], "lines": lines });
                let bill = s.ok(ALPHA, SETTLE, json!({ "input": input })).await["settleBill"].clone();
                let cents = |v: &Value| -> i64 {
                    let d: rust_decimal::Decimal = v["amount"].as_str().unwrap().parse().unwrap();
                    (d * rust_decimal::Decimal::ONE_HUNDRED).try_into().unwrap()
                };
                let total = cents(&bill["total"]);
                let lines: i64 = bill["lines"].as_array().unwrap().iter().map(|l| cents(&l["amount"])).sum();
                let splits: i64 = bill["splits"].as_array().unwrap().iter().map(|l| cents(&l["amount"])).sum();
                let postings: i64 = bill["postings"].as_array().unwrap().iter().map(|l| cents(&l["amount"])).sum();
                assert_eq!((lines, splits, postings), (total, total, 0), "{bill}");
                let verified = s.ok(ALPHA, "query($id: ID!) { verifyBill(id: $id) { status detail } }", json!({ "id": bill["id"] })).await;
                assert_eq!(verified["verifyBill"]["status"], "IDENTICAL", "{verified}");
            });
            Ok(())
        })
        .unwrap();
    runtime.block_on(s.stop());
}
