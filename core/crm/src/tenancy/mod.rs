//! Who is calling: tenants, users and the [`Actor`] every operation runs as.

mod directory;

use std::{
    any::{Any, TypeId},
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

pub use directory::{Directory, Principal, sync_to_db};
use shoal_base::config::ContactConfig;

use crate::access::Access;
use shoal_base::{config::UserConfig, error::Result, kinds::Action};

/// A tenant as the running host knows it (from config).
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub time_zone: chrono_tz::Tz,
    /// Region for phone numbers written without a country code.
    pub default_region: phonenumber::country::Id,
    pub users: BTreeMap<String, UserConfig>,
    /// Quiet hours, frequency caps and the webhook channel for automated messages, as
    /// configured (checked at load; `shoal-sop` reads it into its contact policy).
    pub contact: ContactConfig,
    /// Duplicate policy: which exact matches merge on import, how conflicts are settled.
    pub dedupe: shoal_base::config::DedupeConfig,
    /// Data-quality thresholds.
    pub quality: shoal_base::config::QualityConfig,
    /// The channel adapters' settings (`shoal-sop` builds the adapters from them).
    pub channels: shoal_base::config::ChannelsConfig,
    /// Campaign approval and sensitive words.
    pub campaigns: shoal_base::config::CampaignsConfig,
    /// Tickets: the inbound key's variable.
    pub tickets: shoal_base::config::TicketsConfig,
    /// Inbound connectors (`shoal-connectors` reads them).
    pub connectors: shoal_base::config::ConnectorsConfig,
    /// How long personal data beyond the profiles is kept (`shoal-privacy` reads it).
    pub retention: shoal_base::config::RetentionConfig,
    /// What the tenant's channels take from the host's configuration.
    pub host: HostChannels,
    /// What engines derive from this tenant's configuration once and keep (see [`Derived`]).
    pub derived: Derived,
    /// The keys of every tenant on this host (the same as the database's): what an engine
    /// seals for this tenant, such as audit details, it seals with these.
    pub vault: shoal_base::vault::Vault,
}

/// The host's settings a tenant's channels use, copied into each tenant: the SMTP relay
/// its e-mail leaves through, and the public address tracking links start with.
#[derive(Debug, Clone, Default)]
pub struct HostChannels {
    /// `notify.smtp_url`.
    pub smtp_url: Option<String>,
    /// `notify.timeout_ms`.
    pub smtp_timeout_ms: u64,
    /// `server.public_url`, without a trailing `/`.
    pub public_url: Option<String>,
}

/// Values engines derive from a tenant's configuration once — the SOP contact policy with
/// its secret read, for example — kept with the tenant, so that `Tenant` holds no engine's
/// type and no engine re-reads its section on every call.
#[derive(Default)]
pub struct Derived(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Derived {
    /// The value of type `T` derived for this tenant, made by `init` the first time.
    /// `init` runs without the lock held, so it may derive other values of the same
    /// tenant (the channel adapters read the contact policy); should two callers race,
    /// the first value stored is the one everybody gets.
    ///
    /// ```
    /// use shoal_crm::tenancy::Derived;
    /// let derived = Derived::default();
    /// assert_eq!(*derived.get_or_init(|| 42_u32), 42);
    /// assert_eq!(*derived.get_or_init(|| 7_u32), 42);
    /// // one derived value may be made from another
    /// let text = derived.get_or_init(|| format!("{}", derived.get_or_init(|| 0_u32)));
    /// assert_eq!(*text, "42");
    /// ```
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let id = TypeId::of::<T>();
        let stored = self.lock().get(&id).cloned();
        let value = match stored {
            Some(value) => value,
            None => {
                let made: Arc<dyn Any + Send + Sync> = Arc::new(init());
                self.lock().entry(id).or_insert(made).clone()
            }
        };
        value.downcast::<T>().expect("stored under its own type id")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, Arc<dyn Any + Send + Sync>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
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
