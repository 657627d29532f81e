//! Analytics over the tenant's customers, always within the reader's access (a figure counts
//! only customers the reader reaches) and in the tenant's time zone: funnels
//! ([`funnel`]), retention cohorts ([`cohorts`]), an SOP's figures per step
//! ([`sop_steps`]), revenue series from settled bills ([`revenue`]), tag holders over time
//! ([`tag_trend`]), stages over time and RFM movement ([`stage_rfm`]) and ticket service
//! levels ([`service_levels`]: SLA attainment, backlog, agents' load). Each figure is also written as a plain SQL query in docs/analytics.md,
//! and the tests compare the two (SLA clocks excepted: they run on business calendars, and
//! are shoal-tickets' own).
//!
//! **Invariant:** reads only; it knows the other domains' tables by SQL (as `shoal-privacy`
//! does) and depends on no crate above `shoal-crm` but `shoal-tickets`, whose SLA clocks
//! and ticket reach it uses rather than copy.

pub mod cohorts;
pub mod funnel;
pub mod period;
pub mod revenue;
mod scan;
pub mod service_levels;
pub mod sop_steps;
pub mod stage_rfm;
pub mod tag_trend;
