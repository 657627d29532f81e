//! SOPs end to end: triggers enrol, steps run in order with their actions, waits for
//! events, branches, exits, quiet hours and caps, retries and parking, versions, templates,
//! the dry run, tasks, follow-ups and handovers, tenant isolation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    ALPHA, BETA, Backend, Install, TestServer, code, eventually_within, fields, install_plugin,
    plugin_wasm,
};

const CREATE_SOP: &str = "mutation($i: SopInput!) { createSop(input: $i) { id status version } }";
const ACTIVATE: &str = "mutation($id: ID!) { activateSop(id: $id) { status activatedAt } }";
const RECORD: &str =
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }";
const ENROLMENTS: &str = "query($sop: ID, $c: ID) { enrolments(sopId: $sop, customerId: $c, first: 50) { edges { node { \
    id status version stepIndex waitingFor exitReason lastError attempt nextRunAt finishedAt trigger history { stepId outcome detail attempt at } } } } }";

async fn sop(s: &TestServer, key: &str, name: &str, definition: Value) -> String {
    let data = s
        .ok(
            key,
            CREATE_SOP,
            json!({ "i": { "name": name, "definition": definition } }),
        )
        .await;
    let id = data["createSop"]["id"].as_str().unwrap().to_owned();
    s.ok(key, ACTIVATE, json!({ "id": id })).await;
    id
}

fn custom(customer: &str, name: &str) -> Value {
    json!({ "customerId": customer, "type": "CUSTOM", "name": name, "occurredAt": chrono::Utc::now().to_rfc3339() })
}

fn order(customer: &str) -> Value {
    json!({ "customerId": customer, "type": "ORDER", "occurredAt": chrono::Utc::now().to_rfc3339(), "amount": { "amount": "99", "currency": "CNY" } })
}

