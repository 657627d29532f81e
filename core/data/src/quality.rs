//! The data-quality report of a tenant (or of the part of it a reader reaches): how
//! complete each field is, values that say nothing (placeholder names) or that imports
//! refused, pending duplicates, identities per channel, and the flags the tenant's
//! thresholds raise (missing contact rate over `quality.max_missing_contact_rate`, 15% by
//! default).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::dedupe::suggestions;
use shoal_base::{
    error::Result,
    kinds::{Channel, Resource},
    storage::{Db, dialect, sql::Sql, time},
};
use shoal_crm::tenancy::Actor;

/// How often a field is filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Completeness {
    /// `displayName`, `phone`, `email`, `contact` (phone or email), `owner`, `identity`,
    /// `attributes.<key>`.
    pub field: String,
    pub filled: i64,
    pub missing: i64,
    /// `missing / total`, 0 when there are no customers.
    pub missing_rate: f64,
}

/// Values that are present but wrong or meaningless.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// A customer field, or `import:<column>` for cells imports refused.
    pub field: String,
    pub reason: String,
    pub count: i64,
    /// A few customer ids (stored values) or `row N` (import rejections).
    pub examples: Vec<String>,
}

/// Identities of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelIdentities {
    pub channel: Channel,
    pub identities: i64,
    pub customers: i64,
}

/// A threshold crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// `MISSING_CONTACT`, `DUPLICATES_PENDING`.
    pub code: String,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub customers: i64,
    pub fields: Vec<Completeness>,
    pub invalid: Vec<Invalid>,
    pub duplicates_pending: i64,
    pub identities: Vec<ChannelIdentities>,
    pub flags: Vec<Flag>,
}

/// Attribute keys reported at most.
const MAX_ATTRIBUTE_KEYS: i64 = 20;
/// Import rejections are counted over this many days.
const IMPORT_DAYS: i64 = 30;

fn rate(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (part as f64 / total as f64 * 10_000.0).round() / 10_000.0
    }
}

