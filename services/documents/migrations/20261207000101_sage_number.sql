-- Sage's own number of each posted document (SI-12, SCN-3), shown to the merchant next to the id.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS sage_number TEXT;
