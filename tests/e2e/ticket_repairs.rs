//! Repairs that settle, on both backends: a ticket records service items and spare parts
//! of the libraries; a counted part reserves stock (never more than is available) and gives
//! it back when removed; the repair is billed once by the tenant's module for the ticket's
//! customer, the reserved parts leave stock, and bill and ticket point at each other.

use serde_json::{Value, json};

use crate::harness::{ALPHA, TestServer, code, fields};
use crate::settlement::{reference_data, with_sample};

const STOCK: &str = "mutation($sku: String!, $n: Decimal!) { setSparePartStock(sku: $sku, onHand: $n) { sku onHand reserved available } }";
const ADD: &str = "mutation($id: ID!, $i: TicketLineInput!) { addTicketLine(id: $id, input: $i) { id kind code quantity reserved } }";
const SETTLE: &str = "mutation($id: ID!, $i: SettleTicketInput!) { settleTicket(id: $id, input: $i) { id reference total { amount currency } lines { code amount { amount } } } }";

async fn stock(s: &TestServer) -> Value {
    s.ok(
        ALPHA,
        "{ sparePartStock { sku onHand reserved available } }",
        json!({}),
    )
    .await["sparePartStock"]
        .clone()
}

async fn open(s: &TestServer, customer: &str, subject: &str) -> String {
    s.ok_id(
        ALPHA,
        "mutation($i: TicketInput!) { openTicket(input: $i) { id } }",
        json!({ "i": { "type": "general", "subject": subject, "customerId": customer } }),
        "openTicket",
    )
    .await
}

