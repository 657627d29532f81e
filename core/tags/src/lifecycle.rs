//! Lifecycle stages derived by rules: the first rule that holds gives the stage; none gives
//! `lead`. A stage set by hand (`updateCustomer(lifecycleStage: …)`) is kept until released.

use serde_json::json;
use sqlx::Row;

use shoal_base::{
    error::Result,
    kinds::LifecycleStage,
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{audit, tenancy::Actor};
use shoal_rules::{self as rules, Rule, eval::Facts};

/// The derivation rules, in order (documented in docs/tags.md).
pub const RULES: &[(LifecycleStage, &str)] = &[
    (LifecycleStage::Churned, "days_since(order) > 365"),
    (LifecycleStage::Dormant, "days_since(order) > 90"),
    (LifecycleStage::Loyal, "count(order) >= 2"),
    (LifecycleStage::Customer, "count(order) >= 1"),
    (
        LifecycleStage::Prospect,
        "exists(consult) or exists(page_view) or exists(visit) or exists(message_in)",
    ),
];

/// The rules, parsed once.
fn parsed() -> &'static [(LifecycleStage, Rule)] {
    static PARSED: std::sync::LazyLock<Vec<(LifecycleStage, Rule)>> =
        std::sync::LazyLock::new(|| {
            let no_tags = |_: &str| None;
            RULES
                .iter()
                .map(|(stage, text)| {
                    (
                        *stage,
                        rules::parse(text, &no_tags, &[])
                            .expect("the built-in lifecycle rules parse"),
                    )
                })
                .collect()
        });
    &PARSED
}

/// The stage the rules give one customer.
pub fn derive(facts: &Facts<'_>) -> LifecycleStage {
    parsed()
        .iter()
        .find(|(_, rule)| rules::eval::holds(&rule.cond, facts))
        .map_or(LifecycleStage::Lead, |(stage, _)| *stage)
}

/// Sets a derived stage (not for stages set by hand), with an audit entry.
pub async fn set(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    customer: &str,
    from: &str,
    to: LifecycleStage,
) -> Result<()> {
    sqlx::query(
        "UPDATE customers SET lifecycle_stage = $1, updated_at = $2, version = version + 1 \
         WHERE tenant_id = $3 AND id = $4 AND stage_manual = 0 AND deleted_at IS NULL",
    )
    .bind(to.as_str())
    .bind(time::to_micros(time::now()))
    .bind(actor.tenant_id())
    .bind(customer)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        actor,
        "customer.lifecycle",
        "customer",
        customer,
        json!({ "lifecycleStage": { "from": from, "to": to.as_str() }, "derived": true }),
    )
    .await?;
    Ok(())
}

/// Derives every customer's stage in SQL and applies the changes; returns how many changed.
pub async fn recompute(db: &Db, actor: &Actor) -> Result<usize> {
    let now = time::to_micros(time::now());
    let mut sql = Sql::new("SELECT c.id, c.lifecycle_stage, CASE");
    for (stage, rule) in parsed() {
        sql.push(" WHEN ");
        rules::sql::push_cond(&mut sql, db.backend, actor.tenant_id(), &rule.cond, now);
        let s = sql.arg(stage.as_str());
        sql.push(&format!(" THEN {s}"));
    }
    let lead = sql.arg(LifecycleStage::Lead.as_str());
    let t = sql.arg(actor.tenant_id());
    sql.push(&format!(" ELSE {lead} END AS derived FROM customers c WHERE c.tenant_id = {t} AND c.deleted_at IS NULL AND c.stage_manual = 0"));
    let rows = sql.query().fetch_all(&db.pool).await?;
    let mut changes = Vec::new();
    for r in &rows {
        let (id, current, derived): (String, String, String) = (
            r.try_get("id")?,
            r.try_get("lifecycle_stage")?,
            r.try_get("derived")?,
        );
        if current != derived
            && let Some(stage) = LifecycleStage::parse(&derived)
        {
            changes.push((id, current, stage));
        }
    }
    let mut tx = db.begin_write().await?;
    for (id, from, to) in &changes {
        set(&mut tx, actor, id, from, *to).await?;
    }
    tx.commit().await?;
    Ok(changes.len())
}
