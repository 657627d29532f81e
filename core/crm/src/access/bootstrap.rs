//! Seeding a tenant's departments, roles and users from config.
//!
//! Config bootstraps; the database is the source of truth afterwards. Rows are inserted when
//! absent, never overwritten, so what an administrator changed through GraphQL survives a
//! restart. Only a user's name and email follow config every start, and a user who has no
//! role at all (new, or from before roles were stored) gets the roles config gives.

use sqlx::AnyConnection;

use super::role::{self, RoleSpec};
use shoal_base::config::TenantConfig;

pub async fn seed(
    conn: &mut AnyConnection,
    tenant_id: &str,
    tenant: &TenantConfig,
    now: i64,
) -> Result<(), sqlx::Error> {
    let declared = tenant
        .departments
        .iter()
        .map(|(id, d)| (id.clone(), d.name.clone(), d.parent.clone()));
    // departments users name without declaring them: top-level, named by their id
    let implied = tenant
        .users
        .values()
        .filter_map(|u| u.department.clone())
        .map(|d| (d.clone(), d, None));
    for (id, name, parent) in declared.chain(implied) {
        sqlx::query(
            "INSERT INTO departments (tenant_id, id, name, parent_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(&id)
        .bind(&name)
        .bind(parent)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let built_in = role::BUILT_IN
        .iter()
        .filter(|id| !tenant.roles.contains_key(**id))
        .filter_map(|id| Some((id.to_string(), role::built_in(id)?)));
    let configured = tenant
        .roles
        .iter()
        .map(|(id, spec)| (id.clone(), spec.clone()));
    for (id, spec) in built_in.chain(configured) {
        insert_role(conn, tenant_id, &id, &spec, now).await?;
    }
    for (user_id, user) in &tenant.users {
        let roles = user.role_ids();
        sqlx::query(
            "INSERT INTO users (tenant_id, id, name, email, department, role) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, email = excluded.email",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.department)
        .bind(roles.first().cloned().unwrap_or_default())
        .execute(&mut *conn)
        .await?;
        let has_roles: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_roles WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        if has_roles == 0 {
            for role_id in roles {
                sqlx::query(
                    "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(role_id)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

async fn insert_role(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
    spec: &RoleSpec,
    now: i64,
) -> Result<(), sqlx::Error> {
    let definition = serde_json::to_string(spec).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO roles (tenant_id, id, definition, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(definition)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
