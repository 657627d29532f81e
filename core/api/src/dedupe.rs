//! Duplicates in GraphQL: `duplicateSuggestions`, `mergeHistory`, `mergeCustomers`,
//! `unmergeCustomers`, `dismissDuplicateSuggestion`, `scanDuplicates`.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, actor, customers::CustomerNode, db, page::page, tags_after_change};
use shoal_base::{config::ConflictRule, pagination::PageArgs};
use shoal_crm::{access::Access, customers, tenancy::Actor};
use shoal_data::dedupe::{self, Conflict, Merge, MergeRequest, Side, Suggestion, SuggestionFilter};

/// One of the two profiles of a merge.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MergeSide {
    Survivor,
    Absorbed,
}

impl From<Side> for MergeSide {
    fn from(s: Side) -> Self {
        match s {
            Side::Survivor => MergeSide::Survivor,
            Side::Absorbed => MergeSide::Absorbed,
        }
    }
}

/// How conflicting fields are settled.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MergeConflictRule {
    /// The profile changed most recently wins.
    MostRecent,
    /// The profile whose source channel the tenant trusts more wins (`dedupe.source_priority`).
    SourcePriority,
}

/// Why two profiles may be the same person.
#[derive(SimpleObject, Debug)]
pub struct MatchReason {
    /// `same_phone`, `same_email`, `same_identity`, `same_name`, `phone_one_digit_apart`,
    /// `same_email_local_part`.
    pub code: String,
    pub detail: String,
}

/// A pair that may be the same person, waiting for a decision.
pub struct DuplicateSuggestion(Suggestion);

