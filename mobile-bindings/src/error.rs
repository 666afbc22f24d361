//! The one error type that crosses the FFI: a kind for programs and a message for people.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// The error every fallible call returns: one flat enum whose variant is the
/// kind (for programs) and whose message is a sentence (for people). UniFFI
/// passes it as `LianxinError.Refused(message)` and the like in Python,
/// `LianxinException.Refused` in Kotlin, `LianxinError.Refused(message:)` in Swift.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum LianxinError {
    /// An argument is malformed: an id, a text that is too long, an unknown category…
    #[error("{0}")]
    InvalidInput(String),
    /// No such document, entry or household in the local replica.
    #[error("{0}")]
    NotFound(String),
    /// The policy refused the edit (locally, before anything was sent); the
    /// message names the rule. The replica is unchanged.
    #[error("{0}")]
    Refused(String),
    /// No access token, or the server said the token is expired or revoked:
    /// sign in again, call `set_access_token`, then retry.
    #[error("{0}")]
    Unauthorized(String),
    /// The server could not be reached or the connection dropped; retry later.
    #[error("{0}")]
    Network(String),
    /// The server sent something this build does not understand, or an error frame.
    #[error("{0}")]
    Protocol(String),
    /// The local database failed (disk full, file damaged, another user's replica).
    #[error("{0}")]
    Storage(String),
    /// A bug: the library caught a panic. The replica stays usable.
    #[error("{0}")]
    Internal(String),
}

/// The kinds of [`LianxinError`], for matching in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    Refused,
    Unauthorized,
    Network,
    Protocol,
    Storage,
    Internal,
}

impl LianxinError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let m = message.into();
        match kind {
            ErrorKind::InvalidInput => LianxinError::InvalidInput(m),
            ErrorKind::NotFound => LianxinError::NotFound(m),
            ErrorKind::Refused => LianxinError::Refused(m),
            ErrorKind::Unauthorized => LianxinError::Unauthorized(m),
            ErrorKind::Network => LianxinError::Network(m),
            ErrorKind::Protocol => LianxinError::Protocol(m),
            ErrorKind::Storage => LianxinError::Storage(m),
            ErrorKind::Internal => LianxinError::Internal(m),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            LianxinError::InvalidInput(_) => ErrorKind::InvalidInput,
            LianxinError::NotFound(_) => ErrorKind::NotFound,
            LianxinError::Refused(_) => ErrorKind::Refused,
            LianxinError::Unauthorized(_) => ErrorKind::Unauthorized,
            LianxinError::Network(_) => ErrorKind::Network,
            LianxinError::Protocol(_) => ErrorKind::Protocol,
            LianxinError::Storage(_) => ErrorKind::Storage,
            LianxinError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LianxinError::InvalidInput(m)
            | LianxinError::NotFound(m)
            | LianxinError::Refused(m)
            | LianxinError::Unauthorized(m)
            | LianxinError::Network(m)
            | LianxinError::Protocol(m)
            | LianxinError::Storage(m)
            | LianxinError::Internal(m) => m,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        LianxinError::InvalidInput(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        LianxinError::NotFound(message.into())
    }
}

impl From<sync_core::SchemaError> for LianxinError {
    fn from(e: sync_core::SchemaError) -> Self {
        LianxinError::invalid(e.to_string())
    }
}

impl From<rusqlite::Error> for LianxinError {
    fn from(e: rusqlite::Error) -> Self {
        LianxinError::new(ErrorKind::Storage, format!("local database: {e}"))
    }
}

impl From<sync_core::policy::Refusal> for LianxinError {
    fn from(r: sync_core::policy::Refusal) -> Self {
        LianxinError::new(ErrorKind::Refused, format!("rule {}: {}", r.rule, r.detail))
    }
}

impl From<sync_core::batch::BatchError> for LianxinError {
    fn from(e: sync_core::batch::BatchError) -> Self {
        match &e {
            sync_core::batch::BatchError::Peer { code, .. } if code == "unauthorized" => {
                LianxinError::new(ErrorKind::Unauthorized, e.to_string())
            }
            _ => LianxinError::new(ErrorKind::Protocol, e.to_string()),
        }
    }
}

pub type Result<T, E = LianxinError> = std::result::Result<T, E>;

/// Runs `f`, turning a panic into an [`ErrorKind::Internal`] error, so that
/// no panic unwinds into the foreign caller.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(LianxinError::new(
                ErrorKind::Internal,
                format!("internal error (please report): {what}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let e = guard::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.message().contains("boom"), "{e}");
    }

    #[test]
    fn the_variant_is_the_kind_and_the_display_form_the_message() {
        let e = LianxinError::new(ErrorKind::Refused, "rule role-required: officers only");
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert_eq!(e.to_string(), "rule role-required: officers only");
    }
}
