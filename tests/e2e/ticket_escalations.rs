//! SLA escalations, on both backends: a policy's escalations are checked with their paths;
//! at risk and on breach they act — watchers added, priority raised, the ticket transferred
//! and offered in its new queue, the `ticket.sla_breached` change delivered by notification
//! rules to the assignee and the watchers — each once, with the reason in the history; a
//! clock met in time does not escalate; several deciders at once (the host's loop and three
//! more on the same database) escalate each ticket exactly once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ALPHA, TestServer, code, fields};
use crate::ticket_routing::{LI, READ, agents, id, open, queue, start};

const SET_POLICIES: &str = "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name escalations { when target } } }";

/// Waits (up to 10 s) for the host to have re-armed the tenant's timers after the last change
/// of policies or calendar, so that re-arming cannot interleave with [`age`].
async fn settled(s: &TestServer) {
    for _ in 0..100 {
        let (changed, armed): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT (SELECT MAX(updated_at) FROM ticket_settings WHERE tenant_id = 'alpha' AND key IN ('calendar', 'sla_policies')), \
             (SELECT value FROM ticket_settings WHERE tenant_id = 'alpha' AND key = 'timers_armed')",
        )
        .fetch_one(&s.db().pool)
        .await
        .unwrap();
        let armed = armed.and_then(|v| v.parse::<i64>().ok());
        if changed.is_none() || armed >= changed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the timers were not re-armed after the policies changed");
}

