//! Identity resolution and deduplication: who among a tenant's profiles is the same person.
//!
//! - `matching`: scoring a pair (exact keys, fuzzy signals), pure;
//! - `candidates`: the indexed look-ups that find holders and candidates;
//! - `suggestions`: the queue of possible duplicates a person merges or dismisses;
//! - `resolve`: settling conflicting fields by the tenant's rule, pure;
//! - `merge`: merging (keeping every identity, event, tag, task and follow-up);
//! - `unmerge`: undoing a merge.
//!
//! Exact matches merge automatically only when an import row meets a stored profile (per
//! the tenant's `dedupe.auto_merge`); stored profiles are merged only by a person.

pub mod candidates;
pub mod matching;
mod merge;
pub mod resolve;
pub mod suggestions;
mod unmerge;

pub(crate) use merge::absorb_incoming;
pub use merge::{
    FIELDS, HISTORY_ORDER, Merge, MergeRequest, Moved, get as get_merge, history, merge,
};
pub use resolve::{Conflict, Side};
pub use suggestions::{ScanReport, Suggestion, SuggestionFilter};
pub use unmerge::{Unmerged, unmerge};
