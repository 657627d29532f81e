//! Analytics end to end: funnels, retention cohorts and SOP figures through GraphQL,
//! checked by hand on small cases and against the plain SQL of docs/analytics.md (run on
//! the same database) on generated customers; scoped to what the reader reaches.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{ALPHA, Backend, TestServer, code, fields};

const AGENT: &str = "alpha-agent-key-00000000004";

const FUNNEL: &str = "query($input: FunnelInput!) { funnel(input: $input) {
    overall { key entered excluded steps { index label customers dropOff conversionFromPrevious conversionFromStart medianSecondsFromPrevious } }
    groups { key entered excluded steps { customers } } } }";

const RETENTION: &str = "query($input: RetentionInput!) { retention(input: $input) {
    timeZone cohorts { start customers returned rates } } }";

const RECORD: &str =
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }";

fn agent(config: &mut shoal_base::config::Config) {
    crate::harness::add_key(config, "agent-a", AGENT);
}

async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, agent).await
}

/// Day `d` of October 2026 at `h`:`m` UTC.
fn at(d: i64, h: i64, m: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
        + Duration::days(d)
        + Duration::hours(h)
        + Duration::minutes(m)
}

fn event(customer: &str, ty: &str, t: DateTime<Utc>) -> Value {
    let mut e = json!({ "customerId": customer, "type": ty, "occurredAt": t.to_rfc3339() });
    if ty == "ORDER" || ty == "REFUND" {
        e["amount"] = json!({ "amount": "120.00", "currency": "CNY" });
    }
    e
}

async fn record(s: &TestServer, events: Vec<Value>) {
    for chunk in events.chunks(200) {
        s.ok(ALPHA, RECORD, json!({ "input": chunk })).await;
    }
}

fn visit_consult_order() -> Value {
    json!([
        { "label": "到店", "event": { "type": "VISIT" } },
        { "label": "咨询", "event": { "type": "CONSULT" } },
        { "label": "下单", "event": { "type": "ORDER" } },
    ])
}

fn counts(group: &Value) -> Vec<i64> {
    group["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["customers"].as_i64().unwrap())
        .collect()
}

async fn a_funnel_counts_best_attempts_windows_and_exclusions(s: &TestServer) {
    let c = |name: &'static str, channel: &'static str, owner: Option<&'static str>| async move {
        s.create_customer(
            ALPHA,
            json!({ "displayName": name, "sourceChannel": channel, "ownerId": owner }),
        )
        .await
    };
    let a = c("甲", "STORE", Some("agent-a")).await;
    let b = c("乙", "WEB", None).await;
    let x = c("丙", "STORE", None).await;
    let d = c("丁", "WEB", None).await;
    record(
        s,
        vec![
            // 甲: the whole path, a day per step
            event(&a, "VISIT", at(1, 9, 0)),
            event(&a, "CONSULT", at(2, 9, 0)),
            event(&a, "ORDER", at(3, 9, 0)),
            // 乙: the first visit goes nowhere in 7 days; the second leads to a consult
            event(&b, "VISIT", at(1, 9, 0)),
            event(&b, "VISIT", at(12, 9, 0)),
            event(&b, "CONSULT", at(12, 9, 30)),
            // 丙: the whole path with a refund between visit and order
            event(&x, "VISIT", at(2, 9, 0)),
            event(&x, "REFUND", at(3, 9, 0)),
            event(&x, "CONSULT", at(4, 9, 0)),
            event(&x, "ORDER", at(5, 9, 0)),
            // 丁: consults but never visits; a visit after the range
            event(&d, "CONSULT", at(2, 9, 0)),
            event(&d, "VISIT", at(20, 9, 0)),
        ],
    )
    .await;
    let input = json!({ "steps": visit_consult_order(), "from": at(0, 0, 0).to_rfc3339(), "to": at(15, 0, 0).to_rfc3339() });
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": input })).await;
    let overall = &f["funnel"]["overall"];
    assert_eq!(counts(overall), [3, 3, 2], "{f}");
    assert_eq!(overall["entered"], 3);
    let steps = &overall["steps"];
    assert_eq!(steps[0]["label"], "到店");
    assert_eq!(steps[0]["conversionFromPrevious"], 1.0);
    assert_eq!(steps[2]["dropOff"], 1);
    assert_eq!(steps[2]["conversionFromStart"], 2.0 / 3.0);
    // consult after a day (甲), 30 minutes (乙), two days (丙)
    assert_eq!(steps[1]["medianSecondsFromPrevious"], 86_400);
    assert_eq!(steps[0]["medianSecondsFromPrevious"], Value::Null);

    // a refund between visit and order leaves 丙 out
    let mut excl = input.clone();
    excl["exclusions"] =
        json!([{ "event": { "type": "REFUND" }, "afterStep": 0, "beforeStep": 2 }]);
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": excl })).await;
    assert_eq!(counts(&f["funnel"]["overall"]), [2, 2, 1], "{f}");
    assert_eq!(f["funnel"]["overall"]["excluded"], 1);

    // a one-hour window for the consult keeps only 乙's (30 minutes)
    let mut tight = input.clone();
    tight["steps"][1]["withinMinutes"] = json!(60);
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": tight })).await;
    assert_eq!(counts(&f["funnel"]["overall"]), [3, 1, 0], "{f}");

    // any order: 丁's consult came before the visit, but the visit is after the range
    let mut any = input.clone();
    any["order"] = json!("ANY_ORDER");
    any["to"] = json!(at(25, 0, 0).to_rfc3339());
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": any })).await;
    assert_eq!(counts(&f["funnel"]["overall"]), [4, 3, 2], "{f}");

    // by channel: STORE has 甲 and 丙, WEB has 乙
    let mut by = input.clone();
    by["breakdown"] = json!("CHANNEL");
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": by })).await;
    let groups: BTreeMap<String, Vec<i64>> = f["funnel"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_owned(), counts(g)))
        .collect();
    assert_eq!(
        groups,
        BTreeMap::from([
            ("store".into(), vec![2, 2, 2]),
            ("web".into(), vec![1, 1, 0])
        ])
    );

    // by segment: a saved segment of web customers
    let seg = s
        .ok_id(
            ALPHA,
            "mutation { createSegment(input: { name: \"线上\", definition: { channels: [WEB] } }) { id } }",
            json!({}),
            "createSegment",
        )
        .await;
    let mut by = input.clone();
    by["breakdown"] = json!("SEGMENT");
    by["segments"] = json!([seg]);
    let f = s.ok(ALPHA, FUNNEL, json!({ "input": by })).await;
    assert_eq!(f["funnel"]["groups"][0]["key"], json!(seg));
    assert_eq!(counts(&f["funnel"]["groups"][0]), [1, 1, 0]);

    // the agent reaches only their own customer (甲)
    let f = s.ok(AGENT, FUNNEL, json!({ "input": input })).await;
    assert_eq!(counts(&f["funnel"]["overall"]), [1, 1, 1], "{f}");
}

