//! Importing customers and events from files: field mappings with value maps, bad rows
//! reported and never fatal, automatic merges on exact keys, dry runs, XLSX, events found
//! by identity and imported once, and the CLI's error file and crash-safe resume.

use std::{path::PathBuf, process::Command};

use serde_json::{Value, json};

use crate::harness::{ALPHA, ALPHA_READONLY, BETA, TestServer, code, fields};

const IMPORT: &str = "mutation($input: ImportInput!) { importCustomers(input: $input) {
    id status dryRun rowsRead created merged suggested rejected checkpointRow
    errors { row column value reason } } }";
const IMPORT_EVENTS: &str = "mutation($input: ImportInput!) { importEvents(input: $input) {
    id status rowsRead created duplicates updated rejected errors { row column value reason } } }";
const CUSTOMERS: &str = "{ customers(first: 50, orderBy: { field: CREATED_AT, direction: ASC }) { totalCount edges { node {
    id displayName phones emails attributes lifecycleStage sourceChannel
    identities { channel externalId } tags { tag { name } source } } } } }";

/// A retail spreadsheet exported from an old CRM.
pub const CSV: &str = "姓名,手机,邮箱,企微ID,客户类型,生日,城市
王芳,138 0013 8000,wangfang88@qq.com,wm001,VIP客户,1990年3月7日,上海
李娜,13900001111;13900002222,,wm002,普通,1988/12/01,北京
坏行,12345,not-an-email,,VIP客户,tomorrow,
王芳,13800138000,,wm003,,,杭州
王芳,13800138001,,,,,
,,,,,,
张伟,,zhangwei@163.com,,潜在,,
";

pub const MAPPING: &str = r#"
[columns]
display_name = "姓名"
phones = "手机"
emails = "邮箱"
lifecycle_stage = { column = "客户类型", map = { "VIP客户" = "loyal", "普通" = "customer", "潜在" = "prospect" } }
[identities]
wecom = "企微ID"
[attributes]
birthday = { column = "生日", type = "date", formats = ["%Y年%m月%d日", "%Y/%m/%d"] }
city = "城市"
[[tags]]
column = "客户类型"
map = { "VIP客户" = "VIP" }
unmapped = "ignore"
"#;

async fn create_vip_tag(s: &TestServer, key: &str) {
    s.ok(
        key,
        "mutation { createTag(input: { name: \"VIP\" }) { id } }",
        json!({}),
    )
    .await;
}

fn by_name<'a>(customers: &'a Value, name: &str) -> Vec<&'a Value> {
    customers["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["displayName"] == name)
        .collect()
}

