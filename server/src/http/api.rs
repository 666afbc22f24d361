//! The JSON REST API for lightweight clients and consoles: petitions and rooms.
//!
//! Every write is an Automerge change made on behalf of the caller (with
//! their server-side actor) and goes through the same validation and storage
//! path as a CRDT client's change, so REST and sync clients see one truth.
//! Lists come from the SQL projections; single documents are read from the
//! document service after a read-access check. A document the caller may not
//! read is a 404, like a missing one.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sync_core::doc::{Mention, Message};
use sync_core::org::Role;
use sync_core::petition::{
    Location, Outcome, PetitionAction, PetitionDoc, PetitionHeader, PetitionState, PetitionSummary, TimelineEvent,
};
use sync_core::repo_protocol::DocumentId;
use sync_core::room::{MessageView, RoomDoc};
use sync_core::{Category, Channel, EntryId, Principal, UnitId, UserId};

use super::extract::{ApiJson, Authenticated};
use crate::docs::{Applied, DocError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::PetitionQuery;

/// Roles whose jurisdiction lets them list petitions.
const STAFF: &[Role] = &[Role::Officer, Role::Leader, Role::DepartmentStaff, Role::System];

pub(super) fn doc_key(id: &str) -> Result<String, ApiError> {
    let id = id.strip_prefix(sync_core::repo_protocol::URL_PREFIX).unwrap_or(id);
    id.parse::<DocumentId>()
        .map(|d| d.to_string())
        .map_err(|e| ApiError::BadRequest(format!("{id:?} is not a document id: {e}")))
}

pub(super) fn doc_error(e: DocError) -> ApiError {
    match e {
        DocError::NotFound => ApiError::NotFound("no such document".into()),
        DocError::Forbidden(m) => ApiError::Forbidden(m),
        DocError::Schema(e) => ApiError::BadRequest(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Turns refusals into a 403 that names each refused change and its rule.
fn refused(applied: &Applied) -> Result<(), ApiError> {
    if applied.refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Refused(applied.refused.clone()))
    }
}

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

// ---- petitions ----

/// A new petition, as a lightweight client submits it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPetition {
    /// Client-generated document id (bs58check, 16 bytes): a retried submit
    /// with the same id returns the petition instead of filing it twice.
    pub id: String,
    pub channel: Channel,
    pub category: Category,
    pub title: String,
    pub body: String,
    /// The resident it belongs to; defaults to the caller. Officers recording
    /// a walk-in or a call name the resident here.
    #[serde(default)]
    pub submitter: Option<UserId>,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub contact: Option<String>,
    pub location: Location,
    /// The unit the petition is routed to (a station, the mailbox task force…).
    pub routed_to: UnitId,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// A petition as the API shows it.
#[derive(Debug, Serialize)]
pub struct PetitionView {
    pub id: String,
    pub url: String,
    pub header: PetitionHeader,
    pub summary: PetitionSummary,
    pub timeline: Vec<TimelineEntry>,
    pub conversation: Vec<Message>,
}

#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    pub id: EntryId,
    #[serde(flatten)]
    pub event: TimelineEvent,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Hides what a reader does not need: an anonymous writer's identity and any
/// contact number from everyone but the writer and the handling units' staff.
fn mask(header: &mut PetitionHeader, state: &PetitionState, who: &Principal, app: &AppState) {
    if header.submitter == who.user {
        return;
    }
    let org = app.docs.org();
    let handles = state
        .lead
        .iter()
        .chain(&state.assists)
        .any(|u| org.has_jurisdiction(who, STAFF, u));
    if let Some(c) = &header.contact
        && !handles
    {
        let keep: String = c.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        header.contact = Some(format!("*******{keep}"));
    }
    if header.anonymous && !handles {
        header.submitter = UserId::new("anonymous").expect("valid id");
        header.contact = None;
    }
}

async fn petition_view(app: &AppState, who: &Principal, key: &str) -> Result<PetitionView, ApiError> {
    let doc = app.docs.read(who, key).await.map_err(doc_error)?;
    let p = PetitionDoc::view(&doc).map_err(|_| ApiError::NotFound("no such petition".into()))?;
    let mut header = p.header().map_err(|e| ApiError::Internal(e.to_string()))?;
    let events = p.events().map_err(|e| ApiError::Internal(e.to_string()))?;
    let conversation = p.messages().map_err(|e| ApiError::Internal(e.to_string()))?;
    let state = sync_core::petition::derive(&header, &events, &conversation);
    let settings = app.docs.settings();
    let summary = PetitionSummary::new(&header, &state, &settings.rules, &settings.calendar, app.docs.now());
    let mut timeline: Vec<TimelineEntry> = events
        .into_iter()
        .map(|event| {
            let id = event.id();
            let outcome = state.outcome(&id).cloned().unwrap_or(Outcome::Applied);
            TimelineEntry { id, event, outcome }
        })
        .collect();
    timeline.sort_by(|a, b| a.event.at.cmp(&b.event.at));
    mask(&mut header, &state, who, app);
    Ok(PetitionView {
        id: key.to_owned(),
        url: format!("automerge:{key}"),
        header,
        summary,
        timeline,
        conversation,
    })
}

pub async fn submit_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiJson(new): ApiJson<NewPetition>,
) -> Result<impl IntoResponse, ApiError> {
    let key = doc_key(&new.id)?;
    let who = &auth.principal;
    if app.docs.exists(&key).await.map_err(doc_error)? {
        // A retried submit: the same caller gets the petition back.
        let view = petition_view(&app, who, &key).await?;
        if view.header.recorded_by == who.user {
            return Ok((StatusCode::OK, Json(view)));
        }
        return Err(ApiError::Conflict(format!("document {key} already exists")));
    }
    let header = PetitionHeader {
        id: format!("automerge:{key}"),
        channel: new.channel,
        category: new.category,
        title: new.title,
        body: new.body,
        submitter: new.submitter.unwrap_or_else(|| who.user.clone()),
        recorded_by: who.user.clone(),
        anonymous: new.anonymous,
        contact: new.contact,
        location: new.location,
        attachments: new.attachments,
        source: None,
    };
    let (actor, mut author) = app.docs.server_author(&who.user);
    let doc = PetitionDoc::create(actor, header, new.routed_to, &mut author, app.docs.now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let applied = app.docs.create(who, &key, doc.into_doc()).await.map_err(doc_error)?;
    refused(&applied)?;
    Ok((StatusCode::CREATED, Json(petition_view(&app, who, &key).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    unit: Option<String>,
    category: Option<String>,
    #[serde(default)]
    overdue: bool,
    limit: Option<u32>,
    /// Paging: the `next` value of the previous page.
    before: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PetitionPage {
    pub items: Vec<serde_json::Value>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next: Option<String>,
}

pub async fn list_petitions(
    State(app): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<PetitionPage>, ApiError> {
    let who = &auth.principal;
    let org = app.docs.org();
    // Every unit in the caller's jurisdiction.
    let visible_units: Vec<String> = org
        .units()
        .filter(|u| org.has_jurisdiction(who, STAFF, &u.id))
        .map(|u| u.id.to_string())
        .collect();
    if let Some(s) = &q.status {
        s.parse::<sync_core::petition::Status>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    if let Some(c) = &q.category {
        c.parse::<Category>().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let before = match &q.before {
        None => None,
        Some(b) => {
            let (t, id) = b
                .split_once('~')
                .ok_or_else(|| ApiError::BadRequest("bad `before` cursor".into()))?;
            Some((
                t.parse()
                    .map_err(|_| ApiError::BadRequest("bad `before` cursor".into()))?,
                id.to_owned(),
            ))
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let query = PetitionQuery {
        visible_units,
        visible_user: Some(who.user.clone()),
        status: q.status,
        lead_unit: q.unit,
        category: q.category,
        overdue_at: q.overdue.then(|| app.docs.now()),
        before,
        limit,
    };
    let now = app.docs.now();
    let rows = app.docs.storage().list_petitions(&query).await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut next = None;
    for (doc_id, summary) in &rows {
        // Stored summaries were computed when the petition last changed; clock
        // states move with time, so each list item's clocks are re-evaluated now.
        let stored: PetitionSummary = serde_json::from_str(summary).map_err(|e| ApiError::Internal(e.to_string()))?;
        let settings = app.docs.settings();
        let current = stored.at(&settings.rules, &settings.calendar, now);
        let submitted = current.submitted_at.map_or(0, |t| t.millis());
        let open = current.status.is_open();
        let mut v = serde_json::to_value(&current).map_err(|e| ApiError::Internal(e.to_string()))?;
        v["overdue"] = serde_json::Value::Bool(open && current.overdue);
        next = Some(format!("{submitted}~{doc_id}"));
        v["doc_id"] = serde_json::Value::String(doc_id.clone());
        items.push(v);
    }
    if rows.len() < limit as usize {
        next = None;
    }
    Ok(Json(PetitionPage { items, next }))
}

pub async fn get_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PetitionView>, ApiError> {
    let key = doc_key(&id)?;
    Ok(Json(petition_view(&app, &auth.principal, &key).await?))
}

pub async fn act_on_petition(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(action): ApiJson<PetitionAction>,
) -> Result<Json<PetitionView>, ApiError> {
    let key = doc_key(&id)?;
    let who = &auth.principal;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such petition".into()));
    }
    let (_, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut p = PetitionDoc::from_doc(std::mem::take(doc))?;
            let result = action.apply(&mut p, author, now);
            *doc = p.into_doc();
            result
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    Ok(Json(petition_view(&app, who, &key).await?))
}

// ---- rooms ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Page after this entry id.
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct MessagePage {
    pub items: Vec<serde_json::Value>,
    pub next: Option<String>,
}

pub async fn room_messages(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let key = doc_key(&id)?;
    if !app.docs.may_read(&auth.principal, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such room".into()));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = app
        .docs
        .storage()
        .room_messages(&key, q.after.as_deref(), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.entry_id.clone()))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| serde_json::from_str(&r.body).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(Json(MessagePage { items, next }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub text: String,
    #[serde(default)]
    pub mentions: Vec<Mention>,
    #[serde(default)]
    pub reply_to: Option<EntryId>,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default)]
    pub tag: Option<String>,
}

pub async fn post_room_message(
    State(app): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(m): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let key = doc_key(&id)?;
    let who = &auth.principal;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such room".into()));
    }
    // The answer is read from the edited copy under the document's lock: if
    // the change is accepted, that is what was stored.
    let (view, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut room = RoomDoc::from_doc(std::mem::take(doc))?;
            let message = Message {
                mentions: m.mentions,
                reply_to: m.reply_to,
                attachments: m.attachments,
                tag: m.tag,
                ..Message::draft(m.text)
            };
            let view = room.post_view(author, now, message);
            *doc = room.into_doc();
            view
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    Ok((StatusCode::CREATED, Json(view)))
}
