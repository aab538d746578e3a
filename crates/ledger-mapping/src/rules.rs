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
/// Longest Sage stock item `item_code`, in characters (products allow 255).
pub const STOCK_ITEM_CODE_MAX: usize = 30;
/// Longest Sage stock movement `details`, in characters.
pub const STOCK_MOVEMENT_DETAILS_MAX: usize = 50;
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
        // Unlinked: never the bare number, which could equal an invoice's reference.
        return crate::settlement::unlinked_credit_note_reference(cm);
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

/// Quirk 2: how Sage totals one line. The extended amount is
/// `round2(qty × round2(unit_price)) − round2(discount)` and the tax is
/// `round2(tax_amount)` (zero for a zero-percentage rate, which Sage infers as 0.00
/// whatever is sent). With `unit_price_includes_tax` the extended amount is the line's
/// gross (total) and the net is what is left after the tax; without it the extended
/// amount is the net and the total is net + tax. Returns `(net, tax)`.
pub fn sage_line_amounts(
    quantity: Decimal,
    unit_price: Decimal,
    discount: Decimal,
    tax_amount: Decimal,
    rate_is_zero: bool,
    unit_price_includes_tax: bool,
) -> (Decimal, Decimal) {
    let extended = round2(quantity * round2(unit_price)) - round2(discount);
    let tax = if rate_is_zero {
        Decimal::ZERO
    } else {
        round2(tax_amount)
    };
    if unit_price_includes_tax {
        (extended - tax, tax)
    } else {
        (extended, tax)
    }
}

/// Quirk 2: the 2-dp unit price and the discount to send so that Sage's extended line
/// amount is exactly Magento's.
///
/// Magento keeps prices to 4 dp (41.625 is common for a 49.95 tax-inclusive price) but
/// Sage keeps 2 and computes `round2(qty × unit) − discount`. `target` is the amount the
/// line must come to in Sage (the row net after discount, or the row gross after
/// discount for a tax-inclusive line); `magento_extended` is Magento's undiscounted row
/// (row total, or row total incl. tax). Of the candidate unit prices (Magento's own,
/// rounded to 2 dp, then `round2(row / qty)`, then the smallest 2-dp price that reaches
/// the target), the first whose `round2(qty × unit)` is not below the target and comes
/// closest to `magento_extended` is chosen; the discount is then whatever separates
/// `round2(qty × unit)` from the target. So the line always lands on the target to the
/// cent, the discount equals Magento's whenever a 2-dp unit price reproduces Magento's
/// row, and otherwise it also carries the few pence by which `qty × 2-dp price` cannot
/// reproduce the row. Returns `(unit_price, discount)`; both are 2-dp and the discount is
/// never negative. A zero quantity (nothing to price) returns `(target, 0)`.
pub fn line_price_and_discount(
    quantity: Decimal,
    unit_prices: &[Decimal],
    magento_extended: Decimal,
    target: Decimal,
) -> (Decimal, Decimal) {
    let target = round2(target);
    if quantity <= Decimal::ZERO {
        return (target, Decimal::ZERO);
    }
    let reach = ceil2(target / quantity);
    let extended = |u: Decimal| round2(quantity * u);
    let miss = |u: Decimal| (extended(u) - round2(magento_extended)).abs();
    let mut best: Option<Decimal> = None;
    for u in unit_prices
        .iter()
        .map(|u| round2(*u))
        .chain([round2(magento_extended / quantity), reach])
    {
        if u < Decimal::ZERO || extended(u) < target {
            continue;
        }
        if best.is_none_or(|b| miss(u) < miss(b)) {
            best = Some(u);
        }
    }
    let unit = best.unwrap_or(reach);
    (unit, round2(extended(unit) - target))
}

/// Rounds up (towards +∞) to a whole cent.
fn ceil2(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToPositiveInfinity);
    r.rescale(2);
    r
}

/// Quirk 2 (totals invariant): the amount of the explicit rounding line that makes
/// Sage's total equal Magento's grand total, or `None` when they already agree to the
/// cent. Never silently dropped: the caller adds a visible "Rounding adjustment" line.
pub fn rounding_adjustment(magento_grand_total: Decimal, sage_total: Decimal) -> Option<Decimal> {
    let residue = round2(magento_grand_total) - round2(sage_total);
    (!residue.is_zero()).then_some(residue)
}

/// Rule "a rounding line is at most a penny per line": the largest rounding line a
/// document with `lines` amount-bearing lines may carry. Every Sage line already equals
/// its Magento row to the cent, so a residue can only be Magento's own rounding between
/// its rows and its grand total, which is at most a cent per row; anything larger is an
/// amount the mapping does not understand and is held (`rounding_too_large`).
pub fn rounding_limit(lines: usize) -> Decimal {
    Decimal::new(1, 2) * Decimal::from(lines as u64)
}

