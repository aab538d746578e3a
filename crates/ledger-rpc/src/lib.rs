//! Service-to-service requests over NATS request/reply.
//!
//! A service owns its tables; others ask it. Every question one Ledger service asks another is
//! listed here with its subject and typed messages:
//!
//! | subject | answered by | question |
//! |---|---|---|
//! | [`TOKEN_SUBJECT`] | gateway | a Sage access token + business id for a merchant |
//! | [`SETTINGS_SUBJECT`] | gateway | a merchant's accounting settings |
//! | [`ENSURE_CONTACT_SUBJECT`] | contacts | the Sage contact for (merchant, customer, currency) |
//! | [`DOCUMENT_LOOKUP_SUBJECT`] | documents | the Sage document created for a Magento document |
//! | [`REISSUE_SUBJECT`] | documents | credit a Sage invoice in full and post it again under the current settings |
//! | [`REMOVE_RECEIPTS_SUBJECT`] | payments | delete the receipts of an invoice about to be voided |
//! | [`CLEARING_ACCOUNT_SUBJECT`] | payments | the gateway's clearing account a card refund leaves from |
//! | [`INVOICE_LANDED_SUBJECT`] | payments (no reply) | an invoice landed: post its held payments |
//! | [`SETTINGS_CHANGED_SUBJECT`] | every consumer service (no reply) | a merchant's settings changed: read them again |
//!
//! Replies are [`Reply<T>`]: either the answer or a classified error, so the asking consumer
//! can tell "retry later" from "pause the merchant" from "this will never work".

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_runtime::ProcessError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::Mutex;

/// Subject for [`TokenRequest`] → [`TokenGrant`].
pub const TOKEN_SUBJECT: &str = "ledger.rpc.gateway.token";
/// Subject for [`SettingsRequest`] → `serde_json::Value` settings document.
pub const SETTINGS_SUBJECT: &str = "ledger.rpc.gateway.settings";
/// Published (fire and forget, body [`SettingsRequest`]) by the gateway after it stores a
/// change to a merchant's settings; every [`SettingsClient`] drops its copy, so the next event
/// reads the new settings without waiting for the cache to expire.
pub const SETTINGS_CHANGED_SUBJECT: &str = "ledger.notify.settings_changed";
/// Subject for [`EnsureContactRequest`] → [`ContactRef`].
pub const ENSURE_CONTACT_SUBJECT: &str = "ledger.rpc.contacts.ensure";
/// Subject for [`DocumentLookupRequest`] → [`DocumentRef`].
pub const DOCUMENT_LOOKUP_SUBJECT: &str = "ledger.rpc.documents.lookup";
/// Published (fire and forget) by the documents service each time a sales invoice lands in
/// Sage, so the payments service posts the payments it kept `invoice_held` for it.
pub const INVOICE_LANDED_SUBJECT: &str = "ledger.rpc.payments.invoice_landed";
/// The error code of a lookup for a document the documents service holds by policy.
pub const DOCUMENT_HELD: &str = "document.held";

/// Body of [`INVOICE_LANDED_SUBJECT`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceLanded {
    /// Merchant.
    pub merchant: String,
    /// The Magento invoice's document key.
    pub document_key: String,
}
/// Credit and re-issue, asked by the portal: [`ReissueRequest`] → [`Reissue`]. Without
/// `confirm` it only says what would happen (or why it is refused); with it, the documents
/// service credits the Sage invoice in full and posts it again under the merchant's current
/// settings, once per document whatever is asked again.
pub const REISSUE_SUBJECT: &str = "ledger.rpc.documents.reissue";
/// Error code: the invoice cannot be credited and re-issued (the message says why).
pub const REISSUE_REFUSED: &str = "reissue.refused";
/// Documents the documents service keeps out of Sage on purpose, with reason and detail (zero
/// documents, `zero_value` and `nothing_to_post`, included), asked by reconciliation and the portal:
/// [`HeldDocumentsRequest`] → `Vec<HeldDocument>`.
pub const HELD_DOCUMENTS_SUBJECT: &str = "ledger.rpc.documents.held";
/// Subject for [`RemoveReceiptsRequest`] → [`RemovedReceipts`]: before the documents service
/// voids a Sage invoice (Sage refuses to void one with payments), the payments service deletes
/// the receipts it posted to it and stops any later receipt for it.
pub const REMOVE_RECEIPTS_SUBJECT: &str = "ledger.rpc.payments.remove_receipts";
/// Subject on which the payments service answers with (creating it if needed) the clearing
/// account of a payment method in a currency, so refunds leave from where the receipts went.
pub const CLEARING_ACCOUNT_SUBJECT: &str = "ledger.rpc.payments.clearing_account";
/// Queue group every responder joins, so replicas share the requests.
pub const QUEUE_GROUP: &str = ledger_runtime::micro::QUEUE_GROUP;

