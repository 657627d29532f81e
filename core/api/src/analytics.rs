//! Analytics in GraphQL: funnels, retention cohorts, an SOP's per-step figures, revenue, tag
//! trends and ticket service levels (`shoal_analytics`), within the reader's access, in the
//! tenant's time zone.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::{
    ErrorExt, actor, db,
    filter::{CustomerFilterInput, filter_of},
};
use shoal_analytics::{
    cohorts::{self, CohortKind, RetentionSpec},
    funnel::{self, Breakdown, EventMatch, Exclusion, FunnelFigures, FunnelSpec, Order, Step},
    period::Period,
    revenue::{self, RevenueBy, RevenueSpec},
    service_levels,
    sop_steps::{self, Conversion},
    stage_rfm, tag_trend,
};
use shoal_base::{
    error::{Error, Result},
    kinds::{Channel, EventType},
    storage::money,
};

/// Which events count: a type, and optionally the event's name, channel and least amount.
#[derive(InputObject, Debug, Clone)]
pub struct EventMatchInput {
    #[graphql(name = "type")]
    pub event_type: EventType,
    /// The event's name (required for `CUSTOM`).
    pub name: Option<String>,
    pub channel: Option<Channel>,
    /// Only events with at least this amount (any currency).
    pub min_amount: Option<Decimal>,
}

impl EventMatchInput {
    fn into_match(self, field: &str) -> Result<EventMatch> {
        let min_amount_units = self
            .min_amount
            .map(|a| {
                money::to_units(a)
                    .map_err(|e| Error::invalid(format!("{field}.minAmount"), e.to_string()))
            })
            .transpose()?;
        Ok(EventMatch {
            event_type: self.event_type,
            name: self.name,
            channel: self.channel,
            min_amount_units,
        })
    }
}

/// One step of a funnel.
#[derive(InputObject, Debug, Clone)]
pub struct FunnelStepInput {
    /// Defaults to the event's name or type.
    pub label: Option<String>,
    pub event: EventMatchInput,
    /// How many minutes after the previous step this one may come (default: the funnel's
    /// `windowMinutes`); in-order funnels only, not on the first step.
    pub within_minutes: Option<i32>,
}

/// Customers with a matching event between two steps are left out (`excluded`).
#[derive(InputObject, Debug, Clone)]
pub struct FunnelExclusionInput {
    pub event: EventMatchInput,
    /// The step (numbered from 0) after which the event excludes.
    pub after_step: i32,
    /// The step before which it does.
    pub before_step: i32,
}

/// Whether a funnel's steps must come in the order given.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunnelOrder {
    /// Each step after the previous one, within its window.
    #[default]
    InOrder,
    /// Every step within the window after the entry, in any order; step k counts customers
    /// who did at least k + 1 of the steps.
    AnyOrder,
}

/// How a funnel's customers are split into groups.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunnelBreakdown {
    #[default]
    None,
    /// By the customer's source channel.
    Channel,
    /// By the customer's lifecycle stage now.
    Stage,
    /// By the saved segments in `segments` (a customer may be in several).
    Segment,
}

/// A funnel to compute (docs/analytics.md).
#[derive(InputObject, Debug, Clone)]
pub struct FunnelInput {
    /// 2 to 10 steps.
    pub steps: Vec<FunnelStepInput>,
    pub exclusions: Option<Vec<FunnelExclusionInput>>,
    #[graphql(default)]
    pub order: FunnelOrder,
    /// The conversion window in minutes (default 7 days): per step in order, from the entry
    /// in any order.
    #[graphql(default = 10080)]
    pub window_minutes: i32,
    /// Customers enter with a first-step event at or after `from`…
    pub from: DateTime<Utc>,
    /// …and before `to`; later steps may come after `to`.
    pub to: DateTime<Utc>,
    /// Which customers count (always within the reader's scope).
    pub filter: Option<CustomerFilterInput>,
    #[graphql(default)]
    pub breakdown: FunnelBreakdown,
    /// The segments of a `SEGMENT` breakdown (1 to 10).
    pub segments: Option<Vec<ID>>,
}