/// Quirk 3: the shipping VAT Sage computes itself for header shipping,
/// `round2(net × rate / 100)`.
///
/// Sage ignores an explicit `shipping_tax_amount` and recomputes it from
/// `shipping_net_amount` and `shipping_tax_rate_id`, which loses Magento's shipping VAT
/// whenever Magento taxed shipping before a shipping discount (£2.00 charged on £10.00
/// shipping, £1.00 recomputed on the £5.00 left after discount). The mappers therefore
/// never use header shipping: shipping is a line on the shipping ledger account with
/// Magento's own tax. This function remains for reading bodies that carry header
/// shipping (see [`crate::sage_document_total`]).
pub fn sage_shipping_tax(shipping_net: Decimal, rate_percent: Decimal) -> Decimal {
    round2(shipping_net * rate_percent / Decimal::ONE_HUNDRED)
}

/// Rule "VAT follows the place of supply": the country whose VAT applies to one line.
///
/// Magento taxes by its "Tax Calculation Based On" setting (`tax/calculation/based_on`,
/// default `shipping`), and VAT law agrees for goods: goods are supplied where they are
/// delivered, so they follow the delivery country; virtual and downloadable items have
/// no delivery and follow the billing country (as Magento taxes them). With `billing`
/// everything follows the billing country; with `origin` everything is supplied at home.
/// An unknown setting reads as Magento's default.
pub fn place_of_supply<'a>(
    based_on: Option<&str>,
    product_type: Option<&str>,
    billing_country: &'a str,
    delivery_country: Option<&'a str>,
    home_country: &'a str,
) -> &'a str {
    match based_on.map(str::trim) {
        Some("origin") => home_country,
        Some("billing") => billing_country,
        _ => match product_type {
            Some("virtual") | Some("downloadable") => billing_country,
            _ => delivery_country
                .filter(|c| !c.trim().is_empty())
                .unwrap_or(billing_country),
        },
    }
}

/// Rule "an adjustment is apportioned by rate": splits `amount` over `weights` in
/// proportion, each part rounded to the cent, the remainder going to the largest weight
/// so the parts add up to `amount` exactly. Zero or no weights put everything on the
/// first part (or return nothing when there is no part at all).
pub fn apportion(amount: Decimal, weights: &[Decimal]) -> Vec<Decimal> {
    if weights.is_empty() {
        return Vec::new();
    }
    let total: Decimal = weights.iter().copied().sum();
    let mut parts: Vec<Decimal> = if total.is_zero() {
        let mut v = vec![Decimal::ZERO; weights.len()];
        v[0] = round2(amount);
        return v;
    } else {
        weights
            .iter()
            .map(|w| round2(amount * *w / total))
            .collect()
    };
    let rest = round2(amount) - parts.iter().copied().sum::<Decimal>();
    let largest = weights
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    parts[largest] += rest;
    parts
}

