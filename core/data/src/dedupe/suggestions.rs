//! Merge suggestions: pairs that may be the same person, queued with a score and reasons
//! for a person to merge or dismiss; never merged by themselves. A dismissed pair is never
//! suggested again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use shoal_base::vault::Vault;
use sqlx::{AnyConnection, Row};

use super::{
    candidates,
    matching::{self, Profile, Reason},
};
use shoal_base::{
    error::{Error, Result},
    kinds::{Action, Resource},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, sql::Sql, time},
};
use shoal_crm::{
    audit,
    tenancy::{Actor, Tenant},
};

/// A suggested pair. `customer_a` < `customer_b`.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub id: String,
    pub customer_a: String,
    pub customer_b: String,
    /// 0–100.
    pub score: u8,
    pub reasons: Vec<Reason>,
    /// `pending`, `merged` or `dismissed`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_by: Option<String>,
}

/// The cursor ordering of [`list`].
pub const ORDER: &str = "suggestions:score:desc";

/// The field suggestion reasons are sealed as: their details name the shared phone or
/// e-mail.
const REASONS: &str = "merge_suggestions.reasons";

fn from_row(vault: &Vault, tenant: &str, r: &sqlx::any::AnyRow) -> Result<Suggestion> {
    let reasons: String = r.try_get("reasons")?;
    let reasons = vault.open_or_plain(tenant, REASONS, &reasons)?;
    Ok(Suggestion {
        id: r.try_get("id")?,
        customer_a: r.try_get("customer_a")?,
        customer_b: r.try_get("customer_b")?,
        score: u8::try_from(r.try_get::<i64, _>("score")?).unwrap_or(0),
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        status: r.try_get("status")?,
        created_at: time::from_micros(r.try_get("created_at")?),
        updated_at: time::from_micros(r.try_get("updated_at")?),
        decided_by: r.try_get("decided_by")?,
    })
}

/// Queues (or refreshes) a pending suggestion; a pair already decided stays decided.
/// Returns whether it is new.
pub async fn upsert(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    x: &str,
    y: &str,
    score: u8,
    reasons: &[Reason],
) -> Result<bool> {
    let (a, b) = if x < y { (x, y) } else { (y, x) };
    let now = time::to_micros(time::now());
    let reasons = vault.seal(
        tenant,
        REASONS,
        &serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into()),
    )?;
    let refreshed = sqlx::query(
        "UPDATE merge_suggestions SET score = $1, reasons = $2, updated_at = $3 \
         WHERE tenant_id = $4 AND customer_a = $5 AND customer_b = $6 AND status = 'pending' AND score <= $1",
    )
    .bind(i64::from(score))
    .bind(&reasons)
    .bind(now)
    .bind(tenant)
    .bind(a)
    .bind(b)
    .execute(&mut *conn)
    .await?;
    if refreshed.rows_affected() > 0 {
        return Ok(false);
    }
    // a pending pair with a better score keeps it (and its reasons)
    let inserted = sqlx::query(
        "INSERT INTO merge_suggestions (tenant_id, id, customer_a, customer_b, score, reasons, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(a)
    .bind(b)
    .bind(i64::from(score))
    .bind(&reasons)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// Compares `ids` with every candidate sharing a name, an email local part, a phone or an
/// email, and queues the pairs scoring at least the tenant's `min_score`. Returns how many
/// suggestions are new.
pub async fn suggest_for(conn: &mut AnyConnection, tenant: &Tenant, ids: &[&str]) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let of = candidates::profiles(conn, &tenant.vault, &tenant.id, ids).await?;
    suggest_among(conn, tenant, &of).await
}

