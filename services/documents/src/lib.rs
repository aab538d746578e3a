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
//! A posted credit note is then settled as its own journaled step: a customer refund
//! allocated to it when money went back to the customer, else an allocation against the
//! original invoice for what Sage says is still outstanding there (see `docs/accounting.md`).
//!
//! An `invoice.canceled` or `creditmemo.canceled` event voids the Sage document (its receipt,
//! refund or allocation removed first, as Sage requires), or records a document that never
//! reached Sage as skipped with reason `canceled` (see `docs/accounting.md`).
//!
//! It answers [`ledger_rpc::DOCUMENT_LOOKUP_SUBJECT`] so the payments service can find the
//! Sage invoice a payment belongs to without reading this service's tables, and
//! [`ledger_rpc::REISSUE_SUBJECT`]: the portal's "Credit and re-issue" ([`reissue`]).

pub mod reissue;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use ledger_events::{
    CreditMemoSnapshot, CreditMemoStateSnapshot, Envelope, InvoiceCanceledSnapshot,
    InvoiceSnapshot, Payload,
};
use ledger_mapping::{
    DocumentPlan, MappingError, MerchantSettings, OriginalInvoice, SageDocumentRef, Settlement,
    SettlementRule,
};
use ledger_rpc::{
    mapping_outcome, ContactRef, DocumentRef, EnsureContactRequest, ErrorClass, RpcError,
    ServiceConfig, ServiceContext, StepPost,
};
use ledger_runtime::bus::ConsumerSpec;
use ledger_runtime::consumer::{Delivery, Outcome};
use ledger_runtime::journal::{self, StepState};
use ledger_runtime::service::Projection;
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::ProcessError;
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

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

/// Placeholder contact id for the mapping dry run before the contact exists: a document the
/// mapping holds (unmapped tax rate, totals mismatch, ...) must not create a Sage contact.
const PREFLIGHT_CONTACT: &str = "preflight";

/// Journal step (and idempotency-id salt) of the refund that settles a credit note.
pub const STEP_REFUND: &str = "credit_note_refund";
/// Journal step (and idempotency-id salt) of the allocation of a credit note to its invoice.
pub const STEP_ALLOCATION: &str = "credit_note_allocation";
/// Attempts a credit memo without `invoice_id` waits for an invoice of its order that is
/// not in Sage yet, before it is set against the order's other invoices.
pub const ORDER_INVOICE_WAITS: i64 = 8;
/// Dead-letter code of a refund for which no bank account is configured in its currency.
pub const NO_BANK_ACCOUNT: &str = "settings.no_bank_account";
/// Journal step (and idempotency-id salt) of voiding a Sage invoice or credit note.
pub const STEP_VOID: &str = "void";
/// Journal step of removing what settled a credit note (its refund or allocation) before the
/// credit note is voided.
pub const STEP_UNSETTLE: &str = "credit_note_unsettle";
/// How long to wait for the payments service (receipts to remove, a clearing account).
const PAYMENTS_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// A document this service has posted, as its cross-reference holds it.
#[derive(Debug, Clone)]
struct Posted {
    sage_id: String,
    contact_id: String,
    reference: String,
    currency: String,
    total: Decimal,
    exchange_rate: Decimal,
    date: NaiveDate,
    /// The event that posted it: its settlement steps use this event's idempotency ids, so
    /// a re-published copy of the credit memo (new event id) resumes them instead of
    /// posting a second refund.
    event_id: Uuid,
    /// Sage's own number (`SI-12`, `SCN-3`), when Sage gave one.
    sage_number: Option<String>,
    /// The Magento number (the last part of the document key): the reference without the
    /// merchant's prefix, which a credit note quotes.
    number: String,
}

impl Posted {
    fn sage_ref(&self) -> SageDocumentRef {
        SageDocumentRef {
            sage_id: self.sage_id.clone(),
            contact_id: self.contact_id.clone(),
            currency: self.currency.clone(),
            exchange_rate: self.exchange_rate,
            total: self.total,
        }
    }
}

/// The settlement of a credit note as recorded (see the `credit_note_settlements` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SettlementKind {
    Refund,
    Allocation,
    Nothing,
    /// Pending at the gateway: the refund waits for the credit memo to arrive as refunded.
    Waiting,
}

impl SettlementKind {
    fn as_str(self) -> &'static str {
        match self {
            SettlementKind::Refund => "refund",
            SettlementKind::Allocation => "allocation",
            SettlementKind::Nothing => "none",
            SettlementKind::Waiting => "waiting",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "refund" => Some(SettlementKind::Refund),
            "allocation" => Some(SettlementKind::Allocation),
            "none" => Some(SettlementKind::Nothing),
            "waiting" => Some(SettlementKind::Waiting),
            _ => None,
        }
    }
}

/// Why the handling of a document stopped short of Sage.
enum Halt {
    /// Kept out of Sage on purpose: reason code and detail, recorded as skipped.
    Hold(String, String),
    /// Failed: retried or dead-lettered by the consumer loop.
    Fail(ProcessError),
}

impl From<ProcessError> for Halt {
    fn from(e: ProcessError) -> Self {
        Halt::Fail(e)
    }
}

impl Halt {
    /// A mapping refusal (`MappingError::Skipped`) as a hold; invalid input stays a failure.
    fn mapping(e: MappingError) -> Self {
        match mapping_outcome(e) {
            Ok((reason, detail)) => Halt::Hold(reason, detail),
            Err(e) => Halt::Fail(e),
        }
    }

    /// A hold given as (reason, detail), e.g. a locked period's.
    fn held((reason, detail): (String, String)) -> Self {
        Halt::Hold(reason, detail)
    }
}

/// The handler of this service.
pub struct Documents {
    ctx: ServiceContext,
    /// Contacts of registered customers, once known: a Sage contact's id never changes, and
    /// asking the contacts service for every document would double the work per invoice.
    /// Keyed by (merchant, customer, currency, company and VAT number of the document).
    /// Guests are always asked, because B2C consolidation decides per order.
    known_contacts:
        std::sync::Mutex<ledger_runtime::cache::Lru<(String, String, String, String), ContactRef>>,
    /// Locked periods: Sage's open period per merchant (financial settings), read again when
    /// Sage refuses a date.
    periods: ledger_rpc::OpenPeriods,
}

impl Documents {
    fn db(&self) -> &PgPool {
        &self.ctx.db
    }

    /// The merchant's raw settings document and its mapping settings.
    async fn settings(&self, merchant: &str) -> Result<(Value, MerchantSettings), ProcessError> {
        let raw = self.ctx.settings.raw(merchant).await?;
        let settings = serde_json::from_value(raw.clone()).map_err(|e| {
            ProcessError::permanent(
                "settings.invalid",
                format!("merchant {merchant} settings: {e}"),
            )
        })?;
        Ok((raw, settings))
    }

