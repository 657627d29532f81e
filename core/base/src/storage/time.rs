//! Times are stored as UTC microseconds since the Unix epoch (`BIGINT` on both backends).

use chrono::{DateTime, Utc};

pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Now, truncated to the microsecond precision that storage keeps.
pub fn now() -> DateTime<Utc> {
    from_micros(to_micros(Utc::now()))
}