#[Object]
impl DuplicateSuggestion {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// 0–100: 100 for an exact phone/email/identity match, less for fuzzy signals.
    async fn score(&self) -> i32 {
        i32::from(self.0.score)
    }
    async fn reasons(&self) -> Vec<MatchReason> {
        self.0
            .reasons
            .iter()
            .map(|r| MatchReason {
                code: r.code.clone(),
                detail: r.detail.clone(),
            })
            .collect()
    }
    /// `pending`, `merged` or `dismissed`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn customer_a_id(&self) -> ID {
        ID(self.0.customer_a.clone())
    }
    async fn customer_b_id(&self) -> ID {
        ID(self.0.customer_b.clone())
    }
    /// The first profile (null once it is gone), as the caller may see it.
    async fn customer_a(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CustomerNode>> {
        visible(ctx, &self.0.customer_a).await
    }
    async fn customer_b(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CustomerNode>> {
        visible(ctx, &self.0.customer_b).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn decided_by(&self) -> Option<&str> {
        self.0.decided_by.as_deref()
    }
}

async fn visible(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<CustomerNode>> {
    let actor = actor(ctx).gql()?;
    match customers::get_visible(db(ctx), actor, id).await {
        Ok(c) => Ok(Some(CustomerNode::new(c, None, &actor.access))),
        Err(shoal_base::error::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(super::errors::to_graphql(e)),
    }
}

impl From<Suggestion> for DuplicateSuggestion {
    fn from(s: Suggestion) -> Self {
        DuplicateSuggestion(s)
    }
}

super::page::connection!(
    DuplicateSuggestionConnection,
    DuplicateSuggestionEdge,
    DuplicateSuggestion,
    Suggestion
);

/// A field the two profiles disagreed on, and how it was settled.
#[derive(SimpleObject, Debug)]
pub struct MergeConflict {
    /// `displayName`, `lifecycleStage`, `ownerId`, `sourceChannel`, `attributes.<key>`,
    /// `phones`, `emails`, `identities`, `tags.<group>`.
    pub field: String,
    pub kept: Json<Value>,
    pub discarded: Json<Value>,
    pub kept_from: MergeSide,
    /// `most_recent`, `source_priority`, `preferred`, `first_seen`, `limit`,
    /// `exclusive_group`, `identity_held`.
    pub rule: String,
}

/// Conflict values masked as the reader sees the field.
fn masked(access: &Access, c: &Conflict) -> MergeConflict {
    let mask = |v: &Value| -> Value {
        let mut v = v.clone();
        match c.field.strip_prefix("attributes.") {
            Some(key) => {
                let mut obj = serde_json::json!({ key: v });
                access.mask_field_value("attributes", &mut obj);
                obj.get(key).cloned().unwrap_or(Value::Null)
            }
            None => {
                access.mask_field_value(&c.field, &mut v);
                v
            }
        }
    };
    MergeConflict {
        field: c.field.clone(),
        kept: Json(mask(&c.kept)),
        discarded: Json(mask(&c.discarded)),
        kept_from: c.kept_from.into(),
        rule: c.rule.clone(),
    }
}

/// How many rows a merge moved to the survivor.
#[derive(SimpleObject, Debug)]
pub struct MergeMoved {
    pub identities: i32,
    pub events: i32,
    pub tasks: i32,
    pub follow_ups: i32,
    pub tags: i32,
    pub opt_outs: i32,
}

/// A recorded merge.
pub struct CustomerMerge(Merge);

#[Object]
impl CustomerMerge {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn survivor_id(&self) -> ID {
        ID(self.0.survivor_id.clone())
    }
    /// The absorbed profile's id (for an import row, the id it gets if the merge is undone).
    async fn absorbed_id(&self) -> ID {
        ID(self.0.absorbed_id.clone())
    }
    /// False when the absorbed side was an import row rather than a stored customer.
    async fn absorbed_stored(&self) -> bool {
        self.0.absorbed_stored
    }
    /// `manual`, `suggestion` or `import`.
    async fn origin(&self) -> &str {
        &self.0.origin
    }
    /// What matched.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// `most_recent` or `source_priority`.
    async fn rule(&self) -> &str {
        &self.0.rule
    }
    async fn conflicts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MergeConflict>> {
        let actor = actor(ctx).gql()?;
        Ok(self
            .0
            .conflicts
            .iter()
            .map(|c| masked(&actor.access, c))
            .collect())
    }
    async fn moved(&self) -> MergeMoved {
        let m = &self.0.moved;
        let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        MergeMoved {
            identities: n(m.identities.len()),
            events: n(m.events.len()),
            tasks: n(m.tasks.len()),
            follow_ups: n(m.follow_ups.len()),
            tags: n(m.tags.len()),
            opt_outs: n(m.opt_outs.len()),
        }
    }
    /// The surviving profile now (null once it is gone).
    async fn survivor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CustomerNode>> {
        visible(ctx, &self.0.survivor_id).await
    }
    async fn actor_id(&self) -> &str {
        &self.0.actor_id
    }
    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }
    async fn undone_at(&self) -> Option<DateTime<Utc>> {
        self.0.undone_at
    }
    async fn undone_by(&self) -> Option<&str> {
        self.0.undone_by.as_deref()
    }
}

impl From<Merge> for CustomerMerge {
    fn from(m: Merge) -> Self {
        CustomerMerge(m)
    }
}

super::page::connection!(
    CustomerMergeConnection,
    CustomerMergeEdge,
    CustomerMerge,
    Merge
);

/// Which side wins one field, chosen by hand.
#[derive(InputObject, Debug)]
pub struct MergePreference {
    /// `displayName`, `lifecycleStage`, `ownerId`, `sourceChannel` or `attributes.<key>`.
    pub field: String,
    pub side: MergeSide,
}

#[derive(InputObject, Debug)]
pub struct MergeCustomersInput {
    /// The profile that stays.
    pub survivor_id: ID,
    /// The profile merged into it (soft-deleted; `unmergeCustomers` brings it back).
    pub absorbed_id: ID,
    /// The tenant's `dedupe.conflict_rule` unless given.
    pub rule: Option<MergeConflictRule>,
    #[graphql(default)]
    pub prefer: Vec<MergePreference>,
    /// The suggestion this merge accepts.
    pub suggestion_id: Option<ID>,
}

/// What an unmerge did.
#[derive(SimpleObject)]
pub struct UnmergePayload {
    pub merge: CustomerMerge,
    pub survivor: Option<CustomerNode>,
    pub restored: Option<CustomerNode>,
    /// Survivor fields changed since the merge, left as they are, and the opt-outs it keeps
    /// (`optOuts.<channel>`).
    pub kept_fields: Vec<String>,
}

/// What a duplicate scan found.
#[derive(SimpleObject)]
pub struct ScanDuplicatesPayload {
    pub customers_scanned: i64,
    pub new_suggestions: i64,
}

#[derive(Default)]
pub struct DedupeQuery;

#[Object]
impl DedupeQuery {
    /// Possible duplicates, best score first (pending unless `status` says otherwise).
    #[allow(clippy::too_many_arguments)]
    async fn duplicate_suggestions(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        customer_id: Option<ID>,
        min_score: Option<i32>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<DuplicateSuggestionConnection> {
        let actor = actor(ctx).gql()?;
        if let Some(s) = &status
            && !["pending", "merged", "dismissed"].contains(&s.as_str())
        {
            return Err(shoal_base::error::Error::invalid(
                "status",
                format!("`{s}` is not pending, merged or dismissed"),
            ))
            .gql();
        }
        let page = page(
            ctx,
            actor,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            dedupe::suggestions::ORDER,
        )?;
        let f = SuggestionFilter {
            status,
            customer_id: customer_id.map(|i| i.0),
            min_score: min_score.map(|s| s.clamp(0, 100) as u8),
        };
        Ok(DuplicateSuggestionConnection::from_paged(
            dedupe::suggestions::list(db(ctx), actor, &f, &page)
                .await
                .gql()?,
        ))
    }

    /// Merges newest first; with `customerId`, those the customer took part in.
    async fn merge_history(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<CustomerMergeConnection> {
        let actor = actor(ctx).gql()?;
        let page = page(
            ctx,
            actor,
            PageArgs {
                first,
                after,
                last,
                before,
            },
            dedupe::HISTORY_ORDER,
        )?;
        Ok(CustomerMergeConnection::from_paged(
            dedupe::history(
                db(ctx),
                actor,
                customer_id.as_ref().map(|i| i.0.as_str()),
                &page,
            )
            .await
            .gql()?,
        ))
    }

    /// One merge.
    async fn customer_merge(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CustomerMerge> {
        let actor = actor(ctx).gql()?;
        let mut conn = db(ctx)
            .pool
            .acquire()
            .await
            .map_err(shoal_base::error::Error::from)
            .gql()?;
        let m = dedupe::get_merge(&mut conn, &db(ctx).vault, actor.tenant_id(), &id)
            .await
            .gql()?;
        actor
            .access
            .ensure_customer(
                db(ctx),
                shoal_base::kinds::Resource::Customers,
                &m.survivor_id,
            )
            .await
            .gql()?;
        Ok(m.into())
    }
}

#[derive(Default)]
pub struct DedupeMutation;

async fn node(ctx: &Context<'_>, actor: &Actor, id: &str) -> Option<CustomerNode> {
    customers::get_visible(db(ctx), actor, id)
        .await
        .ok()
        .map(|c| CustomerNode::new(c, None, &actor.access))
}

#[Object]
impl DedupeMutation {
    /// Merges two customers: the survivor keeps every identity, event, task, follow-up,
    /// manual tag and opt-out of both; conflicting fields are settled by the rule (or
    /// `prefer`) and listed in `conflicts`. Undo with `unmergeCustomers`.
    async fn merge_customers(
        &self,
        ctx: &Context<'_>,
        input: MergeCustomersInput,
    ) -> async_graphql::Result<CustomerMerge> {
        let actor = actor(ctx).gql()?;
        let mut prefer = HashMap::new();
        for p in input.prefer {
            prefer.insert(
                p.field,
                match p.side {
                    MergeSide::Survivor => Side::Survivor,
                    MergeSide::Absorbed => Side::Absorbed,
                },
            );
        }
        let req = MergeRequest {
            survivor_id: input.survivor_id.0,
            absorbed_id: input.absorbed_id.0,
            rule: input.rule.map(|r| match r {
                MergeConflictRule::MostRecent => ConflictRule::MostRecent,
                MergeConflictRule::SourcePriority => ConflictRule::SourcePriority,
            }),
            prefer,
            suggestion_id: input.suggestion_id.map(|i| i.0),
        };
        let scope = |id: String| {
            actor
                .access
                .scope_customer(db(ctx), shoal_base::kinds::Resource::Customers, id)
        };
        let survivor = scope(req.survivor_id.clone()).await.gql()?;
        let absorbed = scope(req.absorbed_id.clone()).await.gql()?;
        let m = dedupe::merge(db(ctx), actor, (&survivor, &absorbed), &req)
            .await
            .gql()?;
        tags_after_change(ctx, actor, std::slice::from_ref(&m.survivor_id)).await;
        Ok(m.into())
    }

    /// Undoes a merge: both profiles come back with their own identities, events, tasks,
    /// follow-ups, tags and opt-outs; survivor fields changed since the merge are kept and
    /// listed. The pair is not suggested again.
    async fn unmerge_customers(
        &self,
        ctx: &Context<'_>,
        merge_id: ID,
    ) -> async_graphql::Result<UnmergePayload> {
        let actor = actor(ctx).gql()?;
        let u = dedupe::unmerge(db(ctx), actor, &merge_id).await.gql()?;
        let ids = [u.merge.survivor_id.clone(), u.merge.absorbed_id.clone()];
        tags_after_change(ctx, actor, &ids).await;
        Ok(UnmergePayload {
            survivor: node(ctx, actor, &ids[0]).await,
            restored: node(ctx, actor, &ids[1]).await,
            kept_fields: u.kept,
            merge: u.merge.into(),
        })
    }

    /// Marks a suggested pair as different people; it is not suggested again.
    async fn dismiss_duplicate_suggestion(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DuplicateSuggestion> {
        let actor = actor(ctx).gql()?;
        Ok(dedupe::suggestions::dismiss(db(ctx), actor, &id)
            .await
            .gql()?
            .into())
    }

    /// Looks for duplicates among every customer of the tenant and queues suggestions
    /// (never merges).
    async fn scan_duplicates(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ScanDuplicatesPayload> {
        let actor = actor(ctx).gql()?;
        if !actor
            .access
            .reaches_all(shoal_base::kinds::Resource::Customers)
        {
            return Err(shoal_base::error::Error::Forbidden(
                "scanning for duplicates needs a role whose customers scope is `all`".into(),
            ))
            .gql();
        }
        let r = dedupe::suggestions::scan(db(ctx), actor).await.gql()?;
        Ok(ScanDuplicatesPayload {
            customers_scanned: r.customers as i64,
            new_suggestions: r.new_suggestions as i64,
        })
    }
}
