//! What happened after release: the outbox's verdicts copied onto the recipients (sent,
//! failed, cancelled), channel reports (delivery receipts, opens, clicks; WeCom's send
//! results polled), conversions (an order within the attribution window), and campaigns
//! completed once nothing of theirs is left waiting. Every move goes through
//! [`model::may_move_to`](crate::model::may_move_to): a status never moves backwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_crm::tenancy::Tenant;
use shoal_sop::channels::{Adapters, Ctx};

use crate::model::{Campaign, Recipient, Status, may_move_to};

/// Copies the outbox's verdicts onto a campaign's recipients, records conversions, and
/// completes the campaign when nothing is left waiting. Answers how many recipients moved.
pub async fn sync(db: &Db, tenant: &Tenant, c: &Campaign, now: DateTime<Utc>) -> Result<u64> {
    let stamp = time::to_micros(now);
    let mut moved = 0;
    for (outbox_status, to) in [
        ("sent", Recipient::Sent),
        ("failed", Recipient::Failed),
        ("cancelled", Recipient::Cancelled),
    ] {
        let reason = if to == Recipient::Sent {
            "NULL"
        } else {
            "(SELECT m.last_error FROM outbox_messages m WHERE m.tenant_id = $1 AND m.id = campaign_recipients.message_id)"
        };
        // a message a cancel could not stop (it was being handed over) reads `sent`
        let cond = if to == Recipient::Sent {
            "status_rank < 3".to_owned()
        } else {
            may_move_to(to)
        };
        moved += sqlx::query(&format!(
            "UPDATE campaign_recipients SET status = $3, status_rank = $4, reason = {reason}, updated_at = $5, \
             sent_at = (SELECT m.sent_at FROM outbox_messages m WHERE m.tenant_id = $1 AND m.id = campaign_recipients.message_id) \
             WHERE tenant_id = $1 AND campaign_id = $2 AND message_id IS NOT NULL AND {cond} AND message_id IN \
             (SELECT id FROM outbox_messages WHERE tenant_id = $1 AND campaign_id = $2 AND status = $6)"
        ))
        .bind(&tenant.id)
        .bind(&c.id)
        .bind(to.as_str())
        .bind(to.rank())
        .bind(stamp)
        .bind(outbox_status)
        .execute(&db.pool)
        .await?
        .rows_affected();
    }
    // an order after the message, within the attribution window
    moved += sqlx::query(&format!(
        "UPDATE campaign_recipients SET status = 'converted', status_rank = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND campaign_id = $2 AND sent_at IS NOT NULL AND status_rank >= 3 AND {} \
         AND EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = $1 AND e.customer_id = campaign_recipients.customer_id \
         AND e.event_type = 'order' AND e.occurred_at >= campaign_recipients.sent_at AND e.occurred_at < campaign_recipients.sent_at + $5)",
        may_move_to(Recipient::Converted)
    ))
    .bind(&tenant.id)
    .bind(&c.id)
    .bind(Recipient::Converted.rank())
    .bind(stamp)
    .bind(c.attribution_hours * 3_600_000_000)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if c.status == Status::Running {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2 AND status_rank < 2",
        )
        .bind(&tenant.id)
        .bind(&c.id)
        .fetch_one(&db.pool)
        .await?;
        if waiting == 0 {
            sqlx::query(
                "UPDATE campaigns SET status = 'completed', finished_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
            )
            .bind(&tenant.id)
            .bind(&c.id)
            .bind(stamp)
            .execute(&db.pool)
            .await?;
        }
    }
    Ok(moved)
}

/// Records what a channel reported about one outbox message of a campaign (a delivery
/// receipt, an open, a click, a failure): answers whether the recipient moved (a report
/// that would move it backwards, or out of a final status, is ignored).
pub async fn record(
    db: &Db,
    tenant: &str,
    message_id: &str,
    to: Recipient,
    error: Option<&str>,
) -> Result<bool> {
    let moved = sqlx::query(&format!(
        "UPDATE campaign_recipients SET status = $3, status_rank = $4, reason = COALESCE($5, reason), updated_at = $6 \
         WHERE tenant_id = $1 AND message_id = $2 AND {}",
        may_move_to(to)
    ))
    .bind(tenant)
    .bind(message_id)
    .bind(to.as_str())
    .bind(to.rank())
    .bind(error)
    .bind(time::to_micros(time::now()))
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(moved > 0)
}

