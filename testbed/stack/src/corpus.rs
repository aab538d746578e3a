//! The accounting corpus: Magento documents written by hand (and real ones reshaped as
//! events), each with the Sage records an accountant expects, also written by hand.
//!
//! A case file (`testbed/stack/corpus/*.json`) holds `{"cases": [...]}`. A case names
//! the rule it proves, the merchant settings it needs, the events the store sends (Magento's
//! own field names and numbers) and what Sage must hold afterwards. The runner
//! (`ledger-corpus`, `just corpus`) gives every case its own merchant and Sage business,
//! publishes the events through the gateway (schema validation included), waits until the
//! engine has settled, then compares Sage with the expectations and prints one line per
//! difference. The format is described in `testbed/stack/corpus/README.md`.
//!
//! Event building only fills what is not accounting: envelope ids, entity ids, the order
//! context a case does not care about, and the `base_*` twins of amounts when the base and
//! order currency are the same (Magento stores the same number twice then). It never
//! computes an amount: a foreign-currency case must state its base amounts itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// One corpus case, as written in a case file.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Unique, short name (used in the merchant id and in failure lines).
    pub name: String,
    /// The rule of docs/accounting.md this case proves.
    #[serde(default)]
    pub rule: String,
    /// Merchant settings patch (top-level keys replace the defaults).
    #[serde(default)]
    pub settings: Option<Value>,
    /// Sandbox business state before the events (e.g. `financial_settings` dates).
    #[serde(default)]
    pub business: Option<Value>,
    /// The events the store sends, in order.
    #[serde(default)]
    pub events: Vec<Value>,
    /// A real Magento document to reshape as an event (see [`RealSource`]).
    #[serde(default)]
    pub real: Option<RealSource>,
    /// What Sage (and Ledger's hold list) must show afterwards.
    pub expect: Vec<Value>,
    /// The order in which the built events are published (indexes into `events`), when it
    /// is not the file order: e.g. a payment before its invoice.
    #[serde(default)]
    pub publish_order: Option<Vec<usize>>,
}

/// A real Magento REST response (from the project's shared material) used as a case's event.
#[derive(Debug, Clone, Deserialize)]
pub struct RealSource {
    /// File holding the invoice, credit memo or order.
    pub document: String,
    /// `invoice.created` or `creditmemo.created`. An order is invoiced in full: its own
    /// lines and totals become the invoice's, as Magento copies them.
    pub event_type: String,
    /// File holding the order context, when `document` is an invoice or credit memo.
    #[serde(default)]
    pub order: Option<String>,
    /// Replacements applied to the reshaped event (e.g. currency relabelling).
    #[serde(default)]
    pub patch: Option<Value>,
}

/// A case file.
#[derive(Debug, Clone, Deserialize)]
pub struct CaseFile {
    /// The cases.
    pub cases: Vec<Case>,
}

/// The corpus directory of the workspace being run (see [`ledger_testkit::workspace_root`]).
pub fn corpus_dir() -> PathBuf {
    ledger_testkit::workspace_root().join("testbed/stack/corpus")
}

/// Loads every `*.json` case file of `dir`, in file-name order.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut names = std::collections::HashSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let file: CaseFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        for c in file.cases {
            if !names.insert(c.name.clone()) {
                bail!("{}: case name {} is used twice", f.display(), c.name);
            }
            cases.push(c);
        }
    }
    Ok(cases)
}

/// RFC 7386 merge: objects merge key by key, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The order context a case gets unless it says otherwise: a registered UK customer paying
/// by card, billed and delivered in Bristol.
pub fn default_order() -> Value {
    let address = |kind: &str| {
        json!({
            "address_type": kind, "firstname": "Ada", "lastname": "Brook",
            "street": ["1 Corn Street"], "city": "Bristol", "region": "Bristol",
            "postcode": "BS1 1JQ", "country_id": "GB", "telephone": "0117 000 0000",
            "email": "ada.brook@example.co.uk"
        })
    };
    json!({
        "entity_id": 7001, "increment_id": "100007001", "store_id": 1,
        "created_at": "2026-03-02 10:00:00",
        "base_currency_code": "GBP", "order_currency_code": "GBP", "base_to_order_rate": 1,
        "customer_id": 501, "customer_is_guest": 0, "customer_email": "ada.brook@example.co.uk",
        "customer_firstname": "Ada", "customer_lastname": "Brook", "customer_group_id": 1,
        "billing_address": address("billing"),
        "shipping_address": address("shipping"),
        "payment": {"method": "stripe_payments"}
    })
}

const HEADER_MONEY: [&str; 13] = [
    "grand_total",
    "subtotal",
    "subtotal_incl_tax",
    "tax_amount",
    "shipping_amount",
    "shipping_tax_amount",
    "shipping_incl_tax",
    "discount_amount",
    "discount_tax_compensation_amount",
    "shipping_discount_tax_compensation_amount",
    "adjustment_positive",
    "adjustment_negative",
    "adjustment",
];
const ITEM_MONEY: [&str; 8] = [
    "price",
    "price_incl_tax",
    "row_total",
    "row_total_incl_tax",
    "discount_amount",
    "tax_amount",
    "discount_tax_compensation_amount",
    "discount_tax_compensation",
];

fn same_currency(doc: &Map<String, Value>) -> bool {
    let base = doc.get("base_currency_code").and_then(Value::as_str);
    let order = doc.get("order_currency_code").and_then(Value::as_str);
    let rate = doc
        .get("base_to_order_rate")
        .map(crate::events::amount)
        .unwrap_or(Decimal::ONE);
    base == order && rate == Decimal::ONE
}

/// Copies `x` into a missing `base_x` (only for same-currency documents).
fn base_twins(obj: &mut Map<String, Value>, fields: &[&str]) {
    for f in fields {
        let base = if *f == "shipping_discount_tax_compensation_amount" {
            "base_shipping_discount_tax_compensation_amnt".to_string()
        } else {
            format!("base_{f}")
        };
        if let Some(v) = obj.get(*f).cloned() {
            obj.entry(base).or_insert(v);
        }
    }
}

