//! Permissions: what each actor sees of customers, events, tasks and bills (rows, counts,
//! cursors, fields), what it may do, stage grants, administration and the audit log.
//!
//! The organisation: HQ → east → store-1; HQ → west. `mgr-east` (store manager, east),
//! `cons-1` (consultant, store-1), `cons-2` (consultant, west), `mkt` (marketer, HQ: every
//! customer, phones masked, emails hidden, no export), `fin` (finance: customers only while
//! `attr.deal_stage = "signing"`), `regional` (scope: departments [east]).

use std::collections::BTreeSet;

use serde_json::json;
use shoal_base::config::{self, ApiKeyConfig, Config, DepartmentConfig, UserConfig};
use shoal_crm::access::role::RoleSpec;
use sqlx::Row;

use crate::harness::{ALPHA, TestServer, code, fields};

const ROLES: &str = r#"
[store_manager]
name = "Store manager"
scopes = { "*" = "subtree" }
fields = { phones = "masked" }
actions = ["create", "update", "assign", "export", "audit"]

[consultant]
name = "Beauty consultant"
scopes = { "*" = "own" }
actions = ["create", "update"]

[marketer]
name = "Market operator"
scopes = { customers = "all", events = "all" }
fields = { phones = "masked", emails = "hidden" }

[finance]
name = "Finance"
scopes = { "*" = "none" }
grants = [{ when = 'attr.deal_stage = "signing"', resources = ["customers", "bills"] }]

[regional]
name = "Regional lead"
scopes = { "*" = "departments" }
departments = ["east"]
"#;

/// (user, department, role).
const PEOPLE: [(&str, &str, &str); 6] = [
    ("mgr-east", "east", "store_manager"),
    ("cons-1", "store-1", "consultant"),
    ("cons-2", "west", "consultant"),
    ("mkt", "hq", "marketer"),
    ("fin", "hq", "finance"),
    ("regional", "hq", "regional"),
];

fn key(user: &str) -> String {
    format!("alpha-key-of-{user}")
}

/// Adds the organisation to tenant alpha.
fn organisation(config: &mut Config) {
    let alpha = config.tenants.get_mut("alpha").expect("alpha");
    for (id, parent) in [
        ("hq", None),
        ("east", Some("hq")),
        ("store-1", Some("east")),
        ("west", Some("hq")),
    ] {
        alpha.departments.insert(
            id.into(),
            DepartmentConfig {
                name: id.to_uppercase(),
                parent: parent.map(str::to_owned),
            },
        );
    }
    alpha.roles =
        toml::from_str::<std::collections::BTreeMap<String, RoleSpec>>(ROLES).expect("roles parse");
    for (user, dept, role) in PEOPLE {
        let mut u = UserConfig::new(format!("User {user}"), role);
        u.department = Some(dept.into());
        alpha.users.insert(user.into(), u);
        alpha.api_keys.insert(
            format!("{user}-key"),
            ApiKeyConfig {
                user: user.into(),
                sha256: Some(config::sha256_hex(&key(user))),
                env: None,
            },
        );
    }
}

macro_rules! with_organisation {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = $crate::harness::TestServer::start_with($crate::harness::Backend::Sqlite, super::organisation).await.expect("sqlite");
                    super::$name(&s).await;
                    s.stop().await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s) = $crate::harness::TestServer::start_with($crate::harness::Backend::Postgres, super::organisation).await {
                        super::$name(&s).await;
                        s.stop().await;
                    }
                }
            )+
        }
    };
}

with_organisation!(
    each_actor_sees_exactly_its_scope,
    stage_grants_open_and_close_with_the_stage,
    actions_are_refused_to_roles_without_them,
    administrators_edit_roles_and_users_through_graphql,
    the_audit_log_is_queryable_masked_and_append_only,
    no_actor_ever_reads_a_row_outside_its_scope,
    kept_permissions_follow_every_change_on_every_host,
);

/// Customers owned across the tree (created by the admin): name → owner.
const CUSTOMERS: [(&str, Option<&str>); 6] = [
    ("A1 store-1", Some("cons-1")),
    ("A2 store-1", Some("cons-1")),
    ("B1 west", Some("cons-2")),
    ("E1 east", Some("mgr-east")),
    ("H1 hq", Some("mkt")),
    ("P1 pool", None),
];

