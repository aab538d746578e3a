-- Cancel and void: a document Magento canceled or voided after it reached Sage keeps its
-- cross-reference row (so it is never posted again) with when and why Sage voided it.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS voided_at TIMESTAMPTZ;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS void_reason TEXT;
