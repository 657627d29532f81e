//! The error every domain operation returns, and the codes clients see.
//!
//! Domain modules return [`Error`]; only `api` turns it into a GraphQL error, using
//! [`Error::code`] for `extensions.code`. Internal causes are logged there, never sent.

use std::fmt;

/// A stable, client-visible error code (`extensions.code` in GraphQL responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadUserInput,
    NotFound,
    Unauthenticated,
    Forbidden,
    LimitExceeded,
    /// An industry module failed (trap, limit, invalid output); `extensions.kind` says how.
    PluginFailed,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::BadUserInput,
        ErrorCode::NotFound,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::LimitExceeded,
        ErrorCode::PluginFailed,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::PluginFailed => "PLUGIN_FAILED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one input field, e.g. `input.phones[1]`: `not a valid phone number`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is wrong; every problem found is listed with its field path.
    #[error("{}", describe_invalid(.0))]
    Invalid(Vec<FieldError>),
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    LimitExceeded { field: String, message: String },
    #[error("module `{module}` failed ({kind}): {message}")]
    Plugin {
        module: String,
        kind: &'static str,
        message: String,
    },
    #[error("storage failure")]
    Storage(#[from] sqlx::Error),
    #[error("internal failure: {0}")]
    Internal(String),
}

fn describe_invalid(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        many => format!(
            "{} invalid fields, first {}: {}",
            many.len(),
            many[0].field,
            many[0].message
        ),
    }
}

impl Error {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::BadUserInput,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            Error::Plugin { .. } => ErrorCode::PluginFailed,
            Error::Storage(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while validating an input, so the caller sees all of them at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn extend(&mut self, errors: Vec<FieldError>) {
        self.0.extend(errors);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was pushed, otherwise `Error::Invalid` with every problem.
    pub fn into_result<T>(self, value: T) -> Result<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::Invalid(self.0))
        }
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }
}
