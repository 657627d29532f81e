//! Rules on the customer (a webhook endpoint's filter, a staff rule's condition), evaluated
//! with the customer's facts loaded once per relay batch.

use std::collections::HashMap;

use sqlx::AnyConnection;

use shoal_base::{
    error::Result,
    storage::{Db, time},
};
use shoal_rules::ast::Rule;

/// Parses a rule on the customer given at `field` (a filter, a condition) against the
/// tenant's tags and the attributes it seals; errors name the field, line and column.
pub async fn parse_rule(
    conn: &mut AnyConnection,
    tenant: &shoal_crm::tenancy::Tenant,
    text: &str,
    field: &str,
) -> Result<Rule> {
    let tags = shoal_tags::store_all(conn, &tenant.id).await?;
    shoal_tags::parse_rule(text, &tags, &tenant.contact.sealed_attributes, field)
}

/// The stored rules of a relay batch (endpoints' filters, staff rules' conditions), parsed
/// with one read of the tags: `None` where there is no rule, `Some(None)` where one no longer
/// parses (a tag renamed) — such a rule lets nothing through.
pub async fn parse_stored<'a>(
    conn: &mut AnyConnection,
    tenant: &str,
    texts: impl Iterator<Item = Option<&'a str>>,
) -> Result<Vec<Option<Option<Rule>>>> {
    let tags = shoal_tags::store_all(conn, tenant).await?;
    Ok(texts
        .map(|t| t.map(|t| shoal_tags::parse_rule(t, &tags, &[], "rule").ok()))
        .collect())
}

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
