//! Segments in GraphQL.

use async_graphql::{ComplexObject, Context, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::{
    ErrorExt, actor,
    customers::{CustomerConnection, CustomerNode, CustomerOrderInput, connection_for},
    db,
};
use shoal_base::{
    kinds::{Channel, LifecycleStage, RfmCell},
    pagination::PageArgs,
};
use shoal_crm::customers;
use shoal_tags::segments::{self, Definition, Segment};

/// What makes a customer a member; every part given must hold.
#[derive(InputObject, Debug, Default, Clone)]
pub struct SegmentDefinitionInput {
    /// Tag names the customer must all hold.
    pub tags_all: Option<Vec<String>>,
    /// Tag names of which it holds at least one.
    pub tags_any: Option<Vec<String>>,
    /// Tag names it holds none of.
    pub tags_none: Option<Vec<String>>,
    pub rfm_cells: Option<Vec<RfmCell>>,
    pub stages: Option<Vec<LifecycleStage>>,
    pub channels: Option<Vec<Channel>>,
    /// Attributes that must be equal.
    pub attributes: Option<Json<Value>>,
    /// A rule of the rule language.
    pub rule: Option<String>,
}

impl From<SegmentDefinitionInput> for Definition {
    fn from(d: SegmentDefinitionInput) -> Self {
        Definition {
            tags_all: d.tags_all.unwrap_or_default(),
            tags_any: d.tags_any.unwrap_or_default(),
            tags_none: d.tags_none.unwrap_or_default(),
            rfm_cells: d
                .rfm_cells
                .unwrap_or_default()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            stages: d
                .stages
                .unwrap_or_default()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            channels: d
                .channels
                .unwrap_or_default()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            attributes: d
                .attributes
                .and_then(|j| j.0.as_object().cloned())
                .unwrap_or_default(),
            rule: d.rule,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct SegmentInput {
    pub name: String,
    pub definition: SegmentDefinitionInput,
}

/// A saved segment; its members are computed live.
#[derive(SimpleObject)]
#[graphql(complex, name = "Segment")]
pub struct SegmentValue {
    pub id: ID,
    pub name: String,
    pub definition: Json<Value>,
    #[graphql(skip)]
    segment: Segment,
}

impl From<Segment> for SegmentValue {
    fn from(s: Segment) -> Self {
        SegmentValue {
            id: ID(s.id.clone()),
            name: s.name.clone(),
            definition: Json(serde_json::to_value(&s.definition).unwrap_or_default()),
            segment: s,
        }
    }
}

#[ComplexObject]
impl SegmentValue {
    /// How many customers are members now.
    async fn count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        let filter = segments::filter_of(
            db(ctx),
            actor.tenant_id(),
            &self.segment.definition,
            "definition",
        )
        .await
        .gql()?;
        customers::count(db(ctx), actor, &filter).await.gql()
    }

    /// The members, as a Relay connection.
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<CustomerOrderInput>,
    ) -> async_graphql::Result<CustomerConnection> {
        let actor = actor(ctx).gql()?;
        let filter = segments::filter_of(
            db(ctx),
            actor.tenant_id(),
            &self.segment.definition,
            "definition",
        )
        .await
        .gql()?;
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

/// What a definition would select, before saving it.
#[derive(SimpleObject)]
pub struct SegmentPreview {
    pub count: i64,
    /// Up to 10 members, newest first.
    pub sample: Vec<CustomerNode>,
}

#[derive(Default)]
pub struct SegmentQuery;

#[Object]
impl SegmentQuery {
    async fn segments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SegmentValue>> {
        let actor = actor(ctx).gql()?;
        Ok(segments::list(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn segment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<SegmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(segments::get(db(ctx), actor.tenant_id(), &id)
            .await
            .gql()?
            .into())
    }

    /// Counts and samples a definition without saving it.
    async fn preview_segment(
        &self,
        ctx: &Context<'_>,
        definition: SegmentDefinitionInput,
    ) -> async_graphql::Result<SegmentPreview> {
        let actor = actor(ctx).gql()?;
        let filter =
            segments::filter_of(db(ctx), actor.tenant_id(), &definition.into(), "definition")
                .await
                .gql()?;
        let count = customers::count(db(ctx), actor, &filter).await.gql()?;
        let page = shoal_base::pagination::Page::new(
            &PageArgs {
                first: Some(10),
                ..PageArgs::default()
            },
            10,
            actor.tenant_id(),
            customers::CustomerOrder::default().cursor_name(),
        )
        .gql()?;
        let sample = customers::list(
            db(ctx),
            actor,
            &filter,
            customers::CustomerOrder::default(),
            &page,
        )
        .await
        .gql()?
        .items
        .into_iter()
        .map(|(c, _)| CustomerNode::new(c, None, &actor.access))
        .collect();
        Ok(SegmentPreview { count, sample })
    }
}

#[derive(Default)]
pub struct SegmentMutation;

#[Object]
impl SegmentMutation {
    async fn create_segment(
        &self,
        ctx: &Context<'_>,
        input: SegmentInput,
    ) -> async_graphql::Result<SegmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(
            segments::save(db(ctx), actor, None, &input.name, &input.definition.into())
                .await
                .gql()?
                .into(),
        )
    }

    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SegmentInput,
    ) -> async_graphql::Result<SegmentValue> {
        let actor = actor(ctx).gql()?;
        Ok(segments::save(
            db(ctx),
            actor,
            Some(&id),
            &input.name,
            &input.definition.into(),
        )
        .await
        .gql()?
        .into())
    }

    async fn delete_segment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        segments::delete(db(ctx), actor, &id).await.gql()?;
        Ok(true)
    }
}
