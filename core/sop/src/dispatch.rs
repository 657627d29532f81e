//! The trigger dispatcher: turns internal events (events recorded, tags added/removed,
//! segments entered/left) into enrolments, wakes enrolments waiting for an event or ended
//! by one, and scans date attributes and neglected customers on a slower cadence.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{
    definition::{Compiled, Trigger},
    enrolments::enrol,
    store::{self, Sop},
};
use shoal_base::{
    error::Result,
    storage::{Db, dialect, sql::Sql, time},
};
use shoal_crm::{
    internal_events::{self, Internal},
    tenancy::Tenant,
};
use shoal_plugin_host::PluginHost;

/// Internal events one dispatch transaction takes.
const BATCH: i64 = 1000;

/// Dispatches the tenant's pending internal events (one batch); returns how many.
///
/// The customers of recorded events are evaluated first (lifecycle stage, dynamic tags, the
/// modules' `evaluate-tags`), before the transaction that takes the events, so their
/// triggers' conditions see the tags the events earned and the module calls and reads run
/// outside the write lock. An evaluation whose events are not taken (a crash, another host
/// took them) is done again: it is idempotent, it writes only differences. The tag and
/// stage changes it makes are internal events of their own, dispatched next round.
pub async fn dispatch(
    db: &Db,
    host: Option<&PluginHost>,
    tenant: &Arc<Tenant>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut conn = db.pool.acquire().await?;
    let pending = internal_events::peek(&mut conn, &tenant.id, BATCH).await?;
    drop(conn);
    if pending.is_empty() {
        return Ok(0);
    }
    let mut seen = HashSet::new();
    let recorded: Vec<String> = pending
        .iter()
        .filter(|(_, kind, _)| kind == "event.recorded")
        .map(|(_, _, customer)| customer)
        .filter(|c| seen.insert(c.as_str()))
        .cloned()
        .collect();
    if !recorded.is_empty() {
        shoal_tags::evaluate_customers(db, host, tenant, &recorded).await?;
    }
    let ids: Vec<String> = pending.into_iter().map(|(id, ..)| id).collect();
    let mut tx = db.begin_write().await?;
    let taken = internal_events::take_ids(&mut tx, db.backend, &tenant.id, &ids).await?;
    if taken.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let sops = store::active(&mut tx, &tenant.id).await?;
    let mut facts: HashMap<String, Option<shoal_tags::Loaded>> = HashMap::new();
    for ev in &taken {
        handle(&mut tx, db, tenant, &sops, ev, now, &mut facts).await?;
    }
    tx.commit().await?;
    Ok(taken.len())
}

fn text<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str)
}

