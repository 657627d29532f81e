//! Satisfaction surveys (CSAT): a ticket whose type has a survey gets one when it is first
//! resolved — a token (the customer's link, `/surveys/<tenant>/<token>`) and the
//! `ticket.survey_ready` change, which webhooks deliver to the system that talks to the
//! customer, and which the SOP dispatcher turns into a message on the survey's channel
//! when it names one (`shoal-sop`'s `survey_messages`). Answered once, checked against the questions; the first rating question's
//! answer is the ticket's score, which [`report`] averages.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

use shoal_base::{
    error::{Error, Problems, Result},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, internal_events, tenancy::Actor};

use crate::{records::Ticket, types::Survey};

/// A ticket's survey.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub ticket_id: String,
    pub token: String,
    pub survey: Survey,
    pub sent_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answers: Option<Map<String, Value>>,
    pub rating: Option<i64>,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Sent> {
    let survey: String = r.try_get("survey")?;
    let answers: Option<String> = r.try_get("answers")?;
    Ok(Sent {
        ticket_id: r.try_get("ticket_id")?,
        token: r.try_get("token")?,
        survey: serde_json::from_str(&survey)
            .map_err(|e| Error::Internal(format!("a stored survey: {e}")))?,
        sent_at: time::from_micros(r.try_get("sent_at")?),
        answered_at: r
            .try_get::<Option<i64>, _>("answered_at")?
            .map(time::from_micros),
        answers: answers.and_then(|a| serde_json::from_str(&a).ok()),
        rating: r.try_get("rating")?,
    })
}

/// The path of the customer's link to survey `token`.
pub fn path(tenant: &str, token: &str) -> String {
    format!("/surveys/{tenant}/{token}")
}

/// Makes ticket `t`'s survey, once (it was just resolved; its type has `survey`), with the
/// `ticket.survey_ready` change, in the caller's transaction.
pub(crate) async fn send_in(
    conn: &mut AnyConnection,
    tenant: &str,
    t: &Ticket,
    survey: &Survey,
    at: i64,
) -> Result<()> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let made = sqlx::query(
        "INSERT INTO ticket_surveys (tenant_id, ticket_id, token, type_key, survey, sent_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, ticket_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(&t.id)
    .bind(&token)
    .bind(&t.type_key)
    .bind(serde_json::to_string(survey).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if made == 1 {
        internal_events::emit(
            conn,
            tenant,
            "ticket.survey_ready",
            t.customer_id.as_deref().unwrap_or(""),
            &json!({ "ticketId": t.id, "type": t.type_key, "token": token, "path": path(tenant, &token) }),
            at,
        )
        .await?;
    }
    Ok(())
}

/// Ticket `id`'s survey, if it has one (the caller reaches the ticket: checked by the
/// caller of this function).
pub async fn of_ticket(db: &Db, tenant: &str, id: &str) -> Result<Option<Sent>> {
    let mut conn = db.pool.acquire().await?;
    of_ticket_in(&mut conn, tenant, id).await
}

/// [`of_ticket`] on the caller's connection (inside its transaction).
pub async fn of_ticket_in(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<Sent>> {
    sqlx::query("SELECT * FROM ticket_surveys WHERE tenant_id = $1 AND ticket_id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The survey of `token` in tenant `tenant` (NOT_FOUND for any other token).
pub async fn by_token(db: &Db, tenant: &str, token: &str) -> Result<Sent> {
    sqlx::query("SELECT * FROM ticket_surveys WHERE tenant_id = $1 AND token = $2")
        .bind(tenant)
        .bind(token)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| Error::not_found("survey", token))
}

/// Records the answers to survey `token`, once (a second answer is refused, naming `token`), each
/// checked against its question (problems under `answers.<key>`); the ticket's history and
/// the audit log say so, by `actor` (the customer's link acts as `customer`).
pub async fn answer(
    db: &Db,
    actor: &Actor,
    token: &str,
    answers: &Map<String, Value>,
) -> Result<Sent> {
    let tenant = actor.tenant_id();
    let sent = by_token(db, tenant, token).await?;
    if sent.answered_at.is_some() {
        return Err(Error::invalid("token", "this survey was answered already"));
    }
    let mut p = Problems::default();
    sent.survey.check_answers(answers, &mut p);
    p.into_result(())?;
    let rating = sent.survey.score(answers);
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE ticket_surveys SET answered_at = $3, answers = $4, rating = $5 WHERE tenant_id = $1 AND token = $2 AND answered_at IS NULL",
    )
    .bind(tenant)
    .bind(token)
    .bind(now)
    .bind(Value::Object(answers.clone()).to_string())
    .bind(rating)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(Error::invalid("token", "this survey was answered already"));
    }
    let detail = json!({ "rating": rating });
    crate::entries::add(
        &mut tx,
        tenant,
        &sent.ticket_id,
        ("survey_answered", &actor.user_id, false),
        None,
        Some(detail.clone()),
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        "ticket.survey_answered",
        "ticket",
        &sent.ticket_id,
        detail,
    )
    .await?;
    tx.commit().await?;
    by_token(db, tenant, token).await
}

/// CSAT over surveys sent in `[from, to)`, of tickets the caller reaches (of one type when
/// given).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sent: i64,
    pub answered: i64,
    /// Mean rating (1–5) of the answered ones, to two decimals; none without answers.
    pub average: Option<rust_decimal::Decimal>,
    /// How many answered 1, 2, 3, 4 and 5.
    pub distribution: [i64; 5],
    /// Share (percent) of answered ones rating 4 or 5: the CSAT score.
    pub satisfied_percent: Option<rust_decimal::Decimal>,
}

/// The CSAT report (see [`Report`]).
pub async fn report(
    db: &Db,
    actor: &Actor,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    type_key: Option<&str>,
) -> Result<Report> {
    let mut sql = Sql::new(
        "SELECT s.rating, s.answered_at FROM ticket_surveys s JOIN tickets ON tickets.tenant_id = s.tenant_id \
         AND tickets.id = s.ticket_id WHERE s.tenant_id = ",
    );
    let t = sql.arg(actor.tenant_id());
    let f = sql.arg(time::to_micros(from));
    let u = sql.arg(time::to_micros(to));
    sql.push(&format!("{t} AND s.sent_at >= {f} AND s.sent_at < {u}"));
    if let Some(k) = type_key {
        let k = sql.arg(k);
        sql.push(&format!(" AND s.type_key = {k}"));
    }
    crate::reach::push_scope(
        actor,
        db,
        &mut sql,
        &t,
        &crate::reach::my_queues(db, actor).await?,
    );
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut r = Report {
        sent: rows.len() as i64,
        answered: 0,
        average: None,
        distribution: [0; 5],
        satisfied_percent: None,
    };
    let mut sum = 0i64;
    for row in rows {
        if row.try_get::<Option<i64>, _>("answered_at")?.is_some() {
            r.answered += 1;
        }
        if let Some(n) = row.try_get::<Option<i64>, _>("rating")?
            && (1..=5).contains(&n)
        {
            r.distribution[(n - 1) as usize] += 1;
            sum += n;
        }
    }
    let rated: i64 = r.distribution.iter().sum();
    if rated > 0 {
        let d = |n: i64| rust_decimal::Decimal::from(n);
        r.average = Some((d(sum) / d(rated)).round_dp(2));
        r.satisfied_percent =
            Some((d(r.distribution[3] + r.distribution[4]) * d(100) / d(rated)).round_dp(1));
    }
    Ok(r)
}
