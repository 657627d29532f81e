//! Who is calling: tenants, users and the [`Actor`] every operation runs as.

mod directory;

use std::{collections::BTreeMap, sync::Arc};

pub use directory::{Directory, sync_to_db};

use crate::{
    config::{Role, UserConfig},
    error::{Error, Result},
};

/// A tenant as the running host knows it (from config).
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub time_zone: chrono_tz::Tz,
    /// Region for phone numbers written without a country code.
    pub default_region: phonenumber::country::Id,
    pub users: BTreeMap<String, UserConfig>,
    /// Quiet hours, frequency caps and the webhook channel for automated messages.
    pub contact: crate::sop::contact::Policy,
}

/// The caller of an operation: a user of one tenant, with a role. Every query and mutation
/// receives one, and every storage call is scoped by `actor.tenant.id`.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: Arc<Tenant>,
    pub user_id: String,
    pub role: Role,
}

impl Actor {
    pub fn tenant_id(&self) -> &str {
        &self.tenant.id
    }

    /// Fails with `FORBIDDEN` unless the role may change data.
    pub fn require_write(&self) -> Result<()> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "role `{}` may not change data",
                self.role.as_str()
            )))
        }
    }
}
