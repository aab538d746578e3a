//! Magento sales documents as carried in `invoice.*` and `creditmemo.*` payloads.
//!
//! Field names are Magento's REST names, so a field can be looked up in Magento's documentation
//! without a translation table. Only the fields accounting uses are typed here; extra Magento
//! fields are accepted by the schema and ignored when decoding. Every amount is an exact
//! [`Decimal`]: un-prefixed amounts are in the order (document) currency, `base_*` amounts in the
//! website's base currency.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::serde_util::{flag, magento_time};

/// Trims and lower-cases an e-mail address so that the same guest is recognised however the
/// address was typed at checkout (`" Jo@Example.COM"` and `"jo@example.com"` are one contact).
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Invoice state as Magento stores it (`Magento\Sales\Model\Order\Invoice::STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum InvoiceState {
    /// 1: created, not (yet) captured.
    Open,
    /// 2: paid. Offline methods are "paid" at creation although no money moved.
    Paid,
    /// 3: canceled.
    Canceled,
}

impl TryFrom<u8> for InvoiceState {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(InvoiceState::Open),
            2 => Ok(InvoiceState::Paid),
            3 => Ok(InvoiceState::Canceled),
            other => Err(format!("unknown invoice state {other}")),
        }
    }
}

impl From<InvoiceState> for u8 {
    fn from(s: InvoiceState) -> u8 {
        match s {
            InvoiceState::Open => 1,
            InvoiceState::Paid => 2,
            InvoiceState::Canceled => 3,
        }
    }
}

/// Credit memo state as Magento stores it (`Magento\Sales\Model\Order\Creditmemo::STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum CreditMemoState {
    /// 1: open (not yet refunded).
    Open,
    /// 2: refunded; the normal state after `CreditmemoService::refund()`.
    Refunded,
    /// 3: canceled.
    Canceled,
}

impl TryFrom<u8> for CreditMemoState {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(CreditMemoState::Open),
            2 => Ok(CreditMemoState::Refunded),
            3 => Ok(CreditMemoState::Canceled),
            other => Err(format!("unknown credit memo state {other}")),
        }
    }
}

impl From<CreditMemoState> for u8 {
    fn from(s: CreditMemoState) -> u8 {
        match s {
            CreditMemoState::Open => 1,
            CreditMemoState::Refunded => 2,
            CreditMemoState::Canceled => 3,
        }
    }
}

/// One invoice or credit-memo line (Magento's invoice and credit-memo items have the same columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentItem {
    /// Item row id; `None` while Magento is still saving the document (items are written after
    /// the header), which is why [`DocumentItem::order_item_id`] is the stable line key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<u64>,
    /// Id of the document this line belongs to (not the parent line: see `parent_item_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
    /// The order line this document line bills or refunds; stable across invoice and refunds.
    pub order_item_id: u64,
    /// Catalog product id, when the product still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<u64>,
    /// SKU at the time of ordering.
    pub sku: String,
    /// Line description at the time of ordering.
    pub name: String,
    /// Quantity billed or refunded (credit memos may carry 0 for lines not refunded).
    pub qty: Decimal,
    /// Unit price excluding tax, order currency.
    pub price: Decimal,
    /// Unit price excluding tax, base currency.
    pub base_price: Decimal,
    /// Unit price including tax, order currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_incl_tax: Option<Decimal>,
    /// Unit price including tax, base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_price_incl_tax: Option<Decimal>,
    /// Line total excluding tax and before discount; absent on dummy lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_total: Option<Decimal>,
    /// `row_total` in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_total: Option<Decimal>,
    /// Line total including tax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_total_incl_tax: Option<Decimal>,
    /// `row_total_incl_tax` in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_total_incl_tax: Option<Decimal>,
    /// Line discount, **positive** (the header discount is negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_amount: Option<Decimal>,
    /// `discount_amount` in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_discount_amount: Option<Decimal>,
    /// Line tax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_amount: Option<Decimal>,
    /// `tax_amount` in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_tax_amount: Option<Decimal>,
    /// Tax hidden in a discount on tax-inclusive prices; added back to get the net line amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_tax_compensation_amount: Option<Decimal>,
    /// `discount_tax_compensation_amount` in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_discount_tax_compensation_amount: Option<Decimal>,
    /// Product type copied from the order item by the module (Magento does not store it here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// Order item id of the composite parent line, copied from the order item by the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_item_id: Option<u64>,
    /// Tax rate in percent, copied from the order item (Magento keeps the rate only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_percent: Option<Decimal>,
    /// Magento's `isDummy()` for this line, when the module sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_dummy: Option<bool>,
}

