//! HTTP handlers for notices: thin wrappers over [`crate::api::notices`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sync_core::wire::{MarkReceipt, NewNotice, NoticeList, NoticeReport, NoticeView};

use super::api::ApiQuery;
use super::extract::{ApiJson, Authenticated};
use crate::api::notices;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn issue(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(new): ApiJson<NewNotice>,
) -> Result<(StatusCode, Json<NoticeView>), ApiError> {
    let (created, view) = notices::issue(&app, &auth.principal, new).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

pub async fn list(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<notices::ListQuery>,
) -> Result<Json<NoticeList>, ApiError> {
    Ok(Json(notices::list(&app, &auth.principal, q).await?))
}

pub async fn get(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<NoticeView>, ApiError> {
    Ok(Json(notices::get(&app, &auth.principal, &id).await?))
}

pub async fn mark(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<MarkReceipt>,
) -> Result<Json<NoticeView>, ApiError> {
    Ok(Json(notices::mark(&app, &auth.principal, &id, r).await?))
}

/// `GET /api/notices/{id}/report`: delivery records, counts, the households not reached.
pub async fn report(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<NoticeReport>, ApiError> {
    Ok(Json(notices::report(&app, &auth.principal, &id).await?))
}
