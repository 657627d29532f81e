//! A campaign's numbers, per variant, and each recipient's result (within the reader's
//! scope).

use std::collections::BTreeMap;

use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    kinds::Resource,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;

use crate::model::{Campaign, Metric, Recipient};

/// One variant's numbers. `delivered`, `opened`, `clicked` count everyone who got at least
/// that far (a click implies an open and a delivery).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantStats {
    pub variant: String,
    pub recipients: i64,
    pub by_status: BTreeMap<String, i64>,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub converted: i64,
    pub failed: i64,
}

impl VariantStats {
    /// The metric's share of what was sent (0 when nothing was).
    pub fn rate(&self, m: Metric) -> f64 {
        let n = match m {
            Metric::Delivered => self.delivered,
            Metric::Opened => self.opened,
            Metric::Clicked => self.clicked,
            Metric::Converted => self.converted,
        };
        if self.sent == 0 {
            0.0
        } else {
            n as f64 / self.sent as f64
        }
    }
}

/// A campaign's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub variants: Vec<VariantStats>,
    /// The A/B variant leading on the campaign's winner metric (tag and segment variants
    /// do not compete), once something was sent.
    pub leader: Option<String>,
}

/// The numbers of a campaign (all its recipients: counts reveal no one).
pub async fn stats(db: &Db, tenant: &str, c: &Campaign) -> Result<Stats> {
    let rows = sqlx::query(
        "SELECT variant, status, COUNT(*) AS n FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2 GROUP BY variant, status",
    )
    .bind(tenant)
    .bind(&c.id)
    .fetch_all(&db.pool)
    .await?;
    let mut by: BTreeMap<String, VariantStats> = c
        .content
        .variants
        .iter()
        .map(|v| {
            (
                v.key.clone(),
                VariantStats {
                    variant: v.key.clone(),
                    ..VariantStats::default()
                },
            )
        })
        .collect();
    for r in rows {
        let variant: String = r.try_get("variant")?;
        let status: String = r.try_get("status")?;
        let n: i64 = r.try_get("n")?;
        let v = by.entry(variant.clone()).or_insert_with(|| VariantStats {
            variant,
            ..VariantStats::default()
        });
        v.recipients += n;
        *v.by_status.entry(status.clone()).or_default() += n;
        let Some(s) = Recipient::parse(&status) else {
            continue;
        };
        let rank = s.rank();
        if s == Recipient::Failed {
            v.failed += n;
        }
        if rank >= Recipient::Sent.rank() {
            v.sent += n;
        }
        if rank >= Recipient::Delivered.rank() {
            v.delivered += n;
        }
        if rank >= Recipient::Opened.rank() {
            v.opened += n;
        }
        if rank >= Recipient::Clicked.rank() {
            v.clicked += n;
        }
        if s == Recipient::Converted {
            v.converted += n;
        }
    }
    let order: Vec<String> = c.content.variants.iter().map(|v| v.key.clone()).collect();
    let mut variants: Vec<VariantStats> = by.into_values().collect();
    variants.sort_by_key(|v| {
        order
            .iter()
            .position(|k| k == &v.variant)
            .unwrap_or(usize::MAX)
    });
    let leader = c.content.winner_metric.and_then(|m| {
        let competing: Vec<&VariantStats> = variants
            .iter()
            .filter(|s| {
                c.content
                    .variants
                    .iter()
                    .any(|v| v.key == s.variant && v.tag.is_none() && v.segment.is_none())
            })
            .filter(|s| s.sent > 0)
            .collect();
        competing
            .into_iter()
            .max_by(|a, b| a.rate(m).total_cmp(&b.rate(m)))
            .map(|s| s.variant.clone())
    });
    Ok(Stats { variants, leader })
}

/// One recipient's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientRow {
    pub customer_id: String,
    pub variant: String,
    pub status: String,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Most recipients one page of [`recipients`] holds.
pub const MAX_RECIPIENTS_PAGE: i64 = 1000;

/// The recipients of a campaign the reader's scope reaches (of one status when given),
/// by customer id after `after`, at most `first` (1–[`MAX_RECIPIENTS_PAGE`], else a
/// `LIMIT_EXCEEDED` error naming `first`).
pub async fn recipients(
    db: &Db,
    actor: &Actor,
    campaign: &str,
    status: Option<Recipient>,
    after: Option<&str>,
    first: i64,
) -> Result<Vec<RecipientRow>> {
    if !(1..=MAX_RECIPIENTS_PAGE).contains(&first) {
        return Err(Error::LimitExceeded {
            field: "first".into(),
            message: format!("1–{MAX_RECIPIENTS_PAGE} recipients per page"),
        });
    }
    let mut sql = Sql::new("SELECT * FROM campaign_recipients WHERE tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    let c = sql.arg(campaign);
    sql.push(&format!("{t} AND campaign_id = {c}"));
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        Resource::Customers,
        &t,
        "campaign_recipients.customer_id",
    );
    if let Some(s) = status {
        let s = sql.arg(s.as_str());
        sql.push(&format!(" AND status = {s}"));
    }
    if let Some(after) = after {
        let a = sql.arg(after);
        sql.push(&format!(" AND customer_id > {a}"));
    }
    let l = sql.arg(first);
    sql.push(&format!(" ORDER BY customer_id LIMIT {l}"));
    sql.query()
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(RecipientRow {
                customer_id: r.try_get("customer_id")?,
                variant: r.try_get("variant")?,
                status: r.try_get("status")?,
                reason: r.try_get("reason")?,
                message_id: r.try_get("message_id")?,
                updated_at: time::from_micros(r.try_get("updated_at")?),
            })
        })
        .collect()
}
