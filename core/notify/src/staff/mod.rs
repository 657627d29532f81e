//! Staff notifications: rules per tenant say which changes notify whom (the customer's
//! owner, a task's or ticket's assignee, the customer's or ticket's watchers, users, roles, departments), on which channels (the in-app
//! inbox, a WeCom or DingTalk group robot), under which condition on the customer, at which
//! priority. A recipient is notified only of customers within their own scope. Quiet hours
//! are per user (high priority breaks through); low-priority notifications are batched into
//! one message per user every `digestMinutes`.

mod inbox;
mod send;
mod watch;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::{
    access::Access,
    audit,
    tenancy::{Actor, Tenant},
};
use shoal_sop::{contact::Policy, outbound};

pub use inbox::{
    Notification, ORDER, Prefs, list, mark_read, newer_than, prefs, set_prefs, unread_count,
};
pub use send::deliver_due;
pub use watch::watch;

use crate::{event_types, facts::Facts, feed::Change};

/// Where a notification goes besides the inbox (which every notification reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Inbox,
    /// A WeCom group robot (`qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`), mentioning
    /// the recipient's WeCom user id.
    WecomRobot,
    /// A DingTalk group robot (`oapi.dingtalk.com/robot/send?access_token=…`), signed when
    /// the rule has a secret.
    DingtalkRobot,
    /// E-mail to the user's address (`users.<id>.email`), through `notify.smtp_url`.
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Inbox => "inbox",
            Channel::WecomRobot => "wecom_robot",
            Channel::DingtalkRobot => "dingtalk_robot",
            Channel::Email => "email",
        }
    }
}

/// How urgent a rule's notifications are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Sent at once, through quiet hours.
    High,
    /// Sent at once, or when the recipient's quiet hours end.
    Normal,
    /// Batched into the recipient's next digest.
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    fn parse(s: &str) -> Priority {
        match s {
            "high" => Priority::High,
            "low" => Priority::Low,
            _ => Priority::Normal,
        }
    }
}

/// Who a rule notifies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Recipients {
    /// The customer's owner.
    pub owner: bool,
    /// A task's or ticket's assignee (task and ticket events).
    pub assignee: bool,
    /// The users watching the customer, and a ticket's watchers (ticket events).
    pub watchers: bool,
    pub users: Vec<String>,
    pub roles: Vec<String>,
    pub departments: Vec<String>,
}

/// A notification rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    /// A rule on the customer (the rule language), or none.
    pub condition: Option<String>,
    pub recipients: Recipients,
    pub channels: Vec<Channel>,
    pub robot_url: Option<String>,
    /// DingTalk's signing secret (`SEC…`); never shown back.
    pub robot_secret: Option<String>,
    pub priority: Priority,
    pub digest_minutes: i64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn from_row(r: &AnyRow) -> Result<Rule> {
    let types: String = r.try_get("event_types")?;
    let recipients: String = r.try_get("recipients")?;
    let channels: String = r.try_get("channels")?;
    Ok(Rule {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        condition: r.try_get("condition")?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        channels: serde_json::from_str(&channels).unwrap_or_default(),
        robot_url: r.try_get("robot_url")?,
        robot_secret: r.try_get("robot_secret")?,
        priority: Priority::parse(&r.try_get::<String, _>("priority")?),
        digest_minutes: r.try_get("digest_minutes")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
    })
}

/// A rule as an administrator writes it (create, or replace).
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub name: String,
    pub event_types: Vec<String>,
    pub condition: Option<String>,
    pub recipients: Recipients,
    pub channels: Vec<Channel>,
    pub robot_url: Option<String>,
    pub robot_secret: Option<String>,
    pub priority: Priority,
    pub digest_minutes: Option<i64>,
    pub enabled: bool,
}

