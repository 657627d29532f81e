-- Customer data protection (docs/data-protection.md): each tenant's keys, wrapped by a master
-- key, and channel identities kept as a blind index (`external_id`) beside the sealed value.
-- From this migration on `customer_contacts.value` holds the blind index of the normalised
-- phone / e-mail / e-mail local part, and `customers.phones` / `emails` hold sealed lists
-- (`[]` when empty); rows written before it are sealed by the host at start.

CREATE TABLE tenant_keys (
    tenant_id   TEXT NOT NULL,
    -- data (AES-256-GCM, versions 1, 2, …) | index (HMAC-SHA-256, version 1)
    purpose     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    -- the name of the master key in `[keys.master]` that wraps it
    master_id   TEXT NOT NULL,
    wrapped     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, purpose, version)
);

ALTER TABLE customer_identities ADD COLUMN external_id_sealed TEXT;

-- Data-subject requests: an erased customer keeps its row (bills and ledger postings still
-- name it, now a pseudonym) with every personal value gone; the erasure's certificate
-- says what was removed, when and by whom, and holds no personal value itself.
ALTER TABLE customers ADD COLUMN erased_at BIGINT;

CREATE TABLE erasures (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    -- JSON: the profiles erased and, per table, the rows deleted and redacted
    certificate TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX erasures_by_customer ON erasures (tenant_id, customer_id);

-- The consent ledger: one row per grant or withdrawal, newest wins per (customer, purpose,
-- channel). Purposes: `marketing` (per channel, `*` for every channel) and `profiling`.
CREATE TABLE consents (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    granted     BIGINT NOT NULL,
    -- where it came from: `api`, `import`, `opt_out`, `wecom`, …
    source      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX consents_by_customer ON consents (tenant_id, customer_id, purpose, channel, at);
