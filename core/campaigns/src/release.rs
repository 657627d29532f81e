//! Releasing a running campaign's due recipients to the outbox, a batch at a time within
//! the channel's throttle: each recipient judged by the tenant's contact policy — the SOP
//! engine's own `contact::judge`, over the same history (the outbox), so campaign and SOP
//! messages count against the same caps — and by its local window.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use shoal_base::{
    error::Result,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Tenant;
use shoal_sop::{
    channels::{self, Adapters},
    contact::{self, History, Policy, Sent, Verdict},
    definition::{CapPolicy, Purpose, customer_facing_sql},
    opt_outs,
    outbox::{self, Queued},
    runner::{render, time_zone_of},
};

use crate::model::{Campaign, Recipient, Schedule, Status};

/// A recipient's fate in this round.
enum Fate {
    Release(Queued),
    /// Not yet: its local window opens at this instant.
    Later(DateTime<Utc>),
    Defer(DateTime<Utc>, String),
    Skip(String),
}

/// Starts due scheduled campaigns and releases up to `budget` due recipients of `c`;
/// answers how many were looked at.
pub async fn release(
    db: &Db,
    tenant: &Tenant,
    c: &Campaign,
    now: DateTime<Utc>,
    budget: usize,
) -> Result<usize> {
    if c.status == Status::Scheduled {
        if let Schedule::At { at } = c.schedule
            && at > now
        {
            return Ok(0);
        }
        sqlx::query(
            "UPDATE campaigns SET status = 'running', started_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'scheduled'",
        )
        .bind(&tenant.id)
        .bind(&c.id)
        .bind(time::to_micros(now))
        .execute(&db.pool)
        .await?;
    }
    let rows = sqlx::query(
        "SELECT customer_id, variant FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2 \
         AND status_rank < 2 AND message_id IS NULL AND due_at <= $3 ORDER BY due_at, customer_id LIMIT $4",
    )
    .bind(&tenant.id)
    .bind(&c.id)
    .bind(time::to_micros(now))
    .bind(i64::try_from(budget).unwrap_or(i64::MAX))
    .fetch_all(&db.pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let due: Vec<(String, String)> = rows
        .iter()
        .map(|r| Ok((r.try_get("customer_id")?, r.try_get("variant")?)))
        .collect::<Result<_>>()?;
    let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    let mut conn = db.pool.acquire().await?;
    let customers = shoal_crm::customers::get_many(&mut conn, db, &tenant.id, &ids).await?;
    let adapters = Adapters::of(tenant);
    let address = adapters.get(&c.channel).map(|a| a.address());
    let addresses = match address {
        Some(kind) => channels::addresses(&mut conn, &tenant.vault, &tenant.id, kind, &ids).await?,
        None => HashMap::new(),
    };
    let policy = Policy::of(tenant);
    let opted_out = opt_outs::of_customers(&mut conn, &tenant.id, &ids).await?;
    let mut marketing = if policy.marketing_requires_consent {
        shoal_crm::consent::marketing(&mut conn, &tenant.id, &ids).await?
    } else {
        HashMap::new()
    };
    let history = match policy.caps.iter().map(|c| c.window).max() {
        Some(longest) => sent_since(&mut conn, &tenant.id, &ids, now - longest).await?,
        None => HashMap::new(),
    };
    let humans = if policy.human_cooldown > Duration::zero() {
        last_human(&mut conn, &tenant.id, &ids).await?
    } else {
        HashMap::new()
    };
    drop(conn);
    let purpose = Purpose::parse(&c.purpose);
    let on_cap = if c.on_cap == "drop" {
        CapPolicy::Drop
    } else {
        CapPolicy::Defer
    };
    let mut fates = Vec::with_capacity(due.len());
    for (id, variant) in &due {
        let Some(customer) = customers.get(id) else {
            fates.push((id, Fate::Skip("the customer was deleted".into())));
            continue;
        };
        let tz = time_zone_of(customer, tenant);
        let window = match &c.schedule {
            Schedule::LocalWindow { date, start, end } => Some((
                contact::at_local(tz, *date, *start),
                contact::at_local(tz, *date, *end),
            )),
            _ => None,
        };
        if let Some((opens, closes)) = window {
            if now < opens {
                fates.push((id, Fate::Later(opens)));
                continue;
            }
            if now >= closes {
                fates.push((
                    id,
                    Fate::Skip(format!(
                        "its local window ({tz}) closed before it could be sent"
                    )),
                ));
                continue;
            }
        }
        let h = History {
            sent: history.get(id).cloned().unwrap_or_default(),
            last_human_follow_up: humans.get(id).copied(),
            opted_out: opted_out.get(id).cloned().unwrap_or_default(),
            marketing: marketing.remove(id.as_str()).unwrap_or_default(),
        };
        let fate = match contact::judge(&policy, tz, &c.channel, purpose, now, &h, on_cap) {
            Verdict::Drop { reason } => Fate::Skip(reason),
            Verdict::Defer { until, reason } => match window {
                Some((_, closes)) if until >= closes => {
                    Fate::Skip(format!("{reason}, past its local window"))
                }
                _ => Fate::Defer(until, reason),
            },
            Verdict::Send => {
                let address = addresses.get(id).cloned();
                if address.is_none() && address_needed(address_kind(&adapters, &c.channel)) {
                    Fate::Skip("no address on the channel".into())
                } else {
                    let template = c
                        .content
                        .variants
                        .iter()
                        .find(|v| &v.key == variant)
                        .or(c.content.variants.first())
                        .map_or("", |v| v.template.as_str());
                    Fate::Release(Queued {
                        key: format!("campaign:{}:{id}", c.id),
                        customer_id: id.clone(),
                        channel: c.channel.clone(),
                        purpose: purpose.as_str(),
                        body: render(template, customer),
                        target: address,
                        sop_id: None,
                        enrolment_id: None,
                        campaign_id: Some(c.id.clone()),
                        at: now,
                    })
                }
            }
        };
        fates.push((id, fate));
    }
    let mut tx = db.begin_write().await?;
    // the campaign's row, locked while its messages are queued: a cancel either came first
    // (nothing is released) or waits for this and then cancels what it queued
    let live = sqlx::query(
        "UPDATE campaigns SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 \
         AND status IN ('scheduled', 'running')",
    )
    .bind(&tenant.id)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if live == 0 {
        return Ok(0);
    }
    let released: Vec<Queued> = fates
        .iter()
        .filter_map(|(_, f)| match f {
            Fate::Release(q) => Some(q.clone()),
            _ => None,
        })
        .collect();
    outbox::queue_many(&mut tx, &tenant.id, &released).await?;
    let stamp = time::to_micros(now);
    // the released, in one statement per 500: each gets its outbox message's id (by the
    // idempotency key `campaign:<campaign>:<customer>`); only a recipient still waiting
    // moves (a cancel may have come meanwhile)
    let released_ids: Vec<&str> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Release(_)))
        .map(|(id, _)| id.as_str())
        .collect();
    for chunk in released_ids.chunks(500) {
        let mut sql = Sql::new(
            "UPDATE campaign_recipients SET status = 'queued', status_rank = 0, reason = NULL, due_at = ",
        );
        let at = sql.arg(stamp);
        let t = sql.arg(tenant.id.as_str());
        let key = sql.arg(format!("campaign:{}:", c.id));
        let cid = sql.arg(c.id.as_str());
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!(
            "{at}, updated_at = {at}, message_id = (SELECT m.id FROM outbox_messages m WHERE m.tenant_id = {t} \
             AND m.idempotency_key = {key} || campaign_recipients.customer_id) \
             WHERE tenant_id = {t} AND campaign_id = {cid} AND status_rank < 2 AND customer_id IN ({})",
            list.join(", ")
        ));
        sql.query_once().execute(&mut *tx).await?;
    }
    // the others (later, deferred, skipped) each with its own time and reason
    for (id, fate) in &fates {
        let (status, reason, due_at): (Recipient, Option<&str>, i64) = match fate {
            Fate::Release(_) => continue,
            Fate::Later(at) => (Recipient::Queued, None, time::to_micros(*at)),
            Fate::Defer(until, why) => (Recipient::Deferred, Some(why), time::to_micros(*until)),
            Fate::Skip(why) => (Recipient::Skipped, Some(why), stamp),
        };
        sqlx::query(
            "UPDATE campaign_recipients SET status = $4, status_rank = $5, reason = $6, due_at = $7, updated_at = $8 \
             WHERE tenant_id = $1 AND campaign_id = $2 AND customer_id = $3 AND status_rank < 2",
        )
        .bind(&tenant.id)
        .bind(&c.id)
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(status.rank())
        .bind(reason)
        .bind(due_at)
        .bind(stamp)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(fates.len())
}

