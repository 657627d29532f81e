//! Events in GraphQL: the timeline connection, `recordEvents` and the `eventRecorded`
//! subscription.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, stream};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{ErrorExt, EventBus, actor, db, identities::ExternalIdentity, limits, page::PageInfo};
use shoal_base::{
    error::{Error, Result},
    kinds::Channel,
    kinds::Resource,
    pagination::{Cursor, Paged},
};
use shoal_crm::events::{self, CustomerRef, Event, EventType, Money, NewEvent, Outcome};

/// An exact amount of money.
#[derive(SimpleObject, InputObject, Debug, Clone)]
#[graphql(input_name = "MoneyInput")]
pub struct MoneyValue {
    /// A decimal string, e.g. `"199.90"`; at most 4 decimal places.
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
}

/// Something that happened to a customer.
pub struct EventNode(pub Event);

#[Object(name = "Event")]
impl EventNode {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.clone())
    }
    #[graphql(name = "type")]
    async fn event_type(&self) -> EventType {
        self.0.event_type
    }
    /// Which custom event, or a label.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// When Shoal stored it.
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    async fn channel(&self) -> Option<Channel> {
        self.0.channel
    }
    async fn amount(&self) -> Option<MoneyValue> {
        self.0.amount.as_ref().map(|m| MoneyValue {
            amount: m.amount,
            currency: m.currency.clone(),
        })
    }
    async fn payload(&self) -> Json<Value> {
        Json(self.0.payload.clone())
    }
    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }
}

#[derive(SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: EventNode,
}

#[derive(SimpleObject)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
}

impl EventConnection {
    pub fn new(paged: Paged<(Event, Cursor)>) -> EventConnection {
        let page_info = PageInfo::of(&paged);
        EventConnection {
            edges: paged
                .items
                .into_iter()
                .map(|(e, c)| EventEdge {
                    cursor: c.encode(),
                    node: EventNode(e),
                })
                .collect(),
            page_info,
        }
    }
}

/// One event to record. Name the customer by `customerId` or by an external `identity`.
#[derive(InputObject, Debug)]
pub struct RecordEventInput {
    pub customer_id: Option<ID>,
    pub identity: Option<ExternalIdentity>,
    #[graphql(name = "type")]
    pub event_type: EventType,
    /// Required for `CUSTOM` events (e.g. `trial_link_opened`); a label otherwise.
    pub name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub channel: Option<Channel>,
    /// Required for `ORDER` and `REFUND`.
    pub amount: Option<MoneyValue>,
    /// A JSON object with event details.
    pub payload: Option<Json<Value>>,
    /// Re-sending an event with a key already used is a no-op.
    pub idempotency_key: Option<String>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// Stored now.
    Created,
    /// Its idempotency key was used before; `event` is the one stored then.
    Duplicate,
}

#[derive(SimpleObject)]
pub struct RecordEventResult {
    /// Position of the event in the input list.
    pub index: i32,
    pub status: RecordStatus,
    pub event: EventNode,
}

#[derive(SimpleObject)]
pub struct RecordEventsPayload {
    pub results: Vec<RecordEventResult>,
    pub created_count: i32,
    pub duplicate_count: i32,
}

#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    /// Records a batch of events in one transaction: all are stored, or none. On invalid
    /// input, `extensions.errors` lists every problem with its path (`input[3].amount`).
    async fn record_events(
        &self,
        ctx: &Context<'_>,
        input: Vec<RecordEventInput>,
    ) -> async_graphql::Result<RecordEventsPayload> {
        let actor = actor(ctx).gql()?;
        let inputs = input
            .into_iter()
            .enumerate()
            .map(|(i, e)| to_new_event(i, e))
            .collect::<Result<Vec<_>>>()
            .gql()?;
        let recorded = events::record(db(ctx), actor, &inputs, limits(ctx).max_batch_events)
            .await
            .gql()?;
        // the dispatcher evaluates the customers' stages and tags (docs/tags.md)
        if recorded.iter().any(|(o, _)| *o == Outcome::Created) {
            ctx.data_unchecked::<shoal_base::wake::Wakers>()
                .wake(actor.tenant_id());
        }
        let bus = ctx.data_unchecked::<EventBus>();
        let mut payload = RecordEventsPayload {
            results: Vec::with_capacity(recorded.len()),
            created_count: 0,
            duplicate_count: 0,
        };
        for (i, (outcome, event)) in recorded.into_iter().enumerate() {
            let status = match outcome {
                Outcome::Created => {
                    payload.created_count += 1;
                    // Nobody listening is fine: send only fails without receivers.
                    let _ = bus.send(Arc::new((actor.tenant_id().to_owned(), event.clone())));
                    RecordStatus::Created
                }
                Outcome::Duplicate => {
                    payload.duplicate_count += 1;
                    RecordStatus::Duplicate
                }
            };
            payload.results.push(RecordEventResult {
                index: i as i32,
                status,
                event: EventNode(event),
            });
        }
        Ok(payload)
    }
}

fn to_new_event(i: usize, e: RecordEventInput) -> Result<NewEvent> {
    let customer = match (e.customer_id, e.identity) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                format!("input[{i}].identity"),
                "give either customerId or identity, not both",
            ));
        }
        (Some(id), None) => Some(CustomerRef::Id(id.0)),
        (None, Some(identity)) => Some(CustomerRef::Identity(identity.into())),
        (None, None) => None,
    };
    Ok(NewEvent {
        customer,
        event_type: e.event_type,
        name: e.name,
        occurred_at: e.occurred_at,
        channel: e.channel,
        amount: e.amount.map(|m| Money {
            amount: m.amount,
            currency: m.currency,
        }),
        payload: e.payload.map(|j| j.0),
        idempotency_key: e.idempotency_key,
    })
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Events of the caller's tenant as this host records them, optionally for one customer
    /// or some types only. A subscriber too slow for this host's buffer is told how many it
    /// missed (a `LAGGED` error) and goes on; `changes` is the lossless, cross-host feed.
    async fn event_recorded(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        types: Option<Vec<EventType>>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<EventNode>> + use<>> {
        let actor = actor(ctx).gql()?.clone();
        let tenant = actor.tenant_id().to_owned();
        let db = db(ctx).clone();
        let rx = ctx.data_unchecked::<EventBus>().subscribe();
        let types = types.unwrap_or_default();
        Ok(stream::unfold(rx, move |mut rx| {
            let (tenant, customer_id, types) = (tenant.clone(), customer_id.clone(), types.clone());
            let (actor, db) = (actor.clone(), db.clone());
            async move {
                loop {
                    match rx.recv().await {
                        Ok(item) => {
                            let (t, event) = &*item;
                            let wanted = *t == tenant
                                && customer_id
                                    .as_ref()
                                    .is_none_or(|c| c.0 == event.customer_id)
                                && (types.is_empty() || types.contains(&event.event_type));
                            // the subscriber's scope applies to pushed events too
                            let visible = wanted
                                && actor
                                    .access
                                    .ensure_customer(&db, Resource::Events, &event.customer_id)
                                    .await
                                    .is_ok();
                            if visible {
                                return Some((Ok(EventNode(event.clone())), rx));
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            use async_graphql::ErrorExtensions as _;
                            let lagged = async_graphql::Error::new(format!(
                                "LAGGED: {n} events were dropped for this slow subscriber; subscribe to `changes` with a cursor to receive every change"
                            ))
                            .extend_with(|_, e| {
                                e.set("code", "LAGGED");
                                e.set("missed", n);
                            });
                            return Some((Err(lagged), rx));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}
