//! `/contact_payments` and `/contact_allocations`.

use super::{date_field, dec_field, require_currency, str_field};
use crate::error::ApiError;
use crate::model::{
    search_text, timestamp, AllocationMeta, ArtefactKind, Business, DocMeta, PaymentMeta, Record,
};
use crate::money::{base_amount, decimal_json, money_json, round2};
use crate::rules;
use crate::seed;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

fn artefact_collection(kind: ArtefactKind) -> &'static str {
    match kind {
        ArtefactKind::SalesInvoice => "sales_invoices",
        ArtefactKind::SalesCreditNote => "sales_credit_notes",
        ArtefactKind::PaymentOnAccount => "payments_on_account",
    }
}

/// One validated entry of `allocated_artefacts`.
struct Allocation {
    kind: ArtefactKind,
    artefact_id: String,
    displayed_as: String,
    /// Signed amount as sent (allocations) or positive (payments).
    amount: Decimal,
    discount: Decimal,
    /// The artefact's own exchange rate (its base amounts are at this rate).
    rate: Decimal,
}

/// Rule "Sage books the realised exchange difference": the base-currency gain (positive) or
/// loss (negative) of a payment whose base amount differs from the base amount of what it
/// settles at the documents' own rates. Each allocation's share of the payment's base total
/// is `base_total × amount / total`; its share of the documents' base is `amount × rate`. A
/// receipt that brings more base money than the invoice's base amount is a gain; a refund that
/// pays out more than the credit note's base amount is a loss.
pub fn realised_exchange_difference(
    total: Decimal,
    base_total: Decimal,
    allocations: &[(Decimal, Decimal)],
    is_refund: bool,
) -> Decimal {
    if total.is_zero() {
        return Decimal::ZERO;
    }
    let mut difference = Decimal::ZERO;
    for (amount, rate) in allocations {
        let paid_base = round2(base_total * amount / total);
        let document_base = base_amount(*amount, *rate);
        difference += paid_base - document_base;
    }
    if is_refund {
        -difference
    } else {
        difference
    }
}

fn require_customer(biz: &Business, root: &str, contact_id: &str) -> Result<String, ApiError> {
    biz.live_contact(contact_id)
        .filter(|c| c.meta.contact_type == "CUSTOMER")
        .map(|c| c.meta.currency.clone())
        .ok_or_else(|| {
            ApiError::missing_reference(format!("{root}.contact_id"), "Couldn't find customer.")
        })
}

/// Reduces an artefact's outstanding amount and moves its status.
fn settle(
    biz: &mut Business,
    a: &Allocation,
    settled_by: Value,
    date: NaiveDate,
    now: DateTime<Utc>,
) {
    let Some(rec) = biz.artefact_mut(a.kind, &a.artefact_id) else {
        return;
    };
    let amount = a.amount.abs() + a.discount;
    rec.meta.outstanding -= amount;
    rec.meta.status = rules::artefact_status(rec.meta.total, rec.meta.outstanding);
    rec.updated_at = now;
    let rate = rec.meta.exchange_rate;
    let j = &mut rec.json;
    j.insert(
        "outstanding_amount".into(),
        money_json(rec.meta.outstanding),
    );
    j.insert(
        "base_currency_outstanding_amount".into(),
        money_json(base_amount(rec.meta.outstanding, rate)),
    );
    j.insert(
        "total_paid".into(),
        money_json(rec.meta.total - rec.meta.outstanding),
    );
    j.insert("status".into(), super::sales::status_link(rec.meta.status));
    j.insert("updated_at".into(), Value::String(timestamp(now)));
    if let Some(Value::Array(list)) = j.get_mut("payments_allocations") {
        list.push(
            json!({"link": settled_by, "date": date.to_string(), "amount": money_json(amount)}),
        );
    }
}

