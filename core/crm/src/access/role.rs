//! Roles: what a role reaches (scopes per resource), sees (field rules) and may do (actions).
//!
//! A [`RoleSpec`] is a role as written — in config (`[tenants.<t>.roles.<id>]`), stored as
//! JSON in `roles.definition`, or sent by an administrator through GraphQL. [`RoleDef::from_spec`]
//! turns it into a [`RoleDef`], reporting every problem with its path.

use std::collections::{BTreeMap, HashMap, HashSet};

pub use shoal_base::config::{GrantSpec, RoleSpec};
use shoal_base::{
    error::{Problems, Result},
    kinds::{Action, LifecycleStage, Resource, ScopeKind, Visibility},
};
use shoal_rules::{self as rules, Rule};

/// A checked role.
#[derive(Debug, Clone)]
pub struct RoleDef {
    pub id: String,
    pub name: String,
    pub scopes: HashMap<Resource, ScopeKind>,
    pub departments: Vec<String>,
    pub fields: BTreeMap<String, Visibility>,
    pub sensitive: Visibility,
    pub actions: HashSet<Action>,
    pub grants: Vec<Grant>,
    /// The spec it was checked from (what is stored and shown).
    pub spec: RoleSpec,
}

/// A checked stage grant.
#[derive(Debug, Clone)]
pub struct Grant {
    pub stages: Vec<LifecycleStage>,
    pub when: Option<Rule>,
    pub resources: Vec<Resource>,
}

/// The roles every tenant has; config or an administrator may redefine them.
pub const BUILT_IN: [&str; 4] = ["admin", "manager", "agent", "readonly"];

/// The definition of a built-in role.
pub fn built_in(id: &str) -> Option<RoleSpec> {
    let all_actions = || Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    let every = |scope: &str| BTreeMap::from([("*".to_owned(), scope.to_owned())]);
    let spec = match id {
        "admin" => RoleSpec {
            name: "Administrator".into(),
            scopes: every("all"),
            sensitive: Some("visible".into()),
            actions: all_actions(),
            ..RoleSpec::default()
        },
        "manager" => RoleSpec {
            name: "Manager".into(),
            scopes: every("subtree"),
            sensitive: Some("masked".into()),
            actions: Action::ALL
                .iter()
                .filter(|a| **a != Action::Administer)
                .map(|a| a.as_str().to_owned())
                .collect(),
            ..RoleSpec::default()
        },
        "agent" => RoleSpec {
            name: "Agent".into(),
            scopes: every("own"),
            actions: ["create", "update", "settle"].map(str::to_owned).to_vec(),
            ..RoleSpec::default()
        },
        "readonly" => RoleSpec {
            name: "Read-only".into(),
            scopes: every("all"),
            ..RoleSpec::default()
        },
        _ => return None,
    };
    Some(spec)
}

/// The customer fields rules may name (besides `attributes.<key>`).
pub const CUSTOMER_FIELDS: [&str; 5] = [
    "displayName",
    "phones",
    "emails",
    "identities",
    "attributes",
];

/// Is `field` a field rules may name?
pub fn check_field(field: &str) -> Result<(), String> {
    match field {
        f if CUSTOMER_FIELDS.contains(&f) => Ok(()),
        _ => match field.strip_prefix("attributes.") {
            Some(key) => shoal_base::kinds::attribute_key(key),
            None => Err(
                "not a customer field (`displayName`, `phones`, `emails`, `identities`, `attributes` or `attributes.<key>`)"
                    .into(),
            ),
        },
    }
}

fn parse_visibility(p: &mut Problems, at: String, text: &str) -> Visibility {
    Visibility::parse(text).unwrap_or_else(|| {
        p.push(
            at,
            format!("`{text}` is not `visible`, `masked` or `hidden`"),
        );
        Visibility::Hidden
    })
}

fn parse_resource(p: &mut Problems, at: String, text: &str) -> Option<Resource> {
    let r = Resource::parse(text);
    if r.is_none() {
        let names: Vec<&str> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        p.push(
            at,
            format!("unknown resource `{text}` (one of {})", names.join(", ")),
        );
    }
    r
}

