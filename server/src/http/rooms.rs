//! HTTP handlers for rooms and cross-room appeals: thin wrappers over [`crate::api::rooms`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sync_core::room::MessageView;
use sync_core::wire::{
    AppealView, MessagePage, NewAppeal, NewMessage, NewRoom, RaiseAsPetition, Raised, Redact, ResolveAppeal, RoomList,
    RoomView, SetMember,
};

use super::api::ApiQuery;
use super::extract::{ApiJson, Authenticated, ClientKey};
use crate::api::rooms;
use crate::error::ApiError;
use crate::state::AppState;

type Answer<T> = Result<Json<T>, ApiError>;

pub async fn list(State(app): State<AppState>, auth: Authenticated) -> Answer<RoomList> {
    Ok(Json(rooms::list_mine(&app, &auth.principal).await?))
}

pub async fn create(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(new): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let (created, view) = rooms::create(&app, &auth.principal, new).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

pub async fn get(State(app): State<AppState>, auth: Authenticated, Path(id): Path<String>) -> Answer<RoomView> {
    Ok(Json(rooms::get(&app, &auth.principal, &id).await?))
}

pub async fn put_member(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, user)): Path<(String, String)>,
    ApiJson(m): ApiJson<SetMember>,
) -> Answer<RoomView> {
    Ok(Json(
        rooms::set_member(&app, &auth.principal, &id, &user, m.role).await?,
    ))
}

pub async fn delete_member(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, user)): Path<(String, String)>,
) -> Answer<RoomView> {
    Ok(Json(rooms::remove_member(&app, &auth.principal, &id, &user).await?))
}

pub async fn put_pin(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, entry)): Path<(String, String)>,
) -> Answer<RoomView> {
    Ok(Json(rooms::set_pin(&app, &auth.principal, &id, &entry, true).await?))
}

pub async fn delete_pin(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, entry)): Path<(String, String)>,
) -> Answer<RoomView> {
    Ok(Json(rooms::set_pin(&app, &auth.principal, &id, &entry, false).await?))
}

pub async fn put_tag(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, tag)): Path<(String, String)>,
) -> Answer<RoomView> {
    Ok(Json(rooms::set_tag(&app, &auth.principal, &id, &tag, true).await?))
}

pub async fn delete_tag(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, tag)): Path<(String, String)>,
) -> Answer<RoomView> {
    Ok(Json(rooms::set_tag(&app, &auth.principal, &id, &tag, false).await?))
}

pub async fn messages(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<rooms::MessagesQuery>,
) -> Answer<MessagePage> {
    Ok(Json(rooms::messages(&app, &auth.principal, &id, q).await?))
}

pub async fn post_message(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ClientKey(key): ClientKey,
    ApiJson(m): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(rooms::post_once(&app, &auth.principal, &id, m, key.as_deref()).await?),
    ))
}

pub async fn redact(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, entry)): Path<(String, String)>,
    ApiJson(r): ApiJson<Redact>,
) -> Answer<MessageView> {
    Ok(Json(
        rooms::redact(&app, &auth.principal, &id, &entry, &r.reason).await?,
    ))
}

pub async fn raise(
    State(app): State<AppState>,
    auth: Authenticated,
    Path((id, entry)): Path<(String, String)>,
    ApiJson(r): ApiJson<RaiseAsPetition>,
) -> Result<(StatusCode, Json<Raised>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(rooms::raise(&app, &auth.principal, &id, &entry, r).await?),
    ))
}

pub async fn appeal(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(a): ApiJson<NewAppeal>,
) -> Result<(StatusCode, Json<AppealView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(rooms::appeal(&app, &auth.principal, a).await?),
    ))
}

pub async fn get_appeal(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Answer<AppealView> {
    Ok(Json(rooms::get_appeal(&app, &auth.principal, &id).await?))
}

pub async fn resolve_appeal(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<ResolveAppeal>,
) -> Answer<AppealView> {
    Ok(Json(rooms::resolve_appeal(&app, &auth.principal, &id, &r.text).await?))
}
