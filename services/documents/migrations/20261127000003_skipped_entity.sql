-- The Magento entity id of a held document, so a credit memo of a held invoice (which names
-- its invoice by entity id) is held too, with the reason, instead of waiting for an invoice
-- that will not come until someone releases it.
ALTER TABLE skipped_documents ADD COLUMN entity_id BIGINT;
CREATE INDEX skipped_documents_by_entity ON skipped_documents (merchant_id, entity_id);
