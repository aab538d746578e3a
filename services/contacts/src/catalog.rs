//! Product sync: `product.saved` becomes a Sage product (simple) or service (virtual,
//! downloadable), opt-in per merchant (`product_sync`).
//!
//! It lives in the contacts service because it is the same kind of work (master data that
//! documents refer to, created once and updated on later saves), but it reads the stream
//! through its own durable consumer, [`CONSUMER`]: a product held for a missing setting
//! must not hold up the merchant's customer updates behind it, and the other way round.
//!
//! For each event it:
//! 1. returns early when this event's write is already journaled done;
//! 2. maps the snapshot with `ledger_mapping::map_product` (sync off and composite types
//!    are recorded as skipped with their reason code); Sage requires a purchase ledger
//!    account on every product, so when the setting is empty it is resolved from Sage's
//!    ledger accounts (nominal code 5000) and cached per merchant;
//! 3. creates the item once (POST, after looking for an existing item with the same item
//!    code, which it adopts) or updates it (PUT) when the cross-reference knows it;
//! 4. commits the Sage id with the journal step in one transaction, then acknowledges;
//! 5. after creating a stock item (`stock_items` policy), posts its opening stock movement
//!    once when the merchant asked for it (`opening_stock`), as its own journal step.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_events::{Envelope, Payload, ProductSnapshot};
use ledger_mapping::{MappingError, MerchantSettings, ProductPlan};
use ledger_rpc::ServiceContext;
use ledger_runtime::bus::ConsumerSpec;
use ledger_runtime::consumer::{Delivery, Outcome};
use ledger_runtime::journal::{self, StepState};
use ledger_runtime::service::Projection;
use ledger_runtime::ProcessError;
use serde_json::Value;
use tokio::sync::Mutex;

/// Durable name of the product consumer (and its name in metrics and logs).
pub const CONSUMER: &str = "contacts-products";
/// Journal step (and idempotency-id salt) of creating a Sage item.
pub const STEP_CREATE: &str = "product_create";
/// Journal step (and idempotency-id salt) of updating a known Sage item.
pub const STEP_UPDATE: &str = "product_update";
/// Journal step (and idempotency-id salt) of a new stock item's opening stock movement.
pub const STEP_OPENING_STOCK: &str = "stock_opening";
/// Nominal code of the purchase ledger account used when the merchant set none
/// ("Cost of sales - goods" in Sage's UK chart of accounts).
pub const PURCHASE_NOMINAL_CODE: i64 = 5000;
/// Dead-letter code when no purchase ledger account can be found.
pub const NO_PURCHASE_LEDGER: &str = "settings.no_purchase_ledger_account";

/// A mapping refusal as a permanent error naming the field and the reason.
fn mapping_invalid(field: &str, reason: &str) -> ProcessError {
    ProcessError::invalid_field(
        format!("mapping.{reason}"),
        field,
        format!("{field}: {reason}"),
    )
}

/// The durable consumer of product events.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::for_service(CONSUMER, &["magento.*.product.saved"])
}

/// What the cross-reference knows about a product already in Sage.
struct Known {
    resource: String,
    sage_id: String,
    source_updated_at: Option<DateTime<Utc>>,
}

/// The product handler.
pub struct Catalog {
    ctx: Arc<ServiceContext>,
    /// Merchant → purchase ledger account id found in Sage. Ledger account ids never change
    /// for a business, so one lookup per merchant and process is enough.
    purchase_ledgers: Mutex<ledger_runtime::cache::Lru<String, String>>,
}

impl Catalog {
    /// A handler on the service's shared context.
    pub fn new(ctx: Arc<ServiceContext>) -> Self {
        Catalog {
            ctx,
            purchase_ledgers: Mutex::new(ledger_runtime::cache::per_merchant()),
        }
    }

