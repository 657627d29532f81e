//! Funnels: how many customers went through ordered (or unordered) event steps, each within
//! its conversion window, where they dropped off and how long each step took.
//!
//! Semantics (docs/analytics.md gives the same as SQL):
//! - A customer **enters** with a first-step event that occurred in `[from, to)`; every such
//!   event is an attempt, and the customer counts once, with the attempt that reached the
//!   furthest step (the earliest of equals).
//! - In order: step k is the customer's first event matching it after step k−1 (events are
//!   ordered by time, then id) and at most the step's window after it. Any order: every step
//!   matched by an event at or after the entry and at most the funnel's window after it.
//! - An exclusion voids an attempt that has a matching event between its two steps (or,
//!   when the later step was not reached, before the time it had to be reached by); a
//!   customer all of whose attempts are void is counted as excluded, not entered.
//! - Medians are of whole seconds from the previous step, over the customers who reached
//!   the step, and the lower middle value of an even count (PostgreSQL's
//!   `percentile_disc(0.5)`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;

use shoal_base::{
    error::{Problems, Result},
    kinds::{Channel, EventType},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{customers::CustomerFilter, tenancy::Actor};

use crate::scan::{self, RawEvent};

/// The most steps a funnel has.
pub const MAX_STEPS: usize = 10;
/// The longest entry range.
pub const MAX_RANGE_DAYS: i64 = 732;
/// The longest conversion window.
pub const MAX_WINDOW_DAYS: i64 = 365;
/// The most exclusions.
pub const MAX_EXCLUSIONS: usize = 5;
/// The most groups a segment breakdown compares.
pub const MAX_SEGMENTS: usize = 10;

/// Which events a step (or an exclusion) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    pub event_type: EventType,
    /// The event's name (required for custom events; for others, an optional label match).
    pub name: Option<String>,
    /// Only events recorded through this channel.
    pub channel: Option<Channel>,
    /// Only events with at least this amount (1/10,000 units, see `storage::money`).
    pub min_amount_units: Option<i64>,
}

impl EventMatch {
    /// Every event of type `t`.
    pub fn of(t: EventType) -> EventMatch {
        EventMatch {
            event_type: t,
            name: None,
            channel: None,
            min_amount_units: None,
        }
    }

    /// The event columns a scan must read for `matches` (unread ones as typed NULLs, so the
    /// scan can stay on the `(tenant, customer, type, time)` index).
    /// The event columns and types a scan for `matches` reads (see [`crate::scan::events`]).
    pub(crate) fn scan_parts(matches: &[&EventMatch]) -> (String, Vec<&'static str>) {
        (
            Self::columns(matches.iter().copied()),
            matches.iter().map(|m| m.event_type.as_str()).collect(),
        )
    }

    fn columns<'a>(all: impl IntoIterator<Item = &'a EventMatch>) -> String {
        let (mut name, mut channel, mut amount) = (false, false, false);
        for m in all {
            name |= m.name.is_some();
            channel |= m.channel.is_some();
            amount |= m.min_amount_units.is_some();
        }
        [
            if name {
                "e.name"
            } else {
                "CAST(NULL AS TEXT) AS name"
            },
            if channel {
                "e.channel"
            } else {
                "CAST(NULL AS TEXT) AS channel"
            },
            if amount {
                "e.amount_units"
            } else {
                "CAST(NULL AS BIGINT) AS amount_units"
            },
        ]
        .join(", ")
    }

    /// The SQL condition `matches` tests, on the events alias `e` (the name as an argument of
    /// `sql`, pushed where the condition is written).
    pub(crate) fn push_condition(&self, sql: &mut Sql) {
        sql.push(&format!("(e.event_type = '{}'", self.event_type.as_str()));
        if let Some(n) = &self.name {
            let n = sql.arg(n.clone());
            sql.push(&format!(" AND e.name = {n}"));
        }
        if let Some(c) = self.channel {
            sql.push(&format!(" AND e.channel = '{}'", c.as_str()));
        }
        if let Some(m) = self.min_amount_units {
            sql.push(&format!(" AND e.amount_units >= {m}"));
        }
        sql.push(")");
    }

    pub(crate) fn matches(&self, e: &RawEvent) -> bool {
        e.event_type == self.event_type.as_str()
            && self
                .name
                .as_ref()
                .is_none_or(|n| e.name.as_ref() == Some(n))
            && self
                .channel
                .is_none_or(|c| e.channel.as_deref() == Some(c.as_str()))
            && self
                .min_amount_units
                .is_none_or(|m| e.amount_units.is_some_and(|a| a >= m))
    }

    pub(crate) fn check(&self, field: &str, p: &mut Problems) {
        match (&self.name, self.event_type) {
            (None, EventType::Custom) => p.push(
                format!("{field}.name"),
                "a custom event step needs the event's name",
            ),
            (Some(n), _) if n.trim().is_empty() || n.chars().count() > 100 => {
                p.push(format!("{field}.name"), "1 to 100 characters")
            }
            _ => {}
        }
        if self.min_amount_units.is_some_and(|m| m < 0) {
            p.push(format!("{field}.minAmount"), "must not be negative");
        }
    }
}

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step is called in the answer (defaults to the event).
    pub label: String,
    pub event: EventMatch,
    /// How long after the previous step this one may come (the funnel's window if not
    /// given); not for the first step, nor for any-order funnels.
    pub within: Option<Duration>,
}

