//! WeCom external-contact mass messages (企业微信「客户群发」), `[tenants.<id>.channels.wecom]`:
//!
//! - `GET /cgi-bin/gettoken?corpid=…&corpsecret=…` — the access token, cached until shortly
//!   before `expires_in` and fetched again when an answer says it is invalid or expired
//!   (errcode 40001, 40014, 42001);
//! - `POST /cgi-bin/externalcontact/add_msg_template` — one text to the customers of one
//!   staff member (`chat_type: single`, up to [`BATCH`] `external_userid`s), sent as that
//!   staff member, who confirms the one task in the WeCom client; a customer receives at
//!   most a few such messages a month (WeCom's quota). The outbox hands a campaign's
//!   messages with the same sender and text over together ([`Channel::send_many`]);
//! - `get_groupmsg_send_result` (by message and sender) — each customer's result (0 not
//!   sent by the staff member yet, 1 sent, 2 not a friend, 3 quota used); the task has one
//!   sender, so this answers what `get_groupmsg_task` would, and that call is not made;
//! - `cancel_groupmsg_send` — stops a message the staff member has not sent yet. None of
//!   WeCom's customer APIs recalls a message once sent.
//!
//! - `GET /cgi-bin/externalcontact/get` — a customer's details, for the inbound connector
//!   (`shoal-connectors`), through [`Wecom::get`] and the same cached token.
//!
//! Every call goes to `base_url` (configurable, for a proxy or a test server).

use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::{Request, body::Bytes};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Address, Channel, Ctx, Handed, Outgoing, Sending, SendingMany};
use crate::outbound;
use shoal_base::config::WecomConfig;

/// Customers one `add_msg_template` names at most (WeCom takes up to 10,000).
pub const BATCH: usize = 1000;

/// Largest WeCom answer read (a page of send results).
const ANSWER_BYTES: usize = 1 << 20;

/// The `wecom` adapter, with its cached access token.
#[derive(Debug)]
pub struct Wecom {
    base_url: String,
    corp_id: String,
    secret: String,
    default_sender: Option<String>,
    senders: std::collections::BTreeMap<String, String>,
    token: Mutex<Option<(String, Instant)>>,
}

