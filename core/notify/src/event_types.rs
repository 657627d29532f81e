//! The event types of the change feed: what webhooks subscribe to, subscriptions filter on
//! and staff rules fire on.

/// Every type the feed carries, with what it means.
pub const KINDS: &[(&str, &str)] = &[
    (
        "customer.created",
        "a customer was created (by hand, by import or by identity resolution)",
    ),
    (
        "customer.updated",
        "a customer's profile changed; `fields` names what changed",
    ),
    ("customer.deleted", "a customer was deleted"),
    (
        "customer.merged",
        "another profile (`absorbedId`) was merged into this customer",
    ),
    ("customer.unmerged", "a merge (`mergeId`) was undone"),
    (
        "event.recorded",
        "an event was recorded on the customer's timeline",
    ),
    ("tag.added", "a tag was added to the customer"),
    ("tag.removed", "a tag was removed from the customer"),
    ("segment.entered", "the customer entered a segment"),
    ("segment.left", "the customer left a segment"),
    (
        "sop.step",
        "an SOP step ran for the customer: `sopId`, `enrolmentId`, `stepId`, `outcome` (done, skipped, deferred, failed, exited, …)",
    ),
    ("task.created", "a task about the customer was created"),
    (
        "task.updated",
        "a task's status, assignee or due date changed",
    ),
    (
        "bill.settled",
        "a bill was settled (the customer as its payer, when there is one)",
    ),
    ("bill.refunded", "a bill was refunded"),
    (
        "ticket.sla_at_risk",
        "a ticket's SLA clock passed its policy's warning share: `ticketId`, `target` (first_response, resolution), `policy`, `assignee`, `queue`, `watchers`",
    ),
    (
        "ticket.survey_ready",
        "a resolved ticket's satisfaction survey is ready: `ticketId`, `type`, `token`, `path` (the customer's link on this host)",
    ),
    (
        "ticket.sla_breached",
        "a ticket's SLA clock passed its target: `ticketId`, `target`, `policy`, `assignee`, `queue`, `watchers`",
    ),
];

/// The resource whose scope decides who may hear of a change of `kind`: an event's, a
/// task's or a bill's own, else the customer's.
pub fn resource_of(kind: &str) -> shoal_base::kinds::Resource {
    use shoal_base::kinds::Resource;
    match kind {
        "event.recorded" => Resource::Events,
        "task.created" | "task.updated" => Resource::Tasks,
        "bill.settled" | "bill.refunded" => Resource::Bills,
        k if k.starts_with("ticket.") => Resource::Tickets,
        _ => Resource::Customers,
    }
}

/// Whether `kind` is a type of the feed.
pub fn known(kind: &str) -> bool {
    KINDS.iter().any(|(k, _)| *k == kind)
}

/// The payload fields a qualified type (`tag.added:VIP`, `event.recorded:CUSTOM`,
/// `event.recorded:payment_abandoned`) matches, per type.
fn qualified_by(kind: &str) -> &'static [&'static str] {
    match kind {
        "event.recorded" => &["type", "name"],
        "tag.added" | "tag.removed" => &["tag"],
        "segment.entered" | "segment.left" => &["segmentId"],
        "task.updated" => &["status"],
        "sop.step" => &["sopId", "outcome"],
        "ticket.sla_at_risk" | "ticket.sla_breached" => &["target"],
        _ => &[],
    }
}

/// Whether a change of `kind` with `payload` is one `spec` names: a type, or a type and a
/// qualifier (`tag.added:VIP` — the tag; `event.recorded:<type or name>`;
/// `segment.entered:<segment id>`; `task.updated:<status>`; `ticket.sla_breached:<target>`).
pub fn matches(spec: &str, kind: &str, payload: &serde_json::Value) -> bool {
    match spec.split_once(':') {
        None => spec == kind,
        Some((k, q)) => {
            k == kind
                && qualified_by(k).iter().any(|f| {
                    payload
                        .get(*f)
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|v| v.eq_ignore_ascii_case(q))
                })
        }
    }
}

/// Whether any of `specs` (none: every change) names the change.
pub fn any_matches(specs: &[String], kind: &str, payload: &serde_json::Value) -> bool {
    specs.is_empty() || specs.iter().any(|s| matches(s, kind, payload))
}

/// Checks a list of types given at `field` (`field[i]` names a bad one); the empty list
/// means every type. A type may carry a qualifier (see [`matches`]).
pub fn check(types: &[String], field: &str) -> shoal_base::error::Result<()> {
    for (i, t) in types.iter().enumerate() {
        let (kind, qualifier) = match t.split_once(':') {
            Some((k, q)) => (k, Some(q)),
            None => (t.as_str(), None),
        };
        if let Some(q) = qualifier
            && known(kind)
            && (qualified_by(kind).is_empty() || q.is_empty())
        {
            return Err(shoal_base::error::Error::invalid(
                format!("{field}[{i}]"),
                format!("`{kind}` takes no qualifier"),
            ));
        }
        if !known(kind) {
            let all: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            return Err(shoal_base::error::Error::invalid(
                format!("{field}[{i}]"),
                format!("`{t}` is not an event type; one of {}", all.join(", ")),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_qualified_type_matches_on_its_payload() {
        let ev = json!({"type": "CUSTOM", "name": "payment_abandoned"});
        assert!(matches("event.recorded", "event.recorded", &ev));
        assert!(matches(
            "event.recorded:payment_abandoned",
            "event.recorded",
            &ev
        ));
        assert!(matches("event.recorded:custom", "event.recorded", &ev));
        assert!(!matches("event.recorded:ORDER", "event.recorded", &ev));
        assert!(matches(
            "tag.added:高意向",
            "tag.added",
            &json!({"tag": "高意向"})
        ));
        assert!(!matches(
            "tag.added:VIP",
            "tag.removed",
            &json!({"tag": "VIP"})
        ));
    }

    #[test]
    fn bad_types_are_named_by_position() {
        let e = check(
            &["tag.added".into(), "tag.exploded".into()],
            "input.eventTypes",
        )
        .unwrap_err();
        assert!(e.to_string().contains("input.eventTypes[1]"), "{e}");
        let e = check(&["customer.created:x".into()], "t").unwrap_err();
        assert!(e.to_string().contains("takes no qualifier"), "{e}");
        assert!(check(&["task.updated:done".into()], "t").is_ok());
    }
}
