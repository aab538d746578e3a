//! Ledger's payments service: a Magento invoice that was paid becomes a Sage customer receipt
//! allocated to the Sage sales invoice, which is what turns the invoice paid in Sage (Sage
//! only changes an invoice's status through payments and allocations).
//!
//! For each `invoice.paid` event it:
//! 1. returns early if the receipt step of this event is already done (redelivery, replay);
//! 2. reads the merchant's settings; a net-terms method (cheque, bank transfer, purchase
//!    order, ...) is recorded as skipped, because Magento calls such invoices paid although no
//!    money moved, so the Sage invoice must stay open;
//! 3. holds the payment `base_currency_mismatch` when the order's base currency is not the
//!    Sage business's (read from `GET /financial_settings` with the open period);
//! 4. asks the documents service which Sage invoice the Magento invoice became. Until the
//!    invoice is there the event is retried with backoff (the payment waits for its invoice),
//!    and after the consumer's bounded number of attempts it is dead-lettered with the code
//!    [`INVOICE_NOT_SYNCED`]. An invoice the documents service *held* by policy is not
//!    waited for: the payment is recorded `invoice_held` with its event's stream sequence,
//!    and posted by itself when the invoice lands ([`ledger_rpc::INVOICE_LANDED_SUBJECT`],
//!    and a pass over the held payments at start);
//! 5. picks the bank account for the method and currency (none, or one in another currency
//!    not marked as taking foreign money: held `no_bank_account` / `bank_account_currency`,
//!    handled again by a retry once the settings are fixed), takes what is outstanding on the
//!    invoice from the engine's own records when they say it exactly (the invoice's total less
//!    the credit notes the documents service allocated to it and this service's receipts),
//!    else from Sage, and maps the receipt (pure functions in `ledger-mapping`: allocated up
//!    to the outstanding amount, the rest on account; the base amount received when Magento
//!    recorded one that differs from the invoice's rate);
//! 6. records the step's intent, POSTs to Sage with an idempotency id derived from the event
//!    id, and commits the Sage id with the step outcome in one transaction (a receipt Sage
//!    refuses as more than is outstanding, the invoice changed in Sage by hand, is mapped
//!    again once from Sage's figure);
//! 7. only then lets the consumer loop acknowledge the message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ledger_events::{Envelope, InvoicePaidSnapshot, Payload};
use ledger_mapping::{InvoiceRef, MappingError, MerchantSettings, ReceiptPlan};
use ledger_rpc::{
    mapping_outcome, DocumentLookupRequest, DocumentRef, ErrorClass, Reply, ServiceConfig,
    ServiceContext,
};
use ledger_runtime::bus::{self, ConsumerSpec};
use ledger_runtime::consumer::{self, Delivery, Handler, Outcome};
use ledger_runtime::journal::{self, StepState};
use ledger_runtime::service::Projection;
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::ProcessError;
use serde_json::Value;
use sqlx::PgPool;

/// Service name in metrics, logs and the durable consumer name.
pub const SERVICE: &str = "payments";

/// Journal step (and idempotency-id salt) of the receipt posted for an `invoice.paid` event.
pub const STEP: &str = "customer_receipt";

/// Journal step (and idempotency-id salt) of a receipt mapped again from Sage's outstanding
/// amount after Sage refused the first mapping's allocation: a request of its own.
pub const STEP_REREAD: &str = "customer_receipt#1";

/// Dead-letter code of a payment whose invoice never reached Sage within the retry budget.
pub const INVOICE_NOT_SYNCED: &str = "invoice_not_synced";

/// Dead-letter code of a payment for which no bank account is configured in its currency.
pub const NO_BANK_ACCOUNT: &str = "settings.no_bank_account";

/// Skip reason of a payment whose invoice Magento canceled or voided (its Sage invoice is voided
/// by the documents service, which first asks this service to remove the receipts).
pub const INVOICE_VOIDED: &str = "invoice_voided";

/// How long to wait for the documents service to answer a lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Configuration (flags or environment variables).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "payments", about = "Ledger payments service")]
pub struct Config {
    /// Settings shared by every consumer service.
    #[command(flatten)]
    pub service: ServiceConfig,
}

/// The merchant's settings as this service needs them: the mapping settings plus the
/// gateway's per-currency default bank accounts.
#[derive(Debug, Clone, Default)]
pub struct PaymentSettings {
    /// The mapping settings (payment method map, net-terms methods, ...).
    pub merchant: MerchantSettings,
    /// `bank_accounts` of the settings document: currency → Sage bank account id, as the
    /// gateway discovered them when the merchant connected (first account per currency).
    pub bank_accounts: BTreeMap<String, String>,
    /// `locked_period`: what happens to a receipt dated in a period Sage has locked.
    pub locked_period: ledger_mapping::LockedPeriod,
    /// Each Sage bank account's currency and the accounts that take foreign money.
    pub bank_facts: ledger_mapping::BankAccountFacts,
    /// The raw settings document (for rules reading keys of their own).
    pub raw: Value,
}

impl PaymentSettings {
    /// Decodes a raw settings document. `MerchantSettings` ignores keys it does not know, so
    /// the same document yields both parts; the bank accounts are read by the same pure
    /// function the documents service uses for refunds.
    pub fn from_raw(merchant: &str, raw: &Value) -> Result<Self, ProcessError> {
        let settings: MerchantSettings = serde_json::from_value(raw.clone()).map_err(|e| {
            ProcessError::permanent(
                "settings.invalid",
                format!("merchant {merchant} settings: {e}"),
            )
        })?;
        let bank_accounts = ledger_mapping::default_bank_accounts(raw).map_err(|e| match e {
            MappingError::Invalid { field, reason } => ProcessError::invalid_field(
                "settings.invalid",
                field.clone(),
                format!("merchant {merchant} settings: {field} is {reason}, not a currency → bank account id map"),
            ),
            other => ProcessError::permanent("settings.invalid", other.to_string()),
        })?;
        let locked_period = ledger_mapping::LockedPeriod::from_settings(raw)
            .map_err(ledger_rpc::period::mapping_error)?;
        let bank_facts = ledger_mapping::BankAccountFacts::from_settings(raw).map_err(|e| {
            ProcessError::invalid_field(
                "settings.invalid",
                e.to_string(),
                format!("merchant {merchant} settings: {e}"),
            )
        })?;
        Ok(PaymentSettings {
            merchant: settings,
            bank_accounts,
            locked_period,
            bank_facts,
            raw: raw.clone(),
        })
    }

