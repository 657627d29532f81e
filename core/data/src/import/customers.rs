//! Importing customers: each row read into a validated profile (or rejected with its
//! column and reason), then, a batch at a time, matched on exact keys against stored
//! profiles and earlier rows: a match on a key of the tenant's `auto_merge` merges the row
//! into the profile (recorded, undoable), other exact matches and fuzzy candidates are
//! queued as suggestions, the rest are stored as new customers.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sqlx::AnyConnection;

use super::{
    convert::{Checked, Rejects, RowContext, RowError, cells_of, typed, values},
    job::Counts,
    mapping::Target,
    source::Row,
};
use crate::dedupe::{self, candidates, matching::Reason, suggestions};
use shoal_base::{
    config::MatchKey,
    error::Result,
    kinds::{Channel, LifecycleStage},
    storage::Db,
};
use shoal_crm::{
    audit,
    customers::{self, Identity, NewCustomer, Prepared, validate},
    tenancy::Actor,
};
use shoal_tags::{self as tags, Tag, TagKind};

/// The entity an import batch's audit entry is about: the job.
pub const ENTITY: &str = "import_job";

/// What a customer import needs besides the rows.
#[derive(Debug)]
pub struct Context<'a> {
    pub db: &'a Db,
    pub actor: &'a Actor,
    pub job_id: &'a str,
}

/// A row read into a profile.
#[derive(Debug)]
pub struct Incoming {
    row: u64,
    prepared: Prepared,
    tags: Vec<Tag>,
}

/// The column each validation path refers to, for turning `prepare`'s problems into row
/// errors.
#[derive(Default)]
struct Columns(Vec<(String, String)>);

impl Columns {
    fn note(&mut self, path: impl Into<String>, column: &str) {
        self.0.push((path.into(), column.to_owned()));
    }

    fn of(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|(p, _)| {
                field == p
                    || field.starts_with(&format!("{p}."))
                    || field.starts_with(&format!("{p}["))
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| "-".into())
    }
}

fn read(ctx: &RowContext, row: &Row) -> std::result::Result<Option<Incoming>, Vec<RowError>> {
    let Some(cells) = cells_of(row)? else {
        return Ok(None);
    };
    let tenant = &ctx.actor.tenant;
    let mut rejects = Rejects::new(row.number);
    let mut reject =
        |column: &str, value: &str, reason: String| rejects.push(column, value, reason);
    let mut input = NewCustomer {
        display_name: String::new(),
        phones: Vec::new(),
        emails: Vec::new(),
        identities: Vec::new(),
        attributes: None,
        lifecycle_stage: LifecycleStage::Lead,
        owner_id: None,
        source_channel: Channel::Import,
    };
    let mut attributes = Map::new();
    let mut tags: Vec<Tag> = Vec::new();
    let mut columns = Columns::default();
    // like every single-valued field, stage and channel take the first value given
    let (mut stage_set, mut channel_set) = (false, false);
    for (target, spec, idx) in &ctx.bound.fields {
        let cells = match values(spec, idx, cells) {
            Ok(v) => v,
            Err((cell, reason)) => {
                reject(&cell.column, &cell.value, reason);
                continue;
            }
        };
        for cell in &cells {
            let (column, value) = (cell.column.as_str(), cell.value.as_str());
            match target {
                Target::DisplayName if input.display_name.is_empty() => {
                    input.display_name = value.to_owned();
                    columns.note("row.displayName", column);
                }
                Target::Phones => match validate::phone(value, tenant.default_region) {
                    Ok(p) if input.phones.is_empty() => {
                        columns.note("row.phones", column);
                        input.phones.push(p);
                    }
                    Ok(p) if !input.phones.contains(&p) => input.phones.push(p),
                    Ok(_) => {}
                    Err(reason) => reject(column, value, reason),
                },
                Target::Emails => match validate::email(value) {
                    Ok(e) if !input.emails.contains(&e) => input.emails.push(e),
                    Ok(_) => {}
                    Err(reason) => reject(column, value, reason),
                },
                Target::OwnerId if input.owner_id.is_none() => {
                    if tenant.users.contains_key(value) {
                        input.owner_id = Some(value.to_owned());
                    } else {
                        reject(
                            column,
                            value,
                            format!(
                                "no user `{value}` in this tenant (map names to user ids in {}.map)",
                                spec.path
                            ),
                        );
                    }
                }
                Target::LifecycleStage if !stage_set => {
                    match LifecycleStage::parse(&value.to_lowercase()) {
                        Some(s) => {
                            input.lifecycle_stage = s;
                            stage_set = true;
                        }
                        None => reject(
                            column,
                            value,
                            format!(
                                "`{value}` is not a lifecycle stage ({}); map it in {}.map",
                                LifecycleStage::ALL
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                spec.path
                            ),
                        ),
                    }
                }
                Target::SourceChannel if !channel_set => {
                    match Channel::parse(&value.to_lowercase()) {
                        Some(c) => {
                            input.source_channel = c;
                            channel_set = true;
                        }
                        None => reject(
                            column,
                            value,
                            format!("`{value}` is not a channel; map it in {}.map", spec.path),
                        ),
                    }
                }
                Target::Identity(channel) => {
                    columns.note(
                        format!("row.identities[{}]", input.identities.len()),
                        column,
                    );
                    input.identities.push(Identity {
                        channel: *channel,
                        external_id: value.to_owned(),
                    });
                }
                Target::Attribute(key) if !attributes.contains_key(key) => {
                    match typed(spec, value, ctx.bound.time_zone) {
                        Ok(v) => {
                            columns.note(format!("row.attributes.{key}"), column);
                            attributes.insert(key.clone(), v);
                        }
                        Err(reason) => reject(column, value, reason),
                    }
                }
                Target::Tags => match ctx.tags.get(value) {
                    Some(tag) if tag.kind == TagKind::Manual => {
                        if !tags.iter().any(|t| t.id == tag.id) {
                            tags.push(tag.clone());
                        }
                    }
                    Some(_) => reject(
                        column,
                        value,
                        format!("\"{value}\" is a dynamic tag: its rule decides who holds it"),
                    ),
                    None => reject(
                        column,
                        value,
                        format!(
                            "no tag named \"{value}\" (create it first, or map the value in {}.map)",
                            spec.path
                        ),
                    ),
                },
                _ => {}
            }
        }
    }
    let mut errors = rejects.errors;
    if !errors.is_empty() {
        ctx.bound.sort(&mut errors);
        return Err(errors);
    }
    input.attributes = Some(Value::Object(attributes));
    // the phones are E.164 already: parsing them again is the costliest part of a row
    let phones = std::mem::take(&mut input.phones);
    if phones.len() > validate::MAX_CONTACTS {
        return Err(vec![RowError {
            row: row.number,
            column: columns.of("row.phones"),
            value: String::new(),
            reason: format!("phones: at most {} entries", validate::MAX_CONTACTS),
        }]);
    }
    match customers::prepare(&ctx.actor, &input, "row") {
        Ok(mut prepared) => {
            prepared.0.phones = phones;
            Ok(Some(Incoming {
                row: row.number,
                prepared,
                tags,
            }))
        }
        Err(shoal_base::error::Error::Invalid(problems)) => Err(problems
            .into_iter()
            .map(|p| RowError {
                row: row.number,
                column: columns.of(&p.field),
                value: String::new(),
                reason: format!("{}: {}", p.field.trim_start_matches("row."), p.message),
            })
            .collect()),
        Err(e) => Err(vec![RowError {
            row: row.number,
            column: "-".into(),
            value: String::new(),
            reason: e.to_string(),
        }]),
    }
}

