//! Retention cohorts: customers grouped by the period (day, week, month in the tenant's
//! zone) of a starting event, and how many of each cohort came back with a returning event
//! 1, 2, … periods later.
//!
//! - First-time: a customer's cohort is the period of their first-ever starting event, if
//!   it falls in the range.
//! - Recurring: a customer belongs to the cohort of every period in the range in which they
//!   had a starting event.
//! - Returned in period N: at least one returning event in the period N periods after the
//!   cohort's (so always after the start). Periods that have not begun are unknown (`None`),
//!   not 0; every cohort of the range is listed, empty ones included.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;

use shoal_base::{
    error::{Problems, Result},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{customers::CustomerFilter, tenancy::Actor};

use crate::{
    funnel::EventMatch,
    period::{Period, midnight},
    scan::{self, RawEvent},
};

/// The most periods after the cohort's that are counted.
pub const MAX_PERIODS: u32 = 60;
/// The most cohorts (periods in the range).
pub const MAX_COHORTS: usize = 370;

/// Which customers a cohort holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CohortKind {
    FirstTime,
    Recurring,
}

/// A retention table to compute.
#[derive(Debug, Clone)]
pub struct RetentionSpec {
    pub starting: EventMatch,
    pub returning: EventMatch,
    pub period: Period,
    pub kind: CohortKind,
    /// Cohorts from the period holding `from`…
    pub from: DateTime<Utc>,
    /// …to the one holding the instant before `to`.
    pub to: DateTime<Utc>,
    /// How many periods after each cohort's to count.
    pub periods: u32,
    pub filter: CustomerFilter,
}

/// One cohort's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    /// The first local day of the cohort's period.
    pub start: NaiveDate,
    pub customers: i64,
    /// Customers who returned in period 1, 2, … after the cohort's (`None`: not begun yet).
    pub returned: Vec<Option<i64>>,
}

impl RetentionSpec {
    /// Every problem of the spec, with its path under `field`.
    pub fn check(&self, field: &str) -> Result<()> {
        let mut p = Problems::default();
        self.starting.check(&format!("{field}.starting"), &mut p);
        self.returning.check(&format!("{field}.returning"), &mut p);
        if !(1..=MAX_PERIODS).contains(&self.periods) {
            p.push(format!("{field}.periods"), format!("1 to {MAX_PERIODS}"));
        }
        if self.to <= self.from {
            p.push(format!("{field}.to"), "must be after `from`");
        }
        p.into_result(())
    }
}

/// The retention table for the actor's customers (the tenant's time zone).
pub async fn compute(db: &Db, actor: &Actor, spec: &RetentionSpec) -> Result<Vec<Cohort>> {
    spec.check("input")?;
    let tz = actor.tenant.time_zone;
    let starts = spec
        .period
        .starts(spec.from, spec.to, tz, MAX_COHORTS)
        .map_err(|n| {
            shoal_base::error::Error::invalid(
                "input.to",
                format!("at most {MAX_COHORTS} cohorts (periods in the range), not {n}"),
            )
        })?;
    let first = starts[0];
    let last = *starts.last().unwrap_or(&first);
    let range_start = time::to_micros(midnight(first, tz));
    let range_end = time::to_micros(midnight(spec.period.advance(last, 1), tz));
    let horizon = time::to_micros(midnight(spec.period.advance(last, spec.periods + 1), tz));

    // first-time cohorts need the starting events before the range too; one range over
    // both types (a disjunction of two ranges plans badly on SQLite), sorted out below
    let earliest = match spec.kind {
        CohortKind::FirstTime => i64::MIN,
        CohortKind::Recurring => range_start,
    };
    let n = starts.len();
    let mut tally = Tally {
        sizes: vec![0_i64; n],
        returned: vec![vec![0_i64; spec.periods as usize]; n],
    };
    let scope = Scope {
        earliest,
        range_start,
        horizon: horizon.max(range_end),
        cohorts: n,
    };
    match uniform_width(spec.period, first, n + spec.periods as usize + 1, tz) {
        // days and weeks of a zone whose offset holds over the range: periods cut in SQL,
        // one row per customer and period (a fraction of the events)
        Some(width) => bucketed(db, actor, spec, &scope, width, &mut tally).await?,
        None => per_event(db, actor, spec, &scope, first, &mut tally).await?,
    }
    let Tally { sizes, returned } = tally;

    let today = spec.period.start_at(time::now(), tz);
    Ok(starts
        .iter()
        .enumerate()
        .map(|(i, &start)| Cohort {
            start,
            customers: sizes[i],
            returned: (1..=spec.periods)
                .zip(&returned[i])
                .map(|(k, &v)| (spec.period.advance(start, k) <= today).then_some(v))
                .collect(),
        })
        .collect())
}

/// What a table's scan covers (µs): starting events from `earliest` (before the range only
/// to find first-timers), cohorts from `range_start`, `cohorts` of them, returns until
/// `horizon`.
struct Scope {
    earliest: i64,
    range_start: i64,
    horizon: i64,
    cohorts: usize,
}

/// Cohort sizes and returns, counted customer by customer.
struct Tally {
    sizes: Vec<i64>,
    returned: Vec<Vec<i64>>,
}

impl Tally {
    /// Counts one customer: the cohorts (period indexes) they belong to and the periods they
    /// returned in.
    fn add(&mut self, cohorts: &BTreeSet<i64>, backs: &BTreeSet<i64>) {
        for &c in cohorts {
            let Ok(ci) = usize::try_from(c) else { continue };
            if ci >= self.sizes.len() {
                continue;
            }
            self.sizes[ci] += 1;
            for (k, slot) in self.returned[ci].iter_mut().enumerate() {
                if backs.contains(&(c + k as i64 + 1)) {
                    *slot += 1;
                }
            }
        }
    }
}