/// Customers with a matching event between two steps are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub event: EventMatch,
    /// Index of the step after which the event voids the attempt.
    pub after_step: usize,
    /// Index of the step before which it does.
    pub before_step: usize,
}

/// Whether steps must come in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    InOrder,
    AnyOrder,
}

/// How the customers are split.
#[derive(Debug, Clone, Default)]
pub enum Breakdown {
    #[default]
    None,
    /// By the customer's source channel.
    Channel,
    /// By the customer's lifecycle stage (as it is now).
    Stage,
    /// By segment: `(key, the segment's filter)`; a customer may be in several.
    Segments(Vec<(String, CustomerFilter)>),
}

/// A funnel to compute.
#[derive(Debug, Clone)]
pub struct FunnelSpec {
    pub steps: Vec<Step>,
    pub exclusions: Vec<Exclusion>,
    pub order: Order,
    /// The default step window (in order) or the whole funnel's (any order).
    pub window: Duration,
    /// Entries from (inclusive)…
    pub from: DateTime<Utc>,
    /// …to (exclusive).
    pub to: DateTime<Utc>,
    /// Which customers count (within the reader's scope, always).
    pub filter: CustomerFilter,
    pub breakdown: Breakdown,
}

/// One step's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFigures {
    pub label: String,
    /// Customers who reached the step (in any order: who did at least this many steps).
    pub customers: i64,
    /// Median whole seconds from the previous step (none for the first step or when nobody
    /// reached it).
    pub median_seconds_from_previous: Option<i64>,
}

/// A funnel's figures for one group of customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelFigures {
    pub steps: Vec<StepFigures>,
    /// Customers whose every attempt an exclusion voided.
    pub excluded: i64,
}

impl FunnelFigures {
    /// Customers who entered (reached the first step).
    pub fn entered(&self) -> i64 {
        self.steps.first().map_or(0, |s| s.customers)
    }
}

/// The whole answer: every customer, then each group of the breakdown (in key order; for
/// segments, in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelResult {
    pub overall: FunnelFigures,
    pub groups: Vec<(String, FunnelFigures)>,
}

impl FunnelSpec {
    /// Every problem of the spec, with its path under `field` (`input`).
    pub fn check(&self, field: &str) -> Result<()> {
        let mut p = Problems::default();
        let n = self.steps.len();
        if !(2..=MAX_STEPS).contains(&n) {
            p.push(format!("{field}.steps"), format!("2 to {MAX_STEPS} steps"));
        }
        for (i, s) in self.steps.iter().enumerate() {
            let at = format!("{field}.steps[{i}]");
            s.event.check(&at, &mut p);
            if s.label.chars().count() > 100 {
                p.push(format!("{at}.label"), "at most 100 characters");
            }
            if let Some(w) = s.within {
                if i == 0 {
                    p.push(format!("{at}.within"), "the first step has no window");
                } else if self.order == Order::AnyOrder {
                    p.push(
                        format!("{at}.within"),
                        "any-order funnels have one window (`window`)",
                    );
                } else {
                    check_window(w, &format!("{at}.within"), &mut p);
                }
            }
        }
        check_window(self.window, &format!("{field}.window"), &mut p);
        if self.exclusions.len() > MAX_EXCLUSIONS {
            p.push(
                format!("{field}.exclusions"),
                format!("at most {MAX_EXCLUSIONS}"),
            );
        }
        for (i, x) in self.exclusions.iter().enumerate() {
            let at = format!("{field}.exclusions[{i}]");
            x.event.check(&at, &mut p);
            if self.order == Order::AnyOrder {
                p.push(at.clone(), "exclusions need an in-order funnel");
            }
            if x.after_step >= x.before_step || x.before_step >= n {
                p.push(
                    format!("{at}.beforeStep"),
                    format!(
                        "steps are numbered from 0: afterStep < beforeStep < {n} (the number of steps)"
                    ),
                );
            }
        }
        if self.to <= self.from {
            p.push(format!("{field}.to"), "must be after `from`");
        } else if self.to.signed_duration_since(self.from) > Duration::days(MAX_RANGE_DAYS) {
            p.push(
                format!("{field}.to"),
                format!("the range is at most {MAX_RANGE_DAYS} days"),
            );
        }
        if let Breakdown::Segments(s) = &self.breakdown
            && !(1..=MAX_SEGMENTS).contains(&s.len())
        {
            p.push(
                format!("{field}.breakdown.segments"),
                format!("1 to {MAX_SEGMENTS} segments"),
            );
        }
        p.into_result(())
    }

