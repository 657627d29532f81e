//! The intake: the connector worker of one host: for every tenant with connectors, a supervised loop
//! that claims due deliveries and processes each on its own — its work and its `done` mark
//! in one transaction, a failure (or a panic) retried later without stopping the others.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::{
    inbox::{self, Delivery},
    setup::Connectors,
    wecom_events::{self, Plan},
    wecom_xml,
};
use shoal_base::{
    error::{Error, Result},
    storage::{Db, time},
    supervise::Supervision,
};
use shoal_crm::tenancy::{Actor, Tenant};
use shoal_data::import::document::{self, Applied, Origin};
use shoal_plugin_host::PluginHost;
use shoal_sop::{
    channels::{Adapters, Ctx, Handed},
    transport::Transport,
};

/// Deliveries claimed per round.
const CLAIM: i64 = 20;

struct Shared {
    db: Db,
    /// For the modules' tags of the customers a delivery touched.
    host: Arc<PluginHost>,
    transport: Transport,
    timeout: Duration,
    poll: Duration,
    supervision: Arc<Supervision>,
}

/// Why a delivery's work failed.
enum Failure {
    /// Worth another try (WeCom unreachable or busy, storage).
    Retry(String),
    /// Never going to work (WeCom refused the call, an unreadable body).
    Final(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Retry(e.to_string())
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure::Retry(e.to_string())
    }
}

/// The outcome line of an import.
fn outcome(what: &str, a: &Applied) -> String {
    let mut parts = vec![what.to_owned()];
    if a.customers.rows_read > 0 {
        parts.push(format!(
            "customers: {} created, {} merged",
            a.customers.created, a.customers.merged
        ));
    }
    if a.events.rows_read > 0 {
        parts.push(format!(
            "events: {} recorded, {} already recorded",
            a.events.created, a.events.duplicates
        ));
    }
    if !a.errors.is_empty() {
        parts.push(format!("{} refused", a.errors.len()));
    }
    // the row, the column and why — never the value (staff who list deliveries may not see
    // the customer's data), and values quoted in a reason are left out too
    for e in a.errors.iter().take(5) {
        parts.push(format!(
            "row {} {}: {}",
            e.row,
            e.column,
            without_quoted(&e.reason)
        ));
    }
    parts.join("; ")
}

/// `text` with what it quotes in backticks left out.
fn without_quoted(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
        .collect()
}

/// Imports `doc` and marks the delivery done, in one transaction; tags are evaluated for
/// the customers it touched once committed.
async fn import(
    s: &Shared,
    actor: &Actor,
    d: &Delivery,
    customers: Option<&shoal_data::import::mapping::Mapping>,
    events: Option<&shoal_data::import::mapping::Mapping>,
    doc: &Value,
    what: &str,
) -> std::result::Result<String, Failure> {
    let job_id = format!("connector:{}:{}", d.source, d.id);
    let key_prefix = format!("{}:{}:", d.source, d.key);
    let mut tx = s.db.begin_write().await?;
    let applied = document::apply(
        &mut tx,
        &s.db,
        actor,
        customers,
        events,
        doc,
        Origin {
            job_id: &job_id,
            key_prefix: &key_prefix,
        },
    )
    .await?;
    let said = outcome(what, &applied);
    if !inbox::done(&mut tx, actor.tenant_id(), d, &said).await? {
        tx.rollback().await?;
        return Ok("taken over by another worker".into());
    }
    tx.commit().await?;
    if !applied.touched.is_empty()
        && let Err(e) =
            shoal_tags::evaluate_customers(&s.db, Some(&s.host), &actor.tenant, &applied.touched)
                .await
    {
        tracing::error!(tenant = actor.tenant_id(), error = %e, "tag evaluation after a connector delivery failed");
    }
    Ok(said)
}