/// One step of a funnel's answer.
#[derive(SimpleObject, Debug, Clone)]
pub struct FunnelStepFigures {
    pub index: i32,
    pub label: String,
    /// Customers who reached the step.
    pub customers: i64,
    /// Customers who reached the previous step but not this one (0 for the first).
    pub drop_off: i64,
    /// Share of the previous step's customers (null when it had none; 1 for the first).
    pub conversion_from_previous: Option<f64>,
    /// Share of the entered customers (null when none entered).
    pub conversion_from_start: Option<f64>,
    /// Median whole seconds from the previous step (lower middle of an even count).
    pub median_seconds_from_previous: Option<i64>,
}

/// A funnel's figures for a group of customers.
#[derive(SimpleObject, Debug, Clone)]
pub struct FunnelGroup {
    /// The channel, stage or segment id (empty for the whole funnel).
    pub key: String,
    /// Customers who entered (the first step's count).
    pub entered: i64,
    /// Customers left out by an exclusion.
    pub excluded: i64,
    pub steps: Vec<FunnelStepFigures>,
}

/// A funnel's answer: everyone, then each group of the breakdown.
#[derive(SimpleObject, Debug, Clone)]
pub struct Funnel {
    pub overall: FunnelGroup,
    pub groups: Vec<FunnelGroup>,
}

fn group(key: String, f: &FunnelFigures) -> FunnelGroup {
    let entered = f.entered();
    let share = |n: i64, of: i64| (of > 0).then(|| n as f64 / of as f64);
    FunnelGroup {
        key,
        entered,
        excluded: f.excluded,
        steps: f
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let prev = if k == 0 {
                    s.customers
                } else {
                    f.steps[k - 1].customers
                };
                FunnelStepFigures {
                    index: k as i32,
                    label: s.label.clone(),
                    customers: s.customers,
                    drop_off: prev - s.customers,
                    conversion_from_previous: share(s.customers, prev),
                    conversion_from_start: share(s.customers, entered),
                    median_seconds_from_previous: s.median_seconds_from_previous,
                }
            })
            .collect(),
    }
}

fn minutes(m: i32) -> Duration {
    Duration::minutes(i64::from(m))
}

/// A calendar period in the tenant's time zone.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarPeriod {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

/// Which customers a cohort holds.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CohortKindInput {
    /// Customers whose first-ever starting event fell in the period.
    #[default]
    FirstTime,
    /// Customers with a starting event in the period (one customer in several cohorts).
    Recurring,
}

/// A retention table to compute (docs/analytics.md).
#[derive(InputObject, Debug, Clone)]
pub struct RetentionInput {
    pub starting: EventMatchInput,
    pub returning: EventMatchInput,
    pub period: CalendarPeriod,
    #[graphql(default)]
    pub kind: CohortKindInput,
    /// Cohorts from the period holding `from`…
    pub from: DateTime<Utc>,
    /// …to the period holding the instant before `to`.
    pub to: DateTime<Utc>,
    /// How many periods after each cohort's to count (1 to 60).
    pub periods: i32,
    pub filter: Option<CustomerFilterInput>,
}

/// One cohort of a retention table.
#[derive(SimpleObject, Debug, Clone)]
pub struct Cohort {
    /// The first local day of the cohort's period (`2026-11-30`).
    pub start: String,
    pub customers: i64,
    /// Customers who came back in period 1, 2, … after the cohort's; null for periods that
    /// have not begun.
    pub returned: Vec<Option<i64>>,
    /// The same as shares of the cohort (null when not begun or the cohort is empty).
    pub rates: Vec<Option<f64>>,
}

/// A retention table.
#[derive(SimpleObject, Debug, Clone)]
pub struct Retention {
    /// The tenant's time zone, in which the periods are cut.
    pub time_zone: String,
    pub cohorts: Vec<Cohort>,
}

/// A conversion after enrolment: a matching event within the window.
#[derive(InputObject, Debug, Clone)]
pub struct SopConversionInput {
    pub event: EventMatchInput,
    pub within_minutes: i32,
}

/// A count under a name.
#[derive(SimpleObject, Debug, Clone)]
pub struct NamedCount {
    pub name: String,
    pub count: i64,
}

/// Why enrolments did not get through a step.
#[derive(SimpleObject, Debug, Clone)]
pub struct StepReason {
    pub outcome: String,
    pub reason: String,
    pub enrolments: i64,
}