pub mod backfill;
pub mod failures;
pub mod gate;
pub mod pace;
pub mod period;
pub use failures::{contract_failure, mapping_outcome, parse_delivery};
pub use gate::{GateLimits, GatedSage, SageGate};
pub use period::{OpenPeriods, PeriodDecision, StepPost};

/// How a failed request should be treated by the asker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Will not succeed as asked.
    Permanent,
    /// Try again later.
    Transient,
    /// The merchant cannot be served until it reconnects Sage.
    Paused,
    /// The thing asked for does not exist (yet).
    NotFound,
}

/// A classified error carried in a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcError {
    /// How the asker should treat it.
    pub class: ErrorClass,
    /// Stable reason code.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// Field the error is about, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Extra structured context (e.g. Sage's parsed errors).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// Server-given delay before retrying, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl RpcError {
    /// Converts into the consumer loop's taxonomy.
    pub fn into_process_error(self) -> ProcessError {
        match self.class {
            ErrorClass::Permanent => ProcessError::Permanent {
                code: self.code,
                field: self.field,
                message: self.message,
                detail: self.detail,
            },
            ErrorClass::Paused => ProcessError::Paused {
                reason: self.message,
            },
            ErrorClass::Transient | ErrorClass::NotFound => ProcessError::Transient {
                message: format!("{}: {}", self.code, self.message),
                retry_after: self.retry_after_ms.map(Duration::from_millis),
            },
        }
    }

    /// Classifies a consumer-side error for sending back.
    pub fn from_process_error(e: &ProcessError) -> Self {
        match e {
            ProcessError::Permanent {
                code,
                field,
                message,
                detail,
            } => RpcError {
                class: ErrorClass::Permanent,
                code: code.clone(),
                message: message.clone(),
                field: field.clone(),
                detail: detail.clone(),
                retry_after_ms: None,
            },
            ProcessError::Transient {
                message,
                retry_after,
            } => RpcError {
                class: ErrorClass::Transient,
                code: "transient".into(),
                message: message.clone(),
                field: None,
                detail: serde_json::Value::Null,
                retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
            },
            ProcessError::Throttled { retry_after } => RpcError {
                class: ErrorClass::Transient,
                code: "throttled".into(),
                message: format!("throttled for {retry_after:?}"),
                field: None,
                detail: serde_json::Value::Null,
                retry_after_ms: Some(retry_after.as_millis() as u64),
            },
            ProcessError::Paused { reason } => RpcError {
                class: ErrorClass::Paused,
                code: "paused".into(),
                message: reason.clone(),
                field: None,
                detail: serde_json::Value::Null,
                retry_after_ms: None,
            },
        }
    }
}

/// True for Sage's refusal of a payment or allocation for its amount (more than is
/// outstanding on the document it is allocated to, or nothing outstanding any more): deciding
/// again from Sage's figures can fix it.
pub fn is_amount_refusal(error: &sage_client::SageError) -> bool {
    matches!(error, sage_client::SageError::Rejected { status: 422, errors, .. }
        if errors.iter().any(|i| ledger_mapping::is_amount_refusal_message(&i.message)))
}