/// Completes a hand-written invoice or credit memo: ids, state, currency block from the
/// order, `base_*` twins for same-currency documents, and item defaults.
pub fn complete_document(doc: &mut Value, order: &Value, kind: &str) -> anyhow::Result<()> {
    let obj = doc
        .as_object_mut()
        .context("the document must be an object")?;
    for key in [
        "base_currency_code",
        "order_currency_code",
        "base_to_order_rate",
    ] {
        if !obj.contains_key(key) {
            obj.insert(key.into(), order[key].clone());
        }
    }
    obj.entry("order_id").or_insert(order["entity_id"].clone());
    obj.entry("store_id").or_insert(json!(1));
    obj.entry("state").or_insert(json!(2));
    for key in [
        "subtotal",
        "tax_amount",
        "shipping_amount",
        "discount_amount",
    ] {
        obj.entry(key).or_insert(json!(0));
    }
    if !obj.contains_key("increment_id") {
        bail!("{kind}: increment_id is required");
    }
    if !obj.contains_key("grand_total") {
        bail!("{kind}: grand_total is required");
    }
    let same = same_currency(obj);
    if same {
        base_twins(obj, &HEADER_MONEY);
    } else if !obj.contains_key("base_grand_total") {
        bail!("{kind}: a foreign-currency document states its base amounts (base_grand_total missing)");
    }
    let doc_id = obj.get("entity_id").cloned().unwrap_or(Value::Null);
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        for (i, item) in items.iter_mut().enumerate() {
            let it = item.as_object_mut().context("items are objects")?;
            it.entry("order_item_id").or_insert(json!(9001 + i as u64));
            it.entry("parent_id").or_insert(doc_id.clone());
            if !it.contains_key("sku") {
                bail!("{kind}.items[{i}]: sku is required");
            }
            // The product tax class belongs to the order line (see `order_items_from`).
            it.remove("tax_class");
            let sku = it["sku"].clone();
            it.entry("name").or_insert(sku);
            if same {
                base_twins(it, &ITEM_MONEY);
            } else if !it.contains_key("base_price") {
                bail!("{kind}.items[{i}]: base_price is required for a foreign-currency document");
            }
        }
    } else {
        obj.insert("items".into(), json!([]));
    }
    Ok(())
}

