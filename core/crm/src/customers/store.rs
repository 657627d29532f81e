//! Reading and writing customers. Every statement is scoped by `tenant_id`; every change
//! is written with its audit entry in one transaction.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Attributes, Customer, CustomerPatch, Identity, NewCustomer, sealed, validate};
use crate::access::ScopedId;
use crate::{audit, tenancy::Actor};
use shoal_base::{
    error::{Error, Problems, Result},
    kinds::{Channel, LifecycleStage},
    storage::{Backend, Db, dialect, sql::Sql, time},
    vault::Vault,
};

const ENTITY: &str = "customer";
/// Rows per multi-row INSERT in bulk writes.
const CHUNK: usize = 200;
/// Attempts of an optimistic update before giving up on a busy row.
const UPDATE_ATTEMPTS: usize = 5;

pub(super) fn columns(db: &Db) -> String {
    format!(
        "c.id, c.display_name, c.phones, c.emails, {} AS attributes, c.attributes_sealed, \
         c.lifecycle_stage, c.stage_manual, c.owner_id, c.source_channel, c.created_at, c.updated_at, c.version",
        dialect::json_text(db.backend, "c.attributes")
    )
}

/// A customer from a row of [`columns`]; its sealed fields are opened with `vault`.
pub(super) fn from_row(vault: &Vault, tenant: &str, row: &AnyRow) -> Result<Customer> {
    let text = |col: &str| -> Result<String> { Ok(row.try_get::<String, _>(col)?) };
    let json = |col: &str| -> Result<Value> {
        serde_json::from_str(&text(col)?)
            .map_err(|e| Error::Internal(format!("customers.{col} holds bad JSON: {e}")))
    };
    let list = |col: &str, field: &str| -> Result<Vec<String>> {
        sealed::open_list(vault, tenant, field, &text(col)?)
    };
    let stage = text("lifecycle_stage")?;
    let channel = text("source_channel")?;
    Ok(Customer {
        id: text("id")?,
        display_name: text("display_name")?,
        phones: list("phones", sealed::PHONES)?,
        emails: list("emails", sealed::EMAILS)?,
        attributes: sealed::join_attributes(
            vault,
            tenant,
            match json("attributes")? {
                Value::Object(map) => map,
                _ => Attributes::new(),
            },
            row.try_get::<Option<String>, _>("attributes_sealed")?
                .as_deref(),
        )?,
        lifecycle_stage: LifecycleStage::parse(&stage)
            .ok_or_else(|| Error::Internal(format!("unknown lifecycle stage `{stage}`")))?,
        stage_manual: row.try_get::<i64, _>("stage_manual")? == 1,
        owner_id: row.try_get("owner_id")?,
        source_channel: Channel::parse(&channel)
            .ok_or_else(|| Error::Internal(format!("unknown channel `{channel}`")))?,
        created_at: time::from_micros(row.try_get("created_at")?),
        updated_at: time::from_micros(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    })
}

/// A validated new customer with its identities, ready to insert.
pub type Prepared = (Customer, Vec<Identity>);

/// Validates input for a new customer; every problem is reported at once.
pub fn prepare(actor: &Actor, input: &NewCustomer, field: &str) -> Result<Prepared> {
    let tenant = &actor.tenant;
    let mut p = Problems::default();
    let display_name =
        validate::display_name(&mut p, &format!("{field}.displayName"), &input.display_name);
    let phones = validate::phones(&mut p, &format!("{field}.phones"), &input.phones, tenant);
    let emails = validate::emails(&mut p, &format!("{field}.emails"), &input.emails);
    let identities =
        validate::identities(&mut p, &format!("{field}.identities"), &input.identities);
    let attributes = match &input.attributes {
        Some(v) => validate::attributes(&mut p, &format!("{field}.attributes"), v),
        None => Attributes::new(),
    };
    validate::owner(
        &mut p,
        &format!("{field}.ownerId"),
        input.owner_id.as_deref(),
        tenant,
    );
    let now = time::now();
    let customer = Customer {
        id: uuid::Uuid::now_v7().to_string(),
        display_name,
        phones,
        emails,
        attributes,
        lifecycle_stage: input.lifecycle_stage,
        // a stage other than `lead` given at creation is set by hand
        stage_manual: input.lifecycle_stage != LifecycleStage::Lead,
        owner_id: input.owner_id.clone(),
        source_channel: input.source_channel,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    p.into_result((customer, identities))
}

pub async fn create(db: &Db, actor: &Actor, input: &NewCustomer) -> Result<Customer> {
    actor.require(shoal_base::kinds::Action::Create)?;
    let mut input = input.clone();
    match &input.owner_id {
        Some(owner) if *owner != actor.user_id => {
            actor.require(shoal_base::kinds::Action::Assign)?
        }
        Some(_) => {}
        // a creator who reaches only some customers owns what they create (else they would
        // lose sight of it at once)
        None if !actor
            .access
            .reaches_all(shoal_base::kinds::Resource::Customers) =>
        {
            input.owner_id = Some(actor.user_id.clone());
        }
        None => {}
    }
    let prepared = prepare(actor, &input, "input")?;
    let mut tx = db.begin_write().await?;
    check_identities_free(
        &mut tx,
        &db.vault,
        actor.tenant_id(),
        None,
        &prepared.1,
        "input.identities",
    )
    .await?;
    insert_many(
        &mut tx,
        db,
        actor.tenant_id(),
        std::slice::from_ref(&prepared),
    )
    .await?;
    let (customer, identities) = prepared;
    audit::record(
        &mut tx,
        actor,
        "customer.create",
        ENTITY,
        &customer.id,
        snapshot(&customer, &identities),
    )
    .await?;
    tx.commit().await?;
    Ok(customer)
}

/// Inserts validated customers (with contacts and identities) in multi-row statements.
/// Used by `create` and by bulk seeding; the caller owns the transaction.
pub async fn insert_many(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    customers: &[Prepared],
) -> Result<()> {
    insert_rows(conn, db, tenant_id, customers, None).await
}

/// Where a batch of imported customers came from: the id of the import batch's audit entry
/// and each customer's row in the file, in the order of the customers.
#[derive(Debug, Clone, Copy)]
pub struct ImportOrigin<'a> {
    pub entry_id: &'a str,
    pub rows: &'a [u64],
}

/// [`insert_many`] for an import: each customer keeps its batch's audit entry and its row
/// (`customers.import_entry`, `import_row`), from which its history reads "created by import
/// J, row N" (`audit::customer_history`) — the import writes no entry per customer.
pub async fn insert_imported(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    customers: &[Prepared],
    origin: ImportOrigin<'_>,
) -> Result<()> {
    if origin.rows.len() != customers.len() {
        return Err(Error::Internal(format!(
            "{} customers imported with {} row numbers",
            customers.len(),
            origin.rows.len()
        )));
    }
    insert_rows(conn, db, tenant_id, customers, Some(origin)).await
}

async fn insert_rows(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    customers: &[Prepared],
    origin: Option<ImportOrigin<'_>>,
) -> Result<()> {
    for (n, chunk) in customers.chunks(CHUNK).enumerate() {
        let mut sql = Sql::new(
            "INSERT INTO customers (tenant_id, id, display_name, name_key, phones, emails, attributes, \
             attributes_sealed, lifecycle_stage, owner_id, source_channel, created_at, updated_at, version, stage_manual, \
             import_entry, import_row) VALUES ",
        );
        let mut contacts =
            Sql::new("INSERT INTO customer_contacts (tenant_id, customer_id, kind, value) VALUES ");
        let mut identities = Sql::new(
            "INSERT INTO customer_identities (tenant_id, customer_id, channel, external_id, external_id_sealed, created_at) VALUES ",
        );
        let (mut n_contacts, mut n_identities) = (0, 0);
        for (i, (c, ids)) in chunk.iter().enumerate() {
            let tenant = sql.arg(tenant_id);
            let values = [
                sql.arg(c.id.clone()),
                sql.arg(c.display_name.clone()),
                sql.arg(validate::name_key(&c.display_name)),
                sql.arg(sealed::seal_list(
                    &db.vault,
                    tenant_id,
                    sealed::PHONES,
                    &c.phones,
                )?),
                sql.arg(sealed::seal_list(
                    &db.vault,
                    tenant_id,
                    sealed::EMAILS,
                    &c.emails,
                )?),
                {
                    let (clear, hidden) =
                        sealed::split_attributes(&db.vault, tenant_id, &c.attributes)?;
                    let a = sql.arg(clear);
                    let h = match hidden {
                        Some(h) => sql.arg(h),
                        None => "NULL".to_owned(),
                    };
                    format!("{}, {h}", dialect::json_cast(db.backend, &a))
                },
                sql.arg(c.lifecycle_stage.as_str()),
            ];
            let owner = match &c.owner_id {
                Some(o) => sql.arg(o.clone()),
                None => "NULL".to_owned(),
            };
            let rest = [
                sql.arg(c.source_channel.as_str()),
                sql.arg(time::to_micros(c.created_at)),
                sql.arg(time::to_micros(c.updated_at)),
                sql.arg(c.version),
                sql.arg(i64::from(c.stage_manual)),
                match origin {
                    Some(o) => format!(
                        "{}, {}",
                        sql.arg(o.entry_id),
                        sql.arg(o.rows[n * CHUNK + i] as i64)
                    ),
                    None => "NULL, NULL".to_owned(),
                },
            ];
            sql.push(&format!(
                "{}({tenant}, {}, {owner}, {})",
                if i == 0 { "" } else { ", " },
                values.join(", "),
                rest.join(", ")
            ));
            for (kind, value) in sealed::contact_rows(&db.vault, tenant_id, &c.phones, &c.emails)? {
                let row = [
                    contacts.arg(tenant_id),
                    contacts.arg(c.id.clone()),
                    contacts.arg(kind),
                    contacts.arg(value),
                ];
                contacts.push(&format!(
                    "{}({})",
                    if n_contacts == 0 { "" } else { ", " },
                    row.join(", ")
                ));
                n_contacts += 1;
            }
            for identity in ids {
                let row = [
                    identities.arg(tenant_id),
                    identities.arg(c.id.clone()),
                    identities.arg(identity.channel.as_str()),
                    identities.arg(sealed::identity_index(
                        &db.vault,
                        tenant_id,
                        identity.channel,
                        &identity.external_id,
                    )?),
                    identities.arg(sealed::seal_identity(
                        &db.vault,
                        tenant_id,
                        &identity.external_id,
                    )?),
                    identities.arg(time::to_micros(c.created_at)),
                ];
                identities.push(&format!(
                    "{}({})",
                    if n_identities == 0 { "" } else { ", " },
                    row.join(", ")
                ));
                n_identities += 1;
            }
        }
        sql.on(db.backend).query().execute(&mut *conn).await?;
        if n_contacts > 0 {
            contacts.on(db.backend).query().execute(&mut *conn).await?;
        }
        if n_identities > 0 {
            identities
                .on(db.backend)
                .query()
                .execute(&mut *conn)
                .await
                .map_err(identity_conflict)?;
        }
    }
    Ok(())
}

/// A unique violation on identities that slipped past `check_identities_free` (a race).
pub fn identity_conflict(e: sqlx::Error) -> Error {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => Error::invalid(
            "input.identities",
            "an identity is already linked to another customer",
        ),
        _ => Error::Storage(e),
    }
}