/// Rule "a refusal before handling leaves nothing in doubt": when the Sage call of a journaled
/// step failed in a way that proves Sage changed nothing (a 429, Sage's or the business's
/// budget in Ledger's gate: [`sage_client::SageError::applied_nothing`]) and this attempt
/// wrote the step's intent (`fresh`, from `journal::record_intent`), the intent is withdrawn,
/// so the next attempt posts at once instead of first looking Sage up for an earlier result.
pub async fn withdraw_unapplied_intent(
    db: &sqlx::PgPool,
    fresh: bool,
    merchant: &str,
    event_id: uuid::Uuid,
    step: &str,
    error: &sage_client::SageError,
) -> Result<(), ProcessError> {
    if fresh && error.applied_nothing() {
        ledger_runtime::journal::withdraw_intent(db, merchant, event_id, step).await?;
    }
    Ok(())
}

/// Classifies a Sage client error in the consumer taxonomy.
pub fn sage_error_to_process(e: sage_client::SageError) -> ProcessError {
    use sage_client::FailureClass;
    let retry_after = e.retry_after();
    if e.status() == Some(429) {
        // Sage's throttle (or our own budget): wait, but never towards a dead letter.
        return ProcessError::Throttled {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        };
    }
    match e.class() {
        FailureClass::Transient => ProcessError::Transient {
            message: e.to_string(),
            retry_after,
        },
        FailureClass::Paused => ProcessError::Paused {
            reason: e.to_string(),
        },
        FailureClass::Permanent => {
            let (code, field, detail) = match &e {
                sage_client::SageError::Rejected { errors, .. } => {
                    let first = errors.first();
                    (
                        format!(
                            "sage.{}",
                            first.map(|i| i.data_code.as_str()).unwrap_or("Rejected")
                        ),
                        first.map(|i| i.source.clone()).filter(|s| !s.is_empty()),
                        serde_json::to_value(errors).unwrap_or_default(),
                    )
                }
                _ => ("sage.rejected".to_string(), None, serde_json::Value::Null),
            };
            ProcessError::Permanent {
                code,
                field,
                message: e.to_string(),
                detail,
            }
        }
    }
}

/// A reply: the answer or a classified error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// The answer.
    Ok(T),
    /// Why there is none.
    Err(RpcError),
}

/// Asks `subject` and converts every failure into the consumer taxonomy.
pub async fn ask<Req: Serialize, Resp: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, ProcessError> {
    let reply: Reply<Resp> = ledger_runtime::bus::request_json(client, subject, request, timeout)
        .await
        .map_err(|e| ProcessError::transient(e.to_string()))?;
    match reply {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(e.into_process_error()),
    }
}

/// Serves requests on `subject` (`ledger.rpc.<service>.<endpoint>`) with `handler` until
/// `shutdown`, as endpoint `<endpoint>` of the NATS service `<service>` (queue group
/// [`QUEUE_GROUP`], see `ledger_runtime::micro`). Each request runs in its own task so a slow
/// one does not block the rest. An error reply keeps its [`RpcError`] body and carries the
/// standard service error headers.
pub async fn serve<Req, Resp, F, Fut>(
    client: async_nats::Client,
    subject: &'static str,
    handler: F,
    shutdown: ledger_runtime::shutdown::Shutdown,
) -> Result<(), async_nats::SubscribeError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    use ledger_runtime::micro;
    let Some((service, endpoint)) = micro::names_of(subject) else {
        return Err(async_nats::SubscribeError::with_source(
            async_nats::SubscribeErrorKind::InvalidSubject,
            format!("subject {subject}: expected ledger.rpc.<service>.<endpoint>"),
        ));
    };
    let handler = Arc::new(handler);
    micro::serve(&client, service, endpoint, subject, shutdown, move |msg| {
        let handler = handler.clone();
        async move {
            let span = tracing::info_span!("rpc", subject);
            ledger_runtime::telemetry::link_to_headers(&span, msg.headers.as_ref());
            let result = match serde_json::from_slice::<Req>(&msg.payload) {
                Ok(req) => tracing::Instrument::instrument(handler(req), span).await,
                Err(e) => Err(RpcError {
                    class: ErrorClass::Permanent,
                    code: "rpc.bad_request".into(),
                    message: e.to_string(),
                    field: None,
                    detail: serde_json::Value::Null,
                    retry_after_ms: None,
                }),
            };
            Some(match result {
                Ok(v) => micro::Reply::ok(&Reply::<Resp>::Ok(v)),
                Err(e) => {
                    let code = match e.class {
                        ErrorClass::Permanent => 400,
                        ErrorClass::NotFound => 404,
                        ErrorClass::Transient | ErrorClass::Paused => 503,
                    };
                    let description = format!("{}: {}", e.code, e.message);
                    micro::Reply::failed(&Reply::<Resp>::Err(e), code, description)
                }
            })
        }
    })
    .await
}

