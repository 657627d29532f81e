//! Which tickets a caller reaches (the `tickets` scope): through their customer, their
//! assignee, or a queue of the caller's they wait in — one condition every read shares.

use shoal_base::{
    error::Result,
    kinds::Resource,
    storage::{Db, sql::Sql},
};
use shoal_crm::tenancy::Actor;

/// Keeps tickets the caller reaches in `tickets`: those of customers in reach, those
/// assigned to users in reach (themselves, for scope `own`), and those waiting in one of
/// `queues` (the caller's). With scope `all`, every ticket.
pub fn push_scope(actor: &Actor, db: &Db, sql: &mut Sql, t: &str, queues: &[String]) {
    if actor.access.reaches_all(Resource::Tickets) {
        return;
    }
    let also = if queues.is_empty() {
        Vec::new()
    } else {
        let list: Vec<String> = queues.iter().map(|q| sql.arg(q.clone())).collect();
        vec![format!(
            "tickets.assignee IS NULL AND tickets.queue IN ({})",
            list.join(", ")
        )]
    };
    actor.access.push_linked_or_assigned_scope(
        sql,
        db.backend,
        Resource::Tickets,
        t,
        "tickets.customer_id",
        "tickets.assignee",
        &also,
    );
}

/// The queues the caller is a member of (none when they reach every ticket anyway).
pub async fn my_queues(db: &Db, actor: &Actor) -> Result<Vec<String>> {
    if actor.access.reaches_all(Resource::Tickets) {
        return Ok(Vec::new());
    }
    let mut conn = db.pool.acquire().await?;
    Ok(crate::queues::queues(&mut conn, actor.tenant_id())
        .await?
        .into_iter()
        .filter(|q| q.members.contains(&actor.user_id))
        .map(|q| q.key)
        .collect())
}
