//! The one event scan funnels and cohorts share: the events of some types, of the filter's
//! customers the reader reaches, customer by customer in (time, id) order.

use shoal_base::{
    error::Result,
    kinds::Resource,
    storage::{Db, sql::Sql},
};
use shoal_crm::{
    customers::{CustomerFilter, push_matching},
    tenancy::Actor,
};

/// An event as a scan reads it (what `funnel::EventMatch` tests).
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) event_type: String,
    pub(crate) name: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) amount_units: Option<i64>,
}

impl RawEvent {
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<RawEvent> {
        use sqlx::Row;
        Ok(RawEvent {
            event_type: r.try_get("event_type")?,
            name: r.try_get("name")?,
            channel: r.try_get("channel")?,
            amount_units: r.try_get("amount_units")?,
        })
    }
}

/// `SELECT e.customer_id, e.event_type, {columns}, e.occurred_at{also}` over the events of
/// `types` that occurred in `[from, to)` (µs; types and the columns `funnel::EventMatch::scan_parts` gives), of the customers matching `filter`
/// whom the actor reaches (customers and events scopes), ordered by customer, time, id;
/// `also` adds customer columns (`, c.source_channel AS grp`).
pub(crate) fn events(
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    columns: &str,
    types: &[&str],
    range: (i64, i64),
    also: &str,
) -> Result<Sql> {
    let mut sql = Sql::new(&format!(
        "SELECT e.customer_id, e.event_type, {columns}, e.occurred_at{also}"
    ));
    push_from(&mut sql, db, actor, filter, types, range)?;
    sql.push(" ORDER BY c.id, e.occurred_at, e.id");
    Ok(sql)
}

/// ` FROM customers c CROSS JOIN events e WHERE …`: the events of `types` in `[from, to)`
/// of the customers matching `filter` whom the actor reaches (customers and events scopes),
/// after a select list the caller wrote (its arguments pushed first).
pub(crate) fn push_from(
    sql: &mut Sql,
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    types: &[&str],
    (from, to): (i64, i64),
) -> Result<()> {
    sql.push(" FROM customers c CROSS JOIN events e");
    push_matching(sql, db, actor, filter)?;
    let t = sql.arg(actor.tenant.id.clone());
    // customers drive, each one's events found on the (tenant, customer, type, time) index:
    // SQLite takes a CROSS JOIN's order as written (else it scans every event of the tenant)
    sql.push(&format!(" AND e.tenant_id = {t} AND e.customer_id = c.id"));
    actor
        .access
        .push_customer_scope(sql, db.backend, Resource::Events, &t);
    let (from, to) = (sql.arg(from), sql.arg(to));
    sql.push(&format!(
        " AND e.occurred_at >= {from} AND e.occurred_at < {to} AND e.event_type"
    ));
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    sql.push_in(&types);
    Ok(())
}
