//! Misbehaves as the request's `attributes.mode` says: `loop`, `alloc`, `recurse`, `panic`,
//! `error`, `big-output`, `log-spam`, `clock`, or (anything else) a correct empty settlement.

use shoal_sdk::{
    Capability, Industry, Module, PluginError, PluginInfo, SettleRequest, Settlement, log, money,
};

struct Misbehave;

fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        0
    } else {
        1 + recurse(std::hint::black_box(n + 1))
    }
}

impl Module for Misbehave {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "misbehave",
            "Misbehaving module",
            env!("CARGO_PKG_VERSION"),
            Industry::Other,
        )
        .capabilities(&[Capability::Settlement])
    }

    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        let mode = request
            .attributes
            .split("\"mode\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("ok")
            .to_owned();
        let empty = || Settlement {
            lines: Vec::new(),
            total: money(Default::default(), &request.currency),
            splits: Vec::new(),
            notes: Vec::new(),
        };
        match mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                // grow memory without touching it, so the memory cap is hit before the fuel one
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::<u8>::with_capacity(1 << 20);
                    chunk.push(1);
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "recurse" => Err(PluginError::new("unreachable", &recurse(0).to_string())),
            "panic" => panic!("boom: the bill has no lines"),
            "error" => Err(PluginError::new("bad-bill", "bill B-7 has no lines")),
            "big-output" => {
                let mut s = empty();
                s.notes = vec!["x".repeat(1024); 64];
                Ok(s)
            }
            "log-spam" => {
                for i in 0..200 {
                    log::info(&format!("line {i}: {}", "y".repeat(40)));
                }
                Ok(empty())
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(u64::MAX);
                let mut s = empty();
                s.notes = vec![format!("clock={now}")];
                Ok(s)
            }
            _ => Ok(empty()),
        }
    }
}

shoal_sdk::register_module!(Misbehave);
