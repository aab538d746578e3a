-- The merchant portal: single-use sign-in links the operator hands a merchant, and the browser
-- sessions they open. Tokens are stored as SHA-256 only.
CREATE TABLE portal_links (
    token_hash   TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);

CREATE TABLE portal_sessions (
    session_hash  TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(merchant_id) ON DELETE CASCADE,
    -- Every form carries it; a POST without it is refused.
    csrf_token    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);

-- Where the browser goes after Sage's consent page (the portal), when the flow started there.
ALTER TABLE oauth_states ADD COLUMN return_to TEXT;
