-- The part of each email before `@`, as a contact of its own kind: fuzzy duplicate
-- detection looks customers up by it ("same email local part").
INSERT INTO customer_contacts (tenant_id, customer_id, kind, value)
SELECT tenant_id, customer_id, 'email_local', split_part(value, '@', 1)
FROM customer_contacts WHERE kind = 'email' AND strpos(value, '@') > 1;
