//! Tickets (工单), on both backends: types checked with field paths; tickets opened with
//! their fields checked and customer attributes copied; moved only as their workflow allows
//! (resolve stamps, reopen clears); replies, notes and field changes in their history and
//! the audit log; reached through their customer's scope, masked like the customer.

use serde_json::{Value, json};

use crate::harness::{ALPHA, Backend, TestServer, add_key, add_user, code, fields};
use shoal_base::config::Config;

const AGENT: &str = "alpha-agent-key-00000000004";
const MASKED: &str = "alpha-masked-key-0000000005";

const SAVE_TYPE: &str = "mutation($i: TicketTypeInput!) { saveTicketType(input: $i) { key statuses { key category } } }";
const OPEN: &str = "mutation($i: TicketInput!) { openTicket(input: $i) { id type subject status category priority customerId fields firstResponseAt } }";
const MOVE: &str = "mutation($id: ID!, $to: String!, $note: String) { moveTicket(id: $id, to: $to, note: $note) { status category resolvedAt closedAt nextStatuses { key } } }";
const READ: &str = "query($id: ID!) { ticket(id: $id) { id subject status fields firstResponseAt entries { kind author public body detail } } }";

/// Keys for `agent-a` (own customers) and `masked` (every customer; `attributes.会员等级`
/// masked).
fn keys(config: &mut Config) {
    // survey links go out with the host's public address
    config.server.public_url = Some("https://crm.example.com".into());
    add_user(
        config,
        "masked",
        r#"
        name = "Masked"
        scopes = { "*" = "all" }
        fields = { "attributes.会员等级" = "masked" }
        actions = ["create", "update"]
        "#,
        MASKED,
    );
    add_key(config, "agent-a", AGENT);
}

async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, keys).await
}

/// The education seed's refund request: an amount, a reason, the lessons left, and the
/// customer's membership level copied from the profile; reopenable once resolved.
fn refund_type() -> Value {
    json!({
        "key": "refund_request", "name": "退费申请",
        "fields": [
            { "key": "amount", "label": "退费金额", "kind": "MONEY", "required": true },
            { "key": "reason", "label": "原因", "kind": "CHOICE", "choices": ["搬家", "不满意", "其他"] },
            { "key": "lessons_left", "label": "剩余课时", "kind": "NUMBER" },
            { "key": "level", "label": "会员等级", "kind": "CUSTOMER_ATTRIBUTE", "attribute": "会员等级" }
        ],
        "transitions": [
            { "from": "new", "to": "in_progress" },
            { "from": "in_progress", "to": "waiting_on_customer" },
            { "from": "waiting_on_customer", "to": "in_progress" },
            { "from": "in_progress", "to": "resolved" },
            { "from": "resolved", "to": "in_progress" },
            { "from": "resolved", "to": "closed" }
        ]
    })
}

async fn types_and_tickets_are_checked_with_field_paths(s: &TestServer) {
    // a type: every problem named
    let e = s
        .err(
            ALPHA,
            SAVE_TYPE,
            json!({ "i": { "key": "Bad Key", "name": "x",
                "fields": [{ "key": "reason", "label": "原因", "kind": "CHOICE" }],
                "statuses": [{ "key": "done", "label": "完成", "category": "CLOSED" }],
                "transitions": [{ "from": "done", "to": "nowhere" }] } }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    assert_eq!(
        fields(&e),
        [
            "input.key",
            "input.fields[0].choices",
            "input.statuses[0].category",
            "input.transitions[0].to"
        ]
    );
    // saved with the standard workflow when none is given
    let saved = s.ok(ALPHA, SAVE_TYPE, json!({ "i": refund_type() })).await;
    let statuses: Vec<&str> = saved["saveTicketType"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "new",
            "in_progress",
            "waiting_on_customer",
            "waiting_on_third_party",
            "resolved",
            "closed"
        ]
    );
    // a ticket: fields checked by kind, required ones present, the type known
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周同学", "sourceChannel": "WEB" }),
        )
        .await;
    let e = s
        .err(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "refund_request", "subject": "", "priority": 7, "customerId": c,
                "fields": { "reason": "太贵", "lessons_left": "many", "colour": "red" } } }),
        )
        .await;
    assert_eq!(
        fields(&e),
        [
            "input.subject",
            "input.priority",
            "input.fields.colour",
            "input.fields.lessons_left",
            "input.fields.reason",
            "input.fields.amount"
        ]
    );
    let e = s
        .err(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "repair", "subject": "维修" } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.type"]);
    // nothing half-written
    let none = s
        .ok(
            ALPHA,
            "{ tickets(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(none["tickets"]["edges"], json!([]));
}

