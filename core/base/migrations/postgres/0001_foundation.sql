-- Foundation: tenants, users, customers (with contacts and identities), events, audit log.
-- Conventions: every table leads with tenant_id; times are UTC microseconds; money is
-- amount_units = amount × 10^4.

CREATE TABLE tenants (
    tenant_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE users (
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    email       TEXT,
    department  TEXT,
    role        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE customers (
    tenant_id       TEXT NOT NULL REFERENCES tenants (tenant_id),
    id              TEXT COLLATE "C" NOT NULL,
    display_name    TEXT NOT NULL,
    name_key        TEXT COLLATE "C" NOT NULL,
    phones          TEXT NOT NULL,
    emails          TEXT NOT NULL,
    attributes      JSONB NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    owner_id        TEXT,
    source_channel  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    version         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customers_by_created ON customers (tenant_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_updated ON customers (tenant_id, updated_at, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_name ON customers (tenant_id, name_key, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_stage ON customers (tenant_id, lifecycle_stage, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_channel ON customers (tenant_id, source_channel, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX customers_by_owner ON customers (tenant_id, owner_id, created_at, id) WHERE deleted_at IS NULL;

-- Normalised phones (E.164) and emails (lowercase), for exact look-up by the search filter.
CREATE TABLE customer_contacts (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX customer_contacts_by_value ON customer_contacts (tenant_id, kind, value);
CREATE INDEX customer_contacts_by_customer ON customer_contacts (tenant_id, customer_id);

CREATE TABLE customer_identities (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE UNIQUE INDEX customer_identities_unique ON customer_identities (tenant_id, channel, external_id) WHERE deleted_at IS NULL;
CREATE INDEX customer_identities_by_customer ON customer_identities (tenant_id, customer_id);

CREATE TABLE events (
    tenant_id       TEXT NOT NULL,
    id              TEXT COLLATE "C" NOT NULL,
    customer_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    name            TEXT,
    occurred_at     BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    channel         TEXT,
    amount_units    BIGINT,
    currency        TEXT,
    payload         TEXT NOT NULL,
    idempotency_key TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_timeline ON events (tenant_id, customer_id, occurred_at, id);
CREATE INDEX events_by_type ON events (tenant_id, customer_id, event_type, occurred_at);

CREATE TABLE audit_log (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    changes     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_by_entity ON audit_log (tenant_id, entity_type, entity_id, at);

-- PostgreSQL only: attribute equality filters use jsonb containment on this index.
CREATE INDEX customers_attributes ON customers USING GIN (attributes jsonb_path_ops);
