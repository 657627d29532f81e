//! A campaign's audience in SQL: the customers it names (within the caller's scope), each
//! exclusion as a condition on them, the variant each recipient gets, and the two things
//! built on that — the preview (counts, per exclusion) and the frozen list (one
//! `INSERT … SELECT`, however many recipients).

use chrono::{DateTime, Utc};
use sqlx::Row;

use shoal_base::{
    error::{Error, Problems, Result},
    storage::{Backend, Db, sql::Sql, time},
};
use shoal_crm::{customers::CustomerFilter, tenancy::Actor};
use shoal_sop::{
    channels::{Adapters, Address},
    definition::customer_facing_sql,
};
use shoal_tags::filter::{FilterSpec, Paths, TagNames};

use crate::model::{Audience, Content, Exclusion};

/// Most customers an audience may list by id.
pub const MAX_LISTED: usize = 10_000;

/// An exclusion with its names looked up.
#[derive(Debug, Clone)]
enum Resolved {
    Segment(Box<CustomerFilter>),
    Tag(String),
    Bought {
        product: Option<String>,
        since: i64,
    },
    InSop(String),
    OptedOut,
    ContactedSince(i64),
    /// No address on the channel (not written by people: added for channels that need one).
    NoAddress(Address),
}

/// A variant with its names looked up.
#[derive(Debug, Clone)]
enum Pick {
    Tag(String),
    Segment(Box<CustomerFilter>),
    /// Recipients whose id's last two hex digits sort below this (an A/B share).
    Below(String),
    Rest,
}

/// An audience ready to run for one actor on one channel.
#[derive(Debug, Clone)]
pub struct Plan {
    base: CustomerFilter,
    listed: Vec<String>,
    exclusions: Vec<(String, Resolved)>,
    variants: Vec<(String, Pick)>,
    channel: String,
}

