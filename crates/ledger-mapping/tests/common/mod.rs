//! Test fixtures: Magento snapshots built from a compact description, the project's
//! example events, and a checker for Sage's request structure.
#![allow(dead_code)]

use ledger_events::{CreditMemoSnapshot, Envelope, InvoicePaidSnapshot, InvoiceSnapshot};
use ledger_mapping::{rules, sage_document_total, DocumentPlan, MerchantSettings};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Settings with every ledger account filled in, as services pass them.
pub fn settings() -> MerchantSettings {
    MerchantSettings {
        sales_ledger_account_id: Some("LEDGER-SALES".into()),
        shipping_ledger_account_id: Some("LEDGER-CARRIAGE".into()),
        rounding_ledger_account_id: Some("LEDGER-ROUNDING".into()),
        adjustment_ledger_account_id: Some("LEDGER-ADJUST".into()),
        purchase_ledger_account_id: Some("LEDGER-PURCHASES".into()),
        ..MerchantSettings::default()
    }
}

/// One Magento document line, all amounts in order currency.
#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub sku: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub row_total: Option<Decimal>,
    pub discount: Decimal,
    pub compensation: Decimal,
    pub tax: Decimal,
    pub tax_percent: Option<Decimal>,
    pub product_type: &'static str,
    pub is_dummy: Option<bool>,
    /// Tax-inclusive catalogs: Magento's price and row including tax.
    pub price_incl_tax: Option<Decimal>,
    pub row_total_incl_tax: Option<Decimal>,
    /// Product tax class name (sent on the order line).
    pub tax_class: Option<String>,
    /// Magento's applied tax codes on the line (code, percent).
    pub codes: Vec<(String, Decimal)>,
}

impl Line {
    /// A tax-exclusive line computed the way Magento does: row = round2(qty × price),
    /// tax = round2((row − discount) × pct).
    pub fn new(name: &str, qty: Decimal, price: Decimal, pct: Decimal) -> Line {
        let row = rules_round2(qty * price);
        Line {
            name: name.into(),
            sku: format!("SKU-{}", name.replace(' ', "-")),
            qty,
            price,
            row_total: Some(row),
            discount: Decimal::ZERO,
            compensation: Decimal::ZERO,
            tax: rules_round2(row * pct / dec!(100)),
            tax_percent: Some(pct),
            product_type: "simple",
            is_dummy: Some(false),
            price_incl_tax: None,
            row_total_incl_tax: None,
            tax_class: None,
            codes: Vec::new(),
        }
    }

    /// A line of a tax-inclusive catalog computed the way Magento does: row incl. tax =
    /// round2(qty × gross price), tax = round2(row incl × p / (100 + p)), row total (net)
    /// = row incl − tax, price (net) = gross / (1 + p/100) to 4 dp.
    pub fn incl(name: &str, qty: Decimal, gross_price: Decimal, pct: Decimal) -> Line {
        let row_incl = rules_round2(qty * gross_price);
        let tax = rules_round2(row_incl * pct / (dec!(100) + pct));
        let mut l = Line::new(name, qty, gross_price, pct);
        l.price = (gross_price * dec!(100) / (dec!(100) + pct)).round_dp(4);
        l.row_total = Some(row_incl - tax);
        l.tax = tax;
        l.price_incl_tax = Some(gross_price);
        l.row_total_incl_tax = Some(row_incl);
        l
    }

    /// Applies a discount including tax to a tax-inclusive line, as Magento does with
    /// "apply discount on prices including tax": the tax is recomputed on the discounted
    /// gross and the tax the discount removed is the discount tax compensation.
    pub fn incl_discounted(mut self, gross_discount: Decimal) -> Line {
        let pct = self.tax_percent.unwrap_or_default();
        let row_incl = self.row_total_incl_tax.expect("an incl() line");
        let tax_before = self.tax;
        self.discount = gross_discount;
        self.tax = rules_round2((row_incl - gross_discount) * pct / (dec!(100) + pct));
        self.compensation = tax_before - self.tax;
        self
    }

