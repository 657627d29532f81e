//! Settlement: price libraries, regional tiers and participants (`library`; what one bill
//! is settled against, read at once: `reference`), bills settled
//! by the tenant's industry module and checked by the host (`bills`), double-entry postings
//! and statements (`ledger`), replay (`bills::verify`), spare-part stock (`stock`).
//!
//! Invariants: money is `Decimal`, stored as units of 10⁻⁴ with its currency; a bill's
//! splits add up to its total exactly and its postings balance to zero; bills are never
//! edited (a refund is a new bill); every bill records the module id, version and SHA-256,
//! and the exact request and parameters it was settled with.

mod bills;
pub mod csv;
mod ledger;
mod library;
mod reference;
pub mod stock;

pub use bills::{
    Bill, BillKind, BillLine, LineInput, LineKind, SettleInput, Verification, ensure_visible, get,
    get_visible, of_customer, refund, settle, verify,
};
pub use ledger::{Posting, Statement, statement, statement_csv};

/// A participant's statement for an actor: an export, and one that sums bills of every
/// customer, so it needs the `export` action and scope `all` on bills.
pub async fn statement_for(
    db: &shoal_base::storage::Db,
    actor: &shoal_crm::tenancy::Actor,
    participant: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> shoal_base::error::Result<Statement> {
    may_read_statements(actor)?;
    statement(db, actor.tenant_id(), participant, from, to).await
}

/// Statements need the `export` action and scope `all` on bills.
fn may_read_statements(actor: &shoal_crm::tenancy::Actor) -> shoal_base::error::Result<()> {
    actor.require(shoal_base::kinds::Action::Export)?;
    if !actor.access.reaches_all(shoal_base::kinds::Resource::Bills) {
        return Err(shoal_base::error::Error::Forbidden(
            "a statement sums bills of every customer: it needs scope `all` on bills".into(),
        ));
    }
    Ok(())
}

/// The participants whose statements an actor may read (those who may read statements see
/// every one), by id.
pub async fn participants_for(
    db: &shoal_base::storage::Db,
    actor: &shoal_crm::tenancy::Actor,
) -> shoal_base::error::Result<Vec<Participant>> {
    may_read_statements(actor)?;
    let mut conn = db.pool.acquire().await?;
    Ok(library::participants(&mut conn, actor.tenant_id())
        .await?
        .into_values()
        .collect())
}
pub use library::{
    MAX_LEVELS, Participant, PriceKind, ServiceItem, SparePart, exists, parse_csv, set_region_tier,
    set_tier_adjustment, upsert_participants, upsert_service_items, upsert_spare_parts,
};

/// An ISO 4217-shaped currency code.
pub fn currency_ok(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Decimal places of a currency's minor unit (ISO 4217).
pub fn minor_unit(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}
