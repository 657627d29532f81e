//! SOPs: event-triggered, timed, durable follow-up sequences (see docs/sop.md).
//!
//! - [`definition`]: triggers, steps, exit conditions, and their checks;
//! - [`store`]: SOPs and versions; [`enrolments`]: customers going through them;
//! - [`dispatch`]: internal events and scans → enrolments (and a resolved ticket's
//!   survey → its message on the survey's channel, `survey_messages`);
//! - [`machine`]: the step machine, shared by [`runner`] (the real thing, in the database)
//!   and [`simulate`] (the dry run);
//! - [`channels`]: the adapters every message goes out through (log, gateway, SMS, WeCom);
//! - [`contact`]: quiet hours, frequency caps, the verdict; [`opt_outs`]: who declined
//!   which channel; [`outbox`]: delivery;
//! - [`templates`]: industry modules' SOP templates; [`worker`]: the background loop;
//! - [`tasks`], [`follow_ups`]: the work SOPs and staff create, handovers.

pub mod channels;
pub mod contact;
pub mod definition;
pub mod dispatch;
pub mod endpoints;
pub mod enrolments;
pub mod follow_ups;
pub mod machine;
pub mod opt_outs;
pub mod outbound;
pub mod outbox;
pub mod runner;
pub mod simulate;
pub mod store;
mod survey_messages;
pub mod tasks;
pub mod templates;
pub mod transport;
pub mod worker;

pub use definition::{Definition, compile};
pub use store::Sop;
