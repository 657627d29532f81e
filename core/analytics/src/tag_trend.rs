//! How many customers held each tag at the end of each period, from the tag history
//! (`tag_history`: every `added` and `removed`), in the tenant's zone, gaps filled.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    kinds::Resource,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;

use crate::period::{Period, midnight};

/// The most periods a trend has.
pub const MAX_POINTS: usize = 400;
/// The most tags a trend follows.
pub const MAX_TAGS: usize = 20;

/// One tag's holders at the end of each period (for the period not over yet: now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTrend {
    pub tag_id: String,
    pub points: Vec<(NaiveDate, i64)>,
}

/// Holders of `tag_ids` at the end of each period of `[from, to)`, among the customers the
/// actor reaches (the end of a period not over yet is now).
pub async fn compute(
    db: &Db,
    actor: &Actor,
    tag_ids: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Period,
) -> Result<Vec<TagTrend>> {
    let tz = actor.tenant.time_zone;
    let starts = crate::period::series(period, from, to, tz, MAX_POINTS)?;
    if !(1..=MAX_TAGS).contains(&tag_ids.len()) {
        return Err(Error::invalid(
            "input.tagIds",
            format!("1 to {MAX_TAGS} tags"),
        ));
    }
    let now = time::to_micros(time::now());
    let ends: Vec<i64> = starts
        .iter()
        .map(|&s| time::to_micros(midnight(period.advance(s, 1), tz)).min(now))
        .collect();
    let last = *ends.last().unwrap_or(&now);

    let mut sql = Sql::new("SELECT h.tag_id, h.customer_id, h.change, h.at FROM tag_history h");
    let t = sql.arg(actor.tenant.id.clone());
    let until = sql.arg(last);
    sql.push(&format!(
        " WHERE h.tenant_id = {t} AND h.at < {until} AND h.tag_id"
    ));
    sql.push_in(tag_ids);
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
    sql.push(" ORDER BY h.tag_id, h.customer_id, h.at, h.id");

    let mut counts: BTreeMap<String, Vec<i64>> = tag_ids
        .iter()
        .map(|id| (id.clone(), vec![0; ends.len()]))
        .collect();
    // one (tag, customer)'s changes at a time: whether it held the tag at each end
    let mut current: Option<(String, String)> = None;
    let mut changes: Vec<(i64, bool)> = Vec::new();
    let mut finish = |who: &Option<(String, String)>, changes: &mut Vec<(i64, bool)>| {
        if let Some((tag, _)) = who
            && let Some(slots) = counts.get_mut(tag)
        {
            for (slot, &end) in slots.iter_mut().zip(&ends) {
                let i = changes.partition_point(|&(at, _)| at < end);
                if i > 0 && changes[i - 1].1 {
                    *slot += 1;
                }
            }
        }
        changes.clear();
    };
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        let key = (
            r.try_get::<String, _>("tag_id")?,
            r.try_get::<String, _>("customer_id")?,
        );
        if current.as_ref() != Some(&key) {
            finish(&current, &mut changes);
            current = Some(key);
        }
        let change: String = r.try_get("change")?;
        changes.push((r.try_get("at")?, change == "added"));
    }
    drop(rows);
    finish(&current, &mut changes);
    Ok(tag_ids
        .iter()
        .map(|id| TagTrend {
            tag_id: id.clone(),
            points: starts
                .iter()
                .copied()
                .zip(counts[id].iter().copied())
                .collect(),
        })
        .collect())
}