    /// The Sage bank account a payment by `method` in `currency` lands in: the account
    /// configured for the method in that currency, else the merchant's default account for the
    /// currency. A Sage bank account has one fixed currency, so there is no fallback across
    /// currencies: without an account in this currency the payment cannot be posted, and the
    /// error names the currency the merchant must add an account for.
    pub fn bank_account_id(&self, method: &str, currency: &str) -> Result<String, ProcessError> {
        let currency = currency.trim().to_ascii_uppercase();
        ledger_mapping::deposit_bank_account(&self.merchant, &self.bank_accounts, method, &currency)
            .ok_or_else(|| no_bank_account(method, &currency))
    }
}

/// The permanent failure for a payment or refund with no Sage bank account in its currency.
pub fn no_bank_account(method: &str, currency: &str) -> ProcessError {
    ProcessError::Permanent {
        code: NO_BANK_ACCOUNT.into(),
        field: Some(format!("bank_accounts.{currency}")),
        message: format!(
            "no Sage bank account in {currency} for payment method {method}: add a {currency} bank account \
             (or a {currency} clearing account for {method}) in Sage and set payment_methods.{method}.bank_account_ids.{currency} to it; \
             an account in another currency only if it takes foreign money (foreign_money_bank_accounts)"
        ),
        detail: serde_json::json!({ "currency": currency, "method": method }),
    }
}

/// The handler of this service.
pub struct Payments {
    ctx: ServiceContext,
    /// The delivery count at which the consumer loop stops retrying transient failures
    /// ([`consumer::MAX_TRANSIENT_ATTEMPTS`]).
    last_attempt: i64,
    /// Locked periods: Sage's open period per merchant, read again when Sage refuses a date.
    periods: ledger_rpc::OpenPeriods,
    /// Payments retrying for an invoice not in Sage yet, handed back when it lands.
    waiting: WaitingPayments,
    /// Handlings of one invoice's payment take turns ([`Turns`]).
    turns: Turns,
}

/// Locks by invoice, in a fixed number of stripes: the consumer's redelivery of a payment
/// and its hand-back when its invoice lands ([`WaitingPayments`]) can reach the handler at the
/// same time; taking turns, the second finds the first's receipt recorded instead of posting
/// it again (Sage would answer the repeated idempotency id with the same receipt, a call for
/// nothing) or looking it up as in doubt. Two invoices sharing a stripe only wait for each
/// other. In-process: replicas rely on the idempotency id, as before.
#[derive(Clone)]
struct Turns(Arc<Vec<tokio::sync::Mutex<()>>>);

impl Default for Turns {
    fn default() -> Self {
        Turns(Arc::new(
            (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        ))
    }
}

impl Turns {
    /// Waits for the turn of invoice `key` of `merchant`.
    async fn take(&self, merchant: &str, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (merchant, key).hash(&mut hasher);
        self.0[(hasher.finish() % self.0.len() as u64) as usize]
            .lock()
            .await
    }
}

/// Payments whose invoice is not in Sage yet (still in the documents service's queue, e.g. in
/// a backfill's history lane), by merchant and invoice key, with their events' stream
/// sequences. The retry with backoff is what makes such a payment land eventually; this is the
/// shortcut that makes it land as soon as its invoice does (decision record 0038): the
/// invoice-landed notification hands the payment back to the handler at once. Kept in memory:
/// a notification that reaches another replica, or a restart, leaves the backoff to do it.
#[derive(Clone, Default)]
pub struct WaitingPayments(Arc<std::sync::Mutex<HashMap<(String, String), Vec<u64>>>>);

impl WaitingPayments {
    /// Notes that the payment in event `sequence` waits for invoice `key` of `merchant`.
    pub fn wait(&self, merchant: &str, key: &str, sequence: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = map
            .entry((merchant.to_string(), key.to_string()))
            .or_default();
        if !waiting.contains(&sequence) {
            waiting.push(sequence);
        }
    }

    /// The payments waiting for invoice `key` of `merchant`, forgotten here.
    pub fn take(&self, merchant: &str, key: &str) -> Vec<u64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(merchant.to_string(), key.to_string()))
            .unwrap_or_default()
    }
}

impl Payments {
    fn db(&self) -> &PgPool {
        &self.ctx.db
    }

    async fn settings(&self, merchant: &str) -> Result<PaymentSettings, ProcessError> {
        let raw = self.ctx.settings.raw(merchant).await?;
        PaymentSettings::from_raw(merchant, &raw)
    }

    /// Whether a receipt for this invoice was already posted, by this or another event.
    async fn already_paid(
        &self,
        merchant: &str,
        key: &str,
    ) -> Result<Option<String>, ProcessError> {
        let found: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT sage_id, sage_number FROM payments WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .fetch_optional(self.db())
        .await?;
        Ok(found.map(|(sage_id, number)| {
            // A re-report of a synced receipt names it the way the first one did.
            ledger_runtime::audit::note_sage_number(number.as_deref().unwrap_or(""));
            sage_id
        }))
    }

    /// The Sage invoice of a Magento invoice, from the documents service.
    ///
    /// This is `ledger_rpc::ask` unrolled by one step: `ask` folds a `NotFound` reply into a
    /// plain transient error, and this service must tell "the invoice is not in Sage yet"
    /// (which, on the last attempt, becomes the [`INVOICE_NOT_SYNCED`] dead letter) from "the
    /// documents service is down or slow" (which must not be reported as a missing invoice).
    async fn invoice(
        &self,
        env: &Envelope,
        key: &str,
        delivery: &Delivery,
    ) -> Result<Lookup, ProcessError> {
        let request = DocumentLookupRequest {
            merchant: env.merchant_id.clone(),
            document_key: key.to_string(),
        };
        let reply: Reply<DocumentRef> = bus::request_json(
            &self.ctx.nats,
            ledger_rpc::DOCUMENT_LOOKUP_SUBJECT,
            &request,
            LOOKUP_TIMEOUT,
        )
        .await
        .map_err(|e| ProcessError::transient(e.to_string()))?;
        match reply {
            Reply::Ok(doc) => Ok(Lookup::Found(doc)),
            Reply::Err(e) if e.code == ledger_rpc::DOCUMENT_HELD => Ok(Lookup::Held {
                reason: e.detail["reason"].as_str().unwrap_or_default().to_string(),
                detail: e.detail["detail"].as_str().unwrap_or_default().to_string(),
                why: e.message,
            }),
            Reply::Err(e) if e.class == ErrorClass::NotFound => {
                if delivery.stream_sequence > 0 {
                    self.waiting
                        .wait(&env.merchant_id, key, delivery.stream_sequence);
                }
                Err(invoice_not_synced(
                    key,
                    delivery.attempt,
                    self.last_attempt,
                    &e.message,
                ))
            }
            Reply::Err(e) => Err(e.into_process_error()),
        }
    }