    /// The document in the cross-reference, if this service has posted it.
    async fn posted(&self, merchant: &str, key: &str) -> Result<Option<Posted>, ProcessError> {
        let row: Option<PostedRow> = sqlx::query_as(
            "SELECT sage_id, contact_id, reference, currency, total, exchange_rate, document_date, event_id, sage_number,
                    regexp_replace(document_key, '^.*:', '')
             FROM documents WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_optional(self.db())
        .await?;
        Ok(row.map(posted_from_row))
    }

    async fn contact(
        &self,
        env: &Envelope,
        stream_sequence: u64,
        customer_key: String,
        currency: &str,
        order: &ledger_events::OrderContext,
        document_total: Option<Decimal>,
    ) -> Result<ContactRef, ProcessError> {
        // The company and VAT number are part of the key: a document that brings new ones
        // asks the contacts service, which updates the contact.
        let cache_key = (
            env.merchant_id.clone(),
            customer_key.clone(),
            currency.to_string(),
            ledger_mapping::Party::from_order(order).business_details_key(),
        );
        let cacheable = customer_key.starts_with("customer:");
        if cacheable {
            let mut known = self
                .known_contacts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(contact) = known.get(&cache_key) {
                return Ok(contact.clone());
            }
        }
        let contact: ContactRef = ledger_rpc::ask(
            &self.ctx.nats,
            ledger_rpc::ENSURE_CONTACT_SUBJECT,
            &EnsureContactRequest {
                merchant: env.merchant_id.clone(),
                customer_key,
                currency: currency.to_string(),
                party: serde_json::json!({ "order": order }),
                event_id: env.event_id.to_string(),
                document_total,
                stream_sequence: Some(stream_sequence),
                dry_run: ledger_runtime::replay::dry_run(),
            },
            Duration::from_secs(60),
        )
        .await?;
        if cacheable && !contact.consolidated {
            let mut known = self
                .known_contacts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            known.insert(cache_key, contact.clone());
        }
        Ok(contact)
    }

    async fn record_skip(
        &self,
        env: &Envelope,
        key: &str,
        reason: &str,
        detail: &str,
        entity_id: u64,
    ) -> Result<Outcome, ProcessError> {
        sqlx::query(
            "INSERT INTO skipped_documents (merchant_id, document_key, event_id, reason, detail, entity_id)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (merchant_id, document_key) DO UPDATE SET reason = $4, detail = $5, entity_id = $6, skipped_at = now()",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(env.event_id)
        .bind(reason)
        .bind(detail)
        .bind(entity_id as i64)
        .execute(self.db())
        .await?;
        Ok(journal::skipped("document", key, reason, detail))
    }

    /// Posts a mapped document once: step log + idempotency id + cross-reference.
    #[allow(clippy::too_many_arguments)]
    async fn post_document(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        key: &str,
        entity_id: u64,
        date: NaiveDate,
        contact: &ContactRef,
        plan: DocumentPlan,
    ) -> Result<Posted, ProcessError> {
        // Locked periods: the cross-reference keeps the date Sage has (a moved document's
        // first open day), which a credit note quotes as `original_invoice_date`.
        let date = body_date(&plan.body).unwrap_or(date);
        let step = plan.resource;
        let state = journal::step_state(self.db(), &env.merchant_id, env.event_id, step).await?;
        if let StepState::Done(_) = state {
            // Done commits together with the cross-reference, so the row is there.
            if let Some(posted) = self.posted(&env.merchant_id, key).await? {
                return Ok(posted);
            }
        }
        if state == StepState::InDoubt {
            // An earlier attempt may have landed (crash before the commit, a 500 after Sage
            // saved it). The idempotency id covers 7 days; looking the document up by its
            // reference covers any age, e.g. a replay after a long outage.
            if let Some(sage_id) = self.find_in_sage(&env.merchant_id, &plan, contact).await? {
                tracing::info!(
                    document = key,
                    sage_id,
                    "in-doubt document found in Sage; adopting it"
                );
                return self
                    .record_posted(
                        env, key, entity_id, date, contact, &plan, &sage_id, None, None,
                    )
                    .await;
            }
        }
        // In doubt or new, the request is the same: Sage answers a repeated idempotency id
        // with its first result, so an earlier applied-then-failed POST is adopted here.
        let post = StepPost {
            merchant: &env.merchant_id,
            event_id: env.event_id,
            step,
            stream_sequence: delivery.stream_sequence,
            resource: plan.resource,
            root: plan.root,
            body: &plan.body,
            date,
        };
        let (response, sage_id) = self
            .periods
            .post_step(&self.ctx.sage, self.db(), post)
            .await?;
        self.record_posted(
            env,
            key,
            entity_id,
            date,
            contact,
            &plan,
            &sage_id,
            response.request_id.as_deref(),
            ledger_runtime::audit::sage_number_of(&response.body),
        )
        .await
    }

    /// Commits a posted document: the cross-reference and the step outcome together.
    #[allow(clippy::too_many_arguments)]
    async fn record_posted(
        &self,
        env: &Envelope,
        key: &str,
        entity_id: u64,
        date: NaiveDate,
        contact: &ContactRef,
        plan: &DocumentPlan,
        sage_id: &str,
        request_id: Option<&str>,
        sage_number: Option<String>,
    ) -> Result<Posted, ProcessError> {
        ledger_runtime::audit::note_reference(&plan.reference);
        ledger_runtime::audit::note_sage_number(sage_number.as_deref().unwrap_or(""));
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "INSERT INTO documents (merchant_id, document_key, resource, sage_id, contact_id, reference, currency, total, exchange_rate, document_date, event_id, entity_id, sage_number, posted_lines)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (merchant_id, document_key) DO NOTHING",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(plan.resource)
        .bind(sage_id)
        .bind(&contact.contact_id)
        .bind(&plan.reference)
        .bind(&plan.currency)
        .bind(plan.expected_total)
        .bind(plan.exchange_rate)
        .bind(date)
        .bind(env.event_id)
        .bind(entity_id as i64)
        .bind(&sage_number)
        .bind(serde_json::json!(ledger_mapping::line_labels(plan)))
        .execute(&mut *tx)
        .await?;
        // [money-in] A document released after a hold is no longer held.
        sqlx::query("DELETE FROM skipped_documents WHERE merchant_id = $1 AND document_key = $2")
            .bind(&env.merchant_id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        journal::record_done(
            &mut tx,
            &env.merchant_id,
            env.event_id,
            plan.resource,
            Some(sage_id),
            request_id,
        )
        .await?;
        tx.commit().await?;
        // [money-in] An invoice landed (perhaps released after a hold): the payments service
        // posts the payments it kept `invoice_held` for it. Fire and forget; the payments
        // service also re-checks its held payments when it starts.
        if plan.resource == "sales_invoices" {
            let note = ledger_rpc::InvoiceLanded {
                merchant: env.merchant_id.clone(),
                document_key: key.to_string(),
            };
            if let Ok(body) = serde_json::to_vec(&note) {
                let _ = self
                    .ctx
                    .nats
                    .publish(ledger_rpc::INVOICE_LANDED_SUBJECT, body.into())
                    .await;
            }
        }
        tracing::info!(
            document = key,
            sage_id,
            reference = plan.reference,
            total = %plan.expected_total,
            consolidated = contact.consolidated,
            request_id = request_id.unwrap_or(""),
            "document synced"
        );
        Ok(Posted {
            sage_id: sage_id.to_string(),
            contact_id: contact.contact_id.clone(),
            reference: plan.reference.clone(),
            currency: plan.currency.clone(),
            total: plan.expected_total,
            exchange_rate: plan.exchange_rate,
            date,
            event_id: env.event_id,
            sage_number,
            number: key.rsplit(':').next().unwrap_or_default().to_string(),
        })
    }

    /// Locked periods: the date a planned document goes to Sage with (its own, or the first
    /// open day), or the hold reason and detail (see `ledger_mapping::open_period_date`).
    async fn period_date(
        &self,
        merchant: &str,
        raw: &Value,
        plan: &DocumentPlan,
        what: &str,
    ) -> Result<ledger_rpc::PeriodDecision, ProcessError> {
        self.periods
            .decide(&self.ctx.sage, merchant, raw, plan.date, what)
            .await
    }

    /// The Sage document with this plan's reference and contact, if Sage already has one.
    async fn find_in_sage(
        &self,
        merchant: &str,
        plan: &DocumentPlan,
        contact: &ContactRef,
    ) -> Result<Option<String>, ProcessError> {
        let found = self
            .ctx
            .sage
            .list_all(
                merchant,
                plan.resource,
                &[
                    ("search", plan.magento_reference.as_str()),
                    ("contact_id", contact.contact_id.as_str()),
                    ("attributes", "reference"),
                ],
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        // Sage's search also matches contact names and parts of references: only this
        // document's number on this contact is ours, under today's reference prefix, an
        // earlier one or none (a prefix change never doubles a document).
        Ok(found
            .iter()
            .find(|d| {
                d.get("reference")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| {
                        r == plan.reference
                            || ledger_mapping::is_reference_of_number(r, &plan.magento_reference)
                    })
            })
            .and_then(|d| d.get("id").and_then(|i| i.as_str()))
            .map(str::to_string))
    }

    /// The Sage invoice a credit memo refunds, from the cross-reference.
    async fn original_invoice(
        &self,
        merchant: &str,
        invoice_entity_id: u64,
    ) -> Result<Option<Posted>, ProcessError> {
        let row: Option<PostedRow> = sqlx::query_as(
            "SELECT sage_id, contact_id, reference, currency, total, exchange_rate, document_date, event_id, sage_number,
                    regexp_replace(document_key, '^.*:', '')
             FROM documents WHERE merchant_id = $1 AND resource = 'sales_invoices' AND entity_id = $2",
        )
        .bind(merchant)
        .bind(invoice_entity_id as i64)
        .fetch_optional(self.db())
        .await?;
        Ok(row.map(posted_from_row))
    }

    /// [money-in] Holds a document whose Magento base currency is not the Sage business's
    /// (`ledger_mapping::check_base_currency`).
    async fn check_base_currency(
        &self,
        merchant: &str,
        magento_base: &str,
        what: &str,
    ) -> Result<(), Halt> {
        let Some(sage_base) = self.periods.base_currency(&self.ctx.sage, merchant).await? else {
            return Ok(());
        };
        ledger_mapping::check_base_currency(magento_base, &sage_base, what).map_err(Halt::mapping)
    }

    /// Records the hold of a document whose handling halted with one; passes an outcome or a
    /// failure through.
    async fn record_halt(
        &self,
        env: &Envelope,
        key: &str,
        entity_id: u64,
        result: Result<Outcome, Halt>,
    ) -> Result<Outcome, ProcessError> {
        match result {
            Ok(outcome) => Ok(outcome),
            Err(Halt::Fail(e)) => Err(e),
            Err(Halt::Hold(reason, detail)) => {
                self.record_skip(env, key, &reason, &detail, entity_id)
                    .await
            }
        }
    }

    /// The key of a held (skipped) invoice with this Magento entity id, if there is one.
    async fn held_invoice(
        &self,
        merchant: &str,
        invoice_entity_id: u64,
    ) -> Result<Option<(String, String, String)>, ProcessError> {
        Ok(sqlx::query_as(
            "SELECT document_key, reason, detail FROM skipped_documents
             WHERE merchant_id = $1 AND entity_id = $2 AND document_key LIKE 'invoice:%'",
        )
        .bind(merchant)
        .bind(invoice_entity_id as i64)
        .fetch_optional(self.db())
        .await?)
    }

    /// Rule "credit notes find their invoice": the order's invoices (`order.invoices`) that
    /// are in Sage, oldest first, for a credit memo without `invoice_id`. An invoice of the
    /// order that is neither in Sage nor held is waited for (transient) for the first
    /// [`ORDER_INVOICE_WAITS`] attempts, then left out (an invoice from before the module
    /// was installed never arrives); held invoices are left out, and when every invoice
    /// was held the credit memo follows the oldest one's decision
    /// ([`ledger_mapping::follow_invoice`], the others named in the detail).
    async fn order_invoices(
        &self,
        merchant: &str,
        snapshot: &CreditMemoSnapshot,
        attempt: i64,
    ) -> Result<Result<Vec<Posted>, MappingError>, ProcessError> {
        let mut posted = Vec::new();
        let mut held = Vec::new();
        for invoice in snapshot.order.invoices_oldest_first() {
            if let Some(found) = self.original_invoice(merchant, invoice.entity_id).await? {
                posted.push(found);
            } else if let Some(skipped) = self.held_invoice(merchant, invoice.entity_id).await? {
                held.push(skipped);
            } else if attempt < ORDER_INVOICE_WAITS {
                return Err(ProcessError::transient(format!(
                    "invoice {} of order {} (entity {}) not synced yet",
                    invoice.increment_id, snapshot.order.increment_id, invoice.entity_id
                )));
            } else {
                tracing::info!(
                    invoice = invoice.increment_id,
                    order = snapshot.order.increment_id,
                    "an invoice of the order never reached Sage; the credit note is set against the others"
                );
            }
        }
        if let (true, Some((invoice_key, reason, detail))) = (posted.is_empty(), held.first()) {
            let keys: Vec<&str> = held.iter().map(|(k, _, _)| k.as_str()).collect();
            let detail = format!(
                "{detail} (order {}: invoices {})",
                snapshot.order.increment_id,
                keys.join(", ")
            );
            return Ok(Err(ledger_mapping::follow_invoice(
                invoice_key,
                reason,
                &detail,
            )));
        }
        Ok(Ok(posted))
    }

    async fn invoice_created(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &InvoiceSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let key = snapshot.document_key();
        ledger_runtime::audit::note_document(&key);
        let result = self.post_invoice(env, delivery, snapshot, &key).await;
        self.record_halt(env, &key, snapshot.invoice.entity_id, result)
            .await
    }

    /// The steps of [`Documents::invoice_created`]; a hold halts them.
    async fn post_invoice(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &InvoiceSnapshot,
        key: &str,
    ) -> Result<Outcome, Halt> {
        if let Some(posted) = self.posted(&env.merchant_id, key).await? {
            ledger_runtime::audit::note_reference(&posted.reference);
            ledger_runtime::audit::note_sage_number(posted.sage_number.as_deref().unwrap_or(""));
            return Ok(Outcome::AlreadyDone);
        }
        // Canceled in Magento before it got here (a backfill, or a cancel that overtook it).
        if self.canceled_before_posting(&env.merchant_id, key).await? {
            return Ok(Outcome::Skipped(
                ledger_mapping::reasons::CANCELED.to_string(),
            ));
        }
        let (raw, settings) = self.settings(&env.merchant_id).await?;
        // The merchant's sync policy (docs/accounting.md): website, store view, cutover
        // date, then a zero invoice (a free order moves no money and no VAT: by default
        // `zero_value`, and its payment is skipped as `nothing_to_post`) and one created unpaid.
        ledger_mapping::invoice_decision(snapshot, env.website_id, env.store_id, &settings)
            .map_err(Halt::mapping)?;
        // [money-in] Sage's base currency, read, never assumed (docs/accounting.md).
        self.check_base_currency(
            &env.merchant_id,
            snapshot.base_currency(),
            &format!("invoice {}", snapshot.invoice.increment_id),
        )
        .await?;
        // Dry run first: a held invoice must leave nothing behind in Sage, not even a contact.
        let preflight = ledger_mapping::map_sales_invoice(snapshot, &settings, PREFLIGHT_CONTACT)
            .map_err(Halt::mapping)?;
        // Locked periods: moved or held before the contact is asked for.
        let period = self
            .period_date(&env.merchant_id, &raw, &preflight, "invoice")
            .await?
            .map_err(Halt::held)?;
        let contact = self
            .contact(
                env,
                delivery.stream_sequence,
                snapshot.customer_key(),
                snapshot.document_currency(),
                &snapshot.order,
                Some(snapshot.invoice.grand_total),
            )
            .await?;
        let mut plan = ledger_mapping::map_sales_invoice(snapshot, &settings, &contact.contact_id)
            .map_err(Halt::mapping)?;
        // Locked periods: the first open day when the books' day is locked.
        ledger_mapping::move_document_date(&mut plan.body, &period);
        plan.date = period.date();
        // The Sage date sent (the books' day), recorded for the credit notes that follow.
        let date = plan.date;
        let entity_id = snapshot.invoice.entity_id;
        self.post_document(env, delivery, key, entity_id, date, &contact, plan)
            .await?;
        Ok(Outcome::Applied)
    }

    /// A credit memo: the sales credit note, then its settlement (refund or allocation).
    /// Each is its own journaled step, so a redelivery after the credit note was posted
    /// resumes with the settlement.
    async fn credit_memo_created(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &CreditMemoSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let key = snapshot.document_key();
        ledger_runtime::audit::note_document(&key);
        let result = self.post_credit_memo(env, delivery, snapshot, &key).await;
        self.record_halt(env, &key, snapshot.creditmemo.entity_id, result)
            .await
    }

    /// The steps of [`Documents::credit_memo_created`]; a hold halts them.
    async fn post_credit_memo(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &CreditMemoSnapshot,
        key: &str,
    ) -> Result<Outcome, Halt> {
        // Canceled in Magento: skipped before it reached Sage, or voided there since.
        if self.canceled_before_posting(&env.merchant_id, key).await? {
            return Ok(Outcome::Skipped(
                ledger_mapping::reasons::CANCELED.to_string(),
            ));
        }
        if self.voided(&env.merchant_id, key).await? {
            return Ok(Outcome::AlreadyDone);
        }
        // A zero credit memo refunds nothing: `nothing_to_post` (docs/accounting.md).
        if ledger_mapping::round2(snapshot.creditmemo.grand_total).is_zero() {
            let detail = format!(
                "credit memo {} has a grand total of 0.00 {}: nothing to post",
                snapshot.creditmemo.increment_id,
                snapshot.document_currency()
            );
            return Err(Halt::Hold(
                ledger_mapping::reasons::NOTHING_TO_POST.into(),
                detail,
            ));
        }
        let (raw, settings) = self.settings(&env.merchant_id).await?;
        if self.posted(&env.merchant_id, key).await?.is_none() {
            // The merchant's sync policy: website, store view, cutover date.
            ledger_mapping::credit_memo_decision(snapshot, env.website_id, env.store_id, &settings)
                .map_err(Halt::mapping)?;
            // [money-in] Sage's base currency, read, never assumed (docs/accounting.md).
            self.check_base_currency(
                &env.merchant_id,
                snapshot.base_currency(),
                &format!("credit memo {}", snapshot.creditmemo.increment_id),
            )
            .await?;
        }
        // The invoice the credit memo names, else (Refund Offline from the order page has
        // no invoice_id) the order's invoices in Sage, oldest first.
        let originals: Vec<Posted> = match snapshot.creditmemo.invoice_id {
            Some(invoice_id) => match self.original_invoice(&env.merchant_id, invoice_id).await? {
                Some(found) => vec![found],
                // The invoice is not in Sage yet: wait for it rather than credit a
                // document Sage has never seen.
                None => {
                    // Held rather than late: waiting would only end in a dead letter, so the
                    // credit memo follows its invoice's decision, saying which.
                    if let Some((invoice_key, reason, detail)) =
                        self.held_invoice(&env.merchant_id, invoice_id).await?
                    {
                        return Err(Halt::mapping(ledger_mapping::follow_invoice(
                            &invoice_key,
                            &reason,
                            &detail,
                        )));
                    }
                    return Err(Halt::Fail(ProcessError::transient(format!(
                        "original invoice (entity {invoice_id}) not synced yet"
                    ))));
                }
            },
            None => match self
                .order_invoices(&env.merchant_id, snapshot, delivery.attempt)
                .await?
            {
                Ok(found) => found,
                Err(followed) => {
                    return Err(Halt::mapping(followed));
                }
            },
        };
        let original = originals.first();
        let (credit_note, created) = match self.posted(&env.merchant_id, key).await? {
            Some(posted) => {
                ledger_runtime::audit::note_reference(&posted.reference);
                ledger_runtime::audit::note_sage_number(
                    posted.sage_number.as_deref().unwrap_or(""),
                );
                (posted, false)
            }
            None => {
                let original_ref = original.map(|o| OriginalInvoice {
                    sage_id: o.sage_id.clone(),
                    reference: o.number.clone(),
                    date: o.date,
                });
                let preflight = ledger_mapping::map_sales_credit_note(
                    snapshot,
                    &settings,
                    PREFLIGHT_CONTACT,
                    original_ref.as_ref(),
                )
                .map_err(Halt::mapping)?;
                // Locked periods: moved or held before the contact is asked for.
                let period = self
                    .period_date(&env.merchant_id, &raw, &preflight, "credit note")
                    .await?
                    .map_err(Halt::held)?;
                let contact = match original {
                    // Same contact as the original invoice, whatever the order says now (and
                    // the B2C fallback contact when the invoice was consolidated).
                    Some(invoice) => ContactRef {
                        contact_id: invoice.contact_id.clone(),
                        reference: String::new(),
                        currency: snapshot.document_currency().to_string(),
                        consolidated: false,
                    },
                    None => {
                        self.contact(
                            env,
                            delivery.stream_sequence,
                            snapshot.customer_key(),
                            snapshot.document_currency(),
                            &snapshot.order,
                            None,
                        )
                        .await?
                    }
                };
                let mut plan = ledger_mapping::map_sales_credit_note(
                    snapshot,
                    &settings,
                    &contact.contact_id,
                    original_ref.as_ref(),
                )
                .map_err(Halt::mapping)?;
                // Locked periods: the first open day when the books' day is locked.
                ledger_mapping::move_document_date(&mut plan.body, &period);
                plan.date = period.date();
                let date = plan.date;
                let entity_id = snapshot.creditmemo.entity_id;
                let posted = self
                    .post_document(env, delivery, key, entity_id, date, &contact, plan)
                    .await?;
                (posted, true)
            }
        };
        let settled = self
            .settle(
                env,
                delivery,
                key,
                snapshot,
                &raw,
                &settings,
                &credit_note,
                &originals,
            )
            .await?;
        Ok(if created || settled {
            Outcome::Applied
        } else {
            Outcome::AlreadyDone
        })
    }

    /// Settles a posted credit note once; returns whether anything was written to Sage.
    ///
    /// The decision (refund, allocation and its amounts, waiting, or nothing) is recorded
    /// before the Sage call, so a redelivery after an in-doubt call re-sends the very same
    /// request (same body, same idempotency id) instead of deciding again from an
    /// outstanding amount the first call may already have changed. Two things decide
    /// again: a credit memo that was waiting for its refund (pending at the gateway) and
    /// arrives as refunded, and a plan Sage refused for its amount (state `redecide`; the
    /// next attempt gets its own idempotency id).
    ///
    /// This is also what a `creditmemo.refunded` event calls, with the credit memo's
    /// snapshot in state refunded: the waiting row is decided again and the refund posted.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        key: &str,
        snapshot: &CreditMemoSnapshot,
        raw: &Value,
        settings: &MerchantSettings,
        credit_note: &Posted,
        originals: &[Posted],
    ) -> Result<bool, ProcessError> {
        let merchant = env.merchant_id.as_str();
        let recorded: Option<(String, Decimal, String, Value, i32)> = sqlx::query_as(
            "SELECT kind, amount, state, allocations, attempt FROM credit_note_settlements WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_optional(self.db())
        .await?;
        let (kind, amount, allocations, attempt) = match recorded {
            Some((_, _, state, _, _)) if state == "done" => return Ok(false),
            Some((kind, amount, state, allocations, attempt))
                if state == "planned" && kind != SettlementKind::Waiting.as_str() =>
            {
                (
                    SettlementKind::parse(&kind).ok_or_else(|| {
                        ProcessError::permanent(
                            "settlement.corrupt",
                            format!("unknown settlement kind {kind}"),
                        )
                    })?,
                    amount,
                    allocations,
                    attempt,
                )
            }
            // New, waiting for a pending refund, or refused by Sage: decide (again).
            other => {
                let attempt = match &other {
                    Some((_, _, state, _, attempt)) if state == "redecide" => attempt + 1,
                    Some((_, _, _, _, attempt)) => *attempt,
                    None => 0,
                };
                let decision = self
                    .decide(merchant, snapshot, settings, credit_note, originals)
                    .await?;
                let state = match decision.kind {
                    SettlementKind::Nothing => "done",
                    _ => "planned",
                };
                sqlx::query(
                    "INSERT INTO credit_note_settlements (merchant_id, document_key, event_id, kind, amount, reason, state, allocations, left_on_account, attempt)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (merchant_id, document_key) DO UPDATE SET kind = $4, amount = $5, reason = $6, state = $7,
                        allocations = $8, left_on_account = $9, attempt = $10, decided_at = now()",
                )
                .bind(merchant)
                .bind(key)
                .bind(credit_note.event_id)
                .bind(decision.kind.as_str())
                .bind(decision.amount)
                .bind(decision.reason)
                .bind(state)
                .bind(&decision.allocations)
                .bind(decision.left_on_account)
                .bind(attempt)
                .execute(self.db())
                .await?;
                if matches!(
                    decision.kind,
                    SettlementKind::Nothing | SettlementKind::Waiting
                ) {
                    let detail = settlement_detail(
                        decision.kind,
                        decision.amount,
                        decision.left_on_account,
                        decision.reason,
                        &credit_note.currency,
                    );
                    ledger_runtime::audit::note_detail(&detail);
                    tracing::info!(
                        document = key,
                        reason = decision.reason,
                        detail,
                        "credit note left open: nothing to settle now"
                    );
                    return Ok(false);
                }
                (
                    decision.kind,
                    decision.amount,
                    decision.allocations,
                    attempt,
                )
            }
        };
        let left_on_account: Decimal = sqlx::query_scalar(
            "SELECT left_on_account FROM credit_note_settlements WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_one(self.db())
        .await?;

        let credit_ref = credit_note.sage_ref();
        let (base_step, resource, root, body) = match kind {
            SettlementKind::Refund => {
                let method = snapshot.order.payment.method.as_str();
                let currency = credit_note.currency.as_str();
                let defaults =
                    ledger_mapping::default_bank_accounts(raw).map_err(settings_error)?;
                // A card refund leaves from the clearing account its receipt went to (the
                // payments service owns those accounts); a mapped account wins, as for receipts.
                let mapped = ledger_mapping::deposit_bank_account(
                    settings,
                    &std::collections::BTreeMap::new(),
                    method,
                    currency,
                );
                let bank = match mapped {
                    Some(id) => id,
                    None if ledger_mapping::clearing_account_wanted(raw, settings, method) => {
                        let answer: ledger_rpc::ClearingAccount = ledger_rpc::ask(
                            &self.ctx.nats,
                            ledger_rpc::CLEARING_ACCOUNT_SUBJECT,
                            &ledger_rpc::ClearingAccountRequest {
                                merchant: merchant.to_string(),
                                method: method.to_string(),
                                currency: currency.to_string(),
                            },
                            PAYMENTS_RPC_TIMEOUT,
                        )
                        .await?;
                        answer.bank_account_id
                    }
                    None => {
                        ledger_mapping::deposit_bank_account(settings, &defaults, method, currency)
                            .ok_or_else(|| no_bank_account(method, currency))?
                    }
                };
                let plan = ledger_mapping::map_refund(snapshot, &credit_ref, settings, &bank)
                    .map_err(|e| match e {
                        MappingError::Invalid { field, reason } => ProcessError::invalid_field(
                            format!("mapping.{reason}"),
                            field.clone(),
                            format!("{field}: {reason}"),
                        ),
                        // The decision said money went back; the mapper disagreeing is a bug to look at.
                        MappingError::Skipped { reason, detail } => {
                            ProcessError::permanent(format!("settlement.{reason}"), detail)
                        }
                    })?;
                (STEP_REFUND, plan.resource, plan.root, plan.body)
            }
            SettlementKind::Allocation => {
                let invoices = planned_invoices(&allocations, originals)?;
                // Never before any document: the latest of their Sage dates and the
                // credit memo's day in the books.
                let settled_on = settings
                    .accounting_date(snapshot.creditmemo.created_at)
                    .map_err(|e| {
                        ProcessError::invalid_field(
                            format!("mapping.{}", e.reason()),
                            "settings.timezone",
                            e.to_string(),
                        )
                    })?;
                let latest_invoice = invoices
                    .iter()
                    .map(|(p, _)| p.date)
                    .max()
                    .unwrap_or(credit_note.date);
                let date =
                    ledger_mapping::allocation_date(latest_invoice, credit_note.date, settled_on);
                let pairs: Vec<(SageDocumentRef, Decimal)> =
                    invoices.iter().map(|(p, a)| (p.sage_ref(), *a)).collect();
                let plan = ledger_mapping::map_credit_allocation(&pairs, &credit_ref, date)
                    .map_err(|e| {
                        ProcessError::invalid_field(
                            format!("mapping.{}", e.reason()),
                            "allocation",
                            e.to_string(),
                        )
                    })?;
                (STEP_ALLOCATION, plan.resource, plan.root, plan.body)
            }
            SettlementKind::Nothing | SettlementKind::Waiting => return Ok(false),
        };
        // A plan decided again after Sage refused its amount is a new request.
        let step = if attempt > 0 {
            format!("{base_step}#{attempt}")
        } else {
            base_step.to_string()
        };
        let step = step.as_str();
        // Locked periods: the credit note is in Sage, so its refund or allocation is never
        // held; one dated in a locked period goes on the first open day.
        let mut body = body;
        let sent = body_date(&body).unwrap_or(credit_note.date);
        let period = self.periods.get(&self.ctx.sage, merchant).await?;
        let moved = ledger_mapping::open_period_date(
            sent,
            &period,
            ledger_mapping::LockedPeriod::MoveToFirstOpenDay,
            base_step,
        )
        .map_err(|e| ProcessError::permanent("settlement.period", e.to_string()))?;
        ledger_mapping::move_payment_date(&mut body, &moved);
        let idempotency_id = sage_client::idempotency_id(&credit_note.event_id, step);
        let fresh = journal::record_intent(
            self.db(),
            merchant,
            credit_note.event_id,
            step,
            &idempotency_id,
            delivery.stream_sequence,
        )
        .await?;
        let response = self
            .ctx
            .sage
            .post(merchant, resource, root, body, Some(&idempotency_id))
            .await;
        if let Err(e) = &response {
            ledger_rpc::withdraw_unapplied_intent(
                self.db(),
                fresh,
                merchant,
                credit_note.event_id,
                step,
                e,
            )
            .await?;
        }
        let response = match response {
            Ok(response) => response,
            Err(e) if is_amount_refusal(&e) => {
                // Rule "a settlement Sage refuses for its amount is decided again": the
                // outstanding amount moved since the plan (a receipt, another credit note,
                // a bookkeeper's allocation); the next delivery reads it again.
                sqlx::query(
                    "UPDATE credit_note_settlements SET state = 'redecide' WHERE merchant_id = $1 AND document_key = $2 AND state = 'planned'",
                )
                .bind(merchant)
                .bind(key)
                .execute(self.db())
                .await?;
                tracing::info!(document = key, error = %e, "Sage refused the settlement's amount; deciding again");
                return Err(ProcessError::Transient {
                    message: format!("Sage refused the settlement of {key} for its amount ({e}); deciding again from Sage's outstanding amounts"),
                    retry_after: Some(Duration::from_millis(200)),
                });
            }
            Err(e) => {
                return Err(self
                    .periods
                    .refusal(&self.ctx.sage, merchant, moved.date(), e)
                    .await)
            }
        };
        let sage_id = response
            .id()
            .ok_or_else(|| ProcessError::transient("Sage answered without an id"))?
            .to_string();
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "UPDATE credit_note_settlements SET state = 'done', sage_id = $3, settled_at = now()
             WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .bind(&sage_id)
        .execute(&mut *tx)
        .await?;
        journal::record_done(
            &mut tx,
            merchant,
            credit_note.event_id,
            step,
            Some(&sage_id),
            response.request_id.as_deref(),
        )
        .await?;
        tx.commit().await?;
        let detail = settlement_detail(kind, amount, left_on_account, None, &credit_note.currency);
        ledger_runtime::audit::note_detail(&detail);
        tracing::info!(
            document = key,
            credit_note = credit_note.sage_id,
            kind = kind.as_str(),
            %amount,
            %left_on_account,
            sage_id,
            "credit note settled"
        );
        Ok(true)
    }

    /// The settlement of a credit note: [`ledger_mapping::settlement_rule`] from the credit
    /// memo's state and the method's timing, then, where it depends on them, Sage's
    /// outstanding amounts on the order's invoices (oldest first).
    async fn decide(
        &self,
        merchant: &str,
        snapshot: &CreditMemoSnapshot,
        settings: &MerchantSettings,
        credit_note: &Posted,
        originals: &[Posted],
    ) -> Result<Decision, ProcessError> {
        let rule = ledger_mapping::settlement_rule(
            snapshot.creditmemo.state,
            settings.method_timing(&snapshot.order.payment.method),
        );
        let needs_outstanding = matches!(
            rule,
            SettlementRule::Allocate | SettlementRule::RefundWhenSettled
        );
        let mut outstanding = Vec::new();
        if needs_outstanding {
            // Sage's outstanding amounts, not ours: receipts, earlier credit notes and
            // anything the merchant did in Sage by hand have all moved them.
            for invoice in originals {
                outstanding.push(self.outstanding(merchant, &invoice.sage_id).await?);
            }
        }
        let nothing = |kind, reason| Decision {
            kind,
            amount: Decimal::ZERO,
            reason: Some(reason),
            allocations: Value::Array(Vec::new()),
            left_on_account: credit_note.total,
        };
        Ok(
            match ledger_mapping::credit_note_settlement(rule, credit_note.total, &outstanding) {
                Settlement::Refund => Decision {
                    kind: SettlementKind::Refund,
                    amount: credit_note.total,
                    reason: None,
                    allocations: Value::Array(Vec::new()),
                    left_on_account: Decimal::ZERO,
                },
                Settlement::Waiting => nothing(
                    SettlementKind::Waiting,
                    ledger_mapping::reasons::REFUND_PENDING,
                ),
                Settlement::Nothing { reason } => nothing(SettlementKind::Nothing, reason),
                Settlement::Allocate {
                    amounts,
                    left_on_account,
                } => {
                    let allocations: Vec<Value> = originals
                        .iter()
                        .zip(&amounts)
                        .filter(|(_, a)| !a.is_zero())
                        .map(|(p, a)| serde_json::json!({"invoice": p.sage_id, "amount": a.to_string()}))
                        .collect();
                    Decision {
                        kind: SettlementKind::Allocation,
                        amount: amounts.iter().sum(),
                        reason: (!left_on_account.is_zero())
                            .then_some(ledger_mapping::reasons::LEFT_ON_ACCOUNT),
                        allocations: Value::Array(allocations),
                        left_on_account,
                    }
                }
            },
        )
    }

    /// True when the document was recorded as skipped because Magento canceled it first.
    async fn canceled_before_posting(
        &self,
        merchant: &str,
        key: &str,
    ) -> Result<bool, ProcessError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM skipped_documents WHERE merchant_id = $1 AND document_key = $2 AND reason = $3",
        )
        .bind(merchant)
        .bind(key)
        .bind(ledger_mapping::reasons::CANCELED)
        .fetch_one(self.db())
        .await?
            > 0)
    }

    /// True when this service has voided the document in Sage.
    async fn voided(&self, merchant: &str, key: &str) -> Result<bool, ProcessError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM documents WHERE merchant_id = $1 AND document_key = $2 AND voided_at IS NOT NULL",
        )
        .bind(merchant)
        .bind(key)
        .fetch_one(self.db())
        .await?
            > 0)
    }

    /// `invoice.canceled`: voids the Sage invoice, its receipts removed first by the payments
    /// service (Sage refuses to void an invoice with payments); an invoice that never reached
    /// Sage is recorded as skipped with reason `canceled`.
    async fn invoice_canceled(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &InvoiceCanceledSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let key = snapshot.document_key();
        ledger_runtime::audit::note_document(&key);
        let increment = &snapshot.invoice.increment_id;
        let Some(posted) = self.posted(&env.merchant_id, &key).await? else {
            let detail = canceled_detail("invoice", increment, snapshot.was_paid());
            return self
                .record_skip(
                    env,
                    &key,
                    ledger_mapping::reasons::CANCELED,
                    &detail,
                    snapshot.invoice.entity_id,
                )
                .await;
        };
        ledger_runtime::audit::note_reference(&posted.reference);
        if self.voided(&env.merchant_id, &key).await? {
            return Ok(Outcome::AlreadyDone);
        }
        // The receipts first: the payments service owns them.
        let removed: ledger_rpc::RemovedReceipts = ledger_rpc::ask(
            &self.ctx.nats,
            ledger_rpc::REMOVE_RECEIPTS_SUBJECT,
            &ledger_rpc::RemoveReceiptsRequest {
                merchant: env.merchant_id.clone(),
                document_key: key.clone(),
                event_id: env.event_id.to_string(),
            },
            PAYMENTS_RPC_TIMEOUT,
        )
        .await?;
        if !removed.removed.is_empty() {
            tracing::info!(document = key, receipts = ?removed.removed, "receipts removed before the void");
        }
        let reason = void_reason("invoice", increment, snapshot.was_paid());
        self.void_in_sage(env, delivery, &key, &posted, "sales_invoices", &reason)
            .await
    }

    /// `creditmemo.canceled` (a refund the gateway declined): voids the Sage credit note. What
    /// already settled it, a customer refund or an allocation to its invoice, is deleted first,
    /// so the invoice owes again what Magento says it owes (decision 0019).
    async fn credit_memo_canceled(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        snapshot: &CreditMemoStateSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let key = snapshot.document_key();
        ledger_runtime::audit::note_document(&key);
        let increment = &snapshot.creditmemo.increment_id;
        let merchant = env.merchant_id.as_str();
        let Some(posted) = self.posted(merchant, &key).await? else {
            let detail = canceled_detail("credit memo", increment, false);
            return self
                .record_skip(
                    env,
                    &key,
                    ledger_mapping::reasons::CANCELED,
                    &detail,
                    snapshot.creditmemo.entity_id,
                )
                .await;
        };
        ledger_runtime::audit::note_reference(&posted.reference);
        if self.voided(merchant, &key).await? {
            return Ok(Outcome::AlreadyDone);
        }
        let settled: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT kind, state, sage_id FROM credit_note_settlements WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(&key)
        .fetch_optional(self.db())
        .await?;
        if let Some((kind, state, Some(sage_id))) = settled {
            if state == "done" {
                let path = match SettlementKind::parse(&kind) {
                    Some(SettlementKind::Refund) => Some(format!("contact_payments/{sage_id}")),
                    Some(SettlementKind::Allocation) => {
                        Some(format!("contact_allocations/{sage_id}"))
                    }
                    _ => None,
                };
                if let Some(path) = path {
                    journal::record_intent(
                        self.db(),
                        merchant,
                        env.event_id,
                        STEP_UNSETTLE,
                        &sage_client::idempotency_id(&env.event_id, STEP_UNSETTLE),
                        delivery.stream_sequence,
                    )
                    .await?;
                    match self.ctx.sage.delete(merchant, &path, &[]).await {
                        Ok(_) => {}
                        // Already gone: an earlier attempt, or deleted in Sage by hand.
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(ledger_rpc::sage_error_to_process(e)),
                    }
                    // The settlement row stays as it was: once the credit note is voided
                    // (`documents.voided_at`) nothing settles it again, and a redelivery
                    // before the void deletes again (Sage's 404 counts as done).
                    let mut tx = self.db().begin().await?;
                    journal::record_done(
                        &mut tx,
                        merchant,
                        env.event_id,
                        STEP_UNSETTLE,
                        Some(&sage_id),
                        None,
                    )
                    .await?;
                    tx.commit().await?;
                    tracing::info!(
                        document = key,
                        kind,
                        sage_id,
                        "credit note settlement removed before the void"
                    );
                }
            }
        }
        let reason = void_reason("credit memo", increment, false);
        self.void_in_sage(env, delivery, &key, &posted, "sales_credit_notes", &reason)
            .await
    }

    /// Voids a posted document in Sage once (journaled) and marks its cross-reference voided.
    async fn void_in_sage(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        key: &str,
        posted: &Posted,
        resource: &str,
        reason: &str,
    ) -> Result<Outcome, ProcessError> {
        let merchant = env.merchant_id.as_str();
        let path = format!("{resource}/{}", posted.sage_id);
        let state = journal::step_state(self.db(), merchant, env.event_id, STEP_VOID).await?;
        let already_void = match state {
            StepState::InDoubt => self.void_in_sage_already(merchant, &path).await?,
            _ => false,
        };
        if !already_void {
            let fresh = journal::record_intent(
                self.db(),
                merchant,
                env.event_id,
                STEP_VOID,
                &sage_client::idempotency_id(&env.event_id, STEP_VOID),
                delivery.stream_sequence,
            )
            .await?;
            if let Err(e) = self.ctx.sage.void(merchant, &path, reason).await {
                ledger_rpc::withdraw_unapplied_intent(
                    self.db(),
                    fresh,
                    merchant,
                    env.event_id,
                    STEP_VOID,
                    &e,
                )
                .await?;
                // Sage keeps a voided document and refuses a second void: an earlier attempt
                // that landed is adopted; a payment still allocated (one posted while the
                // receipts were being removed, or one entered in Sage by hand) is retried, the
                // receipts being asked for again, and named if it stays.
                if e.status() == Some(422) && self.void_in_sage_already(merchant, &path).await? {
                    tracing::info!(document = key, "already voided in Sage; adopting it");
                } else if e.status() == Some(422) {
                    return Err(ProcessError::transient(format!(
                        "Sage refused to void {resource}/{} ({e}); payments or allocations are \
                         still on it: delete those in Sage if they were entered by hand",
                        posted.sage_id
                    )));
                } else {
                    return Err(ledger_rpc::sage_error_to_process(e));
                }
            }
        }
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "UPDATE documents SET voided_at = now(), void_reason = $3 WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        journal::record_done(
            &mut tx,
            merchant,
            env.event_id,
            STEP_VOID,
            Some(&posted.sage_id),
            None,
        )
        .await?;
        tx.commit().await?;
        ledger_runtime::audit::note_detail(reason);
        tracing::info!(
            document = key,
            sage_id = posted.sage_id,
            reason,
            "document voided in Sage"
        );
        Ok(Outcome::Applied)
    }

    /// Whether Sage already shows the document voided (it keeps voided documents with their
    /// `void_reason`).
    async fn void_in_sage_already(&self, merchant: &str, path: &str) -> Result<bool, ProcessError> {
        let response = self
            .ctx
            .sage
            .get(merchant, path, &[])
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        Ok(is_void(&response.body))
    }

    /// What Sage says is still outstanding on a sales invoice.
    async fn outstanding(
        &self,
        merchant: &str,
        invoice_sage_id: &str,
    ) -> Result<Decimal, ProcessError> {
        let response = self
            .ctx
            .sage
            .get(merchant, &format!("sales_invoices/{invoice_sage_id}"), &[])
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let value = response.body.get("outstanding_amount");
        value
            .and_then(|v| match v {
                Value::String(s) => s.trim().parse::<Decimal>().ok(),
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                _ => None,
            })
            .ok_or_else(|| ProcessError::Transient {
                message: format!("Sage invoice {invoice_sage_id} answered without a readable outstanding_amount ({value:?})"),
                retry_after: None,
            })
    }
}

