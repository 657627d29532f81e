//! Settling the fields two merged profiles disagree on: pure functions, no storage.
//!
//! Lists (phones, emails) and attributes are united; an empty value never wins over a
//! filled one; where both hold different values the tenant's rule decides (most recent, or
//! source priority), unless the caller prefers a side for that field. Every decision is
//! returned as a [`Conflict`], so a person sees what was kept and what was dropped.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::matching::is_placeholder_name;
use shoal_base::config::ConflictRule;
use shoal_crm::customers::{Customer, validate::MAX_CONTACTS};

/// One of the two profiles of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Survivor,
    Absorbed,
}

/// A field both profiles held with different values, and how it was settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// `displayName`, `lifecycleStage`, `ownerId`, `sourceChannel`, `attributes.<key>`,
    /// `phones`, `emails`, `tags.<group>`.
    pub field: String,
    pub kept: Value,
    pub discarded: Value,
    pub kept_from: Side,
    /// `most_recent`, `source_priority`, `preferred` (the caller chose), `first_seen` (the
    /// source channel of the profile seen first), `limit`, `exclusive_group`,
    /// `identity_held`.
    pub rule: String,
}

/// How a merge settles conflicts.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub rule: ConflictRule,
    /// Channels, most trusted first.
    pub source_priority: &'a [String],
    /// Fields the caller settled: field name → side.
    pub prefer: &'a HashMap<String, Side>,
}

impl Policy<'_> {
    /// Which side wins a conflict on `field` under the rule.
    fn winner(&self, field: &str, survivor: &Customer, absorbed: &Customer) -> (Side, String) {
        if let Some(side) = self.prefer.get(field) {
            return (*side, "preferred".into());
        }
        let recent = if absorbed.updated_at > survivor.updated_at {
            Side::Absorbed
        } else {
            Side::Survivor
        };
        match self.rule {
            ConflictRule::MostRecent => (recent, "most_recent".into()),
            ConflictRule::SourcePriority => {
                let rank = |c: &Customer| {
                    self.source_priority
                        .iter()
                        .position(|s| s == c.source_channel.as_str())
                        .unwrap_or(usize::MAX)
                };
                let side = match rank(survivor).cmp(&rank(absorbed)) {
                    std::cmp::Ordering::Less => Side::Survivor,
                    std::cmp::Ordering::Greater => Side::Absorbed,
                    std::cmp::Ordering::Equal => recent,
                };
                (side, "source_priority".into())
            }
        }
    }
}

/// The merged profile (id, version and times of the survivor; `updated_at` left to the
/// caller) and every conflict settled on the way.
pub fn resolve(
    survivor: &Customer,
    absorbed: &Customer,
    policy: &Policy<'_>,
) -> (Customer, Vec<Conflict>) {
    let mut merged = survivor.clone();
    let mut conflicts = Vec::new();
    let mut settle = |field: &str, s: Value, a: Value, filled: &dyn Fn(&Value) -> bool| -> Side {
        match (filled(&s), filled(&a)) {
            (_, false) => Side::Survivor,
            (false, true) => Side::Absorbed,
            (true, true) if s == a => Side::Survivor,
            (true, true) => {
                let (side, rule) = policy.winner(field, survivor, absorbed);
                let (kept, discarded) = match side {
                    Side::Survivor => (s, a),
                    Side::Absorbed => (a, s),
                };
                conflicts.push(Conflict {
                    field: field.to_owned(),
                    kept,
                    discarded,
                    kept_from: side,
                    rule,
                });
                side
            }
        }
    };
    let text_filled = |v: &Value| v.as_str().is_some_and(|s| !is_placeholder_name(s));
    let some = |v: &Value| !v.is_null();
    if settle(
        "displayName",
        json!(survivor.display_name),
        json!(absorbed.display_name),
        &text_filled,
    ) == Side::Absorbed
    {
        merged.display_name = absorbed.display_name.clone();
    }
    // a derived stage is not a value anyone chose: a stage set by hand wins over it, and
    // when neither was set by hand, derivation recomputes it after the merge
    let chosen = |c: &Customer| {
        if c.stage_manual {
            json!(c.lifecycle_stage.as_str())
        } else {
            Value::Null
        }
    };
    if settle("lifecycleStage", chosen(survivor), chosen(absorbed), &some) == Side::Absorbed {
        merged.lifecycle_stage = absorbed.lifecycle_stage;
    }
    merged.stage_manual = survivor.stage_manual || absorbed.stage_manual;
    if settle(
        "ownerId",
        json!(survivor.owner_id),
        json!(absorbed.owner_id),
        &some,
    ) == Side::Absorbed
    {
        merged.owner_id = absorbed.owner_id.clone();
    }
    for (key, value) in &absorbed.attributes {
        let field = format!("attributes.{key}");
        let mine = survivor.attributes.get(key).cloned().unwrap_or(Value::Null);
        if settle(&field, mine, value.clone(), &some) == Side::Absorbed {
            merged.attributes.insert(key.clone(), value.clone());
        }
    }
    if survivor.source_channel != absorbed.source_channel {
        // where the customer first came from: the profile seen first, unless preferred
        let (side, rule) = match policy.prefer.get("sourceChannel") {
            Some(side) => (*side, "preferred"),
            None if absorbed.created_at < survivor.created_at => (Side::Absorbed, "first_seen"),
            None => (Side::Survivor, "first_seen"),
        };
        let (kept, discarded) = match side {
            Side::Survivor => (survivor.source_channel, absorbed.source_channel),
            Side::Absorbed => (absorbed.source_channel, survivor.source_channel),
        };
        conflicts.push(Conflict {
            field: "sourceChannel".into(),
            kept: json!(kept.as_str()),
            discarded: json!(discarded.as_str()),
            kept_from: side,
            rule: rule.into(),
        });
        merged.source_channel = kept;
    }
    merged.phones = unite("phones", &survivor.phones, &absorbed.phones, &mut conflicts);
    merged.emails = unite("emails", &survivor.emails, &absorbed.emails, &mut conflicts);
    merged.created_at = survivor.created_at.min(absorbed.created_at);
    (merged, conflicts)
}

