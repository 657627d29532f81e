//! Repairs in GraphQL: a ticket's service items and spare parts (stock reserved), and the
//! bill they settle into.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{
    ErrorExt, actor, db,
    settlement::{BillValue, SettleLineInput, host},
};
use shoal_tickets::repairs::{self, BillInput, Kind, NewLine, RepairLine};

/// A service item (labour) or a spare part.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TicketLineKind {
    /// From the service-item library.
    Service,
    /// From the spare-part library.
    Part,
}

/// One line of a ticket's repair.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketLine {
    pub id: ID,
    pub kind: TicketLineKind,
    /// The service-item code or the part's SKU.
    pub code: String,
    pub quantity: Decimal,
    pub note: Option<String>,
    /// Whether stock is reserved for it (a counted part, until billed or removed).
    pub reserved: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<RepairLine> for TicketLine {
    fn from(l: RepairLine) -> Self {
        TicketLine {
            id: ID(l.id),
            kind: match l.kind {
                Kind::Service => TicketLineKind::Service,
                Kind::Part => TicketLineKind::Part,
            },
            code: l.code,
            quantity: l.quantity,
            note: l.note,
            reserved: l.reserved,
            created_by: l.created_by,
            created_at: l.created_at,
        }
    }
}

/// A line to record on a ticket.
#[derive(InputObject, Debug)]
pub struct TicketLineInput {
    pub kind: TicketLineKind,
    pub code: String,
    pub quantity: Decimal,
    pub note: Option<String>,
}

/// What billing a repair takes beside its lines.
#[derive(InputObject, Debug)]
pub struct SettleTicketInput {
    /// The settlement module; by default the tenant's only one.
    pub module: Option<String>,
    pub region: String,
    pub currency: String,
    /// Who shares the revenue (their ancestors are included).
    #[graphql(default)]
    pub participant_ids: Vec<ID>,
    /// More lines: transport, discounts, coupons, adjustments.
    #[graphql(default)]
    pub lines: Vec<SettleLineInput>,
    /// Facts for the module (a JSON object).
    pub facts: Option<Json<serde_json::Value>>,
}

/// The repair lines of a ticket (for `Ticket.repairLines`).
pub(crate) async fn lines_of(
    ctx: &Context<'_>,
    id: &str,
) -> async_graphql::Result<Vec<TicketLine>> {
    let actor = actor(ctx).gql()?;
    Ok(repairs::lines(db(ctx), actor, id)
        .await
        .gql()?
        .into_iter()
        .map(TicketLine::from)
        .collect())
}

#[derive(Default)]
pub struct RepairMutation;

#[Object]
impl RepairMutation {
    /// Records a service item or spare part on a ticket (permission `update`); a counted part
    /// reserves stock (refused, naming `input.quantity`, when not enough is available).
    async fn add_ticket_line(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: TicketLineInput,
    ) -> async_graphql::Result<TicketLine> {
        let actor = actor(ctx).gql()?;
        let line = NewLine {
            kind: match input.kind {
                TicketLineKind::Service => Kind::Service,
                TicketLineKind::Part => Kind::Part,
            },
            code: input.code,
            quantity: input.quantity,
            note: input.note,
        };
        Ok(repairs::add_line(db(ctx), actor, &id, line)
            .await
            .gql()?
            .into())
    }

    /// Removes a line of a ticket, giving back its reserved stock (not once billed).
    async fn remove_ticket_line(
        &self,
        ctx: &Context<'_>,
        id: ID,
        line_id: ID,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        repairs::remove_line(db(ctx), actor, &id, &line_id)
            .await
            .gql()?;
        Ok(true)
    }

    /// Bills a ticket's repair (permission `settle`): its lines and `input.lines`, settled by
    /// the tenant's module for the ticket's customer; the reserved parts leave stock; the
    /// ticket holds the bill (`billId`), the bill's reference is `ticket:<id>`. Once.
    async fn settle_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SettleTicketInput,
    ) -> async_graphql::Result<BillValue> {
        let actor = actor(ctx).gql()?;
        let input = BillInput {
            module: input.module,
            region: input.region,
            currency: input.currency,
            participant_ids: input.participant_ids.into_iter().map(|i| i.0).collect(),
            extra: input
                .lines
                .into_iter()
                .map(SettleLineInput::domain)
                .collect(),
            facts: input.facts.map(|j| j.0),
        };
        Ok(repairs::settle(db(ctx), host(ctx), actor, &id, input)
            .await
            .gql()?
            .into())
    }
}
