//! Sales invoices and credit notes: Magento invoice / credit memo → Sage document body.
//!
//! Both documents share one builder because Sage gives them the same shape
//! (`invoice_lines` vs `credit_note_lines`) and Magento gives invoices and credit memos
//! the same columns. The builder works in four steps:
//!
//! 1. turn each amount-bearing Magento line into a Sage line (dummy composite lines
//!    skipped, entities decoded, 2-dp unit price, explicit tax amount, mapped tax rate);
//! 2. derive the shipping net (after the shipping share of the header discount) and the
//!    Sage shipping rate;
//! 3. check that Magento's grand total is the sum of those parts (if not, something the
//!    mapping cannot see is on the document: hold it rather than paper over it);
//! 4. emulate Sage's total over the body and, if Sage would land on a different cent,
//!    add one explicit "Rounding adjustment" line for the difference.

use crate::address::map_address;
use crate::contact::Party;
use crate::error::{reasons, MappingError};
use crate::money::{decimal_json, exchange_rate, money_json, round2};
use crate::rules::{
    choose_unit_price, credit_note_reference, cross_border_goods_services, delivery_address_source,
    fit_reference, line_description, line_tax_amount, rounding_adjustment, CONTACT_NAME_MAX,
    DOCUMENT_NOTES_MAX, DOCUMENT_REFERENCE_MAX, LINE_DESCRIPTION_MAX,
};
use crate::settings::{CrossBorderVatCharged, GoodsServices, MerchantSettings};
use crate::text::{fit_notes, fit_text, Fitted};
use crate::total::sage_document_total;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger_events::{
    CreditMemoSnapshot, DocumentItem, InvoiceSnapshot, OrderContext, SalesDocument,
};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// Description of the explicit rounding line.
pub const ROUNDING_DESCRIPTION: &str = "Rounding adjustment";
/// Description of a credit memo's "Adjustment Refund" line.
pub const ADJUSTMENT_REFUND_DESCRIPTION: &str = "Adjustment refund";
/// Description of a credit memo's "Adjustment Fee" line.
pub const ADJUSTMENT_FEE_DESCRIPTION: &str = "Adjustment fee";
/// Description of the shipping line used when a document has nothing but shipping.
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
    /// The invoice's Sage `reference` (the Magento invoice number).
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
/// only, see [`crate::exchange_rate`]), `main_address` / `delivery_address`, one line per
/// amount-bearing Magento item, header shipping, internal `notes`, and when needed one
/// "Rounding adjustment" line so that Sage's total equals Magento's grand total.
///
/// Errors: `Skipped { reason: "unmapped_tax_rate" }` for a rate the merchant has not
/// mapped; `Skipped { reason: "cross_border_tax_charged" }` for a cross-border invoice
/// carrying VAT (unless [`crate::CrossBorderVatCharged::DomesticRates`] is set);
/// `Skipped { reason: "totals_mismatch" }` when the grand total is not the sum of its
/// parts; `Invalid { field, reason }` for bad input or a missing ledger account setting.
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
/// their own lines on the adjustment ledger account (the fee as a negative line, since
/// it reduces what is credited), outside the scope of VAT because Magento charges no tax
/// on them. The refunded shipping goes on the header like an invoice's shipping.
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
    discount_amount: Decimal,
    shipping_amount: Decimal,
    shipping_tax_amount: Decimal,
    shipping_discount_tax_compensation: Decimal,
    adjustment_refund: Decimal,
    adjustment_fee: Decimal,
}

/// Where a line's tax rate comes from once the document's VAT situation is known.
#[derive(Clone, Copy)]
enum TaxMode<'a> {
    Domestic,
    CrossBorder { rate_id: &'a str },
}

