-- Repairs that settle: spare-part stock (counted per SKU of the library: on hand and
-- reserved, units of 10⁻⁴), a ticket's service and part lines, and the bill it produced.

CREATE TABLE spare_part_stock (
    tenant_id      TEXT NOT NULL,
    sku            TEXT NOT NULL,
    on_hand_units  BIGINT NOT NULL,
    reserved_units BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sku)
);

CREATE TABLE ticket_lines (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    -- service | part
    kind        TEXT NOT NULL,
    code        TEXT NOT NULL,
    -- a decimal, as written
    quantity    TEXT NOT NULL,
    note        TEXT,
    -- whether stock was reserved for it (a part whose SKU is counted)
    reserved    BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ticket_lines_by_ticket ON ticket_lines (tenant_id, ticket_id, created_at);

ALTER TABLE tickets ADD COLUMN bill_id TEXT;

-- one sale bill per ticket, whatever hosts race to bill it
CREATE UNIQUE INDEX bills_one_per_ticket ON bills (tenant_id, reference)
    WHERE kind = 'sale' AND substr(reference, 1, 7) = 'ticket:';
