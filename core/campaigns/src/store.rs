//! Campaigns as rows: written as drafts (checked on every write, every problem with its
//! path), read back, listed.

use chrono::Utc;
use sqlx::{Row, any::AnyRow};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;
use shoal_sop::definition::{CHANNELS, check_template, staff_facing};

use crate::model::{Audience, Campaign, Content, Schedule, Status};

/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest variant text, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 2_000;
/// Most variants a campaign may have.
pub const MAX_VARIANTS: usize = 10;

/// A campaign as written by a person (created or changed while a draft).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub name: String,
    pub channel: String,
    pub purpose: String,
    pub audience: Audience,
    pub content: Content,
    pub schedule: Schedule,
    pub on_cap: String,
    pub attribution_hours: i64,
}

/// Every problem of a draft, with its path.
pub fn check(d: &Draft) -> Result<()> {
    let mut p = Problems::default();
    let name_chars = d.name.trim().chars().count();
    if name_chars == 0 || name_chars > MAX_NAME_CHARS {
        p.push("name", format!("1–{MAX_NAME_CHARS} characters"));
    }
    if d.name.chars().any(char::is_control) {
        p.push("name", "one line: no control characters");
    }
    if staff_facing(&d.channel) {
        p.push(
            "channel",
            format!(
                "`{}` reaches the tenant's staff, not customers: a campaign cannot use it",
                d.channel
            ),
        );
    } else if d.channel == "http" || !CHANNELS.contains(&d.channel.as_str()) {
        let customer_facing: Vec<&str> = CHANNELS
            .iter()
            .copied()
            .filter(|c| !staff_facing(c))
            .collect();
        p.push(
            "channel",
            format!(
                "`{}` is not a messaging channel ({})",
                d.channel,
                customer_facing.join(", ")
            ),
        );
    }
    if !["marketing", "service"].contains(&d.purpose.as_str()) {
        p.push("purpose", "`marketing` or `service`");
    }
    if !["defer", "drop"].contains(&d.on_cap.as_str()) {
        p.push("onCap", "`defer` or `drop`");
    }
    if !(1..=720).contains(&d.attribution_hours) {
        p.push("attributionHours", "between 1 and 720 hours");
    }
    let variants = &d.content.variants;
    if variants.is_empty() || variants.len() > MAX_VARIANTS {
        p.push("content.variants", format!("1–{MAX_VARIANTS} variants"));
    }
    let mut keys = std::collections::HashSet::new();
    for (i, v) in variants.iter().enumerate() {
        let at = format!("content.variants[{i}]");
        let key_chars = v.key.chars().count();
        if key_chars == 0
            || key_chars > 32
            || v.key.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            p.push(format!("{at}.key"), "1–32 characters, no spaces");
        }
        if !keys.insert(v.key.as_str()) {
            p.push(format!("{at}.key"), format!("`{}` is used twice", v.key));
        }
        let chars = v.template.chars().count();
        if v.template.trim().is_empty() || chars > MAX_TEMPLATE_CHARS {
            p.push(
                format!("{at}.template"),
                format!("1–{MAX_TEMPLATE_CHARS} characters"),
            );
        }
        check_template(&mut p, &format!("{at}.template"), &v.template);
        if (v.tag.is_some() || v.segment.is_some()) && v.weight != 0 {
            p.push(
                format!("{at}.weight"),
                "a tag or segment variant takes no share of the split",
            );
        }
    }
    let split: Vec<_> = variants
        .iter()
        .filter(|v| v.tag.is_none() && v.segment.is_none())
        .collect();
    match split.len() {
        0 if !variants.is_empty() => p.push(
            "content.variants",
            "one variant without a tag or segment is needed, for everyone else",
        ),
        0 | 1 => {}
        _ => {
            let total: u32 = split.iter().map(|v| v.weight).sum();
            if total != 100 || split.iter().any(|v| v.weight == 0) {
                p.push(
                    "content.variants",
                    format!("the A/B shares (weight) must each be at least 1 and add up to 100, not {total}"),
                );
            }
        }
    }
    if let Schedule::LocalWindow { start, end, .. } = &d.schedule
        && start >= end
    {
        p.push("schedule.end", "after `start` (on the same day)");
    }
    p.into_result(())
}

