//! Synthetic Magento events for tests, the benchmark and the demo, built from the contract's
//! own examples in `schemas/examples/` with fresh ids, so they always match the schemas.

use serde_json::Value;
use uuid::Uuid;

/// A UK B2C invoice at 20 % VAT with shipping and a discount.
pub const INVOICE_CREATED: &str =
    include_str!("../../../schemas/examples/invoice-created-uk-b2c-vat20.json");
/// A EUR invoice on a GBP business.
pub const INVOICE_CREATED_EUR: &str =
    include_str!("../../../schemas/examples/invoice-created-eur-base-gbp.json");
/// A guest's invoice.
pub const INVOICE_CREATED_GUEST: &str =
    include_str!("../../../schemas/examples/invoice-created-guest.json");
/// A card capture on an invoice.
pub const INVOICE_PAID: &str =
    include_str!("../../../schemas/examples/invoice-paid-card-capture.json");
/// A credit memo with an adjustment refund and a shipping refund.
pub const CREDIT_MEMO: &str =
    include_str!("../../../schemas/examples/creditmemo-created-adjustment-and-shipping.json");
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

/// `invoice.canceled` for the invoice of [`invoice_created`] with the same `n`: canceled
/// before capture (`previous_state` 1) or voided after it (2). A fresh event id each call.
pub fn invoice_canceled(merchant: &str, n: u64, previous_state: u8) -> SyntheticEvent {
    let created: Value = serde_json::from_str(INVOICE_CREATED).expect("JSON");
    let mut canceled = created.clone();
    canceled["event_type"] = Value::from("invoice.canceled");
    canceled["payload"]["invoice"]["state"] = Value::from(3);
    canceled["payload"]["previous_state"] = Value::from(previous_state);
    canceled["payload"]["canceled_at"] = created["occurred_at"].clone();
    from_template(&canceled.to_string(), merchant, Some(n))
}

/// The same event as a backfill `backfill_id` records it (history: published on the history
/// subject, marked with the run's id); keeps the event id.
pub fn as_history(event: &SyntheticEvent, backfill_id: &str) -> SyntheticEvent {
    let mut v: Value = serde_json::from_slice(&event.body).expect("event is JSON");
    v["backfill_id"] = Value::String(backfill_id.to_string());
    SyntheticEvent {
        event_id: event.event_id,
        body: serde_json::to_vec(&v).expect("serialisable"),
    }
}

/// The header a backfill `backfill_id` of `merchant` announces: `invoices` invoices of 2025.
pub fn backfill_header(
    merchant: &str,
    backfill_id: &str,
    invoices: u64,
) -> ledger_runtime::backfill::BackfillHeader {
    ledger_runtime::backfill::BackfillHeader {
        backfill_id: backfill_id.to_string(),
        merchant_id: merchant.to_string(),
        from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
        to: chrono::NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
        types: vec!["invoice".into()],
        totals: [("invoice".to_string(), invoices)].into(),
        started_at: chrono::Utc::now(),
    }
}

/// `product.saved` of a simple product (a Sage product).
pub const PRODUCT_SIMPLE: &str =
    include_str!("../../../schemas/examples/product-saved-simple.json");
/// `product.saved` of a virtual product (a Sage service).
pub const PRODUCT_VIRTUAL: &str =
    include_str!("../../../schemas/examples/product-saved-virtual.json");
/// An offline credit memo without an invoice (EUR, cross-border, purchase order).
pub const CREDIT_MEMO_OFFLINE: &str =
    include_str!("../../../schemas/examples/creditmemo-created-offline-no-invoice.json");

/// Reads an amount the way the contract does (JSON number or decimal string).
pub fn amount(v: &Value) -> rust_decimal::Decimal {
    match v {
        Value::String(s) => s.trim().parse().expect("decimal string"),
        Value::Null => rust_decimal::Decimal::ZERO,
        other => other.to_string().parse().expect("decimal number"),
    }
}

fn money(d: rust_decimal::Decimal) -> Value {
    Value::String(round2(d).to_string())
}

