//! Sage quirks, one named rule each.
//!
//! Every function here encodes one behaviour of Sage Business Cloud Accounting v3.1 that
//! a naive mapping gets wrong. The quirk numbers refer to §6 of the project's Sage notes;
//! each rule has its own test below so a change of Sage's behaviour (or of our reading of
//! it) shows up as one failing, named test.

use crate::money::round2;
use crate::settings::{GoodsServices, GoodsServicesPolicy};
use crate::text::{clean_text, fit_text, Fitted};
use rust_decimal::Decimal;

/// Sage's maximum length of a sales invoice / credit note `reference` (quirk 5).
pub const DOCUMENT_REFERENCE_MAX: usize = 25;
/// Sage's maximum length of a contact payment `reference` (quirk 5; 25 unconditionally).
pub const PAYMENT_REFERENCE_MAX: usize = 25;
/// Sage's maximum length of a contact `reference` (quirk 4).
pub const CONTACT_REFERENCE_MAX: usize = 10;
/// Sage's maximum length of a contact `name`.
pub const CONTACT_NAME_MAX: usize = 100;
/// Sage's maximum length of address lines, city and region (quirk 5).
pub const ADDRESS_LINE_MAX: usize = 50;
/// Sage's maximum length of a postal code (quirk 5).
pub const POSTAL_CODE_MAX: usize = 10;
/// Sage's maximum length of a document's internal `notes`.
pub const DOCUMENT_NOTES_MAX: usize = 2000;
/// Sage's maximum length of a contact's `notes`.
pub const CONTACT_NOTES_MAX: usize = 4000;
/// Maximum length used for line descriptions. The swagger states no limit for line
/// descriptions; 255 is Sage's limit for product/service descriptions, which a line
/// inherits when it is later linked to a product, so it is the safe common cap.
pub const LINE_DESCRIPTION_MAX: usize = 255;
/// Sage's maximum length of a contact person's name, telephone and mobile.
pub const PERSON_FIELD_MAX: usize = 50;
/// Sage's maximum length of a contact person's e-mail.
pub const EMAIL_MAX: usize = 100;
/// Sage's maximum length of a product/service `item_code`.
pub const ITEM_CODE_MAX: usize = 255;
/// Sage's maximum length of a product/service description.
pub const PRODUCT_DESCRIPTION_MAX: usize = 255;

/// Cuts `s` to at most `max` characters (not bytes: Sage counts characters, and cutting
/// inside a UTF-8 sequence would corrupt the text). Returns whether anything was cut.
pub fn truncate_chars(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((byte, _)) => (s[..byte].to_owned(), true),
        None => (s.to_owned(), false),
    }
}

