-- Credit notes settled against several invoices, waiting for a pending refund, and decided
-- again after Sage refused the amount.
--   kind 'waiting': the credit memo was pending at the gateway (state open); its refund is
--     decided when the credit memo arrives again as refunded.
--   state 'redecide': Sage refused the planned amount (the outstanding amount moved); the
--     next delivery decides again from Sage's figures, under a new attempt number (so a new
--     idempotency id).
--   allocations: [{"invoice": <Sage invoice id>, "amount": "<amount>"}], oldest first.
--   left_on_account: the part of the credit note nothing was outstanding to take.
ALTER TABLE credit_note_settlements DROP CONSTRAINT IF EXISTS credit_note_settlements_kind_check;
ALTER TABLE credit_note_settlements ADD CONSTRAINT credit_note_settlements_kind_check
    CHECK (kind IN ('refund', 'allocation', 'none', 'waiting'));
ALTER TABLE credit_note_settlements DROP CONSTRAINT IF EXISTS credit_note_settlements_state_check;
ALTER TABLE credit_note_settlements ADD CONSTRAINT credit_note_settlements_state_check
    CHECK (state IN ('planned', 'done', 'redecide'));
ALTER TABLE credit_note_settlements ADD COLUMN allocations JSONB NOT NULL DEFAULT '[]';
ALTER TABLE credit_note_settlements ADD COLUMN left_on_account NUMERIC(20, 4) NOT NULL DEFAULT 0;
ALTER TABLE credit_note_settlements ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