/// Polls WeCom for the send results of a campaign's messages still reading `sent`: 1 →
/// delivered, 2 → failed (not a contact of the sender), 3 → failed (the customer's monthly
/// quota is used up); 0 (the staff member has not sent it yet) leaves it. For a cancelled
/// campaign each such task is first withdrawn (`cancel_groupmsg_send`) and what was not sent
/// before that fails as withdrawn. Answers how many moved.
pub async fn poll_wecom(db: &Db, tenant: &Tenant, c: &Campaign, ctx: Ctx<'_>) -> Result<u64> {
    let adapters = Adapters::of(tenant);
    let Some(wecom) = adapters.wecom() else {
        return Ok(0);
    };
    let rows = sqlx::query(
        "SELECT r.message_id, m.provider_ref, m.target FROM campaign_recipients r JOIN outbox_messages m \
         ON m.tenant_id = r.tenant_id AND m.id = r.message_id \
         WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.status = 'sent' AND m.provider_ref IS NOT NULL LIMIT 200",
    )
    .bind(&tenant.id)
    .bind(&c.id)
    .fetch_all(&db.pool)
    .await?;
    // msgid + sender → (external_userid → outbox message)
    let mut by_task: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for r in &rows {
        let reference: String = r.try_get("provider_ref")?;
        let target: Option<String> = r.try_get("target")?;
        let Some((msgid, sender)) = reference.split_once(' ') else {
            continue;
        };
        by_task
            .entry((msgid.to_owned(), sender.to_owned()))
            .or_default()
            .push((target.unwrap_or_default(), r.try_get("message_id")?));
    }
    let mut moved = 0;
    let withdraw = c.status == Status::Cancelled;
    for ((msgid, sender), recipients) in by_task {
        // a cancelled campaign's tasks the senders have not confirmed are withdrawn; what
        // they sent before that still reads as delivered below
        if withdraw && let Err(e) = wecom.cancel(ctx, &msgid).await {
            tracing::warn!(tenant = %tenant.id, campaign = %c.id, msgid, error = ?e, "WeCom task not withdrawn");
            continue;
        }
        let results = match wecom.send_results(ctx, &msgid, &sender).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, campaign = %c.id, msgid, error = ?e, "WeCom send results not read");
                continue;
            }
        };
        for (external, message) in &recipients {
            let Some(result) = results.iter().find(|r| &r.external_userid == external) else {
                continue;
            };
            let (to, why) = match result.status {
                1 => (Recipient::Delivered, None),
                2 => (
                    Recipient::Failed,
                    Some("WeCom: the customer is not (any more) a contact of the sender"),
                ),
                3 => (
                    Recipient::Failed,
                    Some("WeCom: the customer's quota of mass messages is used up"),
                ),
                _ => continue,
            };
            if record(db, &tenant.id, message, to, why).await? {
                moved += 1;
            }
        }
        if withdraw {
            for (_, message) in &recipients {
                let why =
                    "withdrawn: the campaign was cancelled before the sender confirmed it in WeCom";
                if record(db, &tenant.id, message, Recipient::Failed, Some(why)).await? {
                    moved += 1;
                }
            }
        }
    }
    Ok(moved)
}

/// Why a channel's report was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRefused {
    /// The tenant has no adapter for the channel that takes reports.
    NoChannel,
    /// The signature, timestamp or body is wrong (the message says which).
    Invalid(String),
}

/// Takes an SMS gateway's signed delivery report: answers whether a recipient moved.
pub async fn sms_receipt(
    db: &Db,
    tenant: &Tenant,
    (id, timestamp, signature): (&str, &str, &str),
    body: &[u8],
) -> Result<std::result::Result<bool, ReportRefused>> {
    let adapters = Adapters::of(tenant);
    let Some(sms) = adapters.sms() else {
        return Ok(Err(ReportRefused::NoChannel));
    };
    let receipt = match sms.receipt(id, timestamp, signature, body, time::now().timestamp()) {
        Ok(r) => r,
        Err(e) => return Ok(Err(ReportRefused::Invalid(e))),
    };
    let to = if receipt.status == "delivered" {
        Recipient::Delivered
    } else {
        Recipient::Failed
    };
    Ok(Ok(record(
        db,
        &tenant.id,
        &receipt.message_id,
        to,
        receipt.error.as_deref(),
    )
    .await?))
}

/// An e-mail's open pixel was fetched: its recipient reads `opened` (unless further on).
/// Unknown messages change nothing.
pub async fn email_opened(db: &Db, tenant: &str, message_id: &str) -> Result<bool> {
    record(db, tenant, message_id, Recipient::Opened, None).await
}

/// A tracked link of an e-mail was followed. Answers the link to redirect to — only when
/// the message is the tenant's e-mail and `link` is one of the links its text holds (the
/// host redirects nowhere else) — and moves its recipient to `clicked`.
pub async fn email_clicked(
    db: &Db,
    tenant: &str,
    message_id: &str,
    link: &str,
) -> Result<Option<String>> {
    let body: Option<String> = sqlx::query_scalar(
        "SELECT body FROM outbox_messages WHERE tenant_id = $1 AND id = $2 AND channel = 'email'",
    )
    .bind(tenant)
    .bind(message_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(body) = body else {
        return Ok(None);
    };
    let (_, text) = shoal_sop::channels::email::subject_and_body(&body);
    if !shoal_sop::channels::email::links(text)
        .iter()
        .any(|(_, l)| *l == link)
    {
        return Ok(None);
    }
    record(db, tenant, message_id, Recipient::Clicked, None).await?;
    Ok(Some(link.to_owned()))
}
