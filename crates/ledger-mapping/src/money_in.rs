//! Money coming in: the rules that decide whether (and how) a payment can reach Sage before
//! it is mapped: the Sage business's base currency against Magento's, the bank account's
//! currency against the payment's, and what a receipt may allocate against what Sage says is
//! outstanding.

use crate::error::{reasons, MappingError};
use crate::money::round2;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Settings key: Sage bank account id → its currency, as discovery found the accounts.
pub const BANK_ACCOUNT_CURRENCIES_SETTING: &str = "bank_account_currencies";
/// Settings key: the bank accounts the merchant says take foreign money (a receipt in
/// another currency lands there at the base amount received).
pub const FOREIGN_MONEY_ACCOUNTS_SETTING: &str = "foreign_money_bank_accounts";

/// Rule "Sage's base currency is read, never assumed": the `base_currency` of a
/// `GET /financial_settings` answer (a link `{ "id": "GBP" }`, or a bare code), upper case.
pub fn sage_base_currency(financial_settings: &Value) -> Result<String, MappingError> {
    let field = financial_settings.get("base_currency");
    let code = field
        .and_then(|c| c.get("id").and_then(Value::as_str).or_else(|| c.as_str()))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match (field, code) {
        (_, Some(code)) => Ok(code.to_ascii_uppercase()),
        (None, _) | (Some(Value::Null), _) => Err(MappingError::invalid(
            "financial_settings.base_currency",
            reasons::MISSING,
        )),
        _ => Err(MappingError::invalid(
            "financial_settings.base_currency",
            reasons::MALFORMED,
        )),
    }
}

/// Rule "a document keeps Magento's base currency only where Sage's is the same": a
/// document (or payment) whose Magento base currency differs from the Sage business's is
/// `Skipped { reason: "base_currency_mismatch" }`, the detail naming both currencies. Sage
/// books every amount it is sent at the business's base currency: a EUR-base website's €117
/// on a GBP business would otherwise be booked as £117.
pub fn check_base_currency(
    magento_base: &str,
    sage_base: &str,
    what: &str,
) -> Result<(), MappingError> {
    if magento_base.trim().eq_ignore_ascii_case(sage_base.trim()) {
        return Ok(());
    }
    Err(MappingError::skipped(
        reasons::BASE_CURRENCY_MISMATCH,
        format!(
            "{what}: Magento's base currency is {} but the Sage business's base currency is {}; \
             set the website's base currency to {} (or connect a {} Sage business), then retry",
            magento_base.trim().to_ascii_uppercase(),
            sage_base.trim().to_ascii_uppercase(),
            sage_base.trim().to_ascii_uppercase(),
            magento_base.trim().to_ascii_uppercase(),
        ),
    ))
}

/// What the settings say about Sage bank accounts: each account's currency (from
/// discovery) and the accounts the merchant marked as taking foreign money.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BankAccountFacts {
    /// Sage bank account id → currency (upper case).
    pub currencies: BTreeMap<String, String>,
    /// Accounts that take money in other currencies than their own.
    pub foreign_money: BTreeSet<String>,
}

/// How a receipt lands in the bank account chosen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankUse {
    /// The account is in the payment's currency (or its currency is not known).
    SameCurrency,
    /// The account is in another currency and takes foreign money: the receipt carries the
    /// base amount received.
    ForeignMoney,
}