fn address_kind(adapters: &Adapters, channel: &str) -> channels::Address {
    adapters
        .get(channel)
        .map_or(channels::Address::None, |a| a.address())
}

fn address_needed(kind: channels::Address) -> bool {
    kind != channels::Address::None
}

/// The messages each customer was sent (or has queued) since `since`, from the outbox:
/// SOP and campaign messages alike.
async fn sent_since(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    ids: &[&str],
    since: DateTime<Utc>,
) -> Result<HashMap<String, Vec<Sent>>> {
    let mut out: HashMap<String, Vec<Sent>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(
            "SELECT customer_id, created_at, channel, purpose FROM outbox_messages WHERE tenant_id = ",
        );
        let t = sql.arg(tenant);
        let s = sql.arg(time::to_micros(since));
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!(
            "{t} AND created_at > {s} AND status <> 'cancelled' AND {} AND customer_id IN ({})",
            customer_facing_sql("channel"),
            list.join(", ")
        ));
        for r in sql.query_once().fetch_all(&mut *conn).await? {
            let purpose: String = r.try_get("purpose")?;
            out.entry(r.try_get("customer_id")?)
                .or_default()
                .push(Sent {
                    at: time::from_micros(r.try_get("created_at")?),
                    channel: r.try_get("channel")?,
                    purpose: Purpose::parse(&purpose),
                });
        }
    }
    Ok(out)
}

/// Each customer's last human follow-up (handovers aside), as the SOP runner reads it.
async fn last_human(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, DateTime<Utc>>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql =
            Sql::new("SELECT customer_id, MAX(at) AS at FROM follow_ups WHERE tenant_id = ");
        let t = sql.arg(tenant);
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!(
            "{t} AND kind <> 'handover' AND customer_id IN ({}) GROUP BY customer_id",
            list.join(", ")
        ));
        for r in sql.query_once().fetch_all(&mut *conn).await? {
            if let Some(at) = r.try_get::<Option<i64>, _>("at")? {
                out.insert(r.try_get("customer_id")?, time::from_micros(at));
            }
        }
    }
    Ok(out)
}
