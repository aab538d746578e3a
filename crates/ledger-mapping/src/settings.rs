//! Merchant settings: everything a mapping needs to know about one merchant's Sage
//! business that is not in the Magento event.
//!
//! The struct is plain data (serde) so services can store it as JSON per merchant.
//! `Default` gives the UK defaults from the project's Sage notes §8; ledger account ids
//! are per Sage business and have no sensible default, so they are `None` until the
//! service resolves them (from `GET /ledger_accounts` / `business_settings`) and fills
//! them in before calling a mapper.

use crate::error::{reasons, MappingError};
use crate::policy::{ContactNamePriority, UnpaidInvoices, ZeroValueInvoices};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One merchant's mapping configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MerchantSettings {
    /// ISO 3166-1 alpha-2 country of the Sage business ("GB"). A document whose billing
    /// country is neither this nor in `domestic_countries` is cross-border.
    pub home_country: String,
    /// Other Magento country codes to treat as home for VAT. Empty by default. UK VAT
    /// treats the Isle of Man ("IM") as part of the UK while Magento lists it as its own
    /// country, but whether Sage accepts home rates for an IM contact is unverified, so
    /// adding it is left to the merchant's accountant.
    pub domestic_countries: Vec<String>,
    /// Magento tax percentage (and optional tax class) → Sage tax rate id.
    pub tax_rates: Vec<TaxRateEntry>,
    /// The Sage rate for VAT-exempt supplies (`GB_EXEMPT`) and the Magento tax classes
    /// that mean "exempt". Exempt and zero-rated both have 0 %, so only a class can tell
    /// them apart.
    pub exempt: NamedTaxRate,
    /// The Sage rate for supplies outside the scope of VAT (`GB_NO_TAX`) and the Magento
    /// tax classes that mean it. Also the rate of the rounding line on domestic documents,
    /// because a rounding adjustment is not a supply and must not reach a VAT box.
    pub out_of_scope: NamedTaxRate,
    /// Zero rate used for every line of a cross-border document (`GB_ZERO`): exports are
    /// zero-rated and Sage rejects anything else for customers abroad (quirk 19).
    pub cross_border_tax_rate_id: String,
    /// How the single `eu_goods_services_type_id` of a cross-border document is chosen.
    pub cross_border_goods_services: GoodsServicesPolicy,
    /// What to do with a cross-border document on which Magento charged VAT.
    pub cross_border_vat_charged: CrossBorderVatCharged,
    /// Sales ledger account for product lines (required to map a document).
    pub sales_ledger_account_id: Option<String>,
    /// Ledger account for delivery income (nominal 4905, found by the gateway when the
    /// merchant connects). Shipping is a document line on this account carrying
    /// Magento's own shipping tax, because Sage recomputes the VAT of header shipping.
    /// Required to map a document with shipping.
    pub shipping_ledger_account_id: Option<String>,
    /// Ledger account of the explicit rounding line (required only when one is needed).
    pub rounding_ledger_account_id: Option<String>,
    /// Ledger account for credit-memo adjustment refund / adjustment fee lines.
    pub adjustment_ledger_account_id: Option<String>,
    /// VAT treatment of credit-memo adjustments (default: the refunded lines' rates).
    pub adjustment_vat: AdjustmentVat,
    /// Purchase ledger account for products: Sage requires one on every product, even
    /// one that is never bought (quirk 9). Needed only by [`crate::map_product`].
    pub purchase_ledger_account_id: Option<String>,
    /// Magento payment method code → Sage payment method and bank accounts.
    pub payment_methods: BTreeMap<String, PaymentMethodMapping>,
    /// Sage payment method used for methods missing from `payment_methods`.
    pub default_payment_method_id: String,
    /// "Paid later" Magento methods (purchase order, company credit): the invoice is paid
    /// outside Magento after it is issued, so no receipt is posted and a credit note is
    /// allocated to the invoice (no money goes back).
    pub paid_later_methods: Vec<String>,
    /// "Paid up front offline" Magento methods (bank transfer, cheque, cash on delivery):
    /// the money arrived outside Magento before the invoice, so no receipt is posted by
    /// Ledger (the bank feed matches it), and a refund posts a customer refund from the
    /// method's account once Sage shows the invoice settled (see
    /// [`crate::credit_note_settlement`]).
    pub prepaid_offline_methods: Vec<String>,
    /// Legacy (settings written before the split): methods that marked invoices paid
    /// although no money moved. Still read, never written: a method listed here is
    /// prepaid offline when [`MerchantSettings::prepaid_offline_methods`] lists it, else
    /// paid later.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub net_terms_methods: Vec<String>,
    /// Days from the invoice date to its due date.
    pub due_days: u32,
    /// IANA time zone of the merchant's books ("Europe/London"): document dates are the
    /// calendar day in this zone, so a sale at 00:30 on 1 April BST belongs to April (and to
    /// its VAT quarter), not to 31 March as the UTC day would have it.
    pub timezone: String,
    /// Whether products and services are pushed to Sage at all.
    pub product_sync: bool,
    /// Sage `product_sales_price_type_id` for a product's catalog price; without it no
    /// price is sent (Sage's ids are per business, from `/product_sales_price_types`).
    pub product_sales_price_type_id: Option<String>,
    /// Sage `service_rate_type_id` for a service's catalog price (from `/service_rate_types`).
    pub service_rate_type_id: Option<String>,
    /// Whether Magento catalog prices are entered including tax (Magento's
    /// "Catalog Prices" tax setting); sent as `price_includes_tax` / `rate_includes_tax`.
    pub catalog_prices_include_tax: bool,
    /// Whether simple products whose stock Magento manages become Sage stock items
    /// (`stock_items`) instead of products; off by default.
    pub stock_items: bool,
    /// Whether a new stock item also gets its Magento quantity as one opening stock
    /// movement, valued at the `cost` attribute; off by default, and only with
    /// `stock_items` on.
    pub opening_stock: bool,
    /// Optional B2C consolidation: low-value first-time guest orders go to one fallback
    /// contact per currency instead of one contact per guest (off by default).
    pub b2c_consolidation: B2cConsolidation,
    /// Cutover: documents whose books' day is before this date are skipped
    /// (`before_cutover`); they were kept in Sage by hand. `None` (default): no cutover.
    pub sync_since: Option<NaiveDate>,
    /// Magento websites whose documents are synced; `None` (default) syncs every website,
    /// an empty list none. Others are skipped (`website_not_synced`).
    pub website_ids: Option<Vec<u32>>,
    /// Magento store views whose documents are synced; `None` (default) syncs every store
    /// view. Others are skipped (`store_not_synced`).
    pub store_ids: Option<Vec<u32>>,
    /// Invoices with a grand total of 0.00: skipped as `zero_value` (default) or posted.
    pub zero_value_invoices: ZeroValueInvoices,
    /// Invoices created open (payment not captured): posted (default) or skipped
    /// (`unpaid_at_creation`).
    pub unpaid_invoices: UnpaidInvoices,
    /// Put before the Magento number in invoice and credit note references (`WEB-` gives
    /// `WEB-000001042`); empty by default. See [`crate::prefixed_reference`].
    pub reference_prefix: String,
    /// The Sage contact name when the billing address names a company and a person
    /// (default: the company).
    pub contact_name_priority: ContactNamePriority,
}

