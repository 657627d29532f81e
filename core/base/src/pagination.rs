//! Relay-style keyset pagination shared by every connection: validated page requests and
//! opaque cursors bound to the tenant and ordering they were issued for.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::sql::Sql,
};

/// The sort key a cursor remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Int(i64),
    Text(String),
}

/// A position in an ordered list: the sort key and id of the row it points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Tenant the cursor was issued to; any other tenant is refused.
    #[serde(rename = "t")]
    pub tenant: String,
    /// Ordering the cursor belongs to, e.g. `customers:created_at`.
    #[serde(rename = "o")]
    pub order: String,
    #[serde(rename = "k")]
    pub key: Key,
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor and checks it was issued for this tenant and ordering.
    pub fn decode(field: &str, raw: &str, tenant: &str, order: &str) -> Result<Cursor> {
        let invalid = || Error::invalid(field, "not a cursor issued for this list");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.tenant != tenant || cursor.order != order {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// Relay arguments as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: usize,
    /// `last`/`before` paging: rows are fetched in reverse order and flipped back.
    pub backward: bool,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
}

pub const DEFAULT_PAGE_SIZE: usize = 20;

impl Page {
    pub fn new(args: &PageArgs, max: u32, tenant: &str, order: &str) -> Result<Page> {
        let size = |field: &str, v: i32| -> Result<usize> {
            if v < 0 {
                return Err(Error::invalid(field, "must not be negative"));
            }
            if v as u32 > max {
                return Err(Error::LimitExceeded {
                    field: field.to_owned(),
                    message: format!("at most {max} items per page"),
                });
            }
            Ok(v as usize)
        };
        let (limit, backward) = match (args.first, args.last) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("last", "give `first` or `last`, not both"));
            }
            (Some(f), None) => (size("first", f)?, false),
            (None, Some(l)) => (size("last", l)?, true),
            (None, None) => (DEFAULT_PAGE_SIZE.min(max as usize), args.before.is_some()),
        };
        let decode = |field: &str, raw: &Option<String>| {
            raw.as_deref()
                .map(|r| Cursor::decode(field, r, tenant, order))
                .transpose()
        };
        Ok(Page {
            limit,
            backward,
            after: decode("after", &args.after)?,
            before: decode("before", &args.before)?,
        })
    }

    /// Appends the keyset conditions (`AND …`) for `(key_expr, id_expr)` sorted
    /// `descending` or not.
    pub fn push_conditions(&self, sql: &mut Sql, key_expr: &str, id_expr: &str, descending: bool) {
        let mut bound = |cursor: &Cursor, op: &str| {
            let k = match &cursor.key {
                Key::Int(v) => sql.arg(*v),
                Key::Text(v) => sql.arg(v.clone()),
            };
            let i = sql.arg(cursor.id.clone());
            sql.push(&format!(" AND ({key_expr}, {id_expr}) {op} ({k}, {i})"));
        };
        if let Some(c) = &self.after {
            bound(c, if descending { "<" } else { ">" });
        }
        if let Some(c) = &self.before {
            bound(c, if descending { ">" } else { "<" });
        }
    }

    /// Appends `ORDER BY … LIMIT n+1` (one extra row tells whether another page exists).
    pub fn push_order_limit(&self, sql: &mut Sql, key_expr: &str, id_expr: &str, descending: bool) {
        let dir = if descending != self.backward {
            "DESC"
        } else {
            "ASC"
        };
        let limit = sql.arg(self.limit as i64 + 1);
        sql.push(&format!(
            " ORDER BY {key_expr} {dir}, {id_expr} {dir} LIMIT {limit}"
        ));
    }

    /// Trims the extra row, restores order for backward pages and reports neighbours.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Paged<T> {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        if self.backward {
            rows.reverse();
        }
        let (has_next, has_previous) = if self.backward {
            (self.before.is_some(), more)
        } else {
            (more, self.after.is_some())
        };
        Paged {
            items: rows,
            has_next,
            has_previous,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
}

impl<T> Paged<T> {
    /// Pairs every item with the cursor that points at it.
    pub fn with_cursors(self, cursor: impl Fn(&T) -> Cursor) -> Paged<(T, Cursor)> {
        Paged {
            items: self
                .items
                .into_iter()
                .map(|item| {
                    let c = cursor(&item);
                    (item, c)
                })
                .collect(),
            has_next: self.has_next,
            has_previous: self.has_previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            tenant: "a".into(),
            order: "customers:created_at".into(),
            key: Key::Int(42),
            id: "x".into(),
        }
    }

    #[test]
    fn cursor_round_trips_for_its_tenant_only() {
        let raw = cursor().encode();
        assert_eq!(
            Cursor::decode("after", &raw, "a", "customers:created_at").unwrap(),
            cursor()
        );
        assert!(Cursor::decode("after", &raw, "b", "customers:created_at").is_err());
        assert!(Cursor::decode("after", &raw, "a", "customers:updated_at").is_err());
        assert!(Cursor::decode("after", "garbage!", "a", "customers:created_at").is_err());
    }

    #[test]
    fn page_size_is_bounded() {
        let args = |first| PageArgs {
            first: Some(first),
            ..PageArgs::default()
        };
        assert!(matches!(
            Page::new(&args(101), 100, "a", "o"),
            Err(Error::LimitExceeded { .. })
        ));
        assert!(matches!(
            Page::new(&args(-1), 100, "a", "o"),
            Err(Error::Invalid(_))
        ));
        assert_eq!(Page::new(&args(100), 100, "a", "o").unwrap().limit, 100);
    }
}