/// One step's figures.
#[derive(SimpleObject, Debug, Clone)]
pub struct SopStepFigures {
    pub step_id: String,
    pub step_index: i64,
    /// Enrolments with any outcome at the step.
    pub reached: i64,
    /// Enrolments by their last outcome at the step.
    pub outcomes: Vec<NamedCount>,
    /// Why steps were skipped, dropped, failed or exited, most frequent first.
    pub reasons: Vec<StepReason>,
    /// The step's messages by outbox status (opens and clicks are not reported by SOP
    /// channels; campaigns report them).
    pub messages: Vec<NamedCount>,
}

/// An SOP's figures over the enrolments of customers the reader reaches.
#[derive(SimpleObject, Debug, Clone)]
pub struct SopFigures {
    pub enrolled: i64,
    pub by_status: Vec<NamedCount>,
    /// Steps some enrolment reached, in step order.
    pub steps: Vec<SopStepFigures>,
    /// Enrolled customers who converted within the window (when asked).
    pub converted: Option<i64>,
}

fn named(m: std::collections::BTreeMap<String, i64>) -> Vec<NamedCount> {
    m.into_iter()
        .map(|(name, count)| NamedCount { name, count })
        .collect()
}

impl From<CalendarPeriod> for Period {
    fn from(p: CalendarPeriod) -> Period {
        match p {
            CalendarPeriod::Day => Period::Day,
            CalendarPeriod::Week => Period::Week,
            CalendarPeriod::Month => Period::Month,
        }
    }
}

/// What revenue series are per.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevenueByInput {
    /// One series per currency.
    #[default]
    Total,
    Region,
    /// The region's tier now.
    Tier,
    /// The settlement module that priced the bill.
    Module,
    /// Each participant's split (ledger postings).
    Participant,
}

/// Revenue from settled bills (docs/analytics.md).
#[derive(InputObject, Debug, Clone)]
pub struct RevenueInput {
    /// Bills settled at or after…
    pub from: DateTime<Utc>,
    /// …and before.
    pub to: DateTime<Utc>,
    pub period: CalendarPeriod,
    #[graphql(default)]
    pub by: RevenueByInput,
}

/// One period of a revenue series.
#[derive(SimpleObject, Debug, Clone)]
pub struct RevenuePoint {
    /// The period's first local day.
    pub start: String,
    /// Net of refunds.
    pub amount: Decimal,
    pub sales: i64,
    pub refunds: i64,
}

/// Revenue for one key in one currency.
#[derive(SimpleObject, Debug, Clone)]
pub struct RevenueSeries {
    /// The region, tier, module or participant id (empty for `TOTAL`).
    pub key: String,
    pub currency: String,
    pub total: Decimal,
    pub points: Vec<RevenuePoint>,
}

/// Tag holders over time.
#[derive(InputObject, Debug, Clone)]
pub struct TagTrendInput {
    /// 1 to 20 tags.
    pub tag_ids: Vec<ID>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: CalendarPeriod,
}

/// Customers holding a tag at the end of a period (now, for the current one).
#[derive(SimpleObject, Debug, Clone)]
pub struct TagTrendPoint {
    pub start: String,
    pub customers: i64,
}

/// One tag's holders over time.
#[derive(SimpleObject, Debug, Clone)]
pub struct TagTrend {
    pub tag_id: ID,
    pub points: Vec<TagTrendPoint>,
}

/// Customers per lifecycle stage over time.
#[derive(InputObject, Debug, Clone)]
pub struct StageTrendInput {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: CalendarPeriod,
}

/// Customers in one stage.
#[derive(SimpleObject, Debug, Clone)]
pub struct StageCount {
    pub stage: shoal_base::kinds::LifecycleStage,
    pub customers: i64,
}

/// Customers per stage at the end of a period (now, for the current one).
#[derive(SimpleObject, Debug, Clone)]
pub struct StageTrendPoint {
    /// The period's first day (`2026-11-30`).
    pub start: String,
    /// Every stage, zeros included.
    pub stages: Vec<StageCount>,
}

