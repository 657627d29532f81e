//! Tags: manual and dynamic (rule-based, possibly instantiated from an industry module's
//! template), grouped and coloured, evaluated incrementally when a customer's events or
//! profile change and in bulk (SQL) on demand or on a schedule. See docs/tags.md.

mod apply;
pub mod lifecycle;
pub mod rfm;
mod store;

pub use apply::{
    Held, HistoryEntry, MAX_BULK, Recomputed, Target, apply_manual, evaluate_customers, history,
    recompute, system, tags_of, write_changes,
};
pub(crate) use apply::{Loaded, load};
pub(crate) use store::all as store_all;
pub use store::{
    Tag, TagInput, TagKind, TemplateRef, create, delete, get, groups, instantiate_rule, parse_rule,
    update, upsert_group,
};

/// Every live tag of a tenant.
pub async fn list(db: &crate::storage::Db, tenant: &str) -> crate::error::Result<Vec<Tag>> {
    let mut conn = db.pool.acquire().await?;
    store::all(&mut conn, tenant).await
}
