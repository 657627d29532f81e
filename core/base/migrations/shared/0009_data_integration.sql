-- Customer data integration: import jobs (with their checkpoint and rejected rows), duplicate
-- suggestions, and merges (with everything needed to undo them).

-- A customer absorbed by a merge is soft-deleted and points at the profile that absorbed it.
ALTER TABLE customers ADD COLUMN merged_into TEXT;

CREATE TABLE import_jobs (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    -- customers | events
    kind          TEXT NOT NULL,
    -- the file name (CLI) or `graphql`
    source        TEXT NOT NULL,
    -- SHA-256 of the file, so a resume reads the same file
    fingerprint   TEXT NOT NULL,
    mapping       TEXT NOT NULL,
    -- running | completed | failed
    status        TEXT NOT NULL,
    dry_run       BIGINT NOT NULL,
    -- the last source row whose batch committed (resume starts after it)
    checkpoint_row BIGINT NOT NULL,
    rows_read     BIGINT NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL,
    merged        BIGINT NOT NULL,
    suggested     BIGINT NOT NULL,
    duplicates    BIGINT NOT NULL,
    rejected      BIGINT NOT NULL,
    actor_id      TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    error         TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX import_jobs_by_time ON import_jobs (tenant_id, started_at, id);

-- Rejected rows, for the API and the quality report (the CLI also writes an error file).
CREATE TABLE import_errors (
    tenant_id   TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    row_number  BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    column_name TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, job_id, row_number, seq)
);

-- Possible duplicates, never merged without a person deciding. customer_a < customer_b.
CREATE TABLE merge_suggestions (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    customer_a  TEXT NOT NULL,
    customer_b  TEXT NOT NULL,
    -- 0–100
    score       BIGINT NOT NULL,
    -- JSON array of {code, detail}
    reasons     TEXT NOT NULL,
    -- pending | merged | dismissed
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    decided_by  TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX merge_suggestions_pair ON merge_suggestions (tenant_id, customer_a, customer_b);
CREATE INDEX merge_suggestions_pending ON merge_suggestions (tenant_id, status, score, id);
CREATE INDEX merge_suggestions_by_b ON merge_suggestions (tenant_id, customer_b);

-- Every merge, with the two profiles as they were and every row it moved, so that
-- `unmergeCustomers` can restore both.
CREATE TABLE customer_merges (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    survivor_id      TEXT NOT NULL,
    absorbed_id      TEXT NOT NULL,
    -- 1: the absorbed profile was a stored customer; 0: an incoming (imported) row
    absorbed_stored  BIGINT NOT NULL,
    -- manual | suggestion | import
    origin           TEXT NOT NULL,
    -- what matched, e.g. `phone +8613800138000`
    reason           TEXT NOT NULL,
    rule             TEXT NOT NULL,
    survivor_before  TEXT NOT NULL,
    absorbed_before  TEXT NOT NULL,
    survivor_after   TEXT NOT NULL,
    conflicts        TEXT NOT NULL,
    moved            TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    merged_at        BIGINT NOT NULL,
    undone_at        BIGINT,
    undone_by        TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_merges_by_time ON customer_merges (tenant_id, merged_at, id);
CREATE INDEX customer_merges_by_survivor ON customer_merges (tenant_id, survivor_id);
CREATE INDEX customer_merges_by_absorbed ON customer_merges (tenant_id, absorbed_id);
