//! `/products`, `/services`, `/stock_items` and `/stock_movements`.

use super::{dec_field, input_of, merge, require_tax_rate, str_field};
use crate::error::ApiError;
use crate::model::{search_text, timestamp, Business, ItemMeta, MovementMeta, Record, Store};
use crate::money::money_json;
use crate::seed;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Products, services or stock items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Product,
    Service,
    StockItem,
}

impl ItemKind {
    fn root(self) -> &'static str {
        match self {
            ItemKind::Product => "product",
            ItemKind::Service => "service",
            ItemKind::StockItem => "stock_item",
        }
    }

    fn collection(self) -> &'static str {
        match self {
            ItemKind::Product => "products",
            ItemKind::Service => "services",
            ItemKind::StockItem => "stock_items",
        }
    }

    fn store(self, biz: &mut Business) -> &mut Store<ItemMeta> {
        match self {
            ItemKind::Product => &mut biz.products,
            ItemKind::Service => &mut biz.services,
            ItemKind::StockItem => &mut biz.stock_items,
        }
    }
}

fn check(biz: &Business, kind: ItemKind, input: &Map<String, Value>) -> Result<ItemMeta, ApiError> {
    let root = kind.root();
    let description = input
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if description.trim().is_empty() {
        return Err(ApiError::invalid(
            format!("{root}.description"),
            "description: can't be blank",
        ));
    }
    for field in ["sales_ledger_account_id", "purchase_ledger_account_id"] {
        let id = str_field(input, field);
        // Sage requires the purchase ledger on products even for items that
        // are never bought.
        let required = field == "sales_ledger_account_id" || kind != ItemKind::Service;
        match id {
            None if required => {
                return Err(ApiError::invalid(
                    format!("{root}.{field}"),
                    format!("{field}: can't be blank"),
                ));
            }
            Some(id) if biz.ledger_account(id).is_none() => {
                return Err(ApiError::missing_reference(
                    format!("{root}.{field}"),
                    "Couldn't find ledger account.",
                ));
            }
            _ => {}
        }
    }
    for field in ["sales_tax_rate_id", "purchase_tax_rate_id"] {
        if let Some(t) = str_field(input, field) {
            require_tax_rate(t, &format!("{root}.{field}"))?;
        }
    }
    if let Some(s) = str_field(input, "usual_supplier_id") {
        if biz.live_contact(s).is_none() {
            return Err(ApiError::missing_reference(
                format!("{root}.usual_supplier_id"),
                "Couldn't find contact.",
            ));
        }
    }
    Ok(ItemMeta {
        description: description.to_owned(),
        item_code: str_field(input, "item_code").map(str::to_owned),
        active: input.get("active").and_then(Value::as_bool).unwrap_or(true),
        sales_tax_rate: str_field(input, "sales_tax_rate_id").map(str::to_owned),
        input: input.clone(),
    })
}

/// POST /products or /services.
pub(crate) fn create(
    biz: &mut Business,
    kind: ItemKind,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let meta = check(biz, kind, &input_of(root))?;
    let seq = biz.seq();
    let search = search_text([meta.item_code.as_deref(), Some(meta.description.as_str())]);
    let mut rec = Record {
        id: crate::new_id(),
        seq,
        created_at: now,
        updated_at: now,
        json: Map::new(),
        meta,
        key: None,
        search,
    };
    rec.json = render(biz, kind, &rec);
    let out = Value::Object(rec.json.clone());
    kind.store(biz).insert(rec);
    Ok(out)
}

/// PUT /products/{id} or /services/{id}.
pub(crate) fn update(
    biz: &mut Business,
    kind: ItemKind,
    id: &str,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let existing = kind
        .store(biz)
        .get(id)
        .ok_or_else(ApiError::not_found)?
        .clone();
    let meta = check(biz, kind, &merge(&existing.meta.input, root))?;
    let mut rec = existing;
    rec.search = search_text([meta.item_code.as_deref(), Some(meta.description.as_str())]);
    rec.meta = meta;
    rec.updated_at = now;
    rec.json = render(biz, kind, &rec);
    let out = Value::Object(rec.json.clone());
    if let Some(stored) = kind.store(biz).get_mut(id) {
        *stored = rec;
    }
    Ok(out)
}

