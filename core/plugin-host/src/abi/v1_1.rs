//! Bindings for `shoal:plugin@1.1.0` (`schema/wit/v1.1.0`, frozen): 1.0 plus ticket
//! templates. The newest types, which the host's engines consume.

wasmtime::component::bindgen!({
    path: "../../schema/wit/v1.1.0",
    world: "industry-module",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});
