//! Listing customers: filters, ordering and keyset pagination in one SQL statement.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Attributes, Channel, Customer, Identity, LifecycleStage, store, validate};
use crate::{access::ScopedIds, tenancy::Actor};
use shoal_base::{
    error::{Error, Result},
    kinds::{Resource, Visibility},
    pagination::{Cursor, Key, Page, Paged},
    storage::{Db, dialect, sql::Sql, time},
};

/// Which customers to list. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Name prefix (case-insensitive), or an exact phone number or email address.
    pub search: Option<String>,
    pub stages: Vec<LifecycleStage>,
    pub channels: Vec<Channel>,
    pub owner_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Attribute values that must be equal (JSON equality).
    pub attributes: Option<Attributes>,
    /// Customers holding this external identity.
    pub identity: Option<Identity>,
    /// Tag ids the customer must all hold.
    pub tags_all: Vec<String>,
    /// Tag ids of which the customer holds at least one.
    pub tags_any: Vec<String>,
    /// Tag ids the customer must hold none of.
    pub tags_none: Vec<String>,
    /// Any of these RFM cells.
    pub rfm_cells: Vec<shoal_base::kinds::RfmCell>,
    /// A rule of the rule language the customer must satisfy.
    pub rule: Option<shoal_rules::Rule>,
    /// Customers with no follow-up record in this many hours (and older than that).
    pub no_follow_up_hours: Option<u32>,
    /// More filters that must all hold too (e.g. a saved segment's definition).
    pub also: Vec<CustomerFilter>,
}

/// Longest "no follow-up for" a filter may ask about: ten years.
pub const MAX_NO_FOLLOW_UP_HOURS: u32 = 10 * 366 * 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
    DisplayName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerOrder {
    pub field: OrderField,
    pub descending: bool,
}

impl Default for CustomerOrder {
    fn default() -> Self {
        CustomerOrder {
            field: OrderField::CreatedAt,
            descending: true,
        }
    }
}

impl CustomerOrder {
    /// The name cursors carry, so a cursor is only valid for the ordering it came from.
    pub fn cursor_name(&self) -> &'static str {
        match (self.field, self.descending) {
            (OrderField::CreatedAt, true) => "customers:created_at:desc",
            (OrderField::CreatedAt, false) => "customers:created_at:asc",
            (OrderField::UpdatedAt, true) => "customers:updated_at:desc",
            (OrderField::UpdatedAt, false) => "customers:updated_at:asc",
            (OrderField::DisplayName, true) => "customers:name:desc",
            (OrderField::DisplayName, false) => "customers:name:asc",
        }
    }

    fn column(&self) -> &'static str {
        match self.field {
            OrderField::CreatedAt => "c.created_at",
            OrderField::UpdatedAt => "c.updated_at",
            OrderField::DisplayName => "c.name_key",
        }
    }

    fn key_of(&self, c: &Customer) -> Key {
        match self.field {
            OrderField::CreatedAt => Key::Int(time::to_micros(c.created_at)),
            OrderField::UpdatedAt => Key::Int(time::to_micros(c.updated_at)),
            OrderField::DisplayName => Key::Text(validate::name_key(&c.display_name)),
        }
    }
}

/// Appends the filter's conditions to a statement over `customers c`, restricted to the
/// customers the actor's data scope reaches.
fn push_filter(sql: &mut Sql, db: &Db, actor: &Actor, filter: &CustomerFilter) -> Result<()> {
    let t = sql.arg(actor.tenant.id.clone());
    sql.push(&format!(
        " WHERE c.tenant_id = {t} AND c.deleted_at IS NULL"
    ));
    actor
        .access
        .push_customer_scope(sql, db.backend, Resource::Customers, &t);
    push_conditions(sql, db, actor, filter, &t)
}

