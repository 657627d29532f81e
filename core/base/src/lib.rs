//! Shoal's base floor: what every other crate stands on and which knows no domain.
//!
//! - [`error`]: the error every domain function returns, with its codes and field paths;
//! - [`kinds`]: closed vocabularies (stages, channels, event types, actions, …);
//! - [`config`]: the figment chain and the configuration types (engines check their own
//!   sections);
//! - [`storage`]: the pool, migrations, dialects, the SQL builder, time and money encodings;
//! - [`pagination`]: Relay page arguments and keyset cursors;
//! - [`supervise`]: background work whose panics become errors, counted for `/metrics`;
//! - [`vault`]: each tenant's keys; personal fields sealed at rest and their blind indexes;
//! - [`wake`]: a request waking a tenant's background loop on this host.
//!
//! Invariant: this crate names no domain concept beyond the vocabularies and knows nothing
//! of HTTP; async-graphql appears only behind the `graphql` feature, to derive enums.

pub mod config;
pub mod csv_out;
pub mod error;
pub mod kinds;
pub mod pagination;
pub mod storage;
pub mod supervise;
pub mod vault;
pub mod wake;
