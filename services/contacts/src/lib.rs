//! Ledger's contacts service: one Sage contact per (merchant, customer, currency), and the
//! merchant's catalogue (products and services).
//!
//! - Answers [`ledger_rpc::ENSURE_CONTACT_SUBJECT`]: the documents and payments services never
//!   create contacts themselves; they ask here. Requests for the same (merchant, customer,
//!   currency) are serialised in-process and, across replicas, by a row lock taken before the
//!   Sage call, so two documents of a new customer processed at once create one contact.
//! - Optional B2C consolidation (merchant setting `b2c_consolidation`): a first-time guest
//!   order at or below the currency's threshold, from a buyer who is not a business, goes to
//!   one fallback contact per currency instead of a contact of its own.
//! - Consumes `customer.saved`: every currency variant of that customer is updated in Sage.
//! - Consumes `product.saved` through a second durable consumer ([`catalog`]).
//!
//! References are ≤ 10 characters (Sage's limit), derived from the customer and currency; if
//! Sage refuses one as taken (including by a deleted contact), the next candidate is tried.
//! See `docs/accounting.md`.

pub mod catalog;
pub mod sent;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use ledger_events::{normalise_email, OrderContext, Payload};
use ledger_mapping::{
    B2cConsolidation, ContactRoute, MerchantSettings, Party, CONSOLIDATED_CUSTOMER_KEY,
};
use ledger_rpc::{ContactRef, EnsureContactRequest, RpcError, ServiceConfig, ServiceContext};
use ledger_runtime::bus::ConsumerSpec;
use ledger_runtime::consumer::{Delivery, Outcome};
use ledger_runtime::journal;
use ledger_runtime::service::Projection;
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::ProcessError;
use sage_client::SageError;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Service name in metrics, logs and the durable consumer name.
pub const SERVICE: &str = "contacts";
/// Reference candidates tried before giving up on a contact.
const MAX_REFERENCE_ATTEMPTS: u32 = 20;

/// Configuration (flags or environment variables).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "contacts", about = "Ledger contacts service")]
pub struct Config {
    /// Settings shared by every consumer service.
    #[command(flatten)]
    pub service: ServiceConfig,
}

/// The party sent with an ensure request: the order of a document or a customer account.
pub fn party_payload_from_order(order: &OrderContext) -> Value {
    json!({ "order": order })
}

fn party_from_payload(payload: &Value) -> Result<Party, ProcessError> {
    if let Some(order) = payload.get("order") {
        let order: OrderContext = serde_json::from_value(order.clone()).map_err(|e| {
            ProcessError::invalid_field("rpc.bad_party", "party.order", e.to_string())
        })?;
        return Ok(Party::from_order(&order));
    }
    Err(ProcessError::invalid_field(
        "rpc.bad_party",
        "party",
        "expected {\"order\": ...}",
    ))
}

/// Stable id for writes that belong to a contact rather than to one event.
fn contact_uuid(merchant: &str, customer_key: &str, currency: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("ledger-contact\u{1f}{merchant}\u{1f}{customer_key}\u{1f}{currency}").as_bytes(),
    )
}

/// Whether Sage refused a contact because its reference is taken.
fn reference_taken(e: &SageError) -> bool {
    matches!(e, SageError::Rejected { .. })
        && e.errors().iter().any(|i| {
            i.source.contains("reference") || i.message.to_ascii_lowercase().contains("reference")
        })
}

/// A Sage contact as this service knows it: (contact id, reference, company and VAT number
/// as last sent).
type KnownContact = (String, String, Option<String>, Option<String>);

/// A contact row of the same person under another key: (key, contact id, reference, company,
/// VAT number).
type SamePersonRow = (String, String, String, Option<String>, Option<String>);

/// Sage's reason when it refused a contact for its VAT number (`tax_number`), if that is
/// what it refused.
fn tax_number_refused(e: &SageError) -> Option<String> {
    if !matches!(e, SageError::Rejected { .. }) {
        return None;
    }
    e.errors()
        .iter()
        .find(|i| i.source.contains("tax_number"))
        .map(|i| i.message.clone())
}

