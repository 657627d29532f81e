//! The ledger: it owns `ledger_postings` — a bill's double-entry postings, written with the
//! bill and read back with it — and statements per participant and period.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::library;
use shoal_base::{
    error::{Error, Result},
    storage::{
        Backend, Db, money,
        sql::{Arg, Sql},
        time,
    },
};

/// One line of the ledger: an amount an account receives (positive) or pays (negative)
/// because of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Posting {
    pub bill_id: String,
    /// `customer:<id>` (or `customer:anonymous`) and `participant:<id>`.
    pub account: String,
    /// Positive: the account receives; negative: it pays.
    pub amount: Decimal,
    pub currency: String,
    pub reason: String,
    pub posted_at: DateTime<Utc>,
}

/// Double entry: the customer pays the total, each participant receives its split.
pub fn double_entry(
    bill_id: &str,
    customer: Option<&str>,
    currency: &str,
    total: Decimal,
    splits: &[(String, Decimal, String)],
    at: DateTime<Utc>,
) -> Vec<Posting> {
    let mut out = vec![Posting {
        bill_id: bill_id.into(),
        account: format!("customer:{}", customer.unwrap_or("anonymous")),
        amount: -total,
        currency: currency.into(),
        reason: "bill total".into(),
        posted_at: at,
    }];
    out.extend(splits.iter().map(|(participant, amount, reason)| Posting {
        bill_id: bill_id.into(),
        account: format!("participant:{participant}"),
        amount: *amount,
        currency: currency.into(),
        reason: reason.clone(),
        posted_at: at,
    }));
    out
}

/// Writes a bill's postings in the caller's transaction; refuses postings that do not
/// balance to zero per currency (they never leave the host: this is a host bug).
pub async fn post(
    conn: &mut AnyConnection,
    tenant: &str,
    bill_id: &str,
    postings: &[Posting],
) -> Result<()> {
    let mut balance: BTreeMap<&str, Decimal> = BTreeMap::new();
    for p in postings {
        *balance.entry(p.currency.as_str()).or_default() += p.amount;
    }
    if let Some((currency, sum)) = balance.iter().find(|(_, sum)| !sum.is_zero()) {
        return Err(Error::Internal(format!(
            "bill {bill_id} postings do not balance ({sum} {currency})"
        )));
    }
    if postings.is_empty() {
        return Ok(());
    }
    // one statement for the bill's postings (a customer and each participant's split)
    let mut sql = Sql::new(
        "INSERT INTO ledger_postings (tenant_id, id, bill_id, account, amount_units, currency, reason, posted_at) VALUES ",
    );
    for (i, posting) in postings.iter().enumerate() {
        sql.push_row(
            i == 0,
            [
                Arg::from(tenant),
                uuid::Uuid::now_v7().to_string().into(),
                bill_id.into(),
                posting.account.as_str().into(),
                units(posting.amount)?.into(),
                posting.currency.as_str().into(),
                posting.reason.as_str().into(),
                time::to_micros(posting.posted_at).into(),
            ],
        );
    }
    sql.on(Backend::of(conn))
        .query()
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn units(d: Decimal) -> Result<i64> {
    money::to_units(d).map_err(|e| Error::Internal(format!("amount {d} {e}")))
}

pub async fn postings_of(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Vec<Posting>> {
    let rows = sqlx::query(
        "SELECT * FROM ledger_postings WHERE tenant_id = $1 AND bill_id = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(posting_from_row).collect()
}

fn posting_from_row(r: &AnyRow) -> Result<Posting> {
    Ok(Posting {
        bill_id: r.try_get("bill_id")?,
        account: r.try_get("account")?,
        amount: money::from_units(r.try_get("amount_units")?),
        currency: r.try_get("currency")?,
        reason: r.try_get("reason")?,
        posted_at: time::from_micros(r.try_get("posted_at")?),
    })
}

/// A participant's postings in `[from, to)` and their sums per currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub participant: library::Participant,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub postings: Vec<Posting>,
    pub totals: BTreeMap<String, Decimal>,
}

pub async fn statement(
    db: &Db,
    tenant: &str,
    participant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Statement> {
    if to <= from {
        return Err(Error::invalid("to", "must be after `from`"));
    }
    let mut conn = db.pool.acquire().await?;
    let participant = library::participants(&mut conn, tenant)
        .await?
        .remove(participant)
        .ok_or_else(|| Error::not_found("participant", participant))?;
    let rows = sqlx::query(
        "SELECT * FROM ledger_postings WHERE tenant_id = $1 AND account = $2 AND posted_at >= $3 AND posted_at < $4 \
         ORDER BY posted_at, id",
    )
    .bind(tenant)
    .bind(format!("participant:{}", participant.id))
    .bind(time::to_micros(from))
    .bind(time::to_micros(to))
    .fetch_all(&mut *conn)
    .await?;
    let postings = rows
        .iter()
        .map(posting_from_row)
        .collect::<Result<Vec<_>>>()?;
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for p in &postings {
        *totals.entry(p.currency.clone()).or_default() += p.amount;
    }
    Ok(Statement {
        participant,
        from,
        to,
        postings,
        totals,
    })
}

/// The statement as CSV: one line per posting, then one total line per currency.
pub fn statement_csv(s: &Statement) -> String {
    let mut out = shoal_base::csv_out::line(
        &["posted_at", "bill_id", "amount", "currency", "reason"].map(String::from),
    );
    for p in &s.postings {
        out.push_str(&shoal_base::csv_out::line(&[
            p.posted_at.to_rfc3339(),
            p.bill_id.clone(),
            p.amount.to_string(),
            p.currency.clone(),
            p.reason.clone(),
        ]));
    }
    for (currency, total) in &s.totals {
        out.push_str(&shoal_base::csv_out::line(&[
            String::new(),
            "TOTAL".into(),
            total.to_string(),
            currency.clone(),
            format!(
                "{} {} to {}",
                s.participant.id,
                s.from.to_rfc3339(),
                s.to.to_rfc3339()
            ),
        ]));
    }
    out
}