    fn within(&self, step: usize) -> i64 {
        self.steps[step]
            .within
            .unwrap_or(self.window)
            .num_microseconds()
            .unwrap_or(i64::MAX)
    }

    /// The latest instant a step of an attempt entering before `to` can happen.
    fn horizon(&self) -> DateTime<Utc> {
        let reach = match self.order {
            Order::AnyOrder => self.window,
            Order::InOrder => (1..self.steps.len())
                .map(|k| self.steps[k].within.unwrap_or(self.window))
                .fold(Duration::zero(), |a, b| a + b),
        };
        self.to
            .checked_add_signed(reach)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

fn check_window(w: Duration, field: &str, p: &mut Problems) {
    if w < Duration::minutes(1) || w > Duration::days(MAX_WINDOW_DAYS) {
        p.push(
            field,
            format!("between 1 minute and {MAX_WINDOW_DAYS} days"),
        );
    }
}

/// Computes the funnel for the actor: only customers (and their events) the actor reaches.
pub async fn compute(db: &Db, actor: &Actor, spec: &FunnelSpec) -> Result<FunnelResult> {
    spec.check("input")?;
    match &spec.breakdown {
        Breakdown::Segments(segments) => {
            let overall = scan(db, actor, spec, &spec.filter, None).await?.0;
            let mut groups = Vec::new();
            for (key, filter) in segments {
                let mut f = spec.filter.clone();
                f.also.push(filter.clone());
                groups.push((key.clone(), scan(db, actor, spec, &f, None).await?.0));
            }
            Ok(FunnelResult { overall, groups })
        }
        Breakdown::Channel => {
            let (overall, groups) =
                scan(db, actor, spec, &spec.filter, Some("c.source_channel")).await?;
            Ok(FunnelResult { overall, groups })
        }
        Breakdown::Stage => {
            let (overall, groups) =
                scan(db, actor, spec, &spec.filter, Some("c.lifecycle_stage")).await?;
            Ok(FunnelResult { overall, groups })
        }
        Breakdown::None => Ok(FunnelResult {
            overall: scan(db, actor, spec, &spec.filter, None).await?.0,
            groups: Vec::new(),
        }),
    }
}

/// One event of one customer: when, and which steps / exclusions it matches (bit sets).
#[derive(Debug, Clone, Copy)]
struct Hit {
    at: i64,
    steps: u16,
    exclusions: u8,
}

/// Streams the matching events of the filter's customers, customer by customer, and folds
/// each customer's attempts into the figures (overall, and per `group` column value).
async fn scan(
    db: &Db,
    actor: &Actor,
    spec: &FunnelSpec,
    filter: &CustomerFilter,
    group: Option<&str>,
) -> Result<(FunnelFigures, Vec<(String, FunnelFigures)>)> {
    let matches: Vec<&EventMatch> = spec
        .steps
        .iter()
        .map(|s| &s.event)
        .chain(spec.exclusions.iter().map(|x| &x.event))
        .collect();
    let also = format!(", {} AS grp", group.unwrap_or("''"));
    let (columns, types) = EventMatch::scan_parts(&matches);
    let sql = scan::events(
        db,
        actor,
        filter,
        &columns,
        &types,
        (time::to_micros(spec.from), time::to_micros(spec.horizon())),
        &also,
    )?;

    let (from, to) = (time::to_micros(spec.from), time::to_micros(spec.to));
    let mut overall = Tally::new(spec.steps.len());
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut hits: Vec<Hit> = Vec::new();
    let mut finish = |who: &Option<(String, String)>, hits: &mut Vec<Hit>| {
        if let Some((_, grp)) = who {
            let outcome = attempt_best(spec, hits, from, to);
            overall.add(&outcome);
            if group.is_some() {
                groups
                    .entry(grp.clone())
                    .or_insert_with(|| Tally::new(spec.steps.len()))
                    .add(&outcome);
            }
        }
        hits.clear();
    };
    let mut rows = sql.query().fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        let customer: String = r.try_get("customer_id")?;
        if current.as_ref().is_none_or(|(c, _)| *c != customer) {
            finish(&current, &mut hits);
            current = Some((
                customer,
                r.try_get::<Option<String>, _>("grp")?.unwrap_or_default(),
            ));
        }
        let raw = RawEvent::from_row(&r)?;
        let mut hit = Hit {
            at: r.try_get("occurred_at")?,
            steps: 0,
            exclusions: 0,
        };
        for (k, s) in spec.steps.iter().enumerate() {
            if s.event.matches(&raw) {
                hit.steps |= 1 << k;
            }
        }
        for (k, x) in spec.exclusions.iter().enumerate() {
            if x.event.matches(&raw) {
                hit.exclusions |= 1 << k;
            }
        }
        if hit.steps != 0 || hit.exclusions != 0 {
            hits.push(hit);
        }
    }
    drop(rows);
    finish(&current, &mut hits);
    let labels: Vec<String> = spec.steps.iter().map(|s| s.label.clone()).collect();
    Ok((
        overall.figures(&labels),
        groups
            .into_iter()
            .map(|(k, t)| (k, t.figures(&labels)))
            .collect(),
    ))
}

/// What one customer's best attempt reached.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// No first-step event in the range.
    Absent,
    /// Every attempt was voided by an exclusion.
    Excluded,
    /// The times of the steps reached, in order.
    Reached(Vec<i64>),
}

