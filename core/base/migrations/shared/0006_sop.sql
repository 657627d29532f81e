-- SOPs: versioned definitions, enrolments and their step history; the outbox of messages
-- (and webhook calls) they send; tasks, ticket requests, follow-up records and opt-outs.

-- Internal events are consumed once by the SOP dispatcher.
ALTER TABLE internal_events ADD COLUMN dispatched_at BIGINT;
CREATE INDEX internal_events_undispatched ON internal_events (tenant_id, at, id) WHERE dispatched_at IS NULL;

CREATE TABLE sops (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    -- draft | active | paused | archived
    status       TEXT NOT NULL,
    version      BIGINT NOT NULL,
    -- `module/template` it was instantiated from, if any
    template     TEXT,
    activated_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX sops_by_name ON sops (tenant_id, name) WHERE status <> 'archived';

CREATE TABLE sop_versions (
    tenant_id  TEXT NOT NULL,
    sop_id     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sop_id, version)
);

CREATE TABLE sop_enrolments (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    sop_id        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    customer_id   TEXT NOT NULL,
    -- active | paused | parked | completed | exited | cancelled
    status        TEXT NOT NULL,
    -- what enrolled the customer; unique per SOP so a trigger enrols once
    trigger_key   TEXT NOT NULL,
    trigger_info  TEXT NOT NULL,
    step_index    BIGINT NOT NULL,
    step_started_at BIGINT NOT NULL,
    next_run_at   BIGINT,
    -- the event spec a `wait until event` step waits for (`order`, `custom:trial_open`)
    waiting_for   TEXT,
    attempt       BIGINT NOT NULL,
    last_error    TEXT,
    exit_reason   TEXT,
    enrolled_at   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX sop_enrolments_by_trigger ON sop_enrolments (tenant_id, sop_id, trigger_key);
-- at most one running enrolment per SOP and customer
CREATE UNIQUE INDEX sop_enrolments_running ON sop_enrolments (tenant_id, sop_id, customer_id)
    WHERE status IN ('active', 'paused', 'parked');
CREATE INDEX sop_enrolments_due ON sop_enrolments (tenant_id, next_run_at) WHERE status = 'active';
CREATE INDEX sop_enrolments_by_customer ON sop_enrolments (tenant_id, customer_id);
CREATE INDEX sop_enrolments_by_sop ON sop_enrolments (tenant_id, sop_id, enrolled_at, id);

CREATE TABLE sop_step_runs (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    enrolment_id  TEXT NOT NULL,
    step_id       TEXT NOT NULL,
    step_index    BIGINT NOT NULL,
    attempt       BIGINT NOT NULL,
    -- done | skipped | deferred | dropped | failed | exited | completed | waiting
    outcome       TEXT NOT NULL,
    detail        TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sop_step_runs_by_enrolment ON sop_step_runs (tenant_id, enrolment_id, at);

CREATE TABLE outbox_messages (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    -- log | webhook | wecom | sms | … ; `http` for a step's own webhook call
    channel         TEXT NOT NULL,
    -- marketing | service
    purpose         TEXT NOT NULL,
    body            TEXT NOT NULL,
    target          TEXT,
    -- pending | sent | failed
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    sop_id          TEXT,
    enrolment_id    TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX outbox_by_key ON outbox_messages (tenant_id, idempotency_key);
CREATE INDEX outbox_pending ON outbox_messages (tenant_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_by_customer ON outbox_messages (tenant_id, customer_id, channel, created_at);
CREATE INDEX outbox_by_time ON outbox_messages (tenant_id, created_at, id);

CREATE TABLE tasks (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    idempotency_key TEXT,
    customer_id     TEXT NOT NULL,
    title           TEXT NOT NULL,
    -- a user id, or `role:<name>`
    assignee        TEXT NOT NULL,
    due_at          BIGINT,
    -- open | done | cancelled
    status          TEXT NOT NULL,
    sop_id          TEXT,
    enrolment_id    TEXT,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX tasks_by_key ON tasks (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_by_assignee ON tasks (tenant_id, assignee, status, created_at, id);
CREATE INDEX tasks_by_customer ON tasks (tenant_id, customer_id, created_at, id);
CREATE INDEX tasks_by_time ON tasks (tenant_id, created_at, id);

CREATE TABLE ticket_requests (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    title           TEXT NOT NULL,
    priority        TEXT NOT NULL,
    sop_id          TEXT,
    enrolment_id    TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX ticket_requests_by_key ON ticket_requests (tenant_id, idempotency_key);

CREATE TABLE follow_ups (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    -- call | visit | chat | note | handover
    kind        TEXT NOT NULL,
    note        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX follow_ups_by_customer ON follow_ups (tenant_id, customer_id, at);
CREATE INDEX follow_ups_by_time ON follow_ups (tenant_id, at, id);

CREATE TABLE contact_opt_outs (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    -- a channel, or `*` for every automated message
    channel     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, channel)
);

CREATE TABLE sop_cursors (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    position  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
