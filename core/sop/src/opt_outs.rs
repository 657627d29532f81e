//! Opt-outs: the channels on which a customer declined automated messages (`*`: all). Set
//! by staff (audited), read in bulk by the step runner and the dry run, which then refuse to
//! message the customer there.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use shoal_base::{error::Result, storage::Backend};
use shoal_crm::access::ScopedIds;

/// The channels each customer opted out of.
pub async fn of_customers(
    conn: &mut AnyConnection,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, HashSet<String>>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = shoal_base::storage::sql::Sql::new(
            "SELECT customer_id, channel FROM contact_opt_outs WHERE tenant_id = ",
        );
        let t = sql.arg(tenant);
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!("{t} AND customer_id IN ({})", list.join(", ")));
        for r in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            out.entry(r.try_get("customer_id")?)
                .or_default()
                .insert(r.try_get("channel")?);
        }
    }
    Ok(out)
}

/// Records (or withdraws) customers' opt-out of automated messages on a channel (`*`: all
/// channels), each with its audit entry, in one transaction.
pub async fn set(
    db: &shoal_base::storage::Db,
    actor: &shoal_crm::tenancy::Actor,
    customers: &ScopedIds,
    channel: &str,
    opted_out: bool,
) -> shoal_base::error::Result<()> {
    actor.require(shoal_base::kinds::Action::Update)?;
    if channel != "*" && !crate::definition::CHANNELS.contains(&channel) {
        return Err(shoal_base::error::Error::invalid(
            "channel",
            format!("`{channel}` is not a channel or `*`"),
        ));
    }
    let mut tx = db.begin_write().await?;
    let sql = if opted_out {
        "INSERT INTO contact_opt_outs (tenant_id, customer_id, channel, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM contact_opt_outs WHERE tenant_id = $1 AND customer_id = $2 AND channel = $3 AND $4 = $4"
    };
    for customer_id in customers.ids() {
        sqlx::query(sql)
            .bind(actor.tenant_id())
            .bind(customer_id)
            .bind(channel)
            .bind(shoal_base::storage::time::to_micros(
                shoal_base::storage::time::now(),
            ))
            .execute(&mut *tx)
            .await?;
        // the same decision, as a withdrawal (or grant) in the consent ledger
        shoal_crm::consent::append(
            &mut tx,
            actor,
            customer_id,
            "marketing",
            channel,
            !opted_out,
            if opted_out { "opt_out" } else { "opt_in" },
        )
        .await?;
        shoal_crm::audit::record(
            &mut tx,
            actor,
            if opted_out {
                "contact.optOut"
            } else {
                "contact.optIn"
            },
            "customer",
            customer_id,
            serde_json::json!({ "channel": channel }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The channels a customer opted out of.
pub async fn of_customer(
    db: &shoal_base::storage::Db,
    actor: &shoal_crm::tenancy::Actor,
    customer_id: &str,
) -> shoal_base::error::Result<Vec<String>> {
    let resource = shoal_base::kinds::Resource::Customers;
    actor
        .access
        .ensure_customer(db, resource, customer_id)
        .await?;
    let tenant = actor.tenant_id();
    let mut conn = db.pool.acquire().await?;
    let mut v: Vec<String> = of_customers(&mut conn, tenant, &[customer_id])
        .await?
        .remove(customer_id)
        .unwrap_or_default()
        .into_iter()
        .collect();
    v.sort();
    Ok(v)
}