    pub fn class(mut self, class: &str) -> Line {
        self.tax_class = Some(class.into());
        self
    }

    pub fn code(mut self, code: &str) -> Line {
        let pct = self.tax_percent.unwrap_or_default();
        self.codes.push((code.into(), pct));
        self
    }

    /// Applies a discount (excl. tax) and recomputes the tax on the discounted net.
    pub fn discounted(mut self, discount: Decimal) -> Line {
        self.discount = discount;
        let pct = self.tax_percent.unwrap_or_default();
        self.tax = rules_round2((self.row_total.unwrap() - discount) * pct / dec!(100));
        self
    }

    pub fn typed(mut self, product_type: &'static str) -> Line {
        self.product_type = product_type;
        self
    }

    /// A composite dummy line (no amounts of its own).
    pub fn dummy(name: &str) -> Line {
        Line {
            name: name.into(),
            sku: format!("SKU-{name}"),
            qty: dec!(1),
            price: Decimal::ZERO,
            row_total: None,
            discount: Decimal::ZERO,
            compensation: Decimal::ZERO,
            tax: Decimal::ZERO,
            tax_percent: None,
            product_type: "simple",
            is_dummy: Some(true),
            price_incl_tax: None,
            row_total_incl_tax: None,
            tax_class: None,
            codes: Vec::new(),
        }
    }

    pub fn net(&self) -> Decimal {
        self.row_total.unwrap_or_default() - self.discount + self.compensation
    }

    fn json(&self, idx: usize) -> Value {
        let mut v = json!({
            "order_item_id": 9000 + idx,
            "sku": self.sku,
            "name": self.name,
            "qty": self.qty.to_string(),
            "price": self.price.to_string(),
            "base_price": self.price.to_string(),
            "product_type": self.product_type,
        });
        if let Some(d) = self.is_dummy {
            v["is_dummy"] = json!(d);
        }
        if let Some(row) = self.row_total {
            v["row_total"] = json!(row.to_string());
            v["discount_amount"] = json!(self.discount.to_string());
            v["discount_tax_compensation_amount"] = json!(self.compensation.to_string());
            v["tax_amount"] = json!(self.tax.to_string());
        }
        if let Some(p) = self.tax_percent {
            v["tax_percent"] = json!(p.to_string());
        }
        if let Some(p) = self.price_incl_tax {
            v["price_incl_tax"] = json!(p.to_string());
        }
        if let Some(r) = self.row_total_incl_tax {
            v["row_total_incl_tax"] = json!(r.to_string());
        }
        v
    }

    /// The order line this document line points at.
    fn order_json(&self, idx: usize) -> Value {
        let mut v = json!({
            "item_id": 9000 + idx,
            "product_type": self.product_type,
            "sku": self.sku,
            "qty_ordered": self.qty.to_string(),
        });
        if let Some(p) = self.tax_percent {
            v["tax_percent"] = json!(p.to_string());
        }
        if let Some(c) = &self.tax_class {
            v["tax_class"] = json!(c);
        }
        v
    }
}

fn rules_round2(d: Decimal) -> Decimal {
    ledger_mapping::round2(d)
}

/// Header facts of a generated document.
#[derive(Clone, Debug)]
pub struct Doc {
    pub increment_id: String,
    pub lines: Vec<Line>,
    pub shipping: Decimal,
    pub shipping_tax: Decimal,
    /// Discount on shipping (excl. tax), part of the header discount.
    pub shipping_discount: Decimal,
    pub country: String,
    pub currency: String,
    pub base_currency: String,
    pub rate: Decimal,
    pub adjustment_positive: Decimal,
    pub adjustment_negative: Decimal,
    /// Overrides the computed grand total (to simulate amounts the mapping cannot see).
    pub grand_total: Option<Decimal>,
    /// Overrides the base grand total (default: grand total / rate, to the cent).
    pub base_grand_total: Option<Decimal>,
    pub method: String,
    /// Percent Magento charged on shipping (for per-rate checks).
    pub shipping_pct: Decimal,
    /// Magento's applied tax codes on shipping.
    pub shipping_codes: Vec<(String, Decimal)>,
    /// Delivery country when it differs from the billing country; `Some("")` for an
    /// order without a shipping address (virtual).
    pub delivery_country: Option<String>,
    /// The order's `tax_config`, when sent.
    pub tax_config: Option<Value>,
}

