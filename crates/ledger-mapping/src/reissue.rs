//! Credit and re-issue: a Sage invoice the merchant's current settings would post
//! differently is credited in full, then posted again under a new reference.
//!
//! The credit note mirrors the Sage invoice as Sage holds it (its lines, ledger accounts, tax
//! rates and amounts, read back from Sage), not a fresh mapping of the Magento invoice: it has
//! to undo exactly what is in the books, whatever the settings were when it was posted. Each
//! line is credited at its net amount (quantity 1) with its own VAT, so the credit note comes
//! to the invoice's total to the cent.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::document::DocumentPlan;
use crate::error::{reasons, MappingError};
use crate::money::{decimal_json, money_json, round2};
use crate::rules::{fit_reference, DOCUMENT_REFERENCE_MAX};

/// The reference of the `generation`-th re-issue of an invoice whose Sage reference is
/// `reference`: `<reference>-R<generation>`, the reference's tail kept when the whole would
/// not fit Sage's 25 characters (as [`fit_reference`] does).
pub fn reissue_reference(reference: &str, generation: u32) -> String {
    let suffix = format!("-R{generation}");
    let room = DOCUMENT_REFERENCE_MAX.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", fit_reference(reference, room))
}

/// The reference of the credit note that clears an invoice before its re-issue:
/// `CR<generation>/<invoice number>`, fitted to 25 characters.
pub fn reissue_credit_reference(number: &str, generation: u32) -> String {
    crate::rules::credit_note_reference(&format!("CR{generation}"), Some(number))
}

/// How a document's lines are shown and compared: one `tax rate · ledger account` per line
/// (the two things a tax or account mapping decides), in order.
fn label(tax_rate: Option<&str>, ledger_account: Option<&str>) -> String {
    format!(
        "{} · {}",
        tax_rate.unwrap_or("no tax rate"),
        ledger_account.unwrap_or("no account")
    )
}

