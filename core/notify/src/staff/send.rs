//! Sending notifications on the external channels: e-mail (through [`Mailer`]) and a WeCom group robot
//! (`{"msgtype":"text","text":{"content":…,"mentioned_list":[…]}}`) or a DingTalk group
//! robot (`{"msgtype":"text","text":{"content":…},"at":{"atUserIds":[…]}}`, with
//! `timestamp` and `sign` — base64 HMAC-SHA256 of `"<ms>\n<secret>"` — when the rule has a
//! secret). Both answer `{"errcode":0,…}` when they took the message; anything else is a
//! failure, retried with back-off. Low-priority notifications due together for one user and
//! channel leave as one digest message.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use shoal_base::{
    config::NotifyConfig,
    error::Result,
    storage::{Backend, Db, time},
};
use shoal_crm::tenancy::Tenant;
use shoal_sop::{channels::robot::dingtalk_url, transport::Transport};

use super::{Channel, backoff, fetch, inbox::prefs_on};
use crate::{
    email::Mailer,
    post::{Posted, post_json},
};

/// Sends one robot call makes at most (a digest lists this many, and says how many more).
const DIGEST_LINES: usize = 20;
/// Attempts of one send before it is failed.
const ATTEMPTS: i64 = 6;

#[derive(Debug)]
struct Due {
    id: String,
    user: String,
    channel: String,
    digest: bool,
    attempts: i64,
    title: String,
    rule_id: String,
}

