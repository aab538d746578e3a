//! Parties (who a document is billed to) → Sage contacts.

use crate::address::map_address;
use crate::policy::ContactNamePriority;
use crate::rules::{
    truncate_chars, CONTACT_NAME_MAX, CONTACT_NOTES_MAX, CONTACT_REFERENCE_MAX, EMAIL_MAX,
    PERSON_FIELD_MAX,
};
use crate::settings::B2cConsolidation;
use crate::text::{clean_text, fit_notes, fit_text};
use ledger_events::{normalise_email, Address, Customer, CustomerSnapshot, OrderContext};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// Key under which a merchant's B2C fallback contacts are kept, one per currency. It has
/// neither the `customer:` nor the `guest:` prefix, so it can never be a Magento party.
pub const CONSOLIDATED_CUSTOMER_KEY: &str = "b2c:consolidated";

/// The party a Sage contact is made for, from an order (invoice / credit memo context)
/// or from a customer account. One shape for both so a guest's first invoice and a
/// registered customer's account produce the same contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Party {
    /// Stable party key (`customer:<id>` or `guest:<email>`), the input of
    /// [`contact_reference`].
    pub customer_key: String,
    /// The person's name ("First Last").
    pub person_name: String,
    /// Company, when the billing address names one (B2B).
    pub company: Option<String>,
    /// E-mail (trimmed, lower-case).
    pub email: Option<String>,
    /// Telephone from the billing address.
    pub telephone: Option<String>,
    /// VAT / tax number as the customer entered it.
    pub tax_number: Option<String>,
    /// Billing address (Sage `main_address`).
    pub billing_address: Option<Address>,
    /// Delivery address, when different from billing.
    pub delivery_address: Option<Address>,
    /// Which name is the contact's when both a company and a person are known (the
    /// merchant's `contact_name_priority`; company unless set with
    /// [`Party::with_name_priority`]).
    pub name_priority: ContactNamePriority,
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(clean_text).filter(|s| !s.is_empty())
}

impl Party {
    /// The party of an order: the billing address names the person (and company), the
    /// VAT number comes from the billing address or else the one given at checkout.
    pub fn from_order(order: &OrderContext) -> Party {
        let billing = &order.billing_address;
        let mut person_name = clean_text(&billing.full_name());
        if person_name.is_empty() {
            let first = order.customer_firstname.as_deref().unwrap_or_default();
            let last = order.customer_lastname.as_deref().unwrap_or_default();
            person_name = clean_text(&format!("{first} {last}"));
        }
        let delivery = order
            .effective_shipping_address()
            .filter(|s| !same_place(s, billing));
        Party {
            customer_key: order.customer_key(),
            person_name,
            company: non_empty(billing.company.as_deref()),
            email: non_empty(Some(&normalise_email(&order.customer_email))),
            telephone: non_empty(billing.telephone.as_deref()),
            tax_number: non_empty(billing.vat_id.as_deref())
                .or_else(|| non_empty(order.customer_taxvat.as_deref())),
            billing_address: Some(billing.clone()),
            delivery_address: delivery,
            name_priority: ContactNamePriority::Company,
        }
    }

    /// The party of a customer account: default billing address for address, company
    /// and telephone; the account's VAT number when the address has none.
    pub fn from_customer(customer: &Customer) -> Party {
        let billing = customer.default_billing_address().cloned();
        let delivery = customer
            .default_shipping_address()
            .filter(|s| billing.as_ref().is_none_or(|b| !same_place(s, b)))
            .cloned();
        Party {
            customer_key: customer.customer_key(),
            person_name: clean_text(&customer.full_name()),
            company: billing
                .as_ref()
                .and_then(|b| non_empty(b.company.as_deref())),
            email: non_empty(Some(&normalise_email(&customer.email))),
            telephone: billing
                .as_ref()
                .and_then(|b| non_empty(b.telephone.as_deref())),
            tax_number: billing
                .as_ref()
                .and_then(|b| non_empty(b.vat_id.as_deref()))
                .or_else(|| non_empty(customer.taxvat.as_deref())),
            billing_address: billing,
            delivery_address: delivery,
            name_priority: ContactNamePriority::Company,
        }
    }

