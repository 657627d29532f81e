//! Tickets (工单): typed work orders (docs/tickets.md).
//!
//! - [`types`]: ticket types — custom-field schemas and workflows (statuses in categories,
//!   allowed transitions), checked with field paths;
//! - [`repairs`]: service items and spare parts on a ticket (stock reserved), billed once;
//! - [`reach`]: which tickets a caller reaches (customer, assignee, queue);
//! - [`records`]: tickets, history entries and types as stored, read raw;
//! - [`surveys`]: satisfaction surveys (CSAT) sent on resolve, answered once, reported;
//! - [`store`]: tickets opened, moved, answered and annotated, each change with its history
//!   and audit entry; reached through their customer (`tickets` scope);
//! - [`inbound`]: tickets other systems open with a signed request, once per delivery;
//! - [`lines`]: a repair's lines as stored, and giving their reservations back;
//! - [`merge`]: merging a duplicate into the ticket that carries on, and undoing it;
//! - [`proposals`]: types made from a module's ticket templates, and the field values the
//!   module proposes for their tickets (a refund amount), read and applied by staff;
//! - [`queues`]: queues (teams) and agents — availability, shifts, capacity, skills;
//! - [`routing`]: routing rules (which queue), assignment inside a queue (round robin,
//!   least loaded, skill match) and the waiting queue, each decision with its reason;
//! - [`timers`]: SLA timers that act — escalations at risk and on breach, once each;
//! - [`upkeep`]: the background loop that fires due timers and offers waiting tickets;
//! - [`sla`]: SLA policies and each ticket's clocks (first response, resolution), on the
//!   tenant's business calendar;
//! - [`entries`]: writing a ticket's history;
//! - [`settings`]: the tenant's ticket settings (calendar, SLA policies, routing rules);
//! - [`calendar`]: business calendars (windows per weekday, holidays, make-up working days)
//!   and exact SLA deadlines on them, with pauses.

pub mod calendar;
pub mod entries;
pub mod inbound;
pub mod lines;
pub mod merge;
pub mod proposals;
pub mod queues;
pub mod reach;
pub mod records;
pub mod repairs;
pub mod routing;
pub mod settings;
pub mod sla;
pub mod store;
pub mod surveys;
pub mod timers;
pub mod types;
pub mod upkeep;

/// Checks the `tickets` section of a tenant's configuration (a `TenantCheck`): the inbound
/// key's variable must hold at least 16 characters.
pub fn check_config(
    tenant: &shoal_base::config::TenantConfig,
) -> Result<(), shoal_base::config::Invalid> {
    if let Some(var) = &tenant.tickets.inbound_secret_env {
        inbound_secret(var).map_err(|message| shoal_base::config::Invalid {
            key: "tickets.inbound_secret_env".into(),
            message,
        })?;
    }
    Ok(())
}

/// The inbound key held by environment variable `var`.
pub fn inbound_secret(var: &str) -> Result<Vec<u8>, String> {
    match std::env::var(var) {
        Ok(s) if s.chars().count() >= 16 => Ok(s.into_bytes()),
        _ => Err(format!(
            "environment variable {var} must hold a key of at least 16 characters"
        )),
    }
}