/// Looks every name of the audience and the content up, reporting every problem with its
/// path (`audience.exclude[1].tag`, `content.variants[0].tag`, …).
pub async fn plan(
    db: &Db,
    actor: &Actor,
    audience: &Audience,
    content: &Content,
    channel: &str,
) -> Result<Plan> {
    let tenant = &actor.tenant;
    let mut p = Problems::default();
    if audience.segment.is_none()
        && audience.tags_all.is_empty()
        && audience.tags_any.is_empty()
        && audience.rule.is_none()
        && audience.customers.is_empty()
    {
        p.push(
            "audience",
            "name a segment, tags, a rule or customers: a campaign is never for everyone by accident",
        );
    }
    if audience.customers.len() > MAX_LISTED {
        p.push(
            "audience.customers",
            format!("at most {MAX_LISTED} customers; use a segment or tags for more"),
        );
    }
    let tags = shoal_tags::list(db, &tenant.id).await?;
    let tag_id = |name: &str, path: String, p: &mut Problems| -> String {
        match tags.iter().find(|t| t.name == name) {
            Some(t) => t.id.clone(),
            None => {
                p.push(path, format!("no tag is named `{name}`"));
                String::new()
            }
        }
    };
    let segment_filter = async |id: &str, path: &str| -> Result<CustomerFilter> {
        match shoal_tags::segments::as_filter(db, tenant, id).await {
            Err(Error::NotFound { .. }) => Err(Error::invalid(path, format!("no segment `{id}`"))),
            other => other,
        }
    };
    let base = if p.is_empty() {
        let spec = FilterSpec {
            tags: TagNames {
                all: audience.tags_all.clone(),
                any: audience.tags_any.clone(),
                none: Vec::new(),
            },
            segment: audience.segment.clone(),
            rule: audience.rule.clone(),
            ..FilterSpec::default()
        };
        let paths = Paths {
            tags_all: "audience.tagsAll".into(),
            tags_any: "audience.tagsAny".into(),
            tags_none: "audience.tagsNone".into(),
            rule: "audience.rule".into(),
            segment: "audience.segment".into(),
        };
        match shoal_tags::filter::resolve(db, tenant, spec, &paths).await {
            Ok(f) => f,
            Err(Error::Invalid(errors)) => {
                p.extend(errors);
                CustomerFilter::default()
            }
            Err(Error::NotFound { .. }) => {
                p.push("audience.segment", "no such segment");
                CustomerFilter::default()
            }
            Err(e) => return Err(e),
        }
    } else {
        CustomerFilter::default()
    };
    let now = time::to_micros(time::now());
    let mut exclusions = Vec::new();
    for (i, e) in audience.exclude.iter().enumerate() {
        let at = format!("audience.exclude[{i}]");
        let resolved = match e {
            Exclusion::Segment { segment } => {
                match segment_filter(segment, &format!("{at}.segment")).await {
                    Ok(f) => Resolved::Segment(Box::new(f)),
                    Err(Error::Invalid(errors)) => {
                        p.extend(errors);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            Exclusion::Tag { tag } => Resolved::Tag(tag_id(tag, format!("{at}.tag"), &mut p)),
            Exclusion::Bought { product, days } => {
                if !(1..=3660).contains(days) {
                    p.push(format!("{at}.days"), "between 1 and 3660 days");
                }
                Resolved::Bought {
                    product: product.clone(),
                    since: now - i64::from(*days) * 86_400_000_000,
                }
            }
            Exclusion::InSop { sop } => Resolved::InSop(sop.clone()),
            Exclusion::OptedOut => Resolved::OptedOut,
            Exclusion::ContactedWithin { hours } => {
                if !(1..=87_840).contains(hours) {
                    p.push(format!("{at}.hours"), "between 1 and 87840 hours");
                }
                Resolved::ContactedSince(now - i64::from(*hours) * 3_600_000_000)
            }
        };
        exclusions.push((e.label(), resolved));
    }
    let adapters = Adapters::of(tenant);
    let address = adapters.get(channel).map_or(Address::None, |a| a.address());
    let label = match address {
        Address::None => None,
        Address::Phone => Some("no phone number"),
        Address::Email => Some("no e-mail address"),
        Address::Identity(_) => Some("no identity on the channel"),
    };
    if let Some(label) = label {
        exclusions.push((label.to_owned(), Resolved::NoAddress(address)));
    }
    let mut variants = Vec::new();
    let mut cumulative = 0u32;
    let split: Vec<usize> = content
        .variants
        .iter()
        .enumerate()
        .filter(|(_, v)| v.tag.is_none() && v.segment.is_none())
        .map(|(i, _)| i)
        .collect();
    for (i, v) in content.variants.iter().enumerate() {
        let at = format!("content.variants[{i}]");
        let pick = match (&v.tag, &v.segment) {
            (Some(_), Some(_)) => {
                p.push(at, "a variant is for a tag or for a segment, not both");
                continue;
            }
            (Some(tag), None) => Pick::Tag(tag_id(tag, format!("{at}.tag"), &mut p)),
            (None, Some(segment)) => {
                match segment_filter(segment, &format!("{at}.segment")).await {
                    Ok(f) => Pick::Segment(Box::new(f)),
                    Err(Error::Invalid(errors)) => {
                        p.extend(errors);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, None) if split.last() == Some(&i) => Pick::Rest,
            (None, None) => {
                cumulative += v.weight;
                Pick::Below(format!("{:02x}", (cumulative * 256 / 100).min(255)))
            }
        };
        variants.push((v.key.clone(), pick));
    }
    p.into_result(Plan {
        base,
        listed: audience.customers.clone(),
        exclusions,
        variants,
        channel: channel.to_owned(),
    })
}

impl Plan {
    /// ` WHERE …` over `customers c`: the audience before exclusions, in the actor's scope.
    fn push_base(&self, sql: &mut Sql, db: &Db, actor: &Actor) -> Result<()> {
        shoal_crm::customers::push_matching(sql, db, actor, &self.base)?;
        if !self.listed.is_empty() {
            let list: Vec<String> = self.listed.iter().map(|id| sql.arg(id.clone())).collect();
            sql.push(&format!(" AND c.id IN ({})", list.join(", ")));
        }
        Ok(())
    }

    /// A condition on `c` true when exclusion `e` leaves the customer out.
    fn push_exclusion(
        &self,
        sql: &mut Sql,
        db: &Db,
        actor: &Actor,
        e: &Resolved,
        t: &str,
    ) -> Result<()> {
        match e {
            Resolved::Segment(f) => {
                // the inner `c` shadows the outer one
                sql.push("c.id IN (SELECT c.id FROM customers c");
                shoal_crm::customers::push_matching(sql, db, actor, f)?;
                sql.push(")");
            }
            Resolved::Tag(id) => {
                let id = sql.arg(id.clone());
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM customer_tags ct WHERE ct.tenant_id = {t} AND ct.customer_id = c.id AND ct.tag_id = {id})"
                ));
            }
            Resolved::Bought { product, since } => {
                let s = sql.arg(*since);
                // the product is the order's name or its payload's `product` (names are
                // identifiers; product names are Chinese text)
                let named = match product {
                    Some(p) => {
                        let p = sql.arg(p.clone());
                        let in_payload = match db.backend {
                            Backend::Sqlite => "json_extract(e.payload, '$.product')",
                            Backend::Postgres => "(e.payload::jsonb ->> 'product')",
                        };
                        format!(" AND (e.name = {p} OR {in_payload} = {p})")
                    }
                    None => String::new(),
                };
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = {t} AND e.customer_id = c.id \
                     AND e.event_type = 'order' AND e.occurred_at >= {s}{named})"
                ));
            }
            Resolved::InSop(sop) => {
                let sop = sql.arg(sop.clone());
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM sop_enrolments en WHERE en.tenant_id = {t} AND en.customer_id = c.id \
                     AND en.sop_id = {sop} AND en.status IN ('active', 'paused', 'parked'))"
                ));
            }
            Resolved::OptedOut => {
                let ch = sql.arg(self.channel.clone());
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM contact_opt_outs o WHERE o.tenant_id = {t} AND o.customer_id = c.id \
                     AND o.channel IN ('*', {ch}))"
                ));
            }
            Resolved::ContactedSince(since) => {
                let s = sql.arg(*since);
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM outbox_messages m WHERE m.tenant_id = {t} AND m.customer_id = c.id \
                     AND m.created_at > {s} AND m.status <> 'cancelled' AND {})",
                    customer_facing_sql("m.channel")
                ));
            }
            Resolved::NoAddress(address) => {
                let cond = match address {
                    Address::None => "1 = 0".to_owned(),
                    Address::Phone | Address::Email => {
                        let kind = if *address == Address::Phone {
                            "phone"
                        } else {
                            "email"
                        };
                        format!(
                            "NOT EXISTS (SELECT 1 FROM customer_contacts cc WHERE cc.tenant_id = {t} AND cc.customer_id = c.id AND cc.kind = '{kind}')"
                        )
                    }
                    Address::Identity(channel) => format!(
                        "NOT EXISTS (SELECT 1 FROM customer_identities ci WHERE ci.tenant_id = {t} AND ci.customer_id = c.id \
                         AND ci.channel = '{channel}' AND ci.deleted_at IS NULL)"
                    ),
                };
                sql.push(&cond);
            }
        }
        Ok(())
    }

    /// `CASE WHEN <exclusion 1> THEN 1 … ELSE 0 END`: which exclusion (1-based) leaves the
    /// customer out, 0 for none.
    fn push_excluded_by(&self, sql: &mut Sql, db: &Db, actor: &Actor, t: &str) -> Result<()> {
        if self.exclusions.is_empty() {
            sql.push("0");
            return Ok(());
        }
        sql.push("CASE");
        for (i, (_, e)) in self.exclusions.iter().enumerate() {
            sql.push(" WHEN ");
            self.push_exclusion(sql, db, actor, e, t)?;
            sql.push(&format!(" THEN {}", i + 1));
        }
        sql.push(" ELSE 0 END");
        Ok(())
    }

    /// `CASE … END`: the key of the variant the customer gets.
    fn push_variant(&self, sql: &mut Sql, db: &Db, actor: &Actor, t: &str) -> Result<()> {
        if self
            .variants
            .iter()
            .all(|(_, pick)| matches!(pick, Pick::Rest))
        {
            // one variant for everybody (a CASE needs at least one WHEN)
            let key = self
                .variants
                .first()
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let k = sql.arg(key);
            sql.push(&k);
            return Ok(());
        }
        sql.push("CASE");
        let mut rest = None;
        for (key, pick) in &self.variants {
            let k = sql.arg(key.clone());
            match pick {
                Pick::Rest => {
                    rest = Some(k);
                    continue;
                }
                Pick::Tag(id) => {
                    let id = sql.arg(id.clone());
                    sql.push(&format!(
                        " WHEN EXISTS (SELECT 1 FROM customer_tags ct WHERE ct.tenant_id = {t} AND ct.customer_id = c.id AND ct.tag_id = {id})"
                    ));
                }
                Pick::Segment(f) => {
                    sql.push(" WHEN c.id IN (SELECT c.id FROM customers c");
                    shoal_crm::customers::push_matching(sql, db, actor, f)?;
                    sql.push(")");
                }
                Pick::Below(hex) => {
                    let h = sql.arg(hex.clone());
                    sql.push(&format!(" WHEN substr(c.id, length(c.id) - 1, 2) < {h}"));
                }
            }
            sql.push(&format!(" THEN {k}"));
        }
        match rest {
            Some(k) => sql.push(&format!(" ELSE {k} END")),
            None => sql.push(" ELSE '' END"),
        };
        Ok(())
    }
}

