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
