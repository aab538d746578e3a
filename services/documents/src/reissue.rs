//! Credit and re-issue (docs/accounting.md, decision 0026): a Sage invoice the merchant's
//! current settings would post differently is credited in full and posted again, once.
//!
//! Asked on [`ledger_rpc::REISSUE_SUBJECT`]. Without `confirm` nothing is written: the answer
//! says what would happen, or why it is refused. With it:
//! 1. the plan (the credit note's body, mirroring the invoice as Sage holds it, and the new
//!    invoice's body, mapped from the Magento invoice's own event under the current settings)
//!    is recorded in `reissues`, keyed by the document: the first plan wins, so two clicks,
//!    two replicas or a replayed form all carry out the same plan;
//! 2. the credit note, its allocation against the original invoice, and the new invoice are
//!    posted as journaled steps of a synthetic event derived from (merchant, document,
//!    "reissue", generation), so their idempotency ids are their own, never the original
//!    event's, and a step in doubt is re-sent with the same id;
//! 3. with the new invoice, the cross-reference row of the document moves to it (the original
//!    stays in `reissues`), so later payments and credit memos of the Magento invoice target
//!    the re-issued Sage invoice.
//!
//! An invoice with anything paid or allocated in Sage is refused (the receipt would have to
//! move with it; see docs/accounting.md).

use chrono::NaiveDate;
use ledger_events::{InvoiceSnapshot, Payload};
use ledger_mapping::SageDocumentRef;
use ledger_rpc::{ErrorClass, Reissue, ReissueDocument, ReissueRequest, RpcError, StepPost};
use ledger_runtime::journal;
use ledger_runtime::ProcessError;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::{Documents, Posted, PREFLIGHT_CONTACT};

/// Journal step (and idempotency-id salt) of the credit note of a re-issue.
pub const STEP_REISSUE_CREDIT: &str = "reissue_credit_note";
/// Journal step of the allocation of that credit note against the original invoice.
pub const STEP_REISSUE_ALLOCATION: &str = "reissue_allocation";
/// Journal step of the re-issued invoice.
pub const STEP_REISSUE_INVOICE: &str = "reissue_invoice";
/// The only generation offered: an invoice is credited and re-issued at most once.
pub const GENERATION: u32 = 1;

/// The synthetic event id whose journal steps and idempotency ids a re-issue uses: derived
/// from the merchant, the document and the generation, so every replica and every retry of
/// the same re-issue derives the same one, and no Magento event's id is reused.
pub fn reissue_event_id(merchant: &str, document_key: &str, generation: u32) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("ledger\nreissue\n{merchant}\n{document_key}\n{generation}").as_bytes(),
    )
}

fn refused(message: impl Into<String>) -> RpcError {
    RpcError {
        class: ErrorClass::Permanent,
        code: ledger_rpc::REISSUE_REFUSED.into(),
        message: message.into(),
        field: None,
        detail: Value::Null,
        retry_after_ms: None,
    }
}

fn failed(e: ProcessError) -> RpcError {
    RpcError::from_process_error(&e)
}

fn db_failed(e: sqlx::Error) -> RpcError {
    failed(ProcessError::from(e))
}

/// A re-issue as `reissues` holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    generation: i32,
    state: String,
    currency: String,
    contact_id: String,
    original_sage_id: String,
    original_number: Option<String>,
    original_reference: String,
    original_total: Decimal,
    original_exchange_rate: Decimal,
    original_date: NaiveDate,
    credit_body: Value,
    credit_date: NaiveDate,
    credit_reference: String,
    invoice_body: Value,
    invoice_date: NaiveDate,
    new_reference: String,
    new_total: Decimal,
    new_exchange_rate: Decimal,
    lines: Value,
    stream_sequence: i64,
    credit_sage_id: Option<String>,
    credit_number: Option<String>,
    allocation_sage_id: Option<String>,
    new_sage_id: Option<String>,
    new_number: Option<String>,
}