/// Asks the gateway for a merchant's Sage access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Merchant id.
    pub merchant: String,
    /// An access token Sage refused with 401: refresh unless the current one differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_token: Option<String>,
}

/// A usable Sage access token.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenGrant {
    /// Bearer token.
    pub access_token: String,
    /// Sage business id (`X-Business`).
    pub business_id: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"<redacted>")
            .field("business_id", &self.business_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Asks the gateway for a merchant's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsRequest {
    /// Merchant id.
    pub merchant: String,
}

/// Asks the contacts service for the Sage contact of a customer in a currency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnsureContactRequest {
    /// Merchant id.
    pub merchant: String,
    /// `customer:<id>` or `guest:<normalised email>`.
    pub customer_key: String,
    /// Document currency (a Sage contact is locked to one currency).
    pub currency: String,
    /// The party as the document shows it (name, company, address, email, VAT number).
    pub party: serde_json::Value,
    /// Event that needs the contact (audit and idempotency).
    pub event_id: String,
    /// Grand total of the document that needs the contact, in `currency`. Sent for
    /// invoices so the contacts service can apply the merchant's B2C consolidation
    /// (low-value first-time guest orders on one fallback contact). Absent (older askers,
    /// credit notes without an invoice) means "never consolidate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_total: Option<rust_decimal::Decimal>,
    /// Stream sequence of that event, so the contacts service's audit record of the Sage
    /// calls made for it links to the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
    /// Asked from a replay's dry run: report, never write (see `ledger_runtime::replay`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A Sage contact as the contacts service knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRef {
    /// Sage contact id.
    pub contact_id: String,
    /// Sage contact reference (≤ 10 characters).
    pub reference: String,
    /// Currency the contact is locked to.
    pub currency: String,
    /// Whether this is the merchant's B2C fallback contact rather than the party's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consolidated: bool,
}

/// Asks the documents service which Sage document a Magento document became.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentLookupRequest {
    /// Merchant id.
    pub merchant: String,
    /// Stable Magento document key (e.g. `invoice:<store>:<increment id>`).
    pub document_key: String,
}

/// Asks the payments service to delete the receipts it posted to an invoice that Magento
/// canceled or voided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveReceiptsRequest {
    /// Merchant id.
    pub merchant: String,
    /// Stable Magento document key of the invoice (`invoice:<store>:<increment id>`).
    pub document_key: String,
    /// The `invoice.canceled` event asking, for the payments service's records.
    pub event_id: String,
}

/// What the payments service removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemovedReceipts {
    /// Sage ids of the receipts deleted now or by an earlier request for the same invoice.
    pub removed: Vec<String>,
}

/// Asks the payments service for a method's clearing account in a currency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearingAccountRequest {
    /// Merchant id.
    pub merchant: String,
    /// Magento payment method code.
    pub method: String,
    /// ISO currency of the money.
    pub currency: String,
}

/// The Sage bank account id of the clearing account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearingAccount {
    /// Sage bank account id.
    pub bank_account_id: String,
}