async fn customers_import_maps_fields_and_reports_bad_rows(s: &TestServer) {
    create_vip_tag(s, ALPHA).await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING } }),
        )
        .await["importCustomers"];
    assert_eq!(job["status"], "completed");
    assert_eq!(job["rowsRead"], 7, "blank rows are read, not rejected");
    assert_eq!(job["created"], 4, "王芳, 李娜, the second 王芳 and 张伟");
    assert_eq!(job["merged"], 1, "row 5 has row 2's phone: merged into it");
    assert_eq!(
        job["suggested"], 1,
        "row 6: same name, phone one digit apart"
    );
    assert_eq!(job["rejected"], 1);
    assert_eq!(job["checkpointRow"], 8);
    let errors = job["errors"].as_array().unwrap();
    let cells: Vec<(i64, &str)> = errors
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["column"].as_str().unwrap()))
        .collect();
    assert_eq!(cells, [(4, "手机"), (4, "邮箱"), (4, "生日")], "{errors:?}");
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid phone number")
    );
    assert_eq!(errors[0]["value"], "12345");

    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    assert_eq!(all["customers"]["totalCount"], 4);
    let fang = by_name(&all, "王芳");
    assert_eq!(fang.len(), 2, "the merged row did not make a third 王芳");
    let first = fang[0];
    assert_eq!(first["phones"], json!(["+8613800138000"]));
    assert_eq!(first["emails"], json!(["wangfang88@qq.com"]));
    assert_eq!(first["lifecycleStage"], "LOYAL");
    assert_eq!(first["sourceChannel"], "IMPORT");
    assert_eq!(
        first["identities"],
        json!([{ "channel": "WECOM", "externalId": "wm001" }, { "channel": "WECOM", "externalId": "wm003" }]),
        "the merged row's identity joined the profile"
    );
    assert_eq!(first["attributes"]["birthday"], "1990-03-07");
    assert_eq!(
        first["attributes"]["city"], "杭州",
        "most recent wins: the later row's city"
    );
    assert_eq!(
        first["tags"],
        json!([{ "tag": { "name": "VIP" }, "source": "import" }])
    );
    let na = by_name(&all, "李娜")[0];
    assert_eq!(
        na["phones"],
        json!(["+8613900001111", "+8613900002222"]),
        "one cell, two phones"
    );
    assert_eq!(na["lifecycleStage"], "CUSTOMER");
    assert_eq!(na["attributes"]["birthday"], "1988-12-01");
    assert_eq!(na["tags"], json!([]), "unmapped values add no tag");

    // the batch is recorded by one audit entry about the job, naming every customer it
    // created and every row it merged, with their rows — not by an entry per customer
    let audit = s
        .ok(
            ALPHA,
            "query($id: ID!) { auditLog(filter: { entityType: \"import_job\", entityId: $id }) { edges { node { id action changes } } } }",
            json!({ "id": job["id"] }),
        )
        .await;
    let entries = audit["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "one batch, one entry: {entries:?}");
    let batch = &entries[0]["node"];
    assert_eq!(batch["action"], "customer.import");
    assert_eq!(batch["changes"]["importJob"], job["id"]);
    let created: Vec<(&str, i64)> = batch["changes"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["customer"].as_str().unwrap(), c["row"].as_i64().unwrap()))
        .collect();
    let id_of = |n: &Value| n["id"].as_str().unwrap().to_owned();
    let zhang = by_name(&all, "张伟")[0];
    assert_eq!(
        created,
        [
            (id_of(first).as_str(), 2),
            (id_of(na).as_str(), 3),
            (id_of(fang[1]).as_str(), 6),
            (id_of(zhang).as_str(), 8),
        ]
    );
    assert_eq!(
        batch["changes"]["merged"],
        json!([{ "customer": first["id"], "row": 5 }])
    );
    let own = s
        .ok(
            ALPHA,
            "query($id: ID!) { auditLog(filter: { entityId: $id, action: \"customer.import\" }) { edges { node { id } } } }",
            json!({ "id": na["id"] }),
        )
        .await;
    assert_eq!(own["auditLog"]["edges"], json!([]), "no entry per customer");

    // a customer's history reads its line from the batch's entry: the job and its row
    let history = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { history { id at action entityType entityId changes } } }",
            json!({ "id": na["id"] }),
        )
        .await;
    let lines = history["customer"]["history"].as_array().unwrap();
    let line = lines
        .iter()
        .find(|l| l["action"] == "customer.import")
        .unwrap_or_else(|| panic!("no import line in {lines:?}"));
    assert_eq!(line["changes"], json!({ "importJob": job["id"], "row": 3 }));
    assert_eq!(
        (&line["entityType"], &line["entityId"]),
        (&json!("customer"), &na["id"])
    );
    assert_eq!(
        line["id"],
        format!("{}/3", batch["id"].as_str().unwrap()),
        "an id of its own, naming the batch entry"
    );

    // the job can be read back, with its errors
    let again = s
        .ok(
            ALPHA,
            "query($id: ID!) { importJob(id: $id) { status rejected errors(limit: 1) { row } } importJobs(first: 5) { edges { node { id } } } }",
            json!({ "id": job["id"] }),
        )
        .await;
    assert_eq!(again["importJob"]["errors"], json!([{ "row": 4 }]));
    assert_eq!(again["importJobs"]["edges"][0]["node"]["id"], job["id"]);

    // the error file the console links to: the same problems (the reasons quote the values)
    let path = format!("/imports/{}/errors.csv", job["id"].as_str().unwrap());
    let bearer = |key: &str| format!("Authorization: Bearer {key}\r\n");
    let (status, _, csv) =
        crate::harness::http_with_head(s.addr, "GET", &path, &bearer(ALPHA), "").await;
    assert_eq!(status, 200, "{csv}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("row,column,reason"));
    let errors = job["errors"].as_array().unwrap();
    let mut read = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    let rows: Vec<Vec<String>> = read
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let expected: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                e["row"].to_string(),
                e["column"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    assert_eq!(rows, expected);
    // another tenant's key finds no such job
    let (status, _, _) =
        crate::harness::http_with_head(s.addr, "GET", &path, &bearer(crate::harness::BETA), "")
            .await;
    assert_eq!(status, 404);
}

async fn a_dry_run_reports_what_would_happen_and_keeps_nothing(s: &TestServer) {
    create_vip_tag(s, ALPHA).await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING, "dryRun": true } }),
        )
        .await["importCustomers"];
    assert_eq!(job["dryRun"], true);
    assert_eq!(job["status"], "completed");
    assert_eq!(
        (
            &job["created"],
            &job["merged"],
            &job["suggested"],
            &job["rejected"]
        ),
        (&json!(4), &json!(1), &json!(1), &json!(1)),
        "the same counts as the real import"
    );
    assert_eq!(job["errors"].as_array().unwrap().len(), 3);
    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    assert_eq!(all["customers"]["totalCount"], 0);
    let suggestions = s
        .ok(
            ALPHA,
            "{ duplicateSuggestions(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(suggestions["duplicateSuggestions"]["edges"], json!([]));
}

