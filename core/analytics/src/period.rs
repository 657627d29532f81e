//! Calendar periods (day, ISO week, month) in the tenant's time zone: which period an
//! instant falls in, how many periods lie between two, and the gap-free list of periods of
//! a range.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Offset, TimeZone, Utc};
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
            Period::Week => date
                .checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
                .unwrap_or(date),
            Period::Month => date.with_day(1).unwrap_or(date),
        }
    }

    /// The first local day of the period holding the instant `t` in `tz`.
    pub fn start_at(self, t: DateTime<Utc>, tz: Tz) -> NaiveDate {
        // not `with_timezone`: it panics where the local time is past chrono's last date
        let utc = t.naive_utc();
        let offset = tz.offset_from_utc_datetime(&utc).fix();
        self.start_of(utc.checked_add_offset(offset).unwrap_or(utc).date())
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

    /// The start of the period `n` periods after the one starting `start` (the last date
    /// chrono knows, past it).
    pub fn advance(self, start: NaiveDate, n: u32) -> NaiveDate {
        let next = match self {
            Period::Day => start.checked_add_days(Days::new(u64::from(n))),
            Period::Week => start.checked_add_days(Days::new(u64::from(n) * 7)),
            Period::Month => start.checked_add_months(Months::new(n)),
        };
        next.unwrap_or(NaiveDate::MAX)
    }

    /// Every period start from the period holding `from` to the one holding `to` (exclusive
    /// end instant), in order, none missing — or, when there would be more than `max`, how
    /// many there would be (nothing is allocated for a range of ten thousand years).
    pub fn starts(
        self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
        max: usize,
    ) -> Result<Vec<NaiveDate>, i64> {
        let first = self.start_at(from, tz);
        let before_end = to
            .checked_sub_signed(chrono::Duration::microseconds(1))
            .unwrap_or(to);
        let last = self.start_at(before_end, tz);
        let n = self.between(first, last).max(0) + 1;
        if n > i64::try_from(max).unwrap_or(i64::MAX) {
            return Err(n);
        }
        Ok((0..n)
            .map(|i| self.advance(first, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect())
    }
}

/// The periods of a series over `[from, to)` in `tz`, at most `max` of them; a range that
/// ends before it begins, or holds too many periods, is refused on `input.to`.
pub fn series(
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    max: usize,
) -> shoal_base::error::Result<Vec<NaiveDate>> {
    use shoal_base::error::Error;
    if to <= from {
        return Err(Error::invalid("input.to", "must be after `from`"));
    }
    period.starts(from, to, tz, max).map_err(|n| {
        Error::invalid(
            "input.to",
            format!("at most {max} periods, not {n}: choose a longer period"),
        )
    })
}

/// The instant local midnight of `date` begins in `tz` (the earliest, when a zone skips or
/// repeats midnight).
pub fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // a zone that skips midnight (a DST jump at 00:00) begins the day an hour later
        None => naive
            .checked_add_signed(chrono::Duration::hours(1))
            .and_then(|later| tz.from_local_datetime(&later).earliest())
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
            Period::Month.starts(from, to, tz, 10).unwrap(),
            [d(2026, 1, 1), d(2026, 2, 1), d(2026, 3, 1)]
        );
        assert_eq!(Period::Month.starts(from, to, tz, 2), Err(3));
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(Period::Month.advance(NaiveDate::MAX, 3), NaiveDate::MAX);
        assert!(
            Period::Day
                .starts(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, tz, 400)
                .is_err()
        );
    }

    #[test]
    fn midnight_is_local() {
        let t = midnight(d(2026, 12, 7), chrono_tz::Asia::Shanghai);
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 12, 6, 16, 0, 0).unwrap());
    }
}
