//! Notification endpoints: the inbox (page, acknowledge, Server-Sent Events), unit duty
//! rosters, notice delivery reports and the outbox's dead letters.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::UnitId;
use sync_core::notify::Roster;
use sync_core::org::Role;

use super::api::{ApiQuery, doc_error, doc_key};
use super::extract::{ApiJson, Authenticated, StreamAuthenticated};
use crate::auth::TokenEnd;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Items after this cursor; defaults to the acknowledged cursor.
    after: Option<i64>,
    limit: Option<u32>,
    /// `stream` only: follow what arrives from now on, without replaying the
    /// unacknowledged items (a page that has just rendered the current state).
    #[serde(default)]
    live: bool,
    /// The access token, for clients that cannot send headers (EventSource).
    #[serde(default)]
    #[allow(dead_code)]
    token: Option<String>,
}

/// `GET /api/inbox?after=&limit=`: the caller's items after a cursor, oldest first.
pub async fn inbox(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let acked = app.notify.acked(&auth.user).await?;
    let after = q.after.unwrap_or(acked).max(acked);
    let items = app.notify.inbox_after(&auth.user, after, limit).await?;
    let next = items.last().map_or(after, |i| i.cursor);
    let more = items.len() == limit as usize;
    Ok(Json(
        json!({ "items": items, "next": next, "more": more, "acked": acked }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    cursor: i64,
}

/// `POST /api/inbox/ack {cursor}`: items up to `cursor` are done and never returned again.
pub async fn ack(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(a): ApiJson<Ack>,
) -> Result<Json<Value>, ApiError> {
    match app.notify.ack(&auth.user, a.cursor).await? {
        Ok(acked) => Ok(Json(json!({ "acked": acked }))),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
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

/// Roles that may replace a unit's roster (over their jurisdiction).
const ROSTER_EDITORS: &[Role] = &[Role::Admin, Role::Leader];
/// Roles a person on a unit's roster must hold over the unit.
const ON_DUTY: &[Role] = &[Role::Officer, Role::Leader, Role::DepartmentStaff];
/// Roles that may read a unit's roster.
const ROSTER_READERS: &[Role] = &[Role::Admin, Role::Leader, Role::Officer, Role::DepartmentStaff];

fn unit_id(id: &str) -> Result<UnitId, ApiError> {
    UnitId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `PUT /api/units/{id}/roster`: replaces the unit's 7x24 roster (sync-core `Roster` JSON).
pub async fn put_roster(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let unit = unit_id(&id)?;
    let org = app.docs.org();
    if org.get(&unit).is_none() {
        return Err(ApiError::NotFound(format!("no unit {unit}")));
    }
    if !org.has_jurisdiction(&auth.principal, ROSTER_EDITORS, &unit) {
        return Err(ApiError::Forbidden(format!(
            "only an admin or a leader over {unit} may set its roster"
        )));
    }
    let roster = Roster::from_json(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if roster.unit() != &unit {
        return Err(ApiError::BadRequest(format!(
            "the roster is for unit {}, not {unit}",
            roster.unit()
        )));
    }
    // Whoever is on duty reads the unit's work: only its own staff may be on the roster.
    let mut members: Vec<&sync_core::UserId> = roster.shifts().iter().flat_map(|s| &s.members).collect();
    members.sort();
    members.dedup();
    for member in members {
        let staff = match app.auth.principal(member).await {
            Ok(p) => org.has_jurisdiction(&p, ON_DUTY, &unit),
            Err(crate::auth::AuthError::UnknownUser(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !staff {
            return Err(ApiError::BadRequest(format!(
                "{member} cannot be on duty for {unit}: not an officer, leader or department staff over it"
            )));
        }
    }
    let now = app.clock.now();
    app.storage
        .put_roster(unit.as_str(), &roster.to_json(), &auth.user, now)
        .await?;
    roster_view(&app, &unit).await
}

/// `GET /api/units/{id}/roster`: the roster, who is on duty now and the next hand-over.
pub async fn get_roster(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let unit = unit_id(&id)?;
    if !app.docs.org().has_jurisdiction(&auth.principal, ROSTER_READERS, &unit) {
        return Err(ApiError::NotFound(format!("no roster for {unit}")));
    }
    roster_view(&app, &unit).await
}

async fn roster_view(app: &AppState, unit: &UnitId) -> Result<Json<Value>, ApiError> {
    let row = app
        .storage
        .roster(unit.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no roster for {unit}")))?;
    let roster = Roster::from_json(&row.roster).map_err(|e| ApiError::Internal(e.to_string()))?;
    let cal = &app.docs.settings().calendar;
    let now = app.clock.now();
    let roster_json: Value = serde_json::from_str(&row.roster).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({
        "unit": unit,
        "roster": roster_json,
        "on_duty": roster.on_duty(cal, now),
        "shift": roster.shift_at(cal, now).and_then(|s| s.name.clone()),
        "next_handover": roster.next_handover(cal, now).millis(),
        "updated_by": row.updated_by,
        "updated_at": row.updated_at,
    })))
}

/// `GET /api/notices/{id}/report`: one delivery record per household, receipt counts and the
/// households not reached (no receipt of any kind), for a door visit.
pub async fn notice_report(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = doc_key(&id)?;
    let who = &auth.principal;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such notice".into()));
    }
    if !(who.is_staff() || who.has_role(Role::Admin)) {
        return Err(ApiError::Forbidden("delivery reports are for staff".into()));
    }
    let rows = app.storage.notice_deliveries(&key).await?;
    let count = |f: fn(&crate::storage::NoticeDeliveryRow) -> bool| rows.iter().filter(|r| f(r)).count();
    let reached = |r: &crate::storage::NoticeDeliveryRow| {
        r.delivered_at.is_some() || r.read_at.is_some() || r.forwarded_at.is_some()
    };
    let not_reached: Vec<Value> = rows
        .iter()
        .filter(|r| !reached(r))
        .map(|r| json!({ "household_id": r.household_id, "name": r.name, "village_unit": r.village_unit }))
        .collect();
    Ok(Json(json!({
        "notice": key,
        "households": rows.len(),
        "delivered": count(|r| r.delivered_at.is_some()),
        "read": count(|r| r.read_at.is_some()),
        "forwarded": count(|r| r.forwarded_at.is_some()),
        "reached": count(reached),
        "not_reached": not_reached,
        "deliveries": rows,
    })))
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
        .outbox_rows("dead", q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(json!({ "items": rows })))
}
