//! Analytics over the tenant's customers, always within the reader's access (a figure counts
//! only customers the reader reaches) and in the tenant's time zone: funnels
//! ([`funnel`]), retention cohorts ([`cohorts`]), an SOP's figures per step
//! ([`sop_steps`]), revenue series from settled bills ([`revenue`]) and tag holders over time
//! ([`tag_trend`]). Each figure is also written as a plain SQL query in docs/analytics.md,
//! and the tests compare the two.
//!
//! **Invariant:** reads only; it knows the other domains' tables by SQL (as `shoal-privacy`
//! does) and depends on no crate above `shoal-crm`.

pub mod cohorts;
pub mod funnel;
pub mod period;
pub mod revenue;
mod scan;
pub mod sop_steps;
pub mod tag_trend;
