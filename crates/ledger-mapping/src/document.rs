//! Sales invoices and credit notes: Magento invoice / credit memo → Sage document body.
//!
//! Both documents share one builder because Sage gives them the same shape
//! (`invoice_lines` vs `credit_note_lines`) and Magento gives invoices and credit memos
//! the same columns. The builder works in four steps:
//!
//! 1. turn each amount-bearing Magento line into a Sage line that Sage computes to
//!    Magento's row net and tax to the cent (dummy composite lines skipped, entities
//!    decoded, unit price and discount from [`crate::rules::line_price_and_discount`],
//!    gross form for tax-inclusive stores, Magento's tax, the rate the tax map gives for
//!    the line's code, place of supply, class and percentage);
//! 2. add shipping as a line on the shipping ledger with Magento's shipping tax, and
//!    credit-memo adjustments as lines taxed by [`crate::AdjustmentVat`];
//! 3. compare Magento's grand total with the sum of those lines: Magento's own rounding
//!    (at most 1p per line) becomes one "Rounding adjustment" line on the corrected
//!    lines' rate; more is held (`rounding_too_large`, or `totals_mismatch` when it is
//!    an amount the mapping cannot see);
//! 4. check the body through the Sage emulation: every line and the total as booked.

use crate::address::map_address;
use crate::contact::Party;
use crate::error::{reasons, MappingError};
use crate::money::{decimal_json, document_exchange_rate, exchange_rate, money_json, round2};
use crate::rules::{
    apportion, credit_note_reference, cross_border_goods_services, delivery_address_source,
    fit_reference, line_description, line_price_and_discount, line_tax_amount, place_of_supply,
    rounding_limit, vat_in_gross, CONTACT_NAME_MAX, DOCUMENT_NOTES_MAX, DOCUMENT_REFERENCE_MAX,
    LINE_DESCRIPTION_MAX,
};
use crate::settings::{
    AdjustmentVat, CrossBorderVatCharged, GoodsServices, LineTaxFacts, MerchantSettings,
};
use crate::text::{fit_notes, fit_text, Fitted};
use crate::total::{sage_document_total, sage_line_figures};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger_events::{
    CreditMemoSnapshot, DocumentItem, InvoiceSnapshot, OrderContext, SalesDocument,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// Description of the explicit rounding line.
pub const ROUNDING_DESCRIPTION: &str = "Rounding adjustment";
/// Description of a credit memo's "Adjustment Refund" line.
pub const ADJUSTMENT_REFUND_DESCRIPTION: &str = "Adjustment refund";
/// Description of a credit memo's "Adjustment Fee" line.
pub const ADJUSTMENT_FEE_DESCRIPTION: &str = "Adjustment fee";
/// Description of the shipping line.
pub const SHIPPING_DESCRIPTION: &str = "Shipping";

/// A ready-to-send Sage sales document, plus the facts services need to record and verify
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentPlan {
    /// Sage collection to POST to: `sales_invoices` or `sales_credit_notes`.
    pub resource: &'static str,
    /// Root key the body is wrapped in: `sales_invoice` or `sales_credit_note`.
    pub root: &'static str,
    /// The fields inside the root object (no `idempotency_id`: the client adds it).
    pub body: Value,
    /// The `reference` sent (≤ 25 characters), for look-ups before re-posting.
    pub reference: String,
    /// The reference without the merchant's `reference_prefix` (what it was before any
    /// prefix): a document is found in Sage under any prefix by
    /// [`crate::is_reference_of_number`] on this.
    pub magento_reference: String,
    /// The Sage `date` sent (the books' day, see [`crate::sage_date`]); services record it
    /// for later documents, e.g. a credit note's `original_invoice_date`.
    pub date: NaiveDate,
    /// Document currency (ISO code).
    pub currency: String,
    /// Sage exchange rate of the document (1 when it is in the base currency).
    pub exchange_rate: Decimal,
    /// Magento's grand total: what Sage's `total_amount` must come to.
    pub expected_total: Decimal,
    /// Amount of the explicit rounding line, when one was needed.
    pub rounding_line: Option<Decimal>,
}

impl DocumentPlan {
    /// The complete request body, `{ <root>: <body> }`.
    pub fn request_body(&self) -> Value {
        let mut outer = Map::new();
        outer.insert(self.root.to_owned(), self.body.clone());
        Value::Object(outer)
    }
}

/// The Sage invoice a credit note refunds, when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalInvoice {
    /// Sage id of the invoice (kept for the allocation that follows the credit note).
    pub sage_id: String,
    /// The invoice's Magento number (its Sage `reference` without the merchant's
    /// `reference_prefix`).
    pub reference: String,
    /// The invoice's date, sent as `original_invoice_date`.
    pub date: NaiveDate,
}

