//! Customer data protection (docs/data-protection.md), on both backends: phones, e-mails
//! and identities unreadable in the database files (checked by grepping the SQLite files and
//! a `pg_dump`) while exact look-ups still work; formats opened by Python's `cryptography`;
//! the register of personal tables compared with the live schema; a data-subject export
//! holding every linked row; an erasure that leaves nothing personal and the books balanced;
//! the consent ledger governing marketing; retention; key rotation under load.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use sqlx::Row as _;

use crate::harness::{
    ALPHA, ALPHA_READONLY, Backend, TEST_MASTER_KEY, TestServer, code, eventually, fields,
};

const PHONE: &str = "13812345678";
const PHONE_E164: &str = "+8613812345678";
const EMAIL: &str = "li.lei.pipl@example.com";
const UNIONID: &str = "wx-unionid-pipl-7788";
const NAME: &str = "李雷隐私";

async fn person(s: &TestServer) -> String {
    s.create_customer(
        ALPHA,
        json!({ "displayName": NAME, "phones": [PHONE], "emails": [EMAIL], "sourceChannel": "WECOM",
                "identities": [{ "channel": "WECHAT", "externalId": UNIONID }],
                "attributes": { "会员等级": "金卡" } }),
    )
    .await
}

async fn scalar_i64(s: &TestServer, sql: &str, binds: &[&str]) -> i64 {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_one(&s.db().pool).await.unwrap().try_get(0).unwrap()
}

async fn texts(s: &TestServer, sql: &str, binds: &[&str]) -> Vec<String> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_all(&s.db().pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.try_get::<Option<String>, _>(0)
                .unwrap()
                .unwrap_or_default()
        })
        .collect()
}

/// Everything the database keeps on disk, as text: the SQLite file and its WAL, or a
/// `pg_dump` of the PostgreSQL database.
fn database_bytes(s: &TestServer) -> String {
    if let Some(path) = s.storage_url.strip_prefix("sqlite://") {
        let mut all = std::fs::read(path).unwrap();
        all.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        String::from_utf8_lossy(&all).into_owned()
    } else {
        let out = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&s.storage_url)
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn personal_fields_are_unreadable_at_rest_and_exact_lookups_still_work(s: &TestServer) {
    let id = person(s).await;
    // a change, a merge and an event: the audit log, the merge record and the contacts
    // hold the values too
    s.ok(
        ALPHA,
        "mutation($id: ID!, $i: UpdateCustomerInput!) { updateCustomer(id: $id, input: $i) { id } }",
        json!({ "id": id, "i": { "emails": [EMAIL, "second.pipl@example.com"] } }),
    )
    .await;
    let twin = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "李雷副本", "phones": [PHONE], "sourceChannel": "WEB" }),
        )
        .await;
    let merge = s
        .ok(
            ALPHA,
            "mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { id reason } }",
            json!({ "input": { "survivorId": id, "absorbedId": twin } }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }",
        json!({ "input": [{ "identity": { "channel": "WECHAT", "externalId": UNIONID }, "type": "CUSTOM",
                "name": "store_visit", "occurredAt": "2026-11-01T00:00:00Z" }] }),
    )
    .await;

    // exact look-ups: search by phone and e-mail, filter by identity, all find the person
    for search in [PHONE, PHONE_E164, EMAIL, "LI.LEI.PIPL@EXAMPLE.COM"] {
        let found = s
            .ok(
                ALPHA,
                "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id phones emails } } } }",
                json!({ "f": { "search": search } }),
            )
            .await;
        let edges = found["customers"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "search {search}: {found}");
        assert_eq!(edges[0]["node"]["id"], id.as_str());
        assert_eq!(edges[0]["node"]["phones"], json!([PHONE_E164]));
    }
    let by_identity = s
        .ok(
            ALPHA,
            "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id timeline(first: 5) { edges { node { name } } } identities { channel externalId } } } } }",
            json!({ "f": { "identity": { "channel": "WECHAT", "externalId": UNIONID } } }),
        )
        .await;
    let node = &by_identity["customers"]["edges"][0]["node"];
    assert_eq!(node["id"], id.as_str());
    assert_eq!(node["timeline"]["edges"][0]["node"]["name"], "store_visit");
    assert_eq!(
        node["identities"],
        json!([{ "channel": "WECHAT", "externalId": UNIONID }])
    );
    // the merge's reason names the shared phone, read back opened
    let history = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { history(first: 10) { action changes } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        history.to_string().contains(EMAIL),
        "audit details open: {history}"
    );
    let _ = merge;

    // nothing readable at rest: not the phone, the e-mail nor the identity
    let bytes = database_bytes(s);
    for secret in [PHONE, EMAIL, UNIONID, "second.pipl@example.com"] {
        assert!(
            !bytes.contains(secret),
            "`{secret}` is readable in the database"
        );
    }
    assert!(
        bytes.contains("李雷"),
        "names are not sealed (they are searched by prefix)"
    );

    // the formats, opened by Python's `cryptography` with the master key alone
    let phones = texts(
        s,
        "SELECT phones FROM customers WHERE tenant_id = 'alpha' AND id = $1",
        &[&id],
    )
    .await;
    let identity = texts(
        s,
        "SELECT external_id_sealed FROM customer_identities WHERE tenant_id = 'alpha' AND customer_id = $1",
        &[&id],
    )
    .await;
    let indexes = texts(
        s,
        "SELECT value FROM customer_contacts WHERE tenant_id = 'alpha' AND customer_id = $1 AND kind = 'phone'",
        &[&id],
    )
    .await;
    let external = texts(
        s,
        "SELECT external_id FROM customer_identities WHERE tenant_id = 'alpha' AND customer_id = $1",
        &[&id],
    )
    .await;
    let request = json!({
        "master": std::fs::read_to_string(TEST_MASTER_KEY).unwrap().trim(),
        "tenant": "alpha",
        "data_key": wrapped_key(s, "data").await,
        "index_key": wrapped_key(s, "index").await,
        "sealed": { "customers.phones": phones[0], "customer_identities.external_id": identity[0] },
        "index": [["phone", PHONE_E164], ["identity:wechat", UNIONID]],
    });
    let opened = crate::harness::python_json("vault/open.py", &request);
    assert_eq!(
        opened["opened"]["customers.phones"],
        json!([PHONE_E164]).to_string()
    );
    assert_eq!(opened["opened"]["customer_identities.external_id"], UNIONID);
    assert_eq!(
        opened["index"][0],
        indexes[0].as_str(),
        "the blind index of the phone"
    );
    assert_eq!(
        opened["index"][1],
        external[0].as_str(),
        "the blind index of the identity"
    );
}

