//! One door to customer data, checked from the live schema: every query and mutation that
//! takes a customer id, a list of ids, a customer filter, a segment or an audit entity is
//! called by an agent who cannot see the target customer, and must answer `NOT_FOUND`,
//! `FORBIDDEN` or a result without the customer — with none of the customer's fields
//! anywhere in the response. The fields are found by walking the schema: a new resolver of
//! that kind fails this test until it is taught how to be called (in `CALLS`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{
    harness::{ALPHA, Backend, TestServer, code},
    schema_walk::Schema,
};

const AGENT: &str = "alpha-agent-key-00000000004";

/// Argument and input-field names that carry a customer (or a customer-linked entity).
const CUSTOMER_ARGS: [&str; 7] = [
    "customerId",
    "customerIds",
    "survivorId",
    "absorbedId",
    "segmentId",
    "segment",
    "entityId",
];
/// Input types that select customers.
const CUSTOMER_TYPES: [&str; 2] = ["CustomerFilterInput", "SegmentDefinitionInput"];

/// What the target customer holds that nobody out of scope may read.
const SECRETS: [&str; 4] = ["钱七", "13912345678", "qian@example.com", "880000"];

/// Whether a root field takes a customer, directly or inside its input.
fn takes_a_customer(schema: &Schema, field: &Value) -> bool {
    fn walk(schema: &Schema, name: &str, t: &Value, depth: usize) -> bool {
        if CUSTOMER_ARGS.contains(&name) {
            return true;
        }
        let named = schema.named(t);
        let type_name = named["name"].as_str().unwrap_or("");
        if CUSTOMER_TYPES.contains(&type_name) {
            return true;
        }
        depth < 3
            && named["kind"] == "INPUT_OBJECT"
            && named["inputFields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| walk(schema, f["name"].as_str().unwrap(), &f["type"], depth + 1))
    }
    let name = field["name"].as_str().unwrap().to_ascii_lowercase();
    field["args"].as_array().unwrap().iter().any(|a| {
        let arg = a["name"].as_str().unwrap();
        walk(schema, arg, &a["type"], 0) || (name.contains("customer") && arg == "id")
    })
}

/// What the calls need: the target and things linked to it.
struct Target {
    id: String,
    segment: String,
    sop: String,
    tag: String,
    /// A ticket of the target.
    ticket: String,
}

/// How to call each field as the agent: `(field, query, variables)`.
fn calls(t: &Target) -> Vec<(&'static str, &'static str, Value)> {
    let id = &t.id;
    vec![
        (
            "customer",
            "query($c: ID!) { customer(id: $c) { id displayName } }",
            json!({ "c": id }),
        ),
        (
            "customers",
            "query($s: ID) { customers(filter: { segment: $s }) { edges { node { id displayName phones } } } }",
            json!({ "s": t.segment }),
        ),
        (
            "duplicateSuggestions",
            "query($c: ID) { duplicateSuggestions(customerId: $c) { edges { node { id score } } } }",
            json!({ "c": id }),
        ),
        (
            "mergeHistory",
            "query($c: ID) { mergeHistory(customerId: $c) { edges { node { id survivorId absorbedId } } } }",
            json!({ "c": id }),
        ),
        (
            "enrolments",
            "query($c: ID) { enrolments(customerId: $c) { edges { node { id customerId status } } } }",
            json!({ "c": id }),
        ),
        (
            "simulateSop",
            "query($s: ID, $c: [ID!], $to: DateTime!) { simulateSop(sopId: $s, customerIds: $c, to: $to) { customerId detail } }",
            json!({ "s": t.sop, "c": [id], "to": week() }),
        ),
        (
            "tasks",
            "query($c: ID) { tasks(filter: { customerId: $c }) { edges { node { id title customerId } } } }",
            json!({ "c": id }),
        ),
        (
            "followUps",
            "query($c: ID) { followUps(customerId: $c) { edges { node { id note customerId } } } }",
            json!({ "c": id }),
        ),
        (
            "outboxMessages",
            "query($c: ID) { outboxMessages(filter: { customerId: $c }) { edges { node { id body customerId } } } }",
            json!({ "c": id }),
        ),
        (
            "contactOptOuts",
            "query($c: ID!) { contactOptOuts(customerId: $c) }",
            json!({ "c": id }),
        ),
        (
            "auditLog",
            "query($c: ID) { auditLog(filter: { entityId: $c }) { edges { node { entityId changes } } } }",
            json!({ "c": id }),
        ),
        (
            "previewSegment",
            "query { previewSegment(definition: { channels: [WEB] }) { count sample { id displayName } } }",
            json!({}),
        ),
        (
            "applyTag",
            "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
            json!({ "t": t.tag, "c": [id] }),
        ),
        (
            "removeTag",
            "mutation($t: ID!, $c: [ID!]) { removeTag(tagId: $t, customerIds: $c) }",
            json!({ "t": t.tag, "c": [id] }),
        ),
        (
            "exportCustomers",
            "mutation($s: ID) { exportCustomers(filter: { segment: $s }) { csv } }",
            json!({ "s": t.segment }),
        ),
        (
            "updateCustomer",
            "mutation($c: ID!) { updateCustomer(id: $c, input: { displayName: \"改\" }) { id displayName } }",
            json!({ "c": id }),
        ),
        (
            "deleteCustomer",
            "mutation($c: ID!) { deleteCustomer(id: $c) { id } }",
            json!({ "c": id }),
        ),
        (
            "mergeCustomers",
            "mutation($a: ID!, $b: ID!) { mergeCustomers(input: { survivorId: $a, absorbedId: $b }) { id } }",
            json!({ "a": id, "b": id }),
        ),
        (
            "recordEvents",
            "mutation($c: ID) { recordEvents(input: [{ customerId: $c, type: PAGE_VIEW, occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount results { status } } }",
            json!({ "c": id }),
        ),
        (
            "settleBill",
            "mutation($c: ID) { settleBill(input: { reference: \"r-1\", customerId: $c, region: \"上海\", currency: \"CNY\", participantIds: [\"p1\"], lines: [{ kind: SERVICE, code: \"S1\", quantity: \"1\" }] }) { id } }",
            json!({ "c": id }),
        ),
        (
            "funnel",
            "query($s: ID!) { funnel(input: { steps: [{ event: { type: PAGE_VIEW } }, { event: { type: ORDER } }], from: \"2025-01-01T00:00:00Z\", to: \"2027-01-01T00:00:00Z\", filter: { segment: $s }, breakdown: SEGMENT, segments: [$s] }) { overall { entered steps { customers } } groups { key entered } } }",
            json!({ "s": t.segment }),
        ),
        (
            "retention",
            "query($s: ID) { retention(input: { starting: { type: PAGE_VIEW }, returning: { type: ORDER }, period: MONTH, periods: 2, from: \"2025-12-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\", filter: { segment: $s } }) { cohorts { start customers returned } } }",
            json!({ "s": t.segment }),
        ),
        (
            "customerBills",
            "query($c: ID!) { customerBills(customerId: $c) { id reference } }",
            json!({ "c": id }),
        ),
        (
            "customerMerge",
            "query($c: ID!) { customerMerge(id: $c) { id survivorId } }",
            json!({ "c": id }),
        ),
        (
            "updateSegment",
            "mutation($s: ID!) { updateSegment(id: $s, input: { name: \"mine\", definition: { channels: [WEB] } }) { id } }",
            json!({ "s": t.segment }),
        ),
        (
            "openTicket",
            "mutation($c: ID!) { openTicket(input: { type: \"after_sales\", subject: \"x\", customerId: $c }) { id subject } }",
            json!({ "c": id }),
        ),
        (
            "tickets",
            "query($c: ID!) { tickets(filter: { customerId: $c }, first: 10) { edges { node { id subject fields } } } }",
            json!({ "c": id }),
        ),
        (
            "addCustomerMessage",
            "mutation($t: ID!) { addCustomerMessage(id: $t, body: \"x\") { id body } }",
            json!({ "t": t.ticket }),
        ),
        (
            "campaignPreview",
            "query($c: ID!) { campaignPreview(input: { name: \"x\", channel: \"log\", audience: { customers: [$c] }, variants: [{ key: \"a\", template: \"{{customer.name}}\" }] }) { audience recipients } }",
            json!({ "c": id }),
        ),
        (
            "createCampaign",
            "mutation($c: ID!) { createCampaign(input: { name: \"x\", channel: \"log\", audience: { customers: [$c] }, variants: [{ key: \"a\", template: \"hi\" }] }) { id } }",
            json!({ "c": id }),
        ),
        (
            "updateCampaign",
            "mutation($c: ID!) { updateCampaign(id: \"none\", input: { name: \"x\", channel: \"log\", audience: { customers: [$c] }, variants: [{ key: \"a\", template: \"hi\" }] }) { id } }",
            json!({ "c": id }),
        ),
        (
            "createSegment",
            "mutation { createSegment(input: { name: \"mine\", definition: { channels: [WEB] } }) { id } }",
            json!({}),
        ),
        (
            "enrolCustomers",
            "mutation($s: ID!, $c: [ID!]) { enrolCustomers(sopId: $s, customerIds: $c) }",
            json!({ "s": t.sop, "c": [id] }),
        ),
        (
            "createTask",
            "mutation($c: ID!) { createTask(input: { customerId: $c, title: \"x\" }) { id } }",
            json!({ "c": id }),
        ),
        (
            "watchCustomer",
            "mutation($c: ID!) { watchCustomer(customerId: $c) }",
            json!({ "c": id }),
        ),
        (
            "unwatchCustomer",
            "mutation($c: ID!) { unwatchCustomer(customerId: $c) }",
            json!({ "c": id }),
        ),
        (
            "recordFollowUp",
            "mutation($c: ID!) { recordFollowUp(input: { customerId: $c, kind: \"call\" }) { id } }",
            json!({ "c": id }),
        ),
        (
            "handoverCustomers",
            "mutation($c: [ID!]!) { handoverCustomers(customerIds: $c, toUserId: \"agent-a\") { customers } }",
            json!({ "c": [id] }),
        ),
        (
            "setContactOptOut",
            "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"*\", optedOut: false) }",
            json!({ "c": id }),
        ),
        (
            "exportCustomerData",
            "query($c: ID!) { exportCustomerData(customerId: $c) }",
            json!({ "c": id }),
        ),
        (
            "erasures",
            "query($c: ID) { erasures(customerId: $c) }",
            json!({ "c": id }),
        ),
        (
            "recordConsent",
            "mutation($c: ID!) { recordConsent(customerId: $c, purpose: \"marketing\", granted: true, source: \"walk\") { id } }",
            json!({ "c": id }),
        ),
        (
            "eraseCustomer",
            "mutation($c: ID!) { eraseCustomer(customerId: $c, reason: \"walk\") { id } }",
            json!({ "c": id }),
        ),
    ]
}

fn week() -> String {
    (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339()
}

fn agent(config: &mut shoal_base::config::Config) {
    let alpha = config.tenants.get_mut("alpha").expect("alpha");
    alpha.api_keys.insert(
        "agent-key".into(),
        shoal_base::config::ApiKeyConfig {
            user: "agent-a".into(),
            sha256: Some(shoal_base::config::sha256_hex(AGENT)),
            env: None,
        },
    );
}

async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, agent).await
}

