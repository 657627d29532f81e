//! Turning a row's cells into field values, following the mapping: column look-up, value
//! maps, splitting, types and date formats. Every refusal names the column and the value.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::mapping::{Mapping, MappingError, Spec, Target, Unmapped, ValueType};

/// A refused cell (or row): the source row number, the column, the value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub column: String,
    pub value: String,
    pub reason: String,
}

/// What reading a row needs: owned, so that a batch is checked on the blocking pool while
/// the one before is written.
#[derive(Debug)]
pub struct RowContext {
    pub actor: shoal_crm::tenancy::Actor,
    pub bound: Bound,
    /// Live tags by name (customer imports).
    pub tags: std::collections::HashMap<String, shoal_tags::Tag>,
    /// Start of derived idempotency keys (event imports).
    pub key_prefix: String,
}

/// A batch of rows read: what they became, and the refusals.
#[derive(Debug)]
pub struct Checked<T> {
    pub items: Vec<T>,
    pub errors: Vec<RowError>,
    pub read: i64,
    pub rejected: i64,
}

impl<T> Checked<T> {
    /// Reads every row with `read` (`Ok(None)`: a blank row).
    pub fn of(
        rows: &[super::source::Row],
        read: impl Fn(&super::source::Row) -> Result<Option<T>, Vec<RowError>>,
    ) -> Checked<T> {
        let mut out = Checked {
            items: Vec::with_capacity(rows.len()),
            errors: Vec::new(),
            read: 0,
            rejected: 0,
        };
        for row in rows {
            out.read += 1;
            match read(row) {
                Ok(Some(item)) => out.items.push(item),
                Ok(None) => {}
                Err(e) => {
                    out.rejected += 1;
                    out.errors.extend(e);
                }
            }
        }
        out
    }

    /// Adds the batch's counts and refusals to the job's, and returns what the rows became.
    pub fn into_items(self, counts: &mut super::job::Counts, errors: &mut Vec<RowError>) -> Vec<T> {
        counts.rows_read += self.read;
        counts.rejected += self.rejected;
        errors.extend(self.errors);
        self.items
    }
}

/// A row's cells, `None` for a blank row, or the row's error when it could not be read.
pub fn cells_of(row: &super::source::Row) -> Result<Option<&[String]>, Vec<RowError>> {
    match &row.cells {
        Ok(c) if c.iter().all(|c| c.trim().is_empty()) => Ok(None),
        Ok(c) => Ok(Some(c)),
        Err(reason) => Err(vec![RowError {
            row: row.number,
            column: "-".into(),
            value: String::new(),
            reason: reason.clone(),
        }]),
    }
}

/// Collects the refusals of one row.
#[derive(Debug)]
pub struct Rejects {
    pub row: u64,
    pub errors: Vec<RowError>,
}

impl Rejects {
    pub fn new(row: u64) -> Rejects {
        Rejects {
            row,
            errors: Vec::new(),
        }
    }

    pub fn push(&mut self, column: &str, value: &str, reason: String) {
        self.errors.push(RowError {
            row: self.row,
            column: column.to_owned(),
            value: value.to_owned(),
            reason,
        });
    }
}

/// A mapping bound to a file's header: each field with the indexes of its columns.
#[derive(Debug, Clone)]
pub struct Bound {
    pub fields: Vec<(Target, Spec, Vec<usize>)>,
    pub time_zone: chrono_tz::Tz,
    pub header: Vec<String>,
}

impl Bound {
    pub fn new(
        mapping: &Mapping,
        header: &[String],
        tenant_zone: chrono_tz::Tz,
    ) -> Result<Bound, Vec<MappingError>> {
        mapping.check_header(header)?;
        let fields = mapping
            .fields
            .iter()
            .map(|(target, spec)| {
                let idx = spec
                    .columns
                    .iter()
                    .filter_map(|c| header.iter().position(|h| h == c))
                    .collect();
                (target.clone(), spec.clone(), idx)
            })
            .collect();
        Ok(Bound {
            fields,
            time_zone: mapping.time_zone.unwrap_or(tenant_zone),
            header: header.to_vec(),
        })
    }