/// The customer's best attempt over its events (sorted by time, then id).
fn attempt_best(spec: &FunnelSpec, hits: &[Hit], from: i64, to: i64) -> Outcome {
    let n = spec.steps.len();
    let entering = |h: &Hit| h.at >= from && h.at < to;
    let positions: Vec<Vec<usize>> = (0..n)
        .map(|k| {
            (0..hits.len())
                .filter(|&i| hits[i].steps & (1 << k) != 0)
                .collect()
        })
        .collect();
    let mut best: Option<Vec<i64>> = None;
    let mut any_entry = false;
    match spec.order {
        Order::InOrder => {
            for &start in positions[0].iter().filter(|&&i| entering(&hits[i])) {
                any_entry = true;
                let mut at = vec![start];
                for (k, list) in positions.iter().enumerate().skip(1) {
                    let prev = *at.last().unwrap_or(&start);
                    let next = list.partition_point(|&p| p <= prev);
                    match list.get(next) {
                        Some(&p) if hits[p].at.saturating_sub(hits[prev].at) <= spec.within(k) => {
                            at.push(p)
                        }
                        _ => break,
                    }
                }
                if voided(spec, hits, &at) {
                    continue;
                }
                if best.as_ref().is_none_or(|b| at.len() > b.len()) {
                    let complete = at.len() == n;
                    best = Some(at.iter().map(|&p| hits[p].at).collect());
                    if complete {
                        break;
                    }
                }
            }
        }
        Order::AnyOrder => {
            let window = spec.window.num_microseconds().unwrap_or(i64::MAX);
            for start in (0..hits.len()).filter(|&i| hits[i].steps != 0 && entering(&hits[i])) {
                any_entry = true;
                let deadline = hits[start].at.saturating_add(window);
                let mut times: Vec<i64> = positions
                    .iter()
                    .filter_map(|list| {
                        let i = list.partition_point(|&p| p < start);
                        list.get(i).map(|&p| hits[p].at).filter(|&t| t <= deadline)
                    })
                    .collect();
                times.sort_unstable();
                if best.as_ref().is_none_or(|b| times.len() > b.len()) {
                    let complete = times.len() == n;
                    best = Some(times);
                    if complete {
                        break;
                    }
                }
            }
        }
    }
    match best {
        Some(times) => Outcome::Reached(times),
        None if any_entry => Outcome::Excluded,
        None => Outcome::Absent,
    }
}

/// Whether an exclusion event falls inside the attempt (positions of the steps reached).
fn voided(spec: &FunnelSpec, hits: &[Hit], at: &[usize]) -> bool {
    spec.exclusions.iter().enumerate().any(|(x, ex)| {
        let Some(&a) = at.get(ex.after_step) else {
            return false;
        };
        let end = match at.get(ex.before_step) {
            Some(&b) => b,
            None => {
                let deadline = (ex.after_step + 1..=ex.before_step)
                    .fold(hits[a].at, |t, k| t.saturating_add(spec.within(k)));
                hits.partition_point(|h| h.at <= deadline)
            }
        };
        hits[a + 1..end.max(a + 1)]
            .iter()
            .any(|h| h.exclusions & (1 << x) != 0)
    })
}

