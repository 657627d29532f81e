//! Tickets, SQLite and PostgreSQL side by side:
//!
//! 1. SLA clocks per ticket, in memory (a Monday–Friday calendar with a lunch break and
//!    holidays; first response and resolution, one pause);
//! 2. opening a ticket through the store — checked, routed by four rules (keywords, a
//!    rule-language condition on the customer, a type), assigned in a least-loaded queue of
//!    five agents, SLA timers armed, history and audit written — against the floor: the same
//!    rows written by plain SQL in one transaction per ticket;
//! 3. `openTicket` through GraphQL, one after another: tickets per second;
//! 4. escalations among `SHOAL_BENCH_TICKETS` open tickets (default 1,000,000), each with a
//!    breached-timer row, 1,000 of them due: the due scan, and firing the 1,000 (each in its
//!    own transaction: claim, re-check, priority raise, history, audit, the change) against
//!    the floor: the same rows written by plain SQL, one transaction per timer.
//!
//! Run with `cargo xtask bench --bench tickets`.

// building the whole schema in one async fn: its layout is deeper than the default 128
#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use chrono::TimeZone;
use serde_json::json;

use shoal_api as api;
use shoal_base::storage::{Db, time};
use shoal_crm::tenancy::{Actor, Directory};
use shoal_tickets::{
    queues::{self, AgentInput, Queue, Strategy},
    records::Ticket,
    routing, sla, store, timers,
    types::{Category, TicketType},
};

mod common;

const ROUNDS: usize = 300;
const DUE: usize = 1000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    common::percentile(&v, 0.5)
}

fn clocks_in_memory() -> Duration {
    let calendar: shoal_tickets::calendar::BusinessCalendar = serde_json::from_value(json!({
        "time_zone": "Asia/Shanghai",
        "week": { "mon": ["09:00-12:00", "13:30-18:00"], "tue": ["09:00-12:00", "13:30-18:00"],
                  "wed": ["09:00-12:00", "13:30-18:00"], "thu": ["09:00-12:00", "13:30-18:00"],
                  "fri": ["09:00-12:00", "13:30-18:00"] },
        "holidays": ["2026-12-25", "2027-01-01"],
        "working_days": [{ "date": "2026-12-26", "windows": ["09:00-18:00"] }]
    }))
    .unwrap();
    let policies: Vec<sla::Policy> = serde_json::from_value(json!([
        { "name": "P3", "firstResponseMinutes": 240, "resolutionMinutes": 2880 }
    ]))
    .unwrap();
    let tz = chrono_tz::Asia::Shanghai;
    let created = tz
        .with_ymd_and_hms(2026, 12, 4, 17, 30, 0)
        .unwrap()
        .to_utc();
    let t = Ticket {
        id: "t".into(),
        type_key: "general".into(),
        subject: "s".into(),
        status: "in_progress".into(),
        category: Category::Open,
        priority: 3,
        impact: "medium".into(),
        customer_id: None,
        channel: "api".into(),
        fields: Default::default(),
        assignee: None,
        queue: None,
        skills: Default::default(),
        watchers: Vec::new(),
        merged_into: None,
        bill_id: None,
        sla_customer: Vec::new(),
        created_by: "u".into(),
        created_at: created,
        updated_at: created,
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
    };
    let ty = TicketType {
        key: "general".into(),
        name: "g".into(),
        fields: Vec::new(),
        statuses: TicketType::standard_statuses(),
        transitions: Vec::new(),
        survey: None,
        template: None,
    };
    let entry = |h: u32, to: &str| shoal_tickets::records::Entry {
        id: "e".into(),
        ticket_id: "t".into(),
        kind: "status".into(),
        author: "u".into(),
        public: false,
        body: None,
        detail: Some(json!({ "to": to })),
        created_at: tz.with_ymd_and_hms(2026, 12, 7, h, 0, 0).unwrap().to_utc(),
    };
    let entries = [entry(10, "waiting_on_customer"), entry(15, "in_progress")];
    let now = tz.with_ymd_and_hms(2026, 12, 9, 11, 0, 0).unwrap().to_utc();
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        let c = sla::clocks(&policies, &calendar, &ty, &t, &entries, now);
        std::hint::black_box(c);
    }
    started.elapsed() / n
}