async fn a_ticket_moves_along_its_workflow_with_its_history(s: &TestServer) {
    s.ok(ALPHA, SAVE_TYPE, json!({ "i": refund_type() })).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "周同学", "sourceChannel": "WEB", "attributes": { "会员等级": "金卡" } }),
        )
        .await;
    let opened = s
        .ok(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "refund_request", "subject": "搬家，申请退费", "body": "下月搬去杭州", "priority": 2,
                "customerId": c, "channel": "wecom",
                "fields": { "amount": { "amount": "1280.00", "currency": "CNY" }, "reason": "搬家", "lessons_left": 12 } } }),
        )
        .await["openTicket"]
        .clone();
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["status"], "new");
    assert_eq!(opened["category"], "OPEN");
    assert_eq!(opened["priority"], 2);
    assert_eq!(opened["customerId"], c);
    assert_eq!(
        opened["fields"],
        json!({ "amount": { "amount": "1280.00", "currency": "CNY" }, "reason": "搬家", "lessons_left": 12, "level": "金卡" }),
        "the membership level is copied from the customer"
    );
    // only the workflow's moves
    let e = s
        .err(ALPHA, MOVE, json!({ "id": id, "to": "closed" }))
        .await;
    assert_eq!(fields(&e), ["to"]);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("may move to: in_progress"),
        "{e}"
    );
    let e = s
        .err(ALPHA, MOVE, json!({ "id": id, "to": "archived" }))
        .await;
    assert_eq!(fields(&e), ["to"]);
    s.ok(ALPHA, MOVE, json!({ "id": id, "to": "in_progress" }))
        .await;
    // an internal note, then the first public reply: the first response
    s.ok(ALPHA, "mutation($id: ID!) { commentOnTicket(id: $id, body: \"核对课消记录\", public: false) { kind public } }", json!({ "id": id })).await;
    let read = s.ok(ALPHA, READ, json!({ "id": id })).await;
    assert!(
        read["ticket"]["firstResponseAt"].is_null(),
        "a note is not a response"
    );
    s.ok(ALPHA, "mutation($id: ID!) { commentOnTicket(id: $id, body: \"已收到，三个工作日内处理\") { kind public } }", json!({ "id": id })).await;
    let read = s.ok(ALPHA, READ, json!({ "id": id })).await;
    assert!(read["ticket"]["firstResponseAt"].is_string());
    // fields change, checked; a required one cannot be cleared
    let e = s
        .err(
            ALPHA,
            "mutation($id: ID!, $f: JSON!) { setTicketFields(id: $id, fields: $f) { id } }",
            json!({ "id": id, "f": { "amount": null } }),
        )
        .await;
    assert_eq!(fields(&e), ["fields.amount"]);
    s.ok(
        ALPHA,
        "mutation($id: ID!, $f: JSON!) { setTicketFields(id: $id, fields: $f) { id } }",
        json!({ "id": id, "f": { "amount": { "amount": "960.00", "currency": "CNY" }, "reason": null } }),
    )
    .await;
    // resolved (stamped), reopened (cleared), closed
    let resolved = s
        .ok(ALPHA, MOVE, json!({ "id": id, "to": "resolved" }))
        .await["moveTicket"]
        .clone();
    assert_eq!(resolved["category"], "RESOLVED");
    assert!(resolved["resolvedAt"].is_string());
    let next: Vec<&str> = resolved["nextStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(next, ["in_progress", "closed"]);
    let reopened = s
        .ok(
            ALPHA,
            MOVE,
            json!({ "id": id, "to": "in_progress", "note": "家长又来电" }),
        )
        .await["moveTicket"]
        .clone();
    assert!(reopened["resolvedAt"].is_null());
    s.ok(ALPHA, MOVE, json!({ "id": id, "to": "resolved" }))
        .await;
    let closed = s.ok(ALPHA, MOVE, json!({ "id": id, "to": "closed" })).await["moveTicket"].clone();
    assert!(closed["closedAt"].is_string() && closed["resolvedAt"].is_string());
    // the history, oldest first
    let read = s.ok(ALPHA, READ, json!({ "id": id })).await;
    let entries = read["ticket"]["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened", "status", "note", "reply", "fields", "status", "status", "status", "status"
        ]
    );
    assert_eq!(entries[0]["body"], "下月搬去杭州");
    assert_eq!(entries[2]["public"], false);
    assert_eq!(entries[3]["public"], true);
    assert_eq!(
        entries[4]["detail"],
        json!({ "amount": { "from": { "amount": "1280.00", "currency": "CNY" }, "to": { "amount": "960.00", "currency": "CNY" } },
            "reason": { "from": "搬家", "to": null } })
    );
    assert_eq!(entries[6]["body"], "家长又来电");
    assert_eq!(read["ticket"]["fields"]["amount"]["amount"], "960.00");
    assert!(read["ticket"]["fields"].get("reason").is_none());
    // and the audit log has every change
    let audit = s
        .ok(
            ALPHA,
            "query($id: ID!) { auditLog(filter: { entityType: \"ticket\", entityId: $id }, first: 50) { edges { node { action } } } }",
            json!({ "id": id }),
        )
        .await;
    let actions: Vec<&str> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    for a in [
        "ticket.opened",
        "ticket.status",
        "ticket.noted",
        "ticket.replied",
        "ticket.fields",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

async fn tickets_are_reached_through_their_customer(s: &TestServer) {
    s.ok(ALPHA, SAVE_TYPE, json!({ "i": refund_type() })).await;
    let mine = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "吴同学", "sourceChannel": "WEB", "ownerId": "agent-a", "attributes": { "会员等级": "金卡会员" } }),
        )
        .await;
    let other = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "郑同学", "sourceChannel": "WEB" }),
        )
        .await;
    let open = |c: Option<&str>, subject: &str| {
        json!({ "i": { "type": "refund_request", "subject": subject, "customerId": c,
            "fields": { "amount": { "amount": "100", "currency": "CNY" } } } })
    };
    let t_mine = s
        .ok_id(ALPHA, OPEN, open(Some(&mine), "吴同学退费"), "openTicket")
        .await;
    let t_other = s
        .ok_id(ALPHA, OPEN, open(Some(&other), "郑同学退费"), "openTicket")
        .await;
    let t_none = s
        .ok_id(ALPHA, OPEN, open(None, "无客户工单"), "openTicket")
        .await;
    // the agent (scope own) lists and reads only the ticket of their own customer
    let listed = s
        .ok(
            AGENT,
            "{ tickets(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["tickets"]["edges"],
        json!([{ "node": { "id": t_mine } }])
    );
    for id in [&t_other, &t_none] {
        let e = s.err(AGENT, READ, json!({ "id": id })).await;
        assert_eq!(code(&e), "NOT_FOUND", "{e}");
        let e = s
            .err(AGENT, MOVE, json!({ "id": id, "to": "in_progress" }))
            .await;
        assert_eq!(code(&e), "NOT_FOUND", "{e}");
    }
    // nor open one for a customer out of reach
    let e = s.err(AGENT, OPEN, open(Some(&other), "越权")).await;
    assert_eq!(code(&e), "NOT_FOUND", "{e}");
    // the admin reaches all three; filters narrow
    let backlog = s
        .ok(
            ALPHA,
            "{ tickets(first: 10, filter: { categories: [OPEN, WAITING_ON_CUSTOMER] }) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(backlog["tickets"]["edges"].as_array().unwrap().len(), 3);
    let of_other = s
        .ok(
            ALPHA,
            "query($c: ID!) { tickets(first: 10, filter: { customerId: $c }) { edges { node { id } } } }",
            json!({ "c": other }),
        )
        .await;
    assert_eq!(
        of_other["tickets"]["edges"],
        json!([{ "node": { "id": t_other } }])
    );
    // a copied attribute reads as the attribute does for the reader
    let masked = s.ok(MASKED, READ, json!({ "id": t_mine })).await;
    let level = masked["ticket"]["fields"]["level"].as_str().unwrap();
    assert_ne!(level, "金卡会员");
    assert!(level.contains('*'), "{level}");
    let full = s.ok(ALPHA, READ, json!({ "id": t_mine })).await;
    assert_eq!(full["ticket"]["fields"]["level"], "金卡会员");
    // and so does a change of it in the history
    s.ok(
        ALPHA,
        "mutation($id: ID!, $f: JSON!) { setTicketFields(id: $id, fields: $f) { id } }",
        json!({ "id": t_mine, "f": { "level": "钻石会员" } }),
    )
    .await;
    let masked = s.ok(MASKED, READ, json!({ "id": t_mine })).await;
    let history = masked["ticket"]["entries"].to_string();
    assert!(
        !history.contains("金卡会员") && !history.contains("钻石会员"),
        "{history}"
    );
    let full = s.ok(ALPHA, READ, json!({ "id": t_mine })).await;
    assert!(full["ticket"]["entries"].to_string().contains("钻石会员"));
    // a masked reader's edit of another field keeps the stored copy, not their masked view
    s.ok(
        MASKED,
        "mutation($id: ID!, $f: JSON!) { setTicketFields(id: $id, fields: $f) { id } }",
        json!({ "id": t_mine, "f": { "lessons_left": 3 } }),
    )
    .await;
    let full = s.ok(ALPHA, READ, json!({ "id": t_mine })).await;
    assert_eq!(full["ticket"]["fields"]["level"], "钻石会员");
    // the audit log keeps the copies out (the customer's own history has them)
    let audit = s
        .ok(
            ALPHA,
            "query($id: ID!) { auditLog(filter: { entityType: \"ticket\", entityId: $id }, first: 50) { edges { node { action changes } } } }",
            json!({ "id": t_mine }),
        )
        .await
        .to_string();
    assert!(
        audit.contains("ticket.opened") && audit.contains("lessons_left"),
        "{audit}"
    );
    assert!(
        !audit.contains("金卡会员") && !audit.contains("钻石会员"),
        "{audit}"
    );
    // an agent cannot open a ticket they could not see afterwards
    let e = s.err(AGENT, OPEN, open(None, "无客户")).await;
    assert_eq!(fields(&e), ["input.customerId"], "{e}");
    // a read-only user may read but not open or move
    let e = s
        .err(
            crate::harness::ALPHA_READONLY,
            MOVE,
            json!({ "id": t_mine, "to": "in_progress" }),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
}

/// SLA clocks: policies and the calendar checked with paths; a P2 ticket's first-response
/// and resolution clocks on a 24×7 calendar (the default), the resolution clock paused
/// while waiting on the customer, the first response met by the first public reply; on a
/// Monday–Friday 09:00–18:00 calendar deadlines fall inside working hours.
async fn sla_clocks_run_on_the_business_calendar(s: &TestServer) {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    let e = s
        .err(
            ALPHA,
            "mutation($c: JSON!) { setBusinessCalendar(calendar: $c) }",
            json!({ "c": { "time_zone": "Asia/Shanghai", "week": { "mon": ["18:00-09:00"] } } }),
        )
        .await;
    assert_eq!(fields(&e), ["calendar.week.mon[0]"], "{e}");
    let set = "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name } }";
    let e = s
        .err(
            ALPHA,
            set,
            json!({ "p": [{ "name": "", "priorities": [9] }] }),
        )
        .await;
    assert_eq!(
        fields(&e),
        [
            "policies[0].name",
            "policies[0].priorities[0]",
            "policies[0].firstResponseMinutes"
        ]
    );
    s.ok(
        ALPHA,
        set,
        json!({ "p": [{ "name": "P2", "priorities": [2], "firstResponseMinutes": 60, "resolutionMinutes": 480 }] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "陈先生", "sourceChannel": "WEB" }),
        )
        .await;
    let open = |p: i64| json!({ "i": { "type": "general", "subject": "安装预约", "priority": p, "customerId": c } });
    let id = s.ok_id(ALPHA, OPEN, open(2), "openTicket").await;
    let clocks = "query($id: ID!) { ticket(id: $id) { createdAt sla { policy target state dueAt doneAt targetSeconds } } }";
    let t = s.ok(ALPHA, clocks, json!({ "id": id })).await["ticket"].clone();
    let created: DateTime<Utc> = t["createdAt"].as_str().unwrap().parse().unwrap();
    let due = |v: &Value| {
        v["dueAt"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(t["sla"][0]["target"], "FIRST_RESPONSE");
    assert_eq!(t["sla"][0]["state"], "ON_TRACK");
    assert_eq!(
        due(&t["sla"][0]),
        created + chrono::Duration::minutes(60),
        "24×7 until a calendar is saved"
    );
    assert_eq!(due(&t["sla"][1]), created + chrono::Duration::minutes(480));
    // waiting on the customer: the resolution clock stops, its deadline unknown
    s.ok(
        ALPHA,
        MOVE,
        json!({ "id": id, "to": "waiting_on_customer" }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!) { commentOnTicket(id: $id, body: \"请确认安装地址\") { kind } }",
        json!({ "id": id }),
    )
    .await;
    let t = s.ok(ALPHA, clocks, json!({ "id": id })).await["ticket"].clone();
    assert_eq!(t["sla"][0]["state"], "MET");
    assert!(t["sla"][0]["doneAt"].is_string());
    assert_eq!(t["sla"][1]["state"], "PAUSED");
    assert!(t["sla"][1]["dueAt"].is_null());
    // no policy for P4: no clocks
    let p4 = s.ok_id(ALPHA, OPEN, open(4), "openTicket").await;
    let t = s.ok(ALPHA, clocks, json!({ "id": p4 })).await;
    assert_eq!(t["ticket"]["sla"], json!([]));
    // on working hours, deadlines fall inside them
    let week = json!(["09:00-18:00"]);
    s.ok(
        ALPHA,
        "mutation($c: JSON!) { setBusinessCalendar(calendar: $c) }",
        json!({ "c": { "time_zone": "Asia/Shanghai", "week": { "mon": week, "tue": week, "wed": week, "thu": week, "fri": week },
            "holidays": ["2027-01-01"] } }),
    )
    .await;
    let id = s.ok_id(ALPHA, OPEN, open(2), "openTicket").await;
    let t = s.ok(ALPHA, clocks, json!({ "id": id })).await["ticket"].clone();
    let created: DateTime<Utc> = t["createdAt"].as_str().unwrap().parse().unwrap();
    // the reference: walk second by second from the opening, counting working seconds
    let working = |at: DateTime<Utc>| {
        let local = at.with_timezone(&chrono_tz::Asia::Shanghai);
        let minutes = local.hour() * 60 + local.minute();
        local.weekday().num_days_from_monday() < 5
            && local.date_naive().to_string() != "2027-01-01"
            && (9 * 60..18 * 60).contains(&minutes)
    };
    let (mut at, mut left) = (created, 3600);
    while left > 0 {
        if working(at) {
            left -= 1;
            at += chrono::Duration::seconds(1);
        } else {
            // outside hours the clock waits for the opening, a whole second
            at = at.with_nanosecond(0).unwrap() + chrono::Duration::seconds(1);
        }
    }
    // (the walk counts whole seconds: it may be off by less than one at a window's edge)
    let off = (due(&t["sla"][0]) - at).num_milliseconds().abs();
    assert!(
        off < 1000,
        "one business hour after the opening: {} vs {at}",
        t["sla"][0]["dueAt"]
    );
    let calendar = s.ok(ALPHA, "{ businessCalendar }", json!({})).await;
    assert_eq!(
        calendar["businessCalendar"]["holidays"],
        json!(["2027-01-01"])
    );
}

/// Assignment and priority changes: checked, recorded in the history and the audit log,
/// and an unchanged value writes nothing.
async fn assignment_and_priority_changes_are_recorded(s: &TestServer) {
    let id = s
        .ok_id(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "general", "subject": "着急：投诉未处理" } }),
            "openTicket",
        )
        .await;
    let assign =
        "mutation($id: ID!, $a: String) { assignTicket(id: $id, assignee: $a) { assignee } }";
    let e = s
        .err(ALPHA, assign, json!({ "id": id, "a": "nobody" }))
        .await;
    assert_eq!(fields(&e), ["assignee"]);
    let a = s
        .ok(ALPHA, assign, json!({ "id": id, "a": "agent-a" }))
        .await;
    assert_eq!(a["assignTicket"]["assignee"], "agent-a");
    s.ok(ALPHA, assign, json!({ "id": id, "a": "agent-a" }))
        .await;
    let raise = "mutation($id: ID!, $p: Int!) { setTicketPriority(id: $id, priority: $p, note: \"客户说着急\") { priority } }";
    let e = s.err(ALPHA, raise, json!({ "id": id, "p": 0 })).await;
    assert_eq!(fields(&e), ["priority"]);
    let p = s.ok(ALPHA, raise, json!({ "id": id, "p": 1 })).await;
    assert_eq!(p["setTicketPriority"]["priority"], 1);
    let read = s.ok(ALPHA, READ, json!({ "id": id })).await;
    let entries: Vec<Value> = read["ticket"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["kind"], e["detail"], e["body"]]))
        .collect();
    assert_eq!(
        entries[1..],
        [
            json!(["assigned", { "from": null, "to": "agent-a" }, null]),
            json!(["priority", { "from": 3, "to": 1, "note": "客户说着急" }, "客户说着急"]),
        ],
        "one entry per change, none for the repeated assignment"
    );
    // unassigned again
    let a = s.ok(ALPHA, assign, json!({ "id": id, "a": null })).await;
    assert!(a["assignTicket"]["assignee"].is_null());
}