/// The merchant's B2C consolidation policy (see [`crate::b2c_contact_route`]).
///
/// Many small one-off guest orders would each create a Sage contact nobody will look at
/// again; some merchants prefer one "web sales" contact per currency for those. The
/// invoice still carries the buyer's own address, so VAT treatment per document is
/// unchanged; only the customer ledger is consolidated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct B2cConsolidation {
    /// Whether consolidation is on. Off by default: individual contacts are the safe
    /// choice for an accountant who has not asked for anything else.
    pub enabled: bool,
    /// Largest document grand total (inclusive) consolidated, per ISO currency. A
    /// currency missing here is never consolidated: converting a threshold with a guessed
    /// rate would make the rule depend on the day's exchange rate.
    pub thresholds: BTreeMap<String, Decimal>,
    /// Name of the fallback contact (the currency is appended, since Sage locks a
    /// contact to one currency).
    pub contact_name: String,
}

impl Default for B2cConsolidation {
    fn default() -> Self {
        B2cConsolidation {
            enabled: false,
            thresholds: BTreeMap::new(),
            contact_name: "Web sales".into(),
        }
    }
}

impl B2cConsolidation {
    /// The inclusive threshold for `currency`, if the merchant set one.
    pub fn threshold(&self, currency: &str) -> Option<Decimal> {
        let currency = currency.trim();
        self.thresholds
            .iter()
            .find(|(c, _)| c.trim().eq_ignore_ascii_case(currency))
            .map(|(_, t)| *t)
    }
}

/// One row of the tax map: what decides the Sage rate of a line.
///
/// A row with a `code` matches a line by Magento's applied tax code alone (the most
/// specific evidence Magento gives); other rows match by percentage, narrowed by
/// `country` (the line's place of supply) and `tax_class` (the product tax class) when
/// those are set. See [`MerchantSettings::line_tax_rate_id`] for the precedence. Settings
/// JSON written before `country` and `code` existed stays valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxRateEntry {
    /// Magento tax percentage, e.g. `20` (compared numerically, so `20.0000` matches).
    /// Informative only on rows keyed by `code`.
    pub percent: Decimal,
    /// Magento product tax class name this row is limited to; `None` matches any class.
    #[serde(default)]
    pub tax_class: Option<String>,
    /// Place-of-supply country (ISO alpha-2) this row is limited to; `None` means the home
    /// VAT area. Rows for a foreign country are the only ones a line supplied abroad with
    /// VAT charged (OSS/IOSS) can land on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Magento applied tax code (the tax rate's code in Magento, e.g. `FR-IOSS-20`) this
    /// row maps; when set, the row matches on the code alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Sage tax rate id, e.g. `GB_STANDARD`.
    pub tax_rate_id: String,
}