async fn bad_funnels_are_refused_by_field(s: &TestServer) {
    let bad = json!({
        "steps": [{ "event": { "type": "CUSTOM" } }, { "event": { "type": "ORDER", "minAmount": "-1" }, "withinMinutes": 0 }],
        "exclusions": [{ "event": { "type": "REFUND" }, "afterStep": 1, "beforeStep": 1 }],
        "from": at(5, 0, 0).to_rfc3339(), "to": at(1, 0, 0).to_rfc3339()
    });
    let e = s.err(ALPHA, FUNNEL, json!({ "input": bad })).await;
    assert_eq!(code(&e), "BAD_USER_INPUT", "{e}");
    let f = fields(&e);
    for field in [
        "input.steps[0].name",
        "input.steps[1].minAmount",
        "input.steps[1].within",
        "input.exclusions[0].beforeStep",
        "input.to",
    ] {
        assert!(f.contains(&field.to_owned()), "{field} not in {f:?}");
    }
    let one = json!({ "steps": [{ "event": { "type": "VISIT" } }], "from": at(0, 0, 0).to_rfc3339(), "to": at(1, 0, 0).to_rfc3339() });
    let e = s.err(ALPHA, FUNNEL, json!({ "input": one })).await;
    assert_eq!(fields(&e), ["input.steps"]);
}

/// A small deterministic generator (the tests need the same data on both backends).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Generated customers with random visits, consults, orders and refunds over 60 days;
/// some events share a timestamp.
async fn generated(s: &TestServer, customers: usize) -> Vec<String> {
    let mut rng = Lcg(7);
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for i in 0..customers {
        let id = s
            .create_customer(
                ALPHA,
                json!({ "displayName": format!("客户{i}"), "sourceChannel": if i % 3 == 0 { "WEB" } else { "STORE" } }),
            )
            .await;
        for _ in 0..rng.below(14) {
            let ty = ["VISIT", "VISIT", "CONSULT", "ORDER", "REFUND", "PAGE_VIEW"]
                [rng.below(6) as usize];
            let t = at(
                rng.below(60) as i64,
                rng.below(24) as i64,
                rng.below(4) as i64 * 15,
            );
            events.push(event(&id, ty, t));
        }
        ids.push(id);
    }
    record(s, events).await;
    ids
}

/// The fenced `sql` block of docs/analytics.md whose first line is `first_line`.
fn reference_sql(first_line: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/analytics.md");
    let text = std::fs::read_to_string(path).unwrap();
    crate::docs::blocks("docs/analytics.md", &text)
        .unwrap()
        .into_iter()
        .find(|b| b.lang == "sql" && b.body.lines().next() == Some(first_line))
        .unwrap_or_else(|| panic!("no sql block starting `{first_line}` in docs/analytics.md"))
        .body
}

