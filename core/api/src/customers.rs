//! Customers in GraphQL: `customer`, `customers`, their timeline and history, and the
//! create / update / delete mutations.

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ErrorExt, actor, db,
    events::EventConnection,
    filter::{CustomerFilterInput, filter_of},
    identities::ExternalIdentity,
    page::{PageInfo, page},
    viewer::User,
};
use shoal_base::{
    error::Error,
    kinds::Resource,
    pagination::{Cursor, PageArgs, Paged},
};
use shoal_crm::{
    access::Access,
    audit,
    customers::{
        self, Channel, Customer, CustomerFilter, CustomerOrder, CustomerPatch, Identity,
        LifecycleStage, NewCustomer, OrderField,
    },
    events::{self, EventType},
    tenancy::Actor,
};

/// A unified customer profile.
pub struct CustomerNode {
    customer: Customer,
    /// Prefetched for list pages; loaded on demand otherwise.
    identities: Option<Vec<Identity>>,
    /// Prefetched for list pages (every customer's on the page in one query); loaded on
    /// demand otherwise.
    tags: Option<Vec<shoal_tags::Held>>,
}

impl CustomerNode {
    /// The customer as `access` may see it (the only way to make a node, so every customer
    /// the API returns is masked for its reader); identities load on demand when `None`.
    pub fn new(
        mut customer: Customer,
        identities: Option<Vec<Identity>>,
        access: &Access,
    ) -> CustomerNode {
        access.mask_customer(&mut customer);
        let identities = identities.map(|mut ids| {
            access.mask_identities(&mut ids);
            ids
        });
        CustomerNode {
            customer,
            identities,
            tags: None,
        }
    }
}

#[Object(name = "Customer")]
impl CustomerNode {
    async fn id(&self) -> ID {
        ID(self.customer.id.clone())
    }

    async fn display_name(&self) -> &str {
        &self.customer.display_name
    }

    /// Phone numbers in E.164 form.
    async fn phones(&self) -> &[String] {
        &self.customer.phones
    }

    /// Email addresses, lowercase.
    async fn emails(&self) -> &[String] {
        &self.customer.emails
    }

    /// Free-form attributes (a JSON object).
    async fn attributes(&self) -> Json<&customers::Attributes> {
        Json(&self.customer.attributes)
    }

    async fn lifecycle_stage(&self) -> LifecycleStage {
        self.customer.lifecycle_stage
    }

    /// Whether the stage was set by hand (lifecycle rules leave it alone).
    async fn lifecycle_stage_manual(&self) -> bool {
        self.customer.stage_manual
    }

    async fn owner_id(&self) -> Option<ID> {
        self.customer.owner_id.clone().map(ID)
    }

