//! A module instance of any ABI this host loads, seen through the newest types: what a
//! 1.0 module returns is converted into the 1.1 types, and what 1.1 added (ticket
//! templates) reads as nothing from a 1.0 module.

use serde::{Serialize, de::DeserializeOwned};
use wasmtime::{Store, component::InstancePre};

use super::{AbiVersion, calls_v1_0, latest as types, v1_0, v1_1};

/// A component linked and checked against the world of its ABI, ready to instantiate in a
/// store holding `T` (the host's call state).
pub enum Pre<T: 'static> {
    V1_0(v1_0::IndustryModulePre<T>),
    V1_1(v1_1::IndustryModulePre<T>),
}

impl<T: Send + 'static> Pre<T> {
    /// Checks `pre` against the world of `abi` (the version the component exports).
    pub fn new(abi: AbiVersion, pre: InstancePre<T>) -> Result<Pre<T>, String> {
        match (abi.major, abi.minor) {
            (1, 0) => v1_0::IndustryModulePre::new(pre)
                .map(Pre::V1_0)
                .map_err(|e| format!("not a v1.0 module: {e:#}")),
            (1, 1) => v1_1::IndustryModulePre::new(pre)
                .map(Pre::V1_1)
                .map_err(|e| format!("not a v1.1 module: {e:#}")),
            _ => Err(format!("no bindings for plugin ABI {abi}")),
        }
    }

    /// A fresh instance in `store`.
    pub fn instantiate(&self, store: &mut Store<T>) -> wasmtime::Result<Guest> {
        Ok(match self {
            Pre::V1_0(pre) => Guest::V1_0(pre.instantiate(store)?),
            Pre::V1_1(pre) => Guest::V1_1(pre.instantiate(store)?),
        })
    }
}

/// One instance of a module, whatever its ABI.
pub enum Guest {
    V1_0(v1_0::IndustryModule),
    V1_1(v1_1::IndustryModule),
}

/// A 1.0 value as the same 1.1 value: every 1.0 type reads unchanged in 1.1 (names and
/// shapes are the same; 1.1 only adds), so the serde forms agree. For what a module says at
/// load; calls convert field by field (`calls_v1_0`).
pub fn upgrade<A: Serialize, B: DeserializeOwned>(value: A) -> wasmtime::Result<B> {
    Ok(serde_json::from_value(serde_json::to_value(value)?)?)
}

/// A 1.1 value passed to a 1.0 module; the types a 1.0 module takes exist in 1.0 unchanged.
pub fn downgrade<A: Serialize, B: DeserializeOwned>(value: &A) -> wasmtime::Result<B> {
    Ok(serde_json::from_value(serde_json::to_value(value)?)?)
}

type Refusable<T> = wasmtime::Result<Result<T, types::PluginError>>;

impl Guest {
    pub fn describe<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<types::PluginInfo> {
        match self {
            Guest::V1_0(m) => upgrade(m.shoal_plugin_module().call_describe(store)?),
            Guest::V1_1(m) => m.shoal_plugin_module().call_describe(store),
        }
    }

    pub fn tag_templates<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Vec<types::TagTemplate>> {
        match self {
            Guest::V1_0(m) => upgrade(m.shoal_plugin_module().call_tag_templates(store)?),
            Guest::V1_1(m) => m.shoal_plugin_module().call_tag_templates(store),
        }
    }

    pub fn sop_templates<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Vec<types::SopTemplate>> {
        match self {
            Guest::V1_0(m) => upgrade(m.shoal_plugin_module().call_sop_templates(store)?),
            Guest::V1_1(m) => m.shoal_plugin_module().call_sop_templates(store),
        }
    }

    pub fn settle<T: Send>(
        &self,
        store: &mut Store<T>,
        request: &types::SettleRequest,
    ) -> Refusable<types::Settlement> {
        match self {
            Guest::V1_0(m) => {
                let request = calls_v1_0::settle_request(request);
                Ok(m.shoal_plugin_module()
                    .call_settle(store, &request)?
                    .map(calls_v1_0::settlement)
                    .map_err(calls_v1_0::plugin_error))
            }
            Guest::V1_1(m) => m.shoal_plugin_module().call_settle(store, request),
        }
    }

    pub fn evaluate_tags<T: Send>(
        &self,
        store: &mut Store<T>,
        profile: &types::CustomerProfile,
    ) -> Refusable<Vec<types::TagDecision>> {
        match self {
            Guest::V1_0(m) => {
                let profile = calls_v1_0::profile(profile);
                Ok(m.shoal_plugin_module()
                    .call_evaluate_tags(store, &profile)?
                    .map(calls_v1_0::decisions)
                    .map_err(calls_v1_0::plugin_error))
            }
            Guest::V1_1(m) => m.shoal_plugin_module().call_evaluate_tags(store, profile),
        }
    }

    /// Since 1.1; a 1.0 module has none.
    pub fn ticket_templates<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Vec<types::TicketTemplate>> {
        match self {
            Guest::V1_0(_) => Ok(Vec::new()),
            Guest::V1_1(m) => m.shoal_plugin_module().call_ticket_templates(store),
        }
    }

    /// Since 1.1; a 1.0 module refuses (`unsupported`).
    pub fn propose_ticket<T: Send>(
        &self,
        store: &mut Store<T>,
        request: &types::TicketRequest,
    ) -> Refusable<types::TicketProposal> {
        match self {
            Guest::V1_0(_) => Ok(Err(types::PluginError {
                code: "unsupported".into(),
                message: "a plugin ABI 1.0 module has no ticket templates".into(),
            })),
            Guest::V1_1(m) => m.shoal_plugin_module().call_propose_ticket(store, request),
        }
    }
}
