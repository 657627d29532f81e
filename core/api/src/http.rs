//! HTTP: `/graphql` (GraphQL over HTTP, POST and GET: see [`over_http`]; GraphiQL for a GET
//! without a query; WebSocket subscriptions at `/graphql/ws`), `/assets/` (embedded files),
//! `/healthz`, `/readyz`, `/metrics`, and the endpoints other systems call (inbound
//! tickets, SMS receipts, surveys, e-mail tracking, connectors). Authentication, body size and timeout are enforced
//! here, before a request reaches the schema.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{Data, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::{MatchedPath, Query, Request, State, WebSocketUpgrade, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};

pub use super::state::AppState;
use super::{
    assets, classify,
    errors::request_error,
    metrics::Metrics,
    over_http::{self, MediaType, Refusal},
    sign_in,
};
use shoal_base::error::ErrorCode;
use shoal_connectors::{ReceiveError, receive};
use shoal_crm::tenancy::{Actor, Directory, Principal};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/", get(assets::console))
        .route("/assets/{*path}", get(assets::serve))
        .route("/auth/sign-in", post(sign_in::sign_in))
        .route("/auth/session", get(sign_in::session))
        .route("/auth/sign-out", post(sign_in::sign_out))
        .route(
            "/auth/sign-out-everywhere",
            post(sign_in::sign_out_everywhere),
        )
        .route("/graphql/ws", get(subscriptions))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/statements/{file}", get(statement_csv))
        .route("/imports/{job}/errors.csv", get(import_errors_csv))
        .route("/channels/{tenant}/sms/receipts", post(sms_receipt))
        .route("/tickets/{tenant}/inbound", post(inbound_ticket))
        .route(
            "/connectors/{tenant}/wecom/{app}",
            get(connector_wecom_check).post(connector_wecom_event),
        )
        .route("/connectors/{tenant}/hooks/{name}", post(connector_hook))
        .route(
            "/surveys/{tenant}/{token}",
            get(survey_questions).post(survey_answers),
        )
        .route("/t/{tenant}/{message}/open.gif", get(email_opened))
        .route("/t/{tenant}/{message}/click/{link}", get(email_clicked))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::from_fn_with_state(
            PanicGuard {
                metrics: state.metrics.clone(),
                supervision: state.supervision.clone(),
            },
            catch_panic,
        ))
        .with_state(state)
}

/// What [`catch_panic`] counts with.
#[derive(Clone)]
pub struct PanicGuard {
    pub metrics: Arc<Metrics>,
    pub supervision: Arc<shoal_base::supervise::Supervision>,
}

/// A panic anywhere below becomes an `INTERNAL` answer with a reference (the panic is logged
/// under it), never a dropped connection.
pub async fn catch_panic(
    State(guard): State<PanicGuard>,
    request: Request,
    next: Next,
) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let reference = uuid::Uuid::new_v4().simple().to_string();
            let what = shoal_base::supervise::panic_message(&*panic);
            tracing::error!(%reference, panic = %what, "a request panicked");
            guard.supervision.count("http.request", "panicked");
            failure(
                &guard.metrics,
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("internal error (reference {reference})"),
            )
        }
    }
}

async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render() + &state.supervision.render(),
    )
}

