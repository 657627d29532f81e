//! RFM: recency (days since the last order), frequency (orders) and monetary (order amounts)
//! scored 1–5 by quintile among the tenant's buyers, and the standard cell names.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use shoal_base::{
    error::Result,
    kinds::RfmCell,
    storage::{Db, money, sql::Sql, time},
};
use shoal_rules::eval::MICROS_PER_DAY;

/// A customer's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Rfm {
    pub recency_days: i64,
    pub frequency: i64,
    pub monetary_units: i64,
    pub r: i64,
    pub f: i64,
    pub m: i64,
    pub cell: RfmCell,
    pub computed_at: DateTime<Utc>,
}

/// The cell of a score triple (first match wins).
pub fn cell(r: i64, f: i64, m: i64) -> RfmCell {
    match (r, f, m) {
        (4.., 4.., 4..) => RfmCell::Champions,
        (1, 4.., 4..) => RfmCell::CannotLose,
        (3.., 4.., _) => RfmCell::Loyal,
        (5, 1, _) => RfmCell::NewCustomers,
        (4, 1, _) => RfmCell::Promising,
        (4.., 2..=3, _) => RfmCell::PotentialLoyalist,
        (3, 3, _) => RfmCell::NeedAttention,
        (3, ..=2, _) => RfmCell::AboutToSleep,
        (..=2, 3.., _) => RfmCell::AtRisk,
        (..=2, 2, _) => RfmCell::Hibernating,
        _ => RfmCell::Lost,
    }
}

/// Quintile scores 1–5 by rank; equal values get the same score. With `lower_is_better`
/// the smallest values score 5 (recency).
pub fn quintiles(values: &[(usize, i64)], lower_is_better: bool) -> HashMap<usize, i64> {
    let mut sorted: Vec<(usize, i64)> = values.to_vec();
    if lower_is_better {
        sorted.sort_by_key(|v| std::cmp::Reverse(v.1));
    } else {
        sorted.sort_by_key(|v| v.1);
    }
    let n = sorted.len().max(1);
    let mut out = HashMap::with_capacity(sorted.len());
    let mut first_of_value = 0;
    for (i, (key, value)) in sorted.iter().enumerate() {
        if i > 0 && sorted[i - 1].1 != *value {
            first_of_value = i;
        }
        out.insert(*key, 1 + (first_of_value * 5 / n) as i64);
    }
    out
}

