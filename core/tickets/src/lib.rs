//! Tickets (工单): typed work orders (docs/tickets.md).
//!
//! - [`types`]: ticket types — custom-field schemas and workflows (statuses in categories,
//!   allowed transitions), checked with field paths;
//! - [`store`]: tickets opened, moved, answered and annotated, each change with its history
//!   and audit entry; reached through their customer (`tickets` scope);
//! - [`calendar`]: business calendars (windows per weekday, holidays, make-up working days)
//!   and exact SLA deadlines on them, with pauses.

pub mod calendar;
pub mod store;
pub mod types;
