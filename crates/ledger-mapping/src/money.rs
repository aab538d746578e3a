//! Decimal helpers: Sage's rounding, the exchange-rate reading, JSON renderings.
//!
//! Money never touches `f64` anywhere in this crate: Magento amounts arrive as
//! `rust_decimal::Decimal` and leave as JSON strings.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::str::FromStr;

/// Rounds to 2 decimal places, halves away from zero, and fixes the scale at 2.
///
/// Sage Accounting keeps 2 dp only and rounds each line before totalling (Sage staff
/// describe 41.625 + 8.325 becoming 49.96, i.e. 41.63 + 8.33: half away from zero).
pub fn round2(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    // -0.004 rounds to a negative zero; Sage would print it as "-0.00".
    if r.is_zero() {
        r.set_sign_positive(true);
    }
    r
}

/// Rounds to 6 decimal places, halves away from zero, without trailing zeros.
pub fn round6(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// Sage's `exchange_rate` for a document whose Magento `base_to_order_rate` is given.
///
/// **This is the one place that states the product's reading of Sage's field.**
/// Magento's `base_to_order_rate` converts base → order currency
/// (`order amount = base amount × base_to_order_rate`). Ledger reads Sage's
/// `exchange_rate` as *base-currency units per 1 unit of the document currency*, so that
/// Sage derives `base amount = round2(document amount × exchange_rate)`; the value sent is
/// therefore `1 / base_to_order_rate`, rounded to 6 dp (the precision accounting
/// packages keep for rates).
///
/// Sage's public documentation does not confirm the direction (the swagger only says
/// "the exchange rate for the invoice"; Sage 50 uses the opposite convention). The
/// reading follows the connector evidence collected in the project's Sage notes, and the
/// project's Sage sandbox implements exactly the same reading, so if a trial business
/// shows otherwise this function and the sandbox's base-amount function are the two
/// places to change.
///
/// A zero or negative rate has no meaning; the mappers reject it before calling this
/// (as `MappingError::Invalid`), and this function returns zero for it rather than
/// panicking, so a direct caller's mistake is visible instead of fatal.
pub fn exchange_rate(base_to_order_rate: Decimal) -> Decimal {
    if base_to_order_rate <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    round6(Decimal::ONE / base_to_order_rate)
}

/// JSON for a money amount: a string with exactly 2 decimals (Sage recommends strings so
/// no float formatting can creep in).
pub fn money_json(d: Decimal) -> Value {
    Value::String(round2(d).to_string())
}

/// JSON for a non-money decimal (quantity, exchange rate): a string without trailing
/// zeros, keeping one decimal for whole numbers (`"3.0"`, the form Sage itself returns).
pub fn decimal_json(d: Decimal) -> Value {
    let mut n = d.normalize();
    if n.scale() == 0 {
        n.rescale(1);
    }
    Value::String(n.to_string())
}

/// Reads a decimal back from a JSON string or number (the forms Sage accepts).
/// Used by [`crate::sage_document_total`] to emulate Sage on a body.
pub fn parse_decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let t = text.trim();
    Decimal::from_str(t)
        .ok()
        .or_else(|| Decimal::from_scientific(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn round2_is_half_away_from_zero_with_scale_two() {
        let table = [
            (dec!(41.625), "41.63"),
            (dec!(8.325), "8.33"),
            (dec!(-0.005), "-0.01"),
            (dec!(1.004), "1.00"),
            (dec!(3), "3.00"),
            (dec!(124.875), "124.88"),
        ];
        for (input, want) in table {
            assert_eq!(round2(input).to_string(), want, "round2({input})");
        }
    }

    #[test]
    fn exchange_rate_is_base_units_per_document_unit() {
        // EUR invoice on a GBP business, 1 GBP = 1.17 EUR in Magento:
        // 1 EUR = 0.854701 GBP.
        assert_eq!(exchange_rate(dec!(1.17)), dec!(0.854701));
        assert_eq!(exchange_rate(dec!(1)), dec!(1));
        assert_eq!(exchange_rate(dec!(0.8)), dec!(1.25));
        assert_eq!(exchange_rate(dec!(3)), dec!(0.333333));
        // 1/1.5 = 0.6666666… rounds up at the 6th place.
        assert_eq!(exchange_rate(dec!(1.5)), dec!(0.666667));
        // A base amount derived the way Sage (and the sandbox) derive it:
        assert_eq!(
            round2(dec!(100.00) * exchange_rate(dec!(1.17))),
            dec!(85.47)
        );
    }

    #[test]
    fn exchange_rate_of_nonsense_is_zero_not_a_panic() {
        assert_eq!(exchange_rate(Decimal::ZERO), Decimal::ZERO);
        assert_eq!(exchange_rate(dec!(-2)), Decimal::ZERO);
    }

    #[test]
    fn json_renderings_are_strings() {
        assert_eq!(money_json(dec!(5)), Value::String("5.00".into()));
        assert_eq!(money_json(dec!(-0.004)), Value::String("0.00".into()));
        assert_eq!(decimal_json(dec!(2.0000)), Value::String("2.0".into()));
        assert_eq!(
            decimal_json(dec!(0.854701)),
            Value::String("0.854701".into())
        );
        assert_eq!(decimal_json(dec!(1.5)), Value::String("1.5".into()));
    }

    #[test]
    fn parse_decimal_reads_strings_and_numbers() {
        assert_eq!(
            parse_decimal(&Value::String("9.99".into())),
            Some(dec!(9.99))
        );
        let n: Value = serde_json::from_str("0.1").unwrap();
        assert_eq!(parse_decimal(&n), Some(dec!(0.1)));
        assert_eq!(parse_decimal(&Value::Bool(true)), None);
        assert_eq!(parse_decimal(&Value::String("x".into())), None);
    }
}