async fn funnels_agree_with_the_documented_sql(s: &TestServer) {
    generated(s, 150).await;
    let (from, to) = (at(5, 0, 0), at(40, 0, 0));
    let (w2, w3) = (Duration::days(3), Duration::days(5));
    let mut steps = visit_consult_order();
    steps[1]["withinMinutes"] = json!(w2.num_minutes());
    steps[2]["withinMinutes"] = json!(w3.num_minutes());
    let f = s
        .ok(
            ALPHA,
            FUNNEL,
            json!({ "input": { "steps": steps, "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
        )
        .await;
    let overall = &f["funnel"]["overall"];

    let sql =
        reference_sql("-- funnel: visit → consult → order, in order, best attempt per customer");
    let row = sqlx::query(&sql)
        .bind("alpha")
        .bind(from.timestamp_micros())
        .bind(to.timestamp_micros())
        .bind(w2.num_microseconds().unwrap())
        .bind(w3.num_microseconds().unwrap())
        .fetch_one(&s.db().pool)
        .await
        .unwrap();
    let n = |c: &str| row.try_get::<i64, _>(c).unwrap();
    let m = |c: &str| row.try_get::<Option<i64>, _>(c).unwrap();
    assert!(
        n("step1") > 30,
        "the generated data should enter the funnel"
    );
    assert!(n("step3") > 0, "the generated data should convert");
    assert_eq!(counts(overall), [n("step1"), n("step2"), n("step3")], "{f}");
    let medians: Vec<Option<i64>> = overall["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["medianSecondsFromPrevious"].as_i64())
        .collect();
    assert_eq!(medians, [None, m("median2"), m("median3")]);

    // any order can only reach as far as in order, or further
    let any = s
        .ok(
            ALPHA,
            FUNNEL,
            json!({ "input": { "steps": visit_consult_order(), "order": "ANY_ORDER", "windowMinutes": w2.num_minutes() + w3.num_minutes(),
                               "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
        )
        .await;
    assert!(counts(&any["funnel"]["overall"])[2] >= n("step3"));
}

async fn retention_agrees_with_the_documented_sql(s: &TestServer, backend: Backend) {
    generated(s, 120).await;
    // cohorts: the weeks from Monday 5 October to Sunday 1 November 2026, Shanghai time
    let shanghai = |d: u32, m: u32| {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, m, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let (from, to, horizon) = (shanghai(5, 10), shanghai(2, 11), shanghai(30, 11));
    let r = s
        .ok(
            ALPHA,
            RETENTION,
            json!({ "input": { "starting": { "type": "ORDER" }, "returning": { "type": "ORDER" }, "period": "WEEK",
                               "periods": 4, "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
        )
        .await;
    let r = &r["retention"];
    assert_eq!(r["timeZone"], "Asia/Shanghai");
    let starts: Vec<&str> = r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26"]
    );

    let sql = reference_sql(match backend {
        Backend::Sqlite => "-- retention: weekly first-time order cohorts (SQLite, UTC+8)",
        Backend::Postgres => "-- retention: weekly first-time order cohorts (PostgreSQL)",
    });
    let rows = sqlx::query(&sql)
        .bind("alpha")
        .bind(from.timestamp_micros())
        .bind(to.timestamp_micros())
        .bind(horizon.timestamp_micros())
        .fetch_all(&s.db().pool)
        .await
        .unwrap();
    let mut expected: BTreeMap<String, Vec<i64>> = starts
        .iter()
        .map(|s| ((*s).to_owned(), vec![0; 5]))
        .collect();
    for row in rows {
        let cohort: String = row.try_get("cohort").unwrap();
        let n: i64 = row.try_get("n").unwrap();
        let customers: i64 = row.try_get("customers").unwrap();
        if let Some(slot) = expected
            .get_mut(&cohort)
            .and_then(|v| v.get_mut(n as usize))
        {
            *slot = customers;
        }
    }
    let got: BTreeMap<String, Vec<i64>> = r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut row = vec![c["customers"].as_i64().unwrap()];
            row.extend(
                c["returned"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap()),
            );
            (c["start"].as_str().unwrap().to_owned(), row)
        })
        .collect();
    assert!(got.values().map(|v| v[0]).sum::<i64>() > 10, "{got:?}");
    assert!(
        got.values()
            .map(|v| v[1..].iter().sum::<i64>())
            .sum::<i64>()
            > 0,
        "{got:?}"
    );
    assert_eq!(got, expected);

    // weeks of a zone whose offset changes in the range (London leaves summer time on
    // 25 October) are cut event by event, not in SQL: the same answer as PostgreSQL's own
    // time zones give
    if backend == Backend::Postgres {
        let london = s
            .start_beside(|c| {
                c.tenants.get_mut("alpha").unwrap().time_zone = chrono_tz::Europe::London;
            })
            .await;
        let local = |d: u32, m: u32| {
            chrono_tz::Europe::London
                .with_ymd_and_hms(2026, m, d, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let (from, to, horizon) = (local(5, 10), local(2, 11), local(30, 11));
        let r = london
            .ok(
                ALPHA,
                RETENTION,
                json!({ "input": { "starting": { "type": "ORDER" }, "returning": { "type": "ORDER" }, "period": "WEEK",
                                   "periods": 4, "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
            )
            .await;
        let got: BTreeMap<String, Vec<i64>> = r["retention"]["cohorts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut row = vec![c["customers"].as_i64().unwrap()];
                row.extend(
                    c["returned"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_i64().unwrap()),
                );
                (c["start"].as_str().unwrap().to_owned(), row)
            })
            .collect();
        let sql = sql.replace("Asia/Shanghai", "Europe/London");
        let rows = sqlx::query(&sql)
            .bind("alpha")
            .bind(from.timestamp_micros())
            .bind(to.timestamp_micros())
            .bind(horizon.timestamp_micros())
            .fetch_all(&s.db().pool)
            .await
            .unwrap();
        let mut expected: BTreeMap<String, Vec<i64>> =
            got.keys().map(|k| (k.clone(), vec![0; 5])).collect();
        for row in rows {
            let cohort: String = row.try_get("cohort").unwrap();
            let n: i64 = row.try_get("n").unwrap();
            if let Some(slot) = expected
                .get_mut(&cohort)
                .and_then(|v| v.get_mut(n as usize))
            {
                *slot = row.try_get("customers").unwrap();
            }
        }
        assert_eq!(got.len(), 4, "{r}");
        assert_eq!(got, expected, "London");
        london.stop().await;
    }

    // a cohort whose later periods have not begun says so
    let now = Utc::now();
    let r = s
        .ok(
            ALPHA,
            RETENTION,
            json!({ "input": { "starting": { "type": "ORDER" }, "returning": { "type": "ORDER" }, "period": "MONTH",
                               "periods": 3, "from": (now - Duration::days(40)).to_rfc3339(), "to": now.to_rfc3339() } }),
        )
        .await;
    let last = r["retention"]["cohorts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["returned"], json!([null, null, null]), "{last}");
}

async fn retention_sqlite(s: &TestServer) {
    retention_agrees_with_the_documented_sql(s, Backend::Sqlite).await;
}

async fn retention_postgres(s: &TestServer) {
    retention_agrees_with_the_documented_sql(s, Backend::Postgres).await;
}

async fn sop_figures_count_each_enrolments_last_outcome(s: &TestServer) {
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "甲", "sourceChannel": "WEB", "ownerId": "agent-a" }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "乙", "sourceChannel": "STORE" }),
        )
        .await;
    let sop = s.greeted(ALPHA, &[&a, &b]).await;
    record(s, vec![event(&a, "ORDER", Utc::now())]).await;
    let q = "query($s: ID!) { sopFigures(sopId: $s, conversion: { event: { type: ORDER }, withinMinutes: 60 }) {
        enrolled byStatus { name count } converted
        steps { stepId reached outcomes { name count } messages { name count } } } }";
    let f = s.ok(ALPHA, q, json!({ "s": sop })).await;
    let f = &f["sopFigures"];
    assert_eq!(f["enrolled"], 2, "{f}");
    assert_eq!(f["converted"], 1, "{f}");
    let first = &f["steps"][0];
    assert_eq!(first["reached"], 2, "{f}");
    assert_eq!(
        first["outcomes"],
        json!([{ "name": "done", "count": 2 }]),
        "{f}"
    );
    let sent: i64 = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_i64().unwrap())
        .sum();
    assert_eq!(sent, 2, "{f}");

    // the same counts by the documented SQL
    let rows = sqlx::query(&reference_sql(
        "-- sop figures: enrolments by each one's last outcome per step",
    ))
    .bind("alpha")
    .bind(&sop)
    .fetch_all(&s.db().pool)
    .await
    .unwrap();
    let by_sql: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get("step_id"), r.get("outcome"), r.get("enrolments")))
        .collect();
    let by_api: Vec<(String, String, i64)> = f["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|st| {
            st["outcomes"].as_array().unwrap().iter().map(|o| {
                (
                    st["stepId"].as_str().unwrap().to_owned(),
                    o["name"].as_str().unwrap().to_owned(),
                    o["count"].as_i64().unwrap(),
                )
            })
        })
        .collect();
    let mut by_api_sorted = by_api.clone();
    by_api_sorted.sort();
    assert_eq!(by_sql, by_api_sorted);

    // the agent sees the enrolment of their own customer only
    let f = s.ok(AGENT, q, json!({ "s": sop })).await;
    assert_eq!(f["sopFigures"]["enrolled"], 1, "{f}");
    // an unknown SOP is not found
    let e = s.err(ALPHA, q, json!({ "s": "nope" })).await;
    assert_eq!(code(&e), "NOT_FOUND");
}

async fn revenue_is_net_of_refunds_per_currency_and_key(s: &TestServer) {
    crate::settlement::with_sample(s).await;
    crate::settlement::reference_data(s).await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "甲", "sourceChannel": "STORE", "ownerId": "agent-a" }),
        )
        .await;
    let settle = |region: &'static str, customer: Option<String>| {
        let c = customer.clone();
        async move {
            s.ok_id(
                ALPHA,
                "mutation($c: ID, $r: String!) { settleBill(input: { reference: \"R\", customerId: $c, region: $r, currency: \"CNY\", participantIds: [\"staff-1\"],
                    lines: [{ kind: SERVICE, code: \"SVC-INSTALL\", quantity: \"2\" }] }) { id } }",
                json!({ "c": c, "r": region }),
                "settleBill",
            )
            .await
        }
    };
    let a = settle("上海", Some(c.clone())).await;
    settle("洛阳", Some(c.clone())).await;
    settle("上海", None).await;
    s.ok(
        ALPHA,
        "mutation($id: ID!) { refundBill(id: $id, reason: \"退货\") { id } }",
        json!({ "id": a }),
    )
    .await;
    let now = Utc::now();
    let q = "query($i: RevenueInput!) { revenue(input: $i) { key currency total points { start amount sales refunds } } }";
    let input = |by: &str| json!({ "i": { "from": (now - Duration::days(70)).to_rfc3339(), "to": (now + Duration::minutes(1)).to_rfc3339(), "period": "MONTH", "by": by } });

    // the total is the bills' sum, as the database has it
    let total = s.ok(ALPHA, q, input("TOTAL")).await;
    let row = sqlx::query(
        "SELECT CAST(SUM(total_units) AS BIGINT) AS u FROM bills WHERE tenant_id = 'alpha'",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    let units: i64 = row.get("u");
    let series = &total["revenue"];
    assert_eq!(series.as_array().unwrap().len(), 1, "{series}");
    assert_eq!(series[0]["currency"], "CNY");
    let dec = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(
        dec(&series[0]["total"]),
        units as f64 / 10_000.0,
        "{series}"
    );
    // every month of the range is there, the empty ones too
    let points = series[0]["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{series}");
    assert!(points.iter().any(|p| dec(&p["amount"]) == 0.0), "{series}");
    let sales: i64 = points.iter().map(|p| p["sales"].as_i64().unwrap()).sum();
    let refunds: i64 = points.iter().map(|p| p["refunds"].as_i64().unwrap()).sum();
    assert_eq!((sales, refunds), (3, 1));

    // by region: each region's net sum, as the database has it
    let by = s.ok(ALPHA, q, input("REGION")).await;
    let got: Vec<(String, f64)> = by["revenue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["key"].as_str().unwrap().to_owned(), dec(&x["total"])))
        .collect();
    let mut want: Vec<(String, f64)> = sqlx::query(
        "SELECT region, CAST(SUM(total_units) AS BIGINT) AS u FROM bills WHERE tenant_id = 'alpha' GROUP BY region ORDER BY region",
    )
    .fetch_all(&s.db().pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>("region"), r.get::<i64, _>("u") as f64 / 10_000.0))
    .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "{by}");
    assert_eq!(got.len(), 2);
    // by participant: the splits, which sum to no more than the bills
    let p = s.ok(ALPHA, q, input("PARTICIPANT")).await;
    let parts: f64 = p["revenue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| dec(&x["total"]))
        .sum();
    assert!(
        parts > 0.0 && parts <= units as f64 / 10_000.0 + 1e-9,
        "{p}"
    );

    // the agent reaches the bills of their own customer only (not the one without a customer)
    let mine = s.ok(AGENT, q, input("TOTAL")).await;
    let own: i64 = sqlx::query("SELECT CAST(SUM(total_units) AS BIGINT) AS u FROM bills WHERE tenant_id = 'alpha' AND customer_id IS NOT NULL")
        .fetch_one(&s.db().pool)
        .await
        .unwrap()
        .get("u");
    assert_eq!(
        dec(&mine["revenue"][0]["total"]),
        own as f64 / 10_000.0,
        "{mine}"
    );
}

async fn a_tag_trend_counts_holders_at_each_periods_end(s: &TestServer) {
    let tag = s.manual_tag(ALPHA, "会员").await;
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "甲", "sourceChannel": "WEB" }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "乙", "sourceChannel": "WEB" }),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { applyTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": [a, b] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($t: ID!, $c: [ID!]) { removeTag(tagId: $t, customerIds: $c) }",
        json!({ "t": tag, "c": [b] }),
    )
    .await;
    let now = Utc::now();
    let r = s
        .ok(
            ALPHA,
            "query($i: TagTrendInput!) { tagTrend(input: $i) { tagId points { start customers } } }",
            json!({ "i": { "tagIds": [tag], "from": (now - Duration::days(3)).to_rfc3339(), "to": now.to_rfc3339(), "period": "DAY" } }),
        )
        .await;
    let points = r["tagTrend"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 4, "{r}");
    let counts: Vec<i64> = points
        .iter()
        .map(|p| p["customers"].as_i64().unwrap())
        .collect();
    let held: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM customer_tags WHERE tenant_id = 'alpha' AND tag_id = $1",
    )
    .bind(&tag)
    .fetch_one(&s.db().pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(counts, [0, 0, 0, held], "{r}");
    assert_eq!(held, 1);
}