impl DocumentItem {
    /// True when this line carries no amounts of its own and must be skipped (configurable child,
    /// dynamic-price bundle parent). Uses the explicit `is_dummy` flag when sent; otherwise a line
    /// without `row_total` is the dummy, because Magento's subtotal collector skips dummy lines
    /// and never fills their row total (seen on real REST invoices).
    pub fn is_dummy_line(&self) -> bool {
        self.is_dummy.unwrap_or(self.row_total.is_none())
    }

    /// Net line amount in order currency: `row_total - discount_amount +
    /// discount_tax_compensation_amount` (the compensation is zero unless catalog prices include
    /// tax). This is the amount a Sage line should carry before tax.
    pub fn net_row_total(&self) -> Decimal {
        self.row_total.unwrap_or_default() - self.discount_amount.unwrap_or_default()
            + self.discount_tax_compensation_amount.unwrap_or_default()
    }

    /// [`DocumentItem::net_row_total`] in base currency.
    pub fn base_net_row_total(&self) -> Decimal {
        self.base_row_total.unwrap_or_default() - self.base_discount_amount.unwrap_or_default()
            + self
                .base_discount_tax_compensation_amount
                .unwrap_or_default()
    }
}

/// Read access shared by invoices and credit memos, so line and currency mapping can be written
/// once for both.
pub trait SalesDocument {
    /// `"invoice"` or `"creditmemo"`: the entity token used in keys and subjects.
    fn kind(&self) -> &'static str;
    /// Magento entity id of the document.
    fn entity_id(&self) -> u64;
    /// Document number shown to people (unique per store only).
    fn increment_id(&self) -> &str;
    /// Store view the document belongs to.
    fn store_id(&self) -> u32;
    /// Currency of the un-prefixed amounts (what the customer paid in).
    fn document_currency(&self) -> &str;
    /// Website base currency of the `base_*` amounts.
    fn base_currency(&self) -> &str;
    /// Magento's `base_to_order_rate`: order amount = base amount x rate.
    fn base_to_order_rate(&self) -> Decimal;
    /// All lines, dummy lines included.
    fn items(&self) -> &[DocumentItem];

    /// Stable key of the Magento document, `<kind>:<store_id>:<increment_id>`. The store is part
    /// of it because Magento's increment ids are sequenced per store.
    fn document_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind(),
            self.store_id(),
            self.increment_id()
        )
    }

    /// The rate in the opposite direction (base amount = order amount x rate), which is what a
    /// ledger whose home currency is the base currency usually asks for. `None` only for a zero
    /// rate, which the schema rejects.
    fn order_to_base_rate(&self) -> Option<Decimal> {
        Decimal::ONE.checked_div(self.base_to_order_rate())
    }

    /// True when the customer paid in a currency other than the base currency.
    fn is_foreign_currency(&self) -> bool {
        self.document_currency() != self.base_currency()
    }

    /// The lines that carry amounts: dummy composite lines removed so nothing is counted twice.
    fn accounting_items(&self) -> impl Iterator<Item = &DocumentItem> {
        self.items().iter().filter(|i| !i.is_dummy_line())
    }
}

