//! Inbound connectors, SQLite and PostgreSQL side by side:
//!
//! 1. a WeCom callback checked and read, in memory: signature, AES-256-CBC, the receiver,
//!    the XML (WeCom's published example message);
//! 2. storing a delivery (what the endpoint does before it answers);
//! 3. processing one delivery as the intake does — a group member's event on a known
//!    customer (the events mapping, candidates, idempotency, the event, the `done` mark in
//!    one transaction, tags evaluated after) and a new contact (the customers mapping too:
//!    dedupe, insert, identities, audit) — against the floor: the event row and the `done`
//!    mark written by plain SQL in one transaction.
//!
//! Run with `cargo xtask bench --bench connectors`.

use std::time::{Duration, Instant};

use shoal_base::storage::time;
use shoal_connectors::{inbox, wecom_crypto::Crypt, wecom_events, wecom_xml};
use shoal_crm::tenancy::{Actor, Directory};
use shoal_data::import::document::{self, Origin};

mod common;

const ROUNDS: usize = 300;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// WeCom's published example (加解密方案说明).
const MESSAGE: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

fn open_in_memory() -> Duration {
    let crypt = Crypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .unwrap();
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let plain = crypt
            .open(
                "477715d11cdb4164915debcba66cb864d751f3e6",
                "1409659813",
                "1372623149",
                MESSAGE,
            )
            .unwrap();
        std::hint::black_box(wecom_xml::parse(&plain).unwrap());
    }
    t.elapsed() / n
}

fn group_join(member: &str, i: usize) -> String {
    format!(
        "<xml><CreateTime>{}</CreateTime><Event>change_external_chat</Event><ChatId>wrB</ChatId>\
         <ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail><JoinScene>1</JoinScene>\
         <MemChangeList><Item>{member}</Item></MemChangeList></xml>",
        1_764_000_000 + i
    )
}

/// Stores and claims one delivery (untimed), for a round to process.
async fn claimed(db: &shoal_base::storage::Db, key: &str, body: &str) -> inbox::Delivery {
    assert!(
        inbox::receive(db, common::TENANT, "wecom:bench", key, body)
            .await
            .unwrap()
    );
    let mut c = inbox::claim(db, common::TENANT, time::now(), 1)
        .await
        .unwrap();
    c.pop().expect("the delivery just stored")
}

/// What the intake does for one delivery, timed.
async fn process(
    db: &shoal_base::storage::Db,
    actor: &Actor,
    d: &inbox::Delivery,
    doc: &serde_json::Value,
    with_customer: bool,
) -> Duration {
    let (customers, events) = wecom_events::mappings();
    let job = format!("connector:{}:{}", d.source, d.id);
    let prefix = format!("{}:{}:", d.source, d.key);
    let t = Instant::now();
    let mut tx = db.begin_write().await.unwrap();
    let applied = document::apply(
        &mut tx,
        db,
        actor,
        with_customer.then_some(customers),
        Some(events),
        doc,
        Origin {
            job_id: &job,
            key_prefix: &prefix,
        },
    )
    .await
    .unwrap();
    assert_eq!(applied.events.created, 1, "{:?}", applied.errors);
    assert!(inbox::done(&mut tx, common::TENANT, d, "ok").await.unwrap());
    tx.commit().await.unwrap();
    shoal_tags::evaluate_customers(db, None, &actor.tenant, &applied.touched)
        .await
        .unwrap();
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let per_message = open_in_memory();
    println!("WeCom callback verified, decrypted and read, in memory: {per_message:?}");
    let config = common::config();
    let dir = std::env::temp_dir().join(format!("shoal-bench-connectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| measurement | backend | median |");
    println!("| --- | --- | --- |");
    for target in common::targets(&dir, "connectors").await {
        let backend = if target.url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        let db = common::open(&target.url, &config).await;
        let directory = Directory::from_config(&config, &db.vault);
        let actor = common::actor(&db, &directory).await;
        common::seed_customers(&db, 1000, 7).await;
        // the known group members: customers with a WeCom identity
        for i in 0..50 {
            let d = claimed(&db, &format!("seed{i}"), "").await;
            let doc = wecom_events::contact_document(&format!("wmB{i}"), None);
            let m = wecom_xml::parse(group_join("x", i).as_bytes()).unwrap();
            let ev = wecom_events::event_document(
                &m,
                &format!("wmB{i}"),
                "add_external_contact",
                &format!("seed{i}"),
                time::now(),
            );
            let doc = wecom_events::contact_with_event(doc, ev);
            process(&db, &actor, &d, &doc, true).await;
        }

        // 2. storing a delivery
        let mut stored = Vec::new();
        for i in 0..ROUNDS {
            let body = group_join("wmB0", 100_000 + i);
            let t = Instant::now();
            inbox::receive(&db, common::TENANT, "wecom:store", &format!("s{i}"), &body)
                .await
                .unwrap();
            stored.push(t.elapsed());
        }

        // 3. processing vs the floor, interleaved
        let (mut join, mut contact, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..ROUNDS {
            let member = format!("wmB{}", i % 50);
            let xml = group_join(&member, i);
            let m = wecom_xml::parse(xml.as_bytes()).unwrap();
            let d = claimed(&db, &format!("j{i}"), &xml).await;
            let doc = wecom_events::event_document(
                &m,
                &member,
                "group_join",
                &format!("j{i}"),
                time::now(),
            );
            join.push(process(&db, &actor, &d, &serde_json::Value::Array(vec![doc]), false).await);

            let new = format!("wmNEW{i}");
            let d = claimed(&db, &format!("c{i}"), &xml).await;
            let doc = wecom_events::contact_document(&new, None);
            let ev = wecom_events::event_document(
                &m,
                &new,
                "add_external_contact",
                &format!("c{i}"),
                time::now(),
            );
            let doc = wecom_events::contact_with_event(doc, ev);
            contact.push(process(&db, &actor, &d, &doc, true).await);

            let d = claimed(&db, &format!("f{i}"), &xml).await;
            let customer: String = sqlx::query_scalar(
                "SELECT customer_id FROM customer_identities WHERE tenant_id = 'bench' AND channel = 'wecom' AND external_id = $1",
            )
            .bind(&member)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            let t = Instant::now();
            let mut tx = db.begin_write().await.unwrap();
            let now = time::to_micros(time::now());
            sqlx::query(
                "INSERT INTO events (tenant_id, id, customer_id, event_type, name, occurred_at, recorded_at, channel, payload, idempotency_key) \
                 VALUES ('bench', $1, $2, 'custom', 'wecom.group_join', $3, $3, 'wecom', '{}', $4)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&customer)
            .bind(now)
            .bind(format!("floor{i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
            assert!(
                inbox::done(&mut tx, common::TENANT, &d, "ok")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            floor.push(t.elapsed());
        }
        let (stored, join, contact, floor) =
            (median(stored), median(join), median(contact), median(floor));
        println!("| storing a delivery (the endpoint) | {backend} | {stored:?} |");
        println!("| a group member's event, processed | {backend} | {join:?} |");
        println!("| a new contact + its event, processed | {backend} | {contact:?} |");
        println!("| the floor: event row + done mark, plain SQL | {backend} | {floor:?} |");
        println!(
            "| member event / floor; new contact / floor | {backend} | {:.1}×; {:.1}× |",
            join.as_secs_f64() / floor.as_secs_f64(),
            contact.as_secs_f64() / floor.as_secs_f64()
        );
        db.pool.close().await;
        target.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
