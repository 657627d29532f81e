//! Roles as written in configuration (`[tenants.<t>.roles.<id>]`): plain data. `shoal-crm`'s
//! `access::role` checks them into roles the host enforces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A role as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSpec {
    pub name: String,
    /// Resource (`customers`, `events`, `follow_ups`, `tasks`, `tickets`, `bills`, or `*`
    /// for every resource not named) → scope (`none`, `own`, `department`, `subtree`,
    /// `departments`, `all`). Resources not covered get `none`.
    pub scopes: BTreeMap<String, String>,
    /// The departments of scope `departments` (each with the departments below it).
    pub departments: Vec<String>,
    /// Field (`displayName`, `phones`, `emails`, `identities`, `attributes`,
    /// `attributes.<key>`) → `visible`, `masked` or `hidden`. Unnamed fields are visible,
    /// except sensitive ones.
    pub fields: BTreeMap<String, String>,
    /// How fields that modules declare sensitive read when `fields` does not name them
    /// (default `hidden`).
    pub sensitive: Option<String>,
    /// What the role may do (`create`, `update`, …).
    pub actions: Vec<String>,
    /// Extra reach while a customer is in a stage or satisfies a rule.
    pub grants: Vec<GrantSpec>,
}

/// "While the customer is in one of `stages` (or satisfies `when`), this role reaches it in
/// `resources`." Revoked as soon as the customer leaves the stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantSpec {
    /// Lifecycle stages (`lead`, `prospect`, `customer`, …).
    pub stages: Vec<String>,
    /// A rule of the rule language (e.g. `attr.deal_stage = "signing"`); `has_tag` is
    /// not available here.
    pub when: Option<String>,
    pub resources: Vec<String>,
}