/// A Sage amount (a string or a number), if it reads as one.
fn decimal_of(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.trim().parse::<Decimal>().ok(),
        Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
        _ => None,
    }
}

/// A cross-reference row: sage_id, contact_id, reference, currency, total, exchange_rate,
/// document_date, event_id, sage_number, number.
type PostedRow = (
    String,
    String,
    String,
    String,
    Decimal,
    Decimal,
    NaiveDate,
    Uuid,
    Option<String>,
    String,
);

fn posted_from_row(row: PostedRow) -> Posted {
    let (
        sage_id,
        contact_id,
        reference,
        currency,
        total,
        exchange_rate,
        date,
        event_id,
        sage_number,
        number,
    ) = row;
    Posted {
        sage_id,
        contact_id,
        reference,
        currency,
        total,
        exchange_rate,
        date,
        event_id,
        sage_number,
        number,
    }
}

/// A settlement as decided, before it is recorded.
struct Decision {
    kind: SettlementKind,
    amount: Decimal,
    reason: Option<&'static str>,
    /// `[{"invoice": <Sage id>, "amount": "<amount>"}]`, oldest invoice first.
    allocations: Value,
    left_on_account: Decimal,
}

/// The invoices and amounts of a recorded allocation, found among the order's posted
/// invoices.
fn planned_invoices<'a>(
    allocations: &Value,
    originals: &'a [Posted],
) -> Result<Vec<(&'a Posted, Decimal)>, ProcessError> {
    let corrupt = |what: String| ProcessError::permanent("settlement.corrupt", what);
    let list = allocations
        .as_array()
        .ok_or_else(|| corrupt(format!("allocations are not a list: {allocations}")))?;
    if list.is_empty() {
        return Err(ProcessError::permanent(
            "settlement.no_invoice",
            "allocation planned without an invoice",
        ));
    }
    list.iter()
        .map(|a| {
            let id = a["invoice"].as_str().unwrap_or_default();
            let amount = a["amount"]
                .as_str()
                .and_then(|s| s.parse::<Decimal>().ok())
                .ok_or_else(|| corrupt(format!("allocation amount unreadable: {a}")))?;
            let invoice = originals
                .iter()
                .find(|p| p.sage_id == id)
                .ok_or_else(|| corrupt(format!("allocation to unknown invoice {id}")))?;
            Ok((invoice, amount))
        })
        .collect()
}

