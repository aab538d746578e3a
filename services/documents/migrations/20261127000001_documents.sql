-- Magento document ↔ Sage document cross-reference: the second line of defence against
-- duplicates (after Sage's idempotency ids) and what the payments service asks about.
CREATE TABLE documents (
    merchant_id    TEXT NOT NULL,
    document_key   TEXT NOT NULL,
    -- Magento entity id, so a credit memo's invoice_id finds its invoice.
    entity_id      BIGINT NOT NULL,
    resource       TEXT NOT NULL,
    sage_id        TEXT NOT NULL,
    contact_id     TEXT NOT NULL,
    reference      TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total          NUMERIC(20, 4) NOT NULL,
    exchange_rate  NUMERIC(20, 10) NOT NULL,
    document_date  DATE NOT NULL,
    event_id       UUID NOT NULL,
    synced_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, document_key)
);
CREATE INDEX documents_by_entity ON documents (merchant_id, resource, entity_id);

-- Documents deliberately not posted (skip reason) so status views can say why.
CREATE TABLE skipped_documents (
    merchant_id    TEXT NOT NULL,
    document_key   TEXT NOT NULL,
    event_id       UUID NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    skipped_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, document_key)
);
