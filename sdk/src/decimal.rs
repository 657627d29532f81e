//! Exact money: decimals cross the boundary as strings and are computed with [`Decimal`].

use rust_decimal::{Decimal, RoundingStrategy};

use crate::{Money, PluginError};

/// A decimal from a JSON value written either way — `"12.5"` or `12.5` — as tenants write
/// parameters in TOML and integrators write attributes in JSON (a float is read from its
/// shortest decimal text, so `0.1` is exactly 0.1). `None` for anything else.
///
/// ```
/// use serde_json::json;
/// assert_eq!(shoal_sdk::decimal_of(&json!(0.1)).unwrap().to_string(), "0.1");
/// assert_eq!(shoal_sdk::decimal_of(&json!("-5")).unwrap().to_string(), "-5");
/// assert!(shoal_sdk::decimal_of(&json!(true)).is_none());
/// ```
pub fn decimal_of(value: &serde_json::Value) -> Option<Decimal> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.to_string().parse().ok().or_else(|| {
            // exponent notation (1e3)
            n.as_f64()
                .and_then(|f| Decimal::from_str_exact(&format!("{f}")).ok())
        }),
        _ => None,
    }
}

/// Parses a decimal string from the host, naming the field on failure.
///
/// ```
/// let q = shoal_sdk::decimal("quantity", "1.5").unwrap();
/// assert_eq!(q.to_string(), "1.5");
/// assert!(shoal_sdk::decimal("quantity", "1,5").is_err());
/// ```
pub fn decimal(field: &str, text: &str) -> Result<Decimal, PluginError> {
    text.trim().parse().map_err(|_| {
        PluginError::new(
            "bad-decimal",
            &format!("{field}: `{text}` is not a decimal number"),
        )
    })
}

/// A [`Money`] value, rounded half-even to two decimal places.
///
/// ```
/// let m = shoal_sdk::money("199.905".parse().unwrap(), "CNY");
/// assert_eq!(m.amount, "199.90");
/// ```
pub fn money(amount: Decimal, currency: &str) -> Money {
    let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    Money {
        amount: format!("{rounded:.2}"),
        currency: currency.to_owned(),
    }
}

/// Splits `total` by `weights` into amounts of `places` decimal places that add up to
/// `total` exactly (largest-remainder method; ties go to the earlier weight).
///
/// ```
/// use shoal_sdk::{Decimal, split_exactly};
/// let parts = split_exactly(Decimal::new(10000, 2), &[Decimal::ONE; 3], 2);
/// assert_eq!(parts.iter().map(|d| d.to_string()).collect::<Vec<_>>(), ["33.34", "33.33", "33.33"]);
/// ```
pub fn split_exactly(total: Decimal, weights: &[Decimal], places: u32) -> Vec<Decimal> {
    let sum: Decimal = weights.iter().copied().sum();
    if weights.is_empty() || sum.is_zero() {
        return vec![Decimal::ZERO; weights.len()];
    }
    let unit = Decimal::new(1, places);
    let mut parts: Vec<Decimal> = weights
        .iter()
        .map(|w| (total * *w / sum).round_dp_with_strategy(places, RoundingStrategy::ToZero))
        .collect();
    let mut remainders: Vec<(usize, Decimal)> = weights
        .iter()
        .zip(&parts)
        .enumerate()
        .map(|(i, (w, p))| (i, total * *w / sum - *p))
        .collect();
    remainders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut left = total - parts.iter().copied().sum::<Decimal>();
    for (i, _) in remainders.iter().cycle() {
        if left.abs() < unit {
            break;
        }
        let step = if left.is_sign_negative() { -unit } else { unit };
        parts[*i] += step;
        left -= step;
    }
    parts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the total and the weights, the parts add up to the total exactly and
        /// each is within one cent of its exact share.
        #[test]
        fn splits_add_up_exactly(cents in 0i64..10_000_000_000, weights in prop::collection::vec(0u32..1000, 1..10)) {
            let total = Decimal::new(cents, 2);
            let weights: Vec<Decimal> = weights.into_iter().map(Decimal::from).collect();
            let parts = split_exactly(total, &weights, 2);
            let sum: Decimal = weights.iter().copied().sum();
            if sum.is_zero() {
                prop_assert!(parts.iter().all(|p| p.is_zero()));
            } else {
                prop_assert_eq!(parts.iter().copied().sum::<Decimal>(), total);
                for (part, weight) in parts.iter().zip(&weights) {
                    let exact = total * *weight / sum;
                    prop_assert!((*part - exact).abs() < Decimal::new(1, 2), "{} vs {}", part, exact);
                }
            }
        }
    }
}