async fn mapping_mistakes_name_the_key_and_nothing_is_stored(s: &TestServer) {
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": CSV, "mapping": "[columns]\ndisplay_name = \"姓名\"\nphone = \"手机\"\n" } }))
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    assert_eq!(fields(&e), ["mapping.columns.phone"]);
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": CSV, "mapping": "[columns]\ndisplay_name = \"姓名\"\nphones = \"电话\"\n" } }))
        .await;
    assert_eq!(fields(&e), ["mapping.columns.phones"]);
    let message = e["extensions"]["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("no column `电话`") && message.contains("姓名, 手机, 邮箱"),
        "{message}"
    );
    let e = s
        .err(
            ALPHA,
            IMPORT_EVENTS,
            json!({ "input": { "content": CSV, "mapping": MAPPING } }),
        )
        .await;
    assert_eq!(
        fields(&e),
        ["mapping.kind"],
        "a customer mapping given to importEvents"
    );
    let e = s
        .err(
            ALPHA_READONLY,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING } }),
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    assert_eq!(all["customers"]["totalCount"], 0);
}

/// An XLSX workbook (tests/fixtures/customers.xlsx, made by make_xlsx.py): phones typed as
/// numbers, a real date cell, a second sheet.
async fn xlsx_workbooks_import_like_csv(s: &TestServer) {
    let bytes = std::fs::read(fixture("customers.xlsx")).unwrap();
    use base64::Engine;
    let content = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mapping = "[source]\nsheet = \"客户\"\n[columns]\ndisplay_name = \"姓名\"\nphones = \"手机\"\n[attributes]\nbirthday = { column = \"生日\", type = \"date\" }\npoints = { column = \"积分\", type = \"integer\" }\n";
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": content, "format": "XLSX", "mapping": mapping } }),
        )
        .await["importCustomers"];
    assert_eq!(
        (&job["created"], &job["rejected"]),
        (&json!(2), &json!(1)),
        "{job}"
    );
    assert_eq!(job["errors"][0]["row"], 4);
    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    let chen = by_name(&all, "陈静")[0];
    assert_eq!(
        chen["phones"],
        json!(["+8613712345678"]),
        "a number cell, not 1.37e10"
    );
    assert_eq!(
        chen["attributes"],
        json!({ "birthday": "1992-05-20", "points": 1200 })
    );
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": content, "format": "XLSX", "mapping": mapping.replace("客户", "Sheet9") } }))
        .await;
    assert!(
        fields(&e) == ["file"] && e["message"].as_str().unwrap().contains("no sheet `Sheet9`"),
        "{e}"
    );
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

