//! Where customers stood over time, from the histories the database keeps: lifecycle stages
//! at each period's end (`stage_history`, written by a trigger on every insert and stage
//! change) and RFM cell movement between two instants (`rfm_history`, written by each RFM
//! recompute). Among the customers the reader reaches, deleted customers left out.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    kinds::{LifecycleStage, Resource, RfmCell},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;

use crate::period::{Period, midnight};

/// The most periods a stage series has.
pub const MAX_POINTS: usize = 400;

/// How many customers were in each stage at the end of one period (now, for the current one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePoint {
    pub start: NaiveDate,
    /// Every stage, in the vocabulary's order, with its customers (zeros included).
    pub stages: Vec<(LifecycleStage, i64)>,
}

/// One move between RFM cells: customers in `from` at the first instant and in `to` at the
/// second (`None`: not scored then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmMove {
    pub from: Option<RfmCell>,
    pub to: Option<RfmCell>,
    pub customers: i64,
}

/// Streams `table`'s history rows (`customer_id`, `value`, `at`) before `until`, of the
/// customers the actor reaches and not deleted, customer by customer in time order, and
/// calls `each` with one customer's changes `(at, value)`.
async fn replay(
    db: &Db,
    actor: &Actor,
    table: &str,
    value: &str,
    until: i64,
    mut each: impl FnMut(&[(i64, Option<String>)]),
) -> Result<()> {
    let mut sql = Sql::new(&format!(
        "SELECT h.customer_id, h.{value} AS value, h.at FROM {table} h"
    ));
    let t = sql.arg(actor.tenant_id());
    let u = sql.arg(until);
    sql.push(&format!(" WHERE h.tenant_id = {t} AND h.at < {u}"));
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        Resource::Customers,
        &t,
        "h.customer_id",
    );
    sql.push(&format!(
        " AND EXISTS (SELECT 1 FROM customers d WHERE d.tenant_id = {t} AND d.id = h.customer_id AND d.deleted_at IS NULL)"
    ));
    sql.push(" ORDER BY h.customer_id, h.at");
    let mut rows = sql.query().fetch(&db.pool);
    let mut current: Option<String> = None;
    let mut changes: Vec<(i64, Option<String>)> = Vec::new();
    while let Some(r) = rows.try_next().await? {
        let customer: String = r.try_get("customer_id")?;
        if current.as_deref() != Some(customer.as_str()) {
            if current.is_some() {
                each(&changes);
            }
            changes.clear();
            current = Some(customer);
        }
        changes.push((r.try_get("at")?, r.try_get("value")?));
    }
    if current.is_some() {
        each(&changes);
    }
    Ok(())
}

/// The value in force just before `end` (the last change earlier than it).
fn at_end(changes: &[(i64, Option<String>)], end: i64) -> Option<&str> {
    let i = changes.partition_point(|&(at, _)| at < end);
    (i > 0).then(|| changes[i - 1].1.as_deref()).flatten()
}

/// Customers per lifecycle stage at the end of each period of `[from, to)`.
pub async fn stage_trend(
    db: &Db,
    actor: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Period,
) -> Result<Vec<StagePoint>> {
    let tz = actor.tenant.time_zone;
    let starts = crate::period::series(period, from, to, tz, MAX_POINTS)?;
    let now = time::to_micros(time::now());
    let ends: Vec<i64> = starts
        .iter()
        .map(|&s| time::to_micros(midnight(period.advance(s, 1), tz)).min(now))
        .collect();
    let last = ends.iter().copied().max().unwrap_or(now);
    let mut counts: Vec<BTreeMap<&'static str, i64>> = vec![BTreeMap::new(); ends.len()];
    replay(db, actor, "stage_history", "stage", last, |changes| {
        for (slot, &end) in counts.iter_mut().zip(&ends) {
            if let Some(stage) = at_end(changes, end).and_then(LifecycleStage::parse) {
                *slot.entry(stage.as_str()).or_default() += 1;
            }
        }
    })
    .await?;
    Ok(starts
        .into_iter()
        .zip(counts)
        .map(|(start, by)| StagePoint {
            start,
            stages: LifecycleStage::ALL
                .iter()
                .map(|s| (*s, by.get(s.as_str()).copied().unwrap_or(0)))
                .collect(),
        })
        .collect())
}

/// How customers moved between RFM cells from the instant `from` to the instant `to`: each
/// customer's cell then and then (the last recompute before each), pairs with customers,
/// most customers first; customers scored at neither instant are left out.
pub async fn rfm_movement(
    db: &Db,
    actor: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RfmMove>> {
    if to <= from {
        return Err(Error::invalid("input.to", "must be after `from`"));
    }
    let (a, b) = (time::to_micros(from), time::to_micros(to));
    let mut pairs: BTreeMap<(Option<&'static str>, Option<&'static str>), i64> = BTreeMap::new();
    let cell = |v: Option<&str>| v.and_then(RfmCell::parse).map(RfmCell::as_str);
    replay(db, actor, "rfm_history", "cell", b, |changes| {
        let pair = (cell(at_end(changes, a)), cell(at_end(changes, b)));
        if pair != (None, None) {
            *pairs.entry(pair).or_default() += 1;
        }
    })
    .await?;
    let mut out: Vec<RfmMove> = pairs
        .into_iter()
        .map(|((f, t), customers)| RfmMove {
            from: f.and_then(RfmCell::parse),
            to: t.and_then(RfmCell::parse),
            customers,
        })
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.customers));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_at_an_end_is_the_last_change_before_it() {
        let changes = vec![
            (10, Some("lead".to_owned())),
            (20, Some("customer".to_owned())),
            (30, None),
        ];
        assert_eq!(
            at_end(&changes, 10),
            None,
            "not yet: the change is at the end"
        );
        assert_eq!(at_end(&changes, 11), Some("lead"));
        assert_eq!(at_end(&changes, 20), Some("lead"));
        assert_eq!(at_end(&changes, 25), Some("customer"));
        assert_eq!(at_end(&changes, 31), None, "no longer scored");
    }
}
