//! Money movements: customer receipts, refunds and allocations.
//!
//! Sage only changes an invoice's status through payments and allocations (quirk 6), and
//! a payment or allocation must be in the currency of, and for the contact of, the
//! documents it touches. These mappers therefore take the Sage facts of the documents
//! ([`SageDocumentRef`]) next to the Magento event and check them against each other.

use crate::error::{reasons, MappingError};
use crate::money::{decimal_json, money_json, round2};
use crate::rules::{fit_reference, PAYMENT_REFERENCE_MAX};
use crate::settings::MerchantSettings;
use chrono::NaiveDate;
use ledger_events::{CreditMemoSnapshot, CreditMemoState, InvoicePaidSnapshot};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// What the service knows about a document it already posted to Sage.
#[derive(Debug, Clone, PartialEq)]
pub struct SageDocumentRef {
    /// Sage id of the invoice or credit note (`artefact_id` in allocations).
    pub sage_id: String,
    /// Sage contact the document belongs to.
    pub contact_id: String,
    /// Document currency (ISO code).
    pub currency: String,
    /// The document's Sage exchange rate (1 for base-currency documents).
    pub exchange_rate: Decimal,
    /// The document's total in Sage.
    pub total: Decimal,
}

/// A posted Sage sales invoice.
pub type InvoiceRef = SageDocumentRef;
/// A posted Sage sales credit note.
pub type CreditNoteRef = SageDocumentRef;

/// A ready-to-send `contact_payments` request (receipt or refund).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptPlan {
    /// `contact_payments`.
    pub resource: &'static str,
    /// `contact_payment`.
    pub root: &'static str,
    /// The fields inside the root object (no `idempotency_id`: the client adds it).
    pub body: Value,
    /// The `reference` sent (≤ 25 characters).
    pub reference: String,
    /// `total_amount` of the payment.
    pub amount: Decimal,
    /// The part of it allocated to the document (the rest, if any, is a payment on
    /// account in Sage).
    pub allocated: Decimal,
}

/// A ready-to-send `contact_allocations` request.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationPlan {
    /// `contact_allocations`.
    pub resource: &'static str,
    /// `contact_allocation`.
    pub root: &'static str,
    /// The fields inside the root object.
    pub body: Value,
    /// The amount moved from the credit note to the invoice.
    pub amount: Decimal,
}

macro_rules! request_body {
    ($t:ty) => {
        impl $t {
            /// The complete request body, `{ <root>: <body> }`.
            pub fn request_body(&self) -> Value {
                let mut outer = Map::new();
                outer.insert(self.root.to_owned(), self.body.clone());
                Value::Object(outer)
            }
        }
    };
}
request_body!(ReceiptPlan);
request_body!(AllocationPlan);

fn same_currency(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn check_ref(doc: &SageDocumentRef, name: &str) -> Result<(), MappingError> {
    if doc.sage_id.trim().is_empty() {
        return Err(MappingError::invalid(
            format!("{name}.sage_id"),
            reasons::MISSING,
        ));
    }
    if doc.contact_id.trim().is_empty() {
        return Err(MappingError::invalid(
            format!("{name}.contact_id"),
            reasons::MISSING,
        ));
    }
    if doc.exchange_rate <= Decimal::ZERO {
        return Err(MappingError::invalid(
            format!("{name}.exchange_rate"),
            reasons::NOT_POSITIVE,
        ));
    }
    Ok(())
}

struct PaymentInput<'a> {
    transaction_type: &'static str,
    method: &'a str,
    currency: &'a str,
    base_currency: &'a str,
    amount: Decimal,
    date: NaiveDate,
    reference: &'a str,
    document: &'a SageDocumentRef,
    document_name: &'static str,
    /// Refunds cannot exceed what they are allocated to; receipts may (payment on account).
    allow_excess: bool,
    /// What may be allocated to the document: Sage's outstanding amount when known (receipts),
    /// else the document's total.
    allocatable: Option<Decimal>,
    /// The base-currency amount received, sent as `base_currency_total_amount` (with the rate
    /// it implies) instead of the document's rate: [`crate::realised_base_amount`].
    base_amount: Option<Decimal>,
}

