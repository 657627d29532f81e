-- Staff sign-in (docs/console.md): argon2id password hashes (PHC strings) with the
-- lockout state, and sessions held by browsers as a random token of which only the
-- SHA-256 is kept here.
CREATE TABLE user_passwords (
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    hash         TEXT NOT NULL,
    set_at       BIGINT NOT NULL,
    set_by       TEXT NOT NULL,
    -- failed sign-ins in a row; the fifth locks the user until locked_until
    failures     BIGINT NOT NULL,
    locked_until BIGINT,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE sessions (
    tenant_id    TEXT NOT NULL,
    -- SHA-256 (hex) of the token in the cookie
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    user_agent   TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