pub use ledger_rpc::is_amount_refusal;

/// What the module shows beside a credit note's status: refunded, allocated (and what was
/// left on account), waiting for the refund, or left on account.
fn settlement_detail(
    kind: SettlementKind,
    amount: Decimal,
    left_on_account: Decimal,
    reason: Option<&str>,
    currency: &str,
) -> String {
    let money = |d: Decimal| format!("{} {currency}", ledger_mapping::round2(d));
    match kind {
        SettlementKind::Refund => format!("refunded {}", money(amount)),
        SettlementKind::Allocation if left_on_account.is_zero() => {
            format!("allocated {} to the invoice", money(amount))
        }
        SettlementKind::Allocation => format!(
            "allocated {} to the invoice; {} left on account",
            money(amount),
            money(left_on_account)
        ),
        SettlementKind::Waiting => {
            "waiting for the refund (pending at the payment gateway)".to_string()
        }
        SettlementKind::Nothing => format!(
            "{} left on account ({})",
            money(left_on_account),
            reason.unwrap_or("nothing to settle")
        ),
    }
}

use ledger_rpc::period::body_date;

fn settings_error(e: MappingError) -> ProcessError {
    match e {
        MappingError::Invalid { field, reason } => ProcessError::invalid_field(
            "settings.invalid",
            field.clone(),
            format!("{field} is {reason}, not a currency → bank account id map"),
        ),
        other => ProcessError::permanent("settings.invalid", other.to_string()),
    }
}

