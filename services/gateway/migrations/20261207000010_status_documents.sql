-- The latest sync state of every document a merchant's store sent, kept by the same projector
-- that fills status_feed (one row per merchant, entity and document key — an invoice and its
-- payment share the invoice's key —, replaced only by a later change). The portal's sync history reads it: newest change first, filtered by state, type
-- and date, searched by Magento number, paged by position (keyset, so a deep page costs what
-- the first one does).
CREATE TABLE status_documents (
    merchant_id     TEXT NOT NULL,
    document_key    TEXT NOT NULL,
    -- The status_feed position of the change shown: the merchant's order of changes.
    position        BIGINT NOT NULL,
    entity          TEXT NOT NULL,
    -- The Magento number: the document key's last part (`000000123` of `invoice:1:000000123`).
    magento_number  TEXT NOT NULL,
    state           TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    sage_number     TEXT,
    sage_reference  TEXT,
    sage_id         TEXT,
    skip_reason     TEXT,
    error_code      TEXT,
    detail          TEXT,
    message         TEXT,
    PRIMARY KEY (merchant_id, entity, document_key)
);
CREATE UNIQUE INDEX status_documents_by_position ON status_documents (merchant_id, position);
CREATE INDEX status_documents_by_state ON status_documents (merchant_id, state, position);
CREATE INDEX status_documents_by_entity ON status_documents (merchant_id, entity, position);
CREATE INDEX status_documents_by_time ON status_documents (merchant_id, at);
CREATE INDEX status_documents_by_number
    ON status_documents (merchant_id, magento_number text_pattern_ops);

-- What the feed already holds.
INSERT INTO status_documents
    (merchant_id, document_key, position, entity, magento_number, state, at, sage_number,
     sage_reference, sage_id, skip_reason, error_code, detail, message)
SELECT DISTINCT ON (merchant_id, payload->>'entity', payload->>'document_key')
    merchant_id, payload->>'document_key', position, payload->>'entity',
    regexp_replace(payload->>'document_key', '^.*:', ''), payload->>'state',
    (payload->>'at')::timestamptz, payload->>'sage_number', payload->>'sage_reference',
    payload->>'sage_id', payload->>'skip_reason', payload->>'error_code', payload->>'detail',
    payload->>'message'
FROM status_feed
WHERE payload ? 'document_key' AND payload ? 'entity' AND payload ? 'state' AND payload ? 'at'
ORDER BY merchant_id, payload->>'entity', payload->>'document_key', position DESC;
