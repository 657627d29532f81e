//! A group robot for staff-facing messages (`[tenants.<id>.channels.robot]`): an SOP step
//! on the `robot` channel posts its text to the store's WeCom or DingTalk group ("王女士
//! asked about a refund twice, please call her"). It reaches staff, not the customer, so
//! the customer's contact policy (quiet hours, caps, opt-outs) does not hold it, its
//! text shows the customer's phone and e-mail masked, and no campaign may use it.
//!
//! - WeCom (企业微信群机器人): `POST <url>` with `{"msgtype":"text","text":{"content":…}}`;
//! - DingTalk (钉钉群机器人): `POST <url>&timestamp=<ms>&sign=<sign>` with
//!   `{"msgtype":"text","text":{"content":…}}`, where `sign` is the URL-encoded base64 of
//!   HMAC-SHA256 over `"<ms>\n<secret>"` keyed with the secret (when the robot has one).
//!
//! Both answer HTTP 200 with `{"errcode":0,…}` when they took the message. Each robot takes
//! 20 messages a minute: the adapter holds a message back (without spending an attempt)
//! rather than go over, and an answer saying the limit was hit (WeCom 45009, DingTalk
//! 130101) is retried; any other errcode is refused.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::Mutex;

use super::{Address, Channel, Ctx, Handed, Outgoing, Sending, by_status};
use crate::outbound;
use shoal_base::{config::RobotConfig, storage::time};

/// Messages a robot takes per minute (WeCom's and DingTalk's documented limit).
pub const PER_MINUTE: usize = 20;

/// Which robot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wecom,
    Dingtalk,
}

/// The `robot` adapter.
#[derive(Debug)]
pub struct Robot {
    kind: Kind,
    url: String,
    secret: Option<String>,
    /// When the last [`PER_MINUTE`] messages left.
    recent: Mutex<VecDeque<Instant>>,
}

/// DingTalk's `sign` for a robot secret at `ms` (milliseconds since the epoch),
/// URL-encoded.
pub fn dingtalk_sign(secret: &str, ms: i64) -> String {
    use base64::Engine as _;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any size");
    mac.update(format!("{ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// A DingTalk robot `url` with `timestamp` and `sign` appended (unchanged without a secret).
pub fn dingtalk_url(url: &str, secret: Option<&str>, ms: i64) -> String {
    match secret {
        Some(secret) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!(
                "{url}{sep}timestamp={ms}&sign={}",
                dingtalk_sign(secret, ms)
            )
        }
        None => url.to_owned(),
    }
}

impl Robot {
    /// Reads the section (a DingTalk secret from the environment); an error names the key.
    pub fn from_config(c: &RobotConfig) -> Result<Robot, (String, String)> {
        let kind = match c.kind.as_str() {
            "wecom" => Kind::Wecom,
            "dingtalk" => Kind::Dingtalk,
            other => {
                return Err((
                    "kind".into(),
                    format!("`{other}` is not `wecom` or `dingtalk`"),
                ));
            }
        };
        outbound::parse(&c.url).map_err(|e| ("url".to_owned(), e))?;
        let secret = match &c.secret_env {
            None => None,
            Some(_) if kind == Kind::Wecom => {
                return Err((
                    "secret_env".into(),
                    "a WeCom robot is not signed; only a DingTalk robot takes a secret".into(),
                ));
            }
            Some(var) => match std::env::var(var) {
                Ok(s) if !s.trim().is_empty() => Some(s),
                _ => {
                    return Err((
                        "secret_env".into(),
                        format!("environment variable {var} is not set"),
                    ));
                }
            },
        };
        Ok(Robot {
            kind,
            url: c.url.clone(),
            secret,
            recent: Mutex::new(VecDeque::with_capacity(PER_MINUTE)),
        })
    }

    /// Takes a place in the robot's minute, or says how long until one frees up.
    fn place(&self, now: Instant) -> Result<(), Duration> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= PER_MINUTE {
            let oldest = recent.front().copied().unwrap_or(now);
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)));
        }
        recent.push_back(now);
        Ok(())
    }
}

impl Channel for Robot {
    fn name(&self) -> &'static str {
        "robot"
    }
    fn address(&self) -> Address {
        Address::None
    }
    fn send<'a>(&'a self, ctx: Ctx<'a>, m: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            if let Err(wait) = self.place(Instant::now()) {
                return Handed::Later {
                    after: wait.max(Duration::from_secs(1)),
                    reason: format!("the robot takes {PER_MINUTE} messages a minute"),
                };
            }
            let url = match self.kind {
                Kind::Wecom => self.url.clone(),
                Kind::Dingtalk => dingtalk_url(
                    &self.url,
                    self.secret.as_deref(),
                    time::now().timestamp_millis(),
                ),
            };
            let body = json!({ "msgtype": "text", "text": { "content": m.text } }).to_string();
            let answer = match super::gateway::post_signed(ctx, &url, m, None, body).await {
                Err(not_taken) => return not_taken,
                Ok(a) => a,
            };
            if let Some(not_taken) = by_status(answer.status, "the robot") {
                return not_taken;
            }
            let v: Value = serde_json::from_slice(&answer.head).unwrap_or(Value::Null);
            let errcode = v.get("errcode").and_then(Value::as_i64);
            let errmsg = v.get("errmsg").and_then(Value::as_str).unwrap_or("");
            match errcode {
                Some(0) => Handed::Taken { reference: None },
                // WeCom: API frequency limit, system busy; DingTalk: sending too fast
                Some(45009 | -1 | 130101) => {
                    Handed::Retry(format!("the robot answered {errcode:?} {errmsg}"))
                }
                Some(code) => Handed::Refused(format!("the robot answered {code} {errmsg}")),
                None => Handed::Retry(format!(
                    "the robot answered something without an errcode: {}",
                    String::from_utf8_lossy(&answer.head)
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recomputed independently with Python:
    /// `base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest())`,
    /// then `urllib.parse.quote_plus`.
    #[test]
    fn the_dingtalk_sign_is_the_documented_hmac() {
        assert_eq!(
            dingtalk_sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"
        );
        assert_eq!(
            dingtalk_url(
                "https://oapi.dingtalk.com/robot/send?access_token=t",
                Some("SECabc"),
                1_700_000_000_000
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign=jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"
        );
    }

    #[test]
    fn a_robot_takes_twenty_messages_a_minute() {
        let r = Robot::from_config(&RobotConfig {
            kind: "wecom".into(),
            url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k".into(),
            secret_env: None,
        })
        .unwrap();
        let t0 = Instant::now();
        for i in 0..PER_MINUTE {
            assert!(r.place(t0 + Duration::from_secs(i as u64)).is_ok());
        }
        let wait = r.place(t0 + Duration::from_secs(30)).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(30),
            "the first place frees at t0 + 60 s"
        );
        assert!(r.place(t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_bad_section_names_its_key() {
        let bad = |kind: &str, secret_env: Option<&str>| {
            Robot::from_config(&RobotConfig {
                kind: kind.into(),
                url: "https://oapi.dingtalk.com/robot/send?access_token=t".into(),
                secret_env: secret_env.map(str::to_owned),
            })
            .unwrap_err()
            .0
        };
        assert_eq!(bad("feishu", None), "kind");
        assert_eq!(bad("wecom", Some("X")), "secret_env");
        assert_eq!(
            bad("dingtalk", Some("SHOAL_TEST_UNSET_ROBOT_SECRET")),
            "secret_env"
        );
    }
}