async fn handle(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &Tenant,
    sops: &[(Sop, Compiled)],
    ev: &Internal,
    now: DateTime<Utc>,
    facts: &mut HashMap<String, Option<shoal_tags::Loaded>>,
) -> Result<()> {
    let at = time::to_micros(now);
    if ev.kind == "ticket.survey_ready" {
        return crate::survey_messages::deliver(conn, db, tenant, ev, now).await;
    }
    if ev.kind == "event.recorded" {
        let (ty, name) = (
            text(&ev.payload, "type").unwrap_or(""),
            text(&ev.payload, "name"),
        );
        // Enrolments waiting for this event, or ended by it, run now.
        let mut keys = vec![ty.to_owned()];
        if let Some(n) = name {
            keys.push(format!("{ty}:{n}"));
        }
        let mut sql = Sql::new("UPDATE sop_enrolments SET next_run_at = ");
        let a = sql.arg(at);
        let t = sql.arg(tenant.id.as_str());
        let c = sql.arg(ev.customer_id.as_str());
        let k: Vec<String> = keys.iter().map(|k| sql.arg(k.clone())).collect();
        sql.push(&format!(
            "{a} WHERE tenant_id = {t} AND customer_id = {c} AND status = 'active' AND (waiting_for IN ({})",
            k.join(", ")
        ));
        let ending: Vec<String> = sops
            .iter()
            .filter(|(_, c)| c.definition.exit_on.iter().any(|s| s.matches(ty, name)))
            .map(|(s, _)| s.id.clone())
            .collect();
        if !ending.is_empty() {
            let e: Vec<String> = ending.into_iter().map(|id| sql.arg(id)).collect();
            sql.push(&format!(" OR sop_id IN ({})", e.join(", ")));
        }
        sql.push(")");
        sql.query().execute(&mut *conn).await?;
    }
    for (sop, compiled) in sops {
        if sop.activated_at.is_none_or(|a| time::to_micros(a) > ev.at) {
            continue;
        }
        for (i, trigger) in compiled.definition.triggers.iter().enumerate() {
            let fires = match (trigger, ev.kind.as_str()) {
                (Trigger::Event { event, .. }, "event.recorded") => event.matches(
                    text(&ev.payload, "type").unwrap_or(""),
                    text(&ev.payload, "name"),
                ),
                (Trigger::TagAdded { tag }, "tag.added")
                | (Trigger::TagRemoved { tag }, "tag.removed") => {
                    text(&ev.payload, "tag") == Some(tag.as_str())
                }
                (Trigger::SegmentEntered { segment_id }, "segment.entered")
                | (Trigger::SegmentLeft { segment_id }, "segment.left") => {
                    text(&ev.payload, "segmentId") == Some(segment_id.as_str())
                }
                _ => false,
            };
            if !fires {
                continue;
            }
            if let Some(rule) = &compiled.trigger_conditions[i] {
                if !facts.contains_key(&ev.customer_id) {
                    let loaded = shoal_tags::load(conn, db, &tenant.id, &ev.customer_id).await?;
                    facts.insert(ev.customer_id.clone(), loaded);
                }
                let holds = facts[&ev.customer_id]
                    .as_ref()
                    .is_some_and(|f| shoal_rules::eval::holds(&rule.cond, &f.facts(at)));
                if !holds {
                    continue;
                }
            }
            let info = describe(trigger);
            enrol(
                conn,
                &tenant.id,
                &sop.id,
                sop.version,
                compiled.definition.reentry,
                &ev.customer_id,
                &format!("internal:{}", ev.id),
                &info,
                now,
            )
            .await?;
            break; // one enrolment per event and SOP
        }
    }
    Ok(())
}

/// A trigger in words, for the enrolment's record.
pub fn describe(t: &Trigger) -> String {
    match t {
        Trigger::Event { event, .. } => format!("event {}", event.key()),
        Trigger::TagAdded { tag } => format!("tag \"{tag}\" added"),
        Trigger::TagRemoved { tag } => format!("tag \"{tag}\" removed"),
        Trigger::SegmentEntered { segment_id } => format!("entered segment {segment_id}"),
        Trigger::SegmentLeft { segment_id } => format!("left segment {segment_id}"),
        Trigger::Date {
            attribute,
            offset_days,
            annual,
        } => {
            format!(
                "date attribute {attribute}{} {offset_days:+} days",
                if *annual { " (yearly)" } else { "" }
            )
        }
        Trigger::NoFollowUp { hours } => format!("no follow-up for {hours} h"),
    }
}

/// Reads the date at the start of an attribute value (`2026-05-01`, `2026-05-01T…`).
fn date_of(v: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v.get(..10)?, "%Y-%m-%d").ok()
}

/// Whether a date trigger fires today for a customer's attribute date.
pub fn date_fires(value: NaiveDate, today: NaiveDate, offset_days: i32, annual: bool) -> bool {
    let target = today - Duration::days(i64::from(offset_days));
    if annual {
        // 29 February counts on 28 February in other years
        let (m, d) = (value.month(), value.day());
        (m, d) == (target.month(), target.day())
            || (m == 2
                && d == 29
                && target.month() == 2
                && target.day() == 28
                && NaiveDate::from_ymd_opt(target.year(), 2, 29).is_none())
    } else {
        value == target
    }
}

