//! What the endpoints do before they answer: check the signature, decrypt, store the
//! delivery once. Nothing here touches customers (the worker does, see [`crate::intake`]),
//! so an answer never waits on the work: WeCom gives a callback five seconds.

use sha2::{Digest, Sha256};

use crate::{inbox, setup::Connectors, wecom_crypto::CryptoError, wecom_xml};
use shoal_base::storage::Db;
use shoal_crm::tenancy::Tenant;

/// Why a delivery is not taken; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// No such tenant, app or webhook (404: the caller learns nothing of the set-up).
    #[error("no such connector")]
    NotFound,
    /// The signature does not verify (401), or the message is not for this app.
    #[error("{0}")]
    Unauthenticated(String),
    /// The body cannot be read (400).
    #[error("{0}")]
    BadRequest(String),
    /// Storing failed (500).
    #[error(transparent)]
    Storage(#[from] shoal_base::error::Error),
}

/// The query of a WeCom callback (`msg_signature`, `timestamp`, `nonce`, and for the URL
/// check `echostr`), URL-decoded.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct WecomQuery {
    #[serde(default)]
    pub msg_signature: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub echostr: Option<String>,
}

fn crypto_error(e: CryptoError) -> ReceiveError {
    match e {
        CryptoError::BadSignature | CryptoError::OtherReceiver => {
            ReceiveError::Unauthenticated(e.to_string())
        }
        other => ReceiveError::BadRequest(other.to_string()),
    }
}

/// The URL check WeCom makes when an admin saves the callback URL: the decrypted `echostr`,
/// to be answered as it is.
pub fn wecom_check(tenant: &Tenant, app: &str, q: &WecomQuery) -> Result<String, ReceiveError> {
    let connectors = Connectors::of(tenant);
    let crypt = connectors.wecom.get(app).ok_or(ReceiveError::NotFound)?;
    let echostr = q
        .echostr
        .as_deref()
        .ok_or_else(|| ReceiveError::BadRequest("echostr is missing".into()))?;
    // base64 holds no spaces: a `+` some proxy left unescaped was decoded as one
    let echostr = echostr.replace(' ', "+");
    let plain = crypt
        .open(&q.msg_signature, &q.timestamp, &q.nonce, &echostr)
        .map_err(crypto_error)?;
    // WeCom's echostr is a short random number; anything else is an encrypted message
    // replayed to have it decrypted (its signature covers the same fields)
    if plain.is_empty() || plain.len() > 64 || !plain.iter().all(u8::is_ascii_alphanumeric) {
        return Err(ReceiveError::BadRequest(
            "echostr is not a URL check's".into(),
        ));
    }
    String::from_utf8(plain).map_err(|_| ReceiveError::BadRequest("echostr is not UTF-8".into()))
}

/// A WeCom event delivery (the POSTed `<xml><Encrypt>…</Encrypt></xml>`): verified,
/// decrypted, checked to be readable and stored. `true` when it was new.
pub async fn wecom_event(
    db: &Db,
    tenant: &Tenant,
    app: &str,
    q: &WecomQuery,
    body: &[u8],
) -> Result<bool, ReceiveError> {
    let connectors = Connectors::of(tenant);
    let crypt = connectors.wecom.get(app).ok_or(ReceiveError::NotFound)?;
    let outer = wecom_xml::parse(body).map_err(ReceiveError::BadRequest)?;
    let encrypted = outer.get("Encrypt");
    if encrypted.is_empty() {
        return Err(ReceiveError::BadRequest(
            "the body has no <Encrypt> element".into(),
        ));
    }
    let plain = crypt
        .open(&q.msg_signature, &q.timestamp, &q.nonce, encrypted)
        .map_err(crypto_error)?;
    // refused now rather than failed later: the sender learns that it sent nonsense
    wecom_xml::parse(&plain).map_err(|e| ReceiveError::BadRequest(format!("the message: {e}")))?;
    let xml = String::from_utf8(plain)
        .map_err(|_| ReceiveError::BadRequest("the message is not UTF-8".into()))?;
    // WeCom sends a message again when no answer came in time: the same bytes, the same key
    let key = hex(&Sha256::digest(xml.as_bytes()));
    Ok(inbox::receive(db, &tenant.id, &format!("wecom:{app}"), &key, &xml).await?)
}

/// Rows one webhook delivery may hold (a list of objects): each delivery is one transaction.
pub const MAX_DOCUMENTS: usize = 1000;

/// A signed JSON webhook: checked as Standard Webhooks says (`webhook-id`,
/// `webhook-timestamp` within five minutes of `now_unix`, `webhook-signature`), its body
/// JSON, stored by its `webhook-id`. `true` when it was new.
pub async fn hook(
    db: &Db,
    tenant: &Tenant,
    name: &str,
    signed: (&str, &str, &str),
    body: &[u8],
    now_unix: i64,
) -> Result<bool, ReceiveError> {
    let connectors = Connectors::of(tenant);
    let hook = connectors.hooks.get(name).ok_or(ReceiveError::NotFound)?;
    shoal_sop::channels::gateway::verify_standard(&hook.secret, signed, body, now_unix)
        .map_err(ReceiveError::Unauthenticated)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| ReceiveError::BadRequest("the body is not UTF-8".into()))?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) if items.len() > MAX_DOCUMENTS => {
            return Err(ReceiveError::BadRequest(format!(
                "at most {MAX_DOCUMENTS} documents per delivery (this one holds {})",
                items.len()
            )));
        }
        Ok(serde_json::Value::Object(_) | serde_json::Value::Array(_)) => {}
        Ok(_) => {
            return Err(ReceiveError::BadRequest(
                "the body must be a JSON object or a list of objects".into(),
            ));
        }
        Err(e) => {
            return Err(ReceiveError::BadRequest(format!(
                "the body is not JSON: {e}"
            )));
        }
    }
    Ok(inbox::receive(db, &tenant.id, &format!("hook:{name}"), signed.0, text).await?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