/// A duplicate merged into the ticket that carries on: closed, pointing at it, its history
/// read as part of the other's; refused with the argument named for tickets of two
/// customers, a merged target, or a move of the merged one; undone with the status back.
async fn duplicates_merge_and_unmerge(s: &TestServer) {
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "何女士", "sourceChannel": "WEB" }),
        )
        .await;
    let other = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "许先生", "sourceChannel": "WEB" }),
        )
        .await;
    let open = |subject: &str, customer: &str| json!({ "i": { "type": "general", "subject": subject, "customerId": customer, "body": subject } });
    let keep = s
        .ok_id(ALPHA, OPEN, open("洗衣机漏水", &c), "openTicket")
        .await;
    let dup = s
        .ok_id(ALPHA, OPEN, open("洗衣机漏水（重复）", &c), "openTicket")
        .await;
    let elsewhere = s
        .ok_id(ALPHA, OPEN, open("空调不制冷", &other), "openTicket")
        .await;
    s.ok(ALPHA, MOVE, json!({ "id": dup, "to": "in_progress" }))
        .await;
    const MERGE: &str = "mutation($into: ID!, $from: ID!) { mergeTickets(into: $into, from: $from, note: \"同一故障\") { id entries { ticketId kind detail } } }";
    let e = s
        .err(ALPHA, MERGE, json!({ "into": keep, "from": elsewhere }))
        .await;
    assert_eq!(fields(&e), ["from"]);
    let e = s
        .err(ALPHA, MERGE, json!({ "into": keep, "from": keep }))
        .await;
    assert_eq!(fields(&e), ["from"]);
    // a ticket without a customer cannot absorb one about a customer (its readers would
    // read that customer's history)
    let nobody = s
        .ok_id(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "general", "subject": "无客户" } }),
            "openTicket",
        )
        .await;
    let e = s
        .err(ALPHA, MERGE, json!({ "into": nobody, "from": dup }))
        .await;
    assert_eq!(fields(&e), ["from"]);
    let merged = s
        .ok(ALPHA, MERGE, json!({ "into": keep, "from": dup }))
        .await;
    let entries = merged["mergeTickets"]["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["ticketId"] == dup.as_str() && e["kind"] == "opened"),
        "the duplicate's history reads as part of the kept one's"
    );
    let absorbed = entries.iter().find(|e| e["kind"] == "absorbed").unwrap();
    assert_eq!(absorbed["detail"]["from"], dup.as_str());
    let d = s
        .ok(
            ALPHA,
            "query($id: ID!) { ticket(id: $id) { status category mergedInto } }",
            json!({ "id": dup }),
        )
        .await;
    assert_eq!(
        d["ticket"],
        json!({ "status": "closed", "category": "CLOSED", "mergedInto": keep })
    );
    // a merged ticket does not move, nor take merges, until unmerged
    let e = s
        .err(ALPHA, MOVE, json!({ "id": dup, "to": "in_progress" }))
        .await;
    assert_eq!(fields(&e), ["id"]);
    let e = s
        .err(ALPHA, MERGE, json!({ "into": dup, "from": elsewhere }))
        .await;
    assert_eq!(fields(&e), ["into", "from"]);
    let back = s
        .ok(
            ALPHA,
            "mutation($id: ID!) { unmergeTicket(id: $id) { status category mergedInto closedAt } }",
            json!({ "id": dup }),
        )
        .await;
    assert_eq!(
        back["unmergeTicket"],
        json!({ "status": "in_progress", "category": "OPEN", "mergedInto": null, "closedAt": null })
    );
    let kept = s.ok(ALPHA, READ, json!({ "id": keep })).await;
    let kinds: Vec<&str> = kept["ticket"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["opened", "absorbed", "unmerged"],
        "its own history again"
    );
    let e = s
        .err(
            ALPHA,
            "mutation($id: ID!) { unmergeTicket(id: $id) { id } }",
            json!({ "id": dup }),
        )
        .await;
    assert_eq!(fields(&e), ["id"]);
}

