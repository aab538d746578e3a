-- Credit and re-issue (decision 0026): at most one per document. The plan (both bodies) is
-- recorded before the first Sage call, so every retry, replica or replayed form carries out
-- the same plan; each step's Sage id is committed with its journal outcome.
CREATE TABLE reissues (
    merchant_id            TEXT NOT NULL,
    document_key           TEXT NOT NULL,
    generation             INTEGER NOT NULL,
    state                  TEXT NOT NULL CHECK (state IN ('planned', 'done')),
    currency               TEXT NOT NULL,
    contact_id             TEXT NOT NULL,
    -- The invoice as it was in Sage before (the cross-reference row moves to the new one).
    original_sage_id       TEXT NOT NULL,
    original_number        TEXT,
    original_reference     TEXT NOT NULL,
    original_total         NUMERIC(20, 4) NOT NULL,
    original_exchange_rate NUMERIC(20, 10) NOT NULL,
    original_date          DATE NOT NULL,
    credit_body            JSONB NOT NULL,
    credit_date            DATE NOT NULL,
    credit_reference       TEXT NOT NULL,
    invoice_body           JSONB NOT NULL,
    invoice_date           DATE NOT NULL,
    new_reference          TEXT NOT NULL,
    new_total              NUMERIC(20, 4) NOT NULL,
    new_exchange_rate      NUMERIC(20, 10) NOT NULL,
    -- The new invoice's lines as "tax rate · ledger account", for the portal.
    lines                  JSONB NOT NULL DEFAULT '[]',
    -- The Magento invoice's event in the stream (what the new invoice was mapped from).
    stream_sequence        BIGINT NOT NULL,
    credit_sage_id         TEXT,
    credit_number          TEXT,
    allocation_sage_id     TEXT,
    new_sage_id            TEXT,
    new_number             TEXT,
    planned_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at                TIMESTAMPTZ,
    PRIMARY KEY (merchant_id, document_key)
);
-- The lines of each posted document as "tax rate · ledger account" (what a tax or account
-- mapping decided), so the portal can tell whether the saved settings would now post it
-- differently. NULL for documents posted before this column.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS posted_lines JSONB;
