//! The one error type of the crate.
//!
//! Mapping either produces a request body or says, with a stable code, why it did not.
//! The two variants drive different operational handling in the services:
//! `Invalid` means the input itself is wrong (a producer bug or a missing setting) and
//! `Skipped` means the input is fine but must not be posted as it stands (hold it for a
//! person, or it is deliberately not something Sage should receive).

use thiserror::Error;

/// Why a mapping did not produce a request body.
///
/// `field` and `reason` codes are stable `snake_case` strings: services store them,
/// show them in the Magento admin and alert on them, so they are part of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    /// The input cannot be mapped because a value is missing or impossible.
    /// `field` names the offending input field (dotted path into the snapshot, or the
    /// name of a `MerchantSettings` field); `reason` is a stable code.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `invoice.items[2].tax_percent`.
        field: String,
        /// Stable snake_case code, e.g. `missing`, `negative`, `currency_mismatch`.
        reason: String,
    },
    /// The input is valid but deliberately not mapped; the document should be held
    /// (never guessed at) or ignored, depending on `reason`.
    #[error("skipped ({reason}): {detail}")]
    Skipped {
        /// Stable snake_case code, e.g. `unmapped_tax_rate`, `net_terms`, `composite_product`.
        reason: String,
        /// Human-readable context for support staff (which line, which rate, ...).
        detail: String,
    },
}