impl TaxRateEntry {
    /// A row for a percentage open to any class, country and code.
    pub fn percent(percent: Decimal, tax_rate_id: &str) -> TaxRateEntry {
        TaxRateEntry {
            percent,
            tax_class: None,
            country: None,
            code: None,
            tax_rate_id: tax_rate_id.to_owned(),
        }
    }
}

/// What the tax map is asked for one document line (see
/// [`MerchantSettings::line_tax_rate_id`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineTaxFacts<'a> {
    /// Magento's applied tax codes on the line (empty when the module sent none).
    pub codes: &'a [&'a str],
    /// Place-of-supply country of the line.
    pub country: &'a str,
    /// Magento tax percentage of the line.
    pub percent: Decimal,
    /// Product tax class name, when known.
    pub tax_class: Option<&'a str>,
}

/// How a credit memo's "Adjustment Refund" / "Adjustment Fee" are taxed in Sage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentVat {
    /// The adjustment is a gross amount (VAT included) at the rate of what the credit
    /// memo refunds: one line when the refunded lines have one rate, apportioned by
    /// rate (in proportion to their gross amounts) otherwise (default).
    #[default]
    RefundedRates,
    /// The adjustment is outside the scope of VAT (the out-of-scope rate, no VAT).
    OutOfScope,
}

/// A named Sage rate selected by Magento tax class rather than by percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTaxRate {
    /// Sage tax rate id, e.g. `GB_EXEMPT`.
    pub tax_rate_id: String,
    /// Magento tax classes mapped to this rate.
    #[serde(default)]
    pub tax_classes: Vec<String>,
}

/// Sage's `eu_goods_services_type_id` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GoodsServices {
    /// `GOODS`
    Goods,
    /// `SERVICES`
    Services,
}

impl GoodsServices {
    /// The id Sage expects in `eu_goods_services_type_id`.
    pub fn sage_id(self) -> &'static str {
        match self {
            GoodsServices::Goods => "GOODS",
            GoodsServices::Services => "SERVICES",
        }
    }
}

/// How the goods/services type of a cross-border document is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GoodsServicesPolicy {
    /// Derive the type from the lines' Magento product types (virtual/downloadable →
    /// SERVICES, anything else → GOODS). When false, `default` is always used.
    pub derive_from_products: bool,
    /// Type for mixed documents (and for all documents when not deriving).
    pub default: GoodsServices,
}

impl Default for GoodsServicesPolicy {
    fn default() -> Self {
        GoodsServicesPolicy {
            derive_from_products: true,
            default: GoodsServices::Goods,
        }
    }
}

/// Policy for a cross-border document that carries VAT in Magento.
///
/// Zero-rating it would drop VAT the customer paid; sending it on the cross-border zero
/// rate would leave the VAT with nowhere to go but the rounding line. Only the merchant
/// (or their accountant) can say which is right: goods exports are zero-rated, but UK
/// B2C general services are usually taxed where the supplier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CrossBorderVatCharged {
    /// Hold the document: `Skipped { reason: "cross_border_tax_charged" }` (default).
    #[default]
    Hold,
    /// Treat the document as a home-VAT supply: every line through the domestic tax
    /// map, no goods/services type (Magento's charging VAT is taken as the decision).
    DomesticRates,
}

/// When the money of a Magento payment method moves, which decides how its credit notes
/// are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodTiming {
    /// Paid after the invoice, outside Magento (purchase order, company credit): a credit
    /// note reduces what is owed (allocation).
    PaidLater,
    /// Paid before the invoice, outside Magento (bank transfer, cheque): a refund is money
    /// leaving that method's bank account.
    PrepaidOffline,
    /// Taken by Magento through a gateway (cards, wallets): receipts and refunds follow the
    /// gateway.
    Online,
}

/// Where a Magento payment method's money lands in Sage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethodMapping {
    /// Sage payment method id (e.g. `CREDIT_DEBIT`).
    pub payment_method_id: String,
    /// Bank account per ISO currency: Sage bank accounts have one fixed currency, so a
    /// method that takes EUR and GBP settles into two accounts.
    #[serde(default)]
    pub bank_account_ids: BTreeMap<String, String>,
}

