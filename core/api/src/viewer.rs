//! `viewer`: who the API key acts as, and what it may see and do.

use async_graphql::{Context, Object, SimpleObject};

use super::{ErrorExt, actor, db};
use shoal_base::{
    kinds::{Action, Resource, Visibility},
    storage::Db,
};
use shoal_crm::access_admin::UserRow;

/// A user of the tenant (staff member or integration).
#[derive(SimpleObject, Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    /// The first of `roles`.
    #[graphql(deprecation = "a user may hold several roles: read `roles`")]
    pub role: String,
    /// The user's roles; the user gets the union of what they allow.
    pub roles: Vec<String>,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        User {
            id: u.id,
            name: u.name,
            email: u.email,
            department: u.department,
            role: u.roles.first().cloned().unwrap_or_default(),
            roles: u.roles,
        }
    }
}

impl User {
    /// A user of the caller's tenant, if it exists.
    pub async fn find(
        db: &Db,
        tenant_id: &str,
        id: &str,
    ) -> shoal_base::error::Result<Option<User>> {
        Ok(shoal_crm::access_admin::find_user(db, tenant_id, id)
            .await?
            .map(User::from))
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

/// Whether the caller reaches every row of a resource or only some (its scope).
#[derive(SimpleObject, Debug, Clone)]
pub struct ResourceReach {
    pub resource: Resource,
    /// Every row of the tenant, unconditionally.
    pub all: bool,
}

/// How one field reads for the caller.
#[derive(SimpleObject, Debug, Clone)]
pub struct FieldVisibility {
    pub field: String,
    pub visibility: Visibility,
}

/// What the caller's roles allow.
#[derive(SimpleObject, Debug, Clone)]
pub struct Permissions {
    pub roles: Vec<String>,
    pub department: Option<String>,
    pub actions: Vec<Action>,
    pub reach: Vec<ResourceReach>,
    /// The standard customer fields and every sensitive field the tenant's modules declare.
    pub fields: Vec<FieldVisibility>,
}

/// The caller: a user acting within one tenant.
#[derive(SimpleObject, Debug, Clone)]
pub struct Viewer {
    pub tenant: TenantInfo,
    pub user: Option<User>,
    /// The first of `permissions.roles`.
    #[graphql(deprecation = "a user may hold several roles: read `permissions.roles`")]
    pub role: String,
    pub permissions: Permissions,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The tenant and user the API key acts as, and what it may see and do.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let actor = actor(ctx).gql()?;
        let access = &actor.access;
        let roles: Vec<String> = access.role_ids().into_iter().map(str::to_owned).collect();
        let mut fields: Vec<String> = shoal_crm::access::role::CUSTOMER_FIELDS
            .map(str::to_owned)
            .to_vec();
        fields.extend(access.sensitive_fields());
        Ok(Viewer {
            tenant: TenantInfo {
                id: actor.tenant.id.clone(),
                name: actor.tenant.name.clone(),
                time_zone: actor.tenant.time_zone.name().to_owned(),
                default_region: format!("{:?}", actor.tenant.default_region),
            },
            user: User::find(db(ctx), actor.tenant_id(), &actor.user_id)
                .await
                .gql()?,
            role: roles.first().cloned().unwrap_or_default(),
            permissions: Permissions {
                department: access.department.clone(),
                actions: Action::ALL
                    .iter()
                    .copied()
                    .filter(|a| access.can(*a))
                    .collect(),
                reach: Resource::ALL
                    .iter()
                    .map(|r| ResourceReach {
                        resource: *r,
                        all: access.reaches_all(*r),
                    })
                    .collect(),
                fields: fields
                    .into_iter()
                    .map(|f| FieldVisibility {
                        visibility: access.visibility(&f),
                        field: f,
                    })
                    .collect(),
                roles,
            },
        })
    }
}