async fn set_up_routing(db: &Db, actor: &Actor) {
    let users: Vec<String> = (0..5).map(|i| format!("agent{i}")).collect();
    for u in &users {
        routing::set_agent(
            db,
            actor,
            AgentInput {
                user_id: u.clone(),
                capacity: Some(queues::MAX_CAPACITY),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    for key in ["complaints", "vip", "desk"] {
        routing::save_queue(
            db,
            actor,
            &Queue {
                key: key.into(),
                name: key.into(),
                strategy: Strategy::LeastLoaded,
                members: users.clone(),
                last_assigned: None,
            },
        )
        .await
        .unwrap();
    }
    let rules: Vec<routing::Rule> = serde_json::from_value(json!([
        { "name": "投诉", "keywords": ["投诉", "着急", "差评", "退款"], "queue": "complaints", "priority": 1 },
        { "name": "VIP", "customer": "attr.level = \"vip\"", "queue": "vip" },
        { "name": "退货", "types": ["returns"], "queue": "desk" },
        { "name": "其他", "queue": "desk" }
    ]))
    .unwrap();
    routing::set_rules(db, actor, rules).await.unwrap();
    let policies: Vec<sla::Policy> = serde_json::from_value(json!([
        { "name": "all", "firstResponseMinutes": 240, "resolutionMinutes": 2880,
          "escalations": [{ "when": "at_risk" }, { "when": "breached", "raisePriorityTo": 2 }] }
    ]))
    .unwrap();
    sla::set_policies(db, actor, policies).await.unwrap();
}

/// The rows opening one routed ticket writes, by plain SQL in one transaction.
async fn floor_open(db: &Db, i: usize, customer: &str) {
    let now = time::to_micros(time::now());
    let id = format!("floor-{i}");
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, customer_id, channel, fields, \
         assignee, created_by, created_at, updated_at, queue, skills) VALUES ('bench', $1, 'general', '快递一直没到', 'new', 'open', 3, 'medium', $2, 'api', '{}', \
         'agent0', 'admin', $3, $3, 'desk', '{}')",
    )
    .bind(&id)
    .bind(customer)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    for kind in ["opened", "routed", "assigned"] {
        sqlx::query(
            "INSERT INTO ticket_entries (tenant_id, id, ticket_id, kind, author, visibility, body, detail, created_at) \
             VALUES ('bench', $1, $2, $3, 'admin', 'internal', NULL, '{\"why\":\"x\"}', $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(kind)
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for (target, stage) in [
        ("first_response", "at_risk"),
        ("first_response", "breached"),
        ("resolution", "at_risk"),
        ("resolution", "breached"),
    ] {
        sqlx::query("INSERT INTO ticket_timers (tenant_id, ticket_id, target, stage, due_at) VALUES ('bench', $1, $2, $3, $4)")
            .bind(&id)
            .bind(target)
            .bind(stage)
            .bind(now + 365 * 86_400_000_000)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes) \
         VALUES ('bench', $1, $2, 'admin', 'ticket.opened', 'ticket', $3, '{}')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// `n` open tickets with a breached-timer row each, written server-side; the first
/// [`DUE`] are due now, the rest in a year.
async fn seed_open(db: &Db, n: usize) {
    let now = time::to_micros(time::now());
    let later = now + 365 * 86_400_000_000;
    let rows =
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) ");
    sqlx::query(&format!(
        "{rows}INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, customer_id, channel, fields, \
         created_by, created_at, updated_at, skills, watchers) \
         SELECT 'bench', 'seed-' || i, 'general', '工单', 'new', 'open', 3, 'medium', NULL, 'api', '{{}}', 'admin', {created}, {created}, '{{}}', '[]' FROM n",
        created = now - 300 * 60_000_000,
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "{rows}INSERT INTO ticket_timers (tenant_id, ticket_id, target, stage, due_at) \
         SELECT 'bench', 'seed-' || i, 'first_response', 'breached', CASE WHEN i <= {DUE} THEN {now} - i ELSE {later} + i END FROM n"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
}

/// The rows firing one escalation writes, by plain SQL in one transaction.
async fn floor_fire(db: &Db, i: usize) {
    let now = time::to_micros(time::now());
    let id = format!("floor-seed-{i}");
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE ticket_timers SET fired_at = $2 WHERE tenant_id = 'bench' AND ticket_id = $1 AND target = 'first_response' AND stage = 'breached' AND fired_at IS NULL")
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE tickets SET priority = 2, updated_at = $2 WHERE tenant_id = 'bench' AND id = $1",
    )
    .bind(&id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    for kind in ["priority", "escalated"] {
        sqlx::query(
            "INSERT INTO ticket_entries (tenant_id, id, ticket_id, kind, author, visibility, body, detail, created_at) \
             VALUES ('bench', $1, $2, $3, 'sla', 'internal', NULL, '{\"why\":\"x\"}', $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(kind)
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes) \
             VALUES ('bench', $1, $2, 'sla', $3, 'ticket', $4, '{}')",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(now)
        .bind(format!("ticket.{kind}"))
        .bind(&id)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO internal_events (tenant_id, id, kind, customer_id, payload, at) VALUES ('bench', $1, 'ticket.sla_breached', '', '{}', $2)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SHOAL_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // failures inside the host's loops are logged: show them
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let dir = std::env::temp_dir().join(format!("shoal-tickets-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let per_clock = clocks_in_memory();
    println!("SLA clocks of one ticket (2 clocks, 1 pause), in memory: {per_clock:.2?}");
    let mut config = common::config();
    {
        let bench = config.tenants.get_mut(common::TENANT).unwrap();
        for i in 0..5 {
            bench.users.insert(
                format!("agent{i}"),
                shoal_base::config::UserConfig::new(format!("Agent {i}"), "agent"),
            );
        }
    }
    for target in common::targets(&dir, "tickets").await {
        let backend = if target.url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        let db = common::open(&target.url, &config).await;
        let directory = Directory::from_config(&config, &db.vault);
        let actor = common::actor(&db, &directory).await;
        common::seed_customers(&db, 1000, 7).await;
        let customer: String =
            sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = 'bench' LIMIT 1")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        set_up_routing(&db, &actor).await;

        // 2. opening through the store vs the floor, interleaved
        let (mut full, mut floor) = (Vec::new(), Vec::new());
        for i in 0..ROUNDS {
            let t = Instant::now();
            store::open(
                &db,
                &actor,
                store::NewTicket {
                    type_key: "general".into(),
                    subject: format!("快递一直没到 {i}"),
                    body: Some("请尽快处理".into()),
                    customer_id: Some(customer.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            full.push(t.elapsed());
            let t = Instant::now();
            floor_open(&db, i, &customer).await;
            floor.push(t.elapsed());
        }
        let (f, fl) = (median(full), median(floor));
        println!(
            "{backend:<10} open + route + arm, store: {f:>10.2?}   plain SQL floor: {fl:>10.2?}   ratio {:.2}x",
            f.as_secs_f64() / fl.as_secs_f64()
        );

        // 3. through GraphQL, one after another
        let (bus, _) = tokio::sync::broadcast::channel(16);
        let (plugins, _) = shoal_plugin_host::PluginHost::start(&config).unwrap();
        let fixed = config.clone();
        let reloader = shoal_plugin_host::Reloader::new(
            plugins,
            std::sync::Arc::new(move || Ok(fixed.clone())),
        );
        let schema = api::schema(
            db.clone(),
            &config.limits,
            bus,
            Default::default(),
            false,
            reloader,
            Default::default(),
        );
        let op = "mutation($i: TicketInput!) { openTicket(input: $i) { id queue assignee } }";
        let started = Instant::now();
        for i in 0..ROUNDS {
            let request = async_graphql::Request::new(op)
                .variables(async_graphql::Variables::from_json(json!({ "i": {
                    "type": "general", "subject": format!("发票抬头错了 {i}"), "customerId": customer } })))
                .data(actor.clone());
            let r = schema.execute(request).await;
            assert!(r.errors.is_empty(), "{:?}", r.errors);
        }
        let per_second = ROUNDS as f64 / started.elapsed().as_secs_f64();
        println!("{backend:<10} openTicket through GraphQL: {per_second:.0} tickets/s");

        // 4. escalations among n open tickets
        let seeding = Instant::now();
        seed_open(&db, n).await;
        println!(
            "{backend:<10} seeded {n} open tickets with timers in {:.1?}",
            seeding.elapsed()
        );
        let scan = "SELECT ticket_id, target, stage FROM ticket_timers WHERE tenant_id = $1 AND fired_at IS NULL AND due_at <= $2 ORDER BY due_at LIMIT 100";
        let mut scans = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let rows = sqlx::query(scan)
                .bind("bench")
                .bind(time::to_micros(time::now()))
                .fetch_all(&db.pool)
                .await
                .unwrap();
            scans.push(t.elapsed());
            assert_eq!(rows.len(), 100);
        }
        let scan_median = median(scans);
        // the floor's own due rows: copies of the first DUE tickets and timers
        sqlx::query("INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, customer_id, channel, fields, created_by, created_at, updated_at, skills, watchers) \
             SELECT tenant_id, 'floor-' || id, type_key, subject, status, category, priority, impact, customer_id, channel, fields, created_by, created_at, updated_at, skills, watchers FROM tickets \
             WHERE tenant_id = 'bench' AND id IN (SELECT ticket_id FROM ticket_timers WHERE tenant_id = 'bench' AND fired_at IS NULL AND due_at <= $1)")
            .bind(time::to_micros(time::now()))
            .execute(&db.pool)
            .await
            .unwrap();
        let tenant = directory.tenant(common::TENANT).unwrap().clone();
        let t = Instant::now();
        let mut fired = 0;
        while fired < DUE {
            let k = timers::fire_due(&db, &tenant, time::now(), &Default::default())
                .await
                .unwrap();
            assert!(k > 0, "every due timer fires");
            fired += k;
        }
        let fire_time = t.elapsed();
        // the floor's timers, due in a year (the floor marks them regardless)
        sqlx::query("INSERT INTO ticket_timers (tenant_id, ticket_id, target, stage, due_at) \
             SELECT tenant_id, id, 'first_response', 'breached', created_at + 31536000000000 FROM tickets WHERE tenant_id = 'bench' AND id LIKE 'floor-seed-%'")
            .execute(&db.pool)
            .await
            .unwrap();
        let t = Instant::now();
        for i in 1..=DUE {
            floor_fire(&db, i).await;
        }
        let floor_time = t.elapsed();
        println!(
            "{backend:<10} due scan among {n}: {scan_median:.2?}   fire {DUE}: {:.2?} each ({:.0}/s)   plain SQL floor: {:.2?} each   ratio {:.2}x",
            fire_time / DUE as u32,
            DUE as f64 / fire_time.as_secs_f64(),
            floor_time / DUE as u32,
            fire_time.as_secs_f64() / floor_time.as_secs_f64()
        );
        let load = queues::roster(&db, &actor, None).await.unwrap();
        let opened: u32 = load.iter().map(|a| a.load.open).sum();
        println!("{backend:<10} (agents hold {opened} open tickets)");
        db.pool.close().await;
        target.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