/// Refuses identities already linked to a customer other than `owner`.
async fn check_identities_free(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant_id: &str,
    owner: Option<&str>,
    identities: &[Identity],
    field: &str,
) -> Result<()> {
    let mut p = Problems::default();
    for (i, identity) in identities.iter().enumerate() {
        let holder: Option<String> = sqlx::query(
            "SELECT customer_id FROM customer_identities \
             WHERE tenant_id = $1 AND channel = $2 AND external_id = $3 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(identity.channel.as_str())
        .bind(sealed::identity_index(
            vault,
            tenant_id,
            identity.channel,
            &identity.external_id,
        )?)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("customer_id"))
        .transpose()?;
        if let Some(holder) = holder
            && Some(holder.as_str()) != owner
        {
            p.push(
                format!("{field}[{i}]"),
                format!(
                    "{} identity `{}` already belongs to customer {holder}",
                    identity.channel.as_str(),
                    identity.external_id
                ),
            );
        }
    }
    p.into_result(())
}

/// A live (not deleted) customer of the actor's tenant.
pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Customer> {
    let mut conn = db.pool.acquire().await?;
    fetch(&mut conn, db, tenant_id, id, false).await
}

/// Several live customers by id, in one query per 500 (missing ids are left out).
pub async fn get_many(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, Customer>> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // Deleted rows are skipped here, not in SQL, so that the primary key is the
        // obvious index (PostgreSQL preferred a partial one and scanned the tenant).
        // `query_once`: see `Sql::query_once`.
        let mut sql = shoal_base::storage::sql::Sql::new(&format!(
            "SELECT {}, c.deleted_at FROM customers c WHERE c.tenant_id = ",
            columns(db)
        ));
        let t = sql.arg(tenant_id);
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(*id)).collect();
        sql.push(&format!("{t} AND c.id IN ({})", list.join(", ")));
        for row in sql
            .on(Backend::of(conn))
            .query_once()
            .fetch_all(&mut *conn)
            .await?
        {
            if row.try_get::<Option<i64>, _>("deleted_at")?.is_some() {
                continue;
            }
            let c = from_row(&db.vault, tenant_id, &row)?;
            out.insert(c.id.clone(), c);
        }
    }
    Ok(out)
}