/// An exact key a row shares with a stored (or earlier) profile.
struct Match {
    key: MatchKey,
    holder: String,
    reason: Reason,
}

fn matches(holders: &candidates::Holders, c: &customers::Customer, ids: &[Identity]) -> Vec<Match> {
    let mut out = Vec::new();
    for i in ids {
        if let Some(h) = holders.identities.get(&(i.channel, i.external_id.clone())) {
            out.push(Match {
                key: MatchKey::Identity,
                holder: h.clone(),
                reason: Reason::new(
                    "same_identity",
                    format!("{}:{}", i.channel.as_str(), i.external_id),
                ),
            });
        }
    }
    for p in &c.phones {
        if let Some(h) = holders.phones.get(p) {
            out.push(Match {
                key: MatchKey::Phone,
                holder: h.clone(),
                reason: Reason::new("same_phone", p.clone()),
            });
        }
    }
    for e in &c.emails {
        if let Some(h) = holders.emails.get(e) {
            out.push(Match {
                key: MatchKey::Email,
                holder: h.clone(),
                reason: Reason::new("same_email", e.clone()),
            });
        }
    }
    out
}

/// Reads a batch of rows (no storage: it runs on the blocking pool).
pub fn check(ctx: &RowContext, rows: &[Row]) -> Checked<Incoming> {
    Checked::of(rows, |row| read(ctx, row))
}