/// Order lines for the order context, copied from a document's lines (what Magento's order
/// item holds for them: id, SKU, name, type, quantity, tax rate and class).
pub fn order_items_from(doc: &Value) -> Vec<Value> {
    doc["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|it| {
                    let mut o = json!({
                        "item_id": it["order_item_id"],
                        "sku": it["sku"],
                        "name": it["name"],
                        "product_type": it.get("product_type").cloned().unwrap_or(json!("simple")),
                        "qty_ordered": it["qty"],
                    });
                    for key in ["tax_percent", "product_id", "parent_item_id", "tax_class"] {
                        if let Some(v) = it.get(key) {
                            o[key] = v.clone();
                        }
                    }
                    o
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An envelope around `payload` for `merchant`.
pub fn envelope(merchant: &str, event_type: &str, event_id: &str, payload: Value) -> Value {
    json!({
        "event_id": event_id,
        "schema_version": 1,
        "event_type": event_type,
        "merchant_id": merchant,
        "website_id": 1,
        "store_id": 1,
        "occurred_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "source": {"module_version": "1.0.0", "magento_version": "2.4.7-p3", "magento_edition": "Community"},
        "payload": payload,
    })
}

/// The events of a case, built: envelope, completed documents and order contexts.
///
/// Event forms (see the corpus README): `{"type": "invoice.created", "invoice": {..},
/// "order": {..}}`, `{"type": "creditmemo.created", "creditmemo": {..}, "order": {..}}`,
/// `{"type": "invoice.paid", "invoice": "<increment id of an earlier invoice>", "payment":
/// {..}}`, `{"repeat": i}` (event `i` again, same event id) and `{"copy": i}` (event `i`
/// again under a new event id). A step (`{"step": "wait_held" | "settings" | "replay", ..}`,
/// see [`is_step`]) is passed through as it is, so event indexes stay the case's indexes.
pub fn build_events(merchant: &str, case: &Case) -> anyhow::Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    let mut invoices: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    let mut credit_memos: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    let mut last_order: Option<Value> = None;
    for (i, ev) in case.events.iter().enumerate() {
        let ctx = || format!("case {} event {i}", case.name);
        if let Some(n) = ev.get("repeat").and_then(Value::as_u64) {
            let again = out.get(n as usize).cloned().with_context(ctx)?;
            out.push(again);
            continue;
        }
        if let Some(n) = ev.get("copy").and_then(Value::as_u64) {
            let mut again = out.get(n as usize).cloned().with_context(ctx)?;
            again["event_id"] = json!(uuid::Uuid::new_v4().to_string());
            // `{"copy": i, "patch": {..}}`: the document changed in Magento since (a credit
            // memo pending at the gateway, now refunded); merged over the payload.
            if let Some(p) = ev.get("patch") {
                merge(&mut again["payload"], p);
            }
            out.push(again);
            continue;
        }
        if is_step(ev) {
            out.push(ev.clone());
            continue;
        }
        let event_type = ev["type"].as_str().with_context(ctx)?;
        let event_id = ev
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let order_for = |doc: &Value, last: &Option<Value>| -> Value {
            let mut order = last.clone().unwrap_or_else(default_order);
            if last.is_none() {
                // The order was placed when the document was made unless the case says so.
                if let Some(at) = doc.get("created_at") {
                    order["created_at"] = at.clone();
                }
                order["items"] = json!(order_items_from(doc));
            }
            if let Some(p) = ev.get("order") {
                merge(&mut order, p);
            }
            order
        };
        let payload = match event_type {
            "invoice.created" | "creditmemo.created" => {
                let key = if event_type == "invoice.created" {
                    "invoice"
                } else {
                    "creditmemo"
                };
                let mut doc = ev.get(key).cloned().with_context(ctx)?;
                let order = order_for(&doc, &last_order);
                complete_document(&mut doc, &order, key).with_context(ctx)?;
                let inc = doc["increment_id"].as_str().unwrap_or_default().to_owned();
                if key == "invoice" {
                    invoices.insert(inc, (doc.clone(), order.clone()));
                } else {
                    credit_memos.insert(inc, (doc.clone(), order.clone()));
                }
                last_order = Some(order.clone());
                json!({ key: doc, "order": order })
            }
            "invoice.paid" => {
                let inc = ev["invoice"].as_str().with_context(ctx)?;
                let (doc, order) = invoices
                    .get(inc)
                    .cloned()
                    .with_context(|| format!("{}: no earlier invoice {inc}", ctx()))?;
                let mut payment = ev.get("payment").cloned().unwrap_or(json!({}));
                let p = payment.as_object_mut().with_context(ctx)?;
                p.entry("method")
                    .or_insert(order["payment"]["method"].clone());
                p.entry("currency")
                    .or_insert(doc["order_currency_code"].clone());
                p.entry("amount_paid").or_insert(doc["grand_total"].clone());
                p.entry("base_amount_paid")
                    .or_insert(doc["base_grand_total"].clone());
                let paid_at = doc["created_at"]
                    .as_str()
                    .unwrap_or_default()
                    .replace(' ', "T")
                    + "Z";
                p.entry("paid_at").or_insert(json!(paid_at));
                json!({"invoice": doc, "order": order, "payment": payment})
            }
            // Cancel and void: the earlier document, now in state 3 (or 2 for a credit memo
            // refunded after being pending), with the state it left.
            "invoice.canceled" => {
                let inc = ev["invoice"].as_str().with_context(ctx)?;
                let (mut doc, order) = invoices
                    .get(inc)
                    .cloned()
                    .with_context(|| format!("{}: no earlier invoice {inc}", ctx()))?;
                let previous = ev
                    .get("previous_state")
                    .cloned()
                    .unwrap_or_else(|| doc["state"].clone());
                doc["state"] = json!(3);
                let at = ev
                    .get("canceled_at")
                    .cloned()
                    .unwrap_or_else(|| json!(rfc3339_of(&doc["created_at"])));
                json!({"invoice": doc, "order": order, "previous_state": previous, "canceled_at": at})
            }
            "creditmemo.canceled" | "creditmemo.refunded" => {
                let inc = ev["creditmemo"].as_str().with_context(ctx)?;
                let (mut doc, order) = credit_memos
                    .get(inc)
                    .cloned()
                    .with_context(|| format!("{}: no earlier credit memo {inc}", ctx()))?;
                doc["state"] = json!(if event_type == "creditmemo.canceled" {
                    3
                } else {
                    2
                });
                let at = ev
                    .get("changed_at")
                    .cloned()
                    .unwrap_or_else(|| json!(rfc3339_of(&doc["created_at"])));
                json!({"creditmemo": doc, "order": order, "previous_state": 1, "changed_at": at})
            }
            other => bail!("{}: unknown event type {other}", ctx()),
        };
        out.push(envelope(merchant, event_type, &event_id, payload));
    }
    Ok(out)
}

/// Magento's `created_at` (`2026-03-02 10:00:00`, UTC) as RFC 3339.
fn rfc3339_of(at: &Value) -> String {
    at.as_str().unwrap_or_default().replace(' ', "T") + "Z"
}

/// True for an entry of `events` that is a runner step, not a Magento event:
/// `{"step": "wait_held", "events": [i, ..]}` waits until Ledger holds each of those events,
/// `{"step": "wait_sage", "resource": "contact_allocations", "count": 1}` waits until Sage
/// holds that many records of the resource (to order a payment after a settlement),
/// `{"step": "settings", "patch": {..}}` changes the merchant's settings (what a merchant does
/// to release a held document), `{"step": "replay", "service": "documents"}` runs the
/// merchant's events through that service again (`ledgerctl replay --service documents`, how
/// an operator releases held documents after the fix).
pub fn is_step(ev: &Value) -> bool {
    ev.get("step").and_then(Value::as_str).is_some()
}

/// Reshapes a real Magento REST document into an event payload. An order becomes the
/// invoice that bills it in full: Magento's invoice copies the order's lines and totals
/// (`qty_ordered` → `qty`, `item_id` → `order_item_id`), which is all this does.
pub fn reshape_real(
    merchant: &str,
    source: &RealSource,
    read: &dyn Fn(&str) -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    let document = read(&source.document)?;
    let is_order = document
        .get("items")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .first()
                .is_some_and(|i| i.get("item_id").is_some() && i.get("order_item_id").is_none())
        });
    let (doc, order) = if is_order {
        let order = document.clone();
        let mut invoice = document.clone();
        let o = invoice.as_object_mut().context("order object")?;
        o.insert("order_id".into(), order["entity_id"].clone());
        o.insert("state".into(), json!(2));
        o.remove("extension_attributes");
        o.remove("payment");
        o.remove("status_histories");
        // Magento's dummy lines (Order\Item::isDummy): a configurable's child carries no
        // amounts of its own, and a bundle whose children are priced is itself the dummy.
        let types: BTreeMap<u64, String> = order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["item_id"].as_u64()?,
                    i["product_type"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let parents_with_children: std::collections::HashSet<u64> = order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["parent_item_id"].as_u64())
            .collect();
        if let Some(items) = o.get_mut("items").and_then(Value::as_array_mut) {
            for it in items.iter_mut() {
                let m = it.as_object_mut().context("order item")?;
                let id = m.remove("item_id").unwrap_or(Value::Null);
                let dummy = match m.get("parent_item_id").and_then(Value::as_u64) {
                    Some(parent) => types.get(&parent).map(String::as_str) == Some("configurable"),
                    None => {
                        m.get("product_type").and_then(Value::as_str) == Some("bundle")
                            && id
                                .as_u64()
                                .is_some_and(|i| parents_with_children.contains(&i))
                    }
                };
                m.insert("is_dummy".into(), json!(dummy));
                m.insert("order_item_id".into(), id);
                let qty = m.get("qty_ordered").cloned().unwrap_or(json!(0));
                m.insert("qty".into(), qty);
            }
        }
        (invoice, order)
    } else {
        let order = match &source.order {
            Some(f) => read(f)?,
            None => bail!(
                "{}: an invoice or credit memo needs its order",
                source.document
            ),
        };
        (document, order)
    };
    let key = if source.event_type == "creditmemo.created" {
        "creditmemo"
    } else {
        "invoice"
    };
    let mut payload = json!({ key: doc, "order": order });
    if let Some(p) = &source.patch {
        merge(&mut payload, p);
    }
    Ok(envelope(
        merchant,
        &source.event_type,
        &uuid::Uuid::new_v4().to_string(),
        payload,
    ))
}

