-- A tenant's ticket settings, each saved whole as JSON and checked when saved: `calendar`
-- (the business calendar SLA clocks run on) and `sla_policies` (first match wins).

CREATE TABLE ticket_settings (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