/// A customer's result of one mass message (`get_groupmsg_send_result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub external_userid: String,
    pub userid: String,
    /// 0 unsent, 1 sent, 2 not a friend (any more), 3 the customer's quota is used up.
    pub status: i64,
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Wecom {
    /// Reads the section (its secret from the environment); an error names the key.
    pub fn from_config(c: &WecomConfig) -> Result<Wecom, (String, String)> {
        outbound::parse(&c.base_url).map_err(|e| ("base_url".to_owned(), e))?;
        if c.corp_id.trim().is_empty() {
            return Err(("corp_id".into(), "must not be empty".into()));
        }
        let secret = std::env::var(&c.secret_env).unwrap_or_default();
        if secret.is_empty() {
            return Err((
                "secret_env".into(),
                format!("environment variable {} is not set", c.secret_env),
            ));
        }
        Ok(Wecom {
            base_url: c.base_url.trim_end_matches('/').to_owned(),
            corp_id: c.corp_id.clone(),
            secret,
            default_sender: c.default_sender.clone(),
            senders: c.senders.clone(),
            token: Mutex::new(None),
        })
    }

    /// The WeCom userid that sends for a customer owned by `owner` (the `senders` map, the
    /// owner's own id, else `default_sender`).
    pub fn sender_for(&self, owner: Option<&str>) -> Option<String> {
        match owner {
            Some(o) => Some(self.senders.get(o).cloned().unwrap_or_else(|| o.to_owned())),
            None => self.default_sender.clone(),
        }
    }

    async fn exchange(
        &self,
        ctx: Ctx<'_>,
        method: &str,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<Value, Handed> {
        let url = format!("{}{path_and_query}", self.base_url);
        let target =
            outbound::parse(&url).map_err(|e| Handed::Refused(format!("wecom.base_url: {e}")))?;
        let addr = super::resolve(ctx, &target).await?;
        let request = Request::builder()
            .method(method)
            .uri(target.path.as_str())
            .header("host", target.host_header())
            .header("content-type", "application/json")
            .header("user-agent", "Shoal/1")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Handed::Refused(format!("bad request: {e}")))?;
        let answer = ctx
            .transport
            .call(&target, addr, request, ctx.timeout, ANSWER_BYTES)
            .await
            .map_err(|e| Handed::Retry(format!("WeCom: {e}")))?;
        if let Some(not_taken) = super::by_status(answer.status, "WeCom") {
            return Err(not_taken);
        }
        serde_json::from_slice(&answer.head)
            .map_err(|e| Handed::Retry(format!("WeCom answered something not JSON: {e}")))
    }

    /// The access token, from the cache or fetched (`refresh`: the cached one was refused).
    async fn token(&self, ctx: Ctx<'_>, refresh: bool) -> Result<String, Handed> {
        let mut cached = self.token.lock().await;
        if !refresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer = self
            .exchange(
                ctx,
                "GET",
                &format!(
                    "/cgi-bin/gettoken?corpid={}&corpsecret={}",
                    encode(&self.corp_id),
                    encode(&self.secret)
                ),
                None,
            )
            .await?;
        let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        let token = answer.get("access_token").and_then(Value::as_str);
        let (0, Some(token)) = (errcode, token) else {
            return Err(Handed::Refused(format!(
                "WeCom refused the access token: {} {}",
                errcode,
                answer.get("errmsg").and_then(Value::as_str).unwrap_or("")
            )));
        };
        let expires_in = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(7200);
        // fetched again five minutes before WeCom says it expires
        let until = Instant::now() + Duration::from_secs(expires_in.saturating_sub(300).max(1));
        *cached = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }

    /// POSTs `body` to an API `path` with the access token; a refused token is fetched again
    /// once. Answers the JSON of a successful call (errcode 0).
    pub async fn api(&self, ctx: Ctx<'_>, path: &str, body: &Value) -> Result<Value, Handed> {
        self.call(ctx, "POST", path, &[], Some(body)).await
    }

    /// GETs an API `path` with the access token and `query` (percent-encoded here), like
    /// [`Wecom::api`]: `externalcontact/get` reads a customer's details this way.
    pub async fn get(
        &self,
        ctx: Ctx<'_>,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, Handed> {
        self.call(ctx, "GET", path, query, None).await
    }

    async fn call(
        &self,
        ctx: Ctx<'_>,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Handed> {
        let extra: String = query
            .iter()
            .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
            .collect();
        let mut refresh = false;
        loop {
            let token = self.token(ctx, refresh).await?;
            let answer = self
                .exchange(
                    ctx,
                    method,
                    &format!("{path}?access_token={}{extra}", encode(&token)),
                    body.map(Value::to_string),
                )
                .await?;
            let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
            let errmsg = answer.get("errmsg").and_then(Value::as_str).unwrap_or("");
            match errcode {
                0 => return Ok(answer),
                40001 | 40014 | 42001 if !refresh => refresh = true,
                // system busy, API frequency limits
                -1 | 45009 | 45011 | 45033 => {
                    return Err(Handed::Retry(format!("WeCom {path}: {errcode} {errmsg}")));
                }
                _ => return Err(Handed::Refused(format!("WeCom {path}: {errcode} {errmsg}"))),
            }
        }
    }

    /// Each customer's result of the mass message `msgid` sent by `userid`, every page.
    pub async fn send_results(
        &self,
        ctx: Ctx<'_>,
        msgid: &str,
        userid: &str,
    ) -> Result<Vec<SendResult>, Handed> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .api(
                    ctx,
                    "/cgi-bin/externalcontact/get_groupmsg_send_result",
                    &json!({ "msgid": msgid, "userid": userid, "limit": 1000, "cursor": cursor }),
                )
                .await?;
            for r in page
                .get("send_list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(SendResult {
                    external_userid: r
                        .get("external_userid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    userid: r
                        .get("userid")
                        .and_then(Value::as_str)
                        .unwrap_or(userid)
                        .to_owned(),
                    status: r.get("status").and_then(Value::as_i64).unwrap_or(0),
                });
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && next != cursor => cursor = next.to_owned(),
                _ => return Ok(out),
            }
        }
    }

    /// Stops the mass message `msgid` where the staff member has not sent it yet.
    pub async fn cancel(&self, ctx: Ctx<'_>, msgid: &str) -> Result<(), Handed> {
        self.api(
            ctx,
            "/cgi-bin/externalcontact/cancel_groupmsg_send",
            &json!({ "msgid": msgid }),
        )
        .await
        .map(|_| ())
    }
}