fn payment(
    input: PaymentInput<'_>,
    settings: &MerchantSettings,
    bank_account_id: &str,
) -> Result<ReceiptPlan, MappingError> {
    // A receipt is never posted for money that moved outside Magento; a refund is, unless
    // the method is paid later (no money came in, so none goes back: allocation instead).
    let no_money = if input.transaction_type == "CUSTOMER_REFUND" {
        settings.is_paid_later(input.method)
    } else {
        settings.is_net_terms(input.method)
    };
    if no_money {
        return Err(MappingError::skipped(
            reasons::NET_TERMS,
            format!(
                "method {} is paid outside Magento; the Sage document stays open",
                input.method
            ),
        ));
    }
    check_ref(input.document, input.document_name)?;
    if !same_currency(input.currency, &input.document.currency) {
        return Err(MappingError::invalid(
            format!("{}.currency", input.document_name),
            reasons::CURRENCY_MISMATCH,
        ));
    }
    let currency = input.currency.trim().to_ascii_uppercase();
    let amount = round2(input.amount);
    if amount < Decimal::ZERO {
        return Err(MappingError::invalid("amount", reasons::NEGATIVE));
    }
    if amount.is_zero() {
        return Err(MappingError::skipped(
            reasons::NOTHING_TO_POST,
            "zero amount",
        ));
    }
    let allocatable = input.allocatable.unwrap_or(input.document.total);
    let allocated = crate::receipt_allocation(amount, allocatable);
    if allocated < amount && !input.allow_excess {
        return Err(MappingError::invalid(
            format!("{}.total", input.document_name),
            reasons::EXCEEDS_DOCUMENT_TOTAL,
        ));
    }
    if allocated <= Decimal::ZERO && input.allocatable.is_none() {
        return Err(MappingError::invalid(
            format!("{}.total", input.document_name),
            reasons::NOT_POSITIVE,
        ));
    }
    // A bank account holds one currency, so a per-currency account configured for the
    // method wins over the service's default account.
    let bank = settings
        .bank_account_id(input.method, &currency)
        .unwrap_or(bank_account_id)
        .trim();
    if bank.is_empty() {
        return Err(MappingError::invalid("bank_account_id", reasons::MISSING));
    }
    let reference = fit_reference(input.reference, PAYMENT_REFERENCE_MAX);

    let mut body = Map::new();
    body.insert("transaction_type_id".into(), json!(input.transaction_type));
    body.insert("contact_id".into(), json!(input.document.contact_id.trim()));
    body.insert("bank_account_id".into(), json!(bank));
    body.insert(
        "payment_method_id".into(),
        json!(settings.payment_method_id(input.method)),
    );
    body.insert("date".into(), json!(input.date.to_string()));
    body.insert("total_amount".into(), money_json(amount));
    body.insert("currency_id".into(), json!(currency));
    if let Some(base) = input.base_amount {
        // The base amount received: Sage books the difference from the invoice's base
        // amount to its exchange gain or loss ledger (realised FX). The rate is the one the
        // two amounts imply, kept to 10 dp; the base total is sent as well so no rounding of
        // the rate moves it.
        body.insert(
            "exchange_rate".into(),
            decimal_json((base / amount).round_dp(10).normalize()),
        );
        body.insert("base_currency_total_amount".into(), money_json(base));
    } else if !same_currency(&currency, input.base_currency) {
        // Same rate as the document, so Sage books no exchange difference between the
        // invoice and its payment.
        body.insert(
            "exchange_rate".into(),
            decimal_json(input.document.exchange_rate),
        );
    }
    if !reference.is_empty() {
        body.insert("reference".into(), json!(reference));
    }
    // Nothing outstanding in Sage (a credit note settled the invoice): the whole receipt
    // stays on the customer's account, visibly, as a payment on account.
    let artefacts = if allocated > Decimal::ZERO {
        json!([{ "artefact_id": input.document.sage_id.trim(), "amount": money_json(allocated) }])
    } else {
        json!([])
    };
    body.insert("allocated_artefacts".into(), artefacts);
    Ok(ReceiptPlan {
        resource: "contact_payments",
        root: "contact_payment",
        body: Value::Object(body),
        reference,
        amount,
        allocated,
    })
}

