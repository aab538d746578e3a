-- Merchants known to this Ledger installation, their ingest credentials and accounting settings.
CREATE TABLE merchants (
    merchant_id      TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    -- SHA-256 of the ingest key; the key itself is shown once, when the merchant is added.
    ingest_key_hash  TEXT NOT NULL UNIQUE,
    -- Accounting settings (see docs/settings.md); Sage ids are filled in when Sage is connected.
    settings         JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- OAuth `state` values handed to Sage's consent page, single use, short lived.
CREATE TABLE oauth_states (
    state        TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