impl Row {
    fn answer(&self, document_key: &str) -> Reissue {
        Reissue {
            document_key: document_key.to_string(),
            generation: self.generation as u32,
            done: self.state == "done",
            currency: self.currency.clone(),
            original: ReissueDocument {
                sage_id: Some(self.original_sage_id.clone()),
                sage_number: self.original_number.clone(),
                reference: self.original_reference.clone(),
                total: self.original_total,
            },
            credit_note: ReissueDocument {
                sage_id: self.credit_sage_id.clone(),
                sage_number: self.credit_number.clone(),
                reference: self.credit_reference.clone(),
                total: self.original_total,
            },
            reissued: ReissueDocument {
                sage_id: self.new_sage_id.clone(),
                sage_number: self.new_number.clone(),
                reference: self.new_reference.clone(),
                total: self.new_total,
            },
            lines: serde_json::from_value(self.lines.clone()).unwrap_or_default(),
        }
    }
}

const ROW_COLUMNS: &str = "generation, state, currency, contact_id, original_sage_id, original_number, original_reference,
    original_total, original_exchange_rate, original_date, credit_body, credit_date, credit_reference, invoice_body,
    invoice_date, new_reference, new_total, new_exchange_rate, lines, stream_sequence, credit_sage_id, credit_number,
    allocation_sage_id, new_sage_id, new_number";

/// The re-issue recorded for a document, if any (done or under way).
pub(crate) async fn recorded(
    db: &sqlx::PgPool,
    merchant: &str,
    document_key: &str,
) -> Result<Option<Reissue>, sqlx::Error> {
    Ok(load(db, merchant, document_key)
        .await?
        .map(|r| r.answer(document_key)))
}

async fn load(
    db: &sqlx::PgPool,
    merchant: &str,
    document_key: &str,
) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {ROW_COLUMNS} FROM reissues WHERE merchant_id = $1 AND document_key = $2"
    ))
    .bind(merchant)
    .bind(document_key)
    .fetch_optional(db)
    .await
}

impl Documents {
    /// Answers a [`ReissueRequest`].
    pub(crate) async fn reissue(&self, req: ReissueRequest) -> Result<Reissue, RpcError> {
        let merchant = req.merchant.as_str();
        let key = req.document_key.as_str();
        if let Some(row) = load(self.db(), merchant, key).await.map_err(db_failed)? {
            // Planned already (by this request's twin, another replica or an earlier
            // attempt): carry out that plan, never a second one.
            if row.state == "done" || !req.confirm {
                return Ok(row.answer(key));
            }
            return self.carry_out(merchant, key, row).await;
        }
        let row = self.plan(merchant, key).await?;
        if !req.confirm {
            return Ok(row.answer(key));
        }
        sqlx::query(
            "INSERT INTO reissues (merchant_id, document_key, generation, state, currency, contact_id, original_sage_id,
                original_number, original_reference, original_total, original_exchange_rate, original_date, credit_body,
                credit_date, credit_reference, invoice_body, invoice_date, new_reference, new_total, new_exchange_rate,
                lines, stream_sequence)
             VALUES ($1, $2, $3, 'planned', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
             ON CONFLICT (merchant_id, document_key) DO NOTHING",
        )
        .bind(merchant)
        .bind(key)
        .bind(row.generation)
        .bind(&row.currency)
        .bind(&row.contact_id)
        .bind(&row.original_sage_id)
        .bind(&row.original_number)
        .bind(&row.original_reference)
        .bind(row.original_total)
        .bind(row.original_exchange_rate)
        .bind(row.original_date)
        .bind(&row.credit_body)
        .bind(row.credit_date)
        .bind(&row.credit_reference)
        .bind(&row.invoice_body)
        .bind(row.invoice_date)
        .bind(&row.new_reference)
        .bind(row.new_total)
        .bind(row.new_exchange_rate)
        .bind(&row.lines)
        .bind(row.stream_sequence)
        .execute(self.db())
        .await
        .map_err(db_failed)?;
        // The plan recorded first wins.
        let row = load(self.db(), merchant, key)
            .await
            .map_err(db_failed)?
            .ok_or_else(|| failed(ProcessError::transient("re-issue plan not found")))?;
        self.carry_out(merchant, key, row).await
    }

