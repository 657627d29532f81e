//! Who is calling: tenants, users and the [`Actor`] every operation runs as.

mod directory;

use std::{collections::BTreeMap, sync::Arc};

pub use directory::{Directory, Principal, sync_to_db};

use crate::{access::Access, config::UserConfig, error::Result, kinds::Action};

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
    /// Duplicate policy: which exact matches merge on import, how conflicts are settled.
    pub dedupe: crate::config::DedupeConfig,
    /// Data-quality thresholds.
    pub quality: crate::config::QualityConfig,
}

/// The caller of an operation: a user (or integration) of one tenant, with what its roles
/// allow. Every query and mutation receives one; every storage call is scoped by
/// `actor.tenant.id` and, for reads of customer data, by `actor.access`.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: Arc<Tenant>,
    pub user_id: String,
    /// What the caller may see and do, resolved once per request.
    pub access: Arc<Access>,
    /// Ties the audit entries of one request together (`X-Request-Id`, else generated).
    pub request_id: String,
}

impl Actor {
    /// The host itself (SOP runner, tag evaluation, demo seeding), acting as `name` with
    /// every permission.
    pub fn system(tenant: &Arc<Tenant>, name: &str) -> Actor {
        Actor {
            tenant: tenant.clone(),
            user_id: name.to_owned(),
            access: Arc::new(Access::system(&tenant.id)),
            request_id: format!("{name}:{}", uuid::Uuid::now_v7()),
        }
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant.id
    }

    /// Fails with `FORBIDDEN` unless one of the caller's roles grants `action`.
    pub fn require(&self, action: Action) -> Result<()> {
        self.access.require(action)
    }
}
