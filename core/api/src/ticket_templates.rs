//! Module ticket templates in GraphQL (listed as `Module.ticketTemplates`): a ticket type
//! made from one, and the field values the module proposes for its tickets.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::{
    ErrorExt, actor, db,
    settlement::host,
    tickets::{Ticket, TicketType},
};
use shoal_base::error::Error;
use shoal_tickets::{proposals, store};

/// Field values a module proposes for a ticket, for staff to review (and apply with
/// `applyTicketProposal`).
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketProposal {
    pub module: String,
    pub module_version: String,
    /// Values by field key, as `setTicketFields` takes them.
    pub fields: Json<Value>,
    /// How the module reached them.
    pub notes: Vec<String>,
}

impl From<proposals::Proposal> for TicketProposal {
    fn from(p: proposals::Proposal) -> Self {
        TicketProposal {
            module: p.module,
            module_version: p.module_version,
            fields: Json(Value::Object(p.fields)),
            notes: p.notes,
        }
    }
}

#[derive(Default)]
pub struct TicketTemplateQuery;

#[Object]
impl TicketTemplateQuery {
    /// What the module behind a ticket's type proposes for it (a refund amount from the
    /// learner's lessons and payments), from the ticket and its customer as the caller sees
    /// them; nothing is written.
    async fn ticket_proposal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "String::from(\"CNY\")")] currency: String,
    ) -> async_graphql::Result<TicketProposal> {
        let actor = actor(ctx).gql()?;
        Ok(
            proposals::propose(db(ctx), host(ctx), actor, &id, &currency)
                .await
                .gql()?
                .into(),
        )
    }
}

#[derive(Default)]
pub struct TicketTemplateMutation;

#[Object]
impl TicketTemplateMutation {
    /// Makes a module's ticket template one of the tenant's ticket types (permission
    /// `configure`): its fields and the standard workflow, under `key` (the template's id
    /// when left out); the type may then be re-saved with `saveTicketType` and stays linked
    /// to the template.
    async fn instantiate_ticket_template(
        &self,
        ctx: &Context<'_>,
        module: String,
        template: String,
        key: Option<String>,
        name: Option<String>,
    ) -> async_graphql::Result<TicketType> {
        let actor = actor(ctx).gql()?;
        let found = super::plugins::enabled_module(ctx, actor, &module)
            .gql()?
            .ticket_templates
            .into_iter()
            .find(|t| t.id == template)
            .ok_or_else(|| {
                Error::invalid(
                    "template",
                    format!("module `{module}` has no ticket template `{template}`"),
                )
            })
            .gql()?;
        let ty = proposals::type_from_template(&module, &found, key, name);
        Ok(store::save_type(db(ctx), actor, &ty).await.gql()?.into())
    }

    /// Asks the module again and writes its proposal into the ticket's fields (permission
    /// `update`); the history entry names the module version and its notes.
    async fn apply_ticket_proposal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "String::from(\"CNY\")")] currency: String,
    ) -> async_graphql::Result<Ticket> {
        let actor = actor(ctx).gql()?;
        let (tk, _) = proposals::apply(db(ctx), host(ctx), actor, &id, &currency)
            .await
            .gql()?;
        Ok(Ticket(tk))
    }
}
