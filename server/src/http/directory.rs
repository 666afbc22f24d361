//! HTTP handlers for village directories and reports (coverage, KPIs): thin wrappers over
//! [`crate::api::directory`] and [`crate::api::reports`].

use axum::Json;
use axum::extract::{Path, State};
use sync_core::wire::{CoverageReport, DirectoryView, HouseholdEdit};

use super::api::ApiQuery;
use super::extract::{ApiJson, Authenticated};
use crate::api::directory;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn get(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<DirectoryView>, ApiError> {
    Ok(Json(directory::get(&app, &auth.principal, &id).await?))
}

pub async fn put_household(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, household)): Path<(String, String)>,
    ApiJson(edit): ApiJson<HouseholdEdit>,
) -> Result<Json<DirectoryView>, ApiError> {
    Ok(Json(
        directory::put_household(&app, &auth.principal, &id, &household, edit).await?,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageQuery {
    unit: String,
}

pub async fn coverage(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<CoverageQuery>,
) -> Result<Json<CoverageReport>, ApiError> {
    Ok(Json(directory::report(&app, &auth.principal, &q.unit).await?))
}

/// `GET /api/reports/kpi`: JSON, or CSV with `format=csv`.
pub async fn kpi(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<crate::api::reports::KpiQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let report = crate::api::reports::kpi(&app, &auth.principal, &q).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"kpi.csv\"",
                ),
            ],
            report.to_csv(),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown format {other:?}: use json or csv"
        ))),
    }
}
