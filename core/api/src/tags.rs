//! Tags in GraphQL.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, db, filter::CustomerFilterInput};
use shoal_base::error::{Error, Result};
use shoal_base::kinds::Resource;
use shoal_rules::{self as rules, ast::Cond, ast::Num};
use shoal_tags::{self as tags, Tag, TagInput, TagKind, Target, TemplateRef};

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKindValue {
    Manual,
    Dynamic,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct TagTemplateRef {
    pub module: String,
    pub template: String,
    pub params: Json<Value>,
}

/// A tag: manual, or dynamic (held exactly by the customers its rule selects).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Tag")]
pub struct TagValue {
    pub id: ID,
    pub name: String,
    pub kind: TagKindValue,
    /// The rule of a dynamic tag (docs/rules.md).
    pub rule: Option<String>,
    pub rule_version: i64,
    pub group: Option<String>,
    pub color: Option<String>,
    pub description: String,
    /// The module template it was instantiated from, with the parameter values used.
    pub template: Option<TagTemplateRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Tag> for TagValue {
    fn from(t: Tag) -> Self {
        TagValue {
            id: ID(t.id),
            name: t.name,
            kind: match t.kind {
                TagKind::Manual => TagKindValue::Manual,
                TagKind::Dynamic => TagKindValue::Dynamic,
            },
            rule: t.rule,
            rule_version: t.rule_version,
            group: t.group,
            color: t.color,
            description: t.description,
            template: t.template.map(|r| TagTemplateRef {
                module: r.module,
                template: r.template,
                params: Json(serde_json::to_value(r.params).unwrap_or_default()),
            }),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct TagGroup {
    pub name: String,
    /// A customer holds at most one tag of an exclusive group.
    pub exclusive: bool,
    pub description: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RuleErrorValue {
    pub line: i32,
    pub column: i32,
    pub message: String,
}

/// What a valid rule looks at.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct RuleSummary {
    /// Event types (and `custom:<name>`) the rule aggregates.
    pub event_types: Vec<String>,
    pub functions: Vec<String>,
    pub attributes: Vec<String>,
    pub tags: Vec<String>,
    pub uses_stage: bool,
    pub uses_channel: bool,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RuleValidation {
    pub valid: bool,
    pub errors: Vec<RuleErrorValue>,
    pub summary: Option<RuleSummary>,
}

fn summarize(cond: &Cond, s: &mut RuleSummary) {
    let push = |list: &mut Vec<String>, v: String| {
        if !list.contains(&v) {
            list.push(v);
        }
    };
    let event = |f: &rules::ast::EventFilter| match &f.name {
        Some(n) => format!("custom:{n}"),
        None => f.event_type.as_str().to_owned(),
    };
    match cond {
        Cond::And(a, b) | Cond::Or(a, b) => {
            summarize(a, s);
            summarize(b, s);
        }
        Cond::Not(a) => summarize(a, s),
        Cond::Compare(a, _, b) => {
            for n in [a, b] {
                let (f, e) = match n {
                    Num::Count(e, _) => ("count", Some(e)),
                    Num::SumUnits(e, _) => ("sum", Some(e)),
                    Num::DaysSince(e) => ("days_since", Some(e)),
                    Num::DaysSinceCreated => ("days_since_created", None),
                    Num::Lit(_) => continue,
                };
                push(&mut s.functions, f.into());
                if let Some(e) = e {
                    push(&mut s.event_types, event(e));
                }
            }
        }
        Cond::Exists(e, _) => {
            push(&mut s.functions, "exists".into());
            push(&mut s.event_types, event(e));
        }
        Cond::HasTag { name, .. } => push(&mut s.tags, name.clone()),
        Cond::StageIn(..) => s.uses_stage = true,
        Cond::ChannelIn(..) => s.uses_channel = true,
        Cond::Attr { key, .. } => push(&mut s.attributes, key.clone()),
        Cond::Bool(_) => {}
    }
}

#[derive(InputObject, Debug, Default)]
pub struct TagInputValue {
    pub name: Option<String>,
    /// A rule makes the tag dynamic.
    pub rule: Option<String>,
    pub group: Option<String>,
    /// `#rrggbb`.
    pub color: Option<String>,
    pub description: Option<String>,
}

impl From<TagInputValue> for TagInput {
    fn from(i: TagInputValue) -> Self {
        TagInput {
            name: i.name,
            rule: i.rule,
            group: i.group.map(Some),
            color: i.color.map(Some),
            description: i.description,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RecomputeResult {
    pub tag: String,
    pub added: i64,
    pub removed: i64,
}

#[derive(Default)]
pub struct TagQuery;

#[Object]
impl TagQuery {
    /// The tenant's tags.
    async fn tags(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TagValue>> {
        let actor = actor(ctx).gql()?;
        Ok(tags::list(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn tag_groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TagGroup>> {
        let actor = actor(ctx).gql()?;
        let mut conn = db(ctx).pool.acquire().await.map_err(Error::from).gql()?;
        Ok(tags::groups(&mut conn, actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(|(name, exclusive, description)| TagGroup {
                name,
                exclusive,
                description,
            })
            .collect())
    }

    /// Checks a rule against the language and the tenant's tags.
    async fn validate_rule(
        &self,
        ctx: &Context<'_>,
        text: String,
    ) -> async_graphql::Result<RuleValidation> {
        let actor = actor(ctx).gql()?;
        let all = tags::list(db(ctx), actor.tenant_id()).await.gql()?;
        let lookup = |name: &str| all.iter().find(|t| t.name == name).map(|t| t.id.clone());
        Ok(
            match rules::parse(&text, &lookup, &actor.tenant.contact.sealed_attributes) {
                Ok(rule) => {
                    let mut summary = RuleSummary::default();
                    summarize(&rule.cond, &mut summary);
                    RuleValidation {
                        valid: true,
                        errors: Vec::new(),
                        summary: Some(summary),
                    }
                }
                Err(e) => RuleValidation {
                    valid: false,
                    errors: vec![RuleErrorValue {
                        line: e.line as i32,
                        column: e.column as i32,
                        message: e.message,
                    }],
                    summary: None,
                },
            },
        )
    }
}

#[derive(Default)]
pub struct TagMutation;

fn target(
    customer_ids: Option<Vec<ID>>,
    filter: Option<CustomerFilterInput>,
) -> Result<(Option<Vec<String>>, Option<CustomerFilterInput>)> {
    match (customer_ids, filter) {
        (Some(ids), None) => Ok((Some(ids.into_iter().map(|i| i.0).collect()), None)),
        (None, Some(f)) => Ok((None, Some(f))),
        _ => Err(Error::invalid(
            "customerIds",
            "give exactly one of customerIds or filter",
        )),
    }
}

async fn apply(
    ctx: &Context<'_>,
    tag_id: ID,
    customer_ids: Option<Vec<ID>>,
    filter: Option<CustomerFilterInput>,
    on: bool,
) -> async_graphql::Result<i64> {
    let actor = actor(ctx).gql()?;
    let (ids, filter) = target(customer_ids, filter).gql()?;
    let target = match (ids, filter) {
        (Some(ids), _) => Target::Ids(
            actor
                .access
                .scope_customers(db(ctx), Resource::Customers, ids)
                .await
                .gql()?,
        ),
        (None, Some(f)) => Target::Filter(Box::new(super::filter::filter_of(ctx, actor, f).await?)),
        (None, None) => unreachable!("checked by target()"),
    };
    Ok(tags::apply_manual(db(ctx), actor, &tag_id, &target, on)
        .await
        .gql()? as i64)
}

#[Object]
impl TagMutation {
    /// Creates a tag; with a `rule` it is dynamic (run `recomputeTags` to apply it to
    /// everyone at once; new events re-evaluate their customer).
    async fn create_tag(
        &self,
        ctx: &Context<'_>,
        input: TagInputValue,
    ) -> async_graphql::Result<TagValue> {
        let actor = actor(ctx).gql()?;
        Ok(tags::create(db(ctx), actor, &input.into(), None)
            .await
            .gql()?
            .into())
    }

    /// Changes a tag; a new rule gets a new rule version.
    async fn update_tag(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: TagInputValue,
    ) -> async_graphql::Result<TagValue> {
        let actor = actor(ctx).gql()?;
        Ok(tags::update(db(ctx), actor, &id, &input.into())
            .await
            .gql()?
            .into())
    }

    /// Deletes a tag and removes it from every customer (recorded in their history).
    async fn delete_tag(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        tags::delete(db(ctx), actor, &id).await.gql()?;
        Ok(true)
    }

    async fn upsert_tag_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        exclusive: bool,
        #[graphql(default)] description: String,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        tags::upsert_group(db(ctx), actor, &name, exclusive, &description)
            .await
            .gql()?;
        Ok(true)
    }

    /// Applies a manual tag to customers (by ids or by filter); returns how many changed.
    async fn apply_tag(
        &self,
        ctx: &Context<'_>,
        tag_id: ID,
        customer_ids: Option<Vec<ID>>,
        filter: Option<CustomerFilterInput>,
    ) -> async_graphql::Result<i64> {
        apply(ctx, tag_id, customer_ids, filter, true).await
    }

    /// Removes a manual tag from customers (by ids or by filter); returns how many changed.
    async fn remove_tag(
        &self,
        ctx: &Context<'_>,
        tag_id: ID,
        customer_ids: Option<Vec<ID>>,
        filter: Option<CustomerFilterInput>,
    ) -> async_graphql::Result<i64> {
        apply(ctx, tag_id, customer_ids, filter, false).await
    }

    /// Turns a module's tag template into a dynamic tag, with tuned parameters
    /// (`params: {orders: 5}`; others keep their defaults).
    async fn instantiate_tag_template(
        &self,
        ctx: &Context<'_>,
        module: String,
        template: String,
        name: Option<String>,
        params: Option<Json<Value>>,
    ) -> async_graphql::Result<TagValue> {
        let actor = actor(ctx).gql()?;
        let found = super::plugins::enabled_module(ctx, actor, &module)
            .gql()?
            .tag_templates
            .into_iter()
            .find(|t| t.id == template)
            .ok_or_else(|| {
                Error::invalid(
                    "template",
                    format!("module `{module}` has no tag template `{template}`"),
                )
            })
            .gql()?;
        let given = super::plugins::template_params(params).gql()?;
        let defaults: Vec<(String, String)> = found
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default_value.clone()))
            .collect();
        let (rule, used) = tags::instantiate_rule(&found.rule, &defaults, &given).gql()?;
        let input = TagInput {
            name: Some(name.unwrap_or(found.name)),
            rule: Some(rule),
            description: Some(found.description),
            ..TagInput::default()
        };
        let reference = TemplateRef {
            module,
            template,
            params: used,
        };
        Ok(tags::create(db(ctx), actor, &input, Some(&reference))
            .await
            .gql()?
            .into())
    }

    /// Re-evaluates every dynamic tag (or one) for every customer and applies the changes.
    async fn recompute_tags(
        &self,
        ctx: &Context<'_>,
        tag_id: Option<ID>,
    ) -> async_graphql::Result<Vec<RecomputeResult>> {
        let actor = actor(ctx).gql()?;
        actor.require(shoal_base::kinds::Action::Configure).gql()?;
        Ok(
            tags::recompute(db(ctx), actor, tag_id.as_ref().map(|i| i.0.as_str()))
                .await
                .gql()?
                .into_iter()
                .map(|r| RecomputeResult {
                    tag: r.tag,
                    added: r.added as i64,
                    removed: r.removed as i64,
                })
                .collect(),
        )
    }
}