/// Files attached to replies and notes by reference: kept in the entry's detail, checked
/// with their paths.
async fn attachments_are_kept_by_reference(s: &TestServer) {
    let id = s
        .ok_id(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "general", "subject": "屏幕碎了" } }),
            "openTicket",
        )
        .await;
    const COMMENT: &str = "mutation($id: ID!, $a: [AttachmentInput!]!) { commentOnTicket(id: $id, body: \"照片已收到\", public: false, attachments: $a) { kind detail } }";
    let e = s
        .err(
            ALPHA,
            COMMENT,
            json!({ "id": id, "a": [
                { "name": "", "url": "ftp://files.example.com/a.jpg" },
                { "name": "b.jpg", "url": "https:///nohost", "contentType": "jpeg" }
            ] }),
        )
        .await;
    assert_eq!(
        fields(&e),
        [
            "attachments[0].name",
            "attachments[0].url",
            "attachments[1].url",
            "attachments[1].contentType"
        ]
    );
    let photo = json!({ "name": "屏幕.jpg", "url": "https://files.example.com/t/屏幕.jpg",
        "contentType": "image/jpeg", "size": 482113 });
    let note = s
        .ok(ALPHA, COMMENT, json!({ "id": id, "a": [photo.clone()] }))
        .await;
    assert_eq!(
        note["commentOnTicket"],
        json!({ "kind": "note", "detail": { "attachments": [photo.clone()] } })
    );
    let t = s.ok(ALPHA, READ, json!({ "id": id })).await;
    let kept = t["ticket"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "note")
        .unwrap();
    assert_eq!(kept["detail"]["attachments"][0], photo);
}

