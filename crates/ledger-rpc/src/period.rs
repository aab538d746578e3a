//! Sage's open period (`GET /financial_settings`: `accounts_start_date`,
//! `year_end_lockdown_date`) as reference data of the services that post dated records
//! (documents, payments), cached per merchant and read again when Sage refuses a date.
//!
//! The decision itself is the pure [`ledger_mapping::open_period_date`].

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ledger_mapping::{open_period_date, LockedPeriod, MappingError, OpenPeriod, PeriodDate};
use ledger_runtime::ProcessError;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{mapping_outcome, sage_error_to_process, GatedSage};

/// How long a merchant's financial settings are trusted before they are read again (a
/// refusal of a date reads them at once); a service's `financial_settings_ttl_secs` overrides it.
pub const FINANCIAL_SETTINGS_TTL: Duration = Duration::from_secs(3600);

/// How soon a document refused for its date is handled again, with fresh financial settings.
pub const DATE_REFUSAL_RETRY: Duration = Duration::from_millis(200);

/// One merchant's cached reference data: when it was read, the open period, the base currency.
type CachedFinancialSettings = (Instant, OpenPeriod, Option<String>);

/// A dated record to post for one journaled step of one event ([`OpenPeriods::post_step`]).
#[derive(Debug, Clone, Copy)]
pub struct StepPost<'a> {
    /// Merchant.
    pub merchant: &'a str,
    /// The event the step belongs to.
    pub event_id: uuid::Uuid,
    /// Journal step (and idempotency-id salt).
    pub step: &'a str,
    /// The event's sequence in the stream (kept with the step's intent).
    pub stream_sequence: u64,
    /// Sage resource, e.g. `sales_invoices`.
    pub resource: &'a str,
    /// Root key of the body, e.g. `sales_invoice`.
    pub root: &'a str,
    /// The record's fields.
    pub body: &'a Value,
    /// The date sent, for telling a locked period's refusal apart.
    pub date: NaiveDate,
}

/// Per-merchant cache of Sage's open period (and base currency).
pub struct OpenPeriods {
    cache: Mutex<ledger_runtime::cache::Lru<String, CachedFinancialSettings>>,
    ttl: Duration,
}

impl Default for OpenPeriods {
    fn default() -> Self {
        Self::new()
    }
}

/// What the open period says about a record's date.
pub type PeriodDecision = Result<PeriodDate, (String, String)>;

impl OpenPeriods {
    /// An empty cache with [`FINANCIAL_SETTINGS_TTL`].
    pub fn new() -> Self {
        Self::with_ttl(FINANCIAL_SETTINGS_TTL)
    }

    /// An empty cache whose entries are trusted for `ttl`
    /// (`ServiceConfig::financial_settings_ttl_secs`).
    pub fn with_ttl(ttl: Duration) -> Self {
        OpenPeriods {
            cache: Mutex::new(ledger_runtime::cache::per_merchant()),
            ttl,
        }
    }

    /// Posts a dated Sage record once for a journaled step: records the step's intent, then
    /// POSTs with the idempotency id derived from the event and the step, so a step in doubt
    /// (an earlier attempt that may have landed) gets Sage's first result back. A refusal of
    /// `post.date` re-reads the financial settings ([`OpenPeriods::refusal`]). Returns Sage's
    /// answer and the id it gave; the caller commits the id with the step's outcome.
    pub async fn post_step(
        &self,
        sage: &GatedSage,
        db: &sqlx::PgPool,
        post: StepPost<'_>,
    ) -> Result<(sage_client::SageResponse, String), ProcessError> {
        let (merchant, date) = (post.merchant, post.date);
        match self.try_post_step(sage, db, post).await? {
            Ok(posted) => Ok(posted),
            Err(e) => Err(self.refusal(sage, merchant, date, e).await),
        }
    }

    /// [`OpenPeriods::post_step`] handing Sage's error back as it came (the inner `Err`), for
    /// a caller that acts on some refusals itself; [`OpenPeriods::refusal`] classifies the
    /// others.
    pub async fn try_post_step(
        &self,
        sage: &GatedSage,
        db: &sqlx::PgPool,
        post: StepPost<'_>,
    ) -> Result<Result<(sage_client::SageResponse, String), sage_client::SageError>, ProcessError>
    {
        use ledger_runtime::journal;
        let idempotency_id = sage_client::idempotency_id(&post.event_id, post.step);
        let fresh = journal::record_intent(
            db,
            post.merchant,
            post.event_id,
            post.step,
            &idempotency_id,
            post.stream_sequence,
        )
        .await?;
        let response = match sage
            .post(
                post.merchant,
                post.resource,
                post.root,
                post.body.clone(),
                Some(&idempotency_id),
            )
            .await
        {
            Ok(response) => response,
            Err(e) => {
                crate::withdraw_unapplied_intent(
                    db,
                    fresh,
                    post.merchant,
                    post.event_id,
                    post.step,
                    &e,
                )
                .await?;
                return Ok(Err(e));
            }
        };
        let sage_id = response
            .id()
            .ok_or_else(|| ProcessError::transient("Sage answered without an id"))?
            .to_string();
        Ok(Ok((response, sage_id)))
    }

