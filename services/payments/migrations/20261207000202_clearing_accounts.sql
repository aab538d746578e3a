-- The Sage clearing account of each payment gateway (Magento method) and currency, created in
-- Sage the first time a receipt needs it. Card money lands here gross; the gateway's payout
-- (net of fees) is then matched in Sage as a transfer from this account.
CREATE TABLE IF NOT EXISTS clearing_accounts (
    merchant_id  TEXT NOT NULL,
    method       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    sage_id      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, method, currency)
);
