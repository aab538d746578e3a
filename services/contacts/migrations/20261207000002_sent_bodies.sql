-- What the service last wrote to each Sage contact and item: the fingerprint (SHA-256 of the
-- canonical JSON) of the body Sage accepted, keyed by the Sage resource and id. A save whose
-- body has the same fingerprint changes nothing in Sage and is not sent again.
CREATE TABLE sent_bodies (
    merchant_id TEXT NOT NULL,
    resource    TEXT NOT NULL,
    sage_id     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, resource, sage_id)
);