async fn enrolments(s: &TestServer, key: &str, sop: &str, customer: &str) -> Vec<Value> {
    let data = s
        .ok(key, ENROLMENTS, json!({ "sop": sop, "c": customer }))
        .await;
    data["enrolments"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits (up to 20 s) until the customer's enrolment in the SOP satisfies `done`.
async fn until(s: &TestServer, sop: &str, customer: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually_within(
        Duration::from_secs(20),
        Duration::from_millis(50),
        &format!("enrolment of {customer} in {sop}"),
        async || enrolments(s, ALPHA, sop, customer).await,
        |all: &Vec<Value>| all.first().is_some_and(&done),
    )
    .await
    .remove(0)
}

fn outcomes(e: &Value) -> Vec<String> {
    e["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h["stepId"].as_str().unwrap(),
                h["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

async fn messages(s: &TestServer, key: &str, customer: &str) -> Vec<Value> {
    let q = "query($c: ID) { outboxMessages(filter: {customerId: $c}, first: 50) { edges { node { channel purpose body status attempts idempotencyKey lastError } } } }";
    let data = s.ok(key, q, json!({ "c": customer })).await;
    data["outboxMessages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn an_event_enrols_and_steps_run_in_order_until_an_exit_event(s: &TestServer) {
    s.ok(
        ALPHA,
        "mutation { createTag(input: {name: \"course-pack-sent\"}) { id } }",
        json!({}),
    )
    .await;
    let id = sop(
        s,
        ALPHA,
        "Trial follow-up",
        json!({
            "triggers": [{ "event": { "event": { "type": "CUSTOM", "name": "trial_signup" } } }],
            "steps": [
                { "id": "pack", "action": { "sendMessage": { "channel": "log", "template": "{{customer.name}}，课程包已发送" } } },
                { "id": "pause", "action": { "waitSeconds": 2 } },
                { "id": "tag", "action": { "addTag": "course-pack-sent" } },
                { "id": "advisor", "action": { "createTask": { "title": "Call {{customer.name}}", "assignee": "owner", "dueInSeconds": 3600 } } },
                { "id": "ticket", "action": { "createTicket": { "title": "Check trial account", "priority": "high" } } }
            ],
            "exitOn": [{ "type": "ORDER" }]
        }),
    )
    .await;
    let zhang = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "张三", "ownerId": "agent-a" }),
        )
        .await;
    let li = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "李四" }),
        )
        .await;
    // an event of another type enrols nobody
    s.ok(ALPHA, RECORD, json!({ "input": [custom(&zhang, "page_open"), custom(&zhang, "trial_signup"), custom(&li, "trial_signup")] })).await;
    // 李四 orders during the wait: the sequence ends before the next step
    let waiting = until(s, &id, &li, |e| e["stepIndex"] == 1).await;
    assert_eq!(waiting["trigger"], "event custom:trial_signup");
    s.ok(ALPHA, RECORD, json!({ "input": [order(&li)] })).await;

    let done = until(s, &id, &zhang, |e| e["status"] == "completed").await;
    assert_eq!(
        outcomes(&done),
        [
            "pack:done",
            "pause:done",
            "tag:done",
            "advisor:done",
            "ticket:done",
            "end:completed"
        ]
    );
    // the last line is read from the enrolment (completed, finished then), not stored twice
    let end = done["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(end["at"], done["finishedAt"]);
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sop_step_runs WHERE tenant_id = 'alpha' AND outcome = 'completed'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    let exited = until(s, &id, &li, |e| e["status"] == "exited").await;
    assert_eq!(exited["exitReason"], "exit event: order");
    assert_eq!(outcomes(&exited), ["pack:done", "pause:exited"]);
    assert_eq!(
        enrolments(s, ALPHA, &id, &zhang).await.len(),
        1,
        "one enrolment per trigger"
    );

    // the message went through the outbox and was delivered to the log
    for _ in 0..100 {
        if messages(s, ALPHA, &zhang).await[0]["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = &messages(s, ALPHA, &zhang).await[0];
    assert_eq!(
        (
            m["channel"].as_str(),
            m["body"].as_str(),
            m["status"].as_str()
        ),
        (Some("log"), Some("张三，课程包已发送"), Some("sent"))
    );
    // the tag, the task for the owner and the ticket request exist; 李四 got none of them
    let tags = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { tags { tag { name } source } } }",
            json!({ "id": zhang }),
        )
        .await;
    assert_eq!(
        tags["customer"]["tags"][0]["tag"]["name"],
        "course-pack-sent"
    );
    assert_eq!(tags["customer"]["tags"][0]["source"], format!("sop:{id}"));
    let tasks = s.ok(ALPHA, "{ tasks(filter: {assignee: \"agent-a\"}) { edges { node { title status sopId customerId dueAt } } } }", json!({})).await;
    let task = &tasks["tasks"]["edges"][0]["node"];
    assert_eq!(
        (task["title"].as_str(), task["status"].as_str()),
        (Some("Call 张三"), Some("open"))
    );
    assert_eq!(task["sopId"], id.as_str());
    // the step opened a real ticket: the general type, P2 for `high`, from the SOP
    let tickets = s.ok(ALPHA, "query($c: ID!) { tickets(filter: {customerId: $c}, first: 5) { edges { node { type subject status priority channel createdBy } } } }", json!({ "c": zhang })).await;
    assert_eq!(
        tickets["tickets"]["edges"],
        json!([{ "node": { "type": "general", "subject": "Check trial account", "status": "new", "priority": 2,
            "channel": "sop", "createdBy": "sop" } }])
    );
    assert_eq!(
        messages(s, ALPHA, &li).await.len(),
        1,
        "李四 got the first message only"
    );
}

async fn waits_for_events_branch_and_time_out(s: &TestServer) {
    let id = sop(
        s,
        ALPHA,
        "Trial link",
        json!({
            "steps": [
                { "id": "opened", "action": { "waitForEvent": { "event": { "type": "CUSTOM", "name": "trial_opened" }, "timeoutSeconds": 2, "onTimeout": "nudge" } } },
                { "id": "ordered", "action": { "branch": { "condition": "count(order) >= 1", "then": "end" } } },
                { "id": "advisor", "action": { "createTask": { "title": "Trial opened but no order", "assignee": "role:advisor" } } },
                { "id": "done", "action": { "branch": { "condition": "stage in [lead, prospect, customer, loyal, dormant, churned]", "then": "end" } } },
                { "id": "nudge", "action": { "sendMessage": { "channel": "wecom", "template": "Your trial is waiting", "purpose": "SERVICE" } } }
            ]
        }),
    )
    .await;
    let opener = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Opener" }),
        )
        .await;
    let silent = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Silent" }),
        )
        .await;
    let n = s
        .ok(
            ALPHA,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": id, "c": [opener, silent] }),
        )
        .await;
    assert_eq!(n["enrolCustomers"], 2);
    let waiting = until(s, &id, &opener, |e| {
        e["waitingFor"] == "custom:trial_opened"
    })
    .await;
    assert_eq!(waiting["status"], "active");
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [custom(&opener, "trial_opened")] }),
    )
    .await;

    let opened = until(s, &id, &opener, |e| e["status"] == "completed").await;
    assert_eq!(
        outcomes(&opened),
        [
            "opened:done",
            "ordered:done",
            "advisor:done",
            "done:done",
            "end:completed"
        ]
    );
    let timed_out = until(s, &id, &silent, |e| e["status"] == "completed").await;
    assert_eq!(
        outcomes(&timed_out),
        ["opened:done", "nudge:done", "end:completed"]
    );
    assert!(
        timed_out["history"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("no custom:trial_opened within 2 s")
    );
    let tasks = s
        .ok(
            ALPHA,
            "{ tasks(filter: {assignee: \"role:advisor\"}) { edges { node { customerId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(tasks["tasks"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(
        tasks["tasks"]["edges"][0]["node"]["customerId"],
        opener.as_str()
    );
    // a customer already running the SOP is not enrolled twice
    let again = s
        .ok(
            ALPHA,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": id, "c": [opener] }),
        )
        .await;
    assert_eq!(
        again["enrolCustomers"], 1,
        "after completion the default policy enrols again"
    );
}

