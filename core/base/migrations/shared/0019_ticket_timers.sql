-- SLA timers that act: one row per ticket, clock (`first_response`, `resolution`) and
-- stage (`at_risk`, `breached`) a policy escalates on, due at the instant the clock gets
-- there. A timer fires once: `fired_at` is set in the transaction that runs its
-- escalation, so a host that dies mid-way leaves it due, and a second host waits on the
-- row and then finds it fired. Unfired timers are rewritten whenever the ticket changes.

CREATE TABLE ticket_timers (
    tenant_id  TEXT NOT NULL,
    ticket_id  TEXT NOT NULL,
    target     TEXT NOT NULL,
    stage      TEXT NOT NULL,
    due_at     BIGINT NOT NULL,
    fired_at   BIGINT,
    PRIMARY KEY (tenant_id, ticket_id, target, stage)
);
CREATE INDEX ticket_timers_due ON ticket_timers (tenant_id, due_at) WHERE fired_at IS NULL;

-- JSON array of user ids told of the ticket's escalations (and added by them)
ALTER TABLE tickets ADD COLUMN watchers TEXT NOT NULL DEFAULT '[]';
