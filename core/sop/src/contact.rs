//! Respectful contact: quiet hours, frequency caps, the pause after a human follow-up and
//! opt-outs, as pure functions of a policy and a customer's contact history (the history is
//! read by the caller; opt-outs are kept by [`opt_outs`](crate::opt_outs)). The step runner
//! and the simulator ask the same question and get the same answer.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::definition::{CapPolicy, Purpose, parse_time};
use std::sync::Arc;

use shoal_base::config::{ContactConfig, Invalid, TenantConfig};
use shoal_crm::tenancy::Tenant;

use crate::outbound::Allowed;

/// A daily quiet window in local time.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// Days the window starts on; every day when empty.
    pub days: Vec<Weekday>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cap {
    /// A channel or `*`.
    pub channel: String,
    /// Whether service messages count too.
    pub any_purpose: bool,
    pub max: u32,
    pub window: Duration,
}

/// A tenant's contact policy (from `[tenants.<id>.contact]`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub quiet_hours: Option<QuietHours>,
    pub caps: Vec<Cap>,
    pub human_cooldown: Duration,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Vec<u8>>,
    pub no_follow_up_hours: u32,
    /// Non-public networks the tenant's step webhooks may reach.
    pub outbound_allow: Allowed,
    /// Marketing messages need a standing grant in the consent ledger.
    pub marketing_requires_consent: bool,
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// Checks the `contact` section of a tenant's configuration (handed to
/// `shoal_base::config::load` as a `TenantCheck`).
pub fn check_config(tenant: &TenantConfig) -> Result<(), Invalid> {
    Policy::from_config(&tenant.contact)
        .map(|_| ())
        .map_err(|(key, message)| Invalid {
            key: format!("contact.{key}"),
            message,
        })
}

impl Policy {
    /// The tenant's policy, read from its configuration once (checked when it was loaded).
    pub fn of(tenant: &Tenant) -> Arc<Policy> {
        tenant
            .derived
            .get_or_init(|| Policy::from_config(&tenant.contact).unwrap_or_default())
    }

