-- Magento invoice ↔ Sage customer receipt cross-reference. Magento moves an invoice to state
-- paid once, so one receipt per invoice: the key is the document, which makes this table the
-- second line of defence against a double receipt (after Sage's idempotency ids), even if the
-- same payment were published again under a new event id.
CREATE TABLE payments (
    merchant_id      TEXT NOT NULL,
    document_key     TEXT NOT NULL,
    event_id         UUID NOT NULL,
    -- Sage contact_payment id.
    sage_id          TEXT NOT NULL,
    -- The Sage invoice the receipt is allocated to.
    invoice_sage_id  TEXT NOT NULL,
    reference        TEXT NOT NULL,
    amount           NUMERIC(20, 4) NOT NULL,
    -- Part of the amount allocated to the invoice; the rest sits on account in Sage.
    allocated        NUMERIC(20, 4) NOT NULL,
    currency         TEXT NOT NULL,
    synced_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, document_key)
);

-- Payments deliberately not posted (net-terms methods, zero amounts) so status views can say
-- why an invoice that Magento calls paid is still open in Sage.
CREATE TABLE skipped_payments (
    merchant_id    TEXT NOT NULL,
    document_key   TEXT NOT NULL,
    event_id       UUID NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    skipped_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, document_key)
);