/// Columns that name a customer: a table with one holds personal data.
const CUSTOMER_COLUMNS: &[&str] = &[
    "customer_id",
    "customer_a",
    "customer_b",
    "survivor_id",
    "absorbed_id",
];

/// Every (table, column) of the live schema.
async fn schema(s: &TestServer) -> Vec<(String, String)> {
    let sql = if s.storage_url.starts_with("sqlite://") {
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
    } else {
        "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = current_schema()"
    };
    sqlx::query(sql)
        .fetch_all(&s.db().pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
}

async fn the_register_covers_every_table_naming_a_customer(s: &TestServer) {
    use shoal_privacy::register::{TABLES, UNLINKED};
    let columns = schema(s).await;
    let tables: std::collections::BTreeSet<&str> =
        columns.iter().map(|(t, _)| t.as_str()).collect();
    let naming: std::collections::BTreeSet<&str> = columns
        .iter()
        .filter(|(_, c)| CUSTOMER_COLUMNS.contains(&c.as_str()))
        .map(|(t, _)| t.as_str())
        .chain(["customers", "audit_log"])
        .collect();
    let registered: std::collections::BTreeSet<&str> = TABLES
        .iter()
        .map(|t| t.name)
        .chain(UNLINKED.iter().map(|(t, _)| *t))
        .collect();
    let missing: Vec<&&str> = naming.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "tables naming a customer but missing from shoal_privacy::register: {missing:?}"
    );
    for t in &registered {
        assert!(
            tables.contains(t),
            "the register names `{t}`, which the schema does not have"
        );
    }
    // every column a register entry uses exists
    for t in TABLES {
        let has = |c: &str| columns.iter().any(|(tt, cc)| tt == t.name && cc == c);
        for (c, _) in t.sealed {
            assert!(has(c), "{}.{c}", t.name);
        }
        for c in t.hidden {
            assert!(has(c), "{}.{c}", t.name);
        }
        if let shoal_privacy::register::OnErase::Redact(sets) = t.on_erase {
            for (c, _) in sets {
                assert!(has(c), "{}.{c}", t.name);
            }
        }
    }
}

