//! Ticket routing, on both backends: rules decide the queue (a decision table: keywords,
//! customer tags, RFM cells, types and channels, first match wins); queues assign by round
//! robin, least load or skill; capacity fills and the waiting queue drains most urgent then
//! oldest first; away, off and off-shift agents get nothing new; a reopened ticket of an
//! agent who is gone is routed again; agents see their own and their queues' waiting
//! tickets; decisions taken concurrently never exceed capacity. Every decision says why.

use serde_json::{Value, json};

use crate::harness::{ALPHA, Backend, TestServer, code, fields};
use shoal_base::config::{self, Config};

pub(crate) const LI: &str = "alpha-li-key-000000000000001";
const AGENT_A: &str = "alpha-agent-a-key-0000000001";

pub(crate) const SAVE_QUEUE: &str = "mutation($i: TicketQueueInput!) { saveTicketQueue(input: $i) { key strategy members waiting } }";
pub(crate) const SET_AGENT: &str = "mutation($i: TicketAgentInput!) { setTicketAgent(input: $i) { userId availability capacity openTickets unavailableBecause } }";
const SET_RULES: &str =
    "mutation($r: [RoutingRuleInput!]!) { setRoutingRules(rules: $r) { name queue } }";
const OPEN: &str = "mutation($i: TicketInput!) { openTicket(input: $i) { id queue assignee priority requiredSkills { name level } } }";
pub(crate) const READ: &str = "query($id: ID!) { ticket(id: $id) { id queue assignee priority status entries { kind author detail } } }";
pub(crate) const MOVE: &str =
    "mutation($id: ID!, $to: String!) { moveTicket(id: $id, to: $to) { status assignee } }";

/// Agents 李 (`li`, with a key), 王 (`wang`) and 赵 (`zhao`); `agent-a` gets a key too.
pub(crate) fn agents(config: &mut Config) {
    let alpha = config.tenants.get_mut("alpha").expect("alpha");
    for user in ["li", "wang", "zhao"] {
        alpha
            .users
            .insert(user.into(), config::UserConfig::new(user, "agent"));
    }
    for (user, key) in [("li", LI), ("agent-a", AGENT_A)] {
        crate::harness::add_key(config, user, key);
    }
}

pub(crate) async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, agents).await
}

pub(crate) async fn queue(s: &TestServer, key: &str, strategy: &str, members: &[&str]) {
    s.ok(
        ALPHA,
        SAVE_QUEUE,
        json!({ "i": { "key": key, "name": key, "strategy": strategy, "members": members } }),
    )
    .await;
}

pub(crate) async fn open(s: &TestServer, subject: &str, more: Value) -> Value {
    let mut i = json!({ "type": "general", "subject": subject });
    if let Value::Object(m) = more {
        i.as_object_mut().unwrap().extend(m);
    }
    s.ok(ALPHA, OPEN, json!({ "i": i })).await["openTicket"].clone()
}

pub(crate) async fn read(s: &TestServer, id: &str) -> Value {
    s.ok(ALPHA, READ, json!({ "id": id })).await["ticket"].clone()
}

/// The detail of the ticket's last history entry of `kind`.
pub(crate) async fn last(s: &TestServer, id: &str, kind: &str) -> Value {
    read(s, id).await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} entry"))["detail"]
        .clone()
}

pub(crate) fn id(t: &Value) -> String {
    t["id"].as_str().unwrap().to_owned()
}

