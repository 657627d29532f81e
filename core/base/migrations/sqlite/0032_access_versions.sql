-- The access version (docs/permissions.md#caching): one counter per tenant, bumped by the
-- database itself in the transaction of any change to what a caller's permissions are made
-- of — departments, roles, user roles, a user's department — so no writer can forget it.
-- Hosts keep each user's loaded permissions with the version they were loaded at and
-- reload when the row moved: one indexed read per request instead of three queries.
CREATE TABLE access_versions (
    tenant_id TEXT NOT NULL PRIMARY KEY,
    version   BIGINT NOT NULL
);
INSERT INTO access_versions (tenant_id, version) SELECT tenant_id, 1 FROM tenants;

CREATE TRIGGER departments_insert_access AFTER INSERT ON departments
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER departments_update_access AFTER UPDATE ON departments
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER departments_delete_access AFTER DELETE ON departments
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER roles_insert_access AFTER INSERT ON roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER roles_update_access AFTER UPDATE ON roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER roles_delete_access AFTER DELETE ON roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER user_roles_insert_access AFTER INSERT ON user_roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER user_roles_update_access AFTER UPDATE ON user_roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER user_roles_delete_access AFTER DELETE ON user_roles
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER users_insert_access AFTER INSERT ON users
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER users_update_access AFTER UPDATE OF department ON users
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
CREATE TRIGGER users_delete_access AFTER DELETE ON users
BEGIN
    INSERT INTO access_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
END;
