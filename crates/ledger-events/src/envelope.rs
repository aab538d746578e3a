//! The envelope, its payload variants, and decoding from bytes.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::documents::{
    CreditMemoSnapshot, CreditMemoStateSnapshot, InvoiceCanceledSnapshot, InvoicePaidSnapshot,
    InvoiceSnapshot, SalesDocument,
};
use crate::master::{CustomerSnapshot, ProductSnapshot};
use crate::validate::{escape_token, validate, ContractError, FieldIssue};
use crate::EventType;

/// What produced the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Version of Ledger's Magento module.
    pub module_version: String,
    /// Magento version (e.g. `2.4.7-p3`), to work around version-specific behaviour.
    pub magento_version: String,
    /// Magento edition (`Community`, `Commerce`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magento_edition: Option<String>,
}

/// The documents of an event; the variant always matches [`Envelope::event_type`].
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `invoice.created`.
    InvoiceCreated(InvoiceSnapshot),
    /// `invoice.paid`.
    InvoicePaid(InvoicePaidSnapshot),
    /// `invoice.canceled`.
    InvoiceCanceled(InvoiceCanceledSnapshot),
    /// `creditmemo.created`.
    CreditMemoCreated(CreditMemoSnapshot),
    /// `creditmemo.refunded`.
    CreditMemoRefunded(CreditMemoStateSnapshot),
    /// `creditmemo.canceled`.
    CreditMemoCanceled(CreditMemoStateSnapshot),
    /// `customer.saved`.
    CustomerSaved(CustomerSnapshot),
    /// `product.saved`.
    ProductSaved(ProductSnapshot),
}

impl Payload {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::InvoiceCreated(_) => EventType::InvoiceCreated,
            Payload::InvoicePaid(_) => EventType::InvoicePaid,
            Payload::InvoiceCanceled(_) => EventType::InvoiceCanceled,
            Payload::CreditMemoCreated(_) => EventType::CreditMemoCreated,
            Payload::CreditMemoRefunded(_) => EventType::CreditMemoRefunded,
            Payload::CreditMemoCanceled(_) => EventType::CreditMemoCanceled,
            Payload::CustomerSaved(_) => EventType::CustomerSaved,
            Payload::ProductSaved(_) => EventType::ProductSaved,
        }
    }

    /// Decodes a payload object for the given event type. The JSON pointers in errors are
    /// relative to the payload (prefix them with `/payload` for the envelope).
    pub fn from_value(event_type: EventType, value: &Value) -> Result<Payload, FieldIssue> {
        Ok(match event_type {
            EventType::InvoiceCreated => Payload::InvoiceCreated(decode_at(value)?),
            EventType::InvoicePaid => Payload::InvoicePaid(decode_at(value)?),
            EventType::InvoiceCanceled => Payload::InvoiceCanceled(decode_at(value)?),
            EventType::CreditMemoCreated => Payload::CreditMemoCreated(decode_at(value)?),
            EventType::CreditMemoRefunded => Payload::CreditMemoRefunded(decode_at(value)?),
            EventType::CreditMemoCanceled => Payload::CreditMemoCanceled(decode_at(value)?),
            EventType::CustomerSaved => Payload::CustomerSaved(decode_at(value)?),
            EventType::ProductSaved => Payload::ProductSaved(decode_at(value)?),
        })
    }
}

impl Serialize for Payload {
    /// Serialises the inner snapshot directly: the variant is implied by `event_type`, so the
    /// wire form carries no tag.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::InvoiceCreated(p) => p.serialize(serializer),
            Payload::InvoicePaid(p) => p.serialize(serializer),
            Payload::InvoiceCanceled(p) => p.serialize(serializer),
            Payload::CreditMemoCreated(p) => p.serialize(serializer),
            Payload::CreditMemoRefunded(p) => p.serialize(serializer),
            Payload::CreditMemoCanceled(p) => p.serialize(serializer),
            Payload::CustomerSaved(p) => p.serialize(serializer),
            Payload::ProductSaved(p) => p.serialize(serializer),
        }
    }
}

/// One Magento event as published on `magento.<merchant_id>.<entity>.<action>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// Minted once in the Magento outbox; the `Nats-Msg-Id` and the root of every idempotency
    /// key (see [`Envelope::derived_id`]).
    pub event_id: Uuid,
    /// Contract version; 1 for this crate ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// What happened.
    pub event_type: EventType,
    /// Ledger tenant; a safe NATS subject token.
    pub merchant_id: String,
    /// Magento website.
    pub website_id: u32,
    /// Magento store view.
    pub store_id: u32,
    /// When it happened in Magento.
    pub occurred_at: DateTime<Utc>,
    /// Producer versions.
    pub source: Source,
    /// Set on events a backfill (`bin/magento ledger:backfill`) recorded: the id of that run, a
    /// safe subject token. Such an event is history: it travels on the history subject
    /// ([`crate::history_subject`]) and is handled in the lower-priority history lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<String>,
    /// The documents.
    pub payload: Payload,
}

