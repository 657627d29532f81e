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

CREATE FUNCTION bump_access_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access_versions (tenant_id, version)
        VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET version = access_versions.version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER departments_access AFTER INSERT OR UPDATE OR DELETE ON departments
    FOR EACH ROW EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER roles_access AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER user_roles_access AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH ROW EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER users_access AFTER INSERT OR DELETE OR UPDATE OF department ON users
    FOR EACH ROW EXECUTE FUNCTION bump_access_version();
