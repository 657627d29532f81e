//! The step machine: advances one enrolment from where it stands to its next wait (or its
//! end). It is the same code for the real runner and for `simulateSop`; only the [`World`]
//! differs — the runner's reads and writes the database in the batch's transaction, the
//! simulator's answers from a snapshot and records what would happen.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{
    contact::Verdict,
    definition::{Action, Compiled, EventSpec, Purpose, Step, parse_time},
};
use shoal_base::error::Result;
use shoal_rules::Rule;

/// Where an enrolment stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub index: usize,
    /// When the current step began (waits count from here).
    pub step_started_at: DateTime<Utc>,
}

/// What the machine needs from the outside.
#[allow(async_fn_in_trait)] // implemented and called inside this crate only, on concrete types
pub trait World {
    /// A reason to end the enrolment now (an exit event or the exit condition), if any.
    async fn exit_reason(&mut self, sop: &Compiled, now: DateTime<Utc>) -> Result<Option<String>>;
    /// Whether a rule holds for the customer now.
    async fn holds(&mut self, rule: &Rule, now: DateTime<Utc>) -> Result<bool>;
    /// Whether such an event was recorded since `since`.
    async fn event_since(&mut self, spec: &EventSpec, since: DateTime<Utc>) -> Result<bool>;
    /// The contact policy's answer for a message now.
    async fn contact(
        &mut self,
        sop: &Compiled,
        channel: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Verdict>;
    /// Does the step's action; returns a description for the history.
    async fn perform(&mut self, step: &Step, now: DateTime<Utc>) -> Result<String>;
    /// The customer's time zone (its `timeZone` attribute, else the tenant's).
    fn time_zone(&self) -> Tz;
    /// The time in `field` of the payload of the event that started the enrolment, if it
    /// was started by one that carries a readable time there.
    async fn trigger_time(&mut self, field: &str) -> Result<Option<DateTime<Utc>>>;
}

/// One line of an enrolment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub step_id: String,
    pub index: usize,
    /// `done`, `skipped`, `deferred`, `dropped`, `waiting`, `exited`, `completed`.
    pub outcome: &'static str,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Where the enrolment goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run again at this time; `waiting_for` wakes it earlier when such an event arrives.
    At {
        at: DateTime<Utc>,
        waiting_for: Option<String>,
    },
    Completed,
    Exited(String),
}

/// The next occurrence of `time` (local) strictly after `after`.
fn next_time_of_day(tz: Tz, after: DateTime<Utc>, time: chrono::NaiveTime) -> DateTime<Utc> {
    let local = after.with_timezone(&tz).date_naive();
    let today = super::contact::at_local(tz, local, time);
    if today > after {
        today
    } else {
        super::contact::at_local(tz, local + Duration::days(1), time)
    }
}