/// What Ledger says about events it kept out of Sage, by event id ("held: reason (detail)"
/// or "refused: ...").
pub type Reasons = std::collections::HashMap<String, String>;

/// Sage's records of one merchant, by resource.
pub type SageView = BTreeMap<String, Vec<Value>>;

/// The resources the expectations read.
pub const RESOURCES: [&str; 5] = [
    "sales_invoices",
    "sales_credit_notes",
    "contact_payments",
    "contact_allocations",
    "contacts",
];

fn amount(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn money_eq(got: &Value, want: &Value) -> bool {
    match (amount(got), amount(want)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// How many Sage documents or Ledger decisions an expectation stands for (`count` checks
/// stand for none).
pub fn documents_in(expect: &[Value]) -> usize {
    expect
        .iter()
        .filter(|e| e.get("count").is_none() && e.get("bank").is_none())
        .count()
}

fn live(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            d.get("deleted_at").is_none_or(Value::is_null)
                && d.get("void_reason").is_none_or(Value::is_null)
        })
        .collect()
}

fn rate_of(line: &Value) -> String {
    line.get("tax_rate")
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned()
}

fn check_sales(kind: &str, want: &Value, docs: &[Value], out: &mut Vec<String>) {
    let reference = want[kind].as_str().unwrap_or_default();
    let matches: Vec<&Value> = live(docs)
        .into_iter()
        .filter(|d| d["reference"].as_str() == Some(reference))
        .collect();
    if matches.len() != 1 {
        out.push(format!(
            "{kind} {reference}: {} in Sage, expected exactly 1",
            matches.len()
        ));
        return;
    }
    let doc = matches[0];
    let fields = [
        ("date", "date"),
        ("due_date", "due_date"),
        ("original_invoice_date", "original_invoice_date"),
        ("contact_name", "contact_name"),
        ("currency", "currency_id"),
    ];
    for (key, sage) in fields {
        if let Some(w) = want.get(key) {
            let got = if sage == "currency_id" {
                doc["currency"]["id"].clone()
            } else {
                doc[sage].clone()
            };
            if show(&got) != show(w) {
                out.push(format!(
                    "{kind} {reference}: {key} is {} in Sage, expected {}",
                    show(&got),
                    show(w)
                ));
            }
        }
    }
    let money = [
        ("total", "total_amount"),
        ("net", "net_amount"),
        ("tax", "tax_amount"),
        ("base_total", "base_currency_total_amount"),
        ("outstanding", "outstanding_amount"),
    ];
    for (key, sage) in money {
        if let Some(w) = want.get(key) {
            if !money_eq(&doc[sage], w) {
                out.push(format!(
                    "{kind} {reference}: {key} is {} in Sage, expected {}",
                    show(&doc[sage]),
                    show(w)
                ));
            }
        }
    }
    if let Some(w) = want.get("exchange_rate") {
        if amount(&doc["exchange_rate"]) != amount(w) {
            out.push(format!(
                "{kind} {reference}: exchange_rate is {} in Sage, expected {}",
                show(&doc["exchange_rate"]),
                show(w)
            ));
        }
    }
    if let Some(texts) = want.get("notes_contain").and_then(Value::as_array) {
        let notes = doc["notes"].as_str().unwrap_or_default();
        for t in texts.iter().filter_map(Value::as_str) {
            if !notes.contains(t) {
                out.push(format!("{kind} {reference}: notes lack {t:?}: {notes:?}"));
            }
        }
    }
    let lines_key = if kind == "invoice" {
        "invoice_lines"
    } else {
        "credit_note_lines"
    };
    if let Some(want_lines) = want.get("lines").and_then(Value::as_array) {
        // Lines are compared per description and rate, summed: Magento's row may reach Sage
        // as one line or as several lines of the same item (e.g. a quantity split so that
        // every unit price has two decimals); what must agree is the row's net and VAT.
        type Key = (String, String);
        let mut got: BTreeMap<Key, (Decimal, Decimal)> = BTreeMap::new();
        for l in doc[lines_key].as_array().into_iter().flatten() {
            let key = (
                l["description"].as_str().unwrap_or_default().to_owned(),
                rate_of(l),
            );
            let e = got.entry(key).or_default();
            e.0 += amount(&l["net_amount"]).unwrap_or_default();
            e.1 += amount(&l["tax_amount"]).unwrap_or_default();
        }
        let mut expected: BTreeMap<Key, (Decimal, Decimal)> = BTreeMap::new();
        for wl in want_lines {
            let key = (
                wl["description"].as_str().unwrap_or_default().to_owned(),
                wl["rate"].as_str().unwrap_or("none").to_owned(),
            );
            let e = expected.entry(key).or_default();
            e.0 += amount(&wl["net"]).unwrap_or_default();
            e.1 += amount(&wl["tax"]).unwrap_or_default();
        }
        for ((desc, rate), (wn, wt)) in &expected {
            match got.remove(&(desc.clone(), rate.clone())) {
                Some((gn, gt)) if gn == *wn && gt == *wt => {}
                Some((gn, gt)) => out.push(format!(
                    "{kind} {reference}: line {desc:?} on {rate} has net {gn} VAT {gt}, expected net {wn} VAT {wt}"
                )),
                None => {
                    let elsewhere: Vec<String> = got
                        .iter()
                        .filter(|((d, _), _)| d == desc)
                        .map(|((_, r), (n, t))| format!("net {n} VAT {t} on {r}"))
                        .collect();
                    out.push(format!(
                        "{kind} {reference}: no line {desc:?} on {rate} (net {wn} VAT {wt}); Sage has {}",
                        if elsewhere.is_empty() { "no such line".to_owned() } else { elsewhere.join(", ") }
                    ));
                }
            }
        }
        for ((desc, rate), (gn, gt)) in got {
            out.push(format!(
                "{kind} {reference}: unexpected line {desc:?} net {gn} VAT {gt} on {rate}"
            ));
        }
    }
    if let Some(vat) = want.get("vat").and_then(Value::as_object) {
        let mut got: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
        for l in doc[lines_key].as_array().into_iter().flatten() {
            let e = got.entry(rate_of(l)).or_default();
            e.0 += amount(&l["net_amount"]).unwrap_or_default();
            e.1 += amount(&l["tax_amount"]).unwrap_or_default();
        }
        let ship_net = amount(&doc["shipping_net_amount"]).unwrap_or_default();
        if !ship_net.is_zero() {
            let e = got
                .entry(rate_of(&json!({"tax_rate": doc["shipping_tax_rate"]})))
                .or_default();
            e.0 += ship_net;
            e.1 += amount(&doc["shipping_tax_amount"]).unwrap_or_default();
        }
        for (rate, pair) in vat {
            let (wn, wt) = (pair[0].clone(), pair[1].clone());
            let (gn, gt) = got.remove(rate).unwrap_or_default();
            if amount(&wn) != Some(gn) || amount(&wt) != Some(gt) {
                out.push(format!(
                    "{kind} {reference}: on {rate} Sage has net {gn} VAT {gt}, expected net {} VAT {}",
                    show(&wn),
                    show(&wt)
                ));
            }
        }
        for (rate, (gn, gt)) in got {
            if !(gn.is_zero() && gt.is_zero()) {
                out.push(format!(
                    "{kind} {reference}: unexpected rate {rate} with net {gn} VAT {gt}"
                ));
            }
        }
    }
}

fn artefact_amount(payment: &Value, reference: &str, docs: &SageView) -> Option<Decimal> {
    let id_of = |resource: &str| -> Option<String> {
        docs.get(resource)?
            .iter()
            .find(|d| d["reference"].as_str() == Some(reference))
            .and_then(|d| d["id"].as_str().map(str::to_owned))
    };
    let ids: Vec<String> = ["sales_invoices", "sales_credit_notes"]
        .iter()
        .filter_map(|r| id_of(r))
        .collect();
    payment["allocated_artefacts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["artefact"]["id"]
                .as_str()
                .is_some_and(|id| ids.iter().any(|x| x == id))
        })
        .and_then(|a| amount(&a["amount"]))
}

