//! A module built against `shoal:plugin@2.0.0`, which no host supports yet.

#![allow(unsafe_code)] // wit-bindgen's generated glue

wit_bindgen::generate!({ path: "wit", world: "industry-module" });

use exports::shoal::plugin::module::Guest;
use shoal::plugin::types::*;

struct Future;

impl Guest for Future {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "future".into(),
            name: "From the future".into(),
            version: "1.0.0".into(),
            industry: Industry::Other,
            description: String::new(),
            capabilities: vec![Capability::TagTemplates],
        }
    }
    fn tag_templates() -> Vec<TagTemplate> {
        Vec::new()
    }
    fn sop_templates() -> Vec<SopTemplate> {
        Vec::new()
    }
    fn settle(_: SettleRequest) -> Result<Settlement, PluginError> {
        Err(PluginError {
            code: "unsupported".into(),
            message: String::new(),
        })
    }
    fn evaluate_tags(_: CustomerProfile) -> Result<Vec<TagDecision>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Future);
