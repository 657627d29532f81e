//! Rules on the customer (a webhook endpoint's filter, a staff rule's condition), evaluated
//! with the customer's facts loaded once per relay batch.

use std::collections::HashMap;

use sqlx::AnyConnection;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_rules::ast::Rule;

/// The facts of the customers a batch touched, loaded on first use.
#[derive(Default)]
pub struct Facts(HashMap<String, Option<shoal_tags::Loaded>>);

impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Facts({} customers)", self.0.len())
    }
}

impl Facts {
    /// Whether `rule` holds for the customer now; never for a customer that is gone (or
    /// for a change without one).
    pub async fn holds(
        &mut self,
        conn: &mut AnyConnection,
        db: &Db,
        tenant: &str,
        customer: &str,
        rule: &Rule,
    ) -> Result<bool> {
        if customer.is_empty() {
            return Ok(false);
        }
        if !self.0.contains_key(customer) {
            let loaded = shoal_tags::load(conn, db, tenant, customer).await?;
            self.0.insert(customer.to_owned(), loaded);
        }
        let now = time::to_micros(time::now());
        Ok(self.0[customer]
            .as_ref()
            .is_some_and(|f| shoal_rules::eval::holds(&rule.cond, &f.facts(now))))
    }
}