/// What a campaign would reach, counted before it is frozen.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Customers the audience names (within the caller's scope), before exclusions.
    pub audience: i64,
    /// Each exclusion and how many of the audience it matches on its own.
    pub excluded: Vec<(String, i64)>,
    /// Who would be messaged: the audience minus every exclusion.
    pub recipients: i64,
}

/// Counts the audience, each exclusion and what is left, as the caller would freeze it.
pub async fn preview(db: &Db, actor: &Actor, plan: &Plan) -> Result<Preview> {
    let mut sql = Sql::new("");
    let t = sql.arg(actor.tenant_id());
    sql.push("SELECT COUNT(*) AS n");
    for (i, (_, e)) in plan.exclusions.iter().enumerate() {
        sql.push(" , SUM(CASE WHEN ");
        plan.push_exclusion(&mut sql, db, actor, e, &t)?;
        sql.push(&format!(" THEN 1 ELSE 0 END) AS x{i}"));
    }
    sql.push(", SUM(CASE WHEN ");
    plan.push_excluded_by(&mut sql, db, actor, &t)?;
    sql.push(" = 0 THEN 1 ELSE 0 END) AS kept FROM customers c");
    plan.push_base(&mut sql, db, actor)?;
    let row = sql.query().fetch_one(&db.pool).await?;
    let get = |name: &str| -> Result<i64> {
        // SUM over no rows is NULL; PostgreSQL's SUM of integers is numeric, read as text
        Ok(row
            .try_get::<Option<i64>, _>(name)
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get::<Option<String>, _>(name)
                    .ok()
                    .flatten()
                    .and_then(|s| s.parse().ok())
            })
            .unwrap_or(0))
    };
    Ok(Preview {
        audience: get("n")?,
        excluded: plan
            .exclusions
            .iter()
            .enumerate()
            .map(|(i, (label, _))| Ok((label.clone(), get(&format!("x{i}"))?)))
            .collect::<Result<_>>()?,
        recipients: get("kept")?,
    })
}

