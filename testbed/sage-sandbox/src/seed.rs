//! Reference data every sandbox business starts with.
//!
//! Ids of tax rates, currencies, payment methods, contact types and
//! goods/services types are Sage's codes; ledger and bank accounts get fresh
//! opaque ids per business, as on Sage.

use crate::new_id;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

/// A tax rate as exposed by `GET /tax_rates`.
#[derive(Debug, Clone)]
pub struct TaxRate {
    /// Sage's code, e.g. `GB_STANDARD`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Percentage, e.g. 20.
    pub percentage: Decimal,
    /// Whether the UI offers it.
    pub is_visible: bool,
}

/// UK VAT rates (ids and names as in a real Sage dump).
pub fn tax_rates() -> Vec<TaxRate> {
    vec![
        TaxRate {
            id: "GB_STANDARD",
            name: "Standard 20.00%",
            percentage: Decimal::from(20),
            is_visible: true,
        },
        TaxRate {
            id: "GB_LOWER",
            name: "Lower Rate 5.00%",
            percentage: Decimal::from(5),
            is_visible: true,
        },
        TaxRate {
            id: "GB_ZERO",
            name: "Zero Rated 0.00%",
            percentage: Decimal::ZERO,
            is_visible: true,
        },
        TaxRate {
            id: "GB_EXEMPT",
            name: "Exempt 0.00%",
            percentage: Decimal::ZERO,
            is_visible: true,
        },
        TaxRate {
            id: "GB_NO_TAX",
            name: "No VAT",
            percentage: Decimal::ZERO,
            is_visible: true,
        },
    ]
}

/// Looks a tax rate up by id.
pub fn tax_rate(id: &str) -> Option<TaxRate> {
    tax_rates().into_iter().find(|t| t.id == id)
}

/// Currencies: (ISO code, name, symbol, indicative GBP value of one unit).
///
/// The last column only feeds the default exchange rate used when a foreign
/// document omits `exchange_rate` (Sage would use a live ECB rate).
pub const CURRENCIES: &[(&str, &str, &str, &str)] = &[
    ("GBP", "Pound Sterling", "£", "1"),
    ("EUR", "Euro", "€", "0.85"),
    ("USD", "US Dollar", "$", "0.79"),
    ("AUD", "Australian Dollar", "$", "0.52"),
    ("CAD", "Canadian Dollar", "$", "0.58"),
    ("CHF", "Swiss Franc", "CHF", "0.90"),
    ("DKK", "Danish Krone", "kr", "0.114"),
    ("NOK", "Norwegian Krone", "kr", "0.073"),
    ("SEK", "Swedish Krona", "kr", "0.074"),
    ("PLN", "Polish Zloty", "zł", "0.20"),
    ("JPY", "Japanese Yen", "¥", "0.0052"),
    ("KRW", "South Korean Won", "₩", "0.00056"),
    ("NZD", "New Zealand Dollar", "$", "0.47"),
];

/// True when `code` is a known currency id.
pub fn currency_exists(code: &str) -> bool {
    CURRENCIES.iter().any(|c| c.0 == code)
}

/// Default `exchange_rate` (base units per document unit) between two currencies.
pub fn default_exchange_rate(base: &str, currency: &str) -> Decimal {
    let gbp_value = |code: &str| {
        CURRENCIES
            .iter()
            .find(|c| c.0 == code)
            .and_then(|c| c.3.parse::<Decimal>().ok())
            .unwrap_or(Decimal::ONE)
    };
    let base_v = gbp_value(base);
    if base_v.is_zero() {
        return Decimal::ONE;
    }
    (gbp_value(currency) / base_v).round_dp(6).normalize()
}

/// Payment methods: (id, name). Sage documents `CREDIT_DEBIT`; the rest follow
/// the same naming.
pub const PAYMENT_METHODS: &[(&str, &str)] = &[
    ("BANK_TRANSFER", "Bank Transfer"),
    ("CASH", "Cash"),
    ("CHECK", "Cheque"),
    ("CREDIT_DEBIT", "Credit/Debit Card"),
    ("ALTERNATIVE_PAYMENT", "Alternative Payment"),
];

/// Contact types: (id, name).
pub const CONTACT_TYPES: &[(&str, &str)] = &[("CUSTOMER", "Customer"), ("VENDOR", "Supplier")];