    async fn record_skip(
        &self,
        env: &Envelope,
        key: &str,
        reason: &str,
        detail: &str,
    ) -> Result<Outcome, ProcessError> {
        self.record_hold(env, key, reason, detail, None).await
    }

    /// Records a payment not posted, with the stream sequence of its event when the hold
    /// clears by itself (the invoice lands), so the event can be handled again then.
    async fn record_hold(
        &self,
        env: &Envelope,
        key: &str,
        reason: &str,
        detail: &str,
        stream_sequence: Option<u64>,
    ) -> Result<Outcome, ProcessError> {
        sqlx::query(
            "INSERT INTO skipped_payments (merchant_id, document_key, event_id, reason, detail, stream_sequence)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (merchant_id, document_key) DO UPDATE SET event_id = $3, reason = $4, detail = $5, stream_sequence = $6, skipped_at = now()",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(env.event_id)
        .bind(reason)
        .bind(detail)
        .bind(stream_sequence.map(|s| s as i64))
        .execute(self.db())
        .await?;
        Ok(journal::skipped("payment", key, reason, detail))
    }

    async fn handle_paid(
        &self,
        env: &Envelope,
        delivery: &Delivery,
        paid: &InvoicePaidSnapshot,
    ) -> Result<Outcome, ProcessError> {
        let key = paid.document_key();
        ledger_runtime::audit::note_document(&key);
        let _turn = self.turns.take(&env.merchant_id, &key).await;
        let previously =
            journal::step_state(self.db(), &env.merchant_id, env.event_id, STEP).await?;
        if let StepState::Done(_) = previously {
            self.already_paid(&env.merchant_id, &key).await?;
            return Ok(Outcome::AlreadyDone);
        }
        // Magento pays an invoice once; a receipt from another event for the same invoice
        // means this payment is already in Sage, and a second one would double the money.
        // An in-doubt step of this very event is not caught here: its row is written only
        // after Sage answered, so it is resolved below by re-sending the same idempotency id.
        if let Some(sage_id) = self.already_paid(&env.merchant_id, &key).await? {
            tracing::warn!(
                document = key,
                sage_id,
                "invoice already has a receipt; event ignored"
            );
            return Ok(Outcome::AlreadyDone);
        }

        // Cancel and void: the invoice was canceled or voided in Magento while this payment
        // waited; its Sage invoice is (being) voided, so no receipt goes to it.
        if voided_invoice(self.db(), &env.merchant_id, &key).await? {
            ledger_runtime::audit::note_detail("its invoice was canceled or voided in Magento");
            return Ok(Outcome::Skipped(INVOICE_VOIDED.to_string()));
        }

        let settings = self.settings(&env.merchant_id).await?;
        let method = paid.payment.method.as_str();
        if settings.merchant.is_net_terms(method) {
            // Checked before asking for the invoice: a net-terms payment needs nothing from
            // Sage, so it must not wait on (or dead-letter for) an invoice that is not there.
            let detail =
                format!("method {method} is paid outside Magento; the Sage invoice stays open");
            return self
                .record_skip(env, &key, ledger_mapping::reasons::NET_TERMS, &detail)
                .await;
        }

        // A zero payment moves no money: `nothing_to_post`, decided before asking for the
        // invoice, because a zero invoice is itself never posted and waiting for it would
        // end in a dead letter.
        if ledger_mapping::round2(paid.payment.amount_paid).is_zero() {
            let detail = format!(
                "invoice {} was paid 0.00 {}: no money moved, no receipt",
                paid.invoice.increment_id,
                paid.document_currency()
            );
            return self
                .record_skip(env, &key, ledger_mapping::reasons::NOTHING_TO_POST, &detail)
                .await;
        }
        // Rule "Sage's base currency is read, never assumed".
        if let Some(sage_base) = self
            .periods
            .base_currency(&self.ctx.sage, &env.merchant_id)
            .await?
        {
            let what = format!("payment of invoice {}", paid.invoice.increment_id);
            if let Err(e) =
                ledger_mapping::check_base_currency(paid.base_currency(), &sage_base, &what)
            {
                let (reason, detail) = mapping_outcome(e)?;
                return self.record_skip(env, &key, &reason, &detail).await;
            }
        }
        let doc = match self.invoice(env, &key, delivery).await? {
            Lookup::Found(doc) => doc,
            // Rule "held invoices keep their payments": recorded, never dead-lettered, and
            // posted by itself when the invoice lands.
            // Rule "a payment follows its invoice's policy skip": an invoice kept out of Sage
            // on purpose (cutover, website, store view, unpaid) keeps its payment out too.
            Lookup::Held { reason, detail, .. } if ledger_mapping::is_policy_skip(&reason) => {
                let (reason, detail) =
                    mapping_outcome(ledger_mapping::follow_invoice(&key, &reason, &detail))?;
                return self.record_skip(env, &key, &reason, &detail).await;
            }
            Lookup::Held { why, .. } => {
                let detail = format!(
                    "invoice {} is held, so its payment of {} {} waits for it and lands by itself, allocated, \
                     when the invoice is released ({why})",
                    paid.invoice.increment_id,
                    ledger_mapping::round2(paid.payment.amount_paid),
                    paid.document_currency()
                );
                return self
                    .record_hold(
                        env,
                        &key,
                        ledger_mapping::reasons::INVOICE_HELD,
                        &detail,
                        Some(delivery.stream_sequence),
                    )
                    .await;
            }
        };
        if doc.resource != "sales_invoices" {
            return Err(ProcessError::invalid_field(
                "payments.not_an_invoice",
                "/payload/invoice",
                format!(
                    "{key} is a Sage {} ({}), not a sales invoice",
                    doc.resource, doc.sage_id
                ),
            ));
        }
        // A missing account, or one in another currency, holds the payment with a reason
        // (never a dead-letter loop); a retry after the settings are fixed posts it.
        let currency = paid.document_currency().trim().to_ascii_uppercase();
        let configured = settings
            .merchant
            .bank_account_id(method, &currency)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        let chosen = match configured {
            Some(id) => Ok(id),
            // Rule "card money lands where the bank feed can match it": the gateway's
            // clearing account in this currency, created in Sage when first needed.
            None if ledger_mapping::clearing_account_wanted(
                &settings.raw,
                &settings.merchant,
                method,
            ) =>
            {
                Ok(self.clearing_account(env, method, &currency).await?)
            }
            None => settings.bank_account_id(method, &currency),
        };
        let bank_account_id = match chosen {
            Ok(id) => id,
            Err(e) => {
                let message = match &e {
                    ProcessError::Permanent { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let detail = format!(
                    "payment of invoice {}: {message}; the payment is posted by a retry once the account is there",
                    paid.invoice.increment_id
                );
                return self
                    .record_hold(
                        env,
                        &key,
                        ledger_mapping::reasons::NO_BANK_ACCOUNT,
                        &detail,
                        Some(delivery.stream_sequence),
                    )
                    .await;
            }
        };
        let bank_use = match settings.bank_facts.check(
            &bank_account_id,
            paid.document_currency(),
            &format!("payment of invoice {}", paid.invoice.increment_id),
        ) {
            Ok(bank_use) => bank_use,
            Err(e) => {
                let (reason, detail) = mapping_outcome(e)?;
                return self
                    .record_hold(env, &key, &reason, &detail, Some(delivery.stream_sequence))
                    .await;
            }
        };
        let credited = doc.credited;
        let invoice = InvoiceRef {
            sage_id: doc.sage_id,
            contact_id: doc.contact_id,
            currency: doc.currency,
            exchange_rate: doc.exchange_rate,
            total: doc.total,
        };
        // Rule "receipts allocate what is outstanding" (after a credit note the invoice owes
        // less than Magento's grand total), from the engine's own figure when it is exact
        // (rule "the engine's own figure of what is outstanding"), else read from Sage.
        let received = self.received(&env.merchant_id, &invoice.sage_id).await?;
        let source = ledger_mapping::outstanding_without_asking(invoice.total, credited, received);
        let outstanding = match source {
            ledger_mapping::Outstanding::Known(amount) => amount,
            ledger_mapping::Outstanding::AskSage => {
                self.outstanding(&env.merchant_id, &invoice.sage_id).await?
            }
        };
        let receipt = Receipt {
            env,
            delivery,
            key: &key,
            paid,
            invoice: &invoice,
            bank_account_id: &bank_account_id,
            bank_use,
            settings: &settings,
        };
        let plan = match self.plan_receipt(&receipt, outstanding).await? {
            Planned::Plan(plan) => plan,
            Planned::Ended(outcome) => return Ok(outcome),
        };
        if previously == StepState::InDoubt {
            // An earlier attempt may have landed (crash before the commit, a 500 after Sage
            // saved it). The idempotency id covers Sage's 7 days; looking the receipt up
            // covers any age, e.g. a replay after a long outage.
            if let Some(sage_id) = self
                .find_receipt_in_sage(&env.merchant_id, &invoice, &plan)
                .await?
            {
                tracing::info!(
                    document = key,
                    sage_id,
                    "in-doubt receipt found in Sage; adopting it"
                );
                return self
                    .record_receipt(env, &key, &invoice, &plan, &sage_id, None, None, false)
                    .await;
            }
        }
        self.post_receipt(&receipt, plan, source).await
    }

    /// Maps the receipt for `outstanding` and dates it in an open period: the plan, or the
    /// outcome of a payment the mapping or a locked period holds (recorded).
    async fn plan_receipt(
        &self,
        receipt: &Receipt<'_>,
        outstanding: rust_decimal::Decimal,
    ) -> Result<Planned, ProcessError> {
        let Receipt { env, key, .. } = *receipt;
        let context = ledger_mapping::ReceiptContext {
            invoice: receipt.invoice,
            outstanding,
            bank_account_id: receipt.bank_account_id,
            bank_use: receipt.bank_use,
        };
        let mut plan =
            match ledger_mapping::map_receipt(receipt.paid, &context, &receipt.settings.merchant) {
                Ok(plan) => plan,
                Err(e) => {
                    let (reason, detail) = mapping_outcome(e)?;
                    return Ok(Planned::Ended(
                        self.record_skip(env, key, &reason, &detail).await?,
                    ));
                }
            };
        // Locked periods: a receipt dated where Sage's books are locked is moved to the
        // first open day or held, by the merchant's `locked_period`.
        if let Some(date) = ledger_rpc::period::body_date(&plan.body) {
            match self
                .periods
                .decide_with(
                    &self.ctx.sage,
                    &env.merchant_id,
                    receipt.settings.locked_period,
                    date,
                    "receipt",
                )
                .await?
            {
                Ok(moved) => ledger_mapping::move_payment_date(&mut plan.body, &moved),
                Err((reason, detail)) => {
                    return Ok(Planned::Ended(
                        self.record_skip(env, key, &reason, &detail).await?,
                    ))
                }
            }
        }
        Ok(Planned::Plan(plan))
    }

    /// The Sage clearing account of `method` in `currency` (see [`clearing_account`]).
    async fn clearing_account(
        &self,
        env: &Envelope,
        method: &str,
        currency: &str,
    ) -> Result<String, ProcessError> {
        clearing_account(
            self.db(),
            &self.ctx.sage,
            &env.merchant_id,
            method,
            currency,
        )
        .await
    }

    /// What this service has allocated to a Sage invoice with receipts still in Sage.
    async fn received(
        &self,
        merchant: &str,
        invoice_sage_id: &str,
    ) -> Result<rust_decimal::Decimal, ProcessError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(allocated), 0) FROM payments
             WHERE merchant_id = $1 AND invoice_sage_id = $2 AND removed_at IS NULL",
        )
        .bind(merchant)
        .bind(invoice_sage_id)
        .fetch_one(self.db())
        .await?)
    }

    /// What Sage says is still outstanding on a sales invoice (`outstanding_amount`).
    async fn outstanding(
        &self,
        merchant: &str,
        invoice_sage_id: &str,
    ) -> Result<rust_decimal::Decimal, ProcessError> {
        let response = self
            .ctx
            .sage
            .get(merchant, &format!("sales_invoices/{invoice_sage_id}"), &[])
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let value = response.body.get("outstanding_amount");
        value
            .and_then(|v| match v {
                Value::String(s) => s.trim().parse::<rust_decimal::Decimal>().ok(),
                Value::Number(n) => n.to_string().parse::<rust_decimal::Decimal>().ok(),
                _ => None,
            })
            .ok_or_else(|| ProcessError::Transient {
                message: format!(
                    "Sage invoice {invoice_sage_id} answered without a readable outstanding_amount ({value:?})"
                ),
                retry_after: None,
            })
    }

    /// The receipt an earlier attempt of this event left in Sage, if any: a customer receipt
    /// on the invoice's contact, of the same date and amount, allocated to this invoice. (A
    /// receipt of another event for the same invoice is caught earlier, by the cross-reference.)
    async fn find_receipt_in_sage(
        &self,
        merchant: &str,
        invoice: &InvoiceRef,
        plan: &ReceiptPlan,
    ) -> Result<Option<String>, ProcessError> {
        let text = |field: &str| plan.body.get(field).and_then(Value::as_str).unwrap_or("");
        let date = text("date");
        let found = self
            .ctx
            .sage
            .list_all(
                merchant,
                plan.resource,
                &[
                    ("contact_id", invoice.contact_id.as_str()),
                    ("transaction_type_id", text("transaction_type_id")),
                    ("from_date", date),
                    ("to_date", date),
                    ("attributes", "total_amount,reference,allocated_artefacts"),
                ],
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let amount = |v: &Value| match v {
            Value::String(s) => s.parse::<rust_decimal::Decimal>().ok(),
            other => other.to_string().parse().ok(),
        };
        Ok(found
            .iter()
            .find(|receipt| {
                receipt.get("total_amount").and_then(amount) == Some(plan.amount)
                    && (plan.allocated.is_zero()
                        && receipt.get("reference").and_then(Value::as_str)
                            == Some(plan.reference.as_str())
                        || receipt
                            .get("allocated_artefacts")
                            .and_then(Value::as_array)
                            .is_some_and(|artefacts| {
                                artefacts.iter().any(|a| {
                                    a.pointer("/artefact/id").and_then(Value::as_str)
                                        == Some(invoice.sage_id.as_str())
                                })
                            }))
            })
            .and_then(|receipt| receipt.get("id").and_then(Value::as_str))
            .map(str::to_string))
    }

    /// Posts a mapped receipt once: step log + idempotency id + cross-reference.
    ///
    /// Rule "a receipt Sage refuses for its amount reads Sage once": a receipt mapped from the
    /// engine's own figure that Sage refuses as more than is outstanding (the invoice was paid
    /// or allocated in Sage by hand) is mapped again from Sage's `outstanding_amount` and
    /// posted as a request of its own ([`STEP_REREAD`], its own idempotency id).
    async fn post_receipt(
        &self,
        receipt: &Receipt<'_>,
        plan: ReceiptPlan,
        mapped_from: ledger_mapping::Outstanding,
    ) -> Result<Outcome, ProcessError> {
        let Receipt {
            env,
            delivery,
            key,
            invoice,
            ..
        } = *receipt;
        let date = ledger_rpc::period::body_date(&plan.body).unwrap_or_default();
        // In doubt or new, the request is the same: Sage answers a repeated idempotency id
        // with its first result, so an earlier applied-then-failed POST is adopted here.
        let post = ledger_rpc::StepPost {
            merchant: &env.merchant_id,
            event_id: env.event_id,
            step: STEP,
            stream_sequence: delivery.stream_sequence,
            resource: plan.resource,
            root: plan.root,
            body: &plan.body,
            date,
        };
        let refused = match self
            .periods
            .try_post_step(&self.ctx.sage, self.db(), post)
            .await?
        {
            Ok((response, sage_id)) => {
                return self
                    .record_receipt(
                        env,
                        key,
                        invoice,
                        &plan,
                        &sage_id,
                        response.request_id.as_deref(),
                        ledger_runtime::audit::sage_number_of(&response.body),
                        false,
                    )
                    .await
            }
            Err(e) => e,
        };
        if !ledger_mapping::reread_after_refusal(
            mapped_from,
            ledger_rpc::is_amount_refusal(&refused),
        ) {
            return Err(self
                .periods
                .refusal(&self.ctx.sage, &env.merchant_id, date, refused)
                .await);
        }
        tracing::info!(
            document = key,
            invoice = invoice.sage_id,
            error = %refused,
            "Sage refused the receipt's allocation; reading what the invoice owes in Sage"
        );
        let outstanding = self.outstanding(&env.merchant_id, &invoice.sage_id).await?;
        ledger_runtime::audit::note_detail(&format!(
            "Sage refused {} {} allocated to invoice {} (changed in Sage): {} outstanding there, receipt mapped again",
            plan.allocated, invoice.currency, invoice.sage_id, outstanding
        ));
        let plan = match self.plan_receipt(receipt, outstanding).await? {
            Planned::Plan(plan) => plan,
            Planned::Ended(outcome) => return Ok(outcome),
        };
        let post = ledger_rpc::StepPost {
            merchant: &env.merchant_id,
            event_id: env.event_id,
            step: STEP_REREAD,
            stream_sequence: delivery.stream_sequence,
            resource: plan.resource,
            root: plan.root,
            body: &plan.body,
            date: ledger_rpc::period::body_date(&plan.body).unwrap_or_default(),
        };
        let (response, sage_id) = self
            .periods
            .post_step(&self.ctx.sage, self.db(), post)
            .await?;
        self.record_receipt(
            env,
            key,
            invoice,
            &plan,
            &sage_id,
            response.request_id.as_deref(),
            ledger_runtime::audit::sage_number_of(&response.body),
            true,
        )
        .await
    }

    /// Commits a receipt that is in Sage: cross-reference and step outcome together.
    #[allow(clippy::too_many_arguments)]
    async fn record_receipt(
        &self,
        env: &Envelope,
        key: &str,
        invoice: &InvoiceRef,
        plan: &ReceiptPlan,
        sage_id: &str,
        request_id: Option<&str>,
        sage_number: Option<String>,
        reread: bool,
    ) -> Result<Outcome, ProcessError> {
        ledger_runtime::audit::note_sage_number(sage_number.as_deref().unwrap_or(""));
        let currency = plan
            .body
            .get("currency_id")
            .and_then(Value::as_str)
            .unwrap_or(&invoice.currency)
            .to_string();
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "INSERT INTO payments (merchant_id, document_key, event_id, sage_id, invoice_sage_id, reference, amount, allocated, currency, sage_number)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (merchant_id, document_key) DO NOTHING",
        )
        .bind(&env.merchant_id)
        .bind(key)
        .bind(env.event_id)
        .bind(sage_id)
        .bind(&invoice.sage_id)
        .bind(&plan.reference)
        .bind(plan.amount)
        .bind(plan.allocated)
        .bind(&currency)
        .bind(&sage_number)
        .execute(&mut *tx)
        .await?;
        // A payment held earlier (invoice held, no bank account) is posted now: its hold is
        // over, so the status views stop listing it.
        sqlx::query("DELETE FROM skipped_payments WHERE merchant_id = $1 AND document_key = $2")
            .bind(&env.merchant_id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        // The receipt Sage refused never landed: the event's receipt step is the one posted
        // after reading Sage, and both steps end done with its id.
        let steps: &[&str] = if reread {
            &[STEP, STEP_REREAD]
        } else {
            &[STEP]
        };
        for step in steps {
            journal::record_done(
                &mut tx,
                &env.merchant_id,
                env.event_id,
                step,
                Some(sage_id),
                request_id,
            )
            .await?;
        }
        tx.commit().await?;
        if plan.allocated < plan.amount {
            // Visible: the excess stays on the customer's account in Sage.
            ledger_runtime::audit::note_detail(&format!(
                "{} {currency} allocated to invoice {}, {} {currency} left on the customer's account (payment on account)",
                plan.allocated,
                invoice.sage_id,
                plan.amount - plan.allocated
            ));
        }
        tracing::info!(
            document = key,
            sage_id,
            invoice = invoice.sage_id,
            reference = plan.reference,
            amount = %plan.amount,
            allocated = %plan.allocated,
            currency,
            request_id = request_id.unwrap_or(""),
            "receipt synced"
        );
        Ok(Outcome::Applied)
    }
}