impl Default for MerchantSettings {
    fn default() -> Self {
        let entry = |percent: i64, id: &str| TaxRateEntry::percent(Decimal::from(percent), id);
        MerchantSettings {
            home_country: "GB".into(),
            domestic_countries: Vec::new(),
            tax_rates: vec![
                entry(20, "GB_STANDARD"),
                entry(5, "GB_LOWER"),
                entry(0, "GB_ZERO"),
            ],
            exempt: NamedTaxRate {
                tax_rate_id: "GB_EXEMPT".into(),
                tax_classes: Vec::new(),
            },
            out_of_scope: NamedTaxRate {
                tax_rate_id: "GB_NO_TAX".into(),
                tax_classes: Vec::new(),
            },
            cross_border_tax_rate_id: "GB_ZERO".into(),
            cross_border_goods_services: GoodsServicesPolicy::default(),
            cross_border_vat_charged: CrossBorderVatCharged::Hold,
            sales_ledger_account_id: None,
            shipping_ledger_account_id: None,
            rounding_ledger_account_id: None,
            adjustment_ledger_account_id: None,
            adjustment_vat: AdjustmentVat::RefundedRates,
            purchase_ledger_account_id: None,
            payment_methods: BTreeMap::new(),
            default_payment_method_id: "CREDIT_DEBIT".into(),
            paid_later_methods: ["purchaseorder", "companycredit"]
                .into_iter()
                .map(String::from)
                .collect(),
            prepaid_offline_methods: ["banktransfer", "checkmo", "cashondelivery"]
                .into_iter()
                .map(String::from)
                .collect(),
            net_terms_methods: Vec::new(),
            due_days: 30,
            timezone: "Europe/London".into(),
            product_sync: false,
            product_sales_price_type_id: None,
            service_rate_type_id: None,
            catalog_prices_include_tax: false,
            stock_items: false,
            opening_stock: false,
            b2c_consolidation: B2cConsolidation::default(),
            sync_since: None,
            website_ids: None,
            store_ids: None,
            zero_value_invoices: ZeroValueInvoices::Skip,
            unpaid_invoices: UnpaidInvoices::Post,
            reference_prefix: String::new(),
            contact_name_priority: ContactNamePriority::Company,
        }
    }
}

impl MerchantSettings {
    /// The Sage tax rate id for a Magento percentage and optional tax class, or `None`
    /// when the merchant has not mapped it (callers hold the document; never guess).
    ///
    /// Order of precedence: a class named as exempt / out of scope; a row for this
    /// percentage limited to this class; a row for this percentage open to any class.
    /// Rows keyed by country or applied tax code are not considered (see
    /// [`Self::line_tax_rate_id`] for document lines).
    pub fn tax_rate_id(&self, percent: Decimal, tax_class: Option<&str>) -> Option<&str> {
        if let Some(class) = tax_class {
            if self.exempt.tax_classes.iter().any(|c| c == class) {
                return Some(&self.exempt.tax_rate_id);
            }
            if self.out_of_scope.tax_classes.iter().any(|c| c == class) {
                return Some(&self.out_of_scope.tax_rate_id);
            }
            if let Some(e) = self
                .home_rows()
                .find(|e| e.percent == percent && e.tax_class.as_deref() == Some(class))
            {
                return Some(&e.tax_rate_id);
            }
        }
        self.home_rows()
            .find(|e| e.percent == percent && e.tax_class.is_none())
            .map(|e| e.tax_rate_id.as_str())
    }

    /// Rows of the tax map that apply at home by percentage: no country, no code.
    pub fn home_rows(&self) -> impl Iterator<Item = &TaxRateEntry> {
        self.tax_rates
            .iter()
            .filter(|e| e.country.is_none() && e.code.is_none())
    }

    /// The Sage tax rate id of one document line, or `None` when the map does not decide
    /// it (callers hold the document; never guess).
    ///
    /// Precedence, most specific first:
    /// 1. a row whose `code` is one of the line's applied tax codes;
    /// 2. a row for (place-of-supply country, percentage, tax class);
    /// 3. a row for (percentage, tax class) without a country;
    /// 4. a class named as exempt / out of scope;
    /// 5. a row for (country, percentage) open to any class;
    /// 6. a row for the percentage alone.
    ///
    /// With `home == false` (a line supplied abroad with VAT charged) only 1, 2 and 5
    /// apply: foreign VAT never lands on a home rate.
    pub fn line_tax_rate_id(&self, facts: &LineTaxFacts<'_>, home: bool) -> Option<&str> {
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        if let Some(e) = self.tax_rates.iter().find(|e| {
            e.code
                .as_deref()
                .is_some_and(|c| facts.codes.iter().any(|code| same(c, code)))
        }) {
            return Some(&e.tax_rate_id);
        }
        let rows = || {
            self.tax_rates
                .iter()
                .filter(|e| e.code.is_none() && e.percent == facts.percent)
        };
        let in_country =
            |e: &TaxRateEntry| e.country.as_deref().is_some_and(|c| same(c, facts.country));
        let class = facts.tax_class.map(str::trim).filter(|c| !c.is_empty());
        let of_class = |e: &TaxRateEntry| match (e.tax_class.as_deref(), class) {
            (Some(a), Some(b)) => same(a, b),
            _ => false,
        };
        if let Some(e) = rows().find(|e| in_country(e) && of_class(e)) {
            return Some(&e.tax_rate_id);
        }
        if home {
            if let Some(e) = rows().find(|e| e.country.is_none() && of_class(e)) {
                return Some(&e.tax_rate_id);
            }
            if let Some(c) = class {
                if self.exempt.tax_classes.iter().any(|x| same(x, c)) {
                    return Some(&self.exempt.tax_rate_id);
                }
                if self.out_of_scope.tax_classes.iter().any(|x| same(x, c)) {
                    return Some(&self.out_of_scope.tax_rate_id);
                }
            }
        }
        if let Some(e) = rows().find(|e| in_country(e) && e.tax_class.is_none()) {
            return Some(&e.tax_rate_id);
        }
        if !home {
            return None;
        }
        rows()
            .find(|e| e.country.is_none() && e.tax_class.is_none())
            .map(|e| e.tax_rate_id.as_str())
    }