/// POST /bank_accounts: a new bank account (e.g. a payment gateway's clearing account) with
/// its own bank ledger account. Needs `bank_account_details.account_name`; the type defaults to
/// `CHECKING` and the currency to the base currency. A repeated `idempotency_id` answers the
/// account it created first.
pub(crate) fn create_bank_account(biz: &mut Business, body: &[u8]) -> Result<Value, ApiError> {
    let r = "bank_account";
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("", format!("The request body is not valid JSON: {e}")))?;
    let root = json
        .get(r)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = root
        .get("bank_account_details")
        .and_then(|d| d.get("account_name"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                format!("{r}.bank_account_details.account_name"),
                "account_name: can't be blank",
            )
        })?
        .to_owned();
    let account_type: &'static str =
        match str_field(&root, "bank_account_type_id").unwrap_or("CHECKING") {
            "CHECKING" => "CHECKING",
            "SAVINGS" => "SAVINGS",
            "CREDIT_CARD" => "CREDIT_CARD",
            "CASH_IN_HAND" => "CASH_IN_HAND",
            "LOAN" => "LOAN",
            "STRIPE" => "STRIPE",
            "OTHER" => "OTHER",
            _ => {
                return Err(ApiError::missing_reference(
                    format!("{r}.bank_account_type_id"),
                    "Couldn't find bank account type.",
                ))
            }
        };
    let currency = str_field(&root, "currency_id")
        .unwrap_or(&biz.base_currency)
        .to_ascii_uppercase();
    require_currency(&currency, &format!("{r}.currency_id"))?;
    if let Some(key) = str_field(&root, "idempotency_id") {
        if let Some(existing) = biz
            .bank_accounts
            .iter()
            .find(|b| b.idempotency_id.as_deref() == Some(key))
        {
            return Ok(Value::Object(existing.to_json()));
        }
    }
    let nominal_code = biz
        .ledger_accounts
        .iter()
        .filter(|l| l.ledger_account_type == "BANK" && (1250..1300).contains(&l.nominal_code))
        .map(|l| l.nominal_code + 1)
        .max()
        .unwrap_or(1250);
    let ledger = seed::LedgerAccount {
        id: crate::new_id(),
        nominal_code,
        name: "Clearing account",
        ledger_account_type: "BANK",
        tax_rate_id: None,
    };
    let account = seed::BankAccount {
        id: crate::new_id(),
        name,
        currency,
        nominal_code,
        ledger_account_id: ledger.id.clone(),
        default_payment_method: "CREDIT_DEBIT",
        account_type,
        active: true,
        idempotency_id: str_field(&root, "idempotency_id").map(str::to_owned),
    };
    biz.ledger_accounts.push(ledger);
    let out = Value::Object(account.to_json());
    biz.bank_accounts.push(account);
    Ok(out)
}

