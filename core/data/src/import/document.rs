//! JSON documents through the import mapping: what inbound connectors receive (a WeCom
//! contact, a shop's order) is imported like a file's rows, with the same mapping language
//! and the same dedupe, merge, audit and idempotency — only the columns are JSON pointers
//! (`"/buyer/mobile"`, RFC 6901) into the document instead of a file's header.
//!
//! A document (an object) is one row; a list of objects is one row each. A pointer to a
//! string reads the string; a number or a boolean its JSON text; `null` or nothing an empty
//! cell; a list of scalars its items joined with `;` (a list field splits them again);
//! anything else its JSON.

use std::sync::Arc;

use serde_json::Value;
use sqlx::AnyConnection;

use super::{
    convert::{Bound, RowContext, RowError},
    customers, events,
    job::Counts,
    mapping::{self, Kind, Mapping, MappingError},
    source::Row,
};
use shoal_base::{error::Result, storage::Db};
use shoal_crm::tenancy::Actor;
use shoal_tags as tags;

/// Reads a mapping for documents: the import mapping, every column a JSON pointer.
pub fn parse(text: &str, expect: Kind) -> std::result::Result<Mapping, MappingError> {
    let m = mapping::parse(text)?;
    if m.kind != expect {
        return Err(MappingError {
            path: "kind".into(),
            message: format!(
                "this mapping describes {}, {} expected here",
                m.kind.as_str(),
                expect.as_str()
            ),
        });
    }
    for (_, spec) in &m.fields {
        if let Some(c) = spec.columns.iter().find(|c| !c.starts_with('/')) {
            return Err(MappingError {
                path: spec.path.clone(),
                message: format!(
                    "`{c}` is not a JSON pointer: columns of a document start with `/` (e.g. `/buyer/mobile`)"
                ),
            });
        }
    }
    Ok(m)
}

/// The cell a pointer reads from a document.
pub fn cell(doc: &Value, pointer: &str) -> String {
    match doc.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_array() && !i.is_object()) => items
            .iter()
            .filter(|i| !i.is_null())
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

/// The rows of a document: an object is one, a list one per item.
fn documents(doc: &Value) -> Vec<&Value> {
    match doc {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// A mapping's columns as a header, and each document as a row of it (numbered from 1).
fn rows(mapping: &Mapping, docs: &[&Value]) -> (Vec<String>, Vec<Row>) {
    let mut header: Vec<String> = Vec::new();
    for (_, spec) in &mapping.fields {
        for c in &spec.columns {
            if !header.contains(c) {
                header.push(c.clone());
            }
        }
    }
    let rows = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| Row {
            number: i as u64 + 1,
            cells: if doc.is_object() {
                Ok(header.iter().map(|p| cell(doc, p)).collect())
            } else {
                Err("not a JSON object".into())
            },
        })
        .collect();
    (header, rows)
}

/// What applying a document did.
#[derive(Debug, Default)]
pub struct Applied {
    pub customers: Counts,
    pub events: Counts,
    /// Refused rows (row = the document's place in a list, from 1).
    pub errors: Vec<RowError>,
    /// Customers changed (for tag evaluation once committed).
    pub touched: Vec<String>,
}

/// Where a document came from, for merge reasons and idempotency keys.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Names the import in merge reasons and audit snapshots (`connector:<source>:<id>`).
    pub job_id: &'a str,
    /// Start of the events' idempotency keys where the mapping names no key column:
    /// unique per delivery, so that a replayed delivery adds nothing.
    pub key_prefix: &'a str,
}

