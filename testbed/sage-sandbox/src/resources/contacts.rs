//! `/contacts`.

use super::{
    address_country, input_of, merge, obj_field, render_address, require_currency,
    require_tax_rate, str_field,
};
use crate::error::ApiError;
use crate::model::{search_text, timestamp, Business, ContactMeta, Record};
use crate::money::money_json;
use crate::rules;
use crate::seed;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Everything a contact's fields resolve to after validation.
struct Checked {
    name: String,
    reference: Option<String>,
    email: Option<String>,
    contact_type: String,
    currency: String,
    country: Option<String>,
    default_tax_rate: Option<String>,
}

/// Validates a contact's (merged) fields. `existing` is the stored contact on PUT.
fn check(
    biz: &Business,
    input: &Map<String, Value>,
    existing: Option<&Record<ContactMeta>>,
) -> Result<Checked, ApiError> {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    rules::contact_name_length(name)?;
    let types = input
        .get("contact_type_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let contact_type = rules::contact_single_type(&types)?;
    if let Some(e) = existing {
        if e.meta.documents > 0 && e.meta.contact_type != contact_type {
            return Err(ApiError::invalid(
                "contact.contact_type_ids",
                "contact_type_ids: cannot be changed once the contact has transactions",
            ));
        }
    }
    let reference = str_field(input, "reference").map(str::to_owned);
    if let Some(r) = &reference {
        rules::contact_reference_length(r)?;
        let holder = biz.contact_references.get(&rules::contact_reference_key(r));
        rules::contact_reference_unique(
            holder.map(String::as_str),
            existing.map(|e| e.id.as_str()),
        )?;
    }
    for addr in ["main_address", "delivery_address"] {
        if let Some(a) = obj_field(input, addr) {
            rules::address_limits(a, &format!("contact.{addr}"))?;
        }
    }
    if let Some(person) = obj_field(input, "main_contact_person") {
        rules::contact_person_limits(person, "contact.main_contact_person")?;
    }
    rules::notes_length(
        str_field(input, "notes"),
        "contact.notes",
        rules::CONTACT_NOTES_MAX,
    )?;
    if let Some(tax_number) = str_field(input, "tax_number") {
        let country = address_country(obj_field(input, "main_address"))
            .unwrap_or_else(|| biz.country.clone());
        rules::contact_tax_number_format(tax_number, &country)?;
    }
    let currency = str_field(input, "currency_id")
        .unwrap_or(&biz.base_currency)
        .to_owned();
    require_currency(&currency, "contact.currency_id")?;
    if !biz.multi_currency_enabled && currency != biz.base_currency {
        return Err(ApiError::invalid(
            "contact.currency_id",
            "currency_id: foreign currencies are not enabled for this business",
        ));
    }
    if let Some(e) = existing {
        rules::contact_currency_locked(&e.meta.currency, &currency, e.meta.documents)?;
    }
    for field in [
        "default_sales_ledger_account_id",
        "default_purchase_ledger_account_id",
    ] {
        if let Some(id) = str_field(input, field) {
            if biz.ledger_account(id).is_none() {
                return Err(ApiError::missing_reference(
                    format!("contact.{field}"),
                    "Couldn't find ledger account.",
                ));
            }
        }
    }
    let default_tax_rate = str_field(input, "default_sales_tax_rate_id").map(str::to_owned);
    if let Some(t) = &default_tax_rate {
        require_tax_rate(t, "contact.default_sales_tax_rate_id")?;
    }
    let email = obj_field(input, "main_contact_person")
        .and_then(|p| str_field(p, "email"))
        .map(str::to_owned);
    Ok(Checked {
        name: name.to_owned(),
        reference,
        email,
        contact_type,
        currency,
        country: address_country(obj_field(input, "main_address")),
        default_tax_rate,
    })
}

fn name_email_key(name: &str, email: Option<&str>) -> Option<(String, String)> {
    email.map(|e| (name.trim().to_lowercase(), e.trim().to_lowercase()))
}

fn index_name_email(biz: &mut Business, key: Option<(String, String)>, id: &str, add: bool) {
    let Some(key) = key else { return };
    if add {
        biz.contact_name_email
            .entry(key)
            .or_default()
            .push(id.to_owned());
    } else if let Some(ids) = biz.contact_name_email.get_mut(&key) {
        ids.retain(|x| x != id);
        if ids.is_empty() {
            biz.contact_name_email.remove(&key);
        }
    }
}

/// POST /contacts.
pub(crate) fn create(
    biz: &mut Business,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let input = input_of(root);
    let c = check(biz, &input, None)?;
    let id = crate::new_id();
    if let Some(r) = &c.reference {
        biz.contact_references
            .insert(rules::contact_reference_key(r), id.clone());
    }
    index_name_email(biz, name_email_key(&c.name, c.email.as_deref()), &id, true);
    let meta = ContactMeta {
        name: c.name,
        reference: c.reference,
        email: c.email,
        contact_type: c.contact_type,
        currency: c.currency,
        country: c.country,
        deleted: false,
        documents: 0,
        default_tax_rate: c.default_tax_rate,
        input,
    };
    let seq = biz.seq();
    let key = meta.email.as_deref().map(str::to_lowercase);
    let search = search_text([Some(meta.name.as_str()), meta.reference.as_deref()]);
    let mut rec = Record {
        id: id.clone(),
        seq,
        created_at: now,
        updated_at: now,
        json: Map::new(),
        meta,
        key,
        search,
    };
    rec.json = render(biz, &rec, None);
    let out = Value::Object(rec.json.clone());
    biz.contacts.insert(rec);
    Ok(out)
}

/// PUT /contacts/{id}.
pub(crate) fn update(
    biz: &mut Business,
    id: &str,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let existing = biz.live_contact(id).ok_or_else(ApiError::not_found)?;
    let input = merge(&existing.meta.input, root);
    let c = check(biz, &input, Some(existing))?;
    let old_ref = existing.meta.reference.clone();
    let old_key = name_email_key(&existing.meta.name, existing.meta.email.as_deref());
    let new_key = name_email_key(&c.name, c.email.as_deref());
    if old_ref != c.reference {
        if let Some(r) = old_ref {
            biz.contact_references
                .remove(&rules::contact_reference_key(&r));
        }
        if let Some(r) = &c.reference {
            biz.contact_references
                .insert(rules::contact_reference_key(r), id.to_owned());
        }
    }
    if old_key != new_key {
        index_name_email(biz, old_key, id, false);
        index_name_email(biz, new_key, id, true);
    }
    let rec = biz.contacts.get_mut(id).ok_or_else(ApiError::not_found)?;
    rec.meta.name = c.name;
    rec.meta.reference = c.reference;
    rec.meta.email = c.email;
    rec.meta.contact_type = c.contact_type;
    rec.meta.currency = c.currency;
    rec.meta.country = c.country;
    rec.meta.default_tax_rate = c.default_tax_rate;
    rec.meta.input = input;
    rec.updated_at = now;
    rec.search = search_text([Some(rec.meta.name.as_str()), rec.meta.reference.as_deref()]);
    let email_key = rec.meta.email.as_deref().map(str::to_lowercase);
    biz.contacts.set_key(id, email_key);
    let rec = biz
        .contacts
        .get(id)
        .ok_or_else(ApiError::not_found)?
        .clone();
    let json = render(biz, &rec, None);
    let stored = biz.contacts.get_mut(id).ok_or_else(ApiError::not_found)?;
    stored.json = json.clone();
    Ok(Value::Object(json))
}

/// DELETE /contacts/{id}: a soft delete; the reference stays reserved.
pub(crate) fn delete(biz: &mut Business, id: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
    let existing = biz.live_contact(id).ok_or_else(ApiError::not_found)?;
    if existing.meta.documents > 0 {
        return Err(ApiError::invalid(
            "",
            "The contact cannot be deleted because it has transactions.",
        ));
    }
    let key = name_email_key(&existing.meta.name, existing.meta.email.as_deref());
    index_name_email(biz, key, id, false);
    let rec = biz.contacts.get_mut(id).ok_or_else(ApiError::not_found)?;
    rec.meta.deleted = true;
    rec.updated_at = now;
    let rec = rec.clone();
    let json = render(biz, &rec, Some(now));
    if let Some(stored) = biz.contacts.get_mut(id) {
        stored.json = json;
    }
    Ok(())
}

/// Rebuilds a stored contact's JSON (after its document count changes).
pub(crate) fn refresh_json(biz: &mut Business, id: &str) {
    if let Some(rec) = biz.contacts.get(id).cloned() {
        let json = render(biz, &rec, None);
        if let Some(stored) = biz.contacts.get_mut(id) {
            stored.json = json;
        }
    }
}

/// How the contact appears in lists and links.
pub(crate) fn displayed_as(meta: &ContactMeta) -> String {
    match &meta.reference {
        Some(r) => format!("{} ({r})", meta.name),
        None => meta.name.clone(),
    }
}

fn render(
    biz: &Business,
    rec: &Record<ContactMeta>,
    deleted_at: Option<DateTime<Utc>>,
) -> Map<String, Value> {
    let m = &rec.meta;
    let input = &m.input;
    let ledger_link = |field: &str| {
        str_field(input, field)
            .and_then(|id| biz.ledger_account(id))
            .map(|l| {
                seed::link(
                    "ledger_accounts",
                    &l.id,
                    &format!("{} ({})", l.name, l.nominal_code),
                )
            })
            .unwrap_or(Value::Null)
    };
    let type_name = seed::CONTACT_TYPES
        .iter()
        .find(|t| t.0 == m.contact_type)
        .map(|t| t.1)
        .unwrap_or("");
    let main_address = obj_field(input, "main_address")
        .map(render_address)
        .unwrap_or(Value::Null);
    // Sage copies the billing address into delivery_address when none is sent.
    let delivery_address = obj_field(input, "delivery_address")
        .map(render_address)
        .unwrap_or_else(|| main_address.clone());
    let mut out = seed::into_map(json!({
        "id": rec.id,
        "displayed_as": displayed_as(m),
        "$path": format!("/contacts/{}", rec.id),
        "created_at": timestamp(rec.created_at),
        "updated_at": timestamp(rec.updated_at),
        "contact_types": [seed::link("contact_types", &m.contact_type, type_name)],
        "name": m.name,
        "reference": m.reference,
        "email": m.email,
        "currency": seed::currency_link(&m.currency),
        "default_sales_ledger_account": ledger_link("default_sales_ledger_account_id"),
        "default_purchase_ledger_account": ledger_link("default_purchase_ledger_account_id"),
        "default_sales_tax_rate": m.default_tax_rate.as_deref().map(seed::tax_rate_link).unwrap_or(Value::Null),
        "main_address": main_address,
        "delivery_address": delivery_address,
        "main_contact_person": input.get("main_contact_person").cloned().unwrap_or(Value::Null),
        "credit_limit": super::dec_field(input, "credit_limit").map(money_json).unwrap_or(Value::Null),
        "balance": "0.00",
        "system": false,
        "deletable": m.documents == 0 && !m.deleted,
        "gb_based": m.country.as_deref().is_none_or(|c| c == "GB"),
        "ni_based": false,
        "has_unfinished_recurring_invoices": false,
        "deleted_at": deleted_at.map(timestamp),
    }));
    for (k, v) in input {
        let handled = out.contains_key(k.as_str())
            || matches!(
                k.as_str(),
                "contact_type_ids"
                    | "currency_id"
                    | "default_sales_ledger_account_id"
                    | "default_purchase_ledger_account_id"
                    | "default_sales_tax_rate_id"
            );
        if !handled {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}