/// Writes the campaign's recipients in one statement: everyone in the audience, the
/// excluded as `skipped` with the (first) exclusion that left them out, the others
/// `queued` for `due`. Answers how many are queued.
pub async fn freeze(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    actor: &Actor,
    plan: &Plan,
    campaign: &str,
    due: DateTime<Utc>,
) -> Result<i64> {
    let mut sql = Sql::new("");
    let t = sql.arg(actor.tenant_id());
    let id = sql.arg(campaign);
    let due = sql.arg(time::to_micros(due));
    let now = sql.arg(time::to_micros(time::now()));
    let mut reasons = String::from("NULL");
    if !plan.exclusions.is_empty() {
        reasons = String::from("CASE s.x");
        for (i, (label, _)) in plan.exclusions.iter().enumerate() {
            let r = sql.arg(format!("excluded: {label}"));
            reasons.push_str(&format!(" WHEN {} THEN {r}", i + 1));
        }
        reasons.push_str(" ELSE NULL END");
    }
    sql.push(&format!(
        "INSERT INTO campaign_recipients (tenant_id, campaign_id, customer_id, variant, status, status_rank, reason, due_at, updated_at) \
         SELECT {t}, {id}, s.id, s.v, CASE WHEN s.x = 0 THEN 'queued' ELSE 'skipped' END, CASE WHEN s.x = 0 THEN 0 ELSE 2 END, \
         {reasons}, {due}, {now} FROM (SELECT c.id AS id, "
    ));
    plan.push_variant(&mut sql, db, actor, &t)?;
    sql.push(" AS v, ");
    plan.push_excluded_by(&mut sql, db, actor, &t)?;
    sql.push(" AS x FROM customers c");
    plan.push_base(&mut sql, db, actor)?;
    sql.push(") s");
    sql.query().execute(&mut *conn).await?;
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_recipients WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'queued'",
    )
    .bind(actor.tenant_id())
    .bind(campaign)
    .fetch_one(&mut *conn)
    .await?;
    Ok(queued)
}

/// The audience as `actor` may read it: a listed audience keeps only the customers within
/// the reader's scope (a customer out of scope is not named, not even by id).
pub async fn as_seen_by(db: &Db, actor: &Actor, audience: &Audience) -> Result<Audience> {
    let mut seen = audience.clone();
    if audience.customers.is_empty() {
        return Ok(seen);
    }
    let mut visible = std::collections::HashSet::new();
    for chunk in audience.customers.chunks(500) {
        let mut sql = Sql::new("SELECT c.id FROM customers c");
        shoal_crm::customers::push_matching(&mut sql, db, actor, &CustomerFilter::default())?;
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(id.clone())).collect();
        sql.push(&format!(" AND c.id IN ({})", list.join(", ")));
        for r in sql.query_once().fetch_all(&db.pool).await? {
            visible.insert(r.try_get::<String, _>("id")?);
        }
    }
    seen.customers.retain(|id| visible.contains(id));
    Ok(seen)
}