impl RoleDef {
    /// Checks the spec; `at` prefixes problem paths (`roles.store_manager`, `input`);
    /// `departments` are the tenant's departments, `sealed` the attributes it seals (which a
    /// grant's `when` may not read).
    pub fn from_spec(
        spec: &RoleSpec,
        id: &str,
        at: &str,
        departments: &HashSet<String>,
        sealed: &[String],
    ) -> Result<RoleDef> {
        let mut p = Problems::default();
        if let Err(m) = check_id(id) {
            p.push(format!("{at}.id"), m);
        }
        if spec.name.trim().is_empty() || spec.name.chars().count() > 100 {
            p.push(format!("{at}.name"), "must be 1–100 characters");
        }
        let mut scopes = HashMap::new();
        let default = spec.scopes.get("*").map(|s| (s, format!("{at}.scopes.*")));
        for r in Resource::ALL {
            let given = spec
                .scopes
                .get(r.as_str())
                .map(|s| (s, format!("{at}.scopes.{}", r.as_str())))
                .or_else(|| default.clone());
            let kind = match given {
                None => ScopeKind::None,
                Some((text, path)) => ScopeKind::parse(text).unwrap_or_else(|| {
                    p.push(path, format!("`{text}` is not a scope (none, own, department, subtree, departments, all)"));
                    ScopeKind::None
                }),
            };
            scopes.insert(*r, kind);
        }
        for key in spec.scopes.keys().filter(|k| *k != "*") {
            parse_resource(&mut p, format!("{at}.scopes.{key}"), key);
        }
        let needs_list = scopes.values().any(|k| *k == ScopeKind::Departments);
        if needs_list && spec.departments.is_empty() {
            p.push(
                format!("{at}.departments"),
                "scope `departments` needs at least one department",
            );
        }
        for (i, d) in spec.departments.iter().enumerate() {
            if !departments.contains(d) {
                p.push(
                    format!("{at}.departments[{i}]"),
                    format!("no department `{d}`"),
                );
            }
        }
        let mut fields = BTreeMap::new();
        for (field, rule) in &spec.fields {
            if let Err(m) = check_field(field) {
                p.push(format!("{at}.fields.{field}"), m);
            }
            fields.insert(
                field.clone(),
                parse_visibility(&mut p, format!("{at}.fields.{field}"), rule),
            );
        }
        let sensitive = match &spec.sensitive {
            None => Visibility::Hidden,
            Some(s) => parse_visibility(&mut p, format!("{at}.sensitive"), s),
        };
        let mut actions = HashSet::new();
        for (i, a) in spec.actions.iter().enumerate() {
            match Action::parse(a) {
                Some(a) => {
                    actions.insert(a);
                }
                None => {
                    let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                    p.push(
                        format!("{at}.actions[{i}]"),
                        format!("unknown action `{a}` (one of {})", names.join(", ")),
                    );
                }
            }
        }
        let mut grants = Vec::new();
        for (i, g) in spec.grants.iter().enumerate() {
            let path = format!("{at}.grants[{i}]");
            let mut stages = Vec::new();
            for (j, s) in g.stages.iter().enumerate() {
                match LifecycleStage::parse(s) {
                    Some(s) => stages.push(s),
                    None => p.push(
                        format!("{path}.stages[{j}]"),
                        format!("unknown lifecycle stage `{s}`"),
                    ),
                }
            }
            let when = g.when.as_deref().and_then(|text| {
                match rules::parse(text, &|_: &str| None, sealed) {
                    Ok(rule) => Some(rule),
                    Err(e) => {
                        p.push(format!("{path}.when"), e.to_string());
                        None
                    }
                }
            });
            if g.stages.is_empty() && g.when.is_none() {
                p.push(path.clone(), "a grant needs `stages` or `when`");
            }
            if g.resources.is_empty() {
                p.push(format!("{path}.resources"), "name at least one resource");
            }
            let resources = g
                .resources
                .iter()
                .enumerate()
                .filter_map(|(j, r)| parse_resource(&mut p, format!("{path}.resources[{j}]"), r))
                .collect();
            grants.push(Grant {
                stages,
                when,
                resources,
            });
        }
        p.into_result(())?;
        Ok(RoleDef {
            id: id.to_owned(),
            name: spec.name.trim().to_owned(),
            scopes,
            departments: spec.departments.clone(),
            fields,
            sensitive,
            actions,
            grants,
            spec: spec.clone(),
        })
    }
}

/// Ids of roles and departments: 1–64 of `a-z 0-9 _ -`, or any letters (e.g. `总部`).
pub fn check_id(id: &str) -> Result<(), String> {
    let n = id.chars().count();
    if n == 0 || n > 64 {
        return Err("must be 1–64 characters".into());
    }
    if id
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err("may hold letters, digits, `_` and `-` only".into())
    }
}