/// POST /contact_payments.
pub(crate) fn create_payment(
    biz: &mut Business,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let r = "contact_payment";
    let tt = str_field(root, "transaction_type_id").unwrap_or_default();
    let is_refund = match tt {
        "CUSTOMER_RECEIPT" => false,
        "CUSTOMER_REFUND" => true,
        "VENDOR_PAYMENT" | "VENDOR_REFUND" => {
            return Err(ApiError::invalid(
                format!("{r}.transaction_type_id"),
                "transaction_type_id: purchase payments are not supported by the sandbox",
            ));
        }
        _ => {
            return Err(ApiError::missing_reference(
                format!("{r}.transaction_type_id"),
                "Couldn't find transaction type.",
            ))
        }
    };
    let contact_id = str_field(root, "contact_id").unwrap_or_default().to_owned();
    let contact_currency = require_customer(biz, r, &contact_id)?;
    let bank = biz
        .bank_account(str_field(root, "bank_account_id").unwrap_or_default())
        .cloned()
        .ok_or_else(|| {
            ApiError::missing_reference(
                format!("{r}.bank_account_id"),
                "Couldn't find bank account.",
            )
        })?;
    let method = str_field(root, "payment_method_id")
        .unwrap_or(bank.default_payment_method)
        .to_owned();
    let method_name = seed::payment_method_name(&method).ok_or_else(|| {
        ApiError::missing_reference(
            format!("{r}.payment_method_id"),
            "Couldn't find payment method.",
        )
    })?;
    let currency = str_field(root, "currency_id")
        .unwrap_or(&contact_currency)
        .to_owned();
    require_currency(&currency, &format!("{r}.currency_id"))?;
    rules::document_currency_matches_contact(&currency, &contact_currency, r)?;
    // Sage: a payment's exchange_rate defaults to 1 when omitted.
    let exchange_rate = if currency == biz.base_currency {
        Decimal::ONE
    } else {
        dec_field(root, "exchange_rate").unwrap_or(Decimal::ONE)
    };
    if exchange_rate <= Decimal::ZERO {
        return Err(ApiError::invalid(
            format!("{r}.exchange_rate"),
            "exchange_rate: must be greater than 0",
        ));
    }
    let total = round2(dec_field(root, "total_amount").unwrap_or_default());
    if total <= Decimal::ZERO {
        return Err(ApiError::invalid(
            format!("{r}.total_amount"),
            "total_amount: must be greater than 0",
        ));
    }
    let date = date_field(root, "date").unwrap_or_else(|| now.date_naive());
    rules::date_in_open_period(date, biz.accounts_start_date, biz.year_end_lockdown_date, r)?;
    let reference = str_field(root, "reference").map(str::to_owned);

    let raw = root
        .get("allocated_artefacts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut allocations = Vec::new();
    let mut pending: HashMap<String, Decimal> = HashMap::new();
    let mut allocated = Decimal::ZERO;
    for (i, entry) in raw.iter().enumerate() {
        let src = format!("{r}.allocated_artefacts[{i}]");
        let e = entry.as_object().cloned().unwrap_or_default();
        let artefact_id = str_field(&e, "artefact_id")
            .ok_or_else(|| {
                ApiError::invalid(format!("{src}.artefact_id"), "artefact_id: can't be blank")
            })?
            .to_owned();
        let amount =
            round2(dec_field(&e, "amount").ok_or_else(|| {
                ApiError::invalid(format!("{src}.amount"), "amount: can't be blank")
            })?);
        if amount <= Decimal::ZERO {
            return Err(ApiError::invalid(
                format!("{src}.amount"),
                "amount: must be greater than 0",
            ));
        }
        let discount = round2(dec_field(&e, "discount").unwrap_or_default());
        if discount < Decimal::ZERO {
            return Err(ApiError::invalid(
                format!("{src}.discount"),
                "discount: must not be negative",
            ));
        }
        let (kind, rec) = biz.artefact(&artefact_id).ok_or_else(|| {
            ApiError::missing_reference(format!("{src}.artefact_id"), "Couldn't find artefact.")
        })?;
        rules::same_contact(
            &rec.meta.contact_id,
            &contact_id,
            &format!("{src}.artefact_id"),
        )?;
        // Implied by the contact's single currency; checked anyway so a
        // contact currency change can never produce a mixed-currency payment.
        if rec.meta.currency != currency {
            return Err(ApiError::invalid(
                format!("{src}.artefact_id"),
                "artefact_id: must be in the payment's currency",
            ));
        }
        let kind_ok = if is_refund {
            kind != ArtefactKind::SalesInvoice
        } else {
            kind == ArtefactKind::SalesInvoice
        };
        if !kind_ok {
            let msg = if is_refund {
                "artefact_id: a customer refund can only be allocated to a credit note or payment on account"
            } else {
                "artefact_id: a customer receipt can only be allocated to a sales invoice"
            };
            return Err(ApiError::invalid(format!("{src}.artefact_id"), msg));
        }
        let running = pending.entry(artefact_id.clone()).or_default();
        *running += amount + discount;
        rules::not_over_outstanding(*running, rec.meta.outstanding, &format!("{src}.amount"))?;
        allocated += amount;
        allocations.push(Allocation {
            kind,
            displayed_as: rec
                .json
                .get("displayed_as")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            artefact_id,
            amount,
            discount,
            rate: rec.meta.exchange_rate,
        });
    }
    rules::payment_allocation_total(allocated, total, is_refund)?;
    // The base amount received, when sent, is what the bank got: the payment's base figures
    // follow it (not `total × exchange_rate`), and the difference from the documents' base
    // amounts is booked to exchange gains and losses.
    let base_total = match dec_field(root, "base_currency_total_amount").map(round2) {
        Some(base) if currency != biz.base_currency => {
            if base <= Decimal::ZERO {
                return Err(ApiError::invalid(
                    format!("{r}.base_currency_total_amount"),
                    "base_currency_total_amount: must be greater than 0",
                ));
            }
            base
        }
        _ => base_amount(total, exchange_rate),
    };
    let realised = if currency == biz.base_currency {
        Decimal::ZERO
    } else {
        let shares: Vec<(Decimal, Decimal)> =
            allocations.iter().map(|a| (a.amount, a.rate)).collect();
        realised_exchange_difference(total, base_total, &shares, is_refund)
    };

    let id = crate::new_id();
    let (tt_name, displayed) = if is_refund {
        ("Customer Refund", "Customer Refund")
    } else {
        ("Customer Receipt", "Customer Receipt")
    };
    let self_link = seed::link(
        "contact_payments",
        &id,
        reference.as_deref().unwrap_or(displayed),
    );
    for a in &allocations {
        settle(biz, a, self_link.clone(), date, now);
    }
    let excess = total - allocated;
    let mut payment_on_account = Value::Null;
    if !is_refund && excess > Decimal::ZERO {
        let poa_id = crate::new_id();
        let poa = seed::into_map(json!({
            "id": poa_id,
            "displayed_as": reference.as_deref().unwrap_or("Payment on Account"),
            "$path": format!("/payments_on_account/{poa_id}"),
            "transaction_type": seed::link("transaction_types", "CUSTOMER_PAYMENT_ON_ACCOUNT", "Customer Payment on Account"),
            "contact": seed::link("contacts", &contact_id, &contact_id),
            "date": date.to_string(),
            "reference": reference,
            "net_amount": money_json(excess),
            "tax_amount": "0.00",
            "total_amount": money_json(excess),
            "outstanding_amount": money_json(excess),
            "currency": seed::currency_link(&currency),
            "exchange_rate": decimal_json(exchange_rate),
            "base_currency_total_amount": money_json(base_amount(excess, exchange_rate)),
            "base_currency_outstanding_amount": money_json(base_amount(excess, exchange_rate)),
            "status": super::sales::status_link("UNPAID"),
            "total_paid": "0.00",
            "payments_allocations": [],
        }));
        payment_on_account = Value::Object(poa.clone());
        let seq = biz.seq();
        biz.payments_on_account.insert(Record {
            id: poa_id,
            seq,
            created_at: now,
            updated_at: now,
            json: poa,
            key: Some(contact_id.clone()),
            search: search_text([reference.as_deref()]),
            meta: DocMeta {
                contact_id: contact_id.clone(),
                contact_name: String::new(),
                currency: currency.clone(),
                exchange_rate,
                total: excess,
                outstanding: excess,
                reference: reference.clone(),
                date,
                status: "UNPAID",
            },
        });
    }
    let allocated_json: Vec<Value> = allocations
        .iter()
        .map(|a| {
            json!({
                "id": crate::new_id(),
                "artefact": seed::link(artefact_collection(a.kind), &a.artefact_id, &a.displayed_as),
                "amount": money_json(a.amount),
                "discount": money_json(a.discount),
            })
        })
        .collect();
    let doc = seed::into_map(json!({
        "id": id,
        "displayed_as": reference.as_deref().unwrap_or(displayed),
        "$path": format!("/contact_payments/{id}"),
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
        "transaction": Value::Null,
        "transaction_type": seed::link("transaction_types", tt, tt_name),
        "deleted_at": Value::Null,
        "payment_method": seed::link("payment_methods", &method, method_name),
        "contact": seed::link("contacts", &contact_id, &contact_id),
        "bank_account": seed::link("bank_accounts", &bank.id, &bank.name),
        "date": date.to_string(),
        "net_amount": money_json(total),
        "tax_amount": "0.00",
        "total_amount": money_json(total),
        "currency": seed::currency_link(&currency),
        "exchange_rate": decimal_json(exchange_rate),
        "base_currency_net_amount": money_json(base_total),
        "base_currency_tax_amount": "0.00",
        "base_currency_total_amount": money_json(base_total),
        // Sandbox view of the journal Sage posts to the exchange gain/loss ledger
        // (default_ledger_accounts.exchange_rate_gains/losses): positive is a gain.
        "realised_exchange_gain_loss": money_json(realised),
        "base_currency_currency_charge": dec_field(root, "base_currency_currency_charge").map(money_json).unwrap_or_else(|| json!("0.00")),
        "reference": reference,
        "allocated_artefacts": allocated_json,
        "tax_rate": Value::Null,
        "payment_on_account": payment_on_account,
        "editable": true,
        "deletable": true,
    }));
    let out = Value::Object(doc.clone());
    let seq = biz.seq();
    biz.contact_payments.insert(Record {
        id,
        seq,
        created_at: now,
        updated_at: now,
        json: doc,
        key: Some(contact_id.clone()),
        search: search_text([reference.as_deref()]),
        meta: PaymentMeta {
            bank_account_id: bank.id,
            transaction_type: tt.to_owned(),
            date,
        },
    });
    Ok(out)
}

/// POST /contact_allocations.
pub(crate) fn create_allocation(
    biz: &mut Business,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let r = "contact_allocation";
    let tt = str_field(root, "transaction_type_id").unwrap_or_default();
    match tt {
        "CUSTOMER_ALLOCATION" => {}
        "VENDOR_ALLOCATION" => {
            return Err(ApiError::invalid(
                format!("{r}.transaction_type_id"),
                "transaction_type_id: purchase allocations are not supported by the sandbox",
            ));
        }
        _ => {
            return Err(ApiError::missing_reference(
                format!("{r}.transaction_type_id"),
                "Couldn't find transaction type.",
            ))
        }
    }
    let contact_id = str_field(root, "contact_id").unwrap_or_default().to_owned();
    require_customer(biz, r, &contact_id)?;
    let date = date_field(root, "date").unwrap_or_else(|| now.date_naive());
    rules::date_in_open_period(date, biz.accounts_start_date, biz.year_end_lockdown_date, r)?;
    let raw = root
        .get("allocated_artefacts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.len() < 2 {
        return Err(ApiError::invalid(
            format!("{r}.allocated_artefacts"),
            "allocated_artefacts: at least two artefacts are needed",
        ));
    }
    let mut allocations = Vec::new();
    let mut pending: HashMap<String, Decimal> = HashMap::new();
    for (i, entry) in raw.iter().enumerate() {
        let src = format!("{r}.allocated_artefacts[{i}]");
        let e = entry.as_object().cloned().unwrap_or_default();
        let artefact_id = str_field(&e, "artefact_id")
            .ok_or_else(|| {
                ApiError::invalid(format!("{src}.artefact_id"), "artefact_id: can't be blank")
            })?
            .to_owned();
        let amount =
            round2(dec_field(&e, "amount").ok_or_else(|| {
                ApiError::invalid(format!("{src}.amount"), "amount: can't be blank")
            })?);
        let (kind, rec) = biz.artefact(&artefact_id).ok_or_else(|| {
            ApiError::missing_reference(format!("{src}.artefact_id"), "Couldn't find artefact.")
        })?;
        rules::same_contact(
            &rec.meta.contact_id,
            &contact_id,
            &format!("{src}.artefact_id"),
        )?;
        rules::allocation_sign(
            kind == ArtefactKind::SalesInvoice,
            amount,
            &format!("{src}.amount"),
        )?;
        let running = pending.entry(artefact_id.clone()).or_default();
        *running += amount.abs();
        rules::not_over_outstanding(*running, rec.meta.outstanding, &format!("{src}.amount"))?;
        allocations.push(Allocation {
            kind,
            displayed_as: rec
                .json
                .get("displayed_as")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            artefact_id,
            amount,
            discount: Decimal::ZERO,
            rate: rec.meta.exchange_rate,
        });
    }
    let amounts: Vec<Decimal> = allocations.iter().map(|a| a.amount).collect();
    rules::allocations_sum_to_zero(&amounts)?;

    let id = crate::new_id();
    let self_link = seed::link("contact_allocations", &id, "Customer Allocation");
    for a in &allocations {
        settle(biz, a, self_link.clone(), date, now);
    }
    let allocated_json: Vec<Value> = allocations
        .iter()
        .map(|a| {
            json!({
                "id": crate::new_id(),
                "artefact": seed::link(artefact_collection(a.kind), &a.artefact_id, &a.displayed_as),
                "amount": money_json(a.amount),
            })
        })
        .collect();
    let doc = seed::into_map(json!({
        "id": id,
        "displayed_as": "Customer Allocation",
        "$path": format!("/contact_allocations/{id}"),
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
        "transaction": Value::Null,
        "transaction_type": seed::link("transaction_types", tt, "Customer Allocation"),
        "deleted_at": Value::Null,
        "date": date.to_string(),
        "contact": seed::link("contacts", &contact_id, &contact_id),
        "allocated_artefacts": allocated_json,
    }));
    let out = Value::Object(doc.clone());
    let seq = biz.seq();
    biz.contact_allocations.insert(Record {
        id,
        seq,
        created_at: now,
        updated_at: now,
        json: doc,
        key: Some(contact_id.clone()),
        search: String::new(),
        meta: AllocationMeta {
            transaction_type: tt.to_owned(),
            date,
        },
    });
    Ok(out)
}

/// Gives back to an artefact what a deleted payment or allocation had settled on it, and drops
/// that settlement from its `payments_allocations`.
fn unsettle(biz: &mut Business, artefact_id: &str, amount: Decimal, by: &str, now: DateTime<Utc>) {
    let Some(kind) = biz.artefact(artefact_id).map(|(k, _)| k) else {
        return;
    };
    let Some(rec) = biz.artefact_mut(kind, artefact_id) else {
        return;
    };
    if rec.meta.status == "VOID" {
        return;
    }
    rec.meta.outstanding += amount;
    rec.meta.status = rules::artefact_status(rec.meta.total, rec.meta.outstanding);
    rec.updated_at = now;
    let rate = rec.meta.exchange_rate;
    let j = &mut rec.json;
    j.insert(
        "outstanding_amount".into(),
        money_json(rec.meta.outstanding),
    );
    j.insert(
        "base_currency_outstanding_amount".into(),
        money_json(base_amount(rec.meta.outstanding, rate)),
    );
    j.insert(
        "total_paid".into(),
        money_json(rec.meta.total - rec.meta.outstanding),
    );
    j.insert("status".into(), super::sales::status_link(rec.meta.status));
    j.insert("updated_at".into(), Value::String(timestamp(now)));
    if let Some(Value::Array(list)) = j.get_mut("payments_allocations") {
        list.retain(|entry| entry["link"]["id"].as_str() != Some(by));
    }
}

/// The artefacts a payment or allocation settled: (artefact id, amount given back).
fn settled_artefacts(json: &Map<String, Value>) -> Vec<(String, Decimal)> {
    json.get("allocated_artefacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let id = a["artefact"]["id"].as_str()?.to_owned();
            let amount = dec_field(a.as_object()?, "amount")
                .unwrap_or_default()
                .abs()
                + dec_field(a.as_object()?, "discount").unwrap_or_default();
            Some((id, amount))
        })
        .collect()
}