/// Marks a delivery that imports nothing done.
async fn note(
    s: &Shared,
    tenant: &str,
    d: &Delivery,
    said: &str,
) -> std::result::Result<String, Failure> {
    let mut tx = s.db.begin_write().await?;
    if inbox::done(&mut tx, tenant, d, said).await? {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(said.to_owned())
}

async fn wecom(
    s: &Shared,
    tenant: &Arc<Tenant>,
    actor: &Actor,
    d: &Delivery,
) -> std::result::Result<String, Failure> {
    let m = wecom_xml::parse(d.body.as_bytes()).map_err(Failure::Final)?;
    let (customers, events) = wecom_events::mappings();
    let at = wecom_events::occurred_at(&m, d.received_at);
    let key = format!("{}:{}", d.source, d.key);
    match wecom_events::plan(&m) {
        Plan::Note(said) => note(s, &tenant.id, d, &said).await,
        Plan::Contact {
            external_userid,
            change,
            fetch,
        } => {
            let event = wecom_events::event_document(&m, &external_userid, &change, &key, at);
            if !fetch {
                return import(s, actor, d, None, Some(events), &event, &change).await;
            }
            let adapters = Adapters::of(tenant);
            let (details, what) = match adapters.wecom() {
                Some(client) => {
                    let ctx = Ctx {
                        transport: &s.transport,
                        timeout: s.timeout,
                    };
                    match client
                        .get(
                            ctx,
                            "/cgi-bin/externalcontact/get",
                            &[("external_userid", &external_userid)],
                        )
                        .await
                    {
                        Ok(v) => (Some(v), change.clone()),
                        Err(Handed::Refused(why)) => return Err(Failure::Final(why)),
                        Err(Handed::Retry(why)) => return Err(Failure::Retry(why)),
                        Err(Handed::Later { reason, .. }) => return Err(Failure::Retry(reason)),
                        Err(Handed::Taken { .. }) => (None, change.clone()),
                    }
                }
                None => (
                    None,
                    format!(
                        "{change} (details not fetched: the tenant has no channels.wecom client)"
                    ),
                ),
            };
            if details.is_none() && change == "edit_external_contact" {
                // a placeholder name must not replace the one the customer has
                return import(s, actor, d, None, Some(events), &event, &what).await;
            }
            let doc = wecom_events::contact_with_event(
                wecom_events::contact_document(&external_userid, details.as_ref()),
                event,
            );
            import(s, actor, d, Some(customers), Some(events), &doc, &what).await
        }
        Plan::Members {
            chat_id,
            joined,
            members,
        } => {
            let event = if joined { "group_join" } else { "group_leave" };
            let docs: Vec<Value> = members
                .iter()
                .map(|u| wecom_events::event_document(&m, u, event, &format!("{key}:{u}"), at))
                .collect();
            let what = format!("group {chat_id}: {} {event}", members.len());
            import(s, actor, d, None, Some(events), &Value::Array(docs), &what).await
        }
    }
}

async fn hook(
    s: &Shared,
    actor: &Actor,
    connectors: &Connectors,
    name: &str,
    d: &Delivery,
) -> std::result::Result<String, Failure> {
    let Some(h) = connectors.hooks.get(name) else {
        return Err(Failure::Final(format!(
            "webhook `{name}` is no longer configured"
        )));
    };
    let doc: Value = serde_json::from_str(&d.body).map_err(|e| Failure::Final(e.to_string()))?;
    import(
        s,
        actor,
        d,
        h.customers.as_ref(),
        h.events.as_ref(),
        &doc,
        "webhook",
    )
    .await
}

/// Processes one claimed delivery; a failure is recorded on it.
async fn process(
    s: &Shared,
    tenant: &Arc<Tenant>,
    connectors: &Connectors,
    d: &Delivery,
) -> Result<()> {
    let actor = Actor::system(tenant, "connector");
    let (kind, name) = d.source.split_once(':').unwrap_or((d.source.as_str(), ""));
    let work = async {
        match kind {
            "wecom" => wecom(s, tenant, &actor, d).await,
            "hook" => hook(s, &actor, connectors, name, d).await,
            other => Err(Failure::Final(format!("unknown source `{other}`"))),
        }
    };
    // a panic in the work is a failure of this delivery, not of the loop
    let ran = shoal_base::supervise::catch(async { Ok(work.await) }).await;
    let failure = match ran {
        Ok(Ok(_)) => {
            s.supervision.count("connectors.delivery", "done");
            return Ok(());
        }
        Ok(Err(f)) => f,
        Err(e) => {
            tracing::error!(tenant = %tenant.id, delivery = %d.id, error = %e, "connector delivery panicked");
            Failure::Retry("the work failed unexpectedly (see the server log)".into())
        }
    };
    let (why, final_) = match failure {
        Failure::Retry(w) => (w, false),
        Failure::Final(w) => (w, true),
    };
    let Some(given_up) = inbox::failed(&s.db, &tenant.id, d, &why, final_).await? else {
        // another worker holds the delivery now: its try counts, not this one
        return Ok(());
    };
    s.supervision.count(
        "connectors.delivery",
        if given_up { "failed" } else { "retried" },
    );
    tracing::warn!(tenant = %tenant.id, delivery = %d.id, source = %d.source, %why, given_up, "connector delivery not processed");
    Ok(())
}

/// One round for one tenant: answers whether it found work.
async fn round(s: &Shared, t: &Arc<Tenant>, connectors: &Connectors) -> Result<bool> {
    let claimed = inbox::claim(&s.db, &t.id, time::now(), CLAIM).await?;
    for d in &claimed {
        // each delivery's lease starts when its turn comes (the ones before may have waited
        // on WeCom); one taken over meanwhile is left to its new holder
        let Some(d) = inbox::renew(&s.db, &t.id, d, time::now()).await? else {
            continue;
        };
        let d = &d;
        if let Err(e) = s
            .supervision
            .guard("connectors.process", process(s, t, connectors, d))
            .await
        {
            tracing::error!(tenant = %t.id, delivery = %d.id, error = %e, "connector delivery failed");
        }
    }
    Ok(!claimed.is_empty())
}

async fn tenant_loop(s: Arc<Shared>, t: Arc<Tenant>) {
    let connectors = Connectors::of(&t);
    let mut forgot_at: Option<tokio::time::Instant> = None;
    loop {
        // once an hour: processed deliveries older than a week lose their bodies
        if forgot_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            forgot_at = Some(tokio::time::Instant::now());
            if let Err(e) = s
                .supervision
                .guard(
                    "connectors.forget",
                    inbox::forget_bodies(&s.db, &t.id, time::now()),
                )
                .await
            {
                tracing::error!(tenant = %t.id, error = %e, "emptying old connector deliveries failed");
            }
        }
        let busy = match s
            .supervision
            .guard("connectors.round", round(&s, &t, &connectors))
            .await
        {
            Ok(busy) => busy,
            Err(e) => {
                tracing::error!(tenant = %t.id, error = %e, "connector round failed");
                false
            }
        };
        if !busy {
            // a tenant without connectors may still hold deliveries from before they were
            // removed (they fail as unconfigured): looked at now and then
            let idle = if connectors.any() {
                s.poll
            } else {
                Duration::from_secs(30)
            };
            tokio::time::sleep(idle).await;
        }
    }
}

/// Starts one supervised loop per tenant; the returned task runs until aborted.
pub fn spawn(
    db: Db,
    host: Arc<PluginHost>,
    tenants: Vec<Arc<Tenant>>,
    poll: Duration,
    timeout: Duration,
    transport: Transport,
    supervision: Arc<Supervision>,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared {
        db,
        host,
        transport,
        timeout,
        poll,
        supervision,
    });
    shoal_base::supervise::each_forever(
        tenants,
        "connectors.worker",
        shared.supervision.clone(),
        |t| t.id.clone(),
        move |t| tenant_loop(shared.clone(), t),
    )
}
