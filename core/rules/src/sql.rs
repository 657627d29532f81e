//! The SQL evaluator: a rule compiled to a condition over `customers c` (SQLite and
//! PostgreSQL), for evaluating every customer of a tenant in one statement.

use super::{
    ast::{AttrTest, Cond, EventFilter, Num},
    eval::MICROS_PER_DAY,
};
use shoal_base::storage::{Backend, sql::Sql};

/// Appends the rule as a boolean SQL expression over `customers c` of `tenant`; `now` is
/// the evaluation time (µs).
pub fn push_cond(sql: &mut Sql, backend: Backend, tenant: &str, cond: &Cond, now: i64) {
    let text = cond_text(sql, backend, tenant, cond, now);
    sql.push(&text);
}

/// The rule as a boolean SQL expression over `customers c`, its arguments added to `sql`,
/// for the caller to place (e.g. inside an `OR`).
pub fn cond_text(sql: &mut Sql, backend: Backend, tenant: &str, cond: &Cond, now: i64) -> String {
    Compiler {
        sql,
        backend,
        tenant,
        now,
        negated: false,
    }
    .cond(cond)
}

struct Compiler<'a> {
    sql: &'a mut Sql,
    backend: Backend,
    tenant: &'a str,
    now: i64,
    /// Inside an odd number of `not`s. PostgreSQL cannot plan `NOT (x IN (subquery))` as an
    /// anti-join (NULL semantics), so negated aggregates there use correlated `EXISTS`
    /// forms, which it can.
    negated: bool,
}

