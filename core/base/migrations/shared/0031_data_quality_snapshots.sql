-- The data-quality trend (docs/analytics.md#data-quality-over-time): one snapshot of the
-- tenant-wide report per local day, taken by the host (the first host to take it wins).
CREATE TABLE data_quality_snapshots (
    tenant_id          TEXT NOT NULL,
    -- the tenant's local date, YYYY-MM-DD
    day                TEXT NOT NULL,
    taken_at           BIGINT NOT NULL,
    customers          BIGINT NOT NULL,
    missing_phone      BIGINT NOT NULL,
    missing_email      BIGINT NOT NULL,
    missing_contact    BIGINT NOT NULL,
    missing_owner      BIGINT NOT NULL,
    invalid            BIGINT NOT NULL,
    duplicates_pending BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);