    /// [`Party::from_customer`] for a `customer.saved` snapshot.
    pub fn from_customer_snapshot(snapshot: &CustomerSnapshot) -> Party {
        Party::from_customer(&snapshot.customer)
    }

    /// The B2C fallback contact of a currency: a name and nothing else, because it
    /// stands for many buyers (each invoice still carries its buyer's address).
    pub fn consolidated(policy: &B2cConsolidation, currency: &str) -> Party {
        let name = clean_text(&policy.contact_name);
        let name = if name.is_empty() {
            "Web sales".to_owned()
        } else {
            name
        };
        Party {
            customer_key: CONSOLIDATED_CUSTOMER_KEY.to_owned(),
            person_name: format!("{name} {}", currency.trim().to_ascii_uppercase()),
            company: None,
            email: None,
            telephone: None,
            tax_number: None,
            billing_address: None,
            delivery_address: None,
            name_priority: ContactNamePriority::Company,
        }
    }

    /// The same party named by `priority` (see [`Party::display_name`]).
    pub fn with_name_priority(mut self, priority: ContactNamePriority) -> Party {
        self.name_priority = priority;
        self
    }

    /// A guest checkout (no Magento customer account).
    pub fn is_guest(&self) -> bool {
        self.customer_key.starts_with("guest:")
    }

    /// A business buyer: a company or a VAT number on the document. Such buyers need
    /// their own contact (their VAT number belongs on it, and they come back).
    pub fn is_business(&self) -> bool {
        self.company.is_some() || self.tax_number.is_some()
    }

    /// The details a contact follows from one document to the next (company and VAT
    /// number), as one comparable key: a cached contact is reused only while they match.
    pub fn business_details_key(&self) -> String {
        format!(
            "{}\u{1f}{}",
            self.company.as_deref().unwrap_or_default(),
            self.tax_number.as_deref().unwrap_or_default()
        )
    }

    /// The name Sage shows for the contact: the company when there is one, else the
    /// person; with [`ContactNamePriority::Person`] the person when there is one, else the
    /// company.
    pub fn display_name(&self) -> String {
        match (self.name_priority, &self.company) {
            (ContactNamePriority::Person, Some(company)) if self.person_name.is_empty() => {
                company.clone()
            }
            (ContactNamePriority::Person, _) | (_, None) => self.person_name.clone(),
            (ContactNamePriority::Company, Some(company)) => company.clone(),
        }
    }

    /// The company when it is not the contact's name (a person-first contact of a
    /// company), for the contact's notes.
    fn company_not_named(&self) -> Option<&str> {
        self.company
            .as_deref()
            .filter(|c| self.display_name() != *c)
    }
}

/// True when two addresses are the same place (so no separate delivery address is needed).
fn same_place(a: &Address, b: &Address) -> bool {
    a.street == b.street
        && a.city == b.city
        && a.postcode == b.postcode
        && a.country_id.eq_ignore_ascii_case(&b.country_id)
}

/// A VAT number in the form Sage validates: spaces, dots and dashes removed, upper case.
/// `None` when what is left is not plausibly a VAT number (Sage validates the format
/// and would reject the whole contact), in which case the caller keeps the original in
/// the notes instead.
fn normalise_tax_number(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '.' | '-' | '_' | '/')))
        .collect::<String>()
        .to_ascii_uppercase();
    let plausible = (4..=20).contains(&cleaned.len())
        && cleaned.chars().all(|c| c.is_ascii_alphanumeric())
        && cleaned.chars().any(|c| c.is_ascii_digit());
    plausible.then_some(cleaned)
}

