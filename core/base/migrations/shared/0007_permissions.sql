-- Permissions: departments (a tree per tenant), roles (definitions as JSON, see
-- access/role.rs), the roles of each user, and request ids on the audit log.

CREATE TABLE departments (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    parent_id   TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE roles (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    definition  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE user_roles (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role_id     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role_id)
);
CREATE INDEX user_roles_by_role ON user_roles (tenant_id, role_id);

CREATE INDEX users_by_department ON users (tenant_id, department, id);

ALTER TABLE audit_log ADD COLUMN request_id TEXT;
CREATE INDEX audit_log_by_time ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_by_actor ON audit_log (tenant_id, actor_id, at, id);