impl BankAccountFacts {
    /// Reads `bank_account_currencies` and `foreign_money_bank_accounts` from a raw settings
    /// document; absent keys are empty, malformed ones are refused naming the field.
    pub fn from_settings(raw: &Value) -> Result<Self, MappingError> {
        let mut facts = BankAccountFacts::default();
        match raw.get(BANK_ACCOUNT_CURRENCIES_SETTING) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (id, currency) in map {
                    let currency = currency.as_str().map(str::trim).ok_or_else(|| {
                        MappingError::invalid(
                            format!("{BANK_ACCOUNT_CURRENCIES_SETTING}.{id}"),
                            reasons::MALFORMED,
                        )
                    })?;
                    facts
                        .currencies
                        .insert(id.trim().to_owned(), currency.to_ascii_uppercase());
                }
            }
            Some(_) => {
                return Err(MappingError::invalid(
                    BANK_ACCOUNT_CURRENCIES_SETTING,
                    reasons::MALFORMED,
                ))
            }
        }
        match raw.get(FOREIGN_MONEY_ACCOUNTS_SETTING) {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                for id in ids {
                    let id = id.as_str().ok_or_else(|| {
                        MappingError::invalid(FOREIGN_MONEY_ACCOUNTS_SETTING, reasons::MALFORMED)
                    })?;
                    facts.foreign_money.insert(id.trim().to_owned());
                }
            }
            Some(_) => {
                return Err(MappingError::invalid(
                    FOREIGN_MONEY_ACCOUNTS_SETTING,
                    reasons::MALFORMED,
                ))
            }
        }
        Ok(facts)
    }

    /// Rule "a bank account holds money in its own currency": a payment in `currency` may
    /// land in `bank_account_id` when the account is in that currency (or its currency is
    /// not known), or when the merchant marked the account as taking foreign money
    /// ([`BankUse::ForeignMoney`]). Otherwise it is
    /// `Skipped { reason: "bank_account_currency" }` naming both currencies.
    pub fn check(
        &self,
        bank_account_id: &str,
        currency: &str,
        what: &str,
    ) -> Result<BankUse, MappingError> {
        let id = bank_account_id.trim();
        let Some(account_currency) = self.currencies.get(id) else {
            return Ok(BankUse::SameCurrency);
        };
        if account_currency.eq_ignore_ascii_case(currency.trim()) {
            return Ok(BankUse::SameCurrency);
        }
        if self.foreign_money.contains(id) {
            return Ok(BankUse::ForeignMoney);
        }
        Err(MappingError::skipped(
            reasons::BANK_ACCOUNT_CURRENCY,
            format!(
                "{what}: the payment is in {} but Sage bank account {id} is in {account_currency}; \
                 map a {} account for the method, or add {id} to {FOREIGN_MONEY_ACCOUNTS_SETTING} \
                 if it takes foreign money, then retry",
                currency.trim().to_ascii_uppercase(),
                currency.trim().to_ascii_uppercase(),
            ),
        ))
    }

    /// Settings check: every bank account mapped for a currency (the `bank_accounts`
    /// defaults and each method's `bank_account_ids`) is in that currency or takes foreign
    /// money. Returns `(field, reason)` for each one that is not.
    pub fn mapping_issues(&self, raw: &Value) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        let mut check = |field: String, currency: &str, id: &Value| {
            let Some(id) = id.as_str().map(str::trim).filter(|i| !i.is_empty()) else {
                return;
            };
            if let Err(MappingError::Skipped { .. }) = self.check(id, currency, "") {
                issues.push((
                    field,
                    format!(
                        "bank account {id} is in {}, not {}; mark it in {FOREIGN_MONEY_ACCOUNTS_SETTING} if it takes foreign money",
                        self.currencies.get(id).map(String::as_str).unwrap_or("?"),
                        currency.trim().to_ascii_uppercase()
                    ),
                ));
            }
        };
        if let Some(Value::Object(defaults)) = raw.get("bank_accounts") {
            for (currency, id) in defaults {
                check(format!("/bank_accounts/{currency}"), currency, id);
            }
        }
        if let Some(Value::Object(methods)) = raw.get("payment_methods") {
            for (method, mapping) in methods {
                if let Some(Value::Object(ids)) = mapping.get("bank_account_ids") {
                    for (currency, id) in ids {
                        check(
                            format!("/payment_methods/{method}/bank_account_ids/{currency}"),
                            currency,
                            id,
                        );
                    }
                }
            }
        }
        issues
    }
}

/// Rule "receipts allocate what Sage says is outstanding": the part of a receipt of
/// `amount` allocated to an invoice with `outstanding` left in Sage. The rest stays on the
/// customer's account (Sage makes it a payment on account). Never negative.
pub fn receipt_allocation(amount: Decimal, outstanding: Decimal) -> Decimal {
    round2(amount).min(round2(outstanding)).max(Decimal::ZERO)
}