/// Two instants to compare RFM cells at.
#[derive(InputObject, Debug, Clone)]
pub struct RfmMovementInput {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Customers who were in one cell at `from` and in another (or the same) at `to`.
#[derive(SimpleObject, Debug, Clone)]
pub struct RfmMove {
    /// Null: not scored then (no orders yet, or not recomputed yet).
    pub from: Option<shoal_base::kinds::RfmCell>,
    /// Null: no longer scored.
    pub to: Option<shoal_base::kinds::RfmCell>,
    pub customers: i64,
}

/// What ticket figures count.
#[derive(InputObject, Debug, Clone)]
pub struct TicketFiguresInput {
    /// SLA attainment counts the tickets opened in `[from, to)`; the series covers its periods.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: CalendarPeriod,
    /// Only tickets of this type.
    pub type_key: Option<String>,
    /// Only tickets in this queue.
    pub queue: Option<String>,
}

/// One SLA target's clocks over the tickets opened in the range that have it (read now).
#[derive(SimpleObject, Debug, Clone)]
pub struct SlaTargetFigures {
    pub target: super::tickets::SlaTarget,
    /// Done within target.
    pub met: i64,
    /// Done late, or not done past the target.
    pub breached: i64,
    /// Running within target (on track, at risk or paused).
    pub running: i64,
    /// `met / (met + breached)`; null before any clock is decided.
    pub attainment: Option<f64>,
}

/// One period of the ticket series (in the tenant's zone).
#[derive(SimpleObject, Debug, Clone)]
pub struct TicketPeriod {
    /// The period's first day (`2026-11-30`).
    pub start: String,
    /// Tickets opened in it.
    pub opened: i64,
    /// Moves from a not-done status into a resolved or closed one in it.
    pub resolved: i64,
    /// Tickets not done at its end (now, for the current one).
    pub backlog: i64,
}

/// An agent's load.
#[derive(SimpleObject, Debug, Clone)]
pub struct AgentLoad {
    pub user_id: ID,
    /// The user's name (from the configuration).
    pub name: Option<String>,
    /// Tickets assigned to them and not done now.
    pub open: i64,
    /// Of those, with a clock past its target now.
    pub breached: i64,
    /// Of those, with a clock at risk (none breached) now.
    pub at_risk: i64,
    /// Tickets they resolved or closed in the range.
    pub resolved: i64,
}

/// Ticket service levels over the tickets the caller reaches.
#[derive(SimpleObject, Debug, Clone)]
pub struct TicketFigures {
    pub sla: Vec<SlaTargetFigures>,
    pub series: Vec<TicketPeriod>,
    /// Agents with open tickets or resolutions in the range, most open first.
    pub agents: Vec<AgentLoad>,
    /// Tickets not done now.
    pub backlog_now: i64,
    /// Of those, without an assignee.
    pub unassigned_now: i64,
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// A funnel over the customers the caller reaches (docs/analytics.md).
    async fn funnel(&self, ctx: &Context<'_>, input: FunnelInput) -> async_graphql::Result<Funnel> {
        let actor = actor(ctx).gql()?;
        let db = db(ctx);
        let filter = filter_of(ctx, actor, input.filter.unwrap_or_default()).await?;
        let mut steps = Vec::new();
        for (i, s) in input.steps.into_iter().enumerate() {
            let event = s
                .event
                .into_match(&format!("input.steps[{i}].event"))
                .gql()?;
            let label = s.label.unwrap_or_else(|| {
                event
                    .name
                    .clone()
                    .unwrap_or_else(|| event.event_type.as_str().to_owned())
            });
            steps.push(Step {
                label,
                event,
                within: s.within_minutes.map(minutes),
            });
        }
        let mut exclusions = Vec::new();
        for (i, x) in input.exclusions.unwrap_or_default().into_iter().enumerate() {
            let at = format!("input.exclusions[{i}]");
            let step = |v: i32| usize::try_from(v).unwrap_or(usize::MAX);
            exclusions.push(Exclusion {
                event: x.event.into_match(&format!("{at}.event")).gql()?,
                after_step: step(x.after_step),
                before_step: step(x.before_step),
            });
        }
        let breakdown = match input.breakdown {
            FunnelBreakdown::None => Breakdown::None,
            FunnelBreakdown::Channel => Breakdown::Channel,
            FunnelBreakdown::Stage => Breakdown::Stage,
            FunnelBreakdown::Segment => {
                let mut list = Vec::new();
                for id in input.segments.unwrap_or_default() {
                    let f = shoal_tags::segments::as_filter(db, &actor.tenant, &id)
                        .await
                        .gql()?;
                    list.push((id.0, f));
                }
                Breakdown::Segments(list)
            }
        };
        let spec = FunnelSpec {
            steps,
            exclusions,
            order: match input.order {
                FunnelOrder::InOrder => Order::InOrder,
                FunnelOrder::AnyOrder => Order::AnyOrder,
            },
            window: minutes(input.window_minutes),
            from: input.from,
            to: input.to,
            filter,
            breakdown,
        };
        let result = funnel::compute(db, actor, &spec).await.gql()?;
        Ok(Funnel {
            overall: group(String::new(), &result.overall),
            groups: result
                .groups
                .iter()
                .map(|(k, f)| group(k.clone(), f))
                .collect(),
        })
    }

