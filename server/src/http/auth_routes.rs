//! `/api/auth/*` and `/api/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiJson, Authenticated};
use crate::auth::TokenPair;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.auth.login_password(&req.login, &req.password).await?))
}

#[derive(Debug, Deserialize)]
pub struct OtpRequest {
    pub phone: String,
}

pub async fn otp_request(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<OtpRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let expires_in = state.auth.request_otp(&req.phone).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "sent": true, "expires_in": expires_in })),
    ))
}

#[derive(Debug, Deserialize)]
pub struct OtpVerify {
    pub phone: String,
    pub code: String,
}

pub async fn otp_verify(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<OtpVerify>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.auth.verify_otp(&req.phone, &req.code).await?))
}

#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.auth.refresh(&req.refresh_token).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutRequest {
    /// End every session of the user, not just this one.
    #[serde(default)]
    pub all: bool,
}

pub async fn logout(
    State(state): State<AppState>,
    who: Authenticated,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: an empty one means "this session only".
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let all = req.all;
    state.auth.logout(&who.claims, all).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/auth/keys`: the public keys that verify this server's access
/// tokens, for other tiers to trust (no sign-in needed).
pub async fn keys(State(state): State<AppState>) -> Result<Json<sync_core::wire::KeySet>, ApiError> {
    Ok(Json(state.auth.keys().key_set(state.auth.now()).await?))
}

pub async fn me(State(state): State<AppState>, who: Authenticated) -> Result<Json<sync_core::wire::Me>, ApiError> {
    Ok(Json(crate::api::account::me(&state, &who.principal).await?))
}