/// A response carrying only request-level errors.
fn failure(
    metrics: &Metrics,
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> Response {
    let mut errors = vec![request_error(code, message)];
    classify(&mut errors, metrics);
    (status, Json(serde_json::json!({ "errors": errors }))).into_response()
}

/// [`failure`] for `/graphql`, in the negotiated media type.
fn refuse(metrics: &Metrics, media: MediaType, refusal: Refusal) -> Response {
    with_media(
        failure(
            metrics,
            refusal.status,
            ErrorCode::BadUserInput,
            refusal.message,
        ),
        media,
    )
}

fn with_media(mut response: Response, media: MediaType) -> Response {
    if let Ok(value) = media.content_type().parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// `406`: the client's `Accept` names no type a GraphQL response is written in.
fn not_acceptable(metrics: &Metrics) -> Response {
    failure(
        metrics,
        StatusCode::NOT_ACCEPTABLE,
        ErrorCode::BadUserInput,
        "`Accept` must allow application/graphql-response+json or application/json",
    )
}

/// The API key of a `Bearer` authorization value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

fn authenticate(directory: &Directory, headers: &HeaderMap) -> Result<Principal, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("missing `Authorization: Bearer <api key>` header")?;
    let key = value
        .to_str()
        .ok()
        .and_then(bearer)
        .ok_or("the Authorization header must be `Bearer <api key>`")?;
    directory.authenticate(key).ok_or("invalid API key")
}

/// The request's id: a well-formed `X-Request-Id` (≤ 64 of `A-Z a-z 0-9 - _ . :`), else a
/// fresh UUID.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The caller of a request that may change something, with its permissions loaded, or the
/// response refusing it: an API key, or a session cookie with its CSRF token.
async fn actor(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    caller(state, headers, true).await
}

/// The caller of a request that changes nothing (a `GET`): an API key or a session cookie.
async fn reader(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    caller(state, headers, false).await
}

async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    check_csrf: bool,
) -> Result<Actor, Response> {
    let deny = |status, code, why: &str| failure(&state.metrics, status, code, why);
    let by_cookie = if headers.contains_key(header::AUTHORIZATION) {
        None // an API key takes precedence
    } else {
        sign_in::from_cookie(state, headers, check_csrf).await
    };
    let principal = match by_cookie {
        None => authenticate(&state.directory, headers)
            .map_err(|why| deny(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, why))?,
        Some(Ok(principal)) => principal,
        Some(Err(sign_in::Refused::Over)) => {
            return Err(deny(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "the session is over: sign in again",
            ));
        }
        Some(Err(sign_in::Refused::Csrf)) => {
            return Err(deny(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "a request signed in with a session cookie needs the X-CSRF-Token header its sign-in answered",
            ));
        }
        Some(Err(sign_in::Refused::Internal)) => {
            return Err(deny(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            ));
        }
    };
    let sensitive = state.host.sensitive_fields(&principal.tenant.id);
    principal
        .resolve(&state.db, sensitive, request_id(headers))
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "loading the caller's permissions failed");
            failure(
                &state.metrics,
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        })
}

/// `POST /graphql`.
async fn graphql_post(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable(&state.metrics);
    };
    let actor = match actor(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return with_media(response, media),
    };
    if let Err(refusal) = over_http::check_content_type(&headers) {
        return refuse(&state.metrics, media, refusal);
    }
    let limit = state.limits.max_body_bytes;
    let Ok(bytes) = to_bytes(body, limit).await else {
        return with_media(
            failure(
                &state.metrics,
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::LimitExceeded,
                format!("request body exceeds {limit} bytes"),
            ),
            media,
        );
    };
    match over_http::from_body(&bytes) {
        Ok(request) => execute(&state, actor, request, media).await,
        Err(refusal) => refuse(&state.metrics, media, refusal),
    }
}

/// `GET /graphql`: GraphiQL without a `query` parameter, else the query (never a mutation).
async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(e) => {
            return failure(
                &state.metrics,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                format!("the query string is not valid: {e}"),
            );
        }
    };
    if !params.contains_key("query") {
        return assets::graphiql();
    }
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable(&state.metrics);
    };
    let actor = match reader(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return with_media(response, media),
    };
    let mut request = match over_http::from_query_string(&params) {
        Ok(request) => request,
        Err(refusal) => return refuse(&state.metrics, media, refusal),
    };
    if !over_http::selects_query(&mut request) {
        let mut response = refuse(
            &state.metrics,
            media,
            Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "a GET runs queries only: send mutations and subscriptions as a POST"
                    .into(),
            },
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, actor, request, media).await
}

