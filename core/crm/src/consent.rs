//! The consent ledger: one row per grant or withdrawal of a customer's consent to a purpose
//! (`marketing` on a channel or on every channel `*`, `profiling`), with its source and time;
//! the newest row of a (customer, purpose, channel) stands. An opt-out of automated messages
//! is a withdrawal of marketing consent on that channel, written here by the opt-out itself.
//!
//! Where the tenant turns `contact.marketing_requires_consent` on, marketing messages (SOP
//! steps and campaigns) go only to customers with a standing grant on the channel.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use crate::{audit, tenancy::Actor};
use shoal_base::{
    error::{Error, Result},
    kinds::Action,
    storage::{Db, time},
};

/// What a customer may consent to.
pub const PURPOSES: &[&str] = &["marketing", "profiling"];

/// Longest `source`, in characters.
pub const MAX_SOURCE_CHARS: usize = 64;

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub id: String,
    pub customer_id: String,
    pub purpose: String,
    /// A channel (`wecom`, `sms`, …) or `*`; always `*` for `profiling`.
    pub channel: String,
    pub granted: bool,
    /// Where it came from: `api`, `opt_out`, `opt_in`, `import`, a form's name…
    pub source: String,
    pub actor_id: String,
    pub at: DateTime<Utc>,
}

/// Checks a purpose/channel/source and returns the channel to store.
pub fn check(purpose: &str, channel: &str, source: &str) -> Result<String> {
    if !PURPOSES.contains(&purpose) {
        return Err(Error::invalid(
            "purpose",
            format!("`{purpose}` is not one of {}", PURPOSES.join(", ")),
        ));
    }
    let channel = channel.trim();
    if purpose == "profiling" && !channel.is_empty() && channel != "*" {
        return Err(Error::invalid(
            "channel",
            "profiling consent is for every channel: leave it `*`",
        ));
    }
    if channel.chars().count() > 32 || channel.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::invalid("channel", "a channel name or `*`"));
    }
    let n = source.trim().chars().count();
    if n == 0 || n > MAX_SOURCE_CHARS {
        return Err(Error::invalid(
            "source",
            format!("say where the consent came from, in 1–{MAX_SOURCE_CHARS} characters"),
        ));
    }
    Ok(if channel.is_empty() {
        "*".into()
    } else {
        channel.into()
    })
}

/// Appends a grant or withdrawal in the caller's transaction; the caller writes the audit
/// entry of the change that carries it (an opt-out, or [`record`]'s own).
pub async fn append(
    conn: &mut AnyConnection,
    actor: &Actor,
    customer_id: &str,
    purpose: &str,
    channel: &str,
    granted: bool,
    source: &str,
) -> Result<Consent> {
    let channel = check(purpose, channel, source)?;
    let c = Consent {
        id: uuid::Uuid::now_v7().to_string(),
        customer_id: customer_id.into(),
        purpose: purpose.into(),
        channel,
        granted,
        source: source.trim().into(),
        actor_id: actor.user_id.clone(),
        at: time::now(),
    };
    sqlx::query(
        "INSERT INTO consents (tenant_id, id, customer_id, purpose, channel, granted, source, actor_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(actor.tenant_id())
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.purpose)
    .bind(&c.channel)
    .bind(i64::from(c.granted))
    .bind(&c.source)
    .bind(&c.actor_id)
    .bind(time::to_micros(c.at))
    .execute(&mut *conn)
    .await?;
    Ok(c)
}

/// Records a grant or withdrawal for a customer the actor reaches (`update`).
pub async fn record(
    db: &Db,
    actor: &Actor,
    customer_id: &str,
    purpose: &str,
    channel: &str,
    granted: bool,
    source: &str,
) -> Result<Consent> {
    actor.require(Action::Update)?;
    check(purpose, channel, source)?;
    actor
        .access
        .ensure_customer(db, shoal_base::kinds::Resource::Customers, customer_id)
        .await?;
    let mut tx = db.begin_write().await?;
    let c = append(
        &mut tx,
        actor,
        customer_id,
        purpose,
        channel,
        granted,
        source,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        if granted {
            "consent.grant"
        } else {
            "consent.withdraw"
        },
        "customer",
        customer_id,
        json!({ "purpose": c.purpose, "channel": c.channel, "source": c.source }),
    )
    .await?;
    tx.commit().await?;
    Ok(c)
}

