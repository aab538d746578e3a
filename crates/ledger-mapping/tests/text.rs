//! Clean text over real mapped bodies: whatever Magento stores (HTML-escaped once or twice,
//! control characters, Greek, Japanese, emoji), no field sent to Sage holds an entity or a
//! control character or exceeds its limit, cutting keeps the full text in the notes, and
//! cleaning is idempotent.

mod common;

use common::{settings, Doc, Line};
use ledger_mapping::rules::{
    ADDRESS_LINE_MAX, CONTACT_NAME_MAX, CONTACT_NOTES_MAX, DOCUMENT_NOTES_MAX,
    DOCUMENT_REFERENCE_MAX, EMAIL_MAX, LINE_DESCRIPTION_MAX, PERSON_FIELD_MAX, POSTAL_CODE_MAX,
};
use ledger_mapping::text::{clean_text, fit_text, WORD_BOUNDARY_WINDOW};
use ledger_mapping::{map_contact, map_sales_invoice, Party};
use proptest::prelude::*;
use serde_json::Value;

/// Named entities the generator uses, by name (without `&` and `;`).
const NAMED: &[&str] = &[
    "amp", "lt", "gt", "quot", "apos", "trade", "eacute", "nbsp", "copy", "hellip", "ndash",
];

/// Fragments of escaped Magento text, each with what it reads as once decoded.
fn entity() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "&amp;",
        "&amp;amp;",
        "&amp;#39;",
        "&amp;trade;",
        "&trade;",
        "&#39;",
        "&#x2019;",
        "&#8211;",
        "&eacute;",
        "&nbsp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&copy;",
        "&hellip;",
        "&ndash;",
        "&#0;",
        "&#x1;",
    ])
}

/// Words in several scripts; none contains `&`, `;`, whitespace or a control character.
fn word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "Ada",
        "Lovelace",
        "Salt",
        "Pepper",
        "O",
        "Brien",
        "Yoga-Mat",
        "Αθήνα",
        "Ελληνικά",
        "Σοφία",
        "東京都",
        "渋谷区",
        "株式会社",
        "ヤマダ",
        "😀",
        "👍🏽",
        "🇬🇧",
        "Café",
        "12",
        "R&D",
    ])
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        " ", "  ", "\t", "\n", "\r\n", "\u{0}", "\u{7}", "\u{85}", "\u{a0}",
    ])
}

/// Magento-ish text: words, entities and separators in any order.
fn magento_text(max_fragments: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![4 => word(), 2 => entity(), 2 => separator()],
        0..max_fragments,
    )
    .prop_map(|parts| parts.concat())
}

/// Clean text in Greek, Japanese and emoji: words joined by single spaces.
fn unicode_words(max_words: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "Αθήνα",
            "Ελληνικά",
            "Σοφία",
            "東京都",
            "渋谷区",
            "株式会社",
            "ヤマダ",
            "😀",
            "👍🏽",
            "🇬🇧",
            "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
        ]),
        1..max_words,
    )
}