impl MappingError {
    /// Shorthand for [`MappingError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        MappingError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`MappingError::Skipped`].
    pub fn skipped(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        MappingError::Skipped {
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    /// The stable code of this error: the `reason` of either variant.
    pub fn reason(&self) -> &str {
        match self {
            MappingError::Invalid { reason, .. } | MappingError::Skipped { reason, .. } => reason,
        }
    }
}

/// Stable reason codes used by this crate, collected so services can match on them
/// without retyping strings.
pub mod reasons {
    /// A Magento tax rate (or shipping tax) has no Sage tax rate id in the merchant's map.
    pub const UNMAPPED_TAX_RATE: &str = "unmapped_tax_rate";
    /// The payment method is a net-terms/offline method: no money moved, no receipt.
    pub const NET_TERMS: &str = "net_terms";
    /// A configurable/bundle/grouped product: Sage only gets the sellable children.
    pub const COMPOSITE_PRODUCT: &str = "composite_product";
    /// A product type this crate does not know how to represent in Sage.
    pub const UNSUPPORTED_PRODUCT_TYPE: &str = "unsupported_product_type";
    /// The merchant switched product sync off.
    pub const PRODUCT_SYNC_DISABLED: &str = "product_sync_disabled";
    /// No opening stock movement: the merchant did not ask for one (`opening_stock`), or
    /// the product is not a stock item.
    pub const OPENING_STOCK_OFF: &str = "opening_stock_off";
    /// An opening stock movement refused because the product has no `cost` to value it
    /// at; the stock item itself is still created.
    pub const NO_COST_PRICE: &str = "no_cost_price";
    /// Magento's grand total does not match the sum of its own parts beyond rounding,
    /// so an amount exists that the mapping cannot see (gift card, store credit, ...).
    pub const TOTALS_MISMATCH: &str = "totals_mismatch";
    /// A cross-border document on which Magento charged VAT: zero-rating it would
    /// change the books, charging it would contradict the cross-border rule.
    pub const CROSS_BORDER_TAX_CHARGED: &str = "cross_border_tax_charged";
    /// A credit memo whose money did not go back to the customer (no refund to record).
    pub const NOT_REFUNDED: &str = "not_refunded";
    /// A credit note with no original invoice in Sage and no money returned: nothing to
    /// allocate it against, so it stays open as credit on the customer's account.
    pub const NO_PARENT_INVOICE: &str = "no_parent_invoice";
    /// A credit note whose invoice has nothing outstanding in Sage any more (paid or
    /// already credited): nothing left to allocate.
    pub const INVOICE_SETTLED: &str = "invoice_settled";
    /// A credit memo still pending at the gateway (state open): its credit note waits for
    /// the refund, which is posted when the credit memo arrives again as refunded.
    pub const REFUND_PENDING: &str = "refund_pending";
    /// Part (or all) of a credit note that nothing in Sage was outstanding to take: it
    /// stays on the customer's account, open in Sage for that amount.
    pub const LEFT_ON_ACCOUNT: &str = "left_on_account";
    /// A credit memo whose original invoice was itself held (skipped): crediting an
    /// invoice Sage has never seen would leave the credit note with nothing to settle.
    pub const ORIGINAL_INVOICE_HELD: &str = "original_invoice_held";
    /// A snapshot older than one already applied (redelivered out of order): applying it
    /// would overwrite newer data in Sage.
    pub const STALE_SNAPSHOT: &str = "stale_snapshot";
    /// Magento's grand total differs from the sum of its lines by more than the one cent
    /// per line a rounding line may carry (the detail gives the figures).
    pub const ROUNDING_TOO_LARGE: &str = "rounding_too_large";
    /// A line supplied abroad (OSS/IOSS destination VAT) carries VAT whose applied tax
    /// code and country are not mapped to a Sage rate: it must never land on a home rate.
    pub const UNMAPPED_FOREIGN_VAT: &str = "unmapped_foreign_vat";
    /// Magento's base-currency grand total is not its grand total at its own exchange
    /// rate (beyond a cent per line): the base figures cannot be reproduced in Sage.
    pub const BASE_TOTALS_MISMATCH: &str = "base_totals_mismatch";
    /// Canceled (or voided) in Magento before the document reached Sage: it never will.
    pub const CANCELED: &str = "canceled";
    /// Nothing to post (e.g. a zero-amount payment or credit memo, a document with no amounts).
    pub const NOTHING_TO_POST: &str = "nothing_to_post";
    /// An invoice with a grand total of 0.00 kept out of Sage by the merchant's
    /// `zero_value_invoices: skip` policy (the default).
    pub const ZERO_VALUE: &str = "zero_value";
    /// A document or payment dated in a period Sage has locked (before the accounts start
    /// date or on or before the year-end lockdown date), with the setting `locked_period:
    /// hold`.
    pub const PERIOD_LOCKED: &str = "period_locked";
    /// A document or payment whose Magento base currency is not the Sage business's base
    /// currency: posting it would book foreign amounts as if they were base ones.
    pub const BASE_CURRENCY_MISMATCH: &str = "base_currency_mismatch";
    /// A payment of an invoice held by policy: recorded, and posted (allocated) by itself
    /// once the invoice is released and lands in Sage.
    pub const INVOICE_HELD: &str = "invoice_held";
    /// A payment with no Sage bank account for its method and currency: held until the
    /// merchant maps (or creates) one, then handled again.
    pub const NO_BANK_ACCOUNT: &str = "no_bank_account";
    /// A payment whose mapped bank account is in another currency and is not marked as
    /// taking foreign money.
    pub const BANK_ACCOUNT_CURRENCY: &str = "bank_account_currency";
    /// Dated (the books' day) before the merchant's `sync_since` cutover: that period was
    /// kept in Sage outside Ledger.
    pub const BEFORE_CUTOVER: &str = "before_cutover";
    /// From a Magento website the merchant does not sync (`website_ids`).
    pub const WEBSITE_NOT_SYNCED: &str = "website_not_synced";
    /// From a Magento store view the merchant does not sync (`store_ids`).
    pub const STORE_NOT_SYNCED: &str = "store_not_synced";
    /// An invoice created open (payment not captured) with `unpaid_invoices: skip`.
    pub const UNPAID_AT_CREATION: &str = "unpaid_at_creation";
    /// A required value is absent.
    pub const MISSING: &str = "missing";
    /// A value that must not be negative is negative.
    pub const NEGATIVE: &str = "negative";
    /// A value that must be above zero is zero or negative.
    pub const NOT_POSITIVE: &str = "not_positive";
    /// Two documents that must share a currency do not.
    pub const CURRENCY_MISMATCH: &str = "currency_mismatch";
    /// Two documents that must share a Sage contact do not.
    pub const CONTACT_MISMATCH: &str = "contact_mismatch";
    /// An amount is larger than the document it is applied to.
    pub const EXCEEDS_DOCUMENT_TOTAL: &str = "exceeds_document_total";
    /// A value has the wrong shape (bad date, bad currency code, ...).
    pub const MALFORMED: &str = "malformed";
}
