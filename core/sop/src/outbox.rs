//! The outbox: every message an SOP sends (and every webhook call it makes) is a row written
//! in the step's transaction, then delivered by a worker with retries. Delivery is at least
//! once; each request carries the message's idempotency key so a receiver can drop repeats.
//!
//! Channels: every message goes through its channel's adapter ([`crate::channels`]: `log`,
//! the `webhook` gateway at `contact.webhook_url`, `sms`, `wecom`; a messaging channel
//! without its own adapter goes through the gateway, and with neither it fails — never
//! "sent"); `http` (a step's own webhook call) POSTs to the step's URL. Requests are signed as the Standard Webhooks specification says
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`), and also with the older `X-Shoal-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; the key is the endpoint's own secret for
//! a step's call, the tenant's gateway secret otherwise.

use std::net::SocketAddr;

use chrono::{DateTime, Duration, Utc};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use shoal_base::{
    config::SopConfig,
    error::Result,
    pagination::{Cursor, Key, Page, Paged},
    storage::{Backend, Db, sql::Sql, time},
};
use shoal_crm::tenancy::Tenant;

pub use crate::channels::gateway::{signature, standard_signature};
use crate::{
    channels::{self, Adapters, Address, Handed, Outgoing},
    contact::Policy,
    outbound::{self, NotCalled, Target},
    transport::Transport,
};

