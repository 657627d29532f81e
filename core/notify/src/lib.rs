//! Telling people and systems what changed.
//!
//! Every change to customer data writes an internal event in its own transaction (see
//! `shoal_crm::internal_events`; audited customer changes through `shoal_crm::audit`). The
//! [`relay`] moves those events, in commit order, onto the tenant's change feed, where
//! each gets a sequence number (the cursor subscriptions resume from) — and, in the same
//! transaction, one webhook message per subscribed endpoint ([`hooks`]) and one notification
//! per recipient of each matching staff rule ([`staff`]). So a change without its webhook,
//! or a webhook without its change, cannot happen; delivery is then at least once, each
//! message under one `webhook-id` for all its attempts.
//!
//! The [`bus`] wakes subscribers on every host when the feed grows: in-process on SQLite,
//! through PostgreSQL `LISTEN/NOTIFY` (carrying a tenant id and a sequence number, never a
//! payload) across hosts. Subscribers then read the rows from the database, so a slow or
//! reconnecting subscriber misses nothing the feed still holds.

pub mod background;
pub mod bus;
pub mod email;
pub mod event_types;
pub mod facts;
pub mod feed;
pub mod hooks;
pub mod post;
pub mod relay;
pub mod staff;