/// The facts a receipt is mapped and posted from.
#[derive(Clone, Copy)]
struct Receipt<'a> {
    env: &'a Envelope,
    delivery: &'a Delivery,
    key: &'a str,
    paid: &'a InvoicePaidSnapshot,
    invoice: &'a InvoiceRef,
    bank_account_id: &'a str,
    bank_use: ledger_mapping::BankUse,
    settings: &'a PaymentSettings,
}

/// A mapped receipt, or how the payment ended without one (recorded as held or skipped).
enum Planned {
    Plan(ReceiptPlan),
    Ended(Outcome),
}

/// What the documents service said about a Magento invoice.
enum Lookup {
    /// The Sage invoice.
    Found(DocumentRef),
    /// Held or skipped (`why` names the reason and detail; `reason` and `detail` apart).
    Held {
        /// The documents service's message.
        why: String,
        /// The invoice's skip reason code.
        reason: String,
        /// The invoice's skip detail.
        detail: String,
    },
}

/// Hands each payment held `invoice_held` for an invoice that just landed (or, with
/// `document_key` `None`, every `invoice_held` payment of every merchant: the pass at start,
/// for notifications missed while the service was down) back to the handler, the normal
/// path with the same idempotency keys. Returns how many events were handled again.
pub async fn release_held<H: Handler>(
    js: &async_nats::jetstream::Context,
    db: &PgPool,
    handler: &H,
    merchant: Option<&str>,
    document_key: Option<&str>,
) -> Result<usize, ProcessError> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT stream_sequence FROM skipped_payments
         WHERE reason = $1 AND stream_sequence IS NOT NULL
           AND ($2::text IS NULL OR merchant_id = $2) AND ($3::text IS NULL OR document_key = $3)
         ORDER BY stream_sequence",
    )
    .bind(ledger_mapping::reasons::INVOICE_HELD)
    .bind(merchant)
    .bind(document_key)
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let stream = js
        .get_stream(bus::EVENTS_STREAM)
        .await
        .map_err(|e| ProcessError::transient(e.to_string()))?;
    let mut handled = 0;
    for (sequence,) in rows {
        if handle_again(&stream, handler, sequence as u64).await {
            handled += 1;
        }
    }
    Ok(handled)
}