/// True once a payment or allocation has been deleted (Sage keeps no trace a client can read).
pub(crate) fn is_deleted(json: &Map<String, Value>) -> bool {
    json.get("deleted_at").is_some_and(|d| !d.is_null())
}

/// `DELETE /contact_payments/{id}`: removes a receipt or refund, and with it what it settled,
/// so its invoice or credit note is outstanding again (and can then be voided). A payment on
/// account the receipt left goes with it.
pub(crate) fn delete_payment(
    biz: &mut Business,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let rec = biz
        .contact_payments
        .get(id)
        .filter(|r| !is_deleted(&r.json))
        .ok_or_else(ApiError::not_found)?;
    let settled = settled_artefacts(&rec.json);
    let on_account = rec.json["payment_on_account"]["id"]
        .as_str()
        .map(str::to_owned);
    for (artefact, amount) in settled {
        unsettle(biz, &artefact, amount, id, now);
    }
    if let Some(poa) = on_account.and_then(|p| biz.payments_on_account.get_mut(&p)) {
        poa.meta.outstanding = Decimal::ZERO;
        poa.json
            .insert("deleted_at".into(), Value::String(timestamp(now)));
    }
    if let Some(rec) = biz.contact_payments.get_mut(id) {
        rec.updated_at = now;
        rec.json
            .insert("deleted_at".into(), Value::String(timestamp(now)));
    }
    Ok(())
}

