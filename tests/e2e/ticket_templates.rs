//! Ticket templates from industry modules (plugin ABI 1.1), on both backends: a module
//! built for ABI 1.0 loads and works beside 1.1 modules; the education module's refund
//! template becomes a ticket type, and the module proposes a refund from the learner's
//! lessons and orders — from what the asking staff member may see — which staff apply.

use serde_json::{Value, json};
use shoal_base::config::{Config, ModuleConfig};
use shoal_plugin_host::{CallError, types};

use crate::harness::{
    ALPHA, Backend, Install, TestServer, add_user, code, install_plugin, plugin_wasm,
};

const MASKED: &str = "alpha-masked-key-0000000005";
/// A help-desk user who reaches every ticket but only their own customers.
const DESK: &str = "alpha-desk-key-000000000006";

/// Alpha enables `education` (built with the SDK, ABI 1.1) and `legacy` (ABI 1.0); the
/// `masked` user's role masks `attributes.lessons_left`; `desk` reaches every ticket and
/// only its own customers.
fn config(c: &mut Config) {
    let alpha = c.tenants.get_mut("alpha").expect("alpha");
    for id in ["education", "legacy"] {
        alpha.modules.insert(
            id.into(),
            ModuleConfig {
                enabled: true,
                params: Default::default(),
                version: None,
            },
        );
    }
    add_user(
        c,
        "masked",
        r#"
        name = "Masked"
        scopes = { "*" = "all" }
        fields = { "attributes.lessons_left" = "masked" }
        actions = ["create", "update"]
        "#,
        MASKED,
    );
    add_user(
        c,
        "desk",
        r#"
        name = "Desk"
        scopes = { "*" = "own", tickets = "all" }
        actions = ["update"]
        "#,
        DESK,
    );
}

async fn start(backend: Backend) -> Option<TestServer> {
    let s = TestServer::start_with(backend, config).await?;
    install_plugin(
        &s.plugins_dir,
        "education",
        &plugin_wasm("education"),
        &Install::industry(
            "education",
            &[
                "tag-templates",
                "sop-templates",
                "settlement",
                "ticket-templates",
            ],
        ),
    );
    install_plugin(
        &s.plugins_dir,
        "legacy",
        &plugin_wasm("legacy"),
        &Install {
            id: "legacy",
            version: "1.0.0",
            abi: "1.0.0",
            capabilities: &["tag-templates", "settlement"],
            sha256: None,
        },
    );
    let report = s.reload().await;
    let mut loaded = report.loaded.clone();
    loaded.sort();
    assert_eq!(loaded, ["education", "legacy"], "{:?}", report.failed);
    Some(s)
}

