//! One POST of a JSON body to a tenant-supplied URL: checked (never a private or loopback
//! address unless the tenant's `contact.outbound_allow` names it), resolved once, sent to
//! the address that was checked, timed.

use std::time::{Duration, Instant};

use shoal_crm::tenancy::Tenant;
use shoal_sop::{
    contact::Policy,
    outbound::{self, NotCalled},
    transport::{Answer, Transport},
};

/// How a POST went.
#[derive(Debug)]
pub enum Posted {
    /// The receiver answered (any status).
    Answered(Answer),
    /// No answer (connection, TLS, timeout, name resolution): worth another try.
    Failed(String),
    /// The URL is not one the host calls for a tenant: final.
    Refused(String),
}

/// POSTs `body` to `url` with `headers` (besides `host`, `content-type` and `user-agent`);
/// answers how it went and how long it took.
pub async fn post_json(
    transport: &Transport,
    tenant: &Tenant,
    url: &str,
    headers: &[(&str, String)],
    body: String,
    timeout: Duration,
) -> (Posted, Duration) {
    let started = Instant::now();
    let posted = post(transport, tenant, url, headers, body, timeout).await;
    (posted, started.elapsed())
}

async fn post(
    transport: &Transport,
    tenant: &Tenant,
    url: &str,
    headers: &[(&str, String)],
    body: String,
    timeout: Duration,
) -> Posted {
    let allowed = &Policy::of(tenant).outbound_allow;
    let target = match outbound::check(url, allowed) {
        Ok(t) => t,
        Err(e) => return Posted::Refused(e),
    };
    let addr = match tokio::time::timeout(timeout, outbound::resolve(&target, Some(allowed))).await
    {
        Err(_) => return Posted::Failed(format!("{}: no DNS answer in time", target.host)),
        Ok(Err(NotCalled::Unresolved(e))) => return Posted::Failed(e),
        Ok(Err(NotCalled::Forbidden(e))) => return Posted::Refused(e),
        Ok(Ok(addr)) => addr,
    };
    match transport
        .post_json(&target, addr, headers, body, timeout)
        .await
    {
        Ok(answer) => Posted::Answered(answer),
        Err(e) => Posted::Failed(e),
    }
}