/// Runs a request within the time limit and answers in `media`.
async fn execute(
    state: &AppState,
    actor: Actor,
    request: async_graphql::Request,
    media: MediaType,
) -> Response {
    let timeout = Duration::from_millis(state.limits.request_timeout_ms);
    let request_id = actor.request_id.clone();
    let execution = state.schema.execute(request.data(actor));
    let mut response = match tokio::time::timeout(timeout, execution).await {
        Ok(mut response) => {
            classify(&mut response.errors, &state.metrics);
            let (status, body) = over_http::render(&response, media);
            (status, Json(body)).into_response()
        }
        Err(_) => failure(
            &state.metrics,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::LimitExceeded,
            format!(
                "the request took longer than {} ms",
                state.limits.request_timeout_ms
            ),
        ),
    };
    if let Ok(value) = request_id.parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    with_media(response, media)
}

#[derive(serde::Deserialize)]
struct Period {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
}

/// An SMS gateway's delivery report (signed with the tenant's SMS key; docs/campaigns.md).
/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// An e-mail's open pixel (docs/campaigns.md#channels): always the image, the open
/// recorded for a known tenant's message.
async fn email_opened(
    State(state): State<AppState>,
    axum::extract::Path((tenant, message)): axum::extract::Path<(String, String)>,
) -> Response {
    if state.directory.tenant(&tenant).is_some()
        && let Err(e) = shoal_campaigns::track::email_opened(&state.db, &tenant, &message).await
    {
        tracing::warn!(tenant, error = %e, "e-mail open not recorded");
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response()
}

/// A tracked e-mail link: redirected (302) to the link when it is one the message holds,
/// the click recorded; 404 otherwise (the host is nobody's open redirect).
async fn email_clicked(
    State(state): State<AppState>,
    axum::extract::Path((tenant, message, link)): axum::extract::Path<(String, String, String)>,
) -> Response {
    use base64::Engine;
    let not_found = || {
        failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such link",
        )
    };
    let Some(link) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(link.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return not_found();
    };
    if state.directory.tenant(&tenant).is_none() {
        return not_found();
    }
    match shoal_campaigns::track::email_clicked(&state.db, &tenant, &message, &link).await {
        Ok(Some(to)) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, to),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::warn!(tenant, error = %e, "e-mail click not recorded");
            not_found()
        }
    }
}

async fn sms_receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such tenant",
        );
    };
    let signed = standard_webhook(&headers);
    match shoal_campaigns::track::sms_receipt(&state.db, tenant, signed, &body).await {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(shoal_campaigns::track::ReportRefused::NoChannel)) => failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the tenant has no SMS channel",
        ),
        Ok(Err(shoal_campaigns::track::ReportRefused::Invalid(why))) => failure(
            &state.metrics,
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            why,
        ),
        Err(e) => failure(
            &state.metrics,
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        ),
    }
}

/// The Standard Webhooks headers of a signed request: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature` (empty when absent: the check then refuses).
fn standard_webhook(headers: &HeaderMap) -> (&str, &str, &str) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    )
}

/// A ticket another system opens (`POST /tickets/<tenant>/inbound`), signed with the key of
/// `tickets.inbound_secret_env` as Standard Webhooks says. The body:
/// `{"type", "subject", "body"?, "priority"?, "impact"?, "channel"?, "fields"?,
/// "customerId"? | "identity"?: {"channel", "externalId"}}`. 201 with the ticket's id; the
/// same `webhook-id` again answers 200 with the same id (nothing opened twice).
async fn inbound_ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let refuse = |status, code, message: String| failure(&state.metrics, status, code, message);
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such tenant".into(),
        );
    };
    let secret = match tenant.tickets.inbound_secret_env.as_deref() {
        Some(var) => shoal_tickets::inbound_secret(var),
        None => Err("the tenant takes no inbound tickets (tickets.inbound_secret_env)".into()),
    };
    let secret = match secret {
        Ok(s) => s,
        Err(why) => {
            // the operator's log says which; the caller learns nothing of the set-up
            tracing::warn!(tenant = %tenant.id, %why, "inbound ticket refused");
            return refuse(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "this tenant takes no inbound tickets".into(),
            );
        }
    };
    let signed = standard_webhook(&headers);
    let id = signed.0;
    let now = shoal_base::storage::time::now().timestamp();
    if let Err(why) = shoal_sop::channels::gateway::verify_standard(&secret, signed, &body, now) {
        state.supervision.count("tickets.inbound", "refused");
        return refuse(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, why);
    }
    let input: shoal_tickets::inbound::Inbound = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                format!("the body is not a ticket: {e}"),
            );
        }
    };
    match shoal_tickets::inbound::open(&state.db, tenant, id, input).await {
        Ok((ticket, fresh)) => (
            if fresh {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(serde_json::json!({ "id": ticket })),
        )
            .into_response(),
        Err(e) => domain_failure(&state, e, None),
    }
}

