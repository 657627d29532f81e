//! Channel adapters: every way a message reaches a customer implements [`Channel`], with its
//! own configuration, secrets and error mapping. The outbox hands SOP and campaign messages
//! alike to the adapter of their channel; a channel with no adapter is refused, never
//! "sent" (docs/campaigns.md#channels).
//!
//! - `log`: writes a log line (a channel chosen on purpose, for trials and benchmarks);
//! - `webhook`: the tenant's own gateway at `contact.webhook_url` ([`gateway`]);
//! - `sms`: a generic HTTP SMS gateway ([`sms`]);
//! - `wecom`: WeCom external-contact mass messages ([`wecom`]);
//! - `email`: the host's SMTP relay, with open and click tracking ([`email`], [`mailer`]);
//! - `robot`: a WeCom or DingTalk group robot, for staff-facing messages ([`robot`]).

pub mod email;
pub mod gateway;
pub mod mailer;
pub mod robot;
pub mod sms;
pub mod wecom;

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use shoal_base::{error::Result, storage::Backend};
use shoal_crm::tenancy::Tenant;

use crate::transport::Transport;

/// What every adapter's call shares: the host's TLS settings and a time limit.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub transport: &'a Transport,
    pub timeout: Duration,
}

/// One message for a channel.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The outbox message's id (`webhook-id` where the channel signs).
    pub id: &'a str,
    /// Stable over every attempt: receivers drop repeats by it.
    pub idempotency_key: &'a str,
    pub tenant: &'a str,
    pub customer_id: &'a str,
    pub channel: &'a str,
    /// `marketing` or `service`.
    pub purpose: &'a str,
    /// The rendered text.
    pub text: &'a str,
    /// The customer's address on the channel (phone, email, WeCom external_userid), for
    /// channels that need one.
    pub address: Option<&'a str>,
    /// Who sends, for channels that send as a staff member (WeCom).
    pub sender: Option<&'a str>,
    pub sop_id: Option<&'a str>,
    pub enrolment_id: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// How a hand-over went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handed {
    /// The channel took the message; `reference` is the channel's own id for it (a WeCom
    /// `msgid`), for status queries and recalls.
    Taken { reference: Option<String> },
    /// Not taken, worth another try (no answer, a 5xx, a rate limit).
    Retry(String),
    /// Not tried: the channel is at its own rate limit. Tried again `after`, without
    /// spending one of the message's attempts.
    Later { after: Duration, reason: String },
    /// Not taken and never will be (bad address, refused by the channel).
    Refused(String),
}

/// The future an adapter's [`Channel::send`] returns.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Handed> + Send + 'a>>;

/// The future an adapter's [`Channel::send_many`] returns: one verdict per message, in
/// order.
pub type SendingMany<'a> = Pin<Box<dyn Future<Output = Vec<Handed>> + Send + 'a>>;

/// What a channel needs to know about the customer to reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// Nothing: the message goes to a gateway or a log.
    None,
    /// The customer's first phone number (E.164).
    Phone,
    /// The customer's first e-mail address.
    Email,
    /// The customer's identity on this channel (`wecom`: the external_userid).
    Identity(&'static str),
}

/// A way to reach customers.
pub trait Channel: Send + Sync {
    /// The channel's name (`sms`, `wecom`, …).
    fn name(&self) -> &'static str;
    /// What the channel needs of the customer.
    fn address(&self) -> Address;
    /// Whether the channel can take a message back after it took it, and within how long.
    fn recall_window(&self) -> Option<Duration> {
        None
    }
    /// Whether the channel drops a message it already took when it comes again with the
    /// same idempotency key (a gateway does; WeCom does not, so a message whose hand-over
    /// a crash interrupted is not sent again there).
    fn drops_repeats(&self) -> bool {
        true
    }
    /// Hands one message over.
    fn send<'a>(&'a self, ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a>;
    /// Most messages one call may carry: above 1, the outbox hands a campaign's messages
    /// with the same sender and text over together through [`Channel::send_many`].
    fn batch(&self) -> usize {
        1
    }
    /// Hands over messages with the same sender and text (at most [`Channel::batch`]); one
    /// verdict per message, in order. By default one [`Channel::send`] after another.
    fn send_many<'a>(&'a self, ctx: Ctx<'a>, ms: &'a [Outgoing<'a>]) -> SendingMany<'a> {
        Box::pin(async move {
            let mut verdicts = Vec::with_capacity(ms.len());
            for m in ms {
                verdicts.push(self.send(ctx, m).await);
            }
            verdicts
        })
    }
}

/// Writes a log line and calls it delivered: the channel a tenant picks on purpose.
#[derive(Debug)]
pub struct Log;

impl Channel for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn address(&self) -> Address {
        Address::None
    }
    fn send<'a>(&'a self, _: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            tracing::info!(target: "shoal::outbox", tenant = %m.tenant, customer = %m.customer_id, channel = "log", message = %m.text, "message delivered to the log");
            Handed::Taken { reference: None }
        })
    }
}