    /// Puts a row's errors in the order of the file's columns (row-wide ones last).
    pub fn sort(&self, errors: &mut [RowError]) {
        errors.sort_by_key(|e| {
            self.header
                .iter()
                .position(|h| *h == e.column)
                .unwrap_or(usize::MAX)
        });
    }
}

/// One value read for a field, with the column it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub column: String,
    pub value: String,
}

/// The values of one field in a row: each column's cell (split if the field splits) put
/// through the value map; the default when there are none.
pub fn values(spec: &Spec, idx: &[usize], cells: &[String]) -> Result<Vec<Cell>, (Cell, String)> {
    let mut out = Vec::new();
    for (&i, column) in idx.iter().zip(&spec.columns) {
        let raw = cells.get(i).map(|c| c.trim()).unwrap_or("");
        if raw.is_empty() {
            continue;
        }
        let parts: Vec<&str> = match &spec.split {
            Some(chars) => raw
                .split(chars.as_slice())
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect(),
            None => vec![raw],
        };
        for part in parts {
            let cell = Cell {
                column: column.clone(),
                value: part.to_owned(),
            };
            match spec.map.get(part) {
                Some(mapped) if mapped.is_empty() => {}
                Some(mapped) => out.push(Cell {
                    column: column.clone(),
                    value: mapped.clone(),
                }),
                None if spec.map.is_empty() => out.push(cell),
                None => match spec.unmapped {
                    Unmapped::Keep => out.push(cell),
                    Unmapped::Ignore => {}
                    Unmapped::Reject => {
                        let reason = format!("`{part}` is not in the value map of {}", spec.path);
                        return Err((cell, reason));
                    }
                },
            }
        }
    }
    if out.is_empty()
        && let Some(d) = &spec.default
    {
        out.push(Cell {
            column: spec
                .columns
                .first()
                .cloned()
                .unwrap_or_else(|| format!("({} default)", spec.path)),
            value: d.clone(),
        });
    }
    Ok(out)
}

/// A value as JSON, read as the spec's type.
pub fn typed(spec: &Spec, value: &str, zone: chrono_tz::Tz) -> Result<Value, String> {
    Ok(match spec.ty {
        ValueType::Text => Value::String(value.to_owned()),
        ValueType::Integer => Value::from(
            value
                .replace([',', '_'], "")
                .parse::<i64>()
                .map_err(|_| format!("`{value}` is not a whole number"))?,
        ),
        ValueType::Decimal => Value::String(decimal(value)?.to_string()),
        ValueType::Bool => Value::Bool(boolean(value)?),
        ValueType::Date => {
            Value::String(date(&spec.formats, value)?.format("%Y-%m-%d").to_string())
        }
        ValueType::DateTime => Value::String(datetime(&spec.formats, value, zone)?.to_rfc3339()),
    })
}

/// A decimal amount; thousands separators and a leading currency sign are allowed.
pub fn decimal(value: &str) -> Result<Decimal, String> {
    let cleaned: String = value
        .trim()
        .trim_start_matches(['¥', '￥', '$', '€', '£'])
        .chars()
        .filter(|c| *c != ',' && *c != '_' && !c.is_whitespace())
        .collect();
    cleaned
        .parse::<Decimal>()
        .map_err(|_| format!("`{value}` is not a number"))
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" | "有" | "对" | "√" => Ok(true),
        "false" | "no" | "n" | "0" | "否" | "无" | "不是" | "×" => Ok(false),
        _ => Err(format!(
            "`{value}` is not yes/no (true, false, 是, 否, 1, 0)"
        )),
    }
}

/// A date in one of `formats` (a date-time value keeps its date).
pub fn date(formats: &[String], value: &str) -> Result<NaiveDate, String> {
    for f in formats {
        if let Ok(d) = NaiveDate::parse_from_str(value, f) {
            return Ok(d);
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(value, f) {
            return Ok(dt.date());
        }
    }
    // XLSX date cells arrive as `YYYY-MM-DD[ HH:MM:SS]` whatever the mapping's formats
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d);
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S") {
        return Ok(dt.date());
    }
    Err(format!(
        "`{value}` is not a date in any of the formats {}",
        formats.join(", ")
    ))
}