/// `DELETE /contact_allocations/{id}`: undoes an allocation (e.g. a credit note against its
/// invoice), so both are outstanding again.
pub(crate) fn delete_allocation(
    biz: &mut Business,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let rec = biz
        .contact_allocations
        .get(id)
        .filter(|r| !is_deleted(&r.json))
        .ok_or_else(ApiError::not_found)?;
    for (artefact, amount) in settled_artefacts(&rec.json) {
        unsettle(biz, &artefact, amount, id, now);
    }
    if let Some(rec) = biz.contact_allocations.get_mut(id) {
        rec.updated_at = now;
        rec.json
            .insert("deleted_at".into(), Value::String(timestamp(now)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn realised_difference_of_a_receipt_and_a_refund() {
        // €117.00 invoiced at 0.85 = £99.45; received as £100.62: a gain of £1.17.
        assert_eq!(
            realised_exchange_difference(
                dec!(117.00),
                dec!(100.62),
                &[(dec!(117.00), dec!(0.85))],
                false
            ),
            dec!(1.17)
        );
        // The same base amount as the invoice: nothing realised.
        assert_eq!(
            realised_exchange_difference(
                dec!(117.00),
                dec!(99.45),
                &[(dec!(117.00), dec!(0.85))],
                false
            ),
            dec!(0)
        );
        // €50.00 of a €117.00 receipt allocated (the rest on account): 100.62 × 50 / 117 =
        // 43.0000 → £43.00 against 50 × 0.85 = £42.50, a gain of £0.50.
        assert_eq!(
            realised_exchange_difference(
                dec!(117.00),
                dec!(100.62),
                &[(dec!(50.00), dec!(0.85))],
                false
            ),
            dec!(0.50)
        );
        // A refund paying out £100.62 for a £99.45 credit note: a loss of £1.17.
        assert_eq!(
            realised_exchange_difference(
                dec!(117.00),
                dec!(100.62),
                &[(dec!(117.00), dec!(0.85))],
                true
            ),
            dec!(-1.17)
        );
    }
}
