//! Industry modules in GraphQL: `plugins` (administrators), `modules` (the caller's tenant)
//! and `reloadPlugins`.

use async_graphql::{Context, Enum, Json, Object, SimpleObject};
use serde_json::Value;

use super::{ErrorExt, actor, db};
use shoal_base::error::{Error, Result};
use shoal_crm::tenancy::Actor;
use shoal_plugin_host::{self as plugins, ModuleView, PluginStatus, Reloader, types};

fn require_admin(actor: &Actor) -> Result<()> {
    actor.require(shoal_base::kinds::Action::Administer)
}

fn reloader<'a>(ctx: &Context<'a>) -> &'a Reloader {
    ctx.data_unchecked::<Reloader>()
}

/// A module the caller's tenant enabled (for instantiating its templates).
pub(super) fn enabled_module(ctx: &Context<'_>, actor: &Actor, module: &str) -> Result<ModuleView> {
    reloader(ctx)
        .host
        .modules(actor.tenant_id())
        .into_iter()
        .find(|m| m.info.id == module)
        .ok_or_else(|| {
            Error::invalid(
                "module",
                format!("module `{module}` is not enabled for this tenant"),
            )
        })
}

/// A template's parameters as given (`params: {orders: 5}`): a JSON object, or none.
pub(super) fn template_params(
    params: Option<Json<Value>>,
) -> Result<std::collections::HashMap<String, Value>> {
    match params.map(|p| p.0) {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(m)) => Ok(m.into_iter().collect()),
        Some(_) => Err(Error::invalid("params", "must be a JSON object")),
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    Loaded,
    /// Refused at load; `loadError` says why and what to do.
    Failed,
}

/// The trust store's verdict on a module version (`plugins.trust`, docs/plugins.md).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginTrust {
    /// Signed by a key the trust store accepts for this module, now.
    Trusted,
    /// Unsigned, or signed by an unknown, revoked, expired or wrong key, or revoked
    /// itself: loaded only in development mode (`trustReason` says why).
    Untrusted,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ErrorCount {
    /// `fuel_exhausted`, `deadline_exceeded`, `out_of_memory`, `panic`, `trap`, …
    pub kind: String,
    pub count: i64,
}

/// A module version installed on this host, as administrators see it (several versions
/// of one module may be installed side by side).
#[derive(SimpleObject, Debug, Clone)]
pub struct Plugin {
    pub id: String,
    pub version: Option<String>,
    pub abi_version: Option<String>,
    pub sha256: Option<String>,
    pub status: PluginState,
    /// Why it was refused (a refusal by the trust store names the key and the reason).
    pub load_error: Option<String>,
    /// The caller's tenant, if it runs this version (the newest release, or the one it
    /// pins); other tenants of the host are not shown.
    pub tenants: Vec<String>,
    /// The key that signed it (as its signature names it), if any.
    pub signer: Option<String>,
    /// The trust store's verdict; null when the manifest could not be read.
    pub trust: Option<PluginTrust>,
    /// Why it is not trusted.
    pub trust_reason: Option<String>,
    pub calls: i64,
    pub errors: Vec<ErrorCount>,
    /// Latency percentiles of recent calls, in microseconds.
    pub latency_p50_us: Option<i64>,
    pub latency_p95_us: Option<i64>,
    pub latency_p99_us: Option<i64>,
}

