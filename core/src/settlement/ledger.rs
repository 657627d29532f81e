//! The ledger: postings per account, and statements per participant and period.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Row, any::AnyRow};

use super::{bills::Posting, csv, library};
use crate::{
    error::{Error, Result},
    storage::{Db, money, time},
};

pub fn posting_from_row(r: &AnyRow) -> Result<Posting> {
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
    let mut out =
        csv::line(&["posted_at", "bill_id", "amount", "currency", "reason"].map(String::from));
    for p in &s.postings {
        out.push_str(&csv::line(&[
            p.posted_at.to_rfc3339(),
            p.bill_id.clone(),
            p.amount.to_string(),
            p.currency.clone(),
            p.reason.clone(),
        ]));
    }
    for (currency, total) in &s.totals {
        out.push_str(&csv::line(&[
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
