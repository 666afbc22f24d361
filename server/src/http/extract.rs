//! Request extractors: the authenticated principal, and JSON bodies with our error shape.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sync_core::{Principal, UserId};

use crate::auth::{AccessClaims, AuthError};
use crate::error::ApiError;
use crate::state::AppState;

/// The caller, authenticated by an access token in the `Authorization:
/// Bearer` header or, for WebSocket clients that cannot send headers, in the
/// `token` query parameter. Checks signature, expiry and revocation, and
/// loads the principal's memberships.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: UserId,
    pub claims: AccessClaims,
    pub principal: Principal,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The raw token of a request, header first.
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|q| q.0.token)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
        Authenticated::from_token(state, &token).await
    }
}

/// [`Authenticated`], or for a browser without a bearer token the console's session cookie.
/// Only read-only streams take it (the inbox's Server-Sent Events, which `EventSource` cannot
/// send headers to): a cookie travels with every request the browser makes, so endpoints that
/// change state keep asking for a token a page on another site could not have.
#[derive(Clone, Debug)]
pub struct StreamAuthenticated(pub Authenticated);

impl FromRequestParts<AppState> for StreamAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)
            .filter(|t| !t.is_empty())
            .or_else(|| crate::web::session::cookie(&parts.headers, crate::web::session::ACCESS_COOKIE))
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
        Ok(StreamAuthenticated(Authenticated::from_token(state, &token).await?))
    }
}

impl Authenticated {
    async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = state.auth.authenticate(token).await?;
        let user = UserId::new(claims.sub.clone()).map_err(|_| ApiError::from(AuthError::InvalidToken))?;
        // A token that outlived its user is just an invalid token.
        let principal = state.auth.principal(&user).await.map_err(|e| match e {
            AuthError::UnknownUser(_) => AuthError::InvalidToken,
            other => other,
        })?;
        Ok(Authenticated {
            user,
            claims,
            principal,
        })
    }
}

/// `Json<T>` whose rejections use [`ApiError`]'s body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// The request's `Idempotency-Key` header, if any: a client-generated key
/// under which a write is carried out at most once (the operation checks its
/// form).
#[derive(Clone, Debug, Default)]
pub struct ClientKey(pub Option<String>);

/// The header [`ClientKey`] reads.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(IDEMPOTENCY_KEY) {
            None => Ok(ClientKey(None)),
            Some(v) => v
                .to_str()
                .map(|k| ClientKey(Some(k.trim().to_owned())))
                .map_err(|_| ApiError::BadRequest("Idempotency-Key is not ASCII".into())),
        }
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}