/// A customer's satisfaction survey (`GET /surveys/<tenant>/<token>`, the link the
/// `ticket.survey_ready` change carries): its questions, and whether it was answered.
async fn survey_questions(
    State(state): State<AppState>,
    axum::extract::Path((tenant, token)): axum::extract::Path<(String, String)>,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such survey",
        );
    };
    match shoal_tickets::surveys::by_token(&state.db, &tenant.id, &token).await {
        Ok(s) => Json(serde_json::json!({
            "questions": s.survey.questions,
            "answered": s.answered_at.is_some(),
        }))
        .into_response(),
        Err(e) => domain_failure(&state, e, Some("no such survey")),
    }
}

/// Answers a satisfaction survey (`POST /surveys/<tenant>/<token>`, body
/// `{"answers": {"<question>": …}}`), once: 200; 400 naming each wrong answer (or `token`
/// when it was answered already); 404 for an unknown token.
async fn survey_answers(
    State(state): State<AppState>,
    axum::extract::Path((tenant, token)): axum::extract::Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such survey",
        );
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        answers: serde_json::Map<String, serde_json::Value>,
    }
    let answers = match serde_json::from_slice::<Body>(&body) {
        Ok(b) => b.answers,
        Err(e) => {
            return failure(
                &state.metrics,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                format!("the body is not {{\"answers\": {{…}}}}: {e}"),
            );
        }
    };
    let actor = shoal_crm::tenancy::Actor::system(tenant, "customer");
    match shoal_tickets::surveys::answer(&state.db, &actor, &token, &answers).await {
        Ok(s) => Json(serde_json::json!({ "answered": true, "rating": s.rating })).into_response(),
        Err(e) => domain_failure(&state, e, Some("no such survey")),
    }
}

/// A domain error as an HTTP answer: 404, 500 (its detail in the log only) or 400 naming
/// every wrong field; `not_found` replaces a NOT_FOUND's message (not to tell what exists).
fn domain_failure(
    state: &AppState,
    e: shoal_base::error::Error,
    not_found: Option<&str>,
) -> Response {
    let code = e.code();
    let status = match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = match (&e, code, not_found) {
        (_, ErrorCode::Internal, _) => "internal error".to_owned(),
        (_, ErrorCode::NotFound, Some(m)) => m.to_owned(),
        (shoal_base::error::Error::Invalid(list), ..) => list
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => e.to_string(),
    };
    failure(&state.metrics, status, code, message)
}

/// `GET /imports/<job>/errors.csv` with the API key or a session: the job's refused rows as
/// kept (the first 1000, in row order), as `row,column,reason`, for the readers of import
/// jobs (scope `all` on customers, no field masked: the reasons quote the values).
async fn import_errors_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(job): axum::extract::Path<String>,
) -> Response {
    let actor = match reader(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let found = async {
        shoal_data::import::job::require_reader(&actor)?;
        shoal_data::import::job::get(&state.db, actor.tenant_id(), &job).await?;
        shoal_data::import::job::errors(&state.db, actor.tenant_id(), &job, 1000).await
    }
    .await;
    match found {
        Ok(errors) => {
            let mut out = shoal_base::csv_out::line(&["row", "column", "reason"]);
            for e in &errors {
                out.push_str(&shoal_base::csv_out::line(&[
                    e.row.to_string().as_str(),
                    e.column.as_str(),
                    e.reason.as_str(),
                ]));
            }
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                out,
            )
                .into_response()
        }
        Err(e) => {
            let code = e.code();
            let status = match code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let message = if code == ErrorCode::Internal {
                "internal error".to_owned()
            } else {
                e.to_string()
            };
            failure(&state.metrics, status, code, message)
        }
    }
}