/// Asks for a merchant's held documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldDocumentsRequest {
    /// Merchant id.
    pub merchant: String,
}

/// A document kept out of Sage on purpose, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldDocument {
    /// Stable Magento document key.
    pub document_key: String,
    /// The event that carried it.
    pub event_id: String,
    /// Skip reason code (docs/accounting.md).
    pub reason: String,
    /// Human-readable context.
    pub detail: String,
}

/// A Magento document's Sage counterpart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentRef {
    /// Sage resource (`sales_invoices`, `sales_credit_notes`).
    pub resource: String,
    /// Sage id.
    pub sage_id: String,
    /// Sage contact id the document belongs to.
    pub contact_id: String,
    /// Document currency.
    pub currency: String,
    /// Document total in its currency.
    pub total: rust_decimal::Decimal,
    /// Exchange rate sent with the document.
    pub exchange_rate: rust_decimal::Decimal,
    /// Its lines as posted, `tax rate · ledger account` each (`None` for documents posted
    /// before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<String>>,
    /// The credit and re-issue done for it, if one was: `sage_id` is then the re-issued
    /// invoice's, which later payments and credit notes follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissue: Option<Reissue>,
    /// What the documents service has allocated to this invoice since it posted it (credit
    /// notes settled against it), in its currency, when it knows the amount exactly; `None`
    /// when it cannot say (a settlement or re-issue not confirmed by Sage yet, a credit note
    /// being canceled), for documents other than invoices, and in answers of services that
    /// predate the field. With it, the payments service knows what the invoice still owes
    /// without reading it from Sage ([`ledger_mapping::outstanding_without_asking`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credited: Option<rust_decimal::Decimal>,
}

/// Asks the documents service to credit and re-issue a Sage invoice ([`REISSUE_SUBJECT`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReissueRequest {
    /// Merchant id (the portal session's merchant, never a form field).
    pub merchant: String,
    /// Stable Magento document key of the invoice (`invoice:<store>:<increment id>`).
    pub document_key: String,
    /// `false`: only say what would happen; `true`: do it.
    pub confirm: bool,
}

/// One Sage document of a credit and re-issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReissueDocument {
    /// Sage id (`None` until it is posted).
    pub sage_id: Option<String>,
    /// Sage's own number (`SI-12`, `SCN-3`), when Sage gave one.
    pub sage_number: Option<String>,
    /// The reference it has (or will have) in Sage.
    pub reference: String,
    /// Its total in the document currency.
    pub total: rust_decimal::Decimal,
}

/// A credit and re-issue: proposed (what would happen) or done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reissue {
    /// Stable Magento document key of the invoice.
    pub document_key: String,
    /// Which re-issue of the invoice this is (1 for the first; it is offered once).
    pub generation: u32,
    /// Whether it has been done (the credit note and the new invoice are in Sage).
    pub done: bool,
    /// Document currency.
    pub currency: String,
    /// The invoice as it is in Sage (credited in full).
    pub original: ReissueDocument,
    /// The credit note for the full invoice.
    pub credit_note: ReissueDocument,
    /// The new invoice under the current settings.
    pub reissued: ReissueDocument,
    /// The new invoice's lines as `tax rate · ledger account`.
    pub lines: Vec<String>,
}

/// Sage access tokens obtained from the gateway, cached until shortly before they expire.
/// Consumer services never hold refresh tokens or the Sage client secret.
pub struct GatewayTokenSource {
    client: async_nats::Client,
    cache: Mutex<ledger_runtime::cache::Lru<String, TokenGrant>>,
    timeout: Duration,
}

impl GatewayTokenSource {
    /// A token source asking over `client`.
    pub fn new(client: async_nats::Client) -> Self {
        GatewayTokenSource {
            client,
            cache: Mutex::new(ledger_runtime::cache::per_merchant()),
            timeout: Duration::from_secs(15),
        }
    }