impl Doc {
    pub fn new(lines: Vec<Line>) -> Doc {
        Doc {
            increment_id: "000000101".into(),
            lines,
            shipping: Decimal::ZERO,
            shipping_tax: Decimal::ZERO,
            shipping_discount: Decimal::ZERO,
            country: "GB".into(),
            currency: "GBP".into(),
            base_currency: "GBP".into(),
            rate: dec!(1),
            adjustment_positive: Decimal::ZERO,
            adjustment_negative: Decimal::ZERO,
            grand_total: None,
            base_grand_total: None,
            method: "stripe_payments".into(),
            shipping_pct: Decimal::ZERO,
            shipping_codes: Vec::new(),
            delivery_country: None,
            tax_config: None,
        }
    }

    /// Shipping net with tax at `pct`, computed the way Magento does.
    pub fn shipping(mut self, net: Decimal, pct: Decimal) -> Doc {
        self.shipping = net;
        self.shipping_pct = pct;
        self.shipping_tax = rules_round2((net - self.shipping_discount) * pct / dec!(100));
        self
    }

    pub fn country(mut self, c: &str) -> Doc {
        self.country = c.into();
        self
    }

    pub fn currency(mut self, currency: &str, base: &str, rate: Decimal) -> Doc {
        self.currency = currency.into();
        self.base_currency = base.into();
        self.rate = rate;
        self
    }

    /// Magento's grand total: subtotal + shipping + tax + discount (negative) +
    /// compensation + adjustments.
    pub fn computed_grand_total(&self) -> Decimal {
        let live = self.lines.iter().filter(|l| l.is_dummy != Some(true));
        let mut total = Decimal::ZERO;
        for l in live {
            total += l.net() + l.tax;
        }
        total + self.shipping - self.shipping_discount
            + self.shipping_tax
            + self.adjustment_positive
            - self.adjustment_negative
    }

