//! Ledger's documents service: Magento invoices and credit memos become Sage sales invoices
//! and sales credit notes.
//!
//! For each `invoice.created` / `creditmemo.created` event it:
//! 1. skips the event if the document is already in its cross-reference (redelivery, replay);
//! 2. asks the contacts service for the customer's Sage contact in the document currency;
//! 3. maps the snapshot with the merchant's settings (pure functions in `ledger-mapping`);
//! 4. records the step's intent, POSTs to Sage with an idempotency id derived from the event
//!    id, and commits the Sage id with the step outcome in one transaction;
//! 5. only then lets the consumer loop acknowledge the message.
//!
//! It answers [`ledger_rpc::DOCUMENT_LOOKUP_SUBJECT`] so the payments service can find the
//! Sage invoice a payment belongs to without reading this service's tables.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use ledger_events::{Envelope, Payload};
use ledger_mapping::{DocumentPlan, MappingError, MerchantSettings};
use ledger_rpc::{ContactRef, DocumentRef, EnsureContactRequest, ErrorClass, RpcError, ServiceConfig, ServiceContext};
use ledger_runtime::bus::{self, ConsumerSpec};
use ledger_runtime::consumer::{self, ConsumerOptions, Delivery, Handler, Outcome};
use ledger_runtime::journal::{self, StepState};
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::ProcessError;
use rust_decimal::Decimal;
use sqlx::PgPool;

/// Service name in metrics, logs and the durable consumer name.
pub const SERVICE: &str = "documents";

/// Configuration (flags or environment variables).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "documents", about = "Ledger documents service")]
pub struct Config {
    /// Settings shared by every consumer service.
    #[command(flatten)]
    pub service: ServiceConfig,
}