/// Reads a live customer; `locked` also locks its row until the transaction ends.
pub async fn fetch(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    id: &str,
    locked: bool,
) -> Result<Customer> {
    let sql = format!(
        "SELECT {} FROM customers c WHERE c.tenant_id = $1 AND c.id = $2 AND c.deleted_at IS NULL{}",
        columns(db),
        if locked {
            dialect::for_update(db.backend)
        } else {
            ""
        }
    );
    let row = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("customer", id))?;
    from_row(&db.vault, tenant_id, &row)
}

/// The live identities of several customers, in one query.
pub async fn identities_of(
    db: &Db,
    tenant_id: &str,
    customer_ids: &[&str],
) -> Result<Vec<(String, Identity)>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(
        "SELECT customer_id, channel, external_id, external_id_sealed FROM customer_identities WHERE tenant_id = ",
    );
    let t = sql.arg(tenant_id);
    sql.push(&t)
        .push(" AND deleted_at IS NULL AND customer_id IN (");
    for (i, id) in customer_ids.iter().enumerate() {
        let p = sql.arg(*id);
        sql.push(if i == 0 { "" } else { ", " }).push(&p);
    }
    sql.push(") ORDER BY created_at, channel");
    let rows = sql.query().fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            let channel: String = r.try_get("channel")?;
            Ok((
                r.try_get("customer_id")?,
                Identity {
                    channel: Channel::parse(&channel)
                        .ok_or_else(|| Error::Internal(format!("unknown channel `{channel}`")))?,
                    external_id: sealed::open_identity(
                        &db.vault,
                        tenant_id,
                        &r.try_get::<String, _>("external_id")?,
                        r.try_get::<Option<String>, _>("external_id_sealed")?
                            .as_deref(),
                    )?,
                },
            ))
        })
        .collect()
}