/// The filter's own conditions (`AND …`); `t` is the tenant's placeholder. Filtering on a
/// field the actor may not read in full is refused (it would reveal the field), and a search
/// matches phones and emails only for actors who see them.
fn push_conditions(
    sql: &mut Sql,
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    t: &str,
) -> Result<()> {
    let (tenant, access) = (&*actor.tenant, &actor.access);
    let t = t.to_owned();
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let sees = |field: &str| access.visibility(field) == Visibility::Visible;
        let mut alternatives = Vec::new();
        // a prefix search on names the caller sees masked would reveal them letter by letter
        if sees("displayName") {
            let key = validate::name_key(search);
            let lo = sql.arg(key.clone());
            let hi = sql.arg(format!("{key}\u{10FFFF}"));
            alternatives.push(format!("(c.name_key >= {lo} AND c.name_key < {hi})"));
        }
        // contacts are found by their blind index: exact matches only (see `sealed`)
        let mut contact = |kind: &str, value: String| -> Result<()> {
            let k = sql.arg(kind);
            let v = sql.arg(super::sealed::contact_index(
                &db.vault, &tenant.id, kind, &value,
            )?);
            alternatives.push(format!(
                "c.id IN (SELECT customer_id FROM customer_contacts WHERE tenant_id = {t} AND kind = {k} AND value = {v})"
            ));
            Ok(())
        };
        // a phone number has digits and an address an `@`: a name is not parsed as either
        // (parsing a phone number compiles regular expressions: it showed in the profile of
        // a name search)
        if sees("phones")
            && search.chars().any(char::is_numeric)
            && let Ok(phone) = validate::phone(search, tenant.default_region)
        {
            contact("phone", phone)?;
        }
        if sees("emails")
            && search.contains('@')
            && let Ok(email) = validate::email(search)
        {
            contact("email", email)?;
        }
        if alternatives.is_empty() {
            return Err(Error::Forbidden(
                "filter.search: names, phones and emails are masked for you, so nothing can be searched by them".into(),
            ));
        }
        sql.push(&format!(" AND ({})", alternatives.join(" OR ")));
    }
    let any_of = |sql: &mut Sql, column: &str, values: Vec<&'static str>| {
        if values.is_empty() {
            return;
        }
        let ps: Vec<String> = values.into_iter().map(|v| sql.arg(v)).collect();
        sql.push(&format!(" AND {column} IN ({})", ps.join(", ")));
    };
    any_of(
        sql,
        "c.lifecycle_stage",
        filter.stages.iter().map(|s| s.as_str()).collect(),
    );
    any_of(
        sql,
        "c.source_channel",
        filter.channels.iter().map(|c| c.as_str()).collect(),
    );
    if let Some(owner) = &filter.owner_id {
        let o = sql.arg(owner.clone());
        sql.push(&format!(" AND c.owner_id = {o}"));
    }
    if let Some(after) = filter.created_after {
        let a = sql.arg(time::to_micros(after));
        sql.push(&format!(" AND c.created_at >= {a}"));
    }
    if let Some(before) = filter.created_before {
        let b = sql.arg(time::to_micros(before));
        sql.push(&format!(" AND c.created_at < {b}"));
    }
    let sealed = db.vault.sealed_attributes(&tenant.id);
    let refuse_sealed = |key: &str, field: String| -> Result<()> {
        if sealed.iter().any(|k| k == key) {
            return Err(Error::invalid(
                field,
                format!(
                    "attributes.{key} is sealed at rest (contact.sealed_attributes): filters cannot match it"
                ),
            ));
        }
        Ok(())
    };
    if let Some(attributes) = filter.attributes.as_ref().filter(|a| !a.is_empty()) {
        for key in attributes.keys() {
            shoal_base::kinds::attribute_key(key)
                .map_err(|m| Error::invalid(format!("filter.attributes.{key}"), m))?;
            refuse_sealed(key, format!("filter.attributes.{key}"))?;
            access.require_visible(
                &format!("attributes.{key}"),
                &format!("filter.attributes.{key}"),
            )?;
        }
        let a = sql.arg(Value::Object(attributes.clone()).to_string());
        sql.push(" AND ")
            .push(&dialect::json_key_equals(db.backend, "c.attributes", &a));
    }
    if let Some(identity) = &filter.identity {
        access.require_visible("identities", "filter.identity")?;
        let ch = sql.arg(identity.channel.as_str());
        let ext = sql.arg(super::sealed::identity_index(
            &db.vault,
            &tenant.id,
            identity.channel,
            identity.external_id.trim(),
        )?);
        sql.push(&format!(
            " AND c.id IN (SELECT customer_id FROM customer_identities WHERE tenant_id = {t} \
             AND channel = {ch} AND external_id = {ext} AND deleted_at IS NULL)"
        ));
    }
    let holds = |sql: &mut Sql, ids: &[String]| -> String {
        let list: Vec<String> = ids.iter().map(|id| sql.arg(id.clone())).collect();
        format!(
            "EXISTS (SELECT 1 FROM customer_tags ct WHERE ct.tenant_id = {t} AND ct.customer_id = c.id AND ct.tag_id IN ({}))",
            list.join(", ")
        )
    };
    for id in &filter.tags_all {
        let cond = holds(sql, std::slice::from_ref(id));
        sql.push(" AND ").push(&cond);
    }
    if !filter.tags_any.is_empty() {
        let cond = holds(sql, &filter.tags_any);
        sql.push(" AND ").push(&cond);
    }
    if !filter.tags_none.is_empty() {
        let cond = holds(sql, &filter.tags_none);
        sql.push(" AND NOT ").push(&cond);
    }
    if !filter.rfm_cells.is_empty() {
        let cells: Vec<String> = filter
            .rfm_cells
            .iter()
            .map(|c| sql.arg(c.as_str()))
            .collect();
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM customer_rfm r WHERE r.tenant_id = {t} AND r.customer_id = c.id AND r.cell IN ({}))",
            cells.join(", ")
        ));
    }
    if let Some(rule) = &filter.rule {
        for key in rule.cond.attributes_read() {
            access.require_visible(&format!("attributes.{key}"), "filter.rule")?;
            // a rule parsed before the key was sealed (a stored segment) would never hold
            refuse_sealed(key, "filter.rule".into())?;
        }
        sql.push(" AND ");
        shoal_rules::sql::push_cond(
            sql,
            db.backend,
            &tenant.id,
            &rule.cond,
            time::to_micros(time::now()),
        );
    }
    if let Some(hours) = filter.no_follow_up_hours {
        if !(1..=MAX_NO_FOLLOW_UP_HOURS).contains(&hours) {
            return Err(Error::invalid(
                "filter.noFollowUpForHours",
                format!("between 1 and {MAX_NO_FOLLOW_UP_HOURS} hours (ten years)"),
            ));
        }
        let cut = sql.arg(time::to_micros(time::now()) - i64::from(hours) * 3_600_000_000);
        sql.push(&format!(
            " AND c.created_at < {cut} AND NOT EXISTS (SELECT 1 FROM follow_ups f WHERE f.tenant_id = {t} \
             AND f.customer_id = c.id AND f.at >= {cut})"
        ));
    }
    for more in &filter.also {
        push_conditions(sql, db, actor, more, &t)?;
    }
    Ok(())
}