/// Maps an `invoice.created` snapshot to a Sage sales invoice.
///
/// `contact_id` is the Sage contact (a CUSTOMER in the invoice's currency) the service
/// resolved or created beforehand. The body carries `contact_id`, `date` (the calendar
/// day of Magento's UTC `created_at` in the books' time zone, see
/// [`MerchantSettings::accounting_date`]), `due_date` (+ `due_days`), `reference` (the
/// invoice number, ≤ 25 characters), `currency_id`, `exchange_rate` (foreign currency
/// only, see [`crate::document_exchange_rate`]), `main_address` / `delivery_address`, one
/// line per amount-bearing Magento item, a shipping line, internal `notes`, and when
/// Magento's grand total is a penny or so off its own rows one "Rounding adjustment" line.
///
/// Errors: `Skipped { reason: "unmapped_tax_rate" }` for a rate the merchant has not
/// mapped; `Skipped { reason: "unmapped_foreign_vat" }` for VAT charged abroad whose code
/// or country is not mapped; `Skipped { reason: "cross_border_tax_charged" }` for VAT on
/// a document billed or supplied abroad without a code (unless
/// [`crate::CrossBorderVatCharged::DomesticRates`] is set); `rounding_too_large`,
/// `totals_mismatch` and `base_totals_mismatch` when Magento's totals are not the sum of
/// its parts; `Invalid { field, reason }` for bad input or a missing ledger account
/// setting.
pub fn map_sales_invoice(
    snapshot: &InvoiceSnapshot,
    settings: &MerchantSettings,
    contact_id: &str,
) -> Result<DocumentPlan, MappingError> {
    let inv = &snapshot.invoice;
    let source = Source {
        kind: Kind::Invoice,
        path: "invoice",
        order: &snapshot.order,
        currency: &inv.order_currency_code,
        base_currency: &inv.base_currency_code,
        base_to_order_rate: inv.base_to_order_rate,
        created_at: inv.created_at,
        items: inv.items(),
        grand_total: inv.grand_total,
        base_grand_total: inv.base_grand_total,
        discount_amount: inv.discount_amount,
        shipping_amount: inv.shipping_amount,
        shipping_tax_amount: inv.shipping_tax_amount.unwrap_or_default(),
        shipping_discount_tax_compensation: inv
            .shipping_discount_tax_compensation_amount
            .unwrap_or_default(),
        adjustment_refund: Decimal::ZERO,
        adjustment_fee: Decimal::ZERO,
    };
    let reference = fit_reference(&inv.increment_id, DOCUMENT_REFERENCE_MAX);
    let mut notes = vec![format!(
        "Magento invoice {} for order {}",
        inv.increment_id, snapshot.order.increment_id
    )];
    if let Some(po) = snapshot
        .order
        .payment
        .po_number
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        notes.push(format!("PO number: {}", po.trim()));
    }
    build(&source, settings, contact_id, reference, None, notes)
}

/// Maps a `creditmemo.created` snapshot to a Sage sales credit note.
///
/// Same line, shipping and rounding rules as [`map_sales_invoice`]. The reference names
/// the credit memo and the refunded invoice ("CM/INV", ≤ 25 characters, see
/// [`crate::rules::credit_note_reference`]); `original_invoice_date` is set when the
/// original invoice is known. Magento's "Adjustment Refund" and "Adjustment Fee" become
/// their own lines on the adjustment ledger account (the fee as negative lines, since it
/// reduces what is credited), as gross amounts at the refunded lines' rates or out of
/// scope, as [`MerchantSettings::adjustment_vat`] says. The refunded shipping is a
/// shipping line like an invoice's.
pub fn map_sales_credit_note(
    snapshot: &CreditMemoSnapshot,
    settings: &MerchantSettings,
    contact_id: &str,
    original_invoice: Option<&OriginalInvoice>,
) -> Result<DocumentPlan, MappingError> {
    let cm = &snapshot.creditmemo;
    let source = Source {
        kind: Kind::CreditNote,
        path: "creditmemo",
        order: &snapshot.order,
        currency: &cm.order_currency_code,
        base_currency: &cm.base_currency_code,
        base_to_order_rate: cm.base_to_order_rate,
        created_at: cm.created_at,
        items: cm.items(),
        grand_total: cm.grand_total,
        base_grand_total: cm.base_grand_total,
        discount_amount: cm.discount_amount,
        shipping_amount: cm.shipping_amount,
        shipping_tax_amount: cm.shipping_tax_amount.unwrap_or_default(),
        shipping_discount_tax_compensation: cm
            .shipping_discount_tax_compensation_amount
            .unwrap_or_default(),
        adjustment_refund: cm.adjustment_refund(),
        adjustment_fee: cm.adjustment_fee(),
    };
    let reference = credit_note_reference(
        &cm.increment_id,
        original_invoice.map(|o| o.reference.as_str()),
    );
    let mut notes = vec![format!(
        "Magento credit memo {} for order {}",
        cm.increment_id, snapshot.order.increment_id
    )];
    match original_invoice {
        Some(o) => notes.push(format!("Refunds invoice {}", o.reference)),
        None => notes.push("Refund not tied to an invoice".to_owned()),
    }
    build(
        &source,
        settings,
        contact_id,
        reference,
        original_invoice.map(|o| o.date),
        notes,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoice,
    CreditNote,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Invoice => "sales_invoices",
            Kind::CreditNote => "sales_credit_notes",
        }
    }
    fn root(self) -> &'static str {
        match self {
            Kind::Invoice => "sales_invoice",
            Kind::CreditNote => "sales_credit_note",
        }
    }
    fn lines_key(self) -> &'static str {
        match self {
            Kind::Invoice => "invoice_lines",
            Kind::CreditNote => "credit_note_lines",
        }
    }
}