/// One customer the actor's data scope reaches (`NOT_FOUND` otherwise, as if absent).
pub async fn get_visible(db: &Db, actor: &Actor, id: &str) -> Result<Customer> {
    actor
        .access
        .ensure_customer(db, shoal_base::kinds::Resource::Customers, id)
        .await?;
    get(db, actor.tenant_id(), id).await
}

/// Updates a customer the actor reaches (`customer`, checked by `Access`).
pub async fn update(
    db: &Db,
    actor: &Actor,
    customer: &ScopedId,
    patch: &CustomerPatch,
) -> Result<Customer> {
    actor.require(shoal_base::kinds::Action::Update)?;
    if patch.owner_id.is_some() {
        actor.require(shoal_base::kinds::Action::Assign)?;
    }
    let id = customer.for_use(actor.tenant_id(), shoal_base::kinds::Resource::Customers)?;
    let tenant = &actor.tenant;
    let mut p = Problems::default();
    let name = patch
        .display_name
        .as_deref()
        .map(|n| validate::display_name(&mut p, "input.displayName", n));
    let phones = patch
        .phones
        .as_deref()
        .map(|v| validate::phones(&mut p, "input.phones", v, tenant));
    let emails = patch
        .emails
        .as_deref()
        .map(|v| validate::emails(&mut p, "input.emails", v));
    let attributes = patch
        .attributes
        .as_ref()
        .map(|v| validate::attributes(&mut p, "input.attributes", v));
    if let Some(owner) = &patch.owner_id {
        validate::owner(&mut p, "input.ownerId", owner.as_deref(), tenant);
    }
    let add = validate::identities(&mut p, "input.addIdentities", &patch.add_identities);
    let remove = validate::identities(&mut p, "input.removeIdentities", &patch.remove_identities);
    p.into_result(())?;

    for _ in 0..UPDATE_ATTEMPTS {
        let mut tx = db.begin_write().await?;
        let before = fetch(&mut tx, db, actor.tenant_id(), id, true).await?;
        let mut after = before.clone();
        if let Some(n) = &name {
            after.display_name = n.clone();
        }
        if let Some(v) = &phones {
            after.phones = v.clone();
        }
        if let Some(v) = &emails {
            after.emails = v.clone();
        }
        if let Some(a) = &attributes {
            after.attributes = validate::merge_attributes(&before.attributes, a);
            let mut p = Problems::default();
            validate::attributes(
                &mut p,
                "input.attributes",
                &Value::Object(after.attributes.clone()),
            );
            p.into_result(())?;
        }
        if let Some(stage) = patch.lifecycle_stage {
            after.lifecycle_stage = stage;
            after.stage_manual = true;
        } else if patch.release_stage {
            after.stage_manual = false;
        }
        if let Some(owner) = &patch.owner_id {
            after.owner_id = owner.clone();
        }
        if let Some(channel) = patch.source_channel {
            after.source_channel = channel;
        }
        after.updated_at = time::now();
        after.version = before.version + 1;

        let updated = store_row(&mut tx, db, actor.tenant_id(), &after, before.version).await?;
        if !updated {
            continue; // changed by someone else since we read it: read again
        }
        if phones.is_some() || emails.is_some() {
            replace_contacts(&mut tx, db, actor.tenant_id(), &after).await?;
        }
        change_identities(&mut tx, &db.vault, actor.tenant_id(), id, &add, &remove).await?;
        let mut changes = diff(&before, &after);
        if !add.is_empty() {
            changes.insert("identitiesAdded".into(), identities_json(&add));
        }
        if !remove.is_empty() {
            changes.insert("identitiesRemoved".into(), identities_json(&remove));
        }
        audit::record(
            &mut tx,
            actor,
            "customer.update",
            ENTITY,
            id,
            Value::Object(changes),
        )
        .await?;
        tx.commit().await?;
        return Ok(after);
    }
    Err(Error::Internal(format!(
        "customer {id} kept changing during {UPDATE_ATTEMPTS} update attempts"
    )))
}

