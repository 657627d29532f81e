-- Stage and RFM history (docs/analytics.md#stages-over-time): every lifecycle stage a
-- customer entered and when, written by the database itself whenever a row of `customers`
-- is inserted or its stage changes (no writer can forget it); and every RFM cell change,
-- written by the RFM recompute in its transaction (a NULL cell: no longer scored).
CREATE TABLE stage_history (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    stage       TEXT NOT NULL
);
CREATE INDEX stage_history_by_customer ON stage_history (tenant_id, customer_id, at);

CREATE TABLE rfm_history (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    cell        TEXT
);
CREATE INDEX rfm_history_by_customer ON rfm_history (tenant_id, customer_id, at);

-- what is known at upgrade: each customer in its stage since it was created, each scored
-- customer in its cell since it was scored
INSERT INTO stage_history (tenant_id, customer_id, at, stage)
    SELECT tenant_id, id, created_at, lifecycle_stage FROM customers;
INSERT INTO rfm_history (tenant_id, customer_id, at, cell)
    SELECT tenant_id, customer_id, computed_at, cell FROM customer_rfm;

CREATE TRIGGER customers_stage_inserted AFTER INSERT ON customers
BEGIN
    INSERT INTO stage_history (tenant_id, customer_id, at, stage)
    VALUES (NEW.tenant_id, NEW.id, NEW.created_at, NEW.lifecycle_stage);
END;
CREATE TRIGGER customers_stage_changed AFTER UPDATE OF lifecycle_stage ON customers
WHEN NEW.lifecycle_stage <> OLD.lifecycle_stage
BEGIN
    INSERT INTO stage_history (tenant_id, customer_id, at, stage)
    VALUES (NEW.tenant_id, NEW.id, MAX(NEW.updated_at, OLD.updated_at), NEW.lifecycle_stage);
END;
