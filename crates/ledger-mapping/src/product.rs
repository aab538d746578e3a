//! Magento catalog products → Sage products and services.

use crate::error::{reasons, MappingError};
use crate::money::money_json;
use crate::rules::{clean_description, fit_reference, ITEM_CODE_MAX, PRODUCT_DESCRIPTION_MAX};
use crate::settings::MerchantSettings;
use ledger_events::{ProductSnapshot, ProductType};
use serde_json::{json, Map, Value};

/// A ready-to-send `products` or `services` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPlan {
    /// `products` (stocked goods) or `services` (virtual / downloadable).
    pub resource: &'static str,
    /// `product` or `service`.
    pub root: &'static str,
    /// The fields inside the root object (no `idempotency_id`: the client adds it).
    pub body: Value,
    /// The `item_code` sent (the SKU), which is what later look-ups search by.
    pub item_code: String,
}

impl ProductPlan {
    /// The complete request body, `{ <root>: <body> }`.
    pub fn request_body(&self) -> Value {
        let mut outer = Map::new();
        outer.insert(self.root.to_owned(), self.body.clone());
        Value::Object(outer)
    }
}

/// Maps a `product.saved` snapshot to a Sage product (simple) or service (virtual,
/// downloadable).
///
/// Containers (configurable, bundle, grouped) are `Skipped { reason:
/// "composite_product" }`: their sellable units are the child products, which sync on
/// their own. With product sync off everything is `Skipped { reason:
/// "product_sync_disabled" }`. Products need a purchase ledger account in Sage even when
/// never bought (quirk 9), so `purchase_ledger_account_id` is required for them; services
/// only need the sales ledger. The description is the name with entities decoded
/// (quirk 17); the item code is the SKU; the default sales tax rate comes from the tax
/// class only when the tax map decides it; the catalog price (base currency) is sent
/// when the merchant configured Sage's price-type id.
pub fn map_product(
    snapshot: &ProductSnapshot,
    settings: &MerchantSettings,
) -> Result<ProductPlan, MappingError> {
    let product = &snapshot.product;
    if !settings.product_sync {
        return Err(MappingError::skipped(
            reasons::PRODUCT_SYNC_DISABLED,
            format!("product {} not synced: product sync is off", product.sku),
        ));
    }
    if product.type_id.is_container() {
        return Err(MappingError::skipped(
            reasons::COMPOSITE_PRODUCT,
            format!(
                "{} is a {} product; its children are synced instead",
                product.sku,
                product.type_id.as_str()
            ),
        ));
    }
    let service = product.type_id.is_service();
    let sales_ledger = settings
        .sales_ledger_account_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| MappingError::invalid("sales_ledger_account_id", reasons::MISSING))?;

    let item_code = fit_reference(&product.sku, ITEM_CODE_MAX);
    let mut body = Map::new();
    body.insert(
        "description".into(),
        json!(clean_description(
            &product.name,
            &product.sku,
            PRODUCT_DESCRIPTION_MAX
        )),
    );
    body.insert("item_code".into(), json!(item_code));
    body.insert("sales_ledger_account_id".into(), json!(sales_ledger));
    match product.type_id {
        ProductType::Simple => {
            let purchase = settings
                .purchase_ledger_account_id
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    MappingError::invalid("purchase_ledger_account_id", reasons::MISSING)
                })?;
            body.insert("purchase_ledger_account_id".into(), json!(purchase));
        }
        _ => {
            if let Some(purchase) = settings
                .purchase_ledger_account_id
                .as_deref()
                .filter(|s| !s.trim().is_empty())
            {
                body.insert("purchase_ledger_account_id".into(), json!(purchase));
            }
        }
    }
    if let Some(rate) = product
        .tax_class_id()
        .and_then(|class| settings.tax_rate_id_for_class(&class.to_string()))
    {
        body.insert("sales_tax_rate_id".into(), json!(rate));
    }
    body.insert("active".into(), json!(product.is_enabled()));

    if let Some(price) = product.price {
        if price < rust_decimal::Decimal::ZERO {
            return Err(MappingError::invalid("product.price", reasons::NEGATIVE));
        }
        let includes_tax = settings.catalog_prices_include_tax;
        if service {
            if let Some(type_id) = settings.service_rate_type_id.as_deref() {
                body.insert(
                    "sales_rates".into(),
                    json!([{ "service_rate_type_id": type_id, "rate": money_json(price), "rate_includes_tax": includes_tax }]),
                );
            }
        } else if let Some(type_id) = settings.product_sales_price_type_id.as_deref() {
            body.insert(
                "sales_prices".into(),
                json!([{ "product_sales_price_type_id": type_id, "price": money_json(price), "price_includes_tax": includes_tax }]),
            );
        }
    }

    let (resource, root) = if service {
        ("services", "service")
    } else {
        ("products", "product")
    };
    Ok(ProductPlan {
        resource,
        root,
        body: Value::Object(body),
        item_code,
    })
}