/// Runs due steps at `now` until the enrolment waits, completes or exits. A failing step
/// returns its error with `pos` and `log` holding the progress made before it.
pub async fn advance<W: World>(
    sop: &Compiled,
    pos: &mut Position,
    now: DateTime<Utc>,
    world: &mut W,
    log: &mut Vec<Record>,
) -> Result<Next> {
    let steps = &sop.definition.steps;
    let mut record = |step: &Step, index: usize, outcome: &'static str, detail: String| {
        log.push(Record {
            step_id: step.id.clone(),
            index,
            outcome,
            detail,
            at: now,
        })
    };
    // Jumps only go forward, so this ends within `steps.len()` turns.
    loop {
        if let Some(reason) = world.exit_reason(sop, now).await? {
            return Ok(Next::Exited(reason));
        }
        let Some(step) = steps.get(pos.index) else {
            return Ok(Next::Completed);
        };
        let index = pos.index;
        let goto = |pos: &mut Position, to: usize| {
            pos.index = to;
            pos.step_started_at = now;
        };
        let (step_cond, branch_cond) = &sop.conditions[index];
        let is_wait = matches!(
            step.action,
            Action::Wait { .. }
                | Action::WaitUntilTime { .. }
                | Action::WaitUntilEventTime { .. }
                | Action::WaitForEvent { .. }
        );
        if !is_wait
            && let Some(rule) = step_cond
            && !world.holds(rule, now).await?
        {
            record(step, index, "skipped", "its condition does not hold".into());
            goto(pos, index + 1);
            continue;
        }
        match &step.action {
            Action::Wait { seconds } => {
                let due = pos.step_started_at + Duration::seconds(*seconds as i64);
                if now < due {
                    return Ok(Next::At {
                        at: due,
                        waiting_for: None,
                    });
                }
                record(step, index, "done", format!("waited {seconds} s"));
                goto(pos, index + 1);
            }
            Action::WaitUntilTime { time } => {
                let t = parse_time(time).unwrap_or_default();
                let due = next_time_of_day(world.time_zone(), pos.step_started_at, t);
                if now < due {
                    return Ok(Next::At {
                        at: due,
                        waiting_for: None,
                    });
                }
                record(step, index, "done", format!("waited until {time}"));
                goto(pos, index + 1);
            }
            Action::WaitUntilEventTime {
                field,
                offset_minutes,
            } => {
                match world.trigger_time(field).await? {
                    Some(t) => {
                        let due = t + Duration::minutes(*offset_minutes);
                        if now < due {
                            return Ok(Next::At {
                                at: due,
                                waiting_for: None,
                            });
                        }
                        record(
                            step,
                            index,
                            "done",
                            format!(
                                "waited until {} ({field} {offset_minutes:+} min)",
                                due.to_rfc3339()
                            ),
                        );
                    }
                    None => record(
                        step,
                        index,
                        "skipped",
                        format!("the triggering event has no time in `{field}`"),
                    ),
                }
                goto(pos, index + 1);
            }
            Action::WaitForEvent {
                event,
                timeout_seconds,
                on_timeout,
            } => {
                if world.event_since(event, pos.step_started_at).await? {
                    record(step, index, "done", format!("{} arrived", event.key()));
                    goto(pos, index + 1);
                } else {
                    let deadline = pos.step_started_at + Duration::seconds(*timeout_seconds as i64);
                    if now < deadline {
                        return Ok(Next::At {
                            at: deadline,
                            waiting_for: Some(event.key()),
                        });
                    }
                    let to = on_timeout.as_deref().map_or(index + 1, |t| sop.target(t));
                    record(
                        step,
                        index,
                        "done",
                        format!("no {} within {timeout_seconds} s", event.key()),
                    );
                    goto(pos, to);
                }
            }
            Action::Branch {
                then, otherwise, ..
            } => {
                let holds = match branch_cond {
                    Some(rule) => world.holds(rule, now).await?,
                    None => false,
                };
                let to = if holds {
                    sop.target(then)
                } else {
                    otherwise.as_deref().map_or(index + 1, |t| sop.target(t))
                };
                let target = steps.get(to).map_or("end", |s| s.id.as_str());
                record(
                    step,
                    index,
                    "done",
                    format!(
                        "condition {}: continue at {target}",
                        if holds { "holds" } else { "does not hold" }
                    ),
                );
                goto(pos, to);
            }
            Action::SendMessage {
                channel, purpose, ..
            } => match if crate::definition::staff_facing(channel) {
                // staff read it, not the customer: their contact policy does not hold it
                Verdict::Send
            } else {
                world.contact(sop, channel, *purpose, now).await?
            } {
                Verdict::Send => {
                    let detail = world.perform(step, now).await?;
                    record(step, index, "done", detail);
                    goto(pos, index + 1);
                }
                Verdict::Defer { until, reason } => {
                    record(
                        step,
                        index,
                        "deferred",
                        format!("{reason}; until {}", until.to_rfc3339()),
                    );
                    return Ok(Next::At {
                        at: until,
                        waiting_for: None,
                    });
                }
                Verdict::Drop { reason } => {
                    record(step, index, "dropped", reason);
                    goto(pos, index + 1);
                }
            },
            _ => {
                let detail = world.perform(step, now).await?;
                record(step, index, "done", detail);
                goto(pos, index + 1);
            }
        }
    }
}
