//! `viewer`: who the API key acts as.

use async_graphql::{Context, Object, SimpleObject};

use super::{ErrorExt, actor};
use crate::tenancy::Actor;

/// A user of the tenant (staff member or integration).
#[derive(SimpleObject, Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    /// `admin`, `manager`, `agent` or `readonly`.
    pub role: String,
}

impl User {
    pub fn find(actor: &Actor, id: &str) -> Option<User> {
        actor.tenant.users.get(id).map(|u| User {
            id: id.to_owned(),
            name: u.name.clone(),
            email: u.email.clone(),
            department: u.department.clone(),
            role: u.role.as_str().to_owned(),
        })
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct TenantInfo {
    pub id: String,
    pub name: String,
    /// IANA time zone used for schedules and quiet hours.
    pub time_zone: String,
    /// Region assumed for phone numbers without a country code.
    pub default_region: String,
}

/// The caller: a user acting within one tenant.
#[derive(SimpleObject, Debug, Clone)]
pub struct Viewer {
    pub tenant: TenantInfo,
    pub user: Option<User>,
    pub role: String,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The tenant and user the API key acts as.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let actor = actor(ctx).gql()?;
        Ok(Viewer {
            tenant: TenantInfo {
                id: actor.tenant.id.clone(),
                name: actor.tenant.name.clone(),
                time_zone: actor.tenant.time_zone.name().to_owned(),
                default_region: format!("{:?}", actor.tenant.default_region),
            },
            user: User::find(actor, &actor.user_id),
            role: actor.role.as_str().to_owned(),
        })
    }
}
