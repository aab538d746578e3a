//! The event contract between Ledger's Magento module and the Rust consumers that project
//! Magento's books into Sage Business Cloud Accounting.
//!
//! The contract itself is the set of JSON Schemas in `schemas/events/` (embedded here with
//! `include_str!`) and the AsyncAPI document `schemas/asyncapi.yaml`; this crate is its Rust
//! reading:
//!
//! * [`parse`] turns message bytes into a typed [`Envelope`] after checking the whole contract,
//!   and every error names the offending field by JSON pointer ([`FieldIssue`]).
//! * [`validate`] checks an already parsed JSON value and lists every violation.
//! * [`subject`], [`quarantine_subject`], [`STREAM_NAME`] and the header constants fix the NATS
//!   layout.
//!
//! Money is [`rust_decimal::Decimal`] everywhere. The workspace enables serde_json's
//! `arbitrary_precision`, so a JSON number such as `396.87` reaches `Decimal` as its exact text
//! and never passes through a binary float; decimal strings are accepted too, and amounts are
//! written back as decimal strings.
//!
//! Payload documents keep Magento's REST field names (`grand_total`, `base_grand_total`, ...):
//! un-prefixed amounts are in the order currency, `base_*` in the website base currency. Magento
//! quirks that matter to accounting are documented where they bite (negative header discount,
//! dummy composite lines, credit memos without invoice, "paid" offline invoices).

#![warn(missing_docs)]

mod documents;
mod envelope;
mod event_type;
mod master;
mod serde_util;
mod validate;

pub use documents::{
    normalise_email, Address, AppliedTax, CreditMemoDocument, CreditMemoSnapshot, CreditMemoState,
    CreditMemoStateSnapshot, DocumentItem, InvoiceCanceledSnapshot, InvoiceDocument,
    InvoicePaidSnapshot, InvoiceSnapshot, InvoiceState, OrderContext, OrderInvoice, OrderItem,
    OrderPayment, PaymentFacts, SalesDocument, TaxConfig,
};
pub use envelope::{parse, Envelope, Payload, Source};
pub use event_type::EventType;
pub use master::{
    CustomAttribute, Customer, CustomerSnapshot, Product, ProductSnapshot, ProductStatus,
    ProductType, StockFacts,
};
pub use validate::{validate, ContractError, FieldIssue, SCHEMA_BASE_URI, SCHEMA_FILES};

/// Version of the contract this crate implements (`schema_version` in the envelope and the
/// `Ledger-Schema-Version` header).
pub const SCHEMA_VERSION: u32 = 1;

/// JetStream stream that captures every Magento event subject.
pub const STREAM_NAME: &str = "MAGENTO_EVENTS";

/// Subject filter of [`STREAM_NAME`]; every event subject is
/// `magento.<merchant_id>.<entity>.<action>` below it.
pub const STREAM_SUBJECTS: &str = "magento.>";

/// First token of every event subject.
pub const SUBJECT_PREFIX: &str = "magento";

/// Token after the merchant id that marks a history subject
/// (`magento.<merchant_id>.history.<entity>.<action>`): events a backfill recorded, handled in
/// the lower-priority history lane so that live events never queue behind them.
pub const HISTORY_TOKEN: &str = "history";

/// Header carrying the backfill id of a history event, readable without parsing the body.
pub const HEADER_BACKFILL: &str = "Ledger-Backfill";

/// Subject prefix of the quarantine, where consumers put events they reject.
pub const QUARANTINE_PREFIX: &str = "ledger.quarantine";

/// Header carrying `event_id`; JetStream drops a second message with the same id inside the
/// stream's duplicate window.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";

/// W3C trace-context header, so a trace started in Magento continues in the consumers.
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// Header carrying `schema_version`, readable without parsing the body.
pub const HEADER_SCHEMA_VERSION: &str = "Ledger-Schema-Version";

/// Header on quarantine records: machine-readable category of the rejection
/// (e.g. `invalid_event`).
pub const HEADER_ERROR: &str = "Ledger-Error";