fn render(biz: &Business, kind: ItemKind, rec: &Record<ItemMeta>) -> Map<String, Value> {
    let input = &rec.meta.input;
    let ledger_link = |field: &str| {
        str_field(input, field)
            .and_then(|id| biz.ledger_account(id))
            .map(|l| {
                seed::link(
                    "ledger_accounts",
                    &l.id,
                    &format!("{} ({})", l.name, l.nominal_code),
                )
            })
            .unwrap_or(Value::Null)
    };
    let tax_link = |field: &str| {
        str_field(input, field)
            .map(seed::tax_rate_link)
            .unwrap_or(Value::Null)
    };
    let prices = |list: &str, amount: &str| -> Value {
        input
            .get(list)
            .and_then(Value::as_array)
            .map(|a| {
                Value::Array(
                    a.iter()
                        .map(|p| {
                            let mut p = p.as_object().cloned().unwrap_or_default();
                            if let Some(d) = dec_field(&p, amount) {
                                p.insert(amount.to_owned(), money_json(d));
                            }
                            Value::Object(p)
                        })
                        .collect(),
                )
            })
            .unwrap_or_else(|| json!([]))
    };
    let catalog_type = match kind {
        ItemKind::Product => str_field(input, "catalog_item_type_id")
            .unwrap_or("NON_STOCK_ITEM")
            .to_owned(),
        ItemKind::Service => "SERVICE".to_owned(),
        ItemKind::StockItem => "STOCK_ITEM".to_owned(),
    };
    let mut out = seed::into_map(json!({
        "id": rec.id,
        "displayed_as": rec.meta.description,
        "$path": format!("/{}/{}", kind.collection(), rec.id),
        "created_at": timestamp(rec.created_at),
        "updated_at": timestamp(rec.updated_at),
        "item_code": rec.meta.item_code,
        "description": rec.meta.description,
        "notes": input.get("notes").cloned().unwrap_or(Value::Null),
        "sales_ledger_account": ledger_link("sales_ledger_account_id"),
        "purchase_ledger_account": ledger_link("purchase_ledger_account_id"),
        "sales_tax_rate": tax_link("sales_tax_rate_id"),
        "purchase_tax_rate": tax_link("purchase_tax_rate_id"),
        "cost_price": dec_field(input, "cost_price").map(money_json).unwrap_or(Value::Null),
        "active": rec.meta.active,
        "catalog_item_type": seed::link("catalog_item_types", &catalog_type, &catalog_type),
        "source_guid": input.get("source_guid").cloned().unwrap_or(Value::Null),
        "purchase_description": input.get("purchase_description").cloned().unwrap_or(Value::Null),
        "usual_supplier": str_field(input, "usual_supplier_id").map(|s| seed::link("contacts", s, s)).unwrap_or(Value::Null),
        "deletable": true,
    }));
    match kind {
        ItemKind::Product => {
            out.insert("sales_prices".into(), prices("sales_prices", "price"));
        }
        ItemKind::StockItem => {
            out.insert("sales_prices".into(), prices("sales_prices", "price"));
            // Only movements change the quantity; what the item was sent is ignored.
            let quantity: rust_decimal::Decimal = biz
                .stock_movements
                .keyed(&rec.id)
                .map(|m| m.meta.quantity)
                .sum();
            out.insert("quantity_in_stock".into(), money_json(quantity));
        }
        ItemKind::Service => {
            out.insert("sales_rates".into(), prices("sales_rates", "rate"));
            out.insert(
                "oss_service".into(),
                input
                    .get("oss_service")
                    .cloned()
                    .unwrap_or(Value::Bool(false)),
            );
        }
    }
    out
}

/// POST /stock_movements: changes a stock item's `quantity_in_stock` by `quantity`.
pub(crate) fn create_movement(
    biz: &mut Business,
    root: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let input = input_of(root);
    let item_id = str_field(&input, "stock_item_id")
        .unwrap_or_default()
        .to_owned();
    let description = match biz.stock_items.get(&item_id) {
        Some(item) => item.meta.description.clone(),
        None => {
            return Err(ApiError::missing_reference(
                "stock_movement.stock_item_id",
                "Couldn't find stock item.",
            ))
        }
    };
    let quantity = dec_field(&input, "quantity").unwrap_or_default();
    if quantity.is_zero() {
        return Err(ApiError::invalid(
            "stock_movement.quantity",
            "quantity: must not be 0",
        ));
    }
    let cost = dec_field(&input, "cost_price").unwrap_or_default();
    if cost.is_sign_negative() {
        return Err(ApiError::invalid(
            "stock_movement.cost_price",
            "cost_price: must be greater than or equal to 0",
        ));
    }
    let details = str_field(&input, "details")
        .unwrap_or_default()
        .trim()
        .to_owned();
    if details.is_empty() {
        return Err(ApiError::invalid(
            "stock_movement.details",
            "details: can't be blank",
        ));
    }
    let date = str_field(&input, "date")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| ApiError::invalid("stock_movement.date", "date: is not a date"))?;
    let id = crate::new_id();
    let json = seed::into_map(json!({
        "id": id,
        "displayed_as": details,
        "$path": format!("/stock_movements/{id}"),
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
        "stock_item": seed::link("stock_items", &item_id, &description),
        "date": date.to_string(),
        "quantity": money_json(quantity),
        "cost_price": money_json(cost),
        "details": details,
        "reference": input.get("reference").cloned().unwrap_or(Value::Null),
    }));
    let seq = biz.seq();
    biz.stock_movements.insert(Record {
        id,
        seq,
        created_at: now,
        updated_at: now,
        json: json.clone(),
        meta: MovementMeta { date, quantity },
        key: Some(item_id.clone()),
        search: String::new(),
    });
    if let Some(item) = biz.stock_items.get(&item_id).cloned() {
        let rendered = render(biz, ItemKind::StockItem, &item);
        if let Some(stored) = biz.stock_items.get_mut(&item_id) {
            stored.json = rendered;
        }
    }
    Ok(Value::Object(json))
}