/// Imports `doc` in the caller's transaction: first through `customers` (found or created
/// through the identity rules), then through `events`; refused rows are reported, not
/// raised. The caller evaluates tags for `touched` once committed.
pub async fn apply(
    conn: &mut AnyConnection,
    db: &Db,
    actor: &Actor,
    customers_mapping: Option<&Mapping>,
    events_mapping: Option<&Mapping>,
    doc: &Value,
    origin: Origin<'_>,
) -> Result<Applied> {
    let docs = documents(doc);
    let mut out = Applied::default();
    let tags_by_name: std::collections::HashMap<String, tags::Tag> = match customers_mapping {
        Some(_) => tags::list(db, actor.tenant_id())
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect(),
        None => Default::default(),
    };
    let context = |m: &Mapping, header: &[String], tags| {
        let bound = Bound::new(m, header, actor.tenant.time_zone).map_err(|errors| {
            shoal_base::error::Error::Internal(format!(
                "a document mapping does not bind to its own columns: {errors:?}"
            ))
        })?;
        Ok::<_, shoal_base::error::Error>(Arc::new(RowContext {
            actor: actor.clone(),
            bound,
            tags,
            key_prefix: origin.key_prefix.to_owned(),
        }))
    };
    if let Some(m) = customers_mapping {
        let (header, rows) = rows(m, &docs);
        let ctx = context(m, &header, tags_by_name)?;
        let checked = customers::check(&ctx, &rows);
        let c = customers::Context {
            db,
            actor,
            job_id: origin.job_id,
        };
        let touched =
            customers::batch(conn, &c, checked, &mut out.customers, &mut out.errors).await?;
        out.touched.extend(touched);
    }
    if let Some(m) = events_mapping {
        let (header, rows) = rows(m, &docs);
        let ctx = context(m, &header, Default::default())?;
        let checked = events::check(&ctx, &rows);
        let c = events::Context {
            db,
            actor,
            trigger_automations: m.trigger_automations,
        };
        let touched = events::batch(conn, &c, checked, &mut out.events, &mut out.errors).await?;
        for t in touched {
            if !out.touched.contains(&t) {
                out.touched.push(t);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_read_strings_numbers_lists_and_nothing() {
        let doc = json!({
            "buyer": { "name": "王小明", "mobile": "13800000000", "vip": true },
            "total": 129.5,
            "tags": ["新客", "天猫"],
            "lines": [{ "sku": "A" }],
            "gone": null
        });
        assert_eq!(cell(&doc, "/buyer/name"), "王小明");
        assert_eq!(cell(&doc, "/buyer/vip"), "true");
        assert_eq!(cell(&doc, "/total"), "129.5");
        assert_eq!(cell(&doc, "/tags"), "新客;天猫");
        assert_eq!(cell(&doc, "/lines"), r#"[{"sku":"A"}]"#);
        assert_eq!(cell(&doc, "/gone"), "");
        assert_eq!(cell(&doc, "/missing/deeper"), "");
    }

    #[test]
    fn a_column_that_is_not_a_pointer_is_named() {
        let e = parse(
            "kind = \"customers\"\n[columns]\ndisplay_name = \"name\"\n",
            Kind::Customers,
        )
        .unwrap_err();
        assert_eq!(e.path, "columns.display_name");
        assert!(e.message.contains("JSON pointer"), "{e}");
        let e = parse(
            "kind = \"customers\"\n[columns]\ndisplay_name = \"/name\"\n",
            Kind::Events,
        )
        .unwrap_err();
        assert_eq!(e.path, "kind");
    }

    #[test]
    fn a_list_is_a_row_per_item_and_a_scalar_is_a_bad_row() {
        let m = parse(
            "kind = \"customers\"\n[columns]\ndisplay_name = \"/name\"\n[identities]\nshop = \"/id\"\n",
            Kind::Customers,
        )
        .unwrap();
        let doc = json!([{ "name": "甲", "id": 1 }, 7]);
        let (header, rows) = rows(&m, &documents(&doc));
        assert_eq!(header, ["/name", "/id"]);
        assert_eq!(rows[0].cells.as_ref().unwrap(), &["甲", "1"]);
        assert!(rows[1].cells.is_err());
    }
}
