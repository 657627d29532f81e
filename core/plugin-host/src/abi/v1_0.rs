//! Bindings for `shoal:plugin@1.0.0` (`schema/wit/v1.0.0`, frozen).

wasmtime::component::bindgen!({
    path: "../../schema/wit/v1.0.0",
    world: "industry-module",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});
