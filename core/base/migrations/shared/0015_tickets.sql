-- Tickets (工单): typed work orders. A type holds its custom-field schema and workflow
-- (JSON, checked as a whole when saved); a ticket keeps its type's key, its status and that
-- status's category (what queues and SLA clocks go by), its field values (JSON) and its
-- customer; every reply, internal note and change is an entry of its history.

CREATE TABLE ticket_types (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- JSON: fields, statuses, transitions
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE tickets (
    tenant_id         TEXT NOT NULL,
    id                TEXT NOT NULL,
    type_key          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    status            TEXT NOT NULL,
    -- open | waiting_on_customer | waiting_on_third_party | resolved | closed
    category          TEXT NOT NULL,
    -- 1 (P1, most urgent) … 4
    priority          BIGINT NOT NULL,
    -- low | medium | high
    impact            TEXT NOT NULL,
    customer_id       TEXT,
    -- where it came from: api | sop | webhook | module | wecom | shop | phone | email | …
    channel           TEXT NOT NULL,
    -- JSON object: the type's custom fields
    fields            TEXT NOT NULL,
    assignee          TEXT,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    first_response_at BIGINT,
    resolved_at       BIGINT,
    closed_at         BIGINT,
    -- idempotency key of the request that opened it (an SOP step, a webhook delivery)
    source_key        TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tickets_by_time ON tickets (tenant_id, created_at, id);
CREATE INDEX tickets_by_customer ON tickets (tenant_id, customer_id, created_at, id);
CREATE INDEX tickets_by_assignee ON tickets (tenant_id, assignee, category, created_at);
CREATE UNIQUE INDEX tickets_by_source ON tickets (tenant_id, source_key);

CREATE TABLE ticket_entries (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    -- opened | reply | note | status | fields | assigned | priority
    kind        TEXT NOT NULL,
    -- who: a user id, `customer`, `sop:<id>`, …
    author      TEXT NOT NULL,
    -- public (the customer sees it) | internal
    visibility  TEXT NOT NULL,
    body        TEXT,
    -- JSON: what changed ({"from": …, "to": …}) or attachment references
    detail      TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ticket_entries_by_ticket ON ticket_entries (tenant_id, ticket_id, created_at, id);
