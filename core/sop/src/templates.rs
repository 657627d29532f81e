//! SOP templates from industry modules, turned into definitions a tenant owns and tunes.

use std::collections::HashMap;

use serde_json::Value;

use super::definition::{Action, Definition, EventSpec, Purpose, Reentry, Step, Trigger};
use shoal_base::error::{Problems, Result};
use shoal_plugin_host::types::{SopAction, SopTemplate};

/// Replaces `${name}` by each parameter's value: JSON text inside rules (`"北京"`, `3`),
/// the bare text elsewhere (`北京`).
fn fill(text: &str, values: &[(String, Value)], in_rule: bool) -> String {
    let mut out = text.to_owned();
    for (name, v) in values {
        let value = match (v, in_rule) {
            (Value::String(s), false) => s.clone(),
            (v, _) => v.to_string(),
        };
        out = out.replace(&format!("${{{name}}}"), &value);
    }
    out
}

/// The definition of a template with its parameters (the given ones, else the defaults);
/// unknown parameter names are refused.
pub fn definition_of(t: &SopTemplate, given: &HashMap<String, Value>) -> Result<Definition> {
    let mut p = Problems::default();
    for name in given.keys() {
        if !t.params.iter().any(|q| &q.name == name) {
            p.push(
                format!("params.{name}"),
                "the template has no such parameter",
            );
        }
    }
    p.into_result(())?;
    let values: Vec<(String, Value)> = t
        .params
        .iter()
        .map(|q| {
            let v = given.get(&q.name).cloned().unwrap_or_else(|| {
                serde_json::from_str(&q.default_value)
                    .unwrap_or(Value::String(q.default_value.clone()))
            });
            (q.name.clone(), v)
        })
        .collect();
    let rule = |s: &Option<String>| s.as_deref().map(|s| fill(s, &values, true));
    let text = |s: &str| fill(s, &values, false);
    let mut steps = Vec::new();
    for s in &t.steps {
        if s.delay_seconds > 0 {
            steps.push(Step {
                id: format!("{}.wait", s.id),
                condition: None,
                action: Action::Wait {
                    seconds: s.delay_seconds,
                },
            });
        }
        let action = match &s.action {
            SopAction::SendMessage(m) => Action::SendMessage {
                channel: text(&m.channel),
                template: text(&m.template),
                purpose: Purpose::Marketing,
            },
            SopAction::CreateTask(task) => Action::CreateTask {
                title: text(&task.title),
                assignee: text(&task.assignee),
                due_in_seconds: task.due_in_seconds,
            },
            SopAction::AddTag(tag) => Action::AddTag { tag: text(tag) },
            SopAction::RemoveTag(tag) => Action::RemoveTag { tag: text(tag) },
        };
        steps.push(Step {
            id: s.id.clone(),
            condition: rule(&s.condition),
            action,
        });
    }
    let trigger = trigger_of(
        &t.trigger.event_type,
        t.trigger.event_name.as_deref().map(text).as_deref(),
        rule(&t.trigger.condition),
    )
    .map_err(|m| shoal_base::error::Error::invalid("template.trigger", m))?;
    Ok(Definition {
        triggers: vec![trigger],
        steps,
        exit_on: t.exit_on.iter().map(|e| EventSpec::parse(e)).collect(),
        exit_condition: None,
        reentry: Reentry::AfterExit,
        on_cap: Default::default(),
    })
}

/// A template's trigger. Besides event types, the frozen plugin interface carries the other
/// trigger kinds by convention in `event-type` / `event-name`:
/// `tag_added` / `tag_removed` (name: the tag), `segment_entered` / `segment_left` (name: the
/// segment id), `date` (name: `attribute[:offset-days[:annual]]`, e.g. `birthday:0:annual`,
/// `maturity_date:-14`) and `no_follow_up` (name: hours).
pub fn trigger_of(
    event_type: &str,
    name: Option<&str>,
    condition: Option<String>,
) -> Result<Trigger, String> {
    let named = || {
        name.map(str::to_owned)
            .ok_or_else(|| format!("`{event_type}` needs an event-name"))
    };
    Ok(match event_type {
        "tag_added" => Trigger::TagAdded { tag: named()? },
        "tag_removed" => Trigger::TagRemoved { tag: named()? },
        "segment_entered" => Trigger::SegmentEntered {
            segment_id: named()?,
        },
        "segment_left" => Trigger::SegmentLeft {
            segment_id: named()?,
        },
        "date" => {
            let spec = named()?;
            let mut parts = spec.split(':');
            let attribute = parts.next().unwrap_or_default().to_owned();
            let offset_days = match parts.next() {
                None | Some("") => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("`{n}` is not a number of days"))?,
            };
            let annual = match parts.next() {
                None => false,
                Some("annual") => true,
                Some(other) => return Err(format!("`{other}` should be `annual`")),
            };
            Trigger::Date {
                attribute,
                offset_days,
                annual,
            }
        }
        "no_follow_up" => Trigger::NoFollowUp {
            hours: named()?
                .parse()
                .map_err(|_| "the event-name of `no_follow_up` is a number of hours".to_owned())?,
        },
        _ => Trigger::Event {
            event: EventSpec {
                event_type: event_type.to_owned(),
                name: name.map(str::to_owned),
            },
            condition,
        },
    })
}
