//! The few SQL fragments that differ between SQLite and PostgreSQL.

use super::Backend;

/// An expression yielding a JSON column as text.
pub fn json_text(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Sqlite => column.to_owned(),
        Backend::Postgres => format!("{column}::text"),
    }
}

/// Appended to a `SELECT` that reads a row the transaction will update. SQLite needs none:
/// write transactions hold the database lock from their start (`Db::begin_write`).
pub fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    }
}

/// A placeholder (`$n`) bound to JSON text, cast where the column is `jsonb`.
pub fn json_cast(backend: Backend, placeholder: &str) -> String {
    match backend {
        Backend::Sqlite => placeholder.to_owned(),
        Backend::Postgres => format!("{placeholder}::jsonb"),
    }
}

/// A condition: the JSON object in `column` holds every key of the JSON object bound to
/// `object`, with an equal value (for scalars; PostgreSQL uses the GIN-indexed containment
/// operator).
pub fn json_key_equals(backend: Backend, column: &str, object: &str) -> String {
    match backend {
        // `object` holds `{"key": value, …}`: no key of it may differ from the column's.
        Backend::Sqlite => format!(
            "NOT EXISTS (SELECT 1 FROM json_each({object}) AS want WHERE NOT ( \
             json_extract({column}, '$.\"' || want.key || '\"') IS want.value AND ( \
             json_type({column}, '$.\"' || want.key || '\"') = want.type \
             OR (json_type({column}, '$.\"' || want.key || '\"') IN ('integer', 'real') \
                 AND want.type IN ('integer', 'real')))))"
        ),
        Backend::Postgres => format!("{column} @> {object}::jsonb"),
    }
}

/// An expression: `column` without any of `chars` at either end.
pub fn strip_chars(backend: Backend, column: &str, chars: &str) -> String {
    match backend {
        Backend::Sqlite => format!("trim({column}, '{chars}')"),
        Backend::Postgres => format!("btrim({column}, '{chars}')"),
    }
}

/// A `FROM` item listing the top-level keys and values (as text) of a JSON object column,
/// as `{alias}.key` and `{alias}.value`.
pub fn json_entries(backend: Backend, column: &str, alias: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_each({column}) AS {alias}"),
        Backend::Postgres => format!("jsonb_each_text({column}) AS {alias}(key, value)"),
    }
}
