-- Contacts follow the customer.
-- `email`: the party's e-mail when the contact was made or adopted, so a guest's contact and
-- the registered customer's of the same e-mail (and currency) are found as one.
-- `company`, `tax_number`: the company and VAT number (as entered) last sent to Sage for the
-- contact; a document bringing different ones updates the contact.
-- `adopted_from`: the key whose Sage contact this row took over (a guest who registered).
ALTER TABLE contacts
    ADD COLUMN email        TEXT,
    ADD COLUMN company      TEXT,
    ADD COLUMN tax_number   TEXT,
    ADD COLUMN adopted_from TEXT;
UPDATE contacts SET email = substr(customer_key, 7) WHERE customer_key LIKE 'guest:%';
CREATE INDEX contacts_by_email ON contacts (merchant_id, currency, email);