/// `GET /statements/<participant>.csv?from=<RFC 3339>&to=<RFC 3339>` with the API key or a
/// session.
async fn statement_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
    period: Result<axum::extract::Query<Period>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let actor = match reader(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let Some(participant) = file.strip_suffix(".csv") else {
        return failure(
            &state.metrics,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "statements are served as <participant>.csv",
        );
    };
    let Ok(axum::extract::Query(period)) = period else {
        return failure(
            &state.metrics,
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "give ?from=<RFC 3339>&to=<RFC 3339>",
        );
    };
    match shoal_settlement::statement_for(&state.db, &actor, participant, period.from, period.to)
        .await
    {
        Ok(s) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            shoal_settlement::statement_csv(&s),
        )
            .into_response(),
        Err(e) => {
            let status = match e.code() {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let code = e.code();
            let message = if code == ErrorCode::Internal {
                "internal error".to_owned()
            } else {
                e.to_string()
            };
            failure(&state.metrics, status, code, message)
        }
    }
}

/// GraphQL over WebSocket (`graphql-ws` and `graphql-transport-ws`). The API key comes in
/// the `Authorization` header of the upgrade request or in the `connection_init` payload
/// (`{"Authorization": "Bearer <api key>"}`). A signed-in browser sends its session cookie
/// with the upgrade and repeats its CSRF token in the payload (`{"csrfToken": "…"}`: a page
/// of another site cannot); the socket closes within [`SESSION_RECHECK`] of the session
/// ending (signed out, ended everywhere, over).
async fn subscriptions(
    State(state): State<AppState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = authenticate(&state.directory, &headers).ok();
    let session = match super::sign_in::session_for_socket(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let request = request_id(&headers);
    let state = state.clone();
    let schema = state.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let by_session = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let init_state = state.clone();
            let init_session = session.clone();
            let init_by_session = by_session.clone();
            let served = GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let state = init_state;
                    let key = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(k).and_then(|v| v.as_str()))
                        .and_then(bearer);
                    let principal = match (key, from_header, init_session) {
                        (Some(key), _, _) => state.directory.authenticate(key),
                        (None, Some(principal), _) => Some(principal),
                        (None, None, Some((session, _))) => {
                            let csrf = payload
                                .get("csrfToken")
                                .and_then(|v| v.as_str())
                                .unwrap_or("");
                            if !shoal_crm::credentials::sessions::csrf_matches(&session, csrf) {
                                return Err(async_graphql::Error::new(
                                    "FORBIDDEN: a session's socket repeats its CSRF token in the payload (csrfToken)",
                                ));
                            }
                            init_by_session.store(true, std::sync::atomic::Ordering::SeqCst);
                            Some(session.principal)
                        }
                        (None, None, None) => None,
                    };
                    let principal = principal.ok_or_else(|| {
                        async_graphql::Error::new("UNAUTHENTICATED: missing or invalid API key (or session)")
                    })?;
                    let sensitive = state.host.sensitive_fields(&principal.tenant.id);
                    let actor = principal
                        .resolve(&state.db, sensitive, request)
                        .await
                        .map_err(|_| {
                            async_graphql::Error::new("INTERNAL: cannot load permissions")
                        })?;
                    let mut data = Data::default();
                    data.insert(actor);
                    Ok(data)
                })
                .serve();
            let Some((_, cookie)) = session else {
                served.await;
                return;
            };
            // a socket opened by a session lives as long as the session does
            let ended = async {
                loop {
                    tokio::time::sleep(SESSION_RECHECK).await;
                    if !by_session.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    match shoal_crm::credentials::sessions::find(
                        &state.db,
                        &state.directory,
                        &cookie,
                    )
                    .await
                    {
                        Ok(Some(_)) => {}
                        Ok(None) => return,
                        Err(e) => tracing::warn!(error = %e, "re-reading a socket's session failed"),
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = ended => {}
            }
        })
}

