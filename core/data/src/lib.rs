//! Data integration: bulk import of customers and events ([`import`]), identity resolution —
//! matching, suggestions, merges and their undo ([`dedupe`]) — and the data-quality report
//! ([`quality`]). See docs/import.md and docs/dedupe.md.
//!
//! Invariant: an import commits each batch with its checkpoint; stored profiles are merged
//! only by a person, and every merge can be undone.

pub mod dedupe;
pub mod import;
pub mod quality;
pub mod quality_trend;