    fn header(&self, kind: &str) -> Value {
        let live: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| l.is_dummy != Some(true))
            .collect();
        let subtotal: Decimal = live.iter().map(|l| l.row_total.unwrap_or_default()).sum();
        let tax: Decimal = live.iter().map(|l| l.tax).sum::<Decimal>() + self.shipping_tax;
        let discount: Decimal =
            live.iter().map(|l| l.discount).sum::<Decimal>() + self.shipping_discount;
        let compensation: Decimal = live.iter().map(|l| l.compensation).sum();
        let grand = self
            .grand_total
            .unwrap_or_else(|| self.computed_grand_total());
        let base_grand = self.base_grand_total.unwrap_or_else(|| {
            if self.rate.is_zero() {
                grand
            } else {
                rules_round2(grand / self.rate)
            }
        });
        let items: Vec<Value> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| l.json(i))
            .collect();
        let mut v = json!({
            "entity_id": 77,
            "increment_id": self.increment_id,
            "order_id": 55,
            "store_id": 1,
            "state": 2,
            "created_at": "2025-03-14 23:59:59",
            "base_currency_code": self.base_currency,
            "order_currency_code": self.currency,
            "base_to_order_rate": self.rate.to_string(),
            "grand_total": grand.to_string(),
            "base_grand_total": base_grand.to_string(),
            "subtotal": subtotal.to_string(),
            "base_subtotal": subtotal.to_string(),
            "tax_amount": tax.to_string(),
            "base_tax_amount": tax.to_string(),
            "shipping_amount": self.shipping.to_string(),
            "base_shipping_amount": self.shipping.to_string(),
            "shipping_tax_amount": self.shipping_tax.to_string(),
            "discount_amount": (-discount).to_string(),
            "base_discount_amount": (-discount).to_string(),
            "discount_tax_compensation_amount": compensation.to_string(),
            "items": items,
        });
        if kind == "creditmemo" {
            v["invoice_id"] = json!(1042);
            v["adjustment_positive"] = json!(self.adjustment_positive.to_string());
            v["adjustment_negative"] = json!(self.adjustment_negative.to_string());
        }
        v
    }

    fn order(&self) -> Value {
        let mut v = json!({
            "entity_id": 55,
            "increment_id": "000000555",
            "base_currency_code": self.base_currency,
            "order_currency_code": self.currency,
            "base_to_order_rate": self.rate.to_string(),
            "customer_id": 42,
            "customer_is_guest": 0,
            "customer_email": "Ada@Example.com",
            "billing_address": {
                "firstname": "Ada", "lastname": "Lovelace", "street": ["1 Analytical Row"],
                "city": "London", "postcode": "EC1A 1AA", "country_id": self.country
            },
            "shipping_address": {
                "firstname": "Ada", "lastname": "Lovelace", "street": ["2 Difference Lane"],
                "city": "London", "postcode": "EC1A 2BB",
                "country_id": self.delivery_country.clone().unwrap_or_else(|| self.country.clone())
            },
            "payment": { "method": self.method },
            "items": self.lines.iter().enumerate().map(|(i, l)| l.order_json(i)).collect::<Vec<_>>(),
        });
        if self.delivery_country.as_deref() == Some("") {
            v.as_object_mut().unwrap().remove("shipping_address");
        }
        if let Some(c) = &self.tax_config {
            v["tax_config"] = c.clone();
        }
        let applied = |codes: &[(String, Decimal)]| -> Vec<Value> {
            codes
                .iter()
                .map(|(c, p)| json!({"code": c, "title": c, "percent": p.to_string()}))
                .collect()
        };
        let mut item_taxes: Vec<Value> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.codes.is_empty())
            .map(|(i, l)| json!({"type": "product", "item_id": 9000 + i, "applied_taxes": applied(&l.codes)}))
            .collect();
        if !self.shipping_codes.is_empty() {
            item_taxes.push(json!({"type": "shipping", "item_id": null, "applied_taxes": applied(&self.shipping_codes)}));
        }
        if !item_taxes.is_empty() {
            v["extension_attributes"] = json!({"item_applied_taxes": item_taxes});
        }
        v
    }

    pub fn invoice(&self) -> InvoiceSnapshot {
        serde_json::from_value(json!({"invoice": self.header("invoice"), "order": self.order()}))
            .expect("fixture invoice decodes")
    }

    pub fn credit_memo(&self) -> CreditMemoSnapshot {
        serde_json::from_value(
            json!({"creditmemo": self.header("creditmemo"), "order": self.order()}),
        )
        .expect("fixture credit memo decodes")
    }

    pub fn paid(&self, amount: Decimal, transaction_id: Option<&str>) -> InvoicePaidSnapshot {
        serde_json::from_value(json!({
            "invoice": self.header("invoice"),
            "order": self.order(),
            "payment": {
                "method": self.method,
                "amount_paid": amount.to_string(),
                "base_amount_paid": amount.to_string(),
                "transaction_id": transaction_id,
                "paid_at": "2025-03-15T09:02:11Z"
            }
        }))
        .expect("fixture paid invoice decodes")
    }
}