/// `eu_goods_services_types`: (id, name).
pub const EU_GOODS_SERVICES_TYPES: &[(&str, &str)] =
    &[("GOODS", "Goods"), ("SERVICES", "Services")];

/// Ledger account type ids that may be used on sales lines.
pub const SALES_VISIBLE_TYPES: &[&str] = &["SALES", "OTHER_INCOME"];

/// A ledger account of one business.
#[derive(Debug, Clone)]
pub struct LedgerAccount {
    /// Opaque 32-hex id.
    pub id: String,
    /// Nominal code, e.g. 4000.
    pub nominal_code: u32,
    /// Name.
    pub name: &'static str,
    /// Sage ledger account type id (SALES, OTHER_INCOME, DIRECT_EXPENSES, BANK...).
    pub ledger_account_type: &'static str,
    /// Default tax rate for lines posted to it.
    pub tax_rate_id: Option<&'static str>,
}

impl LedgerAccount {
    /// Whether sales documents may post to this account.
    pub fn visible_in_sales(&self) -> bool {
        SALES_VISIBLE_TYPES.contains(&self.ledger_account_type)
    }

    /// Whether purchase documents (and product purchase ledgers) may use it.
    pub fn visible_in_purchasing(&self) -> bool {
        matches!(self.ledger_account_type, "DIRECT_EXPENSES" | "OVERHEADS")
    }

    /// Full JSON representation.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "id": self.id,
            "displayed_as": format!("{} ({})", self.name, self.nominal_code),
            "$path": format!("/ledger_accounts/{}", self.id),
            "ledger_account_type": {"id": self.ledger_account_type, "displayed_as": self.ledger_account_type, "$path": format!("/ledger_account_types/{}", self.ledger_account_type)},
            "included_in_chart": true,
            "name": self.name,
            "display_name": self.name,
            "visible_scopes": if self.visible_in_sales() { json!(["sales", "journals", "reporting"]) } else if self.visible_in_purchasing() { json!(["purchasing", "journals", "reporting"]) } else { json!(["bank", "journals", "reporting"]) },
            "nominal_code": self.nominal_code,
            "ledger_account_classification": Value::Null,
            "tax_rate": self.tax_rate_id.map(|t| link("tax_rates", t, t)),
            "is_control_account": false,
            "visible_in_banking": self.ledger_account_type == "BANK",
            "visible_in_expenses": self.visible_in_purchasing(),
            "visible_in_journals": true,
            "visible_in_other_payments": true,
            "visible_in_other_receipts": true,
            "visible_in_reporting": true,
            "visible_in_sales": self.visible_in_sales(),
        });
        into_map(v)
    }
}

/// The seeded chart of accounts.
pub fn ledger_accounts() -> Vec<LedgerAccount> {
    let la = |code, name, ty, tax| LedgerAccount {
        id: new_id(),
        nominal_code: code,
        name,
        ledger_account_type: ty,
        tax_rate_id: tax,
    };
    vec![
        la(1200, "Current", "BANK", None),
        la(1210, "EUR Account", "BANK", None),
        la(1220, "USD Account", "BANK", None),
        la(1230, "Old Current Account", "BANK", None),
        la(1240, "Company Credit Card", "BANK", None),
        la(2300, "Loans", "BANK", None),
        la(4000, "Sales Type A", "SALES", Some("GB_STANDARD")),
        la(4010, "Sales Type B", "SALES", Some("GB_STANDARD")),
        la(4020, "Sales Type C", "SALES", Some("GB_STANDARD")),
        la(4900, "Other income", "OTHER_INCOME", Some("GB_STANDARD")),
        la(
            4905,
            "Distribution and Carriage",
            "OTHER_INCOME",
            Some("GB_STANDARD"),
        ),
        la(
            5000,
            "Cost of sales - goods",
            "DIRECT_EXPENSES",
            Some("GB_STANDARD"),
        ),
    ]
}