/// The header facts the builder needs, read from either Magento document type.
struct Source<'a> {
    kind: Kind,
    path: &'static str,
    order: &'a OrderContext,
    currency: &'a str,
    base_currency: &'a str,
    base_to_order_rate: Decimal,
    created_at: DateTime<Utc>,
    items: &'a [DocumentItem],
    grand_total: Decimal,
    base_grand_total: Decimal,
    discount_amount: Decimal,
    shipping_amount: Decimal,
    shipping_tax_amount: Decimal,
    shipping_discount_tax_compensation: Decimal,
    adjustment_refund: Decimal,
    adjustment_fee: Decimal,
}

/// The document's `contact_name`: the buyer as the order's billing address names them
/// (company, else person), cleaned and cut to Sage's contact-name limit. Sent explicitly
/// so the document shows the buyer even on a B2C fallback contact, and never a name
/// stored HTML-escaped.
fn document_contact_name(order: &OrderContext, settings: &MerchantSettings) -> Fitted {
    let party = Party::from_order(order).with_name_priority(settings.contact_name_priority);
    fit_text(&party.display_name(), CONTACT_NAME_MAX)
}

fn check_currency(code: &str, field: &str) -> Result<String, MappingError> {
    let c = code.trim();
    if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
        Ok(c.to_ascii_uppercase())
    } else {
        Err(MappingError::invalid(field, reasons::MALFORMED))
    }
}

fn require<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, MappingError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| MappingError::invalid(field, reasons::MISSING))
}

fn non_negative(value: Decimal, field: String) -> Result<Decimal, MappingError> {
    if value < Decimal::ZERO {
        Err(MappingError::invalid(field, reasons::NEGATIVE))
    } else {
        Ok(value)
    }
}

/// Picks the home Sage rate for Magento's shipping tax when Magento did not say which
/// rate it applied (older module versions send no applied taxes). Zero tax uses the
/// mapped 0 % rate. Otherwise each mapped home percentage is tried against the
/// discounted shipping net and then the undiscounted shipping amount (Magento can be set
/// to tax before discount); a rate matches when it reproduces Magento's tax within a
/// cent. Closest match wins, then a rate already used on the document's lines. No match
/// → `unmapped_tax_rate` (never guess). The rate only labels the VAT: the amount booked
/// is Magento's own shipping tax.
fn shipping_rate<'s>(
    settings: &'s MerchantSettings,
    shipping_net: Decimal,
    shipping_gross: Decimal,
    shipping_tax: Decimal,
    line_rates: &[String],
) -> Result<&'s str, MappingError> {
    if shipping_tax.is_zero() {
        return settings.tax_rate_id(Decimal::ZERO, None).ok_or_else(|| {
            MappingError::skipped(
                reasons::UNMAPPED_TAX_RATE,
                "shipping: no Sage rate mapped for 0 %",
            )
        });
    }
    let mut best: Option<(Decimal, bool, &'s str)> = None;
    for entry in settings
        .home_rows()
        .filter(|e| e.tax_class.is_none() && e.percent > Decimal::ZERO)
    {
        for base in [shipping_net, shipping_gross] {
            let diff = (round2(base * entry.percent / Decimal::ONE_HUNDRED) - shipping_tax).abs();
            if diff > Decimal::new(1, 2) {
                continue;
            }
            let unused = !line_rates.iter().any(|r| r == &entry.tax_rate_id);
            let candidate = (diff, unused, entry.tax_rate_id.as_str());
            if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
                best = Some(candidate);
            }
        }
    }
    best.map(|b| b.2).ok_or_else(|| {
        MappingError::skipped(
            reasons::UNMAPPED_TAX_RATE,
            format!("shipping: tax {shipping_tax} on {shipping_net} matches no mapped rate"),
        )
    })
}

/// One line of the Sage document as it will be booked.
struct Booked {
    json: Map<String, Value>,
    rate_id: String,
    /// Net Sage books (equal to Magento's by construction).
    net: Decimal,
    /// VAT Sage books.
    tax: Decimal,
    /// Whether this is a product line (weights adjustments, hosts the rounding line).
    item: bool,
}

/// What the tax rules need to know about one taxable thing (an item or the shipping).
struct TaxQuestion<'q> {
    what: String,
    codes: Vec<String>,
    percent: Decimal,
    tax_class: Option<&'q str>,
    place: &'q str,
    taxed: bool,
}

/// How a line's rate was decided, for the document-level cross-border checks.
struct RateAnswer {
    id: String,
    /// Supplied at home with VAT, on a home rate (matters when billing is abroad).
    home_vat: bool,
}

