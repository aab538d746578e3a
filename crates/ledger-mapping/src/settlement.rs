//! What happens to a sales credit note after it is posted.
//!
//! A Sage credit note on its own only says "the customer is owed this". Whether that is
//! settled by money going back (a customer refund allocated to the credit note) or by
//! reducing what the customer still owes on the invoice (a customer allocation between
//! the credit note and the invoice) depends on whether money moved in Magento, which
//! the credit memo snapshot tells, and on what Sage says is still outstanding.

use crate::error::{reasons, MappingError};
use crate::money::{money_json, round2};
use crate::payment::{map_allocation, AllocationPlan, CreditNoteRef, InvoiceRef};
use crate::settings::MethodTiming;
use chrono::NaiveDate;
use ledger_events::CreditMemoState;
use rust_decimal::Decimal;
use serde_json::json;

/// Which way a credit note is settled, before Sage's outstanding amounts are known
/// (step one of the decision, [`settlement_rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementRule {
    /// Money went back through the gateway: refund the whole credit note.
    Refund,
    /// Money paid up front offline went back: refund from the method's account when Sage
    /// shows the order's invoices settled, else allocate against what is outstanding.
    RefundWhenSettled,
    /// No money moved: allocate against the order's invoices.
    Allocate,
    /// The refund is pending at the gateway: wait for it.
    Wait,
    /// Nothing moves (a canceled credit memo).
    Nothing(&'static str),
}

/// How a posted credit note is settled (step two, [`credit_note_settlement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Money went back to the customer: a `CUSTOMER_REFUND` of the whole credit note,
    /// allocated to it ([`crate::map_refund`]).
    Refund,
    /// No money moved (or Sage shows the invoice unpaid): allocate the credit note against
    /// the order's invoices, oldest first, for what Sage says is outstanding on each
    /// ([`map_credit_allocation`]). `amounts[i]` goes to the `i`-th invoice given (zero:
    /// none); `left_on_account` is the part of the credit note nothing was outstanding to
    /// take, which stays open in Sage on the customer's account.
    Allocate {
        /// Per invoice, in the order given.
        amounts: Vec<Decimal>,
        /// What stays on the customer's account.
        left_on_account: Decimal,
    },
    /// The credit memo is pending at the gateway (state open): nothing is posted yet; the
    /// refund is posted when the credit memo arrives again as refunded.
    Waiting,
    /// Nothing to post; the credit note stays open in Sage as credit on the customer's
    /// account. `reason` is a stable code from [`reasons`].
    Nothing {
        /// Why nothing is posted.
        reason: &'static str,
    },
}

/// Step one: the rule for a credit memo in `state` of an order paid by a method of
/// `timing` ([`crate::MerchantSettings::method_timing`]).
///
/// - Canceled: nothing moves (`not_refunded`).
/// - Paid later (purchase order, company credit): no money came in, so none goes back;
///   the credit reduces what is owed: [`SettlementRule::Allocate`], whatever the state.
/// - Online (a gateway): refunded is [`SettlementRule::Refund`]; open means the refund is
///   still pending at the gateway: [`SettlementRule::Wait`].
/// - Paid up front offline (bank transfer, cheque): Magento's "Refund Offline" puts the
///   credit memo in state refunded: [`SettlementRule::RefundWhenSettled`]; open waits.
pub fn settlement_rule(state: CreditMemoState, timing: MethodTiming) -> SettlementRule {
    match (state, timing) {
        (CreditMemoState::Canceled, _) => SettlementRule::Nothing(reasons::NOT_REFUNDED),
        (_, MethodTiming::PaidLater) => SettlementRule::Allocate,
        (CreditMemoState::Refunded, MethodTiming::Online) => SettlementRule::Refund,
        (CreditMemoState::Refunded, MethodTiming::PrepaidOffline) => {
            SettlementRule::RefundWhenSettled
        }
        (CreditMemoState::Open, _) => SettlementRule::Wait,
    }
}

/// Step two: the settlement of a credit note of `credit_note_total` under `rule`, given
/// what Sage says is outstanding on each of the order's posted invoices, oldest first
/// (empty: no invoice of the order is in Sage).
///
/// A refund when money went back through the gateway, or when it went back by transfer
/// or cheque and Sage shows nothing outstanding (the invoice was settled, or there is no
/// invoice to reduce). Otherwise an allocation, oldest invoice first, each up to its
/// outstanding amount ([`allocate_oldest_first`]); with nothing outstanding anywhere it
/// is `Nothing { "no_parent_invoice" }` (no invoice in Sage) or
/// `Nothing { "invoice_settled" }`.
pub fn credit_note_settlement(
    rule: SettlementRule,
    credit_note_total: Decimal,
    outstanding: &[Decimal],
) -> Settlement {
    match rule {
        SettlementRule::Nothing(reason) => Settlement::Nothing { reason },
        SettlementRule::Wait => Settlement::Waiting,
        SettlementRule::Refund => Settlement::Refund,
        SettlementRule::RefundWhenSettled
            if outstanding.iter().all(|o| round2(*o) <= Decimal::ZERO) =>
        {
            Settlement::Refund
        }
        SettlementRule::RefundWhenSettled | SettlementRule::Allocate => {
            if outstanding.is_empty() {
                return Settlement::Nothing {
                    reason: reasons::NO_PARENT_INVOICE,
                };
            }
            let (amounts, left_on_account) = allocate_oldest_first(credit_note_total, outstanding);
            if amounts.iter().all(Decimal::is_zero) {
                Settlement::Nothing {
                    reason: reasons::INVOICE_SETTLED,
                }
            } else {
                Settlement::Allocate {
                    amounts,
                    left_on_account,
                }
            }
        }
    }
}

