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
    storage::{Db, time},
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
    let (columns, types) = EventMatch::scan_parts(&[&spec.starting, &spec.returning]);
    let sql = scan::events(
        db,
        actor,
        &spec.filter,
        &columns,
        &types,
        (earliest, horizon.max(range_end)),
        "",
    )?;

    let n = starts.len();
    let periods = spec.periods as usize;
    let mut sizes = vec![0_i64; n];
    let mut returned = vec![vec![0_i64; periods]; n];
    let index = |at: i64| -> i64 {
        spec.period
            .between(first, spec.period.start_at(time::from_micros(at), tz))
    };
    let mut current: Option<String> = None;
    let mut cohorts: BTreeSet<i64> = BTreeSet::new();
    let mut backs: BTreeSet<i64> = BTreeSet::new();
    let mut seen_start = false;
    let mut finish = |cohorts: &mut BTreeSet<i64>, backs: &mut BTreeSet<i64>| {
        for &c in cohorts.iter() {
            let Ok(ci) = usize::try_from(c) else { continue };
            if ci >= n {
                continue;
            }
            sizes[ci] += 1;
            for (k, slot) in returned[ci].iter_mut().enumerate() {
                if backs.contains(&(c + k as i64 + 1)) {
                    *slot += 1;
                }
            }
        }
        cohorts.clear();
        backs.clear();
    };
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        let customer: String = r.try_get("customer_id")?;
        if current.as_deref() != Some(customer.as_str()) {
            finish(&mut cohorts, &mut backs);
            current = Some(customer);
            seen_start = false;
        }
        let raw = RawEvent::from_row(&r)?;
        let at: i64 = r.try_get("occurred_at")?;
        if spec.starting.matches(&raw) && at < range_end {
            match spec.kind {
                CohortKind::FirstTime if !seen_start => {
                    if at >= range_start {
                        cohorts.insert(index(at));
                    }
                }
                CohortKind::FirstTime => {}
                CohortKind::Recurring => {
                    cohorts.insert(index(at));
                }
            }
            seen_start = true;
        }
        if spec.returning.matches(&raw) && at >= range_start && at < horizon {
            backs.insert(index(at));
        }
    }
    drop(rows);
    finish(&mut cohorts, &mut backs);

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
