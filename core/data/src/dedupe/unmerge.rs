//! Undoing a merge: both profiles restored as they were, every moved row given back, and
//! what changed on the survivor since the merge kept (see [`merge`](super::merge)).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::Row;

use super::{merge::*, suggestions};
use shoal_base::{
    error::{Error, Result},
    kinds::{Action, Resource},
    storage::{Db, time},
};
use shoal_crm::{
    audit,
    customers::{self, Customer},
    tenancy::Actor,
};
use shoal_tags::{self as tags, Tag};

/// What an unmerge did.
#[derive(Debug, Clone)]
pub struct Unmerged {
    pub merge: Merge,
    /// Survivor fields changed since the merge and therefore left as they are now.
    pub kept: Vec<String>,
}

/// Undoes a merge: the absorbed profile comes back (an import row becomes a customer of its
/// own) with its identities, events, tasks, follow-ups, tags and opt-outs; the survivor's
/// fields go back to what they were, except those changed since the merge, and it keeps the
/// opt-outs it gained (both listed in [`Unmerged::kept`]). Rows added to the survivor after
/// the merge stay with it.
pub async fn unmerge(db: &Db, actor: &Actor, merge_id: &str) -> Result<Unmerged> {
    actor.require(Action::Update)?;
    actor.require(Action::Delete)?;
    let t = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    let m = get(&mut tx, &db.vault, t, merge_id).await?;
    if let Some(at) = m.undone_at {
        return Err(Error::invalid(
            "mergeId",
            format!("the merge was already undone at {}", at.to_rfc3339()),
        ));
    }
    // an erased person's merge snapshots are tombstones: nothing is left to bring back
    let erased: Option<String> = sqlx::query(
        "SELECT id FROM customers WHERE tenant_id = $1 AND id IN ($2, $3) AND erased_at IS NOT NULL",
    )
    .bind(t)
    .bind(&m.survivor_id)
    .bind(&m.absorbed_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("id"))
    .transpose()?;
    if let Some(id) = erased {
        return Err(Error::invalid(
            "mergeId",
            format!("customer {id} was erased; its merges cannot be undone"),
        ));
    }
    let state: Option<(Option<i64>, Option<String>)> = sqlx::query(
        "SELECT deleted_at, merged_into FROM customers WHERE tenant_id = $1 AND id = $2",
    )
    .bind(t)
    .bind(&m.survivor_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| Ok::<_, sqlx::Error>((r.try_get("deleted_at")?, r.try_get("merged_into")?)))
    .transpose()?;
    match state {
        Some((None, _)) => {}
        Some((Some(_), Some(into))) => {
            return Err(Error::invalid(
                "mergeId",
                format!(
                    "customer {} has since been merged into {into}: undo that merge first",
                    m.survivor_id
                ),
            ));
        }
        _ => {
            return Err(Error::invalid(
                "mergeId",
                format!(
                    "customer {} has been deleted since the merge",
                    m.survivor_id
                ),
            ));
        }
    }
    actor
        .access
        .ensure_customer(db, Resource::Customers, &m.survivor_id)
        .await?;

    // the survivor: back to its old values where nobody changed them since
    let now_s = customers::fetch(&mut tx, db, t, &m.survivor_id, true).await?;
    let before = from_stored(&m.survivor_id, &m.survivor_before, 0)?;
    let after = from_stored(&m.survivor_id, &m.survivor_after, 0)?;
    let (mut restored, mut kept) = revert(&now_s, &before, &after);
    restored.updated_at = time::now();
    restored.version = now_s.version + 1;
    if !customers::store_row(&mut tx, db, t, &restored, now_s.version).await? {
        return Err(Error::Internal(format!(
            "customer {} changed during the unmerge",
            m.survivor_id
        )));
    }
    customers::replace_contacts(&mut tx, db, t, &restored).await?;

    // the absorbed profile: back from the dead, or stored for the first time
    let mut absorbed = from_stored(&m.absorbed_id, &m.absorbed_before, 0)?;
    if m.absorbed_stored {
        let version: i64 = sqlx::query(
            "UPDATE customers SET deleted_at = NULL, merged_into = NULL, version = version + 1 \
             WHERE tenant_id = $1 AND id = $2 AND merged_into = $3 RETURNING version",
        )
        .bind(t)
        .bind(&m.absorbed_id)
        .bind(&m.survivor_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            Error::Internal(format!(
                "customer {} is no longer merged into {}",
                m.absorbed_id, m.survivor_id
            ))
        })?
        .try_get("version")?;
        absorbed.version = version + 1;
        absorbed.updated_at = time::now();
        customers::store_row(&mut tx, db, t, &absorbed, version).await?;
        customers::replace_contacts(&mut tx, db, t, &absorbed).await?;
    } else {
        absorbed.version = 1;
        absorbed.updated_at = time::now();
        customers::insert_many(&mut tx, db, t, &[(absorbed.clone(), Vec::new())]).await?;
    }
    for (channel, external_id) in &m.moved.identities {
        sqlx::query(
            "UPDATE customer_identities SET customer_id = $1 WHERE tenant_id = $2 AND customer_id = $3 \
             AND channel = $4 AND external_id = $5 AND deleted_at IS NULL",
        )
        .bind(&m.absorbed_id)
        .bind(t)
        .bind(&m.survivor_id)
        .bind(channel)
        .bind(shoal_crm::customers::sealed::identity_index_named(
            &db.vault, t, channel, external_id,
        )?)
        .execute(&mut *tx)
        .await?;
    }
    for (table, ids) in [
        ("events", &m.moved.events),
        ("tasks", &m.moved.tasks),
        ("follow_ups", &m.moved.follow_ups),
        ("consents", &m.moved.consents),
    ] {
        repoint_listed(&mut tx, table, t, ids, &m.survivor_id, &m.absorbed_id).await?;
    }
    let all: HashMap<String, Tag> = tags::store_all(&mut tx, t)
        .await?
        .into_iter()
        .map(|tag| (tag.id.clone(), tag))
        .collect();
    let held = held_tags(&mut tx, t, &m.survivor_id).await?;
    for id in &m.moved.tags {
        if let Some(tag) = all.get(id)
            && held.contains(id)
        {
            tags::write_changes(
                &mut tx,
                actor,
                tag,
                &[],
                std::slice::from_ref(&m.survivor_id),
                "unmerge",
            )
            .await?;
        }
    }
    if !m.absorbed_stored {
        let incoming_tags: Vec<String> = serde_json::from_value(
            m.absorbed_before
                .get("tags")
                .cloned()
                .unwrap_or(Value::Null),
        )
        .unwrap_or_default();
        for id in &incoming_tags {
            if let Some(tag) = all.get(id) {
                tags::write_changes(
                    &mut tx,
                    actor,
                    tag,
                    std::slice::from_ref(&m.absorbed_id),
                    &[],
                    "unmerge",
                )
                .await?;
            }
        }
    }
    // opt-outs the survivor gained stay: an opt-out is never dropped by an undo (the absorbed
    // profile has its own back too); they are listed among the kept fields
    kept.extend(m.moved.opt_outs.iter().map(|c| format!("optOuts.{c}")));
    let now = time::to_micros(time::now());
    sqlx::query("UPDATE customer_merges SET undone_at = $1, undone_by = $2 WHERE tenant_id = $3 AND id = $4")
        .bind(now)
        .bind(&actor.user_id)
        .bind(t)
        .bind(&m.id)
        .execute(&mut *tx)
        .await?;
    suggestions::decide(&mut tx, actor, &m.survivor_id, &m.absorbed_id, "dismissed").await?;
    let mut changes = customers::diff(&now_s, &restored);
    changes.insert("mergeId".into(), json!(m.id));
    changes.insert("kept".into(), json!(kept));
    audit::record(
        &mut tx,
        actor,
        "customer.unmerge",
        ENTITY,
        &m.survivor_id,
        Value::Object(changes),
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        "customer.unmerge",
        ENTITY,
        &m.absorbed_id,
        json!({"mergeId": m.id, "restored": customers::snapshot(&absorbed, &identities_from(&m.absorbed_before))}),
    )
    .await?;
    let merge = get(&mut tx, &db.vault, t, &m.id).await?;
    tx.commit().await?;
    Ok(Unmerged { merge, kept })
}