/// Maps an `invoice.paid` snapshot to a Sage customer receipt allocated to the invoice.
///
/// `CUSTOMER_RECEIPT` for the amount paid, on the invoice's contact, currency and
/// exchange rate; `payment_method_id` from the merchant's method map (default
/// `CREDIT_DEBIT`); the bank account configured for the method in this currency, else
/// `bank_account_id` (the service's default account for the currency). The reference is
/// the gateway transaction id, else the invoice number. An amount above the invoice total
/// is posted whole and the excess stays on account. A net-terms method (checkmo,
/// banktransfer, ...) is `Skipped { reason: "net_terms" }`: Magento calls those invoices
/// paid although no money moved.
pub fn map_customer_receipt(
    paid: &InvoicePaidSnapshot,
    invoice: &InvoiceRef,
    settings: &MerchantSettings,
    bank_account_id: &str,
) -> Result<ReceiptPlan, MappingError> {
    let facts = &paid.payment;
    let reference = facts
        .transaction_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&paid.invoice.increment_id);
    payment(
        PaymentInput {
            transaction_type: "CUSTOMER_RECEIPT",
            method: &facts.method,
            currency: paid.document_currency(),
            base_currency: paid.base_currency(),
            amount: facts.amount_paid,
            date: settings.accounting_date(facts.paid_at)?,
            reference,
            document: invoice,
            document_name: "invoice",
            allow_excess: true,
            allocatable: None,
            base_amount: None,
        },
        settings,
        bank_account_id,
    )
}

/// What the payments service knows about a receipt's destination besides the invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptContext<'a> {
    /// The Sage invoice.
    pub invoice: &'a InvoiceRef,
    /// What Sage says is outstanding on it now (`outstanding_amount`).
    pub outstanding: Decimal,
    /// The bank account the money lands in.
    pub bank_account_id: &'a str,
    /// How the money lands there (see [`crate::BankAccountFacts::check`]).
    pub bank_use: crate::BankUse,
}

/// Maps an `invoice.paid` snapshot to a Sage customer receipt, following Sage rather than
/// Magento's totals:
///
/// * rule "receipts allocate what Sage says is outstanding": the receipt is the amount
///   paid, allocated up to `outstanding` ([`crate::receipt_allocation`]); the rest stays
///   on the customer's account as a payment on account (after a credit note, the invoice
///   owes less than Magento's grand total);
/// * rule "the receipt carries the base amount received": when Magento's
///   `base_amount_paid` is not the amount at the invoice's rate
///   ([`crate::realised_base_amount`]), or when the bank account takes foreign money, the
///   receipt sends that base amount so Sage books the realised exchange gain or loss.
///
/// Otherwise as [`map_customer_receipt`].
pub fn map_receipt(
    paid: &InvoicePaidSnapshot,
    context: &ReceiptContext<'_>,
    settings: &MerchantSettings,
) -> Result<ReceiptPlan, MappingError> {
    let facts = &paid.payment;
    let reference = facts
        .transaction_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&paid.invoice.increment_id);
    // The module names the captured currency: it must be the invoice's.
    if let Some(captured) = facts.currency.as_deref() {
        if !same_currency(captured, paid.document_currency()) {
            return Err(MappingError::invalid(
                "payment.currency",
                reasons::CURRENCY_MISMATCH,
            ));
        }
    }
    let foreign = !same_currency(paid.document_currency(), paid.base_currency());
    let base_amount = if !foreign {
        None
    } else if context.bank_use == crate::BankUse::ForeignMoney {
        Some(round2(facts.base_amount_paid)).filter(|b| *b > Decimal::ZERO)
    } else {
        crate::realised_base_amount(
            facts.amount_paid,
            facts.base_amount_paid,
            context.invoice.exchange_rate,
        )
    };
    payment(
        PaymentInput {
            transaction_type: "CUSTOMER_RECEIPT",
            method: &facts.method,
            currency: paid.document_currency(),
            base_currency: paid.base_currency(),
            amount: facts.amount_paid,
            date: settings.accounting_date(facts.paid_at)?,
            reference,
            document: context.invoice,
            document_name: "invoice",
            allow_excess: true,
            allocatable: Some(context.outstanding),
            base_amount,
        },
        settings,
        context.bank_account_id,
    )
}