/// A moment: RFC 3339 as written, or a naive date-time (or date, at midnight) in one of
/// `formats`, read in `zone`.
pub fn datetime(
    formats: &[String],
    value: &str,
    zone: chrono_tz::Tz,
) -> Result<DateTime<Utc>, String> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = formats.iter().find_map(|f| {
        NaiveDateTime::parse_from_str(value, f).ok().or_else(|| {
            NaiveDate::parse_from_str(value, f)
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
    });
    // XLSX date cells arrive as `YYYY-MM-DD[ HH:MM:SS]` whatever the mapping's formats
    let naive = naive
        .or_else(|| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        });
    let naive = naive.ok_or_else(|| {
        format!(
            "`{value}` is not a date and time in any of the formats {}",
            formats.join(", ")
        )
    })?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.with_timezone(&Utc))
        .ok_or_else(|| format!("`{value}` does not exist in {zone} (a daylight-saving gap)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::mapping;

    fn spec_of(text: &str, target: &Target) -> Spec {
        let m = mapping::parse(text).unwrap();
        m.fields.into_iter().find(|(t, _)| t == target).unwrap().1
    }

    #[test]
    fn value_maps_split_cells_and_defaults() {
        let s = spec_of(
            "[columns]\ndisplay_name = { column = \"n\", default = \"未知\" }\nlifecycle_stage = { column = \"t\", map = { \"VIP客户\" = \"loyal\", \"普通\" = \"\" }, unmapped = \"reject\" }\n",
            &Target::LifecycleStage,
        );
        let cells = |v: &str| vec![v.to_string()];
        assert_eq!(
            values(&s, &[0], &cells("VIP客户")).unwrap()[0].value,
            "loyal"
        );
        assert!(
            values(&s, &[0], &cells("普通")).unwrap().is_empty(),
            "mapped to nothing"
        );
        let (cell, reason) = values(&s, &[0], &cells("黑名单")).unwrap_err();
        assert_eq!(cell.column, "t");
        assert!(reason.contains("not in the value map of columns.lifecycle_stage"));
        let name = spec_of(
            "[columns]\ndisplay_name = { column = \"n\", default = \"未知\" }\n",
            &Target::DisplayName,
        );
        assert_eq!(values(&name, &[0], &cells("  ")).unwrap()[0].value, "未知");
        let phones = spec_of(
            "[columns]\ndisplay_name = \"n\"\nphones = \"p\"\n",
            &Target::Phones,
        );
        let got: Vec<String> = values(&phones, &[0], &cells("138 0013 8000；139-0000-0000"))
            .unwrap()
            .into_iter()
            .map(|c| c.value)
            .collect();
        assert_eq!(got, ["138 0013 8000", "139-0000-0000"]);
    }

    #[test]
    fn dates_times_and_numbers() {
        let formats: Vec<String> = ["%Y年%m月%d日", "%Y/%m/%d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            date(&formats, "1990年3月7日").unwrap().to_string(),
            "1990-03-07"
        );
        assert_eq!(
            date(&formats, "1990/03/07").unwrap().to_string(),
            "1990-03-07"
        );
        assert!(
            date(&formats, "07.03.1990")
                .unwrap_err()
                .contains("%Y年%m月%d日")
        );
        let f: Vec<String> = vec!["%Y-%m-%d %H:%M".into()];
        let shanghai = chrono_tz::Asia::Shanghai;
        assert_eq!(
            datetime(&f, "2026-11-20 08:30", shanghai)
                .unwrap()
                .to_rfc3339(),
            "2026-11-20T00:30:00+00:00"
        );
        assert_eq!(
            datetime(&f, "2026-11-20T08:30:00Z", shanghai)
                .unwrap()
                .to_rfc3339(),
            "2026-11-20T08:30:00+00:00"
        );
        assert_eq!(decimal("¥1,299.50").unwrap().to_string(), "1299.50");
        assert!(decimal("abc").is_err());
        assert_eq!(boolean("是"), Ok(true));
    }
}
