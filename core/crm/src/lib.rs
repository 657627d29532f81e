//! The customer records and who may reach them: tenants and actors ([`tenancy`]),
//! permissions ([`access`]), customer profiles ([`customers`]), their timeline ([`events`]),
//! the audit log ([`audit`]) and the internal events the engines above consume
//! ([`internal_events`]).
//!
//! Invariant: every read of customer data made for an actor goes through [`access`]; every
//! change writes its audit entry in the same transaction. This crate knows no engine
//! (tags, SOPs, settlement, imports) and no HTTP.

pub mod access;
pub mod access_admin;
pub mod audit;
pub mod consent;
pub mod credentials;
pub mod customers;
pub mod events;
pub mod internal_events;
pub mod tenancy;