async fn a_1_0_module_works_beside_1_1_modules(s: &TestServer) {
    let data = s
        .ok(
            ALPHA,
            "{ plugins { id abiVersion status } modules { id capabilities tagTemplates { id rule } ticketTemplates { id proposes } } }",
            json!({}),
        )
        .await;
    let abi = |id: &str| {
        data["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["abiVersion"].clone())
    };
    assert_eq!(abi("legacy"), Some(json!("1.0.0")));
    assert_eq!(abi("education"), Some(json!("1.1.0")));
    let module = |id: &str| {
        data["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    let legacy = module("legacy");
    assert_eq!(
        legacy["capabilities"],
        json!(["tag-templates", "settlement"])
    );
    assert_eq!(
        legacy["tagTemplates"],
        json!([{ "id": "big-spender", "rule": "sum(order, 90d) >= ${amount}" }])
    );
    assert_eq!(legacy["ticketTemplates"], json!([]));
    assert_eq!(
        module("education")["ticketTemplates"],
        json!([{ "id": "refund", "proposes": true }, { "id": "class_complaint", "proposes": false }])
    );

    // the 1.0 module's template instantiates, and it settles through the 1.0 interface:
    // 2 × 12.50 + 1 × 99.90 = 124.90, all to the first participant
    let tag = s
        .ok(
            ALPHA,
            r#"mutation { instantiateTagTemplate(module: "legacy", template: "big-spender", params: {amount: 500}) { name rule } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        tag["instantiateTagTemplate"]["rule"],
        "sum(order, 90d) >= 500"
    );
    let line = |code: &str, quantity: &str, price: &str| types::BillLine {
        code: code.into(),
        description: code.into(),
        kind: types::LineKind::Part,
        quantity: quantity.into(),
        unit_price: types::Money {
            amount: price.into(),
            currency: "CNY".into(),
        },
    };
    let request = types::SettleRequest {
        bill_id: "B-1".into(),
        currency: "CNY".into(),
        region: "上海".into(),
        lines: vec![line("FILTER", "2", "12.50"), line("PUMP", "1", "99.90")],
        participants: vec![types::Participant {
            id: "store-1".into(),
            role: "store".into(),
            parent: None,
        }],
        attributes: "{}".into(),
    };
    let settled = s
        .host()
        .settle("alpha", "legacy", request)
        .await
        .expect("called")
        .expect("settled");
    let amounts: Vec<&str> = settled
        .lines
        .iter()
        .map(|l| l.amount.amount.as_str())
        .collect();
    assert_eq!(amounts, ["25.00", "99.90"]);
    assert_eq!(settled.total.amount, "124.90");
    assert_eq!(settled.splits[0].participant_id, "store-1");
    assert_eq!(settled.notes, ["settled by a 1.0 module"]);

    // what 1.1 added is not there in a 1.0 module
    let e = s
        .err(
            ALPHA,
            r#"mutation { instantiateTicketTemplate(module: "legacy", template: "refund") { type { key } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");
    let asked = s
        .host()
        .propose_ticket(
            "alpha",
            "legacy",
            types::TicketRequest {
                template: "refund".into(),
                currency: "CNY".into(),
                fields: "{}".into(),
                customer: None,
            },
        )
        .await;
    assert!(
        matches!(asked, Err(CallError::MissingCapability { .. })),
        "{asked:?}"
    );
}

const PROPOSAL: &str = "query($id: ID!) { ticketProposal(id: $id) { module fields notes } }";

async fn a_refund_ticket_gets_its_amount_proposed(s: &TestServer) {
    let ty = s
        .ok(
            ALPHA,
            r#"mutation { instantiateTicketTemplate(module: "education", template: "refund", name: "退费") {
                type { key name template { module template proposes } fields { key kind attribute } }
                slaPolicy routingRules skipped } }"#,
            json!({}),
        )
        .await;
    let made = &ty["instantiateTicketTemplate"];
    // the suggested SLA is set up; the suggested queue does not exist here, so its rules wait
    assert_eq!(made["slaPolicy"], "退费");
    assert_eq!(made["routingRules"], json!([]));
    assert_eq!(
        made["skipped"],
        json!([
            "routing: queue `advisors` does not exist; create it (saveTicketQueue) and add the rules"
        ])
    );
    let ty = &made["type"];
    assert_eq!(ty["key"], "refund");
    assert_eq!(ty["name"], "退费");
    assert_eq!(
        ty["template"],
        json!({ "module": "education", "template": "refund", "proposes": true })
    );
    assert!(
        ty["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "lessons_left", "kind": "CUSTOMER_ATTRIBUTE", "attribute": "lessons_left" })),
        "{ty}"
    );

    // 20 lessons bought, 13 left; 3,000.00 paid in two orders
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "小林", "sourceChannel": "WECOM", "attributes": { "lessons_total": 20, "lessons_left": 13 } }),
        )
        .await;
    for (i, amount) in ["1800.00", "1200.00"].iter().enumerate() {
        s.ok(
            ALPHA,
            "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }",
            json!({ "input": [{ "customerId": c, "type": "ORDER", "occurredAt": "2026-11-02T08:00:00Z", "channel": "SHOP", "amount": { "amount": amount, "currency": "CNY" },
                "idempotencyKey": format!("order-{i}") }] }),
        )
        .await;
    }
    let open = |customer: &str| json!({ "i": { "type": "refund", "subject": "申请退费", "customerId": customer, "fields": { "course": "雅思" } } });
    let id = s
        .ok_id(
            ALPHA,
            "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
            open(&c),
            "openTicket",
        )
        .await;

    // 3000.00 × 13 / 20 = 1950.00, the learner's facts read as the caller sees them
    let p = s.ok(ALPHA, PROPOSAL, json!({ "id": id })).await;
    let p = &p["ticketProposal"];
    assert_eq!(p["module"], "education");
    assert_eq!(
        p["fields"],
        json!({
            "lessons_used": "7",
            "paid": { "amount": "3000.00", "currency": "CNY" },
            "refund_amount": { "amount": "1950.00", "currency": "CNY" },
        })
    );
    assert!(p["notes"].to_string().contains("13/20"), "{p}");
    // asking writes nothing
    let read = "query($id: ID!) { ticket(id: $id) { fields entries { kind body } } }";
    let before = s.ok(ALPHA, read, json!({ "id": id })).await;
    assert!(before["ticket"]["fields"].get("refund_amount").is_none());

    // a reader who sees `lessons_left` masked gets no proposal built on it (the
    // ticket's copy reads `***`, the customer's attribute is left out)
    let e = s.err(MASKED, PROPOSAL, json!({ "id": id })).await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");
    assert!(e.to_string().contains("missing-facts"), "{e}");

    // a reader who reaches the ticket but not its customer: the module sees no customer
    // (the learner's orders stay out of the proposal)
    let e = s.err(DESK, PROPOSAL, json!({ "id": id })).await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");
    assert!(e.to_string().contains("no orders on the learner"), "{e}");

    // applying writes the values, and the history says who proposed them
    let applied = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { applyTicketProposal(id: $id) { fields } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        applied["applyTicketProposal"]["fields"]["refund_amount"],
        json!({ "amount": "1950.00", "currency": "CNY" })
    );
    let after = s.ok(ALPHA, read, json!({ "id": id })).await;
    let entries = after["ticket"]["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["kind"] == "fields"
            && e["body"].as_str().is_some_and(
                |b| b.starts_with("proposed by module education") && b.contains("1950.00")
            )),
        "{entries:?}"
    );

    // only types made from a template that proposes get proposals
    s.ok(
        ALPHA,
        r#"mutation { saveTicketType(input: { key: "plain", name: "普通" }) { key } }"#,
        json!({}),
    )
    .await;
    let plain = s
        .ok_id(
            ALPHA,
            "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
            json!({ "i": { "type": "plain", "subject": "?", "customerId": c } }),
            "openTicket",
        )
        .await;
    let e = s.err(ALPHA, PROPOSAL, json!({ "id": plain })).await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");

    // re-saving the type keeps it linked to its template
    s.ok(
        ALPHA,
        r#"mutation { saveTicketType(input: { key: "refund", name: "退费申请", fields: [
            { key: "course", label: "课程", kind: TEXT, required: true }
            { key: "lessons_total", label: "购买课时", kind: CUSTOMER_ATTRIBUTE, attribute: "lessons_total" }
            { key: "lessons_left", label: "剩余课时", kind: CUSTOMER_ATTRIBUTE, attribute: "lessons_left" }
            { key: "lessons_used", label: "已上课时", kind: NUMBER }
            { key: "paid", label: "已缴学费", kind: MONEY }
            { key: "refund_amount", label: "退费金额", kind: MONEY } ] }) { key } }"#,
        json!({}),
    )
    .await;
    let again = s.ok(ALPHA, PROPOSAL, json!({ "id": id })).await;
    assert_eq!(
        again["ticketProposal"]["fields"]["refund_amount"]["amount"],
        "1950.00"
    );
}

