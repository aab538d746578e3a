-- One Sage contact per (merchant, customer, currency): Sage locks a contact's currency after
-- its first invoice. The row is created (and locked) before the contact exists in Sage, so
-- two documents for the same new customer yield one contact.
CREATE TABLE contacts (
    merchant_id      TEXT NOT NULL,
    customer_key     TEXT NOT NULL,
    currency         TEXT NOT NULL,
    sage_contact_id  TEXT,
    reference        TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, customer_key, currency)
);
