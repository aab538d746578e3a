-- B2C consolidation: the first invoice event seen for each guest while consolidation is on.
-- Only that event is a "first-time" order (its redeliveries too); every later order of the
-- guest is a repeat and gets a contact of its own. `first_is_new` is false when the guest
-- already had a contact of their own when first recorded (consolidation switched on later).
CREATE TABLE guest_orders (
    merchant_id     TEXT NOT NULL,
    customer_key    TEXT NOT NULL,
    first_event_id  TEXT NOT NULL,
    first_is_new    BOOLEAN NOT NULL,
    first_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, customer_key)
);

-- Magento product ↔ Sage product or service. Later saves of the product update this item;
-- `source_updated_at` keeps an older save redelivered late from overwriting a newer one.
CREATE TABLE products (
    merchant_id        TEXT NOT NULL,
    product_key        TEXT NOT NULL,
    -- `products` or `services`.
    resource           TEXT NOT NULL,
    sage_id            TEXT NOT NULL,
    item_code          TEXT NOT NULL,
    source_updated_at  TIMESTAMPTZ,
    event_id           UUID NOT NULL,
    synced_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, product_key)
);

-- Products deliberately not synced (sync off, composite type, stale save), with the reason.
CREATE TABLE skipped_products (
    merchant_id  TEXT NOT NULL,
    product_key  TEXT NOT NULL,
    event_id     UUID NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    skipped_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, product_key)
);
