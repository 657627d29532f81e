//! # shoal-sdk
//!
//! Build Shoal industry modules: WebAssembly components that supply tag templates, SOP
//! templates, settlement rules and ticket templates to the Shoal host, for the tenants that
//! enable them.
//!
//! A module is one type implementing [`Module`], registered with [`register_module!`]:
//!
//! ```
//! use shoal_sdk::{Capability, Industry, Module, PluginInfo, TagTemplate};
//!
//! struct Bakery;
//!
//! impl Module for Bakery {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("bakery", "Bakery", env!("CARGO_PKG_VERSION"), Industry::Retail)
//!             .description("Tags for bakeries")
//!             .capabilities(&[Capability::TagTemplates])
//!     }
//!
//!     fn tag_templates() -> Vec<TagTemplate> {
//!         vec![TagTemplate::new("regular", "Regular").rule("count(order, 30d) >= ${orders}")
//!             .param("orders", "orders in 30 days", "4")]
//!     }
//! }
//!
//! shoal_sdk::register_module!(Bakery);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --profile plugin --target wasm32-wasip2` (or `cargo xtask
//! plugins` inside the Shoal repository). Modules are pure: they can log ([`log`]) and read
//! their tenant's parameters ([`params`]), nothing else. Money is exact: use [`Decimal`]
//! and [`money`], never floats.
//!
//! The SDK's version is the plugin ABI it targets: `shoal-sdk` 1.1 builds modules for
//! `shoal:plugin@1.1.0` (`schema/wit/v1.1.0`), which hosts supporting 1.1 load; modules
//! built with `shoal-sdk` 1.0 keep loading there too.

mod builders;
mod decimal;
pub mod log;
pub mod params;
pub mod tiers;

#[doc(hidden)]
#[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI glue
pub mod bindings {
    wit_bindgen::generate!({
        path: "../schema/wit/v1.1.0",
        world: "industry-module",
        pub_export_macro: true,
        export_macro_name: "__export_industry_module",
        default_bindings_module: "shoal_sdk::bindings",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub use bindings::shoal::plugin::types::{
    BillLine, Capability, CustomerProfile, EventStat, Industry, LineKind, MessageAction, Money,
    Participant, PluginError, PluginInfo, SettleRequest, SettledLine, Settlement, SopAction,
    SopStep, SopTemplate, SopTrigger, Split, TagDecision, TagTemplate, TaskAction, TemplateParam,
    TicketField, TicketFieldKind, TicketProposal, TicketRequest, TicketRouting, TicketSkill,
    TicketSla, TicketTemplate,
};
pub use decimal::{decimal, decimal_of, money, split_exactly};
pub use rust_decimal::{Decimal, RoundingStrategy};

/// The ABI (WIT package version) this SDK builds modules for.
pub const ABI_VERSION: &str = "1.1.0";

/// An industry module. Only [`describe`](Module::describe) is required; every other method
/// has a default that supplies nothing. Declare in `describe` the capabilities you
/// implement (`capabilities`): the host calls only those.
pub trait Module {
    /// Who the module is and what it supplies.
    fn describe() -> PluginInfo;

    /// Dynamic tag templates tenants can instantiate (capability `TAG_TEMPLATES`).
    fn tag_templates() -> Vec<TagTemplate> {
        Vec::new()
    }

    /// SOP templates tenants can instantiate (capability `SOP_TEMPLATES`).
    fn sop_templates() -> Vec<SopTemplate> {
        Vec::new()
    }

    /// Prices and splits a bill (capability `SETTLEMENT`). Must be a pure function of the
    /// request and the tenant's parameters; return a [`PluginError`] to refuse.
    fn settle(request: SettleRequest) -> Result<Settlement, PluginError> {
        let _ = request;
        Err(PluginError::new(
            "unsupported",
            "this module does not settle bills",
        ))
    }

    /// Tags the declarative rules cannot express (capability `EVALUATE_TAGS`).
    fn evaluate_tags(profile: CustomerProfile) -> Result<Vec<TagDecision>, PluginError> {
        let _ = profile;
        Ok(Vec::new())
    }

    /// Ticket templates tenants can instantiate as ticket types (capability
    /// `TICKET_TEMPLATES`, since 1.1).
    fn ticket_templates() -> Vec<TicketTemplate> {
        Vec::new()
    }

    /// Field values for a ticket of a template that `proposes` (capability
    /// `TICKET_TEMPLATES`, since 1.1): staff see them and may apply them. Pure, like
    /// [`settle`](Module::settle).
    fn propose_ticket(request: TicketRequest) -> Result<TicketProposal, PluginError> {
        Err(PluginError::new(
            "unsupported",
            &format!(
                "no proposals for tickets of template `{}`",
                request.template
            ),
        ))
    }
}

/// Exports a [`Module`] implementation as the component's `shoal:plugin/module`.
///
/// ```ignore
/// shoal_sdk::register_module!(MyModule);
/// ```
#[macro_export]
macro_rules! register_module {
    ($module:ty) => {
        #[doc(hidden)]
        #[allow(unsafe_code)] // wit-bindgen's export glue
        mod __shoal_module_export {
        use super::*;

        pub struct __ShoalModuleExport;

        impl $crate::bindings::exports::shoal::plugin::module::Guest for __ShoalModuleExport {
            fn describe() -> $crate::PluginInfo {
                <$module as $crate::Module>::describe()
            }
            fn tag_templates() -> ::std::vec::Vec<$crate::TagTemplate> {
                <$module as $crate::Module>::tag_templates()
            }
            fn sop_templates() -> ::std::vec::Vec<$crate::SopTemplate> {
                <$module as $crate::Module>::sop_templates()
            }
            fn settle(
                request: $crate::SettleRequest,
            ) -> ::std::result::Result<$crate::Settlement, $crate::PluginError> {
                <$module as $crate::Module>::settle(request)
            }
            fn evaluate_tags(
                profile: $crate::CustomerProfile,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::TagDecision>, $crate::PluginError>
            {
                <$module as $crate::Module>::evaluate_tags(profile)
            }
            fn ticket_templates() -> ::std::vec::Vec<$crate::TicketTemplate> {
                <$module as $crate::Module>::ticket_templates()
            }
            fn propose_ticket(
                request: $crate::TicketRequest,
            ) -> ::std::result::Result<$crate::TicketProposal, $crate::PluginError> {
                <$module as $crate::Module>::propose_ticket(request)
            }
        }

        $crate::bindings::__export_industry_module!(__ShoalModuleExport with_types_in $crate::bindings);
        }
    };
}
