//! `/sales_invoices` and `/sales_credit_notes`.

use super::{
    address_country, date_field, dec_field, obj_field, render_address, require_currency,
    require_tax_rate, str_field,
};
use crate::error::ApiError;
use crate::model::{search_text, timestamp, Business, DocMeta, Record};
use crate::money::{base_amount, decimal_json, inverse_rate, money_json, round2};
use crate::rules::{self, LineAmounts};
use crate::seed;
use chrono::{DateTime, Days, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Invoices or credit notes: same shape, different names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SalesKind {
    Invoice,
    CreditNote,
}

impl SalesKind {
    pub fn root(self) -> &'static str {
        match self {
            SalesKind::Invoice => "sales_invoice",
            SalesKind::CreditNote => "sales_credit_note",
        }
    }

    pub fn collection(self) -> &'static str {
        match self {
            SalesKind::Invoice => "sales_invoices",
            SalesKind::CreditNote => "sales_credit_notes",
        }
    }

    fn lines_key(self) -> &'static str {
        match self {
            SalesKind::Invoice => "invoice_lines",
            SalesKind::CreditNote => "credit_note_lines",
        }
    }

    fn number_key(self) -> &'static str {
        match self {
            SalesKind::Invoice => "invoice_number",
            SalesKind::CreditNote => "credit_note_number",
        }
    }

    fn default_prefix(self) -> &'static str {
        match self {
            SalesKind::Invoice => "SI-",
            SalesKind::CreditNote => "SCN-",
        }
    }

    fn transaction_type(self) -> (&'static str, &'static str) {
        match self {
            SalesKind::Invoice => ("SALES_INVOICE", "Sales Invoice"),
            SalesKind::CreditNote => ("SALES_CREDIT_NOTE", "Sales Credit Note"),
        }
    }
}

/// Link object for an artefact status.
pub(crate) fn status_link(status: &str) -> Value {
    let name = match status {
        "UNPAID" => "Unpaid",
        "PART_PAID" => "Part Paid",
        "PAID" => "Paid",
        "VOID" => "Void",
        other => other,
    };
    seed::link("artefact_statuses", status, name)
}

struct Line {
    json: Map<String, Value>,
    pct: Decimal,
    tax_rate_id: Option<String>,
    eu_type: Option<String>,
    quantity: Decimal,
    amounts: LineAmounts,
}