/// A bank account of one business.
#[derive(Debug, Clone)]
pub struct BankAccount {
    /// Opaque 32-hex id.
    pub id: String,
    /// Name shown in Sage.
    pub name: String,
    /// Fixed currency of the account.
    pub currency: String,
    /// Nominal code of its ledger account.
    pub nominal_code: u32,
    /// Id of its ledger account.
    pub ledger_account_id: String,
    /// Payment method used when a payment names none.
    pub default_payment_method: &'static str,
    /// `bank_account_type` id: `CHECKING`, `SAVINGS`, `CREDIT_CARD`, `LOAN`, `OTHER`, ...
    pub account_type: &'static str,
    /// `is_active`: an archived account is still listed, but takes no new money.
    pub active: bool,
    /// The `idempotency_id` of the POST that created it (seeded accounts have none).
    pub idempotency_id: Option<String>,
}

impl BankAccount {
    /// Full JSON representation.
    pub fn to_json(&self) -> Map<String, Value> {
        into_map(json!({
            "id": self.id,
            "displayed_as": format!("{} ({})", self.name, self.nominal_code),
            "$path": format!("/bank_accounts/{}", self.id),
            "bank_account_details": {"account_name": self.name, "account_number": Value::Null, "sort_code": Value::Null, "bic": Value::Null, "iban": Value::Null},
            "ledger_account": {"id": self.ledger_account_id, "displayed_as": format!("{} ({})", self.name, self.nominal_code), "$path": format!("/ledger_accounts/{}", self.ledger_account_id)},
            "bank_account_type": {"id": self.account_type, "displayed_as": bank_account_type_name(self.account_type), "$path": format!("/bank_account_types/{}", self.account_type)},
            "balance": "0.00",
            "main_address": Value::Null,
            "main_contact_person": Value::Null,
            "nominal_code": self.nominal_code,
            "editable": true,
            "deletable": false,
            "default_payment_method": link("payment_methods", self.default_payment_method, payment_method_name(self.default_payment_method).unwrap_or("")),
            "gifi_code": Value::Null,
            "is_active": self.active,
            "currency": currency_link(&self.currency),
        }))
    }
}

/// Display name of a bank account type.
pub fn bank_account_type_name(id: &str) -> &'static str {
    match id {
        "CHECKING" => "Current",
        "SAVINGS" => "Savings",
        "CREDIT_CARD" => "Credit Card",
        "CASH_IN_HAND" => "Cash in Hand",
        "LOAN" => "Loan",
        _ => "Other",
    }
}

/// Accounts in the base currency that money from the shop must never land in, listed
/// before the real ones (as an older business lists them): an archived current account, a
/// company credit card and a loan. Discovery has to skip them.
pub fn unusable_bank_accounts(base_currency: &str, ledgers: &[LedgerAccount]) -> Vec<BankAccount> {
    [
        (1230, "Old Current Account", "CHECKING", false),
        (1240, "Company Credit Card", "CREDIT_CARD", true),
        (2300, "Business Loan", "LOAN", true),
    ]
    .into_iter()
    .filter_map(|(code, name, account_type, active)| {
        let ledger = ledgers.iter().find(|l| l.nominal_code == code)?;
        Some(BankAccount {
            id: new_id(),
            name: name.to_owned(),
            currency: base_currency.to_owned(),
            nominal_code: code,
            ledger_account_id: ledger.id.clone(),
            default_payment_method: "BANK_TRANSFER",
            account_type,
            active,
            idempotency_id: None,
        })
    })
    .collect()
}

/// Bank accounts for a business: the base currency first, then EUR and USD.
pub fn bank_accounts(base_currency: &str, ledgers: &[LedgerAccount]) -> Vec<BankAccount> {
    let mut currencies = vec![base_currency.to_owned()];
    for c in ["GBP", "EUR", "USD"] {
        if !currencies.iter().any(|x| x == c) {
            currencies.push(c.to_owned());
        }
    }
    currencies.truncate(3);
    let bank_ledgers: Vec<&LedgerAccount> = ledgers
        .iter()
        .filter(|l| l.ledger_account_type == "BANK")
        .collect();
    currencies
        .into_iter()
        .zip(bank_ledgers)
        .enumerate()
        .map(|(i, (cur, ledger))| BankAccount {
            id: new_id(),
            name: if i == 0 {
                "Current Account".to_owned()
            } else {
                format!("{cur} Account")
            },
            currency: cur,
            nominal_code: ledger.nominal_code,
            ledger_account_id: ledger.id.clone(),
            default_payment_method: "BANK_TRANSFER",
            account_type: "CHECKING",
            active: true,
            idempotency_id: None,
        })
        .collect()
}