    /// The merchant's purchase ledger account: nominal code [`PURCHASE_NOMINAL_CODE`] in
    /// Sage's ledger accounts, cached per merchant.
    async fn purchase_ledger_account(&self, merchant: &str) -> Result<String, ProcessError> {
        if let Some(id) = self.purchase_ledgers.lock().await.get(merchant) {
            return Ok(id.clone());
        }
        let accounts = self
            .ctx
            .sage
            .list_all(
                merchant,
                "ledger_accounts",
                &[("attributes", "nominal_code")],
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let id = accounts
            .iter()
            .find(|a| {
                a.get("nominal_code").and_then(|n| {
                    n.as_i64()
                        .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
                }) == Some(PURCHASE_NOMINAL_CODE)
            })
            .and_then(|a| a.get("id").and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| {
                ProcessError::invalid_field(
                    NO_PURCHASE_LEDGER,
                    "purchase_ledger_account_id",
                    format!(
                        "Sage requires a purchase ledger account on products and the business has no nominal \
                         code {PURCHASE_NOMINAL_CODE}: set purchase_ledger_account_id for merchant {merchant}"
                    ),
                )
            })?;
        self.purchase_ledgers
            .lock()
            .await
            .insert(merchant.to_string(), id.clone());
        Ok(id)
    }

    async fn known(&self, merchant: &str, key: &str) -> Result<Option<Known>, ProcessError> {
        let row: Option<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT resource, sage_id, source_updated_at FROM products WHERE merchant_id = $1 AND product_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_optional(&self.ctx.db)
        .await?;
        Ok(row.map(|(resource, sage_id, source_updated_at)| Known {
            resource,
            sage_id,
            source_updated_at,
        }))
    }

    async fn record_skip(
        &self,
        env: &Envelope,
        key: &str,
        reason: &str,
        detail: &str,
    ) -> Result<Outcome, ProcessError> {
        sqlx::query(
            "INSERT INTO skipped_products (merchant_id, product_key, event_id, reason, detail)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (merchant_id, product_key) DO UPDATE SET event_id = $3, reason = $4, detail = $5, skipped_at = now()",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(env.event_id)
        .bind(reason)
        .bind(detail)
        .execute(&self.ctx.db)
        .await?;
        Ok(journal::skipped("product", key, reason, detail))
    }

    /// An item already in Sage with exactly this item code: the merchant's own catalogue,
    /// or our own earlier POST whose answer was lost beyond Sage's idempotency window.
    async fn existing_item(
        &self,
        merchant: &str,
        plan: &ProductPlan,
    ) -> Result<Option<String>, ProcessError> {
        let response = self
            .ctx
            .sage
            .get(
                merchant,
                plan.resource,
                // Search also matches descriptions, so read a full page to find the exact code.
                &[
                    ("search", plan.item_code.as_str()),
                    ("attributes", "item_code"),
                    ("items_per_page", "200"),
                ],
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let found = response
            .body
            .get("$items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|item| {
                item.get("item_code").and_then(Value::as_str) == Some(plan.item_code.as_str())
            })
            .and_then(|item| item.get("id").and_then(Value::as_str))
            .map(str::to_string);
        Ok(found)
    }

    async fn product_saved(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &ProductSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let product = &snapshot.product;
        let key = product.product_key();
        ledger_runtime::audit::note_document(&key);
        let merchant = env.merchant_id.as_str();
        let db = &self.ctx.db;
        if let StepState::Done(_) =
            journal::step_state(db, merchant, env.event_id, STEP_UPDATE).await?
        {
            return Ok(Outcome::AlreadyDone);
        }
        if let StepState::Done(sage_id) =
            journal::step_state(db, merchant, env.event_id, STEP_CREATE).await?
        {
            // Created; only a stock item's opening movement may still be owed.
            let settings: MerchantSettings = self.ctx.settings.get(merchant).await?;
            let created_stock_item = self
                .known(merchant, &key)
                .await?
                .filter(|k| k.resource == "stock_items" && sage_id.as_deref() == Some(&k.sage_id));
            return match created_stock_item {
                Some(Known { sage_id: id, .. }) => {
                    self.opening_stock(
                        env,
                        delivery,
                        snapshot,
                        &settings,
                        &id,
                        Outcome::AlreadyDone,
                    )
                    .await
                }
                _ => Ok(Outcome::AlreadyDone),
            };
        }
        let mut settings: MerchantSettings = self.ctx.settings.get(merchant).await?;
        let known = self.known(merchant, &key).await?;
        if let (Some(known), Some(updated_at)) = (&known, product.updated_at) {
            if known
                .source_updated_at
                .is_some_and(|applied| updated_at < applied)
            {
                // A redelivery overtaken by a newer save: writing it would roll Sage back.
                let detail =
                    format!("product saved at {updated_at} is older than the one already in Sage");
                return self
                    .record_skip(env, &key, ledger_mapping::reasons::STALE_SNAPSHOT, &detail)
                    .await;
            }
        }
        // Only Sage products need it; services take one when given but do not require it,
        // so a merchant selling only services never depends on nominal code 5000.
        let needs_purchase_ledger = settings.product_sync
            && !product.type_id.is_container()
            && !product.type_id.is_service()
            && settings
                .purchase_ledger_account_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty());
        if needs_purchase_ledger {
            settings.purchase_ledger_account_id =
                Some(self.purchase_ledger_account(merchant).await?);
        }
        let plan = match ledger_mapping::map_product(snapshot, &settings) {
            Ok(plan) => plan,
            Err(MappingError::Skipped { reason, detail }) => {
                return self.record_skip(env, &key, &reason, &detail).await
            }
            Err(MappingError::Invalid { field, reason }) => {
                return Err(mapping_invalid(&field, &reason))
            }
        };

        // Create or update. A product that changed between simple and virtual/downloadable
        // moves between Sage's products and services: the cross-reference then names the
        // other resource and a new item is made (the old one is left for the merchant).
        let target = match known.filter(|k| k.resource == plan.resource) {
            Some(k) => Some(k.sage_id),
            None => match journal::step_state(db, merchant, env.event_id, STEP_CREATE).await? {
                // In doubt: re-send the same POST so Sage answers with what it made first.
                StepState::InDoubt => None,
                _ => self.existing_item(merchant, &plan).await?,
            },
        };
        let fingerprint = ledger_runtime::audit::fingerprint(&plan.body);
        if let Some(sage_id) = &target {
            // A save that changes nothing Sage holds (a stock or price change the item does
            // not carry, the same save again) sends nothing (crate::sent).
            if crate::sent::unchanged(db, merchant, plan.resource, sage_id, &fingerprint).await? {
                sqlx::query(
                    "UPDATE products SET source_updated_at = GREATEST(source_updated_at, $3)
                     WHERE merchant_id = $1 AND product_key = $2",
                )
                .bind(merchant)
                .bind(&key)
                .bind(product.updated_at)
                .execute(db)
                .await?;
                ledger_runtime::audit::note_detail(&format!(
                    "{} {sage_id} unchanged: Sage already has this body, nothing sent",
                    plan.resource
                ));
                return Ok(Outcome::AlreadyDone);
            }
        }
        let step = if target.is_some() {
            STEP_UPDATE
        } else {
            STEP_CREATE
        };
        let idempotency_id = sage_client::idempotency_id(&env.event_id, step);
        journal::record_intent(
            db,
            merchant,
            env.event_id,
            step,
            &idempotency_id,
            delivery.stream_sequence,
        )
        .await?;
        let response = match &target {
            Some(sage_id) => {
                self.ctx
                    .sage
                    .put(
                        merchant,
                        &format!("{}/{sage_id}", plan.resource),
                        plan.root,
                        plan.body.clone(),
                        Some(&idempotency_id),
                    )
                    .await
            }
            None => {
                self.ctx
                    .sage
                    .post(
                        merchant,
                        plan.resource,
                        plan.root,
                        plan.body.clone(),
                        Some(&idempotency_id),
                    )
                    .await
            }
        };
        if let (Err(e), Some(sage_id)) = (&response, &target) {
            if e.is_not_found() {
                // Deleted in Sage: whatever comes next is written.
                crate::sent::forget(db, merchant, plan.resource, sage_id).await?;
            }
        }
        let response = response.map_err(ledger_rpc::sage_error_to_process)?;
        let sage_id = match target {
            Some(id) => id,
            None => response
                .id()
                .ok_or_else(|| ProcessError::transient("Sage answered without an id"))?
                .to_string(),
        };
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO products (merchant_id, product_key, resource, sage_id, item_code, source_updated_at, event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (merchant_id, product_key) DO UPDATE
             SET resource = $3, sage_id = $4, item_code = $5, source_updated_at = $6, event_id = $7, synced_at = now()",
        )
        .bind(merchant)
        .bind(&key)
        .bind(plan.resource)
        .bind(&sage_id)
        .bind(&plan.item_code)
        .bind(product.updated_at)
        .bind(env.event_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM skipped_products WHERE merchant_id = $1 AND product_key = $2")
            .bind(merchant)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        journal::record_done(
            &mut tx,
            merchant,
            env.event_id,
            step,
            Some(&sage_id),
            response.request_id.as_deref(),
        )
        .await?;
        tx.commit().await?;
        crate::sent::remember(db, merchant, plan.resource, &sage_id, &fingerprint).await?;
        tracing::info!(
            product = key,
            sage_id,
            resource = plan.resource,
            item_code = plan.item_code,
            step,
            "product synced"
        );
        if step == STEP_CREATE && plan.resource == "stock_items" {
            return self
                .opening_stock(
                    env,
                    delivery,
                    snapshot,
                    &settings,
                    &sage_id,
                    Outcome::Applied,
                )
                .await;
        }
        Ok(Outcome::Applied)
    }

    /// Posts a just-created stock item's opening stock movement once (journal step
    /// [`STEP_OPENING_STOCK`]), when `ledger_mapping::map_opening_stock` gives one. A refused
    /// movement (`opening_stock_off`, `nothing_to_post`, `no_cost_price`) leaves the item as
    /// created and is logged with its reason; `done` is the outcome of the item's own step.
    async fn opening_stock(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &ProductSnapshot,
        settings: &MerchantSettings,
        stock_item_id: &str,
        done: Outcome,
    ) -> Result<Outcome, ProcessError> {
        let merchant = env.merchant_id.as_str();
        let db = &self.ctx.db;
        if let StepState::Done(_) =
            journal::step_state(db, merchant, env.event_id, STEP_OPENING_STOCK).await?
        {
            return Ok(done);
        }
        let date = settings.accounting_date(env.occurred_at).map_err(|e| {
            ProcessError::invalid_field("mapping.timezone", "timezone", e.to_string())
        })?;
        let plan = match ledger_mapping::map_opening_stock(snapshot, settings, stock_item_id, date)
        {
            Ok(plan) => plan,
            Err(MappingError::Skipped { reason, detail }) => {
                tracing::warn!(
                    product = snapshot.product.product_key(),
                    reason,
                    detail,
                    "no opening stock movement"
                );
                return Ok(done);
            }
            Err(MappingError::Invalid { field, reason }) => {
                return Err(mapping_invalid(&field, &reason))
            }
        };
        let idempotency_id = sage_client::idempotency_id(&env.event_id, STEP_OPENING_STOCK);
        journal::record_intent(
            db,
            merchant,
            env.event_id,
            STEP_OPENING_STOCK,
            &idempotency_id,
            delivery.stream_sequence,
        )
        .await?;
        let response = self
            .ctx
            .sage
            .post(
                merchant,
                "stock_movements",
                "stock_movement",
                plan.body.clone(),
                Some(&idempotency_id),
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let mut tx = db.begin().await?;
        journal::record_done(
            &mut tx,
            merchant,
            env.event_id,
            STEP_OPENING_STOCK,
            response.id(),
            response.request_id.as_deref(),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            product = snapshot.product.product_key(),
            stock_item_id,
            quantity = %plan.body["quantity"],
            "opening stock posted"
        );
        Ok(Outcome::Applied)
    }
}

#[async_trait::async_trait]
impl Projection for Catalog {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        let env = ledger_rpc::parse_delivery(delivery)?;
        match &env.payload {
            Payload::ProductSaved(snapshot) => self.product_saved(&env, delivery, snapshot).await,
            other => Ok(Outcome::Skipped(format!(
                "not_handled:{}",
                other.event_type().as_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_consumer_reads_only_product_saves() {
        let spec = consumer_spec();
        assert_eq!(spec.durable, CONSUMER);
        assert_eq!(
            spec.filter_subjects,
            vec!["magento.*.product.saved".to_string()]
        );
        assert_eq!(spec.max_deliver, -1);
        assert_ne!(
            spec.durable,
            crate::consumer_spec().durable,
            "own durable consumer"
        );
    }
}