fn check_line(biz: &Business, line: &Value, path: &str) -> Result<Line, ApiError> {
    let Some(l) = line.as_object() else {
        return Err(ApiError::invalid(path, "line: must be an object"));
    };
    let description = l
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    rules::no_html_entities(description, &format!("{path}.description"))?;
    let ledger_id = str_field(l, "ledger_account_id").unwrap_or_default();
    let ledger = biz
        .ledger_account(ledger_id)
        .filter(|la| la.visible_in_sales())
        .ok_or_else(|| {
            ApiError::missing_reference(
                format!("{path}.ledger_account_id"),
                "Couldn't find ledger account.",
            )
        })?;
    let mut item_tax_rate = None;
    let mut product = Value::Null;
    let mut service = Value::Null;
    if let Some(pid) = str_field(l, "product_id") {
        let p = biz.products.get(pid).ok_or_else(|| {
            ApiError::missing_reference(format!("{path}.product_id"), "Couldn't find product.")
        })?;
        item_tax_rate = p.meta.sales_tax_rate.clone();
        product = seed::link("products", pid, &p.meta.description);
    }
    if let Some(sid) = str_field(l, "service_id") {
        let s = biz.services.get(sid).ok_or_else(|| {
            ApiError::missing_reference(format!("{path}.service_id"), "Couldn't find service.")
        })?;
        item_tax_rate = item_tax_rate.or_else(|| s.meta.sales_tax_rate.clone());
        service = seed::link("services", sid, &s.meta.description);
    }
    // Without an explicit rate the item's, then the ledger account's default applies.
    let tax_rate_id = str_field(l, "tax_rate_id")
        .map(str::to_owned)
        .or(item_tax_rate)
        .or_else(|| ledger.tax_rate_id.map(str::to_owned));
    let pct = match &tax_rate_id {
        Some(t) => require_tax_rate(t, &format!("{path}.tax_rate_id"))?,
        None => Decimal::ZERO,
    };
    let quantity = dec_field(l, "quantity").unwrap_or(Decimal::ONE);
    let unit_price = dec_field(l, "unit_price").unwrap_or_default();
    let discount = match (
        dec_field(l, "discount_amount"),
        dec_field(l, "discount_percentage"),
    ) {
        (Some(d), _) => d,
        (None, Some(p)) => round2(round2(quantity * round2(unit_price)) * p / Decimal::from(100)),
        (None, None) => Decimal::ZERO,
    };
    let tax_amount = dec_field(l, "tax_amount");
    rules::line_tax_amount_required(pct, tax_amount, &format!("{path}.tax_amount"))?;
    let eu_type = str_field(l, "eu_goods_services_type_id").map(str::to_owned);
    if let Some(t) = &eu_type {
        if !seed::EU_GOODS_SERVICES_TYPES.iter().any(|(id, _)| id == t) {
            return Err(ApiError::missing_reference(
                format!("{path}.eu_goods_services_type_id"),
                "Couldn't find goods/services type.",
            ));
        }
    }
    let includes_tax = l
        .get("unit_price_includes_tax")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let amounts = rules::line_amounts(
        quantity,
        unit_price,
        discount,
        tax_amount.unwrap_or_default(),
        includes_tax,
    );
    let json = seed::into_map(json!({
        "id": crate::new_id(),
        "displayed_as": description,
        "description": description,
        "product": product,
        "service": service,
        "ledger_account": seed::link("ledger_accounts", &ledger.id, &format!("{} ({})", ledger.name, ledger.nominal_code)),
        "trade_of_asset": l.get("trade_of_asset").and_then(Value::as_bool).unwrap_or(false),
        "quantity": decimal_json(quantity),
        "unit_price": money_json(amounts.unit_price),
        "unit_price_includes_tax": includes_tax,
        "net_amount": money_json(amounts.net),
        "tax_rate": tax_rate_id.as_deref().map(seed::tax_rate_link).unwrap_or(Value::Null),
        "tax_amount": money_json(amounts.tax),
        "total_amount": money_json(amounts.total),
        "discount_amount": money_json(amounts.discount),
        "discount_percentage": dec_field(l, "discount_percentage").map(decimal_json).unwrap_or_else(|| json!("0.0")),
        "eu_goods_services_type": eu_type.as_deref().map(|t| seed::link("eu_goods_services_types", t, t)).unwrap_or(Value::Null),
        "analysis_type_categories": l.get("analysis_type_categories").cloned().unwrap_or_else(|| json!([])),
    }));
    Ok(Line {
        json,
        pct,
        tax_rate_id,
        eu_type,
        quantity,
        amounts,
    })
}

