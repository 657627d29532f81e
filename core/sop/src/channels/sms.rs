//! SMS through a generic HTTP gateway (`[tenants.<id>.channels.sms]`): one signed JSON POST
//! per message —
//!
//! ```json
//! {"id": "<message id>", "to": "+8613800000001", "templateId": "SMS_0001",
//!  "signName": "【Shoal】", "params": {"content": "<the text>"}}
//! ```
//!
//! with `idempotency-key` and the Standard Webhooks headers (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`). A 2xx is taken (a JSON answer's `messageId`
//! kept as the reference), 408 / 429 / 5xx are retried, any other status refused.

use serde_json::{Value, json};

use super::{Address, Channel, Ctx, Handed, Outgoing, Sending, by_status, gateway::post_signed};
use shoal_base::config::SmsConfig;

/// The `sms` adapter.
#[derive(Debug)]
pub struct Sms {
    url: String,
    secret: Vec<u8>,
    template_id: String,
    sign_name: Option<String>,
}

impl Sms {
    /// Reads the section (its secret from the environment); an error names the key.
    pub fn from_config(c: &SmsConfig) -> Result<Sms, (String, String)> {
        crate::outbound::parse(&c.url).map_err(|e| ("url".to_owned(), e))?;
        let secret = std::env::var(&c.secret_env).unwrap_or_default();
        if secret.len() < 16 {
            return Err((
                "secret_env".into(),
                format!(
                    "environment variable {} must hold a key of at least 16 characters",
                    c.secret_env
                ),
            ));
        }
        if c.template_id.trim().is_empty() {
            return Err(("template_id".into(), "must not be empty".into()));
        }
        Ok(Sms {
            url: c.url.clone(),
            secret: secret.into_bytes(),
            template_id: c.template_id.clone(),
            sign_name: c.sign_name.clone(),
        })
    }
}

impl Channel for Sms {
    fn name(&self) -> &'static str {
        "sms"
    }
    fn address(&self) -> Address {
        Address::Phone
    }
    fn send<'a>(&'a self, ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            let Some(to) = m.address else {
                return Handed::Refused("the customer has no phone number".into());
            };
            let body = json!({
                "id": m.id,
                "to": to,
                "templateId": self.template_id,
                "signName": self.sign_name,
                "params": { "content": m.text },
            })
            .to_string();
            match post_signed(ctx, &self.url, m, Some(&self.secret), body).await {
                Err(not_taken) => not_taken,
                Ok(answer) => by_status(answer.status, "the SMS gateway").unwrap_or_else(|| {
                    let reference =
                        serde_json::from_slice::<Value>(&answer.head)
                            .ok()
                            .and_then(|v| {
                                v.get("messageId")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            });
                    Handed::Taken { reference }
                }),
            }
        })
    }
}

/// A delivery report the gateway POSTs back (`/channels/<tenant>/sms/receipts`), signed
/// like the messages (Standard Webhooks, the same key):
/// `{"messageId": "<the message's id>", "status": "delivered" | "failed", "error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

impl Sms {
    /// Checks a delivery report's signature ([`super::gateway::verify_standard`]) and
    /// reads it.
    pub fn receipt(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Receipt, String> {
        super::gateway::verify_standard(&self.secret, (id, timestamp, signatures), body, now_unix)?;
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(message_id), Some(status)) = (text("messageId"), text("status")) else {
            return Err("a report names `messageId` and `status`".into());
        };
        if !["delivered", "failed"].contains(&status.as_str()) {
            return Err(format!("`{status}` is not `delivered` or `failed`"));
        }
        Ok(Receipt {
            message_id,
            status,
            error: text("error"),
        })
    }
}
