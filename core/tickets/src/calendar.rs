//! Business calendars (工作日历) for ticket SLAs: the working windows of each weekday,
//! holidays and make-up working days (调休), in the tenant's time zone, and exact deadlines
//! on them with the SLA clock paused while a ticket waits.
//!
//! A calendar is written as TOML or JSON ([`CalendarSpec`]) and parsed into a
//! [`BusinessCalendar`], which only exists when valid:
//!
//! ```toml
//! time_zone = "Asia/Shanghai"
//! week = { mon = ["09:00-12:00", "13:30-18:00"], tue = ["09:00-18:00"] }
//! holidays = ["2026-10-01", "2026-10-02"]
//! working_days = [{ date = "2026-10-10", windows = ["09:00-18:00"] }]
//! ```
//!
//! # Semantics
//!
//! - A window is a half-open wall-clock interval `[start, end)` of one local date; `24:00`
//!   ends it at the next midnight. A date's windows are those of its `working_days` entry,
//!   else none when it is one of the `holidays`, else those of its weekday.
//! - A wall-clock time stands for the first instant at which the local clock reads it or
//!   later. An ambiguous time (the hour repeated when clocks go back) is its earlier
//!   instant; a time that does not exist (skipped when clocks go forward) is the instant
//!   the clocks jump, so a window loses the part that falls in the gap.
//! - A [`Pause`] is a half-open interval `[from, to)` during which the clock stops; pauses
//!   may overlap one another and working time or not, only the working time they cover
//!   counts. A pause that does not end after it starts is empty; `to = None` pauses until
//!   further notice.
//! - [`BusinessCalendar::add`] with a zero duration is `start` when the clock runs at
//!   `start`, else the next instant it starts running (the next opening, as Zendesk and
//!   Freshdesk do). A duration that runs out exactly at the end of a window ends there:
//!   Monday 09:00 plus 9 h on 09:00–18:00 is Monday 18:00, not Tuesday 09:00.
//! - The search gives up after [`GIVE_UP_AFTER_DAYS`] days in a row without working time.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Days in a row without working time after which a search gives up (about 3 years).
pub const GIVE_UP_AFTER_DAYS: u32 = 3 * 366;

/// The `week` keys, Monday first (the order of [`chrono::Weekday::num_days_from_monday`]).
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;

/// An interval during which the SLA clock stops, such as a ticket waiting on the customer:
/// `(from, to)`, with `to = None` while it lasts.
pub type Pause = (DateTime<Utc>, Option<DateTime<Utc>>);

/// A calendar as written in configuration, before it is checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// The IANA zone the windows are read in, e.g. `Asia/Shanghai`.
    pub time_zone: Tz,
    /// Windows per weekday (`mon` … `sun`), each `HH:MM-HH:MM`, sorted and not overlapping;
    /// a weekday left out has no working time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub week: BTreeMap<String, Vec<String>>,
    /// Dates (`YYYY-MM-DD`) without working time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    /// Dates worked with windows of their own (调休), over their weekday and any holiday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub working_days: Vec<WorkingDaySpec>,
}

/// A make-up working day (调休) as written in configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkingDaySpec {
    /// The date, `YYYY-MM-DD`.
    pub date: String,
    /// Its windows, `HH:MM-HH:MM`, sorted and not overlapping; at least one.
    pub windows: Vec<String>,
}

/// Why a [`CalendarSpec`] was refused; each names the field at fault (`week.mon[1]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A `week` key that is not a weekday.
    #[error("{path}: `{value}` is not a weekday (mon, tue, wed, thu, fri, sat or sun)")]
    UnknownWeekday {
        /// Where, e.g. `week.monday`.
        path: String,
        /// The key.
        value: String,
    },
    /// A window not written `HH:MM-HH:MM`.
    #[error("{path}: `{value}` is not a window HH:MM-HH:MM (00:00 to 24:00)")]
    BadWindow {
        /// Where, e.g. `week.mon[1]`.
        path: String,
        /// The window as written.
        value: String,
    },
    /// A window that does not end after it starts.
    #[error("{path}: window `{value}` does not end after it starts")]
    EmptyWindow {
        /// Where, e.g. `week.mon[1]`.
        path: String,
        /// The window as written.
        value: String,
    },
    /// A window that starts before the previous one of its day ends.
    #[error("{path}: window `{value}` starts before the previous window ends")]
    Overlap {
        /// Where, e.g. `week.mon[1]`.
        path: String,
        /// The window as written.
        value: String,
    },
    /// A date not written `YYYY-MM-DD`.
    #[error("{path}: `{value}` is not a date YYYY-MM-DD")]
    BadDate {
        /// Where, e.g. `holidays[3]`.
        path: String,
        /// The date as written.
        value: String,
    },
    /// A date listed twice in `holidays` or in `working_days`.
    #[error("{path}: {value} is listed twice")]
    DuplicateDate {
        /// Where the second mention is, e.g. `holidays[3]`.
        path: String,
        /// The date.
        value: String,
    },
    /// A working day without windows.
    #[error("{path}: a working day needs at least one window")]
    NoWindows {
        /// Where, e.g. `working_days[0].windows`.
        path: String,
    },
    /// No window anywhere in the week nor on any working day.
    #[error("week: no working time in the week nor on any working day")]
    NoWorkingTime,
}

impl CalendarError {
    /// The path of the field at fault (`week.mon[1]`, `holidays[3]`).
    pub fn path(&self) -> &str {
        match self {
            Self::UnknownWeekday { path, .. }
            | Self::BadWindow { path, .. }
            | Self::EmptyWindow { path, .. }
            | Self::Overlap { path, .. }
            | Self::BadDate { path, .. }
            | Self::DuplicateDate { path, .. }
            | Self::NoWindows { path } => path,
            Self::NoWorkingTime => "week",
        }
    }
}

