-- SLA policies chosen by the customer (a tier: a tag, a stage, an attribute): the names of
-- the policies whose customer condition held for the ticket's customer, as a JSON array,
-- read when the ticket opened and again whenever the policies are saved. A policy with a
-- customer condition applies to a ticket only if its name is here.
ALTER TABLE tickets ADD COLUMN sla_customer TEXT NOT NULL DEFAULT '[]';
