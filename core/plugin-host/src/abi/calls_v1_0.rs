//! Field-by-field conversions between 1.0 and 1.1 for what crosses on every call (`settle`,
//! `evaluate-tags`): moves and copies, no serialisation. What a module says once at load
//! (`describe`, templates) converts through serde instead (`guest::upgrade`).

use super::{latest as new, v1_0::shoal::plugin::types as old};

fn money_down(m: &new::Money) -> old::Money {
    old::Money {
        amount: m.amount.clone(),
        currency: m.currency.clone(),
    }
}

fn money_up(m: old::Money) -> new::Money {
    new::Money {
        amount: m.amount,
        currency: m.currency,
    }
}

fn kind_down(k: new::LineKind) -> old::LineKind {
    match k {
        new::LineKind::Labour => old::LineKind::Labour,
        new::LineKind::Part => old::LineKind::Part,
        new::LineKind::Transport => old::LineKind::Transport,
        new::LineKind::Service => old::LineKind::Service,
        new::LineKind::Adjustment => old::LineKind::Adjustment,
        new::LineKind::Other => old::LineKind::Other,
    }
}

fn kind_up(k: old::LineKind) -> new::LineKind {
    match k {
        old::LineKind::Labour => new::LineKind::Labour,
        old::LineKind::Part => new::LineKind::Part,
        old::LineKind::Transport => new::LineKind::Transport,
        old::LineKind::Service => new::LineKind::Service,
        old::LineKind::Adjustment => new::LineKind::Adjustment,
        old::LineKind::Other => new::LineKind::Other,
    }
}

/// A settle request for a 1.0 module.
pub fn settle_request(r: &new::SettleRequest) -> old::SettleRequest {
    old::SettleRequest {
        bill_id: r.bill_id.clone(),
        currency: r.currency.clone(),
        region: r.region.clone(),
        lines: r
            .lines
            .iter()
            .map(|l| old::BillLine {
                code: l.code.clone(),
                description: l.description.clone(),
                kind: kind_down(l.kind),
                quantity: l.quantity.clone(),
                unit_price: money_down(&l.unit_price),
            })
            .collect(),
        participants: r
            .participants
            .iter()
            .map(|p| old::Participant {
                id: p.id.clone(),
                role: p.role.clone(),
                parent: p.parent.clone(),
            })
            .collect(),
        attributes: r.attributes.clone(),
    }
}

/// A 1.0 module's refusal.
pub fn plugin_error(e: old::PluginError) -> new::PluginError {
    new::PluginError {
        code: e.code,
        message: e.message,
    }
}

/// A 1.0 module's settlement.
pub fn settlement(s: old::Settlement) -> new::Settlement {
    new::Settlement {
        lines: s
            .lines
            .into_iter()
            .map(|l| new::SettledLine {
                code: l.code,
                description: l.description,
                kind: kind_up(l.kind),
                quantity: l.quantity,
                unit_price: money_up(l.unit_price),
                amount: money_up(l.amount),
                note: l.note,
            })
            .collect(),
        total: money_up(s.total),
        splits: s
            .splits
            .into_iter()
            .map(|x| new::Split {
                participant_id: x.participant_id,
                amount: money_up(x.amount),
                reason: x.reason,
            })
            .collect(),
        notes: s.notes,
    }
}

/// A customer profile for a 1.0 module.
pub fn profile(p: &new::CustomerProfile) -> old::CustomerProfile {
    old::CustomerProfile {
        id: p.id.clone(),
        lifecycle_stage: p.lifecycle_stage.clone(),
        attributes: p.attributes.clone(),
        tags: p.tags.clone(),
        stats: p
            .stats
            .iter()
            .map(|s| old::EventStat {
                event_type: s.event_type.clone(),
                count_30d: s.count_30d,
                count_90d: s.count_90d,
                count_total: s.count_total,
                seconds_since_last: s.seconds_since_last,
                amount_total: s.amount_total.clone(),
            })
            .collect(),
    }
}

/// A 1.0 module's tag decisions.
pub fn decisions(d: Vec<old::TagDecision>) -> Vec<new::TagDecision> {
    d.into_iter()
        .map(|d| new::TagDecision {
            tag: d.tag,
            apply: d.apply,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field-by-field conversions agree with the serde ones (the same values).
    #[test]
    fn field_by_field_agrees_with_serde() {
        let request: new::SettleRequest = serde_json::from_value(serde_json::json!({
            "bill_id": "B-1", "currency": "CNY", "region": "上海",
            "lines": [{ "code": "L", "description": "d", "kind": "Transport", "quantity": "1.5",
                "unit_price": { "amount": "9.90", "currency": "CNY" } }],
            "participants": [{ "id": "hq", "role": "hq", "parent": null }],
            "attributes": "{}"
        }))
        .unwrap();
        let down: old::SettleRequest = super::super::guest::downgrade(&request).unwrap();
        assert_eq!(settle_request(&request), down);
        let answer: old::Settlement = serde_json::from_value(serde_json::json!({
            "lines": [{ "code": "L", "description": "d", "kind": "Adjustment", "quantity": "1",
                "unit_price": { "amount": "-1.00", "currency": "CNY" },
                "amount": { "amount": "-1.00", "currency": "CNY" }, "note": "n" }],
            "total": { "amount": "-1.00", "currency": "CNY" },
            "splits": [{ "participant_id": "hq", "amount": { "amount": "-1.00", "currency": "CNY" }, "reason": "r" }],
            "notes": ["x"]
        }))
        .unwrap();
        let up: new::Settlement = super::super::guest::upgrade(answer.clone()).unwrap();
        assert_eq!(settlement(answer), up);
    }
}
