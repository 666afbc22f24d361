//! HTTP handlers for petitions: thin wrappers over [`crate::api`].
//!
//! Each handler extracts the caller and the request, calls the typed
//! operation and picks the status code; the work, the checks and the errors
//! are the operation's.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use sync_core::petition::PetitionAction;
use sync_core::wire::{BoardPage, NewPetition, PetitionPage, PetitionView};

use super::extract::{ApiJson, Authenticated, ClientKey};
use crate::api::{self, petitions::Submitted};
use crate::error::ApiError;
use crate::state::AppState;

/// `Query` whose rejection is the API's JSON 400 rather than axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::BadRequest(QueryRejection::body_text(&rejection))),
        }
    }
}

pub async fn submit_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(new): ApiJson<NewPetition>,
) -> Result<(StatusCode, Json<PetitionView>), ApiError> {
    Ok(match api::petitions::submit(&app, &auth.principal, new).await? {
        Submitted::Created(v) => (StatusCode::CREATED, Json(v)),
        Submitted::Existing(v) => (StatusCode::OK, Json(v)),
    })
}

pub async fn list_petitions(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<api::petitions::ListQuery>,
) -> Result<Json<PetitionPage>, ApiError> {
    Ok(Json(api::petitions::list(&app, &auth.principal, q).await?))
}

pub async fn get_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PetitionView>, ApiError> {
    Ok(Json(api::petitions::get(&app, &auth.principal, &id).await?))
}

pub async fn act_on_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ClientKey(key): ClientKey,
    ApiJson(action): ApiJson<PetitionAction>,
) -> Result<Json<PetitionView>, ApiError> {
    Ok(Json(
        api::petitions::act_once(&app, &auth.principal, &id, action, key.as_deref()).await?,
    ))
}

pub async fn board(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<api::petitions::BoardQuery>,
) -> Result<Json<BoardPage>, ApiError> {
    Ok(Json(api::petitions::board(&app, &auth.principal, q).await?))
}
