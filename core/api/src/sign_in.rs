//! Staff sign-in over HTTP (docs/console.md): `/auth/sign-in`, `/auth/session`,
//! `/auth/sign-out`, `/auth/sign-out-everywhere`, the session cookie and the CSRF check, and
//! the GraphQL mutations that set passwords and end sessions.
//!
//! A session is carried by `shoal_session` (httpOnly, `SameSite=Strict`, `Secure` when the
//! public URL is https); `shoal_csrf` (readable by the page) holds the token every request
//! that may change something repeats in `X-CSRF-Token`. API keys (`Authorization: Bearer`)
//! need neither and take precedence.

use async_graphql::{Context, ID, Object};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{ErrorExt, actor, db, errors::request_error, state::AppState};
use shoal_base::error::ErrorCode;
use shoal_crm::{
    credentials::{
        addresses,
        sessions::{self, Session, SignInError},
    },
    tenancy::Principal,
};

/// The cookie holding the session.
pub const SESSION_COOKIE: &str = "shoal_session";
/// The cookie holding the CSRF token, for the page's scripts.
pub const CSRF_COOKIE: &str = "shoal_csrf";
/// The header a cookie-authenticated request repeats the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the cookie `name`, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v.trim()))
}

/// Why a session cookie does not identify a caller.
pub enum Refused {
    /// No such session, or it is over.
    Over,
    /// A request that may change something without the session's CSRF token.
    Csrf,
    Internal,
}

/// The live session the request's cookie names, with the cookie's value: `None` without a
/// cookie.
async fn session_of<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Option<Result<(Session, &'h str), Refused>> {
    let value = cookie(headers, SESSION_COOKIE)?;
    Some(
        match sessions::find(&state.db, &state.directory, value).await {
            Ok(Some(session)) => Ok((session, value)),
            Ok(None) => Err(Refused::Over),
            Err(e) => {
                tracing::error!(error = %e, "reading a session failed");
                Err(Refused::Internal)
            }
        },
    )
}

/// The live session a WebSocket upgrade's cookie names, with the cookie's value: `None`
/// without a cookie or when it names no live session (the socket may still bring an API key
/// in its payload).
pub async fn session_for_socket(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Session, String)>, Response> {
    match session_of(state, headers).await {
        None => Ok(None),
        Some(Ok((session, cookie))) => Ok(Some((session, cookie.to_owned()))),
        Some(Err(Refused::Internal)) => Err(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )),
        Some(Err(_)) => Ok(None),
    }
}

/// Whether the request repeats the session's CSRF token.
fn csrf_presented(session: &Session, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    sessions::csrf_matches(session, presented)
}

/// The principal the request's session cookie names, if it carries one: `None` without a
/// cookie. With `check_csrf`, the request must repeat the session's CSRF token.
pub async fn from_cookie(
    state: &AppState,
    headers: &HeaderMap,
    check_csrf: bool,
) -> Option<Result<Principal, Refused>> {
    Some(session_of(state, headers).await?.and_then(|(session, _)| {
        if check_csrf && !csrf_presented(&session, headers) {
            Err(Refused::Csrf)
        } else {
            Ok(session.principal)
        }
    }))
}

fn answer(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let errors = [request_error(code, message)];
    (status, Json(json!({ "errors": errors }))).into_response()
}