/// The data-quality trend: the host snapshots the tenant-wide report at start (once per
/// local day, whichever host is first), days without a snapshot are null, figures are the
/// report's, and only readers of every customer see it.
async fn data_quality_is_snapshotted_once_a_day_and_read_as_a_trend(s: &TestServer) {
    const TREND: &str = "query($f: NaiveDate!, $t: NaiveDate!) { dataQualityTrend(from: $f, to: $t) {
        day snapshot { customers missingPhone missingEmail missingContact missingContactRate missingOwner invalid duplicatesPending } } }";
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let days = |n: i64| (today - Duration::days(n)).to_string();
    let vars = json!({ "f": days(2), "t": days(0) });
    // the snapshot the host took at start (it runs beside the server: wait for it)
    let mut trend = Value::Null;
    for _ in 0..100 {
        trend = s.ok(ALPHA, TREND, vars.clone()).await["dataQualityTrend"].clone();
        if !trend[2]["snapshot"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(trend[2]["day"], json!(days(0)), "{trend}");
    let report = s
        .ok(
            ALPHA,
            "{ dataQuality { customers duplicatesPending fields { field missing } invalidValues { count } } }",
            json!({}),
        )
        .await["dataQuality"]
        .clone();
    let missing = |field: &str| {
        report["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .unwrap()["missing"]
            .clone()
    };
    let invalid: i64 = report["invalidValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_i64().unwrap())
        .sum();
    let snap = &trend[2]["snapshot"];
    assert_eq!(snap["customers"], report["customers"], "{trend} {report}");
    assert_eq!(snap["missingPhone"], missing("phone"));
    assert_eq!(snap["missingContact"], missing("contact"));
    assert_eq!(snap["missingOwner"], missing("owner"));
    assert_eq!(snap["invalid"], json!(invalid));
    assert_eq!(snap["duplicatesPending"], report["duplicatesPending"]);
    // the snapshot is supervised work, counted for /metrics
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains(r#"shoal_background_work_total{work="quality.snapshots",outcome="ok"}"#),
        "{metrics}"
    );
    // a day without a host is null; yesterday's stored figures come back as stored
    assert!(trend[0]["snapshot"].is_null(), "{trend}");
    sqlx::query(
        "INSERT INTO data_quality_snapshots (tenant_id, day, taken_at, customers, missing_phone, missing_email, \
         missing_contact, missing_owner, invalid, duplicates_pending) VALUES ('alpha', $1, 0, 200, 40, 120, 30, 50, 7, 3)",
    )
    .bind(days(1))
    .execute(&s.db().pool)
    .await
    .unwrap();
    let trend = s.ok(ALPHA, TREND, vars.clone()).await["dataQualityTrend"].clone();
    assert_eq!(
        trend[1]["snapshot"],
        json!({ "customers": 200, "missingPhone": 40, "missingEmail": 120, "missingContact": 30,
                "missingContactRate": 0.15, "missingOwner": 50, "invalid": 7, "duplicatesPending": 3 })
    );
    // a second host does not take today's again
    let beside = s.start_beside(|_| {}).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    beside.stop().await;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM data_quality_snapshots WHERE tenant_id = 'alpha' AND day = $1",
    )
    .bind(days(0))
    .fetch_one(&s.db().pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(n, 1);
    // tenant-wide figures: not for an agent; a reversed range is named
    let e = s.err(AGENT, TREND, vars).await;
    assert_eq!(code(&e), "FORBIDDEN", "{e}");
    let e = s
        .err(ALPHA, TREND, json!({ "f": days(0), "t": days(1) }))
        .await;
    assert_eq!(fields(&e), ["to"], "{e}");
}

/// Each customer's RFM cell now, as the API shows it.
async fn rfm_cells(s: &TestServer, ids: &[String]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for id in ids {
        let r = s
            .ok(
                ALPHA,
                "query($id: ID!) { customer(id: $id) { rfm { cell } } }",
                json!({ "id": id }),
            )
            .await;
        out.push(r["customer"]["rfm"]["cell"].as_str().map(str::to_owned));
    }
    out
}

/// Stages per period and RFM movement: from the histories the database keeps (a trigger
/// writes every stage a customer enters; each RFM recompute writes the cells that changed),
/// checked by hand, against the live tables, and against docs/analytics.md's SQL.
async fn stages_over_time_and_rfm_movement_replay_their_histories(s: &TestServer) {
    const TREND: &str = "query($i: StageTrendInput!) { stageTrend(input: $i) { start stages { stage customers } } }";
    const UPDATE: &str = "mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { id } }";
    let a = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "甲", "sourceChannel": "WEB", "lifecycleStage": "LEAD" }),
        )
        .await;
    let b = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "乙", "sourceChannel": "WEB", "lifecycleStage": "CUSTOMER" }),
        )
        .await;
    let c = s
        .create_customer(ALPHA, json!({ "displayName": "丙", "sourceChannel": "WEB", "lifecycleStage": "LOYAL", "ownerId": "agent-a" }))
        .await;
    s.ok(
        ALPHA,
        UPDATE,
        json!({ "id": a, "input": { "lifecycleStage": "CUSTOMER" } }),
    )
    .await;
    let pool = &s.db().pool;
    let written: Vec<String> = sqlx::query(
        "SELECT stage FROM stage_history WHERE tenant_id = 'alpha' AND customer_id = $1 ORDER BY at",
    )
    .bind(&a)
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("stage"))
    .collect();
    assert_eq!(
        written,
        ["lead", "customer"],
        "the trigger wrote both stages"
    );
    // 乙 has been a customer for two days
    let two_days = Duration::days(2).num_microseconds().unwrap();
    sqlx::query(
        "UPDATE stage_history SET at = at - $1 WHERE tenant_id = 'alpha' AND customer_id = $2",
    )
    .bind(two_days)
    .bind(&b)
    .execute(pool)
    .await
    .unwrap();
    let now = Utc::now();
    let input = json!({ "i": { "from": (now - Duration::days(3)).to_rfc3339(), "to": now.to_rfc3339(), "period": "DAY" } });
    let trend = s.ok(ALPHA, TREND, input.clone()).await["stageTrend"].clone();
    let of = |point: &Value, stage: &str| {
        point["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["stage"] == stage)
            .unwrap()["customers"]
            .as_i64()
            .unwrap()
    };
    let points = trend.as_array().unwrap();
    assert_eq!(points.len(), 4, "{trend}");
    let customers: Vec<i64> = points.iter().map(|p| of(p, "CUSTOMER")).collect();
    assert_eq!(customers, [0, 1, 1, 2], "{trend}");
    assert_eq!(
        points[3]["stages"].as_array().unwrap().len(),
        6,
        "every stage listed"
    );
    // today's point is the live table
    for stage in ["LEAD", "CUSTOMER", "LOYAL"] {
        let live = s
            .ok(
                ALPHA,
                "query($s: [LifecycleStage!]) { customers(filter: { stages: $s }) { totalCount } }",
                json!({ "s": [stage] }),
            )
            .await["customers"]["totalCount"]
            .as_i64()
            .unwrap();
        assert_eq!(of(&points[3], stage), live, "{stage}");
    }
    // and each point is the documented SQL at that period's end
    let sql = reference_sql("-- customers per stage at the instant $2");
    let tz = chrono_tz::Asia::Shanghai;
    for p in points {
        let start: chrono::NaiveDate = p["start"].as_str().unwrap().parse().unwrap();
        let end = tz
            .from_local_datetime(&(start + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap())
            .unwrap()
            .to_utc()
            .min(now);
        let rows = sqlx::query(&sql)
            .bind("alpha")
            .bind(end.timestamp_micros())
            .fetch_all(pool)
            .await
            .unwrap();
        for r in rows {
            let stage: String = r.get("stage");
            let n: i64 = r.get("customers");
            assert_eq!(of(p, &stage.to_uppercase()), n, "{stage} at {end}: {trend}");
        }
    }
    // the agent counts their own customer only
    let mine = s.ok(AGENT, TREND, input).await["stageTrend"].clone();
    assert_eq!(of(&mine[3], "LOYAL"), 1);
    assert_eq!(of(&mine[3], "CUSTOMER"), 0, "{mine}");

    // RFM: two recomputes with orders between; the movement is the cells read after each
    let order = |who: &str, day: i64| event(who, "ORDER", now - Duration::days(day));
    record(s, vec![order(&a, 30), order(&b, 5), order(&b, 4)]).await;
    let recompute = "mutation { recomputeTags { tag } }";
    let ids = [a.clone(), b.clone(), c.clone()];
    s.ok(ALPHA, recompute, json!({})).await;
    let first = rfm_cells(s, &ids).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = Utc::now();
    record(
        s,
        vec![order(&a, 1), order(&a, 0), order(&a, 0), order(&c, 2)],
    )
    .await;
    s.ok(ALPHA, recompute, json!({})).await;
    let second = rfm_cells(s, &ids).await;
    let after = Utc::now() + Duration::milliseconds(5);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let mut expected: BTreeMap<(Option<String>, Option<String>), i64> = BTreeMap::new();
    for (f, t) in first.iter().zip(&second) {
        if f.is_some() || t.is_some() {
            *expected
                .entry((
                    f.as_ref().map(|x| x.to_uppercase()),
                    t.as_ref().map(|x| x.to_uppercase()),
                ))
                .or_default() += 1;
        }
    }
    assert!(
        first[2].is_none() && second[2].is_some(),
        "丙 scored only the second time"
    );
    let moves = s
        .ok(
            ALPHA,
            "query($i: RfmMovementInput!) { rfmMovement(input: $i) { from to customers } }",
            json!({ "i": { "from": between.to_rfc3339(), "to": after.to_rfc3339() } }),
        )
        .await;
    let got: BTreeMap<(Option<String>, Option<String>), i64> = moves["rfmMovement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                (
                    m["from"].as_str().map(str::to_owned),
                    m["to"].as_str().map(str::to_owned),
                ),
                m["customers"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{moves}");
    let sql = reference_sql("-- customers per (cell at $2, cell at $3)");
    let rows = sqlx::query(&sql)
        .bind("alpha")
        .bind(between.timestamp_micros())
        .bind(after.timestamp_micros())
        .fetch_all(pool)
        .await
        .unwrap();
    let by_sql: BTreeMap<(Option<String>, Option<String>), i64> = rows
        .iter()
        .map(|r| {
            let cell = |k: &str| r.get::<Option<String>, _>(k).map(|x| x.to_uppercase());
            (
                (cell("from_cell"), cell("to_cell")),
                r.get::<i64, _>("customers"),
            )
        })
        .collect();
    assert_eq!(by_sql, expected);
}

const TICKET_FIGURES: &str = "query($i: TicketFiguresInput!) { ticketFigures(input: $i) {
    sla { target met breached running attainment } series { start opened resolved backlog }
    agents { userId name open breached atRisk resolved } backlogNow unassignedNow } }";

