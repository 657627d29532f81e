//! Merging tickets: a duplicate is merged into the ticket that carries on — it is closed,
//! points at that ticket, and its history reads as part of that ticket's (each entry keeps
//! its own ticket). Undone by unmerging: the duplicate gets back the status it had.

use serde_json::{Value, json};

use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};
use shoal_crm::{audit, tenancy::Actor};

use crate::{
    records::Ticket,
    store::{self, type_of},
    types::Category,
};

/// Merges ticket `from` into ticket `into` (permission `update`; both within reach): `from`
/// is closed and points at `into`, whose history now shows `from`'s too. Refused, naming the
/// argument, for a ticket merged already, one with tickets merged into it, or tickets of two
/// different customers.
pub async fn merge(
    db: &Db,
    actor: &Actor,
    into: &str,
    from: &str,
    note: Option<&str>,
) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let target = store::get(db, actor, into).await?;
    let absorbed = store::get(db, actor, from).await?;
    let tenant = actor.tenant_id();
    let mut p = Problems::default();
    if into == from {
        p.push("from", "a ticket cannot be merged into itself");
    }
    if let Some(other) = &target.merged_into {
        p.push(
            "into",
            format!("ticket {into} is merged into {other}: merge into that one"),
        );
    }
    if let Some(other) = &absorbed.merged_into {
        p.push(
            "from",
            format!("ticket {from} is merged into {other} already"),
        );
    }
    // its history will read as part of the other's: the same customer, or neither has one
    if target.customer_id != absorbed.customer_id {
        p.push("from", "the two tickets are about different customers");
    }
    let children: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets WHERE tenant_id = $1 AND merged_into = $2",
    )
    .bind(tenant)
    .bind(from)
    .fetch_one(&db.pool)
    .await?;
    if children > 0 {
        p.push(
            "from",
            format!("{children} ticket(s) are merged into {from}: merge {into} into it instead"),
        );
    }
    if let Some(n) = note {
        store::check_body(&mut p, "note", n);
    }
    p.into_result(())?;
    let ty = type_of(db, tenant, &absorbed.type_key, "from").await?;
    // the type's first closed status (the category says closed whatever the workflow has)
    let closed = ty
        .statuses
        .iter()
        .find(|s| s.category == Category::Closed)
        .map_or(absorbed.status.clone(), |s| s.key.clone());
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    crate::routing::lock(&mut tx, db, tenant).await?;
    // again under the lock: merges at once make neither chains nor cycles
    let into_merged: Option<String> =
        sqlx::query_scalar("SELECT merged_into FROM tickets WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(into)
            .fetch_one(&mut *tx)
            .await?;
    let children: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets WHERE tenant_id = $1 AND merged_into = $2",
    )
    .bind(tenant)
    .bind(from)
    .fetch_one(&mut *tx)
    .await?;
    if into_merged.is_some() || children > 0 {
        return Err(Error::invalid(
            if children > 0 { "from" } else { "into" },
            "another merge of these tickets came first; read them again",
        ));
    }
    let moved = sqlx::query(
        "UPDATE tickets SET merged_into = $3, status = $4, category = 'closed', closed_at = $5, updated_at = $5 \
         WHERE tenant_id = $1 AND id = $2 AND merged_into IS NULL AND status = $6",
    )
    .bind(tenant)
    .bind(from)
    .bind(into)
    .bind(&closed)
    .bind(now)
    .bind(&absorbed.status)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(Error::invalid(
            "from",
            format!("ticket {from} changed meanwhile; read it again"),
        ));
    }
    let previous = json!({ "status": absorbed.status, "category": absorbed.category.as_str(),
        "closedAt": absorbed.closed_at.map(time::to_micros) });
    let merged = json!({ "into": into, "previous": previous, "note": note });
    crate::entries::add(
        &mut tx,
        tenant,
        from,
        ("merged", &actor.user_id, false),
        note,
        Some(merged.clone()),
        now,
    )
    .await?;
    crate::entries::add(
        &mut tx,
        tenant,
        into,
        ("absorbed", &actor.user_id, false),
        note,
        Some(json!({ "from": from, "subject": absorbed.subject })),
        now,
    )
    .await?;
    audit::record(&mut tx, actor, "ticket.merged", "ticket", from, merged).await?;
    crate::timers::arm_in(&mut tx, &actor.tenant, from).await?;
    // closed unbilled: its repair's reserved parts go back to stock
    crate::lines::release_all_in(&mut tx, tenant, from).await?;
    if !absorbed.category.is_done()
        && let Some(a) = &absorbed.assignee
    {
        crate::routing::drain_of(&mut tx, db, actor, a).await?;
    }
    tx.commit().await?;
    store::get(db, actor, into).await
}

/// Undoes the merge of ticket `id` (permission `update`): it points at nothing again and
/// gets back the status it had; both histories say so.
pub async fn unmerge(db: &Db, actor: &Actor, id: &str) -> Result<Ticket> {
    actor.require(Action::Update)?;
    let t = store::get(db, actor, id).await?;
    let tenant = actor.tenant_id();
    let Some(into) = t.merged_into.clone() else {
        return Err(Error::invalid(
            "id",
            format!("ticket {id} is not merged into another"),
        ));
    };
    let detail: Option<String> = sqlx::query_scalar(
        "SELECT detail FROM ticket_entries WHERE tenant_id = $1 AND ticket_id = $2 AND kind = 'merged' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .flatten();
    let previous = detail
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        .and_then(|d| d.get("previous").cloned())
        .ok_or_else(|| Error::Internal(format!("ticket {id}: its merge entry is missing")))?;
    let status = previous["status"].as_str().unwrap_or(&t.status).to_owned();
    let category = previous["category"]
        .as_str()
        .and_then(Category::parse)
        .unwrap_or(Category::Open);
    let now = time::to_micros(time::now());
    let mut tx = db.begin_write().await?;
    crate::routing::lock(&mut tx, db, tenant).await?;
    let moved = sqlx::query(
        "UPDATE tickets SET merged_into = NULL, status = $3, category = $4, closed_at = $5, updated_at = $6 \
         WHERE tenant_id = $1 AND id = $2 AND merged_into = $7",
    )
    .bind(tenant)
    .bind(id)
    .bind(&status)
    .bind(category.as_str())
    .bind(previous["closedAt"].as_i64())
    .bind(now)
    .bind(&into)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(Error::invalid(
            "id",
            format!("ticket {id} changed meanwhile; read it again"),
        ));
    }
    let change = json!({ "from": into, "status": status });
    for (ticket, other) in [(id, into.as_str()), (into.as_str(), id)] {
        crate::entries::add(
            &mut tx,
            tenant,
            ticket,
            ("unmerged", &actor.user_id, false),
            None,
            Some(json!({ "other": other, "status": status })),
            now,
        )
        .await?;
    }
    audit::record(&mut tx, actor, "ticket.unmerged", "ticket", id, change).await?;
    if !category.is_done() {
        // back in the work: its agent, if gone, gives it up to its queue
        crate::routing::reopened_in(&mut tx, db, actor, id).await?;
    }
    crate::timers::arm_in(&mut tx, &actor.tenant, id).await?;
    tx.commit().await?;
    store::get(db, actor, id).await
}