/// Maps a refunded credit memo to a Sage customer refund allocated to its credit note.
///
/// `CUSTOMER_REFUND` for the credit memo's grand total, which may not exceed the credit
/// note (Sage refuses refunds larger than what they are allocated to). Only for money
/// that actually went back: a credit memo not in state refunded is
/// `Skipped { reason: "not_refunded" }`, and a paid-later order (purchase order, company
/// credit) is `Skipped { reason: "net_terms" }` because its invoice was never paid, so the
/// credit note is allocated against the invoice instead ([`map_allocation`]). A prepaid
/// offline order (bank transfer, cheque) is refunded from that method's account.
pub fn map_refund(
    credit_memo: &CreditMemoSnapshot,
    credit_note: &CreditNoteRef,
    settings: &MerchantSettings,
    bank_account_id: &str,
) -> Result<ReceiptPlan, MappingError> {
    let cm = &credit_memo.creditmemo;
    if cm.state != CreditMemoState::Refunded {
        return Err(MappingError::skipped(
            reasons::NOT_REFUNDED,
            format!("credit memo {} is not in state refunded", cm.increment_id),
        ));
    }
    let reference = cm
        .transaction_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&cm.increment_id);
    payment(
        PaymentInput {
            transaction_type: "CUSTOMER_REFUND",
            method: &credit_memo.order.payment.method,
            currency: credit_memo.document_currency(),
            base_currency: credit_memo.base_currency(),
            amount: cm.grand_total,
            date: settings.accounting_date(cm.created_at)?,
            reference,
            document: credit_note,
            document_name: "credit_note",
            allow_excess: false,
            allocatable: None,
            base_amount: None,
        },
        settings,
        bank_account_id,
    )
}

/// Maps the settling of an unpaid invoice with a credit note to a Sage
/// `CUSTOMER_ALLOCATION`: the invoice `+amount`, the credit note `-amount` (customer
/// allocations debit the invoice and credit the credit note, and must sum to zero).
///
/// Both documents must belong to the same contact and currency (one allocation has one
/// contact), and `amount` must be positive and no larger than either document. `date`
/// should come from [`crate::allocation_date`], so the allocation is never dated before
/// either document.
pub fn map_allocation(
    invoice: &InvoiceRef,
    credit_note: &CreditNoteRef,
    amount: Decimal,
    date: NaiveDate,
) -> Result<AllocationPlan, MappingError> {
    check_ref(invoice, "invoice")?;
    check_ref(credit_note, "credit_note")?;
    if invoice.contact_id.trim() != credit_note.contact_id.trim() {
        return Err(MappingError::invalid(
            "credit_note.contact_id",
            reasons::CONTACT_MISMATCH,
        ));
    }
    if !same_currency(&invoice.currency, &credit_note.currency) {
        return Err(MappingError::invalid(
            "credit_note.currency",
            reasons::CURRENCY_MISMATCH,
        ));
    }
    let amount = round2(amount);
    if amount <= Decimal::ZERO {
        return Err(MappingError::invalid("amount", reasons::NOT_POSITIVE));
    }
    if amount > round2(invoice.total) {
        return Err(MappingError::invalid(
            "invoice.total",
            reasons::EXCEEDS_DOCUMENT_TOTAL,
        ));
    }
    if amount > round2(credit_note.total) {
        return Err(MappingError::invalid(
            "credit_note.total",
            reasons::EXCEEDS_DOCUMENT_TOTAL,
        ));
    }
    let body = json!({
        "transaction_type_id": "CUSTOMER_ALLOCATION",
        "contact_id": invoice.contact_id.trim(),
        "date": date.to_string(),
        "allocated_artefacts": [
            { "artefact_id": invoice.sage_id.trim(), "amount": money_json(amount) },
            { "artefact_id": credit_note.sage_id.trim(), "amount": money_json(-amount) },
        ],
    });
    Ok(AllocationPlan {
        resource: "contact_allocations",
        root: "contact_allocation",
        body,
        amount,
    })
}
