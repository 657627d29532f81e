-- Notifications: the change feed (internal events in commit order, with a cursor), the
-- integrators' webhook endpoints with their deliveries and attempt log, and the staff's
-- notification rules and inbox.

-- Internal events are relayed to the feed once; rows written before this migration were
-- consumed already and are not replayed.
ALTER TABLE internal_events ADD COLUMN fed_at BIGINT;
UPDATE internal_events SET fed_at = at;
CREATE INDEX internal_events_unfed ON internal_events (tenant_id, at, id) WHERE fed_at IS NULL;

-- One counter per tenant; the relay holds its row while it appends, so sequence numbers
-- become visible in order.
CREATE TABLE feed_heads (
    tenant_id      TEXT NOT NULL PRIMARY KEY,
    seq            BIGINT NOT NULL,
    -- entries up to this sequence number were pruned: a cursor before it has a gap
    pruned_through BIGINT NOT NULL
);

CREATE TABLE change_feed (
    tenant_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    -- the internal event's id
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    payload     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    fed_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX change_feed_by_time ON change_feed (tenant_id, fed_at);

CREATE TABLE hook_endpoints (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    url              TEXT NOT NULL,
    description      TEXT NOT NULL,
    -- JSON array of event types; empty: every type
    event_types      TEXT NOT NULL,
    -- a rule on the customer, or NULL
    filter           TEXT,
    enabled          BIGINT NOT NULL,
    disabled_reason  TEXT,
    secret           TEXT NOT NULL,
    -- the secret before the last rotation, still signed with until previous_until
    previous_secret  TEXT,
    previous_until   BIGINT,
    -- the first failure since the last success
    failing_since    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE hook_messages (
    tenant_id       TEXT NOT NULL,
    -- the `webhook-id`: the same on every attempt and redelivery
    id              TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- pending | delivered | failed
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX hook_messages_once ON hook_messages (tenant_id, endpoint_id, seq);
CREATE INDEX hook_messages_due ON hook_messages (tenant_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX hook_messages_by_endpoint ON hook_messages (tenant_id, endpoint_id, created_at, id);

CREATE TABLE hook_attempts (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    url           TEXT NOT NULL,
    -- the HTTP status, NULL when none came back
    status_code   BIGINT,
    -- the first bytes of the response body
    response_head TEXT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX hook_attempts_by_message ON hook_attempts (tenant_id, message_id, at);
CREATE INDEX hook_attempts_by_endpoint ON hook_attempts (tenant_id, endpoint_id, at, id);

CREATE TABLE notification_rules (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    event_types    TEXT NOT NULL,
    condition      TEXT,
    -- JSON: {"owner": bool, "assignee": bool, "users": [...], "roles": [...], "departments": [...]}
    recipients     TEXT NOT NULL,
    -- JSON array: inbox, wecom_robot, dingtalk_robot, email
    channels       TEXT NOT NULL,
    -- the group robot's webhook URL (wecom_robot / dingtalk_robot) and DingTalk's signing secret
    robot_url      TEXT,
    robot_secret   TEXT,
    -- low-priority notifications are batched per user into one message every N minutes
    digest_minutes BIGINT NOT NULL,
    -- high | normal | low (low ones are batched into digests)
    priority       TEXT NOT NULL,
    enabled        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE notifications (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    title       TEXT NOT NULL,
    priority    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX notifications_once ON notifications (tenant_id, user_id, rule_id, seq);
CREATE INDEX notifications_by_user ON notifications (tenant_id, user_id, created_at, id);

-- A notification's trip on one external channel (robot, email): due now, at the end of the
-- recipient's quiet hours, or with the next digest.
CREATE TABLE notification_sends (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    -- pending | sent | failed
    status          TEXT NOT NULL,
    digest          BIGINT NOT NULL,
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT,
    sent_at         BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX notification_sends_once ON notification_sends (tenant_id, notification_id, channel);
CREATE INDEX notification_sends_due ON notification_sends (tenant_id, due_at) WHERE status = 'pending';

-- Per-user notification settings: quiet hours in the user's time zone and the id robots
-- mention.
CREATE TABLE notification_prefs (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    quiet_start TEXT,
    quiet_end   TEXT,
    time_zone   TEXT,
    -- the user's id on WeCom / DingTalk, @-mentioned in robot messages
    im_user_id  TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- Users following a customer: notification rules can name them (`watchers`).
CREATE TABLE customer_watchers (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, user_id)
);
