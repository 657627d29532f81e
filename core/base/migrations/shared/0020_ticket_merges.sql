-- Merged tickets: the absorbed ticket points at the one it was merged into and is closed;
-- its history stays its own and reads as part of the other's. Undone by clearing the
-- pointer (the `merged` history entry keeps the status to go back to).

ALTER TABLE tickets ADD COLUMN merged_into TEXT;
CREATE INDEX tickets_by_merge ON tickets (tenant_id, merged_into);