fn secure(state: &AppState, tenant: &str) -> bool {
    state
        .directory
        .tenant(tenant)
        .and_then(|t| t.host.public_url.as_deref())
        .is_some_and(|u| u.starts_with("https://"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, http_only: bool, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Sets (or, with `max_age` 0 and empty values, clears) the session and CSRF cookies.
fn set_cookies(response: &mut Response, session: &str, csrf: &str, max_age: i64, secure: bool) {
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, session, max_age, true, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CSRF_COOKIE, csrf, max_age, false, secure),
    );
}

fn session_body(
    state: &AppState,
    session_user: &str,
    tenant: &str,
    csrf: &str,
    expires: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let found = state.directory.tenant(tenant);
    let name = found
        .and_then(|t| t.users.get(session_user))
        .map(|u| u.name.clone());
    json!({
        "tenant": tenant,
        "timeZone": found.map(|t| t.time_zone.name()),
        "user": { "id": session_user, "name": name },
        "csrfToken": csrf,
        "expiresAt": expires.to_rfc3339(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    tenant: String,
    /// A user id or e-mail address.
    login: String,
    password: String,
}

/// The client's address as sign-in counts it: from `server.client_address_header` when set
/// (a proxy's header; a value that is no address counts as none), else the connection's.
fn client_address(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<String> {
    let ip = match &state.client_address_header {
        Some(name) => headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            // a list (`client, proxy1`): the first is the client's
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok()),
        None => extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
    };
    ip.map(addresses::key)
}

/// `POST /auth/sign-in` with `{"tenant", "login", "password"}`.
pub async fn sign_in(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // JSON only: a cross-site form cannot send it without a preflight (no login CSRF)
    if let Err(refusal) = super::over_http::check_content_type(&headers) {
        return answer(refusal.status, ErrorCode::BadUserInput, refusal.message);
    }
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::LimitExceeded,
            "the body exceeds 16 KiB",
        );
    };
    let input: SignIn = match serde_json::from_slice(&bytes) {
        Ok(input) => input,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                format!("the body must be {{\"tenant\", \"login\", \"password\"}}: {e}"),
            );
        }
    };
    let wrong = || {
        answer(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "wrong user or password",
        )
    };
    let Some(tenant) = state.directory.tenant(&input.tenant).cloned() else {
        // as slow as a known tenant: the decoy hash is verified all the same
        sessions::decoy_verify(input.password).await;
        return wrong();
    };
    let address = client_address(&state, &headers, &parts.extensions);
    let client = sessions::Client {
        address: address.as_deref(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    match sessions::sign_in(&state.db, &tenant, &input.login, &input.password, client).await {
        Ok(opened) => {
            let secure = secure(&state, &tenant.id);
            let age = sessions::LIFETIME.num_seconds();
            let body = session_body(
                &state,
                &opened.user_id,
                &tenant.id,
                &opened.csrf,
                opened.expires_at,
            );
            let mut response = (StatusCode::OK, Json(body)).into_response();
            set_cookies(&mut response, &opened.cookie, &opened.csrf, age, secure);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(SignInError::Wrong) => wrong(),
        Err(e @ (SignInError::Locked { until } | SignInError::AddressLimited { until })) => {
            let wait = (until - chrono::Utc::now()).num_seconds().max(1);
            let from = match e {
                SignInError::AddressLimited { .. } => " from this address",
                _ => "",
            };
            let mut response = answer(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::LimitExceeded,
                format!(
                    "too many failed sign-ins{from}: try again after {}",
                    until.to_rfc3339()
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(SignInError::Other(e)) => {
            tracing::error!(error = %e, "sign-in failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        }
    }
}

async fn current<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Result<(Session, &'h str), Response> {
    match session_of(state, headers).await {
        Some(Ok(found)) => Ok(found),
        None | Some(Err(Refused::Over | Refused::Csrf)) => Err(answer(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "not signed in (or the session is over)",
        )),
        Some(Err(Refused::Internal)) => Err(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )),
    }
}

/// `GET /auth/session`: who is signed in, and the CSRF token (for a page loaded afresh).
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current(&state, &headers).await {
        Ok((s, _)) => {
            let body = session_body(
                &state,
                &s.principal.user_id,
                &s.principal.tenant.id,
                &s.csrf,
                s.expires_at,
            );
            ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Err(response) => response,
    }
}

async fn sign_out_with(state: &AppState, headers: &HeaderMap, everywhere: bool) -> Response {
    let (session, value) = match current(state, headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !csrf_presented(&session, headers) {
        return answer(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "the X-CSRF-Token header is missing or wrong",
        );
    }
    let tenant = &session.principal.tenant.id;
    let ended = if everywhere {
        sessions::end_all(&state.db, tenant, &session.principal.user_id).await
    } else {
        sessions::end(&state.db, value).await.map(|()| 1)
    };
    match ended {
        Ok(ended) => {
            let secure = secure(state, tenant);
            let mut response = Json(json!({ "ended": ended })).into_response();
            set_cookies(&mut response, "", "", 0, secure);
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "signing out failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        }
    }
}

/// `POST /auth/sign-out`: ends this browser's session.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_out_with(&state, &headers, false).await
}

/// `POST /auth/sign-out-everywhere`: ends every session of the signed-in user.
pub async fn sign_out_everywhere(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_out_with(&state, &headers, true).await
}

/// Passwords and sessions of the tenant's staff.
#[derive(Default)]
pub struct SignInMutation;

#[Object]
impl SignInMutation {
    /// Sets a user's password for the console (argon2id; at least 10 characters). Users
    /// set their own with `currentPassword` (when they have one); action `administer` sets
    /// anyone's. Every session of the user ends; audited without the password.
    async fn set_user_password(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        password: String,
        current_password: Option<String>,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        shoal_crm::credentials::passwords::set(
            db(ctx),
            actor,
            &user_id,
            &password,
            current_password.as_deref(),
        )
        .await
        .gql()?;
        Ok(true)
    }

    /// Ends every console session of a user (signs them out everywhere): one's own, or
    /// anyone's with action `administer`. Answers how many ended; audited.
    async fn end_user_sessions(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<i64> {
        let actor = actor(ctx).gql()?;
        let ended = sessions::end_for(db(ctx), actor, &user_id).await.gql()?;
        Ok(i64::try_from(ended).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; shoal_session=t1.abc".parse().unwrap());
        headers.append(header::COOKIE, "shoal_csrf=xyz".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("t1.abc"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "shoal"), None);
    }
}