/// [`suggest_for`] with the profiles at hand (an import has just written them).
pub async fn suggest_among(
    conn: &mut AnyConnection,
    tenant: &Tenant,
    of: &[Profile],
) -> Result<usize> {
    if of.is_empty() {
        return Ok(0);
    }
    let others = candidates::fuzzy(conn, &tenant.vault, &tenant.id, of).await?;
    // compare only profiles sharing a blocking key (a name, an email local part, a phone or
    // an email), not every pair: a batch of 1000 meets thousands of candidates
    let mut blocks: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, q) in others.iter().enumerate() {
        for key in blocking_keys(q) {
            blocks.entry(key).or_default().push(i);
        }
    }
    let mut pairs: HashMap<(String, String), (u8, Vec<Reason>)> = HashMap::new();
    for p in of {
        let mut seen = std::collections::HashSet::new();
        for key in blocking_keys(p) {
            for &i in blocks.get(&key).map(Vec::as_slice).unwrap_or_default() {
                let q = &others[i];
                if q.id == p.id || !seen.insert(i) {
                    continue;
                }
                let key = if p.id < q.id {
                    (p.id.clone(), q.id.clone())
                } else {
                    (q.id.clone(), p.id.clone())
                };
                if pairs.contains_key(&key) {
                    continue;
                }
                if let Some((score, reasons)) = matching::score(p, q)
                    && score >= tenant.dedupe.min_score
                {
                    pairs.insert(key, (score, reasons));
                }
            }
        }
    }
    let mut new = 0;
    for ((a, b), (score, reasons)) in pairs {
        if upsert(conn, &tenant.vault, &tenant.id, &a, &b, score, &reasons).await? {
            new += 1;
        }
    }
    Ok(new)
}

/// The keys a profile is compared on: its name (unless a placeholder), email local parts,
/// phones and emails.
fn blocking_keys(p: &Profile) -> Vec<String> {
    let mut keys = Vec::new();
    if !matching::is_placeholder_name(&p.name_key) {
        keys.push(format!("n:{}", p.name_key));
    }
    keys.extend(
        p.emails
            .iter()
            .filter_map(|e| matching::local_part(e))
            .map(|l| format!("l:{l}")),
    );
    keys.extend(p.phones.iter().map(|v| format!("p:{v}")));
    keys.extend(p.emails.iter().map(|v| format!("e:{v}")));
    keys
}

/// Counts of a full scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub customers: usize,
    pub new_suggestions: usize,
}

/// Looks for duplicates among every live customer of the tenant, a page of 500 per
/// transaction; pairs already decided are left alone.
pub async fn scan(db: &Db, actor: &Actor) -> Result<ScanReport> {
    actor.require(Action::Update)?;
    let mut report = ScanReport::default();
    let mut after = String::new();
    loop {
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM customers WHERE tenant_id = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT 500",
        )
        .bind(actor.tenant_id())
        .bind(&after)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut tx = db.begin_write().await?;
        report.new_suggestions += suggest_for(&mut tx, &actor.tenant, &refs).await?;
        tx.commit().await?;
        report.customers += ids.len();
    }
    Ok(report)
}

/// Which suggestions to list.
#[derive(Debug, Clone, Default)]
pub struct SuggestionFilter {
    /// `pending` unless given.
    pub status: Option<String>,
    /// Only pairs involving this customer.
    pub customer_id: Option<String>,
    pub min_score: Option<u8>,
}

/// Suggestions, best score first, about pairs of live customers the actor reaches.
pub async fn list(
    db: &Db,
    actor: &Actor,
    f: &SuggestionFilter,
    page: &Page,
) -> Result<Paged<(Suggestion, Cursor)>> {
    let mut sql = Sql::new("SELECT s.* FROM merge_suggestions s WHERE s.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t);
    let status = sql.arg(f.status.clone().unwrap_or_else(|| "pending".into()));
    sql.push(&format!(" AND s.status = {status}"));
    if let Some(id) = &f.customer_id {
        let a = sql.arg(id.clone());
        sql.push(&format!(" AND (s.customer_a = {a} OR s.customer_b = {a})"));
    }
    if let Some(min) = f.min_score {
        let a = sql.arg(i64::from(min));
        sql.push(&format!(" AND s.score >= {a}"));
    }
    if f.status.as_deref().unwrap_or("pending") == "pending" {
        for col in ["s.customer_a", "s.customer_b"] {
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM customers l WHERE l.tenant_id = {t} AND l.id = {col} AND l.deleted_at IS NULL)"
            ));
        }
    }
    for col in ["s.customer_a", "s.customer_b"] {
        actor
            .access
            .push_linked_scope(&mut sql, db.backend, Resource::Customers, &t, col);
    }
    page.push_conditions(&mut sql, "s.score", "s.id", true);
    page.push_order_limit(&mut sql, "s.score", "s.id", true);
    let rows = sql.query().fetch_all(&db.pool).await?;
    let items = rows
        .iter()
        .map(|r| from_row(&db.vault, actor.tenant_id(), r))
        .collect::<Result<Vec<_>>>()?;
    Ok(page.finish(items).with_cursors(|s| Cursor {
        tenant: actor.tenant_id().to_owned(),
        order: ORDER.to_owned(),
        key: Key::Int(i64::from(s.score)),
        id: s.id.clone(),
    }))
}