/// The document's `contact_name`: the buyer as the order's billing address names them
/// (company, else person), cleaned and cut to Sage's contact-name limit. Sent explicitly
/// so the document shows the buyer even on a B2C fallback contact, and never a name
/// stored HTML-escaped.
fn document_contact_name(order: &OrderContext) -> Fitted {
    fit_text(&Party::from_order(order).display_name(), CONTACT_NAME_MAX)
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

/// Picks the Sage rate for Magento's shipping tax, which Magento stores as an amount
/// only. Zero tax uses the mapped 0 % rate. Otherwise each mapped percentage is tried
/// against the discounted shipping net and then the undiscounted shipping amount
/// (Magento can be set to tax before discount); a rate matches when it reproduces
/// Magento's tax within a cent. Closest match wins, then a rate already used on the
/// document's lines. No match → `unmapped_tax_rate` (never guess).
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
        .tax_rates
        .iter()
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

fn build(
    src: &Source<'_>,
    settings: &MerchantSettings,
    contact_id: &str,
    reference: String,
    original_invoice_date: Option<NaiveDate>,
    mut notes: Vec<String>,
) -> Result<DocumentPlan, MappingError> {
    let p = src.path;
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

    let billing = &src.order.billing_address;
    let mut cross_border = settings.is_cross_border(&billing.country_id);
    if cross_border {
        // Quirk 19 puts every line of a cross-border document on the zero rate, which
        // only works when Magento charged no VAT on it.
        let taxed_line = src
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| !i.is_dummy_line())
            .find(|(_, i)| i.tax_amount.is_some_and(|t| !t.is_zero()))
            .map(|(idx, i)| {
                format!(
                    "{p}.items[{idx}] ({}) carries tax {}",
                    i.sku,
                    i.tax_amount.unwrap_or_default()
                )
            });
        let taxed = taxed_line.or_else(|| {
            (!shipping_tax.is_zero()).then(|| format!("shipping carries tax {shipping_tax}"))
        });
        if let Some(what) = taxed {
            match settings.cross_border_vat_charged {
                CrossBorderVatCharged::Hold => {
                    return Err(MappingError::skipped(
                        reasons::CROSS_BORDER_TAX_CHARGED,
                        format!(
                            "{what} but billing country {} is outside {}",
                            billing.country_id, settings.home_country
                        ),
                    ))
                }
                CrossBorderVatCharged::DomesticRates => cross_border = false,
            }
        }
    }
    let mode = if cross_border {
        TaxMode::CrossBorder {
            rate_id: settings.cross_border_tax_rate_id.as_str(),
        }
    } else {
        TaxMode::Domestic
    };

    // 1. Item lines.
    let mut lines: Vec<Value> = Vec::new();
    let mut line_rates: Vec<String> = Vec::new();
    let mut product_types: Vec<Option<&str>> = Vec::new();
    let mut parts_total = Decimal::ZERO;
    let mut item_discounts = Decimal::ZERO;
    let mut counted_lines = 0u32;
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

        let tax_rate_id: String = match mode {
            // Taxed cross-border documents were held or turned domestic above.
            TaxMode::CrossBorder { rate_id } => rate_id.to_owned(),
            TaxMode::Domestic => {
                let percent = match src.order.tax_percent_for(item) {
                    Some(pct) => pct,
                    // Magento leaves tax_percent empty when no tax rule applied; with no
                    // tax charged that is the 0 % row of the map, not a guess.
                    None if tax.is_zero() => Decimal::ZERO,
                    None => {
                        return Err(MappingError::invalid(
                            format!("{ip}.tax_percent"),
                            reasons::MISSING,
                        ))
                    }
                };
                let id = settings.tax_rate_id(percent, None).ok_or_else(|| {
                    MappingError::skipped(
                        reasons::UNMAPPED_TAX_RATE,
                        format!(
                            "{ip} ({}): no Sage rate mapped for {}%",
                            item.sku,
                            percent.normalize()
                        ),
                    )
                })?;
                if settings
                    .tax_rate_percentage(id)
                    .is_some_and(|pct| pct.is_zero())
                    && !tax.is_zero()
                {
                    // Sage infers 0.00 tax on zero rates: the VAT would vanish into the
                    // rounding line.
                    return Err(MappingError::invalid(
                        format!("{ip}.tax_amount"),
                        "tax_on_zero_rate",
                    ));
                }
                id.to_owned()
            }
        };

        let unit_price = choose_unit_price(qty, price, row_total);
        let description = line_description(&item.name, &item.sku, LINE_DESCRIPTION_MAX);
        if let Some(full) = &description.full {
            notes.push(format!("Line {} in full: {full}", idx + 1));
        }
        let mut line = Map::new();
        line.insert("description".into(), Value::String(description.text));
        line.insert(
            "ledger_account_id".into(),
            Value::String(sales_ledger.to_owned()),
        );
        line.insert("quantity".into(), decimal_json(qty));
        line.insert("unit_price".into(), money_json(unit_price));
        if !round2(net_discount).is_zero() {
            line.insert("discount_amount".into(), money_json(net_discount));
        }
        line.insert("tax_rate_id".into(), Value::String(tax_rate_id.clone()));
        line.insert("tax_amount".into(), money_json(line_tax_amount(Some(tax))));
        lines.push(Value::Object(line));
        line_rates.push(tax_rate_id);
        product_types.push(src.order.product_type_for(item));
        parts_total += row_total - net_discount + tax;
        counted_lines += 1;
    }

    // 2. Shipping. The header discount (negative) covers the items' discounts plus any
    // discount on shipping; what is left after the item discounts is the shipping's share.
    let shipping_discount = (-src.discount_amount - item_discounts).max(Decimal::ZERO);
    let shipping_net = shipping_amount - shipping_discount + src.shipping_discount_tax_compensation;
    if shipping_net < Decimal::ZERO {
        return Err(MappingError::invalid(
            format!("{p}.discount_amount"),
            "exceeds_lines_and_shipping",
        ));
    }
    if shipping_net.is_zero() && !shipping_tax.is_zero() {
        return Err(MappingError::invalid(
            format!("{p}.shipping_tax_amount"),
            "tax_without_shipping",
        ));
    }
    let shipping_rate_id: Option<String> = if shipping_net.is_zero() {
        None
    } else {
        Some(match mode {
            TaxMode::CrossBorder { rate_id } => rate_id.to_owned(),
            TaxMode::Domestic => shipping_rate(
                settings,
                shipping_net,
                shipping_amount,
                shipping_tax,
                &line_rates,
            )?
            .to_owned(),
        })
    };
    parts_total += shipping_net + shipping_tax;

    // Credit memo adjustments: own lines, no VAT (Magento charges none on them).
    let adjustment_refund =
        non_negative(src.adjustment_refund, format!("{p}.adjustment_positive"))?;
    let adjustment_fee = non_negative(src.adjustment_fee, format!("{p}.adjustment_negative"))?;
    let zero_rate_id = match mode {
        TaxMode::CrossBorder { rate_id } => rate_id,
        TaxMode::Domestic => settings.out_of_scope.tax_rate_id.as_str(),
    };
    let simple_line =
        |description: &str, ledger: &str, amount: Decimal, rate: &str, tax: Decimal| {
            json!({
                "description": description,
                "ledger_account_id": ledger,
                "quantity": decimal_json(Decimal::ONE),
                "unit_price": money_json(amount),
                "tax_rate_id": rate,
                "tax_amount": money_json(tax),
            })
        };
    for (amount, description) in [
        (adjustment_refund, ADJUSTMENT_REFUND_DESCRIPTION),
        (-adjustment_fee, ADJUSTMENT_FEE_DESCRIPTION),
    ] {
        if round2(amount).is_zero() {
            continue;
        }
        let ledger = require(
            &settings.adjustment_ledger_account_id,
            "adjustment_ledger_account_id",
        )?;
        lines.push(simple_line(
            description,
            ledger,
            amount,
            zero_rate_id,
            Decimal::ZERO,
        ));
        parts_total += amount;
        counted_lines += 1;
    }

    // Sage needs at least one line. A document that refunds or bills nothing but
    // shipping carries it as a line on the shipping ledger, with Magento's own tax.
    let mut header_shipping = shipping_rate_id.clone();
    if lines.is_empty() {
        match shipping_rate_id.as_deref() {
            Some(rate) => {
                let ledger = require(
                    &settings.shipping_ledger_account_id,
                    "shipping_ledger_account_id",
                )?;
                lines.push(simple_line(
                    SHIPPING_DESCRIPTION,
                    ledger,
                    shipping_net,
                    rate,
                    shipping_tax,
                ));
                line_rates.push(rate.to_owned());
                header_shipping = None;
            }
            None if grand_total.is_zero() => {
                return Err(MappingError::skipped(
                    reasons::NOTHING_TO_POST,
                    format!("{p} has no amounts"),
                ))
            }
            None => {
                return Err(MappingError::skipped(
                    reasons::TOTALS_MISMATCH,
                    format!(
                        "{p} has grand total {grand_total} but no lines, shipping or adjustments"
                    ),
                ))
            }
        }
    }

    // 3. Magento's grand total must be the sum of what we saw, up to Magento's own
    // rounding (a cent per line at most); anything more is an amount we cannot see.
    let tolerance = Decimal::new(1, 2) * Decimal::from(counted_lines + 2);
    if (grand_total - parts_total).abs() > tolerance {
        return Err(MappingError::skipped(
            reasons::TOTALS_MISMATCH,
            format!("{p}.grand_total {grand_total} but lines, shipping and adjustments add up to {parts_total}"),
        ));
    }

    // Cross-border: one goods/services type for the whole document (quirk 19).
    let eu_type: Option<GoodsServices> = cross_border.then(|| {
        cross_border_goods_services(
            &settings.cross_border_goods_services,
            product_types.iter().copied(),
        )
    });
    if let Some(t) = eu_type {
        for line in &mut lines {
            line["eu_goods_services_type_id"] = Value::String(t.sage_id().to_owned());
        }
    }

    // Header.
    let date = settings.accounting_date(src.created_at)?;
    let rate = if currency == base_currency {
        Decimal::ONE
    } else {
        exchange_rate(src.base_to_order_rate)
    };
    let mut body = Map::new();
    body.insert(
        "contact_id".into(),
        Value::String(contact_id.trim().to_owned()),
    );
    let contact_name = document_contact_name(src.order);
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
    let shipping_address = src.order.effective_shipping_address();
    let delivery = map_address(
        delivery_address_source(billing, shipping_address.as_ref()),
        "Delivery address",
    );
    body.insert("main_address".into(), main.json);
    body.insert("delivery_address".into(), delivery.json);
    notes.extend(main.overflow);
    notes.extend(delivery.overflow);
    if let Some(rate_id) = &header_shipping {
        body.insert("shipping_net_amount".into(), money_json(shipping_net));
        body.insert(
            "shipping_tax_rate_id".into(),
            Value::String(rate_id.clone()),
        );
    }
    body.insert(src.kind.lines_key().into(), Value::Array(lines));
    body.insert(
        "notes".into(),
        Value::String(fit_notes(&notes, DOCUMENT_NOTES_MAX)),
    );
    let mut body = Value::Object(body);

    // 4. Totals invariant: what Sage will compute must equal Magento's grand total.
    let rates = settings.rates();
    let sage_total = sage_document_total(&body, &rates);
    let rounding = rounding_adjustment(grand_total, sage_total);
    if let Some(amount) = rounding {
        let ledger = require(
            &settings.rounding_ledger_account_id,
            "rounding_ledger_account_id",
        )?;
        let mut line = simple_line(
            ROUNDING_DESCRIPTION,
            ledger,
            amount,
            zero_rate_id,
            Decimal::ZERO,
        );
        if let Some(t) = eu_type {
            line["eu_goods_services_type_id"] = Value::String(t.sage_id().to_owned());
        }
        if let Some(lines) = body[src.kind.lines_key()].as_array_mut() {
            lines.push(line);
        }
        let after = sage_document_total(&body, &rates);
        if after != round2(grand_total) {
            // Only reachable if the zero rate used for rounding is not 0 % in the map.
            return Err(MappingError::invalid(
                if cross_border {
                    "cross_border_tax_rate_id"
                } else {
                    "out_of_scope.tax_rate_id"
                },
                "rounding_rate_not_zero",
            ));
        }
    }

    Ok(DocumentPlan {
        resource: src.kind.resource(),
        root: src.kind.root(),
        body,
        reference,
        date,
        currency,
        exchange_rate: rate,
        expected_total: round2(grand_total),
        rounding_line: rounding,
    })
}
