-- The audit log stays append-only, with two exceptions that keep who did what to which
-- entity and when: an erasure or the retention job may replace an entry's details with a
-- tombstone (`{"redacted": …}`), and re-encryption may seal sealed details again under a
-- new data key.
CREATE FUNCTION audit_log_tombstone_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.changes LIKE '{"redacted":%' OR (OLD.changes LIKE 's1:%' AND NEW.changes LIKE 's1:%'))
       AND NEW.tenant_id = OLD.tenant_id AND NEW.id = OLD.id AND NEW.at = OLD.at
       AND NEW.actor_id = OLD.actor_id AND NEW.action = OLD.action
       AND NEW.entity_type = OLD.entity_type AND NEW.entity_id = OLD.entity_id
       AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
DROP TRIGGER audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_tombstone_only();
