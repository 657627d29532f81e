-- Campaigns (群发): one message to many customers, planned once (the frozen audience) and
-- released through the SOP outbox so that campaign and SOP messages share one contact
-- history (caps, quiet hours, opt-outs) and one set of channel adapters.

CREATE TABLE campaigns (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- log | webhook | sms | email | wecom
    channel         TEXT NOT NULL,
    -- marketing | service
    purpose         TEXT NOT NULL,
    -- draft | pending_approval | rejected | scheduled | running | completed | cancelled
    status          TEXT NOT NULL,
    -- JSON: the audience as written (segment / filter / list) and its exclusions
    audience        TEXT NOT NULL,
    -- JSON: the variants (per tag / segment, A/B split) and their templates
    content         TEXT NOT NULL,
    -- JSON: now | at | local window
    schedule        TEXT NOT NULL,
    -- defer | drop: what a frequency cap does to a recipient
    on_cap          TEXT NOT NULL,
    -- hours after sending during which an order counts as a conversion
    attribution_hours BIGINT NOT NULL,
    frozen_count    BIGINT,
    created_by      TEXT NOT NULL,
    submitted_by    TEXT,
    reviewed_by     TEXT,
    review_note     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX campaigns_by_status ON campaigns (tenant_id, status);

-- One row per customer of a campaign's frozen audience. `rank` orders the statuses so that
-- a status never moves backwards (queued 0, deferred 1, skipped / cancelled 2, sent 3,
-- failed 4, delivered 5, opened 6, clicked 7, converted 8).
CREATE TABLE campaign_recipients (
    tenant_id       TEXT NOT NULL,
    campaign_id     TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    variant         TEXT NOT NULL,
    status          TEXT NOT NULL,
    status_rank     INTEGER NOT NULL,
    reason          TEXT,
    -- when the recipient is next looked at (its local window, a deferral's end)
    due_at          BIGINT NOT NULL,
    -- the outbox message that carries it, once released
    message_id      TEXT,
    -- when a channel took it (the start of the attribution window)
    sent_at         BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, customer_id)
);
CREATE INDEX campaign_recipients_due ON campaign_recipients (tenant_id, campaign_id, due_at) WHERE status_rank < 2;
CREATE INDEX campaign_recipients_by_message ON campaign_recipients (tenant_id, message_id);

-- Outbox messages a campaign released; `sending` marks a message handed to its channel
-- (and not yet answered), so a cancel never reaches it and a restart knows.
ALTER TABLE outbox_messages ADD COLUMN campaign_id TEXT;
CREATE INDEX outbox_by_campaign ON outbox_messages (tenant_id, campaign_id, status);
-- the channel's own id for a message it took (a WeCom msgid and its sender)
ALTER TABLE outbox_messages ADD COLUMN provider_ref TEXT;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox_messages (tenant_id, next_attempt_at) WHERE status IN ('pending', 'sending');