const EVENTS_CSV: &str = r#"企微ID,手机,类型,时间,金额,订单号,SKU
wm001,,下单,2026-11-20 08:30,"¥1,299.50",SO1001,A-1
,13900001111,到店,2026-11-21 15:00,,,
wm404,,下单,2026-11-22 10:00,10,SO1002,
wm002,,下单,yesterday,10,SO1003,
"#;

const EVENTS_MAPPING: &str = r#"
kind = "events"
[customer]
wecom = "企微ID"
phone = "手机"
[columns]
type = { column = "类型", map = { "下单" = "order", "到店" = "visit" } }
occurred_at = { column = "时间", formats = ["%Y-%m-%d %H:%M"] }
amount = "金额"
idempotency_key = { column = "订单号", prefix = "shop-order-" }
[payload]
sku = "SKU"
"#;

async fn events_find_their_customers_and_import_once(s: &TestServer) {
    create_vip_tag(s, ALPHA).await;
    s.ok(
        ALPHA,
        IMPORT,
        json!({ "input": { "content": CSV, "mapping": MAPPING } }),
    )
    .await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT_EVENTS,
            json!({ "input": { "content": EVENTS_CSV, "mapping": EVENTS_MAPPING } }),
        )
        .await["importEvents"];
    assert_eq!(
        (&job["created"], &job["rejected"], &job["updated"]),
        (&json!(2), &json!(2), &json!(2)),
        "{job}"
    );
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(
        (errors[0]["row"].as_i64(), errors[0]["column"].as_str()),
        (Some(4), Some("企微ID"))
    );
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no customer")
    );
    assert_eq!(
        (errors[1]["row"].as_i64(), errors[1]["column"].as_str()),
        (Some(5), Some("时间"))
    );

    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    let fang = by_name(&all, "王芳")[0]["id"].clone();
    let timeline = s
        .ok(
            ALPHA,
            "query($id: ID!) { customer(id: $id) { timeline(first: 5) { edges { node { type occurredAt amount { amount currency } payload idempotencyKey } } } } }",
            json!({ "id": fang }),
        )
        .await;
    let order = &timeline["customer"]["timeline"]["edges"][0]["node"];
    assert_eq!(order["type"], "ORDER");
    assert_eq!(
        order["occurredAt"], "2026-11-20T00:30:00+00:00",
        "08:30 in Shanghai"
    );
    assert_eq!(
        order["amount"],
        json!({ "amount": "1299.50", "currency": "CNY" })
    );
    assert_eq!(order["payload"], json!({ "sku": "A-1" }));
    assert_eq!(order["idempotencyKey"], "shop-order-SO1001");

    let again = &s
        .ok(
            ALPHA,
            IMPORT_EVENTS,
            json!({ "input": { "content": EVENTS_CSV, "mapping": EVENTS_MAPPING } }),
        )
        .await["importEvents"];
    assert_eq!(
        (&again["created"], &again["duplicates"]),
        (&json!(0), &json!(2)),
        "the visit row has a key derived from the file and row"
    );
}

async fn imports_stay_in_their_tenant(s: &TestServer) {
    create_vip_tag(s, ALPHA).await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING } }),
        )
        .await["importCustomers"];
    let e = s
        .err(
            BETA,
            "query($id: ID!) { importJob(id: $id) { id } }",
            json!({ "id": job["id"] }),
        )
        .await;
    assert_eq!(code(&e), "NOT_FOUND");
    // beta imports the same rows: nothing of alpha's is matched or merged
    s.ok(
        BETA,
        "mutation { createTag(input: { name: \"VIP\" }) { id } }",
        json!({}),
    )
    .await;
    let beta = &s
        .ok(
            BETA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING } }),
        )
        .await["importCustomers"];
    assert_eq!((&beta["created"], &beta["merged"]), (&json!(4), &json!(1)));
    let e = s
        .err(BETA, IMPORT_EVENTS, json!({ "input": { "content": EVENTS_CSV, "mapping": EVENTS_MAPPING, "resumeJobId": job["id"] } }))
        .await;
    assert_eq!(
        code(&e),
        "NOT_FOUND",
        "another tenant's job cannot be resumed"
    );
}