    /// What a re-issue of `key` would do now, or why it is refused. Writes nothing.
    async fn plan(&self, merchant: &str, key: &str) -> Result<Row, RpcError> {
        if !key.starts_with("invoice:") {
            return Err(refused(format!(
                "{key} is not an invoice: only invoices are credited and re-issued"
            )));
        }
        let posted: Posted = match self.posted(merchant, key).await.map_err(failed)? {
            Some(p) => p,
            None => return Err(refused(format!("{key} is not in Sage"))),
        };
        if self.voided(merchant, key).await.map_err(failed)? {
            return Err(refused(format!("{key} was voided in Sage")));
        }
        // The Sage invoice as it is: nothing paid or allocated, not void.
        let invoice = self
            .ctx
            .sage
            .get(merchant, &format!("sales_invoices/{}", posted.sage_id), &[])
            .await
            .map_err(|e| failed(ledger_rpc::sage_error_to_process(e)))?
            .body;
        let outstanding = crate::decimal_of(&invoice["outstanding_amount"]);
        let total = crate::decimal_of(&invoice["total_amount"]);
        if outstanding != Some(total.unwrap_or_default()) || total.is_none() {
            return Err(refused(format!(
                "invoice {} has {} {} paid or allocated in Sage: a re-issue would leave that money on the credited invoice. \
                 Remove the payment or allocation in Sage first, or correct the invoice there by hand",
                posted.reference,
                ledger_mapping::round2(total.unwrap_or_default() - outstanding.unwrap_or_default()),
                posted.currency
            )));
        }
        let credit = ledger_mapping::map_reissue_credit_note(
            &invoice,
            &posted.number,
            GENERATION,
            posted.date,
        )
        .map_err(|e| refused(format!("the Sage invoice cannot be credited exactly: {e}")))?;
        // The Magento invoice, from the event that posted it.
        let sequence: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT stream_sequence FROM sync_steps WHERE merchant_id = $1 AND event_id = $2 AND step = 'sales_invoices'",
        )
        .bind(merchant)
        .bind(posted.event_id)
        .fetch_optional(self.db())
        .await
        .map_err(db_failed)?;
        let Some((Some(sequence),)) = sequence else {
            return Err(refused(format!(
                "the event that posted {key} is not in the journal"
            )));
        };
        let stream = self
            .ctx
            .js
            .get_stream(ledger_runtime::bus::EVENTS_STREAM)
            .await
            .map_err(|e| failed(ProcessError::transient(e.to_string())))?;
        let raw = stream.get_raw_message(sequence as u64).await.map_err(|e| {
            refused(format!(
                "the Magento invoice {key} is no longer in the event log: {e}"
            ))
        })?;
        let env = ledger_events::parse(&raw.payload)
            .map_err(|e| refused(format!("the event of {key} cannot be read: {e}")))?;
        let snapshot: InvoiceSnapshot = match env.payload {
            Payload::InvoiceCreated(s) if env.merchant_id == merchant => s,
            _ => {
                return Err(refused(format!(
                    "the event that posted {key} is not its invoice"
                )))
            }
        };
        // The new invoice under the current settings: refused if they would hold it.
        let (raw_settings, settings) = self.settings(merchant).await.map_err(failed)?;
        let hold = |e: ledger_mapping::MappingError| {
            refused(format!(
                "the current settings would not post invoice {}: {e}",
                posted.number
            ))
        };
        ledger_mapping::invoice_decision(&snapshot, env.website_id, env.store_id, &settings)
            .map_err(hold)?;
        ledger_mapping::map_sales_invoice(&snapshot, &settings, PREFLIGHT_CONTACT).map_err(hold)?;
        let mut plan = ledger_mapping::map_sales_invoice(&snapshot, &settings, &posted.contact_id)
            .map_err(hold)?;
        if !ledger_mapping::posts_differently(&invoice, &plan) {
            return Err(refused(format!(
                "nothing to correct: the saved settings post invoice {} as it is in Sage (save your edits first)",
                posted.reference
            )));
        }
        let invoice_period = self
            .period_date(merchant, &raw_settings, &plan, "re-issued invoice")
            .await
            .map_err(failed)?
            .map_err(|(reason, detail)| refused(format!("{reason}: {detail}")))?;
        ledger_mapping::move_document_date(&mut plan.body, &invoice_period);
        plan.date = invoice_period.date();
        let plan = ledger_mapping::into_reissue(plan, &posted.reference, GENERATION);
        let mut credit = credit;
        let credit_period = self
            .period_date(merchant, &raw_settings, &credit, "credit note")
            .await
            .map_err(failed)?
            .map_err(|(reason, detail)| refused(format!("{reason}: {detail}")))?;
        ledger_mapping::move_document_date(&mut credit.body, &credit_period);
        credit.date = credit_period.date();
        Ok(Row {
            generation: GENERATION as i32,
            state: "proposed".into(),
            currency: posted.currency.clone(),
            contact_id: posted.contact_id.clone(),
            original_sage_id: posted.sage_id.clone(),
            original_number: posted.sage_number.clone(),
            original_reference: posted.reference.clone(),
            original_total: ledger_mapping::round2(posted.total),
            original_exchange_rate: posted.exchange_rate,
            original_date: posted.date,
            credit_date: credit.date,
            credit_reference: credit.reference.clone(),
            credit_body: credit.body,
            lines: serde_json::json!(ledger_mapping::line_labels(&plan)),
            invoice_date: plan.date,
            new_reference: plan.reference.clone(),
            new_total: ledger_mapping::round2(plan.expected_total),
            new_exchange_rate: plan.exchange_rate,
            invoice_body: plan.body,
            stream_sequence: sequence,
            credit_sage_id: None,
            credit_number: None,
            allocation_sage_id: None,
            new_sage_id: None,
            new_number: None,
        })
    }

    /// Posts what is not posted yet of a recorded plan, step by step.
    async fn carry_out(
        &self,
        merchant: &str,
        key: &str,
        mut row: Row,
    ) -> Result<Reissue, RpcError> {
        let event_id = reissue_event_id(merchant, key, row.generation as u32);
        let sequence = row.stream_sequence as u64;
        if row.credit_sage_id.is_none() {
            let post = StepPost {
                merchant,
                event_id,
                step: STEP_REISSUE_CREDIT,
                stream_sequence: sequence,
                resource: "sales_credit_notes",
                root: "sales_credit_note",
                body: &row.credit_body,
                date: row.credit_date,
            };
            let (response, sage_id) = self
                .periods
                .post_step(&self.ctx.sage, self.db(), post)
                .await
                .map_err(failed)?;
            let number = ledger_runtime::audit::sage_number_of(&response.body);
            self.step_done(
                merchant,
                key,
                event_id,
                STEP_REISSUE_CREDIT,
                &sage_id,
                response.request_id.as_deref(),
                "credit_sage_id = $3, credit_number = $4",
                number.as_deref(),
            )
            .await?;
            row.credit_sage_id = Some(sage_id);
            row.credit_number = number;
        }
        if row.allocation_sage_id.is_none() {
            let credit_id = row.credit_sage_id.clone().unwrap_or_default();
            let reference = |sage_id: &str| SageDocumentRef {
                sage_id: sage_id.to_string(),
                contact_id: row.contact_id.clone(),
                currency: row.currency.clone(),
                exchange_rate: row.original_exchange_rate,
                total: row.original_total,
            };
            let date = row.credit_date.max(row.original_date);
            let allocation = ledger_mapping::map_credit_allocation(
                &[(reference(&row.original_sage_id), row.original_total)],
                &reference(&credit_id),
                date,
            )
            .map_err(|e| refused(format!("allocation: {e}")))?;
            let post = StepPost {
                merchant,
                event_id,
                step: STEP_REISSUE_ALLOCATION,
                stream_sequence: sequence,
                resource: allocation.resource,
                root: allocation.root,
                body: &allocation.body,
                date,
            };
            let (response, sage_id) = self
                .periods
                .post_step(&self.ctx.sage, self.db(), post)
                .await
                .map_err(failed)?;
            self.step_done(
                merchant,
                key,
                event_id,
                STEP_REISSUE_ALLOCATION,
                &sage_id,
                response.request_id.as_deref(),
                "allocation_sage_id = $3, credit_number = COALESCE($4, credit_number)",
                None,
            )
            .await?;
            row.allocation_sage_id = Some(sage_id);
        }
        if row.new_sage_id.is_none() {
            let post = StepPost {
                merchant,
                event_id,
                step: STEP_REISSUE_INVOICE,
                stream_sequence: sequence,
                resource: "sales_invoices",
                root: "sales_invoice",
                body: &row.invoice_body,
                date: row.invoice_date,
            };
            let (response, sage_id) = self
                .periods
                .post_step(&self.ctx.sage, self.db(), post)
                .await
                .map_err(failed)?;
            let number = ledger_runtime::audit::sage_number_of(&response.body);
            self.invoice_done(
                merchant,
                key,
                event_id,
                &row,
                &sage_id,
                &response,
                number.as_deref(),
            )
            .await?;
            tracing::info!(
                document = key,
                original = row.original_sage_id,
                credit_note = row.credit_sage_id.as_deref().unwrap_or(""),
                reissued = sage_id,
                reference = row.new_reference,
                "invoice credited and re-issued"
            );
        }
        let row = load(self.db(), merchant, key)
            .await
            .map_err(db_failed)?
            .ok_or_else(|| failed(ProcessError::transient("re-issue row vanished")))?;
        Ok(row.answer(key))
    }

    /// Commits one posted step of a re-issue: its Sage id in `reissues` (`set`, with `$3` the
    /// id and `$4` Sage's number) and the journal's outcome, together.
    #[allow(clippy::too_many_arguments)]
    async fn step_done(
        &self,
        merchant: &str,
        key: &str,
        event_id: Uuid,
        step: &str,
        sage_id: &str,
        request_id: Option<&str>,
        set: &str,
        number: Option<&str>,
    ) -> Result<(), RpcError> {
        let mut tx = self.db().begin().await.map_err(db_failed)?;
        sqlx::query(&format!(
            "UPDATE reissues SET {set} WHERE merchant_id = $1 AND document_key = $2"
        ))
        .bind(merchant)
        .bind(key)
        .bind(sage_id)
        .bind(number)
        .execute(&mut *tx)
        .await
        .map_err(db_failed)?;
        journal::record_done(&mut tx, merchant, event_id, step, Some(sage_id), request_id)
            .await
            .map_err(db_failed)?;
        tx.commit().await.map_err(db_failed)
    }

    /// Commits the re-issued invoice: the re-issue done, the document's cross-reference moved
    /// to the new invoice, and the journal's outcome, together.
    #[allow(clippy::too_many_arguments)]
    async fn invoice_done(
        &self,
        merchant: &str,
        key: &str,
        event_id: Uuid,
        row: &Row,
        sage_id: &str,
        response: &sage_client::SageResponse,
        number: Option<&str>,
    ) -> Result<(), RpcError> {
        let mut tx = self.db().begin().await.map_err(db_failed)?;
        sqlx::query(
            "UPDATE reissues SET new_sage_id = $3, new_number = $4, state = 'done', done_at = now()
             WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .bind(sage_id)
        .bind(number)
        .execute(&mut *tx)
        .await
        .map_err(db_failed)?;
        sqlx::query(
            "UPDATE documents SET sage_id = $3, sage_number = $4, reference = $5, total = $6, exchange_rate = $7,
                document_date = $8, posted_lines = $9
             WHERE merchant_id = $1 AND document_key = $2",
        )
        .bind(merchant)
        .bind(key)
        .bind(sage_id)
        .bind(number)
        .bind(&row.new_reference)
        .bind(row.new_total)
        .bind(row.new_exchange_rate)
        .bind(ledger_rpc::period::body_date(&row.invoice_body).unwrap_or(row.invoice_date))
        .bind(&row.lines)
        .execute(&mut *tx)
        .await
        .map_err(db_failed)?;
        journal::record_done(
            &mut tx,
            merchant,
            event_id,
            STEP_REISSUE_INVOICE,
            Some(sage_id),
            response.request_id.as_deref(),
        )
        .await
        .map_err(db_failed)?;
        tx.commit().await.map_err(db_failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reissue_has_its_own_idempotency_ids() {
        let event = reissue_event_id("m1", "invoice:1:000100002", 1);
        // Every replica derives the same event id for the same re-issue...
        assert_eq!(event, reissue_event_id("m1", "invoice:1:000100002", 1));
        // ...and another for another merchant, document or generation.
        for other in [
            reissue_event_id("m2", "invoice:1:000100002", 1),
            reissue_event_id("m1", "invoice:1:000100003", 1),
            reissue_event_id("m1", "invoice:1:000100002", 2),
        ] {
            assert_ne!(event, other);
        }
        let ids = [
            sage_client::idempotency_id(&event, STEP_REISSUE_CREDIT),
            sage_client::idempotency_id(&event, STEP_REISSUE_ALLOCATION),
            sage_client::idempotency_id(&event, STEP_REISSUE_INVOICE),
        ];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_ne!(ids[0], ids[2]);
    }
}
