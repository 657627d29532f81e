//! Domain errors → GraphQL errors with `extensions.code`. Internal causes are logged with a
//! reference that the client receives instead of the cause.

use async_graphql::{ErrorExtensionValues, ServerError, Value};

use super::metrics::Metrics;
use shoal_base::error::{Error, ErrorCode};

/// `.gql()` on a domain result: the one way resolvers return domain errors.
pub trait ErrorExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> ErrorExt<T> for Result<T, Error> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}

pub fn to_graphql(e: Error) -> async_graphql::Error {
    let code = e.code();
    let message = match &e {
        Error::Storage(_) | Error::Internal(_) => {
            let reference = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(error = ?e, %reference, "internal error");
            format!("internal error (reference {reference})")
        }
        other => other.to_string(),
    };
    let mut err = async_graphql::Error::new(message);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    match e {
        Error::Invalid(fields) => {
            if let Some(first) = fields.first() {
                ext.set("field", first.field.clone());
            }
            let list = fields
                .into_iter()
                .map(|f| {
                    let mut m = async_graphql::indexmap::IndexMap::new();
                    m.insert(async_graphql::Name::new("field"), Value::from(f.field));
                    m.insert(async_graphql::Name::new("message"), Value::from(f.message));
                    Value::Object(m)
                })
                .collect::<Vec<_>>();
            ext.set("errors", Value::List(list));
        }
        Error::LimitExceeded { field, .. } => ext.set("field", field),
        Error::Plugin { module, kind, .. } => {
            ext.set("module", module);
            ext.set("kind", kind);
        }
        _ => {}
    }
    err.extensions = Some(ext);
    err
}

/// A GraphQL error built outside any resolver (authentication, limits, timeouts).
pub fn request_error(code: ErrorCode, message: impl Into<String>) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    e.extensions = Some(ext);
    e
}

/// Gives every error a code: errors raised by async-graphql itself (syntax, validation,
/// limits, argument coercion) carry none. Counts each code in the metrics.
pub fn classify(errors: &mut [ServerError], metrics: &Metrics) {
    for e in errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let code = if e.message.starts_with("Query is nested too deep")
                || e.message.starts_with("Query is too complex")
            {
                ErrorCode::LimitExceeded
            } else if e.path.is_empty()
                || e.message.starts_with("Failed to parse")
                || e.message.starts_with("Invalid value")
            {
                ErrorCode::BadUserInput
            } else {
                ErrorCode::Internal
            };
            e.extensions
                .get_or_insert_with(ErrorExtensionValues::default)
                .set("code", code.as_str());
        }
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|v| v.to_string().trim_matches('"').to_owned())
            .unwrap_or_default();
        metrics.error(&code);
    }
}
