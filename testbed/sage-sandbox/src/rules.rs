//! Sage's documented business rules (NOTES.md §3 and §6), one function each.
//!
//! They are kept apart from the request plumbing so each can be tested on its
//! own and so the list of behaviours the sandbox reproduces is easy to audit.

use crate::error::ApiError;
use crate::money::round2;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// Longest contact `reference` Sage accepts.
pub const CONTACT_REFERENCE_MAX: usize = 10;
/// Longest contact `name`.
pub const CONTACT_NAME_MAX: usize = 100;
/// Longest address line (`address_line_1`, `address_line_2`).
pub const ADDRESS_LINE_MAX: usize = 50;
/// Longest `postal_code`.
pub const POSTAL_CODE_MAX: usize = 10;
/// Longest invoice / credit note `reference`.
pub const DOCUMENT_REFERENCE_MAX: usize = 25;
/// Longest contact person `name`, `telephone` and `mobile`.
pub const PERSON_FIELD_MAX: usize = 50;
/// Longest contact person `email`.
pub const EMAIL_MAX: usize = 100;
/// Longest contact `notes`.
pub const CONTACT_NOTES_MAX: usize = 4000;
/// Longest invoice / credit note `notes`.
pub const DOCUMENT_NOTES_MAX: usize = 2000;

fn too_long(source: String, max: usize) -> ApiError {
    let leaf = source.rsplit('.').next().unwrap_or("").to_owned();
    ApiError::invalid(
        source,
        format!("{leaf}: is too long (maximum is {max} characters)"),
    )
}

/// Contact `reference` is at most 10 characters.
pub fn contact_reference_length(reference: &str) -> Result<(), ApiError> {
    if reference.chars().count() > CONTACT_REFERENCE_MAX {
        return Err(too_long("contact.reference".into(), CONTACT_REFERENCE_MAX));
    }
    Ok(())
}

/// Normalised key under which contact references are reserved.
///
/// Compared case-insensitively: the sandbox errs on the strict side because
/// Sage does not document the case rule.
pub fn contact_reference_key(reference: &str) -> String {
    reference.trim().to_lowercase()
}

/// Contact `reference` must be unique in the business, counting soft-deleted
/// contacts (their references stay reserved). `holder` is the id already
/// holding the reference, if any; `self_id` is the contact being updated.
pub fn contact_reference_unique(
    holder: Option<&str>,
    self_id: Option<&str>,
) -> Result<(), ApiError> {
    match holder {
        Some(h) if Some(h) != self_id => Err(ApiError::invalid(
            "contact.reference",
            "reference: has already been taken",
        )),
        _ => Ok(()),
    }
}

/// Contact `name` is at most 100 characters (and present).
pub fn contact_name_length(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid("contact.name", "name: can't be blank"));
    }
    if name.chars().count() > CONTACT_NAME_MAX {
        return Err(too_long("contact.name".into(), CONTACT_NAME_MAX));
    }
    Ok(())
}

/// A contact person's `name`, `telephone` and `mobile` are at most 50 characters and the
/// `email` at most 100. `path` is the person's own path, e.g.
/// `contact.main_contact_person`.
pub fn contact_person_limits(person: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    for (field, max) in [
        ("name", PERSON_FIELD_MAX),
        ("telephone", PERSON_FIELD_MAX),
        ("mobile", PERSON_FIELD_MAX),
        ("email", EMAIL_MAX),
    ] {
        if let Some(s) = person.get(field).and_then(Value::as_str) {
            if s.chars().count() > max {
                return Err(too_long(format!("{path}.{field}"), max));
            }
        }
    }
    Ok(())
}

/// `notes` are at most `max` characters: 4000 on a contact, 2000 on an invoice or
/// credit note. `source` is the field's path, e.g. `sales_invoice.notes`.
pub fn notes_length(notes: Option<&str>, source: &str, max: usize) -> Result<(), ApiError> {
    if notes.is_some_and(|n| n.chars().count() > max) {
        return Err(too_long(source.to_owned(), max));
    }
    Ok(())
}

/// `contact_type_ids` holds exactly one known contact type; returns it.
pub fn contact_single_type(ids: &[Value]) -> Result<String, ApiError> {
    if ids.len() != 1 {
        return Err(ApiError::invalid(
            "contact.contact_type_ids",
            "contact_type_ids: exactly one contact type must be given",
        ));
    }
    let id = ids[0].as_str().unwrap_or_default();
    if !crate::seed::CONTACT_TYPES.iter().any(|(t, _)| *t == id) {
        return Err(ApiError::missing_reference(
            "contact.contact_type_ids[0]",
            "Couldn't find contact type.",
        ));
    }
    Ok(id.to_owned())
}