impl Channel for Wecom {
    fn name(&self) -> &'static str {
        "wecom"
    }
    fn address(&self) -> Address {
        Address::Identity("wecom")
    }
    fn drops_repeats(&self) -> bool {
        false
    }
    fn send<'a>(&'a self, ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            self.send_many(ctx, std::slice::from_ref(m))
                .await
                .pop()
                .unwrap_or_else(|| Handed::Retry("no verdict".into()))
        })
    }
    fn batch(&self) -> usize {
        BATCH
    }
    /// One `add_msg_template` for the customers of one sender and text: the staff member
    /// confirms one task, not one per customer.
    fn send_many<'a>(&'a self, ctx: Ctx<'a>, ms: &'a [Outgoing<'a>]) -> SendingMany<'a> {
        Box::pin(async move {
            let mut verdicts: Vec<Option<Handed>> = vec![None; ms.len()];
            let mut to: Vec<&str> = Vec::new();
            for (i, m) in ms.iter().enumerate() {
                match m.address {
                    Some(a) => to.push(a),
                    None => {
                        verdicts[i] =
                            Some(Handed::Refused("the customer has no WeCom identity".into()))
                    }
                }
            }
            let sender = ms.first().and_then(|m| m.sender);
            let text = ms.first().map_or("", |m| m.text);
            let answer = match (sender, to.is_empty()) {
                (_, true) => None,
                (None, false) => Some(Err(Handed::Refused(
                    "nobody to send as: the customer has no owner and channels.wecom.default_sender is not set"
                        .into(),
                ))),
                (Some(sender), false) => {
                    let body = json!({
                        "chat_type": "single",
                        "external_userid": to,
                        "sender": sender,
                        "allow_select": false,
                        "text": { "content": text },
                    });
                    Some(
                        self.api(ctx, "/cgi-bin/externalcontact/add_msg_template", &body)
                            .await,
                    )
                }
            };
            let failed: Vec<String> = match &answer {
                Some(Ok(a)) => a
                    .get("fail_list")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            for (verdict, m) in verdicts.iter_mut().zip(ms) {
                if verdict.is_some() {
                    continue;
                }
                let address = m.address.unwrap_or_default();
                let sender = sender.unwrap_or_default();
                *verdict = Some(match &answer {
                    None => Handed::Retry("nothing was sent".into()),
                    Some(Err(not_taken)) => not_taken.clone(),
                    Some(Ok(_)) if failed.iter().any(|f| f == address) => Handed::Refused(format!(
                        "WeCom cannot send to {address} as {sender} (not a contact of the sender, or the customer's quota is used up)"
                    )),
                    Some(Ok(a)) => match a.get("msgid").and_then(Value::as_str) {
                        Some(msgid) => Handed::Taken {
                            reference: Some(format!("{msgid} {sender}")),
                        },
                        None => Handed::Retry("WeCom answered no msgid".into()),
                    },
                });
            }
            verdicts
                .into_iter()
                .map(|v| v.unwrap_or_else(|| Handed::Retry("no verdict".into())))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
