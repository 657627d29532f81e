//! Administering access: departments, roles and users' roles, each change audited. Above
//! `access` (which knows no actor and writes no audit) and `tenancy`.

use serde_json::json;
use sqlx::{AnyConnection, Row};

use crate::{
    access::{
        Departments,
        role::{self, RoleSpec},
    },
    audit,
    tenancy::Actor,
};
use shoal_base::{
    error::{Error, Problems, Result},
    kinds::Action,
    storage::{Db, time},
};

/// A department as stored.
#[derive(Debug, Clone)]
pub struct DepartmentRow {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
}

/// A new department, or new values for one.
#[derive(Debug, Clone)]
pub struct DepartmentInput {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
}

/// A role as stored, with the number of users holding it.
#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: String,
    pub spec: RoleSpec,
    pub users: i64,
}

/// A user with department and roles.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub roles: Vec<String>,
}

pub async fn list_departments(db: &Db, actor: &Actor) -> Result<Vec<DepartmentRow>> {
    let rows =
        sqlx::query("SELECT id, name, parent_id FROM departments WHERE tenant_id = $1 ORDER BY id")
            .bind(actor.tenant_id())
            .fetch_all(&db.pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(DepartmentRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                parent_id: r.try_get("parent_id")?,
            })
        })
        .collect()
}

/// Creates or changes a department (administrators); refuses cycles.
pub async fn put_department(
    db: &Db,
    actor: &Actor,
    input: &DepartmentInput,
) -> Result<DepartmentRow> {
    actor.require(Action::Administer)?;
    let mut p = Problems::default();
    if let Err(m) = role::check_id(&input.id) {
        p.push("input.id", m);
    }
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        p.push("input.name", "must be 1–100 characters");
    }
    p.into_result(())?;
    let mut tx = db.begin_write().await?;
    let tree = Departments::load(&mut tx, actor.tenant_id()).await?;
    if let Some(parent) = &input.parent_id {
        if !tree.contains(parent) {
            return Err(Error::invalid(
                "input.parentId",
                format!("no department `{parent}`"),
            ));
        }
        if tree.would_cycle(&input.id, parent) {
            return Err(Error::invalid(
                "input.parentId",
                "departments form a tree: this parent is the department itself or below it",
            ));
        }
    }
    let before = tree
        .contains(&input.id)
        .then(|| json!({ "parentId": tree.parent_of(&input.id) }));
    sqlx::query(
        "INSERT INTO departments (tenant_id, id, name, parent_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, parent_id = excluded.parent_id, \
         updated_at = excluded.updated_at",
    )
    .bind(actor.tenant_id())
    .bind(&input.id)
    .bind(name)
    .bind(&input.parent_id)
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    let after = json!({ "name": name, "parentId": input.parent_id });
    audit::record(
        &mut tx,
        actor,
        "department.put",
        "department",
        &input.id,
        json!({ "before": before, "after": after }),
    )
    .await?;
    tx.commit().await?;
    Ok(DepartmentRow {
        id: input.id.clone(),
        name: name.to_owned(),
        parent_id: input.parent_id.clone(),
    })
}

/// Removes a department that has no sub-departments, users or roles naming it.
pub async fn delete_department(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let tree = Departments::load(&mut tx, actor.tenant_id()).await?;
    if !tree.contains(id) {
        return Err(Error::not_found("department", id));
    }
    if tree.subtree(id).len() > 1 {
        return Err(Error::invalid(
            "id",
            "the department has sub-departments; move or delete them first",
        ));
    }
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND department = $2")
            .bind(actor.tenant_id())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if users > 0 {
        return Err(Error::invalid(
            "id",
            format!("{users} user(s) belong to the department; move them first"),
        ));
    }
    for r in roles(&mut tx, actor.tenant_id()).await? {
        if r.spec.departments.iter().any(|d| d == id) {
            return Err(Error::invalid(
                "id",
                format!("role `{}` names the department in its scope", r.id),
            ));
        }
    }
    sqlx::query("DELETE FROM departments WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "department.delete",
        "department",
        id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn roles(conn: &mut AnyConnection, tenant_id: &str) -> Result<Vec<RoleRow>> {
    let rows = sqlx::query(
        "SELECT r.id, r.definition, (SELECT COUNT(*) FROM user_roles ur WHERE ur.tenant_id = r.tenant_id \
         AND ur.role_id = r.id) AS users FROM roles r WHERE r.tenant_id = $1 ORDER BY r.id",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let definition: String = r.try_get("definition")?;
            Ok(RoleRow {
                id: r.try_get("id")?,
                spec: serde_json::from_str(&definition)
                    .map_err(|e| Error::Internal(format!("stored role unreadable: {e}")))?,
                users: r.try_get("users")?,
            })
        })
        .collect()
}

/// Every role of the tenant (administrators).
pub async fn list_roles(db: &Db, actor: &Actor) -> Result<Vec<RoleRow>> {
    actor.require(Action::Administer)?;
    let mut conn = db.pool.acquire().await?;
    roles(&mut conn, actor.tenant_id()).await
}

/// Creates or redefines a role (administrators); every problem is reported with its path.
/// Callers cannot take `administer` away from a role they hold themselves if no other of
/// their roles grants it (no locking oneself out).
pub async fn put_role(db: &Db, actor: &Actor, id: &str, spec: &RoleSpec) -> Result<RoleRow> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let tree = Departments::load(&mut tx, actor.tenant_id()).await?;
    let def = role::RoleDef::from_spec(
        spec,
        id,
        "input",
        &tree.ids(),
        &db.vault.sealed_attributes(actor.tenant_id()),
    )?;
    let held_by_caller = actor.access.roles.iter().any(|r| r.id == id);
    let others_administer = actor
        .access
        .roles
        .iter()
        .any(|r| r.id != id && r.actions.contains(&Action::Administer));
    if held_by_caller && !def.actions.contains(&Action::Administer) && !others_administer {
        return Err(Error::invalid(
            "input.actions",
            "you hold this role and no other granting `administer`: removing it would lock you out",
        ));
    }
    let existing = roles(&mut tx, actor.tenant_id()).await?;
    let before = existing.iter().find(|r| r.id == id);
    let definition = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO roles (tenant_id, id, definition, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
    )
    .bind(actor.tenant_id())
    .bind(id)
    .bind(&definition)
    .bind(time::to_micros(time::now()))
    .execute(&mut *tx)
    .await?;
    let changes = json!({ "before": before.map(|r| &r.spec), "after": spec });
    audit::record(&mut tx, actor, "role.put", "role", id, changes).await?;
    tx.commit().await?;
    Ok(RoleRow {
        id: id.to_owned(),
        spec: spec.clone(),
        users: before.map_or(0, |r| r.users),
    })
}

