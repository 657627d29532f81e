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
use shoal_tickets::proposals;

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

/// A template made into a ticket type, and what of its suggestions was set up.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketTemplateInstance {
    #[graphql(name = "type")]
    pub ticket_type: TicketType,
    /// The SLA policy added for the type.
    pub sla_policy: Option<String>,
    /// The routing rules added for the type.
    pub routing_rules: Vec<String>,
    /// Suggestions not set up, and why.
    pub skipped: Vec<String>,
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
    /// to the template. With `withDefaults` (the default), the SLA policy the template
    /// suggests is added (named after the type) and its routing rules too (when the queue
    /// exists), each before the first catch-all of its list; what could not be set up is
    /// listed in `skipped`.
    async fn instantiate_ticket_template(
        &self,
        ctx: &Context<'_>,
        module: String,
        template: String,
        key: Option<String>,
        name: Option<String>,
        #[graphql(default = true)] with_defaults: bool,
    ) -> async_graphql::Result<TicketTemplateInstance> {
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
        let made =
            proposals::instantiate(db(ctx), actor, &module, &found, key, name, with_defaults)
                .await
                .gql()?;
        Ok(TicketTemplateInstance {
            ticket_type: made.ticket_type.into(),
            sla_policy: made.sla_policy,
            routing_rules: made.routing_rules,
            skipped: made.skipped,
        })
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