/// Converts a contract violation into a permanent failure naming the field.
pub fn contract_failure(e: ledger_events::ContractError) -> ProcessError {
    let field = e.issues().first().map(|i| i.path.clone());
    ProcessError::Permanent {
        code: "contract.invalid".into(),
        field,
        message: e.to_string(),
        detail: serde_json::to_value(
            e.issues()
                .iter()
                .map(|i| serde_json::json!({"field": i.path, "reason": i.reason}))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default(),
    }
}

/// Converts a mapping refusal: `Invalid` is permanent, `Skipped` is an outcome.
fn mapping_outcome(e: MappingError) -> Result<(String, String), ProcessError> {
    match e {
        MappingError::Invalid { field, reason } => Err(ProcessError::invalid_field(
            format!("mapping.{reason}"),
            field.clone(),
            format!("{field}: {reason}"),
        )),
        MappingError::Skipped { reason, detail } => Ok((reason, detail)),
    }
}

/// The handler of this service.
pub struct Documents {
    ctx: ServiceContext,
}

impl Documents {
    fn db(&self) -> &PgPool {
        &self.ctx.db
    }

    async fn settings(&self, merchant: &str) -> Result<MerchantSettings, ProcessError> {
        self.ctx.settings.get(merchant).await
    }

    async fn already_synced(&self, merchant: &str, key: &str) -> Result<bool, ProcessError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT sage_id FROM documents WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_optional(self.db())
        .await?;
        Ok(found.is_some())
    }

    async fn contact(
        &self,
        env: &Envelope,
        customer_key: String,
        currency: &str,
        order: &ledger_events::OrderContext,
    ) -> Result<ContactRef, ProcessError> {
        ledger_rpc::ask(
            &self.ctx.nats,
            ledger_rpc::ENSURE_CONTACT_SUBJECT,
            &EnsureContactRequest {
                merchant: env.merchant_id.clone(),
                customer_key,
                currency: currency.to_string(),
                party: serde_json::json!({ "order": order }),
                event_id: env.event_id.to_string(),
            },
            Duration::from_secs(60),
        )
        .await
    }

    async fn record_skip(
        &self,
        env: &Envelope,
        key: &str,
        reason: &str,
        detail: &str,
    ) -> Result<Outcome, ProcessError> {
        sqlx::query(
            "INSERT INTO skipped_documents (merchant_id, document_key, event_id, reason, detail)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (merchant_id, document_key) DO UPDATE SET reason = $4, detail = $5, skipped_at = now()",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(env.event_id)
        .bind(reason)
        .bind(detail)
        .execute(self.db())
        .await?;
        tracing::info!(document = key, reason, detail, "document skipped");
        Ok(Outcome::Skipped(reason.to_string()))
    }

    /// Posts a mapped document once: step log + idempotency id + cross-reference.
    async fn post_document(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        key: &str,
        entity_id: u64,
        date: NaiveDate,
        contact: &ContactRef,
        plan: DocumentPlan,
    ) -> Result<Outcome, ProcessError> {
        let step = plan.resource;
        let idempotency_id = sage_client::idempotency_id(&env.event_id, step);
        let previously = journal::step_state(self.db(), env.event_id, step).await?;
        if let StepState::Done(_) = previously {
            return Ok(Outcome::AlreadyDone);
        }
        journal::record_intent(
            self.db(),
            &env.merchant_id,
            env.event_id,
            step,
            &idempotency_id,
            delivery.stream_sequence,
        )
        .await?;
        // In doubt or new, the request is the same: Sage answers a repeated idempotency id
        // with its first result, so an earlier applied-then-failed POST is adopted here.
        let response = self
            .ctx
            .sage
            .post(&env.merchant_id, plan.resource, plan.root, plan.body.clone(), Some(&idempotency_id))
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let sage_id = response
            .id()
            .ok_or_else(|| ProcessError::transient("Sage answered without an id"))?
            .to_string();
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "INSERT INTO documents (merchant_id, document_key, resource, sage_id, contact_id, reference, currency, total, exchange_rate, document_date, event_id, entity_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (merchant_id, document_key) DO NOTHING",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(plan.resource)
        .bind(&sage_id)
        .bind(&contact.contact_id)
        .bind(&plan.reference)
        .bind(&plan.currency)
        .bind(plan.expected_total)
        .bind(plan.exchange_rate)
        .bind(date)
        .bind(env.event_id)
        .bind(entity_id as i64)
        .execute(&mut *tx)
        .await?;
        journal::record_done(&mut tx, env.event_id, step, Some(&sage_id), response.request_id.as_deref()).await?;
        tx.commit().await?;
        tracing::info!(
            document = key,
            sage_id,
            reference = plan.reference,
            total = %plan.expected_total,
            request_id = response.request_id.as_deref().unwrap_or(""),
            "document synced"
        );
        Ok(Outcome::Applied)
    }

    async fn original_invoice(
        &self,
        merchant: &str,
        invoice_entity_id: u64,
    ) -> Result<Option<(ledger_mapping::OriginalInvoice, String)>, ProcessError> {
        let row: Option<(String, String, NaiveDate, String)> = sqlx::query_as(
            "SELECT sage_id, reference, document_date, contact_id FROM documents
             WHERE merchant_id = $1 AND resource = 'sales_invoices' AND entity_id = $2",
        )
        .bind(merchant)
        .bind(invoice_entity_id as i64)
        .fetch_optional(self.db())
        .await?;
        Ok(row.map(|(sage_id, reference, date, contact_id)| {
            (
                ledger_mapping::OriginalInvoice {
                    sage_id,
                    reference,
                    date,
                },
                contact_id,
            )
        }))
    }
}

#[async_trait::async_trait]
impl Handler for Documents {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        let env = ledger_events::parse(&delivery.payload).map_err(contract_failure)?;
        if env.merchant_id != delivery.merchant {
            return Err(ProcessError::invalid_field(
                "contract.subject_mismatch",
                "/merchant_id",
                format!("event of merchant {} published on {}", env.merchant_id, delivery.subject),
            ));
        }
        match &env.payload {
            Payload::InvoiceCreated(snapshot) => {
                let key = snapshot.document_key();
                if self.already_synced(&env.merchant_id, &key).await? {
                    return Ok(Outcome::AlreadyDone);
                }
                let settings = self.settings(&env.merchant_id).await?;
                let contact = self
                    .contact(&env, snapshot.customer_key(), snapshot.document_currency(), &snapshot.order)
                    .await?;
                let plan = match ledger_mapping::map_sales_invoice(snapshot, &settings, &contact.contact_id) {
                    Ok(plan) => plan,
                    Err(e) => {
                        let (reason, detail) = mapping_outcome(e)?;
                        return self.record_skip(&env, &key, &reason, &detail).await;
                    }
                };
                let date = snapshot.invoice.created_at.date_naive();
                let entity_id = snapshot.invoice.entity_id;
                self.post_document(&env, delivery, &key, entity_id, date, &contact, plan).await
            }
            Payload::CreditMemoCreated(snapshot) => {
                let key = snapshot.document_key();
                if self.already_synced(&env.merchant_id, &key).await? {
                    return Ok(Outcome::AlreadyDone);
                }
                let settings = self.settings(&env.merchant_id).await?;
                let original = match snapshot.creditmemo.invoice_id {
                    Some(invoice_id) => match self.original_invoice(&env.merchant_id, invoice_id).await? {
                        Some(found) => Some(found),
                        // The invoice is not in Sage yet: wait for it rather than credit a
                        // document Sage has never seen.
                        None => {
                            return Err(ProcessError::transient(format!(
                                "original invoice (entity {invoice_id}) not synced yet"
                            )))
                        }
                    },
                    None => None,
                };
                let contact = match &original {
                    // Same contact as the original invoice, whatever the order says now.
                    Some((_, contact_id)) => ContactRef {
                        contact_id: contact_id.clone(),
                        reference: String::new(),
                        currency: snapshot.document_currency().to_string(),
                    },
                    None => {
                        self.contact(&env, snapshot.customer_key(), snapshot.document_currency(), &snapshot.order)
                            .await?
                    }
                };
                let plan = match ledger_mapping::map_sales_credit_note(
                    snapshot,
                    &settings,
                    &contact.contact_id,
                    original.as_ref().map(|(o, _)| o),
                ) {
                    Ok(plan) => plan,
                    Err(e) => {
                        let (reason, detail) = mapping_outcome(e)?;
                        return self.record_skip(&env, &key, &reason, &detail).await;
                    }
                };
                let date = snapshot.creditmemo.created_at.date_naive();
                let entity_id = snapshot.creditmemo.entity_id;
                self.post_document(&env, delivery, &key, entity_id, date, &contact, plan).await
            }
            other => Ok(Outcome::Skipped(format!("not_handled:{}", other.event_type().as_str()))),
        }
    }

    async fn dead_letter(&self, delivery: &Delivery, error: &ProcessError) -> Result<(), ProcessError> {
        let event_id = journal::event_id_of(&delivery.payload);
        journal::record_dead_letter(self.db(), delivery, event_id.as_deref(), error).await?;
        Ok(())
    }
}