/// Declares a sales document struct with the header columns invoices and credit memos share,
/// plus its own fields, and implements [`SalesDocument`] for it. A macro rather than
/// `#[serde(flatten)]` because flatten buffers values and would lose the exact text of numbers
/// that `arbitrary_precision` keeps.
macro_rules! sales_document {
    (
        $(#[$meta:meta])*
        pub struct $name:ident ($kind:literal) {
            $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Magento entity id.
            pub entity_id: u64,
            /// Document number (unique per store).
            pub increment_id: String,
            /// Entity id of the order.
            pub order_id: u64,
            /// Store view.
            pub store_id: u32,
            /// When Magento created the document (UTC).
            #[serde(with = "magento_time")]
            pub created_at: DateTime<Utc>,
            /// Last update (UTC).
            #[serde(default, with = "magento_time::option", skip_serializing_if = "Option::is_none")]
            pub updated_at: Option<DateTime<Utc>>,
            /// Gateway transaction id, when there was one.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub transaction_id: Option<String>,
            /// Base (website) currency.
            pub base_currency_code: String,
            /// Order (document) currency.
            pub order_currency_code: String,
            /// order amount = base amount x `base_to_order_rate`.
            pub base_to_order_rate: Decimal,
            /// Global (installation) currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub global_currency_code: Option<String>,
            /// Store view display currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub store_currency_code: Option<String>,
            /// Base to global currency rate.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_to_global_rate: Option<Decimal>,
            /// Total to pay / refund.
            pub grand_total: Decimal,
            /// `grand_total` in base currency.
            pub base_grand_total: Decimal,
            /// Sum of non-dummy row totals, excluding tax, before discount.
            pub subtotal: Decimal,
            /// `subtotal` in base currency.
            pub base_subtotal: Decimal,
            /// Subtotal including tax.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub subtotal_incl_tax: Option<Decimal>,
            /// `subtotal_incl_tax` in base currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_subtotal_incl_tax: Option<Decimal>,
            /// All tax, shipping tax included.
            pub tax_amount: Decimal,
            /// `tax_amount` in base currency.
            pub base_tax_amount: Decimal,
            /// Shipping excluding tax.
            pub shipping_amount: Decimal,
            /// `shipping_amount` in base currency.
            pub base_shipping_amount: Decimal,
            /// Tax on shipping; `None` when Magento did not bill shipping on this document.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shipping_tax_amount: Option<Decimal>,
            /// `shipping_tax_amount` in base currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_shipping_tax_amount: Option<Decimal>,
            /// Shipping including tax.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shipping_incl_tax: Option<Decimal>,
            /// `shipping_incl_tax` in base currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_shipping_incl_tax: Option<Decimal>,
            /// Header discount, **zero or negative** (Magento stores `-discount`).
            pub discount_amount: Decimal,
            /// `discount_amount` in base currency.
            pub base_discount_amount: Decimal,
            /// Coupon / rule label of the discount.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub discount_description: Option<String>,
            /// Tax hidden in discounts on tax-inclusive prices.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub discount_tax_compensation_amount: Option<Decimal>,
            /// `discount_tax_compensation_amount` in base currency.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_discount_tax_compensation_amount: Option<Decimal>,
            /// The same for the shipping discount.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shipping_discount_tax_compensation_amount: Option<Decimal>,
            /// Base twin of the above (Magento's truncated column name).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_shipping_discount_tax_compensation_amnt: Option<Decimal>,
            /// Total quantity on the document.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub total_qty: Option<Decimal>,
            /// Order address id used for billing.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub billing_address_id: Option<u64>,
            /// Order address id used for shipping.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shipping_address_id: Option<u64>,
            /// Lines, dummy lines included; see [`SalesDocument::accounting_items`].
            pub items: Vec<DocumentItem>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl SalesDocument for $name {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn entity_id(&self) -> u64 {
                self.entity_id
            }
            fn increment_id(&self) -> &str {
                &self.increment_id
            }
            fn store_id(&self) -> u32 {
                self.store_id
            }
            fn document_currency(&self) -> &str {
                &self.order_currency_code
            }
            fn base_currency(&self) -> &str {
                &self.base_currency_code
            }
            fn base_to_order_rate(&self) -> Decimal {
                self.base_to_order_rate
            }
            fn items(&self) -> &[DocumentItem] {
                &self.items
            }
        }
    };
}

sales_document! {
    /// An invoice (`Magento\Sales\Api\Data\InvoiceInterface`).
    pub struct InvoiceDocument ("invoice") {
        /// Open, paid or canceled.
        pub state: InvoiceState,
    }
}

sales_document! {
    /// A credit memo (`Magento\Sales\Api\Data\CreditmemoInterface`). `grand_total` already
    /// includes `+adjustment_positive - adjustment_negative`.
    pub struct CreditMemoDocument ("creditmemo") {
        /// Open, refunded or canceled.
        pub state: CreditMemoState,
        /// The invoice refunded; `None` for an offline refund not tied to an invoice, which Sage
        /// must then allocate by customer instead of by invoice.
        #[serde(default)]
        pub invoice_id: Option<u64>,
        /// `adjustment_positive - adjustment_negative`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adjustment: Option<Decimal>,
        /// `adjustment` in base currency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub base_adjustment: Option<Decimal>,
        /// Extra amount refunded ("Adjustment Refund" in the admin), e.g. goodwill.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adjustment_positive: Option<Decimal>,
        /// `adjustment_positive` in base currency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub base_adjustment_positive: Option<Decimal>,
        /// Amount withheld from the refund ("Adjustment Fee"), e.g. a restocking fee.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adjustment_negative: Option<Decimal>,
        /// `adjustment_negative` in base currency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub base_adjustment_negative: Option<Decimal>,
    }
}

impl CreditMemoDocument {
    /// Adjustment refund in order currency, zero when Magento left it empty.
    pub fn adjustment_refund(&self) -> Decimal {
        self.adjustment_positive.unwrap_or_default()
    }

    /// Adjustment fee in order currency (a positive number that reduces the refund), zero when
    /// Magento left it empty.
    pub fn adjustment_fee(&self) -> Decimal {
        self.adjustment_negative.unwrap_or_default()
    }

    /// True for a refund without a parent invoice (offline refund).
    pub fn is_unlinked_refund(&self) -> bool {
        self.invoice_id.is_none()
    }
}

/// A postal address: an order address (region as a string) or a customer address-book entry
/// (region as an object in Magento REST; decoded to its name and code here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawAddress")]
pub struct Address {
    /// Order address id (order addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<u64>,
    /// Address-book id (customer addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `billing` or `shipping` on order addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// Company; its presence usually means a B2B customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Street lines.
    pub street: Vec<String>,
    /// City.
    pub city: String,
    /// Region name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Region code (e.g. `MI`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
    /// Postcode (some countries have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2 country.
    pub country_id: String,
    /// VAT number entered on the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
    /// Telephone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// E-mail stored on the address (order addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Address-book flag: default billing address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_billing: Option<bool>,
    /// Address-book flag: default shipping address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_shipping: Option<bool>,
}

/// Wire form of [`Address`], before the region is normalised.
#[derive(Deserialize)]
struct RawAddress {
    #[serde(default)]
    entity_id: Option<u64>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    address_type: Option<String>,
    firstname: String,
    lastname: String,
    #[serde(default)]
    company: Option<String>,
    street: Vec<String>,
    city: String,
    #[serde(default)]
    region: Option<Value>,
    #[serde(default)]
    region_code: Option<String>,
    #[serde(default)]
    postcode: Option<String>,
    country_id: String,
    #[serde(default)]
    vat_id: Option<String>,
    #[serde(default)]
    telephone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    default_billing: Option<bool>,
    #[serde(default)]
    default_shipping: Option<bool>,
}

impl From<RawAddress> for Address {
    fn from(raw: RawAddress) -> Address {
        let (region, nested_code) = match raw.region {
            Some(Value::String(name)) => (Some(name), None),
            Some(Value::Object(obj)) => {
                let text = |key: &str| {
                    obj.get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                (text("region"), text("region_code"))
            }
            _ => (None, None),
        };
        Address {
            entity_id: raw.entity_id,
            id: raw.id,
            address_type: raw.address_type,
            firstname: raw.firstname,
            lastname: raw.lastname,
            company: raw.company.filter(|c| !c.trim().is_empty()),
            street: raw.street,
            city: raw.city,
            region,
            region_code: raw.region_code.or(nested_code),
            postcode: raw.postcode,
            country_id: raw.country_id,
            vat_id: raw.vat_id.filter(|v| !v.trim().is_empty()),
            telephone: raw.telephone,
            email: raw.email,
            default_billing: raw.default_billing,
            default_shipping: raw.default_shipping,
        }
    }
}

impl Address {
    /// "First Last", the contact name when there is no company.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.firstname.trim(), self.lastname.trim())
            .trim()
            .to_owned()
    }
}

/// The order's payment (`OrderPaymentInterface`), reduced to what decides the accounting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPayment {
    /// Method code, e.g. `checkmo`, `banktransfer`, `purchaseorder`, `stripe_payments`.
    pub method: String,
    /// Customer's purchase-order number (method `purchaseorder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub po_number: Option<String>,
    /// Last gateway transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trans_id: Option<String>,
}

/// An order line (`OrderItemInterface`), used to resolve what document lines do not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Order item id; document lines point here with `order_item_id`.
    pub item_id: u64,
    /// Composite parent line, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_item_id: Option<u64>,
    /// Catalog product id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<u64>,
    /// Product type (`simple`, `configurable`, `bundle`, ...).
    pub product_type: String,
    /// SKU.
    pub sku: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ordered quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty_ordered: Option<Decimal>,
    /// Tax rate in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_percent: Option<Decimal>,
    /// Name of the product's Magento tax class when the event was built ("Taxable Goods",
    /// "Exempt", ...). Magento's order item does not store it; the module resolves it
    /// from the product. Absent from older module versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_class: Option<String>,
}