async fn bad_definitions_are_refused_with_every_problem(s: &TestServer) {
    let e = s
        .err(
            ALPHA,
            CREATE_SOP,
            json!({ "i": { "name": "", "definition": {
                "triggers": [{ "tagAdded": "no-such-tag" }],
                "steps": [
                    { "id": "a", "action": { "sendMessage": { "channel": "pigeon", "template": "{{customer.password}}" } } },
                    { "id": "a", "action": { "branch": { "condition": "count(order) >", "then": "a" } } },
                    { "id": "w", "action": { "waitUntilTime": "25:00" } }
                ]
            } } }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    let f = fields(&e);
    for want in [
        "input.name",
        "input.definition.triggers[0].tag",
        "input.definition.steps[0].channel",
        "input.definition.steps[0].template",
        "input.definition.steps[1].id",
        "input.definition.steps[1].condition",
        "input.definition.steps[1].then",
        "input.definition.steps[2].time",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} missing from {f:?}");
    }
    let none = s.ok(ALPHA, "{ sops { id } }", json!({})).await;
    assert_eq!(
        none["sops"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );
}

async fn versions_pause_and_isolation(s: &TestServer) {
    let def = |text: &str| json!({ "steps": [ { "id": "w", "action": { "waitSeconds": 3600 } }, { "id": "m", "action": { "sendMessage": { "channel": "log", "template": text } } } ] });
    let id = sop(s, ALPHA, "Renewal", def("v1")).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Renewer" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
        json!({ "id": id, "c": [c] }),
    )
    .await;
    let updated = s.ok(ALPHA, "mutation($id: ID!, $d: SopDefinitionInput) { updateSop(id: $id, input: {definition: $d}) { version definition } }", json!({ "id": id, "d": def("v2") })).await;
    assert_eq!(updated["updateSop"]["version"], 2);
    let e = until(s, &id, &c, |e| e["stepIndex"] == 0).await;
    assert_eq!(e["version"], 1, "a running enrolment keeps its version");
    // pausing the SOP, pausing / cancelling an enrolment
    let paused = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { pauseSop(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(paused["pauseSop"]["status"], "paused");
    let enrolment = e["id"].as_str().unwrap();
    let cancelled = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { cancelEnrolment(id: $id) { status exitReason } }",
            json!({ "id": enrolment }),
        )
        .await;
    assert_eq!(cancelled["cancelEnrolment"]["status"], "cancelled");
    let e = s
        .err(
            ALPHA,
            "mutation($id: ID!) { resumeEnrolment(id: $id) { status } }",
            json!({ "id": enrolment }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    // another tenant sees none of it
    for q in [
        "query($id: ID!) { sop(id: $id) { id } }",
        "query($id: ID!) { enrolment(id: $id) { id } }",
    ] {
        let id = if q.contains("sop(") {
            id.as_str()
        } else {
            enrolment
        };
        assert_eq!(
            code(&s.err(BETA, q, json!({ "id": id })).await),
            "NOT_FOUND"
        );
    }
    let beta = s
        .ok(
            BETA,
            "{ sops { id } enrolments { edges { node { id } } } tasks { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(beta["sops"].as_array().unwrap().len(), 0);
    assert_eq!(beta["enrolments"]["edges"].as_array().unwrap().len(), 0);
    let e = s
        .err(
            BETA,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": id, "c": [c] }),
        )
        .await;
    assert_eq!(code(&e), "NOT_FOUND");
}

async fn follow_ups_handover_and_neglected_customers(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Followed", "ownerId": "agent-a" }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Neglected", "ownerId": "agent-a" }),
        )
        .await;
    // both were created four days ago
    let four_days = (chrono::Utc::now() - chrono::Duration::days(4)).timestamp_micros();
    sqlx::query("UPDATE customers SET created_at = $1 WHERE tenant_id = 'alpha'")
        .bind(four_days)
        .execute(&s.db().pool)
        .await
        .unwrap();
    s.ok(ALPHA, "mutation($c: ID!) { recordFollowUp(input: {customerId: $c, kind: \"call\", note: \"interested in the spring course\"}) { id kind userId } }", json!({ "c": a })).await;
    let task = s.ok(ALPHA, "mutation($c: ID!) { createTask(input: {customerId: $c, title: \"Send the brochure\", assignee: \"agent-a\"}) { id } }", json!({ "c": a })).await;
    assert!(task["createTask"]["id"].is_string());
    let neglected = s
        .ok(
            ALPHA,
            "{ customers(filter: {noFollowUpForHours: 72}) { totalCount edges { node { id } } } byDefault: customers(filter: {neglected: true}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(neglected["customers"]["totalCount"], 1);
    assert_eq!(
        neglected["byDefault"]["totalCount"], 1,
        "72 h unless configured"
    );
    assert_eq!(neglected["customers"]["edges"][0]["node"]["id"], b.as_str());
    let bad = s.err(ALPHA, "mutation($c: ID!) { recordFollowUp(input: {customerId: $c, kind: \"telepathy\"}) { id } }", json!({ "c": a })).await;
    assert_eq!(fields(&bad), ["input.kind"]);

    let done = s.ok(ALPHA, "mutation($c: [ID!]!) { handoverCustomers(customerIds: $c, toUserId: \"boss\", note: \"agent-a left\") { customers tasksMoved } }", json!({ "c": [a, b] })).await;
    assert_eq!(
        done["handoverCustomers"],
        json!({ "customers": 2, "tasksMoved": 1 })
    );
    let after = s.ok(ALPHA, "query($c: ID!) { customer(id: $c) { ownerId } followUps(customerId: $c) { edges { node { kind userId note } } } tasks(filter: {customerId: $c}) { edges { node { id assignee } } } }", json!({ "c": a })).await;
    assert_eq!(after["customer"]["ownerId"], "boss");
    let kinds: Vec<&str> = after["followUps"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["handover", "call"],
        "the history stays, newest first"
    );
    assert_eq!(after["tasks"]["edges"][0]["node"]["assignee"], "boss");
    let e = s.err(ALPHA, "mutation($c: [ID!]!) { handoverCustomers(customerIds: $c, toUserId: \"ghost\") { customers } }", json!({ "c": [a] })).await;
    assert_eq!(fields(&e), ["toUserId"]);
    let e = s.err(ALPHA, "mutation($c: [ID!]!) { handoverCustomers(customerIds: $c, toUserId: \"agent-a\") { customers } }", json!({ "c": [a, "nope"] })).await;
    assert_eq!(code(&e), "NOT_FOUND", "unknown reads like out of scope");
    let owner = s
        .ok(
            ALPHA,
            "query($c: ID!) { customer(id: $c) { ownerId } }",
            json!({ "c": a }),
        )
        .await;
    assert_eq!(
        owner["customer"]["ownerId"], "boss",
        "a refused handover changes nothing"
    );
}

async fn the_dry_run_shows_the_timeline_without_side_effects(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "王五" }),
        )
        .await;
    // 2026-12-01 12:00 in Shanghai
    let from = "2026-12-01T04:00:00Z";
    let data = s
        .ok(
            ALPHA,
            "query($d: SopDefinitionInput, $c: [ID!], $from: DateTime, $to: DateTime!) { simulateSop(definition: $d, customerIds: $c, from: $from, to: $to) { customerId at stepId outcome detail } }",
            json!({
                "d": { "steps": [
                    { "id": "day1", "action": { "waitSeconds": 86400 } },
                    { "id": "pack", "action": { "sendMessage": { "channel": "sms", "template": "{{customer.name}}: your course pack" } } },
                    { "id": "evening", "action": { "waitSeconds": 32400 } },
                    { "id": "remind", "action": { "sendMessage": { "channel": "sms", "template": "trial tomorrow" } } },
                    { "id": "morning", "action": { "waitUntilTime": "10:30" } },
                    { "id": "call", "action": { "createTask": { "title": "call", "assignee": "owner" } } },
                    { "id": "day30", "action": { "waitSeconds": 2592000 } },
                    { "id": "coupon", "action": { "sendMessage": { "channel": "sms", "template": "coupon" } } }
                ] },
                "c": [c],
                "from": from,
                "to": "2026-12-10T00:00:00Z"
            }),
        )
        .await;
    let got: Vec<(String, String, String)> = data["simulateSop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["at"].as_str().unwrap().to_owned(),
                p["stepId"].as_str().unwrap().to_owned(),
                p["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("2026-12-02T04:00:00+00:00", "day1", "done"),
        ("2026-12-02T04:00:00+00:00", "pack", "done"),
        // 21:00 in Shanghai is quiet (21:00–09:00): deferred to 09:00
        ("2026-12-02T13:00:00+00:00", "evening", "done"),
        ("2026-12-02T13:00:00+00:00", "remind", "deferred"),
        // at 09:00 the day's marketing message (pack, 12:00 yesterday) still counts: noon
        ("2026-12-03T01:00:00+00:00", "remind", "deferred"),
        ("2026-12-03T04:00:00+00:00", "remind", "done"),
        // the next 10:30 after 12:00 is tomorrow's
        ("2026-12-04T02:30:00+00:00", "morning", "done"),
        ("2026-12-04T02:30:00+00:00", "call", "done"),
        ("2027-01-03T02:30:00+00:00", "day30", "pending"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(
        data["simulateSop"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("王五: your course pack")
    );
    assert_eq!(messages(s, ALPHA, &c).await.len(), 0, "nothing was sent");
    let e = s.err(ALPHA, "query($c: [ID!]) { simulateSop(customerIds: $c, to: \"2020-01-01T00:00:00Z\") { at } }", json!({ "c": [c] })).await;
    assert_eq!(fields(&e), ["sopId"]);
}

async fn tags_segments_dates_and_neglect_enrol(s: &TestServer) {
    let vip = s
        .ok(
            ALPHA,
            "mutation { createTag(input: {name: \"vip\"}) { id } }",
            json!({}),
        )
        .await["createTag"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seg = s
        .ok(ALPHA, "mutation { createSegment(input: {name: \"上海\", definition: {attributes: {city: \"上海\"}}}) { id } }", json!({}))
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let step = json!([{ "id": "hi", "action": { "sendMessage": { "channel": "log", "template": "hi" } } }]);
    let on_tag = sop(
        s,
        ALPHA,
        "On VIP",
        json!({ "triggers": [{ "tagAdded": "vip" }], "steps": step }),
    )
    .await;
    let on_segment = sop(
        s,
        ALPHA,
        "On Shanghai",
        json!({ "triggers": [{ "segmentEntered": seg }], "steps": step }),
    )
    .await;
    let birthday = sop(s, ALPHA, "Birthday", json!({ "triggers": [{ "date": { "attribute": "birthday", "annual": true } }], "steps": step })).await;
    let neglect = sop(
        s,
        ALPHA,
        "Neglect",
        json!({ "triggers": [{ "noFollowUpHours": 72 }], "steps": step }),
    )
    .await;

    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("1990-%m-%d")
        .to_string();
    let a = s.create_customer(ALPHA, json!({ "sourceChannel": "WEB", "displayName": "VIP", "attributes": { "city": "上海" } })).await;
    let b = s.create_customer(ALPHA, json!({ "sourceChannel": "WEB", "displayName": "Birthday", "attributes": { "birthday": today } })).await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": vip, "c": [a] }),
    )
    .await;
    // memberships refresh when the segment is saved (or recomputed)
    s.ok(ALPHA, "mutation($id: ID!) { updateSegment(id: $id, input: {name: \"上海\", definition: {attributes: {city: \"上海\"}}}) { id } }", json!({ "id": seg })).await;
    let e = until(s, &on_tag, &a, |e| e["status"] == "completed").await;
    assert_eq!(e["trigger"], "tag \"vip\" added");
    let e = until(s, &on_segment, &a, |e| e["status"] == "completed").await;
    assert_eq!(e["trigger"], format!("entered segment {seg}"));
    let e = until(s, &birthday, &b, |e| e["status"] == "completed").await;
    assert_eq!(e["trigger"], "date attribute birthday (yearly) +0 days");
    assert!(
        enrolments(s, ALPHA, &birthday, &a).await.is_empty(),
        "no birthday, no enrolment"
    );
    // both customers were created four days ago; `b` had a follow-up yesterday
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    s.ok(ALPHA, "mutation($c: ID!, $at: DateTime) { recordFollowUp(input: {customerId: $c, kind: \"chat\", at: $at}) { id } }", json!({ "c": b, "at": yesterday })).await;
    let four_days = (chrono::Utc::now() - chrono::Duration::days(4)).timestamp_micros();
    sqlx::query("UPDATE customers SET created_at = $1 WHERE tenant_id = 'alpha'")
        .bind(four_days)
        .execute(&s.db().pool)
        .await
        .unwrap();
    let e = until(s, &neglect, &a, |e| e["status"] == "completed").await;
    assert_eq!(e["trigger"], "no follow-up for 72 h");
    assert!(
        enrolments(s, ALPHA, &neglect, &b).await.is_empty(),
        "followed up, not neglected"
    );
}

/// The dispatcher evaluates the customers of recorded events before it runs their triggers,
/// in one transaction: a trigger's condition sees the tag the very event earned, and a
/// customer the event did not qualify is not enrolled.
async fn a_trigger_condition_sees_the_tag_its_event_earned(s: &TestServer) {
    s.ok(
        ALPHA,
        "mutation($i: TagInputValue!) { createTag(input: $i) { id } }",
        json!({ "i": { "name": "试听两次", "rule": "count(\"trial_class\") >= 2" } }),
    )
    .await;
    let id = sop(
        s,
        ALPHA,
        "Second trial class",
        json!({
            "triggers": [{ "event": {
                "event": { "type": "CUSTOM", "name": "trial_class" },
                "condition": "has_tag(\"试听两次\")"
            } }],
            "steps": [{ "id": "call", "action": { "sendMessage": { "channel": "log", "template": "{{customer.name}}，试听两次了" } } }]
        }),
    )
    .await;
    let twice = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "王芳" }),
        )
        .await;
    let once = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "赵磊" }),
        )
        .await;
    // both events of 王芳 and the one of 赵磊 in one request: the tag comes with the second
    s.ok(
        ALPHA,
        RECORD,
        json!({ "input": [custom(&twice, "trial_class"), custom(&twice, "trial_class"), custom(&once, "trial_class")] }),
    )
    .await;
    let done = until(s, &id, &twice, |e| e["status"] == "completed").await;
    assert_eq!(done["trigger"], "event custom:trial_class");
    assert!(
        enrolments(s, ALPHA, &id, &once).await.is_empty(),
        "one trial class does not earn the tag, so it does not enrol"
    );
}

