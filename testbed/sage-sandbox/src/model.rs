//! In-memory records of one business.

use crate::seed::{self, BankAccount, LedgerAccount};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// What a new sandbox business looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusinessSpec {
    /// Business name.
    pub name: String,
    /// Base currency code (default `GBP`).
    pub base_currency: String,
    /// `financial_settings.multi_currency_enabled` (default true).
    pub multi_currency_enabled: bool,
    /// Country code (default `GB`; only UK VAT rates are seeded).
    pub country: String,
    /// Put the business under an existing sandbox user (as returned in
    /// [`BusinessHandle::user_id`]) to model a user with several businesses;
    /// `None` creates a new user whose lead business this is.
    pub user_id: Option<String>,
    /// `financial_settings.accounts_start_date` (default 2000-01-01, so that historical
    /// fixtures post): documents and payments
    /// dated before it are refused.
    pub accounts_start_date: NaiveDate,
    /// `financial_settings.year_end_lockdown_date` (default none): documents and payments
    /// dated on or before it are refused.
    pub year_end_lockdown_date: Option<NaiveDate>,
}

/// The sandbox's default `accounts_start_date`.
pub fn default_accounts_start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

impl Default for BusinessSpec {
    fn default() -> Self {
        BusinessSpec {
            name: "Sandbox Trading Ltd".to_owned(),
            base_currency: "GBP".to_owned(),
            multi_currency_enabled: true,
            country: "GB".to_owned(),
            user_id: None,
            accounts_start_date: default_accounts_start_date(),
            year_end_lockdown_date: None,
        }
    }
}

/// A seeded business, with the ids tests usually need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHandle {
    /// Business id (the `X-Business` value).
    pub id: String,
    /// Business name.
    pub name: String,
    /// The sandbox user owning it (`requested_by_id` in token answers).
    pub user_id: String,
    /// Base currency code.
    pub base_currency: String,
    /// Country code.
    pub country: String,
    /// Ledger account ids by nominal code (`"4000"`, `"4900"`, `"4905"`, `"5000"`, ...).
    pub ledger_accounts: BTreeMap<String, String>,
    /// Bank account ids by currency code.
    pub bank_accounts: BTreeMap<String, String>,
}

/// One stored record: its JSON as `GET` returns it plus typed metadata the
/// rules need.
#[derive(Debug, Clone)]
pub struct Record<M> {
    pub id: String,
    pub seq: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub json: Map<String, Value>,
    pub meta: M,
    /// Secondary index key: the contact id of a document or payment, the
    /// lower-case email of a contact. Lets the common lookups
    /// (`contact_id=`, `email=`) avoid scanning every record.
    pub key: Option<String>,
    /// Lower-case text `search=` matches against, prepared once at write
    /// time so listing does not allocate per record.
    pub search: String,
}

/// Joins searchable fields into one lower-case haystack.
pub fn search_text<'a>(fields: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let parts: Vec<String> = fields
        .into_iter()
        .flatten()
        .map(str::to_lowercase)
        .collect();
    // A separator no search term contains keeps fields from matching across
    // their boundary.
    parts.join("\u{1}")
}

/// Records of one resource in creation order, indexed by id and by key.
#[derive(Debug)]
pub struct Store<M> {
    items: Vec<Record<M>>,
    index: HashMap<String, usize>,
    by_key: HashMap<String, Vec<usize>>,
}

