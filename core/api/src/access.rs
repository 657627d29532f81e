//! Permissions in GraphQL: departments, roles and users (administrators), the audit log,
//! and exporting customers.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ErrorExt, actor,
    customers::AuditEntry,
    db,
    filter::{CustomerFilterInput, filter_of},
    page::page,
    viewer::User,
};
use shoal_base::{error::Error, kinds::Action, pagination::PageArgs};
use shoal_crm::{
    access::role::RoleSpec,
    access_admin::{self, DepartmentInput as NewDepartment},
    audit::{self, AuditFilter},
};

super::page::connection!(AuditConnection, AuditEdge, AuditEntry, audit::AuditEntry);

/// A department of the tenant's tree.
#[derive(SimpleObject, Debug, Clone)]
pub struct Department {
    pub id: ID,
    pub name: String,
    pub parent_id: Option<ID>,
}

impl From<access_admin::DepartmentRow> for Department {
    fn from(d: access_admin::DepartmentRow) -> Self {
        Department {
            id: ID(d.id),
            name: d.name,
            parent_id: d.parent_id.map(ID),
        }
    }
}

/// A role: its definition as written (see docs/permissions.md) and how many users hold it.
#[derive(SimpleObject, Debug, Clone)]
pub struct Role {
    pub id: ID,
    pub name: String,
    /// `{name, scopes, departments, fields, sensitive, actions, grants}`.
    pub definition: Json<RoleSpec>,
    pub users: i64,
}

impl From<access_admin::RoleRow> for Role {
    fn from(r: access_admin::RoleRow) -> Self {
        Role {
            id: ID(r.id),
            name: r.spec.name.clone(),
            definition: Json(r.spec),
            users: r.users,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct DepartmentInput {
    pub id: ID,
    pub name: String,
    /// None: a top-level department.
    pub parent_id: Option<ID>,
}

#[derive(InputObject, Debug)]
pub struct UpdateUserInput {
    /// Null: no department.
    pub department: MaybeUndefined<ID>,
    /// Replaces the user's roles.
    pub roles: Option<Vec<ID>>,
}

#[derive(InputObject, Debug, Default)]
pub struct AuditFilterInput {
    pub entity_type: Option<String>,
    pub entity_id: Option<ID>,
    pub actor_id: Option<String>,
    /// An action (`customer.update`) or a prefix ending in `.` (`customer.`).
    pub action: Option<String>,
    pub request_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Customers as CSV, masked as the caller sees them.
#[derive(SimpleObject, Debug)]
pub struct CustomerExport {
    /// `id,displayName,phones,emails,lifecycleStage,ownerId,sourceChannel,createdAt,attributes`.
    pub csv: String,
    pub rows: i32,
}

/// The most customers one export returns.
pub const MAX_EXPORT: usize = 10_000;

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// The department tree, as a flat list with parents.
    async fn departments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Department>> {
        let actor = actor(ctx).gql()?;
        let list = access_admin::list_departments(db(ctx), actor).await.gql()?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// Every role (administrators).
    async fn roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Role>> {
        let actor = actor(ctx).gql()?;
        let list = access_admin::list_roles(db(ctx), actor).await.gql()?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// Every user with department and roles (administrators and those who may assign).
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let actor = actor(ctx).gql()?;
        let list = access_admin::list_users(db(ctx), actor).await.gql()?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// The audit log, newest first (action `audit`). Readers whose scope does not reach
    /// every customer see entries about the customers they reach; customer fields are
    /// masked as the reader sees them.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: AuditFilterInput,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<AuditConnection> {
        let actor = actor(ctx).gql()?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = page(ctx, actor, args, audit::ORDER)?;
        let f = AuditFilter {
            entity_type: filter.entity_type,
            entity_id: filter.entity_id.map(|i| i.0),
            actor_id: filter.actor_id,
            action: filter.action,
            request_id: filter.request_id,
            from: filter.from,
            to: filter.to,
        };
        Ok(AuditConnection::from_paged(
            audit::list(db(ctx), actor, &f, &page).await.gql()?,
        ))
    }
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Creates or changes a department (administrators); departments form a tree.
    async fn put_department(
        &self,
        ctx: &Context<'_>,
        input: DepartmentInput,
    ) -> async_graphql::Result<Department> {
        let actor = actor(ctx).gql()?;
        let input = NewDepartment {
            id: input.id.0,
            name: input.name,
            parent_id: input.parent_id.map(|p| p.0),
        };
        Ok(access_admin::put_department(db(ctx), actor, &input)
            .await
            .gql()?
            .into())
    }

    /// Deletes a department without sub-departments, users or roles naming it.
    async fn delete_department(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        access_admin::delete_department(db(ctx), actor, &id)
            .await
            .gql()?;
        Ok(true)
    }

    /// Creates or redefines a role (administrators); takes effect on the next request of
    /// every user holding it.
    async fn put_role(
        &self,
        ctx: &Context<'_>,
        id: ID,
        definition: Json<Value>,
    ) -> async_graphql::Result<Role> {
        let actor = actor(ctx).gql()?;
        let spec: RoleSpec = serde_json::from_value(definition.0)
            .map_err(|e| Error::invalid("definition", e.to_string()))
            .gql()?;
        Ok(access_admin::put_role(db(ctx), actor, &id, &spec)
            .await
            .gql()?
            .into())
    }

    /// Deletes a role no user holds.
    async fn delete_role(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        access_admin::delete_role(db(ctx), actor, &id).await.gql()?;
        Ok(true)
    }

    /// Moves a user to a department and/or replaces their roles (administrators).
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
    ) -> async_graphql::Result<User> {
        let actor = actor(ctx).gql()?;
        let department = match input.department {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d.0)),
        };
        let roles = input.roles.map(|r| r.into_iter().map(|i| i.0).collect());
        Ok(
            access_admin::set_user(db(ctx), actor, &id, department, roles)
                .await
                .gql()?
                .into(),
        )
    }

    /// Customers matching a filter as CSV (action `export`; at most 10,000), within the
    /// caller's scope and masked as the caller sees them. Recorded in the audit log.
    async fn export_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: CustomerFilterInput,
    ) -> async_graphql::Result<CustomerExport> {
        let actor = actor(ctx).gql()?;
        actor.require(Action::Export).gql()?;
        let filter = filter_of(ctx, actor, filter).await?;
        let (csv, rows) = shoal_crm::customers::export(db(ctx), actor, &filter, MAX_EXPORT)
            .await
            .gql()?;
        Ok(CustomerExport {
            csv,
            rows: i32::try_from(rows).unwrap_or(i32::MAX),
        })
    }
}
