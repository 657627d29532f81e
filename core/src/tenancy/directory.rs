//! API keys → actors, and the tenant/user rows mirrored from config.

use std::{collections::HashMap, sync::Arc};

use sqlx::Acquire;

use super::{Actor, Tenant};
use crate::{
    config::{Config, sha256_hex},
    storage::{Db, time},
};

/// Everything needed to authenticate a request, built once from config.
#[derive(Debug, Default)]
pub struct Directory {
    /// SHA-256 (hex) of an API key → the actor it acts as.
    keys: HashMap<String, Actor>,
    tenants: HashMap<String, Arc<Tenant>>,
}

impl Directory {
    pub fn from_config(config: &Config) -> Directory {
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
                // checked when the config was loaded
                contact: crate::sop::contact::Policy::from_config(&tc.contact).unwrap_or_default(),
            });
            for key in tc.api_keys.values() {
                let (Some(hash), Some(user)) = (&key.sha256, tc.users.get(&key.user)) else {
                    continue; // config validation guarantees both
                };
                directory.keys.insert(
                    hash.clone(),
                    Actor {
                        tenant: tenant.clone(),
                        user_id: key.user.clone(),
                        role: user.role,
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

    /// The actor for a presented API key, if the key is known.
    pub fn authenticate(&self, api_key: &str) -> Option<Actor> {
        self.keys.get(&sha256_hex(api_key)).cloned()
    }

    pub fn tenant(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(id)
    }
}

/// Mirrors configured tenants and users into the database (rows are upserted; users removed
/// from config are kept, since customers and the audit log may still name them).
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
        for (user_id, user) in &tenant.users {
            sqlx::query(
                "INSERT INTO users (tenant_id, id, name, email, department, role) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, \
                 email = excluded.email, department = excluded.department, role = excluded.role",
            )
            .bind(id)
            .bind(user_id)
            .bind(&user.name)
            .bind(&user.email)
            .bind(&user.department)
            .bind(user.role.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}
