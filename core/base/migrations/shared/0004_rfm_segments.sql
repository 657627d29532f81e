-- RFM scores per customer, lifecycle stages set by hand (kept out of derivation), and saved
-- segments with their current members (to emit entered/left events).

CREATE TABLE customer_rfm (
    tenant_id      TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    recency_days   BIGINT NOT NULL,
    frequency      BIGINT NOT NULL,
    monetary_units BIGINT NOT NULL,
    r              BIGINT NOT NULL,
    f              BIGINT NOT NULL,
    m              BIGINT NOT NULL,
    cell           TEXT NOT NULL,
    computed_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX customer_rfm_by_cell ON customer_rfm (tenant_id, cell, customer_id);

ALTER TABLE customers ADD COLUMN stage_manual BIGINT NOT NULL DEFAULT 0;

CREATE TABLE segments (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX segments_by_name ON segments (tenant_id, name);

CREATE TABLE segment_members (
    tenant_id   TEXT NOT NULL,
    segment_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    since       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id)
);