/// A GBK file (as Excel in China saves CSV), sent as base64 with the mapping's encoding.
async fn gbk_files_arrive_as_base64(s: &TestServer) {
    use base64::Engine;
    let (bytes, _, _) = encoding_rs::GBK.encode("姓名,手机\r\n赵敏,13600000000\r\n"); // as Excel on Windows saves it
    let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mapping =
        "[source]\nencoding = \"gbk\"\n[columns]\ndisplay_name = \"姓名\"\nphones = \"手机\"\n";
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": content, "base64": true, "mapping": mapping } }),
        )
        .await["importCustomers"];
    assert_eq!(job["created"], 1, "{job}");
    let all = s.ok(ALPHA, CUSTOMERS, json!({})).await;
    assert_eq!(
        by_name(&all, "赵敏")[0]["phones"],
        json!(["+8613600000000"])
    );
    // without the encoding, the bytes are not UTF-8: the header cannot be read
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": content, "base64": true, "mapping": "[columns]\ndisplay_name = \"姓名\"\n" } }))
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("set source.encoding"),
        "{e}"
    );
    // a dry run cannot continue a real job
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": content, "base64": true, "mapping": mapping, "dryRun": true, "resumeJobId": job["id"] } }))
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
}

/// `wait: false` answers with the running job; `importJob` follows it to its end.
async fn an_import_need_not_hold_the_request(s: &TestServer) {
    create_vip_tag(s, ALPHA).await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING, "wait": false, "batchSize": 2 } }),
        )
        .await["importCustomers"];
    assert_eq!(job["status"], "running");
    let mut done = Value::Null;
    for _ in 0..200 {
        done = s
            .ok(
                ALPHA,
                "query($id: ID!) { importJob(id: $id) { status created merged rejected } }",
                json!({ "id": job["id"] }),
            )
            .await["importJob"]
            .clone();
        if done["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        done,
        json!({ "status": "completed", "created": 4, "merged": 1, "rejected": 1 })
    );
    // a refusal still comes back as an error, not as a job
    let e = s
        .err(ALPHA, IMPORT, json!({ "input": { "content": CSV, "mapping": "[columns]\nphones = \"手机\"\n", "wait": false } }))
        .await;
    assert_eq!(fields(&e), ["mapping.columns.display_name"]);
}

crate::on_both_backends!(
    customers_import_maps_fields_and_reports_bad_rows,
    an_import_need_not_hold_the_request,
    gbk_files_arrive_as_base64,
    a_dry_run_reports_what_would_happen_and_keeps_nothing,
    mapping_mistakes_name_the_key_and_nothing_is_stored,
    xlsx_workbooks_import_like_csv,
    events_find_their_customers_and_import_once,
    imports_stay_in_their_tenant,
);

