//! Data scopes as SQL: the conditions every scoped read appends, so that lists, counts,
//! cursors and aggregates all see the same rows.

use super::Access;
use shoal_base::{
    error::{Error, Result},
    kinds::Resource,
    storage::{Backend, Db, sql::Sql, time},
};

impl Access {
    /// Appends ` AND (…)` keeping only customers (alias `c`) the caller reaches in
    /// `resource`; `t` is the placeholder of the tenant id.
    pub fn push_customer_scope(
        &self,
        sql: &mut Sql,
        backend: Backend,
        resource: Resource,
        t: &str,
    ) {
        if let Some(cond) = self.condition(sql, backend, resource, t, Some("c.owner_id"), true) {
            sql.push(&format!(" AND ({cond})"));
        }
    }

    /// Appends ` AND (…)` keeping only rows whose customer (`customer_col`) the caller
    /// reaches in `resource` (events, follow-ups, bills).
    pub fn push_linked_scope(
        &self,
        sql: &mut Sql,
        backend: Backend,
        resource: Resource,
        t: &str,
        customer_col: &str,
    ) {
        if let Some(cond) = self.condition(sql, backend, resource, t, Some("c.owner_id"), true) {
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = {t} AND c.id = {customer_col} AND ({cond}))"
            ));
        }
    }

    /// Appends ` AND (…)` keeping rows whose customer (`customer_col`) the caller reaches in
    /// `resource` (as [`Self::push_linked_scope`]), whose assignee (`assignee_col`) the
    /// caller reaches (own: themselves; departments: their users), or — for a caller with
    /// some reach in `resource` — that meet one of `also` (tickets waiting in the caller's
    /// queues).
    #[allow(clippy::too_many_arguments)]
    pub fn push_linked_or_assigned_scope(
        &self,
        sql: &mut Sql,
        backend: Backend,
        resource: Resource,
        t: &str,
        customer_col: &str,
        assignee_col: &str,
        also: &[String],
    ) {
        let Some(linked) = self.condition(sql, backend, resource, t, Some("c.owner_id"), true)
        else {
            return;
        };
        let mut parts = vec![format!(
            "EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = {t} AND c.id = {customer_col} AND ({linked}))"
        )];
        if let Some(assigned) = self.condition(sql, backend, resource, t, Some(assignee_col), false)
        {
            parts.push(format!("({assigned})"));
        }
        if self
            .reach
            .get(&resource)
            .is_some_and(|r| r.own || !r.departments.is_empty())
        {
            parts.extend(also.iter().map(|a| format!("({a})")));
        }
        sql.push(&format!(" AND ({})", parts.join(" OR ")));
    }

    /// Appends ` AND (…)` keeping only tasks whose assignee (`assignee_col`) the caller
    /// reaches, or whose customer (`customer_col`) a grant opens.
    pub fn push_assigned_scope(
        &self,
        sql: &mut Sql,
        backend: Backend,
        t: &str,
        assignee_col: &str,
        customer_col: &str,
    ) {
        let resource = Resource::Tasks;
        let Some(owned) = self.condition(sql, backend, resource, t, Some(assignee_col), false)
        else {
            return;
        };
        let mut parts = vec![owned];
        let reach = self.reach.get(&resource);
        if reach.is_some_and(|r| r.own) && !self.roles.is_empty() {
            // tasks for a role (`role:<id>`) belong to everyone holding it
            let roles: Vec<String> = self
                .roles
                .iter()
                .map(|r| sql.arg(format!("role:{}", r.id)))
                .collect();
            parts.push(format!("{assignee_col} IN ({})", roles.join(", ")));
        }
        if let Some(granted) = self.condition(sql, backend, resource, t, None, true) {
            parts.push(format!(
                "EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = {t} AND c.id = {customer_col} AND ({granted}))"
            ));
        }
        sql.push(&format!(" AND ({})", parts.join(" OR ")));
    }

    /// The condition a row must meet: on its owner (`owner_col`: own, departments) and, with
    /// `grants`, on customer `c` (stage and rule grants). `None` when every row is reached.
    fn condition(
        &self,
        sql: &mut Sql,
        backend: Backend,
        resource: Resource,
        t: &str,
        owner_col: Option<&str>,
        grants: bool,
    ) -> Option<String> {
        let reach = self.reach.get(&resource).cloned().unwrap_or_default();
        if reach.all {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(owner_col) = owner_col {
            if reach.own {
                let me = sql.arg(self.user_id.clone());
                parts.push(format!("{owner_col} = {me}"));
            }
            if !reach.departments.is_empty() {
                let ds: Vec<String> = reach
                    .departments
                    .iter()
                    .map(|d| sql.arg(d.clone()))
                    .collect();
                parts.push(format!(
                    "{owner_col} IN (SELECT u.id FROM users u WHERE u.tenant_id = {t} AND u.department IN ({}))",
                    ds.join(", ")
                ));
            }
        }
        if grants {
            if !reach.stages.is_empty() {
                let ss: Vec<String> = reach.stages.iter().map(|s| sql.arg(s.as_str())).collect();
                parts.push(format!("c.lifecycle_stage IN ({})", ss.join(", ")));
            }
            let now = time::to_micros(time::now());
            for rule in &reach.rules {
                let text =
                    shoal_rules::sql::cond_text(sql, backend, &self.tenant_id, &rule.cond, now);
                parts.push(format!("({text})"));
            }
        }
        if parts.is_empty() {
            return Some("1 = 0".into());
        }
        Some(parts.join(" OR "))
    }

    /// `NOT_FOUND` unless the caller reaches customer `id` in `resource` — the same answer
    /// as for a customer that does not exist, so scope does not reveal existence.
    pub async fn ensure_customer(&self, db: &Db, resource: Resource, id: &str) -> Result<()> {
        let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.tenant_id = ");
        let t = sql.arg(self.tenant_id.clone());
        let i = sql.arg(id);
        sql.push(&format!("{t} AND c.id = {i} AND c.deleted_at IS NULL"));
        self.push_customer_scope(&mut sql, db.backend, resource, &t);
        match sql.query().fetch_optional(&db.pool).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found("customer", id)),
        }
    }

    /// `NOT_FOUND` for the first of `ids` the caller does not reach in `resource` (within a
    /// transaction; a caller who reaches every row passes without a look-up).
    pub async fn ensure_customers_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        backend: Backend,
        resource: Resource,
        ids: &[String],
    ) -> Result<()> {
        if ids.is_empty() || self.reaches_all(resource) {
            return Ok(());
        }
        self.ensure_reached_in(conn, backend, resource, ids).await
    }

    /// `NOT_FOUND` (as `what`) unless row `id` of `table` (with a `customer_id` column) is
    /// one the caller reaches in `resource`.
    pub async fn ensure_linked(
        &self,
        db: &Db,
        resource: Resource,
        table: &'static str,
        what: &'static str,
        id: &str,
    ) -> Result<()> {
        if self.reaches_all(resource) {
            return Ok(());
        }
        let mut sql = Sql::new(&format!("SELECT x.id FROM {table} x WHERE x.tenant_id = "));
        let t = sql.arg(self.tenant_id.clone());
        let i = sql.arg(id);
        sql.push(&format!("{t} AND x.id = {i}"));
        self.push_linked_scope(&mut sql, db.backend, resource, &t, "x.customer_id");
        match sql.query().fetch_optional(&db.pool).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(what, id)),
        }
    }
}
