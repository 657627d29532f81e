-- Ticket routing: queues (teams) with a strategy and members, agents with availability,
-- capacity, skills and an optional shift calendar; a ticket's queue and required skills.
-- A ticket with a queue and no assignee, not resolved or closed, is waiting in its queue.
-- Routing rules are a ticket setting (`routing_rules`).

CREATE TABLE ticket_queues (
    tenant_id      TEXT NOT NULL,
    key            TEXT NOT NULL,
    name           TEXT NOT NULL,
    -- round_robin | least_loaded | skills
    strategy       TEXT NOT NULL,
    -- JSON array of user ids, in round-robin order
    members        TEXT NOT NULL,
    -- the member round robin assigned to last
    last_assigned  TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE ticket_agents (
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    -- online | away | off
    availability     TEXT NOT NULL,
    -- most open tickets (not resolved or closed) assigned at once
    capacity         BIGINT NOT NULL,
    -- JSON object: skill → level (1–5)
    skills           TEXT NOT NULL,
    -- JSON: a business calendar (the shift), or null for always on shift
    shift            TEXT,
    last_assigned_at BIGINT,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

ALTER TABLE tickets ADD COLUMN queue TEXT;
-- JSON object: skill → least level
ALTER TABLE tickets ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';
CREATE INDEX tickets_waiting ON tickets (tenant_id, queue, assignee, category, priority, created_at);
