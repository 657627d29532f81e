//! GraphQL over HTTP (the GraphQL Foundation's spec, checked by the reference audit
//! `graphql-http` in `tests/e2e/http.rs`): which media type answers, how a `POST` body or a
//! `GET` query string becomes a request, and which status a response carries.
//!
//! - `POST /graphql` takes `Content-Type: application/json` (UTF-8), an object with a string
//!   `query` and optional `operationName` (string), `variables` and `extensions` (objects);
//!   `null` stands for absent. Anything else is a 4xx naming the parameter.
//! - `GET /graphql?query=…&variables=<JSON>` runs queries only: a mutation is `405` with
//!   `Allow: POST` (a GET may be replayed, prefetched or cached).
//! - `Accept: application/graphql-response+json` gets that media type and a `400` without a
//!   `data` entry when the document cannot run (syntax, validation, variables); plain
//!   `application/json` (or `*/*`, or no `Accept`) gets `200` for those, as older clients
//!   expect. Errors raised while running keep `200` with `data` in both.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};

/// The media type of a GraphQL response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: status codes tell request errors apart.
    GraphqlResponse,
    /// `application/json`: the legacy type, `200` for every executed request.
    Json,
}

impl MediaType {
    /// The `Content-Type` value written.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        }
    }

    /// The type the client's `Accept` prefers (ties go to `application/graphql-response+json`);
    /// `None` when it accepts neither (answered `406`). No `Accept` means `application/json`.
    pub fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
        let Some(accept) = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        else {
            return Some(MediaType::Json);
        };
        let (mut graphql, mut json) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match kind.as_str() {
                "application/graphql-response+json" => graphql = graphql.max(q),
                // a wildcard answers with the type every client understands
                "application/json" | "application/*" | "*/*" => json = json.max(q),
                _ => {}
            }
        }
        if graphql > 0.0 && graphql >= json {
            Some(MediaType::GraphqlResponse)
        } else if json > 0.0 {
            Some(MediaType::Json)
        } else {
            None
        }
    }
}

/// Why a request could not become a GraphQL request: answered with this status and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// Checks that a `POST` body is declared as UTF-8 JSON.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported = |message: String| Refusal {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unsupported("a POST needs `Content-Type: application/json` (none was sent)".into())
        })?;
    let mut parts = value.split(';');
    let kind = parts.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("application/json") {
        return Err(unsupported(format!(
            "a POST needs `Content-Type: application/json`, not `{kind}`"
        )));
    }
    for param in parts {
        if let Some((name, charset)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
        {
            let charset = charset.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") {
                return Err(unsupported(format!(
                    "the body must be UTF-8, not `{charset}`"
                )));
            }
        }
    }
    Ok(())
}

/// A `POST` body: a JSON object with the parameters of the spec.
pub fn from_body(bytes: &[u8]) -> Result<async_graphql::Request, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Refusal::bad(format!(
            "the body is not a GraphQL request ({{\"query\": …, \"variables\": …}}): {e}"
        ))
    })?;
    let serde_json::Value::Object(params) = value else {
        return Err(Refusal::bad(
            "the body must be a JSON object ({\"query\": …, \"variables\": …})",
        ));
    };
    from_params(params)
}

/// A `GET` query string: `query`, and `operationName`, `variables` and `extensions` with
/// the last two as JSON text.
pub fn from_query_string(
    params: &HashMap<String, String>,
) -> Result<async_graphql::Request, Refusal> {
    let mut object = serde_json::Map::new();
    for (name, value) in params {
        let value = match name.as_str() {
            "query" | "operationName" => serde_json::Value::String(value.clone()),
            "variables" | "extensions" => serde_json::from_str(value)
                .map_err(|e| Refusal::bad(format!("`{name}` must be a JSON object: {e}")))?,
            _ => continue,
        };
        object.insert(name.clone(), value);
    }
    from_params(object)
}