/// Every valid example envelope shipped in `schemas/examples/` (file name, envelope).
pub fn examples() -> Vec<(String, Envelope)> {
    let dir = workspace_root().join("schemas/examples");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let bytes = std::fs::read(&path).unwrap();
        let env = ledger_events::parse(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            env,
        ));
    }
    out
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sage's structure extract used by the project's sandbox.
pub fn sage_structure() -> Value {
    let path = workspace_root().join("schemas/sage/sage-v3.1-structure.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Checks a request body (`{root: {...}}`) against the named definition of the Sage
/// structure extract: no unknown fields, required fields present, strings within
/// maxLength, numbers sent as decimal strings, dates as YYYY-MM-DD, no `idempotency_id`.
/// Returns every problem found.
pub fn sage_structure_problems(definition: &str, request: &Value) -> Vec<String> {
    let structure = sage_structure();
    let def = &structure["definitions"][definition];
    assert!(def.is_object(), "no definition {definition}");
    let mut problems = Vec::new();
    check_node(def, request, "", &mut problems);
    if let Some(obj) = request.as_object() {
        for inner in obj.values() {
            if inner.get("idempotency_id").is_some() {
                problems.push("idempotency_id must be left to the client".into());
            }
        }
    }
    problems
}

fn check_node(node: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    match node["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object() else {
                problems.push(format!("{path}: not an object"));
                return;
            };
            for req in node["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap();
                if map.get(k).is_none_or(Value::is_null) {
                    problems.push(format!("{path}.{k}: required"));
                }
            }
            if let Some(props) = node["properties"].as_object() {
                for (k, v) in map {
                    match props.get(k) {
                        Some(child) => check_node(child, v, &format!("{path}.{k}"), problems),
                        None => problems.push(format!("{path}.{k}: unknown field")),
                    }
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                problems.push(format!("{path}: not an array"));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                check_node(&node["items"], item, &format!("{path}[{i}]"), problems);
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                problems.push(format!("{path}: not a string"));
                return;
            };
            if let Some(max) = node["maxLength"].as_u64() {
                if s.chars().count() as u64 > max {
                    problems.push(format!("{path}: longer than {max}"));
                }
            }
            if node["format"] == "date" && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err()
            {
                problems.push(format!("{path}: not a date"));
            }
        }
        Some("number") => match value.as_str() {
            Some(s) if s.parse::<Decimal>().is_ok() => {}
            _ => problems.push(format!(
                "{path}: decimals must be sent as strings, got {value}"
            )),
        },
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            problems.push(format!("{path}: not an integer"));
        }
        Some("boolean") if !value.is_boolean() => {
            problems.push(format!("{path}: not a boolean"));
        }
        _ => {}
    }
}

/// The definition name of a plan's resource.
pub fn definition_for(resource: &str) -> &'static str {
    match resource {
        "sales_invoices" => "postSalesInvoices",
        "sales_credit_notes" => "postSalesCreditNotes",
        "contact_payments" => "postContactPayments",
        "contact_allocations" => "postContactAllocations",
        "contacts" => "postContacts",
        "products" => "postProducts",
        "services" => "postServices",
        "stock_items" => "postStockItems",
        "stock_movements" => "postStockMovements",
        other => panic!("unknown resource {other}"),
    }
}

