//! The staff console in a real browser (headless chromium over WebDriver): a staff member
//! signs in, opens every page, and sees the figures the API gives the same user; masked
//! fields stay masked on the page; it works in Chinese and English and on a phone's width.
//!
//! `cargo xtask screenshots` runs this test with `SHOAL_SCREENSHOTS=docs/screenshots`, and
//! the pictures in the README are what it saved.

use std::path::PathBuf;

use serde_json::json;

use crate::{
    browser::Browser,
    harness::{ALPHA, Backend, TestServer, add_user, eventually},
};

const PASSWORD: &str = "门店-password-2026";
/// A role that sees customers with phones masked.
const MASKED_KEY: &str = "alpha-masked-key-000000011";

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("SHOAL_SCREENSHOTS").map(PathBuf::from)
}

async fn snap(browser: &Browser, name: &str) {
    if let Some(dir) = screenshots() {
        std::fs::create_dir_all(&dir).unwrap();
        browser.screenshot(&dir.join(format!("{name}.png"))).await;
    }
}

async fn sign_in(browser: &Browser, server: &TestServer, login: &str) {
    browser.goto(&format!("http://{}/", server.addr)).await;
    browser
        .type_into("form[data-form=sign-in] input[name=tenant]", "alpha")
        .await;
    browser
        .type_into("form[data-form=sign-in] input[name=login]", login)
        .await;
    browser
        .type_into("form[data-form=sign-in] input[name=password]", PASSWORD)
        .await;
    browser
        .click("form[data-form=sign-in] button[type=submit]")
        .await;
    browser.wait_for("main[data-ready=overview]").await;
}

#[test]
fn staff_sign_in_and_see_what_the_api_gives_them_on_every_page() {
    // the whole walk is one deep future: polled on a thread with room for it (a debug
    // build's poll frames overflow a test thread's 2 MiB)
    std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(walk_every_page())
        })
        .unwrap()
        .join()
        .expect("the walk through the console passes");
}