    /// The Sage rate for a Magento product tax class alone (products have a class but
    /// no percentage): a class named as exempt / out of scope, or the one rate all
    /// class-specific rows for it agree on. `None` when the map does not decide it, in
    /// which case the product is created without a default rate rather than a guessed one.
    pub fn tax_rate_id_for_class(&self, tax_class: &str) -> Option<&str> {
        if self.exempt.tax_classes.iter().any(|c| c == tax_class) {
            return Some(&self.exempt.tax_rate_id);
        }
        if self.out_of_scope.tax_classes.iter().any(|c| c == tax_class) {
            return Some(&self.out_of_scope.tax_rate_id);
        }
        let mut ids = self
            .tax_rates
            .iter()
            .filter(|e| e.tax_class.as_deref() == Some(tax_class))
            .map(|e| e.tax_rate_id.as_str());
        let first = ids.next()?;
        ids.all(|id| id == first).then_some(first)
    }

    /// The percentage of a Sage tax rate id as this merchant's map knows it. Named zero
    /// rates (exempt, out of scope, cross-border) are 0 %. Used to emulate Sage's
    /// server-side shipping VAT and to decide whether a line's tax is inferred as zero.
    pub fn tax_rate_percentage(&self, tax_rate_id: &str) -> Option<Decimal> {
        if let Some(e) = self.tax_rates.iter().find(|e| e.tax_rate_id == tax_rate_id) {
            return Some(e.percent);
        }
        if tax_rate_id == self.exempt.tax_rate_id
            || tax_rate_id == self.out_of_scope.tax_rate_id
            || tax_rate_id == self.cross_border_tax_rate_id
        {
            return Some(Decimal::ZERO);
        }
        None
    }

    /// A closure over [`Self::tax_rate_percentage`], in the shape
    /// [`crate::sage_document_total`] takes.
    pub fn rates(&self) -> impl Fn(&str) -> Option<Decimal> + '_ {
        move |id| self.tax_rate_percentage(id)
    }

    /// True when a billing country is outside the home VAT area.
    pub fn is_cross_border(&self, country_id: &str) -> bool {
        let c = country_id.trim();
        !(c.eq_ignore_ascii_case(&self.home_country)
            || self
                .domestic_countries
                .iter()
                .any(|d| d.eq_ignore_ascii_case(c)))
    }

    /// The books' time zone; an unknown name is refused naming `settings.timezone`.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, MappingError> {
        self.timezone
            .trim()
            .parse()
            .map_err(|_| MappingError::invalid("settings.timezone", "unknown_time_zone"))
    }

    /// Rule "document dates are the books' calendar day": the day `at` falls on in
    /// [`MerchantSettings::timezone`], by the one calendar [`crate::sage_date`].
    pub fn accounting_date(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::NaiveDate, MappingError> {
        crate::calendar::sage_date(at, &self.timezone)
    }

    /// True for a Magento payment method whose money moves outside Magento (paid later or
    /// paid up front offline): Ledger posts no receipt for it.
    pub fn is_net_terms(&self, method: &str) -> bool {
        self.method_timing(method) != MethodTiming::Online
    }

    /// True for a "paid later" method (purchase order, company credit), including a method
    /// of the legacy `net_terms_methods` list that is not prepaid offline.
    pub fn is_paid_later(&self, method: &str) -> bool {
        self.method_timing(method) == MethodTiming::PaidLater
    }

    /// When the money of a Magento payment method moves (see [`MethodTiming`]).
    pub fn method_timing(&self, method: &str) -> MethodTiming {
        let listed = |list: &[String]| list.iter().any(|m| m == method);
        if listed(&self.prepaid_offline_methods) {
            MethodTiming::PrepaidOffline
        } else if listed(&self.paid_later_methods) || listed(&self.net_terms_methods) {
            MethodTiming::PaidLater
        } else {
            MethodTiming::Online
        }
    }

    /// Sage payment method id for a Magento method (the default when unmapped).
    pub fn payment_method_id(&self, method: &str) -> &str {
        self.payment_methods
            .get(method)
            .map(|m| m.payment_method_id.as_str())
            .unwrap_or(&self.default_payment_method_id)
    }

    /// The bank account configured for a Magento method in a currency, if any.
    pub fn bank_account_id(&self, method: &str, currency: &str) -> Option<&str> {
        self.payment_methods
            .get(method)
            .and_then(|m| m.bank_account_ids.get(currency))
            .map(String::as_str)
    }
}

