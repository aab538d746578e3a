-- Pairing a Magento store with a merchant, and the keys stores receive by pairing.
--
-- The store asks for a pairing and shows its single-use code; the merchant enters the code on
-- the hosted side (claim); the store's next poll, authenticated by its poll secret, receives a
-- new key once (delivery). Codes, poll secrets and key secrets are stored as SHA-256 only.
CREATE TABLE pairings (
    pairing_id        TEXT PRIMARY KEY,
    code_hash         TEXT NOT NULL UNIQUE,
    poll_secret_hash  TEXT NOT NULL,
    store_url         TEXT,
    store_name        TEXT,
    module_version    TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The code can be claimed until then.
    expires_at        TIMESTAMPTZ NOT NULL,
    merchant_id       TEXT REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    claimed_at        TIMESTAMPTZ,
    delivered_at      TIMESTAMPTZ,
    key_id            TEXT
);

-- A store's credential: NATS user = key_id, NATS password and HTTPS bearer = the secret.
CREATE TABLE merchant_keys (
    key_id        TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL UNIQUE,
    pairing_id    TEXT REFERENCES pairings(pairing_id),
    label         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    -- 'store' (the module's Disconnect) or 'operator' (admin API / ledgerctl).
    revoked_by    TEXT
);
CREATE INDEX merchant_keys_by_merchant ON merchant_keys (merchant_id);