    async fn fetch(
        &self,
        merchant: &str,
        stale: Option<&str>,
    ) -> Result<TokenGrant, sage_client::SageError> {
        let request = TokenRequest {
            merchant: merchant.to_string(),
            stale_token: stale.map(str::to_string),
        };
        let reply: Result<Reply<TokenGrant>, _> =
            ledger_runtime::bus::request_json(&self.client, TOKEN_SUBJECT, &request, self.timeout)
                .await;
        match reply {
            Ok(Reply::Ok(grant)) => Ok(grant),
            Ok(Reply::Err(e)) => Err(match e.class {
                ErrorClass::Paused => sage_client::SageError::ConnectionRevoked {
                    merchant: merchant.to_string(),
                },
                ErrorClass::NotFound => sage_client::SageError::NotConnected {
                    merchant: merchant.to_string(),
                },
                _ => sage_client::SageError::Transient {
                    status: None,
                    message: format!("token service: {}", e.message),
                    retry_after: None,
                    request_id: None,
                },
            }),
            Err(e) => Err(sage_client::SageError::Transient {
                status: None,
                message: format!("token service unreachable: {e}"),
                retry_after: None,
                request_id: None,
            }),
        }
    }
}

#[async_trait::async_trait]
impl sage_client::AccessTokenSource for GatewayTokenSource {
    async fn access_token(
        &self,
        merchant: &str,
    ) -> Result<sage_client::AccessToken, sage_client::SageError> {
        {
            let mut cache = self.cache.lock().await;
            if let Some(grant) = cache.get(merchant) {
                if grant.expires_at - chrono::Duration::seconds(30) > Utc::now() {
                    return Ok(sage_client::AccessToken {
                        token: grant.access_token.clone(),
                        business_id: grant.business_id.clone(),
                        expires_at: grant.expires_at,
                    });
                }
            }
        }
        let grant = self.fetch(merchant, None).await?;
        self.cache
            .lock()
            .await
            .insert(merchant.to_string(), grant.clone());
        Ok(sage_client::AccessToken {
            token: grant.access_token,
            business_id: grant.business_id,
            expires_at: grant.expires_at,
        })
    }

    async fn invalidate(
        &self,
        merchant: &str,
        stale_access_token: &str,
    ) -> Result<(), sage_client::SageError> {
        let mut cache = self.cache.lock().await;
        if cache
            .get(merchant)
            .is_some_and(|g| sage_client::same_secret(&g.access_token, stale_access_token))
        {
            cache.remove(merchant);
        }
        drop(cache);
        // Tell the gateway too, so it refreshes instead of handing the same token back.
        let grant = self.fetch(merchant, Some(stale_access_token)).await?;
        self.cache.lock().await.insert(merchant.to_string(), grant);
        Ok(())
    }
}

/// A merchant's settings document fetched from the gateway, cached briefly so a burst of
/// events costs one request. A [`SETTINGS_CHANGED_SUBJECT`] notification drops the merchant's
/// copy at once; the time limit stays as the fallback for a notification that is lost.
pub struct SettingsClient {
    client: async_nats::Client,
    cache: Arc<Mutex<SettingsCache>>,
    ttl: Duration,
}

/// Cached settings per merchant (bounded), and how many change notifications arrived in all
/// (an answer asked for before a notification is not kept after it).
struct SettingsCache {
    entries: ledger_runtime::cache::Lru<String, (std::time::Instant, serde_json::Value)>,
    changes: u64,
}

impl Default for SettingsCache {
    fn default() -> Self {
        SettingsCache {
            entries: ledger_runtime::cache::per_merchant(),
            changes: 0,
        }
    }
}

