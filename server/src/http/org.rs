//! HTTP handlers for the organisation and run-time configuration: thin wrappers over [`crate::api::org`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use sync_core::wire::{ClockSettings, ImportResult, UnitEdit, UnitList, UnitView, UserEdit, UserList};

use super::extract::{ApiJson, Authenticated};
use crate::admin::ImportFile;
use crate::api::org;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn units(State(app): State<AppState>, auth: Authenticated) -> Result<Json<UnitList>, ApiError> {
    Ok(Json(org::units(&app, &auth.principal).await?))
}

pub async fn put_unit(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(edit): ApiJson<UnitEdit>,
) -> Result<Json<UnitView>, ApiError> {
    Ok(Json(org::put_unit(&app, &auth.principal, &id, edit).await?))
}

pub async fn users(State(app): State<AppState>, auth: Authenticated) -> Result<Json<UserList>, ApiError> {
    Ok(Json(org::people(&app, &auth.principal).await?))
}

pub async fn put_user(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(edit): ApiJson<UserEdit>,
) -> Result<Json<ImportResult>, ApiError> {
    Ok(Json(org::put_user(&app, &auth.principal, &id, edit).await?))
}

/// `POST /api/admin/import`: JSON, or TOML with `Content-Type: application/toml`.
pub async fn import(
    State(app): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: String,
) -> Result<Json<ImportResult>, ApiError> {
    let toml = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let file: ImportFile = if toml {
        toml::from_str(&body).map_err(|e| ApiError::BadRequest(format!("not valid TOML: {e}")))?
    } else {
        serde_json::from_str(&body).map_err(|e| ApiError::BadRequest(format!("not valid JSON: {e}")))?
    };
    Ok(Json(org::import(&app, &auth.principal, file).await?))
}

pub async fn clock_settings(State(app): State<AppState>, auth: Authenticated) -> Result<Json<ClockSettings>, ApiError> {
    Ok(Json(org::clock_settings(&app, &auth.principal).await?))
}

/// `GET /api/station/directory` (station servers' accounts).
/// Answered with an `ETag` (a hash of the body) and `304 Not Modified` when
/// the station's `If-None-Match` names it: an unchanged directory costs a
/// station a few bytes per round.
pub async fn station_directory(
    State(app): State<AppState>,
    auth: Authenticated,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if !sync_core::relay::is_station(&auth.principal) {
        return Err(ApiError::Forbidden(
            "only a station server's account reads a station directory".into(),
        ));
    }
    let (body, generation) = crate::api::station::directory_body(&app, &auth.principal).await?;
    let tag = sync_core::relay::directory_etag(generation);
    let etag = (axum::http::header::ETAG, tag.clone());
    if headers
        .get(axum::http::header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        return Ok((axum::http::StatusCode::NOT_MODIFIED, [etag]).into_response());
    }
    Ok((
        [etag, (axum::http::header::CONTENT_TYPE, "application/json".to_owned())],
        body,
    )
        .into_response())
}

/// `PUT /api/station/rosters` (station servers' accounts).
pub async fn put_station_rosters(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(sent): ApiJson<sync_core::wire::StationRosters>,
) -> Result<Json<sync_core::wire::StationRosterResults>, ApiError> {
    Ok(Json(
        crate::api::station::put_rosters(&app, &auth.principal, sent).await?,
    ))
}

/// `PUT /api/station/keys`: a station publishes its token keys.
pub async fn put_station_keys(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(set): ApiJson<sync_core::wire::KeySet>,
) -> Result<axum::http::StatusCode, ApiError> {
    crate::api::station::publish_keys(&app, &auth.principal, &set).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub async fn put_clock_settings(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(new): ApiJson<ClockSettings>,
) -> Result<Json<ClockSettings>, ApiError> {
    Ok(Json(org::put_clock_settings(&app, &auth.principal, new).await?))
}