/// One of Magento's applied taxes (`OrderTaxDetailsAppliedTaxInterface` as REST renders it
/// in `extension_attributes.applied_taxes` / `item_applied_taxes[].applied_taxes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedTax {
    /// Magento's tax rate code (e.g. "GB-VAT-20", "FR-IOSS-20").
    pub code: String,
    /// Title shown to the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Percentage of the rate.
    pub percent: Decimal,
    /// Tax charged at this rate, in order currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
    /// Tax charged at this rate, in base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_amount: Option<Decimal>,
}

/// The store view's tax configuration when the event was built (Magento config paths
/// `tax/calculation/*`). Every field is optional: older module versions send none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaxConfig {
    /// "Tax Calculation Based On": `shipping`, `billing` or `origin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub based_on: Option<String>,
    /// Catalog prices include tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_includes_tax: Option<bool>,
    /// Shipping prices include tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_includes_tax: Option<bool>,
    /// Tax is applied after the discount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_after_discount: Option<bool>,
    /// Discounts are applied to prices including tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_tax: Option<bool>,
}

/// The order an invoice or credit memo belongs to (`OrderInterface`, possibly trimmed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderContext {
    /// Order entity id.
    pub entity_id: u64,
    /// Order number shown to people.
    pub increment_id: String,
    /// Store view of the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<u32>,
    /// When the order was placed (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Base (website) currency.
    pub base_currency_code: String,
    /// Order currency.
    pub order_currency_code: String,
    /// order amount = base amount x rate.
    pub base_to_order_rate: Decimal,
    /// Registered customer id; `None` for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<u64>,
    /// Guest checkout (Magento sends 0/1).
    #[serde(with = "flag")]
    pub customer_is_guest: bool,
    /// E-mail given at checkout; the identity of a guest.
    pub customer_email: String,
    /// First name on the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_firstname: Option<String>,
    /// Last name on the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_lastname: Option<String>,
    /// Tax / VAT number captured at checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_taxvat: Option<String>,
    /// Customer group (0 = not logged in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_group_id: Option<u32>,
    /// Billing address.
    pub billing_address: Address,
    /// Shipping address, when the module put it at the top level (see
    /// [`OrderContext::effective_shipping_address`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    /// Payment method facts.
    pub payment: OrderPayment,
    /// Order lines, when sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<OrderItem>,
    /// Magento extension attributes, kept as JSON (REST puts the shipping address here,
    /// and the applied taxes, see [`OrderContext::applied_taxes_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_attributes: Option<Value>,
    /// The store view's tax configuration; absent from older module versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_config: Option<TaxConfig>,
    /// The order's invoices, as they are when the document is sent; absent from older
    /// module versions. A credit memo without `invoice_id` (Magento's "Refund Offline"
    /// from the order page) is linked through these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invoices: Vec<OrderInvoice>,
}

