//! The event types of the contract and their subject tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ContractError;

/// What happened in Magento. The string form (`as_str`) is `<entity>.<action>`, which is both the
/// envelope's `event_type` and the last two tokens of the NATS subject, so one value drives
/// routing, schema selection and payload decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A new invoice was saved (`invoice.created`).
    InvoiceCreated,
    /// An invoice was captured and is now in state "paid" (`invoice.paid`).
    InvoicePaid,
    /// An invoice was canceled before capture or voided after it (`invoice.canceled`); Magento
    /// leaves both in state 3 "canceled".
    InvoiceCanceled,
    /// A new credit memo (refund) was saved (`creditmemo.created`).
    CreditMemoCreated,
    /// A credit memo that was pending at the gateway was refunded (`creditmemo.refunded`).
    CreditMemoRefunded,
    /// A credit memo that was pending at the gateway was canceled (`creditmemo.canceled`).
    CreditMemoCanceled,
    /// A customer or one of their addresses was saved (`customer.saved`).
    CustomerSaved,
    /// A product was saved (`product.saved`).
    ProductSaved,
}

impl EventType {
    /// Every event type, in a fixed order; handy for creating consumers or iterating in tests.
    pub const ALL: [EventType; 8] = [
        EventType::InvoiceCreated,
        EventType::InvoicePaid,
        EventType::InvoiceCanceled,
        EventType::CreditMemoCreated,
        EventType::CreditMemoRefunded,
        EventType::CreditMemoCanceled,
        EventType::CustomerSaved,
        EventType::ProductSaved,
    ];

    /// The wire name, e.g. `"invoice.created"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::InvoiceCreated => "invoice.created",
            EventType::InvoicePaid => "invoice.paid",
            EventType::InvoiceCanceled => "invoice.canceled",
            EventType::CreditMemoCreated => "creditmemo.created",
            EventType::CreditMemoRefunded => "creditmemo.refunded",
            EventType::CreditMemoCanceled => "creditmemo.canceled",
            EventType::CustomerSaved => "customer.saved",
            EventType::ProductSaved => "product.saved",
        }
    }

    /// The entity token of the subject: `invoice`, `creditmemo`, `customer` or `product`.
    pub const fn entity(self) -> &'static str {
        match self {
            EventType::InvoiceCreated | EventType::InvoicePaid | EventType::InvoiceCanceled => {
                "invoice"
            }
            EventType::CreditMemoCreated
            | EventType::CreditMemoRefunded
            | EventType::CreditMemoCanceled => "creditmemo",
            EventType::CustomerSaved => "customer",
            EventType::ProductSaved => "product",
        }
    }

    /// The action token of the subject: `created`, `paid`, `canceled`, `refunded` or `saved`.
    pub const fn action(self) -> &'static str {
        match self {
            EventType::InvoiceCreated | EventType::CreditMemoCreated => "created",
            EventType::InvoicePaid => "paid",
            EventType::InvoiceCanceled | EventType::CreditMemoCanceled => "canceled",
            EventType::CreditMemoRefunded => "refunded",
            EventType::CustomerSaved | EventType::ProductSaved => "saved",
        }
    }

    /// Looks an event type up by its subject tokens (`"invoice"`, `"paid"`).
    pub fn from_parts(entity: &str, action: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.entity() == entity && t.action() == action)
    }

    /// True for the sales documents (invoices and credit memos) that become Sage transactions;
    /// false for master data (customers, products) that become Sage contacts and items.
    pub const fn is_sales_document(self) -> bool {
        matches!(
            self,
            EventType::InvoiceCreated
                | EventType::InvoicePaid
                | EventType::InvoiceCanceled
                | EventType::CreditMemoCreated
                | EventType::CreditMemoRefunded
                | EventType::CreditMemoCanceled
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ContractError::UnknownEventType(s.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Owned String rather than &str: values buffered in serde_json::Value cannot lend a
        // borrowed str for every deserializer, and the allocation is negligible.
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tokens_agree() {
        for t in EventType::ALL {
            assert_eq!(t.as_str(), format!("{}.{}", t.entity(), t.action()));
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(EventType::from_parts(t.entity(), t.action()), Some(t));
        }
        assert!("invoice.deleted".parse::<EventType>().is_err());
        assert_eq!(EventType::from_parts("order", "created"), None);
    }
}