fn from_params(
    mut params: serde_json::Map<String, serde_json::Value>,
) -> Result<async_graphql::Request, Refusal> {
    use serde_json::Value;
    match params.get("query") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => {
            return Err(Refusal::bad(
                "`query` is missing: a GraphQL document is needed",
            ));
        }
        Some(other) => {
            return Err(Refusal::bad(format!(
                "`query` must be a string, not {}",
                kind(other)
            )));
        }
    }
    for (name, expects_object) in [
        ("operationName", false),
        ("variables", true),
        ("extensions", true),
    ] {
        match params.get(name) {
            None => {}
            Some(Value::Null) => {
                params.remove(name);
            }
            Some(Value::String(_)) if !expects_object => {}
            Some(Value::Object(_)) if expects_object => {}
            Some(other) => {
                let wanted = if expects_object {
                    "an object"
                } else {
                    "a string"
                };
                return Err(Refusal::bad(format!(
                    "`{name}` must be {wanted} or null, not {}",
                    kind(other)
                )));
            }
        }
    }
    serde_json::from_value(Value::Object(params))
        .map_err(|e| Refusal::bad(format!("the request's parameters are not valid: {e}")))
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Whether the operation the request selects is a query (what a `GET` may run). A document
/// that does not parse, or names no operation it holds, counts as a query: running it answers
/// with the proper error.
pub fn selects_query(request: &mut async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return true;
    };
    let ty = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    };
    ty.is_none_or(|ty| ty == OperationType::Query)
}

/// Whether a response is a request error: the document never ran (syntax, validation,
/// variable coercion, limits), so there is no `data` and every error is pathless. An error
/// raised while running a field always carries the field's path.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The status and JSON body of an executed request, in the negotiated media type.
pub fn render(
    response: &async_graphql::Response,
    media: MediaType,
) -> (StatusCode, serde_json::Value) {
    let mut body = serde_json::to_value(response).unwrap_or_else(|_| serde_json::json!({}));
    if !is_request_error(response) {
        return (StatusCode::OK, body);
    }
    if let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    let status = match media {
        MediaType::GraphqlResponse => StatusCode::BAD_REQUEST,
        MediaType::Json => StatusCode::OK,
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn accept_picks_the_media_type() {
        assert_eq!(
            MediaType::negotiate(&HeaderMap::new()),
            Some(MediaType::Json)
        );
        assert_eq!(MediaType::negotiate(&accept("*/*")), Some(MediaType::Json));
        assert_eq!(
            MediaType::negotiate(&accept("application/graphql-response+json")),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            MediaType::negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            MediaType::negotiate(&accept(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(MediaType::Json)
        );
        assert_eq!(MediaType::negotiate(&accept("text/html")), None);
        assert_eq!(MediaType::negotiate(&accept("application/json;q=0")), None);
    }

    #[test]
    fn a_body_names_the_parameter_it_refuses() {
        let refused = |body: &str| from_body(body.as_bytes()).unwrap_err().message;
        assert!(refused(r#"{"qeury": "{ a }"}"#).contains("`query` is missing"));
        assert!(refused(r#"{"query": 0}"#).contains("`query` must be a string, not a number"));
        assert!(refused(r#"{"query": "{a}", "variables": "x"}"#).contains("`variables`"));
        assert!(refused(r#"{"query": "{a}", "operationName": false}"#).contains("`operationName`"));
        assert!(refused(r#"{"query": "{a}", "extensions": []}"#).contains("`extensions`"));
        assert!(refused("[]").contains("JSON object"));
        assert!(refused("{ \"not a JSON").contains("not a GraphQL request"));
        let request = from_body(
            br#"{"query": "{a}", "variables": null, "operationName": null, "extensions": null}"#,
        )
        .unwrap();
        assert_eq!(request.query, "{a}");
        assert_eq!(request.operation_name, None);
    }

    #[test]
    fn a_content_type_must_be_utf8_json() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            check_content_type(&headers)
        };
        assert!(with("application/json").is_ok());
        assert!(with("Application/JSON; charset=UTF-8").is_ok());
        assert_eq!(
            with("text/plain").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert!(with("application/json; charset=latin1").is_err());
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn only_queries_pass_as_gets() {
        let selects = |query: &str, name: Option<&str>| {
            let mut request = async_graphql::Request::new(query);
            if let Some(name) = name {
                request = request.operation_name(name);
            }
            selects_query(&mut request)
        };
        assert!(selects("{ a }", None));
        assert!(!selects("mutation { a }", None));
        assert!(!selects("query A { a } mutation B { b }", Some("B")));
        assert!(selects("query A { a } mutation B { b }", Some("A")));
        assert!(!selects("subscription { a }", None));
        assert!(
            selects("{", None),
            "a syntax error is answered by running it"
        );
    }
}
