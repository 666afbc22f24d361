//! The error body every failed request answers with.

use serde::{Deserialize, Serialize};

use crate::policy::Refusal;

/// `{"error": {"code", "message", …}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `not_found`, `refused`, `set_aside`, …
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// For `refused`: each refused change with the policy rule that refused it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// For `set_aside`: the workflow rule that would set the action aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                refused: Vec::new(),
                rule: None,
            },
        }
    }
}
