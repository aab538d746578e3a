//! State shared by all requests of one sandbox.
//!
//! Locks are std mutexes held only for short synchronous sections; no lock is
//! ever held across an `.await`. Each business has its own mutex so requests
//! for different businesses do not contend.

use crate::auth::{AuthState, TokenTtls};
use crate::faults::{FaultState, RateLimiter};
use crate::model::{Business, BusinessHandle, BusinessSpec};
use crate::stats::{ConcurrencyViolation, Metrics, StatsState};
use crate::SandboxConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;
use tokio::sync::watch;

/// Most concurrency violations kept for inspection.
const MAX_VIOLATIONS: usize = 10_000;

/// Locks a mutex, recovering from poisoning: a panicking request must not
/// take the whole sandbox down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Businesses and which user owns which.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub businesses: HashMap<String, Arc<Mutex<Business>>>,
    pub order: Vec<String>,
    /// user id → business ids in creation order (the first is the lead).
    pub users: HashMap<String, Vec<String>>,
}

/// Documents of one business that share a reference (invoices, credit notes)
/// or a name + email (contacts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// Business.
    pub business_id: String,
    /// `sales_invoices`, `sales_credit_notes` or `contacts`.
    pub resource: String,
    /// The shared reference, or `name <email>` for contacts.
    pub key: String,
    /// Ids of the records sharing it, in creation order.
    pub ids: Vec<String>,
}

pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub directory: RwLock<Directory>,
    pub auth: Mutex<AuthState>,
    pub stats: Mutex<StatsState>,
    pub metrics: Metrics,
    pub faults: Mutex<FaultState>,
    pub limiter: Mutex<RateLimiter>,
    pub inflight: Mutex<HashMap<(String, String), u32>>,
    pub violations: Mutex<Vec<ConcurrencyViolation>>,
    /// Flips to true when the server stops, releasing requests held by the
    /// `timeout` fault.
    pub stopping: watch::Sender<bool>,
}

impl Shared {
    pub fn new(config: SandboxConfig) -> Shared {
        let rate = config.rate_limit_per_minute;
        Shared {
            config,
            directory: RwLock::new(Directory::default()),
            auth: Mutex::new(AuthState::default()),
            stats: Mutex::new(StatsState::default()),
            metrics: Metrics::new(),
            faults: Mutex::new(FaultState::new(rate)),
            limiter: Mutex::new(RateLimiter::default()),
            inflight: Mutex::new(HashMap::new()),
            violations: Mutex::new(Vec::new()),
            stopping: watch::channel(false).0,
        }
    }

    pub fn ttls(&self) -> TokenTtls {
        TokenTtls {
            access: self.config.access_token_ttl,
            refresh: self.config.refresh_token_ttl,
        }
    }

