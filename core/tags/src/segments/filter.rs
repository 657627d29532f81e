//! Customer filters as people write them — tag names, a saved segment, rule text, "neglected"
//! — resolved into the [`CustomerFilter`] that storage runs. The one place where a filter's
//! names are looked up: the API's `customers(filter:)`, bulk tagging, exports and saved
//! segments all come through here, so a name means the same thing everywhere.

use shoal_base::{
    error::{Error, Problems, Result},
    storage::Db,
};
use shoal_crm::{customers::CustomerFilter, tenancy::Tenant};

use super as segments;
use crate::Tag;

/// Tag names a customer must all hold, may hold any of, or must hold none of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagNames {
    pub all: Vec<String>,
    pub any: Vec<String>,
    pub none: Vec<String>,
}

/// A filter as written: what needs no look-up is already in `filter`; the rest is by name.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    /// Conditions that need no look-up (search, stages, channels, owner, dates, …).
    pub filter: CustomerFilter,
    pub tags: TagNames,
    /// Members of this saved segment (by id).
    pub segment: Option<String>,
    /// A rule of the rule language (docs/rules.md).
    pub rule: Option<String>,
    /// Nobody followed up for the tenant's `contact.no_follow_up_hours` (unless the filter
    /// names its own hours).
    pub neglected: bool,
}

/// Where each part of a spec came from, for the paths of problems
/// (`filter.tags.all`, `definition.tagsAll`, …).
#[derive(Debug, Clone)]
pub struct Paths {
    pub tags_all: String,
    pub tags_any: String,
    pub tags_none: String,
    pub rule: String,
    pub segment: String,
}

impl Paths {
    /// The paths of the GraphQL `CustomerFilter` input named `at` (usually `filter`).
    pub fn input(at: &str) -> Paths {
        Paths {
            tags_all: format!("{at}.tags.all"),
            tags_any: format!("{at}.tags.any"),
            tags_none: format!("{at}.tags.none"),
            rule: format!("{at}.rule"),
            segment: format!("{at}.segment"),
        }
    }

    /// The paths of a saved segment's definition at `at`.
    pub fn definition(at: &str) -> Paths {
        Paths {
            tags_all: format!("{at}.tagsAll"),
            tags_any: format!("{at}.tagsAny"),
            tags_none: format!("{at}.tagsNone"),
            rule: format!("{at}.rule"),
            segment: format!("{at}.segment"),
        }
    }
}

/// Resolves a spec for `tenant`: tag names to ids, the rule parsed against the tenant's
/// tags, the segment's definition added, "neglected" read with the tenant's hours; every
/// unknown name or bad rule is reported at once with its path.
pub async fn resolve(
    db: &Db,
    tenant: &Tenant,
    mut spec: FilterSpec,
    paths: &Paths,
) -> Result<CustomerFilter> {
    if spec.neglected && spec.filter.no_follow_up_hours.is_none() {
        spec.filter.no_follow_up_hours = Some(tenant.contact.no_follow_up_hours);
    }
    resolve_in(db, &tenant.id, spec, paths).await
}

/// [`resolve`] for a tenant known by id (saved segments, whose definitions have no
/// "neglected").
pub(crate) async fn resolve_in(
    db: &Db,
    tenant: &str,
    spec: FilterSpec,
    paths: &Paths,
) -> Result<CustomerFilter> {
    let mut filter = spec.filter;
    let mut p = Problems::default();
    let names_given =
        !(spec.tags.all.is_empty() && spec.tags.any.is_empty() && spec.tags.none.is_empty());
    if names_given || spec.rule.is_some() {
        let all_tags = crate::list(db, tenant).await?;
        filter.tags_all = tag_ids(&all_tags, &spec.tags.all, &paths.tags_all, &mut p);
        filter.tags_any = tag_ids(&all_tags, &spec.tags.any, &paths.tags_any, &mut p);
        filter.tags_none = tag_ids(&all_tags, &spec.tags.none, &paths.tags_none, &mut p);
        if let Some(text) = &spec.rule {
            match crate::parse_rule(
                text,
                &all_tags,
                &db.vault.sealed_attributes(tenant),
                &paths.rule,
            ) {
                Ok(rule) => filter.rule = Some(rule),
                Err(Error::Invalid(errors)) => p.extend(errors),
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(id) = &spec.segment {
        let segment = segments::get(db, tenant, id).await?;
        let definition = Box::pin(segments::filter_of(
            db,
            tenant,
            &segment.definition,
            &paths.segment,
        ))
        .await?;
        filter.also.push(definition);
    }
    p.into_result(filter)
}

/// Tag names → ids; an unknown name is a problem at `path[i]`.
fn tag_ids(all: &[Tag], names: &[String], path: &str, p: &mut Problems) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let id = all.iter().find(|t| &t.name == name).map(|t| t.id.clone());
            if id.is_none() {
                p.push(format!("{path}[{i}]"), format!("unknown tag \"{name}\""));
            }
            id
        })
        .collect()
}