/// The admin's customer, with something linked to it of every kind the calls read.
async fn target(s: &TestServer) -> Target {
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "钱七", "phones": ["13912345678"], "emails": ["qian@example.com"],
                    "sourceChannel": "WEB", "attributes": { "income": 880000 } }),
        )
        .await;
    // a near twin, for a duplicate suggestion
    s.create_customer(
        ALPHA,
        json!({ "displayName": "钱七", "emails": ["qian@example.com"], "sourceChannel": "SHOP" }),
    )
    .await;
    let tag = s.manual_tag(ALPHA, "VIP").await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": [id] }),
    )
    .await;
    s.ok(ALPHA, "mutation($c: ID!) { createTask(input: { customerId: $c, title: \"回电 钱七 13912345678\" }) { id } }", json!({ "c": id })).await;
    s.ok(ALPHA, "mutation($c: ID!) { recordFollowUp(input: { customerId: $c, kind: \"call\", note: \"钱七 says 880000\" }) { id } }", json!({ "c": id })).await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"sms\", optedOut: true) }",
        json!({ "c": id }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation { saveTicketType(input: { key: \"after_sales\", name: \"售后\" }) { key } }",
        json!({}),
    )
    .await;
    let ticket = s.ok_id(ALPHA, "mutation($c: ID!) { openTicket(input: { type: \"after_sales\", subject: \"钱七 13912345678 退货\", customerId: $c }) { id } }", json!({ "c": id }), "openTicket").await;
    let segment = s.ok_id(ALPHA, "mutation { createSegment(input: { name: \"web\", definition: { channels: [WEB] } }) { id } }", json!({}), "createSegment").await;
    // the message is rendered into the outbox by the workers
    let sop = s.greeted(ALPHA, &[&id]).await;
    Target {
        id,
        segment,
        sop,
        tag,
        ticket,
    }
}

async fn no_resolver_reaches_a_customer_out_of_scope(s: &TestServer) {
    let schema = Schema::load(s).await;
    let t = target(s).await;
    let calls = calls(&t);
    let taught: BTreeSet<&str> = calls.iter().map(|(f, ..)| *f).collect();
    let mut derived = BTreeSet::new();
    for root in [schema.query.clone(), schema.mutation.clone()] {
        for field in schema.fields(&root) {
            if takes_a_customer(&schema, &field) {
                derived.insert(field["name"].as_str().unwrap().to_owned());
            }
        }
    }
    let untaught: Vec<&String> = derived
        .iter()
        .filter(|f| !taught.contains(f.as_str()))
        .collect();
    assert!(
        untaught.is_empty(),
        "these resolvers take a customer and the scope test does not know how to call them \
         (teach CALLS in tests/e2e/scope_walk.rs): {untaught:?}"
    );
    let mut failures = Vec::new();
    for (field, query, variables) in calls {
        let r = s.gql(AGENT, query, variables).await;
        let text = r.to_string();
        let leaked: Vec<&str> = SECRETS
            .iter()
            .copied()
            .filter(|x| text.contains(x))
            .collect();
        if !leaked.is_empty() {
            failures.push(format!("{field}: shows {leaked:?}: {r}"));
            continue;
        }
        match r["errors"].as_array() {
            Some(errors) => {
                for e in errors {
                    if !["NOT_FOUND", "FORBIDDEN"].contains(&code(e)) {
                        failures.push(format!("{field}: {} {}", code(e), e["message"]));
                    }
                }
            }
            None if query.starts_with("mutation") && !["createSegment"].contains(&field) => {
                failures.push(format!("{field}: the mutation went through: {r}"));
            }
            None => {
                if r["data"].to_string().contains(&t.id) {
                    failures.push(format!("{field}: the answer names the customer: {r}"));
                }
            }
        }
    }
    // nothing the agent tried changed the customer
    let after = s
        .ok(
            ALPHA,
            "query($c: ID!) { customer(id: $c) { displayName tags { tag { name } } } contactOptOuts(customerId: $c) }",
            json!({ "c": t.id }),
        )
        .await;
    assert_eq!(after["customer"]["displayName"], "钱七");
    assert_eq!(after["customer"]["tags"][0]["tag"]["name"], "VIP");
    assert_eq!(after["contactOptOuts"], json!(["sms"]));
    assert!(
        failures.is_empty(),
        "{} calls reached the customer:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

crate::on_both_backends_with!(start, no_resolver_reaches_a_customer_out_of_scope);