/// The Sage `contacts` body (the fields inside the `contact` root) for a party.
///
/// `name` is the company when there is one, else the person (≤ 100 characters);
/// `contact_type_ids` is `["CUSTOMER"]`; `currency_id` locks the contact to the
/// document currency (Sage contacts cannot change currency after their first invoice, so
/// services keep one contact per party and currency); the e-mail goes on
/// `main_contact_person` because the POST schema has no top-level e-mail; the VAT
/// number goes to `tax_number`. Anything that does not fit Sage's limits (long address
/// lines, an over-long name, person name, e-mail or telephone, a VAT number Sage would
/// reject) is kept whole in `notes`. Every text is cleaned and cut by
/// [`crate::text::fit_text`] (HTML entities decoded, control characters stripped, cut at
/// a word boundary when one is near). `reference` should come from
/// [`contact_reference`]; it is cut to 10 characters.
pub fn map_contact(party: &Party, currency: &str, reference: &str) -> Value {
    let mut notes: Vec<String> = Vec::new();
    let name = fit_text(&party.display_name(), CONTACT_NAME_MAX);
    if let Some(full) = &name.full {
        notes.push(format!("Full name: {full}"));
    }
    if let Some(company) = party.company_not_named() {
        notes.push(format!("Company: {company}"));
    }
    let mut body = Map::new();
    body.insert("name".into(), Value::String(name.text));
    body.insert("contact_type_ids".into(), json!(["CUSTOMER"]));
    body.insert(
        "reference".into(),
        Value::String(truncate_chars(&clean_text(reference), CONTACT_REFERENCE_MAX).0),
    );
    body.insert(
        "currency_id".into(),
        Value::String(currency.trim().to_ascii_uppercase()),
    );

    if let Some(raw) = &party.tax_number {
        match normalise_tax_number(raw) {
            Some(t) => {
                body.insert("tax_number".into(), Value::String(t));
            }
            None => notes.push(format!("VAT number as entered: {raw}")),
        }
    }

    if let Some(billing) = &party.billing_address {
        let m = map_address(billing, "Billing address");
        body.insert("main_address".into(), m.json);
        notes.extend(m.overflow);
    }
    if let Some(delivery) = &party.delivery_address {
        let m = map_address(delivery, "Delivery address");
        body.insert("delivery_address".into(), m.json);
        notes.extend(m.overflow);
    }

    let mut person = Map::new();
    person.insert("contact_person_type_ids".into(), json!(["ACCOUNTS"]));
    person.insert("is_main_contact".into(), Value::Bool(true));
    let person_name = fit_text(&party.person_name, PERSON_FIELD_MAX);
    if !person_name.text.is_empty() {
        if let Some(full) = &person_name.full {
            notes.push(format!("Contact person: {full}"));
        }
        person.insert("name".into(), Value::String(person_name.text));
    }
    if let Some(email) = party.email.as_deref().map(clean_text) {
        if email.chars().count() <= EMAIL_MAX {
            if !email.is_empty() {
                person.insert("email".into(), Value::String(email));
            }
        } else {
            // A cut e-mail would be a wrong address; keep it whole in the notes instead.
            notes.push(format!("E-mail: {email}"));
        }
    }
    if let Some(phone) = &party.telephone {
        let t = fit_text(phone, PERSON_FIELD_MAX);
        if let Some(full) = &t.full {
            notes.push(format!("Telephone: {full}"));
        }
        if !t.text.is_empty() {
            person.insert("telephone".into(), Value::String(t.text));
        }
    }
    body.insert("main_contact_person".into(), Value::Object(person));

    let notes = fit_notes(&notes, CONTACT_NOTES_MAX);
    if !notes.is_empty() {
        body.insert("notes".into(), Value::String(notes));
    }
    Value::Object(body)
}

/// The Sage `contacts` body of an update (PUT) of an existing contact: [`map_contact`]
/// without `currency_id`. Sage locks a contact's currency once it has a document, and the
/// contact stays the one of its currency, so an update never sends the currency again.
/// `reference` is the contact's own (kept stable: a guest's contact adopted by the
/// registered customer keeps the guest reference).
pub fn map_contact_update(party: &Party, reference: &str) -> Value {
    let mut body = map_contact(party, "", reference);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("currency_id");
    }
    body
}