/// One customer at a time: the cohorts they belong to and the periods they returned in,
/// from their periods (or events) in order.
struct Walk<'s> {
    kind: CohortKind,
    cohorts_in_range: i64,
    current: Option<String>,
    cohorts: BTreeSet<i64>,
    backs: BTreeSet<i64>,
    seen_start: bool,
    tally: &'s mut Tally,
}

impl<'s> Walk<'s> {
    fn new(kind: CohortKind, cohorts_in_range: usize, tally: &'s mut Tally) -> Walk<'s> {
        Walk {
            kind,
            cohorts_in_range: i64::try_from(cohorts_in_range).unwrap_or(i64::MAX),
            current: None,
            cohorts: BTreeSet::new(),
            backs: BTreeSet::new(),
            seen_start: false,
            tally,
        }
    }

    /// The next row is `customer`'s: counts the one before when it changes.
    fn customer(&mut self, customer: String) {
        if self.current.as_deref() != Some(customer.as_str()) {
            self.finish();
            self.current = Some(customer);
        }
    }

    /// A starting event in period `i` (-1: before the range): a first-timer's first one
    /// places them, a recurring cohort takes every one in the range.
    fn start(&mut self, i: i64) {
        if i >= self.cohorts_in_range {
            return;
        }
        match self.kind {
            CohortKind::FirstTime if !self.seen_start => {
                if i >= 0 {
                    self.cohorts.insert(i);
                }
            }
            CohortKind::FirstTime => {}
            CohortKind::Recurring => {
                self.cohorts.insert(i);
            }
        }
        self.seen_start = true;
    }

    /// A returning event in period `i` (-1: before the range, not counted).
    fn back(&mut self, i: i64) {
        if i >= 0 {
            self.backs.insert(i);
        }
    }

    /// Counts the customer being read.
    fn finish(&mut self) {
        self.tally.add(&self.cohorts, &self.backs);
        self.cohorts.clear();
        self.backs.clear();
        self.seen_start = false;
    }
}

/// The length (µs) every one of `count` periods from `first` has in `tz`, if they all have
/// the same: days and weeks of a zone whose offset does not change over them (months never).
fn uniform_width(period: Period, first: NaiveDate, count: usize, tz: chrono_tz::Tz) -> Option<i64> {
    if period == Period::Month {
        return None;
    }
    let at = |k: usize| {
        time::to_micros(midnight(
            period.advance(first, u32::try_from(k).unwrap_or(u32::MAX)),
            tz,
        ))
    };
    let width = at(1) - at(0);
    (1..=count)
        .all(|k| at(k) - at(k - 1) == width)
        .then_some(width)
}

/// Counts with the periods cut in SQL: one row per customer and period, flagged where a
/// starting or returning event fell (a period before the range is -1).
async fn bucketed(
    db: &Db,
    actor: &Actor,
    spec: &RetentionSpec,
    scope: &Scope,
    width: i64,
    tally: &mut Tally,
) -> Result<()> {
    let mut sql = Sql::new("SELECT c.id AS customer_id, CAST(CASE WHEN e.occurred_at < ");
    let a = sql.arg(scope.range_start);
    sql.push(&format!(
        "{a} THEN -1 ELSE (e.occurred_at - {a}) / {width} END AS BIGINT) AS bucket, CAST(MAX(CASE WHEN "
    ));
    spec.starting.push_condition(&mut sql);
    sql.push(" THEN 1 ELSE 0 END) AS BIGINT) AS s, CAST(MAX(CASE WHEN ");
    spec.returning.push_condition(&mut sql);
    sql.push(" THEN 1 ELSE 0 END) AS BIGINT) AS r");
    let (_, types) = EventMatch::scan_parts(&[&spec.starting, &spec.returning]);
    scan::push_from(
        &mut sql,
        db,
        actor,
        &spec.filter,
        &types,
        (scope.earliest, scope.horizon),
    )?;
    sql.push(" GROUP BY c.id, bucket ORDER BY c.id, bucket");
    let mut walk = Walk::new(spec.kind, scope.cohorts, tally);
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        walk.customer(r.try_get("customer_id")?);
        let bucket: i64 = r.try_get("bucket")?;
        if r.try_get::<i64, _>("s")? == 1 {
            walk.start(bucket);
        }
        if r.try_get::<i64, _>("r")? == 1 {
            walk.back(bucket);
        }
    }
    drop(rows);
    walk.finish();
    Ok(())
}

/// Counts event by event, each cut into its period in Rust (months, and zones whose offset
/// changes over the range).
async fn per_event(
    db: &Db,
    actor: &Actor,
    spec: &RetentionSpec,
    scope: &Scope,
    first: NaiveDate,
    tally: &mut Tally,
) -> Result<()> {
    let tz = actor.tenant.time_zone;
    let (columns, types) = EventMatch::scan_parts(&[&spec.starting, &spec.returning]);
    let sql = scan::events(
        db,
        actor,
        &spec.filter,
        &columns,
        &types,
        (scope.earliest, scope.horizon),
        "",
    )?;
    let index = |at: i64| -> i64 {
        spec.period
            .between(first, spec.period.start_at(time::from_micros(at), tz))
    };
    let mut walk = Walk::new(spec.kind, scope.cohorts, tally);
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        walk.customer(r.try_get("customer_id")?);
        let raw = RawEvent::from_row(&r)?;
        let at: i64 = r.try_get("occurred_at")?;
        let i = if at < scope.range_start {
            -1
        } else {
            index(at)
        };
        if spec.starting.matches(&raw) {
            walk.start(i);
        }
        if spec.returning.matches(&raw) {
            walk.back(i);
        }
    }
    drop(rows);
    walk.finish();
    Ok(())
}
