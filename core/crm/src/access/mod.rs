//! Permissions: the one policy layer between a caller and the data.
//!
//! An [`Access`] is resolved once per request from the caller's roles and department (and
//! the sensitive fields of the tenant's modules) — kept between requests while the tenant's
//! access version stands ([`AccessCache`]) — and travels inside the
//! [`Actor`](crate::tenancy::Actor). Every read of customers, events, follow-ups, tasks and
//! bills made for an actor appends [`Access`]'s scope condition to its SQL (`scope.rs`), so
//! lists, counts, cursors and aggregates see the same rows; every change first asks
//! [`Access::require`] for the action and [`Access::ensure_customer`] for the target; every
//! customer leaving the API passes [`Access::mask_customer`] (`mask.rs`).
//!
//! Roles live in the database (`roles`, `user_roles`), seeded from config (`bootstrap.rs`)
//! and edited by administrators (`admin.rs`). See docs/permissions.md.

mod bootstrap;
mod cache;
mod config_check;
mod departments;
mod mask;
pub mod role;
mod scope;
mod scoped;

use std::collections::{BTreeSet, HashMap, HashSet};

pub use bootstrap::seed;
pub use cache::{AccessCache, version};
pub use config_check::check_config;
pub use departments::Departments;
pub(crate) use mask::mask_value;
pub use mask::{mask_email, mask_phone, mask_text};
use role::RoleDef;
pub use scoped::{ScopedId, ScopedIds};
use sqlx::Row;

use shoal_base::{
    error::{Error, Result},
    kinds::{Action, LifecycleStage, Resource, ScopeKind, Visibility},
    storage::Db,
};
use shoal_rules::Rule;

/// Which rows of one resource an actor reaches: the union over its roles.
#[derive(Debug, Clone, Default)]
struct Reach {
    all: bool,
    /// Rows the user owns (or is assigned).
    own: bool,
    /// Rows owned by users of these departments.
    departments: BTreeSet<String>,
    /// Rows whose customer is in one of these stages (grants).
    stages: Vec<LifecycleStage>,
    /// Rows whose customer satisfies one of these rules (grants).
    rules: Vec<Rule>,
}

/// What one caller may see and do.
#[derive(Debug, Clone)]
pub struct Access {
    pub tenant_id: String,
    pub user_id: String,
    pub department: Option<String>,
    /// The caller's roles.
    pub roles: Vec<RoleDef>,
    reach: HashMap<Resource, Reach>,
    actions: HashSet<Action>,
    /// Fields the tenant's modules declare sensitive (`attributes.annual_income`).
    sensitive: HashSet<String>,
    /// Host work (SOP runner, tag evaluation): everything, unmasked.
    pub(crate) system: bool,
}

impl Access {
    /// Everything, unmasked: for the host's own work, never for a request.
    pub fn system(tenant_id: &str) -> Access {
        Access {
            tenant_id: tenant_id.to_owned(),
            user_id: "system".into(),
            department: None,
            roles: Vec::new(),
            reach: Resource::ALL
                .iter()
                .map(|r| {
                    let all = Reach {
                        all: true,
                        ..Reach::default()
                    };
                    (*r, all)
                })
                .collect(),
            actions: Action::ALL.iter().copied().collect(),
            sensitive: HashSet::new(),
            system: true,
        }
    }

    /// The access given by `roles` to a user of `department`.
    pub fn new(
        tenant_id: &str,
        user_id: &str,
        department: Option<String>,
        roles: Vec<RoleDef>,
        tree: &Departments,
        sensitive: HashSet<String>,
    ) -> Access {
        let mut reach: HashMap<Resource, Reach> = HashMap::new();
        let mut actions = HashSet::new();
        for role in &roles {
            actions.extend(role.actions.iter().copied());
            for (resource, kind) in &role.scopes {
                let r = reach.entry(*resource).or_default();
                match kind {
                    ScopeKind::None => {}
                    ScopeKind::Own => r.own = true,
                    ScopeKind::Department => {
                        r.own = true;
                        r.departments.extend(department.clone());
                    }
                    ScopeKind::Subtree => {
                        r.own = true;
                        if let Some(d) = &department {
                            r.departments.extend(tree.subtree(d));
                        }
                    }
                    ScopeKind::Departments => {
                        r.own = true;
                        for d in &role.departments {
                            r.departments.extend(tree.subtree(d));
                        }
                    }
                    ScopeKind::All => r.all = true,
                }
            }
            for grant in &role.grants {
                for resource in &grant.resources {
                    let r = reach.entry(*resource).or_default();
                    for s in &grant.stages {
                        if !r.stages.contains(s) {
                            r.stages.push(*s);
                        }
                    }
                    r.rules.extend(grant.when.clone());
                }
            }
        }
        Access {
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            department,
            roles,
            reach,
            actions,
            sensitive,
            system: false,
        }
    }

    /// Loads the user's department and roles and the tenant's department tree.
    pub async fn load(
        db: &Db,
        tenant_id: &str,
        user_id: &str,
        sensitive: HashSet<String>,
    ) -> Result<Access> {
        let mut conn = db.pool.acquire().await?;
        let department: Option<String> =
            sqlx::query("SELECT department FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.try_get("department"))
                .transpose()?
                .flatten();
        let tree = Departments::load(&mut conn, tenant_id).await?;
        let rows = sqlx::query(
            "SELECT r.id, r.definition FROM user_roles ur JOIN roles r \
             ON r.tenant_id = ur.tenant_id AND r.id = ur.role_id \
             WHERE ur.tenant_id = $1 AND ur.user_id = $2 ORDER BY r.id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        let known = tree.ids();
        let sealed = db.vault.sealed_attributes(tenant_id);
        let mut roles = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let definition: String = row.try_get("definition")?;
            let checked = serde_json::from_str::<role::RoleSpec>(&definition)
                .map_err(|e| Error::Internal(format!("role `{id}` is stored unreadable: {e}")))
                .and_then(|spec| role::RoleDef::from_spec(&spec, &id, "role", &known, &sealed));
            match checked {
                Ok(def) => roles.push(def),
                // a role naming a department since deleted: skip it rather than lock out
                Err(e) => {
                    tracing::warn!(tenant = tenant_id, role = %id, error = %e, "role ignored")
                }
            }
        }
        Ok(Access::new(
            tenant_id, user_id, department, roles, &tree, sensitive,
        ))
    }

    /// The ids of the caller's roles.
    pub fn role_ids(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.id.as_str()).collect()
    }

