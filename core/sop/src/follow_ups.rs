//! Follow-up records (跟进记录): a user's note of a call, visit or chat with a customer, and
//! the handover of customers between users, which keeps every record and moves open tasks.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Row, any::AnyRow};

use shoal_base::{
    error::{Error, Problems, Result},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, dialect, sql::Sql, time},
};
use shoal_crm::access::{ScopedId, ScopedIds};
use shoal_crm::{audit, tenancy::Actor};

/// The cursor ordering of follow-up lists.
pub const ORDER: &str = "follow_ups:at";
pub const KINDS: &[&str] = &["call", "visit", "chat", "note", "handover"];

#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    pub id: String,
    pub customer_id: String,
    pub user_id: String,
    pub kind: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

fn from_row(r: &AnyRow) -> Result<FollowUp> {
    Ok(FollowUp {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        user_id: r.try_get("user_id")?,
        kind: r.try_get("kind")?,
        note: r.try_get("note")?,
        at: time::from_micros(r.try_get("at")?),
    })
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    customer_id: &str,
    kind: &str,
    note: &str,
    at: DateTime<Utc>,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query("INSERT INTO follow_ups (tenant_id, id, customer_id, user_id, kind, note, at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(actor.tenant_id())
        .bind(&id)
        .bind(customer_id)
        .bind(&actor.user_id)
        .bind(kind)
        .bind(note)
        .bind(time::to_micros(at))
        .bind(time::to_micros(time::now()))
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        actor,
        "followUps.record",
        "customer",
        customer_id,
        json!({ "followUpId": id, "kind": kind }),
    )
    .await?;
    Ok(id)
}

/// Records a follow-up by the actor (at `at`, default now; not in the future).
pub async fn record(
    db: &Db,
    actor: &Actor,
    customer: &ScopedId,
    kind: &str,
    note: &str,
    at: Option<DateTime<Utc>>,
) -> Result<FollowUp> {
    actor.require(shoal_base::kinds::Action::Create)?;
    let customer_id =
        customer.for_use(actor.tenant_id(), shoal_base::kinds::Resource::FollowUps)?;
    let now = time::now();
    let at = at.unwrap_or(now);
    let mut p = Problems::default();
    if !KINDS[..4].contains(&kind) {
        p.push("input.kind", "call, visit, chat or note");
    }
    if note.chars().count() > 4000 {
        p.push("input.note", "at most 4000 characters");
    }
    if at > now + chrono::Duration::minutes(5) {
        p.push("input.at", "is in the future");
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let id = insert(&mut tx, actor, customer_id, kind, note, at).await?;
    tx.commit().await?;
    get(db, actor.tenant_id(), &id).await
}

pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<FollowUp> {
    let row = sqlx::query("SELECT * FROM follow_ups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::not_found("follow-up", id))?;
    from_row(&row)
}

/// Follow-ups, newest first, of one customer and/or by one user.
pub async fn list(
    db: &Db,
    actor: &Actor,
    customer_id: Option<&str>,
    user_id: Option<&str>,
    page: &Page,
) -> Result<Paged<(FollowUp, Cursor)>> {
    let tenant = actor.tenant_id();
    let mut sql = Sql::new("SELECT * FROM follow_ups WHERE tenant_id = ");
    let t = sql.arg(tenant);
    sql.push(&t);
    actor.access.push_linked_scope(
        &mut sql,
        db.backend,
        shoal_base::kinds::Resource::FollowUps,
        &t,
        "follow_ups.customer_id",
    );
    if let Some(c) = customer_id {
        let c = sql.arg(c);
        sql.push(&format!(" AND customer_id = {c}"));
    }
    if let Some(u) = user_id {
        let u = sql.arg(u);
        sql.push(&format!(" AND user_id = {u}"));
    }
    page.push_conditions(&mut sql, "at", "id", true);
    page.push_order_limit(&mut sql, "at", "id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|f| Cursor {
        tenant: tenant.to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(time::to_micros(f.at)),
        id: f.id.clone(),
    }))
}

/// The newest human follow-up of a customer (handovers do not count).
pub async fn last_human(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    customer_id: &str,
) -> Result<Option<DateTime<Utc>>> {
    let at: Option<i64> = sqlx::query(
        "SELECT MAX(at) AS at FROM follow_ups WHERE tenant_id = $1 AND customer_id = $2 AND kind <> 'handover'",
    )
    .bind(tenant)
    .bind(customer_id)
    .fetch_one(conn)
    .await?
    .try_get("at")?;
    Ok(at.map(time::from_micros))
}

/// What a handover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub customers: usize,
    pub tasks_moved: u64,
}

/// Hands customers over to another user: the owner changes, the previous owner's open tasks
/// about them move along, and a `handover` record joins each customer's follow-ups; nothing
/// of the history is lost. All or nothing.
pub async fn handover(
    db: &Db,
    actor: &Actor,
    customers: &ScopedIds,
    to_user: &str,
    note: &str,
) -> Result<Handover> {
    actor.require(shoal_base::kinds::Action::Assign)?;
    let customer_ids = customers.ids();
    let mut p = Problems::default();
    if !actor.tenant.users.contains_key(to_user) {
        p.push("toUserId", format!("no user `{to_user}` in this tenant"));
    }
    if customer_ids.is_empty() || customer_ids.len() > 10_000 {
        p.push("customerIds", "1–10000 customers");
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let mut moved = 0;
    let mut missing = Problems::default();
    let now = time::now();
    for (i, id) in customer_ids.iter().enumerate() {
        let row = sqlx::query(&format!(
            "SELECT owner_id FROM customers WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL{}",
            dialect::for_update(db.backend)
        ))
        .bind(actor.tenant_id())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            missing.push(
                format!("customerIds[{i}]"),
                format!("no customer `{id}` in this tenant"),
            );
            continue;
        };
        let from: Option<String> = row.try_get("owner_id")?;
        sqlx::query("UPDATE customers SET owner_id = $3, updated_at = $4, version = version + 1 WHERE tenant_id = $1 AND id = $2")
            .bind(actor.tenant_id())
            .bind(id)
            .bind(to_user)
            .bind(time::to_micros(now))
            .execute(&mut *tx)
            .await?;
        if let Some(from) = &from {
            moved += crate::tasks::reassign(&mut tx, actor.tenant_id(), id, from, to_user).await?;
        }
        audit::record(
            &mut tx,
            actor,
            "customers.handover",
            "customer",
            id,
            json!({ "ownerId": { "from": from, "to": to_user } }),
        )
        .await?;
        let text = format!(
            "handed over from {} to {to_user}{}",
            from.as_deref().unwrap_or("nobody"),
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        );
        insert(&mut tx, actor, id, "handover", &text, now).await?;
    }
    missing.into_result(())?;
    tx.commit().await?;
    Ok(Handover {
        customers: customer_ids.len(),
        tasks_moved: moved,
    })
}