/// Quirk 5: a document reference must fit 25 characters.
///
/// The reference is cleaned first like every text field ([`clean_text`]: entities
/// decoded, control characters and whitespace runs collapsed, trimmed).
///
/// Magento increment ids can be up to 50 characters (custom prefixes). When one is too
/// long, the *tail* is kept because that is where Magento's sequence number lives and
/// therefore what makes the reference unique and searchable; a leading `~` marks the cut
/// so nobody mistakes it for the full number. Deterministic, so a retry produces the
/// same reference.
pub fn fit_reference(reference: &str, max: usize) -> String {
    let reference = clean_text(reference);
    let reference = reference.as_str();
    let len = reference.chars().count();
    if len <= max {
        return reference.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let tail: String = reference.chars().skip(len - (max - 1)).collect();
    format!("~{tail}")
}

/// Quirk 5: a credit note's reference names both the credit memo and the invoice it
/// refunds ("CM/INV"), in at most 25 characters.
///
/// The credit memo number gets priority (it identifies the Sage document); the invoice
/// number is shortened from the left (keeping its sequence digits) into what is left.
/// If even the credit memo number alone is too long, it is fitted with
/// [`fit_reference`] and the invoice number is left to the notes.
pub fn credit_note_reference(credit_memo: &str, invoice: Option<&str>) -> String {
    let cm = clean_text(credit_memo);
    let cm = cm.as_str();
    let inv = invoice.map(clean_text).unwrap_or_default();
    if inv.is_empty() {
        return fit_reference(cm, DOCUMENT_REFERENCE_MAX);
    }
    let cm_len = cm.chars().count();
    // Room for the invoice part after "cm/". Keep at least 4 characters of the invoice
    // number, otherwise it is noise rather than a reference.
    let room = DOCUMENT_REFERENCE_MAX.saturating_sub(cm_len + 1);
    if room < 4 {
        return fit_reference(cm, DOCUMENT_REFERENCE_MAX);
    }
    format!("{cm}/{}", fit_reference(&inv, room))
}

/// Quirk 1: every line carries an explicit `tax_amount`, rounded to 2 dp.
///
/// v3.1 requires `tax_amount` on lines whose rate is not a zero/exempt/no-tax type (it
/// used to default to 0, silently dropping VAT). Sending it on every line, zero lines
/// included, means no line ever depends on which rates Sage classes as "zero".
pub fn line_tax_amount(magento_tax: Option<Decimal>) -> Decimal {
    round2(magento_tax.unwrap_or(Decimal::ZERO))
}

/// Quirk 2: how Sage totals one line: `net = round2(qty × round2(unit_price)) −
/// round2(discount)`, `tax = round2(tax_amount)` (zero for a zero-percentage rate,
/// which Sage infers as 0.00 whatever is sent). Returns `(net, tax)`.
pub fn sage_line_amounts(
    quantity: Decimal,
    unit_price: Decimal,
    discount: Decimal,
    tax_amount: Decimal,
    rate_is_zero: bool,
) -> (Decimal, Decimal) {
    let net = round2(quantity * round2(unit_price)) - round2(discount);
    let tax = if rate_is_zero {
        Decimal::ZERO
    } else {
        round2(tax_amount)
    };
    (net, tax)
}

/// Quirk 2: the 2-dp unit price to send for a Magento line.
///
/// Magento keeps prices to 4 dp (41.625 is common for a 49.95 tax-inclusive price) but
/// Sage only keeps 2. Of the candidates `round2(price)` and `round2(row_total / qty)`,
/// the one whose `round2(qty × unit)` comes closest to Magento's row total is chosen
/// (price first on a tie), which keeps the rounding line away whenever a 2-dp unit price
/// can reproduce the row. What cannot be reproduced is left to [`rounding_adjustment`].
pub fn choose_unit_price(quantity: Decimal, price: Decimal, row_total: Decimal) -> Decimal {
    let by_price = round2(price);
    if quantity.is_zero() {
        return by_price;
    }
    let by_row = round2(row_total / quantity);
    let miss = |u: Decimal| (round2(quantity * u) - row_total).abs();
    if miss(by_row) < miss(by_price) {
        by_row
    } else {
        by_price
    }
}

/// Quirk 2 (totals invariant): the amount of the explicit rounding line that makes
/// Sage's total equal Magento's grand total, or `None` when they already agree to the
/// cent. Never silently dropped: the caller adds a visible "Rounding adjustment" line.
pub fn rounding_adjustment(magento_grand_total: Decimal, sage_total: Decimal) -> Option<Decimal> {
    let residue = round2(magento_grand_total) - round2(sage_total);
    (!residue.is_zero()).then_some(residue)
}

/// Quirk 3: the shipping VAT Sage will compute itself, `round2(net × rate / 100)`.
///
/// Sage ignores an explicit `shipping_tax_amount` and recomputes it from
/// `shipping_net_amount` and `shipping_tax_rate_id`, so the body never carries one and
/// any difference to Magento's shipping tax ends up on the rounding line.
pub fn sage_shipping_tax(shipping_net: Decimal, rate_percent: Decimal) -> Decimal {
    round2(shipping_net * rate_percent / Decimal::ONE_HUNDRED)
}

/// Quirk 16: the address to send as `delivery_address`.
///
/// Sage copies the billing address into `delivery_address` when it is omitted. Sending
/// it explicitly every time (the billing address for orders without shipping, such as
/// virtual products) keeps what Sage stores equal to what was sent, instead of depending
/// on an undocumented server-side default.
pub fn delivery_address_source<'a, A>(billing: &'a A, shipping: Option<&'a A>) -> &'a A {
    shipping.unwrap_or(billing)
}

/// Quirk 17: a line description Sage accepts.
///
/// HTML entities such as `&trade;` make Sage answer 422, and Magento product names often
/// carry them (the admin stores what the WYSIWYG produced). The name is cleaned with
/// [`fit_text`] (entities decoded until none is left, control characters and runs of
/// whitespace collapsed to one space) and cut to `max` ([`LINE_DESCRIPTION_MAX`] on
/// document lines). An empty result falls back to `fallback` (the SKU), because Sage
/// requires a description.
pub fn clean_description(name: &str, fallback: &str, max: usize) -> String {
    line_description(name, fallback, max).text
}

/// [`clean_description`], also returning the whole cleaned name when it had to be cut,
/// for the document's notes.
pub fn line_description(name: &str, fallback: &str, max: usize) -> Fitted {
    let fitted = fit_text(name, max);
    if fitted.text.is_empty() {
        fit_text(fallback, max)
    } else {
        fitted
    }
}

/// Quirk 19: the single `eu_goods_services_type_id` of a cross-border document.
///
/// Sage rejects a cross-border document whose lines disagree ("must be the same"), so
/// one type is chosen for the whole document: SERVICES when every product line is a
/// virtual or downloadable product, GOODS when none is, and the configured default for
/// a mix (or always, when the policy does not derive).
pub fn cross_border_goods_services<'a>(
    policy: &GoodsServicesPolicy,
    product_types: impl IntoIterator<Item = Option<&'a str>>,
) -> GoodsServices {
    if !policy.derive_from_products {
        return policy.default;
    }
    let mut goods = false;
    let mut services = false;
    for t in product_types {
        match t {
            Some("virtual") | Some("downloadable") => services = true,
            _ => goods = true,
        }
    }
    match (goods, services) {
        (true, false) => GoodsServices::Goods,
        (false, true) => GoodsServices::Services,
        _ => policy.default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("abc", 5), ("abc".into(), false));
        assert_eq!(truncate_chars("abcdef", 3), ("abc".into(), true));
        assert_eq!(truncate_chars("ééééé", 2), ("éé".into(), true));
        assert_eq!(truncate_chars("", 0), ("".into(), false));
    }

    #[test]
    fn quirk5_reference_fits_25_keeping_the_sequence() {
        assert_eq!(fit_reference("000000123", 25), "000000123");
        let long = "STOREFRONT-EU-WEST-INV-000004567"; // 32 chars
        let r = fit_reference(long, 25);
        assert_eq!(r.chars().count(), 25);
        assert!(r.starts_with('~'));
        assert!(r.ends_with("000004567"));
        // Deterministic.
        assert_eq!(r, fit_reference(long, 25));
        assert_eq!(fit_reference(&"x".repeat(25), 25), "x".repeat(25));
    }

    #[test]
    fn quirk5_credit_note_reference_names_memo_and_invoice() {
        let table = [
            ("000000012", Some("000000034"), "000000012/000000034"),
            ("000000012", None, "000000012"),
            ("000000012", Some(""), "000000012"),
            // 9 + 1 + 15 = 25: the invoice part is cut from the left.
            (
                "100000012",
                Some("INV-2024-100000034"),
                "100000012/~2024-100000034",
            ),
        ];
        for (cm, inv, want) in table {
            let r = credit_note_reference(cm, inv);
            assert_eq!(r, want);
            assert!(r.chars().count() <= DOCUMENT_REFERENCE_MAX);
        }
        // A memo number that leaves no room keeps only the memo.
        let cm = "CM-EU-WEST-00000000000012"; // 25
        assert_eq!(credit_note_reference(cm, Some("1")), cm);
    }

    #[test]
    fn quirk1_tax_amount_always_present_and_two_dp() {
        assert_eq!(line_tax_amount(None).to_string(), "0.00");
        assert_eq!(line_tax_amount(Some(dec!(8.325))).to_string(), "8.33");
        assert_eq!(line_tax_amount(Some(dec!(0))).to_string(), "0.00");
    }

    #[test]
    fn quirk2_sage_rounds_each_line_before_totalling() {
        // Sage staff's own example: 41.625 net + 8.325 VAT is 49.96 in Sage, not 49.95.
        let (net, tax) = sage_line_amounts(dec!(1), dec!(41.625), dec!(0), dec!(8.325), false);
        assert_eq!(net + tax, dec!(49.96));
        // Discounts are subtracted after rounding the gross line.
        let (net, _) = sage_line_amounts(dec!(3), dec!(41.63), dec!(10.005), dec!(0), false);
        assert_eq!(net, dec!(124.89) - dec!(10.01));
        // Zero-percentage rates: Sage infers 0.00 tax whatever is sent.
        let (_, tax) = sage_line_amounts(dec!(1), dec!(10), dec!(0), dec!(2), true);
        assert_eq!(tax, dec!(0));
    }

    #[test]
    fn quirk2_unit_price_choice_reproduces_row_total_when_possible() {
        // 3 × 33.333 = 99.999 → Magento row 100.00; 33.33 gives 99.99, 33.33 again by row.
        assert_eq!(
            choose_unit_price(dec!(3), dec!(33.333), dec!(100.00)),
            dec!(33.33)
        );
        // Price 9.995, qty 2, row 19.99: round2(price) = 10.00 → 20.00 (miss 0.01);
        // row/qty = 9.995 → 10.00 too; price wins the tie.
        assert_eq!(
            choose_unit_price(dec!(2), dec!(9.995), dec!(19.99)),
            dec!(10.00)
        );
        // Price 12.3449, row 24.69 for 2: by price 12.34 → 24.68, by row 12.345 → 12.35 → 24.70.
        assert_eq!(
            choose_unit_price(dec!(2), dec!(12.3449), dec!(24.69)),
            dec!(12.34)
        );
        // A row that was reduced (price 10, row 9.50 for qty 1) follows the row.
        assert_eq!(choose_unit_price(dec!(1), dec!(10), dec!(9.50)), dec!(9.50));
        assert_eq!(choose_unit_price(dec!(0), dec!(5.555), dec!(0)), dec!(5.56));
    }

    #[test]
    fn quirk2_rounding_adjustment_only_when_needed() {
        assert_eq!(
            rounding_adjustment(dec!(149.85), dec!(149.86)),
            Some(dec!(-0.01))
        );
        assert_eq!(rounding_adjustment(dec!(100.00), dec!(100)), None);
        assert_eq!(
            rounding_adjustment(dec!(10.02), dec!(10.00)),
            Some(dec!(0.02))
        );
    }

    #[test]
    fn quirk3_shipping_vat_is_recomputed_by_sage() {
        assert_eq!(sage_shipping_tax(dec!(4.16), dec!(20)), dec!(0.83));
        assert_eq!(sage_shipping_tax(dec!(4.175), dec!(20)), dec!(0.84));
        assert_eq!(sage_shipping_tax(dec!(10), dec!(0)), dec!(0.00));
        assert_eq!(sage_shipping_tax(dec!(9.99), dec!(5)), dec!(0.50));
    }

    #[test]
    fn quirk16_delivery_address_is_always_explicit() {
        let billing = "billing";
        let shipping = "shipping";
        assert_eq!(
            *delivery_address_source(&billing, Some(&shipping)),
            "shipping"
        );
        assert_eq!(*delivery_address_source(&billing, None), "billing");
    }

    #[test]
    fn quirk17_html_entities_are_decoded() {
        let table = [
            ("Yoga Mat&trade; Pro", "Yoga Mat™ Pro"),
            ("Salt &amp; Pepper", "Salt & Pepper"),
            ("Salt &amp;amp; Pepper", "Salt & Pepper"),
            ("Caf&eacute; &#8211; &#x41;", "Café – A"),
            ("  Tab\tand\nnewline  ", "Tab and newline"),
            ("&nbsp;", "SKU-1"),
            ("", "SKU-1"),
        ];
        for (name, want) in table {
            assert_eq!(
                clean_description(name, "SKU-1", LINE_DESCRIPTION_MAX),
                want,
                "{name:?}"
            );
        }
        let long = "é".repeat(300);
        assert_eq!(
            clean_description(&long, "x", LINE_DESCRIPTION_MAX)
                .chars()
                .count(),
            255
        );
    }

    #[test]
    fn quirk19_one_goods_services_type_per_document() {
        let derive = GoodsServicesPolicy {
            derive_from_products: true,
            default: GoodsServices::Services,
        };
        let table: [(&[Option<&str>], GoodsServices); 5] = [
            (
                &[Some("simple"), Some("configurable")],
                GoodsServices::Goods,
            ),
            (
                &[Some("virtual"), Some("downloadable")],
                GoodsServices::Services,
            ),
            (&[Some("simple"), Some("virtual")], GoodsServices::Services), // mixed → default
            (&[None], GoodsServices::Goods),
            (&[], GoodsServices::Services), // nothing to go by → default
        ];
        for (types, want) in table {
            assert_eq!(
                cross_border_goods_services(&derive, types.iter().copied()),
                want,
                "{types:?}"
            );
        }
        let fixed = GoodsServicesPolicy {
            derive_from_products: false,
            default: GoodsServices::Goods,
        };
        assert_eq!(
            cross_border_goods_services(&fixed, [Some("virtual")]),
            GoodsServices::Goods
        );
    }
}