/// A contact body without the VAT number Sage refused: `tax_number` is dropped and the
/// number as the customer entered it goes first in `notes`, with Sage's reason, so the
/// contact (and the invoice waiting for it) goes through and the number is not lost.
/// The notes are cut to Sage's limit; this line comes first so it is never the one cut.
pub fn without_refused_tax_number(body: &Value, party: &Party, reason: &str) -> Value {
    let mut body = body.clone();
    let Some(obj) = body.as_object_mut() else {
        return body;
    };
    let sent = obj.remove("tax_number");
    let entered = party
        .tax_number
        .clone()
        .or_else(|| sent.and_then(|v| v.as_str().map(str::to_owned)));
    let Some(entered) = entered else {
        return body;
    };
    let reason = clean_text(reason);
    let line = if reason.is_empty() {
        format!("VAT number as entered (refused by Sage): {entered}")
    } else {
        format!("VAT number as entered (refused by Sage: {reason}): {entered}")
    };
    let mut notes = vec![line];
    if let Some(existing) = obj.get("notes").and_then(Value::as_str) {
        notes.extend(
            existing
                .lines()
                .filter(|l| !l.starts_with("VAT number as entered"))
                .map(str::to_owned),
        );
    }
    obj.insert(
        "notes".into(),
        Value::String(fit_notes(&notes, CONTACT_NOTES_MAX)),
    );
    body
}

/// Whether a document's party brings business details the contact does not have yet: a
/// company or a VAT number that differs from what was last sent for the contact (`known_*`,
/// as entered). A document without them never clears them: a business customer who leaves
/// the company off one order keeps it on the contact.
pub fn contact_details_changed(
    known_company: Option<&str>,
    known_tax_number: Option<&str>,
    party: &Party,
) -> bool {
    let differs = |new: Option<&String>, known: Option<&str>| {
        new.is_some_and(|n| known.is_none_or(|k| k.trim() != n.trim()))
    };
    differs(party.company.as_ref(), known_company)
        || differs(party.tax_number.as_ref(), known_tax_number)
}

/// Crockford's base-32 alphabet: no I, L, O or U, so a reference read out over the
/// phone cannot be misheard.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 64-bit FNV-1a: a tiny hash with a fixed definition, so references stay the same
/// across Rust versions and machines (std's hasher makes no such promise).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The Sage contact `reference` (≤ 10 characters) for a party in a currency.
///
/// Deterministic, so a retry or a second worker computes the same reference and finds
/// the contact instead of creating a twin. Sage contacts are locked to one currency, so
/// the currency is part of it. A registered customer with an id of up to six digits
/// gets a readable `C<id><CUR>` (e.g. `C1042GBP`) on the first attempt. Every other
/// party, and every retry, gets `<CUR><7 base-32 characters>` from a hash of key,
/// currency and attempt. `attempt` is for collisions: Sage keeps deleted contacts'
/// references reserved (quirk 4), so when Sage says a reference is taken by an unrelated
/// contact the service asks again with `attempt + 1`.
pub fn contact_reference(customer_key: &str, currency: &str, attempt: u32) -> String {
    let cur: String = currency
        .trim()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect::<String>()
        .to_ascii_uppercase();
    let key = customer_key.trim();
    if attempt == 0 {
        if let Some(id) = key.strip_prefix("customer:") {
            if !id.is_empty() && id.len() <= 6 && id.bytes().all(|b| b.is_ascii_digit()) {
                return format!("C{id}{cur}");
            }
        }
    }
    let mut h = fnv1a(format!("{key}|{cur}|{attempt}").as_bytes());
    let mut out = cur;
    while out.len() < CONTACT_REFERENCE_MAX {
        out.push(BASE32[(h % 32) as usize] as char);
        h /= 32;
    }
    out
}