/// Appends ` WHERE …` to a statement over `customers c`: the customers matching the filter
/// within the actor's scope, for statements that build on the set (more conditions, an
/// `INSERT … SELECT`: a campaign's frozen audience is written in one statement this way).
pub fn push_matching(sql: &mut Sql, db: &Db, actor: &Actor, filter: &CustomerFilter) -> Result<()> {
    push_filter(sql, db, actor, filter)
}

/// The ids of every customer matching the filter (at most `limit`), for bulk actions.
pub async fn ids_matching(
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    limit: usize,
) -> Result<ScopedIds> {
    let mut sql = Sql::new("SELECT c.id FROM customers c");
    push_filter(&mut sql, db, actor, filter)?;
    let l = sql.arg(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
    sql.push(&format!(" ORDER BY c.id LIMIT {l}"));
    let ids: Vec<String> = sql
        .query()
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| sqlx::Row::try_get(r, "id"))
        .collect::<Result<_, _>>()?;
    if ids.len() > limit {
        return Err(Error::LimitExceeded {
            field: "filter".into(),
            message: format!("the filter matches more than {limit} customers"),
        });
    }
    // the filter ran with the actor's scope for customers
    Ok(ScopedIds::from_scoped_query(
        actor.tenant_id(),
        Resource::Customers,
        ids,
    ))
}