/// The contacts service.
pub struct Contacts {
    ctx: Arc<ServiceContext>,
    locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Contacts {
    fn lock_for(&self, key: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            // Only idle locks are dropped: a held lock has another Arc besides the map's.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Returns the Sage contact a document of `req` goes to, creating it once: the party's
    /// own contact in the document currency, or, under the merchant's B2C consolidation, the
    /// fallback contact of the currency.
    pub async fn ensure(&self, req: &EnsureContactRequest) -> Result<ContactRef, ProcessError> {
        let party = party_from_payload(&req.party)?
            .with_name_priority(self.name_priority(&req.merchant).await?);
        match self.route(req, &party).await? {
            (ContactRoute::Individual, _) => {
                self.ensure_contact(
                    &req.merchant,
                    &req.customer_key,
                    &req.currency,
                    &party,
                    false,
                )
                .await
            }
            (ContactRoute::Consolidated, policy) => {
                let fallback = Party::consolidated(&policy, &req.currency);
                let contact = self
                    .ensure_contact(
                        &req.merchant,
                        CONSOLIDATED_CUSTOMER_KEY,
                        &req.currency,
                        &fallback,
                        true,
                    )
                    .await?;
                tracing::info!(
                    merchant = req.merchant,
                    customer = req.customer_key,
                    event_id = req.event_id,
                    contact_id = contact.contact_id,
                    "first low-value guest order consolidated"
                );
                Ok(contact)
            }
        }
    }

    /// The merchant's `contact_name_priority` (company or person first).
    async fn name_priority(
        &self,
        merchant: &str,
    ) -> Result<ledger_mapping::ContactNamePriority, ProcessError> {
        let settings: MerchantSettings = self.ctx.settings.get(merchant).await?;
        Ok(settings.contact_name_priority)
    }

    /// Decides between the party's own contact and the B2C fallback contact.
    ///
    /// Settings are asked for only when consolidation could apply at all (a guest on a
    /// document with a known total), so the common path costs no extra request. Every guest
    /// invoice is recorded while consolidation is on, so "first order" survives restarts and
    /// replicas: the first event seen for a guest is its first order, and a redelivery of
    /// that same event is routed the same way again.
    async fn route(
        &self,
        req: &EnsureContactRequest,
        party: &Party,
    ) -> Result<(ContactRoute, B2cConsolidation), ProcessError> {
        if req.document_total.is_none() || !party.is_guest() {
            return Ok((ContactRoute::Individual, B2cConsolidation::default()));
        }
        let settings: MerchantSettings = self.ctx.settings.get(&req.merchant).await?;
        let policy = settings.b2c_consolidation;
        if !policy.enabled {
            return Ok((ContactRoute::Individual, policy));
        }
        // A guest who already has a contact of their own (from before consolidation was
        // switched on) is a repeat customer even without a first-order record.
        let has_contact: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE merchant_id = $1 AND customer_key = $2 AND sage_contact_id IS NOT NULL)",
        )
        .bind(&req.merchant)
        .bind(&req.customer_key)
        .fetch_one(&self.ctx.db)
        .await?;
        sqlx::query(
            "INSERT INTO guest_orders (merchant_id, customer_key, first_event_id, first_is_new)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&req.merchant)
        .bind(&req.customer_key)
        .bind(&req.event_id)
        .bind(!has_contact)
        .execute(&self.ctx.db)
        .await?;
        // Re-read: of two invoices of one guest racing here, only the winner is first.
        let (first_event_id, first_is_new): (String, bool) = sqlx::query_as(
            "SELECT first_event_id, first_is_new FROM guest_orders WHERE merchant_id = $1 AND customer_key = $2",
        )
        .bind(&req.merchant)
        .bind(&req.customer_key)
        .fetch_one(&self.ctx.db)
        .await?;
        let first_order = first_is_new && first_event_id == req.event_id;
        let route = ledger_mapping::b2c_contact_route(
            &policy,
            party,
            &req.currency,
            req.document_total,
            first_order,
        );
        Ok((route, policy))
    }

    /// A live Sage contact holding `reference` under the party's own name: ours.
    async fn find_own_contact(
        &self,
        merchant: &str,
        reference: &str,
        party: &Party,
    ) -> Result<Option<String>, ProcessError> {
        let found = self
            .ctx
            .sage
            .list_all(
                merchant,
                "contacts",
                &[("search", reference), ("attributes", "reference,name")],
            )
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        let expected = ledger_mapping::map_contact(party, "", reference);
        Ok(found
            .iter()
            .find(|c| {
                c.get("reference")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| r.eq_ignore_ascii_case(reference))
                    && c.get("name") == expected.get("name")
            })
            .and_then(|c| c.get("id").and_then(|i| i.as_str()))
            .map(str::to_string))
    }