    /// The merchant's open period, from the cache while it is fresh.
    pub async fn get(&self, sage: &GatedSage, merchant: &str) -> Result<OpenPeriod, ProcessError> {
        if let Some((at, period, _)) = self.cache.lock().await.get(merchant) {
            if at.elapsed() < self.ttl {
                return Ok(*period);
            }
        }
        self.refresh(sage, merchant).await
    }

    /// Sage's base currency for the merchant (`financial_settings.base_currency`), read with
    /// the open period on the same reference-data refresh; `None` when Sage does not say.
    pub async fn base_currency(
        &self,
        sage: &GatedSage,
        merchant: &str,
    ) -> Result<Option<String>, ProcessError> {
        if let Some((at, _, base)) = self.cache.lock().await.get(merchant) {
            if at.elapsed() < self.ttl {
                return Ok(base.clone());
            }
        }
        self.refresh(sage, merchant).await?;
        Ok(self
            .cache
            .lock()
            .await
            .get(merchant)
            .and_then(|(_, _, base)| base.clone()))
    }

    /// Reads the merchant's financial settings from Sage now and caches them.
    pub async fn refresh(
        &self,
        sage: &GatedSage,
        merchant: &str,
    ) -> Result<OpenPeriod, ProcessError> {
        let response = sage
            .get(merchant, "financial_settings", &[])
            .await
            .map_err(sage_error_to_process)?;
        let period = OpenPeriod::from_financial_settings(&response.body).map_err(|e| match e {
            MappingError::Invalid { field, reason } => ProcessError::invalid_field(
                "sage.financial_settings",
                field.clone(),
                format!("Sage's {field} is {reason}"),
            ),
            other => ProcessError::permanent("sage.financial_settings", other.to_string()),
        })?;
        // The base currency rides on the same answer; an absent or unreadable one is not
        // checked (older businesses, test doubles), never guessed.
        let base = ledger_mapping::sage_base_currency(&response.body).ok();
        self.cache
            .lock()
            .await
            .insert(merchant.to_string(), (Instant::now(), period, base));
        Ok(period)
    }

    /// The date a record dated `date` goes to Sage with, under the merchant's
    /// `locked_period` setting (read from `raw_settings`): `Ok(Ok(date))` to post,
    /// `Ok(Err((reason, detail)))` to hold it, `Err` for a bad setting or an unreachable Sage.
    pub async fn decide(
        &self,
        sage: &GatedSage,
        merchant: &str,
        raw_settings: &Value,
        date: NaiveDate,
        what: &str,
    ) -> Result<PeriodDecision, ProcessError> {
        let policy = LockedPeriod::from_settings(raw_settings).map_err(mapping_error)?;
        self.decide_with(sage, merchant, policy, date, what).await
    }

    /// [`OpenPeriods::decide`] with the policy already read.
    pub async fn decide_with(
        &self,
        sage: &GatedSage,
        merchant: &str,
        policy: LockedPeriod,
        date: NaiveDate,
        what: &str,
    ) -> Result<PeriodDecision, ProcessError> {
        let period = self.get(sage, merchant).await?;
        match open_period_date(date, &period, policy, what) {
            Ok(decided) => Ok(Ok(decided)),
            Err(e) => mapping_outcome(e).map(Err),
        }
    }

    /// The failure for a write Sage refused. When Sage refused the `date` and its financial
    /// settings, read again now, no longer leave `sent` open (the bookkeeper locked a period
    /// since they were cached), the handling is retried shortly and decides with the fresh
    /// dates (moved or held, never a dead letter); any other refusal is returned as it is.
    pub async fn refusal(
        &self,
        sage: &GatedSage,
        merchant: &str,
        sent: NaiveDate,
        error: sage_client::SageError,
    ) -> ProcessError {
        let about_date = matches!(&error, sage_client::SageError::Rejected { status: 422, errors, .. }
            if errors.iter().any(|i| ledger_mapping::is_date_refusal(&i.source)));
        if !about_date {
            return sage_error_to_process(error);
        }
        match self.refresh(sage, merchant).await {
            Ok(fresh) if !fresh.is_open(sent) => {
                tracing::info!(
                    merchant,
                    %sent,
                    "Sage refused a date in a period locked since the financial settings were read; retrying with fresh ones"
                );
                ProcessError::Transient {
                    message: format!(
                        "Sage refused the date {sent}: {}; financial settings read again",
                        fresh.why_locked(sent).unwrap_or_default()
                    ),
                    retry_after: Some(DATE_REFUSAL_RETRY),
                }
            }
            Ok(_) => sage_error_to_process(error),
            Err(e) => e,
        }
    }
}

/// The `date` field of a Sage request body (`YYYY-MM-DD`).
pub fn body_date(body: &Value) -> Option<NaiveDate> {
    body.get("date")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// The failure for a merchant setting the mapping refused (`settings.invalid`, naming it).
pub fn mapping_error(e: MappingError) -> ProcessError {
    match e {
        MappingError::Invalid { field, reason } => ProcessError::invalid_field(
            "settings.invalid",
            field.clone(),
            format!("{field} is {reason}"),
        ),
        other => ProcessError::permanent("settings.invalid", other.to_string()),
    }
}