/// Address lines are at most 50 characters and the postal code at most 10.
/// `path` is the address's own path, e.g. `contact.main_address`.
pub fn address_limits(address: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    for field in ["address_line_1", "address_line_2"] {
        if let Some(s) = address.get(field).and_then(Value::as_str) {
            if s.chars().count() > ADDRESS_LINE_MAX {
                return Err(too_long(format!("{path}.{field}"), ADDRESS_LINE_MAX));
            }
        }
    }
    if let Some(s) = address.get("postal_code").and_then(Value::as_str) {
        if s.chars().count() > POSTAL_CODE_MAX {
            return Err(too_long(format!("{path}.postal_code"), POSTAL_CODE_MAX));
        }
    }
    Ok(())
}

/// A contact's `currency_id` cannot change once it has an invoice or credit note.
pub fn contact_currency_locked(
    current: &str,
    requested: &str,
    document_count: u32,
) -> Result<(), ApiError> {
    if document_count > 0 && current != requested {
        return Err(ApiError::invalid(
            "contact.currency_id",
            "currency_id: cannot be changed once the contact has transactions",
        ));
    }
    Ok(())
}

/// National VAT number formats the sandbox checks, by the contact's country: each is a
/// pattern of `#` (a digit), `@` (a letter) and `*` (a letter or a digit), any other
/// character standing for itself, after the
/// country prefix. Sage validates a contact's `tax_number` format (NOTES.md §3.1); which
/// formats it applies is not documented, so the sandbox checks these well-known ones (the
/// UK's and the largest EU markets', as VIES publishes them) and accepts any other
/// country's numbers.
const VAT_FORMATS: &[(&str, &str, &[&str])] = &[
    ("GB", "GB", &["#########", "############", "GD###", "HA###"]),
    ("XI", "XI", &["#########", "############", "GD###", "HA###"]),
    ("IE", "IE", &["#######@", "#######@@", "#*#####@"]),
    ("DE", "DE", &["#########"]),
    ("FR", "FR", &["**#########"]),
    ("NL", "NL", &["#########B##"]),
    ("BE", "BE", &["##########"]),
    ("ES", "ES", &["*#######*"]),
    ("IT", "IT", &["###########"]),
    ("AT", "AT", &["U########"]),
    ("GR", "EL", &["#########"]),
];

fn matches_vat_pattern(number: &str, pattern: &str) -> bool {
    number.len() == pattern.len()
        && number.chars().zip(pattern.chars()).all(|(c, p)| match p {
            '#' => c.is_ascii_digit(),
            '@' => c.is_ascii_uppercase(),
            '*' => c.is_ascii_uppercase() || c.is_ascii_digit(),
            literal => c == literal,
        })
}

/// A contact's `tax_number` must be a VAT number in the format of the contact's country
/// (its `main_address.country_id`, else the business's country): the national number,
/// with or without the country prefix (`EL` for Greece). Spaces are ignored and letters
/// compared in upper case; a blank number is no number. Countries without a known format
/// are not checked.
pub fn contact_tax_number_format(tax_number: &str, country: &str) -> Result<(), ApiError> {
    let number: String = tax_number
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if number.is_empty() {
        return Ok(());
    }
    let country = country.trim().to_ascii_uppercase();
    let Some((_, prefix, patterns)) = VAT_FORMATS.iter().find(|(c, _, _)| *c == country) else {
        return Ok(());
    };
    let national = number.strip_prefix(prefix).unwrap_or(&number);
    if patterns.iter().any(|p| matches_vat_pattern(national, p)) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "contact.tax_number",
        format!("tax_number: is not a valid VAT number for {country}"),
    ))
}

/// Invoice / credit note `reference` is at most 25 characters.
pub fn document_reference_length(reference: &str, root: &str) -> Result<(), ApiError> {
    if reference.chars().count() > DOCUMENT_REFERENCE_MAX {
        return Err(too_long(
            format!("{root}.reference"),
            DOCUMENT_REFERENCE_MAX,
        ));
    }
    Ok(())
}

