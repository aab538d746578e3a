//! Stock items and their stock movements.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn stock_item_quantity_moves_only_through_movements() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let item = json!({"stock_item": {
        "item_code": "MUG-ENAMEL", "description": "Enamel Mug",
        "sales_ledger_account_id": api.ledger("4000"), "purchase_ledger_account_id": api.ledger("5000"),
        "cost_price": "3.25", "quantity_in_stock": 99
    }});
    let r = api.post("/stock_items", item.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.id();
    assert_eq!(r.body["catalog_item_type"]["id"], json!("STOCK_ITEM"));
    assert_eq!(
        r.body["quantity_in_stock"],
        json!("0.00"),
        "only movements change stock"
    );

    let mut long = item.clone();
    long["stock_item"]["item_code"] = json!("C".repeat(31));
    api.post("/stock_items", long)
        .await
        .assert_422("stock_item.item_code");
    let mut no_purchase = item.clone();
    no_purchase["stock_item"]
        .as_object_mut()
        .unwrap()
        .remove("purchase_ledger_account_id");
    api.post("/stock_items", no_purchase)
        .await
        .assert_422("stock_item.purchase_ledger_account_id");

    let movement = |item_id: &str, quantity: &str| {
        json!({"stock_movement": {"stock_item_id": item_id, "date": "2026-04-01",
            "quantity": quantity, "cost_price": "3.25", "details": "Opening stock of MUG-ENAMEL"}})
    };
    let r = api.post("/stock_movements", movement(&id, "40")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["stock_item"]["id"], json!(id));
    api.post("/stock_movements", movement(&id, "0"))
        .await
        .assert_422("stock_movement.quantity");
    api.post("/stock_movements", movement("nope", "1"))
        .await
        .assert_422("stock_movement.stock_item_id");
    let mut no_details = movement(&id, "1");
    no_details["stock_movement"]
        .as_object_mut()
        .unwrap()
        .remove("details");
    api.post("/stock_movements", no_details)
        .await
        .assert_422("stock_movement.details");

    let r = api.get(&format!("/stock_items/{id}")).await;
    assert_eq!(r.body["quantity_in_stock"], json!("40.00"));
    let r = api
        .put(
            &format!("/stock_items/{id}"),
            json!({"stock_item": {"description": "Enamel Mug, cream"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["quantity_in_stock"],
        json!("40.00"),
        "an update keeps the stock"
    );
    let r = api
        .get(&format!("/stock_movements?stock_item_id={id}"))
        .await;
    assert_eq!(r.body["$total"], json!(1));
    let r = api.get("/stock_items?search=MUG-ENAMEL").await;
    assert_eq!(r.body["$items"].as_array().map(Vec::len), Some(1));
    sandbox.shutdown().await;
}
