//! The tenant's parameters for this module (`[tenants.<id>.modules.<module>.params]` in the
//! host's config), read as typed values.
//!
//! ```
//! let markup: shoal_sdk::Decimal = shoal_sdk::params::get("tier1_markup").unwrap_or_default();
//! let cities: Vec<String> = shoal_sdk::params::get("tier1_cities").unwrap_or_default();
//! # let _ = (markup, cities);
//! ```
//!
//! In native unit tests (not compiled to wasm), set them with [`set_for_tests`].

use std::cell::RefCell;

use serde::de::DeserializeOwned;

use crate::bindings::shoal::plugin::host;

thread_local! {
    static TEST_PARAMS: RefCell<serde_json::Map<String, serde_json::Value>> = RefCell::default();
}

/// One parameter, as JSON text, if the tenant set it.
pub fn raw(name: &str) -> Option<String> {
    if cfg!(target_arch = "wasm32") {
        host::param(name)
    } else {
        TEST_PARAMS.with(|p| p.borrow().get(name).map(|v| v.to_string()))
    }
}

/// One parameter deserialized as `T`; `None` if absent or of another shape. Decimals may be
/// given as numbers or strings (`1.1` or `"1.1"`), at any depth (`{ hq = 1, store = 2.5 }`
/// reads as a map of [`Decimal`](crate::Decimal)).
pub fn get<T: DeserializeOwned>(name: &str) -> Option<T> {
    let value: serde_json::Value = serde_json::from_str(&raw(name)?).ok()?;
    serde_json::from_value(value.clone())
        .ok()
        .or_else(|| serde_json::from_value(numbers_as_strings(value)).ok())
}

/// `{"a": 1.1}` → `{"a": "1.1"}`: the exact text of every number, for decimal types.
fn numbers_as_strings(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_strings).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_strings(v)))
                .collect(),
        ),
        other => other,
    }
}

/// All parameters as a JSON object.
pub fn all() -> serde_json::Map<String, serde_json::Value> {
    let text = if cfg!(target_arch = "wasm32") {
        host::params()
    } else {
        TEST_PARAMS.with(|p| serde_json::Value::Object(p.borrow().clone()).to_string())
    };
    serde_json::from_str(&text).unwrap_or_default()
}

/// Sets the parameters seen by [`get`] in native unit tests (this thread only).
///
/// ```
/// shoal_sdk::params::set_for_tests(serde_json::json!({ "dormant_days": 60 }));
/// assert_eq!(shoal_sdk::params::get::<u32>("dormant_days"), Some(60));
/// ```
pub fn set_for_tests(params: serde_json::Value) {
    TEST_PARAMS.with(|p| *p.borrow_mut() = params.as_object().cloned().unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn decimals_read_from_numbers_or_strings_at_any_depth() {
        set_for_tests(
            serde_json::json!({ "weights": { "hq": 1, "store": 2.5 }, "markup": "1.10", "rate": 0.07 }),
        );
        let weights: BTreeMap<String, Decimal> = get("weights").unwrap();
        assert_eq!(weights["store"], Decimal::new(25, 1));
        assert_eq!(get::<Decimal>("markup"), Some(Decimal::new(110, 2)));
        assert_eq!(
            get::<Decimal>("rate"),
            Some(Decimal::new(7, 2)),
            "exactly 0.07, not a float"
        );
        assert_eq!(get::<u32>("missing"), None);
    }
}
