//! Calendar periods (day, ISO week, month) in the tenant's time zone: which period an
//! instant falls in, how many periods lie between two, and the gap-free list of periods of
//! a range.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A calendar period length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// Monday to Sunday (ISO 8601).
    Week,
    Month,
}

impl Period {
    /// The first local day of the period holding `date`.
    pub fn start_of(self, date: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => date,
            Period::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Period::Month => date.with_day(1).unwrap_or(date),
        }
    }

    /// The first local day of the period holding the instant `t` in `tz`.
    pub fn start_at(self, t: DateTime<Utc>, tz: Tz) -> NaiveDate {
        self.start_of(t.with_timezone(&tz).date_naive())
    }

    /// Whole periods from the period starting `a` to the one starting `b` (negative when `b`
    /// is earlier); both must be period starts.
    pub fn between(self, a: NaiveDate, b: NaiveDate) -> i64 {
        match self {
            Period::Day => (b - a).num_days(),
            Period::Week => (b - a).num_days().div_euclid(7),
            Period::Month => {
                (i64::from(b.year()) - i64::from(a.year())) * 12 + i64::from(b.month())
                    - i64::from(a.month())
            }
        }
    }

    /// The start of the period `n` periods after the one starting `start`.
    pub fn advance(self, start: NaiveDate, n: u32) -> NaiveDate {
        match self {
            Period::Day => start + Days::new(u64::from(n)),
            Period::Week => start + Days::new(u64::from(n) * 7),
            Period::Month => start + Months::new(n),
        }
    }

    /// Every period start from the period holding `from` to the one holding `to` (exclusive
    /// end instant), in order, none missing.
    pub fn starts(self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<NaiveDate> {
        let first = self.start_at(from, tz);
        let last = self.start_at(to - chrono::Duration::microseconds(1), tz);
        let n = self.between(first, last).max(0);
        (0..=n)
            .map(|i| self.advance(first, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect()
    }
}

/// The instant local midnight of `date` begins in `tz` (the earliest, when a zone skips or
/// repeats midnight).
pub fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // a zone that skips midnight (a DST jump at 00:00) begins the day an hour later
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        assert_eq!(Period::Week.start_of(d(2026, 12, 6)), d(2026, 11, 30));
        assert_eq!(Period::Week.start_of(d(2026, 11, 30)), d(2026, 11, 30));
        assert_eq!(Period::Month.start_of(d(2026, 12, 6)), d(2026, 12, 1));
    }

    #[test]
    fn an_instant_falls_in_the_tenants_local_day() {
        // 2026-12-06 17:00 UTC is already 12-07 01:00 in Shanghai
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 17, 0, 0).unwrap();
        assert_eq!(
            Period::Day.start_at(t, chrono_tz::Asia::Shanghai),
            d(2026, 12, 7)
        );
        assert_eq!(Period::Day.start_at(t, chrono_tz::UTC), d(2026, 12, 6));
    }

    #[test]
    fn periods_between_count_calendar_periods() {
        assert_eq!(Period::Month.between(d(2026, 11, 1), d(2027, 2, 1)), 3);
        assert_eq!(Period::Week.between(d(2026, 11, 30), d(2026, 12, 14)), 2);
        assert_eq!(Period::Day.between(d(2026, 12, 7), d(2026, 12, 6)), -1);
    }

    #[test]
    fn a_range_lists_every_period_even_empty_ones() {
        let tz = chrono_tz::Asia::Shanghai;
        let from = midnight(d(2026, 1, 15), tz);
        let to = midnight(d(2026, 4, 1), tz);
        assert_eq!(
            Period::Month.starts(from, to, tz),
            [d(2026, 1, 1), d(2026, 2, 1), d(2026, 3, 1)]
        );
    }

    #[test]
    fn midnight_is_local() {
        let t = midnight(d(2026, 12, 7), chrono_tz::Asia::Shanghai);
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 12, 6, 16, 0, 0).unwrap());
    }
}