fn from_row(r: &AnyRow) -> Result<Campaign> {
    fn parse<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> Result<T> {
        let text: String = r.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| Error::Internal(format!("campaigns.{col}: {e}")))
    }
    let status: String = r.try_get("status")?;
    let opt_time =
        |col: &str| -> Result<_> { Ok(r.try_get::<Option<i64>, _>(col)?.map(time::from_micros)) };
    Ok(Campaign {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        channel: r.try_get("channel")?,
        purpose: r.try_get("purpose")?,
        status: Status::parse(&status)
            .ok_or_else(|| Error::Internal(format!("campaign status `{status}`")))?,
        audience: parse(r, "audience")?,
        content: parse(r, "content")?,
        schedule: parse(r, "schedule")?,
        on_cap: r.try_get("on_cap")?,
        attribution_hours: r.try_get("attribution_hours")?,
        frozen_count: r.try_get("frozen_count")?,
        created_by: r.try_get("created_by")?,
        submitted_by: r.try_get("submitted_by")?,
        reviewed_by: r.try_get("reviewed_by")?,
        review_note: r.try_get("review_note")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
        started_at: opt_time("started_at")?,
        finished_at: opt_time("finished_at")?,
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("campaign parts serialise")
}

/// Creates a draft (`bulk_message` needed).
pub async fn create(db: &Db, actor: &Actor, d: &Draft) -> Result<Campaign> {
    actor.require(Action::BulkMessage)?;
    check(d)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::to_micros(time::now());
    sqlx::query(
        "INSERT INTO campaigns (tenant_id, id, name, channel, purpose, status, audience, content, schedule, on_cap, \
         attribution_hours, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(actor.tenant_id())
    .bind(&id)
    .bind(d.name.trim())
    .bind(&d.channel)
    .bind(&d.purpose)
    .bind(json(&d.audience))
    .bind(json(&d.content))
    .bind(json(&d.schedule))
    .bind(&d.on_cap)
    .bind(d.attribution_hours)
    .bind(&actor.user_id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    get(db, actor.tenant_id(), &id).await
}

/// Changes a draft or a rejected campaign (which becomes a draft again).
pub async fn update(db: &Db, actor: &Actor, id: &str, d: &Draft) -> Result<Campaign> {
    actor.require(Action::BulkMessage)?;
    check(d)?;
    let changed = sqlx::query(
        "UPDATE campaigns SET name = $3, channel = $4, purpose = $5, audience = $6, content = $7, schedule = $8, on_cap = $9, \
         attribution_hours = $10, status = 'draft', updated_at = $11 WHERE tenant_id = $1 AND id = $2 AND status IN ('draft', 'rejected')",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(d.name.trim())
    .bind(&d.channel)
    .bind(&d.purpose)
    .bind(json(&d.audience))
    .bind(json(&d.content))
    .bind(json(&d.schedule))
    .bind(&d.on_cap)
    .bind(d.attribution_hours)
    .bind(time::to_micros(time::now()))
    .execute(&db.pool)
    .await?
    .rows_affected();
    if changed == 0 {
        let c = get(db, actor.tenant_id(), id).await?;
        return Err(Error::invalid(
            "id",
            format!(
                "a {} campaign cannot be changed (only drafts and rejected ones)",
                c.status.as_str()
            ),
        ));
    }
    get(db, actor.tenant_id(), id).await
}

/// One campaign of the tenant.
pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Campaign> {
    let row = sqlx::query("SELECT * FROM campaigns WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::not_found("campaign", id))?;
    from_row(&row)
}

/// The tenant's campaigns, newest first (of one status when given).
pub async fn list(db: &Db, tenant: &str, status: Option<Status>) -> Result<Vec<Campaign>> {
    let rows = sqlx::query(
        "SELECT * FROM campaigns WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id DESC LIMIT 500",
    )
    .bind(tenant)
    .bind(status.map_or("", Status::as_str))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Campaigns of the tenant in one of `statuses` (for the worker).
pub(crate) async fn in_status(db: &Db, tenant: &str, statuses: &[Status]) -> Result<Vec<Campaign>> {
    let mut sql = shoal_base::storage::sql::Sql::new("SELECT * FROM campaigns WHERE tenant_id = ");
    let t = sql.arg(tenant);
    let list: Vec<String> = statuses.iter().map(|s| sql.arg(s.as_str())).collect();
    sql.push(&format!(
        "{t} AND status IN ({}) ORDER BY created_at",
        list.join(", ")
    ));
    let rows = sql.query().fetch_all(&db.pool).await?;
    rows.iter().map(from_row).collect()
}

/// The instant the first recipients are due (a local window's earliest start: UTC+14).
pub fn first_due(schedule: &Schedule, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    match schedule {
        Schedule::Now => now,
        Schedule::At { at } => *at,
        Schedule::LocalWindow { date, start, .. } => {
            date.and_time(*start).and_utc() - chrono::Duration::hours(14)
        }
    }
}