async fn rules_decide_the_queue(s: &TestServer) {
    queue(s, "complaints", "LEAST_LOADED", &["zhao"]).await;
    queue(s, "vip", "SKILLS", &["wang", "zhao"]).await;
    queue(s, "after_sales", "ROUND_ROBIN", &["li", "wang"]).await;
    s.ok(ALPHA, "mutation($i: TicketTypeInput!) { saveTicketType(input: $i) { key } }",
        json!({ "i": { "key": "returns", "name": "退货", "fields": [{ "key": "reason", "label": "原因", "kind": "CHOICE", "choices": ["质量", "尺码"] }] } })).await;
    let vip_tag = s
        .ok(
            ALPHA,
            "mutation($i: TagInputValue!) { createTag(input: $i) { id } }",
            json!({ "i": { "name": "VIP" } }),
        )
        .await["createTag"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let vip = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "钱女士", "sourceChannel": "WEB" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": vip_tag, "c": [vip] }),
    )
    .await;
    let champion = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "孙先生", "sourceChannel": "WEB" }),
        )
        .await;
    sqlx::query(
        "INSERT INTO customer_rfm (tenant_id, customer_id, recency_days, frequency, monetary_units, r, f, m, cell, computed_at) \
         VALUES ('alpha', $1, 3, 12, 9000000, 5, 5, 5, 'champions', 0)",
    )
    .bind(&champion)
    .execute(&s.db().pool)
    .await
    .unwrap();
    let plain = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周先生", "sourceChannel": "WEB" }),
        )
        .await;

    // rules are checked whole, each problem by its path
    let e = s
        .err(
            ALPHA,
            SET_RULES,
            json!({ "r": [
                { "name": "x", "queue": "nowhere" },
                { "name": "y", "queue": "vip", "customer": "has_tag(\"VIPP\")", "rfmCells": ["royalty"],
                  "priority": 0, "skills": [{ "name": "vip_service", "level": 9 }] }
            ] }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    assert_eq!(
        fields(&e),
        [
            "rules[0].queue",
            "rules[1].priority",
            "rules[1].rfmCells[0]",
            "rules[1].customer",
            "rules[1].skills.vip_service"
        ]
    );

    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [
            { "name": "投诉升级", "keywords": ["着急", "投诉"], "queue": "complaints", "priority": 1 },
            { "name": "VIP 专席", "customer": "has_tag(\"VIP\")", "queue": "vip",
              "skills": [{ "name": "vip_service", "level": 2 }] },
            { "name": "高价值", "rfmCells": ["champions", "loyal"], "queue": "vip" },
            { "name": "企微退货", "types": ["returns"], "channels": ["wecom"], "fields": { "reason": "质量" },
              "queue": "after_sales" }
        ] }),
    )
    .await;

    // the decision table: (subject, input, queue, priority, the reason recorded)
    let cases: Vec<(&str, Value, Option<&str>, i64, &str)> = vec![
        (
            "快递三天没到，我要投诉",
            json!({ "customerId": vip }),
            Some("complaints"),
            1,
            "「投诉」 in the subject",
        ),
        (
            "物流问题",
            json!({ "body": "很着急，明天要用" }),
            Some("complaints"),
            1,
            "「着急」 in the first message",
        ),
        (
            "会员咨询",
            json!({ "customerId": vip, "priority": 4 }),
            Some("vip"),
            4,
            "customer: has_tag(\"VIP\")",
        ),
        (
            "积分问题",
            json!({ "customerId": champion }),
            Some("vip"),
            3,
            "RFM cell champions",
        ),
        (
            "鞋子开胶",
            json!({ "type": "returns", "channel": "wecom", "customerId": plain, "fields": { "reason": "质量" } }),
            Some("after_sales"),
            3,
            "type returns",
        ),
        // the same return from the shop, or for another reason: no rule
        (
            "鞋子开胶",
            json!({ "type": "returns", "channel": "shop", "customerId": plain, "fields": { "reason": "质量" } }),
            None,
            3,
            "",
        ),
        (
            "尺码不合适",
            json!({ "type": "returns", "channel": "wecom", "customerId": plain, "fields": { "reason": "尺码" } }),
            None,
            3,
            "",
        ),
        ("发票抬头", json!({ "customerId": plain }), None, 3, ""),
    ];
    for (subject, more, want_queue, want_priority, why) in cases {
        let t = open(s, subject, more).await;
        assert_eq!(t["queue"].as_str(), want_queue, "{subject}");
        assert_eq!(t["priority"], want_priority, "{subject}");
        let routed = last(s, &id(&t), "routed").await;
        match want_queue {
            Some(q) => {
                assert_eq!(routed["queue"], q, "{subject}");
                let reasons: Vec<&str> = routed["why"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap())
                    .collect();
                assert!(reasons.contains(&why), "{subject}: {reasons:?}");
            }
            None => {
                assert!(routed["rule"].is_null(), "{subject}");
                assert_eq!(routed["why"], "no routing rule matched");
                assert!(t["assignee"].is_null());
            }
        }
    }
    // the VIP rule's skills travel with the ticket; nobody holds them yet: it waits, and
    // says why for each member
    let t = open(s, "会员权益", json!({ "customerId": vip })).await;
    assert_eq!(
        t["requiredSkills"],
        json!([{ "name": "vip_service", "level": 2 }])
    );
    assert!(t["assignee"].is_null());
    let waiting = last(s, &id(&t), "waiting").await;
    assert_eq!(waiting["queue"], "vip");
    assert_eq!(waiting["why"]["wang"], "lacks vip_service ≥ 2 (has 0)");
    // skills given: the skill strategy takes the higher level
    for (user, level) in [("zhao", 4), ("wang", 2)] {
        s.ok(
            ALPHA,
            SET_AGENT,
            json!({ "i": { "userId": user, "skills": [{ "name": "vip_service", "level": level }] } }),
        )
        .await;
    }
    let now = read(s, &id(&t)).await;
    assert_eq!(
        now["assignee"], "zhao",
        "the waiting ticket went out when skills changed"
    );
    let assigned = last(s, &id(&t), "assigned").await;
    assert_eq!(assigned["by"], "routing");
    assert_eq!(assigned["strategy"], "skills");
    // zhao holds the two P1 complaints (weight 4 each)
    assert_eq!(
        assigned["why"],
        "skill match: vip_service 4; weighted load 8"
    );
    // both skilled now: the higher level wins over the lighter load
    let t = open(s, "会员升级", json!({ "customerId": vip })).await;
    assert_eq!(t["assignee"], "zhao");
}