/// Rule "an adjustment is a gross amount": the VAT inside a VAT-inclusive amount at
/// `percent`, `round2(gross × p / (100 + p))`.
pub fn vat_in_gross(gross: Decimal, percent: Decimal) -> Decimal {
    if percent <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    round2(gross * percent / (Decimal::ONE_HUNDRED + percent))
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
            // Unlinked: prefixed, so it never equals invoice 000000012's reference.
            ("000000012", None, "CM-000000012"),
            ("000000012", Some(""), "CM-000000012"),
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
        let (net, tax) =
            sage_line_amounts(dec!(1), dec!(41.625), dec!(0), dec!(8.325), false, false);
        assert_eq!(net + tax, dec!(49.96));
        // Discounts are subtracted after rounding the gross line.
        let (net, _) = sage_line_amounts(dec!(3), dec!(41.63), dec!(10.005), dec!(0), false, false);
        assert_eq!(net, dec!(124.89) - dec!(10.01));
        // Zero-percentage rates: Sage infers 0.00 tax whatever is sent.
        let (_, tax) = sage_line_amounts(dec!(1), dec!(10), dec!(0), dec!(2), true, false);
        assert_eq!(tax, dec!(0));
        // Tax-inclusive unit price: 2 × 49.95 − 9.99 = 89.91 gross, 14.99 tax → 74.92 net.
        let (net, tax) =
            sage_line_amounts(dec!(2), dec!(49.95), dec!(9.99), dec!(14.99), false, true);
        assert_eq!((net, tax), (dec!(74.92), dec!(14.99)));
    }

    #[test]
    fn quirk2_price_and_discount_land_on_the_target_to_the_cent() {
        // Reproducible row: 2 × 12.50 = 25.00, Magento discount 2.50 → net 22.50.
        assert_eq!(
            line_price_and_discount(dec!(2), &[dec!(12.50)], dec!(25.00), dec!(22.50)),
            (dec!(12.50), dec!(2.50))
        );
        // 3 × 33.333 = 99.999 → Magento row 100.00, no discount. 33.33 gives 99.99, below
        // the target: the unit price goes up to 33.34 (100.02) and 0.02 is discounted.
        assert_eq!(
            line_price_and_discount(dec!(3), &[dec!(33.333)], dec!(100.00), dec!(100.00)),
            (dec!(33.34), dec!(0.02))
        );
        // Same row with a 10.00 discount: 33.33 × 3 = 99.99 ≥ 90.00, closest to the row
        // (miss 0.01, as 33.34's 100.02 misses by 0.02): discount 9.99.
        assert_eq!(
            line_price_and_discount(dec!(3), &[dec!(33.333)], dec!(100.00), dec!(90.00)),
            (dec!(33.33), dec!(9.99))
        );
        // Tax-inclusive 78.72 case: 4 × 26.24 incl. tax = 104.96, 10 % off 10.50 → gross
        // 94.46 (net 78.72 + tax 15.74). The gross unit price reproduces the row exactly;
        // the ex-tax 21.8667 would have given 4 × 21.87 = 87.48 − 8.75 = 78.73.
        assert_eq!(
            line_price_and_discount(dec!(4), &[dec!(26.24)], dec!(104.96), dec!(94.46)),
            (dec!(26.24), dec!(10.50))
        );
        // Price 12.3449, row 24.69 for 2: by price 12.34 → 24.68 below target; by row
        // 12.345 → 12.35 → 24.70, discount 0.01.
        assert_eq!(
            line_price_and_discount(dec!(2), &[dec!(12.3449)], dec!(24.69), dec!(24.69)),
            (dec!(12.35), dec!(0.01))
        );
        assert_eq!(
            line_price_and_discount(dec!(0), &[dec!(5.555)], dec!(0), dec!(0)),
            (dec!(0.00), dec!(0))
        );
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
    fn rounding_line_is_at_most_a_penny_per_line() {
        assert_eq!(rounding_limit(1), dec!(0.01));
        assert_eq!(rounding_limit(3), dec!(0.03));
        assert_eq!(rounding_limit(0), dec!(0));
    }

    #[test]
    fn quirk3_shipping_vat_is_recomputed_by_sage() {
        assert_eq!(sage_shipping_tax(dec!(4.16), dec!(20)), dec!(0.83));
        assert_eq!(sage_shipping_tax(dec!(4.175), dec!(20)), dec!(0.84));
        assert_eq!(sage_shipping_tax(dec!(10), dec!(0)), dec!(0.00));
        assert_eq!(sage_shipping_tax(dec!(9.99), dec!(5)), dec!(0.50));
    }

    #[test]
    fn goods_follow_delivery_virtual_items_follow_billing() {
        let table = [
            (None, Some("simple"), Some("FR"), "FR"),
            (Some("shipping"), Some("simple"), Some("FR"), "FR"),
            (Some("shipping"), Some("virtual"), Some("FR"), "GB"),
            (Some("shipping"), Some("downloadable"), Some("FR"), "GB"),
            (Some("shipping"), Some("simple"), None, "GB"),
            (Some("billing"), Some("simple"), Some("FR"), "GB"),
            (Some("origin"), Some("simple"), Some("FR"), "UK"),
            (Some("nonsense"), None, Some("DE"), "DE"),
        ];
        for (based_on, ty, delivery, want) in table {
            assert_eq!(
                place_of_supply(based_on, ty, "GB", delivery, "UK"),
                want,
                "{based_on:?} {ty:?} {delivery:?}"
            );
        }
    }

    #[test]
    fn adjustments_are_apportioned_to_the_cent() {
        // 10.00 over gross 60 : 40 → 6.00 + 4.00.
        assert_eq!(
            apportion(dec!(10.00), &[dec!(60), dec!(40)]),
            vec![dec!(6.00), dec!(4.00)]
        );
        // 10.00 in thirds: 3.33 × 3 = 9.99, the cent left goes to the largest (first).
        assert_eq!(
            apportion(dec!(10.00), &[dec!(1), dec!(1), dec!(1)]),
            vec![dec!(3.34), dec!(3.33), dec!(3.33)]
        );
        assert_eq!(
            apportion(dec!(-5), &[dec!(0), dec!(0)]),
            vec![dec!(-5.00), dec!(0)]
        );
        assert!(apportion(dec!(5), &[]).is_empty());
    }

    #[test]
    fn vat_inside_a_gross_amount() {
        // 12.00 at 20 %: 12 × 20 / 120 = 2.00. 10.00 at 5 %: 10 × 5 / 105 = 0.476 → 0.48.
        assert_eq!(vat_in_gross(dec!(12.00), dec!(20)), dec!(2.00));
        assert_eq!(vat_in_gross(dec!(10.00), dec!(5)), dec!(0.48));
        assert_eq!(vat_in_gross(dec!(-12.00), dec!(20)), dec!(-2.00));
        assert_eq!(vat_in_gross(dec!(10.00), dec!(0)), dec!(0));
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
