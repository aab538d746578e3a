//! Master data: customers and products, as carried in `customer.saved` and `product.saved`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::documents::Address;
use crate::serde_util::{magento_time, opt_id_lenient};

/// A customer account (`Magento\Customer\Api\Data\CustomerInterface`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Customer id; the same value orders carry as `customer_id`.
    pub id: u64,
    /// Account e-mail.
    pub email: String,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// Customer group (retail, wholesale, ...).
    pub group_id: u32,
    /// Website the account belongs to (accounts are per website unless shared globally).
    pub website_id: u32,
    /// Store view the account was created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<u32>,
    /// Tax / VAT number on the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxvat: Option<String>,
    /// When the account was created (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<DateTime<Utc>>,
    /// Id of the default billing address (REST prints it as a string).
    #[serde(
        default,
        deserialize_with = "opt_id_lenient::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_billing: Option<u64>,
    /// Id of the default shipping address.
    #[serde(
        default,
        deserialize_with = "opt_id_lenient::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_shipping: Option<u64>,
    /// Address book.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

impl Customer {
    /// Party key, equal to [`crate::OrderContext::customer_key`] of this customer's orders.
    pub fn customer_key(&self) -> String {
        format!("customer:{}", self.id)
    }

    /// The default billing address: the one whose id is `default_billing`, else the one flagged
    /// `default_billing: true` (Magento sets both, but partial payloads may carry only one).
    pub fn default_billing_address(&self) -> Option<&Address> {
        self.default_billing
            .and_then(|id| self.addresses.iter().find(|a| a.id == Some(id)))
            .or_else(|| {
                self.addresses
                    .iter()
                    .find(|a| a.default_billing == Some(true))
            })
    }

    /// The default shipping address, found the same way.
    pub fn default_shipping_address(&self) -> Option<&Address> {
        self.default_shipping
            .and_then(|id| self.addresses.iter().find(|a| a.id == Some(id)))
            .or_else(|| {
                self.addresses
                    .iter()
                    .find(|a| a.default_shipping == Some(true))
            })
    }

    /// "First Last".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.firstname.trim(), self.lastname.trim())
            .trim()
            .to_owned()
    }
}

/// Magento product type (`type_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductType {
    /// A stocked, shippable item.
    Simple,
    /// A non-shippable item (service, warranty).
    Virtual,
    /// A digital download.
    Downloadable,
    /// A container whose sellable variant is a simple child.
    Configurable,
    /// A kit of child items.
    Bundle,
    /// A set of independent simple products shown together; has no price or tax class itself.
    Grouped,
}

impl ProductType {
    /// The Magento `type_id`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProductType::Simple => "simple",
            ProductType::Virtual => "virtual",
            ProductType::Downloadable => "downloadable",
            ProductType::Configurable => "configurable",
            ProductType::Bundle => "bundle",
            ProductType::Grouped => "grouped",
        }
    }

    /// True for types with nothing to ship or stock (a Sage "service" rather than a "product").
    pub const fn is_service(self) -> bool {
        matches!(self, ProductType::Virtual | ProductType::Downloadable)
    }

    /// True for container types whose invoiced amounts sit on child lines or on the parent
    /// depending on configuration; Sage items are usually created for the children.
    pub const fn is_container(self) -> bool {
        matches!(
            self,
            ProductType::Configurable | ProductType::Bundle | ProductType::Grouped
        )
    }
}

/// Product status (`Magento\Catalog\Model\Product\Attribute\Source\Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum ProductStatus {
    /// 1: enabled.
    Enabled,
    /// 2: disabled.
    Disabled,
}

impl TryFrom<u8> for ProductStatus {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(ProductStatus::Enabled),
            2 => Ok(ProductStatus::Disabled),
            other => Err(format!("unknown product status {other}")),
        }
    }
}

impl From<ProductStatus> for u8 {
    fn from(s: ProductStatus) -> u8 {
        match s {
            ProductStatus::Enabled => 1,
            ProductStatus::Disabled => 2,
        }
    }
}