impl CalendarSpec {
    /// Checks the spec as [`BusinessCalendar::new`] does, reporting the first problem.
    pub fn check(&self) -> Result<(), CalendarError> {
        Rules::parse(self).map(drop)
    }
}

/// A checked business calendar, ready to compute deadlines.
///
/// It (de)serializes as its [`CalendarSpec`], and deserializing checks it.
///
/// ```
/// use chrono::{Duration, TimeZone};
/// use shoal_tickets::calendar::BusinessCalendar;
///
/// let calendar: BusinessCalendar = serde_json::from_str(r#"{
///     "time_zone": "Asia/Shanghai",
///     "week": { "mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
///               "thu": ["09:00-18:00"], "fri": ["09:00-18:00"] }
/// }"#).unwrap();
/// let tz = calendar.time_zone();
/// // Opened Friday 17:30 with one hour to the first response: due Monday 09:30.
/// let opened = tz.with_ymd_and_hms(2026, 12, 4, 17, 30, 0).unwrap().to_utc();
/// let due = calendar.add(opened, Duration::hours(1), &[]).unwrap();
/// assert_eq!(due, tz.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap().to_utc());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct BusinessCalendar {
    spec: CalendarSpec,
    rules: Rules,
}

impl TryFrom<CalendarSpec> for BusinessCalendar {
    type Error = CalendarError;

    fn try_from(spec: CalendarSpec) -> Result<Self, CalendarError> {
        Self::new(spec)
    }
}

impl From<BusinessCalendar> for CalendarSpec {
    fn from(calendar: BusinessCalendar) -> Self {
        calendar.spec
    }
}

impl BusinessCalendar {
    /// Checks `spec` and builds the calendar: windows `HH:MM-HH:MM` with start before end,
    /// sorted and not overlapping within a day; weekday keys `mon` … `sun`; dates
    /// `YYYY-MM-DD`, none listed twice; and some working time in the week or on a working
    /// day.
    pub fn new(spec: CalendarSpec) -> Result<Self, CalendarError> {
        let rules = Rules::parse(&spec)?;
        Ok(Self { spec, rules })
    }

    /// Every hour of every day (24×7), for SLAs without a calendar.
    pub fn always(time_zone: Tz) -> Self {
        let whole_day = Window {
            start: 0,
            end: MINUTES_PER_DAY,
        };
        let spec = CalendarSpec {
            time_zone,
            week: WEEKDAYS
                .iter()
                .map(|day| (day.to_string(), vec!["00:00-24:00".to_string()]))
                .collect(),
            holidays: Vec::new(),
            working_days: Vec::new(),
        };
        let rules = Rules {
            week: std::array::from_fn(|_| vec![whole_day]),
            holidays: BTreeSet::new(),
            working_days: BTreeMap::new(),
        };
        Self { spec, rules }
    }

    /// The zone the windows are read in.
    pub fn time_zone(&self) -> Tz {
        self.spec.time_zone
    }

    /// The calendar as written.
    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    /// The instant at which `business` working time has elapsed after `start`, counting only
    /// time inside working windows and outside `pauses`.
    ///
    /// A zero (or negative) duration gives `start` when the clock runs then, else the next
    /// instant it runs. `None` when the clock never gets there: an open pause begins
    /// before the time has elapsed, or the calendar has no working time for
    /// [`GIVE_UP_AFTER_DAYS`] days.
    pub fn add(
        &self,
        start: DateTime<Utc>,
        business: Duration,
        pauses: &[Pause],
    ) -> Option<DateTime<Utc>> {
        let mut left = business.max(Duration::zero());
        for (from, to) in self.running(start, pauses) {
            let length = to - from;
            if left <= length {
                return Some(from + left);
            }
            left -= length;
        }
        None
    }

    /// The working time elapsed between `from` and `to` outside `pauses` (zero when `to` is
    /// not after `from`): the SLA clock's "x of y used".
    pub fn business_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        pauses: &[Pause],
    ) -> Duration {
        let mut total = Duration::zero();
        for (start, end) in self.running(from, pauses) {
            if start >= to {
                break;
            }
            total += end.min(to) - start;
        }
        total
    }

    /// The intervals from `from` on during which the clock runs, in order.
    fn running<'a>(&'a self, from: DateTime<Utc>, pauses: &[Pause]) -> Running<'a> {
        Running {
            working: WorkingTime::new(self, from),
            pauses: merge(pauses),
            next_pause: 0,
            rest: None,
            stopped: false,
        }
    }
}

/// One window of a day, in minutes after local midnight (`end` up to 1440).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    start: u32,
    end: u32,
}

/// A spec parsed into what the computations need.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rules {
    /// Windows per weekday, Monday first.
    week: [Vec<Window>; 7],
    holidays: BTreeSet<NaiveDate>,
    working_days: BTreeMap<NaiveDate, Vec<Window>>,
}