/// The `void_reason` sent to Sage (at most 200 characters; a Magento increment id is short).
pub fn void_reason(what: &str, increment_id: &str, after_capture: bool) -> String {
    if after_capture {
        format!("Magento {what} {increment_id} voided after capture")
    } else {
        format!("Magento {what} {increment_id} canceled")
    }
}

/// The detail of a document skipped because Magento canceled it before it reached Sage.
pub fn canceled_detail(what: &str, increment_id: &str, after_capture: bool) -> String {
    let how = if after_capture { "voided" } else { "canceled" };
    format!("{what} {increment_id} was {how} in Magento before it reached Sage; nothing to post")
}

/// True for a Sage document that has been voided (status VOID or a `void_reason`).
pub fn is_void(document: &Value) -> bool {
    document["status"]["id"].as_str() == Some("VOID")
        || document
            .get("void_reason")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
}

/// The permanent failure for a refund with no Sage bank account in its currency.
pub fn no_bank_account(method: &str, currency: &str) -> ProcessError {
    ProcessError::Permanent {
        code: NO_BANK_ACCOUNT.into(),
        field: Some(format!("bank_accounts.{currency}")),
        message: format!(
            "no Sage bank account in {currency} to refund payment method {method} through: add a {currency} bank \
             account in Sage (and reconnect) or set payment_methods.{method}.bank_account_ids.{currency}"
        ),
        detail: serde_json::json!({ "currency": currency, "method": method }),
    }
}