/// Rule "the tax map decides, by place of supply": the Sage rate of one line.
///
/// At home, [`MerchantSettings::line_tax_rate_id`] with every key. Abroad without VAT:
/// the cross-border zero rate (an export). Abroad with VAT (OSS/IOSS destination VAT):
/// only rows for the applied tax code or the destination country; when none matches the
/// line is held, `unmapped_foreign_vat` when Magento named the rate it applied, else by
/// the merchant's [`CrossBorderVatCharged`] policy (`cross_border_tax_charged`, or the
/// home map for stores that charge home VAT abroad and send no applied tax codes).
fn decide_rate(
    settings: &MerchantSettings,
    q: &TaxQuestion<'_>,
) -> Result<RateAnswer, MappingError> {
    let codes: Vec<&str> = q.codes.iter().map(String::as_str).collect();
    let facts = LineTaxFacts {
        codes: &codes,
        country: q.place,
        percent: q.percent,
        tax_class: q.tax_class,
    };
    let home = !settings.is_cross_border(q.place);
    let describe = || {
        format!(
            "{}: {}% (class {}, codes [{}], place of supply {})",
            q.what,
            q.percent.normalize(),
            q.tax_class.unwrap_or("none"),
            codes.join(", "),
            q.place
        )
    };
    if home {
        let id = settings.line_tax_rate_id(&facts, true).ok_or_else(|| {
            MappingError::skipped(
                reasons::UNMAPPED_TAX_RATE,
                format!("{}: no Sage rate mapped", describe()),
            )
        })?;
        return Ok(RateAnswer {
            id: id.to_owned(),
            home_vat: q.taxed,
        });
    }
    if !q.taxed {
        return Ok(RateAnswer {
            id: settings.cross_border_tax_rate_id.clone(),
            home_vat: false,
        });
    }
    if let Some(id) = settings.line_tax_rate_id(&facts, false) {
        return Ok(RateAnswer {
            id: id.to_owned(),
            home_vat: false,
        });
    }
    if !codes.is_empty() {
        return Err(MappingError::skipped(
            reasons::UNMAPPED_FOREIGN_VAT,
            format!(
                "{}: VAT charged abroad and no Sage rate mapped for its code or country {}",
                describe(),
                q.place
            ),
        ));
    }
    match settings.cross_border_vat_charged {
        CrossBorderVatCharged::Hold => Err(MappingError::skipped(
            reasons::CROSS_BORDER_TAX_CHARGED,
            format!(
                "{} carries VAT but is supplied in {}, outside {}",
                describe(),
                q.place,
                settings.home_country
            ),
        )),
        CrossBorderVatCharged::DomesticRates => {
            let id = settings.line_tax_rate_id(&facts, true).ok_or_else(|| {
                MappingError::skipped(
                    reasons::UNMAPPED_TAX_RATE,
                    format!("{}: no Sage rate mapped", describe()),
                )
            })?;
            Ok(RateAnswer {
                id: id.to_owned(),
                home_vat: true,
            })
        }
    }
}

fn simple_line(
    description: &str,
    ledger: &str,
    amount: Decimal,
    rate: &str,
    tax: Decimal,
) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("description".into(), Value::String(description.to_owned()));
    line.insert("ledger_account_id".into(), Value::String(ledger.to_owned()));
    line.insert("quantity".into(), decimal_json(Decimal::ONE));
    line.insert("unit_price".into(), money_json(amount));
    line.insert("tax_rate_id".into(), Value::String(rate.to_owned()));
    line.insert("tax_amount".into(), money_json(tax));
    line
}