/// A template's suggestions: its SLA policy goes before the tenant's catch-all, its routing
/// rules (an urgent one at P1 for its keywords, then the type's) before the catch-all rule,
/// and tickets of the type are routed and timed by them.
async fn a_template_brings_its_sla_and_routing(s: &TestServer) {
    s.ok(
        ALPHA,
        r#"mutation {
            saveTicketQueue(input: { key: "academic", name: "教务", strategy: ROUND_ROBIN, members: ["boss"] }) { key }
        }"#,
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        r#"mutation { saveTicketQueue(input: { key: "front", name: "前台", strategy: ROUND_ROBIN, members: ["boss"] }) { key } }"#,
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        r#"mutation { setSlaPolicies(policies: [{ name: "其他", firstResponseMinutes: 480 }]) { name } }"#,
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        r#"mutation { setRoutingRules(rules: [{ name: "兜底", queue: "front" }]) { name } }"#,
        json!({}),
    )
    .await;
    let made = s
        .ok(
            ALPHA,
            r#"mutation { instantiateTicketTemplate(module: "education", template: "class_complaint") {
                type { key } slaPolicy routingRules skipped } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        made["instantiateTicketTemplate"],
        json!({ "type": { "key": "class_complaint" }, "slaPolicy": "课程投诉 Class complaint",
            "routingRules": ["课程投诉 Class complaint: 紧急", "课程投诉 Class complaint"], "skipped": [] })
    );
    let lists = s
        .ok(
            ALPHA,
            "{ slaPolicies { name types firstResponseMinutes resolutionMinutes } routingRules { name queue priority keywords } }",
            json!({}),
        )
        .await;
    assert_eq!(
        lists["slaPolicies"],
        json!([
            { "name": "课程投诉 Class complaint", "types": ["class_complaint"], "firstResponseMinutes": 120, "resolutionMinutes": 1620 },
            { "name": "其他", "types": [], "firstResponseMinutes": 480, "resolutionMinutes": null }
        ])
    );
    let names: Vec<&str> = lists["routingRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "课程投诉 Class complaint: 紧急",
            "课程投诉 Class complaint",
            "兜底"
        ]
    );
    // a complaint with 投诉 in it is P1 in the academic queue, timed by the template's SLA
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "家长", "sourceChannel": "WECOM" }),
        )
        .await;
    let t = s
        .ok(
            ALPHA,
            "mutation($i: TicketInput!) { openTicket(input: $i) { id priority queue } }",
            json!({ "i": { "type": "class_complaint", "subject": "投诉：老师连续两次迟到", "customerId": c,
                "fields": { "course": "钢琴", "issue": "老师态度" } } }),
        )
        .await;
    assert_eq!(t["openTicket"]["priority"], 1);
    assert_eq!(t["openTicket"]["queue"], "academic");
    // a key in use is refused, naming it; under another key the suggestions already there
    // (by name) are skipped and said so
    let e = s
        .err(
            ALPHA,
            r#"mutation { instantiateTicketTemplate(module: "education", template: "class_complaint") { slaPolicy } }"#,
            json!({}),
        )
        .await;
    assert_eq!(crate::harness::fields(&e), ["key"], "{e}");
    let again = s
        .ok(
            ALPHA,
            r#"mutation { instantiateTicketTemplate(module: "education", template: "class_complaint", key: "class_complaint_2") { slaPolicy skipped } }"#,
            json!({}),
        )
        .await;
    assert_eq!(again["instantiateTicketTemplate"]["slaPolicy"], Value::Null);
    assert_eq!(
        again["instantiateTicketTemplate"]["skipped"],
        json!([
            "SLA policy: one named `课程投诉 Class complaint` exists already",
            "routing: a rule named `课程投诉 Class complaint: 紧急` exists already"
        ])
    );
    // a priority-only policy is not a catch-all: a template's policy goes after it
    s.ok(
        ALPHA,
        r#"mutation { setSlaPolicies(policies: [{ name: "P1", priorities: [1], firstResponseMinutes: 15 }, { name: "其他", firstResponseMinutes: 480 }]) { name } }"#,
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        r#"mutation { instantiateTicketTemplate(module: "education", template: "refund", name: "退费") { slaPolicy } }"#,
        json!({}),
    )
    .await;
    let order = s.ok(ALPHA, "{ slaPolicies { name } }", json!({})).await;
    assert_eq!(
        order["slaPolicies"],
        json!([{ "name": "P1" }, { "name": "退费" }, { "name": "其他" }])
    );
}

crate::on_both_backends_with!(
    start,
    a_template_brings_its_sla_and_routing,
    a_1_0_module_works_beside_1_1_modules,
    a_refund_ticket_gets_its_amount_proposed
);