/// Deletes a role no user holds.
pub async fn delete_role(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let existing = roles(&mut tx, actor.tenant_id()).await?;
    let Some(role) = existing.iter().find(|r| r.id == id) else {
        return Err(Error::not_found("role", id));
    };
    if role.users > 0 {
        return Err(Error::invalid(
            "id",
            format!(
                "{} user(s) hold the role; take it from them first",
                role.users
            ),
        ));
    }
    sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "role.delete",
        "role",
        id,
        json!({ "before": role.spec }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn user_rows(
    conn: &mut AnyConnection,
    tenant_id: &str,
    only: Option<&str>,
) -> Result<Vec<UserRow>> {
    let rows = sqlx::query(
        "SELECT id, name, email, department FROM users WHERE tenant_id = $1 AND ($2 = '' OR id = $2) ORDER BY id",
    )
    .bind(tenant_id)
    .bind(only.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    let held = sqlx::query("SELECT user_id, role_id FROM user_roles WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) ORDER BY role_id")
        .bind(tenant_id)
        .bind(only.unwrap_or(""))
        .fetch_all(&mut *conn)
        .await?;
    let mut users = Vec::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let mut roles = Vec::new();
        for h in &held {
            if h.try_get::<String, _>("user_id")? == id {
                roles.push(h.try_get("role_id")?);
            }
        }
        users.push(UserRow {
            name: r.try_get("name")?,
            email: r.try_get("email")?,
            department: r.try_get("department")?,
            id,
            roles,
        });
    }
    Ok(users)
}

/// One user with department and roles (staff may see who their colleagues are).
pub async fn find_user(db: &Db, tenant_id: &str, id: &str) -> Result<Option<UserRow>> {
    let mut conn = db.pool.acquire().await?;
    Ok(user_rows(&mut conn, tenant_id, Some(id)).await?.pop())
}

/// Every user with department and roles (administrators, and those who may assign).
pub async fn list_users(db: &Db, actor: &Actor) -> Result<Vec<UserRow>> {
    if !actor.access.can(Action::Assign) {
        actor.require(Action::Administer)?;
    }
    let mut conn = db.pool.acquire().await?;
    user_rows(&mut conn, actor.tenant_id(), None).await
}

/// Moves a user to a department and/or replaces their roles (administrators). Callers
/// cannot take `administer` away from themselves.
pub async fn set_user(
    db: &Db,
    actor: &Actor,
    user_id: &str,
    department: Option<Option<String>>,
    new_roles: Option<Vec<String>>,
) -> Result<UserRow> {
    actor.require(Action::Administer)?;
    let mut tx = db.begin_write().await?;
    let Some(before) = user_rows(&mut tx, actor.tenant_id(), Some(user_id))
        .await?
        .pop()
    else {
        return Err(Error::not_found("user", user_id));
    };
    let tree = Departments::load(&mut tx, actor.tenant_id()).await?;
    let all_roles = roles(&mut tx, actor.tenant_id()).await?;
    let mut p = Problems::default();
    if let Some(Some(d)) = &department
        && !tree.contains(d)
    {
        p.push("input.department", format!("no department `{d}`"));
    }
    if let Some(list) = &new_roles {
        if list.is_empty() {
            p.push("input.roles", "a user needs at least one role");
        }
        for (i, r) in list.iter().enumerate() {
            if !all_roles.iter().any(|x| &x.id == r) {
                p.push(format!("input.roles[{i}]"), format!("no role `{r}`"));
            }
        }
        if user_id == actor.user_id {
            let administers = all_roles.iter().filter(|x| list.contains(&x.id)).any(|x| {
                x.spec
                    .actions
                    .iter()
                    .any(|a| a == Action::Administer.as_str())
            });
            if !administers {
                p.push(
                    "input.roles",
                    "you cannot take `administer` away from yourself",
                );
            }
        }
    }
    p.into_result(())?;
    if let Some(d) = &department {
        sqlx::query("UPDATE users SET department = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(d)
            .bind(actor.tenant_id())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(list) = &new_roles {
        sqlx::query("DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2")
            .bind(actor.tenant_id())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for r in list {
            sqlx::query("INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING")
                .bind(actor.tenant_id())
                .bind(user_id)
                .bind(r)
                .execute(&mut *tx)
                .await?;
        }
    }
    let after = user_rows(&mut tx, actor.tenant_id(), Some(user_id))
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("user vanished".into()))?;
    let changes = json!({
        "department": { "from": before.department, "to": after.department },
        "roles": { "from": before.roles, "to": after.roles },
    });
    audit::record(&mut tx, actor, "user.update", "user", user_id, changes).await?;
    tx.commit().await?;
    Ok(after)
}
