//! The data-quality trend: one snapshot of the tenant-wide [`crate::quality`] report per
//! local day (the tenant's zone), taken by the host at start and then hourly if the day has
//! none yet; several hosts may try, the first insert wins (the day is the key). Read back as
//! a gap-filled daily series (a day without a snapshot — no host ran — is null).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    kinds::Resource,
    storage::{Db, time},
};
use shoal_crm::tenancy::{Actor, Tenant};

/// The most days a trend covers.
pub const MAX_DAYS: i64 = 400;

/// One day's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub day: NaiveDate,
    pub taken_at: DateTime<Utc>,
    pub customers: i64,
    pub missing_phone: i64,
    pub missing_email: i64,
    /// Neither a phone nor an e-mail address.
    pub missing_contact: i64,
    pub missing_owner: i64,
    /// Values present but meaningless or refused (placeholder names, bad cells of recent
    /// imports), as the report counts them.
    pub invalid: i64,
    pub duplicates_pending: i64,
}

/// The local day of `at` in the tenant's zone.
fn local_day(tenant: &Tenant, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tenant.time_zone).date_naive()
}

/// Takes today's snapshot of `tenant` unless it has one; answers whether it took it.
pub async fn take(db: &Db, tenant: &Arc<Tenant>) -> Result<bool> {
    let now = time::now();
    let day = local_day(tenant, now).to_string();
    let exists =
        sqlx::query("SELECT 1 FROM data_quality_snapshots WHERE tenant_id = $1 AND day = $2")
            .bind(&tenant.id)
            .bind(&day)
            .fetch_optional(&db.pool)
            .await?
            .is_some();
    if exists {
        return Ok(false);
    }
    let report = crate::quality::report(db, &Actor::system(tenant, "system")).await?;
    let missing = |field: &str| {
        report
            .fields
            .iter()
            .find(|f| f.field == field)
            .map_or(0, |f| f.missing)
    };
    let invalid: i64 = report.invalid.iter().map(|i| i.count).sum();
    let taken = sqlx::query(
        "INSERT INTO data_quality_snapshots (tenant_id, day, taken_at, customers, missing_phone, \
         missing_email, missing_contact, missing_owner, invalid, duplicates_pending) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, day) DO NOTHING",
    )
    .bind(&tenant.id)
    .bind(&day)
    .bind(time::to_micros(now))
    .bind(report.customers)
    .bind(missing("phone"))
    .bind(missing("email"))
    .bind(missing("contact"))
    .bind(missing("owner"))
    .bind(invalid)
    .bind(report.duplicates_pending)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(taken > 0)
}

/// Every local day of `[from, to]` with its snapshot, if one was taken. Snapshots are
/// tenant-wide: they need a reader whose customers scope is `all`.
pub async fn trend(
    db: &Db,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, Option<Snapshot>)>> {
    if !actor.access.reaches_all(Resource::Customers) {
        return Err(Error::Forbidden(
            "the data-quality trend counts every customer: it needs scope `all` on customers"
                .into(),
        ));
    }
    let days = (to - from).num_days() + 1;
    if days < 1 {
        return Err(Error::invalid("to", "must not be before `from`"));
    }
    if days > MAX_DAYS {
        return Err(Error::invalid(
            "to",
            format!("at most {MAX_DAYS} days, not {days}"),
        ));
    }
    let rows = sqlx::query(
        "SELECT * FROM data_quality_snapshots WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(actor.tenant_id())
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_all(&db.pool)
    .await?;
    let mut found = std::collections::HashMap::new();
    for r in &rows {
        let day: String = r.try_get("day")?;
        let Ok(day) = day.parse::<NaiveDate>() else {
            continue;
        };
        found.insert(
            day,
            Snapshot {
                day,
                taken_at: time::from_micros(r.try_get("taken_at")?),
                customers: r.try_get("customers")?,
                missing_phone: r.try_get("missing_phone")?,
                missing_email: r.try_get("missing_email")?,
                missing_contact: r.try_get("missing_contact")?,
                missing_owner: r.try_get("missing_owner")?,
                invalid: r.try_get("invalid")?,
                duplicates_pending: r.try_get("duplicates_pending")?,
            },
        );
    }
    Ok(from
        .iter_days()
        .take(usize::try_from(days).unwrap_or(0))
        .map(|d| (d, found.remove(&d)))
        .collect())
}