async fn check(
    conn: &mut AnyConnection,
    tenant: &Tenant,
    r: &RuleInput,
    email: bool,
) -> Result<()> {
    let n = r.name.trim().chars().count();
    if n == 0 || n > 100 {
        return Err(Error::invalid("input.name", "1–100 characters"));
    }
    // it heads robot messages and e-mail subjects: one line
    if r.name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "input.name",
            "one line, no control characters",
        ));
    }
    event_types::check(&r.event_types, "input.eventTypes")?;
    if let Some(text) = &r.condition {
        crate::facts::parse_rule(conn, tenant, text, "input.condition").await?;
    }
    let p = &r.recipients;
    if !p.owner
        && !p.assignee
        && !p.watchers
        && p.users.is_empty()
        && p.roles.is_empty()
        && p.departments.is_empty()
    {
        return Err(Error::invalid(
            "input.recipients",
            "name at least one recipient: owner, assignee, watchers, users, roles or departments",
        ));
    }
    for (i, u) in p.users.iter().enumerate() {
        if !tenant.users.contains_key(u) {
            return Err(Error::invalid(
                format!("input.recipients.users[{i}]"),
                format!("no user `{u}` in this tenant"),
            ));
        }
    }
    if r.channels.is_empty() {
        return Err(Error::invalid("input.channels", "at least one channel"));
    }
    if let Some(i) = r.channels.iter().position(|c| *c == Channel::Email)
        && !email
    {
        return Err(Error::invalid(
            format!("input.channels[{i}]"),
            "e-mail is not a channel of this host: its operator has not set notify.smtp_url",
        ));
    }
    let robots = r
        .channels
        .iter()
        .any(|c| matches!(c, Channel::WecomRobot | Channel::DingtalkRobot));
    match (&r.robot_url, robots) {
        (None, true) => {
            return Err(Error::invalid(
                "input.robotUrl",
                "a robot channel needs the robot's webhook URL",
            ));
        }
        (Some(url), _) => {
            outbound::check(url, &Policy::of(tenant).outbound_allow)
                .map_err(|e| Error::invalid("input.robotUrl", e))?;
        }
        (None, false) => {}
    }
    if let Some(m) = r.digest_minutes
        && !(1..=1440).contains(&m)
    {
        return Err(Error::invalid("input.digestMinutes", "between 1 and 1440"));
    }
    Ok(())
}