/// Magento rounds amounts half away from zero to 2 decimals.
fn round2(d: rust_decimal::Decimal) -> rust_decimal::Decimal {
    let mut r = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

/// A Magento event being built from a template, for tests that need variations of the
/// contract's examples (another customer, payment method, country or tax rate). Amounts it
/// recomputes follow Magento's own arithmetic, so the totals stay consistent and the event
/// still passes the gateway's schema validation.
#[derive(Debug, Clone)]
pub struct Draft {
    v: Value,
}

impl Draft {
    /// A template re-targeted at `merchant`, renumbered with `number` (see [`from_template`]).
    pub fn from_template(template: &str, merchant: &str, number: Option<u64>) -> Draft {
        let mut v: Value = serde_json::from_str(template).expect("example is JSON");
        v["merchant_id"] = Value::String(merchant.to_string());
        if let Some(n) = number {
            renumber(&mut v, n);
        }
        Draft { v }
    }

    /// The UK 20 % invoice of [`invoice_created`] number `n` (73.44 GBP, customer 318).
    pub fn invoice(merchant: &str, n: u64) -> Draft {
        Draft::from_template(INVOICE_CREATED, merchant, Some(n))
    }

    /// The event as JSON.
    pub fn value(&self) -> &Value {
        &self.v
    }

    /// The event as JSON, for edits the builder has no method for.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.v
    }

    /// The sales document of the payload (`invoice` or `creditmemo`).
    pub fn document(&self) -> &Value {
        let p = &self.v["payload"];
        if p.get("invoice").is_some() {
            &p["invoice"]
        } else {
            &p["creditmemo"]
        }
    }

    fn document_mut(&mut self) -> &mut Value {
        let has_invoice = self.v["payload"].get("invoice").is_some();
        let p = &mut self.v["payload"];
        if has_invoice {
            &mut p["invoice"]
        } else {
            &mut p["creditmemo"]
        }
    }

    /// Magento's grand total of the document.
    pub fn grand_total(&self) -> rust_decimal::Decimal {
        amount(&self.document()["grand_total"])
    }

    /// Magento's base-currency grand total of the document.
    pub fn base_grand_total(&self) -> rust_decimal::Decimal {
        amount(&self.document()["base_grand_total"])
    }

    /// Increment id of the document.
    pub fn increment_id(&self) -> String {
        self.document()["increment_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The order's payment method (and the paid event's, when there is one).
    pub fn payment_method(mut self, method: &str) -> Draft {
        self.v["payload"]["order"]["payment"]["method"] = Value::String(method.to_string());
        if self.v["payload"].get("payment").is_some() {
            self.v["payload"]["payment"]["method"] = Value::String(method.to_string());
        }
        self
    }

    /// A registered customer with this id and e-mail.
    pub fn customer(mut self, id: u64, email: &str) -> Draft {
        let order = &mut self.v["payload"]["order"];
        order["customer_id"] = Value::from(id);
        order["customer_is_guest"] = Value::from(0);
        order["customer_email"] = Value::String(email.to_string());
        self
    }

    /// The `customer.saved` Magento sends for this order's registered customer when checkout
    /// saves the account again: the same person (the order's name, e-mail and VAT number) with
    /// the order's billing and shipping addresses as the default entries of the address book,
    /// in the address book's own shape (key `id`, region as Magento's region object). The
    /// account's details are then the order's, as they are in a real store.
    pub fn customer_saved(&self) -> Draft {
        let order = &self.v["payload"]["order"];
        let mut saved = Draft::from_template(
            CUSTOMER_SAVED,
            self.v["merchant_id"].as_str().unwrap_or_default(),
            None,
        );
        let customer_id = order["customer_id"].clone();
        let book = |address: &Value, id: u64, billing: bool, shipping: bool| -> Value {
            let mut entry = serde_json::json!({
                "id": id,
                "customer_id": customer_id,
                "firstname": address["firstname"],
                "lastname": address["lastname"],
                "street": address["street"],
                "city": address["city"],
                "region": {
                    "region_code": Value::Null,
                    "region": address.get("region").cloned().unwrap_or(Value::Null),
                    "region_id": 0
                },
                "region_id": 0,
                "country_id": address["country_id"],
            });
            for field in ["company", "postcode", "telephone", "vat_id"] {
                if let Some(v) = address.get(field).filter(|v| !v.is_null()) {
                    entry[field] = v.clone();
                }
            }
            if billing {
                entry["default_billing"] = Value::Bool(true);
            }
            if shipping {
                entry["default_shipping"] = Value::Bool(true);
            }
            entry
        };
        let billing = &order["billing_address"];
        let shipping = order
            .get("shipping_address")
            .filter(|s| s.is_object())
            .unwrap_or(billing);
        let same = |field: &str| billing.get(field) == shipping.get(field);
        let one_address = [
            "street",
            "city",
            "postcode",
            "country_id",
            "firstname",
            "lastname",
        ]
        .iter()
        .all(|f| same(f));
        let base = order["customer_id"].as_u64().unwrap_or(1) * 10;
        let addresses = if one_address {
            vec![book(billing, base + 1, true, true)]
        } else {
            vec![
                book(billing, base + 1, true, false),
                book(shipping, base + 2, false, true),
            ]
        };
        let customer = &mut saved.v["payload"]["customer"];
        customer["id"] = customer_id.clone();
        customer["email"] = order["customer_email"].clone();
        customer["firstname"] = order["customer_firstname"].clone();
        customer["lastname"] = order["customer_lastname"].clone();
        customer["taxvat"] = order.get("customer_taxvat").cloned().unwrap_or(Value::Null);
        customer["group_id"] = order
            .get("customer_group_id")
            .cloned()
            .unwrap_or(Value::from(1));
        customer["default_billing"] = Value::String((base + 1).to_string());
        customer["default_shipping"] =
            Value::String((base + if one_address { 1 } else { 2 }).to_string());
        customer["addresses"] = Value::Array(addresses);
        customer["website_id"] = self.v["website_id"].clone();
        customer["store_id"] = self.v["store_id"].clone();
        saved.v["website_id"] = self.v["website_id"].clone();
        saved.v["store_id"] = self.v["store_id"].clone();
        saved
    }

    /// A guest checkout with this e-mail and name.
    pub fn guest(mut self, email: &str, first: &str, last: &str) -> Draft {
        let order = &mut self.v["payload"]["order"];
        order["customer_id"] = Value::Null;
        order["customer_is_guest"] = Value::from(1);
        order["customer_email"] = Value::String(email.to_string());
        for address in ["billing_address", "shipping_address"] {
            if order.get(address).is_some_and(Value::is_object) {
                order[address]["firstname"] = Value::String(first.to_string());
                order[address]["lastname"] = Value::String(last.to_string());
                order[address]["email"] = Value::String(email.to_string());
            }
        }
        self
    }

    /// The company on the billing address (`None` removes it).
    pub fn company(mut self, company: Option<&str>) -> Draft {
        let billing = &mut self.v["payload"]["order"]["billing_address"];
        match company {
            Some(c) => billing["company"] = Value::String(c.to_string()),
            None => {
                if let Some(o) = billing.as_object_mut() {
                    o.remove("company");
                }
            }
        }
        self
    }

    /// The country of the billing and shipping addresses.
    pub fn country(mut self, country: &str) -> Draft {
        let order = &mut self.v["payload"]["order"];
        for address in ["billing_address", "shipping_address"] {
            if order.get(address).is_some_and(Value::is_object) {
                order[address]["country_id"] = Value::String(country.to_string());
            }
        }
        self
    }

    /// Puts every line and the shipping on `percent` VAT, recomputing each tax amount and the
    /// totals the way Magento does (tax on the discounted net, rounded per line). Only for
    /// base-currency documents: the `base_*` amounts are set equal to the order amounts.
    pub fn retax(mut self, percent: rust_decimal::Decimal) -> Draft {
        let hundred = rust_decimal::Decimal::ONE_HUNDRED;
        let pct_json = Value::String(percent.to_string());
        if let Some(items) = self.v["payload"]["order"]["items"].as_array_mut() {
            for item in items {
                item["tax_percent"] = pct_json.clone();
            }
        }
        let doc = self.document_mut();
        assert_eq!(
            doc["base_currency_code"], doc["order_currency_code"],
            "retax is for base-currency documents"
        );
        let mut item_tax = rust_decimal::Decimal::ZERO;
        if let Some(items) = doc["items"].as_array_mut() {
            for item in items {
                if item["is_dummy"] == Value::Bool(true) || item.get("row_total").is_none() {
                    continue;
                }
                let net = amount(&item["row_total"]) - amount(&item["discount_amount"]);
                let tax = round2(net * percent / hundred);
                item_tax += tax;
                item["tax_percent"] = pct_json.clone();
                item["tax_amount"] = money(tax);
                item["base_tax_amount"] = money(tax);
                let price_incl = round2(amount(&item["price"]) * (hundred + percent) / hundred);
                item["price_incl_tax"] = money(price_incl);
                item["base_price_incl_tax"] = money(price_incl);
                let row = amount(&item["row_total"]);
                let row_incl = row + round2(row * percent / hundred);
                item["row_total_incl_tax"] = money(row_incl);
                item["base_row_total_incl_tax"] = money(row_incl);
            }
        }
        let shipping = amount(&doc["shipping_amount"]);
        let shipping_tax = round2(shipping * percent / hundred);
        doc["shipping_tax_amount"] = money(shipping_tax);
        doc["base_shipping_tax_amount"] = money(shipping_tax);
        doc["shipping_incl_tax"] = money(shipping + shipping_tax);
        doc["base_shipping_incl_tax"] = money(shipping + shipping_tax);
        doc["tax_amount"] = money(item_tax + shipping_tax);
        doc["base_tax_amount"] = money(item_tax + shipping_tax);
        let subtotal = amount(&doc["subtotal"]);
        doc["subtotal_incl_tax"] = money(subtotal + item_tax);
        doc["base_subtotal_incl_tax"] = money(subtotal + item_tax);
        let grand = subtotal
            + amount(&doc["discount_amount"])
            + shipping
            + item_tax
            + shipping_tax
            + doc
                .get("adjustment_positive")
                .map(amount)
                .unwrap_or_default()
            - doc
                .get("adjustment_negative")
                .map(amount)
                .unwrap_or_default();
        doc["grand_total"] = money(grand);
        doc["base_grand_total"] = money(grand);
        self
    }

    /// The event with a fresh event id.
    pub fn build(&self) -> SyntheticEvent {
        let mut v = self.v.clone();
        let event_id = Uuid::new_v4();
        v["event_id"] = Value::String(event_id.to_string());
        SyntheticEvent {
            event_id,
            body: serde_json::to_vec(&v).expect("serialisable"),
        }
    }

    /// The `invoice.paid` event of this invoice: the same document, now paid in full by
    /// the order's payment method.
    pub fn paid(&self) -> Draft {
        let mut paid: Value = serde_json::from_str(INVOICE_PAID).expect("JSON");
        paid["merchant_id"] = self.v["merchant_id"].clone();
        paid["store_id"] = self.v["store_id"].clone();
        let mut invoice = self.v["payload"]["invoice"].clone();
        invoice["state"] = Value::from(2);
        paid["payload"]["invoice"] = invoice;
        paid["payload"]["order"] = self.v["payload"]["order"].clone();
        paid["payload"]["payment"]["method"] =
            self.v["payload"]["order"]["payment"]["method"].clone();
        paid["payload"]["payment"]["currency"] =
            self.v["payload"]["invoice"]["order_currency_code"].clone();
        paid["payload"]["payment"]["amount_paid"] =
            self.v["payload"]["invoice"]["grand_total"].clone();
        paid["payload"]["payment"]["base_amount_paid"] =
            self.v["payload"]["invoice"]["base_grand_total"].clone();
        Draft { v: paid }
    }

    /// A `creditmemo.created` refunding part of this invoice, as Magento computes it: each
    /// refunded line's row total, discount and tax pro rata to the quantity refunded, the
    /// shipping when asked, plus the adjustments. Number `n` identifies the credit memo.
    pub fn credit_memo(&self, n: u64, refund: &Refund) -> Draft {
        let invoice = &self.v["payload"]["invoice"];
        let mut v: Value = serde_json::from_str(CREDIT_MEMO).expect("JSON");
        v["merchant_id"] = self.v["merchant_id"].clone();
        v["store_id"] = self.v["store_id"].clone();
        let rate = amount(&invoice["base_to_order_rate"]);
        let base = |d: rust_decimal::Decimal| money(d / rate);
        let mut items = Vec::new();
        let (mut subtotal, mut discount, mut tax) = (
            rust_decimal::Decimal::ZERO,
            rust_decimal::Decimal::ZERO,
            rust_decimal::Decimal::ZERO,
        );
        for (idx, line) in invoice["items"]
            .as_array()
            .expect("items")
            .iter()
            .enumerate()
        {
            if line["is_dummy"] == Value::Bool(true) {
                continue;
            }
            let qty = refund
                .lines
                .iter()
                .find(|(i, _)| *i == idx)
                .map(|(_, q)| *q)
                .unwrap_or_default();
            let share = qty / amount(&line["qty"]);
            let row = round2(amount(&line["row_total"]) * share);
            let disc = round2(amount(&line["discount_amount"]) * share);
            let t = round2(amount(&line["tax_amount"]) * share);
            subtotal += row;
            discount += disc;
            tax += t;
            let mut item = line.clone();
            item["parent_id"] = Value::from(300_000 + n);
            item["entity_id"] = Value::from(3_000_000 + n * 100 + idx as u64);
            item["qty"] = Value::String(qty.to_string());
            for (k, d) in [
                ("row_total", row),
                ("discount_amount", disc),
                ("tax_amount", t),
            ] {
                item[k] = money(d);
                item[format!("base_{k}")] = base(d);
            }
            item["row_total_incl_tax"] = money(row + t);
            item["base_row_total_incl_tax"] = base(row + t);
            items.push(item);
        }
        let (shipping, shipping_tax) = if refund.shipping {
            (
                amount(&invoice["shipping_amount"]),
                amount(&invoice["shipping_tax_amount"]),
            )
        } else {
            Default::default()
        };
        let grand = subtotal - discount + tax + shipping + shipping_tax + refund.adjustment_refund
            - refund.adjustment_fee;
        let cm = &mut v["payload"]["creditmemo"];
        cm["entity_id"] = Value::from(300_000 + n);
        cm["increment_id"] = Value::String(format!("{:09}", 300_000 + n));
        cm["order_id"] = invoice["order_id"].clone();
        cm["store_id"] = invoice["store_id"].clone();
        cm["invoice_id"] = invoice["entity_id"].clone();
        cm["state"] = Value::from(if refund.refunded { 2 } else { 1 });
        match &refund.transaction_id {
            Some(t) => cm["transaction_id"] = Value::String(t.clone()),
            None => {
                if let Some(o) = cm.as_object_mut() {
                    o.remove("transaction_id");
                }
            }
        }
        for key in [
            "base_currency_code",
            "order_currency_code",
            "base_to_order_rate",
            "global_currency_code",
            "store_currency_code",
            "base_to_global_rate",
            "store_to_base_rate",
            "store_to_order_rate",
        ] {
            cm[key] = invoice[key].clone();
        }
        let amounts = [
            ("grand_total", grand),
            ("subtotal", subtotal),
            ("subtotal_incl_tax", subtotal + tax),
            ("tax_amount", tax + shipping_tax),
            ("shipping_amount", shipping),
            ("shipping_tax_amount", shipping_tax),
            ("shipping_incl_tax", shipping + shipping_tax),
            ("discount_amount", -discount),
            (
                "adjustment",
                refund.adjustment_refund - refund.adjustment_fee,
            ),
            ("adjustment_positive", refund.adjustment_refund),
            ("adjustment_negative", refund.adjustment_fee),
        ];
        for (k, d) in amounts {
            cm[k] = money(d);
            cm[format!("base_{k}")] = base(d);
        }
        cm["items"] = Value::Array(items);
        v["payload"]["order"] = self.v["payload"]["order"].clone();
        Draft { v }
    }
}

/// What a credit memo built by [`Draft::credit_memo`] refunds.
#[derive(Debug, Clone)]
pub struct Refund {
    /// (index of the invoice line, quantity refunded).
    pub lines: Vec<(usize, rust_decimal::Decimal)>,
    /// Whether the invoice's shipping is refunded too.
    pub shipping: bool,
    /// Magento's "Adjustment Refund".
    pub adjustment_refund: rust_decimal::Decimal,
    /// Magento's "Adjustment Fee".
    pub adjustment_fee: rust_decimal::Decimal,
    /// State refunded (2) rather than open (1).
    pub refunded: bool,
    /// The gateway's refund transaction id, for an online refund.
    pub transaction_id: Option<String>,
}

impl Refund {
    /// Refunds these lines (index, quantity), nothing else, in state refunded.
    pub fn lines(lines: &[(usize, i64)]) -> Refund {
        Refund {
            lines: lines
                .iter()
                .map(|(i, q)| (*i, rust_decimal::Decimal::from(*q)))
                .collect(),
            shipping: false,
            adjustment_refund: rust_decimal::Decimal::ZERO,
            adjustment_fee: rust_decimal::Decimal::ZERO,
            refunded: true,
            transaction_id: None,
        }
    }

    /// Refunds the shipping too.
    pub fn with_shipping(mut self) -> Refund {
        self.shipping = true;
        self
    }

    /// An online refund through the gateway with this transaction id.
    pub fn online(mut self, transaction_id: &str) -> Refund {
        self.transaction_id = Some(transaction_id.to_string());
        self
    }

    /// Adds an adjustment refund and fee.
    pub fn adjustments(
        mut self,
        refund: rust_decimal::Decimal,
        fee: rust_decimal::Decimal,
    ) -> Refund {
        self.adjustment_refund = refund;
        self.adjustment_fee = fee;
        self
    }
}

/// `product.saved` built from a template with product id `id` and SKU `sku`.
pub fn product_saved(template: &str, merchant: &str, id: u64, sku: &str) -> Draft {
    let mut d = Draft::from_template(template, merchant, None);
    d.v["payload"]["product"]["id"] = Value::from(id);
    d.v["payload"]["product"]["sku"] = Value::String(sku.to_string());
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_events::Payload;
    use ledger_mapping::{map_contact, map_contact_update, Party};

    fn parse(d: &Draft) -> ledger_events::Envelope {
        ledger_events::parse(&d.build().body).expect("a valid event")
    }

    /// The account saved at checkout describes the person the order bills, so the contact
    /// the contacts service would PUT for it is the one the order's invoice created: a
    /// returning customer's `customer.saved` has nothing to change.
    #[test]
    fn customer_saved_of_an_order_is_the_contact_its_invoice_created() {
        for (id, invoice) in [
            (
                1001,
                Draft::invoice("m", 1).customer(1001, "customer1001@example.com"),
            ),
            (
                1002,
                Draft::invoice("m", 2)
                    .customer(1002, "customer1002@example.com")
                    .company(Some("Pryce Trading Ltd")),
            ),
        ] {
            let Payload::InvoiceCreated(created) = parse(&invoice).payload else {
                panic!("not an invoice")
            };
            let Payload::CustomerSaved(saved) = parse(&invoice.customer_saved()).payload else {
                panic!("not a customer.saved")
            };
            assert_eq!(saved.customer.id, id);
            let from_order = Party::from_order(&created.order);
            let from_account = Party::from_customer_snapshot(&saved);
            assert_eq!(from_account.customer_key, from_order.customer_key);
            let mut created_body = map_contact(&from_order, "GBP", "PRYCE001");
            created_body
                .as_object_mut()
                .expect("object")
                .remove("currency_id");
            assert_eq!(map_contact_update(&from_account, "PRYCE001"), created_body);
        }
    }
}