/// How often a socket opened by a session checks that the session still lives.
pub const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

// Inbound connectors (`shoal-connectors`): each endpoint checks the signature, stores the
// delivery and answers at once; the connector intake does the work.
//
// - `GET /connectors/<tenant>/wecom/<app>` — WeCom's URL check: the decrypted `echostr`;
// - `POST /connectors/<tenant>/wecom/<app>` — a WeCom event: `success` (200), also for a
//   delivery seen before;
// - `POST /connectors/<tenant>/hooks/<name>` — a signed JSON webhook: 202, also for a
//   `webhook-id` seen before (`{"duplicate": true}`).
//
// A bad signature is 401 and counted (`shoal_background_work_total{work="connectors.wecom",
// outcome="bad_signature"}`); an unknown tenant, app or webhook 404.

fn connector_refused(state: &AppState, work: &str, e: ReceiveError) -> Response {
    let (status, code, message) = match e {
        ReceiveError::NotFound => (
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such connector".to_owned(),
        ),
        ReceiveError::Unauthenticated(why) => {
            state.supervision.count(work, "bad_signature");
            (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, why)
        }
        ReceiveError::BadRequest(why) => {
            state.supervision.count(work, "bad_request");
            (StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, why)
        }
        ReceiveError::Storage(e) => {
            let reference = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(%reference, error = %e, work, "storing a connector delivery failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("internal error (reference {reference})"),
            )
        }
    };
    failure(&state.metrics, status, code, message)
}

/// WeCom's URL check.
async fn connector_wecom_check(
    State(state): State<AppState>,
    axum::extract::Path((tenant, app)): axum::extract::Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<receive::WecomQuery>,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return connector_refused(&state, "connectors.wecom", ReceiveError::NotFound);
    };
    match receive::wecom_check(tenant, &app, &q) {
        Ok(echo) => echo.into_response(),
        Err(e) => connector_refused(&state, "connectors.wecom", e),
    }
}

/// A WeCom event delivery.
async fn connector_wecom_event(
    State(state): State<AppState>,
    axum::extract::Path((tenant, app)): axum::extract::Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<receive::WecomQuery>,
    body: axum::body::Bytes,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return connector_refused(&state, "connectors.wecom", ReceiveError::NotFound);
    };
    match receive::wecom_event(&state.db, tenant, &app, &q, &body).await {
        Ok(fresh) => {
            state.supervision.count(
                "connectors.wecom",
                if fresh { "received" } else { "duplicate" },
            );
            "success".into_response()
        }
        Err(e) => connector_refused(&state, "connectors.wecom", e),
    }
}

/// A signed JSON webhook.
async fn connector_hook(
    State(state): State<AppState>,
    axum::extract::Path((tenant, name)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(tenant) = state.directory.tenant(&tenant) else {
        return connector_refused(&state, "connectors.hooks", ReceiveError::NotFound);
    };
    let signed = standard_webhook(&headers);
    let now = shoal_base::storage::time::now().timestamp();
    match receive::hook(&state.db, tenant, &name, signed, &body, now).await {
        Ok(fresh) => {
            state.supervision.count(
                "connectors.hooks",
                if fresh { "received" } else { "duplicate" },
            );
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "duplicate": !fresh })),
            )
                .into_response()
        }
        Err(e) => connector_refused(&state, "connectors.hooks", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_with_a_reference() {
        let guard = PanicGuard {
            metrics: Arc::default(),
            supervision: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let items: Vec<u8> = Vec::new();
                    items[3].to_string() // an index out of bounds, as a bug would
                }),
            )
            .route("/fine", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(guard.clone(), catch_panic));
        let request = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request("/boom")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("internal error (reference "),
            "{message}"
        );
        assert!(
            !message.contains("index out of bounds"),
            "the cause stays in the log"
        );
        assert!(
            guard
                .supervision
                .render()
                .contains(r#"work="http.request",outcome="panicked"} 1"#)
        );
        let fine = app.oneshot(request("/fine")).await.unwrap();
        assert_eq!(fine.status(), StatusCode::OK, "the server goes on");
    }
}