/// Where a document's party goes in Sage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactRoute {
    /// The party's own contact (one per party and currency).
    Individual,
    /// The merchant's B2C fallback contact of the currency.
    Consolidated,
}

/// Whether a document could be consolidated, leaving aside whether it is the party's
/// first order (which only the contacts service's records can tell).
///
/// Only with consolidation on, for a guest (registered customers have an account and
/// come back by definition), who is not a business (no company, no VAT number), on a
/// document whose total is known (invoices; credit notes follow their invoice) and at or
/// below the merchant's threshold in the document currency. No threshold in the currency
/// means no consolidation in it.
pub fn b2c_candidate(
    policy: &B2cConsolidation,
    party: &Party,
    currency: &str,
    document_total: Option<Decimal>,
) -> bool {
    if !policy.enabled || !party.is_guest() || party.is_business() {
        return false;
    }
    match (document_total, policy.threshold(currency)) {
        (Some(total), Some(max)) => total >= Decimal::ZERO && total <= max,
        _ => false,
    }
}

/// The contact route of a document: [`ContactRoute::Consolidated`] for a
/// [`b2c_candidate`] that is the guest's first order with the merchant, otherwise
/// [`ContactRoute::Individual`]. A guest who comes back is a repeat customer and gets
/// their own contact from the second order on.
pub fn b2c_contact_route(
    policy: &B2cConsolidation,
    party: &Party,
    currency: &str,
    document_total: Option<Decimal>,
    first_order: bool,
) -> ContactRoute {
    if first_order && b2c_candidate(policy, party, currency, document_total) {
        ContactRoute::Consolidated
    } else {
        ContactRoute::Individual
    }
}

