//! The API's operations, typed and callable without HTTP.
//!
//! Every endpoint of `/api/*` is one function here of the form
//! `async fn op(app: &AppState, who: &Principal, req: Req) -> Result<Resp, ApiError>`,
//! with request and response types from [`sync_core::wire`]. The axum
//! handlers in [`crate::http`] only extract the caller and the body, call the
//! operation and pick the status code; the staff console calls the same
//! functions directly. So whatever a page can do, the API can, with the same
//! checks and the same errors.
//!
//! Operations hold no rules of their own: who may do what and what a write
//! means are sync-core's (policy, workflow); writes go through
//! [`crate::docs::DocService`] like any CRDT client's changes; a document the
//! caller may not read is answered like a missing one (`ApiError::NotFound`).

pub mod account;
pub mod directory;
pub mod inbox;
pub mod notices;
pub mod org;
pub mod petitions;
pub mod reports;
pub mod rooms;
pub mod station;
pub mod units;

use sync_core::repo_protocol::DocumentId;

use crate::docs::{Applied, DocError};
use crate::error::ApiError;

/// The storage key of a document id given as `automerge:<id>` or bare bs58.
pub fn doc_key(id: &str) -> Result<String, ApiError> {
    let id = id.strip_prefix(sync_core::repo_protocol::URL_PREFIX).unwrap_or(id);
    id.parse::<DocumentId>()
        .map(|d| d.to_string())
        .map_err(|e| ApiError::BadRequest(format!("{id:?} is not a document id: {e}")))
}

pub(crate) fn doc_error(e: DocError) -> ApiError {
    match e {
        DocError::NotFound => ApiError::NotFound("no such document".into()),
        DocError::Forbidden(m) => ApiError::Forbidden(m),
        DocError::Schema(e) => ApiError::BadRequest(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Turns refusals into a 403 that names each refused change and its rule.
pub(crate) fn refused(applied: &Applied) -> Result<(), ApiError> {
    if applied.refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Refused(applied.refused.clone()))
    }
}

/// The longest idempotency key a client may send.
pub const MAX_CLIENT_KEY: usize = 64;

/// The mark an idempotent write stores for a client's key (the
/// `Idempotency-Key` header): per user and document, so two people's keys
/// never collide. Keys are 1 to 64 letters, digits, `-` or `_`.
pub(crate) fn client_mark(who: &sync_core::Principal, doc: &str, key: &str) -> Result<String, ApiError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_CLIENT_KEY
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_CLIENT_KEY} letters, digits, '-' or '_'"
        )));
    }
    Ok(format!("client:{}:{doc}:{key}", who.user))
}

/// A page size from a request: `default` when absent, within `1..=max`.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}
