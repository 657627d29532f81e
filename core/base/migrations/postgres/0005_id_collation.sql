-- customers.id used COLLATE "C" while the columns referring to it (events.customer_id, …)
-- use the database default: joins on them resolved to "C" and could not use the indexes of
-- the referring tables. Keyset pagination does not need "C" (ORDER BY and the row comparison
-- use the column's own collation), so ids use the default collation like everything else.
ALTER TABLE customers ALTER COLUMN id TYPE TEXT COLLATE "default";
ALTER TABLE events ALTER COLUMN id TYPE TEXT COLLATE "default";