async fn seed(s: &TestServer) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, (name, owner)) in CUSTOMERS.iter().enumerate() {
        let id = s
            .create_customer(
                ALPHA,
                json!({ "displayName": name, "sourceChannel": "STORE", "ownerId": owner,
                        "phones": [format!("1380013800{i}")], "emails": [format!("zhang{i}@example.com")],
                        "attributes": { "city": "上海" } }),
            )
            .await;
        s.ok(ALPHA, "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: VISIT, occurredAt: \"2026-01-01T00:00:00Z\" }]) { createdCount } }", json!({ "c": id }))
            .await;
        ids.push(id);
    }
    ids
}

/// Every customer name the key sees, paging one at a time (cursors), and `totalCount`.
async fn visible(s: &TestServer, key: &str) -> (BTreeSet<String>, i64) {
    visible_in_pages(s, key, 1).await
}

async fn visible_in_pages(s: &TestServer, key: &str, size: i64) -> (BTreeSet<String>, i64) {
    let mut names = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut total;
    loop {
        let data = s
            .ok(
                key,
                "query($after: String, $n: Int) { customers(first: $n, after: $after) { totalCount edges { cursor node { displayName } } pageInfo { hasNextPage } } }",
                json!({ "after": after, "n": size }),
            )
            .await;
        let c = &data["customers"];
        total = c["totalCount"].as_i64().unwrap_or(-1);
        for e in c["edges"].as_array().unwrap() {
            names.insert(e["node"]["displayName"].as_str().unwrap().to_owned());
            after = Some(e["cursor"].as_str().unwrap().to_owned());
        }
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
    }
    (names, total)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn each_actor_sees_exactly_its_scope(s: &TestServer) {
    let ids = seed(s).await;
    let all: Vec<&str> = CUSTOMERS.iter().map(|(n, _)| *n).collect();
    // (actor, customers it sees, phones as it reads them, emails as it reads them)
    let matrix: Vec<(String, Vec<&str>, &str, Option<&str>)> = vec![
        (
            ALPHA.to_owned(),
            all.clone(),
            "+8613800138000",
            Some("zhang0@example.com"),
        ),
        (
            key("mgr-east"),
            vec!["A1 store-1", "A2 store-1", "E1 east"],
            "138****8000",
            Some("zhang0@example.com"),
        ),
        (
            key("cons-1"),
            vec!["A1 store-1", "A2 store-1"],
            "+8613800138000",
            Some("zhang0@example.com"),
        ),
        (
            key("cons-2"),
            vec!["B1 west"],
            "+8613800138002",
            Some("zhang2@example.com"),
        ),
        (key("mkt"), all.clone(), "138****8000", None),
        (key("fin"), vec![], "", None),
        (
            key("regional"),
            vec!["A1 store-1", "A2 store-1", "E1 east"],
            "+8613800138000",
            Some("zhang0@example.com"),
        ),
    ];
    for (k, expected, phone, email) in &matrix {
        let (names, total) = visible(s, k).await;
        assert_eq!(names, set(expected), "customers seen by {k}");
        assert_eq!(total, expected.len() as i64, "totalCount for {k}");
        // every customer outside the scope is NOT_FOUND by id, inside it is readable
        for (i, (name, _)) in CUSTOMERS.iter().enumerate() {
            let r = s
                .gql(k, "query($id: ID!) { customer(id: $id) { displayName phones emails timeline(first: 5) { edges { node { type } } } } }", json!({ "id": ids[i] }))
                .await;
            if expected.contains(name) {
                assert!(r.get("errors").is_none(), "{k} reads {name}: {r}");
                assert_eq!(
                    r["data"]["customer"]["timeline"]["edges"]
                        .as_array()
                        .unwrap()
                        .len(),
                    1
                );
            } else {
                assert_eq!(
                    code(&r["errors"][0]),
                    "NOT_FOUND",
                    "{k} must not read {name}"
                );
            }
        }
        // fields as the role reads them (first seeded customer, or the one it sees)
        let first_visible = CUSTOMERS.iter().position(|(n, _)| expected.contains(n));
        if let Some(i) = first_visible {
            let c = s
                .ok(
                    k,
                    "query($id: ID!) { customer(id: $id) { phones emails } }",
                    json!({ "id": ids[i] }),
                )
                .await;
            let want_phone = if phone.starts_with('+') {
                format!("+861380013800{i}")
            } else {
                format!("138****800{i}")
            };
            assert_eq!(
                c["customer"]["phones"],
                json!([want_phone]),
                "phones for {k}"
            );
            match email {
                Some(_) => assert_eq!(
                    c["customer"]["emails"],
                    json!([format!("zhang{i}@example.com")]),
                    "emails for {k}"
                ),
                None => assert_eq!(c["customer"]["emails"], json!([]), "emails hidden for {k}"),
            }
        }
    }
    // a hidden or masked field cannot be searched or filtered on
    let by_phone = s
        .ok(
            &key("mkt"),
            "{ customers(filter: {search: \"13800138000\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_phone["customers"]["totalCount"], 0,
        "a masked phone does not match a search"
    );
    let by_email = s
        .ok(
            ALPHA,
            "{ customers(filter: {search: \"zhang0@example.com\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(by_email["customers"]["totalCount"], 1);
    // segments' counts and previews are scoped too
    let preview = s
        .ok(
            &key("cons-1"),
            "query { previewSegment(definition: {}) { count } }",
            json!({}),
        )
        .await;
    assert_eq!(preview["previewSegment"]["count"], 2);
    // a cursor another actor was given reveals nothing outside the scope
    let boss_page = s
        .ok(
            ALPHA,
            "{ customers(first: 3) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let cursor = boss_page["customers"]["edges"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = s
        .ok(&key("cons-2"), "query($a: String) { customers(first: 10, after: $a) { edges { node { displayName } } } }", json!({ "a": cursor }))
        .await;
    for e in after["customers"]["edges"].as_array().unwrap() {
        assert_eq!(e["node"]["displayName"], "B1 west");
    }
    // an agent's new customer is its own (else it would vanish from its view)
    let mine = s
        .create_customer(
            &key("cons-2"),
            json!({ "displayName": "New by cons-2", "sourceChannel": "WEB" }),
        )
        .await;
    let c = s
        .ok(
            &key("cons-2"),
            "query($id: ID!) { customer(id: $id) { ownerId } }",
            json!({ "id": mine }),
        )
        .await;
    assert_eq!(c["customer"]["ownerId"], "cons-2");
}

async fn stage_grants_open_and_close_with_the_stage(s: &TestServer) {
    let ids = seed(s).await;
    let fin = key("fin");
    assert!(visible(s, &fin).await.0.is_empty());
    s.ok(ALPHA, "mutation($id: ID!) { updateCustomer(id: $id, input: {attributes: {deal_stage: \"signing\"}}) { id } }", json!({ "id": ids[1] }))
        .await;
    assert_eq!(
        visible(s, &fin).await,
        (set(&["A2 store-1"]), 1),
        "granted while signing"
    );
    s.ok(ALPHA, "mutation($id: ID!) { updateCustomer(id: $id, input: {attributes: {deal_stage: \"closed\"}}) { id } }", json!({ "id": ids[1] }))
        .await;
    assert_eq!(
        visible(s, &fin).await,
        (set(&[]), 0),
        "revoked after signing"
    );
}

async fn actions_are_refused_to_roles_without_them(s: &TestServer) {
    let ids = seed(s).await;
    // export: the marketer lacks it, the store manager has it (its scope, masked)
    let e = s
        .err(
            &key("mkt"),
            "mutation { exportCustomers { rows } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
    assert!(e["message"].as_str().unwrap().contains("export"), "{e}");
    let csv = s
        .ok(
            &key("mgr-east"),
            "mutation { exportCustomers { rows csv } }",
            json!({}),
        )
        .await;
    assert_eq!(csv["exportCustomers"]["rows"], 3);
    let text = csv["exportCustomers"]["csv"].as_str().unwrap();
    assert!(
        text.contains("138****8000") && !text.contains("+8613800138000"),
        "{text}"
    );
    assert!(!text.contains("B1 west"));
    // a consultant updates its own customers, not others', and may not reassign or delete
    s.ok(&key("cons-1"), "mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: \"A1 renamed\"}) { id } }", json!({ "id": ids[0] }))
        .await;
    let other = s
        .err(
            &key("cons-1"),
            "mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: \"x\"}) { id } }",
            json!({ "id": ids[2] }),
        )
        .await;
    assert_eq!(code(&other), "NOT_FOUND");
    let assign = s
        .err(
            &key("cons-1"),
            "mutation($id: ID!) { updateCustomer(id: $id, input: {ownerId: \"cons-2\"}) { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(code(&assign), "FORBIDDEN");
    let delete = s
        .err(
            &key("cons-1"),
            "mutation($id: ID!) { deleteCustomer(id: $id) { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(code(&delete), "FORBIDDEN");
    // events cannot be recorded for customers outside the scope
    let event = s.err(&key("cons-1"), "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: VISIT, occurredAt: \"2026-01-02T00:00:00Z\" }]) { createdCount } }", json!({ "c": ids[2] })).await;
    assert_eq!(code(&event), "NOT_FOUND");
    // tasks follow their assignee
    for (who, c) in [("cons-1", &ids[0]), ("cons-2", &ids[2])] {
        s.ok(ALPHA, "mutation($c: ID!, $a: String!) { createTask(input: {customerId: $c, title: \"call\", assignee: $a}) { id } }", json!({ "c": c, "a": who }))
            .await;
    }
    let tasks = s
        .ok(
            &key("cons-1"),
            "{ tasks { edges { node { assignee } } } }",
            json!({}),
        )
        .await;
    let assignees: Vec<&str> = tasks["tasks"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["assignee"].as_str().unwrap())
        .collect();
    assert_eq!(assignees, ["cons-1"]);
    let mgr_tasks = s
        .ok(
            &key("mgr-east"),
            "{ tasks { edges { node { assignee } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mgr_tasks["tasks"]["edges"].as_array().unwrap().len(),
        1,
        "cons-1 is below east, cons-2 is not"
    );
    // administration is for administrators
    let e = s.err(&key("mgr-east"), "{ roles { id } }", json!({})).await;
    assert_eq!(code(&e), "FORBIDDEN");
    // the viewer says what the caller may do
    let v = s
        .ok(
            &key("mkt"),
            "{ viewer { permissions { roles actions fields { field visibility } } } }",
            json!({}),
        )
        .await;
    assert_eq!(v["viewer"]["permissions"]["roles"], json!(["marketer"]));
    assert_eq!(v["viewer"]["permissions"]["actions"], json!([]));
    assert!(
        v["viewer"]["permissions"]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({ "field": "emails", "visibility": "HIDDEN" }))
    );
}

async fn administrators_edit_roles_and_users_through_graphql(s: &TestServer) {
    seed(s).await;
    // a bad role: every problem with its path, nothing stored
    let e = s
        .err(ALPHA, "mutation($d: JSON!) { putRole(id: \"bad\", definition: $d) { id } }",
            json!({ "d": { "name": "", "scopes": { "customers": "everything", "planets": "all" }, "fields": { "phones": "blurred" }, "actions": ["fly"] } }))
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    let got = fields(&e);
    for want in [
        "input.name",
        "input.scopes.customers",
        "input.scopes.planets",
        "input.fields.phones",
        "input.actions[0]",
    ] {
        assert!(got.iter().any(|f| f == want), "{want} missing from {got:?}");
    }
    let roles = s.ok(ALPHA, "{ roles { id users } }", json!({})).await;
    assert!(
        !roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "bad")
    );
    // widen the consultant role: takes effect on the next request
    assert_eq!(visible(s, &key("cons-2")).await.1, 1);
    s.ok(ALPHA, "mutation($d: JSON!) { putRole(id: \"consultant\", definition: $d) { id } }",
        json!({ "d": { "name": "Beauty consultant", "scopes": { "*": "department" }, "actions": ["create", "update"] } }))
        .await;
    // move cons-2 into store-1: its department scope now covers cons-1's customers
    let u = s.ok(ALPHA, "mutation { updateUser(id: \"cons-2\", input: {department: \"store-1\"}) { department roles } }", json!({})).await;
    assert_eq!(u["updateUser"]["department"], "store-1");
    assert_eq!(
        visible(s, &key("cons-2")).await.0,
        set(&["A1 store-1", "A2 store-1", "B1 west"])
    );
    // departments form a tree
    let cycle = s.err(ALPHA, "mutation { putDepartment(input: {id: \"hq\", name: \"HQ\", parentId: \"store-1\"}) { id } }", json!({})).await;
    assert_eq!(fields(&cycle), ["input.parentId"]);
    let busy = s
        .err(
            ALPHA,
            "mutation { deleteDepartment(id: \"east\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&busy), "BAD_USER_INPUT");
    // an administrator cannot lock themselves out
    let e = s
        .err(
            ALPHA,
            "mutation { updateUser(id: \"boss\", input: {roles: [\"marketer\"]}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&e), ["input.roles"]);
    // roles with holders cannot be deleted
    let e = s
        .err(
            ALPHA,
            "mutation { deleteRole(id: \"marketer\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
}

/// Hosts keep a user's permissions between requests while the tenant's access version
/// stands; a change to roles, user roles or a user's department — made through another
/// host's API or by a statement written outside Shoal — moves the version in its own
/// transaction, so the next request on every host sees it.
async fn kept_permissions_follow_every_change_on_every_host(s: &TestServer) {
    seed(s).await;
    let other = s.start_beside(organisation).await;
    let version = || async {
        sqlx::query("SELECT version FROM access_versions WHERE tenant_id = 'alpha'")
            .fetch_one(&s.db().pool)
            .await
            .unwrap()
            .get::<i64, _>("version")
    };
    // both hosts have loaded cons-2's permissions (own customers)
    for host in [s, &other] {
        assert_eq!(visible(host, &key("cons-2")).await.0, set(&["B1 west"]));
    }
    let before = version().await;
    // through this host: the consultant role reaches its department, cons-2 moves to store-1
    s.ok(ALPHA, "mutation($d: JSON!) { putRole(id: \"consultant\", definition: $d) { id } }",
        json!({ "d": { "name": "Beauty consultant", "scopes": { "*": "department" }, "actions": ["create", "update"] } }))
        .await;
    s.ok(
        ALPHA,
        "mutation { updateUser(id: \"cons-2\", input: {department: \"store-1\"}) { id } }",
        json!({}),
    )
    .await;
    let moved = version().await;
    assert!(moved > before, "{before} → {moved}");
    let store_1 = set(&["A1 store-1", "A2 store-1", "B1 west"]);
    assert_eq!(visible(&other, &key("cons-2")).await.0, store_1);
    assert_eq!(visible(s, &key("cons-2")).await.0, store_1);
    // a statement nobody wrote for Shoal moves cons-2 back to west
    sqlx::query("UPDATE users SET department = 'west' WHERE tenant_id = 'alpha' AND id = 'cons-2'")
        .execute(&s.db().pool)
        .await
        .unwrap();
    assert!(version().await > moved);
    for host in [s, &other] {
        assert_eq!(visible(host, &key("cons-2")).await.0, set(&["B1 west"]));
    }
    other.stop().await;
}

async fn the_audit_log_is_queryable_masked_and_append_only(s: &TestServer) {
    let ids = seed(s).await;
    let r = s
        .post_with_header(ALPHA, "x-request-id", "req-phone-change",
            &json!({ "query": "mutation($id: ID!) { updateCustomer(id: $id, input: {phones: [\"13912345678\"]}) { id } }", "variables": { "id": ids[0] } }).to_string())
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    let q = "query($f: AuditFilterInput) { auditLog(filter: $f, first: 10) { edges { node { action actorId entityId requestId changes } } } }";
    let f = json!({ "f": { "requestId": "req-phone-change" } });
    let admin = s.ok(ALPHA, q, f.clone()).await;
    let entry = &admin["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["action"], "customer.update");
    assert_eq!(entry["actorId"], "boss");
    assert_eq!(
        entry["changes"]["phones"],
        json!({ "from": ["+8613800138000"], "to": ["+8613912345678"] })
    );
    // the store manager reads it masked, and only about customers it reaches
    let mgr = s.ok(&key("mgr-east"), q, f).await;
    assert_eq!(
        mgr["auditLog"]["edges"][0]["node"]["changes"]["phones"],
        json!({ "from": ["138****8000"], "to": ["139****5678"] })
    );
    let west = s
        .ok(&key("mgr-east"), q, json!({ "f": { "entityId": ids[2] } }))
        .await;
    assert_eq!(west["auditLog"]["edges"], json!([]));
    // an import's batch entry names every customer it created, reached or not: only readers
    // who reach every customer see it
    let import = s
        .ok(
            ALPHA,
            "mutation($input: ImportInput!) { importCustomers(input: $input) { status created } }",
            json!({ "input": {
                "content": "姓名,手机\n赵敏,13700001111\n",
                "mapping": "[columns]\ndisplay_name = \"姓名\"\nphones = \"手机\"\n",
            } }),
        )
        .await;
    assert_eq!(import["importCustomers"]["created"], 1, "{import}");
    let batches = json!({ "f": { "entityType": "import_job" } });
    let all = s.ok(ALPHA, q, batches.clone()).await;
    assert_eq!(
        all["auditLog"]["edges"].as_array().unwrap().len(),
        1,
        "{all}"
    );
    let scoped = s.ok(&key("mgr-east"), q, batches).await;
    assert_eq!(scoped["auditLog"]["edges"], json!([]));
    // readers without `audit` are refused
    let refused = s.err(&key("cons-1"), q, json!({ "f": {} })).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    // filters by action prefix and actor
    let creates = s
        .ok(
            ALPHA,
            q,
            json!({ "f": { "action": "customer.", "actorId": "boss" } }),
        )
        .await;
    assert!(creates["auditLog"]["edges"].as_array().unwrap().len() >= 7);
    // append-only: the database itself refuses to change or remove entries
    let pool = &s.db().pool;
    assert!(
        sqlx::query("UPDATE audit_log SET actor_id = 'nobody'")
            .execute(pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(pool)
            .await
            .is_err()
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(left >= 7);
}

/// xorshift64*: a reproducible stream of pseudo-random numbers (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// The scope model, written independently of the server: may `actor` see a customer owned
/// by `owner`?
fn model_sees(actor: &str, owner: Option<&str>) -> bool {
    let dept = |u: &str| PEOPLE.iter().find(|p| p.0 == u).map(|p| p.1);
    let owner_dept = owner.and_then(dept);
    let in_east = matches!(owner_dept, Some("east" | "store-1"));
    match actor {
        "boss" | "mkt" => true,
        "mgr-east" | "regional" => in_east || owner == Some(actor),
        "cons-1" | "cons-2" => owner == Some(actor),
        _ => false, // fin: nothing without a grant
    }
}

async fn no_actor_ever_reads_a_row_outside_its_scope(s: &TestServer) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("randomized permissions test: seed {seed}");
    let mut rng = Rng(seed);
    let owners: Vec<Option<&str>> = PEOPLE
        .iter()
        .map(|p| Some(p.0))
        .chain([Some("boss"), None])
        .collect();
    let mut expected: Vec<(String, Option<&str>)> = Vec::new();
    for i in 0..40 {
        let owner = owners[rng.below(owners.len())];
        let name = format!("R{i:02}");
        s.create_customer(
            ALPHA,
            json!({ "displayName": name, "sourceChannel": "WEB", "ownerId": owner }),
        )
        .await;
        expected.push((name, owner));
    }
    // another tenant's customers, owned by a user id that also exists in alpha
    for i in 0..5 {
        s.create_customer(crate::harness::BETA, json!({ "displayName": format!("beta-{i}"), "sourceChannel": "WEB", "ownerId": "boss" }))
            .await;
    }
    let actors: Vec<(String, &str)> = std::iter::once((ALPHA.to_owned(), "boss"))
        .chain(PEOPLE.iter().map(|p| (key(p.0), p.0)))
        .collect();
    for (k, who) in &actors {
        let size = 1 + rng.below(9) as i64;
        let (names, total) = visible_in_pages(s, k, size).await;
        let want: BTreeSet<String> = expected
            .iter()
            .filter(|(_, owner)| model_sees(who, *owner))
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(names, want, "{who} (seed {seed}, pages of {size})");
        assert_eq!(total, want.len() as i64, "{who}: totalCount (seed {seed})");
        assert!(
            names.iter().all(|n| !n.starts_with("beta-")),
            "{who} read another tenant"
        );
    }
}
