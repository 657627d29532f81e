//! Events: the customer timeline — raw material for tags, RFM and SOP triggers.
//!
//! `record` takes a batch (up to `limits.max_batch_events`) and stores all of it or none of
//! it; an event whose idempotency key was seen before is a no-op that returns the stored one.

mod store;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::customers::Identity;
use shoal_base::kinds::Channel;
pub use shoal_base::kinds::EventType;
pub use store::{TIMELINE_ORDER, insert_many, record, timeline};
pub use store::{check, record_in};

/// An exact amount of money in a currency (ISO 4217).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: Decimal,
    pub currency: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub customer_id: String,
    pub event_type: EventType,
    /// Which custom event (required for `custom`), or a label for the others.
    pub name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub channel: Option<Channel>,
    pub amount: Option<Money>,
    pub payload: Value,
    pub idempotency_key: Option<String>,
}

/// Who an incoming event is about.
#[derive(Debug, Clone)]
pub enum CustomerRef {
    Id(String),
    Identity(Identity),
}

/// An event as received (not yet validated).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub customer: Option<CustomerRef>,
    pub event_type: EventType,
    pub name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub channel: Option<Channel>,
    pub amount: Option<Money>,
    pub payload: Option<Value>,
    pub idempotency_key: Option<String>,
}

/// What `record` did with one event of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The idempotency key was already used; the stored event is returned unchanged.
    Duplicate,
}