/// One EAV attribute value as Magento REST lists it in `custom_attributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomAttribute {
    /// Attribute code, e.g. `tax_class_id`.
    pub attribute_code: String,
    /// Value as Magento printed it (usually a string).
    #[serde(default)]
    pub value: Value,
}

/// A catalog product (`Magento\Catalog\Api\Data\ProductInterface`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Product entity id.
    pub id: u64,
    /// SKU; what order lines and Sage items are matched on.
    pub sku: String,
    /// Name in the event's store scope.
    pub name: String,
    /// Product type.
    pub type_id: ProductType,
    /// Catalog price in base currency; containers may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Enabled or disabled.
    pub status: ProductStatus,
    /// Tax class, when the module copied it to the top level; see [`Product::tax_class_id`].
    #[serde(
        default,
        rename = "tax_class_id",
        deserialize_with = "opt_id_lenient::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_level_tax_class_id: Option<u64>,
    /// Visibility (1 not visible individually ... 4 catalog and search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<u32>,
    /// When the product was created (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update (UTC).
    #[serde(
        default,
        with = "magento_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<DateTime<Utc>>,
    /// EAV attributes as Magento REST lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_attributes: Vec<CustomAttribute>,
    /// Magento extension attributes (website ids, stock item, ...), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_attributes: Option<Value>,
}

impl Product {
    /// Stable key of the product, `product:<id>`; the id survives SKU renames.
    pub fn product_key(&self) -> String {
        format!("product:{}", self.id)
    }

    /// The value of a custom attribute.
    pub fn custom_attribute(&self, code: &str) -> Option<&Value> {
        self.custom_attributes
            .iter()
            .find(|a| a.attribute_code == code)
            .map(|a| &a.value)
    }

    /// The product tax class id: the top-level field when present, else the `tax_class_id`
    /// custom attribute where Magento REST keeps it. `Some(0)` is Magento's "None" class.
    pub fn tax_class_id(&self) -> Option<u64> {
        self.top_level_tax_class_id
            .or_else(|| match self.custom_attribute("tax_class_id")? {
                Value::String(s) => s.trim().parse().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
    }

    /// True when the product is enabled.
    pub fn is_enabled(&self) -> bool {
        self.status == ProductStatus::Enabled
    }

    /// The stock facts in `extension_attributes.stock_item`, when the module sent them.
    /// Read leniently: a missing or unreadable `manage_stock` counts as not managed, a
    /// missing or unreadable `qty` as unknown.
    pub fn stock(&self) -> Option<StockFacts> {
        let item = self.extension_attributes.as_ref()?.get("stock_item")?;
        if !item.is_object() {
            return None;
        }
        Some(StockFacts {
            manage_stock: item
                .get("manage_stock")
                .and_then(lenient_bool)
                .unwrap_or(false),
            qty: item.get("qty").and_then(lenient_decimal),
            is_in_stock: item.get("is_in_stock").and_then(lenient_bool),
        })
    }

    /// The `cost` attribute (Magento's cost price in base currency), when set and
    /// readable as a number.
    pub fn cost(&self) -> Option<Decimal> {
        self.custom_attribute("cost").and_then(lenient_decimal)
    }
}

/// What Magento knows about a product's stock (`extension_attributes.stock_item`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockFacts {
    /// Whether Magento tracks the quantity of this product.
    pub manage_stock: bool,
    /// Quantity on hand, when sent.
    pub qty: Option<Decimal>,
    /// Magento's stock status, when sent.
    pub is_in_stock: Option<bool>,
}

/// A boolean as Magento prints it: `true`, `1`, `"1"`, `"true"` (and their negatives).
fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A decimal as Magento prints it: a number or a numeric string (`"12.5000"`).
fn lenient_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) if !s.trim().is_empty() => s.trim().parse().ok(),
        _ => None,
    }
}

/// Payload of `customer.saved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSnapshot {
    /// The customer after the save.
    pub customer: Customer,
}

/// Payload of `product.saved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSnapshot {
    /// The product after the save.
    pub product: Product,
}