async fn capacity_fills_and_the_waiting_queue_drains(s: &TestServer) {
    queue(s, "support", "ROUND_ROBIN", &["li", "wang"]).await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "全部", "queue": "support" }] }),
    )
    .await;
    for user in ["li", "wang"] {
        s.ok(
            ALPHA,
            SET_AGENT,
            json!({ "i": { "userId": user, "capacity": 1 } }),
        )
        .await;
    }
    let t1 = open(s, "一", json!({})).await;
    let t2 = open(s, "二", json!({})).await;
    assert_eq!(
        (t1["assignee"].as_str(), t2["assignee"].as_str()),
        (Some("li"), Some("wang")),
        "round robin in the queue's order"
    );
    assert_eq!(
        last(s, &id(&t2), "assigned").await["why"],
        "round robin: next after li"
    );
    // both full: the next ones wait, each saying why
    let t3 = open(s, "三 (P3, older)", json!({})).await;
    let t4 = open(s, "四 (P1, newer)", json!({ "priority": 1 })).await;
    let t5 = open(s, "五 (P3, newest)", json!({})).await;
    for t in [&t3, &t4, &t5] {
        assert!(t["assignee"].is_null());
    }
    let why = last(s, &id(&t3), "waiting").await["why"].clone();
    assert_eq!(
        why,
        json!({ "li": "at capacity (1 of 1)", "wang": "at capacity (1 of 1)" })
    );
    let waiting = s
        .ok(
            ALPHA,
            "{ tickets(filter: { queue: \"support\", waiting: true }) { edges { node { subject } } } ticketQueues { key waiting } }",
            json!({}),
        )
        .await;
    assert_eq!(waiting["tickets"]["edges"].as_array().unwrap().len(), 3);
    assert_eq!(
        waiting["ticketQueues"],
        json!([{ "key": "support", "waiting": 3 }])
    );
    // li resolves: the most urgent waiting ticket goes to li, though it is newer
    s.ok(ALPHA, MOVE, json!({ "id": id(&t1), "to": "resolved" }))
        .await;
    assert_eq!(read(s, &id(&t4)).await["assignee"], "li");
    assert!(read(s, &id(&t3)).await["assignee"].is_null());
    // wang resolves: then the oldest of the rest
    s.ok(ALPHA, MOVE, json!({ "id": id(&t2), "to": "resolved" }))
        .await;
    assert_eq!(read(s, &id(&t3)).await["assignee"], "wang");
    assert!(read(s, &id(&t5)).await["assignee"].is_null());
    // more capacity: the last one goes at once
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "wang", "capacity": 2 } }),
    )
    .await;
    assert_eq!(read(s, &id(&t5)).await["assignee"], "wang");
    let agents = s
        .ok(
            ALPHA,
            "{ ticketAgents { userId openTickets weightedLoad unavailableBecause } }",
            json!({}),
        )
        .await;
    let wang = agents["ticketAgents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["userId"] == "wang")
        .unwrap()
        .clone();
    assert_eq!(
        wang,
        json!({ "userId": "wang", "openTickets": 2, "weightedLoad": 4, "unavailableBecause": "at capacity (2 of 2)" })
    );
    // a bad capacity is named
    let e = s
        .err(
            ALPHA,
            SET_AGENT,
            json!({ "i": { "userId": "nobody", "capacity": 5000 } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.userId", "input.capacity"]);
}

async fn least_loaded_weighs_priority(s: &TestServer) {
    queue(s, "desk", "LEAST_LOADED", &["li", "wang"]).await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "全部", "queue": "desk" }] }),
    )
    .await;
    // li holds one P1 (weight 4); wang two P4 (weight 1 each)
    let p1 = open(s, "P1", json!({ "priority": 1, "assignee": "li" })).await;
    assert_eq!(
        p1["assignee"], "li",
        "opened with an assignee: routing leaves it"
    );
    for n in ["P4 a", "P4 b"] {
        open(s, n, json!({ "priority": 4, "assignee": "wang" })).await;
    }
    let t = open(s, "新的", json!({})).await;
    assert_eq!(t["assignee"], "wang", "weighted 2 beats weighted 4");
    assert_eq!(
        last(s, &id(&t), "assigned").await["why"],
        "least loaded: 2 open, weighted 2"
    );
}

