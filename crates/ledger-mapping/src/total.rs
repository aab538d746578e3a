//! Emulation of how Sage totals a sales invoice / credit note body.

use crate::money::parse_decimal;
use crate::rules::{sage_line_amounts, sage_shipping_tax};
use rust_decimal::Decimal;
use serde_json::Value;

/// One line of a body as Sage will book it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SageLineFigures {
    /// The line's `description`.
    pub description: String,
    /// The line's `tax_rate_id` (empty when absent).
    pub tax_rate_id: String,
    /// Net amount Sage books.
    pub net: Decimal,
    /// VAT Sage books.
    pub tax: Decimal,
}

/// The net and VAT Sage will book for each line of a sales invoice or credit note body
/// (the object *inside* the root), in order: each line (`invoice_lines` or
/// `credit_note_lines`) through [`sage_line_amounts`], honouring
/// `unit_price_includes_tax`; header shipping, if the body has any, as a last entry
/// described "shipping (header)" with the VAT Sage recomputes for it.
///
/// `rates` maps a Sage tax rate id to its percentage (see
/// [`crate::MerchantSettings::rates`]). A line whose rate is unknown keeps its sent
/// `tax_amount`; unknown shipping rates count as 0 %, so pass a complete map when
/// checking a body with header shipping. A missing `quantity` counts as 1 and missing
/// amounts as 0.
pub fn sage_line_figures(
    body: &Value,
    rates: &impl Fn(&str) -> Option<Decimal>,
) -> Vec<SageLineFigures> {
    let amount = |v: Option<&Value>| v.and_then(parse_decimal).unwrap_or(Decimal::ZERO);
    let mut out = Vec::new();
    let lines = body
        .get("invoice_lines")
        .or_else(|| body.get("credit_note_lines"))
        .and_then(Value::as_array);
    for line in lines.into_iter().flatten() {
        let quantity = line
            .get("quantity")
            .and_then(parse_decimal)
            .unwrap_or(Decimal::ONE);
        let rate_id = line.get("tax_rate_id").and_then(Value::as_str);
        let rate_is_zero = rate_id.and_then(rates).is_some_and(|p| p.is_zero());
        let includes_tax = line
            .get("unit_price_includes_tax")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (net, tax) = sage_line_amounts(
            quantity,
            amount(line.get("unit_price")),
            amount(line.get("discount_amount")),
            amount(line.get("tax_amount")),
            rate_is_zero,
            includes_tax,
        );
        out.push(SageLineFigures {
            description: line
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tax_rate_id: rate_id.unwrap_or_default().to_owned(),
            net,
            tax,
        });
    }
    let shipping_net = amount(body.get("shipping_net_amount"));
    if !shipping_net.is_zero() {
        let rate_id = body.get("shipping_tax_rate_id").and_then(Value::as_str);
        let pct = rate_id.and_then(rates).unwrap_or(Decimal::ZERO);
        out.push(SageLineFigures {
            description: "shipping (header)".to_owned(),
            tax_rate_id: rate_id.unwrap_or_default().to_owned(),
            net: crate::money::round2(shipping_net),
            tax: sage_shipping_tax(shipping_net, pct),
        });
    }
    out
}

/// The `total_amount` Sage will compute for a sales invoice or credit note body (the
/// object *inside* the `sales_invoice` / `sales_credit_note` root): the sum of
/// [`sage_line_figures`]' nets and VAT. Each line is
/// `round2(quantity × round2(unit_price)) − round2(discount_amount)` plus
/// `round2(tax_amount)` (or, with `unit_price_includes_tax`, that extended amount is the
/// line's total), where a rate whose percentage is zero contributes no tax (Sage infers
/// 0.00); header shipping adds `shipping_net_amount` and
/// `round2(shipping_net_amount × rate / 100)` because Sage recomputes shipping VAT itself.
///
/// Services and tests use this to check the totals invariant: for every plan the
/// mappers return, `sage_document_total(&plan.body, ..) == plan.expected_total`.
pub fn sage_document_total(body: &Value, rates: &impl Fn(&str) -> Option<Decimal>) -> Decimal {
    let total: Decimal = sage_line_figures(body, rates)
        .iter()
        .map(|l| l.net + l.tax)
        .sum();
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

    #[test]
    fn tax_inclusive_lines_total_to_the_gross() {
        let s = MerchantSettings::default();
        // 4 × 26.24 = 104.96 − 10.50 = 94.46 gross; VAT 15.74; net 94.46 − 15.74 = 78.72.
        let body = json!({"invoice_lines": [
            {"description": "Mug", "quantity": "4.0", "unit_price": "26.24",
             "unit_price_includes_tax": true, "discount_amount": "10.50",
             "tax_rate_id": "GB_STANDARD", "tax_amount": "15.74"}
        ]});
        let lines = sage_line_figures(&body, &s.rates());
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].net, lines[0].tax), (dec!(78.72), dec!(15.74)));
        assert_eq!(lines[0].tax_rate_id, "GB_STANDARD");
        assert_eq!(sage_document_total(&body, &s.rates()), dec!(94.46));
    }
}
