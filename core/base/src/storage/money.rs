//! Money is stored exactly, as an integer count of 1/10,000 of the currency unit
//! (`amount_units BIGINT`), so SQL can sum it on both backends without floats.

use rust_decimal::Decimal;

/// Decimal places kept for stored amounts.
pub const SCALE: u32 = 4;

/// Why an amount cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("has more than {SCALE} decimal places")]
    TooPrecise,
    #[error("is too large")]
    TooLarge,
}

/// `12.34` → `123400`. Refuses amounts that would lose precision or overflow.
pub fn to_units(amount: Decimal) -> Result<i64, MoneyError> {
    let normalized = amount.normalize();
    if normalized.scale() > SCALE {
        return Err(MoneyError::TooPrecise);
    }
    let scaled = normalized
        .checked_mul(Decimal::from(10_i64.pow(SCALE)))
        .ok_or(MoneyError::TooLarge)?;
    i64::try_from(scaled).map_err(|_| MoneyError::TooLarge)
}

/// `123400` → `12.3400`, rescaled to drop trailing zeros beyond two places.
pub fn from_units(units: i64) -> Decimal {
    let mut d = Decimal::new(units, SCALE).normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, units: Result<i64, MoneyError>) {
        let d: Decimal = input.parse().unwrap();
        assert_eq!(to_units(d), units, "{input}");
        if let Ok(u) = units {
            assert_eq!(from_units(u), d, "round trip of {input}");
        }
    }

    #[test]
    fn amounts_round_trip_exactly() {
        check("12.34", Ok(123_400));
        check("0.0001", Ok(1));
        check("-5.5", Ok(-55_000));
        check("199.9900", Ok(1_999_900));
    }

    #[test]
    fn lossy_amounts_are_refused() {
        check("0.00001", Err(MoneyError::TooPrecise));
        check("99999999999999999", Err(MoneyError::TooLarge));
    }

    #[test]
    fn whole_amounts_show_two_places() {
        assert_eq!(from_units(1_000_000).to_string(), "100.00");
        assert_eq!(from_units(1_234_500).to_string(), "123.45");
        assert_eq!(from_units(1_234_560).to_string(), "123.456");
    }
}