/// Reads the payment event at `sequence` from the log and hands it to the handler (the normal
/// path, same idempotency keys); true when it was handled to an end.
async fn handle_again<H: Handler>(
    stream: &async_nats::jetstream::stream::Stream,
    handler: &H,
    sequence: u64,
) -> bool {
    let raw = match stream.get_raw_message(sequence).await {
        Ok(raw) => raw,
        Err(e) => {
            tracing::warn!(sequence, error = %e, "waiting payment's event is no longer in the log");
            return false;
        }
    };
    let delivery = Delivery {
        subject: raw.subject.to_string(),
        merchant: consumer::merchant_of(&raw.subject).to_string(),
        payload: raw.payload.clone(),
        headers: Some(raw.headers.clone()),
        stream_sequence: sequence,
        delivered: 1,
        attempt: 1,
    };
    match handler.handle(&delivery).await {
        Ok(outcome) => {
            tracing::info!(sequence, ?outcome, "waiting payment handled again");
            true
        }
        Err(e) => {
            tracing::warn!(sequence, error = %e, "waiting payment still not posted");
            false
        }
    }
}

/// Whether the log holds an `invoice.canceled` of `merchant` later than the event at `sequence`
/// (unknown counts as yes: the payment then takes the normal, ordered path).
async fn cancel_follows(
    stream: &async_nats::jetstream::stream::Stream,
    merchant: &str,
    sequence: u64,
) -> bool {
    let subject = ledger_events::subject(merchant, ledger_events::EventType::InvoiceCanceled);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(last) => last.sequence > sequence,
        Err(e)
            if e.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            false
        }
        Err(_) => true,
    }
}

