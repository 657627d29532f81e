-- Settlement: price libraries (versioned by effective time), regional tiers, participants,
-- bills with their lines and double-entry ledger postings. Money: *_units = amount × 10^4.

CREATE TABLE service_items (
    tenant_id        TEXT NOT NULL,
    code             TEXT NOT NULL,
    effective_from   BIGINT NOT NULL,
    effective_to     BIGINT,
    name             TEXT NOT NULL,
    category         TEXT NOT NULL,
    unit_price_units BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    labour_minutes   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code, effective_from)
);

CREATE TABLE spare_parts (
    tenant_id        TEXT NOT NULL,
    sku              TEXT NOT NULL,
    effective_from   BIGINT NOT NULL,
    effective_to     BIGINT,
    name             TEXT NOT NULL,
    cost_units       BIGINT NOT NULL,
    list_price_units BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    unit             TEXT NOT NULL,
    PRIMARY KEY (tenant_id, sku, effective_from)
);

CREATE TABLE region_tiers (
    tenant_id TEXT NOT NULL,
    region    TEXT NOT NULL,
    tier      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, region)
);

-- An adjustment per tier: a percentage (e.g. "10", "-5") or a fixed amount per line.
CREATE TABLE tier_adjustments (
    tenant_id    TEXT NOT NULL,
    tier         TEXT NOT NULL,
    percent      TEXT,
    amount_units BIGINT,
    PRIMARY KEY (tenant_id, tier)
);

CREATE TABLE participants (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    role      TEXT NOT NULL,
    parent_id TEXT,
    -- The participant's split/commission agreement, as a JSON object the module reads.
    agreement TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE bills (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    kind           TEXT NOT NULL,
    original_id    TEXT,
    reference      TEXT NOT NULL,
    customer_id    TEXT,
    region         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total_units    BIGINT NOT NULL,
    module_id      TEXT NOT NULL,
    module_version TEXT NOT NULL,
    module_sha256  TEXT NOT NULL,
    request        TEXT NOT NULL,
    params         TEXT NOT NULL,
    response       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX bills_by_created ON bills (tenant_id, created_at, id);
CREATE UNIQUE INDEX bills_one_refund ON bills (tenant_id, original_id) WHERE kind = 'refund';

CREATE TABLE bill_lines (
    tenant_id        TEXT NOT NULL,
    bill_id          TEXT NOT NULL,
    line_no          BIGINT NOT NULL,
    code             TEXT NOT NULL,
    description      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    quantity         TEXT NOT NULL,
    base_price_units BIGINT NOT NULL,
    unit_price_units BIGINT NOT NULL,
    amount_units     BIGINT NOT NULL,
    note             TEXT,
    PRIMARY KEY (tenant_id, bill_id, line_no)
);

CREATE TABLE ledger_postings (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    bill_id      TEXT NOT NULL,
    account      TEXT NOT NULL,
    amount_units BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    posted_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ledger_by_account ON ledger_postings (tenant_id, account, posted_at);
CREATE INDEX ledger_by_bill ON ledger_postings (tenant_id, bill_id);