fn build(
    src: &Source<'_>,
    settings: &MerchantSettings,
    contact_id: &str,
    reference: String,
    original_invoice_date: Option<NaiveDate>,
    mut notes: Vec<String>,
) -> Result<DocumentPlan, MappingError> {
    let p = src.path;
    let magento_reference = reference;
    let reference = crate::prefixed_reference(&settings.reference_prefix, &magento_reference);
    if contact_id.trim().is_empty() {
        return Err(MappingError::invalid("contact_id", reasons::MISSING));
    }
    let currency = check_currency(src.currency, &format!("{p}.order_currency_code"))?;
    let base_currency = check_currency(src.base_currency, &format!("{p}.base_currency_code"))?;
    if src.base_to_order_rate <= Decimal::ZERO {
        return Err(MappingError::invalid(
            format!("{p}.base_to_order_rate"),
            reasons::NOT_POSITIVE,
        ));
    }
    let grand_total = non_negative(src.grand_total, format!("{p}.grand_total"))?;
    let shipping_amount = non_negative(src.shipping_amount, format!("{p}.shipping_amount"))?;
    let shipping_tax = non_negative(src.shipping_tax_amount, format!("{p}.shipping_tax_amount"))?;
    if src.discount_amount > Decimal::ZERO {
        // Magento stores the header discount negated; a positive one means the producer
        // flipped the sign and every net amount below would be wrong.
        return Err(MappingError::invalid(
            format!("{p}.discount_amount"),
            "positive",
        ));
    }
    let sales_ledger = require(&settings.sales_ledger_account_id, "sales_ledger_account_id")?;

    // Where each line is supplied (rule "VAT follows the place of supply").
    let billing = &src.order.billing_address;
    let shipping_address = src.order.effective_shipping_address();
    let tax_config = src.order.tax_config.clone().unwrap_or_default();
    let based_on = tax_config.based_on.as_deref();
    let prices_include_tax = tax_config
        .price_includes_tax
        .unwrap_or(settings.catalog_prices_include_tax);
    let delivery_country = shipping_address.as_ref().map(|a| a.country_id.as_str());
    let billing_abroad = settings.is_cross_border(&billing.country_id);

    // 1. Item lines: each equals Magento's row (net, tax, total) to the cent.
    let mut booked: Vec<Booked> = Vec::new();
    let mut home_vat_on: Option<String> = None;
    let mut product_types: Vec<Option<&str>> = Vec::new();
    let mut parts_total = Decimal::ZERO;
    let mut item_discounts = Decimal::ZERO;
    for (idx, item) in src.items.iter().enumerate() {
        let ip = format!("{p}.items[{idx}]");
        if item.is_dummy_line() {
            continue;
        }
        let qty = non_negative(item.qty, format!("{ip}.qty"))?;
        let price = non_negative(item.price, format!("{ip}.price"))?;
        let row_total = item
            .row_total
            .ok_or_else(|| MappingError::invalid(format!("{ip}.row_total"), reasons::MISSING))?;
        let row_total = non_negative(row_total, format!("{ip}.row_total"))?;
        let discount = non_negative(
            item.discount_amount.unwrap_or_default(),
            format!("{ip}.discount_amount"),
        )?;
        let compensation = non_negative(
            item.discount_tax_compensation_amount.unwrap_or_default(),
            format!("{ip}.discount_tax_compensation_amount"),
        )?;
        let tax = non_negative(
            item.tax_amount.unwrap_or_default(),
            format!("{ip}.tax_amount"),
        )?;
        // Tax-inclusive catalogs: the discount includes tax; Sage wants the net discount.
        let net_discount = discount - compensation;
        if net_discount < Decimal::ZERO {
            return Err(MappingError::invalid(
                format!("{ip}.discount_tax_compensation_amount"),
                "exceeds_discount",
            ));
        }
        if qty.is_zero() {
            // Credit memos list every order line, refunded or not.
            if row_total.is_zero() && tax.is_zero() && discount.is_zero() {
                continue;
            }
            return Err(MappingError::invalid(
                format!("{ip}.qty"),
                "zero_with_amounts",
            ));
        }
        item_discounts += discount;
        // Magento's row: net after discount, tax, gross.
        let net = round2(row_total - net_discount);
        let tax = round2(tax);
        if net < Decimal::ZERO {
            return Err(MappingError::invalid(
                format!("{ip}.discount_amount"),
                "exceeds_row_total",
            ));
        }

        let product_type = src.order.product_type_for(item);
        let place = place_of_supply(
            based_on,
            product_type,
            &billing.country_id,
            delivery_country,
            &settings.home_country,
        );
        let applied = src.order.applied_taxes_for(item);
        let percent = match src.order.tax_percent_for(item) {
            Some(pct) => pct,
            None if !applied.is_empty() => applied.iter().map(|t| t.percent).sum(),
            // Magento leaves tax_percent empty when no tax rule applied; with no tax
            // charged that is the 0 % row of the map, not a guess.
            None if tax.is_zero() => Decimal::ZERO,
            None => {
                return Err(MappingError::invalid(
                    format!("{ip}.tax_percent"),
                    reasons::MISSING,
                ))
            }
        };
        let answer = decide_rate(
            settings,
            &TaxQuestion {
                what: format!("{ip} ({})", item.sku),
                codes: applied.iter().map(|t| t.code.clone()).collect(),
                percent,
                tax_class: src.order.tax_class_for(item),
                place,
                taxed: !tax.is_zero(),
            },
        )?;
        if settings
            .tax_rate_percentage(&answer.id)
            .is_some_and(|pct| pct.is_zero())
            && !tax.is_zero()
        {
            // Sage infers 0.00 tax on zero rates: the VAT would vanish.
            return Err(MappingError::invalid(
                format!("{ip}.tax_amount"),
                "tax_on_zero_rate",
            ));
        }
        if answer.home_vat && home_vat_on.is_none() {
            home_vat_on = Some(format!("{ip} ({}) carries tax {tax}", item.sku));
        }

        let description = line_description(&item.name, &item.sku, LINE_DESCRIPTION_MAX);
        if let Some(full) = &description.full {
            notes.push(format!("Line {} in full: {full}", idx + 1));
        }
        // Tax-inclusive stores send the gross unit price (Magento's shelf price) with
        // `unit_price_includes_tax`, so the discount is Magento's own (VAT included) and
        // Sage's net is the gross less Magento's tax; other stores send the net price.
        let gross_form = prices_include_tax
            && item.price_incl_tax.is_some()
            && item.row_total_incl_tax.is_some();
        let (unit_price, line_discount) = if gross_form {
            let row_incl = item.row_total_incl_tax.unwrap_or_default();
            line_price_and_discount(
                qty,
                &[item.price_incl_tax.unwrap_or_default()],
                row_incl,
                net + tax,
            )
        } else {
            line_price_and_discount(qty, &[price], row_total, net)
        };
        let mut line = Map::new();
        line.insert("description".into(), Value::String(description.text));
        line.insert(
            "ledger_account_id".into(),
            Value::String(sales_ledger.to_owned()),
        );
        line.insert("quantity".into(), decimal_json(qty));
        line.insert("unit_price".into(), money_json(unit_price));
        if gross_form {
            line.insert("unit_price_includes_tax".into(), Value::Bool(true));
        }
        if !line_discount.is_zero() {
            line.insert("discount_amount".into(), money_json(line_discount));
        }
        line.insert("tax_rate_id".into(), Value::String(answer.id.clone()));
        line.insert("tax_amount".into(), money_json(line_tax_amount(Some(tax))));
        booked.push(Booked {
            json: line,
            rate_id: answer.id,
            net,
            tax,
            item: true,
        });
        product_types.push(product_type);
        parts_total += net + tax;
    }

    // 2. Shipping: a line on the shipping ledger carrying Magento's own shipping tax
    // (Sage would recompute header shipping VAT on the discounted net, quirk 3). The
    // header discount (negative) covers the items' discounts plus any discount on
    // shipping; what is left after the item discounts is the shipping's share.
    let shipping_discount = (-src.discount_amount - item_discounts).max(Decimal::ZERO);
    let shipping_net =
        round2(shipping_amount - shipping_discount + src.shipping_discount_tax_compensation);
    if shipping_net < Decimal::ZERO {
        return Err(MappingError::invalid(
            format!("{p}.discount_amount"),
            "exceeds_lines_and_shipping",
        ));
    }
    if shipping_amount.is_zero() && !shipping_tax.is_zero() {
        return Err(MappingError::invalid(
            format!("{p}.shipping_tax_amount"),
            "tax_without_shipping",
        ));
    }
    if !shipping_net.is_zero() || !shipping_tax.is_zero() {
        let ledger = require(
            &settings.shipping_ledger_account_id,
            "shipping_ledger_account_id",
        )?;
        // Shipping is supplied with the goods: where they are delivered.
        let place = place_of_supply(
            based_on,
            None,
            &billing.country_id,
            delivery_country,
            &settings.home_country,
        );
        let applied = src.order.shipping_applied_taxes();
        let line_rates: Vec<String> = booked.iter().map(|b| b.rate_id.clone()).collect();
        let inferred = || {
            shipping_rate(
                settings,
                shipping_net,
                shipping_amount,
                shipping_tax,
                &line_rates,
            )
        };
        let answer = if applied.is_empty() && !settings.is_cross_border(place) {
            RateAnswer {
                id: inferred()?.to_owned(),
                home_vat: !shipping_tax.is_zero(),
            }
        } else {
            // Magento's applied shipping percent; without it (older module versions),
            // the percent of the home rate that reproduces the shipping tax.
            let percent = if applied.is_empty() {
                inferred()
                    .ok()
                    .and_then(|id| settings.tax_rate_percentage(id))
                    .unwrap_or_default()
            } else {
                applied.iter().map(|t| t.percent).sum()
            };
            decide_rate(
                settings,
                &TaxQuestion {
                    what: "shipping".to_owned(),
                    codes: applied.iter().map(|t| t.code.clone()).collect(),
                    percent,
                    tax_class: None,
                    place,
                    taxed: !shipping_tax.is_zero(),
                },
            )?
        };
        if settings
            .tax_rate_percentage(&answer.id)
            .is_some_and(|pct| pct.is_zero())
            && !shipping_tax.is_zero()
        {
            return Err(MappingError::invalid(
                format!("{p}.shipping_tax_amount"),
                "tax_on_zero_rate",
            ));
        }
        if answer.home_vat && home_vat_on.is_none() {
            home_vat_on = Some(format!("shipping carries tax {shipping_tax}"));
        }
        let list = round2(shipping_amount);
        let (unit, discount) = if list >= shipping_net {
            (list, list - shipping_net)
        } else {
            (shipping_net, Decimal::ZERO)
        };
        let mut line = simple_line(SHIPPING_DESCRIPTION, ledger, unit, &answer.id, shipping_tax);
        if !discount.is_zero() {
            line.insert("discount_amount".into(), money_json(discount));
        }
        booked.push(Booked {
            json: line,
            rate_id: answer.id,
            net: shipping_net,
            tax: round2(shipping_tax),
            item: false,
        });
    }
    parts_total += shipping_net + shipping_tax;

    // Sage's contact rule (quirk 19): a customer billed abroad takes zero rates only.
    // Home VAT on such a document is held or posted on home rates by policy.
    if billing_abroad {
        if let Some(what) = &home_vat_on {
            if settings.cross_border_vat_charged == CrossBorderVatCharged::Hold {
                return Err(MappingError::skipped(
                    reasons::CROSS_BORDER_TAX_CHARGED,
                    format!(
                        "{what} but billing country {} is outside {}",
                        billing.country_id, settings.home_country
                    ),
                ));
            }
        }
    }

    // Credit memo adjustments: their own lines, taxed as the merchant chose.
    let adjustment_refund =
        non_negative(src.adjustment_refund, format!("{p}.adjustment_positive"))?;
    let adjustment_fee = non_negative(src.adjustment_fee, format!("{p}.adjustment_negative"))?;
    let zero_rate_id = if billing_abroad {
        settings.cross_border_tax_rate_id.as_str()
    } else {
        settings.out_of_scope.tax_rate_id.as_str()
    };
    let adjustment_rates =
        if round2(adjustment_refund).is_zero() && round2(adjustment_fee).is_zero() {
            Vec::new()
        } else {
            adjustment_rates(src, settings, &booked, zero_rate_id)?
        };
    for (amount, description) in [
        (adjustment_refund, ADJUSTMENT_REFUND_DESCRIPTION),
        (-adjustment_fee, ADJUSTMENT_FEE_DESCRIPTION),
    ] {
        let amount = round2(amount);
        if amount.is_zero() {
            continue;
        }
        let ledger = require(
            &settings.adjustment_ledger_account_id,
            "adjustment_ledger_account_id",
        )?;
        let weights: Vec<Decimal> = adjustment_rates.iter().map(|r| r.2).collect();
        for ((rate_id, pct, _), gross) in adjustment_rates.iter().zip(apportion(amount, &weights)) {
            if gross.is_zero() {
                continue;
            }
            let tax = vat_in_gross(gross, *pct);
            booked.push(Booked {
                json: simple_line(description, ledger, gross - tax, rate_id, tax),
                rate_id: rate_id.clone(),
                net: gross - tax,
                tax,
                item: false,
            });
        }
        parts_total += amount;
    }

    if booked.is_empty() {
        return Err(if grand_total.is_zero() {
            MappingError::skipped(reasons::NOTHING_TO_POST, format!("{p} has no amounts"))
        } else {
            MappingError::skipped(
                reasons::TOTALS_MISMATCH,
                format!("{p} has grand total {grand_total} but no lines, shipping or adjustments"),
            )
        });
    }

    // 3. Magento's grand total against the sum of its rows. Every line above equals its
    // Magento row, so a difference is Magento's own rounding between rows and total: a
    // rounding line of at most a cent per line, on the rate of the lines it corrects.
    // A few pence more is held as `rounding_too_large`; beyond rounding size, an amount
    // the mapping cannot see (gift card, store credit) is `totals_mismatch`.
    let line_count = booked.len();
    let residue = round2(grand_total) - round2(parts_total);
    let rounding = (!residue.is_zero()).then_some(residue);
    if let Some(amount) = rounding {
        let figures = format!(
            "{p}.grand_total {grand_total} but its {line_count} lines (shipping and adjustments included) add up to {parts_total}: difference {amount}"
        );
        if amount.abs() > Decimal::new(1, 2) * Decimal::from(line_count as u64 + 2) {
            return Err(MappingError::skipped(reasons::TOTALS_MISMATCH, figures));
        }
        if amount.abs() > rounding_limit(line_count) {
            return Err(MappingError::skipped(
                reasons::ROUNDING_TOO_LARGE,
                format!("{figures}, more than 1p per line"),
            ));
        }
        let ledger = require(
            &settings.rounding_ledger_account_id,
            "rounding_ledger_account_id",
        )?;
        // The rate of the lines it corrects: the product lines' rate carrying the most
        // net (all lines when there is no product line).
        let host = booked
            .iter()
            .filter(|b| b.item)
            .max_by_key(|b| b.net)
            .or_else(|| booked.iter().max_by_key(|b| b.net))
            .map(|b| b.rate_id.clone())
            .unwrap_or_else(|| zero_rate_id.to_owned());
        booked.push(Booked {
            json: simple_line(ROUNDING_DESCRIPTION, ledger, amount, &host, Decimal::ZERO),
            rate_id: host,
            net: amount,
            tax: Decimal::ZERO,
            item: false,
        });
    }

    // Cross-border (billed abroad, every line zero-rated): one goods/services type for
    // the whole document (quirk 19).
    let all_zero = booked.iter().all(|b| {
        settings
            .tax_rate_percentage(&b.rate_id)
            .is_some_and(|pct| pct.is_zero())
    });
    let eu_type: Option<GoodsServices> = (billing_abroad && all_zero).then(|| {
        cross_border_goods_services(
            &settings.cross_border_goods_services,
            product_types.iter().copied(),
        )
    });
    let lines: Vec<Value> = booked
        .iter()
        .map(|b| {
            let mut line = b.json.clone();
            if let Some(t) = eu_type {
                line.insert(
                    "eu_goods_services_type_id".into(),
                    Value::String(t.sage_id().to_owned()),
                );
            }
            Value::Object(line)
        })
        .collect();

    // Header. Foreign currency: a rate with enough digits for Sage's base total to be
    // Magento's base grand total.
    let date = settings.accounting_date(src.created_at)?;
    let rate = if currency == base_currency {
        Decimal::ONE
    } else {
        let base_total = round2(src.base_grand_total);
        let by_rate = round2(grand_total * exchange_rate(src.base_to_order_rate));
        let base_tolerance = Decimal::new(1, 2) * Decimal::from(line_count as u64 + 2);
        let rate = document_exchange_rate(grand_total, base_total, src.base_to_order_rate);
        if (base_total - by_rate).abs() > base_tolerance || round2(grand_total * rate) != base_total
        {
            return Err(MappingError::skipped(
                reasons::BASE_TOTALS_MISMATCH,
                format!(
                    "{p}.base_grand_total {base_total} {base_currency} but grand total {grand_total} {currency} at base_to_order_rate {} is {by_rate}",
                    src.base_to_order_rate
                ),
            ));
        }
        rate
    };
    let mut body = Map::new();
    body.insert(
        "contact_id".into(),
        Value::String(contact_id.trim().to_owned()),
    );
    let contact_name = document_contact_name(src.order, settings);
    if !contact_name.text.is_empty() {
        body.insert("contact_name".into(), Value::String(contact_name.text));
    }
    notes.extend(
        contact_name
            .full
            .map(|full| format!("Contact name: {full}")),
    );
    body.insert("date".into(), Value::String(date.to_string()));
    if src.kind == Kind::Invoice {
        let due = date + Duration::days(i64::from(settings.due_days));
        body.insert("due_date".into(), Value::String(due.to_string()));
    }
    if let Some(d) = original_invoice_date {
        body.insert("original_invoice_date".into(), Value::String(d.to_string()));
    }
    body.insert("reference".into(), Value::String(reference.clone()));
    body.insert("currency_id".into(), Value::String(currency.clone()));
    if currency != base_currency {
        body.insert("exchange_rate".into(), decimal_json(rate));
    }
    let main = map_address(billing, "Billing address");
    let delivery = map_address(
        delivery_address_source(billing, shipping_address.as_ref()),
        "Delivery address",
    );
    body.insert("main_address".into(), main.json);
    body.insert("delivery_address".into(), delivery.json);
    notes.extend(main.overflow);
    notes.extend(delivery.overflow);
    body.insert(src.kind.lines_key().into(), Value::Array(lines));
    body.insert(
        "notes".into(),
        Value::String(fit_notes(&notes, DOCUMENT_NOTES_MAX)),
    );
    let body = Value::Object(body);

    // 4. Totals invariant, checked on the body as Sage will compute it: every line as
    // booked above, and the total equal to Magento's grand total.
    let rates = settings.rates();
    let figures = sage_line_figures(&body, &rates);
    for (sent, b) in figures.iter().zip(&booked) {
        if (sent.net, sent.tax) != (b.net, b.tax) {
            return Err(MappingError::skipped(
                reasons::ROUNDING_TOO_LARGE,
                format!(
                    "line \"{}\" would book net {} tax {} in Sage instead of {} / {}",
                    sent.description, sent.net, sent.tax, b.net, b.tax
                ),
            ));
        }
    }
    let sage_total = sage_document_total(&body, &rates);
    if sage_total != round2(grand_total) {
        return Err(MappingError::skipped(
            reasons::ROUNDING_TOO_LARGE,
            format!("Sage would total {sage_total}, Magento's grand total is {grand_total}"),
        ));
    }

    Ok(DocumentPlan {
        resource: src.kind.resource(),
        root: src.kind.root(),
        body,
        reference,
        magento_reference,
        date,
        currency,
        exchange_rate: rate,
        expected_total: round2(grand_total),
        rounding_line: rounding,
    })
}