/// A tenant's adapters, built from its configuration once (kept in `Tenant::derived`, so
/// a WeCom access token is cached per tenant).
pub struct Adapters {
    by_name: HashMap<&'static str, Arc<dyn Channel>>,
    wecom: Option<Arc<wecom::Wecom>>,
    sms: Option<Arc<sms::Sms>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Adapters")
            .field("channels", &names)
            .finish()
    }
}

impl Adapters {
    /// The tenant's adapters (its configuration was checked at load: a section that does
    /// not read is left out, so its channel is refused).
    pub fn of(tenant: &Tenant) -> Arc<Adapters> {
        tenant.derived.get_or_init(|| Adapters::build(tenant))
    }

    fn build(tenant: &Tenant) -> Adapters {
        let mut by_name: HashMap<&'static str, Arc<dyn Channel>> = HashMap::new();
        by_name.insert("log", Arc::new(Log));
        let policy = crate::contact::Policy::of(tenant);
        if let Some(url) = &policy.webhook_url {
            by_name.insert(
                "webhook",
                Arc::new(gateway::Gateway::new(url, policy.webhook_secret.clone())),
            );
        }
        let sms = match tenant.channels.sms.as_ref().map(sms::Sms::from_config) {
            Some(Ok(s)) => Some(Arc::new(s)),
            _ => None,
        };
        if let Some(s) = &sms {
            by_name.insert("sms", s.clone());
        }
        let wecom = match tenant
            .channels
            .wecom
            .as_ref()
            .map(wecom::Wecom::from_config)
        {
            Some(Ok(w)) => Some(Arc::new(w)),
            _ => None,
        };
        if let Some(w) = &wecom {
            by_name.insert("wecom", w.clone());
        }
        if let Some(Ok(r)) = tenant
            .channels
            .robot
            .as_ref()
            .map(robot::Robot::from_config)
        {
            by_name.insert("robot", Arc::new(r));
        }
        if let Some(Ok(e)) = email::Email::of(tenant) {
            by_name.insert("email", Arc::new(e));
        }
        Adapters {
            by_name,
            wecom,
            sms,
        }
    }

    /// The SMS adapter, for delivery reports.
    pub fn sms(&self) -> Option<&Arc<sms::Sms>> {
        self.sms.as_ref()
    }

    /// The WeCom adapter, for status queries and cancels.
    pub fn wecom(&self) -> Option<&Arc<wecom::Wecom>> {
        self.wecom.as_ref()
    }

    /// The adapter of `channel`, if the tenant configured one. A messaging channel
    /// without its own adapter goes through the tenant's gateway when there is one.
    pub fn get(&self, channel: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(channel).or_else(|| match channel {
            "log" | "http" => None,
            // a staff group is never reached through the customer gateway
            c if crate::definition::staff_facing(c) => None,
            _ => self.by_name.get("webhook"),
        })
    }

    /// Most messages one hand-over to `channel` carries ([`Channel::batch`]; 1 without an
    /// adapter).
    pub fn batch(&self, channel: &str) -> usize {
        self.get(channel).map_or(1, |a| a.batch().max(1))
    }

    /// The channels with an adapter, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.by_name.keys().copied().collect();
        names.sort();
        names
    }
}

/// Checks the `channels` section of a tenant's configuration (a `TenantCheck`).
pub fn check_config(
    tenant: &shoal_base::config::TenantConfig,
) -> std::result::Result<(), shoal_base::config::Invalid> {
    let invalid = |(key, message): (String, String)| shoal_base::config::Invalid {
        key: format!("channels.{key}"),
        message,
    };
    if let Some(c) = &tenant.channels.sms {
        sms::Sms::from_config(c).map_err(|(k, m)| invalid((format!("sms.{k}"), m)))?;
    }
    if let Some(c) = &tenant.channels.wecom {
        wecom::Wecom::from_config(c).map_err(|(k, m)| invalid((format!("wecom.{k}"), m)))?;
    }
    if let Some(c) = &tenant.channels.robot {
        robot::Robot::from_config(c).map_err(|(k, m)| invalid((format!("robot.{k}"), m)))?;
    }
    if let Some(c) = &tenant.channels.email {
        // the addresses only: the relay is the host's (`notify.smtp_url`), checked with it
        mailer::Mailer::new("smtp://relay", &c.from, c.reply_to.as_deref(), 1)
            .map_err(|(k, m)| invalid((format!("email.{k}"), m)))?;
    }
    for (channel, n) in &tenant.channels.per_second {
        if channel != "*" && !crate::definition::CHANNELS.contains(&channel.as_str()) {
            return Err(invalid((
                format!("per_second.{channel}"),
                "not a channel or `*`".into(),
            )));
        }
        if *n == 0 {
            return Err(invalid((
                format!("per_second.{channel}"),
                "at least 1 message per second".into(),
            )));
        }
    }
    Ok(())
}