/// A message to queue, owned (for writing a batch's messages at once).
#[derive(Debug, Clone)]
pub struct Queued {
    pub key: String,
    pub customer_id: String,
    pub channel: String,
    pub purpose: &'static str,
    pub body: String,
    pub target: Option<String>,
    pub sop_id: Option<String>,
    pub enrolment_id: Option<String>,
    /// The campaign releasing it.
    pub campaign_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Queues many messages in the caller's transaction, a few hundred per statement; a key
/// queued before is skipped.
pub async fn queue_many(conn: &mut AnyConnection, tenant: &str, rows: &[Queued]) -> Result<()> {
    let backend = Backend::of(conn);
    for chunk in rows.chunks(400) {
        let mut sql = Sql::new(
            "INSERT INTO outbox_messages (tenant_id, id, idempotency_key, customer_id, channel, purpose, body, target, status, attempts, \
             next_attempt_at, sop_id, enrolment_id, campaign_id, created_at) VALUES ",
        );
        for (i, m) in chunk.iter().enumerate() {
            let at = time::to_micros(m.at);
            sql.push_row(
                i == 0,
                [
                    tenant.into(),
                    uuid::Uuid::now_v7().to_string().into(),
                    m.key.as_str().into(),
                    m.customer_id.as_str().into(),
                    m.channel.as_str().into(),
                    m.purpose.into(),
                    m.body.as_str().into(),
                    m.target.as_deref().into(),
                    "pending".into(),
                    0i64.into(),
                    at.into(),
                    m.sop_id.as_deref().into(),
                    m.enrolment_id.as_deref().into(),
                    m.campaign_id.as_deref().into(),
                    at.into(),
                ],
            );
        }
        sql.push(" ON CONFLICT DO NOTHING");
        // positional on SQLite: 6,000 `$n` parameters would be bound in n² time
        sql.on(backend).query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A queued message and how its delivery went.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub idempotency_key: String,
    pub customer_id: String,
    pub channel: String,
    pub purpose: String,
    pub body: String,
    pub target: Option<String>,
    /// `pending`, `sending` (being handed over), `sent`, `failed` or `cancelled`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sop_id: Option<String>,
    pub enrolment_id: Option<String>,
    /// The campaign that released it.
    pub campaign_id: Option<String>,
    /// The channel's own id for it (a WeCom msgid and its sender).
    pub provider_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

pub const ORDER: &str = "outbox:created_at";

fn from_row(r: &AnyRow) -> Result<Message> {
    Ok(Message {
        id: r.try_get("id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        customer_id: r.try_get("customer_id")?,
        channel: r.try_get("channel")?,
        purpose: r.try_get("purpose")?,
        body: r.try_get("body")?,
        target: r.try_get("target")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        sop_id: r.try_get("sop_id")?,
        enrolment_id: r.try_get("enrolment_id")?,
        campaign_id: r.try_get("campaign_id")?,
        provider_ref: r.try_get("provider_ref")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        sent_at: r
            .try_get::<Option<i64>, _>("sent_at")?
            .map(time::from_micros),
    })
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub sop_id: Option<String>,
    pub enrolment_id: Option<String>,
}

/// What a reader who sees some customer field masked or hidden reads instead of a body
/// rendered from customer fields.
pub const HIDDEN_BODY: &str = "(hidden: rendered from customer fields masked for you)";

/// Messages, newest first.
pub async fn list(
    db: &Db,
    actor: &shoal_crm::tenancy::Actor,
    f: &MessageFilter,
    page: &Page,
) -> Result<Paged<(Message, Cursor)>> {
    let tenant = actor.tenant_id();
    let mut sql = Sql::new("SELECT * FROM outbox_messages WHERE tenant_id = ");
    let t = sql.arg(tenant);
    sql.push(&t);
    let resource = shoal_base::kinds::Resource::Customers;
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        resource,
        &t,
        "outbox_messages.customer_id",
    );
    for (col, v) in [
        ("customer_id", &f.customer_id),
        ("status", &f.status),
        ("channel", &f.channel),
        ("sop_id", &f.sop_id),
        ("enrolment_id", &f.enrolment_id),
    ] {
        if let Some(v) = v {
            let a = sql.arg(v.clone());
            sql.push(&format!(" AND {col} = {a}"));
        }
    }
    page.push_conditions(&mut sql, "created_at", "id", true);
    page.push_order_limit(&mut sql, "created_at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    if !actor.access.sees_customers_in_full() {
        for m in &mut items {
            m.body = HIDDEN_BODY.into();
        }
    }
    Ok(page.finish(items).with_cursors(|m| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(m.created_at)),
        id: m.id.clone(),
    }))
}

/// Delivers outbox messages over HTTP or HTTPS (see [`Transport`]).
#[derive(Clone, Debug)]
pub struct Deliverer {
    transport: Transport,
    db: Db,
}

impl Deliverer {
    /// A deliverer trusting the Mozilla roots and `cfg.tls_roots`, reading addresses from
    /// `db`.
    pub fn new(cfg: &SopConfig, db: Db) -> std::result::Result<Deliverer, String> {
        Ok(Deliverer {
            transport: Transport::new(cfg.tls_roots.as_deref())?,
            db,
        })
    }
}

enum Outcome {
    /// Taken, with the channel's own reference when it gives one.
    Taken(Option<String>),
    Retry(String),
    /// Not tried: the channel is at its rate limit; again after the delay, no attempt spent.
    Later(std::time::Duration, String),
    /// Never to be tried again (a forbidden address).
    Refused(String),
}

/// The address to call for `target` (checked against `allowed` unless `None`), within
/// `timeout`; else the outcome: a retry when the name does not resolve (now), a refusal
/// when an address is forbidden.
async fn locate(
    target: &Target,
    allowed: Option<&outbound::Allowed>,
    timeout: std::time::Duration,
) -> std::result::Result<SocketAddr, Outcome> {
    match tokio::time::timeout(timeout, outbound::resolve(target, allowed)).await {
        Err(_) => Err(Outcome::Retry(format!(
            "{}: no DNS answer in time",
            target.host
        ))),
        Ok(Ok(addr)) => Ok(addr),
        Ok(Err(NotCalled::Unresolved(e))) => Err(Outcome::Retry(e)),
        Ok(Err(NotCalled::Forbidden(e))) => Err(Outcome::Refused(e)),
    }
}

impl Deliverer {
    /// POSTs `body` to the target at `addr`, signed with `secret` when there is one.
    async fn post(
        &self,
        (target, addr): (&Target, SocketAddr),
        m: &Message,
        secret: Option<&[u8]>,
        body: String,
        timeout: std::time::Duration,
    ) -> Outcome {
        let host = target.host_header();
        let mut req = hyper::Request::post(target.path.as_str())
            .header("host", host.as_str())
            .header("content-type", "application/json")
            .header("idempotency-key", &m.idempotency_key)
            .header("x-shoal-delivery", &m.id);
        if let Some(secret) = secret {
            let unix = time::now().timestamp();
            req = req
                .header("webhook-id", &m.id)
                .header("webhook-timestamp", unix.to_string())
                .header(
                    "webhook-signature",
                    standard_signature(secret, &m.id, unix, body.as_bytes()),
                )
                .header(
                    "x-shoal-signature",
                    signature(secret, unix, body.as_bytes()),
                );
        }
        let req = match req.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(format!("bad request: {e}")),
        };
        let url = format!(
            "{}://{host}{}",
            if target.https { "https" } else { "http" },
            target.path
        );
        match self.transport.post(target, addr, req, timeout).await {
            Err(e) => Outcome::Retry(format!("{url}: {e}")),
            Ok(answer) if answer.status.is_success() => Outcome::Taken(None),
            Ok(answer) => Outcome::Retry(format!("{url} answered {}", answer.status)),
        }
    }

