//! The HTTP error type: a status code and a JSON body `{"error":{"code","message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::auth::AuthError;
use crate::storage::StorageError;

/// Every error an HTTP handler returns.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("the request took too long")]
    Timeout,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: i64 },
    /// Expected failures of the auth flow, with their own codes.
    #[error("{message}")]
    Auth {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The request conflicts with what is stored (e.g. a document id already taken).
    #[error("{0}")]
    Conflict(String),
    /// The workflow would set the requested action aside against the
    /// document as it stands (`PetitionAction::apply_online`): nothing is stored.
    #[error("{message}")]
    SetAside { rule: String, message: String },
    /// Policy refused the change(s) the request would have written.
    #[error("{}", refused_summary(.0))]
    Refused(Vec<sync_core::policy::Refusal>),
    /// A failure that is ours, not the client's: logged in full, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

fn refused_summary(refusals: &[sync_core::policy::Refusal]) -> String {
    refusals
        .iter()
        .map(|r| format!("refused by rule {}: {}", r.rule, r.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Refused(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) | ApiError::SetAside { .. } => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Auth { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Timeout => "timeout",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Refused(_) => "refused",
            ApiError::Conflict(_) => "conflict",
            ApiError::SetAside { .. } => "set_aside",
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Auth { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    fn auth(status: StatusCode, code: &'static str, e: &AuthError) -> Self {
        ApiError::Auth {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = sync_core::wire::ErrorBody::new(self.code(), message);
        match &self {
            ApiError::Refused(refusals) => body.error.refused = refusals.clone(),
            ApiError::SetAside { rule, .. } => body.error.rule = Some(rule.clone()),
            _ => {}
        }
        let body = Json(body);
        let mut response = (self.status_code(), body).into_response();
        if let ApiError::RateLimited { retry_after_secs, .. } = self
            && let Ok(value) = retry_after_secs.to_string().parse()
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use StatusCode as S;
        match &e {
            AuthError::InvalidCredentials => ApiError::auth(S::UNAUTHORIZED, "invalid_credentials", &e),
            AuthError::Disabled => ApiError::auth(S::FORBIDDEN, "account_disabled", &e),
            AuthError::InvalidToken => ApiError::auth(S::UNAUTHORIZED, "invalid_token", &e),
            AuthError::TokenExpired => ApiError::auth(S::UNAUTHORIZED, "token_expired", &e),
            AuthError::TokenRevoked => ApiError::auth(S::UNAUTHORIZED, "token_revoked", &e),
            AuthError::TokenRefused(_) => ApiError::auth(S::UNAUTHORIZED, "invalid_token", &e),
            AuthError::RefreshInvalid => ApiError::auth(S::UNAUTHORIZED, "refresh_invalid", &e),
            AuthError::RefreshReused => ApiError::auth(S::UNAUTHORIZED, "refresh_reused", &e),
            AuthError::InvalidPhone => ApiError::auth(S::BAD_REQUEST, "invalid_phone", &e),
            AuthError::LoginThrottled { retry_after_secs } => ApiError::RateLimited {
                message: e.to_string(),
                retry_after_secs: *retry_after_secs,
            },
            AuthError::OtpRateLimited { retry_after_secs } => ApiError::RateLimited {
                message: e.to_string(),
                retry_after_secs: *retry_after_secs,
            },
            AuthError::OtpWrong { .. } => ApiError::auth(S::UNAUTHORIZED, "otp_invalid", &e),
            AuthError::OtpAttemptsExceeded => ApiError::auth(S::UNAUTHORIZED, "otp_attempts_exceeded", &e),
            AuthError::OtpExpired => ApiError::auth(S::UNAUTHORIZED, "otp_expired", &e),
            AuthError::SignupClosed => ApiError::auth(S::FORBIDDEN, "signup_closed", &e),
            AuthError::UnknownUser(_) => ApiError::NotFound(e.to_string()),
            AuthError::Sms(_) => {
                tracing::error!(error = %e, "SMS delivery failed");
                ApiError::Auth {
                    status: S::BAD_GATEWAY,
                    code: "sms_unavailable",
                    message: "could not send the code; try again later".to_owned(),
                }
            }
            AuthError::Storage(_) | AuthError::Hash(_) | AuthError::Jwt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_are_generic() {
        let response = ApiError::Internal("db password is hunter2".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal server error");
    }

    #[test]
    fn unknown_user_and_bad_password_look_the_same() {
        let e = ApiError::from(AuthError::InvalidCredentials);
        assert_eq!(e.status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.code(), "invalid_credentials");
    }
}
