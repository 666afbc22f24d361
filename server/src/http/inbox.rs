//! Notification endpoints: the inbox (page, acknowledge, Server-Sent Events), unit duty
//! rosters and the outbox's dead letters.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::notify::Roster;
use sync_core::org::Role;
use sync_core::wire::{AckRequest, AckResponse, InboxPage, RosterView};

use super::api::ApiQuery;
use super::extract::{ApiJson, Authenticated, StreamAuthenticated};
use crate::api::{self, inbox::InboxQuery};
use crate::auth::TokenEnd;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/inbox?after=&limit=`: the caller's items after a cursor, oldest first.
pub async fn inbox(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    Ok(Json(api::inbox::page(&app, &auth.principal, q).await?))
}

/// `POST /api/inbox/ack {cursor}`: items up to `cursor` are done and never returned again.
pub async fn ack(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(a): ApiJson<AckRequest>,
) -> Result<Json<AckResponse>, ApiError> {
    Ok(Json(api::inbox::ack(&app, &auth.principal, a.cursor).await?))
}

/// `GET /api/inbox/stream?token=&after=&live=`: Server-Sent Events, one `notification` event per
/// item with the cursor as its id, resuming after `Last-Event-ID` (or `after`, or the
/// acknowledged cursor). Ends with an `end` event when the token expires or is revoked.
pub async fn stream(
    State(app): State<AppState>,
    StreamAuthenticated(auth): StreamAuthenticated,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an inbox cursor".into()))?,
        ),
    };
    let mut subscription = match last_event_id.or(q.after) {
        None if q.live => app.notify.subscribe_live(&auth.user).await?,
        cursor => app.notify.subscribe(&auth.user, cursor.unwrap_or(0)).await?,
    };
    let mut watch = app.auth.watch(auth.claims.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(64);
    let notify = app.notify.clone();
    tokio::spawn(async move {
        // One watch future for the whole stream, not one per item.
        let ended = watch.ended();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                item = subscription.next() => match item {
                    Ok(item) => {
                        let cursor = item.cursor;
                        let event = Event::default().id(cursor.to_string()).event("notification").json_data(&item);
                        let Ok(event) = event else { continue };
                        if tx.send(event).await.is_err() {
                            return;
                        }
                        subscription.delivered(cursor);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "inbox stream cannot read the store");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                end = &mut ended => {
                    let why = match end { TokenEnd::Expired => "token expired", TokenEnd::Revoked => "token revoked" };
                    let _ = tx.send(Event::default().event("end").data(why)).await;
                    return;
                }
                () = tx.closed() => return,
                () = notify.closed() => return,
            }
        }
    });
    let events = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `PUT /api/units/{id}/roster`: replaces the unit's 7x24 roster (sync-core `Roster` JSON).
pub async fn put_roster(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<RosterView>, ApiError> {
    let roster = Roster::from_json(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(api::units::put_roster(&app, &auth.principal, &id, roster).await?))
}

/// `GET /api/units/{id}/roster`: the roster, who is on duty now and the next hand-over.
pub async fn get_roster(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<RosterView>, ApiError> {
    Ok(Json(api::units::roster(&app, &auth.principal, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    limit: Option<u32>,
}

/// `GET /api/admin/outbox/dead`: pushes and text messages the gateways never accepted.
pub async fn dead_letters(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> Result<Json<Value>, ApiError> {
    if !auth.principal.has_role(Role::Admin) {
        return Err(ApiError::Forbidden("the dead letters are for admins".into()));
    }
    let rows = app
        .storage
        .outbox()
        .rows("dead", q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(json!({ "items": rows })))
}
