//! From draft to sending: submit (the checks, then the audience frozen), approve or reject
//! where the tenant asks for approval, and cancel.

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;
use shoal_sop::channels::Adapters;

use crate::{
    audience,
    model::{Campaign, Status},
    store, words,
};

/// Every sensitive word of the campaign's variants, as problems at
/// `content.variants[i].template`.
pub fn sensitive_words(c: &Campaign, extra: &[String]) -> Problems {
    let mut p = Problems::default();
    for (i, v) in c.content.variants.iter().enumerate() {
        for f in words::check(&v.template, extra) {
            p.push(
                format!("content.variants[{i}].template"),
                format!("sensitive word `{}` at character {}", f.word, f.position),
            );
        }
    }
    p
}

/// Whether the actor's campaigns wait for an approver.
fn needs_approval(actor: &Actor) -> bool {
    let rules = &actor.tenant.campaigns;
    rules.approval
        && !actor
            .access
            .role_ids()
            .iter()
            .any(|r| rules.trusted_roles.iter().any(|t| t == r))
}

/// Submits a draft (or a rejected campaign): its channel must have an adapter, its text
/// no sensitive word; then its audience is frozen (in the submitter's scope) and it waits
/// for approval or for its time.
pub async fn submit(db: &Db, actor: &Actor, id: &str) -> Result<Campaign> {
    actor.require(Action::BulkMessage)?;
    let c = store::get(db, actor.tenant_id(), id).await?;
    if !matches!(c.status, Status::Draft | Status::Rejected) {
        return Err(Error::invalid(
            "id",
            format!("a {} campaign cannot be submitted", c.status.as_str()),
        ));
    }
    let adapters = Adapters::of(&actor.tenant);
    let mut p = Problems::default();
    if adapters.get(&c.channel).is_none() {
        p.push(
            "channel",
            format!(
                "no adapter is configured for the {} channel (configured: {}); see [tenants.{}.channels]",
                c.channel,
                adapters.names().join(", "),
                actor.tenant_id()
            ),
        );
    }
    p.extend(sensitive_words(&c, &actor.tenant.campaigns.sensitive_words).into_errors());
    p.into_result(())?;
    let plan = audience::plan(db, actor, &c.audience, &c.content, &c.channel).await?;
    let now = time::now();
    let status = if needs_approval(actor) {
        Status::PendingApproval
    } else {
        Status::Scheduled
    };
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let queued = audience::freeze(
        &mut tx,
        db,
        actor,
        &plan,
        id,
        store::first_due(&c.schedule, now),
    )
    .await?;
    let changed = sqlx::query(
        "UPDATE campaigns SET status = $3, frozen_count = $4, submitted_by = $5, reviewed_by = NULL, review_note = NULL, updated_at = $6 \
         WHERE tenant_id = $1 AND id = $2 AND status IN ('draft', 'rejected')",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(status.as_str())
    .bind(queued)
    .bind(&actor.user_id)
    .bind(time::to_micros(now))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(Error::invalid(
            "id",
            "the campaign changed meanwhile; try again",
        ));
    }
    tx.commit().await?;
    store::get(db, actor.tenant_id(), id).await
}

/// May the actor approve or reject campaigns?
fn require_approver(actor: &Actor, c: &Campaign) -> Result<()> {
    let approvers = &actor.tenant.campaigns.approver_roles;
    let roles = actor.access.role_ids();
    let allowed = if approvers.is_empty() {
        roles.contains(&"admin")
    } else {
        roles.iter().any(|r| approvers.iter().any(|a| a == r))
    };
    if !allowed && !actor.access.is_system() {
        return Err(Error::Forbidden(
            "only the tenant's campaign approvers (campaigns.approver_roles) may review campaigns"
                .into(),
        ));
    }
    if c.submitted_by.as_deref() == Some(actor.user_id.as_str()) {
        return Err(Error::Forbidden(
            "a campaign is approved by someone other than who submitted it".into(),
        ));
    }
    if c.status != Status::PendingApproval {
        return Err(Error::invalid(
            "id",
            format!(
                "a {} campaign is not waiting for approval",
                c.status.as_str()
            ),
        ));
    }
    Ok(())
}

