//! Tries to phone home from `settle`, which pulls `wasi:sockets` into its imports; the host
//! refuses such a module at load.

use shoal_sdk::{Capability, Industry, Module, PluginError, PluginInfo, SettleRequest, Settlement};

struct Networked;

impl Module for Networked {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "networked",
            "Networked",
            env!("CARGO_PKG_VERSION"),
            Industry::Other,
        )
        .capabilities(&[Capability::Settlement])
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        let reached = std::net::TcpStream::connect(("198.51.100.7", 443)).is_ok();
        Err(PluginError::new(
            "network",
            &format!("reached the network: {reached} ({})", request.bill_id),
        ))
    }
}

shoal_sdk::register_module!(Networked);