/// The durable consumer of this service.
pub fn consumer_spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        SERVICE,
        &["magento.*.invoice.created", "magento.*.creditmemo.created"],
    );
    // Unlimited redelivery at the server: the loop itself dead-letters after its own limit,
    // and a paused merchant's events must keep waiting.
    spec.max_deliver = -1;
    spec
}

/// A started service.
pub struct Running {
    /// Address of `/metrics` and `/healthz`.
    pub metrics_addr: std::net::SocketAddr,
    /// Resolves when the consumer has drained after shutdown.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the consumer and the lookup responder; returns once they accept work.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = ServiceContext::connect(&config.service, SERVICE, "documents").await?;
    sqlx::migrate!("./migrations").run(&ctx.db).await?;
    let consumer = bus::ensure_consumer(&ctx.js, &consumer_spec()).await?;
    ledger_runtime::metrics::spawn_lag_poller(consumer.clone(), Duration::from_secs(5), shutdown.clone());
    let metrics_addr =
        ledger_runtime::metrics::serve(config.service.metrics_addr, ledger_runtime::metrics::router(), shutdown.clone())
            .await?;

    let db = ctx.db.clone();
    ledger_rpc::serve(
        ctx.nats.clone(),
        ledger_rpc::DOCUMENT_LOOKUP_SUBJECT,
        move |req: ledger_rpc::DocumentLookupRequest| {
            let db = db.clone();
            async move { lookup(&db, &req.merchant, &req.document_key).await }
        },
        shutdown.clone(),
    )
    .await?;

    let mut options = ConsumerOptions::new(SERVICE);
    options.concurrency = config.service.concurrency;
    let handler = Arc::new(Documents { ctx });
    let done = tokio::spawn(consumer::run(consumer, handler, options, shutdown));
    Ok(Running { metrics_addr, done })
}

/// Runs until `shutdown` fires and the consumer has drained.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let running = start(config, shutdown).await?;
    running.done.await?
}

async fn lookup(db: &PgPool, merchant: &str, key: &str) -> Result<DocumentRef, RpcError> {
    let row: Option<(String, String, String, String, Decimal, Decimal)> = sqlx::query_as(
        "SELECT resource, sage_id, contact_id, currency, total, exchange_rate FROM documents WHERE merchant_id = $1 AND document_key = $2",
    )
    .bind(merchant)
    .bind(key)
    .fetch_optional(db)
    .await
    .map_err(|e| RpcError::from_process_error(&ProcessError::from(e)))?;
    match row {
        Some((resource, sage_id, contact_id, currency, total, exchange_rate)) => Ok(DocumentRef {
            resource,
            sage_id,
            contact_id,
            currency,
            total,
            exchange_rate,
        }),
        None => Err(RpcError {
            class: ErrorClass::NotFound,
            code: "document.not_synced".into(),
            message: format!("{key} is not in Sage yet"),
            field: None,
            detail: serde_json::Value::Null,
            retry_after_ms: None,
        }),
    }
}
