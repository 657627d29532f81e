//! Logging to the host. Lines are attributed to the module and the call, and at most 4 KiB
//! per call are kept. In native unit tests they go to standard error.

use crate::bindings::shoal::plugin::host::{self, LogLevel};

fn write(level: LogLevel, message: &str) {
    if cfg!(target_arch = "wasm32") {
        host::log(level, message);
    } else {
        eprintln!("[{level:?}] {message}");
    }
}

/// Logs a debug line: `shoal_sdk::log::debug("tier table has 3 rows")`.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Logs an info line: `shoal_sdk::log::info("settled bill B-1")`.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Logs a warning: `shoal_sdk::log::warn("unknown region, using tier 2")`.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// Logs an error: `shoal_sdk::log::error("price list is empty")`.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}