async fn walk_every_page() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        add_user(
            c,
            "clerk",
            "name = \"Clerk\"\nscopes = { \"*\" = \"all\" }\nfields = { phones = \"masked\" }",
            MASKED_KEY,
        );
    })
    .await
    .unwrap();
    let people = [
        ("王芳", "CUSTOMER", "13800138001"),
        ("李娜", "LOYAL", "13800138002"),
        ("张伟", "LEAD", "13800138003"),
        ("刘洋", "LOYAL", "13800138004"),
    ];
    let mut ids = Vec::new();
    for (name, stage, phone) in people {
        let id = s
            .create_customer(
                ALPHA,
                json!({ "displayName": name, "sourceChannel": "WECHAT", "phones": [phone],
                        "lifecycleStage": stage }),
            )
            .await;
        ids.push(id);
    }
    s.ok(
        ALPHA,
        "mutation($c: ID!) { recordEvents(input: [{ customerId: $c, type: ORDER, occurredAt: \"2026-11-20T10:00:00Z\", amount: { amount: \"268.00\", currency: \"CNY\" } }]) { createdCount } }",
        json!({ "c": ids[1] }),
    )
    .await;
    let recent = |days: i64| (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    s.ok(
        ALPHA,
        "mutation($i: [RecordEventInput!]!) { recordEvents(input: $i) { createdCount } }",
        json!({ "i": [
            { "customerId": ids[0], "type": "VISIT", "occurredAt": recent(5) },
            { "customerId": ids[0], "type": "CONSULT", "occurredAt": recent(4) },
            { "customerId": ids[0], "type": "ORDER", "occurredAt": recent(3), "amount": { "amount": "99.00", "currency": "CNY" } },
            { "customerId": ids[2], "type": "VISIT", "occurredAt": recent(2) },
        ] }),
    )
    .await;
    // the dispatcher derives 张伟's stage from the visit shortly after (the others' stages
    // were set by hand): wait for it, so the figures read below stay put
    eventually(
        "张伟 a prospect after the visit",
        async || {
            s.ok(
                ALPHA,
                "query($id: ID!) { customer(id: $id) { lifecycleStage } }",
                json!({ "id": ids[2] }),
            )
            .await["customer"]["lifecycleStage"]
                .clone()
        },
        |stage: &serde_json::Value| stage == "PROSPECT",
    )
    .await;
    // a ticket under an SLA policy, for the tickets page's figures
    s.ok(
        ALPHA,
        "mutation($p: [SlaPolicyInput!]!) { setSlaPolicies(policies: $p) { name } }",
        json!({ "p": [{ "name": "P2", "priorities": [2], "firstResponseMinutes": 60 }] }),
    )
    .await;
    s.ok(
        ALPHA,
        "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
        json!({ "i": { "type": "general", "subject": "空调不制冷", "priority": 2, "customerId": ids[0] } }),
    )
    .await;
    // a settled bill, for the revenue chart
    crate::settlement::with_sample(&s).await;
    crate::settlement::reference_data(&s).await;
    s.ok(
        ALPHA,
        "mutation($c: ID) { settleBill(input: { reference: \"SO-1\", customerId: $c, region: \"上海\", currency: \"CNY\", participantIds: [\"staff-1\"],
            lines: [{ kind: SERVICE, code: \"SVC-INSTALL\", quantity: \"1\" }] }) { id } }",
        json!({ "c": ids[0] }),
    )
    .await;
    let segment = s
        .ok(
            ALPHA,
            "mutation { createSegment(input: { name: \"忠诚会员\", definition: { stages: [LOYAL] } }) { id count } }",
            json!({}),
        )
        .await;
    s.ok(
        ALPHA,
        "mutation { createTag(input: { name: \"会员\" }) { id } }",
        json!({}),
    )
    .await;
    let sop = s
        .ok(
            ALPHA,
            r#"mutation { createSop(input: { name: "会员关怀", definition: {
                triggers: [{ tagAdded: "会员" }],
                steps: [{ id: "welcome", action: { sendMessage: { channel: "log", template: "{{customer.name}}，欢迎！" } } },
                        { id: "call", action: { createTask: { title: "回访 {{customer.name}}", assignee: "boss" } } }] } }) { id } }"#,
            json!({}),
        )
        .await["createSop"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for user in ["boss", "clerk"] {
        s.ok(
            ALPHA,
            "mutation($u: ID!, $p: String!) { setUserPassword(userId: $u, password: $p) }",
            json!({ "u": user, "p": PASSWORD }),
        )
        .await;
    }
    let api = s
        .ok(
            ALPHA,
            "{ all: customers { totalCount } loyal: customers(filter: { stages: [LOYAL] }) { totalCount } lead: customers(filter: { stages: [LEAD] }) { totalCount } }",
            json!({}),
        )
        .await;

    let browser = Browser::start(1280, 900).await;
    sign_in(&browser, &s, "boss").await;
    // the overview's figures are the API's
    assert_eq!(
        browser.text("[data-figure='customers.total']").await,
        api["all"]["totalCount"].to_string()
    );
    assert_eq!(
        browser.text("[data-figure='customers.LOYAL']").await,
        api["loyal"]["totalCount"].to_string()
    );
    assert_eq!(
        browser.text("[data-figure='customers.LEAD']").await,
        api["lead"]["totalCount"].to_string()
    );
    assert_eq!(
        browser.text("[data-user]").await.split(" · ").next(),
        Some("User boss")
    );
    snap(&browser, "overview").await;

    // customers: the list, a search, the 360° view
    browser.click("a[data-page=customers]").await;
    browser.wait_for("main[data-ready=customers]").await;
    assert_eq!(browser.text("[data-figure='customers.count']").await, "4");
    assert!(browser.text("main table").await.contains("13800138002"));
    snap(&browser, "customers").await;
    browser
        .goto(&format!("http://{}/#/customers?q=%E6%9D%8E", s.addr))
        .await; // 李
    browser
        .wait_for("main[data-ready=customers] input[value='李']")
        .await;
    assert_eq!(browser.text("[data-figure='customers.count']").await, "1");
    // filtered by stage: the API's count
    browser
        .script(
            "document.querySelector('input[name=q]').value = ''; \
             document.querySelector('select[name=stage]').value = 'LOYAL'; \
             document.querySelector('form[data-form=customers] button').click(); return 1",
        )
        .await;
    browser
        .wait_for("main[data-ready=customers] select[name=stage] option[value=LOYAL][selected]")
        .await;
    let loyal = s
        .ok(
            ALPHA,
            "{ customers(filter: { stages: [LOYAL] }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        browser.text("[data-figure='customers.count']").await,
        loyal["customers"]["totalCount"].to_string()
    );
    assert_eq!(loyal["customers"]["totalCount"], 2);
    browser
        .goto(&format!("http://{}/#/customers?q=%E6%9D%8E", s.addr))
        .await;
    browser
        .wait_for("main[data-ready=customers] input[value='李']")
        .await;
    browser
        .click(&format!("a[data-customer='{}']", ids[1]))
        .await;
    browser.wait_for("main[data-ready=customer]").await;
    assert_eq!(browser.text("[data-figure='customer.name']").await, "李娜");
    let page = browser.text("main").await;
    assert!(
        page.contains("268.00 CNY"),
        "the order is on the timeline: {page}"
    );
    assert!(
        page.contains("2026/11/20 18:00:00") || page.contains("20/11/2026, 18:00:00"),
        "10:00 UTC shown in the tenant's zone (Asia/Shanghai): {page}"
    );
    assert!(
        page.contains("customer.create"),
        "the change history: {page}"
    );
    snap(&browser, "customer").await;

    // every other page opens without an error
    for page in [
        "segments",
        "sops",
        "campaigns",
        "analytics",
        "statements",
        "tasks",
        "tickets",
        "imports",
        "modules",
        "audit",
    ] {
        browser.click(&format!("a[data-page={page}]")).await;
        browser.wait_for(&format!("main[data-ready={page}]")).await;
        let errors = browser
            .script("return document.querySelectorAll('[data-error]').length")
            .await;
        assert_eq!(errors, 0, "{page}");
        let text = browser.text("main").await;
        assert!(
            !text.contains("[object") && !text.contains("null"),
            "{page} drew a value as text: {text}"
        );
        if page == "segments" {
            let id = segment["createSegment"]["id"].as_str().unwrap();
            assert_eq!(
                browser.text(&format!("[data-figure='segment.{id}']")).await,
                segment["createSegment"]["count"].to_string(),
                "the live count is the API's"
            );
            assert_eq!(segment["createSegment"]["count"], 2);
        }
        if page == "analytics" {
            // the funnel's figures are the API's, and the charts drew (ECharts, from this host)
            let to = chrono::Utc::now();
            let funnel = s
                .ok(
                    ALPHA,
                    "query($i: FunnelInput!) { funnel(input: $i) { overall { steps { customers } } } }",
                    json!({ "i": { "steps": [{ "event": { "type": "VISIT" } }, { "event": { "type": "CONSULT" } }, { "event": { "type": "ORDER" } }],
                                   "from": (to - chrono::Duration::days(90)).to_rfc3339(), "to": to.to_rfc3339() } }),
                )
                .await;
            for (k, step) in funnel["funnel"]["overall"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                assert_eq!(
                    browser.text(&format!("[data-figure='funnel.{k}']")).await,
                    step["customers"].to_string()
                );
            }
            assert_eq!(
                funnel["funnel"]["overall"]["steps"][2]["customers"], 1,
                "{funnel}"
            );
            browser
                .wait_for("[data-chart=funnel][data-drawn] svg")
                .await;
            browser
                .wait_for("[data-chart=revenue][data-drawn] svg")
                .await;
            // stages over time: this week's LOYAL count is the API's; data quality drew
            browser
                .wait_for("[data-chart=stages][data-drawn] svg")
                .await;
            browser
                .wait_for("[data-chart=quality][data-drawn] svg")
                .await;
            let trend = s
                .ok(
                    ALPHA,
                    "query($i: StageTrendInput!) { stageTrend(input: $i) { stages { stage customers } } }",
                    json!({ "i": { "from": (to - chrono::Duration::days(7)).to_rfc3339(), "to": chrono::Utc::now().to_rfc3339(), "period": "WEEK" } }),
                )
                .await;
            let last = trend["stageTrend"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            let loyal = last["stages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["stage"] == "LOYAL")
                .unwrap()["customers"]
                .clone();
            assert_eq!(loyal, 2, "{trend}");
            let shown = browser.text("[data-figure='stage.LOYAL']").await;
            assert!(shown.trim().ends_with(&loyal.to_string()), "{shown}");
            let labels = browser.text("[data-chart=funnel]").await;
            assert!(
                labels.contains("到店") || labels.contains("Store visit"),
                "{labels}"
            );
        }
        if page == "tickets" {
            // the backlog is the API's, and the day-by-day chart drew
            let to = chrono::Utc::now();
            let f = s
                .ok(
                    ALPHA,
                    "query($i: TicketFiguresInput!) { ticketFigures(input: $i) { backlogNow sla { target running } } }",
                    json!({ "i": { "from": (to - chrono::Duration::days(30)).to_rfc3339(), "to": to.to_rfc3339(), "period": "DAY" } }),
                )
                .await;
            assert_eq!(
                browser.text("[data-figure='tickets.backlog']").await,
                f["ticketFigures"]["backlogNow"].to_string()
            );
            assert_eq!(f["ticketFigures"]["backlogNow"], 1, "{f}");
            assert_eq!(f["ticketFigures"]["sla"][0]["running"], 1, "{f}");
            browser.wait_for("[data-figure='sla.FIRST_RESPONSE']").await;
            browser
                .wait_for("[data-chart=tickets][data-drawn] svg")
                .await;
        }
        if page == "statements" {
            // this month in the tenant's zone (Asia/Shanghai): staff-1's share of SO-1
            use chrono::{Datelike, TimeZone};
            let tz = chrono_tz::Asia::Shanghai;
            let today = chrono::Utc::now().with_timezone(&tz).date_naive();
            let first = today.with_day(1).unwrap();
            let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
            let at = |d: chrono::NaiveDate| {
                tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
                    .unwrap()
                    .to_utc()
                    .to_rfc3339()
            };
            let statement = s
                .ok(
                    ALPHA,
                    "query($f: DateTime!, $t: DateTime!) { statement(participantId: \"staff-1\", from: $f, to: $t) { totals { amount currency } } }",
                    json!({ "f": at(first), "t": at(next) }),
                )
                .await;
            let total = &statement["statement"]["totals"][0];
            assert!(total["amount"].is_string(), "{statement}");
            assert_eq!(
                browser.text("[data-figure='statement.staff-1']").await,
                format!(
                    "{} {}",
                    total["amount"].as_str().unwrap(),
                    total["currency"].as_str().unwrap()
                ),
                "the month's total is the API's"
            );
        }
        snap(&browser, page).await;
        if page == "sops" {
            // the step diagram, and a dry run over a segment: as many planned steps as the API plans
            browser.click(&format!("a[data-sop='{sop}']")).await;
            browser.wait_for("main[data-ready=sop]").await;
            let steps = browser.text("[data-figure='sop.steps']").await;
            assert!(
                steps.contains("welcome") && steps.contains("call"),
                "{steps}"
            );
            assert!(
                steps.contains("sendMessage · log") && steps.contains("createTask · 回访"),
                "{steps}"
            );
            let welcome = browser.text("[data-figure='sop.step.welcome']").await;
            let figures = s
                .ok(
                    ALPHA,
                    "query($s: ID!) { sopFigures(sopId: $s) { steps { stepId reached } } }",
                    json!({ "s": sop }),
                )
                .await;
            let reached = figures["sopFigures"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["stepId"] == "welcome")
                .map_or(0, |x| x["reached"].as_i64().unwrap());
            assert!(
                welcome.contains(&format!(" {reached} "))
                    || welcome.ends_with(&format!(" {reached}")),
                "{welcome} vs {reached}"
            );
            browser.click("form[data-form=dry-run] button").await;
            let shown = browser.text("[data-figure='plan.count']").await;
            let to = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
            let planned = s
                .ok(
                    ALPHA,
                    "query($s: ID!, $g: ID!, $to: DateTime!) { simulateSop(sopId: $s, segmentId: $g, to: $to) { stepId } }",
                    json!({ "s": sop, "g": segment["createSegment"]["id"], "to": to }),
                )
                .await;
            let planned = planned["simulateSop"].as_array().unwrap().len();
            assert_eq!(shown, planned.to_string());
            assert!(planned >= 2, "two loyal customers, each planned: {planned}");
            snap(&browser, "sop").await;
        }
    }
    assert!(
        browser.text("main").await.contains("customer.create"),
        "the audit log lists the creations"
    );

    // the other language, and back; a phone's width keeps the names and phones
    let before = browser.text("a[data-page=customers]").await;
    browser.click("header button.plain").await;
    browser.wait_for("main[data-ready]").await;
    let after = browser.text("a[data-page=customers]").await;
    let mut both = [before, after];
    both.sort();
    assert_eq!(both, ["Customers", "客户"]);
    browser.resize(390, 844).await;
    browser.click("a[data-page=customers]").await;
    browser.wait_for("main[data-ready=customers]").await;
    let width = browser
        .script("return document.documentElement.scrollWidth")
        .await;
    assert!(
        width.as_u64().unwrap() <= 400,
        "no sideways scrolling on a phone: {width}"
    );
    snap(&browser, "customers-phone").await;
    browser.resize(1280, 900).await;

    // signing out shows the sign-in form, and the session is over
    browser.click("[data-action=sign-out]").await;
    browser.wait_for("form[data-form=sign-in]").await;
    let session = browser
        .script("return fetch('/auth/session').then(r => r.status)")
        .await;
    assert_eq!(session, 401);

    // a user whose role masks phones sees them masked on the page, as through the API
    let masked = s
        .ok(
            MASKED_KEY,
            "{ customers(first: 10) { edges { node { phones } } } }",
            json!({}),
        )
        .await;
    let shown = masked["customers"]["edges"][0]["node"]["phones"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!shown.contains("13800138"), "the API masks: {shown}");
    sign_in(&browser, &s, "clerk").await;
    browser.click("a[data-page=customers]").await;
    browser.wait_for("main[data-ready=customers]").await;
    let table = browser.text("main table").await;
    assert!(table.contains(&shown), "{table}");
    for (_, _, phone) in people {
        assert!(
            !table.contains(phone),
            "{phone} unmasked on the page: {table}"
        );
    }
    // a page the role may not read says so, as the API refuses it
    let audit = s
        .gql(
            MASKED_KEY,
            "{ auditLog(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        crate::harness::code(&audit["errors"][0]),
        "FORBIDDEN",
        "{audit}"
    );
    browser.click("a[data-page=audit]").await;
    browser.wait_for("main [data-error=FORBIDDEN]").await;
    // import jobs quote raw values in their reasons: not for a role that masks phones
    let jobs = s
        .gql(
            MASKED_KEY,
            "{ importJobs(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        crate::harness::code(&jobs["errors"][0]),
        "FORBIDDEN",
        "{jobs}"
    );
    browser.click("a[data-page=imports]").await;
    browser.wait_for("a[data-page=imports].current").await;
    browser.wait_for("main [data-error=FORBIDDEN]").await;
    browser.quit().await;
    s.stop().await;
}
