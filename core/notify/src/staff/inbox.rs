//! The in-app inbox of each user (their notifications, unread count, marking read) and
//! their notification settings (quiet hours in their own time zone, the id robots mention).

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    error::{Error, Result},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::{Actor, Tenant};
use shoal_sop::contact::QuietHours;

/// The pagination order of the inbox.
pub const ORDER: &str = "notifications:created_at";

/// One notification in a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    /// The rule that made it (`system` for the host's own notices).
    pub rule_id: String,
    /// The change's sequence number on the feed.
    pub seq: i64,
    pub kind: String,
    /// Empty when the change has no customer.
    pub customer_id: String,
    pub title: String,
    pub priority: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

fn from_row(r: &AnyRow) -> Result<Notification> {
    Ok(Notification {
        id: r.try_get("id")?,
        rule_id: r.try_get("rule_id")?,
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        customer_id: r.try_get("customer_id")?,
        title: r.try_get("title")?,
        priority: r.try_get("priority")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        read_at: r
            .try_get::<Option<i64>, _>("read_at")?
            .map(time::from_micros),
    })
}

/// The caller's notifications, newest first.
pub async fn list(
    db: &Db,
    actor: &Actor,
    unread_only: bool,
    page: &Page,
) -> Result<Paged<(Notification, Cursor)>> {
    let tenant = actor.tenant_id();
    let mut sql = Sql::new("SELECT * FROM notifications WHERE tenant_id = ");
    let t = sql.arg(tenant);
    let u = sql.arg(actor.user_id.as_str());
    sql.push(&format!("{t} AND user_id = {u}"));
    if unread_only {
        sql.push(" AND read_at IS NULL");
    }
    page.push_conditions(&mut sql, "created_at", "id", true);
    page.push_order_limit(&mut sql, "created_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|n| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(n.created_at)),
        id: n.id.clone(),
    }))
}

/// How many of the caller's notifications are unread.
pub async fn unread_count(db: &Db, actor: &Actor) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
    )
    .bind(actor.tenant_id())
    .bind(&actor.user_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("n")?)
}

/// Marks the caller's notifications read (`ids`, or all when `None`); returns how many
/// changed. Another user's notification is not found.
pub async fn mark_read(db: &Db, actor: &Actor, ids: Option<&[String]>) -> Result<u64> {
    let mut sql = Sql::new("UPDATE notifications SET read_at = ");
    let now = sql.arg(time::to_micros(time::now()));
    let t = sql.arg(actor.tenant_id());
    let u = sql.arg(actor.user_id.as_str());
    sql.push(&format!(
        "{now} WHERE tenant_id = {t} AND user_id = {u} AND read_at IS NULL"
    ));
    if let Some(ids) = ids {
        if ids.is_empty() {
            return Ok(0);
        }
        if ids.len() > 1000 {
            return Err(Error::invalid("ids", "at most 1000 at once"));
        }
        sql.push(" AND id").push_in(ids);
    }
    Ok(sql.query().execute(&db.pool).await?.rows_affected())
}

/// A user's notifications made after the one with id `after` (ids grow with time), oldest
/// first, at most `limit`: what an inbox subscription pushes.
pub async fn newer_than(
    db: &Db,
    tenant: &str,
    user: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Notification>> {
    sqlx::query(
        "SELECT * FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(user)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// A user's notification settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefs {
    /// Normal and low-priority notifications wait for the end of this window.
    pub quiet_hours: Option<QuietHours>,
    /// The user's own time zone (the tenant's when none).
    pub time_zone: Option<Tz>,
    /// The id group robots @-mention (WeCom user id, DingTalk user id).
    pub im_user_id: Option<String>,
}

fn parse_time(v: &str, field: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(v, "%H:%M")
        .map_err(|_| Error::invalid(field, format!("`{v}` is not HH:MM")))
}

/// Reads a user's settings in the caller's connection.
pub async fn prefs_on(conn: &mut AnyConnection, tenant: &Tenant, user: &str) -> Result<Prefs> {
    let Some(r) =
        sqlx::query("SELECT * FROM notification_prefs WHERE tenant_id = $1 AND user_id = $2")
            .bind(&tenant.id)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(Prefs::default());
    };
    let start: Option<String> = r.try_get("quiet_start")?;
    let end: Option<String> = r.try_get("quiet_end")?;
    let tz: Option<String> = r.try_get("time_zone")?;
    Ok(Prefs {
        quiet_hours: match (start, end) {
            (Some(s), Some(e)) => Some(QuietHours {
                start: parse_time(&s, "quietStart")?,
                end: parse_time(&e, "quietEnd")?,
                days: Vec::new(),
            }),
            _ => None,
        },
        time_zone: tz.and_then(|t| t.parse().ok()),
        im_user_id: r.try_get("im_user_id")?,
    })
}

/// The caller's settings.
pub async fn prefs(db: &Db, actor: &Actor) -> Result<Prefs> {
    let mut conn = db.pool.acquire().await?;
    prefs_on(&mut conn, &actor.tenant, &actor.user_id).await
}

/// Replaces the caller's settings: quiet hours `HH:MM`–`HH:MM` (both or neither), an IANA
/// time zone, the id robots mention.
pub async fn set_prefs(
    db: &Db,
    actor: &Actor,
    quiet: Option<(String, String)>,
    time_zone: Option<String>,
    im_user_id: Option<String>,
) -> Result<Prefs> {
    if let Some((s, e)) = &quiet {
        let (s, e) = (
            parse_time(s, "input.quietStart")?,
            parse_time(e, "input.quietEnd")?,
        );
        if s == e {
            return Err(Error::invalid(
                "input.quietEnd",
                "must differ from quietStart",
            ));
        }
    }
    if let Some(tz) = &time_zone
        && tz.parse::<Tz>().is_err()
    {
        return Err(Error::invalid(
            "input.timeZone",
            format!("`{tz}` is not an IANA time zone"),
        ));
    }
    if let Some(id) = &im_user_id
        && (id.is_empty() || id.chars().count() > 64)
    {
        return Err(Error::invalid("input.imUserId", "1–64 characters"));
    }
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM notification_prefs WHERE tenant_id = $1 AND user_id = $2")
        .bind(actor.tenant_id())
        .bind(&actor.user_id)
        .execute(&mut *tx)
        .await?;
    let (start, end) = quiet.unzip();
    sqlx::query(
        "INSERT INTO notification_prefs (tenant_id, user_id, quiet_start, quiet_end, time_zone, im_user_id, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.tenant_id())
    .bind(&actor.user_id)
    .bind(start)
    .bind(end)
    .bind(time_zone)
    .bind(im_user_id)
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    let p = prefs_on(&mut tx, &actor.tenant, &actor.user_id).await?;
    tx.commit().await?;
    Ok(p)
}