/// The survivor's values then the absorbed one's new ones, up to the contact limit; what
/// does not fit is reported.
fn unite(field: &str, s: &[String], a: &[String], conflicts: &mut Vec<Conflict>) -> Vec<String> {
    let mut out = s.to_vec();
    let mut dropped = Vec::new();
    for v in a {
        if out.contains(v) {
            continue;
        }
        if out.len() < MAX_CONTACTS {
            out.push(v.clone());
        } else {
            dropped.push(v.clone());
        }
    }
    if !dropped.is_empty() {
        conflicts.push(Conflict {
            field: field.to_owned(),
            kept: json!(out),
            discarded: json!(dropped),
            kept_from: Side::Survivor,
            rule: "limit".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use shoal_base::kinds::{Channel, LifecycleStage};

    fn customer(name: &str, channel: Channel, minutes_ago: i64) -> Customer {
        let at = Utc::now() - Duration::minutes(minutes_ago);
        Customer {
            id: name.into(),
            display_name: name.into(),
            phones: vec![],
            emails: vec![],
            attributes: Default::default(),
            lifecycle_stage: LifecycleStage::Lead,
            stage_manual: false,
            owner_id: None,
            source_channel: channel,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    const ORDER: &[&str] = &["wecom", "shop", "import"];

    fn run(
        s: &Customer,
        a: &Customer,
        rule: ConflictRule,
        prefer: &HashMap<String, Side>,
    ) -> (Customer, Vec<Conflict>) {
        let order: Vec<String> = ORDER.iter().map(|c| c.to_string()).collect();
        resolve(
            s,
            a,
            &Policy {
                rule,
                source_priority: &order,
                prefer,
            },
        )
    }

    #[test]
    fn most_recent_wins_and_the_conflict_is_shown() {
        let s = customer("王芳", Channel::Wecom, 60);
        let mut a = customer("王小芳", Channel::Import, 1);
        a.phones = vec!["+8613800138001".into()];
        let prefer = HashMap::new();
        let (m, conflicts) = run(&s, &a, ConflictRule::MostRecent, &prefer);
        assert_eq!(m.display_name, "王小芳");
        assert_eq!(m.phones, vec!["+8613800138001".to_string()]);
        let names: Vec<_> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(names, ["displayName", "sourceChannel"]);
        assert_eq!(
            m.source_channel,
            Channel::Wecom,
            "where the customer came from first"
        );
        assert_eq!(conflicts[0].kept_from, Side::Absorbed);
        assert_eq!(conflicts[0].discarded, json!("王芳"));
    }

    #[test]
    fn source_priority_beats_recency_and_empty_never_wins() {
        let mut s = customer("王芳", Channel::Wecom, 60);
        s.attributes.insert("city".into(), json!("上海"));
        let mut a = customer("未知", Channel::Import, 1);
        a.attributes.insert("city".into(), json!("北京"));
        a.attributes.insert("vip".into(), json!(true));
        a.owner_id = Some("u1".into());
        let prefer = HashMap::new();
        let (m, conflicts) = run(&s, &a, ConflictRule::SourcePriority, &prefer);
        assert_eq!(m.display_name, "王芳", "a placeholder name never wins");
        assert_eq!(m.attributes.get("city"), Some(&json!("上海")));
        assert_eq!(m.attributes.get("vip"), Some(&json!(true)));
        assert_eq!(m.owner_id.as_deref(), Some("u1"), "gaps are filled");
        let city = conflicts
            .iter()
            .find(|c| c.field == "attributes.city")
            .unwrap();
        assert_eq!(city.rule, "source_priority");
    }

    #[test]
    fn a_preferred_side_overrides_the_rule() {
        let s = customer("王芳", Channel::Wecom, 60);
        let a = customer("Wang Fang", Channel::Import, 1);
        let prefer = HashMap::from([("displayName".to_string(), Side::Survivor)]);
        let (m, conflicts) = run(&s, &a, ConflictRule::MostRecent, &prefer);
        assert_eq!(m.display_name, "王芳");
        assert_eq!(conflicts[0].rule, "preferred");
    }

    #[test]
    fn contact_lists_unite_up_to_the_limit() {
        let mut s = customer("a", Channel::Web, 1);
        s.phones = (0..9).map(|i| format!("+861380013800{i}")).collect();
        let mut a = customer("a", Channel::Web, 1);
        a.phones = vec![
            "+8613800138000".into(),
            "+8613900000001".into(),
            "+8613900000002".into(),
        ];
        let prefer = HashMap::new();
        let (m, conflicts) = run(&s, &a, ConflictRule::MostRecent, &prefer);
        assert_eq!(m.phones.len(), MAX_CONTACTS);
        assert_eq!(conflicts[0].field, "phones");
        assert_eq!(conflicts[0].discarded, json!(["+8613900000002"]));
    }
}