/// Sends the tenant's due robot notifications (one batch); returns how many sends were
/// settled.
pub async fn deliver_due(
    db: &Db,
    tenant: &Tenant,
    cfg: &NotifyConfig,
    transport: &Transport,
    mailer: Option<&Mailer>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let lease = now + Duration::milliseconds(cfg.timeout_ms as i64 * 2 + 5_000);
    let lock = match db.backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF s SKIP LOCKED",
    };
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.user_id, s.channel, s.digest, s.attempts, n.title, n.rule_id \
         FROM notification_sends s JOIN notifications n ON n.tenant_id = s.tenant_id AND n.id = s.notification_id \
         WHERE s.tenant_id = $1 AND s.status = 'pending' AND s.due_at <= $2 ORDER BY s.due_at, s.id LIMIT 200{lock}"
    ))
    .bind(&tenant.id)
    .bind(time::to_micros(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for r in &rows {
        due.push(Due {
            id: r.try_get("id")?,
            user: r.try_get("user_id")?,
            channel: r.try_get("channel")?,
            digest: r.try_get::<i64, _>("digest")? != 0,
            attempts: r.try_get("attempts")?,
            title: r.try_get("title")?,
            rule_id: r.try_get("rule_id")?,
        });
    }
    for d in &due {
        sqlx::query("UPDATE notification_sends SET due_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(&tenant.id)
            .bind(&d.id)
            .bind(time::to_micros(lease))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // one message per send, except digests: one per (rule, user, channel)
    let mut groups: BTreeMap<(String, String, String, Option<String>), Vec<&Due>> = BTreeMap::new();
    for d in &due {
        let alone = (!d.digest).then(|| d.id.clone());
        groups
            .entry((d.rule_id.clone(), d.user.clone(), d.channel.clone(), alone))
            .or_default()
            .push(d);
    }
    for ((rule_id, user, channel, _), sends) in groups {
        // one group that panics fails alone; the others of the round are sent
        let sending = async {
            Ok(send_group(
                db,
                tenant,
                cfg,
                transport,
                mailer,
                (&rule_id, &user, &channel),
                &sends,
            )
            .await)
        };
        let outcome = match shoal_base::supervise::catch(sending).await {
            Ok(Ok(outcome)) => outcome,
            // the rule was deleted, or the database failed: try again later
            Ok(Err(e)) | Err(e) => Err((e.to_string(), true)),
        };
        let at = time::to_micros(time::now());
        for s in sends {
            let attempts = s.attempts + 1;
            let (status, due_at, error, sent) = match &outcome {
                Ok(()) => ("sent", at, None, Some(at)),
                Err((e, true)) if attempts < ATTEMPTS => (
                    "pending",
                    time::to_micros(time::now() + backoff(attempts)),
                    Some(e.clone()),
                    None,
                ),
                Err((e, _)) => ("failed", at, Some(e.clone()), None),
            };
            sqlx::query(
                "UPDATE notification_sends SET status = $3, due_at = $4, attempts = $5, last_error = $6, sent_at = $7 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(&tenant.id)
            .bind(&s.id)
            .bind(status)
            .bind(due_at)
            .bind(attempts)
            .bind(error)
            .bind(sent)
            .execute(&db.pool)
            .await?;
        }
    }
    Ok(due.len())
}

/// Whether a send was taken, else why not and whether to try again.
type Sent = std::result::Result<(), (String, bool)>;

/// Sends one message for `sends` (one notification, or a digest of several) of a rule to a
/// user on a channel.
async fn send_group(
    db: &Db,
    tenant: &Tenant,
    cfg: &NotifyConfig,
    transport: &Transport,
    mailer: Option<&Mailer>,
    (rule_id, user, channel): (&str, &str, &str),
    sends: &[&Due],
) -> Result<Sent> {
    let mut conn = db.pool.acquire().await?;
    let rule = fetch(&mut conn, &tenant.id, rule_id).await?;
    let prefs = prefs_on(&mut conn, tenant, user).await?;
    drop(conn);
    let alone = sends.len() == 1 && !sends[0].digest;
    let content = if alone {
        sends[0].title.clone()
    } else {
        let mut lines: Vec<String> = sends
            .iter()
            .take(DIGEST_LINES)
            .map(|s| format!("• {}", s.title))
            .collect();
        if sends.len() > DIGEST_LINES {
            lines.push(format!("… and {} more", sends.len() - DIGEST_LINES));
        }
        format!(
            "{} ({} notifications)\n{}",
            rule.name,
            sends.len(),
            lines.join("\n")
        )
    };
    if channel == Channel::Email.as_str() {
        let Some(mailer) = mailer else {
            return Ok(Err((
                "e-mail is not a channel of this host (notify.smtp_url is not set)".to_owned(),
                false,
            )));
        };
        let Some(to) = tenant.users.get(user).and_then(|u| u.email.clone()) else {
            return Ok(Err((format!("user `{user}` has no e-mail address"), false)));
        };
        let subject = match content.lines().next() {
            Some(first) if alone => first.to_owned(),
            _ => format!("{}: {} notifications", rule.name, sends.len()),
        };
        return Ok(mailer
            .send(&to, &subject, &content, None)
            .await
            .map_err(|e| (e.message, e.retry)));
    }
    let mention: Vec<String> = prefs.im_user_id.into_iter().collect();
    let url = rule.robot_url.clone().unwrap_or_default();
    let (url, body) = if channel == Channel::WecomRobot.as_str() {
        (
            url,
            json!({"msgtype": "text", "text": {"content": content, "mentioned_list": mention}}),
        )
    } else {
        let url = dingtalk_url(
            &url,
            rule.robot_secret.as_deref(),
            time::now().timestamp_millis(),
        );
        (
            url,
            json!({"msgtype": "text", "text": {"content": content}, "at": {"atUserIds": mention}}),
        )
    };
    let timeout = std::time::Duration::from_millis(cfg.timeout_ms);
    let (posted, _) = post_json(transport, tenant, &url, &[], body.to_string(), timeout).await;
    Ok(match posted {
        Posted::Answered(a) if a.status.is_success() => {
            let answer: Value = serde_json::from_slice(&a.head).unwrap_or(Value::Null);
            match answer.get("errcode").and_then(Value::as_i64) {
                Some(0) => Ok(()),
                _ => Err((
                    format!("the robot answered {}", String::from_utf8_lossy(&a.head)),
                    true,
                )),
            }
        }
        Posted::Answered(a) => Err((format!("the robot answered {}", a.status), true)),
        Posted::Failed(e) => Err((e, true)),
        Posted::Refused(e) => Err((e, false)),
    })
}