fn check_payment(kind: &str, want: &Value, view: &SageView, out: &mut Vec<String>) {
    let spec = &want[kind];
    let (resource, type_id) = match kind {
        "receipt" => ("contact_payments", Some("CUSTOMER_RECEIPT")),
        "refund" => ("contact_payments", Some("CUSTOMER_REFUND")),
        _ => ("contact_allocations", None),
    };
    let target = spec["allocated_to"]
        .as_str()
        .or_else(|| spec["invoice"].as_str())
        .unwrap_or_default();
    let all = view.get(resource).cloned().unwrap_or_default();
    let found: Vec<&Value> = live(&all)
        .into_iter()
        .filter(|p| {
            type_id.is_none_or(|t| p["transaction_type"]["id"].as_str() == Some(t))
                && artefact_amount(p, target, view).is_some()
        })
        .collect();
    if found.len() != 1 {
        out.push(format!(
            "{kind} for {target}: {} in Sage, expected exactly 1",
            found.len()
        ));
        return;
    }
    let p = found[0];
    if let Some(w) = spec.get("amount") {
        let got = artefact_amount(p, target, view);
        if got != amount(w) {
            out.push(format!(
                "{kind} for {target}: allocates {} to it, expected {}",
                got.map(|d| d.to_string()).unwrap_or_default(),
                show(w)
            ));
        }
    }
    if let Some(w) = spec.get("total") {
        if !money_eq(&p["total_amount"], w) {
            out.push(format!(
                "{kind} for {target}: total is {} in Sage, expected {}",
                show(&p["total_amount"]),
                show(w)
            ));
        }
    }
    if let Some(w) = spec.get("date") {
        if show(&p["date"]) != show(w) {
            out.push(format!(
                "{kind} for {target}: date is {} in Sage, expected {}",
                show(&p["date"]),
                show(w)
            ));
        }
    }
    // Money in: the base amount received, the realised exchange difference Sage books, the
    // part left on account and the bank account the money landed in.
    for (field, got) in [
        ("base_total", &p["base_currency_total_amount"]),
        ("exchange_gain_loss", &p["realised_exchange_gain_loss"]),
    ] {
        if let Some(w) = spec.get(field) {
            if !money_eq(got, w) {
                out.push(format!(
                    "{kind} for {target}: {field} is {} in Sage, expected {}",
                    show(got),
                    show(w)
                ));
            }
        }
    }
    if let Some(w) = spec.get("on_account") {
        let got = p["payment_on_account"]
            .get("total_amount")
            .cloned()
            .unwrap_or(json!("0.00"));
        if !money_eq(&got, w) {
            out.push(format!(
                "{kind} for {target}: {} left on account in Sage, expected {}",
                show(&got),
                show(w)
            ));
        }
    }
    if let Some(w) = spec.get("bank_account") {
        let got = &p["bank_account"]["displayed_as"];
        if show(got) != show(w) {
            out.push(format!(
                "{kind} for {target}: paid into bank account {} in Sage, expected {}",
                show(got),
                show(w)
            ));
        }
    }
    if let Some(cn) = spec.get("credit_note").and_then(Value::as_str) {
        let got = artefact_amount(p, cn, view);
        let want_cn = spec.get("amount").and_then(amount).map(|a| -a);
        if got.is_none() || (want_cn.is_some() && got != want_cn) {
            out.push(format!(
                "{kind} for {target}: credit note {cn} allocated {}, expected {}",
                got.map(|d| d.to_string()).unwrap_or("nothing".into()),
                want_cn.map(|d| d.to_string()).unwrap_or("some".into())
            ));
        }
    }
}

