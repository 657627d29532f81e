-- What inbound connectors received (WeCom callbacks, signed JSON webhooks), kept until
-- processed: the endpoint checks the signature, stores the delivery and answers at once;
-- a supervised worker per tenant turns it into customers and events. A delivery is stored
-- once per (source, key) — its identity at the sender — so replays and retries are no-ops.
-- `next_at` is when a worker may take it (a worker leases a row by moving it ahead).

CREATE TABLE inbound_deliveries (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    source       TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source, dedupe_key)
);
CREATE INDEX inbound_deliveries_due ON inbound_deliveries (tenant_id, next_at) WHERE status = 'pending';