    /// The staff member responsible for this customer.
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let actor = actor(ctx).gql()?;
        match self.customer.owner_id.as_deref() {
            Some(id) => Ok(User::find(db(ctx), actor.tenant_id(), id).await.gql()?),
            None => Ok(None),
        }
    }

    async fn source_channel(&self) -> Channel {
        self.customer.source_channel
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.customer.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.customer.updated_at
    }

    /// Incremented by every change.
    async fn version(&self) -> i64 {
        self.customer.version
    }

    /// External accounts linked to this customer.
    async fn identities(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ExternalIdentity>> {
        if let Some(ids) = &self.identities {
            return Ok(ids.iter().cloned().map(Into::into).collect());
        }
        let actor = actor(ctx).gql()?;
        let mut loaded: Vec<Identity> =
            customers::identities_of(db(ctx), actor.tenant_id(), &[&self.customer.id])
                .await
                .gql()?
                .into_iter()
                .map(|(_, i)| i)
                .collect();
        actor.access.mask_identities(&mut loaded);
        Ok(loaded.into_iter().map(Into::into).collect())
    }

    /// The customer's events, newest first.
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(desc = "Only events of these types.")] types: Option<Vec<EventType>>,
    ) -> async_graphql::Result<EventConnection> {
        let actor = actor(ctx).gql()?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = page(ctx, actor, args, events::TIMELINE_ORDER)?;
        let paged = events::timeline(
            db(ctx),
            actor,
            &self.customer.id,
            &types.unwrap_or_default(),
            &page,
        )
        .await
        .gql()?;
        Ok(EventConnection::new(paged))
    }

    /// The customer's consent ledger, newest first (see `recordConsent`).
    async fn consents(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::privacy::Consent>> {
        let actor = actor(ctx).gql()?;
        Ok(
            shoal_crm::consent::ledger(db(ctx), actor.tenant_id(), &self.customer.id)
                .await
                .gql()?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    /// The tags the customer holds.
    async fn tags(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CustomerTag>> {
        let held = match &self.tags {
            Some(held) => held.clone(),
            None => {
                let actor = actor(ctx).gql()?;
                shoal_tags::tags_of(db(ctx), actor.tenant_id(), &[&self.customer.id])
                    .await
                    .gql()?
                    .remove(&self.customer.id)
                    .unwrap_or_default()
            }
        };
        Ok(held
            .into_iter()
            .map(|h| CustomerTag {
                tag: h.tag.into(),
                source: h.source,
                applied_at: h.applied_at,
            })
            .collect())
    }

    /// Tag changes, newest first: which tag, added or removed, by what (`manual`, `rule`,
    /// `plugin:<module>`), under which rule version.
    async fn tag_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i32,
    ) -> async_graphql::Result<Vec<TagChange>> {
        let actor = actor(ctx).gql()?;
        Ok(
            shoal_tags::history(db(ctx), actor.tenant_id(), &self.customer.id, first.into())
                .await
                .gql()?
                .into_iter()
                .map(|h| TagChange {
                    tag: h.tag,
                    change: h.change,
                    source: h.source,
                    rule_version: h.rule_version,
                    actor_id: h.actor_id,
                    at: h.at,
                })
                .collect(),
        )
    }

    /// Recency, frequency and monetary scores (1–5) and the RFM cell; none without orders.
    async fn rfm(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<RfmValue>> {
        let actor = actor(ctx).gql()?;
        Ok(
            shoal_tags::rfm::of(db(ctx), actor.tenant_id(), &self.customer.id)
                .await
                .gql()?
                .map(|r| RfmValue {
                    recency_days: r.recency_days,
                    frequency: r.frequency,
                    monetary: shoal_tags::rfm::monetary(&r),
                    r: r.r,
                    f: r.f,
                    m: r.m,
                    cell: r.cell,
                    computed_at: r.computed_at,
                }),
        )
    }

    /// Recorded changes to this customer, newest first.
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i32,
    ) -> async_graphql::Result<Vec<AuditEntry>> {
        let actor = actor(ctx).gql()?;
        let mut conn = db(ctx).pool.acquire().await.map_err(Error::from).gql()?;
        let entries = audit::customer_history(
            &mut conn,
            &db(ctx).vault,
            actor.tenant_id(),
            &self.customer.id,
            first.into(),
        )
        .await
        .map_err(Error::from)
        .gql()?;
        Ok(entries
            .into_iter()
            .map(|mut e| {
                audit::masked_for(actor, &mut e);
                AuditEntry::from(e)
            })
            .collect())
    }
}

/// RFM scores, recomputed with the tags.
#[derive(SimpleObject, Debug, Clone)]
pub struct RfmValue {
    pub recency_days: i64,
    pub frequency: i64,
    /// Sum of order amounts.
    pub monetary: rust_decimal::Decimal,
    pub r: i64,
    pub f: i64,
    pub m: i64,
    pub cell: shoal_base::kinds::RfmCell,
    pub computed_at: DateTime<Utc>,
}

/// A tag a customer holds.
#[derive(SimpleObject, Debug, Clone)]
pub struct CustomerTag {
    pub tag: super::tags::TagValue,
    /// `manual`, `rule` or `plugin:<module>`.
    pub source: String,
    pub applied_at: DateTime<Utc>,
}

/// A tag added to or removed from a customer.
#[derive(SimpleObject, Debug, Clone)]
pub struct TagChange {
    pub tag: String,
    /// `added` or `removed`.
    pub change: String,
    pub source: String,
    pub rule_version: Option<i64>,
    pub actor_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// One recorded change, masked as the reader sees it.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditEntry {
    pub id: ID,
    pub at: DateTime<Utc>,
    /// The user who made the change (`sop`, `system`: the host itself).
    pub actor_id: String,
    /// `customer.create`, `customer.update`, `customer.delete`, `events.record`, `role.put`, …
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// What changed: for updates `{field: {from, to}}`, else the fields as they were.
    pub changes: Json<Value>,
    /// The request that made the change (`X-Request-Id`).
    pub request_id: Option<String>,
}

impl From<audit::AuditEntry> for AuditEntry {
    fn from(e: audit::AuditEntry) -> Self {
        AuditEntry {
            id: ID(e.id),
            at: e.at,
            actor_id: e.actor_id,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            changes: Json(e.changes),
            request_id: e.request_id,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CustomerConnection {
    pub edges: Vec<CustomerEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    filter: CustomerFilter,
}

#[ComplexObject]
impl CustomerConnection {
    /// How many customers match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        customers::count(db(ctx), actor, &self.filter).await.gql()
    }
}

// `serial`: an edge's two fields read nothing, so they resolve one after the other (no set
// of concurrent field futures per edge of a page).
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct CustomerEdge {
    pub cursor: String,
    pub node: CustomerNode,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerOrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
    DisplayName,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

#[derive(InputObject, Debug, Clone, Copy, Default)]
pub struct CustomerOrderInput {
    #[graphql(default)]
    pub field: CustomerOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl From<CustomerOrderInput> for CustomerOrder {
    fn from(o: CustomerOrderInput) -> Self {
        CustomerOrder {
            field: match o.field {
                CustomerOrderField::CreatedAt => OrderField::CreatedAt,
                CustomerOrderField::UpdatedAt => OrderField::UpdatedAt,
                CustomerOrderField::DisplayName => OrderField::DisplayName,
            },
            descending: o.direction == OrderDirection::Desc,
        }
    }
}

#[derive(Default)]
pub struct CustomerQuery;

#[Object]
impl CustomerQuery {
    /// One customer of the caller's tenant.
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<CustomerNode> {
        let actor = actor(ctx).gql()?;
        let customer = customers::get_visible(db(ctx), actor, &id).await.gql()?;
        Ok(CustomerNode::new(customer, None, &actor.access))
    }

    /// Customers of the caller's tenant, as a Relay connection (default: newest first).
    #[allow(clippy::too_many_arguments)] // Relay's four paging arguments plus filter and order
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CustomerFilterInput>,
        order_by: Option<CustomerOrderInput>,
    ) -> async_graphql::Result<CustomerConnection> {
        let actor = actor(ctx).gql()?;
        let filter = filter_of(ctx, actor, filter.unwrap_or_default()).await?;
        connection_for(
            ctx,
            actor,
            filter,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            order_by,
        )
        .await
    }
}

/// A customer connection for a domain filter (shared by `customers` and `segment.customers`).
pub async fn connection_for(
    ctx: &Context<'_>,
    actor: &Actor,
    filter: CustomerFilter,
    args: PageArgs,
    order_by: Option<CustomerOrderInput>,
) -> async_graphql::Result<CustomerConnection> {
    {
        let db = db(ctx);
        let order: CustomerOrder = order_by.unwrap_or_default().into();
        let page = page(ctx, actor, args, order.cursor_name())?;
        let paged = customers::list(db, actor, &filter, order, &page)
            .await
            .gql()?;
        let wants = |field: &str| {
            ctx.look_ahead()
                .field("edges")
                .field("node")
                .field(field)
                .exists()
        };
        let ids: Vec<&str> = paged.items.iter().map(|(c, _)| c.id.as_str()).collect();
        let identities = if wants("identities") {
            Some(
                customers::identities_of(db, actor.tenant_id(), &ids)
                    .await
                    .gql()?,
            )
        } else {
            None
        };
        let tags = if wants("tags") {
            Some(
                shoal_tags::tags_of(db, actor.tenant_id(), &ids)
                    .await
                    .gql()?,
            )
        } else {
            None
        };
        Ok(connection(paged, identities, tags, filter, &actor.access))
    }
}

fn connection(
    paged: Paged<(Customer, Cursor)>,
    identities: Option<Vec<(String, Identity)>>,
    mut tags: Option<std::collections::HashMap<String, Vec<shoal_tags::Held>>>,
    filter: CustomerFilter,
    access: &Access,
) -> CustomerConnection {
    let page_info = PageInfo::of(&paged);
    let edges = paged
        .items
        .into_iter()
        .map(|(customer, cursor)| {
            let mine = identities.as_ref().map(|all| {
                all.iter()
                    .filter(|(owner, _)| *owner == customer.id)
                    .map(|(_, i)| i.clone())
                    .collect()
            });
            let held = tags
                .as_mut()
                .map(|all| all.remove(&customer.id).unwrap_or_default());
            CustomerEdge {
                cursor: cursor.encode(),
                node: CustomerNode {
                    tags: held,
                    ..CustomerNode::new(customer, mine, access)
                },
            }
        })
        .collect();
    CustomerConnection {
        edges,
        page_info,
        filter,
    }
}

#[derive(InputObject, Debug)]
pub struct CreateCustomerInput {
    pub display_name: String,
    #[graphql(default)]
    pub phones: Vec<String>,
    #[graphql(default)]
    pub emails: Vec<String>,
    #[graphql(default)]
    pub identities: Vec<ExternalIdentity>,
    /// A JSON object of free-form attributes.
    pub attributes: Option<Json<Value>>,
    #[graphql(default_with = "LifecycleStage::Lead")]
    pub lifecycle_stage: LifecycleStage,
    pub owner_id: Option<ID>,
    pub source_channel: Channel,
}

/// Changes to a customer; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateCustomerInput {
    pub display_name: Option<String>,
    /// Replaces the list.
    pub phones: Option<Vec<String>>,
    /// Replaces the list.
    pub emails: Option<Vec<String>>,
    /// Merged into the current attributes; a key set to `null` is removed.
    pub attributes: Option<Json<Value>>,
    pub lifecycle_stage: Option<LifecycleStage>,
    /// `null` clears the owner.
    pub owner_id: MaybeUndefined<ID>,
    pub source_channel: Option<Channel>,
    /// `true`: the stage is no longer set by hand; lifecycle rules derive it again.
    #[graphql(default)]
    pub derive_lifecycle_stage: bool,
    #[graphql(default)]
    pub add_identities: Vec<ExternalIdentity>,
    #[graphql(default)]
    pub remove_identities: Vec<ExternalIdentity>,
}

#[derive(SimpleObject, Debug)]
pub struct DeleteCustomerPayload {
    /// The id of the deleted customer.
    pub id: ID,
}

#[derive(Default)]
pub struct CustomerMutation;

#[Object]
impl CustomerMutation {
    /// Creates a customer. Phones are normalised to E.164 (numbers without a country code are
    /// read in the tenant's default region), emails lowercased; every invalid field is
    /// reported in `extensions.errors`.
    async fn create_customer(
        &self,
        ctx: &Context<'_>,
        input: CreateCustomerInput,
    ) -> async_graphql::Result<CustomerNode> {
        let actor = actor(ctx).gql()?;
        let new = NewCustomer {
            display_name: input.display_name,
            phones: input.phones,
            emails: input.emails,
            identities: input.identities.into_iter().map(Into::into).collect(),
            attributes: input.attributes.map(|j| j.0),
            lifecycle_stage: input.lifecycle_stage,
            owner_id: input.owner_id.map(|id| id.0),
            source_channel: input.source_channel,
        };
        let customer = customers::create(db(ctx), actor, &new).await.gql()?;
        super::suggest_after_change(ctx, actor, std::slice::from_ref(&customer.id)).await;
        node_with_identities(ctx, actor, customer).await
    }

    /// Changes a customer; the change and its audit entry are stored together.
    async fn update_customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCustomerInput,
    ) -> async_graphql::Result<CustomerNode> {
        let actor = actor(ctx).gql()?;
        let patch = CustomerPatch {
            display_name: input.display_name,
            phones: input.phones,
            emails: input.emails,
            attributes: input.attributes.map(|j| j.0),
            lifecycle_stage: input.lifecycle_stage,
            owner_id: match input.owner_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(id) => Some(Some(id.0)),
            },
            source_channel: input.source_channel,
            release_stage: input.derive_lifecycle_stage,
            add_identities: input.add_identities.into_iter().map(Into::into).collect(),
            remove_identities: input
                .remove_identities
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        let scoped = actor
            .access
            .scope_customer(db(ctx), Resource::Customers, id.0)
            .await
            .gql()?;
        let customer = customers::update(db(ctx), actor, &scoped, &patch)
            .await
            .gql()?;
        super::tags_after_change(ctx, actor, std::slice::from_ref(&customer.id)).await;
        if patch.display_name.is_some() || patch.phones.is_some() || patch.emails.is_some() {
            super::suggest_after_change(ctx, actor, std::slice::from_ref(&customer.id)).await;
        }
        node_with_identities(ctx, actor, customer).await
    }

    /// Deletes a customer (soft: it disappears from every query; history is kept).
    async fn delete_customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeleteCustomerPayload> {
        let actor = actor(ctx).gql()?;
        let scoped = actor
            .access
            .scope_customer(db(ctx), Resource::Customers, id.0.clone())
            .await
            .gql()?;
        customers::delete(db(ctx), actor, &scoped).await.gql()?;
        Ok(DeleteCustomerPayload { id })
    }
}

async fn node_with_identities(
    ctx: &Context<'_>,
    actor: &Actor,
    customer: Customer,
) -> async_graphql::Result<CustomerNode> {
    let identities = customers::identities_of(db(ctx), actor.tenant_id(), &[&customer.id])
        .await
        .gql()?
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    Ok(CustomerNode::new(customer, Some(identities), &actor.access))
}
