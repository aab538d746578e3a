-- Reference data read from each merchant's Sage business (tax rates, ledger accounts, bank
-- accounts, payment methods), cached so the portal's settings pages fill their choices without
-- asking Sage on every view. Refreshed on the merchant's request ("Refresh from Sage").
CREATE TABLE sage_reference (
    merchant_id   TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('tax_rates', 'ledger_accounts', 'bank_accounts', 'payment_methods')),
    sage_id       TEXT NOT NULL,
    label         TEXT NOT NULL,
    -- Facts a choice is checked against: a tax rate's percentage, a bank account's currency.
    detail        TEXT NOT NULL DEFAULT '',
    refreshed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, kind, sage_id)
);