async fn unavailable_agents_get_nothing_new(s: &TestServer) {
    queue(s, "desk", "ROUND_ROBIN", &["li", "wang", "zhao"]).await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "全部", "queue": "desk" }] }),
    )
    .await;
    // li away, zhao off shift (today and tomorrow are holidays in the shift calendar)
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let days: Vec<String> = (0..2)
        .map(|d| {
            (today + chrono::Duration::days(d))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "li", "availability": "AWAY" } }),
    )
    .await;
    s.ok(ALPHA, SET_AGENT, json!({ "i": { "userId": "zhao", "shift": {
        "time_zone": "Asia/Shanghai", "holidays": days,
        "week": { "mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"], "thu": ["00:00-24:00"],
                  "fri": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"] } } } })).await;
    let a = open(s, "一", json!({})).await;
    let b = open(s, "二", json!({})).await;
    assert_eq!(a["assignee"], "wang");
    assert_eq!(b["assignee"], "wang", "nobody else can take it");
    // wang away too: the next waits, saying why for each
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "wang", "availability": "AWAY" } }),
    )
    .await;
    let c = open(s, "三", json!({})).await;
    assert!(c["assignee"].is_null());
    assert_eq!(
        last(s, &id(&c), "waiting").await["why"],
        json!({ "li": "away", "wang": "away", "zhao": "off shift" })
    );
    // an agent sets their own availability (permission `update`), not another's
    let me = s
        .ok(
            LI,
            "mutation { setMyAvailability(availability: ONLINE) { userId availability } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["setMyAvailability"],
        json!({ "userId": "li", "availability": "ONLINE" })
    );
    let e = s
        .err(
            LI,
            SET_AGENT,
            json!({ "i": { "userId": "wang", "availability": "ONLINE" } }),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
    assert_eq!(
        read(s, &id(&c)).await["assignee"],
        "li",
        "li came back and took the waiting ticket"
    );
    // a reopened ticket whose agent is off goes back to the queue
    s.ok(ALPHA, MOVE, json!({ "id": id(&c), "to": "resolved" }))
        .await;
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "li", "availability": "OFF" } }),
    )
    .await;
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "wang", "availability": "ONLINE" } }),
    )
    .await;
    let reopened = s
        .ok(ALPHA, MOVE, json!({ "id": id(&c), "to": "in_progress" }))
        .await;
    assert_eq!(reopened["moveTicket"]["assignee"], "wang");
    let entries = read(s, &id(&c)).await["entries"].clone();
    let assigned: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "assigned")
        .map(|e| &e["detail"])
        .collect();
    let n = assigned.len();
    assert_eq!(assigned[n - 2]["from"], "li");
    assert_eq!(assigned[n - 2]["why"], "reopened; li is off");
    assert_eq!(assigned[n - 1]["to"], "wang");
    // a reopened ticket of an agent merely away stays theirs
    s.ok(ALPHA, MOVE, json!({ "id": id(&c), "to": "resolved" }))
        .await;
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "wang", "availability": "AWAY" } }),
    )
    .await;
    let again = s
        .ok(ALPHA, MOVE, json!({ "id": id(&c), "to": "in_progress" }))
        .await;
    assert_eq!(again["moveTicket"]["assignee"], "wang");
}