#[async_trait::async_trait]
impl Projection for Documents {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        let env = ledger_rpc::parse_delivery(delivery)?;
        match &env.payload {
            Payload::InvoiceCreated(snapshot) => {
                self.invoice_created(&env, delivery, snapshot).await
            }
            Payload::CreditMemoCreated(snapshot) => {
                self.credit_memo_created(&env, delivery, snapshot).await
            }
            Payload::InvoiceCanceled(snapshot) => {
                self.invoice_canceled(&env, delivery, snapshot).await
            }
            Payload::CreditMemoCanceled(snapshot) => {
                self.credit_memo_canceled(&env, delivery, snapshot).await
            }
            // A pending refund completed at the gateway: the credit memo as a re-published
            // `creditmemo.created` in state refunded (a waiting settlement is decided again).
            Payload::CreditMemoRefunded(snapshot) => {
                let refunded = CreditMemoSnapshot {
                    creditmemo: snapshot.creditmemo.clone(),
                    order: snapshot.order.clone(),
                };
                self.credit_memo_created(&env, delivery, &refunded).await
            }
            other => Ok(Outcome::Skipped(format!(
                "not_handled:{}",
                other.event_type().as_str()
            ))),
        }
    }
}

/// The durable consumer of this service.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::for_service(
        SERVICE,
        &[
            "magento.*.invoice.created",
            "magento.*.creditmemo.created",
            "magento.*.invoice.canceled",
            "magento.*.creditmemo.canceled",
            "magento.*.creditmemo.refunded",
        ],
    )
}