/// Ticket service levels: SLA attainment is the count of each ticket's own clocks (the
/// ticket page's), the series replays status history (a reopened ticket resolved twice
/// counts twice, and waits in between), agents' load — and an agent counts only the tickets
/// they reach.
async fn ticket_figures_count_clocks_history_and_load(s: &TestServer) {
    const OPEN: &str = "mutation($i: TicketInput!) { openTicket(input: $i) { id } }";
    const MOVE: &str =
        "mutation($id: ID!, $to: String!) { moveTicket(id: $id, to: $to) { status } }";
    const ASSIGN: &str =
        "mutation($id: ID!, $a: String) { assignTicket(id: $id, assignee: $a) { assignee } }";
    s.ok(
        ALPHA,
        "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name } }",
        json!({ "p": [{ "name": "P2", "priorities": [2], "firstResponseMinutes": 60, "resolutionMinutes": 480 }] }),
    )
    .await;
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "陈先生", "sourceChannel": "WEB" }),
        )
        .await;
    let open = |subject: &str| json!({ "i": { "type": "general", "subject": subject, "priority": 2, "customerId": c } });
    // t1: answered and resolved; t2: opened two days ago, never answered (both clocks
    // breached), nobody's; t3: agent-a's, fresh; t4: agent-a's, resolved, reopened, resolved
    // again and reopened
    let t1 = s.ok_id(ALPHA, OPEN, open("安装预约"), "openTicket").await;
    let t2 = s.ok_id(ALPHA, OPEN, open("漏水"), "openTicket").await;
    let t3 = s.ok_id(ALPHA, OPEN, open("不制冷"), "openTicket").await;
    let t4 = s.ok_id(ALPHA, OPEN, open("异响"), "openTicket").await;
    s.ok(
        ALPHA,
        "mutation($id: ID!) { commentOnTicket(id: $id, body: \"明天上午上门\") { kind } }",
        json!({ "id": t1 }),
    )
    .await;
    s.ok(ALPHA, MOVE, json!({ "id": t1, "to": "resolved" }))
        .await;
    for t in [&t3, &t4] {
        s.ok(ALPHA, ASSIGN, json!({ "id": t, "a": "agent-a" }))
            .await;
    }
    for to in ["resolved", "in_progress", "resolved", "in_progress"] {
        s.ok(ALPHA, MOVE, json!({ "id": t4, "to": to })).await;
    }
    let two_days = Duration::days(2).num_microseconds().unwrap();
    sqlx::query(
        "UPDATE tickets SET created_at = created_at - $1 WHERE tenant_id = 'alpha' AND id = $2",
    )
    .bind(two_days)
    .bind(&t2)
    .execute(&s.db().pool)
    .await
    .unwrap();

    let now = Utc::now();
    let input = json!({ "i": { "from": (now - Duration::days(3)).to_rfc3339(), "to": now.to_rfc3339(), "period": "DAY" } });
    let f = s.ok(ALPHA, TICKET_FIGURES, input.clone()).await["ticketFigures"].clone();

    // attainment: the tickets' own clocks, counted
    let mut by_target: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for t in [&t1, &t2, &t3, &t4] {
        let clocks = s
            .ok(
                ALPHA,
                "query($id: ID!) { ticket(id: $id) { sla { target state } } }",
                json!({ "id": t }),
            )
            .await;
        for clock in clocks["ticket"]["sla"].as_array().unwrap() {
            let n = by_target
                .entry(clock["target"].as_str().unwrap().to_owned())
                .or_default();
            match clock["state"].as_str().unwrap() {
                "MET" => n[0] += 1,
                "BREACHED" => n[1] += 1,
                _ => n[2] += 1,
            }
        }
    }
    let sla: BTreeMap<String, [i64; 3]> = f["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let n = |k: &str| x[k].as_i64().unwrap();
            (
                x["target"].as_str().unwrap().to_owned(),
                [n("met"), n("breached"), n("running")],
            )
        })
        .collect();
    assert_eq!(sla, by_target, "{f}");
    assert_eq!(
        sla["FIRST_RESPONSE"],
        [1, 1, 2],
        "t1 met, t2 breached, t3 and t4 running"
    );
    assert_eq!(f["sla"][0]["attainment"], json!(0.5));

    // the series, day by day in the tenant's zone: t2 waits from two days ago
    let days: Vec<(i64, i64, i64)> = f["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            (n("opened"), n("resolved"), n("backlog"))
        })
        .collect();
    assert_eq!(days, [(0, 0, 0), (1, 0, 1), (0, 0, 1), (3, 3, 3)], "{f}");
    // what the tables say now (docs/analytics.md#tickets)
    let waiting: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM tickets WHERE tenant_id = 'alpha' AND merged_into IS NULL \
         AND category NOT IN ('resolved', 'closed')",
    )
    .fetch_one(&s.db().pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(f["backlogNow"], json!(waiting));
    assert_eq!(waiting, 3);
    assert_eq!(f["unassignedNow"], 1);
    // agents: agent-a holds t3 and t4; boss (the key's user) moved t1 and t4 to resolved
    let agents: Vec<(String, i64, i64)> = f["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["userId"].as_str().unwrap().to_owned(),
                a["open"].as_i64().unwrap(),
                a["resolved"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [("agent-a".to_owned(), 2, 0), ("boss".to_owned(), 0, 3)],
        "{f}"
    );

    // an agent counts the tickets they reach: their own two
    let mine = s.ok(AGENT, TICKET_FIGURES, input).await["ticketFigures"].clone();
    let listed = s
        .ok(
            AGENT,
            "{ tickets(first: 100) { edges { node { id category } } } }",
            json!({}),
        )
        .await;
    let open_listed = listed["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !matches!(e["node"]["category"].as_str(), Some("RESOLVED" | "CLOSED")))
        .count();
    assert_eq!(mine["backlogNow"], json!(open_listed), "{mine} {listed}");
    assert_eq!(mine["backlogNow"], 2);

    // bad input is named
    let e = s
        .err(
            ALPHA,
            TICKET_FIGURES,
            json!({ "i": { "from": now.to_rfc3339(), "to": (now - Duration::days(1)).to_rfc3339(), "period": "DAY" } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.to"], "{e}");
}

mod funnels {
    use super::*;
    crate::on_both_backends_with!(
        start,
        a_funnel_counts_best_attempts_windows_and_exclusions,
        bad_funnels_are_refused_by_field,
        funnels_agree_with_the_documented_sql,
        sop_figures_count_each_enrolments_last_outcome,
        revenue_is_net_of_refunds_per_currency_and_key,
        a_tag_trend_counts_holders_at_each_periods_end,
        ticket_figures_count_clocks_history_and_load,
        stages_over_time_and_rfm_movement_replay_their_histories,
        data_quality_is_snapshotted_once_a_day_and_read_as_a_trend,
    );
}

mod cohorts_sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_agrees_with_the_documented_sql() {
        let Some(s) = start(Backend::Sqlite).await else {
            return;
        };
        retention_sqlite(&s).await;
        s.stop().await;
    }
}

mod cohorts_postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_agrees_with_the_documented_sql() {
        let Some(s) = start(Backend::Postgres).await else {
            return;
        };
        retention_postgres(&s).await;
        s.stop().await;
    }
}