/// POST /sales_invoices or /sales_credit_notes.
pub(crate) fn create(
    biz: &mut Business,
    kind: SalesKind,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let r = kind.root();
    rules::status_not_writable(root, r)?;
    let reference = str_field(root, "reference").map(str::to_owned);
    if let Some(reference) = &reference {
        rules::document_reference_length(reference, r)?;
    }
    let contact_id = str_field(root, "contact_id").unwrap_or_default().to_owned();
    let contact = biz
        .live_contact(&contact_id)
        .filter(|c| c.meta.contact_type == "CUSTOMER")
        .ok_or_else(|| {
            ApiError::missing_reference(format!("{r}.contact_id"), "Couldn't find customer.")
        })?;
    let contact_meta = contact.meta.clone();
    let contact_display = super::contacts::displayed_as(&contact_meta);

    let currency = str_field(root, "currency_id")
        .unwrap_or(&contact_meta.currency)
        .to_owned();
    require_currency(&currency, &format!("{r}.currency_id"))?;
    rules::document_currency_matches_contact(&currency, &contact_meta.currency, r)?;
    if !biz.multi_currency_enabled && currency != biz.base_currency {
        return Err(ApiError::invalid(
            format!("{r}.currency_id"),
            "currency_id: foreign currencies are not enabled for this business",
        ));
    }
    // Base-currency documents always use 1, whatever was sent.
    let exchange_rate = if currency == biz.base_currency {
        Decimal::ONE
    } else {
        dec_field(root, "exchange_rate")
            .unwrap_or_else(|| seed::default_exchange_rate(&biz.base_currency, &currency))
    };
    if exchange_rate <= Decimal::ZERO {
        return Err(ApiError::invalid(
            format!("{r}.exchange_rate"),
            "exchange_rate: must be greater than 0",
        ));
    }

    let date = date_field(root, "date").unwrap_or_else(|| now.date_naive());
    rules::date_in_open_period(date, biz.accounts_start_date, biz.year_end_lockdown_date, r)?;
    let lines_key = kind.lines_key();
    let raw_lines = root
        .get(lines_key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw_lines.is_empty() {
        return Err(ApiError::invalid(
            format!("{r}.{lines_key}"),
            format!("{lines_key}: must contain at least one line"),
        ));
    }
    let mut lines = Vec::with_capacity(raw_lines.len());
    for (i, raw) in raw_lines.iter().enumerate() {
        lines.push(check_line(biz, raw, &format!("{r}.{lines_key}[{i}]"))?);
    }
    let doc_country =
        address_country(obj_field(root, "main_address")).or(contact_meta.country.clone());
    let pairs: Vec<(Decimal, Option<String>)> =
        lines.iter().map(|l| (l.pct, l.eu_type.clone())).collect();
    rules::cross_border_lines(&biz.country, doc_country.as_deref(), &pairs, r, lines_key)?;
    for addr in ["main_address", "delivery_address"] {
        if let Some(a) = obj_field(root, addr) {
            rules::address_limits(a, &format!("{r}.{addr}"))?;
        }
    }
    rules::notes_length(
        str_field(root, "notes"),
        &format!("{r}.notes"),
        rules::DOCUMENT_NOTES_MAX,
    )?;

    let shipping_net = round2(dec_field(root, "shipping_net_amount").unwrap_or_default());
    let shipping_rate = str_field(root, "shipping_tax_rate_id").map(str::to_owned);
    let shipping_pct = match &shipping_rate {
        Some(t) => require_tax_rate(t, &format!("{r}.shipping_tax_rate_id"))?,
        None => Decimal::ZERO,
    };
    let shipping_tax = rules::shipping_tax(shipping_net, shipping_pct);
    let shipping_total = shipping_net + shipping_tax;

    let net: Decimal = lines.iter().map(|l| l.amounts.net).sum::<Decimal>() + shipping_net;
    let tax: Decimal = lines.iter().map(|l| l.amounts.tax).sum::<Decimal>() + shipping_tax;
    let total = net + tax;
    let discount: Decimal = lines.iter().map(|l| l.amounts.discount).sum();
    let quantity: Decimal = lines.iter().map(|l| l.quantity).sum();

    // Tax analysis per rate, shipping included, as Sage reports it.
    let mut analysis: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for l in &lines {
        let e = analysis
            .entry(l.tax_rate_id.clone().unwrap_or_default())
            .or_default();
        e.0 += l.amounts.net;
        e.1 += l.amounts.tax;
    }
    if !shipping_net.is_zero() {
        let e = analysis
            .entry(shipping_rate.clone().unwrap_or_default())
            .or_default();
        e.0 += shipping_net;
        e.1 += shipping_tax;
    }

    let due_date = date_field(root, "due_date").or_else(|| {
        let days = contact_meta
            .input
            .get("credit_days")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        date.checked_add_days(Days::new(days))
    });
    let counter = match kind {
        SalesKind::Invoice => {
            biz.invoice_counter += 1;
            biz.invoice_counter
        }
        SalesKind::CreditNote => {
            biz.credit_note_counter += 1;
            biz.credit_note_counter
        }
    };
    let prefix = str_field(root, &format!("{}_prefix", kind.number_key()))
        .unwrap_or(kind.default_prefix())
        .to_owned();
    let number = str_field(root, kind.number_key())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{prefix}{counter}"));

    let id = crate::new_id();
    let b = |d: Decimal| money_json(base_amount(d, exchange_rate));
    let line_json: Vec<Value> = lines
        .into_iter()
        .map(|l| {
            let mut j = l.json;
            j.insert("base_currency_unit_price".into(), b(l.amounts.unit_price));
            j.insert("base_currency_net_amount".into(), b(l.amounts.net));
            j.insert("base_currency_tax_amount".into(), b(l.amounts.tax));
            j.insert("base_currency_total_amount".into(), b(l.amounts.total));
            j.insert(
                "base_currency_discount_amount".into(),
                b(l.amounts.discount),
            );
            Value::Object(j)
        })
        .collect();
    let tax_analysis: Vec<Value> = analysis
        .into_iter()
        .map(|(rate, (n, t))| {
            json!({
                "tax_rate": if rate.is_empty() { Value::Null } else { seed::tax_rate_link(&rate) },
                "net_amount": money_json(n), "tax_amount": money_json(t), "total_amount": money_json(n + t),
                "goods_amount": money_json(n), "service_amount": "0.00",
            })
        })
        .collect();
    let main_address = obj_field(root, "main_address")
        .map(render_address)
        .or_else(|| {
            contact_meta
                .input
                .get("main_address")
                .and_then(Value::as_object)
                .map(render_address)
        })
        .unwrap_or(Value::Null);
    let delivery_address = obj_field(root, "delivery_address")
        .map(render_address)
        .unwrap_or_else(|| main_address.clone());
    let (tt_id, tt_name) = kind.transaction_type();
    let mut doc = seed::into_map(json!({
        "id": id,
        "displayed_as": number,
        "$path": format!("/{}/{}", kind.collection(), id),
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
        "transaction": Value::Null,
        "transaction_type": seed::link("transaction_types", tt_id, tt_name),
        "deleted_at": Value::Null,
        "contact": seed::link("contacts", &contact_id, &contact_display),
        "contact_name": str_field(root, "contact_name").unwrap_or(&contact_meta.name),
        "contact_reference": str_field(root, "contact_reference").map(str::to_owned).or(contact_meta.reference.clone()),
        "date": date.to_string(),
        "reference": reference,
        "notes": root.get("notes").cloned().unwrap_or(Value::Null),
        "terms_and_conditions": root.get("terms_and_conditions").cloned().unwrap_or(Value::Null),
        "main_address": main_address,
        "delivery_address": delivery_address,
        "shipping_net_amount": money_json(shipping_net),
        "shipping_tax_rate": shipping_rate.as_deref().map(seed::tax_rate_link).unwrap_or(Value::Null),
        "shipping_tax_amount": money_json(shipping_tax),
        "shipping_total_amount": money_json(shipping_total),
        "net_amount": money_json(net),
        "tax_amount": money_json(tax),
        "total_amount": money_json(total),
        "total_quantity": decimal_json(quantity),
        "total_discount_amount": money_json(discount),
        "currency": seed::currency_link(&currency),
        "exchange_rate": decimal_json(exchange_rate),
        "inverse_exchange_rate": decimal_json(inverse_rate(exchange_rate)),
        "base_currency_shipping_net_amount": b(shipping_net),
        "base_currency_shipping_tax_amount": b(shipping_tax),
        "base_currency_shipping_total_amount": b(shipping_total),
        "base_currency_net_amount": b(net),
        "base_currency_tax_amount": b(tax),
        "base_currency_total_amount": b(total),
        "base_currency_total_discount_amount": b(discount),
        "outstanding_amount": money_json(total),
        "base_currency_outstanding_amount": b(total),
        "total_paid": "0.00",
        "status": status_link("UNPAID"),
        "sent": root.get("sent").and_then(Value::as_bool).unwrap_or(false),
        "void_reason": Value::Null,
        "vat_reverse_charge": root.get("vat_reverse_charge").and_then(Value::as_bool).unwrap_or(false),
        "destination_consignment": root.get("destination_consignment").and_then(Value::as_bool).unwrap_or(false),
        "tax_analysis": tax_analysis,
        "payments_allocations": [],
        "editable": true,
    }));
    doc.insert(kind.number_key().into(), Value::String(number));
    doc.insert(lines_key.into(), Value::Array(line_json));
    match kind {
        SalesKind::Invoice => {
            doc.insert(
                "due_date".into(),
                due_date
                    .map(|d| Value::String(d.to_string()))
                    .unwrap_or(Value::Null),
            );
        }
        SalesKind::CreditNote => {
            doc.insert(
                "original_invoice_date".into(),
                root.get("original_invoice_date")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
    }

    let meta = DocMeta {
        contact_id: contact_id.clone(),
        contact_name: contact_meta.name.clone(),
        currency,
        exchange_rate,
        total,
        outstanding: total,
        reference: reference.clone(),
        date,
        status: "UNPAID",
    };
    let seq = biz.seq();
    let out = Value::Object(doc.clone());
    let search = search_text([meta.reference.as_deref(), Some(meta.contact_name.as_str())]);
    let key = Some(contact_id.clone());
    let rec = Record {
        id: id.clone(),
        seq,
        created_at: now,
        updated_at: now,
        json: doc,
        meta,
        key,
        search,
    };
    match kind {
        SalesKind::Invoice => {
            biz.sales_invoices.insert(rec);
            if let Some(r) = reference {
                biz.invoice_references.entry(r).or_default().push(id);
            }
        }
        SalesKind::CreditNote => {
            biz.sales_credit_notes.insert(rec);
            if let Some(r) = reference {
                biz.credit_note_references.entry(r).or_default().push(id);
            }
        }
    }
    if let Some(c) = biz.contacts.get_mut(&contact_id) {
        c.meta.documents += 1;
    }
    super::contacts::refresh_json(biz, &contact_id);
    Ok(out)
}

/// `DELETE /sales_invoices/{id}` and `/sales_credit_notes/{id}`: voids the document as Sage
/// does. The record stays (listed, with status VOID and its `void_reason`) but owes nothing;
/// a document with payments or allocations is refused until they are deleted.
pub(crate) fn void(
    biz: &mut Business,
    kind: SalesKind,
    id: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let root = kind.root();
    let store = match kind {
        SalesKind::Invoice => &mut biz.sales_invoices,
        SalesKind::CreditNote => &mut biz.sales_credit_notes,
    };
    let rec = store.get_mut(id).ok_or_else(ApiError::not_found)?;
    rules::not_already_void(rec.meta.status, root)?;
    let settlements = rec
        .json
        .get("payments_allocations")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    rules::void_without_settlements(settlements, root)?;
    let reason = rules::void_reason(reason, root)?;
    rec.meta.status = "VOID";
    rec.meta.outstanding = Decimal::ZERO;
    rec.updated_at = now;
    let j = &mut rec.json;
    j.insert("status".into(), status_link("VOID"));
    j.insert("void_reason".into(), Value::String(reason));
    j.insert("outstanding_amount".into(), money_json(Decimal::ZERO));
    j.insert(
        "base_currency_outstanding_amount".into(),
        money_json(Decimal::ZERO),
    );
    j.insert("editable".into(), Value::Bool(false));
    j.insert("updated_at".into(), Value::String(timestamp(now)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BusinessSpec;

    fn business() -> Business {
        Business::new("biz".into(), "user".into(), &BusinessSpec::default())
    }

    fn ledger(biz: &Business, code: u32) -> String {
        biz.ledger_accounts
            .iter()
            .find(|l| l.nominal_code == code)
            .map(|l| l.id.clone())
            .expect("seeded ledger")
    }

    fn customer(biz: &mut Business, currency: &str) -> String {
        let root =
            json!({"name": "Customer", "contact_type_ids": ["CUSTOMER"], "currency_id": currency});
        let c = super::super::contacts::create(biz, root.as_object().unwrap(), Utc::now()).unwrap();
        c["id"].as_str().unwrap().to_owned()
    }

    fn invoice(biz: &mut Business, body: Value) -> Value {
        create(
            biz,
            SalesKind::Invoice,
            body.as_object().unwrap(),
            Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn exchange_rate_keeps_every_digit_sent() {
        // The yen case: ¥1,912,345 at Magento's base_to_order_rate 191.2345 is
        // £10,000.00. The mapping sends 0.00522918 (1,912,345 × 0.00522918 =
        // 9,999.9962271 → 10,000.00); 6 dp (0.005229) would give 9,999.652005 → 9,999.65.
        let mut biz = business();
        let c = customer(&mut biz, "JPY");
        let sales = ledger(&biz, 4000);
        let line = json!({"description": "Antique clock", "ledger_account_id": sales,
            "quantity": "1", "unit_price": "1912345", "tax_rate_id": "GB_ZERO", "tax_amount": "0"});
        for (rate, base) in [
            (json!("0.00522918"), "10000.00"),
            (json!("0.005229"), "9999.65"),
        ] {
            let doc = invoice(
                &mut biz,
                json!({"contact_id": c, "currency_id": "JPY", "exchange_rate": rate, "invoice_lines": [line]}),
            );
            assert_eq!(doc["total_amount"], json!("1912345.00"));
            assert_eq!(doc["base_currency_total_amount"], json!(base), "{rate}");
            assert_eq!(doc["exchange_rate"], rate, "the rate is stored as sent");
        }
        // A JSON number with all of 1 / 191.2345's digits is kept, not cut to 6 dp.
        let body: Value = serde_json::from_str(&format!(
            r#"{{"contact_id": "{c}", "currency_id": "JPY", "exchange_rate": 0.0052291819729180665622573333,
               "invoice_lines": [{line}]}}"#
        ))
        .unwrap();
        let doc = invoice(&mut biz, body);
        assert_eq!(
            doc["exchange_rate"],
            json!("0.0052291819729180665622573333")
        );
        assert_eq!(doc["base_currency_total_amount"], json!("10000.00"));
    }

    #[test]
    fn tax_inclusive_unit_price_is_the_gross() {
        // 4 × 26.24 incl. VAT = 104.96, discount 10.50 (incl. VAT) → total 94.46; the
        // tax sent (15.74) is taken out of it: net 78.72.
        let mut biz = business();
        let c = customer(&mut biz, "GBP");
        let sales = ledger(&biz, 4000);
        let doc = invoice(
            &mut biz,
            json!({"contact_id": c, "invoice_lines": [{"description": "Mug", "ledger_account_id": sales,
                "quantity": "4", "unit_price": "26.24", "unit_price_includes_tax": true,
                "discount_amount": "10.50", "tax_rate_id": "GB_STANDARD", "tax_amount": "15.74"}]}),
        );
        let l = &doc["invoice_lines"][0];
        assert_eq!(l["net_amount"], json!("78.72"));
        assert_eq!(l["tax_amount"], json!("15.74"));
        assert_eq!(l["total_amount"], json!("94.46"));
        assert_eq!(doc["total_amount"], json!("94.46"));
        assert_eq!(doc["tax_analysis"][0]["tax_amount"], json!("15.74"));
    }
}