/// The lines of a mapped document (an invoice or a credit note) as `tax rate · ledger
/// account`.
pub fn line_labels(plan: &DocumentPlan) -> Vec<String> {
    let key = if plan.resource == "sales_credit_notes" {
        "credit_note_lines"
    } else {
        "invoice_lines"
    };
    plan.body[key]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| label(l["tax_rate_id"].as_str(), l["ledger_account_id"].as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// The lines of a Sage sales invoice (as Sage answers it) as `tax rate · ledger account`,
/// comparable with [`line_labels`].
pub fn sage_line_labels(invoice: &Value) -> Vec<String> {
    invoice["invoice_lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| label(link_id(l, "tax_rate"), link_id(l, "ledger_account")))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `plan` (the invoice mapped under the current settings) would post differently
/// from `invoice` as Sage holds it: another tax rate or ledger account on a line, another
/// number of lines, or another total.
pub fn posts_differently(invoice: &Value, plan: &DocumentPlan) -> bool {
    let total = match invoice.get("total_amount") {
        Some(_) => amount(invoice, "total_amount", "invoice").ok().map(round2),
        None => None,
    };
    sage_line_labels(invoice) != line_labels(plan) || total != Some(round2(plan.expected_total))
}

fn text<'a>(v: &'a Value, field: &str, path: &str) -> Result<&'a str, MappingError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| MappingError::invalid(format!("{path}.{field}"), reasons::MISSING))
}

fn amount(v: &Value, field: &str, path: &str) -> Result<Decimal, MappingError> {
    let parsed = match v.get(field) {
        Some(Value::String(s)) => s.trim().parse::<Decimal>().ok(),
        Some(Value::Number(n)) => n.to_string().parse::<Decimal>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| MappingError::invalid(format!("{path}.{field}"), reasons::MALFORMED))
}

fn link_id<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field)
        .and_then(|l| l.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The sales credit note that credits `invoice` (a Sage sales invoice as `GET
/// /sales_invoices/{id}` answers it) in full, dated `date`, quoting `number` (the invoice's
/// Magento number) in its reference and notes, on the invoice's contact, currency and
/// exchange rate.
///
/// Errors (`Invalid`, naming the field): a missing contact, currency, line, ledger account or
/// amount; a voided invoice (`invoice.status`); shipping carried in Sage's own shipping fields
/// (`invoice.shipping_net_amount`: Ledger posts shipping as a line, so an invoice with them was
/// not posted by Ledger); lines that do not add up to the invoice's `total_amount`.
pub fn map_reissue_credit_note(
    invoice: &Value,
    number: &str,
    generation: u32,
    date: NaiveDate,
) -> Result<DocumentPlan, MappingError> {
    let p = "invoice";
    if invoice["status"]["id"].as_str() == Some("VOID") {
        return Err(MappingError::invalid("invoice.status", "void"));
    }
    let contact_id = link_id(invoice, "contact")
        .ok_or_else(|| MappingError::invalid("invoice.contact.id", reasons::MISSING))?;
    let currency = link_id(invoice, "currency")
        .ok_or_else(|| MappingError::invalid("invoice.currency.id", reasons::MISSING))?;
    let total = round2(amount(invoice, "total_amount", p)?);
    if invoice.get("shipping_net_amount").is_some()
        && !round2(amount(invoice, "shipping_net_amount", p)?).is_zero()
    {
        return Err(MappingError::invalid(
            "invoice.shipping_net_amount",
            "not_zero",
        ));
    }
    let lines = invoice
        .get("invoice_lines")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| MappingError::invalid("invoice.invoice_lines", reasons::MISSING))?;
    let mut credit_lines = Vec::with_capacity(lines.len());
    let mut sum = Decimal::ZERO;
    for (i, line) in lines.iter().enumerate() {
        let lp = format!("invoice.invoice_lines[{i}]");
        let net = round2(amount(line, "net_amount", &lp)?);
        let tax = round2(amount(line, "tax_amount", &lp)?);
        let ledger = link_id(line, "ledger_account").ok_or_else(|| {
            MappingError::invalid(format!("{lp}.ledger_account.id"), reasons::MISSING)
        })?;
        let mut l = Map::new();
        l.insert(
            "description".into(),
            Value::String(text(line, "description", &lp)?.to_owned()),
        );
        l.insert("ledger_account_id".into(), Value::String(ledger.to_owned()));
        l.insert("quantity".into(), decimal_json(Decimal::ONE));
        l.insert("unit_price".into(), money_json(net));
        if let Some(rate) = link_id(line, "tax_rate") {
            l.insert("tax_rate_id".into(), Value::String(rate.to_owned()));
        }
        l.insert("tax_amount".into(), money_json(tax));
        for (link, field) in [
            ("product", "product_id"),
            ("service", "service_id"),
            ("eu_goods_services_type", "eu_goods_services_type_id"),
        ] {
            if let Some(id) = link_id(line, link) {
                l.insert(field.into(), Value::String(id.to_owned()));
            }
        }
        sum += net + tax;
        credit_lines.push(Value::Object(l));
    }
    if round2(sum) != total {
        return Err(MappingError::invalid(
            "invoice.total_amount",
            format!("lines_add_up_to_{}", round2(sum)),
        ));
    }
    let reference = reissue_credit_reference(number, generation);
    let original_reference = invoice["reference"].as_str().unwrap_or(number);
    let exchange_rate = match invoice.get("exchange_rate") {
        Some(_) => amount(invoice, "exchange_rate", p)?,
        None => Decimal::ONE,
    };
    let mut body = Map::new();
    body.insert("contact_id".into(), Value::String(contact_id.to_owned()));
    body.insert("date".into(), Value::String(date.to_string()));
    if let Some(d) = invoice["date"].as_str() {
        body.insert("original_invoice_date".into(), Value::String(d.to_owned()));
    }
    body.insert("reference".into(), Value::String(reference.clone()));
    body.insert("currency_id".into(), Value::String(currency.to_owned()));
    if exchange_rate != Decimal::ONE {
        body.insert("exchange_rate".into(), decimal_json(exchange_rate));
    }
    body.insert("credit_note_lines".into(), Value::Array(credit_lines));
    body.insert(
        "notes".into(),
        Value::String(format!(
            "Credits invoice {original_reference} in full; it is issued again as {} under the current settings",
            reissue_reference(original_reference, generation)
        )),
    );
    Ok(DocumentPlan {
        resource: "sales_credit_notes",
        root: "sales_credit_note",
        body: Value::Object(body),
        reference,
        magento_reference: number.to_owned(),
        date,
        currency: currency.to_owned(),
        exchange_rate,
        expected_total: total,
        rounding_line: None,
    })
}

/// Turns `plan` (a sales invoice mapped under the current settings) into its
/// `generation`-th re-issue: the reference becomes [`reissue_reference`] of
/// `posted_reference` (the reference the invoice has in Sage).
pub fn into_reissue(
    mut plan: DocumentPlan,
    posted_reference: &str,
    generation: u32,
) -> DocumentPlan {
    let reference = reissue_reference(posted_reference, generation);
    if let Some(body) = plan.body.as_object_mut() {
        body.insert("reference".into(), Value::String(reference.clone()));
        let notes = body
            .get("notes")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let line = format!("Re-issue of {posted_reference} under the current settings");
        let notes = if notes.is_empty() {
            line
        } else {
            format!("{line}. {notes}")
        };
        body.insert(
            "notes".into(),
            Value::String(crate::text::fit_text(&notes, crate::rules::DOCUMENT_NOTES_MAX).text),
        );
    }
    plan.reference = reference;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice() -> Value {
        json!({
            "id": "inv-1",
            "reference": "000100002",
            "date": "2026-11-20",
            "status": {"id": "UNPAID"},
            "contact": {"id": "c-1"},
            "currency": {"id": "GBP"},
            "exchange_rate": "1.0",
            "shipping_net_amount": "0.00",
            "total_amount": "73.44",
            "invoice_lines": [
                {"description": "Hoodie", "ledger_account": {"id": "SALES"}, "quantity": "2.0",
                 "unit_price": "22.50", "net_amount": "45.00", "tax_rate": {"id": "GB_STANDARD"},
                 "tax_amount": "9.00", "product": {"id": "p-1"}},
                {"description": "Cap", "ledger_account": {"id": "SALES"}, "quantity": "1.0",
                 "unit_price": "11.25", "net_amount": "11.25", "tax_rate": {"id": "GB_STANDARD"},
                 "tax_amount": "2.25", "product": null},
                {"description": "Shipping", "ledger_account": {"id": "CARRIAGE"}, "quantity": "1.0",
                 "unit_price": "4.95", "net_amount": "4.95", "tax_rate": {"id": "GB_STANDARD"},
                 "tax_amount": "0.99"}
            ]
        })
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    #[test]
    fn references_get_the_generation_and_fit_sage() {
        let cases = [
            ("000100002", 1, "000100002-R1"),
            ("SHOP-000100002", 2, "SHOP-000100002-R2"),
            // 25 characters already: the tail is kept, marked with "~".
            ("ABCDEFGHIJ-0123456789-XYZ", 1, "~EFGHIJ-0123456789-XYZ-R1"),
        ];
        for (reference, generation, want) in cases {
            let got = reissue_reference(reference, generation);
            assert_eq!(got, want, "{reference}");
            assert!(got.chars().count() <= DOCUMENT_REFERENCE_MAX);
        }
        assert_eq!(reissue_credit_reference("000100002", 1), "CR1/000100002");
    }

    #[test]
    fn the_credit_note_mirrors_each_sage_line_at_its_net_and_vat() {
        let plan = map_reissue_credit_note(&invoice(), "000100002", 1, date()).unwrap();
        assert_eq!(plan.resource, "sales_credit_notes");
        assert_eq!(plan.reference, "CR1/000100002");
        // 45.00 + 9.00 + 11.25 + 2.25 + 4.95 + 0.99 = 73.44, the invoice's total.
        assert_eq!(plan.expected_total, Decimal::new(7344, 2));
        let body = &plan.body;
        assert_eq!(body["contact_id"], "c-1");
        assert_eq!(body["currency_id"], "GBP");
        assert_eq!(body["original_invoice_date"], "2026-11-20");
        assert!(body.get("exchange_rate").is_none());
        let lines = body["credit_note_lines"].as_array().unwrap();
        let got: Vec<(&str, &str, &str, &str, Option<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l["ledger_account_id"].as_str().unwrap(),
                    l["unit_price"].as_str().unwrap(),
                    l["tax_rate_id"].as_str().unwrap(),
                    l["tax_amount"].as_str().unwrap(),
                    l["product_id"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("SALES", "45.00", "GB_STANDARD", "9.00", Some("p-1")),
                ("SALES", "11.25", "GB_STANDARD", "2.25", None),
                ("CARRIAGE", "4.95", "GB_STANDARD", "0.99", None),
            ]
        );
        assert!(lines.iter().all(|l| l["quantity"] == "1.0"));
    }

    #[test]
    fn what_cannot_be_credited_exactly_is_refused_naming_the_field() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut i = invoice();
            f(&mut i);
            map_reissue_credit_note(&i, "000100002", 1, date())
                .unwrap_err()
                .to_string()
        };
        let cases: [(&dyn Fn(&mut Value), &str); 6] = [
            (&|i| i["status"]["id"] = json!("VOID"), "invoice.status"),
            (&|i| i["contact"] = Value::Null, "invoice.contact.id"),
            (
                &|i| i["shipping_net_amount"] = json!("4.95"),
                "invoice.shipping_net_amount",
            ),
            (&|i| i["invoice_lines"] = json!([]), "invoice.invoice_lines"),
            (
                &|i| i["invoice_lines"][1]["tax_amount"] = json!("2.24"),
                "invoice.total_amount: lines_add_up_to_73.43",
            ),
            (
                &|i| i["invoice_lines"][0]["ledger_account"] = Value::Null,
                "invoice.invoice_lines[0].ledger_account.id",
            ),
        ];
        for (change, want) in cases {
            let got = with(change);
            assert!(got.contains(want), "{got} should name {want}");
        }
    }

    #[test]
    fn an_invoice_posts_differently_when_a_rate_an_account_or_the_total_changes() {
        let sage = invoice();
        let plan = |lines: Value, total: i64| DocumentPlan {
            resource: "sales_invoices",
            root: "sales_invoice",
            body: json!({ "invoice_lines": lines }),
            reference: "000100002".into(),
            magento_reference: "000100002".into(),
            date: date(),
            currency: "GBP".into(),
            exchange_rate: Decimal::ONE,
            expected_total: Decimal::new(total, 2),
            rounding_line: None,
        };
        let line =
            |rate: &str, account: &str| json!({"tax_rate_id": rate, "ledger_account_id": account});
        let same = json!([
            line("GB_STANDARD", "SALES"),
            line("GB_STANDARD", "SALES"),
            line("GB_STANDARD", "CARRIAGE")
        ]);
        assert_eq!(
            sage_line_labels(&sage),
            vec![
                "GB_STANDARD · SALES",
                "GB_STANDARD · SALES",
                "GB_STANDARD · CARRIAGE"
            ]
        );
        assert_eq!(
            line_labels(&plan(same.clone(), 7344)),
            sage_line_labels(&sage)
        );
        let cases = [
            (same.clone(), 7344, false),
            // Another total (a rounding or policy change).
            (same, 7343, true),
            // Another tax rate on one line.
            (
                json!([
                    line("GB_STANDARD", "SALES"),
                    line("GB_LOWER", "SALES"),
                    line("GB_STANDARD", "CARRIAGE")
                ]),
                7344,
                true,
            ),
            // Another ledger account for shipping.
            (
                json!([
                    line("GB_STANDARD", "SALES"),
                    line("GB_STANDARD", "SALES"),
                    line("GB_STANDARD", "SALES")
                ]),
                7344,
                true,
            ),
            // A line fewer.
            (
                json!([line("GB_STANDARD", "SALES"), line("GB_STANDARD", "SALES")]),
                7344,
                true,
            ),
        ];
        for (lines, total, want) in cases {
            assert_eq!(
                posts_differently(&sage, &plan(lines.clone(), total)),
                want,
                "{lines} {total}"
            );
        }
    }

    #[test]
    fn a_foreign_currency_invoice_keeps_its_rate() {
        let mut i = invoice();
        i["currency"] = json!({"id": "EUR"});
        i["exchange_rate"] = json!("0.8571428571");
        let plan = map_reissue_credit_note(&i, "000100002", 1, date()).unwrap();
        assert_eq!(plan.body["currency_id"], "EUR");
        assert_eq!(plan.body["exchange_rate"], "0.8571428571");
    }
}