async fn repairs_reserve_parts_and_settle_once(s: &TestServer) {
    with_sample(s).await;
    reference_data(s).await;
    let e = s
        .err(ALPHA, STOCK, json!({ "sku": "P-NOPE", "n": "3" }))
        .await;
    assert_eq!(fields(&e), ["sku"]);
    let counted = s
        .ok(ALPHA, STOCK, json!({ "sku": "P-FILTER", "n": "3" }))
        .await;
    assert_eq!(
        counted["setSparePartStock"],
        json!({ "sku": "P-FILTER", "onHand": "3", "reserved": "0", "available": "3" })
    );
    let c = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "冯先生", "sourceChannel": "WEB" }),
        )
        .await;
    let repair = open(s, &c, "空调不制冷，上门维修").await;
    let other = open(s, &c, "另一台空调").await;

    s.ok(
        ALPHA,
        ADD,
        json!({ "id": repair, "i": { "kind": "SERVICE", "code": "SVC-INSTALL", "quantity": "2" } }),
    )
    .await;
    let part = s
        .ok(
            ALPHA,
            ADD,
            json!({ "id": repair, "i": { "kind": "PART", "code": "P-FILTER", "quantity": "2", "note": "换滤网" } }),
        )
        .await;
    assert_eq!(part["addTicketLine"]["reserved"], true);
    // what is reserved is not available to another repair
    let e = s
        .err(
            ALPHA,
            ADD,
            json!({ "id": other, "i": { "kind": "PART", "code": "P-FILTER", "quantity": "2" } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.quantity"]);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("1 available (3 on hand, 2 reserved)"),
        "{e}"
    );
    let e = s
        .err(
            ALPHA,
            ADD,
            json!({ "id": other, "i": { "kind": "PART", "code": "P-NONE", "quantity": "0" } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.quantity", "input.code"]);
    // reserved, then given back
    let one = s
        .ok(
            ALPHA,
            ADD,
            json!({ "id": other, "i": { "kind": "PART", "code": "P-FILTER", "quantity": "1" } }),
        )
        .await["addTicketLine"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stock(s).await[0]["available"], "0");
    s.ok(
        ALPHA,
        "mutation($id: ID!, $l: ID!) { removeTicketLine(id: $id, lineId: $l) }",
        json!({ "id": other, "l": one }),
    )
    .await;
    assert_eq!(
        stock(s).await,
        json!([{ "sku": "P-FILTER", "onHand": "3", "reserved": "2", "available": "1" }])
    );

    // billed: tier-1 (上海) +10% on labour and parts, 2×110 + 2×50.05 + 30 transport — and
    // billed once, though asked twice at the same moment
    let input = json!({ "id": repair, "i": { "region": "上海", "currency": "CNY", "participantIds": ["staff-1"],
        "lines": [{ "kind": "TRANSPORT", "code": "上门费", "quantity": "1", "unitPrice": "30" }] } });
    let (a, b) = tokio::join!(
        s.gql(ALPHA, SETTLE, input.clone()),
        s.gql(ALPHA, SETTLE, input.clone())
    );
    let (won, lost) = if a["errors"].is_null() {
        (a, b)
    } else {
        (b, a)
    };
    assert!(won["errors"].is_null(), "{won}");
    assert_eq!(fields(&lost["errors"][0]), ["id"], "{lost}");
    let bill = won["data"]["settleTicket"].clone();
    let bills: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bills WHERE tenant_id = 'alpha' AND reference = $1",
    )
    .bind(format!("ticket:{repair}"))
    .fetch_one(&s.db().pool)
    .await
    .unwrap();
    assert_eq!(bills, 1);
    assert_eq!(
        bill["total"],
        json!({ "amount": "350.10", "currency": "CNY" })
    );
    assert_eq!(bill["reference"], format!("ticket:{repair}"));
    let t = s
        .ok(
            ALPHA,
            "query($id: ID!) { ticket(id: $id) { billId repairLines { code quantity reserved } entries { kind detail } } }",
            json!({ "id": repair }),
        )
        .await["ticket"]
        .clone();
    assert_eq!(t["billId"], bill["id"]);
    assert_eq!(
        t["repairLines"],
        json!([{ "code": "SVC-INSTALL", "quantity": "2", "reserved": false },
               { "code": "P-FILTER", "quantity": "2", "reserved": false }])
    );
    let billed = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "billed")
        .unwrap();
    assert_eq!(billed["detail"]["billId"], bill["id"]);
    // the parts left stock
    assert_eq!(
        stock(s).await,
        json!([{ "sku": "P-FILTER", "onHand": "1", "reserved": "0", "available": "1" }])
    );
    // once: no second bill, no more lines
    let again = json!({ "id": repair, "i": { "region": "上海", "currency": "CNY" } });
    let e = s.err(ALPHA, SETTLE, again).await;
    assert_eq!(fields(&e), ["id"]);
    let e = s
        .err(ALPHA, ADD, json!({ "id": repair, "i": { "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" } }))
        .await;
    assert_eq!(fields(&e), ["id"]);
    // `ticket:` references are settleTicket's own
    let e = s
        .err(
            ALPHA,
            "mutation($i: SettleBillInput!) { settleBill(input: $i) { id } }",
            json!({ "i": { "reference": format!("ticket:{other}"), "region": "上海", "currency": "CNY", "participantIds": [],
                "lines": [{ "kind": "SERVICE", "code": "SVC-CLEAN", "quantity": "1" }] } }),
        )
        .await;
    assert_eq!(fields(&e), ["input.reference"]);
    // closed without a bill: the reserved parts go back
    s.ok(
        ALPHA,
        ADD,
        json!({ "id": other, "i": { "kind": "PART", "code": "P-FILTER", "quantity": "1" } }),
    )
    .await;
    assert_eq!(stock(s).await[0]["available"], "0");
    s.ok(
        ALPHA,
        "mutation($id: ID!) { moveTicket(id: $id, to: \"closed\") { status } }",
        json!({ "id": other }),
    )
    .await;
    assert_eq!(
        stock(s).await,
        json!([{ "sku": "P-FILTER", "onHand": "1", "reserved": "0", "available": "1" }])
    );
    // nothing recorded: nothing to bill
    let empty = open(s, &c, "只是咨询").await;
    let e = s
        .err(
            ALPHA,
            SETTLE,
            json!({ "id": empty, "i": { "region": "上海", "currency": "CNY" } }),
        )
        .await;
    assert_eq!(code(&e), "BAD_USER_INPUT");
    assert_eq!(fields(&e), ["id"]);
}

crate::on_both_backends!(repairs_reserve_parts_and_settle_once);
