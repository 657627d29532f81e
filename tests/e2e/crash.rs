//! Durability of the SOP runner and of SLA escalations, for real: `shoal serve` processes
//! share one database, one of them is killed with SIGKILL mid-way, restarted, and every due
//! step must have run exactly once, every due escalation fired exactly once — nothing lost,
//! nothing repeated.

use std::{process::Child, time::Duration};

use serde_json::json;
use sqlx::Row;

use crate::harness::{ALPHA, Backend, TestServer};

const CUSTOMERS: usize = 150;

fn host(s: &TestServer, dir: &std::path::Path) -> Child {
    s.spawn_host(
        dir,
        &[("SHOAL_SOP__POLL_MS", "5"), ("SHOAL_SOP__BATCH_SIZE", "10")],
    )
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&s.db().pool)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

async fn each_due_step_runs_exactly_once_across_kills(backend: Backend, hosts: usize) {
    // this server only sets up and reads: its own workers are off
    let Some(s) = TestServer::start_with(backend, |c| c.sop.workers = false).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("shoal-crash-{}-{hosts}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ids = Vec::new();
    for i in 0..CUSTOMERS {
        ids.push(
            s.create_customer(
                ALPHA,
                json!({ "displayName": format!("客户{i}"), "sourceChannel": "WEB" }),
            )
            .await,
        );
    }
    let msg = |id: &str| json!({ "id": id, "action": { "sendMessage": { "channel": "log", "template": format!("{id} for {{{{customer.name}}}}") } } });
    let sop = s
        .ok(
            ALPHA,
            "mutation($i: SopInput!) { createSop(input: $i) { id } }",
            json!({ "i": { "name": "Crash", "definition": { "steps": [
                msg("m1"),
                { "id": "w1", "action": { "waitSeconds": 1 } },
                msg("m2"),
                { "id": "w2", "action": { "waitSeconds": 1 } },
                msg("m3")
            ] } } }),
        )
        .await["createSop"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        ALPHA,
        "mutation($id: ID!) { activateSop(id: $id) { id } }",
        json!({ "id": sop }),
    )
    .await;
    let n = s
        .ok(
            ALPHA,
            "mutation($id: ID!, $c: [ID!]) { enrolCustomers(sopId: $id, customerIds: $c) }",
            json!({ "id": sop, "c": ids }),
        )
        .await;
    assert_eq!(n["enrolCustomers"], CUSTOMERS as i64);

    let done =
        "SELECT COUNT(*) AS n FROM sop_step_runs WHERE tenant_id = 'alpha' AND outcome = 'done'";
    let completed = "SELECT COUNT(*) AS n FROM sop_enrolments WHERE tenant_id = 'alpha' AND status = 'completed'";
    let mut children: Vec<Child> = (0..hosts).map(|_| host(&s, &dir)).collect();
    // kill the first host once the sequences are under way, before they finish
    let mut at_kill = (0, 0);
    for _ in 0..2000 {
        let d = count(&s, done).await;
        if d >= CUSTOMERS as i64 {
            children[0].kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
            children[0].wait().unwrap();
            at_kill = (d, count(&s, completed).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(at_kill.0 > 0, "the hosts made progress before the kill");
    assert!(
        at_kill.1 < CUSTOMERS as i64,
        "the kill came mid-run: {at_kill:?}"
    );
    children[0] = host(&s, &dir);
    let mut finished = false;
    for _ in 0..1200 {
        if count(&s, completed).await == CUSTOMERS as i64 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(finished, "every enrolment completed after the restart");
    // exactly once: each step of each enrolment ran once, each message was queued once
    let per_step = sqlx::query(
        "SELECT enrolment_id, step_id, COUNT(*) AS n FROM sop_step_runs WHERE tenant_id = 'alpha' AND outcome = 'done' \
         GROUP BY enrolment_id, step_id",
    )
    .fetch_all(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(
        per_step.len(),
        CUSTOMERS * 5,
        "every step of every enrolment ran"
    );
    for r in &per_step {
        assert_eq!(
            r.get::<i64, _>("n"),
            1,
            "step {} of {} ran more than once",
            r.get::<String, _>("step_id"),
            r.get::<String, _>("enrolment_id")
        );
    }
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) AS n FROM outbox_messages WHERE tenant_id = 'alpha'"
        )
        .await,
        CUSTOMERS as i64 * 3
    );
    assert_eq!(
        count(&s, "SELECT COUNT(DISTINCT customer_id || body) AS n FROM outbox_messages WHERE tenant_id = 'alpha'").await,
        CUSTOMERS as i64 * 3
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_host_killed_mid_run_loses_and_repeats_nothing() {
    each_due_step_runs_exactly_once_across_kills(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hosts_share_the_work_and_survive_a_kill() {
    each_due_step_runs_exactly_once_across_kills(Backend::Postgres, 2).await;
}

const TICKETS: usize = 400;

/// SLA escalations, for real: `shoal serve` processes share one database while every
/// ticket's first-response clock is breached at once; one host is killed with SIGKILL
/// mid-way and restarted; each ticket must have escalated exactly once — one `escalated`
/// entry, one priority raise, one `ticket.sla_breached` change.
async fn each_escalation_fires_exactly_once_across_kills(backend: Backend, hosts: usize) {
    let Some(s) = TestServer::start_with(backend, |c| c.sop.workers = false).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("shoal-crash-sla-{}-{hosts}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    s.ok(
        ALPHA,
        "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name } }",
        json!({ "p": [{ "name": "十分钟", "priorities": [3], "firstResponseMinutes": 10,
            "escalations": [{ "when": "BREACHED", "raisePriorityTo": 2 }] }] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "升级客户", "sourceChannel": "WEB" }),
        )
        .await;
    for i in 0..TICKETS {
        s.ok(
            ALPHA,
            "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
            json!({ "i": { "type": "general", "subject": format!("工单 {i}"), "customerId": c } }),
        )
        .await;
    }
    // eleven minutes on: every clock breached
    let d = 11 * 60_000_000_i64;
    for sql in [
        "UPDATE tickets SET created_at = created_at - $1 WHERE tenant_id = 'alpha'",
        "UPDATE ticket_entries SET created_at = created_at - $1 WHERE tenant_id = 'alpha'",
        "UPDATE ticket_timers SET due_at = due_at - $1 WHERE tenant_id = 'alpha'",
    ] {
        sqlx::query(sql)
            .bind(d)
            .execute(&s.db().pool)
            .await
            .unwrap();
    }
    let escalated =
        "SELECT COUNT(*) AS n FROM ticket_entries WHERE tenant_id = 'alpha' AND kind = 'escalated'";
    let mut children: Vec<Child> = (0..hosts).map(|_| host(&s, &dir)).collect();
    let mut at_kill = 0;
    for _ in 0..4000 {
        let n = count(&s, escalated).await;
        if n > 0 {
            children[0].kill().expect("SIGKILL");
            children[0].wait().unwrap();
            at_kill = count(&s, escalated).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(at_kill > 0, "the hosts escalated before the kill");
    assert!(
        at_kill < TICKETS as i64,
        "the kill came mid-way: {at_kill} of {TICKETS}"
    );
    children[0] = host(&s, &dir);
    let mut finished = false;
    for _ in 0..1200 {
        if count(&s, escalated).await >= TICKETS as i64 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // a few more rounds: nothing fires twice
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(finished, "every ticket escalated after the restart");
    for (what, sql) in [
        ("escalated entries", escalated.to_owned()),
        (
            "distinct tickets escalated",
            "SELECT COUNT(DISTINCT ticket_id) AS n FROM ticket_entries WHERE tenant_id = 'alpha' AND kind = 'escalated'".to_owned(),
        ),
        (
            "priority raises",
            "SELECT COUNT(*) AS n FROM ticket_entries WHERE tenant_id = 'alpha' AND kind = 'priority' AND author = 'sla'".to_owned(),
        ),
        (
            "ticket.sla_breached changes",
            "SELECT COUNT(*) AS n FROM internal_events WHERE tenant_id = 'alpha' AND kind = 'ticket.sla_breached'".to_owned(),
        ),
        (
            "tickets at P2",
            "SELECT COUNT(*) AS n FROM tickets WHERE tenant_id = 'alpha' AND priority = 2".to_owned(),
        ),
    ] {
        assert_eq!(count(&s, &sql).await, TICKETS as i64, "{what}");
    }
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_host_killed_mid_escalation_repeats_nothing() {
    each_escalation_fires_exactly_once_across_kills(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hosts_share_escalations_and_survive_a_kill() {
    each_escalation_fires_exactly_once_across_kills(Backend::Postgres, 2).await;
}