/// The report, over the customers the actor reaches.
pub async fn report(db: &Db, actor: &Actor) -> Result<Report> {
    let b = db.backend;
    let placeholder = {
        let list: Vec<String> = crate::dedupe::matching::PLACEHOLDER_NAMES
            .iter()
            .map(|p| format!("'{}'", p.replace('\'', "''")))
            .collect();
        format!(
            "(c.name_key IN ({}) OR {} = '')",
            list.join(", "),
            dialect::strip_chars(b, "c.display_name", "0123456789+-() ")
        )
    };
    let mut sql = Sql::new(&format!(
        "SELECT COUNT(*) AS total, \
         COALESCE(SUM(CASE WHEN c.phones = '[]' THEN 1 ELSE 0 END), 0) AS no_phone, \
         COALESCE(SUM(CASE WHEN c.emails = '[]' THEN 1 ELSE 0 END), 0) AS no_email, \
         COALESCE(SUM(CASE WHEN c.phones = '[]' AND c.emails = '[]' THEN 1 ELSE 0 END), 0) AS no_contact, \
         COALESCE(SUM(CASE WHEN c.owner_id IS NULL THEN 1 ELSE 0 END), 0) AS no_owner, \
         COALESCE(SUM(CASE WHEN {placeholder} THEN 1 ELSE 0 END), 0) AS placeholder_name, \
         COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM customer_identities i WHERE i.tenant_id = c.tenant_id \
           AND i.customer_id = c.id AND i.deleted_at IS NULL) THEN 1 ELSE 0 END), 0) AS no_identity \
         FROM customers c WHERE c.tenant_id = "
    ));
    let t = sql.arg(actor.tenant_id());
    sql.push(&t).push(" AND c.deleted_at IS NULL");
    actor
        .access
        .push_customer_scope(&mut sql, b, Resource::Customers, &t);
    let row = sql.query().fetch_one(&db.pool).await?;
    let n = |col: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(col)?) };
    let total = n("total")?;
    let mut fields = Vec::new();
    for (field, missing) in [
        ("displayName", n("placeholder_name")?),
        ("phone", n("no_phone")?),
        ("email", n("no_email")?),
        ("contact", n("no_contact")?),
        ("owner", n("no_owner")?),
        ("identity", n("no_identity")?),
    ] {
        fields.push(Completeness {
            field: field.into(),
            filled: total - missing,
            missing,
            missing_rate: rate(missing, total),
        });
    }

    let mut sql = Sql::new(&format!(
        "SELECT j.key AS key, COUNT(*) AS n FROM customers c, {} WHERE c.tenant_id = ",
        dialect::json_entries(b, "c.attributes", "j")
    ));
    let t = sql.arg(actor.tenant_id());
    sql.push(&t)
        .push(" AND c.deleted_at IS NULL AND j.value IS NOT NULL AND j.value <> ''");
    actor
        .access
        .push_customer_scope(&mut sql, b, Resource::Customers, &t);
    let limit = sql.arg(MAX_ATTRIBUTE_KEYS);
    sql.push(&format!(
        " GROUP BY j.key ORDER BY n DESC, j.key LIMIT {limit}"
    ));
    for r in sql.query().fetch_all(&db.pool).await? {
        let filled: i64 = r.try_get("n")?;
        let field = format!("attributes.{}", r.try_get::<String, _>("key")?);
        // an attribute hidden from the reader is not named to it either
        if actor.access.visibility(&field) == shoal_base::kinds::Visibility::Hidden {
            continue;
        }
        fields.push(Completeness {
            field,
            filled,
            missing: total - filled,
            missing_rate: rate(total - filled, total),
        });
    }

    let mut invalid = Vec::new();
    let placeholders = n("placeholder_name")?;
    if placeholders > 0 {
        let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
        let t = sql.arg(actor.tenant_id());
        sql.push(&t)
            .push(&format!(" AND c.deleted_at IS NULL AND {placeholder}"));
        actor
            .access
            .push_customer_scope(&mut sql, b, Resource::Customers, &t);
        sql.push(" ORDER BY c.id LIMIT 5");
        let examples = sql
            .query()
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        invalid.push(Invalid {
            field: "displayName".into(),
            reason: "a placeholder (未知, unknown, a phone number, …), not a name".into(),
            count: placeholders,
            examples,
        });
    }
    if actor.access.reaches_all(Resource::Customers) {
        let since = time::to_micros(time::now() - chrono::Duration::days(IMPORT_DAYS));
        let rows = sqlx::query(
            "SELECT e.column_name AS col, COUNT(*) AS n, MIN(e.reason) AS reason, MIN(e.row_number) AS first_row \
             FROM import_errors e JOIN import_jobs j ON j.tenant_id = e.tenant_id AND j.id = e.job_id \
             WHERE e.tenant_id = $1 AND j.started_at >= $2 AND j.dry_run = 0 \
             GROUP BY e.column_name ORDER BY n DESC, e.column_name LIMIT 20",
        )
        .bind(actor.tenant_id())
        .bind(since)
        .fetch_all(&db.pool)
        .await?;
        for r in rows {
            invalid.push(Invalid {
                field: format!("import:{}", r.try_get::<String, _>("col")?),
                reason: r.try_get("reason")?,
                count: r.try_get("n")?,
                examples: vec![format!("row {}", r.try_get::<i64, _>("first_row")?)],
            });
        }
    }

    let mut sql = Sql::new(
        "SELECT i.channel AS channel, COUNT(*) AS n, COUNT(DISTINCT i.customer_id) AS customers \
         FROM customer_identities i WHERE i.tenant_id = ",
    );
    let t = sql.arg(actor.tenant_id());
    sql.push(&t).push(" AND i.deleted_at IS NULL");
    actor
        .access
        .push_linked_scope(&mut sql, b, Resource::Customers, &t, "i.customer_id");
    sql.push(" GROUP BY i.channel ORDER BY i.channel");
    let mut identities = Vec::new();
    for r in sql.query().fetch_all(&db.pool).await? {
        let channel: String = r.try_get("channel")?;
        if let Some(channel) = Channel::parse(&channel) {
            identities.push(ChannelIdentities {
                channel,
                identities: r.try_get("n")?,
                customers: r.try_get("customers")?,
            });
        }
    }

    let duplicates_pending = suggestions::pending_count(db, actor).await?;
    let mut flags = Vec::new();
    let threshold = actor.tenant.quality.max_missing_contact_rate;
    let contact = rate(n("no_contact")?, total);
    if contact > threshold {
        flags.push(Flag {
            code: "MISSING_CONTACT".into(),
            message: format!(
                "{:.1}% of customers have neither phone nor email (threshold {:.1}%)",
                contact * 100.0,
                threshold * 100.0
            ),
            value: contact,
            threshold,
        });
    }
    if duplicates_pending > 0 {
        flags.push(Flag {
            code: "DUPLICATES_PENDING".into(),
            message: format!("{duplicates_pending} possible duplicates wait for a decision"),
            value: duplicates_pending as f64,
            threshold: 0.0,
        });
    }
    Ok(Report {
        generated_at: time::now(),
        customers: total,
        fields,
        invalid,
        duplicates_pending,
        identities,
        flags,
    })
}

impl Report {
    /// The report as text, for `shoal report quality`.
    pub fn to_text(&self, tenant: &str) -> String {
        let mut out = format!(
            "Data quality of tenant {tenant} at {} — {} customers\n\nCompleteness\n",
            self.generated_at.format("%Y-%m-%d %H:%M UTC"),
            self.customers
        );
        for f in &self.fields {
            out.push_str(&format!(
                "  {:<28} {:>9} filled {:>9} missing  {:>6.2}% missing\n",
                f.field,
                f.filled,
                f.missing,
                f.missing_rate * 100.0
            ));
        }
        out.push_str("\nInvalid values\n");
        if self.invalid.is_empty() {
            out.push_str("  none\n");
        }
        for i in &self.invalid {
            out.push_str(&format!(
                "  {:<28} {:>9}  {} (e.g. {})\n",
                i.field,
                i.count,
                i.reason,
                i.examples.join(", ")
            ));
        }
        out.push_str(&format!(
            "\nDuplicates pending: {}\n\nIdentities per channel\n",
            self.duplicates_pending
        ));
        if self.identities.is_empty() {
            out.push_str("  none\n");
        }
        for c in &self.identities {
            out.push_str(&format!(
                "  {:<10} {:>9} identities {:>9} customers\n",
                c.channel.as_str(),
                c.identities,
                c.customers
            ));
        }
        out.push_str("\nFlags\n");
        if self.flags.is_empty() {
            out.push_str("  none\n");
        }
        for f in &self.flags {
            out.push_str(&format!("  {}: {}\n", f.code, f.message));
        }
        out
    }
}