/// With `auto_merge = ["identity"]`, a row sharing only a phone with a stored customer is
/// stored apart and suggested as a duplicate (score 100), never merged.
async fn policy_without_phone_merges_suggests_instead(backend: crate::harness::Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.tenants.get_mut("alpha").unwrap().dedupe.auto_merge =
            vec![shoal_base::config::MatchKey::Identity];
    })
    .await
    else {
        return;
    };
    s.create_customer(
        ALPHA,
        json!({ "displayName": "王芳", "phones": ["13800138000"], "sourceChannel": "WECOM" }),
    )
    .await;
    let job = &s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": "name,phone\nFang Wang,13800138000\n", "mapping": "[columns]\ndisplay_name = \"name\"\nphones = \"phone\"\n" } }),
        )
        .await["importCustomers"];
    assert_eq!(
        (&job["created"], &job["merged"], &job["suggested"]),
        (&json!(1), &json!(0), &json!(1))
    );
    let suggestions = s
        .ok(ALPHA, "{ duplicateSuggestions(first: 5) { edges { node { score reasons { code detail } } } } }", json!({}))
        .await;
    assert_eq!(
        suggestions["duplicateSuggestions"]["edges"][0]["node"],
        json!({ "score": 100, "reasons": [{ "code": "same_phone", "detail": "+8613800138000" }] })
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_without_phone_merges_suggests_instead_sqlite() {
    policy_without_phone_merges_suggests_instead(crate::harness::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_without_phone_merges_suggests_instead_postgres() {
    policy_without_phone_merges_suggests_instead(crate::harness::Backend::Postgres).await;
}

/// The retail spreadsheet imported in batches of two rows (four batches, merges among
/// them), once the VIP tag exists; the completed job.
async fn import_in_batches_of_two(s: &TestServer) -> Value {
    create_vip_tag(s, ALPHA).await;
    let job = s
        .ok(
            ALPHA,
            IMPORT,
            json!({ "input": { "content": CSV, "mapping": MAPPING, "batchSize": 2 } }),
        )
        .await["importCustomers"]
        .clone();
    assert_eq!(job["status"], "completed");
    job
}

/// A pool of a single connection cannot spare one for the import's batches: the import
/// then writes through the pool like everything else, and completes (no deadlock with the
/// tag evaluation after each batch).
async fn an_import_completes_on_a_pool_of_one_connection(backend: crate::harness::Backend) {
    let Some(s) = TestServer::start_with(backend, |c| c.storage.max_connections = 1).await else {
        return;
    };
    let job = &import_in_batches_of_two(&s).await;
    assert_eq!(
        (&job["created"], &job["merged"], &job["rejected"]),
        (&json!(4), &json!(1), &json!(1))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_completes_on_a_pool_of_one_connection_sqlite() {
    an_import_completes_on_a_pool_of_one_connection(crate::harness::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_completes_on_a_pool_of_one_connection_postgres() {
    an_import_completes_on_a_pool_of_one_connection(crate::harness::Backend::Postgres).await;
}

/// On SQLite the import's own connection (64 MiB page cache, rarer WAL checkpoints) is
/// closed when the import ends: every connection the pool hands out afterwards has
/// SQLite's defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_connection_settings_stay_with_the_import() {
    use sqlx::Row;
    let Some(s) = TestServer::start(crate::harness::Backend::Sqlite).await else {
        return;
    };
    import_in_batches_of_two(&s).await;
    let pool = &s.db().pool;
    // hold every connection the pool has, so each one is asked
    let mut held = Vec::new();
    for _ in 0..pool.size().max(1) {
        held.push(pool.acquire().await.unwrap());
    }
    // SQLite's defaults: a 2 MiB page cache, a checkpoint every 1,000 pages
    for conn in &mut held {
        for (pragma, default) in [("cache_size", -2000i64), ("wal_autocheckpoint", 1000)] {
            let row = sqlx::query(&format!("PRAGMA {pragma}"))
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(row.try_get::<i64, _>(0).unwrap(), default, "{pragma}");
        }
    }
    drop(held);
    s.stop().await;
}

// ---------------------------------------------------------------- the CLI

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

fn cli_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("shoal.toml"),
        "[storage]\nurl = \"sqlite://data/shoal.db\"\n[log]\nlevel = \"warn\"\n\
         [tenants.acme]\nname = \"Acme\"\ntime_zone = \"Asia/Shanghai\"\nusers.boss = { name = \"Boss\", role = \"admin\" }\n",
    )
    .unwrap();
    dir
}

fn shoal(dir: &PathBuf, args: &[&str]) -> std::process::Command {
    let mut cmd = Command::new(SHOAL);
    cmd.arg("--config")
        .arg(dir.join("shoal.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("SHOAL_CONFIG");
    cmd
}

async fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let db = shoal_base::storage::Db::connect(
        &format!("sqlite://{}", dir.join("data/shoal.db").display()),
        1,
    )
    .await
    .unwrap();
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

#[tokio::test]
async fn the_cli_writes_an_error_file_and_reports_quality() {
    let dir = cli_dir("errors");
    std::fs::write(dir.join("customers.csv"), CSV.replace("VIP客户", "普通")).unwrap();
    std::fs::write(dir.join("mapping.toml"), MAPPING.replace("[[tags]]\ncolumn = \"客户类型\"\nmap = { \"VIP客户\" = \"VIP\" }\nunmapped = \"ignore\"\n", "")).unwrap();
    let out = shoal(
        &dir,
        &[
            "import",
            "customers",
            "customers.csv",
            "--tenant",
            "acme",
            "--mapping",
            "mapping.toml",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created 4 · merged 1 · suggested 1 · rejected 1"),
        "{stdout}"
    );
    let errors = std::fs::read_to_string(dir.join("customers.csv.errors.csv")).unwrap();
    assert_eq!(errors.lines().next(), Some("row,column,value,reason"));
    assert!(errors.contains("4,手机,12345,"), "{errors}");
    assert_eq!(errors.lines().count(), 4);

    let out = shoal(&dir, &["report", "quality", "--tenant", "acme", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["customers"], 4);
    assert_eq!(report["duplicatesPending"], 1);
    let phone = report["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "phone")
        .unwrap();
    assert_eq!(
        (&phone["missing"], &phone["missingRate"]),
        (&json!(1), &json!(0.25))
    );
    assert!(
        report["invalidValues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["field"] == "import:手机")
    );

    let out = shoal(
        &dir,
        &[
            "import",
            "customers",
            "customers.csv",
            "--tenant",
            "nobody",
            "--mapping",
            "mapping.toml",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant `nobody`"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `shoal import` killed with SIGKILL mid-file resumes after its last committed batch:
/// every row is imported exactly once.
#[tokio::test]
async fn a_killed_import_resumes_after_its_checkpoint() {
    let dir = cli_dir("resume");
    let rows = 30_000;
    let mut csv = String::from("name,phone,member\n");
    for i in 0..rows {
        csv.push_str(&format!("客户{i},+86139{i:08},m{i}\n"));
    }
    std::fs::write(dir.join("big.csv"), &csv).unwrap();
    std::fs::write(dir.join("mapping.toml"), "[columns]\ndisplay_name = \"name\"\nphones = \"phone\"\n[identities]\nstore = \"member\"\n").unwrap();
    let mut child = shoal(
        &dir,
        &[
            "import",
            "customers",
            "big.csv",
            "--tenant",
            "acme",
            "--mapping",
            "mapping.toml",
            "--batch",
            "200",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ready = dir.join("data/shoal.db").exists()
            && sqlx_ok(&dir).await
            && count(
                &dir,
                "SELECT COALESCE(MAX(checkpoint_row), 0) FROM import_jobs",
            )
            .await
                >= 1000;
        if ready || std::time::Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let checkpoint = count(&dir, "SELECT MAX(checkpoint_row) FROM import_jobs").await;
    let stored = count(&dir, "SELECT COUNT(*) FROM customers").await;
    assert!(
        checkpoint > 0 && checkpoint < rows + 1,
        "killed mid-file (checkpoint {checkpoint})"
    );
    assert_eq!(
        stored,
        checkpoint - 1,
        "exactly the rows up to the checkpoint are stored"
    );

    let db = shoal_base::storage::Db::connect(
        &format!("sqlite://{}", dir.join("data/shoal.db").display()),
        1,
    )
    .await
    .unwrap();
    use sqlx::Row;
    let job: String = sqlx::query("SELECT id FROM import_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    drop(db);
    // a different file is refused
    std::fs::write(
        dir.join("other.csv"),
        "name,phone,member\nx,13900000000,m0\n",
    )
    .unwrap();
    let out = shoal(
        &dir,
        &[
            "import",
            "customers",
            "other.csv",
            "--tenant",
            "acme",
            "--resume",
            &job,
        ],
    )
    .output()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the file differs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = shoal(
        &dir,
        &[
            "import",
            "customers",
            "big.csv",
            "--tenant",
            "acme",
            "--resume",
            &job,
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resuming after row {checkpoint}")),
        "{stderr}"
    );
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM customers").await, rows);
    assert_eq!(
        count(
            &dir,
            "SELECT COUNT(DISTINCT external_id) FROM customer_identities"
        )
        .await,
        rows
    );
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM customer_merges").await,
        0,
        "nothing matched itself"
    );
    assert_eq!(count(&dir, "SELECT created FROM import_jobs").await, rows);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn sqlx_ok(dir: &std::path::Path) -> bool {
    let Ok(db) = shoal_base::storage::Db::connect(
        &format!("sqlite://{}", dir.join("data/shoal.db").display()),
        1,
    )
    .await
    else {
        return false;
    };
    sqlx::query("SELECT 1 FROM import_jobs")
        .fetch_optional(&db.pool)
        .await
        .is_ok()
}