pub use ledger_rpc::Running;

/// Starts the consumer; returns once it accepts work.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = ServiceContext::connect(&config.service, SERVICE).await?;
    let db = ctx.db.clone();
    let lookups = ledger_rpc::endpoint(
        ledger_rpc::DOCUMENT_LOOKUP_SUBJECT,
        move |req: ledger_rpc::DocumentLookupRequest| {
            let db = db.clone();
            async move { lookup(&db, &req.merchant, &req.document_key).await }
        },
    );
    let db = ctx.db.clone();
    let held_documents = ledger_rpc::endpoint(
        ledger_rpc::HELD_DOCUMENTS_SUBJECT,
        move |req: ledger_rpc::HeldDocumentsRequest| {
            let db = db.clone();
            async move { held(&db, &req.merchant).await }
        },
    );
    let builder = ctx.builder();
    let documents = Arc::new(Documents {
        known_contacts: std::sync::Mutex::new(ledger_runtime::cache::per_customer()),
        periods: ctx.open_periods(),
        ctx,
    });
    let reissuer = documents.clone();
    let reissues = ledger_rpc::endpoint(
        ledger_rpc::REISSUE_SUBJECT,
        move |req: ledger_rpc::ReissueRequest| {
            let documents = reissuer.clone();
            async move { documents.reissue(req).await }
        },
    );
    builder
        .migrations(sqlx::migrate!("./migrations"))
        .endpoint(lookups)
        .endpoint(held_documents)
        .endpoint(reissues)
        .consumer(SERVICE, consumer_spec(), documents)
        .start(shutdown)
        .await
}

/// Runs until `shutdown` fires and the consumer has drained.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// The merchant's documents kept out of Sage on purpose, zero documents (`zero_value`,
/// `nothing_to_post`) included: reconciliation explains every document Sage does not have; the portal lists
/// only those with something to fix.
async fn held(db: &PgPool, merchant: &str) -> Result<Vec<ledger_rpc::HeldDocument>, RpcError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT document_key, event_id::text, reason, detail FROM skipped_documents
         WHERE merchant_id = $1 ORDER BY skipped_at",
    )
    .bind(merchant)
    .fetch_all(db)
    .await
    .map_err(|e| RpcError::from_process_error(&ProcessError::from(e)))?;
    Ok(rows
        .into_iter()
        .map(
            |(document_key, event_id, reason, detail)| ledger_rpc::HeldDocument {
                document_key,
                event_id,
                reason,
                detail,
            },
        )
        .collect())
}

/// [money-in] The reason and detail of a document held by policy (`zero_value` and
/// `nothing_to_post` are not holds: a zero invoice's payment is skipped on its own).
async fn held_reason(db: &PgPool, merchant: &str, key: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT reason, detail FROM skipped_documents
         WHERE merchant_id = $1 AND document_key = $2 AND reason NOT IN ('nothing_to_post', 'zero_value')",
    )
    .bind(merchant)
    .bind(key)
    .fetch_optional(db)
    .await
    .ok()
    .flatten()
}

async fn lookup(db: &PgPool, merchant: &str, key: &str) -> Result<DocumentRef, RpcError> {
    type LookupRow = (
        String,
        String,
        String,
        String,
        Decimal,
        Decimal,
        Option<Value>,
    );
    let failed = |e: sqlx::Error| RpcError::from_process_error(&ProcessError::from(e));
    let row: Option<LookupRow> = sqlx::query_as(
        "SELECT resource, sage_id, contact_id, currency, total, exchange_rate, posted_lines FROM documents WHERE merchant_id = $1 AND document_key = $2 AND voided_at IS NULL",
    )
    .bind(merchant)
    .bind(key)
    .fetch_optional(db)
    .await
    .map_err(failed)?;
    match row {
        Some((resource, sage_id, contact_id, currency, total, exchange_rate, lines)) => {
            let reissue = reissue::recorded(db, merchant, key).await.map_err(failed)?;
            // A re-issue under way moves the invoice in Sage: nothing is known exactly then.
            let credited =
                if resource == "sales_invoices" && reissue.as_ref().is_none_or(|r| r.done) {
                    credited_to_invoice(db, merchant, &sage_id)
                        .await
                        .map_err(failed)?
                } else {
                    None
                };
            Ok(DocumentRef {
                resource,
                sage_id,
                contact_id,
                currency,
                total,
                exchange_rate,
                lines: lines.and_then(|l| serde_json::from_value(l).ok()),
                reissue,
                credited,
            })
        }
        // [money-in] A document held by policy is not "not synced yet": the payments service
        // records its payment `invoice_held` instead of waiting for it.
        None => {
            if let Some((reason, detail)) = held_reason(db, merchant, key).await {
                return Err(RpcError {
                    class: ErrorClass::NotFound,
                    code: ledger_rpc::DOCUMENT_HELD.into(),
                    message: format!("{key} is held ({reason}): {detail}"),
                    field: None,
                    detail: serde_json::json!({ "reason": reason, "detail": detail }),
                    retry_after_ms: None,
                });
            }
            Err(RpcError {
                class: ErrorClass::NotFound,
                code: "document.not_synced".into(),
                message: format!("{key} is not in Sage yet"),
                field: None,
                detail: serde_json::Value::Null,
                retry_after_ms: None,
            })
        }
    }
}

