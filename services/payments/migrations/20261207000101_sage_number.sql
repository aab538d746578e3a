-- Sage's own name of each posted receipt (its displayed_as), shown to the merchant next to the id.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS sage_number TEXT;
