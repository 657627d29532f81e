//! Customers: unified profiles with contacts, external identities and attributes.
//!
//! `validate` turns raw input into normalised values (all problems reported at once),
//! `store` reads and writes them, always scoped by tenant, and records every change in the
//! audit log within the same transaction.

mod list;
mod mask;
pub mod sealed;
mod store;
pub mod validate;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use list::{
    CustomerFilter, CustomerOrder, OrderField, count, export, ids_matching, list, list_sql,
    push_matching,
};
pub use shoal_base::kinds::{Channel, LifecycleStage};
pub use store::{
    ImportOrigin, Prepared, create, delete, get, get_many, get_visible, identities_of,
    insert_imported, insert_many, prepare, update,
};
pub use store::{
    diff, fetch, identities_json, identity_conflict, replace_contacts, snapshot, store_row,
};

pub type Attributes = Map<String, Value>;

/// A stored customer profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: String,
    pub display_name: String,
    /// E.164, e.g. `+8613800138000`.
    pub phones: Vec<String>,
    /// Lowercase.
    pub emails: Vec<String>,
    pub attributes: Attributes,
    pub lifecycle_stage: LifecycleStage,
    /// Set by hand: lifecycle derivation leaves it alone.
    pub stage_manual: bool,
    pub owner_id: Option<String>,
    pub source_channel: Channel,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incremented by every update.
    pub version: i64,
}

/// An account of the customer in an outside system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub channel: Channel,
    pub external_id: String,
}

/// Input for a new customer, as received (not yet validated).
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub display_name: String,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub identities: Vec<Identity>,
    pub attributes: Option<Value>,
    pub lifecycle_stage: LifecycleStage,
    pub owner_id: Option<String>,
    pub source_channel: Channel,
}

/// Changes to a customer; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub display_name: Option<String>,
    /// Replaces the list.
    pub phones: Option<Vec<String>>,
    /// Replaces the list.
    pub emails: Option<Vec<String>>,
    /// A JSON merge patch (RFC 7386) on the top-level keys: `null` removes a key.
    pub attributes: Option<Value>,
    pub lifecycle_stage: Option<LifecycleStage>,
    /// `Some(None)` clears the owner.
    pub owner_id: Option<Option<String>>,
    pub source_channel: Option<Channel>,
    /// `true`: hand the stage back to lifecycle derivation.
    pub release_stage: bool,
    pub add_identities: Vec<Identity>,
    pub remove_identities: Vec<Identity>,
}