/// Listens on [`ledger_rpc::INVOICE_LANDED_SUBJECT`] and releases the payments held for the
/// invoice that landed; first makes one pass over every held payment.
async fn serve_releases<H: Handler + 'static>(
    nats: async_nats::Client,
    db: PgPool,
    handler: Arc<H>,
    waiting: WaitingPayments,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut sub = nats
        .queue_subscribe(ledger_rpc::INVOICE_LANDED_SUBJECT, SERVICE.to_string())
        .await?;
    let js = async_nats::jetstream::new(nats.clone());
    // Notices are taken off the subscription as they come and kept as owned values while the
    // releases below wait on Sage: a notice left in the subscription would keep alive the
    // connection's read buffer it was cut from, with every other event read into it.
    let (notices, mut landed_notices) = tokio::sync::mpsc::unbounded_channel();
    let reading = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = reading.wait() => break,
                m = futures::StreamExt::next(&mut sub) => m,
            };
            let Some(msg) = msg else { break };
            let Ok(landed) = serde_json::from_slice::<ledger_rpc::InvoiceLanded>(&msg.payload)
            else {
                continue;
            };
            if notices.send(landed).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        if let Err(e) = release_held(&js, &db, handler.as_ref(), None, None).await {
            tracing::warn!(error = %e, "pass over held payments failed");
        }
        loop {
            let landed = tokio::select! {
                _ = shutdown.wait() => break,
                l = landed_notices.recv() => l,
            };
            let Some(landed) = landed else { break };
            // Payments retrying for this invoice go now rather than at their next backoff.
            let sequences = waiting.take(&landed.merchant, &landed.document_key);
            if !sequences.is_empty() {
                if let Ok(stream) = js.get_stream(bus::EVENTS_STREAM).await {
                    for sequence in sequences {
                        // A cancel of this merchant's after the payment must be met in the
                        // log's order (receipt first, then the void): the payment then waits
                        // for its normal redelivery instead of going ahead now.
                        if cancel_follows(&stream, &landed.merchant, sequence).await {
                            continue;
                        }
                        handle_again(&stream, handler.as_ref(), sequence).await;
                    }
                }
            }
            if let Err(e) = release_held(
                &js,
                &db,
                handler.as_ref(),
                Some(&landed.merchant),
                Some(&landed.document_key),
            )
            .await
            {
                tracing::warn!(document = landed.document_key, error = %e, "releasing held payments failed");
            }
        }
    });
    Ok(())
}