impl Compiler<'_> {
    fn events(&mut self, f: &EventFilter, window: Option<i64>) -> String {
        let t = self.sql.arg(f.event_type.as_str());
        let mut w = format!(
            "FROM events e WHERE e.tenant_id = c.tenant_id AND e.customer_id = c.id AND e.event_type = {t}"
        );
        if let Some(name) = &f.name {
            let n = self.sql.arg(name.clone());
            w.push_str(&format!(" AND e.name = {n}"));
        }
        if let Some(secs) = window {
            let cut = self.sql.arg(self.now - secs * 1_000_000);
            w.push_str(&format!(" AND e.occurred_at >= {cut}"));
        }
        w
    }

    /// `e.tenant_id = $t AND e.event_type = … [AND e.name …] [AND window]`, uncorrelated.
    fn event_filter(&mut self, f: &EventFilter, window: Option<i64>) -> String {
        let tenant = self.sql.arg(self.tenant);
        let t = self.sql.arg(f.event_type.as_str());
        let mut w = format!("e.tenant_id = {tenant} AND e.event_type = {t}");
        if let Some(name) = &f.name {
            let n = self.sql.arg(name.clone());
            w.push_str(&format!(" AND e.name = {n}"));
        }
        if let Some(secs) = window {
            let cut = self.sql.arg(self.now - secs * 1_000_000);
            w.push_str(&format!(" AND e.occurred_at >= {cut}"));
        }
        w
    }

    /// An aggregate comparison that is false for customers without such events, as a
    /// semi-join over one grouped scan instead of a subquery per customer. Exact: the
    /// correlated form is never NULL either (count and sum default to 0), so both agree
    /// under `not` too.
    fn semi_join(&mut self, aggregate: &Num, op: super::ast::Op, k: i64) -> Option<String> {
        if op.holds(0, k) || (self.negated && self.backend == Backend::Postgres) {
            return None; // customers with no events would qualify: keep the correlated form
        }
        let (f, w, agg) = match aggregate {
            Num::Count(f, w) => (f, w, "COUNT(*)"),
            Num::SumUnits(f, w) => (f, w, "COALESCE(SUM(e.amount_units), 0)"),
            _ => return None,
        };
        let filter = self.event_filter(f, *w);
        let k = self.sql.arg(k);
        Some(format!(
            "(c.id IN (SELECT e.customer_id FROM events e WHERE {filter} GROUP BY e.customer_id HAVING {agg} {} {k}))",
            op.sql()
        ))
    }

    fn num(&mut self, n: &Num) -> String {
        match n {
            Num::Count(f, w) => format!("(SELECT COUNT(*) {})", self.events(f, *w)),
            Num::SumUnits(f, w) => format!(
                "(SELECT COALESCE(SUM(e.amount_units), 0) {})",
                self.events(f, *w)
            ),
            Num::DaysSince(f) => {
                let now = self.sql.arg(self.now);
                let day = self.sql.arg(MICROS_PER_DAY);
                format!(
                    "(({now} - (SELECT MAX(e.occurred_at) {})) / {day})",
                    self.events(f, None)
                )
            }
            Num::DaysSinceCreated => {
                let now = self.sql.arg(self.now);
                let day = self.sql.arg(MICROS_PER_DAY);
                format!("(({now} - c.created_at) / {day})")
            }
            Num::Lit(v) => self.sql.arg(*v),
        }
    }

    fn list(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.sql.arg(v.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CASE WHEN <missing> THEN NULL WHEN <type ok> THEN <test> ELSE FALSE END`, so the
    /// value is only read as the type it has (PostgreSQL does not promise to short-circuit).
    fn attr(&mut self, key: &str, test: &AttrTest) -> String {
        let (missing, typed, text) = match self.backend {
            Backend::Sqlite => {
                let path = self.sql.arg(format!("$.\"{key}\""));
                (
                    format!("json_type(c.attributes, {path}) IS NULL"),
                    format!("json_type(c.attributes, {path})"),
                    format!("json_extract(c.attributes, {path})"),
                )
            }
            Backend::Postgres => {
                let k = self.sql.arg(key);
                (
                    format!("(c.attributes -> {k}) IS NULL"),
                    format!("jsonb_typeof(c.attributes -> {k})"),
                    format!("(c.attributes ->> {k})"),
                )
            }
        };
        let (is_string, is_number, is_bool, as_number) = match self.backend {
            Backend::Sqlite => (
                format!("{typed} = 'text'"),
                format!("{typed} IN ('integer', 'real')"),
                format!("{typed} IN ('true', 'false')"),
                text.clone(),
            ),
            Backend::Postgres => (
                format!("{typed} = 'string'"),
                format!("{typed} = 'number'"),
                format!("{typed} = 'boolean'"),
                format!("({text})::float8"),
            ),
        };
        let (case, negated) = match test {
            AttrTest::StrIn(values, negated) => {
                let list = self.list(values);
                (
                    format!(
                        "CASE WHEN {missing} THEN NULL WHEN {is_string} THEN {text} IN ({list}) ELSE (1 = 0) END"
                    ),
                    *negated,
                )
            }
            AttrTest::Num(op, value) => {
                let v = self.sql.arg(*value);
                (
                    format!(
                        "CASE WHEN {missing} THEN NULL WHEN {is_number} THEN {as_number} {} {v} ELSE (1 = 0) END",
                        op.sql()
                    ),
                    false,
                )
            }
            AttrTest::Bool(want, negated) => {
                let bool_text = match self.backend {
                    Backend::Sqlite => typed.clone(),
                    Backend::Postgres => text.clone(),
                };
                let w = self.sql.arg(if *want { "true" } else { "false" });
                (
                    format!(
                        "CASE WHEN {missing} THEN NULL WHEN {is_bool} THEN {bool_text} = {w} ELSE (1 = 0) END"
                    ),
                    *negated,
                )
            }
        };
        if negated {
            format!("(NOT ({case}))")
        } else {
            format!("({case})")
        }
    }

    fn cond(&mut self, cond: &Cond) -> String {
        match cond {
            Cond::And(a, b) => format!("({} AND {})", self.cond(a), self.cond(b)),
            Cond::Or(a, b) => format!("({} OR {})", self.cond(a), self.cond(b)),
            Cond::Not(a) => {
                self.negated = !self.negated;
                let inner = self.cond(a);
                self.negated = !self.negated;
                format!("(NOT {inner})")
            }
            Cond::Compare(a, op, b) => {
                let fast = match (a, b) {
                    (agg, Num::Lit(k)) => self.semi_join(agg, *op, *k),
                    (Num::Lit(k), agg) => self.semi_join(agg, op.flipped(), *k),
                    _ => None,
                };
                fast.unwrap_or_else(|| format!("({} {} {})", self.num(a), op.sql(), self.num(b)))
            }
            Cond::Exists(f, w) if self.negated && self.backend == Backend::Postgres => {
                format!("EXISTS (SELECT 1 {})", self.events(f, *w))
            }
            Cond::Exists(f, w) => {
                let filter = self.event_filter(f, *w);
                format!("(c.id IN (SELECT e.customer_id FROM events e WHERE {filter}))")
            }
            Cond::HasTag { id, .. } => {
                let t = self.sql.arg(id.clone());
                format!(
                    "EXISTS (SELECT 1 FROM customer_tags ct WHERE ct.tenant_id = c.tenant_id AND ct.customer_id = c.id AND ct.tag_id = {t})"
                )
            }
            Cond::StageIn(values, negated) => {
                let list = self.list(values);
                format!(
                    "(c.lifecycle_stage {}IN ({list}))",
                    if *negated { "NOT " } else { "" }
                )
            }
            Cond::ChannelIn(values, negated) => {
                let list = self.list(values);
                format!(
                    "(c.source_channel {}IN ({list}))",
                    if *negated { "NOT " } else { "" }
                )
            }
            Cond::Attr { key, test } => self.attr(key, test),
            Cond::Bool(true) => "(1 = 1)".into(),
            Cond::Bool(false) => "(1 = 0)".into(),
        }
    }
}