/// Where a receipt takes the amount outstanding on its invoice from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outstanding {
    /// The engine knows it exactly: the invoice's total less what the engine itself
    /// allocated to it (credit notes, earlier receipts). No call to Sage.
    Known(Decimal),
    /// The engine cannot say exactly: read Sage's `outstanding_amount`.
    AskSage,
}

/// Rule "the engine's own figure of what is outstanding": an invoice owes its `total` less
/// what the engine allocated to it since, `credited` by the documents service (credit notes
/// allocated to it) and `received` by the payments service (earlier receipts). The figure is
/// used instead of reading the invoice from Sage only when it is exact: `credited` is `None`
/// when the documents service cannot say (a settlement decided but not confirmed by Sage, a
/// re-issue under way), and a negative amount or a figure below zero means the engine's
/// records do not add up, so Sage is asked. A bookkeeper's change in Sage is not in the
/// figure: a receipt Sage then refuses for its amount reads Sage once
/// ([`reread_after_refusal`]).
pub fn outstanding_without_asking(
    total: Decimal,
    credited: Option<Decimal>,
    received: Decimal,
) -> Outstanding {
    let Some(credited) = credited else {
        return Outstanding::AskSage;
    };
    let (total, credited, received) = (round2(total), round2(credited), round2(received));
    if total < Decimal::ZERO || credited < Decimal::ZERO || received < Decimal::ZERO {
        return Outstanding::AskSage;
    }
    let left = total - credited - received;
    if left < Decimal::ZERO {
        Outstanding::AskSage
    } else {
        Outstanding::Known(left)
    }
}

/// Rule "a receipt Sage refuses for its amount reads Sage once": when the receipt was mapped
/// from the engine's own figure ([`Outstanding::Known`]) and Sage refuses it for its amount
/// (more allocated than is outstanding: someone paid or allocated the invoice in Sage by
/// hand), the invoice is read from Sage and the receipt mapped again. A receipt already
/// mapped from Sage's figure is not retried this way (the refusal is Sage's last word).
pub fn reread_after_refusal(mapped_from: Outstanding, amount_refusal: bool) -> bool {
    amount_refusal && matches!(mapped_from, Outstanding::Known(_))
}

/// Whether the message of a Sage refusal says the amount exceeds what is outstanding on the
/// document it is allocated to (or that nothing is outstanding any more).
pub fn is_amount_refusal_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("outstanding") || m.contains("unpaid or part-paid")
}