    /// Reads the config section; an error names the key (relative to the section).
    pub fn from_config(c: &ContactConfig) -> Result<Policy, (String, String)> {
        let quiet_hours = match &c.quiet_hours {
            None => None,
            Some(q) => {
                let time = |key: &str, v: &str| {
                    parse_time(v).ok_or_else(|| {
                        (format!("quiet_hours.{key}"), format!("`{v}` is not HH:MM"))
                    })
                };
                let (start, end) = (time("start", &q.start)?, time("end", &q.end)?);
                if start == end {
                    return Err(("quiet_hours.end".into(), "must differ from `start`".into()));
                }
                let days = q
                    .days
                    .iter()
                    .map(|d| {
                        weekday(d).ok_or_else(|| {
                            (
                                "quiet_hours.days".to_owned(),
                                format!("`{d}` is not one of mon, tue, wed, thu, fri, sat, sun"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Some(QuietHours { start, end, days })
            }
        };
        let mut caps = Vec::new();
        for (i, cap) in c.caps.iter().enumerate() {
            let any_purpose = match cap.purpose.as_str() {
                "marketing" => false,
                "any" => true,
                other => {
                    return Err((
                        format!("caps[{i}].purpose"),
                        format!("`{other}` is not `marketing` or `any`"),
                    ));
                }
            };
            if cap.channel != "*" && !super::definition::CHANNELS.contains(&cap.channel.as_str()) {
                return Err((
                    format!("caps[{i}].channel"),
                    format!("`{}` is not a channel or `*`", cap.channel),
                ));
            }
            if cap.max == 0 || cap.window_hours == 0 {
                return Err((
                    format!("caps[{i}]"),
                    "`max` and `window_hours` must be at least 1".into(),
                ));
            }
            caps.push(Cap {
                channel: cap.channel.clone(),
                any_purpose,
                max: cap.max,
                window: Duration::hours(i64::from(cap.window_hours)),
            });
        }
        let webhook_secret = match &c.webhook_secret_env {
            None => None,
            Some(var) => {
                let v = std::env::var(var).unwrap_or_default();
                if v.len() < 16 {
                    return Err((
                        "webhook_secret_env".into(),
                        format!(
                            "environment variable {var} must hold a key of at least 16 characters"
                        ),
                    ));
                }
                Some(v.into_bytes())
            }
        };
        if let Some(url) = &c.webhook_url
            && let Err(e) = crate::outbound::parse(url)
        {
            return Err(("webhook_url".into(), e));
        }
        Ok(Policy {
            quiet_hours,
            caps,
            human_cooldown: Duration::hours(i64::from(c.human_cooldown_hours)),
            webhook_url: c.webhook_url.clone(),
            webhook_secret,
            no_follow_up_hours: c.no_follow_up_hours,
            outbound_allow: Allowed::parse(&c.outbound_allow)
                .map_err(|(i, m)| (format!("outbound_allow[{i}]"), m))?,
            marketing_requires_consent: c.marketing_requires_consent,
        })
    }
}

/// The local instant of `date` at `time`, as UTC (DST gaps move forward an hour).
pub fn at_local(tz: Tz, date: chrono::NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

impl QuietHours {
    fn starts_on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// When `at` falls in the window, the end of that window.
    pub fn window_end(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        let (date, time) = (local.date_naive(), local.time());
        if self.start < self.end {
            (self.starts_on(date.weekday()) && time >= self.start && time < self.end)
                .then(|| at_local(tz, date, self.end))
        } else if time >= self.start && self.starts_on(date.weekday()) {
            Some(at_local(tz, date.succ_opt()?, self.end))
        } else if time < self.end && self.starts_on(date.pred_opt()?.weekday()) {
            Some(at_local(tz, date, self.end))
        } else {
            None
        }
    }
}

/// A message sent (or queued) to the customer before.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: DateTime<Utc>,
    pub channel: String,
    pub purpose: Purpose,
}

/// What the policy needs to know about one customer.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub sent: Vec<Sent>,
    pub last_human_follow_up: Option<DateTime<Utc>>,
    /// Channels opted out of (`*`: every automated message).
    pub opted_out: HashSet<String>,
    /// The customer's standing marketing consent (read only where the policy requires it).
    pub marketing: shoal_crm::consent::Marketing,
}

/// The answer for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Send,
    Defer {
        until: DateTime<Utc>,
        reason: String,
    },
    Drop {
        reason: String,
    },
}

/// May a message on `channel` go out at `at`?
pub fn judge(
    policy: &Policy,
    tz: Tz,
    channel: &str,
    purpose: Purpose,
    at: DateTime<Utc>,
    history: &History,
    on_cap: CapPolicy,
) -> Verdict {
    if history.opted_out.contains("*") || history.opted_out.contains(channel) {
        return Verdict::Drop {
            reason: format!("the customer opted out of {channel} messages"),
        };
    }
    if purpose == Purpose::Marketing
        && policy.marketing_requires_consent
        && !history.marketing.allows(channel)
    {
        return Verdict::Drop {
            reason: format!("no marketing consent on {channel} in the customer's consent ledger"),
        };
    }
    if let Some(q) = &policy.quiet_hours
        && let Some(until) = q.window_end(at, tz)
    {
        return Verdict::Defer {
            until,
            reason: format!(
                "quiet hours {}–{} ({tz})",
                q.start.format("%H:%M"),
                q.end.format("%H:%M")
            ),
        };
    }
    let held = |until: DateTime<Utc>, reason: String| match on_cap {
        CapPolicy::Defer => Verdict::Defer { until, reason },
        CapPolicy::Drop => Verdict::Drop { reason },
    };
    if policy.human_cooldown > Duration::zero()
        && let Some(human) = history.last_human_follow_up
        && at < human + policy.human_cooldown
    {
        return held(
            human + policy.human_cooldown,
            format!(
                "a human followed up at {}; no automated message for {} h",
                human.format("%Y-%m-%d %H:%M UTC"),
                policy.human_cooldown.num_hours()
            ),
        );
    }
    for cap in &policy.caps {
        let counts = |s: &&Sent| {
            (cap.channel == "*" || cap.channel == s.channel)
                && (cap.any_purpose || s.purpose == Purpose::Marketing)
                && s.at > at - cap.window
                && s.at <= at
        };
        let applies = (cap.channel == "*" || cap.channel == channel)
            && (cap.any_purpose || purpose == Purpose::Marketing);
        if !applies {
            continue;
        }
        let mut within: Vec<DateTime<Utc>> =
            history.sent.iter().filter(counts).map(|s| s.at).collect();
        if within.len() >= cap.max as usize {
            within.sort();
            // the cap frees up when enough of these leave the window
            let free_at = within[within.len() - cap.max as usize] + cap.window;
            return held(
                free_at,
                format!(
                    "frequency cap: at most {} {} message(s) on {} in {} h",
                    cap.max,
                    if cap.any_purpose { "" } else { "marketing" },
                    cap.channel,
                    cap.window.num_hours()
                )
                .replace("  ", " "),
            );
        }
    }
    Verdict::Send
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Shanghai;

    use super::*;
    use shoal_base::config::{CapConfig, QuietHoursConfig};

    fn policy() -> Policy {
        Policy::from_config(&ContactConfig {
            quiet_hours: Some(QuietHoursConfig {
                start: "21:00".into(),
                end: "09:00".into(),
                days: vec![],
            }),
            caps: vec![CapConfig {
                channel: "*".into(),
                purpose: "marketing".into(),
                max: 1,
                window_hours: 24,
            }],
            human_cooldown_hours: 48,
            webhook_url: None,
            webhook_secret_env: None,
            no_follow_up_hours: 72,
            outbound_allow: Vec::new(),
            marketing_requires_consent: false,
            sealed_attributes: Vec::new(),
        })
        .unwrap()
    }

    /// Shanghai local time as UTC.
    fn sh(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn judge_at(at: DateTime<Utc>, h: &History) -> Verdict {
        judge(
            &policy(),
            Shanghai,
            "wecom",
            Purpose::Marketing,
            at,
            h,
            CapPolicy::Defer,
        )
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad = |toml_text: &str| {
            let c: ContactConfig = toml::from_str(toml_text).unwrap();
            Policy::from_config(&c).unwrap_err().0
        };
        assert_eq!(
            bad("quiet_hours = { start = \"9pm\", end = \"09:00\" }"),
            "quiet_hours.start"
        );
        assert_eq!(
            bad("quiet_hours = { start = \"21:00\", end = \"09:00\", days = [\"funday\"] }"),
            "quiet_hours.days"
        );
        assert_eq!(
            bad("caps = [{ channel = \"pigeon\", max = 1, window_hours = 24 }]"),
            "caps[0].channel"
        );
        assert_eq!(bad("caps = [{ max = 0, window_hours = 24 }]"), "caps[0]");
        assert_eq!(bad("webhook_url = \"ftp://example.com\""), "webhook_url");
        assert_eq!(
            bad("webhook_secret_env = \"SHOAL_NO_SUCH_VARIABLE_FOR_TESTS\""),
            "webhook_secret_env"
        );
    }

    #[test]
    fn a_message_due_in_quiet_hours_waits_for_the_morning() {
        let h = History::default();
        assert_eq!(judge_at(sh(23, 20, 59), &h), Verdict::Send);
        for at in [sh(23, 21, 0), sh(23, 23, 30), sh(24, 0, 10), sh(24, 8, 59)] {
            let Verdict::Defer { until, .. } = judge_at(at, &h) else {
                panic!("sent at {at}")
            };
            assert_eq!(until, sh(24, 9, 0), "for {at}");
        }
        assert_eq!(judge_at(sh(24, 9, 0), &h), Verdict::Send);
    }

    #[test]
    fn quiet_hours_can_be_limited_to_some_days() {
        let q = QuietHours {
            start: parse_time("12:00").unwrap(),
            end: parse_time("14:00").unwrap(),
            days: vec![Weekday::Sat, Weekday::Sun],
        };
        // 2026-11-28 is a Saturday, 2026-11-27 a Friday
        assert_eq!(q.window_end(sh(28, 13, 0), Shanghai), Some(sh(28, 14, 0)));
        assert_eq!(q.window_end(sh(27, 13, 0), Shanghai), None);
        let night = QuietHours {
            start: parse_time("22:00").unwrap(),
            end: parse_time("08:00").unwrap(),
            days: vec![Weekday::Fri],
        };
        assert_eq!(night.window_end(sh(28, 7, 0), Shanghai), Some(sh(28, 8, 0)));
        assert_eq!(night.window_end(sh(29, 7, 0), Shanghai), None);
    }

    #[test]
    fn caps_defer_until_the_window_frees_or_drop_by_policy() {
        let h = History {
            sent: vec![Sent {
                at: sh(23, 10, 0),
                channel: "sms".into(),
                purpose: Purpose::Marketing,
            }],
            ..History::default()
        };
        assert_eq!(
            judge_at(sh(23, 15, 0), &h),
            Verdict::Defer {
                until: sh(24, 10, 0),
                reason: "frequency cap: at most 1 marketing message(s) on * in 24 h".into()
            }
        );
        assert!(matches!(
            judge(
                &policy(),
                Shanghai,
                "wecom",
                Purpose::Marketing,
                sh(23, 15, 0),
                &h,
                CapPolicy::Drop
            ),
            Verdict::Drop { .. }
        ));
        // service messages are not marketing-capped
        assert_eq!(
            judge(
                &policy(),
                Shanghai,
                "wecom",
                Purpose::Service,
                sh(23, 15, 0),
                &h,
                CapPolicy::Defer
            ),
            Verdict::Send
        );
    }

    #[test]
    fn a_human_follow_up_pauses_automation_and_opt_outs_drop() {
        let h = History {
            last_human_follow_up: Some(sh(23, 10, 0)),
            ..History::default()
        };
        assert!(matches!(
            judge_at(sh(24, 10, 0), &h),
            Verdict::Defer { until, .. } if until == sh(25, 10, 0)
        ));
        let out = History {
            opted_out: ["wecom".to_owned()].into(),
            ..History::default()
        };
        assert!(matches!(
            judge_at(sh(24, 10, 0), &out),
            Verdict::Drop { .. }
        ));
    }
}
