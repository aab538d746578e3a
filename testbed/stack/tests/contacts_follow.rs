//! Contacts follow the customer, end to end through NATS and the Sage sandbox: a guest who
//! registers keeps the guest's contact (found by e-mail, per currency); a company and VAT
//! number that arrive with a later order update the contact; a VAT number Sage refuses is
//! left off the contact (kept in its notes) and the invoice still lands.

mod common;

use common::{by_reference, publish};

use std::time::Duration;

use ledger_stack::events::{self, Draft};
use ledger_stack::{Merchant, Stack};
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

async fn stack() -> (Stack, TestNats, TestDb) {
    common::stack("contacts-follow", 8).await
}

/// Waits until the sandbox holds an invoice with `reference`; returns all invoices.
async fn wait_invoice(stack: &Stack, merchant: &Merchant, reference: &str) -> Vec<Value> {
    let reached = stack
        .wait_until(WAIT, || {
            stack
                .documents(merchant, "sales_invoices")
                .iter()
                .any(|d| d["reference"].as_str() == Some(reference))
        })
        .await;
    let found = stack.documents(merchant, "sales_invoices");
    assert!(reached, "invoice {reference} not in Sage: {found:#?}");
    found
}

/// Give a duplicate or a late write the chance to appear before counting.
async fn settle_down() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

async fn contacts_db(db: &TestDb) -> PgPool {
    ledger_runtime::db::connect_schema(db.url(), "contacts", 2)
        .await
        .expect("schema pool")
}

/// A billing VAT number on the order (Magento's `billing_address.vat_id`).
fn with_vat(mut draft: Draft, vat: &str) -> Draft {
    draft.value_mut()["payload"]["order"]["billing_address"]["vat_id"] = json!(vat);
    draft
}

