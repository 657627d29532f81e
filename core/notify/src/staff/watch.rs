//! Watching a customer: a user follows a customer they can see, and rules naming
//! `watchers` notify them of its changes.

use sqlx::Row;

use shoal_base::{
    error::Result,
    kinds::Resource,
    storage::{Db, time},
};
use shoal_crm::tenancy::Actor;

/// The caller starts (`on`) or stops watching a customer within their scope (out of it:
/// NOT_FOUND); answers whether they watch it now.
pub async fn watch(db: &Db, actor: &Actor, customer: &str, on: bool) -> Result<bool> {
    actor
        .access
        .ensure_customer(db, Resource::Customers, customer)
        .await?;
    if on {
        sqlx::query(
            "INSERT INTO customer_watchers (tenant_id, customer_id, user_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(actor.tenant_id())
        .bind(customer)
        .bind(&actor.user_id)
        .bind(time::to_micros(time::now()))
        .execute(&db.pool)
        .await?;
    } else {
        sqlx::query(
            "DELETE FROM customer_watchers WHERE tenant_id = $1 AND customer_id = $2 AND user_id = $3",
        )
        .bind(actor.tenant_id())
        .bind(customer)
        .bind(&actor.user_id)
        .execute(&db.pool)
        .await?;
    }
    Ok(on)
}

/// The users watching a customer, in the caller's connection.
pub async fn watchers(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    customer: &str,
) -> Result<Vec<String>> {
    sqlx::query(
        "SELECT user_id FROM customer_watchers WHERE tenant_id = $1 AND customer_id = $2 ORDER BY user_id",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok(r.try_get("user_id")?))
    .collect()
}