    pub fn is_system(&self) -> bool {
        self.system
    }

    /// May the caller do `action`?
    pub fn can(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }

    /// Fails with `FORBIDDEN`, naming the action and the caller's roles, unless it may.
    pub fn require(&self, action: Action) -> Result<()> {
        if self.can(action) {
            return Ok(());
        }
        let roles = self.role_ids();
        Err(Error::Forbidden(format!(
            "action `{}` is not granted to role{} `{}`",
            action.as_str(),
            if roles.len() == 1 { "" } else { "s" },
            roles.join("`, `")
        )))
    }

    /// The fields the tenant's modules declare sensitive, sorted.
    pub fn sensitive_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.sensitive.iter().cloned().collect();
        fields.sort();
        fields
    }

    /// Does the caller reach every row of `resource` (no condition needed)?
    pub fn reaches_all(&self, resource: Resource) -> bool {
        self.reach.get(&resource).is_some_and(|r| r.all)
    }

    /// How `field` (`phones`, `attributes.income`, …) reads for the caller: the most
    /// revealing rule among its roles. A role's rule for the field itself wins; then a
    /// sensitive field gets the role's `sensitive` rule; then `attributes` covers every
    /// attribute; anything else is visible.
    pub fn visibility(&self, field: &str) -> Visibility {
        if self.system {
            return Visibility::Visible;
        }
        let sensitive = self.sensitive.contains(field);
        self.roles
            .iter()
            .map(|role| {
                if let Some(v) = role.fields.get(field) {
                    *v
                } else if sensitive {
                    role.sensitive
                } else if field.starts_with("attributes.") {
                    role.fields
                        .get("attributes")
                        .copied()
                        .unwrap_or(Visibility::Visible)
                } else {
                    Visibility::Visible
                }
            })
            .reduce(Visibility::most)
            .unwrap_or(Visibility::Hidden)
    }

    /// Whether the caller reads every customer field in full — no rule masks or hides a
    /// field, an attribute or a sensitive field. Texts rendered from customer fields (an
    /// outbox body, a step's detail) are shown only to such callers.
    pub fn sees_customers_in_full(&self) -> bool {
        if self.system {
            return true;
        }
        let fields_visible = self.roles.iter().any(|role| {
            role.fields.values().all(|v| *v == Visibility::Visible)
                && (self.sensitive.is_empty() || role.sensitive == Visibility::Visible)
        });
        fields_visible
            && role::CUSTOMER_FIELDS
                .iter()
                .all(|f| self.visibility(f) == Visibility::Visible)
    }

    /// Fails with `FORBIDDEN` when a filter names a field the caller cannot read in full
    /// (filtering would reveal it).
    pub fn require_visible(&self, field: &str, input: &str) -> Result<()> {
        match self.visibility(field) {
            Visibility::Visible => Ok(()),
            v => Err(Error::Forbidden(format!(
                "{input}: field `{field}` is {} for you, so it cannot be filtered on",
                v.as_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, toml_text: &str) -> RoleDef {
        let spec: role::RoleSpec = toml::from_str(toml_text).expect("spec");
        role::RoleDef::from_spec(&spec, id, "role", &HashSet::new(), &[]).expect("valid role")
    }

    fn access(roles: Vec<RoleDef>) -> Access {
        let sensitive = HashSet::from(["attributes.income".to_owned()]);
        Access::new("t", "u", None, roles, &Departments::default(), sensitive)
    }

    #[test]
    fn fields_modules_declare_sensitive_are_hidden_unless_a_role_says_otherwise() {
        let agent = role("agent", "name = \"Agent\"");
        assert_eq!(
            access(vec![agent.clone()]).visibility("attributes.income"),
            Visibility::Hidden
        );
        assert_eq!(
            access(vec![agent.clone()]).visibility("attributes.city"),
            Visibility::Visible
        );
        let masked = role("m", "name = \"M\"\nsensitive = \"masked\"");
        assert_eq!(
            access(vec![masked]).visibility("attributes.income"),
            Visibility::Masked
        );
        let named = role(
            "n",
            "name = \"N\"\nfields = { \"attributes.income\" = \"visible\" }",
        );
        assert_eq!(
            access(vec![agent, named]).visibility("attributes.income"),
            Visibility::Visible
        );
    }

    #[test]
    fn the_most_revealing_role_wins_and_no_role_sees_nothing() {
        let hide = role("h", "name = \"H\"\nfields = { phones = \"hidden\" }");
        let mask = role("k", "name = \"K\"\nfields = { phones = \"masked\" }");
        assert_eq!(
            access(vec![hide.clone(), mask]).visibility("phones"),
            Visibility::Masked
        );
        assert_eq!(access(vec![hide]).visibility("phones"), Visibility::Hidden);
        assert_eq!(access(vec![]).visibility("phones"), Visibility::Hidden);
        assert!(!access(vec![]).can(Action::Create));
    }
}