/// The error for an invoice the documents service does not know yet.
///
/// Transient until the last attempt, so the consumer loop redelivers with backoff while the
/// invoice's own event is still on its way (causal order: the payment waits for its invoice).
/// The loop dead-letters a transient failure on delivery `last_attempt` under the generic
/// code `max_deliveries`; on that delivery this returns a permanent error instead, so the
/// dead letter says what is actually wrong. The threshold is the loop's own (`attempt <
/// max_transient_attempts` is retried; throttling and pauses are not attempts), so the payment gets exactly as many attempts as any
/// other transient failure, and the loop's own give-up rule stays the safety net.
pub fn invoice_not_synced(
    key: &str,
    attempt: i64,
    last_attempt: i64,
    reason: &str,
) -> ProcessError {
    if attempt >= last_attempt {
        ProcessError::Permanent {
            code: INVOICE_NOT_SYNCED.into(),
            field: Some("/payload/invoice".into()),
            message: format!(
                "invoice {key} is still not in Sage after {attempt} attempts ({reason}); \
                 see the documents service for its invoice.created event"
            ),
            detail: serde_json::json!({ "document_key": key, "attempts": attempt }),
        }
    } else {
        ProcessError::transient(format!(
            "{INVOICE_NOT_SYNCED}: {key} not in Sage yet ({reason})"
        ))
    }
}

#[async_trait::async_trait]
impl Projection for Payments {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        let env = ledger_rpc::parse_delivery(delivery)?;
        match &env.payload {
            Payload::InvoicePaid(paid) => self.handle_paid(&env, delivery, paid).await,
            other => Ok(Outcome::Skipped(format!(
                "not_handled:{}",
                other.event_type().as_str()
            ))),
        }
    }
}

/// The durable consumer of this service.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::for_service(SERVICE, &["magento.*.invoice.paid"])
}

pub use ledger_rpc::Running;

/// Starts the consumer; returns once it accepts work.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = ServiceContext::connect(&config.service, SERVICE).await?;
    // Card refunds leave from the clearing account the receipts went to: the documents
    // service asks for it (created in Sage when first needed).
    let (db, sage) = (ctx.db.clone(), ctx.sage.clone());
    let clearing = ledger_rpc::endpoint(
        ledger_rpc::CLEARING_ACCOUNT_SUBJECT,
        move |req: ledger_rpc::ClearingAccountRequest| {
            let (db, sage) = (db.clone(), sage.clone());
            async move {
                let currency = req.currency.trim().to_ascii_uppercase();
                clearing_account(&db, &sage, &req.merchant, &req.method, &currency)
                    .await
                    .map(|bank_account_id| ledger_rpc::ClearingAccount { bank_account_id })
                    .map_err(|e| ledger_rpc::RpcError::from_process_error(&e))
            }
        },
    );
    // Cancel and void: the documents service asks for an invoice's receipts to be removed
    // before it voids the invoice.
    let (db, sage) = (ctx.db.clone(), ctx.sage.clone());
    let remove = ledger_rpc::endpoint(
        ledger_rpc::REMOVE_RECEIPTS_SUBJECT,
        move |req: ledger_rpc::RemoveReceiptsRequest| {
            let (db, sage) = (db.clone(), sage.clone());
            async move { remove_receipts(&db, &sage, req).await }
        },
    );
    let builder = ctx.builder();
    let waiting = WaitingPayments::default();
    let payments = Payments {
        periods: ctx.open_periods(),
        last_attempt: consumer::MAX_TRANSIENT_ATTEMPTS,
        waiting: waiting.clone(),
        turns: Turns::default(),
        ctx,
    };
    builder
        .migrations(sqlx::migrate!("./migrations"))
        .endpoint(clearing)
        .endpoint(remove)
        .consumer(SERVICE, consumer_spec(), Arc::new(payments))
        .task(move |s| serve_releases(s.nats, s.db, s.handler, waiting, s.shutdown))
        .start(shutdown)
        .await
}

/// The Sage clearing account of `method` in `currency`: from this service's table, else
/// created in Sage now (`POST /bank_accounts`, type `OTHER`, named by
/// `ledger_mapping::clearing_account_name`) under a PostgreSQL advisory lock, so two
/// payments at once create one account.
pub async fn clearing_account(
    db: &PgPool,
    sage: &ledger_rpc::GatedSage,
    merchant: &str,
    method: &str,
    currency: &str,
) -> Result<String, ProcessError> {
    let find = "SELECT sage_id FROM clearing_accounts WHERE merchant_id = $1 AND method = $2 AND currency = $3";
    if let Some(id) = sqlx::query_scalar::<_, String>(find)
        .bind(merchant)
        .bind(method)
        .bind(currency)
        .fetch_optional(db)
        .await?
    {
        return Ok(id);
    }
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("clearing/{merchant}/{method}/{currency}"))
        .execute(&mut *tx)
        .await?;
    if let Some(id) = sqlx::query_scalar::<_, String>(find)
        .bind(merchant)
        .bind(method)
        .bind(currency)
        .fetch_optional(&mut *tx)
        .await?
    {
        return Ok(id);
    }
    let name = ledger_mapping::clearing_account_name(method, currency);
    // One idempotency id per merchant, method and currency: a retry after a lost answer
    // gets the same account back.
    let key = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("ledger:clearing:{merchant}:{method}:{currency}").as_bytes(),
    );
    let response = sage
        .post(
            merchant,
            "bank_accounts",
            "bank_account",
            serde_json::json!({
                "bank_account_type_id": "OTHER",
                "bank_account_details": { "account_name": name },
                "currency_id": currency,
            }),
            Some(&sage_client::idempotency_id(&key, "clearing_account")),
        )
        .await
        .map_err(ledger_rpc::sage_error_to_process)?;
    let id = response
        .id()
        .ok_or_else(|| ProcessError::transient("Sage answered a new bank account without an id"))?
        .to_string();
    sqlx::query(
        "INSERT INTO clearing_accounts (merchant_id, method, currency, sage_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (merchant_id, method, currency) DO NOTHING",
    )
    .bind(merchant)
    .bind(method)
    .bind(currency)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        merchant,
        method,
        currency,
        sage_id = id,
        name,
        "clearing account created"
    );
    Ok(id)
}

// ---- Cancel and void (docs/accounting.md "Canceled and voided documents") ----