    /// A retention table over the customers the caller reaches (docs/analytics.md).
    async fn retention(
        &self,
        ctx: &Context<'_>,
        input: RetentionInput,
    ) -> async_graphql::Result<Retention> {
        let actor = actor(ctx).gql()?;
        let filter = filter_of(ctx, actor, input.filter.unwrap_or_default()).await?;
        let spec = RetentionSpec {
            starting: input.starting.into_match("input.starting").gql()?,
            returning: input.returning.into_match("input.returning").gql()?,
            period: input.period.into(),
            kind: match input.kind {
                CohortKindInput::FirstTime => CohortKind::FirstTime,
                CohortKindInput::Recurring => CohortKind::Recurring,
            },
            from: input.from,
            to: input.to,
            periods: u32::try_from(input.periods).unwrap_or(0),
            filter,
        };
        let cohorts = cohorts::compute(db(ctx), actor, &spec).await.gql()?;
        Ok(Retention {
            time_zone: actor.tenant.time_zone.name().to_owned(),
            cohorts: cohorts
                .into_iter()
                .map(|c| Cohort {
                    start: c.start.to_string(),
                    customers: c.customers,
                    rates: c
                        .returned
                        .iter()
                        .map(|r| {
                            r.filter(|_| c.customers > 0)
                                .map(|n| n as f64 / c.customers as f64)
                        })
                        .collect(),
                    returned: c.returned,
                })
                .collect(),
        })
    }

    /// An SOP's figures per step, over the enrolments of customers the caller reaches.
    async fn sop_figures(
        &self,
        ctx: &Context<'_>,
        sop_id: ID,
        conversion: Option<SopConversionInput>,
    ) -> async_graphql::Result<SopFigures> {
        let actor = actor(ctx).gql()?;
        let db = db(ctx);
        let conversion = match conversion {
            Some(c) => Some(Conversion {
                event: c.event.into_match("conversion.event").gql()?,
                within: minutes(c.within_minutes),
            }),
            None => None,
        };
        let f = sop_steps::compute(db, actor, &sop_id, conversion.as_ref())
            .await
            .gql()?;
        Ok(SopFigures {
            enrolled: f.enrolled,
            by_status: named(f.by_status),
            steps: f
                .steps
                .into_iter()
                .map(|s| SopStepFigures {
                    step_id: s.step_id,
                    step_index: s.step_index,
                    reached: s.reached,
                    outcomes: named(s.outcomes),
                    reasons: s
                        .reasons
                        .into_iter()
                        .map(|(outcome, reason, enrolments)| StepReason {
                            outcome,
                            reason,
                            enrolments,
                        })
                        .collect(),
                    messages: named(s.messages),
                })
                .collect(),
            converted: f.converted,
        })
    }

    /// Revenue from settled bills as time series, net of refunds, per currency
    /// (docs/analytics.md); bills without a customer need scope `all` on bills.
    async fn revenue(
        &self,
        ctx: &Context<'_>,
        input: RevenueInput,
    ) -> async_graphql::Result<Vec<RevenueSeries>> {
        let actor = actor(ctx).gql()?;
        let spec = RevenueSpec {
            from: input.from,
            to: input.to,
            period: input.period.into(),
            by: match input.by {
                RevenueByInput::Total => RevenueBy::Total,
                RevenueByInput::Region => RevenueBy::Region,
                RevenueByInput::Tier => RevenueBy::Tier,
                RevenueByInput::Module => RevenueBy::Module,
                RevenueByInput::Participant => RevenueBy::Participant,
            },
        };
        let series = revenue::compute(db(ctx), actor, &spec).await.gql()?;
        Ok(series
            .into_iter()
            .map(|s| RevenueSeries {
                key: s.key,
                currency: s.currency,
                total: money::from_units(s.total_units),
                points: s
                    .points
                    .into_iter()
                    .map(|p| RevenuePoint {
                        start: p.start.to_string(),
                        amount: money::from_units(p.units),
                        sales: p.sales,
                        refunds: p.refunds,
                    })
                    .collect(),
            })
            .collect())
    }