/// Satisfaction surveys: checked with the type; sent once when a ticket is first resolved
/// (a token, the `ticket.survey_ready` change); answered once through the customer's link,
/// each answer checked; the rating reported.
async fn resolved_tickets_get_one_satisfaction_survey(s: &TestServer) {
    let bad = json!({ "i": { "key": "repair", "name": "维修", "survey": [
        { "key": "comment", "label": "建议", "kind": "TEXT" } ] } });
    let e = s.err(ALPHA, SAVE_TYPE, bad).await;
    assert_eq!(fields(&e), ["input.survey.questions"]);
    s.ok(ALPHA, SAVE_TYPE, json!({ "i": { "key": "repair", "name": "维修", "survey": [
        { "key": "overall", "label": "总体满意度", "kind": "RATING", "required": true },
        { "key": "speed", "label": "响应速度", "kind": "RATING" },
        { "key": "comment", "label": "建议", "kind": "TEXT" },
        { "key": "again", "label": "还会选择我们吗", "kind": "CHOICE", "choices": ["会", "不会"] } ] } }))
        .await;
    let id = s
        .ok_id(
            ALPHA,
            OPEN,
            json!({ "i": { "type": "repair", "subject": "热水器不出热水" } }),
            "openTicket",
        )
        .await;
    const SURVEY: &str = "query($id: ID!) { ticket(id: $id) { survey { token path answeredAt rating questions { key } } } }";
    assert!(s.ok(ALPHA, SURVEY, json!({ "id": id })).await["ticket"]["survey"].is_null());
    s.ok(ALPHA, MOVE, json!({ "id": id, "to": "resolved" }))
        .await;
    let survey = s.ok(ALPHA, SURVEY, json!({ "id": id })).await["ticket"]["survey"].clone();
    let token = survey["token"].as_str().unwrap().to_owned();
    let path = survey["path"].as_str().unwrap().to_owned();
    assert_eq!(path, format!("/surveys/alpha/{token}"));
    // reopened and resolved again: still the one survey
    s.ok(ALPHA, MOVE, json!({ "id": id, "to": "in_progress" }))
        .await;
    s.ok(ALPHA, MOVE, json!({ "id": id, "to": "resolved" }))
        .await;
    assert_eq!(
        s.ok(ALPHA, SURVEY, json!({ "id": id })).await["ticket"]["survey"]["token"],
        token.as_str()
    );
    let ready: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM internal_events WHERE tenant_id = 'alpha' AND kind = 'ticket.survey_ready'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(ready, 1);

    // the customer's link
    let (status, page) = crate::harness::http(s.addr, "GET", &path, "", "").await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["answered"], false);
    assert_eq!(page["questions"][0]["label"], "总体满意度");
    let post = |body: Value| {
        let (addr, path) = (s.addr, path.clone());
        async move {
            let (status, answer) = crate::harness::http(
                addr,
                "POST",
                &path,
                "Content-Type: application/json\r\n",
                &body.to_string(),
            )
            .await;
            (
                status,
                serde_json::from_str::<Value>(&answer).unwrap_or(Value::Null),
            )
        }
    };
    let (status, answer) =
        post(json!({ "answers": { "speed": 7, "again": "也许", "extra": 1 } })).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer.to_string();
    for field in [
        "answers.extra",
        "answers.overall",
        "answers.speed",
        "answers.again",
    ] {
        assert!(message.contains(field), "{field}: {message}");
    }
    let (status, answer) = post(
        json!({ "answers": { "overall": 4, "speed": 5, "comment": "师傅很专业", "again": "会" } }),
    )
    .await;
    assert_eq!((status, &answer["rating"]), (200, &json!(4)), "{answer}");
    let (status, _) = post(json!({ "answers": { "overall": 1 } })).await;
    assert_eq!(status, 400, "answered once");
    let (status, _) =
        crate::harness::http(s.addr, "GET", "/surveys/alpha/not-a-token", "", "").await;
    assert_eq!(status, 404);

    let survey = s.ok(ALPHA, SURVEY, json!({ "id": id })).await["ticket"]["survey"].clone();
    assert_eq!(survey["rating"], 4);
    assert!(survey["answeredAt"].is_string());
    let now = chrono::Utc::now();
    let csat = s
        .ok(
            ALPHA,
            "query($f: DateTime!, $t: DateTime!) { ticketCsat(from: $f, to: $t) { sent answered average distribution satisfiedPercent } }",
            json!({ "f": (now - chrono::Duration::days(1)).to_rfc3339(), "t": (now + chrono::Duration::days(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!(
        csat["ticketCsat"],
        json!({ "sent": 1, "answered": 1, "average": "4", "distribution": [0, 0, 0, 1, 0], "satisfiedPercent": "100" })
    );
}

/// Tickets narrowed by custom field values, each exactly; a field copying a customer
/// attribute is not filterable by a reader who sees it masked.
async fn tickets_filter_by_field_values(s: &TestServer) {
    s.ok(ALPHA, SAVE_TYPE, json!({ "i": refund_type() })).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "严同学", "sourceChannel": "WEB", "attributes": { "会员等级": "金卡会员" } }),
        )
        .await;
    for (reason, left) in [("搬家", 12), ("其他", 3), ("搬家", 3)] {
        s.ok(ALPHA, OPEN, json!({ "i": { "type": "refund_request", "subject": format!("退费 {reason}"), "customerId": c,
            "fields": { "amount": { "amount": "100", "currency": "CNY" }, "reason": reason, "lessons_left": left } } }))
            .await;
    }
    const LIST: &str =
        "query($f: JSON!) { tickets(filter: { fields: $f }) { edges { node { subject } } } }";
    let count = |v: &Value| v["tickets"]["edges"].as_array().unwrap().len();
    let moved = s
        .ok(ALPHA, LIST, json!({ "f": { "reason": "搬家" } }))
        .await;
    assert_eq!(count(&moved), 2);
    let both = s
        .ok(
            ALPHA,
            LIST,
            json!({ "f": { "reason": "搬家", "lessons_left": 12 } }),
        )
        .await;
    assert_eq!(count(&both), 1);
    assert_eq!(
        s.ok(ALPHA, LIST, json!({ "f": { "level": "金卡会员" } }))
            .await["tickets"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let e = s
        .err(MASKED, LIST, json!({ "f": { "level": "金卡会员" } }))
        .await;
    assert_eq!(fields(&e), ["filter.fields.level"]);
    let e = s
        .err(ALPHA, LIST, json!({ "f": { "reason": ["搬家"] } }))
        .await;
    assert_eq!(fields(&e), ["filter.fields.reason"]);
}

/// SLA policies chosen by customer tier: a `VIP` policy (a rule-language condition on the
/// customer) applies to tickets of VIP customers only; the tier is read when a ticket opens,
/// and read again for open tickets when the policies are saved.
async fn sla_policies_choose_by_customer_tier(s: &TestServer) {
    let vip_tag = s
        .ok(
            ALPHA,
            r#"mutation { createTag(input: { name: "VIP" }) { id } }"#,
            json!({}),
        )
        .await["createTag"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let set = "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name customer } }";
    let policies = json!([
        { "name": "VIP", "customer": "has_tag(\"VIP\")", "firstResponseMinutes": 30 },
        { "name": "标准", "firstResponseMinutes": 240 }
    ]);
    // a condition that does not parse, or a name used twice, is named by its path
    let bad = json!([
        { "name": "VIP", "customer": "has_tag(\"VIPP\")", "firstResponseMinutes": 30 },
        { "name": "VIP", "firstResponseMinutes": 240 }
    ]);
    let e = s.err(ALPHA, set, json!({ "p": bad })).await;
    assert_eq!(
        fields(&e),
        ["policies[0].customer", "policies[1].name"],
        "{e}"
    );
    s.ok(ALPHA, set, json!({ "p": policies })).await;

    let vip = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王总", "sourceChannel": "WECOM" }),
        )
        .await;
    let plain = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "小李", "sourceChannel": "WECOM" }),
        )
        .await;
    let tag = "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }";
    s.ok(ALPHA, tag, json!({ "t": vip_tag, "c": [vip] })).await;
    let open = |c: &str| json!({ "i": { "type": "general", "subject": "咨询", "customerId": c } });
    let vip_ticket = s.ok_id(ALPHA, OPEN, open(&vip), "openTicket").await;
    let plain_ticket = s.ok_id(ALPHA, OPEN, open(&plain), "openTicket").await;
    let clock = |id: String| async move {
        let d = s
            .ok(
                ALPHA,
                "query($id: ID!) { ticket(id: $id) { sla { policy target targetSeconds } } }",
                json!({ "id": id }),
            )
            .await;
        d["ticket"]["sla"][0].clone()
    };
    assert_eq!(
        clock(vip_ticket.clone()).await,
        json!({ "policy": "VIP", "target": "FIRST_RESPONSE", "targetSeconds": 1800 })
    );
    assert_eq!(clock(plain_ticket.clone()).await["policy"], "标准");

    // 小李 becomes a VIP: once the policies are saved again, the hosts' upkeep reads the
    // tiers of open tickets again and the ticket gets the VIP policy (before that, it may
    // or may not have: the first save's reading may come after the tag)
    s.ok(ALPHA, tag, json!({ "t": vip_tag, "c": [plain] }))
        .await;
    s.ok(ALPHA, set, json!({ "p": policies })).await;
    let mut policy = Value::Null;
    for _ in 0..100 {
        policy = clock(plain_ticket.clone()).await["policy"].clone();
        if policy == "VIP" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(policy, "VIP");
}

/// A type's survey may name a channel: the customer's link then goes out as a service
/// message through the contact policy and the outbox, once per ticket, with what became of
/// it in the ticket's history; a customer who opted out of the channel gets none.
async fn surveys_go_out_on_the_types_channel(s: &TestServer) {
    let survey = json!([{ "key": "overall", "label": "总体满意度", "kind": "RATING" }]);
    // a channel that reaches customers (not a staff group robot), a message with the link
    for (channel, message, field) in [
        ("SMS!", "{{survey.url}}", "input.surveyChannel"),
        ("robot", "{{survey.url}}", "input.surveyChannel"),
        ("sms", "请评价", "input.surveyMessage"),
    ] {
        let e = s
            .err(
                ALPHA,
                SAVE_TYPE,
                json!({ "i": { "key": "install", "name": "安装", "survey": survey,
                "surveyChannel": channel, "surveyMessage": message } }),
            )
            .await;
        assert_eq!(fields(&e), [field], "{e}");
    }
    s.ok(ALPHA, SAVE_TYPE, json!({ "i": { "key": "install", "name": "安装", "survey": survey,
        "surveyChannel": "sms", "surveyMessage": "{{customer.name}}您好，安装已完成，请评价：{{survey.url}}" } }))
        .await;
    let zhang = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "张三", "sourceChannel": "WECOM", "phones": ["13800138000"] }),
        )
        .await;
    let wang = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "王五", "sourceChannel": "WECOM", "phones": ["13900139000"] }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"sms\", optedOut: true) }",
        json!({ "c": wang }),
    )
    .await;
    let mut tickets = Vec::new();
    for c in [&zhang, &wang] {
        let id = s
            .ok_id(
                ALPHA,
                OPEN,
                json!({ "i": { "type": "install", "subject": "空调安装", "customerId": c } }),
                "openTicket",
            )
            .await;
        s.ok(ALPHA, MOVE, json!({ "id": id, "to": "resolved" }))
            .await;
        tickets.push(id);
    }
    // the dispatcher turns each `ticket.survey_ready` into its outcome, in the history
    let outcome = |id: String| async move {
        for _ in 0..100 {
            let t = s
                .ok(ALPHA, "query($id: ID!) { ticket(id: $id) { survey { token } entries { kind body detail } } }", json!({ "id": id }))
                .await;
            if let Some(e) = t["ticket"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "survey")
            {
                return (
                    t["ticket"]["survey"]["token"].as_str().unwrap().to_owned(),
                    e.clone(),
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no survey outcome on {id}");
    };
    let (token, sent) = outcome(tickets[0].clone()).await;
    assert_eq!(sent["body"], "survey queued on sms");
    let key = format!("ticket-survey:{}", tickets[0]);
    assert_eq!(
        sent["detail"],
        json!({ "channel": "sms", "idempotencyKey": key })
    );
    let outbox = "query($c: ID) { outboxMessages(filter: {customerId: $c}, first: 10) { edges { node { channel purpose body idempotencyKey } } } }";
    let messages =
        s.ok(ALPHA, outbox, json!({ "c": zhang })).await["outboxMessages"]["edges"].clone();
    assert_eq!(
        messages,
        json!([{ "node": { "channel": "sms", "purpose": "service", "idempotencyKey": key,
            "body": format!("张三您好，安装已完成，请评价：https://crm.example.com/surveys/alpha/{token}") } }])
    );
    let (_, refused) = outcome(tickets[1].clone()).await;
    assert_eq!(
        refused["body"],
        "survey not sent by sms: the customer opted out of sms messages"
    );
    let none = s.ok(ALPHA, outbox, json!({ "c": wang })).await;
    assert_eq!(none["outboxMessages"]["edges"], json!([]));

    // reopened and resolved again: no second message
    s.ok(
        ALPHA,
        MOVE,
        json!({ "id": tickets[0], "to": "in_progress" }),
    )
    .await;
    s.ok(ALPHA, MOVE, json!({ "id": tickets[0], "to": "resolved" }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again = s.ok(ALPHA, outbox, json!({ "c": zhang })).await;
    assert_eq!(
        again["outboxMessages"]["edges"].as_array().unwrap().len(),
        1
    );
}

crate::on_both_backends_with!(
    start,
    surveys_go_out_on_the_types_channel,
    sla_policies_choose_by_customer_tier,
    tickets_filter_by_field_values,
    resolved_tickets_get_one_satisfaction_survey,
    attachments_are_kept_by_reference,
    duplicates_merge_and_unmerge,
    assignment_and_priority_changes_are_recorded,
    sla_clocks_run_on_the_business_calendar,
    types_and_tickets_are_checked_with_field_paths,
    a_ticket_moves_along_its_workflow_with_its_history,
    tickets_are_reached_through_their_customer,
);

/// An upgrade: ticket requests written by SOP steps before tickets existed become tickets
/// of the `general` type (priority mapped, the SOP as author, the idempotency key kept),
/// each with its `opened` entry, and the old table is gone.
async fn ticket_requests_become_tickets_on_upgrade(backend: Backend) {
    use shoal_base::storage::{Db, migrate, migrate_up_to};
    use sqlx::Row;
    let dir = std::env::temp_dir().join(format!("shoal-upgrade-{}", std::process::id()));
    let (url, pg) = match backend {
        Backend::Sqlite => {
            let _ = std::fs::remove_dir_all(&dir);
            (format!("sqlite://{}/shoal.db", dir.display()), None)
        }
        Backend::Postgres => {
            let tag = format!("{}_upgrade", std::process::id());
            match crate::harness::fresh_postgres_database(&tag).await {
                Some((url, name)) => (url, Some(name)),
                None => return,
            }
        }
    };
    let db = Db::connect(&url, 2).await.unwrap();
    migrate_up_to(&db, 15).await.unwrap();
    for (id, priority, key) in [("tr-1", "urgent", "k-1"), ("tr-2", "low", "k-2")] {
        sqlx::query(
            "INSERT INTO ticket_requests (tenant_id, id, idempotency_key, customer_id, title, priority, sop_id, enrolment_id, created_at) \
             VALUES ('alpha', $1, $2, 'cust-1', '回访', $3, 'sop-9', 'enr-1', 1764633600000000)",
        )
        .bind(id)
        .bind(key)
        .bind(priority)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    assert_eq!(
        migrate(&db).await.unwrap(),
        [
            16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33
        ]
    );
    let rows = sqlx::query(
        "SELECT id, type_key, status, category, priority, channel, created_by, source_key, customer_id FROM tickets ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let got: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!([
                r.get::<String, _>("id"),
                r.get::<String, _>("type_key"),
                r.get::<String, _>("status"),
                r.get::<String, _>("category"),
                r.get::<i64, _>("priority"),
                r.get::<String, _>("channel"),
                r.get::<String, _>("created_by"),
                r.get::<String, _>("source_key"),
                r.get::<String, _>("customer_id"),
            ])
        })
        .collect();
    let row = |id: &str, p: i64, key: &str| {
        json!([
            id,
            "general",
            "new",
            "open",
            p,
            "sop",
            "sop:sop-9",
            key,
            "cust-1"
        ])
    };
    assert_eq!(got, [row("tr-1", 1, "k-1"), row("tr-2", 4, "k-2")]);
    let entries: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM ticket_entries WHERE kind = 'opened'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("n");
    assert_eq!(entries, 2);
    assert!(
        sqlx::query("SELECT COUNT(*) FROM ticket_requests")
            .fetch_one(&db.pool)
            .await
            .is_err(),
        "the old table is gone"
    );
    db.pool.close().await;
    match pg {
        Some(name) => crate::harness::drop_postgres_database(&name).await,
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ticket_requests_become_tickets_on_upgrade() {
    ticket_requests_become_tickets_on_upgrade(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ticket_requests_become_tickets_on_upgrade() {
    ticket_requests_become_tickets_on_upgrade(Backend::Postgres).await;
}

/// Another system opens tickets with signed requests (the seed's shop relay: a logistics
/// complaint for the buyer known by their shop id): signature and timestamp checked (with
/// Python's hmac as the signer), the customer found by identity, a retry of the same
/// delivery opens nothing new, bad input named by field.
async fn other_systems_open_tickets_with_signed_requests(s: &TestServer) {
    use crate::webhooks::python_standard_signature;
    const KEY: &str = "e2e-sms-gateway-key-0123456789";
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "冯女士", "sourceChannel": "SHOP",
                "identities": [{ "channel": "SHOP", "externalId": "yz-1001" }] }),
        )
        .await;
    let post = |tenant: &'static str,
                id: &'static str,
                ts: i64,
                signature: Option<&'static str>,
                body: Value| {
        let addr = s.addr;
        async move {
            let body = body.to_string();
            let ts = ts.to_string();
            let signature = signature
                .map(str::to_owned)
                .unwrap_or_else(|| python_standard_signature(KEY.as_bytes(), id, &ts, &body));
            let headers = format!(
                "webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Type: application/json\r\n"
            );
            let (status, answer) = crate::harness::http(
                addr,
                "POST",
                &format!("/tickets/{tenant}/inbound"),
                &headers,
                &body,
            )
            .await;
            (
                status,
                serde_json::from_str::<Value>(&answer).unwrap_or(Value::Null),
            )
        }
    };
    let now = chrono::Utc::now().timestamp();
    let complaint = json!({ "type": "general", "subject": "物流投诉：三天未发货", "body": "订单 E20261203 还没发货",
        "priority": 2, "channel": "shop", "identity": { "channel": "shop", "externalId": "yz-1001" } });
    let (status, opened) = post("alpha", "msg_1", now, None, complaint.clone()).await;
    assert_eq!(status, 201, "{opened}");
    let id = opened["id"].as_str().unwrap().to_owned();
    let t = s
        .ok(ALPHA, "query($id: ID!) { ticket(id: $id) { customerId channel createdBy priority subject entries { body } } }", json!({ "id": id }))
        .await;
    assert_eq!(
        t["ticket"],
        json!({ "customerId": c, "channel": "shop", "createdBy": "webhook", "priority": 2,
            "subject": "物流投诉：三天未发货", "entries": [{ "body": "订单 E20261203 还没发货" }] })
    );
    // the relay retries the same delivery: the same ticket, nothing new
    let (status, again) = post("alpha", "msg_1", now, None, complaint.clone()).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));
    // forged, stale, or for a tenant that takes none: refused
    assert_eq!(
        post(
            "alpha",
            "msg_2",
            now,
            Some("v1,Zm9yZ2Vk"),
            complaint.clone()
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post("alpha", "msg_3", now - 3600, None, complaint.clone())
            .await
            .0,
        401
    );
    let (status, _) = post("alpha", "msg_3", i64::MIN, None, complaint.clone()).await;
    assert_eq!(
        status, 401,
        "a hostile timestamp is refused, not an overflow"
    );
    assert_eq!(
        post("beta", "msg_4", now, None, complaint.clone()).await.0,
        404
    );
    // an unknown buyer, bad input
    let mut stranger = complaint.clone();
    stranger["identity"]["externalId"] = json!("yz-9999");
    assert_eq!(post("alpha", "msg_5", now, None, stranger).await.0, 404);
    let mut bad = complaint.clone();
    bad["priority"] = json!(9);
    let (status, answer) = post("alpha", "msg_6", now, None, bad).await;
    assert_eq!(status, 400);
    assert!(answer.to_string().contains("input.priority"), "{answer}");
    let (status, _) = post(
        "alpha",
        "msg_7",
        now,
        None,
        json!({ "subject": "没有类型" }),
    )
    .await;
    assert_eq!(status, 400);
    let all = s
        .ok(
            ALPHA,
            "{ tickets(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["tickets"]["edges"].as_array().unwrap().len(),
        1,
        "nothing else opened"
    );
}

async fn inbound_server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        keys(c);
        c.tenants
            .get_mut("alpha")
            .unwrap()
            .tickets
            .inbound_secret_env = Some("SHOAL_TEST_SMS_SECRET".into());
    })
    .await
}

mod inbound {
    crate::on_both_backends_with!(
        inbound_server,
        other_systems_open_tickets_with_signed_requests,
    );
    use super::{inbound_server, other_systems_open_tickets_with_signed_requests};
}