    /// Delivers one message: a step's webhook call to its URL, signed with
    /// `endpoint_secret` (its endpoint's own key); every other message through its
    /// channel's adapter (a channel without one is refused, never "sent").
    async fn deliver(
        &self,
        tenant: &Tenant,
        m: &Message,
        cfg: &SopConfig,
        endpoint_secret: Option<&[u8]>,
        resent: bool,
    ) -> Outcome {
        let timeout = std::time::Duration::from_millis(cfg.webhook_timeout_ms);
        if m.channel == "http" {
            let envelope = |body: Value| {
                json!({
                    "id": m.id,
                    "tenant": tenant.id,
                    "customerId": m.customer_id,
                    "channel": m.channel,
                    "purpose": m.purpose,
                    "sopId": m.sop_id,
                    "enrolmentId": m.enrolment_id,
                    "createdAt": m.created_at.to_rfc3339(),
                    "body": body,
                })
                .to_string()
            };
            let body = serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone()));
            let url = m.target.clone().unwrap_or_default();
            let allowed = &Policy::of(tenant).outbound_allow;
            let target = match outbound::check(&url, allowed) {
                Ok(t) => t,
                Err(e) => return Outcome::Refused(e),
            };
            let addr = match locate(&target, Some(allowed), timeout).await {
                Ok(addr) => addr,
                Err(not_called) => return not_called,
            };
            return self
                .post((&target, addr), m, endpoint_secret, envelope(body), timeout)
                .await;
        }
        let ready = match self.prepare(tenant, m, resent).await {
            Ok(r) => r,
            Err(not_sent) => return not_sent,
        };
        let ctx = channels::Ctx {
            transport: &self.transport,
            timeout,
        };
        let outgoing = ready.outgoing(tenant);
        outcome_of(ready.adapter.send(ctx, &outgoing).await)
    }

    /// What a message needs before its adapter takes it: the adapter, the customer's
    /// address on the channel and who sends (WeCom: the customer's owner); else why it
    /// cannot go.
    async fn prepare<'m>(
        &self,
        tenant: &Tenant,
        m: &'m Message,
        resent: bool,
    ) -> std::result::Result<Ready<'m>, Outcome> {
        let adapters = Adapters::of(tenant);
        let Some(adapter) = adapters.get(&m.channel).cloned() else {
            return Err(Outcome::Refused(format!(
                "no adapter is configured for the {} channel (see [tenants.{}.channels])",
                m.channel, tenant.id
            )));
        };
        if resent && !adapter.drops_repeats() {
            return Err(Outcome::Refused(format!(
                "the host stopped while handing this message to {}, which cannot drop a repeat: not sent again",
                adapter.name()
            )));
        }
        let mut conn = match self.db.pool.acquire().await {
            Ok(c) => c,
            Err(e) => return Err(Outcome::Retry(format!("no database connection: {e}"))),
        };
        let address = match (&m.target, adapter.address()) {
            (_, Address::None) => None,
            (Some(a), _) => Some(a.clone()),
            (None, kind) => {
                match channels::addresses(
                    &mut conn,
                    &tenant.vault,
                    &tenant.id,
                    kind,
                    &[m.customer_id.as_str()],
                )
                .await
                {
                    Ok(mut found) => found.remove(&m.customer_id),
                    Err(e) => return Err(Outcome::Retry(e.to_string())),
                }
            }
        };
        let sender = match adapters.wecom() {
            Some(w) if adapter.name() == "wecom" => {
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT owner_id FROM customers WHERE tenant_id = $1 AND id = $2",
                )
                .bind(&tenant.id)
                .bind(&m.customer_id)
                .fetch_optional(&mut *conn)
                .await
                .ok()
                .flatten()
                .flatten();
                w.sender_for(owner.as_deref())
            }
            _ => None,
        };
        Ok(Ready {
            m,
            adapter,
            address,
            sender,
        })
    }
}

/// A message its adapter may take now.
struct Ready<'m> {
    m: &'m Message,
    adapter: std::sync::Arc<dyn channels::Channel>,
    address: Option<String>,
    sender: Option<String>,
}

