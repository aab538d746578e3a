-- One row per merchant: the Sage business it is connected to and its OAuth tokens.
-- Tokens are AES-256-GCM ciphertexts (format byte || 96-bit nonce || ciphertext+tag), never
-- plaintext, so a database dump or backup does not hand out access to merchants' books.
CREATE TABLE IF NOT EXISTS sage_connections (
    merchant_id         TEXT        PRIMARY KEY,
    business_id         TEXT        NOT NULL,
    access_token_enc    BYTEA       NOT NULL,
    refresh_token_enc   BYTEA       NOT NULL,
    access_expires_at   TIMESTAMPTZ NOT NULL,
    refresh_expires_at  TIMESTAMPTZ NOT NULL,
    scope               TEXT,
    requested_by_id     TEXT,
    -- 'active', or 'revoked' once Sage refused the refresh token (the merchant must reconnect).
    status              TEXT        NOT NULL DEFAULT 'active'
                                    CHECK (status IN ('active', 'revoked')),
    -- Bumped on every write of new tokens, so replicas and operators can see rotations.
    generation          BIGINT      NOT NULL DEFAULT 1,
    connected_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_refreshed_at   TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The keep-alive job looks for active connections whose refresh token is getting old.
CREATE INDEX IF NOT EXISTS sage_connections_keepalive
    ON sage_connections (status, refresh_expires_at);
