-- Tags: manual and rule-based (dynamic), groups, per-customer application with history,
-- and an outbox of internal events (tag changes) for the SOP engine.

CREATE TABLE tag_groups (
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- 1: a customer holds at most one tag of the group (e.g. a value tier)
    exclusive   BIGINT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE tags (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    rule         TEXT,
    rule_version BIGINT NOT NULL,
    group_name   TEXT,
    color        TEXT,
    description  TEXT NOT NULL,
    template     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX tags_by_name ON tags (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE customer_tags (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    tag_id      TEXT NOT NULL,
    source      TEXT NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, tag_id)
);
CREATE INDEX customer_tags_by_tag ON customer_tags (tenant_id, tag_id, customer_id);

CREATE TABLE tag_history (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    tag_id       TEXT NOT NULL,
    change       TEXT NOT NULL,
    source       TEXT NOT NULL,
    rule_version BIGINT,
    actor_id     TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tag_history_by_customer ON tag_history (tenant_id, customer_id, at);

CREATE TABLE internal_events (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    payload     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX internal_events_by_time ON internal_events (tenant_id, at, id);
