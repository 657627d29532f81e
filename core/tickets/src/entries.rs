//! Writing a ticket's history: one entry per reply, note or change (reading it, masked for
//! the reader, is [`crate::store::history`]).

use serde_json::Value;

use shoal_base::error::Result;

/// Adds one entry to a ticket's history; answers its id.
pub async fn add(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    ticket: &str,
    (kind, author, public): (&str, &str, bool),
    body: Option<&str>,
    detail: Option<Value>,
    at: i64,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO ticket_entries (tenant_id, id, ticket_id, kind, author, visibility, body, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(ticket)
    .bind(kind)
    .bind(author)
    .bind(if public { "public" } else { "internal" })
    .bind(body)
    .bind(detail.map(|d| d.to_string()))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(id)
}
