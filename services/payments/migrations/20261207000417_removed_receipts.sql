-- Cancel and void: a receipt deleted from Sage because Magento canceled or voided its invoice
-- keeps its row (so the same payment is never posted again) with the time it was removed.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS removed_at TIMESTAMPTZ;
