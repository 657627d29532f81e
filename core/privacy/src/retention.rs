//! Retention: a supervised job per tenant prunes or redacts, after the tenant's
//! `[retention]` days, what holds personal data beyond the profiles — outbox bodies,
//! internal event payloads, delivered webhook payloads, rejected import rows and (where the
//! tenant sets it) audit details, which become tombstones. Each pass works in batches of
//! [`BATCH`] rows, one transaction each, so it never holds a lock for long.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

use shoal_base::{
    error::Result,
    storage::{Db, time},
    supervise::Supervision,
};
use shoal_crm::tenancy::Tenant;

/// Rows per statement of a pass.
pub const BATCH: i64 = 1_000;

/// What one pass changed, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub outbox_bodies: u64,
    pub internal_events: u64,
    pub webhook_payloads: u64,
    pub import_errors: u64,
    pub audit_details: u64,
}

/// One statement of a pass: `$1` the tenant, `$2` the cutoff (microseconds), `$3` the batch.
struct Rule {
    days: fn(&shoal_base::config::RetentionConfig) -> u32,
    sql: &'static str,
    count: fn(&mut Pruned) -> &mut u64,
}

const RULES: &[Rule] = &[
    Rule {
        days: |r| r.outbox_bodies_days,
        sql: "UPDATE outbox_messages SET body = '{}', target = NULL WHERE tenant_id = $1 AND id IN \
              (SELECT id FROM outbox_messages WHERE tenant_id = $1 AND status IN ('sent', 'failed') \
               AND created_at < $2 AND body <> '{}' LIMIT $3)",
        count: |p| &mut p.outbox_bodies,
    },
    Rule {
        days: |r| r.internal_events_days,
        sql: "UPDATE internal_events SET payload = '{}' WHERE tenant_id = $1 AND id IN \
              (SELECT id FROM internal_events WHERE tenant_id = $1 AND at < $2 \
               AND dispatched_at IS NOT NULL AND fed_at IS NOT NULL AND payload <> '{}' LIMIT $3)",
        count: |p| &mut p.internal_events,
    },
    Rule {
        days: |r| r.delivered_webhooks_days,
        sql: "UPDATE hook_messages SET payload = '{}' WHERE tenant_id = $1 AND id IN \
              (SELECT id FROM hook_messages WHERE tenant_id = $1 AND status = 'delivered' \
               AND created_at < $2 AND payload <> '{}' LIMIT $3)",
        count: |p| &mut p.webhook_payloads,
    },
    Rule {
        days: |r| r.import_errors_days,
        sql: "DELETE FROM import_errors WHERE tenant_id = $1 AND job_id IN \
              (SELECT id FROM import_jobs WHERE tenant_id = $1 AND finished_at < $2 \
               AND EXISTS (SELECT 1 FROM import_errors e WHERE e.tenant_id = $1 AND e.job_id = import_jobs.id) LIMIT $3)",
        count: |p| &mut p.import_errors,
    },
    Rule {
        days: |r| r.audit_details_days,
        sql: "UPDATE audit_log SET changes = '{\"redacted\":\"retention\"}' WHERE tenant_id = $1 AND id IN \
              (SELECT id FROM audit_log WHERE tenant_id = $1 AND at < $2 \
               AND changes NOT LIKE '{\"redacted\":%' LIMIT $3)",
        count: |p| &mut p.audit_details,
    },
];

/// One pass over a tenant as of `now`: every rule whose days are set, in batches until
/// nothing older is left.
pub async fn run_once(db: &Db, tenant: &Tenant, now: DateTime<Utc>) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    for rule in RULES {
        let days = (rule.days)(&tenant.retention);
        if days == 0 {
            continue;
        }
        let cutoff = time::to_micros(now - chrono::Duration::days(i64::from(days)));
        loop {
            let mut tx = db.begin_write().await?;
            let n = sqlx::query(rule.sql)
                .bind(&tenant.id)
                .bind(cutoff)
                .bind(BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            *(rule.count)(&mut pruned) += n;
            if n == 0 {
                break;
            }
        }
    }
    Ok(pruned)
}

/// Runs [`run_once`] for every tenant every `every`, each tenant in a loop of its own,
/// each pass guarded (a failure or panic is logged and counted as `privacy.retention`).
pub fn spawn(
    db: Db,
    tenants: Vec<Arc<Tenant>>,
    every: Duration,
    supervision: Arc<Supervision>,
) -> tokio::task::JoinHandle<()> {
    let shared = Arc::new((db, supervision.clone()));
    shoal_base::supervise::each_forever(
        tenants,
        "privacy.retention",
        supervision,
        |t| t.id.clone(),
        move |tenant| {
            let shared = shared.clone();
            async move {
                let (db, supervision) = (&shared.0, &shared.1);
                loop {
                    match supervision
                        .guard("privacy.retention", run_once(db, &tenant, time::now()))
                        .await
                    {
                        Ok(p) if p != Pruned::default() => {
                            tracing::info!(tenant = %tenant.id, ?p, "retention pass");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(tenant = %tenant.id, error = %e, "retention pass failed")
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            }
        },
    )
}
