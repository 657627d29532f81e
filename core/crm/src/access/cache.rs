//! Each tenant's loaded permissions, kept between requests and stamped with the tenant's
//! access version.
//!
//! Triggers on `departments`, `roles`, `user_roles` and `users` (its `department`) bump the
//! tenant's row of `access_versions` in the transaction of any change (migration 32), so no
//! writer — the admin API, the config seed, a hand-written statement — can forget it. A
//! request reads that one row and reuses the permissions loaded at the same version, or
//! loads them again when it moved. Every host reads the same row, so a change made through
//! one host holds on the next request to any of them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use sqlx::Row;

use shoal_base::{error::Result, storage::Db};

use super::Access;

/// The permissions of a tenant's users as last loaded, with the version each was loaded at.
#[derive(Default)]
pub struct AccessCache(Mutex<HashMap<String, Cached>>);

struct Cached {
    version: i64,
    sensitive: HashSet<String>,
    access: Arc<Access>,
}

impl AccessCache {
    /// `user_id`'s permissions: those kept, if the tenant's access version has not moved
    /// since they were loaded (and the modules' sensitive fields are the same), else loaded
    /// now and kept.
    pub async fn get(
        &self,
        db: &Db,
        tenant_id: &str,
        user_id: &str,
        sensitive: HashSet<String>,
    ) -> Result<Arc<Access>> {
        // read before loading: a change committed in between leaves a newer version behind,
        // so the next request loads again
        let version = version(db, tenant_id).await?;
        if let Some(kept) = self.lock().get(user_id)
            && kept.version == version
            && kept.sensitive == sensitive
        {
            return Ok(kept.access.clone());
        }
        let access = Arc::new(Access::load(db, tenant_id, user_id, sensitive.clone()).await?);
        self.lock().insert(
            user_id.to_owned(),
            Cached {
                version,
                sensitive,
                access: access.clone(),
            },
        );
        Ok(access)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tenant's access version (0 before any department, role or user was written).
pub async fn version(db: &Db, tenant_id: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT version FROM access_versions WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.try_get::<i64, _>("version"))
            .transpose()?
            .unwrap_or(0),
    )
}
