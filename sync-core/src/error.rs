//! Errors of sync-core's typed document access.

use thiserror::Error;

/// A document, entry or value does not have the shape the schema requires.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchemaError {
    #[error("invalid {kind} {value:?}: ids are 1-128 ASCII letters, digits, '-', '_', '.' or ':'")]
    InvalidId { kind: &'static str, value: String },
    #[error("missing field {0}")]
    Missing(String),
    #[error("field {field} has the wrong type: expected {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("field {field} has an invalid value: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("document is a {found}, expected a {expected}")]
    WrongKind { expected: &'static str, found: String },
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(i64),
    #[error("automerge: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for SchemaError {
    fn from(e: automerge::AutomergeError) -> Self {
        SchemaError::Automerge(e.to_string())
    }
}