/// Rule "the receipt carries the base amount received": the base-currency amount a receipt
/// of `amount` must carry when Magento recorded `base_amount_paid` for it and that differs
/// from the amount at the invoice's own rate (a gateway that settles at its own rate, a
/// capture days after the invoice). `None` when it is the invoice's rate to the penny: then
/// the receipt reuses the invoice's rate and Sage books no exchange difference.
pub fn realised_base_amount(
    amount: Decimal,
    base_amount_paid: Decimal,
    invoice_exchange_rate: Decimal,
) -> Option<Decimal> {
    let at_invoice_rate = round2(round2(amount) * invoice_exchange_rate);
    let received = round2(base_amount_paid);
    (received > Decimal::ZERO && received != at_invoice_rate).then_some(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn outstanding_known_only_when_exact_table() {
        use Outstanding::{AskSage, Known};
        // (invoice total, credited by documents, received by payments) → source
        let cases = [
            // Nothing but the invoice: its total.
            (dec!(73.44), Some(dec!(0)), dec!(0), Known(dec!(73.44))),
            // A credit note of 20.00 allocated: 73.44 − 20.00.
            (dec!(73.44), Some(dec!(20.00)), dec!(0), Known(dec!(53.44))),
            // Credited and an earlier receipt of 10.00: 73.44 − 20.00 − 10.00.
            (dec!(73.44), Some(dec!(20)), dec!(10), Known(dec!(43.44))),
            // Credited in full: nothing outstanding, known.
            (dec!(73.44), Some(dec!(73.44)), dec!(0), Known(dec!(0))),
            // Amounts beyond the cent are Sage's cents.
            (dec!(10.004), Some(dec!(0.001)), dec!(0), Known(dec!(10.00))),
            // The documents service cannot say: ask Sage.
            (dec!(73.44), None, dec!(0), AskSage),
            // More allocated than the invoice: the records do not add up.
            (dec!(73.44), Some(dec!(70)), dec!(10), AskSage),
            (dec!(73.44), Some(dec!(-1)), dec!(0), AskSage),
            (dec!(73.44), Some(dec!(0)), dec!(-1), AskSage),
        ];
        for (total, credited, received, want) in cases {
            assert_eq!(
                outstanding_without_asking(total, credited, received),
                want,
                "{total} {credited:?} {received}"
            );
        }
    }

    #[test]
    fn refused_receipt_rereads_sage_once_table() {
        let known = Outstanding::Known(dec!(73.44));
        assert!(reread_after_refusal(known, true));
        assert!(!reread_after_refusal(known, false));
        // Mapped from Sage's figure already: no second read.
        assert!(!reread_after_refusal(Outstanding::AskSage, true));
        assert!(!reread_after_refusal(Outstanding::AskSage, false));
        assert!(is_amount_refusal_message(
            "amount: cannot exceed the outstanding amount (10.00)"
        ));
        assert!(is_amount_refusal_message(
            "You can only pay unpaid or part-paid invoices."
        ));
        assert!(!is_amount_refusal_message("date: is in a locked period"));
    }

    #[test]
    fn base_currency_is_read_from_link_or_code() {
        assert_eq!(
            sage_base_currency(&json!({"base_currency": {"id": "GBP", "displayed_as": "Pound"}}))
                .unwrap(),
            "GBP"
        );
        assert_eq!(
            sage_base_currency(&json!({"base_currency": "eur"})).unwrap(),
            "EUR"
        );
        let e = sage_base_currency(&json!({})).unwrap_err();
        assert_eq!(e.reason(), reasons::MISSING);
        let e = sage_base_currency(&json!({"base_currency": 5})).unwrap_err();
        assert_eq!(e.reason(), reasons::MALFORMED);
    }

    #[test]
    fn base_currency_mismatch_names_both() {
        assert!(check_base_currency("GBP", "gbp", "invoice 1").is_ok());
        match check_base_currency("EUR", "GBP", "invoice 100000001") {
            Err(MappingError::Skipped { reason, detail }) => {
                assert_eq!(reason, reasons::BASE_CURRENCY_MISMATCH);
                assert!(detail.contains("EUR") && detail.contains("GBP"), "{detail}");
                assert!(detail.starts_with("invoice 100000001"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    fn facts() -> BankAccountFacts {
        BankAccountFacts::from_settings(&json!({
            "bank_account_currencies": {"bank-gbp": "GBP", "bank-eur": "eur", "bank-fx": "GBP"},
            "foreign_money_bank_accounts": ["bank-fx"]
        }))
        .unwrap()
    }

    #[test]
    fn bank_account_in_payment_currency_or_taking_foreign_money() {
        let f = facts();
        assert_eq!(
            f.check("bank-eur", "EUR", "x").unwrap(),
            BankUse::SameCurrency
        );
        assert_eq!(
            f.check("unknown", "EUR", "x").unwrap(),
            BankUse::SameCurrency
        );
        assert_eq!(
            f.check("bank-fx", "EUR", "x").unwrap(),
            BankUse::ForeignMoney
        );
        let e = f.check("bank-gbp", "EUR", "receipt").unwrap_err();
        assert_eq!(e.reason(), reasons::BANK_ACCOUNT_CURRENCY);
    }

    #[test]
    fn settings_refuse_an_account_mapped_for_another_currency() {
        let f = facts();
        let raw = json!({
            "bank_accounts": {"GBP": "bank-gbp", "EUR": "bank-gbp"},
            "payment_methods": {"stripe": {"bank_account_ids": {"EUR": "bank-fx", "USD": "bank-eur"}}}
        });
        let issues = f.mapping_issues(&raw);
        let fields: Vec<&str> = issues.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "/bank_accounts/EUR",
                "/payment_methods/stripe/bank_account_ids/USD"
            ]
        );
        assert!(
            BankAccountFacts::from_settings(&json!({"foreign_money_bank_accounts": "x"})).is_err()
        );
    }

    #[test]
    fn receipt_allocates_up_to_sage_outstanding() {
        // £120.00 paid, a £20.00 credit note already allocated: 100.00 outstanding.
        assert_eq!(receipt_allocation(dec!(120.00), dec!(100.00)), dec!(100.00));
        assert_eq!(receipt_allocation(dec!(50.00), dec!(100.00)), dec!(50.00));
        assert_eq!(receipt_allocation(dec!(50.00), dec!(-1)), dec!(0));
    }

    #[test]
    fn realised_base_amount_only_when_it_differs() {
        // €117.00 invoiced at 0.85 (£99.45); captured when Magento recorded £100.62.
        assert_eq!(
            realised_base_amount(dec!(117.00), dec!(100.62), dec!(0.85)),
            Some(dec!(100.62))
        );
        // Same rate: 117.00 × 0.85 = 99.45.
        assert_eq!(
            realised_base_amount(dec!(117.00), dec!(99.45), dec!(0.85)),
            None
        );
        // Base-currency invoice: rate 1.
        assert_eq!(
            realised_base_amount(dec!(10.00), dec!(10.00), dec!(1)),
            None
        );
    }
}

/// Settings key: `"per_gateway"` (default) or `"off"`; see [`clearing_account_wanted`].
pub const CLEARING_ACCOUNTS_SETTING: &str = "clearing_accounts";

/// Magento methods whose money does not come through a payment gateway's payouts (offline
/// methods), besides the merchant's net-terms methods.
pub const OFFLINE_METHODS: &[&str] = &[
    "checkmo",
    "banktransfer",
    "cashondelivery",
    "purchaseorder",
    "companycredit",
    "free",
];

/// Rule "card money lands where the bank feed can match it": a receipt of an online payment
/// method (a gateway: Stripe, PayPal, Braintree, ...) for which the merchant mapped no account
/// in this currency goes to that gateway's clearing account in the currency (created in Sage
/// when first needed), not to the current account: the gateway pays out net of its fees days
/// later, and only a clearing account lets the bank feed's payout be matched (docs/accounting.md,
/// "Matching payouts and fees"). Offline and net-terms methods keep the current account, and
/// `clearing_accounts: "off"` turns the rule off.
pub fn clearing_account_wanted(
    raw_settings: &Value,
    settings: &crate::MerchantSettings,
    method: &str,
) -> bool {
    let off = raw_settings
        .get(CLEARING_ACCOUNTS_SETTING)
        .and_then(Value::as_str)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
    !off && !settings.is_net_terms(method) && !OFFLINE_METHODS.contains(&method.trim())
}

/// The name of a gateway's clearing account in Sage, e.g. `Clearing stripe_payments GBP`
/// (Sage keeps bank account names to 30 characters: the method is cut, never the currency).
pub fn clearing_account_name(method: &str, currency: &str) -> String {
    let currency = currency.trim().to_ascii_uppercase();
    let room = 30 - "Clearing ".len() - 1 - currency.len();
    let method: String = method.trim().chars().take(room).collect();
    format!("Clearing {method} {currency}")
}

#[cfg(test)]
mod clearing_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateways_get_a_clearing_account_offline_methods_do_not() {
        let s = crate::MerchantSettings::default();
        let raw = json!({});
        assert!(clearing_account_wanted(&raw, &s, "stripe_payments"));
        assert!(clearing_account_wanted(&raw, &s, "paypal_express"));
        for offline in ["checkmo", "banktransfer", "cashondelivery", "free"] {
            assert!(!clearing_account_wanted(&raw, &s, offline), "{offline}");
        }
        assert!(!clearing_account_wanted(
            &json!({"clearing_accounts": "off"}),
            &s,
            "stripe_payments"
        ));
    }

    #[test]
    fn clearing_account_names_fit_sage() {
        assert_eq!(
            clearing_account_name("stripe_payments", "gbp"),
            "Clearing stripe_payments GBP"
        );
        let long = clearing_account_name("braintree_paypal_vault_extra_long", "EUR");
        assert_eq!(long.chars().count(), 30);
        assert!(long.ends_with(" EUR"), "{long}");
    }
}
