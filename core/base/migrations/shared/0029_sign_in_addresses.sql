-- Failed sign-ins per client address (docs/console.md): the per-user lockout stops guessing
-- one user's password; this stops one address trying a few passwords on many users. A
-- fixed window per (tenant, address): its start and the failures counted in it.
CREATE TABLE sign_in_addresses (
    tenant_id    TEXT NOT NULL,
    -- an IPv4 address, or an IPv6 address's /64 prefix (`2001:db8:1:2::/64`)
    address      TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);
