//! Ticket types made from an industry module's ticket templates (plugin ABI 1.1) — with the
//! SLA policy and routing rules the template suggests — and the field values the module
//! proposes for their tickets — a refund amount from the course's progress and payments —
//! which staff read and may apply.
//!
//! A proposal is a pure function of the ticket and its customer *as the asking staff member
//! sees them*: fields that copy a masked attribute arrive masked and the customer's
//! attributes only where the reader sees them in full, so a module cannot pass on what the
//! reader may not read. Applying one re-asks the module and writes the values as any field
//! change is written (checked against the type, history and audit in one transaction).

use serde_json::{Map, Value};
use shoal_base::{
    error::{Error, Problems, Result},
    storage::Db,
};
use shoal_crm::tenancy::Actor;
use shoal_plugin_host::{CallError, PluginHost, types as plugin};

use crate::{
    records::Ticket,
    routing, sla, store,
    types::{FieldDef, FieldKind, TemplateOrigin, TicketType},
};

/// A ticket type from module `module`'s template `t`: its fields, the standard workflow,
/// and the origin (so its tickets can be proposed for). `key` and `name` default to the
/// template's.
pub fn type_from_template(
    module: &str,
    t: &plugin::TicketTemplate,
    key: Option<String>,
    name: Option<String>,
) -> TicketType {
    let kind = |k: plugin::TicketFieldKind| match k {
        plugin::TicketFieldKind::Text => FieldKind::Text,
        plugin::TicketFieldKind::Number => FieldKind::Number,
        plugin::TicketFieldKind::Money => FieldKind::Money,
        plugin::TicketFieldKind::Date => FieldKind::Date,
        plugin::TicketFieldKind::Choice => FieldKind::Choice,
        plugin::TicketFieldKind::CustomerAttribute => FieldKind::CustomerAttribute,
    };
    TicketType {
        key: key.unwrap_or_else(|| t.id.clone()),
        name: name.unwrap_or_else(|| t.name.clone()),
        fields: t
            .fields
            .iter()
            .map(|f| FieldDef {
                key: f.key.clone(),
                label: f.label.clone(),
                kind: kind(f.kind),
                required: f.required,
                choices: f.choices.clone(),
                attribute: f.attribute.clone(),
            })
            .collect(),
        statuses: TicketType::standard_statuses(),
        transitions: Vec::new(),
        survey: None,
        template: Some(TemplateOrigin {
            module: module.to_owned(),
            template: t.id.clone(),
            proposes: t.proposes,
        }),
    }
}

/// A template made into a ticket type, and what of its suggestions was set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Instantiated {
    pub ticket_type: TicketType,
    /// The SLA policy added for the type, by name.
    pub sla_policy: Option<String>,
    /// The routing rules added for the type, by name.
    pub routing_rules: Vec<String>,
    /// Suggestions not set up, and why (`queue `tech` does not exist: …`).
    pub skipped: Vec<String>,
}

/// Where a new entry goes in a first-match list: before the first catch-all (an entry with
/// no condition at all, which would shadow it), else at the end.
fn before_catch_all<T>(list: &[T], catch_all: impl Fn(&T) -> bool) -> usize {
    list.iter().position(catch_all).unwrap_or(list.len())
}

fn policy_catches_all(p: &sla::Policy) -> bool {
    p.types.is_empty() && p.priorities.is_empty() && p.customer.is_none()
}

fn rule_catches_all(r: &routing::Rule) -> bool {
    r.types.is_empty()
        && r.channels.is_empty()
        && r.priorities.is_empty()
        && r.keywords.is_empty()
        && r.fields.is_empty()
        && r.customer.is_none()
        && r.rfm_cells.is_empty()
}