/// Approves a campaign waiting for approval: it is sent at its time.
pub async fn approve(db: &Db, actor: &Actor, id: &str, note: Option<&str>) -> Result<Campaign> {
    let c = store::get(db, actor.tenant_id(), id).await?;
    require_approver(actor, &c)?;
    review(db, actor, id, Status::Scheduled, note).await
}

/// Sends a campaign back to its author with a note (required); its frozen audience is
/// discarded.
pub async fn reject(db: &Db, actor: &Actor, id: &str, note: &str) -> Result<Campaign> {
    let c = store::get(db, actor.tenant_id(), id).await?;
    require_approver(actor, &c)?;
    if note.trim().is_empty() || note.chars().count() > 1_000 {
        return Err(Error::invalid("note", "1–1000 characters: say why"));
    }
    review(db, actor, id, Status::Rejected, Some(note)).await
}

async fn review(
    db: &Db,
    actor: &Actor,
    id: &str,
    to: Status,
    note: Option<&str>,
) -> Result<Campaign> {
    let mut tx = db.begin_write().await?;
    let changed = sqlx::query(
        "UPDATE campaigns SET status = $3, reviewed_by = $4, review_note = $5, updated_at = $6 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'pending_approval'",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(to.as_str())
    .bind(&actor.user_id)
    .bind(note.map(str::trim))
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(Error::invalid(
            "id",
            "the campaign is no longer waiting for approval",
        ));
    }
    if to == Status::Rejected {
        sqlx::query("DELETE FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2")
            .bind(actor.tenant_id())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    store::get(db, actor.tenant_id(), id).await
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    /// Recipients (and their queued outbox messages) stopped before any channel took them.
    pub cancelled: i64,
    /// Recipients whose message a channel had already taken, or was taking at that moment.
    pub already_handed: i64,
}

/// Stops a campaign at once: in one transaction, every message not yet handed to a
/// channel is cancelled (in the outbox and per recipient). A message being handed over at
/// that instant completes, and its recipient reads `sent`. A WeCom campaign may be
/// cancelled even once completed: the worker then withdraws the tasks its senders have
/// not confirmed yet (`cancel_groupmsg_send`).
pub async fn cancel(db: &Db, actor: &Actor, id: &str) -> Result<Cancelled> {
    actor.require(Action::BulkMessage)?;
    let tenant = actor.tenant_id();
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let changed = sqlx::query(
        "UPDATE campaigns SET status = 'cancelled', finished_at = $3, updated_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND (status IN ('draft', 'pending_approval', 'rejected', 'scheduled', 'running') \
         OR (status = 'completed' AND channel = 'wecom'))",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let c = store::get(db, tenant, id).await?;
        return Err(Error::invalid(
            "id",
            format!("a {} campaign cannot be cancelled", c.status.as_str()),
        ));
    }
    sqlx::query(
        "UPDATE outbox_messages SET status = 'cancelled', last_error = 'campaign cancelled' \
         WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'pending'",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let cancelled = sqlx::query(
        "UPDATE campaign_recipients SET status = 'cancelled', status_rank = 2, reason = 'campaign cancelled', updated_at = $3 \
         WHERE tenant_id = $1 AND campaign_id = $2 AND status_rank < 2 AND (message_id IS NULL OR message_id IN \
         (SELECT id FROM outbox_messages WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'cancelled'))",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let already_handed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2 AND message_id IS NOT NULL AND status <> 'cancelled'",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Cancelled {
        cancelled: i64::try_from(cancelled).unwrap_or(i64::MAX),
        already_handed,
    })
}

/// What a draft would reach if submitted now by the actor: the audience, each exclusion's
/// count and the recipients left (`bulk_message` needed).
pub async fn preview(db: &Db, actor: &Actor, d: &store::Draft) -> Result<audience::Preview> {
    actor.require(Action::BulkMessage)?;
    store::check(d)?;
    let plan = audience::plan(db, actor, &d.audience, &d.content, &d.channel).await?;
    audience::preview(db, actor, &plan).await
}
