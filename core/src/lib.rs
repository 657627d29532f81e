//! The Shoal host. See ARCHITECTURE.md for the map.

pub mod access;
pub mod api;
pub mod audit;
pub mod config;
pub mod customers;
pub mod dedupe;
pub mod demo;
pub mod error;
pub mod events;
pub mod follow_ups;
pub mod import;
pub mod internal_events;
pub mod kinds;
pub mod pagination;
pub mod plugins;
pub mod quality;
pub mod rules;
pub mod segments;
pub mod server;
pub mod settlement;
pub mod sop;
pub mod storage;
pub mod tags;
pub mod tasks;
pub mod tenancy;