/// `{"voided": {"invoice": "<reference>"}}` (or `"credit_note"`): Sage holds the document
/// voided, with a `void_reason` (containing `void_reason_contains` when given), and no live
/// document with that reference. Returns whether it held.
fn check_voided(want: &Value, view: &SageView, out: &mut Vec<String>) -> bool {
    let (kind, resource) = if want.get("invoice").is_some() {
        ("invoice", "sales_invoices")
    } else {
        ("credit_note", "sales_credit_notes")
    };
    let reference = want[kind].as_str().unwrap_or_default();
    let docs = view.get(resource).map(Vec::as_slice).unwrap_or(&[]);
    let same: Vec<&Value> = docs
        .iter()
        .filter(|d| d["reference"].as_str() == Some(reference))
        .collect();
    let before = out.len();
    let void: Vec<&&Value> = same
        .iter()
        .filter(|d| d["void_reason"].as_str().is_some_and(|r| !r.is_empty()))
        .collect();
    if void.len() != 1 {
        out.push(format!(
            "{kind} {reference}: {} voided in Sage, expected exactly 1",
            void.len()
        ));
    } else if let Some(text) = want.get("void_reason_contains").and_then(Value::as_str) {
        let reason = void[0]["void_reason"].as_str().unwrap_or_default();
        if !reason.contains(text) {
            out.push(format!(
                "{kind} {reference}: void reason {reason:?} does not say {text:?}"
            ));
        }
    }
    let live_ones = live(docs)
        .into_iter()
        .filter(|d| d["reference"].as_str() == Some(reference))
        .count();
    if live_ones != 0 {
        out.push(format!(
            "{kind} {reference}: {live_ones} live in Sage, expected none (voided)"
        ));
    }
    out.len() == before
}

/// `{"bank": {"account": "<Sage bank account name>", "total": "<amount>"}}`: what the live
/// receipts into that account less the live refunds out of it come to in Sage, against what
/// Magento says moved through the payment method that settles there (captures less refunds
/// paid back through it), worked out by hand in the case.
fn check_bank(spec: &Value, view: &SageView, out: &mut Vec<String>) {
    let account = spec["account"].as_str().unwrap_or_default();
    let mut total = Decimal::ZERO;
    let payments = view.get("contact_payments").cloned().unwrap_or_default();
    for p in live(&payments) {
        if p["bank_account"]["displayed_as"].as_str() != Some(account) {
            continue;
        }
        let amount = amount(&p["total_amount"]).unwrap_or_default();
        match p["transaction_type"]["id"].as_str() {
            Some("CUSTOMER_RECEIPT") => total += amount,
            Some("CUSTOMER_REFUND") => total -= amount,
            _ => {}
        }
    }
    if amount(&spec["total"]) != Some(total) {
        out.push(format!(
            "bank account {account}: receipts less refunds come to {total} in Sage, expected {} (what Magento says moved through it)",
            show(&spec["total"])
        ));
    }
}

/// Compares one case's expectations with Sage and Ledger's reasons; one line per
/// difference. `event_ids` are the ids of the case's events, in order.
pub fn check(
    expect: &[Value],
    view: &SageView,
    reasons: &Reasons,
    event_ids: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for want in expect {
        if want.get("invoice").is_some() {
            check_sales(
                "invoice",
                want,
                view.get("sales_invoices").map(Vec::as_slice).unwrap_or(&[]),
                &mut out,
            );
        } else if want.get("credit_note").is_some() {
            check_sales(
                "credit_note",
                want,
                view.get("sales_credit_notes")
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
                &mut out,
            );
        } else if want.get("receipt").is_some() {
            check_payment("receipt", want, view, &mut out);
        } else if want.get("refund").is_some() {
            check_payment("refund", want, view, &mut out);
        } else if want.get("allocation").is_some() {
            check_payment("allocation", want, view, &mut out);
        } else if let Some(voided) = want.get("voided") {
            check_voided(voided, view, &mut out);
        } else if let Some(index) = want.get("held").and_then(Value::as_u64) {
            let id = event_ids.get(index as usize).cloned().unwrap_or_default();
            let reason = want["reason"].as_str().unwrap_or_default();
            match reasons.get(&id) {
                Some(r) if r.starts_with(&format!("held: {reason} ")) => {
                    for t in want["detail_contains"].as_array().into_iter().flatten() {
                        let t = t.as_str().unwrap_or_default();
                        if !r.contains(t) {
                            out.push(format!("event {index}: {r:?} does not say {t:?}"));
                        }
                    }
                }
                Some(r) => out.push(format!("event {index}: {r}, expected held: {reason}")),
                None => out.push(format!("event {index}: not held, expected held: {reason}")),
            }
        } else if let Some(bank) = want.get("bank") {
            check_bank(bank, view, &mut out);
        } else if let Some(counts) = want.get("count").and_then(Value::as_object) {
            for (resource, n) in counts {
                let got = view.get(resource).map(|d| live(d).len()).unwrap_or(0);
                if Some(got as u64) != n.as_u64() {
                    out.push(format!("{resource}: {got} in Sage, expected {}", show(n)));
                }
            }
        } else if let Some(contact) = want.get("contact") {
            check_contact(contact, view, &mut out);
        } else {
            out.push(format!("unknown expectation {want}"));
        }
    }
    out
}

