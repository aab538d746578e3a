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

/// Sage's `exchange_rate` for a Magento `base_to_order_rate`, at full precision.
///
/// **This is the one place that states the product's reading of Sage's field.**
/// Magento's `base_to_order_rate` converts base → order currency
/// (`order amount = base amount × base_to_order_rate`). Ledger reads Sage's
/// `exchange_rate` as *base-currency units per 1 unit of the document currency*, so that
/// Sage derives `base amount = round2(document amount × exchange_rate)`; the rate is
/// therefore `1 / base_to_order_rate`. How many digits are sent is decided by
/// [`document_exchange_rate`].
///
/// Sage's public documentation does not confirm the direction (the swagger only says
/// "the exchange rate for the invoice"; Sage 50 uses the opposite convention). The
/// reading follows the connector evidence collected in the project's Sage notes
/// (decision 0005), and the project's Sage sandbox implements exactly the same reading
/// (`sage_sandbox::money::base_amount`), so if a trial business shows otherwise this
/// function and the sandbox's base-amount function are the two places to change.
///
/// A zero or negative rate has no meaning; the mappers reject it before calling this
/// (as `MappingError::Invalid`), and this function returns zero for it rather than
/// panicking, so a direct caller's mistake is visible instead of fatal.
pub fn exchange_rate(base_to_order_rate: Decimal) -> Decimal {
    if base_to_order_rate <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (Decimal::ONE / base_to_order_rate).normalize()
}

/// Most significant digits an `exchange_rate` is sent with: what a JSON number read as
/// an IEEE double (the swagger's `format: double`) keeps exactly.
pub const EXCHANGE_RATE_MAX_DIGITS: u32 = 15;

/// Most decimals an `exchange_rate` is sent with: what the documents journal keeps
/// (`NUMERIC(20, 10)`), so the rate recorded is the rate sent.
pub const EXCHANGE_RATE_MAX_DECIMALS: u32 = 10;

/// The `exchange_rate` to send so that Sage's base total equals Magento's.
///
/// Sage derives `base_currency_total_amount = round2(total × exchange_rate)` (see
/// [`exchange_rate`] for the reading). Six decimals are not enough: a ¥1,912,345 sale at
/// `base_to_order_rate` 191.2345 is £10,000.00 in Magento but 1,912,345 × 0.005229 =
/// £9,999.65. The rate sent is Magento's own rate `1 / base_to_order_rate` rounded to the
/// fewest decimals (at least 6, at most [`EXCHANGE_RATE_MAX_DECIMALS`], and at most
/// [`EXCHANGE_RATE_MAX_DIGITS`] significant digits)
/// for which `round2(total × rate) == base_total`. When Magento's base total is not
/// exactly its grand total at its own rate (Magento rounds base rows separately), the
/// rate implied by the two totals, `base_total / total`, is used the same way: Sage
/// cannot take a base-only rounding line (its line base amounts are always derived from
/// the header rate), so the rate itself carries the sub-cent difference. The caller
/// checks that the two readings are within a cent per line of each other. A zero total
/// gets Magento's rate to 6 dp. Returns zero for a non-positive `base_to_order_rate`.
pub fn document_exchange_rate(
    total: Decimal,
    base_total: Decimal,
    base_to_order_rate: Decimal,
) -> Decimal {
    let magento = exchange_rate(base_to_order_rate);
    if magento.is_zero() {
        return Decimal::ZERO;
    }
    let target = round2(base_total);
    let fits = |r: Decimal| round2(total * r) == target;
    let mut sources = vec![magento];
    if !total.is_zero() && base_total > Decimal::ZERO {
        sources.push(base_total / total);
    }
    for source in sources {
        for dp in 6..=EXCHANGE_RATE_MAX_DECIMALS {
            let r = source
                .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
                .normalize();
            if significant_digits(r) > EXCHANGE_RATE_MAX_DIGITS {
                break;
            }
            if r > Decimal::ZERO && fits(r) {
                return r;
            }
        }
    }
    round6(magento)
}

/// Number of significant digits of a normalized decimal.
fn significant_digits(d: Decimal) -> u32 {
    let m = d.mantissa().unsigned_abs();
    if m == 0 {
        return 0;
    }
    m.to_string().len() as u32
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
        // The reading (decision 0005): Sage's exchange_rate is base units per document
        // unit, 1 / base_to_order_rate. EUR invoice on a GBP business, 1 GBP = 1.17 EUR
        // in Magento: 1 EUR = 0.8547008547… GBP, so 100.00 EUR is 85.47 GBP (not 117.00,
        // which the opposite reading would give).
        assert_eq!(round6(exchange_rate(dec!(1.17))), dec!(0.854701));
        assert_eq!(exchange_rate(dec!(1)), dec!(1));
        assert_eq!(exchange_rate(dec!(0.8)), dec!(1.25));
        assert_eq!(round6(exchange_rate(dec!(1.5))), dec!(0.666667));
        assert_eq!(
            round2(dec!(100.00) * exchange_rate(dec!(1.17))),
            dec!(85.47)
        );
    }

    #[test]
    fn document_rate_keeps_enough_digits_for_the_base_total() {
        // The yen case: ¥1,912,345 at base_to_order_rate 191.2345 is £10,000.00
        // (1,912,345 / 191.2345 = 10,000 exactly; 1 / 191.2345 = 0.00522918197…).
        // 6 dp: 1,912,345 × 0.005229 = 9,999.652005 → £9,999.65;
        // 7 dp: × 0.0052292 = 10,000.034474 → £10,000.03;
        // 8 dp: × 0.00522918 = 9,999.9962271 → £10,000.00.
        assert_eq!(round2(dec!(1912345) * dec!(0.005229)), dec!(9999.65));
        let r = document_exchange_rate(dec!(1912345), dec!(10000.00), dec!(191.2345));
        assert_eq!(r, dec!(0.00522918));
        assert_eq!(round2(dec!(1912345) * r), dec!(10000.00));
        // 6 dp is kept when it already reproduces the base total: 100 EUR at 1.17.
        assert_eq!(
            document_exchange_rate(dec!(100.00), dec!(85.47), dec!(1.17)),
            dec!(0.854701)
        );
        // Magento's base total one cent off its own rate (base rows rounded separately):
        // 100.00 EUR at 1.17 is 85.47 by rate, Magento says 85.48; the implied rate
        // 85.48 / 100 = 0.8548 carries it.
        let r = document_exchange_rate(dec!(100.00), dec!(85.48), dec!(1.17));
        assert_eq!(round2(dec!(100.00) * r), dec!(85.48));
        assert_eq!(r, dec!(0.8548));
        // Never more than 10 decimals; still exact for large totals.
        let r = document_exchange_rate(dec!(9876543.21), dec!(1234567.89), dec!(8.0000000729));
        assert!(r.scale() <= EXCHANGE_RATE_MAX_DECIMALS, "{r}");
        assert_eq!(round2(dec!(9876543.21) * r), dec!(1234567.89));
        // Nothing to convert: Magento's rate to 6 dp.
        assert_eq!(
            document_exchange_rate(dec!(0), dec!(0), dec!(3)),
            dec!(0.333333)
        );
        assert_eq!(document_exchange_rate(dec!(5), dec!(1), dec!(0)), dec!(0));
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
