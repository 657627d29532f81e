-- The audit log stays append-only, with two exceptions that keep who did what to which
-- entity and when: an erasure or the retention job may replace an entry's details with a
-- tombstone (`{"redacted": …}`), and re-encryption may seal sealed details again under a
-- new data key.
DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (
    (NEW.changes LIKE '{"redacted":%' OR (OLD.changes LIKE 's1:%' AND NEW.changes LIKE 's1:%'))
    AND NEW.tenant_id = OLD.tenant_id AND NEW.id = OLD.id AND NEW.at = OLD.at
    AND NEW.actor_id = OLD.actor_id AND NEW.action = OLD.action
    AND NEW.entity_type = OLD.entity_type AND NEW.entity_id = OLD.entity_id
    AND NEW.request_id IS OLD.request_id
)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