async fn fetch(conn: &mut AnyConnection, tenant: &str, id: &str) -> Result<Rule> {
    let row = sqlx::query("SELECT * FROM notification_rules WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("notification rule", id))?;
    from_row(&row)
}

/// The tenant's rules (administrators).
pub async fn rules(db: &Db, actor: &Actor) -> Result<Vec<Rule>> {
    actor.require(Action::Administer)?;
    sqlx::query("SELECT * FROM notification_rules WHERE tenant_id = $1 ORDER BY created_at, id")
        .bind(actor.tenant_id())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Creates a rule (`id` none) or replaces one (administrators; audited); `email` says
/// whether this host has the e-mail channel.
pub async fn save_rule(
    db: &Db,
    actor: &Actor,
    id: Option<&str>,
    r: &RuleInput,
    email: bool,
) -> Result<Rule> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    check(&mut tx, &actor.tenant, r, email).await?;
    let now = time::to_micros(time::now());
    let id = match id {
        Some(id) => {
            let before = fetch(&mut tx, actor.tenant_id(), id).await?;
            sqlx::query("DELETE FROM notification_rules WHERE tenant_id = $1 AND id = $2")
                .bind(actor.tenant_id())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            (before.id, time::to_micros(before.created_at))
        }
        None => (format!("nr_{}", uuid::Uuid::now_v7().simple()), now),
    };
    sqlx::query(
        "INSERT INTO notification_rules (tenant_id, id, name, event_types, condition, recipients, channels, robot_url, robot_secret, \
         digest_minutes, priority, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(actor.tenant_id())
    .bind(&id.0)
    .bind(r.name.trim())
    .bind(json!(r.event_types).to_string())
    .bind(r.condition.clone())
    .bind(serde_json::to_string(&r.recipients).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(serde_json::to_string(&r.channels).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(r.robot_url.clone())
    .bind(r.robot_secret.clone())
    .bind(r.digest_minutes.unwrap_or(30))
    .bind(r.priority.as_str())
    .bind(i64::from(r.enabled))
    .bind(id.1)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "notification_rule.save",
        "notification_rule",
        &id.0,
        json!({ "name": r.name, "eventTypes": r.event_types, "condition": r.condition, "recipients": r.recipients, "channels": r.channels }),
    )
    .await?;
    let rule = fetch(&mut tx, actor.tenant_id(), &id.0).await?;
    tx.commit().await?;
    Ok(rule)
}

/// Deletes a rule (administrators; audited); notifications it made stay.
pub async fn delete_rule(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    fetch(&mut tx, actor.tenant_id(), id).await?;
    sqlx::query("DELETE FROM notification_rules WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "notification_rule.delete",
        "notification_rule",
        id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The line a change reads as in a notification: its type and the ids and names it
/// carries, never a customer's field values (each recipient opens the customer through
/// the API, with their own masking).
pub fn title(rule: &str, c: &Change) -> String {
    let p = &c.payload;
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let what = match c.kind.as_str() {
        "event.recorded" => format!("{} {}", text("type"), text("name"))
            .trim()
            .to_owned(),
        "tag.added" | "tag.removed" => text("tag").to_owned(),
        "segment.entered" | "segment.left" => text("segmentId").to_owned(),
        "task.created" | "task.updated" => text("title").to_owned(),
        "sop.step" => format!("{} {}", text("stepId"), text("outcome")),
        "bill.settled" | "bill.refunded" => format!("{} {}", text("total"), text("currency")),
        "customer.updated" => p
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let customer = if c.customer_id.is_empty() {
        String::new()
    } else {
        format!(" (customer {})", c.customer_id)
    };
    if what.is_empty() {
        format!("{rule}: {}{customer}", c.kind)
    } else {
        format!("{rule}: {} {what}{customer}", c.kind)
    }
}

/// The users a rule names whatever the change: its users, roles and departments (read once
/// per relay batch).
async fn named(conn: &mut AnyConnection, tenant: &str, r: &Recipients) -> Result<BTreeSet<String>> {
    let mut out: BTreeSet<String> = r.users.iter().cloned().collect();
    for role in &r.roles {
        out.extend(users_with_role(conn, tenant, role).await?);
    }
    for d in &r.departments {
        let rows = sqlx::query("SELECT id FROM users WHERE tenant_id = $1 AND department = $2")
            .bind(tenant)
            .bind(d)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            out.insert(row.try_get("id")?);
        }
    }
    Ok(out)
}

/// The users a rule names for a change (before their scope is checked): `named` and the
/// change's own owner, watchers and assignee.
async fn recipients_of(
    conn: &mut AnyConnection,
    tenant: &str,
    r: &Recipients,
    named: &BTreeSet<String>,
    c: &Change,
) -> Result<BTreeSet<String>> {
    let mut out = named.clone();
    if r.owner && !c.customer_id.is_empty() {
        let owner: Option<String> =
            sqlx::query("SELECT owner_id FROM customers WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(&c.customer_id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get("owner_id"))
                .transpose()?
                .flatten();
        out.extend(owner);
    }
    if r.watchers && !c.customer_id.is_empty() {
        out.extend(watch::watchers(conn, tenant, &c.customer_id).await?);
    }
    if r.watchers && c.kind.starts_with("ticket.") {
        // a ticket's own watchers
        let listed = c.payload.get("watchers").and_then(Value::as_array);
        out.extend(
            listed
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(str::to_owned)),
        );
    }
    if r.assignee
        && let Some(a) = c.payload.get("assignee").and_then(Value::as_str)
    {
        match a.strip_prefix("role:") {
            Some(role) => out.extend(users_with_role(conn, tenant, role).await?),
            None => {
                out.insert(a.to_owned());
            }
        }
    }
    Ok(out)
}

async fn users_with_role(
    conn: &mut AnyConnection,
    tenant: &str,
    role: &str,
) -> Result<Vec<String>> {
    sqlx::query(
        "SELECT user_id FROM user_roles WHERE tenant_id = $1 AND role_id = $2 ORDER BY user_id",
    )
    .bind(tenant)
    .bind(role)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok(r.try_get("user_id")?))
    .collect()
}

/// Writes the notifications (and their channel sends) of a relay batch, in its transaction.
pub async fn fan_out(
    conn: &mut AnyConnection,
    db: &Db,
    tenant: &Tenant,
    changes: &[Change],
) -> Result<()> {
    let rules = sqlx::query("SELECT * FROM notification_rules WHERE tenant_id = $1 AND enabled = 1 ORDER BY created_at, id")
        .bind(&tenant.id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    if rules.is_empty() {
        return Ok(());
    }
    let conditions = crate::facts::parse_stored(
        conn,
        &tenant.id,
        rules.iter().map(|r| r.condition.as_deref()),
    )
    .await?;
    let mut named_by = Vec::with_capacity(rules.len());
    for r in &rules {
        named_by.push(named(conn, &tenant.id, &r.recipients).await?);
    }
    let mut facts = Facts::default();
    let mut access: HashMap<String, Option<Arc<Access>>> = HashMap::new();
    let mut prefs_of: HashMap<String, Prefs> = HashMap::new();
    let now = time::now();
    for c in changes {
        for ((rule, condition), named) in rules.iter().zip(&conditions).zip(&named_by) {
            if !event_types::any_matches(&rule.event_types, &c.kind, &c.payload) {
                continue;
            }
            if let Some(condition) = condition {
                let holds = match condition {
                    Some(cond) => {
                        facts
                            .holds(conn, db, &tenant.id, &c.customer_id, cond)
                            .await?
                    }
                    None => false,
                };
                if !holds {
                    continue;
                }
            }
            let title = title(&rule.name, c);
            for user in recipients_of(conn, &tenant.id, &rule.recipients, named, c).await? {
                if !tenant.users.contains_key(&user) {
                    continue;
                }
                // receiving permission: the reading permission
                if !access.contains_key(&user) {
                    let a = Access::load(db, &tenant.id, &user, HashSet::new())
                        .await
                        .ok();
                    access.insert(user.clone(), a.map(Arc::new));
                }
                let Some(a) = &access[&user] else { continue };
                if !crate::feed::reaches(a, db, c).await {
                    continue;
                }
                if !prefs_of.contains_key(&user) {
                    let p = inbox::prefs_on(conn, tenant, &user).await?;
                    prefs_of.insert(user.clone(), p);
                }
                let prefs = &prefs_of[&user];
                let id = uuid::Uuid::now_v7().to_string();
                let inserted = sqlx::query(
                    "INSERT INTO notifications (tenant_id, id, user_id, rule_id, seq, kind, customer_id, title, priority, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                )
                .bind(&tenant.id)
                .bind(&id)
                .bind(&user)
                .bind(&rule.id)
                .bind(c.seq)
                .bind(&c.kind)
                .bind(&c.customer_id)
                .bind(&title)
                .bind(rule.priority.as_str())
                .bind(time::to_micros(now))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if inserted == 0 {
                    continue;
                }
                for channel in rule.channels.iter().filter(|c| **c != Channel::Inbox) {
                    let (due, digest) = due(rule, prefs, tenant, now);
                    sqlx::query(
                        "INSERT INTO notification_sends (tenant_id, id, notification_id, user_id, channel, status, digest, due_at, attempts) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, 0) ON CONFLICT DO NOTHING",
                    )
                    .bind(&tenant.id)
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(&id)
                    .bind(&user)
                    .bind(channel.as_str())
                    .bind(i64::from(digest))
                    .bind(time::to_micros(due))
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// When a notification of `rule` may leave on a channel for a user, and whether it waits
/// for a digest: high priority at once; normal at once or at the end of the user's quiet
/// hours; low at the next digest boundary (`digest_minutes` after the epoch's multiples),
/// pushed past quiet hours too.
pub fn due(
    rule: &Rule,
    prefs: &Prefs,
    tenant: &Tenant,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    let quiet_end = |at: DateTime<Utc>| {
        prefs
            .quiet_hours
            .as_ref()
            .and_then(|q| q.window_end(at, prefs.time_zone.unwrap_or(tenant.time_zone)))
            .unwrap_or(at)
    };
    match rule.priority {
        Priority::High => (now, false),
        Priority::Normal => (quiet_end(now), false),
        Priority::Low => {
            let step = rule.digest_minutes.max(1) * 60;
            let next = (now.timestamp() / step + 1) * step;
            let boundary = DateTime::from_timestamp(next, 0).unwrap_or(now);
            (quiet_end(boundary), true)
        }
    }
}

/// Puts a notice in the inbox of every user with the `admin` role (a disabled webhook
/// endpoint), in the caller's transaction.
pub async fn notify_admins(
    conn: &mut AnyConnection,
    tenant: &Tenant,
    kind: &str,
    title: &str,
) -> Result<()> {
    let now = time::to_micros(time::now());
    for user in users_with_role(conn, &tenant.id, "admin").await? {
        sqlx::query(
            "INSERT INTO notifications (tenant_id, id, user_id, rule_id, seq, kind, customer_id, title, priority, created_at) \
             VALUES ($1, $2, $3, 'system', $4, $5, '', $6, 'high', $4) ON CONFLICT DO NOTHING",
        )
        .bind(&tenant.id)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&user)
        .bind(now)
        .bind(kind)
        .bind(title)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// How long after a failed robot call the next one is tried.
pub fn backoff(attempts: i64) -> Duration {
    Duration::seconds(30 << attempts.clamp(0, 10))
}
