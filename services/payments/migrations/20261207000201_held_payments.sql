-- A payment held for a reason that clears by itself (its invoice held by policy and later
-- released, a bank account mapped later) keeps the stream sequence of its event, so the service
-- can hand the same event to its handler again when the invoice lands.
ALTER TABLE skipped_payments ADD COLUMN IF NOT EXISTS stream_sequence BIGINT;