impl<M> Default for Store<M> {
    fn default() -> Self {
        Store {
            items: Vec::new(),
            index: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<M> Store<M> {
    pub fn get(&self, id: &str) -> Option<&Record<M>> {
        self.index.get(id).map(|&i| &self.items[i])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Record<M>> {
        self.index.get(id).map(|&i| &mut self.items[i])
    }

    pub fn insert(&mut self, record: Record<M>) {
        let i = self.items.len();
        if let Some(k) = &record.key {
            self.by_key.entry(k.clone()).or_default().push(i);
        }
        self.index.insert(record.id.clone(), i);
        self.items.push(record);
    }

    /// Moves a record to another secondary key.
    pub fn set_key(&mut self, id: &str, key: Option<String>) {
        let Some(&i) = self.index.get(id) else { return };
        if self.items[i].key == key {
            return;
        }
        if let Some(old) = self.items[i].key.take() {
            if let Some(list) = self.by_key.get_mut(&old) {
                list.retain(|&x| x != i);
                if list.is_empty() {
                    self.by_key.remove(&old);
                }
            }
        }
        if let Some(new) = &key {
            let list = self.by_key.entry(new.clone()).or_default();
            // Keep creation order so keyed listings page like full ones.
            let pos = list.partition_point(|&x| x < i);
            list.insert(pos, i);
        }
        self.items[i].key = key;
    }

    /// Records with the given secondary key, in creation order.
    pub fn keyed<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a Record<M>> + 'a {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .map(move |&i| &self.items[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record<M>> {
        self.items.iter()
    }
}

/// What the rules need to know about a contact.
#[derive(Debug, Clone)]
pub struct ContactMeta {
    pub name: String,
    pub reference: Option<String>,
    pub email: Option<String>,
    pub contact_type: String,
    pub currency: String,
    pub country: Option<String>,
    pub deleted: bool,
    /// Invoices and credit notes issued to it (locks its currency).
    pub documents: u32,
    pub default_tax_rate: Option<String>,
    /// The contact's fields as last written, merged across PUTs.
    pub input: Map<String, Value>,
}

/// What the rules need to know about a product or service.
#[derive(Debug, Clone)]
pub struct ItemMeta {
    pub description: String,
    pub item_code: Option<String>,
    pub active: bool,
    pub sales_tax_rate: Option<String>,
    pub input: Map<String, Value>,
}

/// A stock movement's facts (its stock item id is the record's `key`).
#[derive(Debug, Clone)]
pub struct MovementMeta {
    pub date: NaiveDate,
    pub quantity: rust_decimal::Decimal,
}

/// Kinds of artefact a payment or allocation can settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtefactKind {
    SalesInvoice,
    SalesCreditNote,
    PaymentOnAccount,
}

/// What the rules need to know about an invoice, credit note or payment on account.
#[derive(Debug, Clone)]
pub struct DocMeta {
    pub contact_id: String,
    pub contact_name: String,
    pub currency: String,
    pub exchange_rate: Decimal,
    pub total: Decimal,
    pub outstanding: Decimal,
    pub reference: Option<String>,
    pub date: NaiveDate,
    pub status: &'static str,
}

/// Metadata of a contact payment (its contact is the record's key).
#[derive(Debug, Clone)]
pub struct PaymentMeta {
    pub bank_account_id: String,
    pub transaction_type: String,
    pub date: NaiveDate,
}

/// Metadata of a contact allocation (its contact is the record's key).
#[derive(Debug, Clone)]
pub struct AllocationMeta {
    pub transaction_type: String,
    pub date: NaiveDate,
}

/// A remembered answer to a request carrying an `idempotency_id`.
#[derive(Debug, Clone)]
pub struct IdempotencyEntry {
    /// Root object name of the first request (`contact`, `sales_invoice`, ...).
    pub resource: String,
    pub status: u16,
    pub body: Value,
    pub at: Instant,
}

/// All state of one sandbox business.
#[derive(Debug)]
pub struct Business {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub country: String,
    pub base_currency: String,
    pub multi_currency_enabled: bool,
    /// Documents and payments dated before this are refused.
    pub accounts_start_date: NaiveDate,
    /// Documents and payments dated on or before this are refused.
    pub year_end_lockdown_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub ledger_accounts: Vec<LedgerAccount>,
    pub bank_accounts: Vec<BankAccount>,
    pub contacts: Store<ContactMeta>,
    pub products: Store<ItemMeta>,
    pub services: Store<ItemMeta>,
    pub stock_items: Store<ItemMeta>,
    /// Stock movements; `key` is the stock item id.
    pub stock_movements: Store<MovementMeta>,
    pub sales_invoices: Store<DocMeta>,
    pub sales_credit_notes: Store<DocMeta>,
    pub payments_on_account: Store<DocMeta>,
    pub contact_payments: Store<PaymentMeta>,
    pub contact_allocations: Store<AllocationMeta>,
    /// Reserved contact references (normalised) → contact id, deleted ones included.
    pub contact_references: HashMap<String, String>,
    /// (lower-case name, lower-case email) → live contact ids, for duplicate reports.
    pub contact_name_email: HashMap<(String, String), Vec<String>>,
    /// Invoice reference → invoice ids.
    pub invoice_references: HashMap<String, Vec<String>>,
    /// Credit note reference → credit note ids.
    pub credit_note_references: HashMap<String, Vec<String>>,
    /// idempotency_id → first answer.
    pub idempotency: HashMap<String, IdempotencyEntry>,
    pub next_seq: u64,
    pub invoice_counter: u64,
    pub credit_note_counter: u64,
}

impl Business {
    /// Creates a business with its seeded reference data.
    pub fn new(id: String, user_id: String, spec: &BusinessSpec) -> Business {
        let ledger_accounts = seed::ledger_accounts();
        let mut bank_accounts = seed::unusable_bank_accounts(&spec.base_currency, &ledger_accounts);
        bank_accounts.extend(seed::bank_accounts(&spec.base_currency, &ledger_accounts));
        Business {
            id,
            name: spec.name.clone(),
            user_id,
            country: spec.country.clone(),
            base_currency: spec.base_currency.clone(),
            multi_currency_enabled: spec.multi_currency_enabled,
            accounts_start_date: spec.accounts_start_date,
            year_end_lockdown_date: spec.year_end_lockdown_date,
            created_at: Utc::now(),
            ledger_accounts,
            bank_accounts,
            contacts: Store::default(),
            products: Store::default(),
            services: Store::default(),
            stock_items: Store::default(),
            stock_movements: Store::default(),
            sales_invoices: Store::default(),
            sales_credit_notes: Store::default(),
            payments_on_account: Store::default(),
            contact_payments: Store::default(),
            contact_allocations: Store::default(),
            contact_references: HashMap::new(),
            contact_name_email: HashMap::new(),
            invoice_references: HashMap::new(),
            credit_note_references: HashMap::new(),
            idempotency: HashMap::new(),
            next_seq: 0,
            invoice_counter: 0,
            credit_note_counter: 0,
        }
    }

    /// The public handle of this business.
    pub fn handle(&self) -> BusinessHandle {
        BusinessHandle {
            id: self.id.clone(),
            name: self.name.clone(),
            user_id: self.user_id.clone(),
            base_currency: self.base_currency.clone(),
            country: self.country.clone(),
            ledger_accounts: self
                .ledger_accounts
                .iter()
                .map(|l| (l.nominal_code.to_string(), l.id.clone()))
                .collect(),
            // The active current account per currency (the first one listed).
            bank_accounts: self
                .bank_accounts
                .iter()
                .rev()
                .filter(|b| b.active && b.account_type == "CHECKING")
                .map(|b| (b.currency.clone(), b.id.clone()))
                .collect(),
        }
    }

    /// Next creation sequence number.
    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn ledger_account(&self, id: &str) -> Option<&LedgerAccount> {
        self.ledger_accounts.iter().find(|l| l.id == id)
    }

    pub fn bank_account(&self, id: &str) -> Option<&BankAccount> {
        self.bank_accounts.iter().find(|b| b.id == id)
    }

    /// A live (not deleted) contact.
    pub fn live_contact(&self, id: &str) -> Option<&Record<ContactMeta>> {
        self.contacts.get(id).filter(|c| !c.meta.deleted)
    }

    /// Finds an invoice, credit note or payment on account by id.
    pub fn artefact(&self, id: &str) -> Option<(ArtefactKind, &Record<DocMeta>)> {
        if let Some(r) = self.sales_invoices.get(id) {
            return Some((ArtefactKind::SalesInvoice, r));
        }
        if let Some(r) = self.sales_credit_notes.get(id) {
            return Some((ArtefactKind::SalesCreditNote, r));
        }
        self.payments_on_account
            .get(id)
            .map(|r| (ArtefactKind::PaymentOnAccount, r))
    }

    /// Mutable access to an artefact by kind and id.
    pub fn artefact_mut(&mut self, kind: ArtefactKind, id: &str) -> Option<&mut Record<DocMeta>> {
        match kind {
            ArtefactKind::SalesInvoice => self.sales_invoices.get_mut(id),
            ArtefactKind::SalesCreditNote => self.sales_credit_notes.get_mut(id),
            ArtefactKind::PaymentOnAccount => self.payments_on_account.get_mut(id),
        }
    }

    /// JSON of the business as `GET /businesses/{id}` returns it.
    pub fn to_json(&self) -> Map<String, Value> {
        seed::into_map(serde_json::json!({
            "id": self.id,
            "displayed_as": self.name,
            "$path": format!("/businesses/{}", self.id),
            "name": self.name,
            "address_line_1": "1 Sandbox Street",
            "address_line_2": Value::Null,
            "city": "London",
            "postal_code": "EC1A 1AA",
            "country": {"id": self.country, "displayed_as": self.country, "$path": format!("/countries/{}", self.country)},
            "telephone": Value::Null,
            "website": Value::Null,
            "is_demo": false,
            "subscriptions": [{"id": "ACCOUNTING", "displayed_as": "Accounting Plus", "$path": Value::Null, "active": true}],
            "owner": {"id": self.user_id, "displayed_as": "Sandbox User", "$path": format!("/users/{}", self.user_id)},
            "created_at": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "updated_at": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
    }

    /// JSON of `GET /financial_settings`.
    pub fn financial_settings_json(&self) -> Map<String, Value> {
        seed::into_map(serde_json::json!({
            "$path": "/financial_settings",
            "year_end_date": "2025-12-31",
            "year_end_lockdown_date": self.year_end_lockdown_date.map(|d| d.to_string()),
            "accounting_type": "accrual",
            "accounts_start_date": self.accounts_start_date.to_string(),
            "base_currency": seed::currency_link(&self.base_currency),
            "multi_currency_enabled": self.multi_currency_enabled,
            "use_live_exchange_rates": false,
            "mtd_activation_status": "active",
            "mtd_connected": false,
            "mtd_authenticated_date": Value::Null,
            "tax_return_frequency": {"id": "QUARTERLY", "displayed_as": "Quarterly", "$path": "/tax_return_frequencies/QUARTERLY"},
            "tax_number": "GB123456789",
            "general_tax_number": Value::Null,
            "tax_office": Value::Null,
            "default_irpf_rate": Value::Null,
            "flat_rate_tax_percentage": Value::Null,
            "recoverable_percentage": Value::Null,
            "sales_tax_calculation": "invoice",
            "postponed_accounting": false,
            "destination_vat": false,
        }))
    }
}

/// Formats a timestamp the way the sandbox renders all times.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, key: Option<&str>) -> Record<()> {
        Record {
            id: id.to_owned(),
            seq: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            json: Map::new(),
            meta: (),
            key: key.map(str::to_owned),
            search: String::new(),
        }
    }

    fn keyed(s: &Store<()>, k: &str) -> Vec<String> {
        s.keyed(k).map(|r| r.id.clone()).collect()
    }

    #[test]
    fn secondary_key_index_follows_rekeying_in_creation_order() {
        let mut s = Store::default();
        s.insert(rec("a", Some("k1")));
        s.insert(rec("b", Some("k2")));
        s.insert(rec("c", Some("k1")));
        assert_eq!(keyed(&s, "k1"), vec!["a", "c"]);
        s.set_key("b", Some("k1".into()));
        assert_eq!(keyed(&s, "k1"), vec!["a", "b", "c"]);
        assert!(keyed(&s, "k2").is_empty());
        s.set_key("a", None);
        assert_eq!(keyed(&s, "k1"), vec!["b", "c"]);
        assert_eq!(s.get("a").unwrap().key, None);
    }

    #[test]
    fn search_text_is_lower_case_and_separated() {
        let t = search_text([Some("Ada"), None, Some("REF1")]);
        assert!(t.contains("ada") && t.contains("ref1"));
        assert!(!t.contains("adaref1"));
    }
}
