//! What Magento sent against what the Sage sandbox holds: the verdict of the fault suites
//! (`ledger-chaos`, `ledger-cluster-chaos`).
//!
//! Every Magento invoice must be in Sage exactly once at its total; every payment exactly once,
//! allocated to its own invoice (so never before it) and settling it; every credit memo exactly
//! once at its total, linked to its own invoice and allocated against it; each merchant's one
//! customer exactly one contact. Anything in Sage that Magento did not send is a duplicate.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use sage_sandbox::Sandbox;
use serde_json::Value;

/// A credit memo Magento sent against an invoice.
#[derive(Debug, Clone)]
pub struct ExpectedCredit {
    /// Its increment id.
    pub reference: String,
    /// Its grand total.
    pub total: Decimal,
}

/// What Magento sent for one invoice.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Index of the merchant (into the businesses given to [`check`]).
    pub merchant: usize,
    /// The invoice's increment id (its Sage reference).
    pub reference: String,
    /// Its grand total.
    pub total: Decimal,
    /// Whether an `invoice.paid` for it was sent.
    pub paid: bool,
    /// The credit memo sent against it, if any.
    pub credit: Option<ExpectedCredit>,
}

/// The comparison of Magento with Sage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Documents Magento sent: invoices, payments and credit memos.
    pub documents: usize,
    /// Sage documents beyond one per Magento document (and Sage documents nobody sent).
    pub duplicates: usize,
    /// Magento documents with no Sage document.
    pub lost: usize,
    /// Sage documents whose amounts differ from Magento's to the cent.
    pub mismatched: usize,
    /// Payments or credit notes in Sage that are not tied to their own invoice.
    pub out_of_order: usize,
}

impl Verdict {
    /// Whether the books are exact: no duplicate, nothing lost, nothing off, nothing out of
    /// order.
    pub fn is_exact(&self) -> bool {
        self.duplicates + self.lost + self.mismatched + self.out_of_order == 0
    }
}

/// A money amount of a Sage document (a JSON string or number).
pub fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// One business's documents, by what the checks look them up by.
struct Books {
    invoices: HashMap<String, Vec<Value>>,
    /// Invoice id → payments allocated to it.
    payments: BTreeMap<String, usize>,
    /// Credit note reference (`<credit memo>/<invoice>`) → credit notes.
    credits: HashMap<String, Vec<Value>>,
    /// Credit note id → allocations naming it.
    credit_allocations: HashMap<String, Vec<Value>>,
    contacts: usize,
}

fn books_of(sandbox: &Sandbox, business: &str) -> Books {
    let inspect = sandbox.inspect();
    let mut invoices: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in inspect.documents(business, "sales_invoices") {
        let reference = doc["reference"].as_str().unwrap_or_default().to_string();
        invoices.entry(reference).or_default().push(doc);
    }
    let mut payments: BTreeMap<String, usize> = BTreeMap::new();
    for p in inspect.documents(business, "contact_payments") {
        for a in p["allocated_artefacts"].as_array().into_iter().flatten() {
            let id = a["artefact"]["id"].as_str().unwrap_or_default().to_string();
            *payments.entry(id).or_default() += 1;
        }
    }
    let mut credits: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in inspect.documents(business, "sales_credit_notes") {
        let reference = doc["reference"].as_str().unwrap_or_default().to_string();
        credits.entry(reference).or_default().push(doc);
    }
    let mut credit_allocations: HashMap<String, Vec<Value>> = HashMap::new();
    for a in inspect.documents(business, "contact_allocations") {
        for art in a["allocated_artefacts"].as_array().into_iter().flatten() {
            let id = art["artefact"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            credit_allocations.entry(id).or_default().push(a.clone());
        }
    }
    Books {
        invoices,
        payments,
        credits,
        credit_allocations,
        contacts: inspect.documents(business, "contacts").len(),
    }
}

/// Compares what Magento sent (`expected`, merchants indexing `businesses`) with the sandbox.
/// Each merchant bills one registered customer: one contact each is expected.
pub fn check(sandbox: &Sandbox, businesses: &[String], expected: &[Expected]) -> Verdict {
    let books: Vec<Books> = businesses.iter().map(|b| books_of(sandbox, b)).collect();
    let mut v = Verdict {
        documents: expected
            .iter()
            .map(|e| 1 + e.paid as usize + e.credit.is_some() as usize)
            .sum(),
        ..Verdict::default()
    };
    for b in &books {
        v.duplicates += b.contacts.saturating_sub(1);
    }
    for e in expected {
        let b = &books[e.merchant];
        let invoice = match b.invoices.get(&e.reference).map(Vec::as_slice) {
            None | Some([]) => {
                v.lost += 1 + e.paid as usize + e.credit.is_some() as usize;
                continue;
            }
            Some(docs) => {
                v.duplicates += docs.len() - 1;
                &docs[0]
            }
        };
        if decimal(&invoice["total_amount"]) != Some(e.total) {
            v.mismatched += 1;
        }
        let invoice_id = invoice["id"].as_str().unwrap_or_default();
        let mut outstanding = e.total;
        if e.paid {
            // A payment is found through its allocation to this invoice: one that landed
            // before the invoice (on account) would not be, and counts as lost.
            match b.payments.get(invoice_id).copied().unwrap_or(0) {
                0 => v.lost += 1,
                1 => outstanding = Decimal::ZERO,
                n => {
                    v.duplicates += n - 1;
                    outstanding = Decimal::ZERO;
                }
            }
        }
        if let Some(credit) = &e.credit {
            let linked = format!("{}/{}", credit.reference, e.reference);
            match b.credits.get(&linked).map(Vec::as_slice) {
                Some([note, rest @ ..]) => {
                    v.duplicates += rest.len();
                    if decimal(&note["total_amount"]) != Some(credit.total) {
                        v.mismatched += 1;
                    }
                    // Allocated against its own invoice: both artefacts in one allocation.
                    let note_id = note["id"].as_str().unwrap_or_default();
                    let against_invoice = b.credit_allocations.get(note_id).is_some_and(|all| {
                        all.iter().any(|a| {
                            a["allocated_artefacts"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|art| art["artefact"]["id"] == invoice_id)
                        })
                    });
                    if against_invoice {
                        outstanding -= credit.total;
                    } else {
                        v.out_of_order += 1;
                    }
                }
                _ => {
                    // Not under its linked reference: lost, or landed unlinked (before its
                    // invoice was known).
                    let unlinked = b.credits.keys().any(|r| r.starts_with(&credit.reference));
                    if unlinked {
                        v.out_of_order += 1;
                    } else {
                        v.lost += 1;
                    }
                }
            }
        }
        if decimal(&invoice["outstanding_amount"]) != Some(outstanding.max(Decimal::ZERO)) {
            v.mismatched += 1;
        }
    }
    // Sage documents nobody sent.
    for (m, b) in books.iter().enumerate() {
        let sent = |r: &str| expected.iter().any(|e| e.merchant == m && e.reference == r);
        v.duplicates += b.invoices.keys().filter(|r| !sent(r)).count();
        let sent_credit = |r: &str| {
            expected.iter().any(|e| {
                e.merchant == m
                    && e.credit
                        .as_ref()
                        .is_some_and(|c| r.starts_with(&c.reference))
            })
        };
        v.duplicates += b.credits.keys().filter(|r| !sent_credit(r)).count();
    }
    v
}
