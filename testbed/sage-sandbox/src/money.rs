//! Decimal parsing, Sage's 2-dp rounding, and the exchange-rate reading.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::str::FromStr;

/// Parses a decimal from a JSON number or a string holding a decimal.
///
/// Sage recommends sending amounts as strings; both forms must be accepted.
/// `serde_json` runs with `arbitrary_precision`, so a number's text is exact
/// and never passes through `f64`.
pub fn parse_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => parse_decimal_str(&n.to_string()),
        Value::String(s) => parse_decimal_str(s),
        _ => None,
    }
}

/// Parses decimal text, accepting exponent notation as JSON numbers may use it.
pub fn parse_decimal_str(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.is_empty() || t != text {
        return None;
    }
    // Reject forms `Decimal::from_str` tolerates but JSON users would not send.
    if t.contains('_') || t.starts_with('+') {
        return None;
    }
    Decimal::from_str(t)
        .ok()
        .or_else(|| Decimal::from_scientific(t).ok())
}

/// Rounds to 2 decimal places, halves away from zero.
///
/// Sage staff describe 41.625 + 8.325 becoming 49.96 (41.63 + 8.33), which is
/// half-away-from-zero on each line before totalling.
pub fn round2(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

/// Converts an amount in the document currency into the business's base currency.
///
/// This is the product's documented *reading* of Sage's `exchange_rate`, not a
/// fact confirmed by Sage's public docs: `exchange_rate` is taken as the number
/// of base-currency units per 1 unit of the document currency, so
/// `base_amount = round2(amount × exchange_rate)`. A 100.00 EUR invoice with
/// `exchange_rate` 0.85 on a GBP business has a base total of 85.00 GBP.
/// Every base-currency figure in the sandbox goes through this one function so
/// that the reading can be changed in a single place if a trial business shows
/// otherwise.
pub fn base_amount(amount: Decimal, exchange_rate: Decimal) -> Decimal {
    round2(amount * exchange_rate)
}

/// The inverse rate Sage reports next to `exchange_rate`, kept to 6 dp.
pub fn inverse_rate(exchange_rate: Decimal) -> Decimal {
    if exchange_rate.is_zero() {
        return Decimal::ZERO;
    }
    (Decimal::ONE / exchange_rate)
        .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// JSON for a money amount: a string with exactly 2 decimals, as Sage returns
/// decimals as strings.
pub fn money_json(d: Decimal) -> Value {
    Value::String(round2(d).to_string())
}

/// JSON for a non-money decimal (quantities, rates): a string without
/// trailing zeros beyond one decimal.
pub fn decimal_json(d: Decimal) -> Value {
    let mut n = d.normalize();
    if n.scale() == 0 {
        n.rescale(1);
    }
    Value::String(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parses_numbers_and_strings_exactly() {
        assert_eq!(parse_decimal(&serde_json::json!("9.99")), Some(dec!(9.99)));
        let v: Value = serde_json::from_str("0.1").unwrap();
        assert_eq!(parse_decimal(&v), Some(dec!(0.1)));
        let v: Value = serde_json::from_str("1e2").unwrap();
        assert_eq!(parse_decimal(&v), Some(dec!(100)));
        assert_eq!(parse_decimal(&serde_json::json!("abc")), None);
        assert_eq!(parse_decimal(&serde_json::json!(" 1.0")), None);
        assert_eq!(parse_decimal(&serde_json::json!(true)), None);
        assert_eq!(parse_decimal(&serde_json::json!("")), None);
    }

    #[test]
    fn round2_is_half_away_from_zero() {
        assert_eq!(round2(dec!(41.625)), dec!(41.63));
        assert_eq!(round2(dec!(8.325)), dec!(8.33));
        assert_eq!(round2(dec!(-0.005)), dec!(-0.01));
        assert_eq!(round2(dec!(1.004)), dec!(1.00));
        assert_eq!(round2(dec!(3)).to_string(), "3.00");
    }

    #[test]
    fn base_amount_reads_rate_as_base_per_document_unit() {
        // 100 EUR at 0.85 GBP per EUR is 85 GBP, not 117.65.
        assert_eq!(base_amount(dec!(100.00), dec!(0.85)), dec!(85.00));
        assert_eq!(base_amount(dec!(10.01), dec!(0.8547008547)), dec!(8.56));
        assert_eq!(base_amount(dec!(12.34), Decimal::ONE), dec!(12.34));
    }

    #[test]
    fn inverse_rate_is_six_dp() {
        assert_eq!(inverse_rate(dec!(0.8)), dec!(1.25));
        assert_eq!(inverse_rate(dec!(3)), dec!(0.333333));
    }

    #[test]
    fn json_renderings() {
        assert_eq!(money_json(dec!(5)), serde_json::json!("5.00"));
        assert_eq!(decimal_json(dec!(2.000)), serde_json::json!("2.0"));
        assert_eq!(decimal_json(dec!(0.8547)), serde_json::json!("0.8547"));
    }
}