/// Writes every field of a live customer whose stored version is still `expected_version`;
/// `false` when someone changed it in between.
pub async fn store_row(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    c: &Customer,
    expected_version: i64,
) -> Result<bool> {
    let (attributes, attributes_sealed) =
        sealed::split_attributes(&db.vault, tenant_id, &c.attributes)?;
    let updated = sqlx::query(&format!(
        "UPDATE customers SET display_name = $1, name_key = $2, phones = $3, emails = $4, \
         attributes = {}, lifecycle_stage = $6, owner_id = $7, source_channel = $8, \
         updated_at = $9, version = $10, stage_manual = $14, created_at = $15, \
         attributes_sealed = $16 WHERE tenant_id = $11 AND id = $12 AND version = $13 AND deleted_at IS NULL",
        dialect::json_cast(db.backend, "$5")
    ))
    .bind(&c.display_name)
    .bind(validate::name_key(&c.display_name))
    .bind(sealed::seal_list(
        &db.vault,
        tenant_id,
        sealed::PHONES,
        &c.phones,
    )?)
    .bind(sealed::seal_list(
        &db.vault,
        tenant_id,
        sealed::EMAILS,
        &c.emails,
    )?)
    .bind(attributes)
    .bind(c.lifecycle_stage.as_str())
    .bind(&c.owner_id)
    .bind(c.source_channel.as_str())
    .bind(time::to_micros(c.updated_at))
    .bind(c.version)
    .bind(tenant_id)
    .bind(&c.id)
    .bind(expected_version)
    .bind(i64::from(c.stage_manual))
    .bind(time::to_micros(c.created_at))
    .bind(attributes_sealed)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// Rewrites a customer's contact rows (blind indexes) from its phones and emails.
pub async fn replace_contacts(
    conn: &mut AnyConnection,
    db: &Db,
    tenant_id: &str,
    c: &Customer,
) -> Result<()> {
    sealed::rewrite_contacts(conn, &db.vault, tenant_id, &c.id, &c.phones, &c.emails).await
}

async fn change_identities(
    conn: &mut AnyConnection,
    vault: &Vault,
    tenant_id: &str,
    customer_id: &str,
    add: &[Identity],
    remove: &[Identity],
) -> Result<()> {
    let now = time::to_micros(time::now());
    for identity in remove {
        sqlx::query(
            "UPDATE customer_identities SET deleted_at = $1 WHERE tenant_id = $2 AND customer_id = $3 \
             AND channel = $4 AND external_id = $5 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(customer_id)
        .bind(identity.channel.as_str())
        .bind(sealed::identity_index(vault, tenant_id, identity.channel, &identity.external_id)?)
        .execute(&mut *conn)
        .await?;
    }
    check_identities_free(
        conn,
        vault,
        tenant_id,
        Some(customer_id),
        add,
        "input.addIdentities",
    )
    .await?;
    for identity in add {
        sqlx::query(
            "INSERT INTO customer_identities (tenant_id, customer_id, channel, external_id, external_id_sealed, created_at) \
             SELECT $1, $2, $3, $4, $6, $5 WHERE NOT EXISTS (SELECT 1 FROM customer_identities \
             WHERE tenant_id = $1 AND channel = $3 AND external_id = $4 AND deleted_at IS NULL)",
        )
        .bind(tenant_id)
        .bind(customer_id)
        .bind(identity.channel.as_str())
        .bind(sealed::identity_index(vault, tenant_id, identity.channel, &identity.external_id)?)
        .bind(now)
        .bind(sealed::seal_identity(vault, tenant_id, &identity.external_id)?)
        .execute(&mut *conn)
        .await
        .map_err(identity_conflict)?;
    }
    Ok(())
}

/// Soft-deletes a customer: it disappears from every query, its rows stay for the audit
/// trail, and its identities are released for other customers.
/// Deletes (softly) a customer the actor reaches.
pub async fn delete(db: &Db, actor: &Actor, customer: &ScopedId) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Delete)?;
    let id = customer.for_use(actor.tenant_id(), shoal_base::kinds::Resource::Customers)?;
    let mut tx = db.begin_write().await?;
    let before = fetch(&mut tx, db, actor.tenant_id(), id, true).await?;
    let now = time::to_micros(time::now());
    sqlx::query(
        "UPDATE customers SET deleted_at = $1, updated_at = $1, version = version + 1 \
         WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(actor.tenant_id())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE customer_identities SET deleted_at = $1 WHERE tenant_id = $2 AND customer_id = $3 AND deleted_at IS NULL")
        .bind(now)
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM customer_contacts WHERE tenant_id = $1 AND customer_id = $2")
        .bind(actor.tenant_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "customer.delete",
        ENTITY,
        id,
        snapshot(&before, &[]),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub fn identities_json(ids: &[Identity]) -> Value {
    Value::Array(
        ids.iter()
            .map(|i| json!({"channel": i.channel.as_str(), "externalId": i.external_id}))
            .collect(),
    )
}

pub fn snapshot(c: &Customer, identities: &[Identity]) -> Value {
    json!({
        "displayName": c.display_name,
        "phones": c.phones,
        "emails": c.emails,
        "attributes": c.attributes,
        "lifecycleStage": c.lifecycle_stage.as_str(),
        "ownerId": c.owner_id,
        "sourceChannel": c.source_channel.as_str(),
        "identities": identities_json(identities),
    })
}

/// `{field: {"from": old, "to": new}}` for every field that changed.
pub fn diff(before: &Customer, after: &Customer) -> serde_json::Map<String, Value> {
    let (b, a) = (snapshot(before, &[]), snapshot(after, &[]));
    let mut changes = serde_json::Map::new();
    if let (Value::Object(b), Value::Object(a)) = (b, a) {
        for (k, new) in a {
            let old = b.get(&k).cloned().unwrap_or(Value::Null);
            if old != new && k != "identities" {
                changes.insert(k, json!({"from": old, "to": new}));
            }
        }
    }
    changes
}