/// One invoice of the order (`order.invoices[]`), in the order context of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderInvoice {
    /// Invoice entity id (what a credit memo's `invoice_id` would name).
    pub entity_id: u64,
    /// Invoice number shown to people.
    pub increment_id: String,
    /// When the invoice was created (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Invoice grand total, order currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grand_total: Option<Decimal>,
    /// Invoice grand total, base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_grand_total: Option<Decimal>,
    /// Invoice state (1 open, 2 paid, 3 canceled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InvoiceState>,
}

impl OrderContext {
    /// The order's invoices a credit memo can be set against, oldest first: canceled ones
    /// left out, ordered by creation time, then entity id.
    pub fn invoices_oldest_first(&self) -> Vec<&OrderInvoice> {
        let mut out: Vec<&OrderInvoice> = self
            .invoices
            .iter()
            .filter(|i| i.state != Some(InvoiceState::Canceled))
            .collect();
        out.sort_by_key(|i| (i.created_at, i.entity_id));
        out
    }
}

impl OrderContext {
    /// True for a guest order (no Magento customer account).
    pub fn is_guest(&self) -> bool {
        self.customer_is_guest || self.customer_id.is_none()
    }

    /// Key of the party the document is billed to: `customer:<id>` for a registered customer,
    /// `guest:<email>` (trimmed, lower-case) for a guest, because a guest has no id and the same
    /// person may check out several times as a guest.
    pub fn customer_key(&self) -> String {
        match self.customer_id {
            Some(id) if !self.customer_is_guest => format!("customer:{id}"),
            _ => format!("guest:{}", normalise_email(&self.customer_email)),
        }
    }

