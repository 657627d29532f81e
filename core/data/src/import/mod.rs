//! Bulk import of customers and events from CSV or XLSX files.
//!
//! - `mapping`: the TOML field mapping (source columns → fields, value maps, types);
//! - `source`: streaming row readers (a parser thread, a bounded channel);
//! - `convert`: cells → values (maps, splitting, dates, numbers), with row errors;
//! - `customers` / `events`: one batch of rows into the database (dedupe and merges for
//!   customers, customer look-up and idempotency for events);
//! - `job`: the job row, its checkpoint (resume) and rejected rows;
//! - `run`: the driver the CLI and the API share;
//! - `document`: JSON documents (what inbound connectors receive) through the same
//!   mapping, its columns JSON pointers.
//!
//! See docs/import.md.

pub mod convert;
mod customers;
pub mod document;
mod events;
pub mod job;
pub mod mapping;
mod run;
pub mod source;

pub use convert::RowError;
pub use job::{Counts, Job};
pub use mapping::Kind;
pub use run::{DEFAULT_BATCH, Observer, Progress, Request, Silent, run};
pub use source::{Format, Input};