    fn read_dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_dir(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Seeds a business; fails on an unknown base currency or empty name.
    pub fn create_business(&self, spec: BusinessSpec) -> Result<BusinessHandle, String> {
        let mut spec = spec;
        spec.base_currency = spec.base_currency.trim().to_uppercase();
        spec.country = spec.country.trim().to_uppercase();
        if !crate::seed::currency_exists(&spec.base_currency) {
            return Err(format!("unknown base currency {:?}", spec.base_currency));
        }
        if spec.name.trim().is_empty() {
            return Err("name must not be empty".to_owned());
        }
        if spec.country.len() != 2 {
            return Err("country must be a 2-letter code".to_owned());
        }
        let user_id = spec.user_id.clone().unwrap_or_else(crate::new_id);
        let id = crate::new_id();
        let business = Business::new(id.clone(), user_id.clone(), &spec);
        let handle = business.handle();
        let mut dir = self.write_dir();
        dir.businesses
            .insert(id.clone(), Arc::new(Mutex::new(business)));
        dir.order.push(id.clone());
        dir.users.entry(user_id).or_default().push(id);
        Ok(handle)
    }

    pub fn business(&self, id: &str) -> Option<Arc<Mutex<Business>>> {
        self.read_dir().businesses.get(id).cloned()
    }

    /// Sets a business's `accounts_start_date` and `year_end_lockdown_date`; `None` when the
    /// business does not exist.
    pub fn set_financial_dates(
        &self,
        id: &str,
        accounts_start_date: chrono::NaiveDate,
        year_end_lockdown_date: Option<chrono::NaiveDate>,
    ) -> Option<()> {
        let business = self.business(id)?;
        let mut b = lock(&business);
        b.accounts_start_date = accounts_start_date;
        b.year_end_lockdown_date = year_end_lockdown_date;
        Some(())
    }

    pub fn handles(&self) -> Vec<BusinessHandle> {
        let dir = self.read_dir();
        dir.order
            .iter()
            .filter_map(|id| dir.businesses.get(id))
            .map(|b| lock(b).handle())
            .collect()
    }

    /// Businesses a user can reach, lead first.
    pub fn user_businesses(&self, user_id: &str) -> Vec<String> {
        self.read_dir()
            .users
            .get(user_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Owner and country of a business.
    pub fn business_owner(&self, id: &str) -> Option<(String, String)> {
        let b = self.business(id)?;
        let b = lock(&b);
        Some((b.user_id.clone(), b.country.clone()))
    }

    /// The business the consent screen picks when none is named: the first
    /// one created, or a fresh default one on an empty sandbox.
    pub fn default_business(&self) -> String {
        if let Some(first) = self.read_dir().order.first().cloned() {
            return first;
        }
        self.create_business(BusinessSpec::default())
            .map(|h| h.id)
            .unwrap_or_default()
    }

    /// What the consent screen hands out for `business_id`.
    pub fn issue_code(
        &self,
        business_id: &str,
        redirect_uri: Option<String>,
        code_challenge: Option<(String, String)>,
    ) -> Option<String> {
        let (user, country) = self.business_owner(business_id)?;
        Some(lock(&self.auth).issue_code(
            &country,
            business_id,
            &user,
            redirect_uri,
            code_challenge,
            Instant::now(),
        ))
    }

    /// Revokes every connection whose user can reach `business_id`.
    pub fn revoke_business_tokens(&self, business_id: &str) -> usize {
        let Some((user, _)) = self.business_owner(business_id) else {
            return 0;
        };
        lock(&self.auth).revoke_where(|u, b| u == user || b == business_id)
    }

    /// Expires access tokens of connections that can reach `business_id`.
    pub fn expire_business_access_tokens(&self, business_id: &str) -> usize {
        let Some((user, _)) = self.business_owner(business_id) else {
            return 0;
        };
        lock(&self.auth).expire_access_where(|u, b| u == user || b == business_id, Instant::now())
    }

    /// Marks a POST as in flight; returns a guard that ends it.
    pub fn begin_post<'a>(&'a self, business: &str, resource: &str) -> InflightGuard<'a> {
        let key = (business.to_owned(), resource.to_owned());
        let count = {
            let mut inflight = lock(&self.inflight);
            let c = inflight.entry(key.clone()).or_insert(0);
            *c += 1;
            *c
        };
        if count > 1 {
            let mut violations = lock(&self.violations);
            // Bounded so a benchmark that posts in parallel on purpose cannot
            // exhaust memory; the oldest half goes first.
            if violations.len() >= MAX_VIOLATIONS {
                violations.drain(..MAX_VIOLATIONS / 2);
            }
            violations.push(ConcurrencyViolation {
                business_id: business.to_owned(),
                resource: resource.to_owned(),
                at: chrono::Utc::now(),
                in_flight: count,
            });
            drop(violations);
            self.metrics.violations.with_label_values(&[resource]).inc();
            tracing::warn!(
                business,
                resource,
                in_flight = count,
                "overlapping POSTs (Sage advises one at a time)"
            );
        }
        InflightGuard { shared: self, key }
    }

    /// Stored documents of one resource, as full JSON, in creation order.
    pub fn documents(&self, business_id: &str, resource: &str) -> Vec<Value> {
        let Some(b) = self.business(business_id) else {
            return Vec::new();
        };
        let b = lock(&b);
        fn all<M>(s: &crate::model::Store<M>) -> Vec<Value> {
            s.iter().map(|r| Value::Object(r.json.clone())).collect()
        }
        match resource {
            "contacts" => all(&b.contacts),
            "products" => all(&b.products),
            "services" => all(&b.services),
            "stock_items" => all(&b.stock_items),
            "stock_movements" => all(&b.stock_movements),
            "sales_invoices" => all(&b.sales_invoices),
            "sales_credit_notes" => all(&b.sales_credit_notes),
            "contact_payments" => all(&b.contact_payments),
            "contact_allocations" => all(&b.contact_allocations),
            "payments_on_account" => all(&b.payments_on_account),
            "ledger_accounts" => b
                .ledger_accounts
                .iter()
                .map(|l| Value::Object(l.to_json()))
                .collect(),
            "bank_accounts" => b
                .bank_accounts
                .iter()
                .map(|a| Value::Object(a.to_json()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Duplicate references / name+email pairs of one business.
    pub fn duplicates(&self, business_id: &str) -> Vec<DuplicateGroup> {
        let Some(b) = self.business(business_id) else {
            return Vec::new();
        };
        let b = lock(&b);
        let mut out = Vec::new();
        let mut push = |resource: &str, key: String, ids: &Vec<String>| {
            if ids.len() > 1 {
                out.push(DuplicateGroup {
                    business_id: business_id.to_owned(),
                    resource: resource.to_owned(),
                    key,
                    ids: ids.clone(),
                });
            }
        };
        for (r, ids) in &b.invoice_references {
            push("sales_invoices", r.clone(), ids);
        }
        for (r, ids) in &b.credit_note_references {
            push("sales_credit_notes", r.clone(), ids);
        }
        for ((name, email), ids) in &b.contact_name_email {
            push("contacts", format!("{name} <{email}>"), ids);
        }
        out.sort_by(|a, b| (&a.resource, &a.key).cmp(&(&b.resource, &b.key)));
        out
    }

    /// Duplicates across every business.
    pub fn all_duplicates(&self) -> Vec<DuplicateGroup> {
        let ids: Vec<String> = self.read_dir().order.clone();
        ids.iter().flat_map(|id| self.duplicates(id)).collect()
    }

    pub fn violations(&self) -> Vec<ConcurrencyViolation> {
        lock(&self.violations).clone()
    }

    /// Forgets businesses, tokens, counters, violations and fault plans.
    pub fn reset(&self) {
        *self.write_dir() = Directory::default();
        *lock(&self.auth) = AuthState::default();
        *lock(&self.stats) = StatsState::default();
        self.metrics.reset();
        {
            let mut f = lock(&self.faults);
            f.clear();
            f.rate_limit_per_minute = self.config.rate_limit_per_minute;
        }
        lock(&self.limiter).clear();
        lock(&self.violations).clear();
    }
}

/// Ends an in-flight POST when dropped (also when the request is cancelled).
pub(crate) struct InflightGuard<'a> {
    shared: &'a Shared,
    key: (String, String),
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut inflight = lock(&self.shared.inflight);
        if let Some(c) = inflight.get_mut(&self.key) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                inflight.remove(&self.key);
            }
        }
    }
}