    /// How many of the customers the caller reaches held each tag at the end of each period.
    async fn tag_trend(
        &self,
        ctx: &Context<'_>,
        input: TagTrendInput,
    ) -> async_graphql::Result<Vec<TagTrend>> {
        let actor = actor(ctx).gql()?;
        let ids: Vec<String> = input.tag_ids.into_iter().map(|i| i.0).collect();
        let trends = tag_trend::compute(
            db(ctx),
            actor,
            &ids,
            input.from,
            input.to,
            input.period.into(),
        )
        .await
        .gql()?;
        Ok(trends
            .into_iter()
            .map(|t| TagTrend {
                tag_id: ID(t.tag_id),
                points: t
                    .points
                    .into_iter()
                    .map(|(start, customers)| TagTrendPoint {
                        start: start.to_string(),
                        customers,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Ticket service levels (docs/analytics.md#tickets): SLA attainment per target, tickets
    /// opened, resolved and waiting per period, each agent's load — over the tickets the
    /// caller reaches.
    async fn ticket_figures(
        &self,
        ctx: &Context<'_>,
        input: TicketFiguresInput,
    ) -> async_graphql::Result<TicketFigures> {
        let actor = actor(ctx).gql()?;
        let spec = service_levels::Spec {
            from: input.from,
            to: input.to,
            period: input.period.into(),
            type_key: input.type_key,
            queue: input.queue,
        };
        let f = service_levels::compute(db(ctx), actor, &spec).await.gql()?;
        let name = |user: &str| actor.tenant.users.get(user).map(|u| u.name.clone());
        Ok(TicketFigures {
            sla: f
                .targets
                .into_iter()
                .map(|t| SlaTargetFigures {
                    target: super::tickets::SlaTarget::of(t.target),
                    met: t.met,
                    breached: t.breached,
                    running: t.running,
                    attainment: t.attainment,
                })
                .collect(),
            series: f
                .series
                .into_iter()
                .map(|p| TicketPeriod {
                    start: p.start.to_string(),
                    opened: p.opened,
                    resolved: p.resolved,
                    backlog: p.backlog,
                })
                .collect(),
            agents: f
                .agents
                .into_iter()
                .map(|a| AgentLoad {
                    name: name(&a.user_id),
                    user_id: ID(a.user_id),
                    open: a.open,
                    breached: a.breached,
                    at_risk: a.at_risk,
                    resolved: a.resolved,
                })
                .collect(),
            backlog_now: f.backlog_now,
            unassigned_now: f.unassigned_now,
        })
    }

    /// Customers per lifecycle stage at the end of each period (docs/analytics.md#stages-over-time),
    /// among the customers the caller reaches.
    async fn stage_trend(
        &self,
        ctx: &Context<'_>,
        input: StageTrendInput,
    ) -> async_graphql::Result<Vec<StageTrendPoint>> {
        let actor = actor(ctx).gql()?;
        let points =
            stage_rfm::stage_trend(db(ctx), actor, input.from, input.to, input.period.into())
                .await
                .gql()?;
        Ok(points
            .into_iter()
            .map(|p| StageTrendPoint {
                start: p.start.to_string(),
                stages: p
                    .stages
                    .into_iter()
                    .map(|(stage, customers)| StageCount { stage, customers })
                    .collect(),
            })
            .collect())
    }

    /// How the customers the caller reaches moved between RFM cells from one instant to
    /// another (docs/analytics.md#rfm-movement), most customers first.
    async fn rfm_movement(
        &self,
        ctx: &Context<'_>,
        input: RfmMovementInput,
    ) -> async_graphql::Result<Vec<RfmMove>> {
        let actor = actor(ctx).gql()?;
        Ok(
            stage_rfm::rfm_movement(db(ctx), actor, input.from, input.to)
                .await
                .gql()?
                .into_iter()
                .map(|m| RfmMove {
                    from: m.from,
                    to: m.to,
                    customers: m.customers,
                })
                .collect(),
        )
    }
}