/// The `reference` of a B2C fallback contact: a readable `WEB<CUR>` (e.g. `WEBGBP`) on
/// the first attempt, then the hashed form of [`contact_reference`] for collisions
/// (a reference taken by another contact, deleted ones included).
pub fn fallback_contact_reference(currency: &str, attempt: u32) -> String {
    if attempt == 0 {
        let cur: String = currency
            .trim()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(3)
            .collect::<String>()
            .to_ascii_uppercase();
        return format!("WEB{cur}");
    }
    contact_reference(CONSOLIDATED_CUSTOMER_KEY, currency, attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::test_address;

    fn party() -> Party {
        Party {
            customer_key: "customer:42".into(),
            person_name: "Ada Lovelace".into(),
            company: None,
            email: Some("ada@example.com".into()),
            telephone: Some("020 7946 0000".into()),
            tax_number: None,
            billing_address: Some(test_address("GB")),
            delivery_address: None,
            name_priority: ContactNamePriority::Company,
        }
    }

    #[test]
    fn contact_body_table() {
        let mut b2b = party();
        b2b.company = Some("Analytical Engines Ltd".into());
        b2b.tax_number = Some("gb 123 4567 89".into());
        let cases = [
            (party(), "Ada Lovelace", None),
            (b2b, "Analytical Engines Ltd", Some("GB123456789")),
        ];
        for (p, name, tax) in cases {
            let body = map_contact(&p, "gbp", "C42GBP");
            assert_eq!(body["name"], json!(name));
            assert_eq!(body["contact_type_ids"], json!(["CUSTOMER"]));
            assert_eq!(body["currency_id"], json!("GBP"));
            assert_eq!(body["reference"], json!("C42GBP"));
            assert_eq!(
                body["main_contact_person"]["email"],
                json!("ada@example.com")
            );
            assert_eq!(body["main_contact_person"]["name"], json!("Ada Lovelace"));
            assert_eq!(body["main_address"]["country_id"], json!("GB"));
            assert_eq!(body.get("tax_number").and_then(Value::as_str), tax);
            assert!(
                body.get("email").is_none(),
                "no top-level email in the POST schema"
            );
            assert!(body.get("notes").is_none());
        }
    }

    #[test]
    fn contact_name_priority_table() {
        let mut b2b = party();
        b2b.company = Some("Analytical Engines Ltd".into());
        let mut company_only = party();
        company_only.person_name = String::new();
        company_only.company = Some("Engines Ltd".into());
        let table = [
            (party(), ContactNamePriority::Company, "Ada Lovelace", None),
            (party(), ContactNamePriority::Person, "Ada Lovelace", None),
            (
                b2b.clone(),
                ContactNamePriority::Company,
                "Analytical Engines Ltd",
                None,
            ),
            (
                b2b,
                ContactNamePriority::Person,
                "Ada Lovelace",
                Some("Company: Analytical Engines Ltd"),
            ),
            (
                company_only,
                ContactNamePriority::Person,
                "Engines Ltd",
                None,
            ),
        ];
        for (p, priority, name, notes) in table {
            let p = p.with_name_priority(priority);
            assert_eq!(p.display_name(), name, "{priority:?}");
            let body = map_contact(&p, "GBP", "C42GBP");
            assert_eq!(body["name"], json!(name), "{priority:?}");
            assert_eq!(
                body.get("notes").and_then(Value::as_str),
                notes,
                "{priority:?}"
            );
        }
    }

    #[test]
    fn overlong_values_go_to_notes() {
        let mut p = party();
        p.company = Some("X".repeat(120));
        p.email = Some(format!("{}@example.com", "a".repeat(100)));
        p.tax_number = Some("n/a".into());
        let body = map_contact(&p, "EUR", "REFERENCE-TOO-LONG");
        assert_eq!(body["name"].as_str().unwrap().chars().count(), 100);
        assert_eq!(body["reference"], json!("REFERENCE-"));
        assert!(body["main_contact_person"].get("email").is_none());
        assert!(body.get("tax_number").is_none());
        let notes = body["notes"].as_str().unwrap();
        assert!(notes.contains(&"X".repeat(120)));
        assert!(notes.contains("E-mail: aaaa"));
        assert!(notes.contains("VAT number as entered: n/a"));
    }

    #[test]
    fn escaped_names_reach_sage_decoded_and_cut_at_a_word() {
        let mut p = party();
        p.company = Some("Smith &amp;amp; Sons&trade; Ltd".into());
        p.person_name = "Se&aacute;n O&#39;Brien".into();
        p.telephone = Some("+44\t20 7946 0000".into());
        let body = map_contact(&p, "GBP", "C42GBP");
        assert_eq!(body["name"], json!("Smith & Sons™ Ltd"));
        assert_eq!(body["main_contact_person"]["name"], json!("Seán O'Brien"));
        assert_eq!(
            body["main_contact_person"]["telephone"],
            json!("+44 20 7946 0000")
        );
        assert!(body.get("notes").is_none());

        // 10 words of 11 characters and a space: 119 characters decoded (159 escaped).
        let long = ["Aaaaaaaaaa&amp;"; 10].join(" ");
        p.company = Some(long);
        // 53 characters; the 50 limit falls inside "Georgiou", 6 after the last space.
        p.person_name = "Maria Konstantina Alexandra Theodorakopoulou Georgiou".into();
        let body = map_contact(&p, "GBP", "C42GBP");
        let name = body["name"].as_str().unwrap();
        // The limit falls 4 characters into the ninth word: cut at the space before it.
        assert_eq!(name, ["Aaaaaaaaaa&"; 8].join(" "), "cut between words");
        let person = body["main_contact_person"]["name"].as_str().unwrap();
        assert_eq!(person, "Maria Konstantina Alexandra Theodorakopoulou");
        let notes = body["notes"].as_str().unwrap();
        assert!(notes.contains(&format!("Full name: {}", ["Aaaaaaaaaa&"; 10].join(" "))));
        assert!(
            notes.contains("Contact person: Maria Konstantina Alexandra Theodorakopoulou Georgiou")
        );
    }

    #[test]
    fn contact_update_never_sends_the_currency() {
        let mut p = party();
        p.company = Some("Analytical Engines Ltd".into());
        let body = map_contact_update(&p, "GBP1234567");
        assert!(body.get("currency_id").is_none());
        assert_eq!(body["reference"], json!("GBP1234567"));
        assert_eq!(body["name"], json!("Analytical Engines Ltd"));
    }

    #[test]
    fn refused_vat_number_moves_to_the_notes() {
        let mut p = party();
        p.tax_number = Some("GB 1234 5678".into());
        let body = map_contact(&p, "GBP", "C42GBP");
        assert_eq!(body["tax_number"], json!("GB12345678"));
        let retry =
            without_refused_tax_number(&body, &p, "tax_number: is not a valid VAT number for GB");
        assert!(retry.get("tax_number").is_none());
        assert_eq!(
            retry["notes"],
            json!("VAT number as entered (refused by Sage: tax_number: is not a valid VAT number for GB): GB 1234 5678")
        );
        // Everything else is as before.
        assert_eq!(retry["name"], body["name"]);
        assert_eq!(retry["currency_id"], json!("GBP"));

        // Notes already there (an address overflow) stay, after the VAT line; a second
        // refusal does not repeat it.
        let mut long = party();
        long.tax_number = Some("GB999".into());
        long.company = Some("Y".repeat(120));
        let body = map_contact(&long, "GBP", "C42GBP");
        let once = without_refused_tax_number(&body, &long, "invalid");
        let twice = without_refused_tax_number(&once, &long, "invalid");
        let notes = twice["notes"].as_str().unwrap();
        assert!(notes.starts_with("VAT number as entered (refused by Sage: invalid): GB999\n"));
        assert!(notes.contains(&format!("Full name: {}", "Y".repeat(120))));
        assert_eq!(notes.matches("VAT number as entered").count(), 1);
    }

    #[test]
    fn contact_details_changed_table() {
        let mut b2b = party();
        b2b.company = Some("Analytical Engines Ltd".into());
        b2b.tax_number = Some("GB123456789".into());
        let cases = [
            ("nothing new", None, None, party(), false),
            ("company arrives", None, None, b2b.clone(), true),
            (
                "same as known",
                Some("Analytical Engines Ltd"),
                Some("GB123456789"),
                b2b.clone(),
                false,
            ),
            (
                "VAT number changes",
                Some("Analytical Engines Ltd"),
                Some("GB000000000"),
                b2b.clone(),
                true,
            ),
            (
                "left off this order: kept",
                Some("Analytical Engines Ltd"),
                Some("GB123456789"),
                party(),
                false,
            ),
        ];
        for (name, company, tax, p, want) in cases {
            assert_eq!(contact_details_changed(company, tax, &p), want, "{name}");
        }
        assert_ne!(b2b.business_details_key(), party().business_details_key());
    }

    #[test]
    fn contact_reference_is_short_deterministic_and_retryable() {
        let table = [
            ("customer:42", "GBP", 0, "C42GBP"),
            ("customer:999999", "eur", 0, "C999999EUR"),
        ];
        for (key, cur, attempt, want) in table {
            assert_eq!(contact_reference(key, cur, attempt), want);
        }
        let keys = ["customer:1234567", "guest:ada@example.com", "customer:42"];
        for key in keys {
            for attempt in 0..5 {
                let r = contact_reference(key, "GBP", attempt);
                assert!(r.len() <= 10 && r.is_ascii(), "{r}");
                assert_eq!(r, contact_reference(key, "GBP", attempt), "deterministic");
            }
        }
        let guest = contact_reference("guest:ada@example.com", "GBP", 0);
        assert!(guest.starts_with("GBP") && guest.len() == 10);
        assert_ne!(guest, contact_reference("guest:ada@example.com", "GBP", 1));
        assert_ne!(guest, contact_reference("guest:ada@example.com", "EUR", 0));
        assert_ne!(guest, contact_reference("guest:bob@example.com", "GBP", 0));
        assert_ne!(contact_reference("customer:42", "GBP", 1), "C42GBP");
        // Different currencies give different contacts for the same customer.
        assert_ne!(
            contact_reference("customer:42", "GBP", 0),
            contact_reference("customer:42", "EUR", 0)
        );
    }

    #[test]
    fn contact_references_rarely_collide() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            assert!(seen.insert(contact_reference(
                &format!("guest:user{i}@example.com"),
                "GBP",
                0
            )));
        }
    }

    #[test]
    fn tax_number_normalisation() {
        let table = [
            ("GB 123 456 789", Some("GB123456789")),
            ("de-123.456.789", Some("DE123456789")),
            ("n/a", None),
            ("none", None),
            ("12", None),
        ];
        for (raw, want) in table {
            assert_eq!(normalise_tax_number(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn b2c_route_table() {
        use rust_decimal_macros::dec;
        let policy = B2cConsolidation {
            enabled: true,
            thresholds: [("GBP".to_string(), dec!(50))].into(),
            contact_name: "Web sales".into(),
        };
        let guest = Party {
            customer_key: "guest:sam@example.com".into(),
            ..party()
        };
        let guest_company = Party {
            company: Some("Sam Ltd".into()),
            ..guest.clone()
        };
        let guest_vat = Party {
            tax_number: Some("GB123456789".into()),
            ..guest.clone()
        };
        let off = B2cConsolidation::default();
        use ContactRoute::{Consolidated, Individual};
        let cases = [
            (
                "low first guest order",
                &policy,
                &guest,
                "GBP",
                Some(dec!(48)),
                true,
                Consolidated,
            ),
            (
                "at the threshold",
                &policy,
                &guest,
                "gbp",
                Some(dec!(50)),
                true,
                Consolidated,
            ),
            (
                "above the threshold",
                &policy,
                &guest,
                "GBP",
                Some(dec!(50.01)),
                true,
                Individual,
            ),
            (
                "repeat guest",
                &policy,
                &guest,
                "GBP",
                Some(dec!(10)),
                false,
                Individual,
            ),
            (
                "no threshold in EUR",
                &policy,
                &guest,
                "EUR",
                Some(dec!(10)),
                true,
                Individual,
            ),
            (
                "company is B2B",
                &policy,
                &guest_company,
                "GBP",
                Some(dec!(10)),
                true,
                Individual,
            ),
            (
                "VAT number is B2B",
                &policy,
                &guest_vat,
                "GBP",
                Some(dec!(10)),
                true,
                Individual,
            ),
            (
                "registered customer",
                &policy,
                &party(),
                "GBP",
                Some(dec!(10)),
                true,
                Individual,
            ),
            (
                "total unknown",
                &policy,
                &guest,
                "GBP",
                None,
                true,
                Individual,
            ),
            (
                "consolidation off",
                &off,
                &guest,
                "GBP",
                Some(dec!(10)),
                true,
                Individual,
            ),
        ];
        for (name, policy, party, currency, total, first, want) in cases {
            assert_eq!(
                b2c_contact_route(policy, party, currency, total, first),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn fallback_contact_is_named_per_currency_with_a_short_reference() {
        let policy = B2cConsolidation::default();
        let p = Party::consolidated(&policy, "eur");
        assert_eq!(p.customer_key, CONSOLIDATED_CUSTOMER_KEY);
        let body = map_contact(&p, "EUR", &fallback_contact_reference("eur", 0));
        assert_eq!(body["name"], json!("Web sales EUR"));
        assert_eq!(body["reference"], json!("WEBEUR"));
        assert!(body.get("main_address").is_none());
        for attempt in 1..4 {
            let r = fallback_contact_reference("EUR", attempt);
            assert!(r.len() <= 10 && r.starts_with("EUR"), "{r}");
            assert_ne!(r, fallback_contact_reference("EUR", attempt + 1));
        }
    }
}