crate::on_both_backends!(
    tags_segments_dates_and_neglect_enrol,
    a_trigger_condition_sees_the_tag_its_event_earned,
    an_event_enrols_and_steps_run_in_order_until_an_exit_event,
    waits_for_events_branch_and_time_out,
    bad_definitions_are_refused_with_every_problem,
    versions_pause_and_isolation,
    follow_ups_handover_and_neglected_customers,
);

/// Quiet hours 21:00–09:00 in Shanghai for alpha, one marketing message per 24 h.
fn respectful(config: &mut shoal_base::config::Config) {
    let alpha = config.tenants.get_mut("alpha").unwrap();
    alpha.contact = toml::from_str(
        "quiet_hours = { start = \"21:00\", end = \"09:00\" }\nhuman_cooldown_hours = 48\ncaps = [{ channel = \"*\", max = 1, window_hours = 24 }]",
    )
    .unwrap();
}

#[tokio::test]
async fn dry_run_applies_quiet_hours() {
    let s = TestServer::start_with(Backend::Sqlite, respectful)
        .await
        .unwrap();
    the_dry_run_shows_the_timeline_without_side_effects(&s).await;
    s.stop().await;
}

/// Quiet hours that cover the present moment defer a due message to their end; caps and
/// human follow-ups hold messages back (deferred or dropped by policy); opt-outs drop.
#[tokio::test]
async fn respectful_contact_defers_and_drops_with_reasons() {
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let start = (now - chrono::Duration::hours(1))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::hours(2))
        .format("%H:%M")
        .to_string();
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.tenants.get_mut("alpha").unwrap().contact = toml::from_str(&format!(
            "quiet_hours = {{ start = \"{start}\", end = \"{end}\" }}"
        ))
        .unwrap();
        c.tenants.get_mut("beta").unwrap().contact = toml::from_str(
            "human_cooldown_hours = 48\ncaps = [{ channel = \"*\", max = 1, window_hours = 24 }]",
        )
        .unwrap();
    })
    .await
    .unwrap();
    let msg = |id: &str| json!({ "id": id, "action": { "sendMessage": { "channel": "sms", "template": id } } });
    let id = sop(&s, ALPHA, "Quiet", json!({ "steps": [msg("hello")] })).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Night owl" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
        json!({ "id": id, "c": [c] }),
    )
    .await;
    until(&s, &id, &c, |e| {
        !e["history"].as_array().unwrap().is_empty()
    })
    .await;
    // Read again: one GraphQL response reads the enrolment and then its history in two
    // statements, so the answer that first showed the history may hold the row as it was
    // just before the runner's commit (its enrolment time as nextRunAt) — CI saw that
    // three times. Once the history is seen the commit is done, and a new read is whole.
    let e = enrolments(&s, ALPHA, &id, &c).await.remove(0);
    assert_eq!(outcomes(&e), ["hello:deferred"]);
    assert!(
        e["history"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("quiet hours {start}–{end}"))
    );
    let next: chrono::DateTime<chrono::Utc> = e["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%H:%M")
            .to_string(),
        end,
        "{e:#}"
    );
    assert_eq!(e["status"], "active");

    // beta: caps (defer or drop by the SOP's policy), human follow-ups, opt-outs
    let capped = |policy: &str| json!({ "steps": [msg("first"), msg("second")], "onCap": policy });
    let defer = sop(&s, BETA, "Defer", capped("DEFER")).await;
    let drop = sop(&s, BETA, "Drop", capped("DROP")).await;
    let human = sop(&s, BETA, "Human", json!({ "steps": [msg("auto")] })).await;
    let out = sop(&s, BETA, "Out", json!({ "steps": [msg("never")] })).await;
    let mut who = Vec::new();
    for name in ["a", "b", "c", "d"] {
        who.push(
            s.create_customer(BETA, json!({ "sourceChannel": "WEB", "displayName": name }))
                .await,
        );
    }
    s.ok(
        BETA,
        "mutation($c: ID!) { recordFollowUp(input: {customerId: $c, kind: \"visit\"}) { id } }",
        json!({ "c": who[2] }),
    )
    .await;
    let opted = s.ok(BETA, "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"sms\", optedOut: true) }", json!({ "c": who[3] })).await;
    assert_eq!(opted["setContactOptOut"], json!(["sms"]));
    for (sop_id, c) in [
        (&defer, &who[0]),
        (&drop, &who[1]),
        (&human, &who[2]),
        (&out, &who[3]),
    ] {
        s.ok(
            BETA,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": sop_id, "c": [c] }),
        )
        .await;
    }
    let mut seen = Vec::new();
    for (sop_id, c) in [
        (&defer, &who[0]),
        (&drop, &who[1]),
        (&human, &who[2]),
        (&out, &who[3]),
    ] {
        let mut got = None;
        for _ in 0..200 {
            let e = enrolments(&s, BETA, sop_id, c).await.remove(0);
            let last = e["history"]
                .as_array()
                .unwrap()
                .last()
                .map(|h| h["outcome"].clone());
            if e["status"] == "completed" || last == Some(json!("deferred")) {
                got = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let e = got.expect("the enrolment ran");
        let steps: Vec<&Value> = e["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["stepId"] != "end")
            .collect();
        seen.push((
            outcomes(&e),
            steps.last().unwrap()["detail"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(seen[0].0, ["first:done", "second:deferred"]);
    assert!(
        seen[0]
            .1
            .starts_with("frequency cap: at most 1 marketing message(s) on * in 24 h"),
        "{}",
        seen[0].1
    );
    assert_eq!(seen[1].0, ["first:done", "second:dropped", "end:completed"]);
    assert_eq!(seen[2].0, ["auto:deferred"]);
    assert!(
        seen[2].1.contains("no automated message for 48 h"),
        "{}",
        seen[2].1
    );
    assert_eq!(seen[3].0, ["never:dropped", "end:completed"]);
    assert_eq!(seen[3].1, "the customer opted out of sms messages");
    s.stop().await;
}

/// A staff-facing step on the `robot` channel (a DingTalk group robot) posts the documented
/// body, signed as DingTalk documents (checked with Python's hmac), with the customer's
/// phone masked; the customer's quiet hours hold the next (customer-facing) step but not
/// the robot's, and no campaign may use the robot.
#[tokio::test]
async fn a_group_robot_tells_staff_at_once_with_contact_fields_masked() {
    let (url, robot) =
        crate::notify::Receiver::start(vec![(200, None, r#"{"errcode":0,"errmsg":"ok"}"#, 0)])
            .await;
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let (start, end) = (
        (now - chrono::Duration::hours(1))
            .format("%H:%M")
            .to_string(),
        (now + chrono::Duration::hours(2))
            .format("%H:%M")
            .to_string(),
    );
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        let alpha = c.tenants.get_mut("alpha").unwrap();
        alpha.contact = toml::from_str(&format!(
            "quiet_hours = {{ start = \"{start}\", end = \"{end}\" }}\ncaps = [{{ channel = \"*\", max = 1, window_hours = 24 }}]"
        ))
        .unwrap();
        alpha.channels.robot = Some(shoal_base::config::RobotConfig {
            kind: "dingtalk".into(),
            url: format!("{url}/robot/send?access_token=store-42"),
            secret_env: Some("SHOAL_TEST_ROBOT_SECRET".into()),
        });
    })
    .await
    .unwrap();
    let id = sop(
        &s,
        ALPHA,
        "退款提醒",
        json!({ "steps": [
            { "id": "tell", "action": { "sendMessage": { "channel": "robot", "purpose": "SERVICE",
                "template": "{{customer.name}}（{{customer.phone}}）两次询问退款，请回电" } } },
            { "id": "sorry", "action": { "sendMessage": { "channel": "sms", "template": "抱歉久等" } } }
        ] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "王女士", "phones": ["+8613812345678"] }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
        json!({ "id": id, "c": [c] }),
    )
    .await;
    let e = until(&s, &id, &c, |e| e["history"].as_array().unwrap().len() >= 2).await;
    assert_eq!(outcomes(&e), ["tell:done", "sorry:deferred"], "{e}");
    let got = robot.until(|g| !g.is_empty()).await;
    let (path, query) = got[0].uri.split_once('?').unwrap();
    assert_eq!(path, "/robot/send");
    let query: std::collections::BTreeMap<&str, &str> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    assert_eq!(query["access_token"], "store-42");
    let script = "import base64,hmac,hashlib,sys,urllib.parse\n\
        t=sys.argv[1];s='SECe2e-dingtalk-robot'\n\
        print(urllib.parse.quote_plus(base64.b64encode(hmac.new(s.encode(),(t+'\\n'+s).encode(),hashlib.sha256).digest())))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, query["timestamp"]])
        .output()
        .unwrap();
    assert_eq!(
        query["sign"],
        String::from_utf8(out.stdout).unwrap().trim(),
        "signed as DingTalk documents"
    );
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({ "msgtype": "text", "text": { "content": "王**（138****5678）两次询问退款，请回电" } })
    );
    // taken: the outbox says sent, and its stored body is masked too
    let mut sent = Value::Null;
    for _ in 0..100 {
        sent = messages(&s, ALPHA, &c)
            .await
            .into_iter()
            .find(|m| m["channel"] == "robot")
            .unwrap_or_default();
        if sent["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent["status"], "sent", "{sent}");
    assert!(!sent.to_string().contains("12345678"), "{sent}");
    // staff-facing: a campaign cannot use it
    let refused = s
        .err(
            ALPHA,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({ "i": { "name": "群机器人群发", "channel": "robot", "audience": { "customers": [c] },
                "variants": [{ "key": "a", "weight": 100, "template": "你好" }] } }),
        )
        .await;
    assert_eq!(crate::harness::fields(&refused), ["channel"], "{refused}");
    assert!(
        refused.to_string().contains("reaches the tenant's staff"),
        "{refused}"
    );
    s.stop().await;
}

/// A failing step is retried with backoff, then parks with its error visible; resuming
/// retries it.
#[tokio::test]
async fn failing_steps_retry_then_park_and_resume() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.sop.max_attempts = 2;
        c.sop.retry_base_seconds = 1;
    })
    .await
    .unwrap();
    let tag = s
        .ok(
            ALPHA,
            "mutation { createTag(input: {name: \"vip\"}) { id } }",
            json!({}),
        )
        .await;
    let tag = tag["createTag"]["id"].as_str().unwrap().to_owned();
    let id = sop(
        &s,
        ALPHA,
        "Tagger",
        json!({ "steps": [ { "id": "tag", "action": { "addTag": "vip" } } ] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!) { deleteTag(id: $id) }",
        json!({ "id": tag }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Unlucky" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
        json!({ "id": id, "c": [c] }),
    )
    .await;
    let parked = until(&s, &id, &c, |e| e["status"] == "parked").await;
    assert_eq!(parked["attempt"], 2);
    assert!(
        parked["lastError"]
            .as_str()
            .unwrap()
            .contains("no tag named \"vip\""),
        "{parked}"
    );
    assert_eq!(outcomes(&parked), ["tag:failed", "tag:failed"]);
    assert!(
        parked["history"][0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(attempt 1; retry in 1 s)")
    );
    assert!(
        parked["history"][1]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(attempt 2; parked)")
    );

    s.ok(
        ALPHA,
        "mutation { createTag(input: {name: \"vip\"}) { id } }",
        json!({}),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!) { resumeEnrolment(id: $id) { status } }",
        json!({ "id": parked["id"] }),
    )
    .await;
    let done = until(&s, &id, &c, |e| e["status"] == "completed").await;
    assert_eq!(
        outcomes(&done),
        ["tag:failed", "tag:failed", "tag:done", "end:completed"]
    );
    s.stop().await;
}

/// A module's SOP template becomes a draft SOP the tenant owns; its events enrol.
#[tokio::test]
async fn module_templates_become_sops() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    install_plugin(
        &s.plugins_dir,
        "sample",
        &plugin_wasm("sample"),
        &Install::sample(),
    );
    s.reload().await;
    s.ok(
        ALPHA,
        "mutation { createTag(input: {name: \"new\"}) { id } }",
        json!({}),
    )
    .await;
    let e = s
        .err(
            ALPHA,
            "mutation { instantiateSopTemplate(module: \"sample\", template: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&e), ["template"]);
    let made = s.ok(ALPHA, "mutation { instantiateSopTemplate(module: \"sample\", template: \"welcome\") { id name status template definition } }", json!({})).await;
    let made = &made["instantiateSopTemplate"];
    assert_eq!(
        (made["status"].as_str(), made["template"].as_str()),
        (Some("draft"), Some("sample/welcome"))
    );
    let steps: Vec<&str> = made["definition"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["tag", "call.wait", "call"]);
    assert_eq!(
        made["definition"]["exitOn"],
        json!([{ "eventType": "order" }])
    );
    let id = made["id"].as_str().unwrap().to_owned();
    s.ok(ALPHA, ACTIVATE, json!({ "id": id })).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "sourceChannel": "WEB", "displayName": "Newcomer" }),
        )
        .await;
    s.ok(ALPHA, RECORD, json!({ "input": [custom(&c, "signup")] }))
        .await;
    let e = until(&s, &id, &c, |e| e["stepIndex"] == 1).await;
    assert_eq!(outcomes(&e), ["tag:done"]);
    // beta does not enable the module
    let e = s
        .err(
            BETA,
            "mutation { instantiateSopTemplate(module: \"sample\", template: \"welcome\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&e), ["module"]);
    s.stop().await;
}