    /// Returns the Sage contact kept under (merchant, key, currency), creating it once.
    ///
    /// One person, one contact per currency: before creating, a contact made for the same
    /// e-mail under the other key (the guest's contact of a customer who has since
    /// registered, or the registered customer's contact of a guest order) is adopted, with
    /// its reference unchanged. A contact that exists is updated when the document brings a
    /// company or VAT number it does not have ([`ledger_mapping::contact_details_changed`]).
    ///
    /// References are tried in order (`attempt` 0, 1, ...): Sage keeps references unique,
    /// deleted contacts' included, so a reference some other contact holds is skipped rather
    /// than failing the document that needs the contact.
    async fn ensure_contact(
        &self,
        merchant: &str,
        key: &str,
        currency: &str,
        party: &Party,
        consolidated: bool,
    ) -> Result<ContactRef, ProcessError> {
        let email = (!consolidated)
            .then(|| party.email.as_deref().map(normalise_email))
            .flatten()
            .filter(|e| !e.is_empty());
        // Both keys of one person (guest e-mail, registered account) share one lock, so a
        // guest order and the registered customer's first order racing here make one
        // contact: in-process, and across replicas by an advisory lock in the transaction.
        let lock_key = match &email {
            Some(e) => format!("{merchant}|email:{e}|{currency}"),
            None => format!("{merchant}|{key}|{currency}"),
        };
        let lock = self.lock_for(&lock_key);
        let _held = lock.lock().await;
        let mut tx = self.ctx.db.begin().await?;
        if email.is_some() {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&lock_key)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO contacts (merchant_id, customer_key, currency, email) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(merchant)
        .bind(key)
        .bind(currency)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        // The row lock makes other replicas wait here until this one has the Sage id.
        let (sage_id, reference, company, tax_number): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = sqlx::query_as(
            "SELECT sage_contact_id, reference, company, tax_number FROM contacts
             WHERE merchant_id = $1 AND customer_key = $2 AND currency = $3 FOR UPDATE",
        )
        .bind(merchant)
        .bind(key)
        .bind(currency)
        .fetch_one(&mut *tx)
        .await?;
        let found = match (sage_id, reference) {
            (Some(contact_id), Some(reference)) => {
                Some((contact_id, reference, company, tax_number))
            }
            _ => match &email {
                Some(email) => {
                    self.adopt_same_person(&mut tx, merchant, key, currency, email)
                        .await?
                }
                None => None,
            },
        };
        if let Some((contact_id, reference, company, tax_number)) = found {
            // A replay's dry run sends and records nothing: the adoption is rolled back and an
            // update only reported.
            let dry_run = ledger_runtime::replay::dry_run();
            if !consolidated
                && !dry_run
                && ledger_mapping::contact_details_changed(
                    company.as_deref(),
                    tax_number.as_deref(),
                    party,
                )
            {
                self.update_contact(
                    &mut tx,
                    merchant,
                    key,
                    currency,
                    &contact_id,
                    &reference,
                    party,
                )
                .await?;
            }
            if dry_run {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            return Ok(ContactRef {
                contact_id,
                reference,
                currency: currency.to_string(),
                consolidated,
            });
        }
        let seed = contact_uuid(merchant, key, currency);
        for attempt in 0..MAX_REFERENCE_ATTEMPTS {
            let reference = if consolidated {
                ledger_mapping::fallback_contact_reference(currency, attempt)
            } else {
                ledger_mapping::contact_reference(key, currency, attempt)
            };
            let body = ledger_mapping::map_contact(party, currency, &reference);
            let step = format!("contact:{attempt}");
            match self
                .write_contact(&mut tx, merchant, None, body, &seed, &step, party)
                .await
            {
                Ok(response) => {
                    let contact_id = response
                        .as_ref()
                        .and_then(|r| r.id())
                        .ok_or_else(|| {
                            ProcessError::transient("Sage answered without a contact id")
                        })?
                        .to_string();
                    self.record_contact(
                        &mut tx,
                        merchant,
                        key,
                        currency,
                        &contact_id,
                        &reference,
                        party,
                        None,
                    )
                    .await?;
                    tx.commit().await?;
                    tracing::info!(merchant, reference, contact_id, attempt, "contact created");
                    return Ok(ContactRef {
                        contact_id,
                        reference,
                        currency: currency.to_string(),
                        consolidated,
                    });
                }
                Err(e) if reference_taken(&e) => {
                    // The holder may be our own contact from an attempt whose commit was lost
                    // after Sage's idempotency window: same reference, same name → adopt it.
                    if let Some(contact_id) =
                        self.find_own_contact(merchant, &reference, party).await?
                    {
                        self.record_contact(
                            &mut tx,
                            merchant,
                            key,
                            currency,
                            &contact_id,
                            &reference,
                            party,
                            None,
                        )
                        .await?;
                        tx.commit().await?;
                        tracing::info!(
                            merchant,
                            reference,
                            contact_id,
                            "own contact found in Sage; adopted"
                        );
                        return Ok(ContactRef {
                            contact_id,
                            reference,
                            currency: currency.to_string(),
                            consolidated,
                        });
                    }
                    tracing::info!(
                        reference,
                        "contact reference taken in Sage; trying the next"
                    );
                    continue;
                }
                Err(e) => return Err(ledger_rpc::sage_error_to_process(e)),
            }
        }
        Err(ProcessError::permanent(
            "contact.no_free_reference",
            format!("no free contact reference after {MAX_REFERENCE_ATTEMPTS} attempts"),
        ))
    }

    /// The Sage contact of the same person under the other key, in the same currency: for a
    /// registered customer the contact of their guest orders (`guest:<email>`), for a guest
    /// the contact of a registered customer with that e-mail (the oldest, if several). When
    /// found, `key`'s row takes it over (same Sage id, same reference) and remembers where it
    /// came from. Returns (contact id, reference, company, VAT number) as last sent.
    async fn adopt_same_person(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        merchant: &str,
        key: &str,
        currency: &str,
        email: &str,
    ) -> Result<Option<KnownContact>, ProcessError> {
        let guest_key = format!("guest:{email}");
        let other: Option<SamePersonRow> = sqlx::query_as(
            "SELECT customer_key, sage_contact_id, reference, company, tax_number FROM contacts
                 WHERE merchant_id = $1 AND currency = $2 AND customer_key <> $3
                   AND sage_contact_id IS NOT NULL AND reference IS NOT NULL
                   AND (customer_key = $4 OR (customer_key LIKE 'customer:%' AND email = $5))
                 ORDER BY (customer_key = $4) DESC, created_at, customer_key
                 LIMIT 1",
        )
        .bind(merchant)
        .bind(currency)
        .bind(key)
        .bind(&guest_key)
        .bind(email)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((from, contact_id, reference, company, tax_number)) = other else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE contacts SET sage_contact_id = $4, reference = $5, company = $6, tax_number = $7,
                    adopted_from = $8, email = $9, updated_at = now()
             WHERE merchant_id = $1 AND customer_key = $2 AND currency = $3",
        )
        .bind(merchant)
        .bind(key)
        .bind(currency)
        .bind(&contact_id)
        .bind(&reference)
        .bind(&company)
        .bind(&tax_number)
        .bind(&from)
        .bind(email)
        .execute(&mut **tx)
        .await?;
        tracing::info!(
            merchant,
            key,
            from,
            contact_id,
            reference,
            "contact of the same e-mail adopted"
        );
        ledger_runtime::audit::note_detail(&format!(
            "Sage contact {reference} of {from} (same e-mail, same currency) kept for {key}"
        ));
        Ok(Some((contact_id, reference, company, tax_number)))
    }

