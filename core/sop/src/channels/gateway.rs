//! The tenant's own gateway (`contact.webhook_url`): each message is POSTed as a JSON
//! envelope, signed as the Standard Webhooks specification says when the tenant set
//! `contact.webhook_secret_env` (and with the older `X-Shoal-Signature`).

use serde_json::json;

use super::{Address, Channel, Ctx, Handed, Outgoing, Sending};
use crate::{outbound, transport::Answer};
use hmac::{Hmac, Mac};
use shoal_base::storage::time;

/// The `webhook` channel (and the fallback of messaging channels without an adapter).
#[derive(Debug)]
pub struct Gateway {
    url: String,
    secret: Option<Vec<u8>>,
}

impl Gateway {
    pub fn new(url: &str, secret: Option<Vec<u8>>) -> Gateway {
        Gateway {
            url: url.to_owned(),
            secret,
        }
    }
}

/// POSTs a JSON `body` to the operator's `url` (configuration: parsed, not judged) with the
/// message's idempotency headers, signed with `secret` when there is one; answers the
/// receiver's answer, or how the call failed.
pub(crate) async fn post_signed(
    ctx: Ctx<'_>,
    url: &str,
    m: &Outgoing<'_>,
    secret: Option<&[u8]>,
    body: String,
) -> Result<Answer, Handed> {
    let target = outbound::parse(url).map_err(|e| Handed::Refused(format!("{url}: {e}")))?;
    let addr = super::resolve(ctx, &target).await?;
    let mut headers = vec![
        ("idempotency-key", m.idempotency_key.to_owned()),
        ("x-shoal-delivery", m.id.to_owned()),
    ];
    if let Some(secret) = secret {
        let unix = time::now().timestamp();
        headers.push(("webhook-id", m.id.to_owned()));
        headers.push(("webhook-timestamp", unix.to_string()));
        headers.push((
            "webhook-signature",
            standard_signature(secret, m.id, unix, body.as_bytes()),
        ));
        headers.push((
            "x-shoal-signature",
            signature(secret, unix, body.as_bytes()),
        ));
    }
    ctx.transport
        .post_json(&target, addr, &headers, body, ctx.timeout)
        .await
        .map_err(|e| Handed::Retry(format!("{url}: {e}")))
}

impl Channel for Gateway {
    fn name(&self) -> &'static str {
        "webhook"
    }
    fn address(&self) -> Address {
        Address::None
    }
    fn send<'a>(&'a self, ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            let body = json!({
                "id": m.id,
                "tenant": m.tenant,
                "customerId": m.customer_id,
                "channel": m.channel,
                "purpose": m.purpose,
                "sopId": m.sop_id,
                "enrolmentId": m.enrolment_id,
                "campaignId": m.campaign_id,
                "createdAt": m.created_at.to_rfc3339(),
                "body": m.text,
            })
            .to_string();
            match post_signed(ctx, &self.url, m, self.secret.as_deref(), body).await {
                Err(not_taken) => not_taken,
                Ok(answer) if answer.status.is_success() => Handed::Taken { reference: None },
                // the gateway speaks for every channel behind it: any failure may pass
                Ok(answer) => Handed::Retry(format!("{} answered {}", self.url, answer.status)),
            }
        })
    }
}

/// The Standard Webhooks `webhook-signature` value: `v1,` and the base64 of HMAC-SHA256,
/// keyed by `secret` (for a `whsec_` secret, the base64 decoding of what follows the
/// prefix), over `<id>.<unix>.<body>`.
pub fn standard_signature(secret: &[u8], id: &str, unix: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// How far a signed request's `webhook-timestamp` may be from now, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Checks a signed request someone sent us (Standard Webhooks): the timestamp within
/// [`TOLERANCE_SECONDS`] of `now_unix`, and any `v1,` signature of the space-separated
/// `signatures` matching, compared in constant time. The error says which check failed.
pub fn verify_standard(
    secret: &[u8],
    (id, timestamp, signatures): (&str, &str, &str),
    body: &[u8],
    now_unix: i64,
) -> Result<(), String> {
    if id.is_empty() {
        return Err("webhook-id is missing".into());
    }
    let unix: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not a number of seconds".to_owned())?;
    if now_unix.abs_diff(unix) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err("webhook-timestamp is too far from now".into());
    }
    let expected = standard_signature(secret, id, unix, body);
    let same = |a: &[u8], b: &[u8]| {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    };
    if signatures
        .split(' ')
        .any(|s| same(s.as_bytes(), expected.as_bytes()))
    {
        Ok(())
    } else {
        Err("webhook-signature does not match".into())
    }
}

/// The `X-Shoal-Signature` value for a body (kept beside the Standard Webhooks headers for
/// receivers written against it).
pub fn signature(secret: &[u8], unix: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix},v1={hex}")
}
