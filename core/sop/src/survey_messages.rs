//! Satisfaction surveys delivered on a channel: a resolved ticket's `ticket.survey_ready`
//! change (written in the resolving transaction) becomes, once, a service message carrying
//! the customer's survey link, on the channel the ticket type's survey names — through the
//! contact policy (opt-outs, quiet hours, caps) and the outbox, like any SOP message, with
//! the idempotency key `ticket-survey:<ticket>`. What became of it is an entry of the
//! ticket's history (`survey`): sent (queued) on the channel, or why not.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_crm::{internal_events::Internal, tenancy::Tenant};

use crate::{
    contact::{self, History, Policy, Verdict},
    definition::{CapPolicy, Purpose},
    outbox::{self, Queued},
    runner::{render_on, sent_since, time_zone_of},
};

/// The placeholder a survey message puts the customer's link in.
pub const LINK: &str = "{{survey.url}}";

/// Queues the survey message of `ev` (a `ticket.survey_ready`), in the dispatcher's
/// transaction; nothing when the type's survey names no channel.
pub(crate) async fn deliver(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &Tenant,
    ev: &Internal,
    now: DateTime<Utc>,
) -> Result<()> {
    let (Some(ticket), false) = (
        ev.payload.get("ticketId").and_then(|v| v.as_str()),
        ev.customer_id.is_empty(),
    ) else {
        return Ok(());
    };
    let Some(sent) = shoal_tickets::surveys::of_ticket_in(conn, &tenant.id, ticket).await? else {
        return Ok(());
    };
    let Some(channel) = sent.survey.channel.clone() else {
        return Ok(());
    };
    let at = time::to_micros(now);
    let note = |text: String| (text, json!({ "channel": channel }));
    let outcome = 'outcome: {
        let Some(base) = &tenant.host.public_url else {
            break 'outcome note(format!(
                "survey not sent by {channel}: the host has no server.public_url to link to"
            ));
        };
        let customers =
            shoal_crm::customers::get_many(conn, db, &tenant.id, &[ev.customer_id.as_str()])
                .await?;
        let Some(customer) = customers.get(&ev.customer_id) else {
            break 'outcome note(format!(
                "survey not sent by {channel}: the customer is gone"
            ));
        };
        let policy = Policy::of(tenant);
        let mut history = History {
            opted_out: crate::opt_outs::of_customers(conn, &tenant.id, &[customer.id.as_str()])
                .await?
                .remove(&customer.id)
                .unwrap_or_default(),
            ..History::default()
        };
        if let Some(longest) = policy.caps.iter().map(|c| c.window).max() {
            history.sent = sent_since(conn, &tenant.id, &customer.id, now - longest).await?;
        }
        let tz = time_zone_of(customer, tenant);
        let when = match contact::judge(
            &policy,
            tz,
            &channel,
            Purpose::Service,
            now,
            &history,
            CapPolicy::Defer,
        ) {
            Verdict::Send => now,
            Verdict::Defer { until, .. } => until,
            Verdict::Drop { reason } => {
                break 'outcome note(format!("survey not sent by {channel}: {reason}"));
            }
        };
        let url = format!(
            "{}{}",
            base.trim_end_matches('/'),
            shoal_tickets::surveys::path(&tenant.id, &sent.token)
        );
        let template = sent
            .survey
            .message
            .clone()
            .unwrap_or_else(|| shoal_tickets::types::DEFAULT_SURVEY_MESSAGE.to_owned());
        // the link first: a customer's own fields cannot smuggle in a placeholder
        let body = render_on(&channel, &template.replace(LINK, &url), customer);
        let key = format!("ticket-survey:{ticket}");
        outbox::queue_many(
            conn,
            &tenant.id,
            &[Queued {
                key: key.clone(),
                customer_id: customer.id.clone(),
                channel: channel.clone(),
                purpose: Purpose::Service.as_str(),
                body,
                target: None,
                sop_id: None,
                enrolment_id: None,
                campaign_id: None,
                at: when,
            }],
        )
        .await?;
        let text = if when > now {
            format!(
                "survey queued on {channel} for {}",
                when.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
            )
        } else {
            format!("survey queued on {channel}")
        };
        (text, json!({ "channel": channel, "idempotencyKey": key }))
    };
    shoal_tickets::entries::add(
        conn,
        &tenant.id,
        ticket,
        ("survey", "shoal", false),
        Some(&outcome.0),
        Some(outcome.1),
        at,
    )
    .await?;
    Ok(())
}