/// Rule "allocations follow Sage": spreads a credit note over invoices, oldest first, each
/// taking at most what Sage says is outstanding on it (Sage refuses more). Returns the
/// amount per invoice (same order) and what is left over, which stays on account.
pub fn allocate_oldest_first(
    credit_note_total: Decimal,
    outstanding: &[Decimal],
) -> (Vec<Decimal>, Decimal) {
    let mut left = round2(credit_note_total).max(Decimal::ZERO);
    let amounts = outstanding
        .iter()
        .map(|o| {
            let take = left.min(round2(*o)).max(Decimal::ZERO);
            left -= take;
            take
        })
        .collect();
    (amounts, left)
}

/// Maps the allocation of one credit note against several invoices to one Sage
/// `CUSTOMER_ALLOCATION`: each invoice `+amount` (zero amounts left out), the credit note
/// `-sum`, so the artefacts sum to zero. Each pair is checked as [`map_allocation`] checks
/// it (same contact and currency, no more than either document), and the sum may not
/// exceed the credit note.
pub fn map_credit_allocation(
    invoices: &[(InvoiceRef, Decimal)],
    credit_note: &CreditNoteRef,
    date: NaiveDate,
) -> Result<AllocationPlan, MappingError> {
    let mut artefacts = Vec::new();
    let mut sum = Decimal::ZERO;
    for (invoice, amount) in invoices.iter().filter(|(_, a)| !round2(*a).is_zero()) {
        let pair = map_allocation(invoice, credit_note, *amount, date)?;
        artefacts.push(
            json!({ "artefact_id": invoice.sage_id.trim(), "amount": money_json(pair.amount) }),
        );
        sum += pair.amount;
    }
    if artefacts.is_empty() {
        return Err(MappingError::invalid("amount", reasons::NOT_POSITIVE));
    }
    if sum > round2(credit_note.total) {
        return Err(MappingError::invalid(
            "credit_note.total",
            reasons::EXCEEDS_DOCUMENT_TOTAL,
        ));
    }
    artefacts
        .push(json!({ "artefact_id": credit_note.sage_id.trim(), "amount": money_json(-sum) }));
    let contact = invoices[0].0.contact_id.trim();
    Ok(AllocationPlan {
        resource: "contact_allocations",
        root: "contact_allocation",
        body: json!({
            "transaction_type_id": "CUSTOMER_ALLOCATION",
            "contact_id": contact,
            "date": date.to_string(),
            "allocated_artefacts": artefacts,
        }),
        amount: sum,
    })
}