/// A person with a row in as many register tables as the API reaches: events, a tag, a
/// task, a follow-up, an opt-out, a consent, a ticket, a merged-in twin, a bill.
async fn busy_person(s: &TestServer) -> (String, String) {
    let id = person(s).await;
    let twin = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "李雷副本", "phones": [PHONE], "sourceChannel": "WEB" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }",
        json!({ "input": [
            { "customerId": twin, "type": "CUSTOM", "name": "twin_visit", "occurredAt": "2026-10-01T00:00:00Z" },
            { "customerId": id, "type": "ORDER", "occurredAt": "2026-11-01T00:00:00Z", "amount": { "amount": "99.00", "currency": "CNY" } } ] }),
    )
    .await;
    // the dispatcher evaluates both profiles shortly after (the order moves the person on
    // from `lead`): let it finish before the merge, so its stage change, audit entry and
    // stage history are rows of the person like the others, not written after an erasure
    eventually(
        "the person's stage derived from the order",
        async || {
            s.ok(
                ALPHA,
                "query($id: ID!) { customer(id: $id) { lifecycleStage } }",
                json!({ "id": id }),
            )
            .await["customer"]["lifecycleStage"]
                .clone()
        },
        |stage: &Value| stage != "LEAD",
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { id } }",
        json!({ "input": { "survivorId": id, "absorbedId": twin } }),
    )
    .await;
    let tag = s.manual_tag(ALPHA, "隐私测试").await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]!) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": [id] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($i: NewTaskInput!) { createTask(input: $i) { id } }",
        json!({ "i": { "customerId": id, "title": format!("回访{NAME}") } }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($i: FollowUpInput!) { recordFollowUp(input: $i) { id } }",
        json!({ "i": { "customerId": id, "kind": "call", "note": format!("{NAME}说周末来") } }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"sms\", optedOut: true) }",
        json!({ "c": id }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($c: ID!) { recordConsent(customerId: $c, purpose: \"marketing\", channel: \"wecom\", granted: true, source: \"门店表单\") { id } }",
        json!({ "c": id }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
        json!({ "i": { "type": "general", "subject": format!("{NAME}投诉"), "customerId": id } }),
    )
    .await;
    (id, twin)
}

async fn an_export_holds_every_linked_row_opened(s: &TestServer) {
    let (id, twin) = busy_person(s).await;
    let doc = s
        .ok(
            ALPHA,
            "query($c: ID!) { exportCustomerData(customerId: $c) }",
            json!({ "c": id }),
        )
        .await["exportCustomerData"]
        .clone();
    assert_eq!(doc["format"], "shoal.customer-data/1");
    assert_eq!(
        doc["profiles"],
        json!([id, twin]),
        "the person and the profile merged into them"
    );
    let tables = doc["tables"].as_object().unwrap();
    for t in shoal_privacy::register::TABLES {
        assert!(tables.contains_key(t.name), "the export lists {}", t.name);
    }
    let rows = |t: &str| tables[t].as_array().unwrap().clone();
    let me = rows("customers")
        .into_iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        me["phones"],
        json!([PHONE_E164]),
        "sealed lists opened: {me}"
    );
    assert_eq!(me["display_name"], NAME);
    assert!(
        me.get("name_key").is_none(),
        "blind and derived columns are left out"
    );
    assert_eq!(
        rows("customer_identities")[0]["external_id_sealed"],
        UNIONID
    );
    assert!(rows("customer_identities")[0].get("external_id").is_none());
    assert_eq!(rows("events").len(), 2, "events of both profiles");
    for t in [
        "customer_tags",
        "tasks",
        "follow_ups",
        "contact_opt_outs",
        "tickets",
        "customer_merges",
    ] {
        assert!(!rows(t).is_empty(), "{t} in the export");
    }
    assert_eq!(
        rows("consents").len(),
        2,
        "the opt-out's withdrawal and the grant"
    );
    assert!(doc.to_string().contains(EMAIL));
    // audited; masked readers are refused rather than shown masked values
    let audit = texts(
        s,
        "SELECT action FROM audit_log WHERE tenant_id = 'alpha' AND entity_id = $1 AND action = 'customer.export_data'",
        &[&id],
    )
    .await;
    assert_eq!(audit.len(), 1);
    let e = s
        .err(
            ALPHA_READONLY,
            "query($c: ID!) { exportCustomerData(customerId: $c) }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN", "{e}");
    let e = s
        .err(
            ALPHA,
            "query { exportCustomerData(customerId: \"nobody\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&e), "NOT_FOUND");
}

async fn an_erasure_leaves_nothing_personal_and_the_books_balanced(s: &TestServer) {
    crate::settlement::with_sample(s).await;
    crate::settlement::reference_data(s).await;
    let (id, twin) = busy_person(s).await;
    let merge_id = texts(
        s,
        "SELECT id FROM customer_merges WHERE tenant_id = 'alpha' AND survivor_id = $1",
        &[&id],
    )
    .await
    .remove(0);
    let bill = s
        .ok(
            ALPHA,
            "mutation($input: SettleBillInput!) { settleBill(input: $input) { id total { amount } } }",
            json!({ "input": { "reference": "ORDER-PIPL", "region": "上海", "currency": "CNY", "customerId": id,
                    "participantIds": ["staff-1"], "lines": [{ "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "1" }] } }),
        )
        .await["settleBill"]
        .clone();
    let bill_id = bill["id"].as_str().unwrap().to_owned();
    let books_sql = "SELECT CAST(COALESCE(SUM(amount_units), 0) AS BIGINT) FROM ledger_postings WHERE tenant_id = 'alpha' AND bill_id = $1";
    let before = scalar_i64(s, books_sql, &[&bill_id]).await;
    let postings = scalar_i64(
        s,
        "SELECT COUNT(*) FROM ledger_postings WHERE tenant_id = 'alpha' AND bill_id = $1",
        &[&bill_id],
    )
    .await;
    assert!(postings > 0);

    // refused: without a reason, without the right, for nobody
    let erase = "mutation($c: ID!, $r: String!) { eraseCustomer(customerId: $c, reason: $r) { id customerId profiles reason actorId at tables } }";
    assert_eq!(
        fields(&s.err(ALPHA, erase, json!({ "c": id, "r": " " })).await),
        ["reason"]
    );
    assert_eq!(
        code(
            &s.err(
                ALPHA_READONLY,
                erase,
                json!({ "c": id, "r": "本人申请删除" })
            )
            .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &s.err(ALPHA, erase, json!({ "c": "nobody", "r": "x" }))
                .await
        ),
        "NOT_FOUND"
    );

    let cert = s
        .ok(
            ALPHA,
            erase,
            json!({ "c": id, "r": "本人依《个人信息保护法》申请删除" }),
        )
        .await["eraseCustomer"]
        .clone();
    assert_eq!(cert["profiles"], json!([id, twin]));
    assert_eq!(cert["actorId"], "boss");
    assert_eq!(cert["tables"]["events"]["deleted"], 2);
    assert_eq!(cert["tables"]["bills"]["kept"], 1);
    assert!(
        !cert.to_string().contains(PHONE) && !cert.to_string().contains(NAME),
        "{cert}"
    );

    // nothing linked is left but tombstones: every register table checked by its rule
    let ids = [id.clone(), twin.clone()];
    let mut conn = s.db().pool.acquire().await.unwrap();
    let doc_after = shoal_privacy::register::TABLES.len();
    assert!(doc_after > 20);
    for t in shoal_privacy::register::TABLES {
        let link = match t.link {
            shoal_privacy::register::Link::Column(c) => format!("{c} IN ($1, $2)"),
            shoal_privacy::register::Link::Either(a, b) => {
                format!("({a} IN ($1, $2) OR {b} IN ($1, $2))")
            }
            shoal_privacy::register::Link::Through {
                column,
                parent,
                parent_column,
            } => format!(
                "{column} IN (SELECT id FROM {parent} WHERE tenant_id = 'alpha' AND {parent_column} IN ($1, $2))"
            ),
            shoal_privacy::register::Link::AuditEntity => {
                "entity_type = 'customer' AND entity_id IN ($1, $2) AND action <> 'customer.erase'"
                    .into()
            }
            shoal_privacy::register::Link::Mentions(_) => continue,
        };
        let n: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) FROM {} WHERE tenant_id = 'alpha' AND {link}",
            t.name
        ))
        .bind(&ids[0])
        .bind(&ids[1])
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        if let shoal_privacy::register::OnErase::Delete = t.on_erase {
            assert_eq!(n, 0, "{} rows left", t.name);
        }
    }
    drop(conn);
    let profile = texts(
        s,
        "SELECT display_name || '|' || phones || '|' || emails || '|' || name_key FROM customers WHERE tenant_id = 'alpha' AND id IN ($1, $2)",
        &[&id, &twin],
    )
    .await;
    assert_eq!(profile, ["(erased)|[]|[]|", "(erased)|[]|[]|"]);
    let details = texts(
        s,
        "SELECT changes FROM audit_log WHERE tenant_id = 'alpha' AND entity_type = 'customer' AND entity_id = $1 AND action <> 'customer.erase'",
        &[&id],
    )
    .await;
    assert!(details.len() >= 4);
    for d in &details {
        assert!(
            d.starts_with("{\"redacted\":\"erasure\""),
            "audit details tombstoned: {d}"
        );
    }
    for t in ["tasks", "tickets"] {
        let col = if t == "tasks" { "title" } else { "subject" };
        assert_eq!(
            texts(
                s,
                &format!("SELECT {col} FROM {t} WHERE tenant_id = 'alpha' AND customer_id = $1"),
                &[&id]
            )
            .await,
            ["(erased)"]
        );
    }
    // the audit log still refuses any other change
    let refused = sqlx::query(
        "UPDATE audit_log SET changes = '{}' WHERE tenant_id = 'alpha' AND entity_id = $1",
    )
    .bind(&id)
    .execute(&s.db().pool)
    .await;
    assert!(refused.is_err(), "the audit log stays append-only");

    // the books: the bill and its postings unchanged, under the pseudonymous id
    assert_eq!(scalar_i64(s, books_sql, &[&bill_id]).await, before);
    assert_eq!(
        scalar_i64(
            s,
            "SELECT COUNT(*) FROM ledger_postings WHERE tenant_id = 'alpha' AND bill_id = $1",
            &[&bill_id]
        )
        .await,
        postings
    );
    assert_eq!(
        texts(
            s,
            "SELECT customer_id FROM bills WHERE tenant_id = 'alpha' AND id = $1",
            &[&bill_id]
        )
        .await,
        [id.as_str()]
    );
    // the person is gone from the API; the merge cannot be undone; a second erasure is refused
    let gone = s
        .err(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND");
    let e = s
        .err(
            ALPHA,
            "mutation($m: ID!) { unmergeCustomers(mergeId: $m) { keptFields } }",
            json!({ "m": merge_id }),
        )
        .await;
    assert_eq!(fields(&e), ["mergeId"], "{e}");
    assert_eq!(
        code(&s.err(ALPHA, erase, json!({ "c": id, "r": "again" })).await),
        "NOT_FOUND"
    );
    let certs = s
        .ok(
            ALPHA,
            "query($c: ID) { erasures(customerId: $c) }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(certs["erasures"][0]["id"], cert["id"]);
    // nothing of the phone or identity can be found any more
    let found = s
        .ok(ALPHA, "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id } } } }",
            json!({ "f": { "identity": { "channel": "WECHAT", "externalId": UNIONID } } }))
        .await;
    assert_eq!(found["customers"]["edges"], json!([]));
}

async fn consent_governs_marketing_and_opt_outs_are_withdrawals(s: &TestServer) {
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "同意测试", "sourceChannel": "WEB" }),
        )
        .await;
    let dry_run = |c: String| async move {
        s.ok(
            ALPHA,
            "query($d: SopDefinitionInput, $c: [ID!], $to: DateTime!) { simulateSop(definition: $d, customerIds: $c, from: \"2026-12-01T04:00:00Z\", to: $to) { stepId outcome detail } }",
            json!({ "d": { "steps": [
                { "id": "promo", "action": { "sendMessage": { "channel": "log", "template": "新品上市" } } } ] },
                "c": [c], "to": "2026-12-02T00:00:00Z" }),
        )
        .await["simulateSop"][0]
            .clone()
    };
    let first = dry_run(id.clone()).await;
    assert_ne!(first["outcome"], "done", "no grant, no marketing: {first}");
    assert!(
        first["detail"].as_str().unwrap().contains("consent"),
        "{first}"
    );
    let grant = "mutation($c: ID!, $g: Boolean!, $ch: String) { recordConsent(customerId: $c, purpose: \"marketing\", channel: $ch, granted: $g, source: \"小程序授权\") { purpose channel granted source actorId } }";
    let g = s
        .ok(ALPHA, grant, json!({ "c": id, "g": true, "ch": "*" }))
        .await;
    assert_eq!(
        g["recordConsent"],
        json!({ "purpose": "marketing", "channel": "*", "granted": true, "source": "小程序授权", "actorId": "boss" })
    );
    assert_eq!(dry_run(id.clone()).await["outcome"], "done");
    // an opt-out on the channel is a withdrawal in the same ledger, and it stands
    s.ok(
        ALPHA,
        "mutation($c: ID!) { setContactOptOut(customerId: $c, channel: \"log\", optedOut: true) }",
        json!({ "c": id }),
    )
    .await;
    let ledger = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { consents { purpose channel granted source } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        ledger["customer"]["consents"],
        json!([
            { "purpose": "marketing", "channel": "log", "granted": false, "source": "opt_out" },
            { "purpose": "marketing", "channel": "*", "granted": true, "source": "小程序授权" },
        ])
    );
    assert_ne!(dry_run(id.clone()).await["outcome"], "done");
    // a campaign reaches only the customer who consented
    let other = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "未同意", "sourceChannel": "WEB" }),
        )
        .await;
    let agreed = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "已同意", "sourceChannel": "WEB" }),
        )
        .await;
    s.ok(ALPHA, grant, json!({ "c": agreed, "g": true, "ch": "log" }))
        .await;
    let campaign = s
        .ok(
            ALPHA,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({ "i": { "name": "同意才发", "channel": "log", "audience": { "customers": [other, agreed] },
                "variants": [{ "key": "a", "template": "新品上市" }] } }),
        )
        .await["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        ALPHA,
        "mutation($id: ID!) { submitCampaign(id: $id) { id } }",
        json!({ "id": campaign }),
    )
    .await;
    let mut recipients = Value::Null;
    for _ in 0..200 {
        recipients = s
            .ok(ALPHA, "query($id: ID!) { campaign(id: $id) { recipients(first: 10) { customerId status reason } } }",
                json!({ "id": campaign }))
            .await["campaign"]["recipients"]
            .clone();
        let settled = recipients
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "queued" && r["status"] != "due");
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let of = |c: &str| {
        recipients
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["customerId"] == c)
            .cloned()
            .unwrap()
    };
    assert_eq!(of(&agreed)["status"], "sent", "{recipients}");
    assert_ne!(of(&other)["status"], "sent", "{recipients}");
    assert!(
        of(&other)["reason"].as_str().unwrap().contains("consent"),
        "{recipients}"
    );
    // bad input names the field
    let e = s
        .err(ALPHA, "mutation($c: ID!) { recordConsent(customerId: $c, purpose: \"spam\", granted: true, source: \"x\") { id } }", json!({ "c": id }))
        .await;
    assert_eq!(fields(&e), ["purpose"]);
}