/// The merchant's default Sage bank account per currency: the `bank_accounts` key of the
/// settings document (currency → Sage bank account id), as the gateway discovered it when
/// the merchant connected (first account per currency) or an operator set it.
///
/// Kept outside [`MerchantSettings`] because the key belongs to the gateway's discovery,
/// and a malformed entry must fail only the services that move money, not every invoice.
/// Currency keys are upper-cased; blank or `null` entries are dropped (an operator may
/// blank a currency out to force per-method accounts). Anything else that is not a
/// currency → id map is `Invalid { field: "bank_accounts[.CUR]", reason: "malformed" }`.
pub fn default_bank_accounts(raw: &Value) -> Result<BTreeMap<String, String>, MappingError> {
    let mut out = BTreeMap::new();
    match raw.get("bank_accounts") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (currency, id) in map {
                match id {
                    Value::String(id) if !id.trim().is_empty() => {
                        out.insert(currency.trim().to_ascii_uppercase(), id.trim().to_owned());
                    }
                    Value::Null | Value::String(_) => {}
                    _ => {
                        return Err(MappingError::invalid(
                            format!("bank_accounts.{currency}"),
                            reasons::MALFORMED,
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(MappingError::invalid("bank_accounts", reasons::MALFORMED)),
    }
    Ok(out)
}

/// The Sage bank account money paid by (or refunded through) Magento method `method` in
/// `currency` moves through: the account configured for the method in that currency,
/// else the merchant's default account for the currency (from [`default_bank_accounts`]).
///
/// A Sage bank account has one fixed currency, so there is no fallback across
/// currencies: `None` means the merchant must add an account in this currency. Currency
/// keys typed by an operator may be in any case; Sage's currency ids are upper case.
pub fn deposit_bank_account(
    settings: &MerchantSettings,
    defaults: &BTreeMap<String, String>,
    method: &str,
    currency: &str,
) -> Option<String> {
    let currency = currency.trim();
    let in_currency = |map: &BTreeMap<String, String>| -> Option<String> {
        map.iter()
            .find(|(c, id)| c.trim().eq_ignore_ascii_case(currency) && !id.trim().is_empty())
            .map(|(_, id)| id.trim().to_owned())
    };
    settings
        .payment_methods
        .get(method)
        .and_then(|m| in_currency(&m.bank_account_ids))
        .or_else(|| in_currency(defaults))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn uk_defaults() {
        let s = MerchantSettings::default();
        assert_eq!(s.home_country, "GB");
        assert_eq!(s.due_days, 30);
        assert_eq!(s.cross_border_tax_rate_id, "GB_ZERO");
        assert_eq!(s.exempt.tax_rate_id, "GB_EXEMPT");
        assert_eq!(s.out_of_scope.tax_rate_id, "GB_NO_TAX");
        assert_eq!(s.default_payment_method_id, "CREDIT_DEBIT");
        for m in [
            "purchaseorder",
            "banktransfer",
            "checkmo",
            "companycredit",
            "cashondelivery",
        ] {
            assert!(s.is_net_terms(m), "{m}");
        }
        assert!(!s.is_net_terms("stripe_payments"));
        for m in ["purchaseorder", "companycredit"] {
            assert_eq!(s.method_timing(m), MethodTiming::PaidLater, "{m}");
        }
        for m in ["banktransfer", "checkmo", "cashondelivery"] {
            assert_eq!(s.method_timing(m), MethodTiming::PrepaidOffline, "{m}");
        }
        assert_eq!(s.method_timing("stripe_payments"), MethodTiming::Online);
    }

    #[test]
    fn old_net_terms_settings_stay_valid() {
        // Settings written before the split: the old list, nothing else about methods.
        let s: MerchantSettings = serde_json::from_value(serde_json::json!({
            "net_terms_methods": ["purchaseorder", "banktransfer", "checkmo", "invoice_later"]
        }))
        .unwrap();
        assert_eq!(s.method_timing("purchaseorder"), MethodTiming::PaidLater);
        // A method the merchant added to the old list is paid later, as it behaved before.
        assert_eq!(s.method_timing("invoice_later"), MethodTiming::PaidLater);
        // Listed in both: the new prepaid list wins, so old settings get bank refunds.
        assert_eq!(
            s.method_timing("banktransfer"),
            MethodTiming::PrepaidOffline
        );
        assert!(s.is_net_terms("invoice_later"));
        assert!(!s.is_net_terms("stripe_payments"));
        // The legacy key is not written back once empty.
        let d = serde_json::to_value(MerchantSettings::default()).unwrap();
        assert!(d.get("net_terms_methods").is_none(), "{d}");
        assert!(d.get("paid_later_methods").is_some());
    }

    #[test]
    fn tax_map_table() {
        let mut s = MerchantSettings::default();
        s.exempt.tax_classes = vec!["7".into()];
        s.out_of_scope.tax_classes = vec!["8".into()];
        s.tax_rates.push(TaxRateEntry {
            tax_class: Some("9".into()),
            ..TaxRateEntry::percent(dec!(0), "GB_ZERO_BOOKS")
        });
        let table: [(Decimal, Option<&str>, Option<&str>); 9] = [
            (dec!(20), None, Some("GB_STANDARD")),
            (dec!(20.0000), None, Some("GB_STANDARD")),
            (dec!(5), None, Some("GB_LOWER")),
            (dec!(0), None, Some("GB_ZERO")),
            (dec!(0), Some("7"), Some("GB_EXEMPT")),
            (dec!(0), Some("8"), Some("GB_NO_TAX")),
            (dec!(0), Some("9"), Some("GB_ZERO_BOOKS")),
            (dec!(20), Some("2"), Some("GB_STANDARD")),
            (dec!(17.5), None, None),
        ];
        for (pct, class, want) in table {
            assert_eq!(s.tax_rate_id(pct, class), want, "{pct} {class:?}");
        }
        assert_eq!(s.tax_rate_id_for_class("7"), Some("GB_EXEMPT"));
        assert_eq!(s.tax_rate_id_for_class("9"), Some("GB_ZERO_BOOKS"));
        assert_eq!(s.tax_rate_id_for_class("2"), None);
    }

    #[test]
    fn line_tax_map_precedence() {
        let mut s = MerchantSettings::default();
        s.exempt.tax_classes = vec!["Exempt".into()];
        s.out_of_scope.tax_classes = vec!["Donation".into()];
        let row = |percent: Decimal,
                   class: Option<&str>,
                   country: Option<&str>,
                   code: Option<&str>,
                   id: &str| TaxRateEntry {
            tax_class: class.map(String::from),
            country: country.map(String::from),
            code: code.map(String::from),
            ..TaxRateEntry::percent(percent, id)
        };
        s.tax_rates.extend([
            row(dec!(20), None, None, Some("FR-IOSS-20"), "FR_IOSS"),
            row(dec!(20), Some("Books"), Some("FR"), None, "FR_BOOKS"),
            row(dec!(20), None, Some("FR"), None, "FR_STD"),
            row(dec!(0), Some("Exempt"), None, None, "GB_ZERO_EXEMPT_ROW"),
            row(dec!(0), Some("Donation"), Some("GB"), None, "GB_DONATION"),
        ]);
        let facts = |codes: &'static [&'static str],
                     country: &'static str,
                     percent: Decimal,
                     class: Option<&'static str>| LineTaxFacts {
            codes,
            country,
            percent,
            tax_class: class,
        };
        let table: [(LineTaxFacts<'_>, bool, Option<&str>); 11] = [
            // 1. the applied code wins over everything.
            (
                facts(&["FR-IOSS-20"], "FR", dec!(20), Some("Books")),
                false,
                Some("FR_IOSS"),
            ),
            (
                facts(&["fr-ioss-20"], "GB", dec!(5), None),
                true,
                Some("FR_IOSS"),
            ),
            // 2. (country, percent, class).
            (
                facts(&[], "FR", dec!(20), Some("Books")),
                false,
                Some("FR_BOOKS"),
            ),
            (
                facts(&[], "GB", dec!(0), Some("Donation")),
                true,
                Some("GB_DONATION"),
            ),
            // 3. (percent, class) before 4. the class names.
            (
                facts(&[], "GB", dec!(0), Some("Exempt")),
                true,
                Some("GB_ZERO_EXEMPT_ROW"),
            ),
            (
                facts(&[], "IM", dec!(0), Some("Donation")),
                true,
                Some("GB_NO_TAX"),
            ),
            // 5. (country, percent) and 6. percent alone.
            (
                facts(&[], "FR", dec!(20), Some("Toys")),
                false,
                Some("FR_STD"),
            ),
            (
                facts(&[], "GB", dec!(20), Some("Toys")),
                true,
                Some("GB_STANDARD"),
            ),
            (
                facts(&["GB-VAT"], "GB", dec!(5), None),
                true,
                Some("GB_LOWER"),
            ),
            // Abroad: never a home row.
            (facts(&[], "DE", dec!(20), None), false, None),
            (facts(&[], "DE", dec!(0), Some("Exempt")), false, None),
        ];
        for (f, home, want) in table {
            assert_eq!(s.line_tax_rate_id(&f, home), want, "{f:?} home={home}");
        }
        // The product/percent look-up ignores country and code rows.
        assert_eq!(s.tax_rate_id(dec!(20), None), Some("GB_STANDARD"));
    }

    #[test]
    fn old_tax_map_json_stays_valid() {
        let s: MerchantSettings = serde_json::from_str(
            r#"{"tax_rates":[{"percent":"20","tax_rate_id":"GB_STANDARD"},{"percent":0,"tax_class":"Books","tax_rate_id":"GB_ZERO"}]}"#,
        )
        .unwrap();
        assert_eq!(
            s.tax_rates[0],
            TaxRateEntry::percent(dec!(20), "GB_STANDARD")
        );
        assert_eq!(s.tax_rates[1].country, None);
        assert_eq!(s.tax_rates[1].code, None);
        assert_eq!(s.adjustment_vat, AdjustmentVat::RefundedRates);
        let s: MerchantSettings =
            serde_json::from_str(r#"{"adjustment_vat":"out_of_scope"}"#).unwrap();
        assert_eq!(s.adjustment_vat, AdjustmentVat::OutOfScope);
    }

    #[test]
    fn percentages_of_sage_ids() {
        let s = MerchantSettings::default();
        assert_eq!(s.tax_rate_percentage("GB_STANDARD"), Some(dec!(20)));
        assert_eq!(s.tax_rate_percentage("GB_LOWER"), Some(dec!(5)));
        assert_eq!(s.tax_rate_percentage("GB_NO_TAX"), Some(dec!(0)));
        assert_eq!(s.tax_rate_percentage("GB_EXEMPT"), Some(dec!(0)));
        assert_eq!(s.tax_rate_percentage("NOPE"), None);
    }

    #[test]
    fn home_vat_area() {
        let mut s = MerchantSettings::default();
        assert!(!s.is_cross_border("GB"));
        assert!(!s.is_cross_border("gb"));
        assert!(s.is_cross_border("IM"));
        assert!(s.is_cross_border("FR"));
        assert!(s.is_cross_border("US"));
        s.domestic_countries.push("IM".into());
        assert!(!s.is_cross_border("IM"));
    }

    #[test]
    fn payment_method_map() {
        let mut s = MerchantSettings::default();
        s.payment_methods.insert(
            "paypal_express".into(),
            PaymentMethodMapping {
                payment_method_id: "ELECTRONIC".into(),
                bank_account_ids: [("EUR".to_string(), "bank-eur".to_string())].into(),
            },
        );
        assert_eq!(s.payment_method_id("paypal_express"), "ELECTRONIC");
        assert_eq!(s.payment_method_id("stripe"), "CREDIT_DEBIT");
        assert_eq!(s.bank_account_id("paypal_express", "EUR"), Some("bank-eur"));
        assert_eq!(s.bank_account_id("paypal_express", "GBP"), None);
    }

    #[test]
    fn settings_round_trip_through_json_and_fill_defaults() {
        let s: MerchantSettings =
            serde_json::from_str(r#"{"sales_ledger_account_id":"L1","due_days":14}"#).unwrap();
        assert_eq!(s.sales_ledger_account_id.as_deref(), Some("L1"));
        assert_eq!(s.due_days, 14);
        assert_eq!(s.tax_rates.len(), 3);
        let back: MerchantSettings =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn default_bank_accounts_table() {
        use serde_json::json;
        let ok: [(Value, &[(&str, &str)]); 4] = [
            (json!({}), &[]),
            (json!({"bank_accounts": null}), &[]),
            (
                json!({"bank_accounts": {"gbp": " bank-gbp ", "EUR": "bank-eur"}}),
                &[("EUR", "bank-eur"), ("GBP", "bank-gbp")],
            ),
            (
                json!({"bank_accounts": {"USD": "", "CHF": null, "GBP": "g"}}),
                &[("GBP", "g")],
            ),
        ];
        for (raw, want) in ok {
            let got = default_bank_accounts(&raw).unwrap();
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(c, i)| (c.to_string(), i.to_string()))
                .collect();
            assert_eq!(got, want, "{raw}");
        }
        let bad = [
            (json!({"bank_accounts": ["GBP"]}), "bank_accounts"),
            (json!({"bank_accounts": {"GBP": 7}}), "bank_accounts.GBP"),
        ];
        for (raw, field) in bad {
            assert_eq!(
                default_bank_accounts(&raw),
                Err(MappingError::invalid(field, reasons::MALFORMED)),
                "{raw}"
            );
        }
    }

    #[test]
    fn deposit_account_prefers_the_method_in_the_same_currency() {
        let mut s = MerchantSettings::default();
        s.payment_methods.insert(
            "paypal_express".into(),
            PaymentMethodMapping {
                payment_method_id: "ELECTRONIC".into(),
                bank_account_ids: [("eur".to_string(), "bank-paypal-eur".to_string())].into(),
            },
        );
        let defaults: BTreeMap<String, String> = [
            ("GBP".to_string(), "bank-gbp".to_string()),
            ("EUR".to_string(), "bank-eur".to_string()),
        ]
        .into();
        let table = [
            ("paypal_express", "EUR", Some("bank-paypal-eur")),
            ("paypal_express", "GBP", Some("bank-gbp")),
            ("stripe_payments", "eur", Some("bank-eur")),
            ("stripe_payments", "USD", None),
        ];
        for (method, currency, want) in table {
            assert_eq!(
                deposit_bank_account(&s, &defaults, method, currency).as_deref(),
                want,
                "{method} {currency}"
            );
        }
    }

    #[test]
    fn b2c_consolidation_is_off_by_default_and_reads_thresholds() {
        let s = MerchantSettings::default();
        assert!(!s.b2c_consolidation.enabled);
        let s: MerchantSettings = serde_json::from_str(
            r#"{"b2c_consolidation":{"enabled":true,"thresholds":{"GBP":"50.00","eur":"60"}}}"#,
        )
        .unwrap();
        assert!(s.b2c_consolidation.enabled);
        assert_eq!(s.b2c_consolidation.contact_name, "Web sales");
        assert_eq!(s.b2c_consolidation.threshold("gbp"), Some(dec!(50)));
        assert_eq!(s.b2c_consolidation.threshold("EUR"), Some(dec!(60)));
        assert_eq!(s.b2c_consolidation.threshold("USD"), None);
    }
}