/// A document or payment date must lie in an open period: not before the business's
/// `accounts_start_date` and not on or before its `year_end_lockdown_date`
/// (`financial_settings`). Sage refuses both with a validation error on `date`.
pub fn date_in_open_period(
    date: chrono::NaiveDate,
    accounts_start_date: chrono::NaiveDate,
    year_end_lockdown_date: Option<chrono::NaiveDate>,
    root: &str,
) -> Result<(), ApiError> {
    if date < accounts_start_date {
        return Err(ApiError::invalid(
            format!("{root}.date"),
            format!("date: cannot be before the accounts start date ({accounts_start_date})"),
        ));
    }
    if let Some(lockdown) = year_end_lockdown_date {
        if date <= lockdown {
            return Err(ApiError::invalid(
                format!("{root}.date"),
                format!("date: cannot be on or before the year end lockdown date ({lockdown})"),
            ));
        }
    }
    Ok(())
}

/// The status of an invoice or credit note cannot be written: it only moves
/// through payments and allocations.
///
/// Sage allows `DRAFT`/`PRO_FORMA` at creation; the sandbox has no release
/// endpoint, so it rejects every value.
pub fn status_not_writable(root_object: &Map<String, Value>, root: &str) -> Result<(), ApiError> {
    if root_object.get("status_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid(
            format!("{root}.status_id"),
            "status_id: cannot be set directly; it changes through payments and allocations",
        ));
    }
    Ok(())
}

/// A document's currency must be its contact's currency.
pub fn document_currency_matches_contact(
    document: &str,
    contact: &str,
    root: &str,
) -> Result<(), ApiError> {
    if document != contact {
        return Err(ApiError::invalid(
            format!("{root}.currency_id"),
            format!("currency_id: must match the contact's currency ({contact})"),
        ));
    }
    Ok(())
}