/// The independent check: an HTML character reference in `s` (numeric, or a named one
/// the generator uses), if there is one.
fn find_entity(s: &str) -> Option<String> {
    for (i, _) in s.match_indices('&') {
        let rest = &s[i + 1..];
        let Some(end) = rest.find(';') else { continue };
        let body = &rest[..end];
        let numeric = body
            .strip_prefix("#x")
            .or_else(|| body.strip_prefix("#X"))
            .map(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            .or_else(|| {
                body.strip_prefix('#')
                    .map(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            })
            .unwrap_or(false);
        if numeric || NAMED.contains(&body) {
            return Some(format!("&{body};"));
        }
    }
    None
}

/// Every string in `value`, with its JSON path.
fn strings(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                strings(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                strings(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Sage's limit for a field path of a contact or document body, when it has one.
fn limit(path: &str) -> Option<usize> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let in_person = path.contains("main_contact_person");
    let in_address = path.contains("_address.");
    Some(match leaf {
        "name" if in_person => PERSON_FIELD_MAX,
        "telephone" | "mobile" if in_person => PERSON_FIELD_MAX,
        "email" => EMAIL_MAX,
        "name" | "contact_name" => CONTACT_NAME_MAX,
        "address_line_1" | "address_line_2" | "city" | "region" if in_address => ADDRESS_LINE_MAX,
        "postal_code" => POSTAL_CODE_MAX,
        "notes" if path.starts_with("contact") => CONTACT_NOTES_MAX,
        "notes" => DOCUMENT_NOTES_MAX,
        "reference" if path.starts_with("contact") => 10,
        "reference" => DOCUMENT_REFERENCE_MAX,
        _ if leaf.starts_with("description") => LINE_DESCRIPTION_MAX,
        _ => return None,
    })
}

/// No field holds an entity or a control character (line breaks only in notes, between
/// entries), none has space at its ends, and each fits its limit.
fn check_body(root: &str, body: &Value) -> Result<(), TestCaseError> {
    let mut all = Vec::new();
    strings(body, root, &mut all);
    for (path, text) in all {
        prop_assert!(
            find_entity(&text).is_none(),
            "{} holds {:?}: {:?}",
            path,
            find_entity(&text),
            text
        );
        let notes = path.ends_with(".notes");
        prop_assert!(
            !text
                .chars()
                .any(|c| c.is_control() && !(notes && c == '\n')),
            "{} holds a control character: {:?}",
            path,
            text
        );
        prop_assert_eq!(text.trim(), text.as_str(), "{} is not trimmed", path);
        if let Some(max) = limit(&path) {
            prop_assert!(
                text.chars().count() <= max,
                "{} is {} characters, limit {}",
                path,
                text.chars().count(),
                max
            );
        }
    }
    Ok(())
}

fn address(
    street: Vec<String>,
    city: String,
    region: String,
    postcode: String,
) -> ledger_events::Address {
    serde_json::from_value(serde_json::json!({
        "firstname": "A", "lastname": "B", "street": street, "city": city,
        "region": region, "postcode": postcode, "country_id": "GB"
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_contact_field_holds_an_entity_or_exceeds_its_limit(
        person in magento_text(60),
        company in proptest::option::of(magento_text(80)),
        email in magento_text(50),
        phone in magento_text(30),
        vat in magento_text(8),
        street in prop::collection::vec(magento_text(40), 1..4),
        city in magento_text(30),
        region in magento_text(30),
        postcode in magento_text(8),
    ) {
        let party = Party {
            customer_key: "customer:42".into(),
            person_name: person,
            company,
            email: Some(email),
            telephone: Some(phone),
            tax_number: Some(vat),
            billing_address: Some(address(street.clone(), city.clone(), region.clone(), postcode.clone())),
            delivery_address: Some(address(street, city, region, postcode)),
            name_priority: Default::default(),
        };
        let body = map_contact(&party, "GBP", "C42GBP");
        check_body("contact", &body)?;
        // What was cut is in the notes whole.
        let display = clean_text(&party.display_name());
        if display.chars().count() > CONTACT_NAME_MAX {
            let notes = body["notes"].as_str().unwrap_or_default();
            prop_assert!(notes.contains(&display) || notes.chars().count() >= CONTACT_NOTES_MAX - 200,
                "full name missing from notes");
        }
    }

    #[test]
    fn no_document_field_holds_an_entity_or_exceeds_its_limit(
        firstname in magento_text(30),
        lastname in magento_text(30),
        company in proptest::option::of(magento_text(80)),
        street in prop::collection::vec(magento_text(40), 1..4),
        city in magento_text(30),
        names in prop::collection::vec(magento_text(100), 1..4),
        po in magento_text(20),
    ) {
        let lines: Vec<Line> = names
            .iter()
            .map(|n| Line::new(n, rust_decimal::Decimal::ONE, rust_decimal::Decimal::TEN, rust_decimal::Decimal::from(20)))
            .collect();
        let mut invoice = Doc::new(lines).invoice();
        let billing = &mut invoice.order.billing_address;
        billing.firstname = firstname;
        billing.lastname = lastname;
        billing.company = company;
        billing.street = street;
        billing.city = city;
        invoice.order.payment.po_number = Some(po);
        let plan = map_sales_invoice(&invoice, &settings(), "CONTACT-1").unwrap();
        check_body("sales_invoice", &plan.body)?;
        let display = clean_text(&Party::from_order(&invoice.order).display_name());
        let notes = plan.body["notes"].as_str().unwrap();
        // The full name is kept unless the notes themselves were full (long line names).
        if display.chars().count() > CONTACT_NAME_MAX && notes.chars().count() + 400 < DOCUMENT_NOTES_MAX {
            prop_assert!(notes.contains(&display), "full name missing from notes");
        }
    }

    #[test]
    fn cleaning_is_idempotent(raw in magento_text(80), max in 0usize..120) {
        let once = clean_text(&raw);
        prop_assert_eq!(clean_text(&once), once.clone());
        prop_assert!(find_entity(&once).is_none(), "{:?} → {:?}", raw, once);
        let fitted = fit_text(&raw, max);
        let again = fit_text(&fitted.text, max);
        prop_assert_eq!(&again.text, &fitted.text);
        prop_assert!(!again.was_cut());
        prop_assert!(fitted.text.chars().count() <= max);
        match &fitted.full {
            Some(full) => {
                prop_assert_eq!(full, &once);
                prop_assert!(full.starts_with(&fitted.text));
            }
            None => prop_assert_eq!(&fitted.text, &once),
        }
    }

    /// Greek, Japanese and emoji come through unchanged up to the limit: the text sent is
    /// the words as given, and a cut loses at most the word-boundary window.
    #[test]
    fn unicode_survives_up_to_the_limit(words in unicode_words(40), max in 1usize..300) {
        let given = words.join(" ");
        // Escaped and spaced the way Magento might store it.
        let stored = format!("  {}\t", words.join("&nbsp;\n "));
        let fitted = fit_text(&stored, max);
        let length = given.chars().count();
        if length <= max {
            prop_assert_eq!(&fitted.text, &given);
            prop_assert!(!fitted.was_cut());
        } else {
            prop_assert!(given.starts_with(&fitted.text), "{:?} is not a start of {:?}", fitted.text, given);
            let kept = fitted.text.chars().count();
            let window = (max / 5).min(WORD_BOUNDARY_WINDOW);
            prop_assert!(kept <= max && kept + window + 1 >= max, "kept {} of limit {}", kept, max);
            prop_assert_eq!(fitted.full.as_deref(), Some(given.as_str()));
        }
    }
}

#[test]
fn the_entity_check_finds_entities() {
    assert_eq!(find_entity("Salt &amp; Pepper").as_deref(), Some("&amp;"));
    assert_eq!(find_entity("O&#39;Brien").as_deref(), Some("&#39;"));
    assert_eq!(find_entity("x&#x2019;").as_deref(), Some("&#x2019;"));
    assert_eq!(find_entity("R&D & Co; AT&T;"), None);
}

#[test]
fn an_invoice_names_its_buyer_decoded_and_keeps_long_line_names_in_its_notes() {
    // 30 words of 8 characters ("Yoga&Mat" once decoded) and 29 spaces: 269 characters,
    // over the 255 line limit.
    let long_name = ["Yoga&amp;Mat"; 30].join(" ");
    let full = ["Yoga&Mat"; 30].join(" ");
    let lines = vec![
        Line::new(&long_name, dec(1), dec(10), dec(20)),
        Line::new("Strap&trade;", dec(1), dec(5), dec(20)),
    ];
    let mut invoice = Doc::new(lines).invoice();
    invoice.order.billing_address.company = Some("Smith &amp;amp; Sons".into());
    invoice.order.payment.po_number = Some("PO&#39;42\n".into());
    let plan = map_sales_invoice(&invoice, &settings(), "CONTACT-1").unwrap();
    let b = &plan.body;
    assert_eq!(b["contact_name"], "Smith & Sons");
    let lines = b["invoice_lines"].as_array().unwrap();
    // 255 falls 3 characters into the 29th word (28 × 9 = 252 characters before it):
    // cut at the space, 28 words kept.
    assert_eq!(lines[0]["description"], ["Yoga&Mat"; 28].join(" "));
    assert_eq!(lines[1]["description"], "Strap™");
    let notes = b["notes"].as_str().unwrap();
    assert!(notes.contains("PO number: PO'42"), "{notes}");
    assert!(
        notes.contains(&format!("Line 1 in full: {full}")),
        "{notes}"
    );
    assert!(
        !notes.contains("Line 2"),
        "only cut lines are noted: {notes}"
    );
}

fn dec(n: i64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::from(n)
}