/// Name of a payment method.
pub fn payment_method_name(id: &str) -> Option<&'static str> {
    PAYMENT_METHODS.iter().find(|p| p.0 == id).map(|p| p.1)
}

/// `{id, displayed_as, $path}` link object as Sage nests related records.
pub fn link(collection: &str, id: &str, displayed_as: &str) -> Value {
    json!({"id": id, "displayed_as": displayed_as, "$path": format!("/{collection}/{id}")})
}

/// Link object for a currency code.
pub fn currency_link(code: &str) -> Value {
    let name = CURRENCIES
        .iter()
        .find(|c| c.0 == code)
        .map(|c| c.1)
        .unwrap_or(code);
    link("currencies", code, &format!("{name} ({code})"))
}

/// Link object for a tax rate id.
pub fn tax_rate_link(id: &str) -> Value {
    let name = tax_rate(id).map(|t| t.name).unwrap_or(id);
    link("tax_rates", id, name)
}

/// JSON list items of the static collections.
pub fn static_items(collection: &str) -> Option<Vec<Map<String, Value>>> {
    let items = match collection {
        "tax_rates" => tax_rates()
            .into_iter()
            .map(|t| {
                let pct = crate::money::decimal_json(t.percentage);
                into_map(json!({
                    "id": t.id, "displayed_as": t.name, "$path": format!("/tax_rates/{}", t.id),
                    "name": t.name, "agency": Value::Null,
                    "percentage": pct,
                    "percentages": [{"percentage": pct, "from_date": "2011-01-04", "to_date": Value::Null}],
                    "is_visible": t.is_visible, "retailer": false, "editable": false, "deletable": false,
                    "is_combined_rate": false, "component_tax_rates": [],
                }))
            })
            .collect(),
        "currencies" => CURRENCIES
            .iter()
            .map(|(code, name, symbol, _)| {
                into_map(json!({
                    "id": code, "displayed_as": format!("{name} ({code})"), "$path": format!("/currencies/{code}"),
                    "symbol": symbol, "symbol_and_description": format!("{symbol} {name}"),
                }))
            })
            .collect(),
        "payment_methods" => PAYMENT_METHODS
            .iter()
            .map(|(id, name)| into_map(json!({"id": id, "displayed_as": name, "$path": format!("/payment_methods/{id}"), "payment_method_type": {"id": id, "displayed_as": name}})))
            .collect(),
        "contact_types" => CONTACT_TYPES
            .iter()
            .map(|(id, name)| into_map(json!({"id": id, "displayed_as": name, "$path": format!("/contact_types/{id}")})))
            .collect(),
        "eu_goods_services_types" => EU_GOODS_SERVICES_TYPES
            .iter()
            .map(|(id, name)| into_map(json!({"id": id, "displayed_as": name, "$path": format!("/eu_goods_services_types/{id}")})))
            .collect(),
        _ => return None,
    };
    Some(items)
}

/// Unwraps a JSON object literal into its map.
pub fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uk_rates_have_expected_percentages() {
        let pct = |id| tax_rate(id).unwrap().percentage;
        assert_eq!(pct("GB_STANDARD"), Decimal::from(20));
        assert_eq!(pct("GB_LOWER"), Decimal::from(5));
        for id in ["GB_ZERO", "GB_EXEMPT", "GB_NO_TAX"] {
            assert!(pct(id).is_zero());
        }
        assert!(tax_rate("GB_REDUCED").is_none());
    }

    #[test]
    fn default_rate_is_base_per_unit() {
        assert_eq!(default_exchange_rate("GBP", "EUR").to_string(), "0.85");
        assert_eq!(default_exchange_rate("GBP", "GBP"), Decimal::ONE);
    }

    #[test]
    fn bank_accounts_start_with_base_currency() {
        let ledgers = ledger_accounts();
        let banks = bank_accounts("EUR", &ledgers);
        let curs: Vec<&str> = banks.iter().map(|b| b.currency.as_str()).collect();
        assert_eq!(curs, vec!["EUR", "GBP", "USD"]);
    }
}