/// Sage's arithmetic restated independently of the crate (cents as integers, UK rate
/// table spelled out), so the invariant tests also catch a mistake in
/// `sage_document_total` itself rather than trusting it twice. Also checks that every
/// money field is a string with exactly two decimals, as the crate promises.
pub fn independent_sage_total(body: &Value) -> Decimal {
    fn percent(id: &str) -> Decimal {
        match id {
            "GB_STANDARD" => dec!(20),
            "GB_LOWER" => dec!(5),
            "GB_OLD" => dec!(17.5),
            "GB_ZERO" | "GB_EXEMPT" | "GB_NO_TAX" => dec!(0),
            "FR_DEST_STANDARD" => dec!(20),
            other => panic!("rate {other} unknown to the test emulation"),
        }
    }
    fn cents(x: Decimal) -> i64 {
        use rust_decimal::prelude::ToPrimitive;
        (x * dec!(100))
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .unwrap()
    }
    fn money(v: &Value, field: &str) -> Decimal {
        let s = v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} must be a string: {v}"));
        let (_, frac) = s
            .split_once('.')
            .unwrap_or_else(|| panic!("{field} {s} without decimals"));
        assert_eq!(frac.len(), 2, "{field} {s} must have 2 decimals");
        s.parse().unwrap()
    }
    let lines = body
        .get("invoice_lines")
        .or_else(|| body.get("credit_note_lines"))
        .and_then(Value::as_array)
        .expect("lines");
    let mut total_cents: i64 = 0;
    for l in lines {
        let qty: Decimal = l["quantity"]
            .as_str()
            .expect("quantity string")
            .parse()
            .unwrap();
        let unit = money(l, "unit_price");
        let discount = if l.get("discount_amount").is_some() {
            money(l, "discount_amount")
        } else {
            Decimal::ZERO
        };
        let tax = money(l, "tax_amount");
        let rate = percent(l["tax_rate_id"].as_str().unwrap());
        let includes_tax = l["unit_price_includes_tax"] == json!(true);
        // With unit_price_includes_tax the extended amount is the line's total already.
        total_cents += cents(qty * unit) - cents(discount);
        if rate.is_zero() {
            assert_eq!(tax, Decimal::ZERO, "zero-rate line with tax: {l}");
        } else if !includes_tax {
            total_cents += cents(tax);
        }
    }
    if body.get("shipping_net_amount").is_some() {
        let net = money(body, "shipping_net_amount");
        let rate = percent(body["shipping_tax_rate_id"].as_str().unwrap());
        total_cents += cents(net) + cents(net * rate / dec!(100));
    }
    Decimal::new(total_cents, 2)
}

/// The totals invariant and its corollary: Sage's total equals Magento's grand total,
/// and a rounding line is present exactly when Sage would otherwise land elsewhere.
pub fn assert_invariant(
    plan: &DocumentPlan,
    settings: &MerchantSettings,
    grand_total: Decimal,
    what: &str,
) {
    let rates = settings.rates();
    assert_eq!(
        sage_document_total(&plan.body, &rates),
        ledger_mapping::round2(grand_total),
        "{what}: Sage total != grand total\n{:#}",
        plan.body
    );
    assert_eq!(
        plan.expected_total,
        ledger_mapping::round2(grand_total),
        "{what}"
    );
    assert_eq!(
        independent_sage_total(&plan.body),
        ledger_mapping::round2(grand_total),
        "{what}: independent emulation disagrees\n{:#}",
        plan.body
    );
    let lines_key = if plan.root == "sales_invoice" {
        "invoice_lines"
    } else {
        "credit_note_lines"
    };
    let mut without = plan.body.clone();
    let lines = without[lines_key].as_array_mut().unwrap();
    let rounding_lines: Vec<Value> = lines
        .iter()
        .filter(|l| l["description"] == ledger_mapping::ROUNDING_DESCRIPTION)
        .cloned()
        .collect();
    lines.retain(|l| l["description"] != ledger_mapping::ROUNDING_DESCRIPTION);
    let before = sage_document_total(&without, &rates);
    match plan.rounding_line {
        None => {
            assert!(
                rounding_lines.is_empty(),
                "{what}: rounding line without rounding_line"
            );
            assert_eq!(before, ledger_mapping::round2(grand_total), "{what}");
        }
        Some(amount) => {
            assert_eq!(rounding_lines.len(), 1, "{what}: exactly one rounding line");
            assert!(!amount.is_zero(), "{what}: zero rounding line");
            assert_eq!(
                before + amount,
                ledger_mapping::round2(grand_total),
                "{what}"
            );
            assert_eq!(
                rounding_lines[0]["unit_price"],
                json!(amount.to_string()),
                "{what}"
            );
            assert_eq!(
                rounding_lines[0]["ledger_account_id"],
                json!("LEDGER-ROUNDING"),
                "{what}"
            );
        }
    }
    let problems = sage_structure_problems(definition_for(plan.resource), &plan.request_body());
    assert!(problems.is_empty(), "{what}: {problems:#?}");
    // References fit Sage's limit.
    assert!(plan.reference.chars().count() <= rules::DOCUMENT_REFERENCE_MAX);
}

