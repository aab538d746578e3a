//! Pure mapping from Magento event snapshots (the `ledger-events` contract) and a
//! merchant's settings to Sage Business Cloud Accounting v3.1 request bodies.
//!
//! No I/O happens here: every function takes a snapshot plus the Sage ids a service has
//! already resolved (contact, posted documents, bank account) and returns a plan — the
//! body to POST and the facts needed to verify and record it — or a [`MappingError`]
//! with a stable reason code.
//!
//! * Documents: [`map_sales_invoice`], [`map_sales_credit_note`] → [`DocumentPlan`],
//!   with the totals invariant (Sage's total equals Magento's grand total to the cent,
//!   via an explicit rounding line when needed) checkable with [`sage_document_total`].
//! * Contacts: [`Party`], [`map_contact`], [`map_contact_update`], [`contact_reference`],
//!   [`contact_details_changed`], [`without_refused_tax_number`].
//! * Money movements: [`map_customer_receipt`], [`map_refund`], [`map_allocation`].
//! * Credit-note settlement (refund vs allocation): [`credit_note_settlement`],
//!   [`allocation_amount`].
//! * B2C consolidation of contacts: [`b2c_contact_route`], [`fallback_contact_reference`].
//! * Catalog: [`map_product`].
//! * The exchange-rate reading: [`exchange_rate`].
//! * Sync policy (cutover, website and store filters, zero-value and unpaid invoices,
//!   reference prefix, contact name): [`invoice_decision`], [`credit_memo_decision`],
//!   [`follow_invoice`], [`prefixed_reference`], [`is_reference_of_number`].
//! * Locked periods (Sage's accounts start and year-end lockdown dates): [`open_period_date`].
//! * The books' calendar: [`sage_date`] turns every Magento instant into the Sage date
//!   (the day in the merchant's time zone); [`allocation_date`] dates allocations.
//! * Text Sage accepts: [`text::fit_text`] decodes entities, strips control characters
//!   and cuts each field to its Sage limit.
//!
//! Each Sage quirk the mapping works around is one named function in [`rules`] with its
//! own test. Bodies never contain `idempotency_id` (the Sage client adds it) and every
//! decimal is a JSON string, as Sage recommends. Money is `rust_decimal::Decimal`
//! throughout; no `f64` is involved.

#![warn(missing_docs)]

mod address;
mod calendar;
mod contact;
mod document;
mod error;
mod money;
mod money_in;
mod payment;
mod period;
mod policy;
mod product;
mod reissue;
pub mod rules;
mod settings;
mod settlement;
pub mod text;
mod total;

pub use calendar::{allocation_date, sage_date};
pub use contact::{
    b2c_candidate, b2c_contact_route, contact_details_changed, contact_reference,
    fallback_contact_reference, map_contact, map_contact_update, without_refused_tax_number,
    ContactRoute, Party, CONSOLIDATED_CUSTOMER_KEY,
};
pub use document::{
    map_sales_credit_note, map_sales_invoice, DocumentPlan, OriginalInvoice,
    ADJUSTMENT_FEE_DESCRIPTION, ADJUSTMENT_REFUND_DESCRIPTION, ROUNDING_DESCRIPTION,
    SHIPPING_DESCRIPTION,
};
pub use error::{reasons, MappingError};
pub use money::{decimal_json, document_exchange_rate, exchange_rate, money_json, round2};
pub use money_in::{
    check_base_currency, clearing_account_name, clearing_account_wanted, is_amount_refusal_message,
    outstanding_without_asking, realised_base_amount, receipt_allocation, reread_after_refusal,
    sage_base_currency, BankAccountFacts, BankUse, Outstanding, BANK_ACCOUNT_CURRENCIES_SETTING,
    CLEARING_ACCOUNTS_SETTING, FOREIGN_MONEY_ACCOUNTS_SETTING, OFFLINE_METHODS,
};
pub use payment::{
    map_allocation, map_customer_receipt, map_receipt, map_refund, AllocationPlan, CreditNoteRef,
    InvoiceRef, ReceiptContext, ReceiptPlan, SageDocumentRef,
};
pub use period::{
    is_date_refusal, move_document_date, move_payment_date, open_period_date, LockedPeriod,
    OpenPeriod, PeriodDate, LOCKED_PERIOD_SETTING,
};
pub use policy::{
    credit_memo_decision, follow_invoice, invoice_decision, is_hold, is_policy_skip,
    is_reference_of_number, policy_setting_issues, prefixed_reference, scope_decision,
    ContactNamePriority, DocumentFacts, UnpaidInvoices, ZeroValueInvoices, REFERENCE_PREFIX_MAX,
    REFERENCE_PREFIX_SEPARATORS,
};
pub use product::{is_stock_item, map_opening_stock, map_product, ProductPlan, StockMovementPlan};
pub use reissue::{
    into_reissue, line_labels, map_reissue_credit_note, posts_differently,
    reissue_credit_reference, reissue_reference, sage_line_labels,
};
pub use settings::{
    default_bank_accounts, deposit_bank_account, AdjustmentVat, B2cConsolidation,
    CrossBorderVatCharged, GoodsServices, GoodsServicesPolicy, LineTaxFacts, MerchantSettings,
    MethodTiming, NamedTaxRate, PaymentMethodMapping, TaxRateEntry,
};
pub use settlement::{
    allocate_oldest_first, allocation_amount, credit_note_settlement, map_credit_allocation,
    settlement_rule, unlinked_credit_note_reference, Settlement, SettlementRule,
};
pub use total::{sage_document_total, sage_line_figures, SageLineFigures};
