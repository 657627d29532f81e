//! Inbound connectors: what happens elsewhere becomes customers and events here.
//!
//! - **WeCom callbacks** (`/connectors/<tenant>/wecom/<app>`): the URL check and event
//!   deliveries of a WeCom app, signed and encrypted as WeCom does ([`wecom_crypto`]), read
//!   from their XML ([`wecom_xml`]); external-contact and customer-group events become a
//!   customer (contact details fetched with `externalcontact/get` through the tenant's
//!   shared WeCom client) and a timeline event ([`wecom_events`]).
//! - **Signed JSON webhooks** (`/connectors/<tenant>/hooks/<name>`): Standard Webhooks
//!   signatures; the import mapping language with JSON pointers for columns
//!   ([`shoal_data::import::document`]) turns a posted order, refund or page view into a
//!   customer and an event.
//!
//! The endpoints check, store and answer at once ([`receive`], [`inbox`]): a delivery is
//! kept once per its identity at the sender, so replays and retries are harmless. A
//! supervised worker per tenant ([`intake`]) does the work, each delivery in one
//! transaction, retried with backoff when the work fails. See docs/connectors.md.

pub mod inbox;
pub mod intake;
pub mod receive;
pub mod setup;
pub mod wecom_crypto;
pub mod wecom_events;
pub mod wecom_xml;

pub use receive::ReceiveError;
pub use setup::check_config;