/// One suggestion of the tenant whose customers the actor reaches.
pub async fn get(conn: &mut AnyConnection, actor: &Actor, id: &str) -> Result<Suggestion> {
    let row = sqlx::query("SELECT * FROM merge_suggestions WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found("merge suggestion", id))?;
    from_row(&actor.tenant.vault, actor.tenant_id(), &row)
}

/// Records a decision on the pair (`merged` or `dismissed`), whether or not it was
/// suggested before (a dismissed pair is not suggested again).
pub async fn decide(
    conn: &mut AnyConnection,
    actor: &Actor,
    x: &str,
    y: &str,
    status: &str,
) -> Result<()> {
    let (a, b) = if x < y { (x, y) } else { (y, x) };
    let now = time::to_micros(time::now());
    let updated = sqlx::query(
        "UPDATE merge_suggestions SET status = $1, updated_at = $2, decided_by = $3 \
         WHERE tenant_id = $4 AND customer_a = $5 AND customer_b = $6",
    )
    .bind(status)
    .bind(now)
    .bind(&actor.user_id)
    .bind(actor.tenant_id())
    .bind(a)
    .bind(b)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO merge_suggestions (tenant_id, id, customer_a, customer_b, score, reasons, status, created_at, updated_at, decided_by) \
             VALUES ($1, $2, $3, $4, 0, '[]', $5, $6, $6, $7)",
        )
        .bind(actor.tenant_id())
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(a)
        .bind(b)
        .bind(status)
        .bind(now)
        .bind(&actor.user_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Dismisses a pending suggestion: the pair is not the same person.
pub async fn dismiss(db: &Db, actor: &Actor, id: &str) -> Result<Suggestion> {
    actor.require(Action::Update)?;
    let mut tx = db.begin_write().await?;
    let s = get(&mut tx, actor, id).await?;
    for c in [&s.customer_a, &s.customer_b] {
        actor
            .access
            .ensure_customer(db, Resource::Customers, c)
            .await?;
    }
    if s.status != "pending" {
        return Err(Error::invalid(
            "id",
            format!("the suggestion is already {}", s.status),
        ));
    }
    decide(&mut tx, actor, &s.customer_a, &s.customer_b, "dismissed").await?;
    audit::record(
        &mut tx,
        actor,
        "merge_suggestion.dismiss",
        "merge_suggestion",
        id,
        json!({"customerA": s.customer_a, "customerB": s.customer_b, "score": s.score}),
    )
    .await?;
    let s = get(&mut tx, actor, id).await?;
    tx.commit().await?;
    Ok(s)
}

/// Pending suggestions about pairs of live customers the actor reaches (quality report).
pub async fn pending_count(db: &Db, actor: &Actor) -> Result<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM merge_suggestions s WHERE s.tenant_id = ");
    let t = sql.arg(actor.tenant_id());
    sql.push(&t).push(" AND s.status = 'pending'");
    for col in ["s.customer_a", "s.customer_b"] {
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM customers l WHERE l.tenant_id = {t} AND l.id = {col} AND l.deleted_at IS NULL)"
        ));
        actor
            .access
            .push_linked_scope(&mut sql, db.backend, Resource::Customers, &t, col);
    }
    Ok(sql.query().fetch_one(&db.pool).await?.try_get("n")?)
}

/// A profile for matching, from a customer.
pub fn profile_of(c: &shoal_crm::customers::Customer) -> Profile {
    Profile {
        id: c.id.clone(),
        name_key: shoal_crm::customers::validate::name_key(&c.display_name),
        phones: c.phones.clone(),
        emails: c.emails.clone(),
    }
}