async fn retention_prunes_old_bodies_and_tombstones_old_audit_details(s: &TestServer) {
    let id = person(s).await;
    // a message that carries the phone in its body, sent
    s.greeted(ALPHA, &[&id]).await;
    for _ in 0..200 {
        let sent = scalar_i64(
            s,
            "SELECT COUNT(*) FROM outbox_messages WHERE customer_id = $1 AND status = 'sent'",
            &[&id],
        )
        .await;
        if sent == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = texts(
        s,
        "SELECT body FROM outbox_messages WHERE customer_id = $1",
        &[&id],
    )
    .await;
    assert!(body[0].contains(PHONE_E164), "{body:?}");
    let before = texts(
        s,
        "SELECT changes FROM audit_log WHERE tenant_id = 'alpha' AND entity_id = $1",
        &[&id],
    )
    .await;
    assert!(
        before.iter().all(|c| c.starts_with("s1:")),
        "audit details sealed: {before:?}"
    );
    let mut config = crate::harness::base_config();
    config
        .tenants
        .get_mut("alpha")
        .unwrap()
        .retention
        .audit_details_days = 30;
    let directory = shoal_crm::tenancy::Directory::from_config(&config, &s.db().vault);
    let tenant = directory.tenant("alpha").unwrap().clone();
    // today nothing is old enough
    let now = chrono::Utc::now();
    let pruned = shoal_privacy::retention::run_once(s.db(), &tenant, now)
        .await
        .unwrap();
    assert_eq!(pruned, shoal_privacy::retention::Pruned::default());
    // in a year, every entry is
    let later = now + chrono::Duration::days(365);
    let pruned = shoal_privacy::retention::run_once(s.db(), &tenant, later)
        .await
        .unwrap();
    assert!(pruned.audit_details >= 1, "{pruned:?}");
    assert_eq!(pruned.outbox_bodies, 1, "{pruned:?}");
    let body = texts(
        s,
        "SELECT body FROM outbox_messages WHERE customer_id = $1",
        &[&id],
    )
    .await;
    assert_eq!(body, ["{}"]);
    let after = texts(
        s,
        "SELECT changes FROM audit_log WHERE tenant_id = 'alpha' AND entity_id = $1",
        &[&id],
    )
    .await;
    assert!(
        after.iter().all(|c| c == "{\"redacted\":\"retention\"}"),
        "{after:?}"
    );
    // the history still says who did what, when
    let history = s
        .ok(ALPHA, "query($id: ID!) { customer(id: $id) { history(first: 5) { action actorId changes } } }", json!({ "id": id }))
        .await;
    assert_eq!(
        history["customer"]["history"][0]["action"],
        "customer.create"
    );
    assert_eq!(history["customer"]["history"][0]["actorId"], "boss");
    // a second pass finds nothing more of what the first took (the workers may have
    // dispatched internal events in between, which it then takes too)
    let again = shoal_privacy::retention::run_once(s.db(), &tenant, later)
        .await
        .unwrap();
    assert_eq!(
        (again.outbox_bodies, again.audit_details),
        (0, 0),
        "{again:?}"
    );
}

async fn keys_rotate_under_load_and_everything_still_opens(s: &TestServer) {
    let id = person(s).await;
    // writers keep creating customers while every value is sealed again
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (s.addr, stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = json!({
                    "query": "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                    "variables": { "input": { "displayName": format!("轮换{n}"), "phones": [format!("139{:08}", n)], "sourceChannel": "WEB" } },
                });
                let headers =
                    format!("Content-Type: application/json\r\nAuthorization: Bearer {ALPHA}\r\n");
                let (status, r) =
                    crate::harness::http(addr, "POST", "/graphql", &headers, &body.to_string())
                        .await;
                assert!(status == 200 && !r.contains("\"errors\""), "{r}");
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let config = crate::harness::base_config();
    let (version, resealed) = shoal_privacy::rekey::reencrypt(
        s.db(),
        &config.keys,
        "alpha",
        Duration::ZERO,
        |_, _, _| {},
    )
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert_eq!(version, 2);
    assert!(
        resealed >= 3 && written > 0,
        "resealed {resealed}, written {written}"
    );
    let old = scalar_i64(
        s,
        "SELECT COUNT(*) FROM customers WHERE tenant_id = 'alpha' AND phones LIKE 's1:1:%'",
        &[],
    )
    .await;
    assert_eq!(old, 0, "nothing is left under data key v1");
    let found = s
        .ok(ALPHA, "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id phones } } } }",
            json!({ "f": { "search": PHONE } }))
        .await;
    assert_eq!(found["customers"]["edges"][0]["node"]["id"], id.as_str());
    assert_eq!(
        found["customers"]["edges"][0]["node"]["phones"],
        json!([PHONE_E164])
    );
    let history = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { history(first: 5) { changes } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        history.to_string().contains(EMAIL),
        "audit details re-sealed and open: {history}"
    );
    let count = s
        .ok(
            ALPHA,
            "query { customers(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(count["customers"]["totalCount"], json!(1 + written));

    // a new master key: every tenant key wrapped again; a host with only the new key opens all
    let new_key = dir_key(s);
    let mut next = crate::harness::base_config();
    next.keys.master.insert(
        "k2".into(),
        shoal_base::config::MasterKeyConfig {
            env: None,
            file: Some(new_key.clone()),
            generate: true,
        },
    );
    next.keys.current = "k2".into();
    let done = shoal_base::vault::Vault::rewrap(&s.db().pool, &next.keys)
        .await
        .unwrap();
    assert!(done.rewrapped >= 3, "{done:?}");
    let masters = texts(s, "SELECT DISTINCT master_id FROM tenant_keys", &[]).await;
    assert_eq!(masters, ["k2"]);
    let only_new = s
        .start_beside(|c| {
            c.keys.master.clear();
            c.keys.master.insert(
                "k2".into(),
                shoal_base::config::MasterKeyConfig {
                    env: None,
                    file: Some(new_key.clone()),
                    generate: false,
                },
            );
            c.keys.current = "k2".into();
            c.sop.workers = false;
            c.notify.workers = false;
        })
        .await;
    let seen = only_new
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { phones identities { externalId } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen["customer"]["phones"], json!([PHONE_E164]));
    assert_eq!(seen["customer"]["identities"][0]["externalId"], UNIONID);
    only_new.stop().await;
}

const REENCRYPTIONS: &str =
    "{ reencryptions { id state version requestedBy resealed remaining step error } }";

/// The newest re-encryption once `done` says so (the workers poll every 2 s).
async fn newest_reencryption(s: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..120 {
        let jobs = s.ok(ALPHA, REENCRYPTIONS, json!({})).await;
        let newest = jobs["reencryptions"][0].clone();
        if done(&newest) {
            return newest;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the re-encryption did not get there in 30 s");
}

/// `reencryptCustomerData`: a background job makes a new data key, waits for the hosts to
/// load it, re-seals every value in batches with its progress visible, and is resumed by
/// another worker when the host holding it stops renewing its lease.
async fn reencryption_runs_in_the_background_and_survives_a_lost_host(s: &TestServer) {
    let id = person(s).await;
    for i in 0..20 {
        s.create_customer(
            ALPHA,
            json!({ "displayName": format!("批量{i}"), "phones": [format!("1390000{i:04}")], "sourceChannel": "WEB" }),
        )
        .await;
    }
    let ask = "mutation { reencryptCustomerData { id state requestedBy } }";
    let denied = s.err(ALPHA_READONLY, ask, json!({})).await;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let job = s.ok(ALPHA, ask, json!({})).await["reencryptCustomerData"].clone();
    assert_eq!(job["state"], "requested");
    let again = s.err(ALPHA, ask, json!({})).await;
    assert_eq!(fields(&again), ["tenant"], "one at a time: {again}");

    // a worker makes data key v2, then waits for every host to load it
    let waiting = newest_reencryption(s, |j| j["state"] == "waiting").await;
    assert_eq!(waiting["version"], 2);
    assert_eq!(waiting["resealed"], 0);
    let old = "SELECT COUNT(*) FROM customers WHERE tenant_id = 'alpha' AND phones LIKE 's1:1:%'";
    assert_eq!(
        scalar_i64(s, old, &[]).await,
        21,
        "nothing re-sealed while hosts load the key"
    );
    // the wait (two key refreshes, 20 s) elapses
    sqlx::query("UPDATE reencryptions SET not_before = 0 WHERE tenant_id = 'alpha'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    let done = newest_reencryption(s, |j| j["state"] == "done").await;
    assert_eq!(done["id"], job["id"]);
    assert_eq!(done["remaining"], 0);
    assert!(
        done["resealed"].as_i64().unwrap() >= 22,
        "21 phone lists and more: {done}"
    );
    assert_eq!(scalar_i64(s, old, &[]).await, 0);
    let seen = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { phones } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen["customer"]["phones"], json!([PHONE_E164]));
    let audited = scalar_i64(
        s,
        "SELECT COUNT(*) FROM audit_log WHERE tenant_id = 'alpha' AND action = 'keys.reencrypt'",
        &[],
    )
    .await;
    assert_eq!(audited, 1);

    // a host that took the next job and died: its lease holds the job until it runs out,
    // then a live worker takes it over and finishes
    let next = s.ok(ALPHA, ask, json!({})).await["reencryptCustomerData"].clone();
    let next_id = next["id"].as_str().unwrap();
    let held = format!(
        "UPDATE reencryptions SET lease_owner = 'dead-host', lease_until = {} WHERE tenant_id = 'alpha' AND id = $1",
        (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp_micros()
    );
    sqlx::query(&held)
        .bind(next_id)
        .execute(&s.db().pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = s.ok(ALPHA, REENCRYPTIONS, json!({})).await["reencryptions"][0].clone();
    assert_eq!(
        still["state"], "requested",
        "a live lease is left alone: {still}"
    );
    sqlx::query("UPDATE reencryptions SET lease_until = 1 WHERE tenant_id = 'alpha' AND id = $1")
        .bind(next_id)
        .execute(&s.db().pool)
        .await
        .unwrap();
    let waiting = newest_reencryption(s, |j| j["state"] == "waiting").await;
    assert_eq!(waiting["version"], 3);
    sqlx::query("UPDATE reencryptions SET not_before = 0 WHERE tenant_id = 'alpha'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    let resumed = newest_reencryption(s, |j| j["state"] == "done").await;
    assert_eq!(resumed["id"], next["id"]);
    assert!(resumed["resealed"].as_i64().unwrap() >= 22, "{resumed}");
    let owner = texts(
        s,
        "SELECT lease_owner FROM reencryptions WHERE tenant_id = 'alpha' AND id = $1",
        &[next_id],
    )
    .await;
    assert!(owner[0].starts_with("host-"), "taken over: {owner:?}");
    let v2 = "SELECT COUNT(*) FROM customers WHERE tenant_id = 'alpha' AND phones LIKE 's1:2:%'";
    assert_eq!(scalar_i64(s, v2, &[]).await, 0);
}

fn dir_key(s: &TestServer) -> std::path::PathBuf {
    let base = s
        .storage_url
        .strip_prefix("sqlite://")
        .map(|p| std::path::Path::new(p).parent().unwrap().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("k2-{}.key", uuid::Uuid::now_v7()))
}

crate::on_both_backends!(
    personal_fields_are_unreadable_at_rest_and_exact_lookups_still_work,
    the_register_covers_every_table_naming_a_customer,
    an_export_holds_every_linked_row_opened,
    an_erasure_leaves_nothing_personal_and_the_books_balanced,
    retention_prunes_old_bodies_and_tombstones_old_audit_details,
    keys_rotate_under_load_and_everything_still_opens,
    reencryption_runs_in_the_background_and_survives_a_lost_host,
);

async fn consent_server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        c.tenants
            .get_mut("alpha")
            .unwrap()
            .contact
            .marketing_requires_consent = true;
    })
    .await
}

mod consent {
    use super::{consent_governs_marketing_and_opt_outs_are_withdrawals, consent_server};
    crate::on_both_backends_with!(
        consent_server,
        consent_governs_marketing_and_opt_outs_are_withdrawals
    );
}

const ID_NUMBER: &str = "110101199003077777";
const BANK: &str = "6222020200112233445";
const BANK_2: &str = "6222020200199887766";

fn seal_attributes(c: &mut shoal_base::config::Config, keys: &[&str]) {
    c.tenants
        .get_mut("alpha")
        .unwrap()
        .contact
        .sealed_attributes = keys.iter().map(|k| (*k).to_owned()).collect();
}

async fn sealed_attributes_server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        seal_attributes(c, &["id_number", "bank_account"])
    })
    .await
}

/// A customer's attributes as the API answers them.
async fn attributes_via_api(s: &TestServer, id: &str) -> Value {
    s.ok(
        ALPHA,
        "query($id: ID!) { customer(id: $id) { attributes } }",
        json!({ "id": id }),
    )
    .await["customer"]["attributes"]
        .clone()
}

/// What `customers.attributes` holds in clear for a customer.
async fn attributes_in_clear(s: &TestServer, id: &str) -> Value {
    let text = texts(
        s,
        "SELECT CAST(attributes AS TEXT) FROM customers WHERE tenant_id = 'alpha' AND id = $1",
        &[id],
    )
    .await;
    serde_json::from_str(&text[0]).unwrap()
}

/// A tenant key of `alpha` as `tenant_keys` holds it (wrapped), version 1.
async fn wrapped_key(s: &TestServer, purpose: &str) -> String {
    texts(
        s,
        "SELECT wrapped FROM tenant_keys WHERE tenant_id = 'alpha' AND purpose = $1 AND version = 1",
        &[purpose],
    )
    .await
    .remove(0)
}

/// `contact.sealed_attributes`: the values leave the attributes column for a sealed one,
/// read back opened everywhere (API, export, Python), refused by rules and filters with the
/// field named, and moved between the columns when the list changes.
async fn listed_attributes_are_sealed_and_refused_by_rules_and_filters(s: &TestServer) {
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": NAME, "sourceChannel": "STORE",
                    "attributes": { "id_number": ID_NUMBER, "bank_account": BANK, "city": "杭州" } }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($id: ID!, $i: UpdateCustomerInput!) { updateCustomer(id: $id, input: $i) { id } }",
        json!({ "id": id, "i": { "attributes": { "bank_account": BANK_2 } } }),
    )
    .await;
    assert_eq!(
        attributes_via_api(s, &id).await,
        json!({ "id_number": ID_NUMBER, "bank_account": BANK_2, "city": "杭州" })
    );
    let clear = attributes_in_clear(s, &id).await;
    assert_eq!(
        clear,
        json!({ "city": "杭州" }),
        "only unsealed keys in clear"
    );
    let bytes = database_bytes(s);
    for secret in [ID_NUMBER, BANK, BANK_2] {
        assert!(
            !bytes.contains(secret),
            "`{secret}` is readable in the database"
        );
    }

    // opened by Python's `cryptography` with the master key alone
    let sealed = texts(
        s,
        "SELECT attributes_sealed FROM customers WHERE tenant_id = 'alpha' AND id = $1",
        &[&id],
    )
    .await;
    let opened = crate::harness::python_json(
        "vault/open.py",
        &json!({
            "master": std::fs::read_to_string(TEST_MASTER_KEY).unwrap().trim(),
            "tenant": "alpha",
            "data_key": wrapped_key(s, "data").await,
            "index_key": wrapped_key(s, "index").await,
            "sealed": { "customers.attributes_sealed": sealed[0] },
            "index": [],
        }),
    );
    let inside: Value = serde_json::from_str(
        opened["opened"]["customers.attributes_sealed"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        inside,
        json!({ "id_number": ID_NUMBER, "bank_account": BANK_2 })
    );

    // rules and filters that would read a sealed value are refused, naming the field
    let tag = s
        .err(
            ALPHA,
            "mutation($i: TagInputValue!) { createTag(input: $i) { id } }",
            json!({ "i": { "name": "身份证北京", "rule": "attr.city = \"杭州\" and attr.id_number = \"1\"" } }),
        )
        .await;
    assert_eq!(code(&tag), "BAD_USER_INPUT", "{tag}");
    assert_eq!(fields(&tag), ["input.rule"]);
    assert!(
        tag.to_string().contains("attr.id_number is sealed at rest"),
        "{tag}"
    );
    let filter = s
        .err(
            ALPHA,
            "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id } } } }",
            json!({ "f": { "attributes": { "bank_account": BANK_2 } } }),
        )
        .await;
    assert_eq!(
        fields(&filter),
        ["filter.attributes.bank_account"],
        "{filter}"
    );
    let valid = s
        .ok(
            ALPHA,
            "query($t: String!) { validateRule(text: $t) { valid errors { line column message } } }",
            json!({ "t": "attr.bank_account = \"x\"" }),
        )
        .await;
    assert_eq!(valid["validateRule"]["valid"], false, "{valid}");
    let found = s
        .ok(
            ALPHA,
            "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id } } } }",
            json!({ "f": { "attributes": { "city": "杭州" } } }),
        )
        .await;
    assert_eq!(found["customers"]["edges"][0]["node"]["id"], id.as_str());

    // the export opens them
    let doc = s
        .ok(
            ALPHA,
            "query($c: ID!) { exportCustomerData(customerId: $c) }",
            json!({ "c": id }),
        )
        .await["exportCustomerData"]
        .clone();
    let me = &doc["tables"]["customers"][0];
    assert_eq!(me["attributes_sealed"]["id_number"], ID_NUMBER, "{me}");

    // a host on a changed list moves values at start: bank_account back to clear, city in
    let next = s
        .start_beside(|c| {
            seal_attributes(c, &["id_number", "city"]);
            c.sop.workers = false;
            c.notify.workers = false;
        })
        .await;
    let clear = attributes_in_clear(s, &id).await;
    assert_eq!(clear, json!({ "bank_account": BANK_2 }));
    assert_eq!(
        attributes_via_api(&next, &id).await,
        json!({ "id_number": ID_NUMBER, "bank_account": BANK_2, "city": "杭州" })
    );
    let keys = texts(
        s,
        "SELECT attribute FROM sealed_attribute_keys WHERE tenant_id = 'alpha' ORDER BY attribute",
        &[],
    )
    .await;
    assert_eq!(keys, ["city", "id_number"]);
    next.stop().await;

    // re-encryption re-seals them; an erasure removes them
    let (version, _) = shoal_privacy::rekey::reencrypt(
        s.db(),
        &crate::harness::base_config().keys,
        "alpha",
        Duration::ZERO,
        |_, _, _| {},
    )
    .await
    .unwrap();
    let sealed = texts(
        s,
        "SELECT attributes_sealed FROM customers WHERE tenant_id = 'alpha' AND id = $1",
        &[&id],
    )
    .await;
    assert!(
        sealed[0].starts_with(&format!("s1:{version}:")),
        "{sealed:?}"
    );
    s.ok(
        ALPHA,
        "mutation($c: ID!, $r: String!) { eraseCustomer(customerId: $c, reason: $r) { id } }",
        json!({ "c": id, "r": "本人申请删除" }),
    )
    .await;
    let left = scalar_i64(
        s,
        "SELECT COUNT(*) FROM customers WHERE tenant_id = 'alpha' AND id = $1 AND attributes_sealed IS NULL",
        &[&id],
    )
    .await;
    assert_eq!(left, 1, "the erased profile holds no sealed attributes");
}

mod sealed_attributes {
    use super::{
        listed_attributes_are_sealed_and_refused_by_rules_and_filters, sealed_attributes_server,
    };
    crate::on_both_backends_with!(
        sealed_attributes_server,
        listed_attributes_are_sealed_and_refused_by_rules_and_filters
    );
}

/// An upgrade: customers, contacts and identities an earlier version stored in clear are
/// sealed when the host starts, and every look-up finds them as before.
async fn plain_rows_of_an_earlier_version_are_sealed_at_start(backend: Backend) {
    use shoal_base::storage::{Db, migrate_up_to};
    let dir = std::env::temp_dir().join(format!("shoal-seal-upgrade-{}", std::process::id()));
    let (url, pg) = match backend {
        Backend::Sqlite => {
            let _ = std::fs::remove_dir_all(&dir);
            (format!("sqlite://{}/shoal.db", dir.display()), None)
        }
        Backend::Postgres => {
            let tag = format!("{}_seal_upgrade", std::process::id());
            match crate::harness::fresh_postgres_database(&tag).await {
                Some((url, name)) => (url, Some(name)),
                None => return,
            }
        }
    };
    let db = Db::connect(&url, 2).await.unwrap();
    migrate_up_to(&db, 24).await.unwrap();
    for sql in [
        "INSERT INTO tenants (tenant_id, name, time_zone, updated_at) VALUES ('alpha', 'Alpha Retail', 'Asia/Shanghai', 0)",
        "INSERT INTO customers (tenant_id, id, display_name, name_key, phones, emails, attributes, lifecycle_stage, owner_id, \
         source_channel, created_at, updated_at, version, stage_manual) VALUES ('alpha', 'old-1', '老客户', '老客户', \
         '[\"+8613812345678\"]', '[\"li.lei.pipl@example.com\"]', '{}', 'lead', NULL, 'web', 1, 1, 1, 0)",
        "INSERT INTO customer_contacts (tenant_id, customer_id, kind, value) VALUES ('alpha', 'old-1', 'phone', '+8613812345678')",
        "INSERT INTO customer_contacts (tenant_id, customer_id, kind, value) VALUES ('alpha', 'old-1', 'email', 'li.lei.pipl@example.com')",
        "INSERT INTO customer_identities (tenant_id, customer_id, channel, external_id, created_at) VALUES ('alpha', 'old-1', 'wechat', 'wx-unionid-pipl-7788', 1)",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    db.pool.close().await;
    let s = TestServer::start_with(backend, |c| c.storage.url = url.clone())
        .await
        .unwrap();
    let phones = texts(&s, "SELECT phones FROM customers WHERE id = 'old-1'", &[]).await;
    assert!(phones[0].starts_with("s1:1:"), "{phones:?}");
    let contacts = texts(
        &s,
        "SELECT value FROM customer_contacts WHERE customer_id = 'old-1' ORDER BY kind",
        &[],
    )
    .await;
    assert_eq!(
        contacts.len(),
        3,
        "phone, e-mail and its local part: {contacts:?}"
    );
    assert!(
        contacts
            .iter()
            .all(|v| v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()))
    );
    for search in [PHONE, EMAIL] {
        let found = s
            .ok(ALPHA, "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id phones emails } } } }",
                json!({ "f": { "search": search } }))
            .await;
        assert_eq!(
            found["customers"]["edges"][0]["node"]["id"], "old-1",
            "{search}"
        );
        assert_eq!(
            found["customers"]["edges"][0]["node"]["emails"],
            json!([EMAIL])
        );
    }
    let found = s
        .ok(ALPHA, "query($f: CustomerFilterInput) { customers(first: 5, filter: $f) { edges { node { id identities { externalId } } } } }",
            json!({ "f": { "identity": { "channel": "WECHAT", "externalId": UNIONID } } }))
        .await;
    assert_eq!(
        found["customers"]["edges"][0]["node"]["identities"][0]["externalId"],
        UNIONID
    );
    s.stop().await;
    match pg {
        Some(name) => crate::harness::drop_postgres_database(&name).await,
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_plain_rows_of_an_earlier_version_are_sealed_at_start() {
    plain_rows_of_an_earlier_version_are_sealed_at_start(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_plain_rows_of_an_earlier_version_are_sealed_at_start() {
    plain_rows_of_an_earlier_version_are_sealed_at_start(Backend::Postgres).await;
}