/// A `{"contact": {...}}` expectation: a customer contact named `name` exists, and, when
/// given, it is the only one of that name and its `currency`, `tax_number` (`null`: none),
/// notes (`notes_contain`: each text appears) and invoices (`invoices`: these invoice
/// references are billed to it) are as expected.
fn check_contact(want: &Value, view: &SageView, out: &mut Vec<String>) {
    let name = &want["name"];
    let contacts = view.get("contacts").cloned().unwrap_or_default();
    let customers: Vec<&Value> = contacts
        .iter()
        .filter(|c| c["contact_types"].to_string().contains("CUSTOMER"))
        .collect();
    let named: Vec<&&Value> = customers.iter().filter(|c| c["name"] == *name).collect();
    let Some(contact) = named.first() else {
        let names: Vec<String> = customers.iter().map(|c| show(&c["name"])).collect();
        out.push(format!(
            "contact {}: not in Sage (customers: {})",
            show(name),
            names.join(", ")
        ));
        return;
    };
    let detailed = ["currency", "tax_number", "notes_contain", "invoices"]
        .iter()
        .any(|k| want.get(*k).is_some());
    if detailed && named.len() > 1 {
        out.push(format!(
            "contact {}: {} contacts of that name, expected exactly 1",
            show(name),
            named.len()
        ));
        return;
    }
    if let Some(currency) = want.get("currency") {
        if contact["currency"]["id"] != *currency {
            out.push(format!(
                "contact {} currency: Sage {}, expected {}",
                show(name),
                show(&contact["currency"]["id"]),
                show(currency)
            ));
        }
    }
    if let Some(tax) = want.get("tax_number") {
        let got = contact.get("tax_number").cloned().unwrap_or(Value::Null);
        let got = if got.as_str() == Some("") {
            Value::Null
        } else {
            got
        };
        if got != *tax {
            out.push(format!(
                "contact {} tax_number: Sage {}, expected {}",
                show(name),
                show(&got),
                show(tax)
            ));
        }
    }
    let notes = contact["notes"].as_str().unwrap_or_default();
    for t in want["notes_contain"].as_array().into_iter().flatten() {
        let t = t.as_str().unwrap_or_default();
        if !notes.contains(t) {
            out.push(format!(
                "contact {} notes {notes:?} do not say {t:?}",
                show(name)
            ));
        }
    }
    let invoices = view.get("sales_invoices").cloned().unwrap_or_default();
    for reference in want["invoices"].as_array().into_iter().flatten() {
        let billed = live(&invoices)
            .into_iter()
            .find(|d| d["reference"] == *reference)
            .map(|d| d["contact"]["id"].clone());
        match billed {
            Some(id) if id == contact["id"] => {}
            Some(_) => out.push(format!(
                "invoice {} is billed to another contact than {}",
                show(reference),
                show(name)
            )),
            None => out.push(format!(
                "invoice {}: not in Sage (expected on contact {})",
                show(reference),
                show(name)
            )),
        }
    }
}