    /// The order line with this id.
    pub fn order_item(&self, item_id: u64) -> Option<&OrderItem> {
        self.items.iter().find(|i| i.item_id == item_id)
    }

    /// The shipping address: the top-level `shipping_address`, else the first shipping
    /// assignment's address as Magento REST returns it. `None` for virtual orders.
    pub fn effective_shipping_address(&self) -> Option<Address> {
        if let Some(a) = &self.shipping_address {
            return Some(a.clone());
        }
        let address = self
            .extension_attributes
            .as_ref()?
            .get("shipping_assignments")?
            .as_array()?
            .iter()
            .find_map(|a| a.get("shipping")?.get("address"))?;
        serde_json::from_value(address.clone()).ok()
    }

    /// Tax rate of a document line: the line's own `tax_percent`, else its order line's.
    pub fn tax_percent_for(&self, item: &DocumentItem) -> Option<Decimal> {
        item.tax_percent
            .or_else(|| self.order_item(item.order_item_id)?.tax_percent)
    }

    /// Product type of a document line: the line's own `product_type`, else its order line's.
    pub fn product_type_for<'a>(&'a self, item: &'a DocumentItem) -> Option<&'a str> {
        item.product_type.as_deref().or_else(|| {
            self.order_item(item.order_item_id)
                .map(|o| o.product_type.as_str())
        })
    }

    /// Product tax class name of a document line, from its order line.
    pub fn tax_class_for(&self, item: &DocumentItem) -> Option<&str> {
        self.order_item(item.order_item_id)?
            .tax_class
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// Magento's applied taxes of a document line: the `item_applied_taxes` entry of type
    /// `product` whose `item_id` is the line's order item. Unparseable entries are ignored.
    pub fn applied_taxes_for(&self, item: &DocumentItem) -> Vec<AppliedTax> {
        self.item_applied_taxes(|entry| {
            entry.get("type").and_then(Value::as_str) == Some("product")
                && entry.get("item_id").and_then(json_u64) == Some(item.order_item_id)
        })
    }

    /// Magento's applied taxes on shipping: the `item_applied_taxes` entries of type
    /// `shipping`. Unparseable entries are ignored.
    pub fn shipping_applied_taxes(&self) -> Vec<AppliedTax> {
        self.item_applied_taxes(|entry| {
            entry.get("type").and_then(Value::as_str) == Some("shipping")
        })
    }

    fn item_applied_taxes(&self, select: impl Fn(&Value) -> bool) -> Vec<AppliedTax> {
        let Some(entries) = self
            .extension_attributes
            .as_ref()
            .and_then(|e| e.get("item_applied_taxes"))
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|e| select(e))
            .filter_map(|e| e.get("applied_taxes")?.as_array())
            .flatten()
            .filter_map(|t| serde_json::from_value::<AppliedTax>(t.clone()).ok())
            .collect()
    }

    /// Composite parent (order item id) of a document line, from the line or its order line.
    pub fn parent_item_id_for(&self, item: &DocumentItem) -> Option<u64> {
        item.parent_item_id
            .or_else(|| self.order_item(item.order_item_id)?.parent_item_id)
    }
}