/// A customer's ledger, newest first (the caller checked the customer is reachable).
pub async fn ledger(db: &Db, tenant: &str, customer_id: &str) -> Result<Vec<Consent>> {
    let rows = sqlx::query(
        "SELECT * FROM consents WHERE tenant_id = $1 AND customer_id = $2 ORDER BY at DESC, id DESC",
    )
    .bind(tenant)
    .bind(customer_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Consent {
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                purpose: r.try_get("purpose")?,
                channel: r.try_get("channel")?,
                granted: r.try_get::<i64, _>("granted")? == 1,
                source: r.try_get("source")?,
                actor_id: r.try_get("actor_id")?,
                at: time::from_micros(r.try_get("at")?),
            })
        })
        .collect()
}

/// A customer's standing marketing consent: the newest row per channel (and for `*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marketing {
    newest: HashMap<String, (i64, String, bool)>,
}

impl Marketing {
    /// Whether marketing on `channel` is consented to: the newer of the rows for the channel
    /// and for `*` decides (a withdrawal on `*` outweighs an older grant on the channel, and
    /// the reverse); no row: not consented.
    pub fn allows(&self, channel: &str) -> bool {
        [self.newest.get(channel), self.newest.get("*")]
            .into_iter()
            .flatten()
            .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
            .is_some_and(|(_, _, granted)| *granted)
    }
}

/// Each customer's standing marketing consent (customers without a row are absent).
pub async fn marketing(
    conn: &mut AnyConnection,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, Marketing>> {
    let mut out: HashMap<String, Marketing> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = shoal_base::storage::sql::Sql::new(
            "SELECT customer_id, channel, granted, at, id FROM consents WHERE tenant_id = ",
        );
        let t = sql.arg(tenant);
        sql.push(&format!("{t} AND purpose = 'marketing' AND customer_id"));
        sql.push_in(chunk);
        for r in sql.query_once().fetch_all(&mut *conn).await? {
            let customer: String = r.try_get("customer_id")?;
            let channel: String = r.try_get("channel")?;
            let row = (
                r.try_get::<i64, _>("at")?,
                r.try_get::<String, _>("id")?,
                r.try_get::<i64, _>("granted")? == 1,
            );
            let m = out.entry(customer).or_default();
            match m.newest.get(&channel) {
                Some(held) if (held.0, &held.1) >= (row.0, &row.1) => {}
                _ => {
                    m.newest.insert(channel, row);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rows: &[(&str, i64, bool)]) -> Marketing {
        Marketing {
            newest: rows
                .iter()
                .map(|(c, at, g)| ((*c).to_owned(), (*at, format!("{at}"), *g)))
                .collect(),
        }
    }

    #[test]
    fn the_newer_of_the_channel_and_every_channel_decides() {
        assert!(!Marketing::default().allows("wecom"), "no row: no consent");
        assert!(m(&[("wecom", 1, true)]).allows("wecom"));
        assert!(!m(&[("wecom", 1, true)]).allows("sms"));
        assert!(m(&[("*", 1, true)]).allows("sms"));
        assert!(!m(&[("wecom", 1, true), ("*", 2, false)]).allows("wecom"));
        assert!(m(&[("wecom", 3, true), ("*", 2, false)]).allows("wecom"));
        assert!(!m(&[("wecom", 3, true), ("*", 2, false)]).allows("sms"));
    }

    #[test]
    fn purposes_channels_and_sources_are_checked() {
        assert_eq!(check("marketing", "", "api").unwrap(), "*");
        assert_eq!(check("marketing", "wecom", "门店表单").unwrap(), "wecom");
        assert!(check("spam", "*", "api").is_err());
        assert!(check("profiling", "sms", "api").is_err());
        assert!(check("marketing", "*", " ").is_err());
    }
}