/// Imports one batch in the caller's transaction; returns the customers it changed (merge
/// survivors) for tag evaluation. The batch is recorded by one audit entry (entity
/// `import_job`, the job's id), naming the customers it created and those it merged rows
/// into, each with its row; merges keep their own entries besides.
pub async fn batch(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    checked: Checked<Incoming>,
    counts: &mut Counts,
    errors: &mut Vec<RowError>,
) -> Result<Vec<String>> {
    let incoming = checked.into_items(counts, errors);
    let tenant = &ctx.actor.tenant;
    let t = tenant.id.as_str();
    let all_ids: Vec<Identity> = incoming.iter().flat_map(|i| i.prepared.1.clone()).collect();
    let phones: Vec<&str> = incoming
        .iter()
        .flat_map(|i| i.prepared.0.phones.iter().map(String::as_str))
        .collect();
    let emails: Vec<&str> = incoming
        .iter()
        .flat_map(|i| i.prepared.0.emails.iter().map(String::as_str))
        .collect();
    let mut holders = candidates::holders(
        &mut *conn,
        &ctx.actor.tenant.vault,
        t,
        &all_ids,
        &phones,
        &emails,
    )
    .await?;

    let auto = &tenant.dedupe.auto_merge;
    let mut new: Vec<Incoming> = Vec::new();
    let mut merges: Vec<(Incoming, String, String)> = Vec::new();
    let mut exact_pairs: Vec<(String, String, Reason)> = Vec::new();
    for inc in incoming {
        let (c, ids) = &inc.prepared;
        let found = matches(&holders, c, ids);
        let target = found.iter().find(|m| auto.contains(&m.key));
        if target.is_none()
            && let Some(m) = found.iter().find(|m| m.key == MatchKey::Identity)
        {
            // an identity belongs to one customer: without automatic merging the row cannot be stored
            counts.rejected += 1;
            errors.push(RowError {
                row: inc.row,
                column: "-".into(),
                value: m.reason.detail.clone(),
                reason: format!(
                    "identity {} already belongs to customer {} (automatic merging on identities is off: merge by hand)",
                    m.reason.detail, m.holder
                ),
            });
            continue;
        }
        let id = target.map_or_else(|| c.id.clone(), |m| m.holder.clone());
        for m in found.iter().filter(|m| m.holder != id) {
            exact_pairs.push((id.clone(), m.holder.clone(), m.reason.clone()));
        }
        holders.learn(&id, ids, &c.phones, &c.emails);
        match target {
            Some(m) => {
                let reason = format!(
                    "import job {} row {}: {} {}",
                    ctx.job_id,
                    inc.row,
                    m.key.as_str(),
                    m.reason.detail
                );
                merges.push((inc, id, reason));
            }
            None => new.push(inc),
        }
    }

    let entry_id = audit::new_entry_id();
    let prepared: Vec<Prepared> = new.iter().map(|i| i.prepared.clone()).collect();
    let rows: Vec<u64> = new.iter().map(|i| i.row).collect();
    let origin = customers::ImportOrigin {
        entry_id: &entry_id,
        rows: &rows,
    };
    customers::insert_imported(&mut *conn, ctx.db, t, &prepared, origin).await?;
    let created: Vec<(String, Value)> = new
        .iter()
        .map(|i| {
            let line = json!({ "importJob": ctx.job_id, "row": i.row });
            (i.prepared.0.id.clone(), line)
        })
        .collect();
    audit::announce_many(&mut *conn, ctx.actor, audit::IMPORT, &created).await?;
    let mut by_tag: HashMap<&str, (&Tag, Vec<String>)> = HashMap::new();
    for i in &new {
        for tag in &i.tags {
            by_tag
                .entry(tag.id.as_str())
                .or_insert_with(|| (tag, Vec::new()))
                .1
                .push(i.prepared.0.id.clone());
        }
    }
    for (tag, ids) in by_tag.into_values() {
        tags::write_changes(&mut *conn, ctx.actor, tag, &ids, &[], "import").await?;
    }
    counts.created += new.len() as i64;

    let mut touched = Vec::new();
    let merged: Vec<Value> = merges
        .iter()
        .map(|(inc, target, _)| json!({ "customer": target, "row": inc.row }))
        .collect();
    for (inc, target, reason) in merges {
        dedupe::absorb_incoming(
            &mut *conn,
            ctx.db,
            ctx.actor,
            &target,
            &inc.prepared,
            &inc.tags,
            &reason,
        )
        .await?;
        counts.merged += 1;
        if !touched.contains(&target) {
            touched.push(target);
        }
    }
    counts.updated += touched.len() as i64;
    if !new.is_empty() || !merged.is_empty() {
        let created: Vec<Value> = new
            .iter()
            .map(|i| json!({ "customer": i.prepared.0.id, "row": i.row }))
            .collect();
        audit::record_with_id(
            &mut *conn,
            ctx.actor,
            &entry_id,
            audit::IMPORT,
            ENTITY,
            ctx.job_id,
            json!({ "importJob": ctx.job_id, "created": created, "merged": merged }),
        )
        .await?;
    }
    for (a, b, reason) in exact_pairs {
        if suggestions::upsert(
            &mut *conn,
            &tenant.vault,
            t,
            &a,
            &b,
            dedupe::matching::EXACT,
            &[reason],
        )
        .await?
        {
            counts.suggested += 1;
        }
    }
    let mut profiles: Vec<_> = new
        .iter()
        .map(|i| suggestions::profile_of(&i.prepared.0))
        .collect();
    let changed: Vec<&str> = touched.iter().map(String::as_str).collect();
    profiles.extend(candidates::profiles(&mut *conn, &ctx.actor.tenant.vault, t, &changed).await?);
    counts.suggested += suggestions::suggest_among(&mut *conn, tenant, &profiles).await? as i64;
    Ok(touched)
}