/// Recomputes every buyer's scores (customers without orders have none).
pub async fn recompute(db: &Db, tenant: &str) -> Result<usize> {
    let now = time::to_micros(time::now());
    let rows = sqlx::query(
        "SELECT e.customer_id, MAX(e.occurred_at) AS last, COUNT(*) AS n, CAST(COALESCE(SUM(e.amount_units), 0) AS BIGINT) AS total \
         FROM events e JOIN customers c ON c.tenant_id = e.tenant_id AND c.id = e.customer_id AND c.deleted_at IS NULL \
         WHERE e.tenant_id = $1 AND e.event_type = 'order' GROUP BY e.customer_id",
    )
    .bind(tenant)
    .fetch_all(&db.pool)
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let (mut rec, mut freq, mut mon) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        ids.push(r.try_get::<String, _>("customer_id")?);
        let last: i64 = r.try_get("last")?;
        rec.push((i, ((now - last) / MICROS_PER_DAY).max(0)));
        freq.push((i, r.try_get::<i64, _>("n")?));
        mon.push((i, r.try_get::<i64, _>("total")?));
    }
    let (rs, fs, ms) = (
        quintiles(&rec, true),
        quintiles(&freq, false),
        quintiles(&mon, false),
    );
    let mut tx = db.begin_write().await?;
    // the cells before, for the history of changes (docs/analytics.md#rfm-movement)
    let before: HashMap<String, String> =
        sqlx::query("SELECT customer_id, cell FROM customer_rfm WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("customer_id")?, r.try_get("cell")?)))
            .collect::<Result<_>>()?;
    let mut changed: Vec<(String, Option<String>)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let now_cell = cell(rs[&i], fs[&i], ms[&i]).as_str().to_owned();
        if before.get(id) != Some(&now_cell) {
            changed.push((id.clone(), Some(now_cell)));
        }
    }
    let scored: HashSet<&String> = ids.iter().collect();
    changed.extend(
        before
            .keys()
            .filter(|id| !scored.contains(id))
            .map(|id| (id.clone(), None)),
    );
    for chunk in changed.chunks(200) {
        let mut sql =
            Sql::new("INSERT INTO rfm_history (tenant_id, customer_id, at, cell) VALUES ");
        for (k, (id, c)) in chunk.iter().enumerate() {
            let values = [
                sql.arg(tenant),
                sql.arg(id.clone()),
                sql.arg(now),
                c.as_ref()
                    .map_or_else(|| "NULL".to_owned(), |c| sql.arg(c.clone())),
            ];
            sql.push(&format!(
                "{}({})",
                if k == 0 { "" } else { ", " },
                values.join(", ")
            ));
        }
        sql.query().execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM customer_rfm WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    for chunk in (0..ids.len()).collect::<Vec<_>>().chunks(200) {
        let mut sql = Sql::new(
            "INSERT INTO customer_rfm (tenant_id, customer_id, recency_days, frequency, monetary_units, r, f, m, cell, computed_at) VALUES ",
        );
        for (k, &i) in chunk.iter().enumerate() {
            let (r, f, m) = (rs[&i], fs[&i], ms[&i]);
            let values = [
                sql.arg(tenant),
                sql.arg(ids[i].clone()),
                sql.arg(rec[i].1),
                sql.arg(freq[i].1),
                sql.arg(mon[i].1),
                sql.arg(r),
                sql.arg(f),
                sql.arg(m),
                sql.arg(cell(r, f, m).as_str()),
                sql.arg(now),
            ];
            sql.push(&format!(
                "{}({})",
                if k == 0 { "" } else { ", " },
                values.join(", ")
            ));
        }
        sql.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(ids.len())
}

/// A customer's scores, if it has orders and RFM was computed.
pub async fn of(db: &Db, tenant: &str, customer: &str) -> Result<Option<Rfm>> {
    let row = sqlx::query("SELECT * FROM customer_rfm WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| -> Result<Rfm> {
        let cell: String = r.try_get("cell")?;
        Ok(Rfm {
            recency_days: r.try_get("recency_days")?,
            frequency: r.try_get("frequency")?,
            monetary_units: r.try_get("monetary_units")?,
            r: r.try_get("r")?,
            f: r.try_get("f")?,
            m: r.try_get("m")?,
            cell: RfmCell::parse(&cell).unwrap_or(RfmCell::Lost),
            computed_at: time::from_micros(r.try_get("computed_at")?),
        })
    })
    .transpose()
}

/// Money of an RFM monetary value.
pub fn monetary(r: &Rfm) -> rust_decimal::Decimal {
    money::from_units(r.monetary_units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_rank_and_keep_ties_together() {
        let values: Vec<(usize, i64)> = (0..10).map(|i| (i, i as i64 / 2)).collect(); // 0,0,1,1,…,4,4
        let q = quintiles(&values, false);
        let scores: Vec<i64> = (0..10).map(|i| q[&i]).collect();
        assert_eq!(scores, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let recency = quintiles(&[(0, 3), (1, 300), (2, 30)], true);
        assert_eq!(
            (recency[&0], recency[&2], recency[&1]),
            (4, 2, 1),
            "fewer days is better"
        );
    }

    #[test]
    fn cells_follow_the_standard_table() {
        assert_eq!(cell(5, 5, 5), RfmCell::Champions);
        assert_eq!(cell(1, 5, 5), RfmCell::CannotLose);
        assert_eq!(cell(3, 4, 1), RfmCell::Loyal);
        assert_eq!(cell(5, 1, 1), RfmCell::NewCustomers);
        assert_eq!(cell(4, 1, 2), RfmCell::Promising);
        assert_eq!(cell(5, 2, 3), RfmCell::PotentialLoyalist);
        assert_eq!(cell(3, 3, 3), RfmCell::NeedAttention);
        assert_eq!(cell(3, 1, 1), RfmCell::AboutToSleep);
        assert_eq!(cell(2, 4, 2), RfmCell::AtRisk);
        assert_eq!(cell(1, 2, 5), RfmCell::Hibernating);
        assert_eq!(cell(1, 1, 1), RfmCell::Lost);
    }
}