    /// Records the Sage contact of (merchant, key, currency) with the details just sent.
    #[allow(clippy::too_many_arguments)]
    async fn record_contact(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        merchant: &str,
        key: &str,
        currency: &str,
        contact_id: &str,
        reference: &str,
        party: &Party,
        adopted_from: Option<&str>,
    ) -> Result<(), ProcessError> {
        sqlx::query(
            "UPDATE contacts SET sage_contact_id = $4, reference = $5, company = $6, tax_number = $7,
                    email = COALESCE($8, email), adopted_from = COALESCE($9, adopted_from), updated_at = now()
             WHERE merchant_id = $1 AND customer_key = $2 AND currency = $3",
        )
        .bind(merchant)
        .bind(key)
        .bind(currency)
        .bind(contact_id)
        .bind(reference)
        .bind(&party.company)
        .bind(&party.tax_number)
        .bind(party.email.as_deref().map(normalise_email))
        .bind(adopted_from)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Updates an existing contact from a document's party (company and VAT number arrived
    /// or changed): a PUT of [`ledger_mapping::map_contact_update`] (never the currency), the
    /// reference kept. Every row sharing the contact (guest and registered keys) records the
    /// details sent.
    #[allow(clippy::too_many_arguments)]
    async fn update_contact(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        merchant: &str,
        key: &str,
        currency: &str,
        contact_id: &str,
        reference: &str,
        party: &Party,
    ) -> Result<(), ProcessError> {
        let body = ledger_mapping::map_contact_update(party, reference);
        let seed = contact_uuid(merchant, key, currency);
        let step = format!("update:{}", party.business_details_key());
        self.write_contact(tx, merchant, Some(contact_id), body, &seed, &step, party)
            .await
            .map_err(ledger_rpc::sage_error_to_process)?;
        sqlx::query(
            "UPDATE contacts SET company = $3, tax_number = $4, updated_at = now()
             WHERE merchant_id = $1 AND sage_contact_id = $2",
        )
        .bind(merchant)
        .bind(contact_id)
        .bind(&party.company)
        .bind(&party.tax_number)
        .execute(&mut **tx)
        .await?;
        tracing::info!(
            merchant,
            contact_id,
            reference,
            "contact updated from a document"
        );
        ledger_runtime::audit::note_detail(&format!(
            "contact {reference} updated: company or VAT number arrived with this document"
        ));
        Ok(())
    }

    /// POSTs a new contact (`contact_id` None) or PUTs an existing one. When Sage refuses the
    /// VAT number, the body is sent again without it, the number kept in the notes
    /// ([`ledger_mapping::without_refused_tax_number`]) under its own idempotency id: a VAT
    /// number never blocks the document that needs the contact.
    ///
    /// An update whose body Sage already has ([`sent`]) is not sent: `Ok(None)`. Every
    /// accepted write records its body's fingerprint; an update answered 404 forgets it.
    /// Both on `db`, the caller's own connection (its transaction): never on a second one
    /// taken from the pool while the caller holds one, which deadlocks the pool once as many
    /// contacts are written at once as it has connections.
    async fn write_contact(
        &self,
        db: &mut sqlx::PgConnection,
        merchant: &str,
        contact_id: Option<&str>,
        body: Value,
        seed: &Uuid,
        step: &str,
        party: &Party,
    ) -> Result<Option<sage_client::SageResponse>, SageError> {
        let fingerprint = sent::contact_fingerprint(&body);
        if let Some(id) = contact_id {
            match sent::unchanged(&mut *db, merchant, sent::CONTACTS, id, &fingerprint).await {
                Ok(true) => {
                    ledger_runtime::audit::note_detail(&format!(
                        "contact {id} unchanged: Sage already has this body, nothing sent"
                    ));
                    return Ok(None);
                }
                Ok(false) => {}
                // Not knowing only costs a write that may change nothing.
                Err(e) => tracing::warn!(merchant, error = %e, "last sent body not read"),
            }
        }
        let send = |body: Value, step: String| async move {
            let idempotency_id = sage_client::idempotency_id(seed, &step);
            match contact_id {
                None => {
                    self.ctx
                        .sage
                        .post(merchant, "contacts", "contact", body, Some(&idempotency_id))
                        .await
                }
                Some(id) => {
                    self.ctx
                        .sage
                        .put(
                            merchant,
                            &format!("contacts/{id}"),
                            "contact",
                            body,
                            Some(&idempotency_id),
                        )
                        .await
                }
            }
        };
        let result = match Box::pin(send(body.clone(), step.to_string())).await {
            Err(e) if body.get("tax_number").is_some() => match tax_number_refused(&e) {
                Some(reason) => {
                    tracing::info!(
                        merchant,
                        reason,
                        "Sage refused the VAT number; sent without it, kept in the notes"
                    );
                    ledger_runtime::audit::note_detail(&format!(
                        "Sage refused the VAT number ({reason}): contact sent without it, the number kept in its notes"
                    ));
                    let retry = ledger_mapping::without_refused_tax_number(&body, party, &reason);
                    send(retry, format!("{step}:without-tax-number")).await
                }
                None => Err(e),
            },
            other => other,
        };
        // The fingerprint is the body asked for: the same party sent again would meet the
        // same refusal and leave Sage as it is now.
        let remembered = match (&result, contact_id) {
            (Ok(response), _) => match contact_id.or(response.id()) {
                Some(id) => {
                    sent::remember(&mut *db, merchant, sent::CONTACTS, id, &fingerprint).await
                }
                None => Ok(()),
            },
            (Err(e), Some(id)) if e.is_not_found() => {
                sent::forget(&mut *db, merchant, sent::CONTACTS, id).await
            }
            (Err(_), _) => Ok(()),
        };
        if let Err(e) = remembered {
            tracing::warn!(merchant, error = %e, "sent body not recorded; the next save writes again");
        }
        result.map(Some)
    }

    /// A customer who was a guest before registering keeps the guest's contacts: every
    /// currency's `guest:<email>` contact that the customer has none for becomes theirs
    /// (same Sage id and reference). Returns how many were adopted.
    async fn adopt_guest_contacts(
        &self,
        merchant: &str,
        customer_key: &str,
        party: &Party,
    ) -> Result<u64, ProcessError> {
        let Some(email) = party
            .email
            .as_deref()
            .map(normalise_email)
            .filter(|e| !e.is_empty())
        else {
            return Ok(0);
        };
        if !customer_key.starts_with("customer:") {
            return Ok(0);
        }
        let currencies: Vec<String> = sqlx::query_scalar(
            "SELECT g.currency FROM contacts g
             WHERE g.merchant_id = $1 AND g.customer_key = $2 AND g.sage_contact_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.merchant_id = g.merchant_id
                   AND c.customer_key = $3 AND c.currency = g.currency AND c.sage_contact_id IS NOT NULL)",
        )
        .bind(merchant)
        .bind(format!("guest:{email}"))
        .bind(customer_key)
        .fetch_all(&self.ctx.db)
        .await?;
        let mut adopted = 0;
        for currency in currencies {
            let lock_key = format!("{merchant}|email:{email}|{currency}");
            let lock = self.lock_for(&lock_key);
            let _held = lock.lock().await;
            let mut tx = self.ctx.db.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&lock_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO contacts (merchant_id, customer_key, currency, email) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(merchant)
            .bind(customer_key)
            .bind(&currency)
            .bind(&email)
            .execute(&mut *tx)
            .await?;
            let has: Option<String> = sqlx::query_scalar(
                "SELECT sage_contact_id FROM contacts
                 WHERE merchant_id = $1 AND customer_key = $2 AND currency = $3 FOR UPDATE",
            )
            .bind(merchant)
            .bind(customer_key)
            .bind(&currency)
            .fetch_one(&mut *tx)
            .await?;
            if has.is_none()
                && self
                    .adopt_same_person(&mut tx, merchant, customer_key, &currency, &email)
                    .await?
                    .is_some()
            {
                adopted += 1;
            }
            tx.commit().await?;
        }
        Ok(adopted)
    }