async fn agents_see_their_own_and_their_queues_waiting_tickets(s: &TestServer) {
    queue(s, "desk", "ROUND_ROBIN", &["agent-a"]).await;
    queue(s, "other", "ROUND_ROBIN", &["wang"]).await;
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "agent-a", "capacity": 1 } }),
    )
    .await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "投诉", "keywords": ["投诉"], "queue": "other" }, { "name": "全部", "queue": "desk" }] }),
    )
    .await;
    // customers agent-a does not own
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "冯女士", "sourceChannel": "WEB" }),
        )
        .await;
    let mine = open(s, "分给我的", json!({ "customerId": c })).await;
    let waiting = open(s, "排队中的", json!({ "customerId": c })).await;
    let elsewhere = open(s, "投诉别的队", json!({ "customerId": c })).await;
    assert_eq!(mine["assignee"], "agent-a");
    assert!(waiting["assignee"].is_null());
    assert_eq!(elsewhere["assignee"], "wang");
    let seen = s
        .ok(
            AGENT_A,
            "{ tickets { edges { node { subject } } } }",
            json!({}),
        )
        .await;
    let mut subjects: Vec<&str> = seen["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"]["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["分给我的", "排队中的"]);
    let e = s.err(AGENT_A, READ, json!({ "id": id(&elsewhere) })).await;
    assert_eq!(code(&e), "NOT_FOUND");
    // a transfer to agent-a's queue: wang (not a member there) gives it up; it waits
    let moved = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { transferTicket(id: $id, queue: \"desk\", note: \"转给前台\") { queue assignee } }",
            json!({ "id": id(&elsewhere) }),
        )
        .await;
    assert_eq!(
        moved["transferTicket"],
        json!({ "queue": "desk", "assignee": null })
    );
    let q = last(s, &id(&elsewhere), "queue").await;
    assert_eq!(
        (&q["from"], &q["to"], &q["unassigned"]),
        (&json!("other"), &json!("desk"), &json!("wang"))
    );
    s.ok(AGENT_A, READ, json!({ "id": id(&elsewhere) })).await;
}

/// Tickets opened at once (the API's connection pool in parallel) never give an agent more
/// than their capacity: decisions are taken under the tenant's routing lock.
async fn concurrent_openings_respect_capacity(s: &TestServer) {
    queue(s, "desk", "LEAST_LOADED", &["li", "wang"]).await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "全部", "queue": "desk" }] }),
    )
    .await;
    for user in ["li", "wang"] {
        s.ok(
            ALPHA,
            SET_AGENT,
            json!({ "i": { "userId": user, "capacity": 3 } }),
        )
        .await;
    }
    let subjects: Vec<String> = (0..12).map(|i| format!("并发 {i}")).collect();
    let opened =
        futures_util::future::join_all(subjects.iter().map(|x| open(s, x, json!({})))).await;
    let count = |who: &str| opened.iter().filter(|t| t["assignee"] == who).count();
    assert_eq!((count("li"), count("wang")), (3, 3));
    assert_eq!(opened.iter().filter(|t| t["assignee"].is_null()).count(), 6);
}

/// Offering waiting tickets looks past those nobody free can take: 250 urgent tickets
/// needing a skill no one holds do not hold up an ordinary one behind them.
async fn tickets_nobody_can_take_do_not_hold_up_the_rest(s: &TestServer) {
    queue(s, "desk", "ROUND_ROBIN", &["li"]).await;
    s.ok(
        ALPHA,
        SET_RULES,
        json!({ "r": [{ "name": "全部", "queue": "desk" }] }),
    )
    .await;
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "li", "availability": "AWAY" } }),
    )
    .await;
    let plain = open(s, "普通问题", json!({})).await;
    assert!(plain["assignee"].is_null());
    // 250 urgent ones ahead of it in the queue, each needing a skill nobody has
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250) \
         INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, channel, fields, \
         created_by, created_at, updated_at, queue, skills, watchers) \
         SELECT 'alpha', 'rare-' || i, 'general', '需要专家', 'new', 'open', 1, 'high', 'api', '{}', 'boss', i, i, 'desk', \
         '{\"德语\":5}', '[]' FROM n",
    )
    .execute(&s.db().pool)
    .await
    .unwrap();
    s.ok(
        ALPHA,
        SET_AGENT,
        json!({ "i": { "userId": "li", "availability": "ONLINE" } }),
    )
    .await;
    assert_eq!(read(s, &id(&plain)).await["assignee"], "li");
}

crate::on_both_backends_with!(
    start,
    tickets_nobody_can_take_do_not_hold_up_the_rest,
    rules_decide_the_queue,
    capacity_fills_and_the_waiting_queue_drains,
    least_loaded_weighs_priority,
    unavailable_agents_get_nothing_new,
    agents_see_their_own_and_their_queues_waiting_tickets,
    concurrent_openings_respect_capacity,
);
