-- SOP `createTicket` steps used to write `ticket_requests`, rows nobody could read. They now
-- open tickets; the rows written before become tickets of the built-in `general` type,
-- status `new`, channel `sop`, their priority mapped (urgent 1, high 2, normal 3, low 4),
-- their idempotency key kept as the ticket's source key (so a step run again does not open
-- a second one), each with its `opened` history entry. Then the table goes.

INSERT INTO tickets (tenant_id, id, type_key, subject, status, category, priority, impact, customer_id, channel,
                     fields, assignee, created_by, created_at, updated_at, source_key)
SELECT tenant_id, id, 'general', title, 'new', 'open',
       CASE priority WHEN 'urgent' THEN 1 WHEN 'high' THEN 2 WHEN 'low' THEN 4 ELSE 3 END,
       'medium', customer_id, 'sop', '{}', NULL, 'sop:' || COALESCE(sop_id, ''), created_at, created_at,
       idempotency_key
FROM ticket_requests;

INSERT INTO ticket_entries (tenant_id, id, ticket_id, kind, author, visibility, body, detail, created_at)
SELECT tenant_id, id, id, 'opened', 'sop:' || COALESCE(sop_id, ''), 'internal', NULL,
       '{"migrated": "ticket_requests"}', created_at
FROM ticket_requests;

DROP TABLE ticket_requests;
