//! Customer ids as proof of reach: a [`ScopedIds`] is made only here, by checking the ids
//! against the caller's scope (or by a query that already applied it), so a domain function
//! that takes one cannot be handed ids nobody checked — the unchecked path does not compile
//! outside this crate.

use shoal_base::{
    error::{Error, Result},
    kinds::Resource,
    storage::{Backend, Db},
};

use super::Access;

/// Customer ids of one tenant that the caller reaches in one resource, in the order given,
/// without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedIds {
    tenant: String,
    resource: Resource,
    ids: Vec<String>,
}

impl ScopedIds {
    /// Ids that came out of a query already limited to the caller's reach (crate-private:
    /// `customers::ids_matching`).
    pub(crate) fn from_scoped_query(tenant: &str, resource: Resource, ids: Vec<String>) -> Self {
        ScopedIds {
            tenant: tenant.to_owned(),
            resource,
            ids,
        }
    }

    /// The ids.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The ids, owned.
    pub fn into_ids(self) -> Vec<String> {
        self.ids
    }

    /// The tenant they belong to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant
    }

    /// The resource they were checked for.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One customer id the caller reaches in one resource (see [`ScopedIds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedId {
    tenant: String,
    resource: Resource,
    id: String,
}

impl ScopedId {
    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tenant it belongs to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant
    }

    /// The resource it was checked for.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The id, for work in `resource` of `tenant`: a proof made for another resource or
    /// tenant is a host bug, refused as such.
    pub fn for_use(&self, tenant: &str, resource: Resource) -> Result<&str> {
        if self.tenant != tenant || self.resource != resource {
            return Err(Error::Internal(format!(
                "customer {} was checked for {} of {}, used for {} of {tenant}",
                self.id,
                self.resource.as_str(),
                self.tenant,
                resource.as_str()
            )));
        }
        Ok(&self.id)
    }
}

impl Access {
    /// Checks one customer id from input (see [`Access::scope_customers`]).
    pub async fn scope_customer(
        &self,
        db: &Db,
        resource: Resource,
        id: impl Into<String>,
    ) -> Result<ScopedId> {
        let id = id.into();
        self.ensure_customer(db, resource, &id).await?;
        Ok(ScopedId {
            tenant: self.tenant_id.clone(),
            resource,
            id,
        })
    }

    /// Checks customer ids from input against the caller's reach in `resource`: an id the
    /// caller does not reach, in this tenant or at all, is `NOT_FOUND` (out of scope reads as
    /// absent). Duplicates are dropped.
    pub async fn scope_customers(
        &self,
        db: &Db,
        resource: Resource,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<ScopedIds> {
        let mut conn = db.pool.acquire().await?;
        self.scope_customers_in(&mut conn, db.backend, resource, ids)
            .await
    }

    /// [`Access::scope_customers`] within a transaction.
    pub async fn scope_customers_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        backend: Backend,
        resource: Resource,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<ScopedIds> {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        self.ensure_reached_in(conn, backend, resource, &ids)
            .await?;
        Ok(ScopedIds {
            tenant: self.tenant_id.clone(),
            resource,
            ids,
        })
    }

    /// `NOT_FOUND` for the first id that is not a live customer of the tenant within reach
    /// (also for callers who reach every customer).
    pub(crate) async fn ensure_reached_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        backend: Backend,
        resource: Resource,
        ids: &[String],
    ) -> Result<()> {
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            let mut sql = shoal_base::storage::sql::Sql::new(
                "SELECT c.id FROM customers c WHERE c.tenant_id = ",
            );
            let t = sql.arg(self.tenant_id.clone());
            let list: Vec<String> = chunk.iter().map(|id| sql.arg(id.clone())).collect();
            sql.push(&format!(
                "{t} AND c.deleted_at IS NULL AND c.id IN ({})",
                list.join(", ")
            ));
            self.push_customer_scope(&mut sql, backend, resource, &t);
            for row in sql.query_once().fetch_all(&mut *conn).await? {
                found.insert(sqlx::Row::try_get::<String, _>(&row, "id")?);
            }
        }
        match ids.iter().find(|id| !found.contains(*id)) {
            Some(missing) => Err(Error::not_found("customer", missing.clone())),
            None => Ok(()),
        }
    }
}
