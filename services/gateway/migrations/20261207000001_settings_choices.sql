-- What the portal's settings page offers a merchant to choose from, per kind: read from their
-- Sage business (tax rates, ledger accounts, bank accounts, payment methods) and, for the
-- payment methods their store uses, from their recent invoices in the event log. Cached so the
-- page does not ask Sage on every view; refreshed on the merchant's request ("Refresh from Sage").
CREATE TABLE settings_choices (
    merchant_id   TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('tax_rates', 'ledger_accounts', 'bank_accounts',
                                                'payment_methods', 'magento_payment_methods')),
    -- Sage's id (a Magento method code for magento_payment_methods).
    choice_id     TEXT NOT NULL,
    label         TEXT NOT NULL,
    -- Facts a choice is checked against: a tax rate's percentage, a bank account's currency.
    detail        TEXT NOT NULL DEFAULT '',
    refreshed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, kind, choice_id)
);