/// Checks that a merchant id is safe as a single NATS subject token and matches the envelope
/// schema: `^[a-z0-9][a-z0-9_-]{0,62}$`. Dots, wildcards or spaces would let one merchant's
/// subject match another's filter, so this is checked before any subject is built from input.
pub fn validate_merchant_id(merchant_id: &str) -> Result<(), ContractError> {
    let fail = |reason| {
        Err(ContractError::InvalidMerchantId {
            merchant_id: merchant_id.to_owned(),
            reason,
        })
    };
    let bytes = merchant_id.as_bytes();
    match bytes.first() {
        None => return fail("is empty"),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return fail("must start with a lower-case letter or digit")
        }
        _ => {}
    }
    if bytes.len() > 63 {
        return fail("is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
    {
        return fail("may only contain a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// The subject of an event: `magento.<merchant_id>.<entity>.<action>`, e.g.
/// `magento.acme.invoice.paid`. The merchant id must have passed [`validate_merchant_id`]
/// (envelopes from [`parse`] always have); it is not re-checked here.
pub fn subject(merchant_id: &str, event_type: EventType) -> String {
    debug_assert!(
        validate_merchant_id(merchant_id).is_ok(),
        "unsafe merchant id {merchant_id:?}"
    );
    format!(
        "{SUBJECT_PREFIX}.{merchant_id}.{}.{}",
        event_type.entity(),
        event_type.action()
    )
}

/// The history subject of an event: `magento.<merchant_id>.history.<entity>.<action>`, where a
/// backfill publishes what already happened ([`Envelope::backfill_id`]). Same precondition on the
/// merchant id as [`subject`].
pub fn history_subject(merchant_id: &str, event_type: EventType) -> String {
    debug_assert!(
        validate_merchant_id(merchant_id).is_ok(),
        "unsafe merchant id {merchant_id:?}"
    );
    format!(
        "{SUBJECT_PREFIX}.{merchant_id}.{HISTORY_TOKEN}.{}.{}",
        event_type.entity(),
        event_type.action()
    )
}

/// Whether an event subject is a history subject (see [`history_subject`]).
pub fn is_history_subject(subject: &str) -> bool {
    subject.split('.').nth(2) == Some(HISTORY_TOKEN)
}

/// The quarantine subject of a merchant: `ledger.quarantine.<merchant_id>`. Rejected events are
/// recorded there with their field issues and raw body (see `schemas/asyncapi.yaml`), so they
/// can be inspected and replayed.
pub fn quarantine_subject(merchant_id: &str) -> String {
    debug_assert!(
        validate_merchant_id(merchant_id).is_ok(),
        "unsafe merchant id {merchant_id:?}"
    );
    format!("{QUARANTINE_PREFIX}.{merchant_id}")
}

/// Splits an event subject, live (`magento.<merchant_id>.<entity>.<action>`) or history
/// (`magento.<merchant_id>.history.<entity>.<action>`), into merchant id and event type; `None`
/// for anything else. Consumers compare the result with the envelope to catch a message
/// published on the wrong subject; [`is_history_subject`] tells the two lanes apart.
pub fn parse_subject(subject: &str) -> Option<(&str, EventType)> {
    let mut parts = subject.split('.');
    let (prefix, merchant) = (parts.next()?, parts.next()?);
    let mut entity = parts.next()?;
    if entity == HISTORY_TOKEN {
        entity = parts.next()?;
    }
    let action = parts.next()?;
    if parts.next().is_some() || prefix != SUBJECT_PREFIX {
        return None;
    }
    validate_merchant_id(merchant).ok()?;
    Some((merchant, EventType::from_parts(entity, action)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(
            subject("acme-uk", EventType::CreditMemoCreated),
            "magento.acme-uk.creditmemo.created"
        );
        assert_eq!(quarantine_subject("acme-uk"), "ledger.quarantine.acme-uk");
        assert_eq!(
            parse_subject("magento.acme-uk.invoice.paid"),
            Some(("acme-uk", EventType::InvoicePaid))
        );
        assert_eq!(parse_subject("magento.acme-uk.invoice.deleted"), None);
        assert_eq!(parse_subject("magento.Acme.invoice.paid"), None);
        assert_eq!(parse_subject("magento.acme.invoice.paid.extra"), None);
        assert_eq!(parse_subject("sage.acme.invoice.paid"), None);
        assert_eq!(
            history_subject("acme-uk", EventType::InvoicePaid),
            "magento.acme-uk.history.invoice.paid"
        );
        assert_eq!(
            parse_subject("magento.acme-uk.history.invoice.paid"),
            Some(("acme-uk", EventType::InvoicePaid))
        );
        assert!(is_history_subject("magento.acme-uk.history.invoice.paid"));
        assert!(!is_history_subject("magento.acme-uk.invoice.paid"));
        assert_eq!(parse_subject("magento.acme.history.history.paid"), None);
        assert_eq!(parse_subject("magento.acme.history.invoice.paid.x"), None);
    }

    #[test]
    fn merchant_ids() {
        for ok in ["a", "0", "acme", "acme_uk-2", &"a".repeat(63)] {
            assert!(validate_merchant_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "_acme",
            "Acme",
            "acme.uk",
            "acme*",
            "acme>",
            "ac me",
            &"a".repeat(64),
        ] {
            assert!(validate_merchant_id(bad).is_err(), "{bad}");
        }
    }
}