/// Per-line invariant: every Sage line, as Sage computes it from the body, books
/// Magento's row net and tax to the cent (items in order, then shipping); a rounding
/// line, if any, is at most 1p per line, carries no VAT and sits on the rate of a product
/// line; and, for documents without adjustments, Sage's VAT per rate percentage equals
/// Magento's tax per percentage.
pub fn assert_lines_match(plan: &DocumentPlan, doc: &Doc, settings: &MerchantSettings, what: &str) {
    let rates = settings.rates();
    let figures = ledger_mapping::sage_line_figures(&plan.body, &rates);
    assert!(
        figures.iter().all(|f| f.description != "shipping (header)"),
        "{what}: shipping must be a line, not header shipping"
    );
    let mut expected: Vec<(Decimal, Decimal, Decimal)> = Vec::new(); // (net, tax, pct)
    for l in doc.lines.iter().filter(|l| l.is_dummy != Some(true)) {
        if l.qty.is_zero() {
            continue;
        }
        // Magento keeps 4 dp; Sage books cents.
        expected.push((
            rules_round2(l.net()),
            rules_round2(l.tax),
            l.tax_percent.unwrap_or_default(),
        ));
    }
    let shipping_net = doc.shipping - doc.shipping_discount;
    if !shipping_net.is_zero() || !doc.shipping_tax.is_zero() {
        expected.push((
            rules_round2(shipping_net),
            rules_round2(doc.shipping_tax),
            doc.shipping_pct,
        ));
    }
    assert!(figures.len() >= expected.len(), "{what}: missing lines");
    for (i, (f, e)) in figures.iter().zip(&expected).enumerate() {
        assert_eq!(
            (f.net, f.tax),
            (e.0, e.1),
            "{what}: line {i} ({}) books net/tax {}/{} in Sage, Magento has {}/{}\n{:#}",
            f.description,
            f.net,
            f.tax,
            e.0,
            e.1,
            plan.body
        );
    }
    let item_rates: Vec<&str> = figures
        .iter()
        .take(
            doc.lines
                .iter()
                .filter(|l| l.is_dummy != Some(true) && !l.qty.is_zero())
                .count(),
        )
        .map(|f| f.tax_rate_id.as_str())
        .collect();
    let lines_before_rounding = figures
        .iter()
        .filter(|f| f.description != ledger_mapping::ROUNDING_DESCRIPTION)
        .count();
    for f in figures
        .iter()
        .filter(|f| f.description == ledger_mapping::ROUNDING_DESCRIPTION)
    {
        assert!(
            f.net.abs() <= dec!(0.01) * Decimal::from(lines_before_rounding as u64),
            "{what}: rounding line {} over 1p per line",
            f.net
        );
        assert_eq!(f.tax, Decimal::ZERO, "{what}: rounding line with VAT");
        assert!(
            item_rates.is_empty() || item_rates.contains(&f.tax_rate_id.as_str()),
            "{what}: rounding line on {} which no product line uses",
            f.tax_rate_id
        );
    }
    if doc.adjustment_positive.is_zero() && doc.adjustment_negative.is_zero() {
        let mut sage: std::collections::BTreeMap<Decimal, Decimal> = Default::default();
        for f in &figures {
            let pct = settings
                .tax_rate_percentage(&f.tax_rate_id)
                .unwrap_or_default()
                .normalize();
            *sage.entry(pct).or_default() += f.tax;
        }
        let mut magento: std::collections::BTreeMap<Decimal, Decimal> = Default::default();
        for e in &expected {
            *magento.entry(e.2.normalize()).or_default() += e.1;
        }
        sage.retain(|_, t| !t.is_zero());
        magento.retain(|_, t| !t.is_zero());
        assert_eq!(sage, magento, "{what}: VAT per rate differs from Magento's");
    }
}