/// Whether Magento canceled or voided this invoice (a [`INVOICE_VOIDED`] record).
async fn voided_invoice(db: &PgPool, merchant: &str, key: &str) -> Result<bool, ProcessError> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM skipped_payments WHERE merchant_id = $1 AND document_key = $2 AND reason = $3",
    )
    .bind(merchant)
    .bind(key)
    .bind(INVOICE_VOIDED)
    .fetch_one(db)
    .await?
        > 0)
}

/// Deletes the receipts this service posted to an invoice Magento canceled or voided, so that
/// Sage lets the invoice be voided, and records the invoice as voided so that a payment still
/// on its way is skipped rather than posted to a void invoice. Answered again after a partial
/// failure, it deletes only what is left (a receipt Sage no longer has counts as removed).
async fn remove_receipts(
    db: &PgPool,
    sage: &ledger_rpc::GatedSage,
    req: ledger_rpc::RemoveReceiptsRequest,
) -> Result<ledger_rpc::RemovedReceipts, ledger_rpc::RpcError> {
    let fail = |e: ProcessError| ledger_rpc::RpcError::from_process_error(&e);
    sqlx::query(
        "INSERT INTO skipped_payments (merchant_id, document_key, event_id, reason, detail)
         VALUES ($1, $2, $3::uuid, $4, $5)
         ON CONFLICT (merchant_id, document_key) DO UPDATE SET event_id = $3::uuid, reason = $4, detail = $5, skipped_at = now()",
    )
    .bind(&req.merchant)
    .bind(&req.document_key)
    .bind(&req.event_id)
    .bind(INVOICE_VOIDED)
    .bind("the invoice was canceled or voided in Magento; its receipt was removed from Sage")
    .execute(db)
    .await
    .map_err(|e| fail(e.into()))?;
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT sage_id, removed_at IS NOT NULL FROM payments WHERE merchant_id = $1 AND document_key = $2",
    )
    .bind(&req.merchant)
    .bind(&req.document_key)
    .fetch_all(db)
    .await
    .map_err(|e| fail(e.into()))?;
    let mut removed = Vec::new();
    for (sage_id, already_removed) in rows {
        if !already_removed {
            match sage
                .delete(&req.merchant, &format!("contact_payments/{sage_id}"), &[])
                .await
            {
                Ok(_) => {}
                // Already gone (an earlier attempt, or the merchant deleted it in Sage).
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(fail(ledger_rpc::sage_error_to_process(e))),
            }
            sqlx::query(
                "UPDATE payments SET removed_at = now() WHERE merchant_id = $1 AND document_key = $2 AND sage_id = $3",
            )
            .bind(&req.merchant)
            .bind(&req.document_key)
            .bind(&sage_id)
            .execute(db)
            .await
            .map_err(|e| fail(e.into()))?;
            tracing::info!(
                document = req.document_key,
                receipt = sage_id,
                "receipt removed from Sage: its invoice was canceled or voided in Magento"
            );
        }
        removed.push(sage_id);
    }
    Ok(ledger_rpc::RemovedReceipts { removed })
}

/// Runs until `shutdown` fires and the consumer has drained.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(raw: Value) -> PaymentSettings {
        PaymentSettings::from_raw("acme-uk", &raw).expect("valid settings")
    }

    #[test]
    fn method_account_in_currency_wins_over_default() {
        let s = settings(serde_json::json!({
            "payment_methods": {
                "paypal_express": { "payment_method_id": "ELECTRONIC", "bank_account_ids": { "EUR": "bank-paypal-eur" } }
            },
            "bank_accounts": { "GBP": "bank-gbp", "EUR": "bank-eur" }
        }));
        assert_eq!(
            s.bank_account_id("paypal_express", "EUR").unwrap(),
            "bank-paypal-eur"
        );
        assert_eq!(
            s.bank_account_id("paypal_express", "eur").unwrap(),
            "bank-paypal-eur"
        );
        // The method has no GBP account: the merchant's GBP default, never the EUR one.
        assert_eq!(
            s.bank_account_id("paypal_express", "GBP").unwrap(),
            "bank-gbp"
        );
        assert_eq!(
            s.bank_account_id("stripe_payments", "EUR").unwrap(),
            "bank-eur"
        );
    }

    #[test]
    fn no_account_in_currency_is_permanent_and_names_it() {
        let s = settings(serde_json::json!({ "bank_accounts": { "GBP": "bank-gbp", "USD": "" } }));
        for currency in ["USD", "CHF"] {
            match s.bank_account_id("stripe_payments", currency) {
                Err(ProcessError::Permanent {
                    code,
                    field,
                    message,
                    ..
                }) => {
                    assert_eq!(code, NO_BANK_ACCOUNT);
                    assert_eq!(
                        field.as_deref(),
                        Some(format!("bank_accounts.{currency}").as_str())
                    );
                    assert!(message.contains(currency), "{message}");
                }
                other => panic!("{currency}: {other:?}"),
            }
        }
    }

    #[test]
    fn settings_without_bank_accounts_decode_and_bad_ones_do_not() {
        let s = settings(serde_json::json!({ "due_days": 14 }));
        assert!(s.bank_accounts.is_empty());
        assert_eq!(s.merchant.due_days, 14);
        assert!(s.merchant.is_net_terms("checkmo"));
        let bad =
            PaymentSettings::from_raw("acme-uk", &serde_json::json!({ "bank_accounts": ["GBP"] }));
        assert!(
            matches!(bad, Err(ProcessError::Permanent { code, .. }) if code == "settings.invalid")
        );
    }

    #[test]
    fn missing_invoice_is_retried_then_named() {
        assert!(matches!(
            invoice_not_synced("invoice:1:100000001", 1, 25, "not synced"),
            ProcessError::Transient { .. }
        ));
        assert!(matches!(
            invoice_not_synced("invoice:1:100000001", 24, 25, "not synced"),
            ProcessError::Transient { .. }
        ));
        let last = invoice_not_synced("invoice:1:100000001", 25, 25, "not synced");
        assert_eq!(last.code(), INVOICE_NOT_SYNCED);
    }

    #[tokio::test]
    async fn handlings_of_one_invoice_take_turns() {
        let turns = Turns::default();
        let first = turns.take("acme-uk", "invoice:1:100000001").await;
        let again = turns.clone();
        let second = tokio::spawn(async move {
            let _turn = again.take("acme-uk", "invoice:1:100000001").await;
        });
        // The same invoice waits while the first handling runs...
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        // ...and goes as soon as it ends.
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("second turn")
            .expect("task");
    }

    #[test]
    fn consumer_reads_only_paid_invoices() {
        let spec = consumer_spec();
        assert_eq!(spec.durable, "payments");
        assert_eq!(
            spec.filter_subjects,
            vec!["magento.*.invoice.paid".to_string()]
        );
        assert_eq!(spec.max_deliver, -1);
    }
}