/// True when every document expectation has something to compare with (Sage holds the
/// reference, or Ledger has a reason for the event), so waiting longer changes nothing.
pub fn settled(expect: &[Value], view: &SageView, reasons: &Reasons, event_ids: &[String]) -> bool {
    // A refused event is final: what it would have written will not come.
    let refused = event_ids
        .iter()
        .any(|id| reasons.get(id).is_some_and(|r| !r.starts_with("held:")));
    refused
        || expect.iter().all(|want| {
            let has = |resource: &str, key: &str| {
                let reference = want[key].as_str().unwrap_or_default();
                view.get(resource)
                    .is_some_and(|d| d.iter().any(|x| x["reference"].as_str() == Some(reference)))
            };
            if want.get("invoice").is_some() {
                has("sales_invoices", "invoice")
            } else if want.get("credit_note").is_some() {
                has("sales_credit_notes", "credit_note")
            } else if want.get("receipt").is_some()
                || want.get("refund").is_some()
                || want.get("allocation").is_some()
            {
                check(std::slice::from_ref(want), view, reasons, event_ids).is_empty()
            } else if let Some(voided) = want.get("voided") {
                check_voided(voided, view, &mut Vec::new())
            } else if let Some(index) = want.get("held").and_then(Value::as_u64) {
                // The expected reason, not just any: a document held first and canceled
                // later changes its reason once.
                let reason = want["reason"].as_str().unwrap_or_default();
                event_ids.get(index as usize).is_some_and(|id| {
                    reasons
                        .get(id)
                        .is_some_and(|r| r.starts_with(&format!("held: {reason} ")))
                })
            } else {
                true
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voided_expectation_needs_the_void_and_no_live_twin() {
        let want =
            json!({"voided": {"invoice": "100000711", "void_reason_contains": "after capture"}});
        let void = json!({"id": "a", "reference": "100000711",
            "void_reason": "Magento invoice 100000711 voided after capture"});
        let view_of = |docs: Vec<Value>| -> SageView {
            [("sales_invoices".to_string(), docs)].into_iter().collect()
        };
        let none: Reasons = Default::default();
        assert!(check(
            std::slice::from_ref(&want),
            &view_of(vec![void.clone()]),
            &none,
            &[]
        )
        .is_empty());
        // Still live (never voided): a difference, and not settled yet.
        let live_one = json!({"id": "a", "reference": "100000711", "void_reason": null});
        let view = view_of(vec![live_one.clone()]);
        assert_eq!(
            check(std::slice::from_ref(&want), &view, &none, &[]).len(),
            2
        );
        assert!(!settled(std::slice::from_ref(&want), &view, &none, &[]));
        // Voided, but another live one with the same reference: a difference.
        let twin = view_of(vec![void.clone(), live_one]);
        assert_eq!(
            check(std::slice::from_ref(&want), &twin, &none, &[]).len(),
            1
        );
        // Voided for another reason than expected.
        let other = json!({"voided": {"invoice": "100000711", "void_reason_contains": "canceled"}});
        assert_eq!(check(&[other], &view_of(vec![void]), &none, &[]).len(), 1);
    }

    #[test]
    fn merge_replaces_arrays_and_removes_nulls() {
        let mut a = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut a, &json!({"a": {"c": [3], "e": 2}, "d": null}));
        assert_eq!(a, json!({"a": {"b": 1, "c": [3], "e": 2}}));
    }

    #[test]
    fn same_currency_documents_get_base_twins_and_foreign_ones_must_state_them() {
        let order = default_order();
        let mut doc = json!({"increment_id": "1", "grand_total": 12, "tax_amount": 2,
            "items": [{"sku": "A", "qty": 1, "price": 10, "row_total": 10, "tax_amount": 2}]});
        complete_document(&mut doc, &order, "invoice").unwrap();
        assert_eq!(doc["base_grand_total"], json!(12));
        assert_eq!(doc["items"][0]["base_row_total"], json!(10));
        assert_eq!(doc["items"][0]["name"], json!("A"));

        let mut eur = default_order();
        eur["order_currency_code"] = json!("EUR");
        eur["base_to_order_rate"] = json!(1.17);
        let mut doc = json!({"increment_id": "1", "grand_total": 117});
        assert!(complete_document(&mut doc, &eur, "invoice").is_err());
    }

    #[test]
    fn lines_and_vat_are_compared_to_the_cent() {
        let view: SageView = [(
            "sales_invoices".to_string(),
            vec![json!({"reference": "R1", "total_amount": "12.00", "date": "2026-03-02",
                "invoice_lines": [{"description": "A", "net_amount": "10.00", "tax_amount": "2.00", "tax_rate": {"id": "GB_STANDARD"}}]})],
        )]
        .into_iter()
        .collect();
        let ok = json!({"invoice": "R1", "total": "12.00", "date": "2026-03-02",
            "lines": [{"description": "A", "net": "10.00", "tax": "2.00", "rate": "GB_STANDARD"}],
            "vat": {"GB_STANDARD": ["10.00", "2.00"]}});
        assert!(check(&[ok], &view, &Reasons::new(), &[]).is_empty());
        let off = json!({"invoice": "R1", "total": "12.01",
            "lines": [{"description": "A", "net": "9.99", "tax": "2.00", "rate": "GB_STANDARD"}],
            "vat": {"GB_STANDARD": ["10.00", "2.01"]}});
        let diffs = check(&[off], &view, &Reasons::new(), &[]);
        assert_eq!(diffs.len(), 3, "{diffs:#?}"); // total, the line, VAT
        let missing = json!({"invoice": "R2"});
        assert_eq!(check(&[missing], &view, &Reasons::new(), &[]).len(), 1);
    }

    #[test]
    fn held_expectations_read_the_reason_and_detail() {
        let mut reasons = Reasons::new();
        reasons.insert(
            "e1".into(),
            "held: unmapped_tax_rate (items[0] (X): no Sage rate mapped for 17.5%)".into(),
        );
        let ids = vec!["e1".to_string()];
        let want = json!({"held": 0, "reason": "unmapped_tax_rate", "detail_contains": ["17.5%"]});
        assert!(check(&[want], &SageView::new(), &reasons, &ids).is_empty());
        let wrong = json!({"held": 0, "reason": "totals_mismatch"});
        assert_eq!(check(&[wrong], &SageView::new(), &reasons, &ids).len(), 1);
    }

    #[test]
    fn contact_expectations_read_tax_number_notes_and_invoices() {
        let view: SageView = [
            (
                "contacts".to_string(),
                vec![
                    json!({"id": "c1", "name": "Sam Ltd", "contact_types": [{"id": "CUSTOMER"}],
                    "currency": {"id": "GBP"}, "tax_number": "GB123456789",
                    "notes": "VAT number as entered (refused by Sage): GB1"}),
                ],
            ),
            (
                "sales_invoices".to_string(),
                vec![
                    json!({"reference": "R1", "contact": {"id": "c1"}}),
                    json!({"reference": "R2", "contact": {"id": "c2"}}),
                ],
            ),
        ]
        .into_iter()
        .collect();
        let ok = json!({"contact": {"name": "Sam Ltd", "currency": "GBP",
            "tax_number": "GB123456789", "notes_contain": ["GB1"], "invoices": ["R1"]}});
        assert!(check(&[ok], &view, &Reasons::new(), &[]).is_empty());
        let off = json!({"contact": {"name": "Sam Ltd", "currency": "EUR", "tax_number": null,
            "notes_contain": ["GB2"], "invoices": ["R2", "R3"]}});
        let diffs = check(&[off], &view, &Reasons::new(), &[]);
        assert_eq!(diffs.len(), 5, "{diffs:#?}"); // currency, VAT, notes, R2 elsewhere, R3 missing
        let missing = json!({"contact": {"name": "Nobody"}});
        assert_eq!(check(&[missing], &view, &Reasons::new(), &[]).len(), 1);
    }
}