/// The envelope without its payload, decoded first so the payload can be decoded by type.
#[derive(Deserialize)]
struct Header {
    event_id: Uuid,
    schema_version: u32,
    event_type: EventType,
    merchant_id: String,
    website_id: u32,
    store_id: u32,
    occurred_at: DateTime<Utc>,
    source: Source,
    #[serde(default)]
    backfill_id: Option<String>,
}

/// Deserialises `T` from a JSON value, reporting the JSON pointer of the failing field.
fn decode_at<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, FieldIssue> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = String::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    path.push('/');
                    path.push_str(&index.to_string());
                }
                serde_path_to_error::Segment::Map { key } => {
                    path.push('/');
                    path.push_str(&escape_token(key));
                }
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        FieldIssue::new(path, e.inner().to_string())
    })
}

impl Envelope {
    /// Decodes an already validated JSON value into typed form (no schema check; use
    /// [`crate::parse`] for untrusted input).
    pub fn from_value(value: &Value) -> Result<Envelope, ContractError> {
        let header: Header = decode_at(value).map_err(ContractError::Decode)?;
        let payload_value = value.get("payload").ok_or_else(|| {
            ContractError::Decode(FieldIssue::new("/payload", "is required but missing"))
        })?;
        let payload = Payload::from_value(header.event_type, payload_value).map_err(|mut i| {
            i.path = format!("/payload{}", i.path);
            ContractError::Decode(i)
        })?;
        Ok(Envelope {
            event_id: header.event_id,
            schema_version: header.schema_version,
            event_type: header.event_type,
            merchant_id: header.merchant_id,
            website_id: header.website_id,
            store_id: header.store_id,
            occurred_at: header.occurred_at,
            source: header.source,
            backfill_id: header.backfill_id,
            payload,
        })
    }

    /// Serialises to JSON bytes in contract form (amounts as decimal strings, so no precision is
    /// lost by any reader).
    pub fn to_json_vec(&self) -> Vec<u8> {
        // Serialising these types cannot fail: all map keys are strings and no custom
        // serializer returns an error.
        serde_json::to_vec(self).expect("envelope serialisation is infallible")
    }

    /// The NATS subject this event belongs on: the history subject for an event a backfill
    /// recorded, the live subject for every other.
    pub fn subject(&self) -> String {
        match self.backfill_id {
            Some(_) => crate::history_subject(&self.merchant_id, self.event_type),
            None => crate::subject(&self.merchant_id, self.event_type),
        }
    }

    /// Stable key of the Magento entity the event is about, the same for every event about it:
    /// `invoice:<store_id>:<increment_id>`, `creditmemo:<store_id>:<increment_id>`,
    /// `customer:<id>`, `product:<id>`. Keys are per merchant; scope them by `merchant_id` when
    /// storing them next to other merchants' keys.
    pub fn document_key(&self) -> String {
        match &self.payload {
            Payload::InvoiceCreated(p) => p.invoice.document_key(),
            Payload::InvoicePaid(p) => p.invoice.document_key(),
            Payload::InvoiceCanceled(p) => p.invoice.document_key(),
            Payload::CreditMemoCreated(p) => p.creditmemo.document_key(),
            Payload::CreditMemoRefunded(p) | Payload::CreditMemoCanceled(p) => {
                p.creditmemo.document_key()
            }
            Payload::CustomerSaved(p) => p.customer.customer_key(),
            Payload::ProductSaved(p) => p.product.product_key(),
        }
    }

    /// A deterministic UUID for one side effect of this event (e.g. `"sage.sales_invoice"`,
    /// `"sage.contact_payment"`): UUID v5 in the namespace of `event_id`. Re-processing the same
    /// event yields the same id, so a retried call to Sage can be recognised as a duplicate.
    pub fn derived_id(&self, purpose: &str) -> Uuid {
        Uuid::new_v5(&self.event_id, purpose.as_bytes())
    }

    /// Party key for sales events (see [`crate::OrderContext::customer_key`]); `customer:<id>`
    /// for `customer.saved`; `None` for products.
    pub fn customer_key(&self) -> Option<String> {
        match &self.payload {
            Payload::InvoiceCreated(p) => Some(p.customer_key()),
            Payload::InvoicePaid(p) => Some(p.customer_key()),
            Payload::InvoiceCanceled(p) => Some(p.customer_key()),
            Payload::CreditMemoCreated(p) => Some(p.customer_key()),
            Payload::CreditMemoRefunded(p) | Payload::CreditMemoCanceled(p) => {
                Some(p.customer_key())
            }
            Payload::CustomerSaved(p) => Some(p.customer.customer_key()),
            Payload::ProductSaved(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Envelope {
    /// Decodes without schema validation, choosing the payload type from `event_type`. Goes
    /// through `serde_json::Value`, which keeps the exact text of numbers under
    /// `arbitrary_precision`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Envelope::from_value(&value).map_err(D::Error::custom)
    }
}

/// Parses one message body: JSON syntax, then the full contract (all violations reported), then
/// typed decoding. Every error names the field it concerns.
pub fn parse(bytes: &[u8]) -> Result<Envelope, ContractError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ContractError::MalformedJson(FieldIssue::new("", e.to_string())))?;
    validate(&value)?;
    Envelope::from_value(&value)
}
