-- Sealed attributes (docs/data-protection.md): the attributes a tenant lists under
-- `contact.sealed_attributes` leave `customers.attributes` (read by rules, filters and
-- reports in SQL) for one sealed JSON object per customer, NULL when it has none.
ALTER TABLE customers ADD COLUMN attributes_sealed TEXT;

-- The attribute keys each tenant sealed when a host last started: a host that finds the
-- configured list changed moves values between the two columns at start.
CREATE TABLE sealed_attribute_keys (
    tenant_id   TEXT NOT NULL,
    attribute   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, attribute)
);

-- Re-encryption as a background job (`reencryptCustomerData`, docs/data-protection.md):
-- requested → waiting (a new data key version exists; hosts are loading it) → running →
-- done | failed. One host holds a job at a time through a lease it renews every batch.
CREATE TABLE reencryptions (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    state        TEXT NOT NULL,
    -- the data key version values are sealed under, once a worker made it
    version      BIGINT,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    -- not taken up before (hosts load a new key version within one refresh)
    not_before   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    resealed     BIGINT NOT NULL,
    remaining    BIGINT,
    -- the table.column of the last batch
    step         TEXT,
    error        TEXT,
    lease_owner  TEXT,
    lease_until  BIGINT,
    PRIMARY KEY (tenant_id, id)
);