/// Messages per second the tenant hands to `channel` (`channels.per_second`, else `*`,
/// else 20).
pub fn per_second(tenant: &Tenant, channel: &str) -> u32 {
    let p = &tenant.channels.per_second;
    p.get(channel).or_else(|| p.get("*")).copied().unwrap_or(20)
}

/// Campaign messages the tenant releases to `channel` per second: [`per_second`] calls, each
/// carrying up to the adapter's [`Channel::batch`] messages (WeCom: a sender's customers in
/// one task), at most 10,000.
pub fn release_per_second(tenant: &Tenant, channel: &str) -> usize {
    let batch = Adapters::of(tenant).batch(channel);
    (per_second(tenant, channel) as usize)
        .saturating_mul(batch)
        .min(10_000)
}

/// Each customer's address for `address` (customers without one are absent): the first
/// phone or e-mail of the profile, or the identity on the channel, opened from their sealed
/// form with the tenant's keys.
pub async fn addresses(
    conn: &mut AnyConnection,
    vault: &shoal_base::vault::Vault,
    tenant: &str,
    address: Address,
    ids: &[&str],
) -> Result<HashMap<String, String>> {
    use shoal_crm::customers::sealed;
    let mut out = HashMap::new();
    let (select, cond) = match address {
        Address::None => return Ok(out),
        Address::Phone => (
            "id AS customer_id, phones AS sealed",
            "phones <> '[]' AND id".to_owned(),
        ),
        Address::Email => (
            "id AS customer_id, emails AS sealed",
            "emails <> '[]' AND id".to_owned(),
        ),
        Address::Identity(channel) => (
            "customer_id, external_id, external_id_sealed AS sealed",
            format!("channel = '{channel}' AND deleted_at IS NULL AND customer_id"),
        ),
    };
    let table = match address {
        Address::Identity(_) => "customer_identities",
        _ => "customers",
    };
    for chunk in ids.chunks(500) {
        let mut sql = shoal_base::storage::sql::Sql::new(&format!(
            "SELECT {select} FROM {table} WHERE tenant_id = "
        ));
        let t = sql.arg(tenant);
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!("{t} AND {cond} IN ({})", list.join(", ")));
        let mut found: Vec<(String, String)> = Vec::new();
        for r in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            let id: String = r.try_get("customer_id")?;
            let stored: Option<String> = r.try_get("sealed")?;
            let value = match address {
                Address::Phone => sealed::open_list(
                    vault,
                    tenant,
                    sealed::PHONES,
                    stored.as_deref().unwrap_or("[]"),
                )?
                .into_iter()
                .next(),
                Address::Email => sealed::open_list(
                    vault,
                    tenant,
                    sealed::EMAILS,
                    stored.as_deref().unwrap_or("[]"),
                )?
                .into_iter()
                .next(),
                _ => Some(sealed::open_identity(
                    vault,
                    tenant,
                    &r.try_get::<String, _>("external_id")?,
                    stored.as_deref(),
                )?),
            };
            if let Some(v) = value {
                found.push((id, v));
            }
        }
        // one address per customer, the same one every time
        found.sort();
        for (id, v) in found {
            out.entry(id).or_insert(v);
        }
    }
    Ok(out)
}

/// The checked address of a channel's `target`, resolved within the call's time limit: no
/// answer in time or from DNS is worth a retry, a forbidden address never.
pub(crate) async fn resolve(
    ctx: Ctx<'_>,
    target: &crate::outbound::Target,
) -> std::result::Result<std::net::SocketAddr, Handed> {
    use crate::outbound::{NotCalled, resolve};
    match tokio::time::timeout(ctx.timeout, resolve(target, None)).await {
        Err(_) => Err(Handed::Retry(format!(
            "{}: no DNS answer in time",
            target.host
        ))),
        Ok(Err(NotCalled::Unresolved(e))) => Err(Handed::Retry(e)),
        Ok(Err(NotCalled::Forbidden(e))) => Err(Handed::Refused(e)),
        Ok(Ok(addr)) => Ok(addr),
    }
}

/// The error mapping HTTP channels share: 2xx taken, 408 / 429 / 5xx worth a retry, any
/// other status refused.
pub(crate) fn by_status(status: hyper::StatusCode, what: &str) -> Option<Handed> {
    if status.is_success() {
        None
    } else if status.is_server_error()
        || status == hyper::StatusCode::TOO_MANY_REQUESTS
        || status == hyper::StatusCode::REQUEST_TIMEOUT
    {
        Some(Handed::Retry(format!("{what} answered {status}")))
    } else {
        Some(Handed::Refused(format!("{what} answered {status}")))
    }
}