/// One page of customers with the cursor of each.
pub async fn list(
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    order: CustomerOrder,
    page: &Page,
) -> Result<Paged<(Customer, Cursor)>> {
    let sql = list_sql(db, actor, filter, order, page)?;
    let rows = sql.query().fetch_all(&db.pool).await?;
    let customers = rows
        .iter()
        .map(|r| store::from_row(&db.vault, actor.tenant_id(), r))
        .collect::<Result<Vec<_>>>()?;
    let tenant = &actor.tenant;
    Ok(page.finish(customers).with_cursors(|c| Cursor {
        tenant: tenant.id.clone(),
        order: order.cursor_name().to_owned(),
        key: order.key_of(c),
        id: c.id.clone(),
    }))
}

/// How many customers match the filter (ignoring pagination).
pub async fn count(db: &Db, actor: &Actor, filter: &CustomerFilter) -> Result<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM customers c");
    push_filter(&mut sql, db, actor, filter)?;
    let row = sql.query().fetch_one(&db.pool).await?;
    Ok(sqlx::Row::try_get(&row, "n")?)
}

/// The SQL `list` runs, for the benchmark that compares it with the GraphQL path.
pub fn list_sql(
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    order: CustomerOrder,
    page: &Page,
) -> Result<Sql> {
    if order.field == OrderField::DisplayName {
        // the order (and the cursors) would reveal a name the actor sees masked
        actor
            .access
            .require_visible("displayName", "orderBy.field")?;
    }
    let mut sql = Sql::new(&format!("SELECT {} FROM customers c", store::columns(db)));
    push_filter(&mut sql, db, actor, filter)?;
    page.push_conditions(&mut sql, order.column(), "c.id", order.descending);
    page.push_order_limit(&mut sql, order.column(), "c.id", order.descending);
    Ok(sql)
}

/// Customers matching the filter as CSV (at most `limit`, else `LIMIT_EXCEEDED`), within
/// the actor's scope and masked as the actor sees them; the export itself is audited.
/// Returns the CSV and its number of rows.
pub async fn export(
    db: &Db,
    actor: &Actor,
    filter: &CustomerFilter,
    limit: usize,
) -> Result<(String, usize)> {
    actor.require(shoal_base::kinds::Action::Export)?;
    let mut sql = Sql::new(&format!("SELECT {} FROM customers c", store::columns(db)));
    push_filter(&mut sql, db, actor, filter)?;
    let l = sql.arg(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
    sql.push(&format!(" ORDER BY c.created_at, c.id LIMIT {l}"));
    let rows = sql.query().fetch_all(&db.pool).await?;
    if rows.len() > limit {
        return Err(Error::LimitExceeded {
            field: "filter".into(),
            message: format!("the filter matches more than {limit} customers; narrow it"),
        });
    }
    let mut out = String::from(
        "id,displayName,phones,emails,lifecycleStage,ownerId,sourceChannel,createdAt,attributes\n",
    );
    for row in &rows {
        let mut c = store::from_row(&db.vault, actor.tenant_id(), row)?;
        actor.access.mask_customer(&mut c);
        let fields = [
            c.id.clone(),
            c.display_name.clone(),
            c.phones.join(";"),
            c.emails.join(";"),
            c.lifecycle_stage.as_str().to_owned(),
            c.owner_id.clone().unwrap_or_default(),
            c.source_channel.as_str().to_owned(),
            c.created_at.to_rfc3339(),
            Value::Object(c.attributes.clone()).to_string(),
        ];
        out.push_str(&shoal_base::csv_out::line(&fields));
    }
    let mut conn = db.pool.acquire().await?;
    crate::audit::record(
        &mut conn,
        actor,
        "customer.export",
        "tenant",
        actor.tenant_id(),
        serde_json::json!({ "rows": rows.len() }),
    )
    .await?;
    Ok((out, rows.len()))
}