/// An id Magento may render as a number or a numeric string.
fn json_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// Payload of `invoice.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceSnapshot {
    /// The invoice as Magento held it when it was created.
    pub invoice: InvoiceDocument,
    /// Its order.
    pub order: OrderContext,
}

/// Payment facts of an `invoice.paid` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentFacts {
    /// Magento payment method code.
    pub method: String,
    /// ISO code of the currency `amount_paid` was captured in (the order currency); absent
    /// from older modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Amount paid in order currency.
    pub amount_paid: Decimal,
    /// Amount paid in base currency.
    pub base_amount_paid: Decimal,
    /// Gateway transaction id; `None` for offline methods.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// When the payment was captured.
    pub paid_at: DateTime<Utc>,
}

/// Payload of `invoice.paid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoicePaidSnapshot {
    /// The invoice after payment (state paid).
    pub invoice: InvoiceDocument,
    /// Its order.
    pub order: OrderContext,
    /// What was paid.
    pub payment: PaymentFacts,
}

/// Payload of `creditmemo.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditMemoSnapshot {
    /// The credit memo as Magento held it when it was created.
    pub creditmemo: CreditMemoDocument,
    /// Its order.
    pub order: OrderContext,
}

/// Payload of `invoice.canceled`: an invoice canceled before capture (`Invoice::cancel()`, from
/// state 1 open) or voided after it (`Invoice::void()`, from state 2 paid). Magento leaves both in
/// state 3; `previous_state` tells them apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceCanceledSnapshot {
    /// The invoice after the cancellation (state canceled).
    pub invoice: InvoiceDocument,
    /// Its order.
    pub order: OrderContext,
    /// The state the invoice left: open (canceled before capture) or paid (voided).
    pub previous_state: InvoiceState,
    /// When Magento canceled it (UTC).
    pub canceled_at: DateTime<Utc>,
}

impl InvoiceCanceledSnapshot {
    /// True when money had been captured: the invoice was voided from state paid.
    pub fn was_paid(&self) -> bool {
        self.previous_state == InvoiceState::Paid
    }
}

/// Payload of `creditmemo.refunded` and `creditmemo.canceled`: a credit memo that was pending at
/// the gateway (state 1 open) reached state 2 refunded or state 3 canceled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditMemoStateSnapshot {
    /// The credit memo in its new state.
    pub creditmemo: CreditMemoDocument,
    /// Its order.
    pub order: OrderContext,
    /// The state it left (open, for both events today).
    pub previous_state: CreditMemoState,
    /// When the state changed in Magento (UTC).
    pub changed_at: DateTime<Utc>,
}

/// Currency and party accessors that every sales snapshot offers the same way.
macro_rules! snapshot_accessors {
    ($name:ident, $doc:ident) => {
        impl $name {
            /// Party key of the document (see [`OrderContext::customer_key`]).
            pub fn customer_key(&self) -> String {
                self.order.customer_key()
            }
            /// Currency of the document amounts.
            pub fn document_currency(&self) -> &str {
                self.$doc.document_currency()
            }
            /// Base currency of the `base_*` amounts.
            pub fn base_currency(&self) -> &str {
                self.$doc.base_currency()
            }
            /// Magento's `base_to_order_rate` of the document.
            pub fn base_to_order_rate(&self) -> Decimal {
                self.$doc.base_to_order_rate()
            }
            /// Stable key of the document (see [`SalesDocument::document_key`]).
            pub fn document_key(&self) -> String {
                self.$doc.document_key()
            }
        }
    };
}