/// Rule "credit-memo adjustments carry the refunded rate": the (rate id, percent,
/// weight) an adjustment is apportioned over.
///
/// With [`AdjustmentVat::OutOfScope`], one out-of-scope part (the cross-border zero rate
/// for a customer billed abroad). Otherwise the rates of the product lines this credit
/// memo refunds, weighted by their gross; when it refunds no product (a goodwill-only
/// memo), the rates of the order's lines as the memo lists them (price × ordered
/// quantity as weight). Nothing to take a rate from → `unmapped_tax_rate`.
fn adjustment_rates(
    src: &Source<'_>,
    settings: &MerchantSettings,
    booked: &[Booked],
    zero_rate_id: &str,
) -> Result<Vec<(String, Decimal, Decimal)>, MappingError> {
    if settings.adjustment_vat == AdjustmentVat::OutOfScope {
        return Ok(vec![(zero_rate_id.to_owned(), Decimal::ZERO, Decimal::ONE)]);
    }
    let mut by_rate: Vec<(String, Decimal, Decimal)> = Vec::new();
    let add = |by_rate: &mut Vec<(String, Decimal, Decimal)>, id: &str, weight: Decimal| {
        let pct = settings.tax_rate_percentage(id).unwrap_or_default();
        match by_rate.iter_mut().find(|r| r.0 == id) {
            Some(r) => r.2 += weight,
            None => by_rate.push((id.to_owned(), pct, weight)),
        }
    };
    for b in booked.iter().filter(|b| b.item) {
        add(&mut by_rate, &b.rate_id, b.net + b.tax);
    }
    if by_rate.is_empty() {
        let billing = &src.order.billing_address;
        let delivery = src.order.effective_shipping_address().map(|a| a.country_id);
        let based_on = src
            .order
            .tax_config
            .as_ref()
            .and_then(|c| c.based_on.clone());
        for (idx, item) in src.items.iter().enumerate() {
            if item.is_dummy_line() {
                continue;
            }
            let applied = src.order.applied_taxes_for(item);
            let percent = src
                .order
                .tax_percent_for(item)
                .unwrap_or_else(|| applied.iter().map(|t| t.percent).sum());
            let place = place_of_supply(
                based_on.as_deref(),
                src.order.product_type_for(item),
                &billing.country_id,
                delivery.as_deref(),
                &settings.home_country,
            );
            let answer = decide_rate(
                settings,
                &TaxQuestion {
                    what: format!(
                        "{}.items[{idx}] ({}), for the adjustment",
                        src.path, item.sku
                    ),
                    codes: applied.iter().map(|t| t.code.clone()).collect(),
                    percent,
                    tax_class: src.order.tax_class_for(item),
                    place,
                    taxed: !percent.is_zero(),
                },
            )?;
            let ordered = src
                .order
                .order_item(item.order_item_id)
                .and_then(|o| o.qty_ordered)
                .unwrap_or(Decimal::ONE);
            add(&mut by_rate, &answer.id, item.price * ordered);
        }
    }
    if by_rate.is_empty() {
        return Err(MappingError::skipped(
            reasons::UNMAPPED_TAX_RATE,
            format!(
                "{}: adjustment with no refunded or ordered line to take its VAT rate from",
                src.path
            ),
        ));
    }
    Ok(by_rate)
}