impl From<PluginStatus> for Plugin {
    fn from(s: PluginStatus) -> Self {
        Plugin {
            id: s.id,
            version: s.version,
            abi_version: s.abi_version,
            sha256: s.sha256,
            status: if s.loaded {
                PluginState::Loaded
            } else {
                PluginState::Failed
            },
            load_error: s.load_error,
            tenants: s.tenants,
            signer: s.trust.as_ref().and_then(|t| t.signer()).map(str::to_owned),
            trust: s.trust.as_ref().map(|t| {
                if t.is_trusted() {
                    PluginTrust::Trusted
                } else {
                    PluginTrust::Untrusted
                }
            }),
            trust_reason: s.trust.as_ref().and_then(|t| t.reason()).map(str::to_owned),
            calls: s.stats.calls as i64,
            errors: s
                .stats
                .errors
                .into_iter()
                .map(|(kind, count)| ErrorCount {
                    kind: kind.to_owned(),
                    count: count as i64,
                })
                .collect(),
            latency_p50_us: s.stats.p50_us.map(|v| v as i64),
            latency_p95_us: s.stats.p95_us.map(|v| v as i64),
            latency_p99_us: s.stats.p99_us.map(|v| v as i64),
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct TemplateParam {
    pub name: String,
    pub description: String,
    pub default_value: Json<Value>,
}

/// A dynamic tag a module offers; instantiate it (tuning its parameters) to get a tag.
#[derive(SimpleObject, Debug, Clone)]
pub struct TagTemplate {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The rule, with `${param}` placeholders.
    pub rule: String,
    pub params: Vec<TemplateParam>,
}

/// A follow-up sequence a module offers.
#[derive(SimpleObject, Debug, Clone)]
pub struct SopTemplate {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The whole template: trigger, exit events, timed steps, parameters.
    pub definition: Json<Value>,
}

/// An industry module the caller's tenant has enabled.
#[derive(SimpleObject, Debug, Clone)]
pub struct Module {
    pub id: String,
    pub name: String,
    pub version: String,
    /// `retail`, `education`, `finance`, `clinic` or `other`.
    pub industry: String,
    pub description: String,
    pub capabilities: Vec<String>,
    /// The tenant's parameters for this module.
    pub params: Json<Value>,
    pub tag_templates: Vec<TagTemplate>,
    pub sop_templates: Vec<SopTemplate>,
    /// Ticket types the module supplies (plugin ABI 1.1; none from a 1.0 module).
    pub ticket_templates: Vec<TicketTemplate>,
}

fn param(p: types::TemplateParam) -> TemplateParam {
    TemplateParam {
        default_value: Json(
            serde_json::from_str(&p.default_value).unwrap_or(Value::String(p.default_value)),
        ),
        name: p.name,
        description: p.description,
    }
}

impl From<ModuleView> for Module {
    fn from(m: ModuleView) -> Self {
        let module_id = m.info.id.clone();
        Module {
            id: m.info.id,
            name: m.info.name,
            version: m.info.version,
            industry: plugins::industry_name(m.info.industry).to_owned(),
            description: m.info.description,
            capabilities: m.capabilities.into_iter().map(str::to_owned).collect(),
            params: Json(m.params),
            tag_templates: m
                .tag_templates
                .into_iter()
                .map(|t| TagTemplate {
                    id: t.id,
                    name: t.name,
                    description: t.description,
                    rule: t.rule,
                    params: t.params.into_iter().map(param).collect(),
                })
                .collect(),
            sop_templates: m
                .sop_templates
                .into_iter()
                .map(|s| SopTemplate {
                    definition: Json(serde_json::to_value(&s).unwrap_or_default()),
                    id: s.id,
                    name: s.name,
                    description: s.description,
                })
                .collect(),
            ticket_templates: m
                .ticket_templates
                .into_iter()
                .map(|t| template_of(&module_id, t))
                .collect(),
        }
    }
}

/// A kind of ticket a module supplies, which a tenant makes into one of its ticket types
/// (`instantiateTicketTemplate`).
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketTemplate {
    /// Also the suggested ticket type key.
    pub id: String,
    pub name: String,
    pub description: String,
    pub fields: Vec<super::tickets::TicketField>,
    /// Whether the module proposes field values for its tickets (`ticketProposal`).
    pub proposes: bool,
    /// The SLA targets it suggests (business minutes): `{firstResponseMinutes,
    /// nextResponseMinutes, resolutionMinutes}`.
    pub sla: Option<Json<Value>>,
    /// The routing it suggests: `{queue, skills: [{name, level}], urgentKeywords}`.
    pub routing: Option<Json<Value>>,
}

/// A module's template as GraphQL shows it.
fn template_of(module: &str, t: types::TicketTemplate) -> TicketTemplate {
    let ty = super::tickets::TicketType::from(shoal_tickets::proposals::type_from_template(
        module, &t, None, None,
    ));
    TicketTemplate {
        sla: t.sla.map(|s| {
            Json(serde_json::json!({
                "firstResponseMinutes": s.first_response_minutes,
                "nextResponseMinutes": s.next_response_minutes,
                "resolutionMinutes": s.resolution_minutes,
            }))
        }),
        routing: t.routing.map(|r| {
            Json(serde_json::json!({
                "queue": r.queue,
                "skills": r.skills.iter().map(|s| serde_json::json!({ "name": s.name, "level": s.level })).collect::<Vec<_>>(),
                "urgentKeywords": r.urgent_keywords,
            }))
        }),
        id: t.id,
        name: t.name,
        description: t.description,
        fields: ty.fields,
        proposes: t.proposes,
    }
}

#[derive(Default)]
pub struct PluginQuery;

#[Object]
impl PluginQuery {
    /// Every module installed on this host, loaded or refused (administrators only).
    async fn plugins(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Plugin>> {
        let actor = actor(ctx).gql()?;
        require_admin(actor).gql()?;
        Ok(reloader(ctx)
            .host
            .statuses()
            .into_iter()
            .map(|mut s| {
                // other tenants of the host are none of this tenant's business
                s.tenants.retain(|t| t == actor.tenant_id());
                s.into()
            })
            .collect())
    }

    /// The industry modules the caller's tenant has enabled, with the templates they supply.
    async fn modules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Module>> {
        let actor = actor(ctx).gql()?;
        Ok(reloader(ctx)
            .host
            .modules(actor.tenant_id())
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct LoadError {
    /// The module id, or its folder when the manifest could not be read.
    pub plugin: String,
    pub error: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ReloadPluginsPayload {
    pub loaded: Vec<String>,
    pub failed: Vec<LoadError>,
}

#[derive(Default)]
pub struct PluginMutation;

#[Object]
impl PluginMutation {
    /// Withdraws the newest version of a module this host runs from its plugins folder and
    /// reloads, so the loaded version before it runs again (administrators only; audited).
    /// Refused while a tenant pins the newest version, and FORBIDDEN when other tenants run
    /// it (the host operator's `shoal plugin rollback` then; a tenant pins instead).
    async fn rollback_plugin(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<ReloadPluginsPayload> {
        let actor = actor(ctx).gql()?;
        require_admin(actor).gql()?;
        let host = reloader(ctx).host.clone();
        let (module, tenant) = (id.clone(), actor.tenant_id().to_owned());
        let done = tokio::task::spawn_blocking(move || host.withdraw_newest(&module, &tenant))
            .await
            .map_err(|e| Error::Internal(format!("rollback task: {e}")))
            .gql()?
            .map_err(|e| match e {
                plugins::Withdraw::Shared(why) => Error::Forbidden(why),
                plugins::Withdraw::Refused(why) => Error::invalid("id", why),
            })
            .gql()?;
        shoal_crm::audit::record_alone(
            db(ctx),
            actor,
            "plugins.rollback",
            "plugin",
            &id,
            serde_json::json!({ "done": done.trim() }),
        )
        .await
        .gql()?;
        self.reload_plugins(ctx).await
    }

    /// Re-reads the configuration and the plugins folder and swaps modules atomically;
    /// calls in flight finish on the old versions (administrators only).
    async fn reload_plugins(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ReloadPluginsPayload> {
        require_admin(actor(ctx).gql()?).gql()?;
        let report = reloader(ctx)
            .reload()
            .await
            .map_err(|e| Error::invalid("config", e))
            .gql()?;
        let failed: Vec<String> = report
            .failed
            .iter()
            .map(|f| {
                f.id.clone()
                    .unwrap_or_else(|| f.source.display().to_string())
            })
            .collect();
        shoal_crm::audit::record_alone(
            db(ctx),
            actor(ctx).gql()?,
            "plugins.reload",
            "plugins",
            "host",
            serde_json::json!({ "loaded": report.loaded, "failed": failed }),
        )
        .await
        .gql()?;
        Ok(ReloadPluginsPayload {
            loaded: report.loaded,
            failed: report
                .failed
                .into_iter()
                .map(|f| LoadError {
                    plugin: f.id.unwrap_or_else(|| f.source.display().to_string()),
                    error: f.error,
                })
                .collect(),
        })
    }
}
