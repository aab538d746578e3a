//! Synthetic Magento events for tests, the benchmark and the demo, built from the contract's
//! own examples in `schemas/examples/` with fresh ids, so they always match the schemas.

use serde_json::Value;
use uuid::Uuid;

/// A UK B2C invoice at 20 % VAT with shipping and a discount.
pub const INVOICE_CREATED: &str = include_str!("../../../schemas/examples/invoice-created-uk-b2c-vat20.json");
/// A EUR invoice on a GBP business.
pub const INVOICE_CREATED_EUR: &str = include_str!("../../../schemas/examples/invoice-created-eur-base-gbp.json");
/// A guest's invoice.
pub const INVOICE_CREATED_GUEST: &str = include_str!("../../../schemas/examples/invoice-created-guest.json");
/// A card capture on an invoice.
pub const INVOICE_PAID: &str = include_str!("../../../schemas/examples/invoice-paid-card-capture.json");
/// A credit memo with an adjustment refund and a shipping refund.
pub const CREDIT_MEMO: &str = include_str!("../../../schemas/examples/creditmemo-created-adjustment-and-shipping.json");
/// A B2B customer.
pub const CUSTOMER_SAVED: &str = include_str!("../../../schemas/examples/customer-saved-b2b.json");

/// An event built from a template.
#[derive(Debug, Clone)]
pub struct SyntheticEvent {
    /// Its event id.
    pub event_id: Uuid,
    /// Its JSON bytes.
    pub body: Vec<u8>,
}

/// Re-targets a template at `merchant` with a fresh event id; `number` (when given) makes the
/// document unique: entity ids and increment ids derive from it.
pub fn from_template(template: &str, merchant: &str, number: Option<u64>) -> SyntheticEvent {
    let mut v: Value = serde_json::from_str(template).expect("example is JSON");
    let event_id = Uuid::new_v4();
    v["event_id"] = Value::String(event_id.to_string());
    v["merchant_id"] = Value::String(merchant.to_string());
    if let Some(n) = number {
        renumber(&mut v, n);
    }
    SyntheticEvent {
        event_id,
        body: serde_json::to_vec(&v).expect("serialisable"),
    }
}

/// Gives the document in `v` the identity `n` (entity id, increment id, order ids).
fn renumber(v: &mut Value, n: u64) {
    let payload = &mut v["payload"];
    for doc in ["invoice", "creditmemo"] {
        if payload.get(doc).is_some() {
            payload[doc]["entity_id"] = Value::from(100_000 + n);
            payload[doc]["increment_id"] = Value::String(format!("{:09}", 100_000 + n));
            payload[doc]["order_id"] = Value::from(500_000 + n);
        }
    }
    if payload.get("order").is_some() {
        payload["order"]["entity_id"] = Value::from(500_000 + n);
        payload["order"]["increment_id"] = Value::String(format!("{:09}", 500_000 + n));
    }
}

/// `invoice.created` number `n` for `merchant`.
pub fn invoice_created(merchant: &str, n: u64) -> SyntheticEvent {
    from_template(INVOICE_CREATED, merchant, Some(n))
}

/// `invoice.paid` for the invoice of [`invoice_created`] with the same `n` (same document key).
pub fn invoice_paid(merchant: &str, n: u64) -> SyntheticEvent {
    let created: Value = serde_json::from_str(INVOICE_CREATED).expect("JSON");
    let mut paid: Value = serde_json::from_str(INVOICE_PAID).expect("JSON");
    // The paid event carries the same document as the created one, now paid.
    let mut invoice = created["payload"]["invoice"].clone();
    invoice["state"] = Value::from(2);
    paid["payload"]["invoice"] = invoice;
    paid["payload"]["order"] = created["payload"]["order"].clone();
    paid["store_id"] = created["store_id"].clone();
    let grand_total = paid["payload"]["invoice"]["grand_total"].clone();
    let base_grand_total = paid["payload"]["invoice"]["base_grand_total"].clone();
    paid["payload"]["payment"]["amount_paid"] = grand_total;
    paid["payload"]["payment"]["base_amount_paid"] = base_grand_total;
    from_template(&paid.to_string(), merchant, Some(n))
}
