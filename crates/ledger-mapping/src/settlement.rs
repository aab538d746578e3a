//! What happens to a sales credit note after it is posted.
//!
//! A Sage credit note on its own only says "the customer is owed this". Whether that is
//! settled by money going back (a customer refund allocated to the credit note) or by
//! reducing what the customer still owes on the invoice (a customer allocation between
//! the credit note and the invoice) depends on whether money moved in Magento, which
//! the credit memo snapshot tells, and on what Sage says is still outstanding.

use crate::error::reasons;
use crate::money::round2;
use crate::settings::MerchantSettings;
use ledger_events::{CreditMemoSnapshot, CreditMemoState};
use rust_decimal::Decimal;

/// How a posted credit note is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Money went back to the customer: a `CUSTOMER_REFUND` allocated to the credit note
    /// ([`crate::map_refund`]).
    Refund,
    /// No money moved: allocate the credit note against its original invoice
    /// ([`crate::map_allocation`]) for what is still outstanding there.
    Allocate,
    /// Nothing to post; the credit note stays open in Sage as credit on the customer's
    /// account. `reason` is a stable code from [`reasons`].
    Nothing {
        /// Why nothing is posted.
        reason: &'static str,
    },
}

/// Decides how the credit note of `credit_memo` is settled.
///
/// - Refund when the credit memo is in state refunded and the order's method is not a
///   net-terms method. Magento puts a credit memo in state refunded both for an online
///   refund (the gateway sent the money back) and for "Refund Offline" (the merchant sent
///   it back another way); either way money left the business, so Sage must show it
///   leaving a bank account, or the bank reconciliation would never match.
/// - Otherwise no money moved: a net-terms order (checkmo, bank transfer, purchase
///   order, ...) was never paid in Sage, so its credit reduces the open invoice; the same
///   for a credit memo that is not refunded (open). With an original invoice in Sage
///   that is [`Settlement::Allocate`]; without one (an offline credit memo not tied to
///   an invoice) there is nothing to allocate against: `Nothing { "no_parent_invoice" }`.
/// - A canceled credit memo moves nothing: `Nothing { "not_refunded" }`.
pub fn credit_note_settlement(
    credit_memo: &CreditMemoSnapshot,
    settings: &MerchantSettings,
    has_original_invoice: bool,
) -> Settlement {
    let money_returned = credit_memo.creditmemo.state == CreditMemoState::Refunded
        && !settings.is_net_terms(&credit_memo.order.payment.method);
    if credit_memo.creditmemo.state == CreditMemoState::Canceled {
        return Settlement::Nothing {
            reason: reasons::NOT_REFUNDED,
        };
    }
    if money_returned {
        Settlement::Refund
    } else if has_original_invoice {
        Settlement::Allocate
    } else {
        Settlement::Nothing {
            reason: reasons::NO_PARENT_INVOICE,
        }
    }
}

/// The amount to allocate from a credit note to its invoice: the credit note's total,
/// capped at what Sage says is still outstanding on the invoice (Sage refuses an
/// allocation above the outstanding amount, and a second partial refund of one invoice
/// finds less outstanding than the first). `None` when nothing is outstanding.
pub fn allocation_amount(
    credit_note_total: Decimal,
    invoice_outstanding: Decimal,
) -> Option<Decimal> {
    let amount = round2(credit_note_total).min(round2(invoice_outstanding));
    (amount > Decimal::ZERO).then_some(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_events::Payload;
    use rust_decimal_macros::dec;

    fn credit_memo(state: u8, method: &str) -> CreditMemoSnapshot {
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../schemas/examples/creditmemo-created-adjustment-and-shipping.json"
        ))
        .unwrap();
        v["payload"]["creditmemo"]["state"] = state.into();
        v["payload"]["order"]["payment"]["method"] = method.into();
        let env = ledger_events::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        match env.payload {
            Payload::CreditMemoCreated(cm) => cm,
            _ => unreachable!("template is a credit memo"),
        }
    }

    #[test]
    fn settlement_table() {
        let s = MerchantSettings::default();
        let cases = [
            (
                "card refund with invoice",
                2,
                "stripe_payments",
                true,
                Settlement::Refund,
            ),
            (
                "offline refund of a card order without invoice",
                2,
                "stripe_payments",
                false,
                Settlement::Refund,
            ),
            (
                "net-terms credit with invoice",
                2,
                "checkmo",
                true,
                Settlement::Allocate,
            ),
            (
                "purchase order credit with invoice",
                2,
                "purchaseorder",
                true,
                Settlement::Allocate,
            ),
            (
                "open credit memo with invoice",
                1,
                "stripe_payments",
                true,
                Settlement::Allocate,
            ),
            (
                "net-terms credit without invoice",
                2,
                "purchaseorder",
                false,
                Settlement::Nothing {
                    reason: reasons::NO_PARENT_INVOICE,
                },
            ),
            (
                "canceled",
                3,
                "stripe_payments",
                true,
                Settlement::Nothing {
                    reason: reasons::NOT_REFUNDED,
                },
            ),
        ];
        for (name, state, method, has_invoice, want) in cases {
            assert_eq!(
                credit_note_settlement(&credit_memo(state, method), &s, has_invoice),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn allocation_amount_table() {
        let cases = [
            (dec!(24.44), dec!(73.44), Some(dec!(24.44))),
            (dec!(24.44), dec!(24.44), Some(dec!(24.44))),
            (dec!(59.94), dec!(49.00), Some(dec!(49.00))),
            (dec!(24.444), dec!(73.44), Some(dec!(24.44))),
            (dec!(24.44), dec!(0), None),
            (dec!(24.44), dec!(-1), None),
            (dec!(0), dec!(10), None),
        ];
        for (credit, outstanding, want) in cases {
            assert_eq!(
                allocation_amount(credit, outstanding),
                want,
                "{credit} vs {outstanding}"
            );
        }
    }
}