/// The reference of a credit note that no invoice in Sage could be linked to: the credit
/// memo number with a `CM-` prefix. Magento numbers invoices and credit memos from
/// separate sequences that both start at `000000001`, so the bare number could equal an
/// invoice's reference on the same contact; Sage's search (and a bookkeeper) would then
/// confuse the two.
pub fn unlinked_credit_note_reference(credit_memo_increment_id: &str) -> String {
    crate::rules::fit_reference(
        &format!("CM-{}", crate::text::clean_text(credit_memo_increment_id)),
        crate::rules::DOCUMENT_REFERENCE_MAX,
    )
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
    use rust_decimal_macros::dec;

    #[test]
    fn settlement_rule_table() {
        use CreditMemoState::*;
        use MethodTiming::*;
        let cases = [
            ("card refunded", Refunded, Online, SettlementRule::Refund),
            (
                "card pending at the gateway",
                Open,
                Online,
                SettlementRule::Wait,
            ),
            (
                "bank transfer refunded offline",
                Refunded,
                PrepaidOffline,
                SettlementRule::RefundWhenSettled,
            ),
            ("cheque pending", Open, PrepaidOffline, SettlementRule::Wait),
            (
                "purchase order refunded offline",
                Refunded,
                PaidLater,
                SettlementRule::Allocate,
            ),
            (
                "purchase order open",
                Open,
                PaidLater,
                SettlementRule::Allocate,
            ),
            (
                "canceled",
                Canceled,
                Online,
                SettlementRule::Nothing(reasons::NOT_REFUNDED),
            ),
            (
                "canceled purchase order",
                Canceled,
                PaidLater,
                SettlementRule::Nothing(reasons::NOT_REFUNDED),
            ),
        ];
        for (name, state, timing, want) in cases {
            assert_eq!(settlement_rule(state, timing), want, "{name}");
        }
    }

    #[test]
    fn settlement_table() {
        let alloc = |amounts: Vec<Decimal>, left: Decimal| Settlement::Allocate {
            amounts,
            left_on_account: left,
        };
        let cases: Vec<(&str, SettlementRule, Decimal, Vec<Decimal>, Settlement)> = vec![
            (
                "card refund",
                SettlementRule::Refund,
                dec!(24),
                vec![],
                Settlement::Refund,
            ),
            (
                "bank transfer, invoice settled in Sage",
                SettlementRule::RefundWhenSettled,
                dec!(24),
                vec![dec!(0)],
                Settlement::Refund,
            ),
            (
                "bank transfer, nothing in Sage to reduce",
                SettlementRule::RefundWhenSettled,
                dec!(24),
                vec![],
                Settlement::Refund,
            ),
            (
                "bank transfer, invoice still unpaid in Sage",
                SettlementRule::RefundWhenSettled,
                dec!(24),
                vec![dec!(120)],
                alloc(vec![dec!(24)], dec!(0)),
            ),
            (
                "purchase order, two invoices, oldest first",
                SettlementRule::Allocate,
                dec!(90),
                vec![dec!(60), dec!(50)],
                // 60 from the first, the remaining 30 from the second.
                alloc(vec![dec!(60), dec!(30)], dec!(0)),
            ),
            (
                "larger than what is outstanding: the excess stays on account",
                SettlementRule::Allocate,
                dec!(100),
                vec![dec!(72)],
                // 100 - 72 = 28 left on account.
                alloc(vec![dec!(72)], dec!(28)),
            ),
            (
                "first invoice already settled",
                SettlementRule::Allocate,
                dec!(10),
                vec![dec!(0), dec!(40)],
                alloc(vec![dec!(0), dec!(10)], dec!(0)),
            ),
            (
                "no invoice in Sage",
                SettlementRule::Allocate,
                dec!(10),
                vec![],
                Settlement::Nothing {
                    reason: reasons::NO_PARENT_INVOICE,
                },
            ),
            (
                "every invoice settled",
                SettlementRule::Allocate,
                dec!(10),
                vec![dec!(0)],
                Settlement::Nothing {
                    reason: reasons::INVOICE_SETTLED,
                },
            ),
            (
                "pending",
                SettlementRule::Wait,
                dec!(10),
                vec![dec!(10)],
                Settlement::Waiting,
            ),
            (
                "canceled",
                SettlementRule::Nothing(reasons::NOT_REFUNDED),
                dec!(10),
                vec![dec!(10)],
                Settlement::Nothing {
                    reason: reasons::NOT_REFUNDED,
                },
            ),
        ];
        for (name, rule, total, outstanding, want) in cases {
            assert_eq!(
                credit_note_settlement(rule, total, &outstanding),
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

    fn doc(id: &str, total: Decimal) -> InvoiceRef {
        InvoiceRef {
            sage_id: id.into(),
            contact_id: "C1".into(),
            currency: "GBP".into(),
            exchange_rate: Decimal::ONE,
            total,
        }
    }

    #[test]
    fn one_allocation_spans_the_invoices_and_sums_to_zero() {
        let date = NaiveDate::from_ymd_opt(2026, 6, 3).unwrap();
        let plan = map_credit_allocation(
            &[
                (doc("I1", dec!(60)), dec!(60)),
                (doc("I0", dec!(10)), dec!(0)),
                (doc("I2", dec!(50)), dec!(30)),
            ],
            &doc("CN", dec!(90)),
            date,
        )
        .unwrap();
        assert_eq!(plan.amount, dec!(90));
        assert_eq!(
            plan.body["allocated_artefacts"],
            json!([
                {"artefact_id": "I1", "amount": "60.00"},
                {"artefact_id": "I2", "amount": "30.00"},
                {"artefact_id": "CN", "amount": "-90.00"},
            ])
        );
        // More than the credit note in all: refused.
        let e = map_credit_allocation(
            &[
                (doc("I1", dec!(60)), dec!(60)),
                (doc("I2", dec!(50)), dec!(40)),
            ],
            &doc("CN", dec!(90)),
            date,
        )
        .unwrap_err();
        assert_eq!(e.reason(), reasons::EXCEEDS_DOCUMENT_TOTAL);
        // Nothing to allocate: refused.
        assert!(map_credit_allocation(
            &[(doc("I1", dec!(60)), dec!(0))],
            &doc("CN", dec!(9)),
            date
        )
        .is_err());
    }

    #[test]
    fn unlinked_reference_cannot_equal_an_invoice_number() {
        // Credit memo 000000001 and invoice 000000001 exist in the same store.
        assert_eq!(unlinked_credit_note_reference("000000001"), "CM-000000001");
        assert_ne!(unlinked_credit_note_reference("000000001"), "000000001");
        assert!(
            unlinked_credit_note_reference(&"9".repeat(40))
                .chars()
                .count()
                <= 25
        );
    }
}
