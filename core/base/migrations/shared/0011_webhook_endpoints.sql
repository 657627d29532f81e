-- Step webhooks sign with a secret of their own endpoint (never the tenant's gateway secret):
-- one row per tenant and URL, made when an SOP naming the URL is saved, readable and
-- rotatable by the tenant's administrators.
CREATE TABLE webhook_endpoints (
    tenant_id  TEXT NOT NULL,
    url        TEXT NOT NULL,
    -- `whsec_` and the base64 of 32 random bytes
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT,
    PRIMARY KEY (tenant_id, url)
);
