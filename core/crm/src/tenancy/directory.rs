//! API keys → actors, and the tenant/user rows mirrored from config.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::Acquire;

use super::{Actor, Derived, HostChannels, Tenant};
use shoal_base::{
    config::{Config, sha256_hex},
    storage::{Db, time},
    vault::Vault,
};

/// Everything needed to authenticate a request, built once from config.
#[derive(Debug, Default)]
pub struct Directory {
    /// SHA-256 (hex) of an API key → who it acts as.
    keys: HashMap<String, Principal>,
    tenants: HashMap<String, Arc<Tenant>>,
}

impl Directory {
    /// The tenants and keys of `config`; each tenant shares `vault` (its keys, see
    /// [`shoal_base::vault`]).
    pub fn from_config(config: &Config, vault: &Vault) -> Directory {
        let mut directory = Directory::default();
        for (id, tc) in &config.tenants {
            let tenant = Arc::new(Tenant {
                id: id.clone(),
                name: tc.name.clone(),
                time_zone: tc.time_zone,
                default_region: tc
                    .default_region
                    .parse()
                    .unwrap_or(phonenumber::country::Id::CN),
                users: tc.users.clone(),
                contact: tc.contact.clone(),
                dedupe: tc.dedupe.clone(),
                quality: tc.quality.clone(),
                channels: tc.channels.clone(),
                campaigns: tc.campaigns.clone(),
                tickets: tc.tickets.clone(),
                connectors: tc.connectors.clone(),
                retention: tc.retention.clone(),
                host: HostChannels {
                    smtp_url: config.notify.smtp_url.clone(),
                    smtp_timeout_ms: config.notify.timeout_ms,
                    public_url: config
                        .server
                        .public_url
                        .as_ref()
                        .map(|u| u.trim_end_matches('/').to_owned()),
                },
                derived: Derived::default(),
                vault: vault.clone(),
            });
            for key in tc.api_keys.values() {
                let (Some(hash), true) = (&key.sha256, tc.users.contains_key(&key.user)) else {
                    continue; // config validation guarantees both
                };
                directory.keys.insert(
                    hash.clone(),
                    Principal {
                        tenant: tenant.clone(),
                        user_id: key.user.clone(),
                    },
                );
            }
            directory.tenants.insert(id.clone(), tenant);
        }
        directory
    }

    /// Every tenant.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    /// Who a presented API key acts as, if the key is known.
    pub fn authenticate(&self, api_key: &str) -> Option<Principal> {
        self.keys.get(&sha256_hex(api_key)).cloned()
    }

    pub fn tenant(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(id)
    }
}

/// An authenticated caller, before its permissions are loaded.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Arc<Tenant>,
    pub user_id: String,
}

impl Principal {
    /// The actor, with its roles and department as they stand now — loaded at an earlier
    /// request and kept while the tenant's access version has not moved
    /// ([`AccessCache`](crate::access::AccessCache)) — and the sensitive fields of the
    /// tenant's modules.
    pub async fn resolve(
        self,
        db: &Db,
        sensitive: HashSet<String>,
        request_id: String,
    ) -> shoal_base::error::Result<Actor> {
        let access = self
            .tenant
            .derived
            .get_or_init(crate::access::AccessCache::default)
            .get(db, &self.tenant.id, &self.user_id, sensitive)
            .await?;
        Ok(Actor {
            tenant: self.tenant,
            user_id: self.user_id,
            access,
            request_id,
        })
    }
}

/// Mirrors configured tenants into the database and seeds their departments, roles and users
/// (see [`crate::access::seed`]); users removed from config are kept, since customers and the
/// audit log may still name them.
pub async fn sync_to_db(db: &Db, config: &Config) -> Result<(), sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let now = time::to_micros(time::now());
    for (id, tenant) in &config.tenants {
        sqlx::query(
            "INSERT INTO tenants (tenant_id, name, time_zone, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, \
             time_zone = excluded.time_zone, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(&tenant.name)
        .bind(tenant.time_zone.name())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::access::seed(&mut tx, id, tenant, now).await?;
    }
    tx.commit().await
}
