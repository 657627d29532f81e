//! Tags: manual and dynamic (rule-based, possibly instantiated from an industry module's
//! template), grouped and coloured, evaluated incrementally when a customer's events or
//! profile change and in bulk (SQL) on demand or on a schedule. See docs/tags.md.

mod apply;
pub mod lifecycle;
pub mod rfm;
pub mod segments;

pub use segments::filter;
mod store;

pub use apply::{
    Held, HistoryEntry, MAX_BULK, Recomputed, Target, apply_manual, delete, evaluate_customers,
    history, recompute, system, tags_of, write_changes,
};
pub use apply::{Loaded, load, profile_for};
pub use store::all as store_all;
pub use store::{
    Tag, TagInput, TagKind, TemplateRef, create, get, groups, instantiate_rule, parse_rule, update,
    upsert_group,
};

/// Every live tag of a tenant.
pub async fn list(
    db: &shoal_base::storage::Db,
    tenant: &str,
) -> shoal_base::error::Result<Vec<Tag>> {
    let mut conn = db.pool.acquire().await?;
    store::all(&mut conn, tenant).await
}