snapshot_accessors!(InvoiceSnapshot, invoice);
snapshot_accessors!(InvoicePaidSnapshot, invoice);
snapshot_accessors!(CreditMemoSnapshot, creditmemo);
snapshot_accessors!(InvoiceCanceledSnapshot, invoice);
snapshot_accessors!(CreditMemoStateSnapshot, creditmemo);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn order(extra: Value) -> OrderContext {
        let mut o = json!({
            "entity_id": 1, "increment_id": "000000001",
            "base_currency_code": "GBP", "order_currency_code": "GBP", "base_to_order_rate": 1,
            "customer_is_guest": 1, "customer_email": "a@example.com",
            "billing_address": {"firstname": "A", "lastname": "B", "street": ["1 Road"],
                                "city": "Leeds", "country_id": "GB"},
            "payment": {"method": "checkmo"},
            "items": [
                {"item_id": 16, "product_type": "simple", "sku": "S1", "tax_class": " Exempt "},
                {"item_id": 18, "product_type": "simple", "sku": "S2"}
            ]
        });
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(extra.clone());
        }
        serde_json::from_value(o).unwrap()
    }

    fn line(order_item_id: u64) -> DocumentItem {
        serde_json::from_value(json!({
            "order_item_id": order_item_id, "sku": "S", "name": "N", "qty": 1,
            "price": 10, "base_price": 10
        }))
        .unwrap()
    }

    #[test]
    fn tax_class_comes_from_the_order_line() {
        let o = order(json!({}));
        assert_eq!(o.tax_class_for(&line(16)), Some("Exempt"));
        assert_eq!(o.tax_class_for(&line(18)), None);
        assert_eq!(o.tax_class_for(&line(99)), None);
    }

    #[test]
    fn applied_taxes_in_magento_rest_shape() {
        // Shape of oca-order-1.json's extension attributes, plus a shipping entry and
        // entries that must be ignored (bad percent, wrong item, missing list).
        let o = order(json!({"extension_attributes": {
            "applied_taxes": [{"code": "GB-20", "title": "VAT", "percent": 20, "amount": 3, "base_amount": 3}],
            "item_applied_taxes": [
                {"type": "product", "item_id": 16, "applied_taxes": [
                    {"code": "GB-20", "title": "VAT", "percent": 20.0, "amount": 2.5, "base_amount": 2.5},
                    {"code": "broken", "percent": "twenty"}
                ]},
                {"type": "product", "item_id": "18", "applied_taxes": [
                    {"code": "FR-IOSS-20", "percent": "20.0000"}
                ]},
                {"type": "product", "item_id": 99},
                {"type": "shipping", "item_id": null, "applied_taxes": [
                    {"code": "GB-20", "percent": 20, "amount": 0.5}
                ]}
            ]
        }}));
        let t = o.applied_taxes_for(&line(16));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].code, "GB-20");
        assert_eq!(t[0].title.as_deref(), Some("VAT"));
        assert_eq!(t[0].percent, dec!(20));
        assert_eq!(t[0].amount, Some(dec!(2.5)));
        assert_eq!(t[0].base_amount, Some(dec!(2.5)));
        let t = o.applied_taxes_for(&line(18));
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].code.as_str(), t[0].amount), ("FR-IOSS-20", None));
        let s = o.shipping_applied_taxes();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].amount, Some(dec!(0.5)));
        // Without extension attributes: nothing, not an error.
        let bare = order(json!({}));
        assert!(bare.applied_taxes_for(&line(16)).is_empty());
        assert!(bare.shipping_applied_taxes().is_empty());
    }

    #[test]
    fn order_invoices_are_optional_and_sorted_oldest_first() {
        assert!(order(json!({})).invoices.is_empty());
        let o = order(json!({"invoices": [
            {"entity_id": 9, "increment_id": "000000009", "created_at": "2026-06-05 10:00:00",
             "grand_total": "30.00", "base_grand_total": "30.00", "state": 2},
            {"entity_id": 7, "increment_id": "000000007", "created_at": "2026-06-01 10:00:00",
             "grand_total": "60.00", "state": 1},
            {"entity_id": 8, "increment_id": "000000008", "created_at": "2026-06-02 10:00:00",
             "state": 3}
        ]}));
        let ids: Vec<u64> = o
            .invoices_oldest_first()
            .iter()
            .map(|i| i.entity_id)
            .collect();
        // 8 is canceled; 7 is older than 9.
        assert_eq!(ids, vec![7, 9]);
        assert_eq!(o.invoices[0].grand_total, Some(dec!(30.00)));
    }

    #[test]
    fn tax_config_is_optional_field_by_field() {
        assert_eq!(order(json!({})).tax_config, None);
        let o = order(json!({"tax_config": {"based_on": "billing", "price_includes_tax": true}}));
        let c = o.tax_config.unwrap();
        assert_eq!(c.based_on.as_deref(), Some("billing"));
        assert_eq!(c.price_includes_tax, Some(true));
        assert_eq!(c.apply_after_discount, None);
        let o = order(json!({"tax_config": {}}));
        assert_eq!(o.tax_config, Some(TaxConfig::default()));
    }
}