/// The survivor as it should be after an unmerge: each field still holding the merged value
/// goes back to its value before the merge; lists lose what the merge added; fields changed
/// since are kept (and named).
fn revert(now: &Customer, before: &Customer, after: &Customer) -> (Customer, Vec<String>) {
    let mut out = now.clone();
    let mut kept = Vec::new();
    macro_rules! field {
        ($f:ident, $name:literal) => {
            if before.$f != after.$f {
                if now.$f == after.$f {
                    out.$f = before.$f.clone();
                } else {
                    kept.push($name.to_owned());
                }
            }
        };
    }
    field!(display_name, "displayName");
    field!(lifecycle_stage, "lifecycleStage");
    field!(stage_manual, "lifecycleStageManual");
    field!(owner_id, "ownerId");
    field!(source_channel, "sourceChannel");
    field!(created_at, "createdAt");
    for (list, b, a) in [
        (&mut out.phones, &before.phones, &after.phones),
        (&mut out.emails, &before.emails, &after.emails),
    ] {
        list.retain(|v| b.contains(v) || !a.contains(v));
    }
    let keys: HashSet<&String> = before
        .attributes
        .keys()
        .chain(after.attributes.keys())
        .collect();
    for key in keys {
        let (b, a) = (before.attributes.get(key), after.attributes.get(key));
        if b == a {
            continue;
        }
        if now.attributes.get(key) == a {
            match b {
                Some(v) => out.attributes.insert(key.clone(), v.clone()),
                None => out.attributes.remove(key),
            };
        } else {
            kept.push(format!("attributes.{key}"));
        }
    }
    kept.sort();
    (out, kept)
}

#[cfg(test)]
mod tests {
    use shoal_base::kinds::{Channel, LifecycleStage};
    use shoal_crm::customers::Attributes;

    use super::*;

    #[test]
    fn revert_undoes_only_what_nobody_changed_since() {
        let at = time::now();
        let base = Customer {
            id: "s".into(),
            display_name: "王芳".into(),
            phones: vec!["+8613800138000".into()],
            emails: vec![],
            attributes: Attributes::new(),
            lifecycle_stage: LifecycleStage::Lead,
            stage_manual: false,
            owner_id: None,
            source_channel: Channel::Wecom,
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let mut after = base.clone();
        after.display_name = "王小芳".into();
        after.owner_id = Some("u1".into());
        after.phones.push("+8613900000000".into());
        after.attributes.insert("city".into(), json!("上海"));
        let mut now = after.clone();
        now.owner_id = Some("u2".into()); // reassigned after the merge
        now.phones.push("+8613700000000".into()); // added after the merge
        let (restored, kept) = revert(&now, &base, &after);
        assert_eq!(restored.display_name, "王芳");
        assert_eq!(restored.owner_id.as_deref(), Some("u2"));
        assert_eq!(
            restored.phones,
            vec!["+8613800138000".to_string(), "+8613700000000".to_string()]
        );
        assert!(!restored.attributes.contains_key("city"));
        assert_eq!(kept, vec!["ownerId".to_string()]);
    }
}