/// Makes module `module`'s template `t` a new ticket type (permission `configure`; a key
/// in use is refused, naming `key`); with `defaults`, also adds the SLA policy it suggests
/// (named after the type) and its routing rules (an urgent rule for its keywords at P1,
/// then one for the type), each before the first catch-all of its list. All in one
/// transaction under the tenant's ticket lock; a suggestion that cannot be set up — a name
/// already taken, a queue the tenant lacks, a value out of bounds — is skipped and said so,
/// the rest stands.
pub async fn instantiate(
    db: &Db,
    actor: &Actor,
    module: &str,
    t: &plugin::TicketTemplate,
    key: Option<String>,
    name: Option<String>,
    defaults: bool,
) -> Result<Instantiated> {
    actor.require(shoal_base::kinds::Action::Configure)?;
    let tenant = actor.tenant_id();
    let mut tx = db.begin_write().await?;
    crate::settings::lock(&mut tx, db, tenant).await?;
    let wanted = type_from_template(module, t, key, name);
    let taken: Option<String> =
        sqlx::query_scalar("SELECT key FROM ticket_types WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(&wanted.key)
            .fetch_optional(&mut *tx)
            .await?;
    if taken.is_some() || wanted.key == crate::records::GENERAL {
        return Err(Error::invalid(
            "key",
            format!(
                "`{}` is a ticket type already: give another key (or edit that type with saveTicketType)",
                wanted.key
            ),
        ));
    }
    let ty = store::save_type_in(&mut tx, actor, &wanted).await?;
    let mut out = Instantiated {
        ticket_type: ty.clone(),
        sla_policy: None,
        routing_rules: Vec::new(),
        skipped: Vec::new(),
    };
    if defaults && let Some(s) = &t.sla {
        let mut policies = sla::policies_in(&mut tx, tenant).await?;
        let policy = sla::Policy {
            name: ty.name.clone(),
            types: vec![ty.key.clone()],
            priorities: Vec::new(),
            customer: None,
            first_response_minutes: s.first_response_minutes,
            next_response_minutes: s.next_response_minutes,
            resolution_minutes: s.resolution_minutes,
            warn_at_percent: 80,
            escalations: Vec::new(),
        };
        let mut p = Problems::default();
        policy.check(&mut p, "");
        if policies.iter().any(|x| x.name == policy.name) {
            out.skipped.push(format!(
                "SLA policy: one named `{}` exists already",
                policy.name
            ));
        } else if let Err(e) = p.into_result(()) {
            out.skipped.push(format!("SLA policy: {e}"));
        } else if policies.len() >= sla::MAX_POLICIES {
            out.skipped.push(format!(
                "SLA policy: the tenant has {} already",
                sla::MAX_POLICIES
            ));
        } else {
            let at = before_catch_all(&policies, policy_catches_all);
            out.sla_policy = Some(policy.name.clone());
            policies.insert(at, policy);
            let value =
                serde_json::to_value(&policies).map_err(|e| Error::Internal(e.to_string()))?;
            crate::settings::save_in(&mut tx, actor, "sla_policies", value).await?;
        }
    }
    if defaults && let Some(r) = &t.routing {
        let queues = crate::queues::queues(&mut tx, tenant).await?;
        let tags = shoal_tags::store_all(&mut tx, tenant).await?;
        let mut rules = routing::rules_in(&mut tx, tenant).await?;
        let skills: std::collections::BTreeMap<String, u8> =
            r.skills.iter().map(|s| (s.name.clone(), s.level)).collect();
        let rule = |name: String, keywords: Vec<String>, priority: Option<i64>| routing::Rule {
            name,
            types: vec![ty.key.clone()],
            channels: Vec::new(),
            priorities: Vec::new(),
            keywords,
            fields: Map::new(),
            customer: None,
            rfm_cells: Vec::new(),
            queue: r.queue.clone(),
            priority,
            skills: skills.clone(),
        };
        let mut added = Vec::new();
        if !r.urgent_keywords.is_empty() {
            added.push(rule(
                format!("{}: 紧急", ty.name),
                r.urgent_keywords.clone(),
                Some(1),
            ));
        }
        added.push(rule(ty.name.clone(), Vec::new(), None));
        let mut p = Problems::default();
        for (i, a) in added.iter().enumerate() {
            // proposed rules hold no customer condition
            a.check(&mut p, &format!("rules[{i}]."), &queues, &tags, &[]);
        }
        if !queues.iter().any(|q| q.key == r.queue) {
            out.skipped.push(format!(
                "routing: queue `{}` does not exist; create it (saveTicketQueue) and add the rules",
                r.queue
            ));
        } else if let Some(a) = added
            .iter()
            .find(|a| rules.iter().any(|x| x.name == a.name))
        {
            out.skipped
                .push(format!("routing: a rule named `{}` exists already", a.name));
        } else if let Err(e) = p.into_result(()) {
            out.skipped.push(format!("routing: {e}"));
        } else if rules.len() + added.len() > routing::MAX_RULES {
            out.skipped
                .push(format!("routing: at most {} rules", routing::MAX_RULES));
        } else {
            let at = before_catch_all(&rules, rule_catches_all);
            out.routing_rules = added.iter().map(|a| a.name.clone()).collect();
            rules.splice(at..at, added);
            let value = serde_json::to_value(&rules).map_err(|e| Error::Internal(e.to_string()))?;
            crate::settings::save_in(&mut tx, actor, "routing_rules", value).await?;
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// What a module proposes for a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub module: String,
    pub module_version: String,
    /// Values by field key, checked against the ticket's type.
    pub fields: Map<String, Value>,
    pub notes: Vec<String>,
}

/// Why no proposal could be made, beyond the usual errors: the module refused (its own
/// code and message) or could not be called.
fn refused(module: &str, e: plugin::PluginError) -> Error {
    Error::invalid(
        "id",
        format!(
            "module `{module}` made no proposal ({}): {}",
            e.code, e.message
        ),
    )
}

fn unavailable(module: &str, e: CallError) -> Error {
    match e {
        CallError::Host(e) => Error::Internal(format!("module `{module}`: {e}")),
        // not enabled, not loaded, too large, out of fuel, trapped: the module, not the host
        other => Error::invalid(
            "id",
            format!(
                "the ticket's type comes from module `{module}`, which could not propose: {other}"
            ),
        ),
    }
}

/// The module's proposal for ticket `id` (which the caller must reach), in `currency`.
pub async fn propose(
    db: &Db,
    host: &PluginHost,
    actor: &Actor,
    id: &str,
    currency: &str,
) -> Result<Proposal> {
    let tk = store::get(db, actor, id).await?;
    let ty = store::type_of(db, actor.tenant_id(), &tk.type_key, "id").await?;
    let origin = match &ty.template {
        Some(o) if o.proposes => o.clone(),
        _ => {
            return Err(Error::invalid(
                "id",
                format!(
                    "tickets of type `{}` get no proposals: it was not made from a module template that proposes",
                    ty.key
                ),
            ));
        }
    };
    ask(db, host, actor, &tk, &ty, &origin, currency).await
}

async fn ask(
    db: &Db,
    host: &PluginHost,
    actor: &Actor,
    tk: &Ticket,
    ty: &TicketType,
    origin: &TemplateOrigin,
    currency: &str,
) -> Result<Proposal> {
    let mut p = Problems::default();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        p.push("currency", "an ISO 4217 code such as CNY");
    }
    p.into_result(())?;
    let customer = match &tk.customer_id {
        Some(c) => shoal_tags::profile_for(db, actor, c).await?,
        None => None,
    };
    let request = plugin::TicketRequest {
        template: origin.template.clone(),
        currency: currency.to_owned(),
        fields: Value::Object(tk.fields.clone()).to_string(),
        customer,
    };
    let module = &origin.module;
    let proposed = host
        .propose_ticket(actor.tenant_id(), module, request)
        .await
        .map_err(|e| unavailable(module, e))?;
    let answer = proposed.result.map_err(|e| refused(module, e))?;
    let fields = match serde_json::from_str::<Value>(&answer.fields) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(Error::Internal(format!(
                "module `{module}` proposed fields that are not a JSON object"
            )));
        }
    };
    // the module's values must fit the type like any staff member's
    let mut p = Problems::default();
    for key in fields.keys() {
        if ty
            .fields
            .iter()
            .any(|f| &f.key == key && f.attribute.is_some())
        {
            p.push(
                format!("proposal.fields.{key}"),
                format!("module `{module}` proposed a value for a field that copies a customer attribute"),
            );
        }
    }
    ty.check_values(&fields, false, &mut p, "proposal.fields");
    p.into_result(())?;
    Ok(Proposal {
        module: module.clone(),
        module_version: proposed.module_version,
        fields,
        notes: answer.notes,
    })
}

/// Asks the module again and writes its proposal into the ticket's fields (permission
/// `update`), noting on the history entry which module version proposed them and why.
pub async fn apply(
    db: &Db,
    host: &PluginHost,
    actor: &Actor,
    id: &str,
    currency: &str,
) -> Result<(Ticket, Proposal)> {
    actor.require(shoal_base::kinds::Action::Update)?;
    let proposal = propose(db, host, actor, id, currency).await?;
    let mut note = format!(
        "proposed by module {} {}",
        proposal.module, proposal.module_version
    );
    for line in &proposal.notes {
        note.push('\n');
        note.push_str(line);
    }
    let note: String = note.chars().take(2000).collect();
    let tk = store::set_fields_noted(db, actor, id, &proposal.fields, Some(&note)).await?;
    Ok((tk, proposal))
}
