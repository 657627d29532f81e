//! End-to-end tests: each starts a real Shoal server (HTTP on an ephemeral port, a fresh
//! SQLite file or PostgreSQL database) and speaks GraphQL to it. Storage tests run on both
//! backends (see `on_both_backends!`); PostgreSQL comes from `SHOAL_TEST_POSTGRES_URL`.

mod analytics;
mod browser;
mod harness;

mod campaigns;
mod cli;
mod connectors;
mod console;
mod crash;
mod customers;
mod data_protection;
mod dedupe;
mod docs;
mod events;
mod http;
mod import;
mod industry;
mod isolation;
mod notify;
mod pagination;
mod permissions;
mod plugins;
mod rules;
mod schema_walk;
mod scope_walk;
mod settlement;
mod sign_in;
mod sop;
mod supply_chain;
mod tags;
mod ticket_escalations;
mod ticket_repairs;
mod ticket_routing;
mod ticket_templates;
mod tickets;
mod trust;
mod webhooks;