/// A `customer.saved` of a customer who just registered with `email`: no addresses yet.
fn registered(merchant: &str, id: u64, email: &str, first: &str, last: &str) -> Draft {
    let mut saved = Draft::from_template(events::CUSTOMER_SAVED, merchant, None);
    let customer = &mut saved.value_mut()["payload"]["customer"];
    customer["id"] = json!(id);
    customer["email"] = json!(email);
    customer["firstname"] = json!(first);
    customer["lastname"] = json!(last);
    customer["addresses"] = json!([]);
    for key in ["default_billing", "default_shipping", "taxvat"] {
        customer.as_object_mut().unwrap().remove(key);
    }
    saved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_who_registers_keeps_one_contact() {
    let (stack, _nats, db) = stack().await;
    let pool = contacts_db(&db).await;

    // 1. Guest order, then the guest registers (customer.saved), then orders again.
    let m = stack.onboard("registers").await.expect("onboard");
    let guest = Draft::invoice("registers", 1).guest("Mia.Hart@Example.com", "Mia", "Hart");
    publish(&stack, &m, &guest).await;
    wait_invoice(&stack, &m, &guest.increment_id()).await;
    let before = stack.documents(&m, "contacts");
    assert_eq!(before.len(), 1, "{before:#?}");
    let guest_reference = before[0]["reference"].as_str().unwrap().to_string();
    assert!(guest_reference.starts_with("GBP"), "{guest_reference}");

    publish(
        &stack,
        &m,
        &registered("registers", 9301, "mia.hart@example.com", "Mia", "Hart"),
    )
    .await;
    // The registration adopts the guest's contact for the customer (no Sage call needed).
    let started = std::time::Instant::now();
    let mut adopted = None;
    while adopted.is_none() && started.elapsed() < WAIT {
        adopted = sqlx::query_scalar::<_, String>(
            "SELECT sage_contact_id FROM contacts
             WHERE merchant_id = $1 AND customer_key = 'customer:9301' AND sage_contact_id IS NOT NULL",
        )
        .bind(&m.id)
        .fetch_optional(&pool)
        .await
        .expect("query");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        adopted.as_ref(),
        before[0]["id"].as_str().map(str::to_string).as_ref(),
        "customer.saved adopts the guest's contact"
    );
    let customer = Draft::invoice("registers", 2).customer(9301, "mia.hart@example.com");
    publish(&stack, &m, &customer).await;
    let invoices = wait_invoice(&stack, &m, &customer.increment_id()).await;
    settle_down().await;
    let contacts = stack.documents(&m, "contacts");
    assert_eq!(contacts.len(), 1, "one contact: {contacts:#?}");
    assert_eq!(
        contacts[0]["reference"], guest_reference,
        "reference kept stable"
    );
    let (a, b) = (
        by_reference(&invoices, &guest.increment_id()),
        by_reference(&invoices, &customer.increment_id()),
    );
    assert_eq!(a["contact"]["id"], b["contact"]["id"]);
    assert_eq!(a["contact"]["id"], contacts[0]["id"]);

    // 2. No customer.saved seen (or seen later): the registered customer's first order
    //    finds the guest contact by e-mail all the same.
    let m2 = stack.onboard("registers-2").await.expect("onboard");
    let guest = Draft::invoice("registers-2", 3).guest("leo@example.com", "Leo", "Park");
    publish(&stack, &m2, &guest).await;
    wait_invoice(&stack, &m2, &guest.increment_id()).await;
    let customer = Draft::invoice("registers-2", 4).customer(9302, "leo@example.com");
    publish(&stack, &m2, &customer).await;
    let invoices = wait_invoice(&stack, &m2, &customer.increment_id()).await;
    settle_down().await;
    let contacts = stack.documents(&m2, "contacts");
    assert_eq!(contacts.len(), 1, "one contact: {contacts:#?}");
    assert_eq!(invoices[0]["contact"]["id"], invoices[1]["contact"]["id"]);
    // A later guest checkout with the same e-mail (logged out) stays on that contact too.
    let again = Draft::invoice("registers-2", 5).guest("leo@example.com", "Leo", "Park");
    publish(&stack, &m2, &again).await;
    let invoices = wait_invoice(&stack, &m2, &again.increment_id()).await;
    settle_down().await;
    assert_eq!(stack.documents(&m2, "contacts").len(), 1);
    assert!(invoices
        .iter()
        .all(|i| i["contact"]["id"] == contacts[0]["id"]));

    // 3. Another currency is another contact (Sage locks a contact's currency).
    let eur = Draft::from_template(events::INVOICE_CREATED_EUR, "registers-2", Some(6))
        .customer(9302, "leo@example.com");
    publish(&stack, &m2, &eur).await;
    wait_invoice(&stack, &m2, &eur.increment_id()).await;
    settle_down().await;
    let contacts = stack.documents(&m2, "contacts");
    assert_eq!(contacts.len(), 2, "one contact per currency: {contacts:#?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_company_and_vat_number_arriving_later_update_the_contact() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("late-vat").await.expect("onboard");
    // First order: a private person.
    let first = Draft::invoice("late-vat", 1)
        .customer(9401, "sam@example.com")
        .company(None);
    publish(&stack, &m, &first).await;
    wait_invoice(&stack, &m, &first.increment_id()).await;
    let before = stack.documents(&m, "contacts");
    assert_eq!(before.len(), 1);
    assert!(before[0].get("tax_number").is_none_or(Value::is_null));
    let person_name = before[0]["name"].clone();

    // Second order: the same customer now buys for a company, with its VAT number.
    let second = with_vat(
        Draft::invoice("late-vat", 2)
            .customer(9401, "sam@example.com")
            .company(Some("Sam Trading Ltd")),
        "GB 123 4567 89",
    );
    publish(&stack, &m, &second).await;
    let invoices = wait_invoice(&stack, &m, &second.increment_id()).await;
    let updated = stack
        .wait_until(WAIT, || {
            stack.documents(&m, "contacts")[0]["name"] == "Sam Trading Ltd"
        })
        .await;
    let after = stack.documents(&m, "contacts");
    assert!(updated, "renamed to the company: {after:#?}");
    assert_ne!(after[0]["name"], person_name);
    assert_eq!(after.len(), 1, "updated, not duplicated");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["tax_number"], "GB123456789");
    assert_eq!(after[0]["reference"], "C9401GBP", "reference kept");
    assert_eq!(after[0]["currency"]["id"], "GBP", "currency untouched");
    assert_eq!(invoices[0]["contact"]["id"], invoices[1]["contact"]["id"]);

    // A third order without the company keeps the contact as it is.
    let third = Draft::invoice("late-vat", 3)
        .customer(9401, "sam@example.com")
        .company(None);
    publish(&stack, &m, &third).await;
    wait_invoice(&stack, &m, &third.increment_id()).await;
    settle_down().await;
    let last = stack.documents(&m, "contacts");
    assert_eq!(last[0]["name"], "Sam Trading Ltd");
    assert_eq!(last[0]["tax_number"], "GB123456789");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vat_number_sage_refuses_is_kept_in_the_notes_and_the_invoice_lands() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("refused-vat").await.expect("onboard");
    // GB numbers are 9 or 12 digits: "GB12345678" has 8, so Sage refuses it (but it looks
    // like a VAT number, so Ledger sends it).
    let invoice = with_vat(
        Draft::invoice("refused-vat", 1)
            .guest("buyer@example.com", "Kit", "Lowe")
            .company(Some("Lowe Supplies")),
        "GB12345678",
    );
    publish(&stack, &m, &invoice).await;
    let invoices = wait_invoice(&stack, &m, &invoice.increment_id()).await;
    let inv = by_reference(&invoices, &invoice.increment_id());
    assert_eq!(
        events::amount(&inv["total_amount"]),
        invoice.grand_total(),
        "the invoice went through"
    );
    let contacts = stack.documents(&m, "contacts");
    assert_eq!(contacts.len(), 1);
    let contact = &contacts[0];
    assert_eq!(contact["name"], "Lowe Supplies");
    assert!(contact.get("tax_number").is_none_or(Value::is_null));
    let notes = contact["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains("VAT number as entered") && notes.contains("GB12345678"),
        "{notes}"
    );

    // A later order with another refused number: the update goes through without it too.
    let second = with_vat(
        Draft::invoice("refused-vat", 2)
            .guest("buyer@example.com", "Kit", "Lowe")
            .company(Some("Lowe Supplies")),
        "GB99",
    );
    publish(&stack, &m, &second).await;
    wait_invoice(&stack, &m, &second.increment_id()).await;
    let noted = stack
        .wait_until(WAIT, || {
            stack.documents(&m, "contacts")[0]["notes"]
                .as_str()
                .is_some_and(|n| n.contains("GB99"))
        })
        .await;
    let contacts = stack.documents(&m, "contacts");
    assert!(noted, "{contacts:#?}");
    assert_eq!(contacts.len(), 1);
    assert!(contacts[0].get("tax_number").is_none_or(Value::is_null));
    stack.stop().await;
}
