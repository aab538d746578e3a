-- How each posted credit note was settled: a customer refund allocated to it, an allocation
-- against its invoice, or nothing (with the reason). The decision and its amount are written
-- before the Sage call ('planned'), so a redelivery after an in-doubt call re-sends the same
-- request with the same idempotency id instead of deciding again from an outstanding amount
-- the first call may already have changed.
CREATE TABLE credit_note_settlements (
    merchant_id    TEXT NOT NULL,
    -- The credit memo's document key.
    document_key   TEXT NOT NULL,
    -- The event that posted the credit note; its idempotency ids are used for the settlement.
    event_id       UUID NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('refund', 'allocation', 'none')),
    amount         NUMERIC(20, 4) NOT NULL,
    -- Why nothing was posted (kind 'none'): no_parent_invoice, invoice_settled, not_refunded.
    reason         TEXT,
    state          TEXT NOT NULL CHECK (state IN ('planned', 'done')),
    -- Sage contact_payment (refund) or contact_allocation id.
    sage_id        TEXT,
    decided_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at     TIMESTAMPTZ,
    PRIMARY KEY (merchant_id, document_key)
);
