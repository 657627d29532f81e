//! What one bill is settled against, read in one statement: the library prices of its lines
//! in effect at its pricing time, the participants it names with their ancestors, and the
//! tenant's tier overrides (`region_tiers`, `tier_adjustments`).
//!
//! One prepared statement instead of five reads (a price read per kind, every participant of
//! the tenant, two tier tables): what the 10-line bill of the settlement bench paid over the
//! plain-SQL floor was mostly the price reads, prepared and planned afresh for every bill
//! (docs/benchmarks.md, "Settlement").

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use shoal_base::{
    error::Result,
    storage::{Backend, money, sql::Sql, time},
};
use sqlx::{AnyConnection, Row};

use crate::library::{Participant, Price, PriceKind, agreement_of};

/// The reference data of one bill.
#[derive(Debug, Default)]
pub struct Reference {
    /// The price in effect of each code asked for, by kind; a code without one is absent
    /// (`library::exists` tells why).
    pub prices: HashMap<PriceKind, HashMap<String, Price>>,
    /// The participants asked for and every ancestor of theirs, by id; an unknown id is absent.
    pub participants: BTreeMap<String, Participant>,
    /// The tier overrides as module parameters: `region_tiers` (region → tier) and
    /// `tier_adjustments` (tier → `{percent}` or `{amount}`), each only when the tenant has one.
    pub tier_params: Map<String, Value>,
}

/// Reads the reference data of a bill: prices of `priced` (kind, code) in effect at `at`,
/// the participants `participant_ids` with their ancestors, the tier overrides.
///
/// The statement is a `UNION ALL` of one branch per source, every row in one shape: the
/// source, its key, a number, four texts and an order (a price's start, so that the newest
/// period in effect is read last and wins).
pub async fn read(
    conn: &mut AnyConnection,
    tenant: &str,
    priced: &[(PriceKind, &str)],
    participant_ids: &[&str],
    at: DateTime<Utc>,
) -> Result<Reference> {
    let mut sql = Sql::new("");
    let tenant = sql.arg(tenant);
    let mut ids = participant_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        // the named participants, then each one's parent until the root (`UNION` stops at
        // rows already found, so even a cycle written around the checks would end)
        sql.push(&format!(
            "WITH RECURSIVE chain(id, parent_id) AS (SELECT id, parent_id FROM participants \
             WHERE tenant_id = {tenant} AND id"
        ))
        .push_in(&ids)
        .push(&format!(
            " UNION SELECT p.id, p.parent_id FROM participants p JOIN chain c \
             ON p.tenant_id = {tenant} AND p.id = c.parent_id) \
             SELECT 'participant', id, CAST(NULL AS BIGINT), role, name, parent_id, agreement, \
             0 FROM participants WHERE tenant_id = {tenant} AND id IN (SELECT id FROM chain) \
             UNION ALL "
        ));
    }
    for kind in [PriceKind::Service, PriceKind::Part] {
        let mut codes: Vec<&str> = priced
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, code)| *code)
            .collect();
        codes.sort_unstable();
        codes.dedup();
        if codes.is_empty() {
            continue;
        }
        let (what, table, key, price) = match kind {
            PriceKind::Service => ("service", "service_items", "code", "unit_price_units"),
            PriceKind::Part => ("part", "spare_parts", "sku", "list_price_units"),
        };
        // bound in each price branch, so that no placeholder goes unused
        let at = sql.arg(time::to_micros(at));
        sql.push(&format!(
            "SELECT '{what}', {key}, {price}, currency, name, CAST(NULL AS TEXT), \
             CAST(NULL AS TEXT), effective_from FROM {table} WHERE tenant_id = {tenant} \
             AND effective_from <= {at} AND (effective_to IS NULL OR effective_to > {at}) \
             AND {key}"
        ))
        .push_in(&codes)
        .push(" UNION ALL ");
    }
    sql.push(&format!(
        "SELECT 'region', region, CAST(NULL AS BIGINT), tier, CAST(NULL AS TEXT), \
         CAST(NULL AS TEXT), CAST(NULL AS TEXT), 0 FROM region_tiers WHERE tenant_id = {tenant} \
         UNION ALL SELECT 'tier', tier, amount_units, percent, CAST(NULL AS TEXT), \
         CAST(NULL AS TEXT), CAST(NULL AS TEXT), 0 FROM tier_adjustments \
         WHERE tenant_id = {tenant} ORDER BY 8"
    ));
    // a prepared statement kept per connection (not `query_once`): its lists are a bill's
    // codes and participants, a handful of index look-ups whatever the plan, and preparing
    // and planning it afresh cost PostgreSQL a second round trip and ~0.6 ms per bill
    let rows = sql
        .on(Backend::of(conn))
        .query()
        .fetch_all(&mut *conn)
        .await?;

    let mut reference = Reference::default();
    let mut regions = Map::new();
    let mut adjustments = Map::new();
    for r in &rows {
        let what: String = r.try_get(0)?;
        let key: String = r.try_get(1)?;
        let number: Option<i64> = r.try_get(2)?;
        let a: Option<String> = r.try_get(3)?;
        let b: Option<String> = r.try_get(4)?;
        match (what.as_str(), number) {
            ("service" | "part", Some(units)) => {
                let kind = if what == "service" {
                    PriceKind::Service
                } else {
                    PriceKind::Part
                };
                let price = (
                    money::from_units(units),
                    a.unwrap_or_default(),
                    b.unwrap_or_default(),
                );
                reference.prices.entry(kind).or_default().insert(key, price);
            }
            ("participant", _) => {
                let agreement: Option<String> = r.try_get(6)?;
                let participant = Participant {
                    id: key.clone(),
                    name: b.unwrap_or_default(),
                    role: a.unwrap_or_default(),
                    parent_id: r.try_get(5)?,
                    agreement: agreement.as_deref().map(agreement_of).unwrap_or_default(),
                };
                reference.participants.insert(key, participant);
            }
            ("region", _) => {
                regions.insert(key, Value::String(a.unwrap_or_default()));
            }
            ("tier", amount) => {
                let value = match (a, amount) {
                    (Some(percent), _) => json!({ "percent": percent }),
                    (None, Some(units)) => {
                        json!({ "amount": money::from_units(units).to_string() })
                    }
                    (None, None) => continue,
                };
                adjustments.insert(key, value);
            }
            _ => {}
        }
    }
    if !regions.is_empty() {
        reference
            .tier_params
            .insert("region_tiers".into(), Value::Object(regions));
    }
    if !adjustments.is_empty() {
        reference
            .tier_params
            .insert("tier_adjustments".into(), Value::Object(adjustments));
    }
    Ok(reference)
}
