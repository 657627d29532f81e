//! Looking up who might be the same person: stored holders of exact keys (for imports),
//! and fuzzy candidates blocked by name and by email local part (for suggestions). Every
//! query is one indexed look-up per 500 keys, scoped by tenant.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::matching::{Profile, is_placeholder_name, local_part};
use shoal_base::{
    error::Result,
    kinds::Channel,
    storage::{Backend, sql::Sql},
    vault::Vault,
};
use shoal_crm::customers::{Identity, sealed};

const CHUNK: usize = 500;

/// Stored customers holding exact keys: the oldest holder of each.
#[derive(Debug, Default)]
pub struct Holders {
    pub identities: HashMap<(Channel, String), String>,
    pub phones: HashMap<String, String>,
    pub emails: HashMap<String, String>,
}

impl Holders {
    /// Records a holder (e.g. a profile created earlier in the same batch) unless one is
    /// known already.
    pub fn learn(
        &mut self,
        id: &str,
        identities: &[Identity],
        phones: &[String],
        emails: &[String],
    ) {
        for i in identities {
            self.identities
                .entry((i.channel, i.external_id.clone()))
                .or_insert_with(|| id.to_owned());
        }
        for p in phones {
            self.phones
                .entry(p.clone())
                .or_insert_with(|| id.to_owned());
        }
        for e in emails {
            self.emails
                .entry(e.clone())
                .or_insert_with(|| id.to_owned());
        }
    }
}

/// The live holders of any of the given identities, phones and emails.
pub async fn holders(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    identities: &[Identity],
    phones: &[&str],
    emails: &[&str],
) -> Result<Holders> {
    let mut out = Holders::default();
    // one look-up per channel, so that the (tenant, channel, external id) index serves it
    let mut by_channel: HashMap<Channel, Vec<&str>> = HashMap::new();
    for i in identities {
        by_channel
            .entry(i.channel)
            .or_default()
            .push(i.external_id.as_str());
    }
    for (channel, ext) in by_channel {
        // looked up by blind index, mapped back to the value asked for
        let mut asked: HashMap<String, &str> = HashMap::with_capacity(ext.len());
        for e in &ext {
            asked.insert(sealed::identity_index(vault, tenant, channel, e)?, e);
        }
        let keys: Vec<&str> = asked.keys().map(String::as_str).collect();
        for chunk in keys.chunks(CHUNK) {
            let mut sql = Sql::new(
                "SELECT external_id, customer_id FROM customer_identities WHERE tenant_id = ",
            );
            let t = sql.arg(tenant);
            let c = sql.arg(channel.as_str());
            sql.push(&format!(
                "{t} AND channel = {c} AND deleted_at IS NULL AND external_id"
            ));
            sql.push_in(chunk);
            for r in sql
                .on(Backend::of(conn))
                .query_once()
                .fetch_all(&mut *conn)
                .await?
            {
                let index: String = r.try_get("external_id")?;
                if let Some(value) = asked.get(&index) {
                    out.identities
                        .insert((channel, (*value).to_owned()), r.try_get("customer_id")?);
                }
            }
        }
    }
    for (kind, values, map) in [
        ("phone", phones, &mut out.phones),
        ("email", emails, &mut out.emails),
    ] {
        for (value, id) in contacts(conn, vault, tenant, kind, values).await? {
            // the oldest holder (ids are time-ordered uuids)
            match map.get(&value) {
                Some(held) if *held <= id => {}
                _ => {
                    map.insert(value, id);
                }
            }
        }
    }
    Ok(out)
}

/// `(value, customer id)` of the contacts of `kind` holding any of `values`.
async fn contacts(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    kind: &str,
    values: &[&str],
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    // looked up by blind index, mapped back to the value asked for
    let mut asked: HashMap<String, &str> = HashMap::with_capacity(values.len());
    for v in values {
        asked.insert(sealed::contact_index(vault, tenant, kind, v)?, v);
    }
    let keys: Vec<&str> = asked.keys().map(String::as_str).collect();
    for chunk in keys.chunks(CHUNK) {
        let mut sql =
            Sql::new("SELECT value, customer_id FROM customer_contacts WHERE tenant_id = ");
        let t = sql.arg(tenant);
        let k = sql.arg(kind);
        sql.push(&format!("{t} AND kind = {k} AND value"));
        sql.push_in(chunk);
        for r in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            let index: String = r.try_get("value")?;
            if let Some(value) = asked.get(&index) {
                out.push(((*value).to_owned(), r.try_get("customer_id")?));
            }
        }
    }
    Ok(out)
}

fn profile_of(vault: &Vault, tenant: &str, r: &sqlx::any::AnyRow) -> Result<Profile> {
    let list = |col: &str, field: &str| -> Result<Vec<String>> {
        let text: String = r.try_get(col)?;
        sealed::open_list(vault, tenant, field, &text)
    };
    Ok(Profile {
        id: r.try_get("id")?,
        name_key: r.try_get("name_key")?,
        phones: list("phones", sealed::PHONES)?,
        emails: list("emails", sealed::EMAILS)?,
    })
}

/// The live profiles with the given ids.
pub async fn profiles(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    ids: &[&str],
) -> Result<Vec<Profile>> {
    profiles_where(conn, vault, tenant, "id", ids).await
}

/// The live profiles whose `column` (`id`, `name_key`) holds one of `values`.
async fn profiles_where(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    column: &str,
    values: &[&str],
) -> Result<Vec<Profile>> {
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.chunks(CHUNK) {
        let mut sql =
            Sql::new("SELECT id, name_key, phones, emails FROM customers WHERE tenant_id = ");
        let t = sql.arg(tenant);
        sql.push(&t)
            .push(&format!(" AND deleted_at IS NULL AND {column}"))
            .push_in(chunk);
        for r in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(profile_of(vault, tenant, &r)?);
        }
    }
    Ok(out)
}

/// Live profiles that share a (meaningful) name, an email local part, a phone or an email
/// with one of `of`; `of` themselves may be among them.
pub async fn fuzzy(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant: &str,
    of: &[Profile],
) -> Result<Vec<Profile>> {
    let names: HashSet<&str> = of
        .iter()
        .map(|p| p.name_key.as_str())
        .filter(|n| !is_placeholder_name(n))
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    let mut out: HashMap<String, Profile> = profiles_where(conn, vault, tenant, "name_key", &names)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut keyed: Vec<(&str, String)> = Vec::new();
    for p in of {
        keyed.extend(
            p.emails
                .iter()
                .filter_map(|e| local_part(e))
                .map(|l| ("email_local", l.to_owned())),
        );
        keyed.extend(p.phones.iter().map(|v| ("phone", v.clone())));
        keyed.extend(p.emails.iter().map(|v| ("email", v.clone())));
    }
    let mut ids: HashSet<String> = HashSet::new();
    for kind in ["email_local", "phone", "email"] {
        let values: HashSet<&str> = keyed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_str())
            .collect();
        let values: Vec<&str> = values.into_iter().collect();
        for (_, id) in contacts(conn, vault, tenant, kind, &values).await? {
            if !out.contains_key(&id) {
                ids.insert(id);
            }
        }
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for p in profiles(conn, vault, tenant, &ids).await? {
        out.insert(p.id.clone(), p);
    }
    Ok(out.into_values().collect())
}
