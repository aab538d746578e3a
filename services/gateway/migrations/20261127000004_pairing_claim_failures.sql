-- Wrong pairing codes entered per merchant, to slow down guessing other stores' codes.
CREATE TABLE pairing_claim_failures (
    merchant_id  TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX pairing_claim_failures_recent ON pairing_claim_failures (merchant_id, at);