impl SettingsClient {
    /// A settings client asking over `client`, caching answers for `ttl`
    /// ([`ServiceConfig::settings_ttl_secs`]) or until the gateway says they changed. Must be
    /// called inside a tokio runtime (it starts the task that listens for changes).
    pub fn new(client: async_nats::Client, ttl: Duration) -> Self {
        let cache = Arc::new(Mutex::new(SettingsCache::default()));
        let listener = client.clone();
        let changed = Arc::downgrade(&cache);
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut sub = match listener.subscribe(SETTINGS_CHANGED_SUBJECT).await {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::warn!(error = %e, "settings changes not followed; the cache time limit applies");
                    return;
                }
            };
            while let Some(message) = sub.next().await {
                let Some(cache) = changed.upgrade() else {
                    break;
                };
                let Ok(request) = serde_json::from_slice::<SettingsRequest>(&message.payload)
                else {
                    continue;
                };
                let mut cache = cache.lock().await;
                cache.entries.remove(&request.merchant);
                cache.changes += 1;
            }
        });
        SettingsClient { client, cache, ttl }
    }

    /// The merchant's raw settings document.
    pub async fn raw(&self, merchant: &str) -> Result<serde_json::Value, ProcessError> {
        let changes_before = {
            let mut cache = self.cache.lock().await;
            if let Some((at, v)) = cache.entries.get(merchant) {
                if at.elapsed() < self.ttl {
                    return Ok(v.clone());
                }
            }
            cache.changes
        };
        let v: serde_json::Value = ask(
            &self.client,
            SETTINGS_SUBJECT,
            &SettingsRequest {
                merchant: merchant.to_string(),
            },
            Duration::from_secs(10),
        )
        .await?;
        let mut cache = self.cache.lock().await;
        if cache.changes == changes_before {
            cache
                .entries
                .insert(merchant.to_string(), (std::time::Instant::now(), v.clone()));
        }
        Ok(v)
    }

    /// The merchant's settings decoded as `T` (missing keys take `T`'s defaults).
    pub async fn get<T: DeserializeOwned>(&self, merchant: &str) -> Result<T, ProcessError> {
        let raw = self.raw(merchant).await?;
        serde_json::from_value(raw).map_err(|e| {
            ProcessError::permanent(
                "settings.invalid",
                format!("merchant {merchant} settings: {e}"),
            )
        })
    }
}

/// Exports every Sage call as Prometheus metrics (`ledger_sage_calls_total`,
/// `ledger_sage_call_seconds`).
pub struct MetricsObserver {
    service: &'static str,
}

impl MetricsObserver {
    /// An observer labelling calls with `service`.
    pub fn new(service: &'static str) -> Arc<Self> {
        Arc::new(MetricsObserver { service })
    }
}

impl sage_client::CallObserver for MetricsObserver {
    fn on_call(&self, method: &str, resource: &str, status: Option<u16>, elapsed: Duration) {
        let m = ledger_runtime::metrics::metrics();
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        m.sage_calls
            .with_label_values(&[self.service, method, resource, &status])
            .inc();
        m.sage_call_seconds
            .with_label_values(&[self.service, method, resource])
            .observe(elapsed.as_secs_f64());
    }
}

/// What every consumer service connects to at start.
pub struct ServiceContext {
    /// NATS client.
    pub nats: async_nats::Client,
    /// JetStream context.
    pub js: async_nats::jetstream::Context,
    /// Pool on the service's own schema.
    pub db: sqlx_pool::PgPool,
    /// Sage client whose tokens come from the gateway, behind the shared gate (one POST per
    /// business and endpoint at a time, per-business call budget, per-process cap).
    pub sage: GatedSage,
    /// Settings from the gateway.
    pub settings: SettingsClient,
    /// The service's audit trail (table `audit_records` in its schema).
    pub audit: ledger_runtime::audit::AuditLog,
    /// The service's name and connections, for [`ServiceContext::builder`].
    base: ledger_runtime::service::Base,
    /// The configuration the service was started with.
    config: ServiceConfig,
}

/// Re-export so services name the pool type through one path.
pub mod sqlx_pool {
    pub use sqlx::PgPool;
}

