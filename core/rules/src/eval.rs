//! The in-memory evaluator: one customer's facts, three-valued logic exactly as SQL's
//! (an unknown — a missing attribute, `days_since` with no such event — is neither true nor
//! false), so it agrees with the SQL evaluator on every customer.

use std::collections::HashSet;

use serde_json::Value;

use super::ast::{AttrTest, Cond, EventFilter, Num};
use shoal_base::kinds::EventType;

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One event, as rules see it.
#[derive(Debug, Clone)]
pub struct EventFact {
    pub event_type: EventType,
    pub name: Option<String>,
    /// UTC microseconds.
    pub occurred_at: i64,
    pub amount_units: Option<i64>,
}

/// Everything a rule may look at for one customer.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Evaluation time, UTC microseconds.
    pub now: i64,
    pub created_at: i64,
    pub stage: &'a str,
    pub channel: &'a str,
    pub attributes: &'a serde_json::Map<String, Value>,
    /// Ids of the tags the customer has.
    pub tags: &'a HashSet<String>,
    pub events: &'a [EventFact],
}

fn matching<'a>(
    facts: &'a Facts<'_>,
    f: &'a EventFilter,
    window: Option<i64>,
) -> impl Iterator<Item = &'a EventFact> + 'a {
    let cut = window.map(|secs| facts.now - secs * 1_000_000);
    facts.events.iter().filter(move |e| {
        e.event_type == f.event_type
            && (f.name.is_none() || e.name == f.name)
            && cut.is_none_or(|cut| e.occurred_at >= cut)
    })
}

fn num(n: &Num, facts: &Facts<'_>) -> Option<i64> {
    match n {
        Num::Count(f, w) => Some(matching(facts, f, *w).count() as i64),
        Num::SumUnits(f, w) => Some(matching(facts, f, *w).filter_map(|e| e.amount_units).sum()),
        Num::DaysSince(f) => matching(facts, f, None)
            .map(|e| e.occurred_at)
            .max()
            .map(|last| (facts.now - last) / MICROS_PER_DAY),
        Num::DaysSinceCreated => Some((facts.now - facts.created_at) / MICROS_PER_DAY),
        Num::Lit(v) => Some(*v),
    }
}

fn attr(test: &AttrTest, value: Option<&Value>) -> Option<bool> {
    let value = value?; // missing: unknown
    let (result, negated) = match (test, value) {
        (AttrTest::StrIn(list, neg), Value::String(s)) => (list.contains(s), *neg),
        (AttrTest::StrIn(_, neg), _) => (false, *neg),
        (AttrTest::Num(op, want), Value::Number(n)) => {
            (n.as_f64().is_some_and(|v| op.holds(v, *want)), false)
        }
        (AttrTest::Num(..), _) => (false, false),
        (AttrTest::Bool(want, neg), Value::Bool(b)) => (b == want, *neg),
        (AttrTest::Bool(_, neg), _) => (false, *neg),
    };
    Some(result != negated)
}

/// `Some(true)` when the rule holds, `Some(false)` when it does not, `None` when unknown.
pub fn eval(cond: &Cond, facts: &Facts<'_>) -> Option<bool> {
    match cond {
        Cond::And(a, b) => match (eval(a, facts), eval(b, facts)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Cond::Or(a, b) => match (eval(a, facts), eval(b, facts)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Cond::Not(a) => eval(a, facts).map(|v| !v),
        Cond::Compare(a, op, b) => Some(op.holds(num(a, facts)?, num(b, facts)?)),
        Cond::Exists(f, w) => Some(matching(facts, f, *w).next().is_some()),
        Cond::HasTag { id, .. } => Some(facts.tags.contains(id)),
        Cond::StageIn(list, negated) => Some(list.iter().any(|s| s == facts.stage) != *negated),
        Cond::ChannelIn(list, negated) => Some(list.iter().any(|s| s == facts.channel) != *negated),
        Cond::Attr { key, test } => attr(test, facts.attributes.get(key)),
        Cond::Bool(b) => Some(*b),
    }
}

/// Whether the rule holds (an unknown does not).
pub fn holds(cond: &Cond, facts: &Facts<'_>) -> bool {
    eval(cond, facts) == Some(true)
}
