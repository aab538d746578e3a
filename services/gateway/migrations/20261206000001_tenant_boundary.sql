-- A Sage connection flow is bound to what started it: the merchant's portal session, or the
-- binding an operator tool received from /connect/sage/start. The callback must present the
-- same; a state without a binding is refused.
ALTER TABLE oauth_states ADD COLUMN binding_hash TEXT;
ALTER TABLE oauth_states ADD COLUMN flow TEXT NOT NULL DEFAULT 'operator';
-- Who asked for a pairing, so that one address cannot keep every code slot taken.
ALTER TABLE pairings ADD COLUMN requester_ip TEXT;
CREATE INDEX pairings_open_by_ip ON pairings (requester_ip, expires_at) WHERE merchant_id IS NULL;
-- The status feed as each merchant reads it. The gateway copies LEDGER_STATUS here (one
-- durable consumer) and numbers each merchant's changes: the feed's cursor is that number, so
-- it tells a merchant nothing of other merchants' volume, and a read is one indexed query.
-- Changes already in the stream when this table came in keep their stream sequence as their
-- number (cursors the stores hold stay valid); later ones count on from each merchant's last.
CREATE TABLE status_feed (
    merchant_id  TEXT NOT NULL,
    position     BIGINT NOT NULL,
    stream_seq   BIGINT NOT NULL UNIQUE,
    payload      JSONB NOT NULL,
    PRIMARY KEY (merchant_id, position)
);
CREATE TABLE status_positions (
    merchant_id  TEXT PRIMARY KEY,
    last         BIGINT NOT NULL
);
CREATE TABLE status_feed_boundary (
    id        BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    last_seq  BIGINT NOT NULL
);