/// True if `text` contains an HTML character entity such as `&amp;`,
/// `&trade;`, `&#8482;` or `&#x2122;`.
pub fn contains_html_entity(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'&' {
            let rest = &bytes[i + 1..];
            let body_len = if rest.first() == Some(&b'#') {
                let digits = &rest[1..];
                if digits.first().is_some_and(|c| *c == b'x' || *c == b'X') {
                    let n = digits[1..]
                        .iter()
                        .take_while(|c| c.is_ascii_hexdigit())
                        .count();
                    if n > 0 {
                        Some(2 + n)
                    } else {
                        None
                    }
                } else {
                    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
                    if n > 0 {
                        Some(1 + n)
                    } else {
                        None
                    }
                }
            } else {
                let starts_alpha = rest.first().is_some_and(u8::is_ascii_alphabetic);
                let n = rest
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                if starts_alpha {
                    Some(n)
                } else {
                    None
                }
            };
            if let Some(n) = body_len {
                if rest.get(n) == Some(&b';') {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// Line descriptions must not contain HTML entities (Sage answers 422).
pub fn no_html_entities(text: &str, source: &str) -> Result<(), ApiError> {
    if contains_html_entity(text) {
        return Err(ApiError::invalid(
            source,
            "description: contains HTML entities; send plain text",
        ));
    }
    Ok(())
}

/// `tax_amount` is required on a line unless its tax rate is 0%.
pub fn line_tax_amount_required(
    percentage: Decimal,
    tax_amount: Option<Decimal>,
    source: &str,
) -> Result<(), ApiError> {
    if tax_amount.is_none() && !percentage.is_zero() {
        return Err(ApiError::invalid(source, "tax_amount: can't be blank"));
    }
    Ok(())
}

/// Amounts of one document line after Sage's per-line rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    /// Unit price rounded to 2 dp.
    pub unit_price: Decimal,
    /// Discount rounded to 2 dp.
    pub discount: Decimal,
    /// Net amount.
    pub net: Decimal,
    /// Tax amount.
    pub tax: Decimal,
    /// Net + tax.
    pub total: Decimal,
}

/// Sage's per-line 2-dp rounding, for both forms of unit price.
///
/// The extended amount is `round2(quantity × round2(unit_price)) −
/// round2(discount)` and the tax is `round2(tax_amount)` as sent.
/// - Without `unit_price_includes_tax`, the extended amount is the net and
///   `total = net + tax`.
/// - With `unit_price_includes_tax`, the unit price and the discount include
///   VAT: the extended amount is the line's total (gross) and
///   `net = total − tax`.
///
/// This is the sandbox's reading of the flag (the swagger only names it); the
/// Ledger mapping emulates exactly the same rule
/// (`ledger_mapping::rules::sage_line_amounts`) and sends tax-inclusive lines
/// in this form so a line's net, tax and total are Magento's to the cent.
pub fn line_amounts(
    quantity: Decimal,
    unit_price: Decimal,
    discount: Decimal,
    tax_amount: Decimal,
    unit_price_includes_tax: bool,
) -> LineAmounts {
    let unit_price = round2(unit_price);
    let discount = round2(discount);
    let extended = round2(quantity * unit_price) - discount;
    let tax = round2(tax_amount);
    if unit_price_includes_tax {
        LineAmounts {
            unit_price,
            discount,
            net: extended - tax,
            tax,
            total: extended,
        }
    } else {
        LineAmounts {
            unit_price,
            discount,
            net: extended,
            tax,
            total: extended + tax,
        }
    }
}

/// Shipping VAT is recomputed by the server: round2(net × rate% / 100); any
/// `shipping_tax_amount` sent by the client is ignored.
pub fn shipping_tax(net: Decimal, percentage: Decimal) -> Decimal {
    round2(round2(net) * percentage / Decimal::from(100))
}

/// Cross-border rule for a UK business: when the customer's country is
/// outside the business's country, every line must be zero-rated and all lines
/// must share one `eu_goods_services_type_id` (GOODS or SERVICES).
///
/// `lines` holds each line's tax percentage and goods/services type.
pub fn cross_border_lines(
    business_country: &str,
    customer_country: Option<&str>,
    lines: &[(Decimal, Option<String>)],
    root: &str,
    lines_key: &str,
) -> Result<(), ApiError> {
    let Some(country) = customer_country.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    if country.eq_ignore_ascii_case(business_country) {
        return Ok(());
    }
    let mut first_type: Option<&str> = None;
    for (i, (pct, ty)) in lines.iter().enumerate() {
        if !pct.is_zero() {
            return Err(ApiError::invalid(
                format!("{root}.{lines_key}[{i}].tax_rate_id"),
                "tax_rate_id: must be 'Zero Rated' for customers outside the UK",
            ));
        }
        let Some(ty) = ty.as_deref() else {
            return Err(ApiError::invalid(
                format!("{root}.{lines_key}[{i}].eu_goods_services_type_id"),
                "eu_goods_services_type_id: can't be blank for customers outside the UK",
            ));
        };
        match first_type {
            None => first_type = Some(ty),
            Some(f) if f != ty => {
                return Err(ApiError::invalid(
                    format!("{root}.{lines_key}[{i}].eu_goods_services_type_id"),
                    "eu_goods_services_type_id: must be the same on every line",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Status of an invoice or credit note from its total and outstanding amount.
pub fn artefact_status(total: Decimal, outstanding: Decimal) -> &'static str {
    if outstanding <= Decimal::ZERO && !total.is_zero() {
        "PAID"
    } else if outstanding < total {
        "PART_PAID"
    } else {
        "UNPAID"
    }
}

/// An artefact paid or allocated must belong to the payment's contact.
pub fn same_contact(artefact_contact: &str, contact: &str, source: &str) -> Result<(), ApiError> {
    if artefact_contact != contact {
        return Err(ApiError::invalid(
            source,
            "artefact_id: must belong to the same contact",
        ));
    }
    Ok(())
}

/// An allocation cannot exceed what is outstanding on the artefact.
pub fn not_over_outstanding(
    amount: Decimal,
    outstanding: Decimal,
    source: &str,
) -> Result<(), ApiError> {
    if outstanding <= Decimal::ZERO {
        return Err(ApiError::invalid(
            source,
            "You can only pay unpaid or part-paid invoices.",
        ));
    }
    if amount > outstanding {
        return Err(ApiError::invalid(
            source,
            format!("amount: cannot exceed the outstanding amount ({outstanding})"),
        ));
    }
    Ok(())
}

/// The allocated sum of a payment must not exceed its total; a refund must
/// also be fully allocated (Sage: a customer refund is always allocated).
pub fn payment_allocation_total(
    allocated: Decimal,
    total: Decimal,
    is_refund: bool,
) -> Result<(), ApiError> {
    if allocated > total {
        return Err(ApiError::invalid(
            "contact_payment.total_amount",
            "total_amount: must be at least the sum of the allocated amounts",
        ));
    }
    if is_refund && total > allocated {
        return Err(ApiError::invalid(
            "contact_payment.total_amount",
            "total_amount: a refund cannot exceed the allocated amounts",
        ));
    }
    Ok(())
}

/// Amounts of a customer allocation must sum to zero.
pub fn allocations_sum_to_zero(amounts: &[Decimal]) -> Result<(), ApiError> {
    let sum: Decimal = amounts.iter().copied().sum();
    if !sum.is_zero() {
        return Err(ApiError::invalid(
            "contact_allocation.allocated_artefacts",
            format!("allocated_artefacts: amounts must sum to zero (sum is {sum})"),
        ));
    }
    Ok(())
}

/// Sign rule of customer allocations: debits (invoices) positive, credits
/// (credit notes, payments on account) negative.
pub fn allocation_sign(is_debit: bool, amount: Decimal, source: &str) -> Result<(), ApiError> {
    let ok = if is_debit {
        amount > Decimal::ZERO
    } else {
        amount < Decimal::ZERO
    };
    if !ok {
        let msg = if is_debit {
            "amount: must be positive for an invoice"
        } else {
            "amount: must be negative for a credit note or payment on account"
        };
        return Err(ApiError::invalid(source, msg));
    }
    Ok(())
}

/// Longest `void_reason` of a voided invoice or credit note.
pub const VOID_REASON_MAX: usize = 200;

/// Voiding (`DELETE /sales_invoices/{id}`, `/sales_credit_notes/{id}`) needs a `void_reason`
/// of at most 200 characters; Sage waives it only for drafts, which the sandbox does not keep.
/// Quirk 21: the swagger puts it in the query, the guide in the body, so either is read.
pub fn void_reason(reason: Option<&str>, root: &str) -> Result<String, ApiError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            format!("{root}.void_reason"),
            "void_reason: can't be blank",
        ));
    }
    if reason.chars().count() > VOID_REASON_MAX {
        return Err(too_long(format!("{root}.void_reason"), VOID_REASON_MAX));
    }
    Ok(reason.to_owned())
}

/// Sage will not void an invoice or credit note that has payments or allocations (NOTES §3 and
/// quirk 7): they have to be deleted first. `settlements` is how many the document carries.
pub fn void_without_settlements(settlements: usize, root: &str) -> Result<(), ApiError> {
    if settlements > 0 {
        let what = if root == "sales_invoice" {
            "invoice"
        } else {
            "credit note"
        };
        return Err(ApiError::invalid(
            format!("{root}.void_reason"),
            format!(
                "This {what} has payments or allocations ({settlements}) and cannot be voided; \
                 delete the payments and allocations first."
            ),
        ));
    }
    Ok(())
}

/// A voided document stays voided: a second void is refused.
pub fn not_already_void(status: &str, root: &str) -> Result<(), ApiError> {
    if status == "VOID" {
        return Err(ApiError::invalid(
            format!("{root}.void_reason"),
            "This transaction has already been voided.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn contact_reference_max_10() {
        assert!(contact_reference_length("ABCDEFGHIJ").is_ok());
        let e = contact_reference_length("ABCDEFGHIJK").unwrap_err();
        assert_eq!(e.source(), "contact.reference");
        assert_eq!(e.status.as_u16(), 422);
    }

    #[test]
    fn contact_reference_unique_against_holder() {
        assert!(contact_reference_unique(None, None).is_ok());
        assert!(contact_reference_unique(Some("a"), Some("a")).is_ok());
        assert_eq!(
            contact_reference_unique(Some("a"), None)
                .unwrap_err()
                .source(),
            "contact.reference"
        );
        assert!(contact_reference_unique(Some("a"), Some("b")).is_err());
        assert_eq!(contact_reference_key(" Ab1 "), "ab1");
    }

    #[test]
    fn contact_tax_number_format_per_country() {
        let ok = [
            ("GB123456789", "GB"),
            ("123456789", "GB"),
            ("GB 123 4567 89", "gb"),
            ("GB123456789012", "GB"),
            ("GBGD123", "GB"),
            ("HA123", "GB"),
            ("XI123456789", "XI"),
            ("DE123456789", "DE"),
            ("FRXX123456789", "FR"),
            ("NL123456789B01", "NL"),
            ("IE1234567T", "IE"),
            ("EL123456789", "GR"),
            ("", "GB"),
            // No known format for the country: not checked.
            ("anything", "US"),
        ];
        for (number, country) in ok {
            assert!(
                contact_tax_number_format(number, country).is_ok(),
                "{number} in {country}"
            );
        }
        let refused = [
            ("GB12345678", "GB"),
            ("GB1234567890", "GB"),
            ("DE123456789", "GB"),
            ("DE12345678", "DE"),
            ("NL123456789X01", "NL"),
            ("n/a", "GB"),
            ("HB123", "GB"),
        ];
        for (number, country) in refused {
            let e = contact_tax_number_format(number, country).unwrap_err();
            assert_eq!(e.source(), "contact.tax_number", "{number} in {country}");
            assert_eq!(e.status.as_u16(), 422);
        }
    }

    #[test]
    fn contact_name_max_100() {
        assert!(contact_name_length(&"n".repeat(100)).is_ok());
        assert_eq!(
            contact_name_length(&"n".repeat(101)).unwrap_err().source(),
            "contact.name"
        );
        assert!(contact_name_length("  ").is_err());
    }

    #[test]
    fn contact_person_field_limits() {
        let ok = json!({"name": "n".repeat(50), "telephone": "1".repeat(50),
                        "mobile": "2".repeat(50), "email": "e".repeat(100)});
        assert!(
            contact_person_limits(ok.as_object().unwrap(), "contact.main_contact_person").is_ok()
        );
        // Characters, not bytes: 50 Greek letters are 100 bytes and still fit.
        let greek = json!({"name": "α".repeat(50)});
        assert!(contact_person_limits(greek.as_object().unwrap(), "p").is_ok());
        for (field, len) in [
            ("name", 51),
            ("telephone", 51),
            ("mobile", 51),
            ("email", 101),
        ] {
            let mut person = serde_json::Map::new();
            person.insert(field.into(), json!("x".repeat(len)));
            let e = contact_person_limits(&person, "contact.main_contact_person").unwrap_err();
            assert_eq!(e.source(), format!("contact.main_contact_person.{field}"));
            assert_eq!(e.status.as_u16(), 422);
        }
    }

    #[test]
    fn notes_limits() {
        assert!(notes_length(None, "contact.notes", CONTACT_NOTES_MAX).is_ok());
        assert!(notes_length(Some(&"n".repeat(4000)), "contact.notes", CONTACT_NOTES_MAX).is_ok());
        assert_eq!(
            notes_length(Some(&"n".repeat(4001)), "contact.notes", CONTACT_NOTES_MAX)
                .unwrap_err()
                .source(),
            "contact.notes"
        );
        assert!(notes_length(
            Some(&"n".repeat(2000)),
            "sales_invoice.notes",
            DOCUMENT_NOTES_MAX
        )
        .is_ok());
        assert_eq!(
            notes_length(
                Some(&"n".repeat(2001)),
                "sales_invoice.notes",
                DOCUMENT_NOTES_MAX
            )
            .unwrap_err()
            .source(),
            "sales_invoice.notes"
        );
    }

    #[test]
    fn exactly_one_contact_type() {
        assert_eq!(
            contact_single_type(&[json!("CUSTOMER")]).unwrap(),
            "CUSTOMER"
        );
        assert!(contact_single_type(&[]).is_err());
        assert!(contact_single_type(&[json!("CUSTOMER"), json!("VENDOR")]).is_err());
        let e = contact_single_type(&[json!("ALIEN")]).unwrap_err();
        assert_eq!(
            e.errors[0].data_code,
            crate::error::DataCode::RecordNotFound
        );
    }

    #[test]
    fn address_line_and_postcode_limits() {
        let ok = json!({"address_line_1": "a".repeat(50), "postal_code": "SW1A 1AA"});
        assert!(address_limits(ok.as_object().unwrap(), "contact.main_address").is_ok());
        let long_line = json!({"address_line_2": "a".repeat(51)});
        assert_eq!(
            address_limits(long_line.as_object().unwrap(), "contact.main_address")
                .unwrap_err()
                .source(),
            "contact.main_address.address_line_2"
        );
        let long_pc = json!({"postal_code": "12345678901"});
        assert_eq!(
            address_limits(long_pc.as_object().unwrap(), "contact.delivery_address")
                .unwrap_err()
                .source(),
            "contact.delivery_address.postal_code"
        );
    }

    #[test]
    fn currency_locked_after_first_document() {
        assert!(contact_currency_locked("GBP", "EUR", 0).is_ok());
        assert!(contact_currency_locked("GBP", "GBP", 3).is_ok());
        assert_eq!(
            contact_currency_locked("GBP", "EUR", 1)
                .unwrap_err()
                .source(),
            "contact.currency_id"
        );
    }

    #[test]
    fn document_reference_max_25() {
        assert!(document_reference_length(&"r".repeat(25), "sales_invoice").is_ok());
        assert_eq!(
            document_reference_length(&"r".repeat(26), "sales_credit_note")
                .unwrap_err()
                .source(),
            "sales_credit_note.reference"
        );
    }

    #[test]
    fn dates_before_start_or_in_locked_year_are_refused() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let start = d("2024-01-01");
        let lock = Some(d("2025-03-31"));
        // Before the accounts start date.
        let e = date_in_open_period(d("2023-12-31"), start, None, "sales_invoice").unwrap_err();
        assert_eq!(e.errors[0].source, "sales_invoice.date");
        assert!(e.errors[0].message.contains("2024-01-01"), "{e:?}");
        // The start date itself is open.
        assert!(date_in_open_period(start, start, None, "sales_invoice").is_ok());
        // On the lockdown date (and before it) is locked; the day after is open.
        let e = date_in_open_period(d("2025-03-31"), start, lock, "contact_payment").unwrap_err();
        assert_eq!(e.errors[0].source, "contact_payment.date");
        assert!(e.errors[0].message.contains("2025-03-31"), "{e:?}");
        assert!(date_in_open_period(d("2024-06-01"), start, lock, "x").is_err());
        assert!(date_in_open_period(d("2025-04-01"), start, lock, "x").is_ok());
    }

    #[test]
    fn status_cannot_be_written() {
        let m = json!({"status_id": "PAID"});
        assert_eq!(
            status_not_writable(m.as_object().unwrap(), "sales_invoice")
                .unwrap_err()
                .source(),
            "sales_invoice.status_id"
        );
        let m = json!({"reference": "x"});
        assert!(status_not_writable(m.as_object().unwrap(), "sales_invoice").is_ok());
    }

    #[test]
    fn document_currency_must_match_contact() {
        assert!(document_currency_matches_contact("EUR", "EUR", "sales_invoice").is_ok());
        assert_eq!(
            document_currency_matches_contact("USD", "EUR", "sales_invoice")
                .unwrap_err()
                .source(),
            "sales_invoice.currency_id"
        );
    }

    #[test]
    fn html_entities_detected() {
        for bad in [
            "Widget&trade;",
            "A &amp; B",
            "x&#8482;",
            "x&#x2122;y",
            "&lt;b&gt;",
        ] {
            assert!(contains_html_entity(bad), "{bad}");
        }
        for ok in ["A & B", "AT&T", "a&;b", "&#;", "&#x;", "x & y; z", "R&D;"] {
            // "R&D;" is entity-shaped, so it is caught; everything else is fine.
            assert_eq!(contains_html_entity(ok), ok == "R&D;", "{ok}");
        }
        assert!(no_html_entities("Widget™", "s").is_ok());
        assert_eq!(
            no_html_entities("W&trade;", "sales_invoice.invoice_lines[0].description")
                .unwrap_err()
                .source(),
            "sales_invoice.invoice_lines[0].description"
        );
    }

    #[test]
    fn tax_amount_required_unless_zero_rate() {
        assert!(line_tax_amount_required(dec!(0), None, "s").is_ok());
        assert!(line_tax_amount_required(dec!(20), Some(dec!(2)), "s").is_ok());
        assert_eq!(
            line_tax_amount_required(dec!(20), None, "l[0].tax_amount")
                .unwrap_err()
                .source(),
            "l[0].tax_amount"
        );
    }

    #[test]
    fn per_line_rounding_matches_sage_example() {
        // Sage's example: 41.625 + 8.325 is 49.96 after per-line rounding.
        let l = line_amounts(dec!(1), dec!(41.625), dec!(0), dec!(8.325), false);
        assert_eq!(
            (l.net, l.tax, l.total),
            (dec!(41.63), dec!(8.33), dec!(49.96))
        );
        // Unit price is rounded before multiplying: 3 × 0.335 → 3 × 0.34 = 1.02.
        let l = line_amounts(dec!(3), dec!(0.335), dec!(0.004), dec!(0.204), false);
        assert_eq!(
            (l.unit_price, l.net, l.tax, l.total),
            (dec!(0.34), dec!(1.02), dec!(0.20), dec!(1.22))
        );
        // Quantity × price is rounded after multiplying; discount subtracted.
        let l = line_amounts(dec!(0.333), dec!(10), dec!(1.005), dec!(0), false);
        assert_eq!(l.net, dec!(3.33) - dec!(1.01));
        let l = line_amounts(dec!(1), dec!(12), dec!(0), dec!(2), true);
        assert_eq!(
            (l.net, l.tax, l.total),
            (dec!(10.00), dec!(2.00), dec!(12.00))
        );
    }

    #[test]
    fn shipping_tax_is_recomputed() {
        assert_eq!(shipping_tax(dec!(4.99), dec!(20)), dec!(1.00));
        assert_eq!(shipping_tax(dec!(4.125), dec!(20)), dec!(0.83));
        assert_eq!(shipping_tax(dec!(10), dec!(0)), dec!(0.00));
    }

    #[test]
    fn cross_border_requires_zero_rate_and_one_type() {
        let goods = Some("GOODS".to_owned());
        let services = Some("SERVICES".to_owned());
        // Domestic: anything goes.
        assert!(cross_border_lines(
            "GB",
            Some("GB"),
            &[(dec!(20), None)],
            "sales_invoice",
            "invoice_lines"
        )
        .is_ok());
        assert!(cross_border_lines(
            "GB",
            None,
            &[(dec!(20), None)],
            "sales_invoice",
            "invoice_lines"
        )
        .is_ok());
        // Abroad, zero-rated, one type.
        assert!(cross_border_lines(
            "GB",
            Some("FR"),
            &[(dec!(0), goods.clone()), (dec!(0), goods.clone())],
            "sales_invoice",
            "invoice_lines"
        )
        .is_ok());
        let e = cross_border_lines(
            "GB",
            Some("FR"),
            &[(dec!(0), goods.clone()), (dec!(0), services)],
            "sales_invoice",
            "invoice_lines",
        )
        .unwrap_err();
        assert!(e.errors[0].message.contains("must be the same"));
        assert_eq!(
            e.source(),
            "sales_invoice.invoice_lines[1].eu_goods_services_type_id"
        );
        let e = cross_border_lines(
            "GB",
            Some("US"),
            &[(dec!(20), goods)],
            "sales_credit_note",
            "credit_note_lines",
        )
        .unwrap_err();
        assert_eq!(
            e.source(),
            "sales_credit_note.credit_note_lines[0].tax_rate_id"
        );
        assert!(cross_border_lines(
            "GB",
            Some("DE"),
            &[(dec!(0), None)],
            "sales_invoice",
            "invoice_lines"
        )
        .is_err());
    }

    #[test]
    fn status_from_outstanding() {
        assert_eq!(artefact_status(dec!(10), dec!(10)), "UNPAID");
        assert_eq!(artefact_status(dec!(10), dec!(4)), "PART_PAID");
        assert_eq!(artefact_status(dec!(10), dec!(0)), "PAID");
    }

    #[test]
    fn allocation_checks() {
        assert!(same_contact("c1", "c1", "s").is_ok());
        assert!(same_contact("c1", "c2", "s").is_err());
        assert!(not_over_outstanding(dec!(5), dec!(5), "s").is_ok());
        assert!(not_over_outstanding(dec!(5.01), dec!(5), "s").is_err());
        assert!(not_over_outstanding(dec!(1), dec!(0), "s")
            .unwrap_err()
            .errors[0]
            .message
            .contains("unpaid or part-paid"));
        assert!(payment_allocation_total(dec!(10), dec!(10), false).is_ok());
        assert!(payment_allocation_total(dec!(5), dec!(10), false).is_ok());
        assert!(payment_allocation_total(dec!(11), dec!(10), false).is_err());
        assert!(payment_allocation_total(dec!(5), dec!(10), true).is_err());
        assert!(allocations_sum_to_zero(&[dec!(10), dec!(-10)]).is_ok());
        assert_eq!(
            allocations_sum_to_zero(&[dec!(10), dec!(-9.99)])
                .unwrap_err()
                .source(),
            "contact_allocation.allocated_artefacts"
        );
        assert!(allocation_sign(true, dec!(1), "s").is_ok());
        assert!(allocation_sign(true, dec!(-1), "s").is_err());
        assert!(allocation_sign(false, dec!(-1), "s").is_ok());
        assert!(allocation_sign(false, dec!(1), "s").is_err());
    }

    #[test]
    fn void_needs_a_reason_of_at_most_200_characters() {
        assert!(void_reason(None, "sales_invoice").is_err());
        assert!(void_reason(Some("  "), "sales_invoice").is_err());
        let long = "x".repeat(201);
        let e = void_reason(Some(&long), "sales_invoice").unwrap_err();
        assert_eq!(e.source(), "sales_invoice.void_reason");
        assert_eq!(
            void_reason(Some(" Canceled in Magento "), "sales_invoice").unwrap(),
            "Canceled in Magento"
        );
        assert!(void_reason(Some(&"x".repeat(200)), "sales_invoice").is_ok());
    }

    #[test]
    fn paid_or_allocated_documents_cannot_be_voided() {
        assert!(void_without_settlements(0, "sales_invoice").is_ok());
        let e = void_without_settlements(1, "sales_invoice").unwrap_err();
        assert!(format!("{e:?}").contains("delete the payments and allocations first"));
        assert!(void_without_settlements(2, "sales_credit_note").is_err());
    }

    #[test]
    fn a_void_document_is_not_voided_twice() {
        assert!(not_already_void("UNPAID", "sales_invoice").is_ok());
        assert!(not_already_void("VOID", "sales_invoice").is_err());
    }
}