impl Ready<'_> {
    fn outgoing<'a>(&'a self, tenant: &'a Tenant) -> Outgoing<'a> {
        let m = self.m;
        Outgoing {
            id: &m.id,
            idempotency_key: &m.idempotency_key,
            tenant: &tenant.id,
            customer_id: &m.customer_id,
            channel: &m.channel,
            purpose: &m.purpose,
            text: &m.body,
            address: self.address.as_deref(),
            sender: self.sender.as_deref(),
            sop_id: m.sop_id.as_deref(),
            enrolment_id: m.enrolment_id.as_deref(),
            campaign_id: m.campaign_id.as_deref(),
            created_at: m.created_at,
        }
    }
}

fn outcome_of(handed: Handed) -> Outcome {
    match handed {
        Handed::Taken { reference } => Outcome::Taken(reference),
        Handed::Retry(e) => Outcome::Retry(e),
        Handed::Later { after, reason } => Outcome::Later(after, reason),
        Handed::Refused(e) => Outcome::Refused(e),
    }
}

/// Records how a message's delivery went: sent, failed, or pending again (after a back-off;
/// a channel's own rate limit spends no attempt).
async fn settle(
    db: &Db,
    tenant: &Tenant,
    cfg: &SopConfig,
    m: &Message,
    outcome: Outcome,
) -> Result<()> {
    let done = time::to_micros(time::now());
    if let Outcome::Later(after, reason) = &outcome {
        sqlx::query(
            "UPDATE outbox_messages SET status = 'pending', next_attempt_at = $3, last_error = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&tenant.id)
        .bind(&m.id)
        .bind(done + after.as_micros() as i64)
        .bind(reason)
        .execute(&db.pool)
        .await?;
        return Ok(());
    }
    let attempts = m.attempts + 1;
    let (status, next, error, sent, reference) = match outcome {
        Outcome::Taken(reference) => ("sent", done, None, Some(done), reference),
        Outcome::Refused(e) => ("failed", done, Some(e), None, None),
        Outcome::Retry(e) if attempts >= i64::from(cfg.delivery_attempts.max(1)) => {
            ("failed", done, Some(e), None, None)
        }
        Outcome::Retry(e) | Outcome::Later(_, e) => {
            let backoff =
                (cfg.retry_base_seconds as i64 * 1_000_000) << (attempts - 1).clamp(0, 20);
            ("pending", done + backoff, Some(e), None, None)
        }
    };
    if let Some(e) = &error {
        tracing::warn!(tenant = %tenant.id, message = %m.id, attempts, status, error = %e, "outbox delivery failed");
    }
    sqlx::query(
        "UPDATE outbox_messages SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6, sent_at = $7, provider_ref = $8 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&tenant.id)
    .bind(&m.id)
    .bind(status)
    .bind(attempts)
    .bind(next)
    .bind(error)
    .bind(sent)
    .bind(reference)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Delivers the tenant's due messages (up to 100, and the due messages of their campaigns on
/// a channel that takes many in one call); returns how many were attempted.
///
/// Each message is claimed (`pending` → `sending`) just before its hand-over, so a campaign
/// cancelled meanwhile is not sent; a message left `sending` by a host that stopped is
/// handed over again with the same idempotency key once its lease ends (or, to a channel
/// that cannot drop repeats, failed rather than sent twice). On a channel that takes many
/// messages in one call (WeCom: one task per sender), messages with the same sender and
/// text go together, up to the channel's limit.
pub async fn deliver_due(
    db: &Db,
    tenant: &Tenant,
    cfg: &SopConfig,
    deliverer: &Deliverer,
    now: DateTime<Utc>,
) -> Result<usize> {
    // Lease the rows (the lease outlasts a delivery) so no other worker takes them meanwhile,
    // without holding a transaction open during HTTP calls.
    let lease = now + Duration::milliseconds(cfg.webhook_timeout_ms as i64 * 2 + 5_000);
    let lock = db.backend.skip_locked();
    let adapters = Adapters::of(tenant);
    let batch_of = |channel: &str| adapters.batch(channel);
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(&format!(
        "SELECT * FROM outbox_messages WHERE tenant_id = $1 AND status IN ('pending', 'sending') AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT 100{lock}"
    ))
    .bind(&tenant.id)
    .bind(time::to_micros(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut messages = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    // a campaign's other due messages on a channel that takes many at once join them
    let mut campaigns = std::collections::BTreeSet::new();
    for m in &messages {
        if let Some(c) = &m.campaign_id
            && batch_of(&m.channel) > 1
        {
            campaigns.insert((c.clone(), m.channel.clone()));
        }
    }
    let mut seen: std::collections::HashSet<String> =
        messages.iter().map(|m| m.id.clone()).collect();
    for (campaign, channel) in campaigns {
        let more = sqlx::query(&format!(
            "SELECT * FROM outbox_messages WHERE tenant_id = $1 AND campaign_id = $2 AND channel = $3 \
             AND status = 'pending' AND next_attempt_at <= $4 ORDER BY next_attempt_at LIMIT $5{lock}"
        ))
        .bind(&tenant.id)
        .bind(&campaign)
        .bind(&channel)
        .bind(time::to_micros(now))
        .bind(batch_of(&channel) as i64)
        .fetch_all(&mut *tx)
        .await?;
        for r in &more {
            let m = from_row(r)?;
            if seen.insert(m.id.clone()) {
                messages.push(m);
            }
        }
    }
    for chunk in messages.chunks(400) {
        let mut sql = Sql::new("UPDATE outbox_messages SET next_attempt_at = ");
        let l = sql.arg(time::to_micros(lease));
        let t = sql.arg(tenant.id.clone());
        let ids: Vec<String> = chunk.iter().map(|m| sql.arg(m.id.clone())).collect();
        sql.push(&format!(
            "{l} WHERE tenant_id = {t} AND id IN ({})",
            ids.join(", ")
        ));
        sql.on(Backend::of(&tx))
            .query_once()
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let mut secrets: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    // (channel, sender, text) → messages ready to go together
    let mut together: std::collections::BTreeMap<(String, Option<String>, String), Vec<Ready>> =
        Default::default();
    for m in &messages {
        // claimed now: a message cancelled since the lease is not handed over
        let claimed = sqlx::query(
            "UPDATE outbox_messages SET status = 'sending' WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'sending')",
        )
        .bind(&tenant.id)
        .bind(&m.id)
        .execute(&db.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            continue;
        }
        let resent = m.status == "sending";
        if m.channel != "http" && batch_of(&m.channel) > 1 {
            match deliverer.prepare(tenant, m, resent).await {
                Ok(ready) => together
                    .entry((m.channel.clone(), ready.sender.clone(), m.body.clone()))
                    .or_default()
                    .push(ready),
                Err(not_sent) => settle(db, tenant, cfg, m, not_sent).await?,
            }
            continue;
        }
        let endpoint_secret = match (m.channel.as_str(), &m.target) {
            ("http", Some(url)) => {
                // one look-up per endpoint and batch
                if !secrets.contains_key(url) {
                    let mut conn = db.pool.acquire().await?;
                    let secret = crate::endpoints::secret_of(&mut conn, &tenant.id, url).await?;
                    secrets.insert(url.clone(), crate::endpoints::key_bytes(&secret));
                }
                secrets.get(url).cloned()
            }
            _ => None,
        };
        // one message that panics fails alone; the others of the batch are delivered
        let delivery = async {
            Ok(deliverer
                .deliver(tenant, m, cfg, endpoint_secret.as_deref(), resent)
                .await)
        };
        let outcome = match shoal_base::supervise::catch(delivery).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Refused(format!("delivery failed inside the host: {e}")),
        };
        settle(db, tenant, cfg, m, outcome).await?;
    }
    let ctx = channels::Ctx {
        transport: &deliverer.transport,
        timeout: std::time::Duration::from_millis(cfg.webhook_timeout_ms),
    };
    for ((channel, _, _), group) in together {
        for part in group.chunks(batch_of(&channel)) {
            let outgoing: Vec<Outgoing> = part.iter().map(|r| r.outgoing(tenant)).collect();
            // a call that panics fails its own messages only
            let handing = async { Ok(part[0].adapter.send_many(ctx, &outgoing).await) };
            let verdicts = match shoal_base::supervise::catch(handing).await {
                Ok(v) if v.len() == part.len() => v,
                Ok(v) => vec![
                    Handed::Refused(format!(
                        "the {channel} adapter answered {} verdicts for {} messages",
                        v.len(),
                        part.len()
                    ));
                    part.len()
                ],
                Err(e) => vec![
                    Handed::Refused(format!("delivery failed inside the host: {e}"));
                    part.len()
                ],
            };
            for (ready, handed) in part.iter().zip(verdicts) {
                settle(db, tenant, cfg, ready.m, outcome_of(handed)).await?;
            }
        }
    }
    Ok(messages.len())
}

#[cfg(test)]
mod signing {
    use super::*;

    /// The example of the Standard Webhooks specification (secret, id, timestamp, payload
    /// and signature as published; the signature also recomputed with Python's `hmac`).
    #[test]
    fn the_standard_webhooks_signature_matches_the_published_example() {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(
            standard_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
