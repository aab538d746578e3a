//! Emulation of how Sage totals a sales invoice / credit note body.

use crate::money::parse_decimal;
use crate::rules::{sage_line_amounts, sage_shipping_tax};
use rust_decimal::Decimal;
use serde_json::Value;

/// The `total_amount` Sage will compute for a sales invoice or credit note body (the
/// object *inside* the `sales_invoice` / `sales_credit_note` root).
///
/// Emulates Sage's rules for the fields this crate emits: each line (`invoice_lines` or
/// `credit_note_lines`) is `round2(quantity × round2(unit_price)) − round2(discount_amount)`
/// plus `round2(tax_amount)`, where a rate whose percentage is zero contributes no tax
/// (Sage infers 0.00); header shipping adds `shipping_net_amount` and
/// `round2(shipping_net_amount × rate / 100)` because Sage recomputes shipping VAT itself.
/// A missing `quantity` counts as 1 and missing amounts as 0.
///
/// `rates` maps a Sage tax rate id to its percentage (see
/// [`crate::MerchantSettings::rates`]). A line whose rate is unknown keeps its sent
/// `tax_amount`; unknown shipping rates count as 0 %, so pass a complete map when
/// checking a body with shipping.
///
/// Services and tests use this to check the totals invariant: for every plan the
/// mappers return, `sage_document_total(&plan.body, ..) == plan.expected_total`.
pub fn sage_document_total(body: &Value, rates: &impl Fn(&str) -> Option<Decimal>) -> Decimal {
    let amount = |v: Option<&Value>| v.and_then(parse_decimal).unwrap_or(Decimal::ZERO);
    let mut total = Decimal::ZERO;
    let lines = body
        .get("invoice_lines")
        .or_else(|| body.get("credit_note_lines"))
        .and_then(Value::as_array);
    for line in lines.into_iter().flatten() {
        let quantity = line
            .get("quantity")
            .and_then(parse_decimal)
            .unwrap_or(Decimal::ONE);
        let rate_is_zero = line
            .get("tax_rate_id")
            .and_then(Value::as_str)
            .and_then(rates)
            .is_some_and(|p| p.is_zero());
        let (net, tax) = sage_line_amounts(
            quantity,
            amount(line.get("unit_price")),
            amount(line.get("discount_amount")),
            amount(line.get("tax_amount")),
            rate_is_zero,
        );
        total += net + tax;
    }
    let shipping_net = amount(body.get("shipping_net_amount"));
    if !shipping_net.is_zero() {
        let pct = body
            .get("shipping_tax_rate_id")
            .and_then(Value::as_str)
            .and_then(rates)
            .unwrap_or(Decimal::ZERO);
        total += crate::money::round2(shipping_net) + sage_shipping_tax(shipping_net, pct);
    }
    crate::money::round2(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MerchantSettings;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn totals_lines_and_shipping_like_sage() {
        let s = MerchantSettings::default();
        let body = json!({
            "invoice_lines": [
                {"quantity": "3.0", "unit_price": "41.63", "discount_amount": "10.00",
                 "tax_rate_id": "GB_STANDARD", "tax_amount": "22.98"},
                {"quantity": "1.0", "unit_price": "5.00", "tax_rate_id": "GB_ZERO", "tax_amount": "0.00"},
                // Zero rate: Sage ignores a stray tax_amount.
                {"unit_price": "1.00", "tax_rate_id": "GB_NO_TAX", "tax_amount": "9.99"}
            ],
            "shipping_net_amount": "4.17",
            "shipping_tax_rate_id": "GB_STANDARD"
        });
        // 124.89 - 10 + 22.98 + 5 + 1 + 4.17 + 0.83
        assert_eq!(sage_document_total(&body, &s.rates()), dec!(148.87));
    }

    #[test]
    fn credit_note_lines_and_numbers_are_read_too() {
        let s = MerchantSettings::default();
        let body: Value = serde_json::from_str(
            r#"{"credit_note_lines":[{"quantity":2,"unit_price":10.005,"tax_rate_id":"GB_LOWER","tax_amount":1}]}"#,
        )
        .unwrap();
        // unit price rounds to 10.01 first: 20.02 + 1.00
        assert_eq!(sage_document_total(&body, &s.rates()), dec!(21.02));
        assert_eq!(sage_document_total(&json!({}), &s.rates()), dec!(0));
    }
}
