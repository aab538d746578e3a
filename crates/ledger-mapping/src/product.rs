//! Magento catalog products → Sage products, services and stock items, and a stock
//! item's opening stock movement.

use crate::error::{reasons, MappingError};
use crate::money::{decimal_json, money_json};
use crate::rules::{
    clean_description, fit_reference, ITEM_CODE_MAX, PRODUCT_DESCRIPTION_MAX, STOCK_ITEM_CODE_MAX,
    STOCK_MOVEMENT_DETAILS_MAX,
};
use crate::settings::MerchantSettings;
use chrono::NaiveDate;
use ledger_events::{Product, ProductSnapshot, ProductType};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// A ready-to-send `products`, `services` or `stock_items` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPlan {
    /// `products` (goods), `services` (virtual / downloadable) or `stock_items` (goods
    /// whose stock Magento manages, with the `stock_items` policy on).
    pub resource: &'static str,
    /// `product`, `service` or `stock_item`.
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
///
/// With `stock_items` on, a simple product whose stock Magento manages
/// ([`is_stock_item`]) becomes a Sage stock item with the same fields, plus its
/// `cost_price` when the `cost` attribute is set. Its quantity is not sent here: Sage
/// changes stock only through movements ([`map_opening_stock`]).
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
    } else if is_stock_item(product, settings) {
        if let Some(cost) = product.cost() {
            if cost < Decimal::ZERO {
                return Err(MappingError::invalid("product.cost", reasons::NEGATIVE));
            }
            body.insert("cost_price".into(), money_json(cost));
        }
        ("stock_items", "stock_item")
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

/// True when the product goes to Sage as a stock item: the merchant syncs products and
/// turned `stock_items` on, the product is simple, Magento manages its stock, and the
/// SKU fits a stock item code ([`STOCK_ITEM_CODE_MAX`]; a longer SKU stays a product,
/// since a cut item code would no longer find the item by SKU).
pub fn is_stock_item(product: &Product, settings: &MerchantSettings) -> bool {
    settings.product_sync
        && settings.stock_items
        && product.type_id == ProductType::Simple
        && product.stock().is_some_and(|s| s.manage_stock)
        && product.sku.chars().count() <= STOCK_ITEM_CODE_MAX
}

/// A ready-to-send `stock_movements` request: a new stock item's opening quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct StockMovementPlan {
    /// The fields inside `stock_movement` (no `idempotency_id`: the client adds it).
    pub body: Value,
}

impl StockMovementPlan {
    /// The complete request body, `{ "stock_movement": <body> }`.
    pub fn request_body(&self) -> Value {
        json!({ "stock_movement": self.body })
    }
}

/// The opening stock movement of a stock item just created in Sage as `stock_item_id`:
/// Magento's quantity on hand, valued at the product's `cost`, dated `date` (the
/// event's day in the books).
///
/// Skipped with `opening_stock_off` when the merchant did not turn `opening_stock` on
/// or the product is not a stock item ([`is_stock_item`]); with `nothing_to_post` when
/// the quantity is missing, zero or negative; with `no_cost_price` when the product has
/// no `cost` (Sage values every movement; the stock item itself is still created).
pub fn map_opening_stock(
    snapshot: &ProductSnapshot,
    settings: &MerchantSettings,
    stock_item_id: &str,
    date: NaiveDate,
) -> Result<StockMovementPlan, MappingError> {
    let product = &snapshot.product;
    if !settings.opening_stock || !is_stock_item(product, settings) {
        return Err(MappingError::skipped(
            reasons::OPENING_STOCK_OFF,
            format!(
                "no opening stock for {}: opening_stock is {} and the product {} a stock item",
                product.sku,
                if settings.opening_stock { "on" } else { "off" },
                if is_stock_item(product, settings) {
                    "is"
                } else {
                    "is not"
                }
            ),
        ));
    }
    let qty = product
        .stock()
        .and_then(|s| s.qty)
        .filter(|q| *q > Decimal::ZERO)
        .ok_or_else(|| {
            MappingError::skipped(
                reasons::NOTHING_TO_POST,
                format!(
                    "no opening stock for {}: Magento has no quantity on hand",
                    product.sku
                ),
            )
        })?;
    let cost = product.cost().ok_or_else(|| {
        MappingError::skipped(
            reasons::NO_COST_PRICE,
            format!(
                "no opening stock for {}: the product has no cost attribute to value {} units at",
                product.sku, qty
            ),
        )
    })?;
    if cost < Decimal::ZERO {
        return Err(MappingError::invalid("product.cost", reasons::NEGATIVE));
    }
    if stock_item_id.trim().is_empty() {
        return Err(MappingError::invalid("stock_item_id", reasons::MISSING));
    }
    Ok(StockMovementPlan {
        body: json!({
            "stock_item_id": stock_item_id,
            "date": date.format("%Y-%m-%d").to_string(),
            "quantity": decimal_json(qty),
            "cost_price": money_json(cost),
            "details": clean_description(
                &format!("Opening stock of {} from Magento", product.sku),
                &product.sku,
                STOCK_MOVEMENT_DETAILS_MAX
            ),
        }),
    })
}