    /// Updates every currency variant of a customer after `customer.saved`, adopting first
    /// the contacts of the customer's guest orders (same e-mail).
    async fn customer_saved(
        &self,
        merchant: &str,
        event_id: Uuid,
        party: &Party,
        customer_key: &str,
    ) -> Result<Outcome, ProcessError> {
        self.adopt_guest_contacts(merchant, customer_key, party)
            .await?;
        let variants: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT currency, sage_contact_id, reference FROM contacts
             WHERE merchant_id = $1 AND customer_key = $2 AND sage_contact_id IS NOT NULL",
        )
        .bind(merchant)
        .bind(customer_key)
        .fetch_all(&self.ctx.db)
        .await?;
        if variants.is_empty() {
            // Nothing in Sage yet: the contact is created with the first document, from the
            // document's own snapshot.
            ledger_runtime::audit::note_detail(
                "no Sage contact yet: the customer's first document creates it from its own snapshot",
            );
            return Ok(Outcome::Skipped("no_contact_yet".into()));
        }
        let mut sent_any = false;
        for (currency, contact_id, reference) in variants {
            let step = format!("contact_update:{currency}");
            if let journal::StepState::Done(_) =
                journal::step_state(&self.ctx.db, merchant, event_id, &step).await?
            {
                continue;
            }
            let idempotency_id = sage_client::idempotency_id(&event_id, &step);
            journal::record_intent(&self.ctx.db, merchant, event_id, &step, &idempotency_id, 0)
                .await?;
            // The currency of a contact is locked once it has documents; never sent again.
            let body = ledger_mapping::map_contact_update(party, &reference);
            // One connection for the whole step: what was sent is recorded on it, never on a
            // second connection taken from the pool while this one is held.
            let mut tx = self.ctx.db.begin().await?;
            let response = self
                .write_contact(
                    &mut tx,
                    merchant,
                    Some(&contact_id),
                    body,
                    &event_id,
                    &step,
                    party,
                )
                .await
                .map_err(ledger_rpc::sage_error_to_process)?;
            sent_any |= response.is_some();
            // The account's company replaces the contact's name; a VAT number the account
            // lacks stays on the contact (an update without it leaves Sage's as it was).
            sqlx::query(
                "UPDATE contacts SET company = $3, tax_number = COALESCE($4, tax_number), updated_at = now()
                 WHERE merchant_id = $1 AND sage_contact_id = $2",
            )
            .bind(merchant)
            .bind(&contact_id)
            .bind(&party.company)
            .bind(&party.tax_number)
            .execute(&mut *tx)
            .await?;
            journal::record_done(
                &mut tx,
                merchant,
                event_id,
                &step,
                Some(&contact_id),
                response.as_ref().and_then(|r| r.request_id.as_deref()),
            )
            .await?;
            tx.commit().await?;
        }
        // A save that changes nothing Sage holds sends nothing: Sage already has it.
        Ok(if sent_any {
            Outcome::Applied
        } else {
            Outcome::AlreadyDone
        })
    }
}

