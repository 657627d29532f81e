//! The SQL shared by export and erasure: which rows of a register table belong to a set of
//! profiles, and those rows as JSON objects on either backend.

use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row as _};

use crate::register::{Link, Table};
use shoal_base::{
    error::{Error, Result},
    storage::{Backend, sql::Sql},
    vault::Vault,
};

/// Appends ` AND <the rows of table alias x linked to ids>` to `sql`; `t` is the tenant's
/// placeholder.
pub(crate) fn push_link(sql: &mut Sql, backend: Backend, table: &Table, t: &str, ids: &[String]) {
    let list = |sql: &mut Sql| -> String {
        ids.iter()
            .map(|id| sql.arg(id.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match table.link {
        Link::Column(c) => {
            let l = list(sql);
            sql.push(&format!(" AND x.{c} IN ({l})"));
        }
        Link::Either(a, b) => {
            let l = list(sql);
            sql.push(&format!(" AND (x.{a} IN ({l}) OR x.{b} IN ({l}))"));
        }
        Link::Through {
            column,
            parent,
            parent_column,
        } => {
            let l = list(sql);
            sql.push(&format!(
                " AND x.{column} IN (SELECT p.id FROM {parent} p WHERE p.tenant_id = {t} AND p.{parent_column} IN ({l}))"
            ));
        }
        Link::AuditEntity => {
            let l = list(sql);
            sql.push(&format!(
                " AND x.entity_type = 'customer' AND x.entity_id IN ({l})"
            ));
        }
        Link::Mentions(c) => {
            let found = |a: &str| match backend {
                Backend::Sqlite => format!("instr(x.{c}, {a}) > 0"),
                Backend::Postgres => format!("strpos(x.{c}, {a}) > 0"),
            };
            let any: Vec<String> = ids.iter().map(|id| found(&sql.arg(id.clone()))).collect();
            sql.push(&format!(
                " AND x.{c} IS NOT NULL AND ({})",
                any.join(" OR ")
            ));
        }
    }
}

/// The rows of `table` linked to `ids`, each a JSON object of its columns: sealed columns
/// opened, hidden ones left out, JSON held as text parsed.
pub(crate) async fn linked_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
    tenant: &str,
    table: &Table,
    ids: &[String],
) -> Result<Vec<Value>> {
    let object = match backend {
        Backend::Postgres => "row_to_json(x)::text".to_owned(),
        Backend::Sqlite => {
            let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info($1)")
                .bind(table.name)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<_, _>>()?;
            let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', x.{c}")).collect();
            format!("json_object({})", pairs.join(", "))
        }
    };
    let mut sql = Sql::new(&format!(
        "SELECT {object} AS j FROM {} x WHERE x.tenant_id = ",
        table.name
    ));
    let t = sql.arg(tenant);
    sql.push(&t);
    push_link(&mut sql, backend, table, &t, ids);
    let mut out = Vec::new();
    for row in sql.query().fetch_all(&mut *conn).await? {
        let text: String = row.try_get("j")?;
        let Value::Object(mut map) = serde_json::from_str::<Value>(&text)
            .map_err(|e| Error::Internal(format!("{} row as JSON: {e}", table.name)))?
        else {
            continue;
        };
        map.remove("tenant_id");
        for c in table.hidden {
            map.remove(*c);
        }
        for (column, field) in table.sealed {
            if let Some(Value::String(stored)) = map.get(*column) {
                let opened = vault.open_or_plain(tenant, field, stored)?;
                map.insert((*column).to_owned(), parse_if_json(opened));
            }
        }
        out.push(Value::Object(readable(map)));
    }
    Ok(out)
}

/// JSON kept as text (SQLite, and `TEXT` columns on PostgreSQL) parsed, so the export reads
/// as one document.
fn readable(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) if s.starts_with('{') || s.starts_with('[') => parse_if_json(s),
                v => v,
            };
            (k, v)
        })
        .collect()
}

fn parse_if_json(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}
