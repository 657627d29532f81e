//! Revenue from settled bills as time series: net of refunds (a refund bill carries the
//! negated total), per currency (amounts of different currencies are never added), by
//! region, regional tier, module or participant (their ledger splits), in calendar periods
//! of the tenant's zone with empty periods filled.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;

use shoal_base::{
    error::Result,
    kinds::Resource,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;

use crate::period::Period;

/// The most periods a series has.
pub const MAX_POINTS: usize = 400;

/// What a series is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevenueBy {
    /// One series per currency.
    Total,
    Region,
    /// The region's tier now (`region_tiers`); regions without one under "".
    Tier,
    /// The settlement module that priced the bill.
    Module,
    /// The participant's split of each bill (ledger postings to `participant:<id>`).
    Participant,
}

/// A revenue question.
#[derive(Debug, Clone)]
pub struct RevenueSpec {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: Period,
    pub by: RevenueBy,
}

/// One period of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub start: NaiveDate,
    /// Net amount in 1/10,000 units (sales minus refunds).
    pub units: i64,
    /// Sale bills (or, per participant, sale postings) in the period.
    pub sales: i64,
    /// Refund bills (or postings) in the period.
    pub refunds: i64,
}

/// A series: one key in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub key: String,
    pub currency: String,
    pub points: Vec<Point>,
    pub total_units: i64,
}

/// Revenue series over the bills the actor reaches (bills without a customer need scope
/// `all` on bills), keys and currencies in order.
pub async fn compute(db: &Db, actor: &Actor, spec: &RevenueSpec) -> Result<Vec<Series>> {
    let tz = actor.tenant.time_zone;
    let starts = crate::period::series(spec.period, spec.from, spec.to, tz, MAX_POINTS)?;
    let (select, from) = match spec.by {
        RevenueBy::Participant => (
            "b.created_at, b.kind, p.currency, p.amount_units AS units, SUBSTR(p.account, 13) AS k",
            "ledger_postings p JOIN bills b ON b.tenant_id = p.tenant_id AND b.id = p.bill_id",
        ),
        RevenueBy::Tier => (
            "b.created_at, b.kind, b.currency, b.total_units AS units, COALESCE(rt.tier, '') AS k",
            "bills b LEFT JOIN region_tiers rt ON rt.tenant_id = b.tenant_id AND rt.region = b.region",
        ),
        RevenueBy::Region => (
            "b.created_at, b.kind, b.currency, b.total_units AS units, b.region AS k",
            "bills b",
        ),
        RevenueBy::Module => (
            "b.created_at, b.kind, b.currency, b.total_units AS units, b.module_id AS k",
            "bills b",
        ),
        RevenueBy::Total => (
            "b.created_at, b.kind, b.currency, b.total_units AS units, '' AS k",
            "bills b",
        ),
    };
    let mut sql = Sql::new(&format!("SELECT {select} FROM {from}"));
    let t = sql.arg(actor.tenant.id.clone());
    let (f, to) = (
        sql.arg(time::to_micros(spec.from)),
        sql.arg(time::to_micros(spec.to)),
    );
    sql.push(&format!(
        " WHERE b.tenant_id = {t} AND b.created_at >= {f} AND b.created_at < {to}"
    ));
    if spec.by == RevenueBy::Participant {
        sql.push(" AND p.account LIKE 'participant:%'");
    }
    actor
        .access
        .push_linked_scope(&mut sql, db.backend, Resource::Bills, &t, "b.customer_id");
    if !actor.access.reaches_all(Resource::Bills) {
        sql.push(" AND b.customer_id IS NOT NULL");
    }

    let first = starts[0];
    let mut series: BTreeMap<(String, String), Vec<Point>> = BTreeMap::new();
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        let at: i64 = r.try_get("created_at")?;
        let kind: String = r.try_get("kind")?;
        let units: i64 = r.try_get("units")?;
        let key = (
            r.try_get::<String, _>("k")?,
            r.try_get::<String, _>("currency")?,
        );
        let points = series.entry(key).or_insert_with(|| {
            starts
                .iter()
                .map(|&start| Point {
                    start,
                    units: 0,
                    sales: 0,
                    refunds: 0,
                })
                .collect()
        });
        let i = spec
            .period
            .between(first, spec.period.start_at(time::from_micros(at), tz));
        if let Some(p) = usize::try_from(i).ok().and_then(|i| points.get_mut(i)) {
            p.units += units;
            if kind == "refund" {
                p.refunds += 1;
            } else {
                p.sales += 1;
            }
        }
    }
    Ok(series
        .into_iter()
        .map(|((key, currency), points)| Series {
            total_units: points.iter().map(|p| p.units).sum(),
            key,
            currency,
            points,
        })
        .collect())
}
