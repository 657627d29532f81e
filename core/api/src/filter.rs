//! The customer filter input (`customers(filter:)`, bulk tagging, exports) and its mapping
//! to the domain's filter spec; names are resolved by `shoal_tags::filter`.

use async_graphql::{Context, ID, InputObject, Json};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ErrorExt, db, identities::ExternalIdentity};
use shoal_base::error::{Error, Result};
use shoal_crm::{
    customers::{Channel, CustomerFilter, LifecycleStage},
    tenancy::Actor,
};
use shoal_tags::filter::{FilterSpec, Paths, TagNames};

/// Which customers to list; every condition given must hold.
#[derive(InputObject, Debug, Default, Clone)]
pub struct CustomerFilterInput {
    /// Case-insensitive name prefix, or an exact phone number (any format) or email.
    pub search: Option<String>,
    /// Any of these lifecycle stages.
    pub stages: Option<Vec<LifecycleStage>>,
    /// Any of these source channels.
    pub channels: Option<Vec<Channel>>,
    pub owner_id: Option<ID>,
    /// Created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Attributes that must be equal, e.g. `{city: "上海", vip: true}`.
    pub attributes: Option<Json<Value>>,
    /// Customers holding this external identity.
    pub identity: Option<ExternalIdentity>,
    /// Tags the customers must (all), may (any) or must not (none) hold, by name.
    pub tags: Option<TagFilterInput>,
    /// Any of these RFM cells.
    pub rfm_cells: Option<Vec<shoal_base::kinds::RfmCell>>,
    /// Members of this saved segment.
    pub segment: Option<ID>,
    /// A rule of the rule language (docs/rules.md).
    pub rule: Option<String>,
    /// Customers nobody followed up with in this many hours (e.g. 72), and older than that.
    pub no_follow_up_for_hours: Option<u32>,
    /// Customers nobody followed up with for the tenant's `contact.no_follow_up_hours`
    /// (72 unless configured).
    pub neglected: Option<bool>,
}

/// The domain filter for an input filter: the input's shape mapped here, its names
/// (tags, segment, rule) resolved by `shoal_tags::filter`.
pub async fn filter_of(
    ctx: &Context<'_>,
    actor: &Actor,
    input: CustomerFilterInput,
) -> async_graphql::Result<CustomerFilter> {
    let spec = input.into_spec().gql()?;
    shoal_tags::filter::resolve(db(ctx), &actor.tenant, spec, &Paths::input("filter"))
        .await
        .gql()
}

impl CustomerFilterInput {
    fn into_spec(self) -> Result<FilterSpec> {
        let attributes = match self.attributes.map(|j| j.0) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err(Error::invalid("filter.attributes", "must be a JSON object")),
        };
        let tags = self.tags.unwrap_or_default();
        Ok(FilterSpec {
            filter: CustomerFilter {
                search: self.search,
                stages: self.stages.unwrap_or_default(),
                channels: self.channels.unwrap_or_default(),
                owner_id: self.owner_id.map(|id| id.0),
                created_after: self.created_after,
                created_before: self.created_before,
                attributes,
                identity: self.identity.map(Into::into),
                rfm_cells: self.rfm_cells.unwrap_or_default(),
                no_follow_up_hours: self.no_follow_up_for_hours,
                ..CustomerFilter::default()
            },
            tags: TagNames {
                all: tags.all.unwrap_or_default(),
                any: tags.any.unwrap_or_default(),
                none: tags.none.unwrap_or_default(),
            },
            segment: self.segment.map(|id| id.0),
            rule: self.rule,
            neglected: self.neglected == Some(true),
        })
    }
}

/// Tags a customer must hold (all), may hold (any) or must not hold (none), by name.
#[derive(InputObject, Debug, Default, Clone)]
pub struct TagFilterInput {
    pub all: Option<Vec<String>>,
    pub any: Option<Vec<String>>,
    pub none: Option<Vec<String>>,
}