/// Counts and step durations of one group.
#[derive(Debug)]
struct Tally {
    reached: Vec<i64>,
    seconds: Vec<Vec<i64>>,
    excluded: i64,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            reached: vec![0; n],
            seconds: vec![Vec::new(); n],
            excluded: 0,
        }
    }

    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Absent => {}
            Outcome::Excluded => self.excluded += 1,
            Outcome::Reached(times) => {
                for (k, t) in times.iter().enumerate() {
                    self.reached[k] += 1;
                    if k > 0 {
                        self.seconds[k].push(t.saturating_sub(times[k - 1]) / 1_000_000);
                    }
                }
            }
        }
    }

    fn figures(mut self, labels: &[String]) -> FunnelFigures {
        FunnelFigures {
            steps: labels
                .iter()
                .enumerate()
                .map(|(k, label)| StepFigures {
                    label: label.clone(),
                    customers: self.reached[k],
                    median_seconds_from_previous: lower_median(&mut self.seconds[k]),
                })
                .collect(),
            excluded: self.excluded,
        }
    }
}

/// The lower middle value (`percentile_disc(0.5)`).
fn lower_median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let mid = (v.len() - 1) / 2;
    Some(*v.select_nth_unstable(mid).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t: EventType) -> Step {
        Step {
            label: t.as_str().into(),
            event: EventMatch::of(t),
            within: None,
        }
    }

    fn spec(order: Order) -> FunnelSpec {
        FunnelSpec {
            steps: vec![
                step(EventType::Visit),
                step(EventType::Consult),
                step(EventType::Order),
            ],
            exclusions: Vec::new(),
            order,
            window: Duration::days(7),
            from: time::from_micros(0),
            to: time::from_micros(10 * DAY),
            filter: CustomerFilter::default(),
            breakdown: Breakdown::None,
        }
    }

    const DAY: i64 = 86_400_000_000;

    fn hits(events: &[(i64, u16)]) -> Vec<Hit> {
        events
            .iter()
            .map(|&(day, steps)| Hit {
                at: day * DAY,
                steps,
                exclusions: 0,
            })
            .collect()
    }

    fn days(o: Outcome) -> Vec<i64> {
        match o {
            Outcome::Reached(t) => t.iter().map(|t| t / DAY).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_later_attempt_counts_when_it_gets_further() {
        // the visit on day 1 is too long before the consult (window 7 days); the visit on
        // day 9 leads to the consult on day 10 and the order on day 11
        let h = hits(&[(1, 1), (9, 1), (10, 2), (11, 4)]);
        let s = spec(Order::InOrder);
        assert_eq!(days(attempt_best(&s, &h, 0, 10 * DAY)), [9, 10, 11]);
    }

    #[test]
    fn a_step_outside_its_window_is_not_reached() {
        let h = hits(&[(1, 1), (9, 2)]);
        let s = spec(Order::InOrder);
        assert_eq!(days(attempt_best(&s, &h, 0, 10 * DAY)), [1]);
    }

    #[test]
    fn in_order_needs_the_order_and_any_order_does_not() {
        let h = hits(&[(1, 1), (2, 4), (3, 2)]);
        assert_eq!(
            days(attempt_best(&spec(Order::InOrder), &h, 0, 10 * DAY)),
            [1, 3]
        );
        assert_eq!(
            days(attempt_best(&spec(Order::AnyOrder), &h, 0, 10 * DAY)),
            [1, 2, 3]
        );
    }

    #[test]
    fn entries_outside_the_range_do_not_count() {
        let h = hits(&[(11, 1), (12, 2)]);
        assert_eq!(
            attempt_best(&spec(Order::InOrder), &h, 0, 10 * DAY),
            Outcome::Absent
        );
    }

    #[test]
    fn an_exclusion_between_steps_voids_the_attempt() {
        let mut s = spec(Order::InOrder);
        s.exclusions.push(Exclusion {
            event: step(EventType::Refund).event,
            after_step: 0,
            before_step: 2,
        });
        let mut h = hits(&[(1, 1), (2, 0), (3, 2), (4, 4)]);
        h[1].exclusions = 1;
        assert_eq!(attempt_best(&s, &h, 0, 10 * DAY), Outcome::Excluded);
        // after the last step it does not
        let mut h = hits(&[(1, 1), (3, 2), (4, 4), (5, 0)]);
        h[3].exclusions = 1;
        assert_eq!(days(attempt_best(&s, &h, 0, 10 * DAY)), [1, 3, 4]);
    }

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(lower_median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(lower_median(&mut [5, 1, 3]), Some(3));
        assert_eq!(lower_median(&mut []), None);
    }
}