#[async_trait::async_trait]
impl Projection for Contacts {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        let env = ledger_rpc::parse_delivery(delivery)?;
        match &env.payload {
            Payload::CustomerSaved(snapshot) => {
                let party = Party::from_customer_snapshot(snapshot)
                    .with_name_priority(self.name_priority(&env.merchant_id).await?);
                let key = party.customer_key.clone();
                ledger_runtime::audit::note_document(&key);
                self.customer_saved(&env.merchant_id, env.event_id, &party, &key)
                    .await
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
    ConsumerSpec::for_service(SERVICE, &["magento.*.customer.saved"])
}

pub use ledger_rpc::Running;

/// Starts the responder and both consumers (customers, products); returns once they accept
/// work.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    let ctx = Arc::new(ServiceContext::connect(&config.service, SERVICE).await?);
    let service = Arc::new(Contacts {
        ctx: ctx.clone(),
        locks: StdMutex::new(HashMap::new()),
    });
    let responder = service.clone();
    let ensure = ledger_rpc::endpoint(
        ledger_rpc::ENSURE_CONTACT_SUBJECT,
        move |req: EnsureContactRequest| {
            let service = responder.clone();
            async move {
                let result = audited_ensure(&service, &service.ctx.audit, &req).await;
                result.map_err(|e| RpcError::from_process_error(&e))
            }
        },
    );
    ctx.builder()
        .migrations(sqlx::migrate!("./migrations"))
        .endpoint(ensure)
        .consumer(SERVICE, consumer_spec(), service)
        .consumer(
            catalog::CONSUMER,
            catalog::consumer_spec(),
            Arc::new(catalog::Catalog::new(ctx.clone())),
        )
        .start(shutdown)
        .await
}

/// Answers an ensure request inside an audit scope: when it made Sage calls (or failed), the
/// calls are appended to this service's audit trail under the asking event, as consumer
/// `contacts.ensure`.
async fn audited_ensure(
    service: &Contacts,
    audit: &ledger_runtime::audit::AuditLog,
    req: &EnsureContactRequest,
) -> Result<ContactRef, ProcessError> {
    let (result, wrote) = audited_ensure_inner(service, audit, req).await;
    // A customer's own contact created for a document is the customer's sync.
    if let Ok(contact) = &result {
        if wrote && !contact.consolidated {
            let update = ledger_runtime::status::StatusUpdate {
                entity: "customer".into(),
                document_key: req.customer_key.clone(),
                state: ledger_runtime::status::SyncState::Synced,
                sage_reference: Some(contact.reference.clone()),
                sage_id: Some(contact.contact_id.clone()),
                sage_number: None,
                skip_reason: None,
                detail: None,
                error_code: None,
                message: None,
                event_id: Some(req.event_id.clone()),
                service: SERVICE.into(),
                at: chrono::Utc::now(),
            };
            ledger_runtime::status::publish(&service.ctx.js, &req.merchant, &update).await;
        }
    }
    result
}

async fn audited_ensure_inner(
    service: &Contacts,
    audit: &ledger_runtime::audit::AuditLog,
    req: &EnsureContactRequest,
) -> (Result<ContactRef, ProcessError>, bool) {
    use ledger_runtime::audit;
    if req.dry_run {
        // A replay's dry run: Sage writes are refused and nothing is recorded.
        return (
            ledger_runtime::replay::dry_running(Box::pin(service.ensure(req))).await,
            false,
        );
    }
    let started_at = chrono::Utc::now();
    let clock = std::time::Instant::now();
    let (result, captured) = audit::capture(async {
        audit::note_document(&req.customer_key);
        // Boxed: the ensure future is large, and an RPC task's stack is a worker thread's.
        Box::pin(service.ensure(req)).await
    })
    .await;
    if captured.calls.is_empty() && result.is_ok() {
        return (result, false);
    }
    let wrote = captured
        .calls
        .iter()
        .any(|c| c.method != "GET" && c.error.is_none());
    let (outcome, code, message) = match &result {
        Ok(_) => (
            if wrote { "applied" } else { "already_done" }.to_string(),
            None,
            None,
        ),
        Err(e) => audit::error_outcome(e),
    };
    let record = audit::AuditRecord {
        service: SERVICE.into(),
        consumer: "contacts.ensure".into(),
        merchant_id: req.merchant.clone(),
        chain_seq: 0,
        event_id: Some(req.event_id.clone()),
        subject: None,
        stream_sequence: req.stream_sequence.map(|s| s as i64),
        delivered: None,
        document_key: captured.document_key,
        reference: result.as_ref().ok().map(|c| c.reference.clone()),
        sage_number: None,
        outcome,
        code,
        message,
        calls: captured.calls,
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        recorded_at: started_at,
    };
    if let Err(e) = audit.append(record).await {
        tracing::error!(error = %e, "audit record of an ensure request not written");
    }
    (result, wrote)
}

/// Runs until `shutdown` fires and the consumer has drained.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sage_client::SageErrorItem;

    fn rejected(source: &str, message: &str) -> SageError {
        SageError::Rejected {
            status: 422,
            errors: vec![SageErrorItem {
                severity: "error".into(),
                data_code: "RecordInvalid".into(),
                message: message.into(),
                source: source.into(),
            }],
            request_id: None,
        }
    }

    #[test]
    fn refused_tax_numbers_and_taken_references_are_told_apart() {
        let vat = rejected(
            "contact.tax_number",
            "tax_number: is not a valid VAT number for GB",
        );
        assert_eq!(
            tax_number_refused(&vat).as_deref(),
            Some("tax_number: is not a valid VAT number for GB")
        );
        assert!(!reference_taken(&vat));
        let taken = rejected("contact.reference", "reference: has already been taken");
        assert!(tax_number_refused(&taken).is_none());
        assert!(reference_taken(&taken));
        let transient = SageError::Transient {
            status: Some(503),
            message: "tax_number".into(),
            request_id: None,
            retry_after: None,
        };
        assert!(tax_number_refused(&transient).is_none());
    }
}