/// Moves ticket `id` (every ticket when `None`) `minutes` into the past: its opening, its
/// history and its unfired timers — as if that much time had gone by, in one transaction
/// once the host has re-armed the timers (a re-arming between the statements would move
/// the timers twice).
async fn age(s: &TestServer, id: Option<&str>, minutes: i64) {
    settled(s).await;
    let mut tx = s.db().begin_write().await.unwrap();
    let d = minutes * 60_000_000;
    let only = if id.is_some() {
        " AND ticket_id = $2"
    } else {
        ""
    };
    for sql in [
        format!(
            "UPDATE tickets SET created_at = created_at - $1, updated_at = updated_at - $1, \
             first_response_at = first_response_at - $1 WHERE tenant_id = 'alpha'{}",
            only.replace("ticket_id", "id")
        ),
        format!(
            "UPDATE ticket_entries SET created_at = created_at - $1 WHERE tenant_id = 'alpha'{only}"
        ),
        format!(
            "UPDATE ticket_timers SET due_at = due_at - $1 WHERE tenant_id = 'alpha' AND fired_at IS NULL{only}"
        ),
    ] {
        let mut q = sqlx::query(&sql).bind(d);
        if let Some(id) = id {
            q = q.bind(id.to_owned());
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// The ids of the tickets `tickets(filter: { sla: stage })` lists.
async fn sla_filter(s: &TestServer, stage: &str) -> Vec<String> {
    let q = format!("{{ tickets(filter: {{ sla: {stage} }}) {{ edges {{ node {{ id }} }} }} }}");
    s.ok(ALPHA, &q, json!({})).await["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ticket's `escalated` entries, waiting up to 10 s for there to be `n`.
async fn escalations(s: &TestServer, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let t = s.ok(ALPHA, READ, json!({ "id": id })).await;
        let found: Vec<Value> = t["ticket"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "escalated")
            .map(|e| e["detail"].clone())
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ticket {id} did not escalate {n} times");
}

async fn escalations_act_once_with_their_reasons(s: &TestServer) {
    queue(s, "escalated", "ROUND_ROBIN", &["li"]).await;
    // checked whole, each problem by its path
    let e = s
        .err(
            ALPHA,
            SET_POLICIES,
            json!({ "p": [{ "name": "x", "firstResponseMinutes": 60, "escalations": [
                { "when": "BREACHED", "transferTo": "nowhere", "addWatchers": ["ghost"], "raisePriorityTo": 7 },
                { "when": "AT_RISK", "target": "RESOLUTION", "notify": false }
            ] }] }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    assert_eq!(
        fields(&e),
        [
            "policies[0].escalations[0].raisePriorityTo",
            "policies[0].escalations[1].target",
            "policies[0].escalations[1].notify",
            "policies[0].escalations[0].transferTo",
            "policies[0].escalations[0].addWatchers[0]"
        ]
    );
    s.ok(
        ALPHA,
        SET_POLICIES,
        json!({ "p": [
            { "name": "P2 标准", "priorities": [2], "firstResponseMinutes": 60, "warnAtPercent": 50, "escalations": [
                { "when": "AT_RISK", "target": "FIRST_RESPONSE", "notify": false, "addWatchers": ["zhao"] },
                { "when": "BREACHED", "raisePriorityTo": 1, "transferTo": "escalated", "addWatchers": ["boss"] }
            ] },
            { "name": "P1 紧急", "priorities": [1], "firstResponseMinutes": 15 }
        ] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation { saveNotificationRule(input: { name: \"SLA 超时\", eventTypes: [\"ticket.sla_breached\"], recipients: { assignee: true, watchers: true }, channels: [INBOX] }) { id } }",
        json!({}),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "陈先生", "sourceChannel": "WEB" }),
        )
        .await;
    let late = id(&open(
        s,
        "安装预约一直没人联系",
        json!({ "priority": 2, "customerId": c }),
    )
    .await);
    let answered = id(&open(s, "发票", json!({ "priority": 2, "customerId": c })).await);
    s.ok(
        ALPHA,
        "mutation($id: ID!) { commentOnTicket(id: $id, body: \"已开具\") { id } }",
        json!({ "id": answered }),
    )
    .await;

    // 35 minutes on: past half of the first-response target
    age(s, None, 35).await;
    let first = escalations(s, &late, 1).await;
    assert_eq!(
        first[0],
        json!({ "target": "first_response", "stage": "at_risk", "policy": "P2 标准",
            "why": "P2 标准: first response at risk", "actions": ["watchers added: zhao"] })
    );
    let t = s
        .ok(
            ALPHA,
            "query($id: ID!) { ticket(id: $id) { priority watchers queue } }",
            json!({ "id": late }),
        )
        .await;
    assert_eq!(
        t["ticket"],
        json!({ "priority": 2, "watchers": ["zhao"], "queue": null })
    );
    // the SLA filters: at risk now (the answered one's clock is done)
    assert_eq!(sla_filter(s, "AT_RISK").await, [late.as_str()]);
    assert!(sla_filter(s, "BREACHED").await.is_empty());

    // 65 minutes on: breached
    age(s, None, 30).await;
    let both = escalations(s, &late, 2).await;
    assert_eq!(both[1]["stage"], "breached");
    assert_eq!(
        both[1]["actions"],
        json!([
            "priority P2 → P1",
            "watchers added: boss",
            "transferred to escalated",
            "ticket.sla_breached sent"
        ])
    );
    assert_eq!(sla_filter(s, "BREACHED").await, [late.as_str()]);
    assert!(sla_filter(s, "AT_RISK").await.is_empty());
    let t = s.ok(ALPHA, READ, json!({ "id": late })).await["ticket"].clone();
    assert_eq!(
        (&t["priority"], &t["queue"], &t["assignee"]),
        (&json!(1), &json!("escalated"), &json!("li"))
    );
    let raised = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "priority")
        .unwrap();
    assert_eq!(raised["author"], "sla");
    assert_eq!(raised["detail"]["why"], "P2 标准: first response breached");

    // the change reaches the watcher (boss) and the new assignee (li, scope own, who does
    // not own the customer) through the notification rule
    for key in [ALPHA, LI] {
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = s
                .ok(
                    key,
                    "{ notifications { edges { node { eventType } } } }",
                    json!({}),
                )
                .await;
            got = n["notifications"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["eventType"].as_str().unwrap().to_owned())
                .collect();
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, ["ticket.sla_breached"], "{key}");
    }

    // once each: later rounds add nothing; the ticket answered in time never escalated
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(escalations(s, &late, 0).await.len(), 2);
    assert!(escalations(s, &answered, 0).await.is_empty());
}

/// The host's loop and three more deciders on the same database fire the same due timers:
/// each ticket escalates exactly once.
async fn concurrent_deciders_escalate_each_ticket_once(s: &TestServer) {
    s.ok(
        ALPHA,
        SET_POLICIES,
        json!({ "p": [{ "name": "十分钟", "firstResponseMinutes": 10, "escalations": [{ "when": "BREACHED" }] }] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "林女士", "sourceChannel": "WEB" }),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(id(&open(
            s,
            &format!("并发升级 {i}"),
            json!({ "customerId": c }),
        )
        .await));
    }
    let mut config = crate::harness::base_config();
    agents(&mut config);
    let directory = shoal_crm::tenancy::Directory::from_config(&config, &s.db().vault);
    let tenant = directory.tenant("alpha").unwrap().clone();
    age(s, None, 11).await;
    let now = chrono::Utc::now();
    let supervision = shoal_base::supervise::Supervision::default();
    let fired = futures_util::future::join_all(
        (0..3).map(|_| shoal_tickets::timers::fire_due(s.db(), &tenant, now, &supervision)),
    )
    .await;
    for f in &fired {
        assert!(f.is_ok(), "{f:?}");
    }
    for t in &ids {
        escalations(s, t, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in &ids {
        assert_eq!(escalations(s, t, 0).await.len(), 1, "{t}");
    }
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM internal_events WHERE tenant_id = 'alpha' AND kind = 'ticket.sla_breached'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(events, 20);
}

/// The next-response target: after the first response, a customer's message owes a reply
/// within the policy's minutes; it escalates once per message that waits too long, a reply
/// stops it, and a later message starts a new wait.
async fn a_customer_message_owes_a_next_response(s: &TestServer) {
    s.ok(
        ALPHA,
        SET_POLICIES,
        json!({ "p": [
            { "name": "标准", "firstResponseMinutes": 60, "nextResponseMinutes": 30, "escalations": [
                { "when": "BREACHED", "target": "NEXT_RESPONSE", "notify": false, "raisePriorityTo": 1 }
            ] }
        ] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周女士", "sourceChannel": "WECOM" }),
        )
        .await;
    let t = id(&open(s, "退货进度", json!({ "priority": 3, "customerId": c })).await);
    let clocks = |t: String| async move {
        s.ok(
            ALPHA,
            "query($id: ID!) { ticket(id: $id) { priority sla { target state targetSeconds } } }",
            json!({ "id": t }),
        )
        .await["ticket"]
            .clone()
    };
    let say = "mutation($id: ID!, $b: String!) { addCustomerMessage(id: $id, body: $b, channel: \"wecom\") { kind author public } }";
    let reply = "mutation($id: ID!, $b: String!) { commentOnTicket(id: $id, body: $b) { id } }";
    // before the first response, a message is part of the first wait: no next-response clock
    let m = s
        .ok(ALPHA, say, json!({ "id": t, "b": "请问到哪了？" }))
        .await;
    assert_eq!(
        m["addCustomerMessage"],
        json!({ "kind": "customer_message", "author": "customer", "public": true })
    );
    assert_eq!(clocks(t.clone()).await["sla"].as_array().unwrap().len(), 1);
    s.ok(ALPHA, reply, json!({ "id": t, "b": "已寄出" })).await;
    age(s, Some(&t), 10).await;

    // the customer writes again: 30 minutes to answer
    s.ok(ALPHA, say, json!({ "id": t, "b": "还没收到" })).await;
    let now = clocks(t.clone()).await;
    assert_eq!(
        now["sla"][1],
        json!({ "target": "NEXT_RESPONSE", "state": "ON_TRACK", "targetSeconds": 1800 })
    );
    // a second message 20 minutes later, while a reply is owed, does not restart the wait:
    // 35 minutes after the first, it is late
    age(s, Some(&t), 20).await;
    s.ok(ALPHA, say, json!({ "id": t, "b": "？？" })).await;
    age(s, Some(&t), 15).await;
    let first = escalations(s, &t, 1).await;
    assert_eq!(first[0]["target"], "next_response");
    assert_eq!(first[0]["stage"], "breached");
    assert_eq!(sla_filter(s, "BREACHED").await, [t.as_str()]);
    let now = clocks(t.clone()).await;
    assert_eq!(now["priority"], 1);
    assert_eq!(now["sla"][1]["state"], "BREACHED");

    // answered (late): the clock is done and the filter lets the ticket go
    s.ok(ALPHA, reply, json!({ "id": t, "b": "抱歉，已催物流" }))
        .await;
    assert_eq!(clocks(t.clone()).await["sla"][1]["state"], "BREACHED");
    assert!(sla_filter(s, "BREACHED").await.is_empty());

    // a new message, a new wait, escalating afresh once it is late
    age(s, Some(&t), 5).await;
    s.ok(ALPHA, say, json!({ "id": t, "b": "收到了，但少一件" }))
        .await;
    assert_eq!(clocks(t.clone()).await["sla"][1]["state"], "ON_TRACK");
    age(s, Some(&t), 31).await;
    let both = escalations(s, &t, 2).await;
    assert_eq!(both[1]["target"], "next_response");
    assert_eq!(both.len(), 2, "once per wait");
}

crate::on_both_backends_with!(
    start,
    a_customer_message_owes_a_next_response,
    escalations_act_once_with_their_reasons,
    concurrent_deciders_escalate_each_ticket_once,
);
