-- The per-channel throttle of campaign releases, shared by every host on the database: a
-- token bucket per tenant and channel. `released_at` is the instant up to which release
-- capacity has been spent (microseconds since the epoch); a host takes the capacity that
-- accrued since (at most one second's worth) and moves it forward by what it took.

CREATE TABLE channel_throttles (
    tenant_id   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    released_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);