/// What this service has allocated to the Sage invoice `invoice_sage_id` with credit notes,
/// when it knows it exactly ([`ledger_rpc::DocumentRef::credited`]); see
/// [`credited_amount`] for which settlements count.
async fn credited_to_invoice(
    db: &PgPool,
    merchant: &str,
    invoice_sage_id: &str,
) -> Result<Option<Decimal>, sqlx::Error> {
    // Every allocation decided for the invoice, with whether its credit note's cancel has
    // removed it from Sage (the unsettle step done with its id) or is under way (an unsettle
    // step not done: which credit note it is for is not known until it is).
    let rows: Vec<(String, Value, bool, bool)> = sqlx::query_as(
        "SELECT s.state, s.allocations,
                EXISTS (SELECT 1 FROM sync_steps j WHERE j.merchant_id = s.merchant_id
                        AND j.step = $3 AND j.state = 'done' AND j.sage_id = s.sage_id),
                EXISTS (SELECT 1 FROM sync_steps j WHERE j.merchant_id = s.merchant_id
                        AND j.step = $3 AND j.state <> 'done')
         FROM credit_note_settlements s
         WHERE s.merchant_id = $1 AND s.kind = 'allocation'
           AND s.allocations @> jsonb_build_array(jsonb_build_object('invoice', $2::text))",
    )
    .bind(merchant)
    .bind(invoice_sage_id)
    .bind(STEP_UNSETTLE)
    .fetch_all(db)
    .await?;
    Ok(credited_amount(
        invoice_sage_id,
        rows.iter()
            .map(|(state, allocations, removed, removing)| CreditAllocation {
                state,
                allocations,
                removed: *removed,
                removing: *removing,
            }),
    ))
}

/// One credit note's allocation decision that names an invoice, as this service recorded it.
struct CreditAllocation<'a> {
    /// `credit_note_settlements.state`: `planned`, `done` or `redecide`.
    state: &'a str,
    /// `credit_note_settlements.allocations`: `[{"invoice", "amount"}]`.
    allocations: &'a Value,
    /// Its credit note was canceled and the allocation deleted from Sage.
    removed: bool,
    /// A credit note's settlement is being removed from Sage (not known which).
    removing: bool,
}

/// The sum allocated to `invoice_sage_id` by the given decisions, when exact: a decision Sage
/// has confirmed (`done`) counts with its amount, one removed again counts nothing; one not
/// confirmed (`planned`: the call may or may not have landed; `redecide`: Sage refused it and
/// it is decided again), a removal under way or an unreadable amount makes the sum unknown.
fn credited_amount<'a>(
    invoice_sage_id: &str,
    decisions: impl IntoIterator<Item = CreditAllocation<'a>>,
) -> Option<Decimal> {
    let mut sum = Decimal::ZERO;
    for decision in decisions {
        if decision.removing || decision.state != "done" {
            return None;
        }
        if decision.removed {
            continue;
        }
        for entry in decision.allocations.as_array()? {
            if entry.get("invoice").and_then(Value::as_str) == Some(invoice_sage_id) {
                let amount = entry.get("amount").and_then(decimal_of)?;
                sum += amount;
            }
        }
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settlement_kinds_round_trip_through_their_stored_names() {
        for kind in [
            SettlementKind::Refund,
            SettlementKind::Allocation,
            SettlementKind::Nothing,
            SettlementKind::Waiting,
        ] {
            assert_eq!(SettlementKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SettlementKind::parse("void"), None);
    }

    #[test]
    fn settlement_steps_get_their_own_idempotency_ids() {
        let event = Uuid::new_v4();
        let ids = [
            sage_client::idempotency_id(&event, "sales_credit_notes"),
            sage_client::idempotency_id(&event, STEP_REFUND),
            sage_client::idempotency_id(&event, STEP_ALLOCATION),
        ];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_ne!(ids[1], ids[2]);
    }

    #[test]
    fn void_reasons_say_what_happened_and_fit_sage() {
        assert_eq!(
            void_reason("invoice", "000000012", true),
            "Magento invoice 000000012 voided after capture"
        );
        assert_eq!(
            void_reason("credit memo", "000000003", false),
            "Magento credit memo 000000003 canceled"
        );
        // Sage's limit is 200 characters; Magento increment ids are at most 50.
        assert!(void_reason("credit memo", &"9".repeat(50), true).len() <= 200);
        assert!(canceled_detail("invoice", "000000012", false).contains("canceled in Magento"));
        assert!(canceled_detail("invoice", "000000012", true).contains("voided in Magento"));
    }

    #[test]
    fn void_documents_are_recognised() {
        use serde_json::json;
        assert!(is_void(
            &json!({"status": {"id": "VOID"}, "void_reason": null})
        ));
        assert!(is_void(
            &json!({"status": {"id": "UNPAID"}, "void_reason": "x"})
        ));
        assert!(!is_void(
            &json!({"status": {"id": "PAID"}, "void_reason": null})
        ));
        assert!(!is_void(
            &json!({"status": {"id": "UNPAID"}, "void_reason": ""})
        ));
    }

    #[test]
    fn missing_bank_account_names_the_currency() {
        let e = no_bank_account("stripe_payments", "CHF");
        assert_eq!(e.code(), NO_BANK_ACCOUNT);
        assert!(e.to_string().contains("CHF"), "{e}");
    }

    #[test]
    fn the_settlement_detail_says_refunded_allocated_or_left_on_account() {
        let dec = Decimal::from;
        let cases = [
            (
                SettlementKind::Refund,
                dec(30),
                dec(0),
                None,
                "refunded 30.00 GBP",
            ),
            (
                SettlementKind::Allocation,
                dec(30),
                dec(0),
                None,
                "allocated 30.00 GBP to the invoice",
            ),
            (
                SettlementKind::Allocation,
                dec(30),
                dec(15),
                Some("left_on_account"),
                "allocated 30.00 GBP to the invoice; 15.00 GBP left on account",
            ),
            (
                SettlementKind::Waiting,
                dec(0),
                dec(30),
                Some("refund_pending"),
                "waiting for the refund (pending at the payment gateway)",
            ),
            (
                SettlementKind::Nothing,
                dec(0),
                dec(60),
                Some("no_parent_invoice"),
                "60.00 GBP left on account (no_parent_invoice)",
            ),
        ];
        for (kind, amount, left, reason, want) in cases {
            assert_eq!(settlement_detail(kind, amount, left, reason, "GBP"), want);
        }
    }

    #[test]
    fn credited_amount_counts_only_what_sage_confirmed() {
        let allocations = serde_json::json!([
            {"invoice": "inv-1", "amount": "20.00"},
            {"invoice": "inv-2", "amount": "5.50"}
        ]);
        let other = serde_json::json!([{"invoice": "inv-1", "amount": "3.25"}]);
        let decision = |state, allocations, removed, removing| CreditAllocation {
            state,
            allocations,
            removed,
            removing,
        };
        // No credit note: nothing credited, exactly.
        assert_eq!(credited_amount("inv-1", []), Some(Decimal::ZERO));
        // Two confirmed allocations to inv-1: 20.00 + 3.25; inv-2's share is not inv-1's.
        assert_eq!(
            credited_amount(
                "inv-1",
                [
                    decision("done", &allocations, false, false),
                    decision("done", &other, false, false)
                ]
            ),
            Some(Decimal::new(2325, 2))
        );
        assert_eq!(
            credited_amount("inv-2", [decision("done", &allocations, false, false)]),
            Some(Decimal::new(550, 2))
        );
        // Removed by its credit note's cancel: counts nothing.
        assert_eq!(
            credited_amount(
                "inv-1",
                [
                    decision("done", &allocations, true, false),
                    decision("done", &other, false, false)
                ]
            ),
            Some(Decimal::new(325, 2))
        );
        // Not confirmed, refused, or a removal under way: unknown.
        for (state, removing) in [("planned", false), ("redecide", false), ("done", true)] {
            assert_eq!(
                credited_amount("inv-1", [decision(state, &allocations, false, removing)]),
                None,
                "{state} {removing}"
            );
        }
        let unreadable = serde_json::json!([{"invoice": "inv-1", "amount": "x"}]);
        assert_eq!(
            credited_amount("inv-1", [decision("done", &unreadable, false, false)]),
            None
        );
    }

    #[test]
    fn only_an_amount_refusal_is_decided_again() {
        let refusal = |message: &str| sage_client::SageError::Rejected {
            status: 422,
            errors: vec![sage_client::SageErrorItem {
                severity: "error".into(),
                data_code: "RecordInvalid".into(),
                message: message.into(),
                source: "contact_allocation.allocated_artefacts[0].amount".into(),
            }],
            request_id: None,
        };
        assert!(is_amount_refusal(&refusal(
            "amount: cannot exceed the outstanding amount (10.00)"
        )));
        assert!(is_amount_refusal(&refusal(
            "You can only pay unpaid or part-paid invoices."
        )));
        assert!(!is_amount_refusal(&refusal("date: is in a locked period")));
    }

    #[test]
    fn consumer_reads_invoices_and_credit_memos() {
        let spec = consumer_spec();
        assert_eq!(
            spec.filter_subjects,
            vec![
                "magento.*.invoice.created".to_string(),
                "magento.*.creditmemo.created".to_string(),
                "magento.*.invoice.canceled".to_string(),
                "magento.*.creditmemo.canceled".to_string(),
                "magento.*.creditmemo.refunded".to_string(),
            ]
        );
    }
}