impl Rules {
    fn parse(spec: &CalendarSpec) -> Result<Self, CalendarError> {
        let mut week: [Vec<Window>; 7] = Default::default();
        for (key, windows) in &spec.week {
            let path = format!("week.{key}");
            let day = WEEKDAYS.iter().position(|d| d == key).ok_or_else(|| {
                CalendarError::UnknownWeekday {
                    path: path.clone(),
                    value: key.clone(),
                }
            })?;
            week[day] = parse_windows(&path, windows)?;
        }
        let mut holidays = BTreeSet::new();
        for (i, date) in spec.holidays.iter().enumerate() {
            let path = format!("holidays[{i}]");
            if !holidays.insert(parse_date(&path, date)?) {
                return Err(CalendarError::DuplicateDate {
                    path,
                    value: date.clone(),
                });
            }
        }
        let mut working_days = BTreeMap::new();
        for (i, day) in spec.working_days.iter().enumerate() {
            let path = format!("working_days[{i}]");
            let date = parse_date(&format!("{path}.date"), &day.date)?;
            let windows = parse_windows(&format!("{path}.windows"), &day.windows)?;
            if windows.is_empty() {
                return Err(CalendarError::NoWindows {
                    path: format!("{path}.windows"),
                });
            }
            if working_days.insert(date, windows).is_some() {
                return Err(CalendarError::DuplicateDate {
                    path: format!("{path}.date"),
                    value: day.date.clone(),
                });
            }
        }
        if week.iter().all(Vec::is_empty) && working_days.is_empty() {
            return Err(CalendarError::NoWorkingTime);
        }
        Ok(Self {
            week,
            holidays,
            working_days,
        })
    }

    fn windows_on(&self, date: NaiveDate) -> &[Window] {
        if let Some(windows) = self.working_days.get(&date) {
            windows
        } else if self.holidays.contains(&date) {
            &[]
        } else {
            &self.week[date.weekday().num_days_from_monday() as usize]
        }
    }

    /// Whether no date after `date` has working time.
    fn ends_after(&self, date: NaiveDate) -> bool {
        self.week.iter().all(Vec::is_empty)
            && self
                .working_days
                .range((Bound::Excluded(date), Bound::Unbounded))
                .next()
                .is_none()
    }
}

fn parse_windows(path: &str, windows: &[String]) -> Result<Vec<Window>, CalendarError> {
    let mut parsed: Vec<Window> = Vec::with_capacity(windows.len());
    for (i, text) in windows.iter().enumerate() {
        let (path, value) = (format!("{path}[{i}]"), text.clone());
        let Some(window) = parse_window(text) else {
            return Err(CalendarError::BadWindow { path, value });
        };
        if window.start >= window.end {
            return Err(CalendarError::EmptyWindow { path, value });
        }
        if parsed.last().is_some_and(|last| window.start < last.end) {
            return Err(CalendarError::Overlap { path, value });
        }
        parsed.push(window);
    }
    Ok(parsed)
}

/// `HH:MM-HH:MM` (spaces around the dash allowed).
fn parse_window(text: &str) -> Option<Window> {
    let (start, end) = text.split_once('-')?;
    Some(Window {
        start: parse_time(start.trim())?,
        end: parse_time(end.trim())?,
    })
}

/// `HH:MM` from `00:00` to `24:00`, in minutes after midnight.
fn parse_time(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

fn parse_date(path: &str, text: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| CalendarError::BadDate {
        path: path.to_string(),
        value: text.to_string(),
    })
}

/// The first instant at which the clock in `tz` reads `date` at `minute` or later: the
/// earlier of two readings when clocks go back, the jump when the time is skipped.
fn first_instant(tz: Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let local = date
        .and_time(NaiveTime::MIN)
        .checked_add_signed(Duration::minutes(minute.into()))?;
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(at) => Some(at.to_utc()),
        MappedLocalTime::Ambiguous(a, b) => Some(a.min(b).to_utc()),
        MappedLocalTime::None => gap_end(tz, local),
    }
}

/// The instant the clocks jump over `local`, a time that does not exist in `tz`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let offset_at =
        |utc: NaiveDateTime| i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc());
    let reads = |second: i64| {
        DateTime::from_timestamp(second, 0)
            .map(|utc| tz.from_utc_datetime(&utc.naive_utc()).naive_local())
    };
    let day = Duration::days(1);
    let (before, after) = (
        offset_at(local.checked_sub_signed(day)?),
        offset_at(local.checked_add_signed(day)?),
    );
    // Read with the offset from after the jump, `local` is an instant before it; with the
    // offset from before, one after it. The jump lies between: find its second.
    let seconds = local.and_utc().timestamp();
    let (mut early, mut late) = (seconds - after, seconds - before);
    if early >= late || reads(early)? >= local || reads(late)? < local {
        // Not a plain jump forward; the offset from before the gap is a sane answer.
        return DateTime::from_timestamp(late, 0);
    }
    while late - early > 1 {
        let middle = early + (late - early) / 2;
        if reads(middle)? >= local {
            late = middle;
        } else {
            early = middle;
        }
    }
    DateTime::from_timestamp(late, 0)
}

/// The working intervals from `from` on, in order, each non-empty; jumps window to window.
struct WorkingTime<'a> {
    calendar: &'a BusinessCalendar,
    from: DateTime<Utc>,
    /// The date whose windows are being walked; `None` once the search is over.
    date: Option<NaiveDate>,
    windows: &'a [Window],
    next_window: usize,
    idle_days: u32,
}

impl<'a> WorkingTime<'a> {
    fn new(calendar: &'a BusinessCalendar, from: DateTime<Utc>) -> Self {
        let local = from.with_timezone(&calendar.spec.time_zone).date_naive();
        // The day before too: around a jump back its windows may reach past `from`.
        let date = local.pred_opt().unwrap_or(local);
        Self {
            calendar,
            from,
            date: Some(date),
            windows: calendar.rules.windows_on(date),
            next_window: 0,
            idle_days: 0,
        }
    }
}

impl Iterator for WorkingTime<'_> {
    type Item = (DateTime<Utc>, DateTime<Utc>);

    fn next(&mut self) -> Option<Self::Item> {
        let tz = self.calendar.spec.time_zone;
        let rules = &self.calendar.rules;
        loop {
            let date = self.date?;
            if let Some(window) = self.windows.get(self.next_window) {
                self.next_window += 1;
                let start = first_instant(tz, date, window.start)?.max(self.from);
                let end = first_instant(tz, date, window.end)?;
                if start < end {
                    self.idle_days = 0;
                    return Some((start, end));
                }
                continue;
            }
            self.idle_days += 1;
            self.date = date
                .succ_opt()
                .filter(|_| self.idle_days <= GIVE_UP_AFTER_DAYS && !rules.ends_after(date));
            self.windows = self.date.map_or(&[], |date| rules.windows_on(date));
            self.next_window = 0;
        }
    }
}