/// Enrols customers by date attributes and by missing follow-ups (for active SOPs with
/// such triggers); returns how many were enrolled. Candidates are read first — the
/// customers' attributes at most once per scan — and enrolled in one write transaction.
pub async fn scan(db: &Db, tenant: &Tenant, now: DateTime<Utc>) -> Result<usize> {
    let mut conn = db.pool.acquire().await?;
    let sops = store::active(&mut conn, &tenant.id).await?;
    let today = now.with_timezone(&tenant.time_zone).date_naive();
    // (sop, customer, trigger key, trigger) to enrol
    let mut due: Vec<(&Sop, &Compiled, String, String, &Trigger)> = Vec::new();
    let mut attributes: Option<Vec<(String, serde_json::Map<String, Value>)>> = None;
    for (sop, compiled) in &sops {
        for trigger in &compiled.definition.triggers {
            match trigger {
                Trigger::Date {
                    attribute,
                    offset_days,
                    annual,
                } => {
                    if attributes.is_none() {
                        attributes = Some(all_attributes(&mut conn, db, &tenant.id).await?);
                    }
                    for (id, map) in attributes.iter().flatten() {
                        let date = map.get(attribute).and_then(Value::as_str).and_then(date_of);
                        if date.is_some_and(|d| date_fires(d, today, *offset_days, *annual)) {
                            let key = format!("date:{attribute}:{today}");
                            due.push((sop, compiled, id.clone(), key, trigger));
                        }
                    }
                }
                Trigger::NoFollowUp { hours } => {
                    let cut = time::to_micros(now) - i64::from(*hours) * 3_600_000_000;
                    let rows = sqlx::query(
                        "SELECT c.id, (SELECT MAX(f.at) FROM follow_ups f WHERE f.tenant_id = c.tenant_id AND f.customer_id = c.id) AS last \
                         FROM customers c WHERE c.tenant_id = $1 AND c.deleted_at IS NULL AND c.created_at < $2 AND NOT EXISTS \
                         (SELECT 1 FROM follow_ups f WHERE f.tenant_id = c.tenant_id AND f.customer_id = c.id AND f.at >= $2)",
                    )
                    .bind(&tenant.id)
                    .bind(cut)
                    .fetch_all(&mut *conn)
                    .await?;
                    for r in rows {
                        let last: Option<i64> = r.try_get("last")?;
                        // a new lapse (after a new follow-up) may enrol again
                        let key = format!(
                            "no-follow-up:{}",
                            last.map_or("never".to_owned(), |l| l.to_string())
                        );
                        due.push((sop, compiled, r.try_get("id")?, key, trigger));
                    }
                }
                _ => {}
            }
        }
    }
    drop(conn);
    if due.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    let mut enrolled = 0;
    for (sop, compiled, customer, key, trigger) in due {
        let info = describe(trigger);
        let reentry = compiled.definition.reentry;
        if enrol(
            &mut tx,
            &tenant.id,
            &sop.id,
            sop.version,
            reentry,
            &customer,
            &key,
            &info,
            now,
        )
        .await?
        {
            enrolled += 1;
        }
    }
    tx.commit().await?;
    Ok(enrolled)
}

/// Every live customer's attributes, sealed ones opened (a birthday may be sealed).
async fn all_attributes(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    tenant: &str,
) -> Result<Vec<(String, serde_json::Map<String, Value>)>> {
    let sql = format!(
        "SELECT id, {} AS attributes, attributes_sealed FROM customers WHERE tenant_id = $1 AND deleted_at IS NULL",
        dialect::json_text(db.backend, "attributes")
    );
    let mut out = Vec::new();
    for r in sqlx::query(&sql).bind(tenant).fetch_all(conn).await? {
        let text: String = r.try_get("attributes")?;
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) {
            let sealed: Option<String> = r.try_get("attributes_sealed")?;
            let map = shoal_crm::customers::sealed::join_attributes(
                &db.vault,
                tenant,
                map,
                sealed.as_deref(),
            )?;
            out.push((r.try_get("id")?, map));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn date_triggers_fire_on_the_offset_day() {
        // renewal date 2026-12-07, 14 days before: fires on 2026-11-23
        assert!(date_fires(d(2026, 12, 7), d(2026, 11, 23), -14, false));
        assert!(!date_fires(d(2026, 12, 7), d(2026, 11, 24), -14, false));
        // birthdays fire every year on the day
        assert!(date_fires(d(1990, 11, 23), d(2026, 11, 23), 0, true));
        assert!(!date_fires(d(1990, 11, 23), d(2026, 11, 23), 0, false));
        // 29 February birthdays on 28 February in common years
        assert!(date_fires(d(2000, 2, 29), d(2027, 2, 28), 0, true));
        assert!(!date_fires(d(2000, 2, 29), d(2028, 2, 28), 0, true));
    }

    #[test]
    fn attribute_dates_may_carry_a_time() {
        assert_eq!(date_of("2026-05-01T08:00:00Z"), Some(d(2026, 5, 1)));
        assert_eq!(date_of("01/05/2026"), None);
    }
}
