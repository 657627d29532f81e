//! Regional price tiers, read from the tenant's parameters as the host passes them: the
//! `region_tiers` table (region → tier; the host's `setRegionTier` feeds it) and the `tiers`
//! table (tier → price change in percent). Modules that price by region share this reading.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::{decimal_of, params};

/// The tier of a region: `region_tiers[region]`, else `tier-2`.
///
/// ```
/// shoal_sdk::params::set_for_tests(serde_json::json!({ "region_tiers": { "上海": "tier-1" } }));
/// assert_eq!(shoal_sdk::tiers::region_tier("上海"), "tier-1");
/// assert_eq!(shoal_sdk::tiers::region_tier("洛阳"), "tier-2");
/// ```
pub fn region_tier(region: &str) -> String {
    let tiers: BTreeMap<String, String> = params::get("region_tiers").unwrap_or_default();
    tiers
        .get(region)
        .cloned()
        .unwrap_or_else(|| "tier-2".into())
}

/// A tier's price change in percent: `tiers[tier]`, else the usual +10 (tier-1), 0 (tier-2)
/// and −5 (tier-3).
///
/// ```
/// shoal_sdk::params::set_for_tests(serde_json::json!({ "tiers": { "tier-1": 12.5 } }));
/// assert_eq!(shoal_sdk::tiers::percent("tier-1").to_string(), "12.5");
/// assert_eq!(shoal_sdk::tiers::percent("tier-3").to_string(), "-5");
/// ```
pub fn percent(tier: &str) -> Decimal {
    let tiers: BTreeMap<String, serde_json::Value> = params::get("tiers").unwrap_or_default();
    tiers.get(tier).and_then(decimal_of).unwrap_or(match tier {
        "tier-1" => Decimal::new(10, 0),
        "tier-3" => Decimal::new(-5, 0),
        _ => Decimal::ZERO,
    })
}