/// Pauses sorted by start, overlapping ones merged, empty ones dropped.
fn merge(pauses: &[Pause]) -> Vec<Pause> {
    let mut sorted: Vec<Pause> = pauses
        .iter()
        .copied()
        .filter(|&(from, to)| to.is_none_or(|to| from < to))
        .collect();
    sorted.sort_by_key(|&(from, _)| from);
    let mut merged: Vec<Pause> = Vec::with_capacity(sorted.len());
    for (from, to) in sorted {
        match merged.last_mut() {
            Some(last) if last.1.is_none_or(|end| from <= end) => {
                last.1 = last.1.zip(to).map(|(a, b)| a.max(b));
            }
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// The intervals during which the clock runs: working time minus pauses.
struct Running<'a> {
    working: WorkingTime<'a>,
    /// Merged, sorted by start.
    pauses: Vec<Pause>,
    next_pause: usize,
    /// What is left of a working interval cut by a pause.
    rest: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// An open pause has begun: the clock never runs again.
    stopped: bool,
}

impl Iterator for Running<'_> {
    type Item = (DateTime<Utc>, DateTime<Utc>);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.stopped {
            let (start, end) = match self.rest.take() {
                Some(rest) => rest,
                None => self.working.next()?,
            };
            while self
                .pauses
                .get(self.next_pause)
                .is_some_and(|&(_, to)| to.is_some_and(|to| to <= start))
            {
                self.next_pause += 1;
            }
            let Some(&(from, to)) = self.pauses.get(self.next_pause) else {
                return Some((start, end));
            };
            if from >= end {
                return Some((start, end));
            }
            if from > start {
                self.rest = Some((from, end));
                return Some((start, from));
            }
            match to {
                None => self.stopped = true,
                Some(to) if to < end => self.rest = Some((to, end)),
                Some(_) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn calendar(spec: serde_json::Value) -> BusinessCalendar {
        serde_json::from_value(spec).unwrap()
    }

    /// Monday to Friday, 09:00–18:00, Asia/Shanghai.
    fn nine_to_six() -> BusinessCalendar {
        let day = ["09:00-18:00"];
        calendar(json!({
            "time_zone": "Asia/Shanghai",
            "week": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
        }))
    }

    /// `2026-12-04 17:30` read in the calendar's zone.
    fn at(calendar: &BusinessCalendar, local: &str) -> DateTime<Utc> {
        let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        calendar
            .time_zone()
            .from_local_datetime(&local)
            .earliest()
            .unwrap()
            .to_utc()
    }

    fn show(calendar: &BusinessCalendar, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&calendar.time_zone());
        let format = if local.second() == 0 {
            "%a %Y-%m-%d %H:%M"
        } else {
            "%a %Y-%m-%d %H:%M:%S"
        };
        local.format(format).to_string()
    }

    fn pause(calendar: &BusinessCalendar, from: &str, to: Option<&str>) -> Pause {
        (at(calendar, from), to.map(|to| at(calendar, to)))
    }

    /// The deadline of `business` from `start` (local times), shown with its weekday.
    fn due(
        calendar: &BusinessCalendar,
        start: &str,
        business: Duration,
        pauses: &[Pause],
    ) -> Option<String> {
        let due = calendar.add(at(calendar, start), business, pauses)?;
        Some(show(calendar, due))
    }

    #[test]
    fn friday_evening_ticket_is_due_monday_morning() {
        let cal = nine_to_six();
        assert_eq!(
            due(&cal, "2026-12-04 17:30", Duration::hours(1), &[]).as_deref(),
            Some("Mon 2026-12-07 09:30")
        );
    }

    #[test]
    fn time_runs_out_at_the_end_of_a_window_not_at_the_next_opening() {
        let cal = nine_to_six();
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(9), &[]).as_deref(),
            Some("Mon 2026-12-07 18:00")
        );
        assert_eq!(
            due(
                &cal,
                "2026-12-07 09:00",
                Duration::hours(9) + Duration::seconds(1),
                &[]
            )
            .as_deref(),
            Some("Tue 2026-12-08 09:00:01")
        );
    }

    #[test]
    fn zero_duration_is_the_start_within_hours_else_the_next_opening() {
        let cal = nine_to_six();
        let zero = Duration::zero();
        assert_eq!(
            due(&cal, "2026-12-07 10:15", zero, &[]).as_deref(),
            Some("Mon 2026-12-07 10:15")
        );
        assert_eq!(
            due(&cal, "2026-12-07 18:00", zero, &[]).as_deref(),
            Some("Tue 2026-12-08 09:00")
        );
        assert_eq!(
            due(&cal, "2026-12-05 12:00", zero, &[]).as_deref(),
            Some("Mon 2026-12-07 09:00")
        );
        assert_eq!(
            due(&cal, "2026-12-07 10:15", Duration::minutes(-5), &[]).as_deref(),
            Some("Mon 2026-12-07 10:15"),
            "a negative duration counts as zero"
        );
    }

    #[test]
    fn lunch_break_does_not_count() {
        let day = ["09:00-12:00", "13:30-18:00"];
        let cal = calendar(json!({
            "time_zone": "Asia/Shanghai",
            "week": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
        }));
        assert_eq!(
            due(&cal, "2026-12-07 11:30", Duration::hours(1), &[]).as_deref(),
            Some("Mon 2026-12-07 14:00")
        );
        assert_eq!(
            due(&cal, "2026-12-07 12:15", Duration::minutes(30), &[]).as_deref(),
            Some("Mon 2026-12-07 14:00")
        );
        let morning = cal.business_between(
            at(&cal, "2026-12-07 08:00"),
            at(&cal, "2026-12-07 14:00"),
            &[],
        );
        assert_eq!(morning, Duration::minutes(3 * 60 + 30));
    }

    /// National Day 2026: 10-01 to 10-07 off, Saturday 10-10 worked (调休).
    fn national_day() -> BusinessCalendar {
        let day = ["09:00-18:00"];
        calendar(json!({
            "time_zone": "Asia/Shanghai",
            "week": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
            "holidays": ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04",
                         "2026-10-05", "2026-10-06", "2026-10-07"],
            "working_days": [{ "date": "2026-10-10", "windows": ["09:00-18:00"] }],
        }))
    }

    #[test]
    fn holidays_are_skipped() {
        let cal = national_day();
        assert_eq!(
            due(&cal, "2026-09-30 17:00", Duration::hours(2), &[]).as_deref(),
            Some("Thu 2026-10-08 10:00")
        );
    }

    #[test]
    fn a_make_up_saturday_counts() {
        let cal = national_day();
        assert_eq!(
            due(&cal, "2026-10-09 17:00", Duration::hours(2), &[]).as_deref(),
            Some("Sat 2026-10-10 10:00")
        );
        assert_eq!(
            due(&cal, "2026-10-17 10:00", Duration::zero(), &[]).as_deref(),
            Some("Mon 2026-10-19 09:00"),
            "other Saturdays stay off"
        );
    }

    #[test]
    fn a_working_day_overrides_a_holiday_with_its_own_windows() {
        let cal = calendar(json!({
            "time_zone": "Asia/Shanghai",
            "week": { "mon": ["09:00-18:00"] },
            "holidays": ["2026-12-07"],
            "working_days": [{ "date": "2026-12-07", "windows": ["14:00-15:00"] }],
        }));
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::minutes(90), &[]).as_deref(),
            Some("Mon 2026-12-14 09:30")
        );
    }

    #[test]
    fn waiting_on_the_customer_extends_the_deadline_by_the_paused_working_time() {
        let cal = nine_to_six();
        let waiting = [pause(&cal, "2026-12-07 10:00", Some("2026-12-07 11:30"))];
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(4), &[]).as_deref(),
            Some("Mon 2026-12-07 13:00")
        );
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(4), &waiting).as_deref(),
            Some("Mon 2026-12-07 14:30")
        );
        // Paused 17:00 Monday to 10:00 Tuesday: an hour of Monday and an hour of Tuesday.
        let overnight = [pause(&cal, "2026-12-07 17:00", Some("2026-12-08 10:00"))];
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(9), &overnight).as_deref(),
            Some("Tue 2026-12-08 11:00")
        );
        let used = cal.business_between(
            at(&cal, "2026-12-07 09:00"),
            at(&cal, "2026-12-08 11:00"),
            &overnight,
        );
        assert_eq!(used, Duration::hours(9));
    }

    #[test]
    fn overlapping_and_backwards_pauses() {
        let cal = nine_to_six();
        let pauses = [
            pause(&cal, "2026-12-07 10:30", Some("2026-12-07 11:30")),
            pause(&cal, "2026-12-07 10:00", Some("2026-12-07 11:00")),
            pause(&cal, "2026-12-07 16:00", Some("2026-12-07 15:00")), // ends before it starts: empty
        ];
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(4), &pauses).as_deref(),
            Some("Mon 2026-12-07 14:30")
        );
    }

    #[test]
    fn a_pause_outside_working_hours_changes_nothing() {
        let cal = nine_to_six();
        let weekend = [pause(&cal, "2026-12-05 08:00", Some("2026-12-06 20:00"))];
        let night = [pause(&cal, "2026-12-04 18:00", Some("2026-12-07 09:00"))];
        for pauses in [&weekend[..], &night[..]] {
            assert_eq!(
                due(&cal, "2026-12-04 17:30", Duration::hours(1), pauses).as_deref(),
                Some("Mon 2026-12-07 09:30")
            );
        }
    }

    #[test]
    fn an_open_pause_stops_the_clock_until_further_notice() {
        let cal = nine_to_six();
        let waiting = [pause(&cal, "2026-12-07 10:00", None)];
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(4), &waiting),
            None
        );
        assert_eq!(
            due(&cal, "2026-12-07 10:30", Duration::zero(), &waiting),
            None
        );
        assert_eq!(
            due(&cal, "2026-12-07 09:00", Duration::hours(1), &waiting).as_deref(),
            Some("Mon 2026-12-07 10:00"),
            "due before the pause began"
        );
        let used = cal.business_between(
            at(&cal, "2026-12-07 09:00"),
            at(&cal, "2026-12-09 09:00"),
            &waiting,
        );
        assert_eq!(used, Duration::hours(1));
    }

    #[test]
    fn clock_used_for_about_to_breach() {
        let cal = nine_to_six();
        let (opened, target) = (at(&cal, "2026-12-04 17:30"), Duration::hours(1));
        let used = cal.business_between(opened, at(&cal, "2026-12-07 09:18"), &[]);
        assert_eq!(used, Duration::minutes(48));
        assert_eq!(used * 5, target * 4, "80 % used");
        assert_eq!(
            cal.business_between(opened, opened - Duration::hours(1), &[]),
            Duration::zero()
        );
    }

    #[test]
    fn always_counts_every_second() {
        let cal = BusinessCalendar::always(chrono_tz::Asia::Shanghai);
        let start = at(&cal, "2026-12-05 23:59") + Duration::seconds(30);
        assert_eq!(
            cal.add(start, Duration::hours(49), &[]),
            Some(start + Duration::hours(49))
        );
        assert_eq!(BusinessCalendar::new(cal.spec().clone()), Ok(cal));
    }

    #[test]
    fn gives_up_when_the_calendar_has_no_more_working_time() {
        let cal = calendar(json!({
            "time_zone": "Asia/Shanghai",
            "working_days": [{ "date": "2026-12-05", "windows": ["09:00-10:00"] }],
        }));
        assert_eq!(
            due(&cal, "2026-12-01 00:00", Duration::minutes(30), &[]).as_deref(),
            Some("Sat 2026-12-05 09:30")
        );
        assert_eq!(due(&cal, "2026-12-01 00:00", Duration::hours(2), &[]), None);
        // Holidays for more than three years in a row end the search too.
        let mut spec = nine_to_six().spec().clone();
        let first = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        spec.holidays = first
            .iter_days()
            .take(4 * 366)
            .map(|d| d.to_string())
            .collect();
        let cal = BusinessCalendar::new(spec).unwrap();
        assert_eq!(due(&cal, "2026-12-31 17:00", Duration::hours(2), &[]), None);
    }

    fn new_york(week: serde_json::Value) -> BusinessCalendar {
        calendar(json!({ "time_zone": "America/New_York", "week": week }))
    }

    #[test]
    fn clocks_going_forward_shorten_the_window() {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT.
        let cal = new_york(json!({ "sun": ["01:00-04:00"] }));
        let (sat, mon) = (at(&cal, "2026-03-07 12:00"), at(&cal, "2026-03-09 12:00"));
        assert_eq!(cal.business_between(sat, mon, &[]), Duration::hours(2));
        assert_eq!(
            due(&cal, "2026-03-08 00:00", Duration::minutes(90), &[]).as_deref(),
            Some("Sun 2026-03-08 03:30")
        );
        // A window starting in the gap starts at the jump; one inside the gap is empty.
        let cal = new_york(json!({ "sun": ["02:30-04:00"] }));
        assert_eq!(cal.business_between(sat, mon, &[]), Duration::hours(1));
        let cal = new_york(json!({ "sun": ["02:15-02:45"] }));
        assert_eq!(cal.business_between(sat, mon, &[]), Duration::zero());
        assert_eq!(
            due(&cal, "2026-03-08 00:00", Duration::zero(), &[]).as_deref(),
            Some("Sun 2026-03-15 02:15")
        );
    }

    #[test]
    fn clocks_going_back_lengthen_the_window() {
        // 2026-11-01 02:00 EDT goes back to 01:00 EST; 01:00 is read the first time.
        let cal = new_york(json!({ "sun": ["01:00-04:00"] }));
        let (sat, mon) = (at(&cal, "2026-10-31 12:00"), at(&cal, "2026-11-02 12:00"));
        assert_eq!(cal.business_between(sat, mon, &[]), Duration::hours(4));
        let start = at(&cal, "2026-11-01 00:00");
        let due = cal.add(start, Duration::hours(2), &[]).unwrap();
        assert_eq!(
            due - start,
            Duration::hours(3),
            "01:00 EDT plus two hours is 01:00 EST"
        );
        let cal = new_york(json!({ "sun": ["01:15-01:45"] }));
        assert_eq!(cal.business_between(sat, mon, &[]), Duration::minutes(30));
    }

    #[test]
    fn days_around_transitions_have_23_and_25_hours() {
        let cal = BusinessCalendar::always(chrono_tz::Europe::Berlin);
        let length = |day: &str, next: &str| {
            cal.business_between(
                at(&cal, &format!("{day} 00:00")),
                at(&cal, &format!("{next} 00:00")),
                &[],
            )
        };
        assert_eq!(length("2026-03-29", "2026-03-30"), Duration::hours(23));
        assert_eq!(length("2026-10-25", "2026-10-26"), Duration::hours(25));
    }

    #[test]
    fn gap_end_is_the_instant_of_the_jump() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let jump = first_instant(chrono_tz::America::New_York, date, 2 * 60 + 30).unwrap();
        assert_eq!(jump.to_rfc3339(), "2026-03-08T07:00:00+00:00");
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let jump = first_instant(chrono_tz::Europe::Berlin, date, 2 * 60).unwrap();
        assert_eq!(jump.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    }

    /// Checks `spec` and expects the error shown.
    fn check(spec: serde_json::Value, expected: &str) {
        let spec: CalendarSpec = serde_json::from_value(spec).unwrap();
        assert_eq!(spec.check().unwrap_err().to_string(), expected);
    }

    #[test]
    fn problems_are_named_by_their_path() {
        let tz = "Asia/Shanghai";
        check(
            json!({ "time_zone": tz, "week": { "mon": ["09:00-12:30", "12:00-18:00"] } }),
            "week.mon[1]: window `12:00-18:00` starts before the previous window ends",
        );
        check(
            json!({ "time_zone": tz, "week": { "tue": ["9-18"] } }),
            "week.tue[0]: `9-18` is not a window HH:MM-HH:MM (00:00 to 24:00)",
        );
        check(
            json!({ "time_zone": tz, "week": { "wed": ["09:00-18:00", "24:00-24:00"] } }),
            "week.wed[1]: window `24:00-24:00` does not end after it starts",
        );
        check(
            json!({ "time_zone": tz, "week": { "thu": ["18:00-09:00"] } }),
            "week.thu[0]: window `18:00-09:00` does not end after it starts",
        );
        check(
            json!({ "time_zone": tz, "week": { "monday": ["09:00-18:00"] } }),
            "week.monday: `monday` is not a weekday (mon, tue, wed, thu, fri, sat or sun)",
        );
        check(
            json!({ "time_zone": tz, "week": { "fri": ["09:00-18:00"] },
                    "holidays": ["2026-10-01", "2026-02-30"] }),
            "holidays[1]: `2026-02-30` is not a date YYYY-MM-DD",
        );
        check(
            json!({ "time_zone": tz, "week": { "fri": ["09:00-18:00"] },
                    "holidays": ["2026-10-01", "2026-10-02", "2026-10-01"] }),
            "holidays[2]: 2026-10-01 is listed twice",
        );
        check(
            json!({ "time_zone": tz, "working_days": [{ "date": "2026-10-10", "windows": ["09:00-24:01"] }] }),
            "working_days[0].windows[0]: `09:00-24:01` is not a window HH:MM-HH:MM (00:00 to 24:00)",
        );
        check(
            json!({ "time_zone": tz, "working_days": [{ "date": "2026-10-10", "windows": [] }] }),
            "working_days[0].windows: a working day needs at least one window",
        );
        check(
            json!({ "time_zone": tz, "working_days": [
                { "date": "2026-10-10", "windows": ["09:00-18:00"] },
                { "date": "2026-10-10", "windows": ["09:00-12:00"] },
            ] }),
            "working_days[1].date: 2026-10-10 is listed twice",
        );
        check(
            json!({ "time_zone": tz, "week": { "sat": [] }, "holidays": ["2026-10-01"] }),
            "week: no working time in the week nor on any working day",
        );
        let error = CalendarError::Overlap {
            path: "week.mon[1]".into(),
            value: String::new(),
        };
        assert_eq!(error.path(), "week.mon[1]");
    }

    #[test]
    fn deserializing_checks_and_refuses_unknown_fields() {
        let error = serde_json::from_value::<BusinessCalendar>(json!({
            "time_zone": "Asia/Shanghai", "week": { "mon": ["9:00-18:00"] },
        }))
        .unwrap_err();
        assert!(error.to_string().starts_with("week.mon[0]: "), "{error}");
        let error = serde_json::from_value::<BusinessCalendar>(json!({
            "time_zone": "Asia/Shanghai", "weeks": { "mon": ["09:00-18:00"] },
        }))
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `weeks`"),
            "{error}"
        );
        let error = serde_json::from_value::<BusinessCalendar>(json!({
            "time_zone": "Mars/Olympus", "week": { "mon": ["09:00-18:00"] },
        }));
        assert!(error.is_err());
        let cal = national_day();
        let again: BusinessCalendar =
            serde_json::from_value(serde_json::to_value(&cal).unwrap()).unwrap();
        assert_eq!(again, cal);
    }

    // Property: against a naive reference that walks minute by minute (Asia/Shanghai has
    // no DST, so every local day has 1440 minutes).

    /// Monday 2026-09-28 00:00 in Shanghai: minute 0 of the generated cases.
    const BASE: (i32, u32, u32) = (2026, 9, 28);
    /// Days the generated holidays and working days fall in.
    const SPECIAL_DAYS: u32 = 28;
    /// Minutes the reference walks before it gives up.
    const HORIZON: u32 = 70 * MINUTES_PER_DAY;

    #[derive(Clone, Debug)]
    struct Case {
        week: [Vec<(u32, u32)>; 7],
        holidays: BTreeSet<u32>,
        working_days: BTreeMap<u32, Vec<(u32, u32)>>,
        start: u32,
        business: u32,
        until: u32,
        /// From, and minutes later (negative: ends before it starts) or open.
        pauses: Vec<(u32, Option<i32>)>,
        /// Picks a duration that runs out exactly where the clock stops.
        boundary: prop::sample::Index,
    }

    /// Sorted windows at minute granularity, possibly touching, possibly none.
    fn windows() -> impl Strategy<Value = Vec<(u32, u32)>> {
        let minute =
            prop_oneof![4 => 0..=MINUTES_PER_DAY, 1 => Just(0), 1 => Just(MINUTES_PER_DAY)];
        prop::collection::vec(minute, 0..=6).prop_map(|mut minutes| {
            minutes.sort_unstable();
            minutes
                .chunks_exact(2)
                .map(|pair| (pair[0], pair[1]))
                .filter(|(start, end)| start < end)
                .collect()
        })
    }

    fn case() -> impl Strategy<Value = Case> {
        let week = [
            windows(),
            windows(),
            windows(),
            windows(),
            windows(),
            windows(),
            windows(),
        ];
        let working_day = windows().prop_map(|w| if w.is_empty() { vec![(540, 1080)] } else { w });
        let pause = (
            0..35 * MINUTES_PER_DAY,
            prop::option::weighted(0.9, -60..=3000i32),
        );
        (
            week,
            prop::collection::btree_set(0..SPECIAL_DAYS, 0..8),
            prop::collection::btree_map(0..SPECIAL_DAYS, working_day, 0..4),
            0..SPECIAL_DAYS * MINUTES_PER_DAY,
            prop_oneof![1 => Just(0u32), 4 => 0..=3 * MINUTES_PER_DAY],
            0..HORIZON,
            prop::collection::vec(pause, 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(
                |(week, holidays, working_days, start, business, until, pauses, boundary)| Case {
                    week,
                    holidays,
                    working_days,
                    start,
                    business,
                    until,
                    pauses,
                    boundary,
                },
            )
    }

    fn hhmm(minute: u32) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }

    impl Case {
        fn date(day: u32) -> NaiveDate {
            let (y, m, d) = BASE;
            NaiveDate::from_ymd_opt(y, m, d).unwrap() + Duration::days(day.into())
        }

        fn spec(&self) -> CalendarSpec {
            let texts = |windows: &[(u32, u32)]| {
                windows
                    .iter()
                    .map(|&(s, e)| format!("{}-{}", hhmm(s), hhmm(e)))
                    .collect()
            };
            CalendarSpec {
                time_zone: chrono_tz::Asia::Shanghai,
                week: WEEKDAYS
                    .iter()
                    .zip(&self.week)
                    .map(|(d, w)| (d.to_string(), texts(w)))
                    .collect(),
                holidays: self
                    .holidays
                    .iter()
                    .map(|&d| Self::date(d).to_string())
                    .collect(),
                working_days: self
                    .working_days
                    .iter()
                    .map(|(&d, w)| WorkingDaySpec {
                        date: Self::date(d).to_string(),
                        windows: texts(w),
                    })
                    .collect(),
            }
        }

        fn instant(minute: u32) -> DateTime<Utc> {
            let (y, m, d) = BASE;
            chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(y, m, d, 0, 0, 0)
                .unwrap()
                .to_utc()
                + Duration::minutes(minute.into())
        }

        fn pauses(&self) -> Vec<Pause> {
            self.pauses
                .iter()
                .map(|&(from, length)| {
                    let from = Self::instant(from);
                    (from, length.map(|l| from + Duration::minutes(l.into())))
                })
                .collect()
        }

        /// Whether the clock runs during `minute`, read the slow way.
        fn runs(&self, minute: u32) -> bool {
            let (day, of_day) = (minute / MINUTES_PER_DAY, minute % MINUTES_PER_DAY);
            let windows = match self.working_days.get(&day) {
                Some(windows) => &windows[..],
                None if self.holidays.contains(&day) => &[],
                None => &self.week[(day % 7) as usize][..],
            };
            let working = windows.iter().any(|&(s, e)| s <= of_day && of_day < e);
            let paused = self.pauses.iter().any(|&(from, length)| match length {
                None => minute >= from,
                Some(length) => {
                    i64::from(from) <= i64::from(minute)
                        && i64::from(minute) < i64::from(from) + i64::from(length)
                }
            });
            working && !paused
        }

        /// The deadline minute, or `None` when not reached before the horizon.
        fn reference_add(&self, business: u32) -> Option<u32> {
            let mut left = business;
            for minute in self.start..HORIZON {
                if self.runs(minute) {
                    if left == 0 {
                        return Some(minute);
                    }
                    left -= 1;
                    if left == 0 {
                        return Some(minute + 1);
                    }
                }
            }
            None
        }

        fn reference_between(&self) -> u32 {
            (self.start..self.until)
                .filter(|&m| self.runs(m))
                .map(|_| 1)
                .sum()
        }

        /// The minutes run from the start to each instant the clock stops.
        fn reference_stops(&self) -> Vec<u32> {
            let mut run = 0;
            let mut stops = Vec::new();
            for minute in self.start..HORIZON {
                if self.runs(minute) {
                    run += 1;
                    if !self.runs(minute + 1) {
                        stops.push(run);
                    }
                }
            }
            stops
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn add_and_business_between_agree_with_walking_minute_by_minute(case in case()) {
            let checked = BusinessCalendar::new(case.spec());
            prop_assume!(checked != Err(CalendarError::NoWorkingTime));
            let cal = checked.unwrap();
            let (start, pauses) = (Case::instant(case.start), case.pauses());
            let stops = case.reference_stops();
            let at_a_stop = (!stops.is_empty()).then(|| stops[case.boundary.index(stops.len())]);
            for business in [Some(case.business), at_a_stop].into_iter().flatten() {
                let due = cal.add(start, Duration::minutes(business.into()), &pauses);
                match case.reference_add(business) {
                    Some(minute) => prop_assert_eq!(due, Some(Case::instant(minute))),
                    None => prop_assert!(due.is_none_or(|due| due >= Case::instant(HORIZON))),
                }
            }
            let used = cal.business_between(start, Case::instant(case.until), &pauses);
            prop_assert_eq!(used, Duration::minutes(case.reference_between().into()));
        }

        #[test]
        fn deadlines_around_dst_transitions_are_consistent(
            zone in prop::sample::select(vec![chrono_tz::America::New_York, chrono_tz::Europe::Berlin]),
            week in [windows(), windows(), windows(), windows(), windows(), windows(), windows()],
            transition in prop::sample::select(vec![(2026, 3, 8), (2026, 11, 1), (2026, 3, 29), (2026, 10, 25)]),
            offset in -4 * 86_400..4 * 86_400i64,
            business in 0..3 * 86_400i64,
            more in 0..86_400i64,
            pause in (0..4 * 86_400i64, 0..86_400i64),
        ) {
            prop_assume!(week.iter().any(|w| !w.is_empty()));
            let spec = CalendarSpec {
                time_zone: zone,
                week: WEEKDAYS.iter().zip(&week).map(|(d, w)| {
                    (d.to_string(), w.iter().map(|&(s, e)| format!("{}-{}", hhmm(s), hhmm(e))).collect())
                }).collect(),
                holidays: Vec::new(),
                working_days: Vec::new(),
            };
            let cal = BusinessCalendar::new(spec).unwrap();
            let (y, m, d) = transition;
            let start = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap() + Duration::seconds(offset);
            let pauses = [(start + Duration::seconds(pause.0), Some(start + Duration::seconds(pause.0 + pause.1)))];
            let (business, more) = (Duration::seconds(business), Duration::seconds(more));
            let due = cal.add(start, business, &pauses).unwrap();
            let later = cal.add(start, business + more, &pauses).unwrap();
            prop_assert!(start <= due && due <= later);
            prop_assert_eq!(cal.business_between(start, due, &pauses), business);
            prop_assert_eq!(cal.business_between(start, later, &pauses), business + more);
            prop_assert!(cal.business_between(start, later, &[]) <= later - start);
        }
    }
}
