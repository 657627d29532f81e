-- Where an imported customer came from (issue 23's decision: an import writes one audit
-- entry per batch, not one per customer). `import_entry` is the id of the batch's audit
-- entry (entity `import_job`, naming every customer it created with its row), and
-- `import_row` the customer's row in the file; a customer's history reads its
-- "created by import J, row N" line from them. Neither is indexed: they are read only with
-- the customer's own row.
ALTER TABLE customers ADD COLUMN import_entry TEXT;
ALTER TABLE customers ADD COLUMN import_row BIGINT;
