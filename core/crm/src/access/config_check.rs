//! The access sections of a tenant's configuration — departments, roles and the roles users
//! are given — checked here, by the engine that enforces them, and handed to
//! `shoal_base::config::load` as a [`TenantCheck`](shoal_base::config::TenantCheck).

use shoal_base::{
    config::{Invalid, TenantConfig},
    error::Error,
};

use super::{
    Departments,
    role::{self, RoleDef},
};

fn invalid(key: String, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

/// Departments form a tree with well-formed ids; roles are well-formed and name known
/// departments; every role a user is given exists (built in or defined by the tenant).
pub fn check_config(tenant: &TenantConfig) -> Result<(), Invalid> {
    for (user_id, user) in &tenant.users {
        for role in user.role_ids() {
            if !tenant.roles.contains_key(&role) && role::built_in(&role).is_none() {
                return Err(invalid(
                    format!("users.{user_id}.roles"),
                    format!(
                        "no role `{role}` (built in: admin, manager, agent, readonly; or define it under roles)"
                    ),
                ));
            }
        }
    }
    let tree = Departments::from_pairs(
        tenant
            .departments
            .iter()
            .map(|(d, c)| (d.as_str(), c.parent.as_deref())),
    );
    for (d, c) in &tenant.departments {
        if let Err(m) = role::check_id(d) {
            return Err(invalid(format!("departments.{d}"), m));
        }
        if c.name.trim().is_empty() {
            return Err(invalid(
                format!("departments.{d}.name"),
                "must not be empty",
            ));
        }
        if let Some(parent) = &c.parent {
            if !tree.contains(parent) {
                return Err(invalid(
                    format!("departments.{d}.parent"),
                    format!("no department `{parent}`"),
                ));
            }
            if tree.would_cycle(d, parent) {
                return Err(invalid(
                    format!("departments.{d}.parent"),
                    "departments form a tree: this parent is the department itself or below it",
                ));
            }
        }
    }
    let mut known = tree.ids();
    known.extend(tenant.users.values().filter_map(|u| u.department.clone()));
    for (role_id, spec) in &tenant.roles {
        if let Err(Error::Invalid(problems)) = RoleDef::from_spec(
            spec,
            role_id,
            &format!("roles.{role_id}"),
            &known,
            &tenant.contact.sealed_attributes,
        ) {
            let first = &problems[0];
            return Err(invalid(first.field.clone(), first.message.clone()));
        }
    }
    Ok(())
}