/// Configuration of consumer services (flags or environment variables): the runtime's
/// settings plus how to reach Sage and how long answers of other services are trusted.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceConfig {
    /// NATS, PostgreSQL, metrics and consumer loop settings.
    #[command(flatten)]
    pub runtime: ledger_runtime::service::RuntimeConfig,
    /// Sage Accounting API base URL.
    #[arg(
        long,
        env = "SAGE_API_BASE_URL",
        default_value = "https://api.accounting.sage.com/v3.1"
    )]
    pub sage_api_base_url: String,
    /// Seconds a merchant's settings from the gateway are trusted before they are asked again.
    #[arg(long, env = "LEDGER_SETTINGS_TTL_SECS", default_value_t = 30)]
    pub settings_ttl_secs: u64,
    /// Seconds a merchant's Sage financial settings (open period, base currency) are trusted
    /// before they are read again (a refusal of a date reads them at once).
    #[arg(long, env = "LEDGER_FINANCIAL_SETTINGS_TTL_SECS", default_value_t = period::FINANCIAL_SETTINGS_TTL.as_secs())]
    pub financial_settings_ttl_secs: u64,
    /// The shared gate's limits on Sage calls.
    #[command(flatten)]
    pub gate: GateLimits,
}

impl ServiceConfig {
    /// The configuration a consumer service reads from its environment, with the given flags
    /// (e.g. `["--nats-url", url]`) taking precedence: how an engine started in one process
    /// configures its services the way their binaries would be.
    pub fn from_env_with<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            service: ServiceConfig,
        }
        use clap::Parser;
        let args = std::iter::once(std::ffi::OsString::from("service"))
            .chain(flags.into_iter().map(Into::into));
        Ok(Cli::try_parse_from(args)?.service)
    }
}

impl ServiceContext {
    /// Connects NATS, PostgreSQL (the service's schema, with the journal and audit tables;
    /// see [`ledger_runtime::service::Base::connect`]) and builds a Sage client whose tokens
    /// come from the gateway.
    pub async fn connect(
        config: &ServiceConfig,
        service: &'static str,
    ) -> anyhow::Result<ServiceContext> {
        let base = ledger_runtime::service::Base::connect(&config.runtime, service).await?;
        // Consumers never see client credentials: calls need only the bearer token.
        let mut sage_config = sage_client::SageConfig::sage_production("", "", "");
        sage_config.api_base_url = config.sage_api_base_url.clone();
        let client = sage_client::SageClient::new(
            sage_config,
            Arc::new(GatewayTokenSource::new(base.nats.clone())),
        )
        .with_observer(MetricsObserver::new(service));
        let gate = Arc::new(SageGate::new(&base.js, config.gate.clone()).await?);
        Ok(ServiceContext {
            nats: base.nats.clone(),
            js: base.js.clone(),
            db: base.db.clone(),
            sage: GatedSage::new(client, gate),
            settings: SettingsClient::new(
                base.nats.clone(),
                Duration::from_secs(config.settings_ttl_secs),
            ),
            audit: base.audit.clone(),
            base,
            config: config.clone(),
        })
    }

    /// The builder that wires this service (consumers, endpoints, audit, status, dead
    /// letters, replay, metrics, shutdown) with its configuration.
    pub fn builder(&self) -> ledger_runtime::service::ServiceBuilder {
        ledger_runtime::service::ServiceBuilder::new(self.base.clone(), self.config.runtime.clone())
    }

    /// An empty cache of Sage's open periods with the configured lifetime.
    pub fn open_periods(&self) -> OpenPeriods {
        OpenPeriods::with_ttl(Duration::from_secs(self.config.financial_settings_ttl_secs))
    }
}

pub use ledger_runtime::service::Running;

/// An RPC endpoint for a service builder: answers requests on `subject` (queue group
/// [`QUEUE_GROUP`]) with `handler` (see [`serve`]).
pub fn endpoint<Req, Resp, F, Fut>(
    subject: &'static str,
    handler: F,
) -> ledger_runtime::service::Endpoint
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    ledger_runtime::service::Endpoint::new(move |client, shutdown| async move {
        serve(client, subject, handler, shutdown).await?;
        Ok(())
    })
}
