//! Rooms: list mine, create, read, members, pins, tags, messages, redaction,
//! raising a message as a petition, and cross-room appeals.

use std::collections::BTreeMap;

use automerge::AutoCommit;
use sync_core::doc::Message;
use sync_core::petition::{Location, PetitionDoc, PetitionHeader, SourceRef};
use sync_core::policy::{PolicyContext, check_local};
use sync_core::room::{MemberRole, MessageView, RoomDoc, RoomInfo};
use sync_core::wire::{
    AppealPost, AppealView, MessagePage, NewAppeal, NewMessage, NewRoom, Pin, RaiseAsPetition, Raised, RoomList,
    RoomMember, RoomSummary, RoomView,
};
use sync_core::{Channel, EntryId, Principal, UserId};

use super::{doc_error, doc_key, page_limit, refused};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::RoomRow;

/// Paging of `GET /api/rooms/{id}/messages`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Page after this entry id (forward from the first message).
    pub after: Option<String>,
    /// Page before this entry id: the last `limit` messages before it.
    pub before: Option<String>,
    /// The last `limit` messages of the room (a room opens on its latest).
    #[serde(default)]
    pub latest: bool,
    pub limit: Option<u32>,
}

/// The storage key of a room the caller may read; 404 otherwise.
async fn readable(app: &AppState, who: &Principal, id: &str) -> Result<String, ApiError> {
    let key = doc_key(id)?;
    if !app.docs.may_read(who, &key).await.map_err(doc_error)? {
        return Err(ApiError::NotFound("no such room".into()));
    }
    Ok(key)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn summary(row: RoomRow) -> Result<RoomSummary, ApiError> {
    Ok(RoomSummary {
        id: row.doc_id,
        kind: row.kind.parse().map_err(internal)?,
        name: row.name,
        unit: row.unit_id.parse().map_err(internal)?,
        household: row.household_id.map(|h| h.parse()).transpose().map_err(internal)?,
    })
}

/// `GET /api/rooms`: the rooms the caller is a member of, the rooms of the
/// units they handle, and their household's lines.
pub async fn list_mine(app: &AppState, who: &Principal) -> Result<RoomList, ApiError> {
    let org = app.docs.org();
    let units: Vec<String> = sync_core::access::scope(&org, who, sync_core::access::RoleSet::HANDLERS)
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    let household = who.household.as_ref().map(|h| h.as_str());
    let rows = app
        .storage
        .projections()
        .rooms_for(&who.user, &units, household)
        .await?;
    Ok(RoomList {
        items: rows.into_iter().map(summary).collect::<Result<_, _>>()?,
    })
}

fn room_view(key: &str, doc: &AutoCommit) -> Result<RoomView, ApiError> {
    let room = RoomDoc::view(doc).map_err(|_| ApiError::NotFound("no such room".into()))?;
    let info = room.info().map_err(internal)?;
    Ok(RoomView {
        id: key.to_owned(),
        url: format!("automerge:{key}"),
        kind: info.kind,
        name: info.name,
        unit: info.unit,
        household: info.household,
        created_by: info.created_by,
        members: room
            .members()
            .map_err(internal)?
            .into_iter()
            .map(|(user, role)| RoomMember { user, role })
            .collect(),
        pins: room
            .pins()
            .map_err(internal)?
            .into_iter()
            .map(|(message, by)| Pin { message, by })
            .collect(),
        tags: room.tags().map_err(internal)?.into_iter().collect(),
        names: BTreeMap::new(),
    })
}

/// Display names of `users`, by id; a user without a record keeps only the id.
async fn names_of<'a>(
    app: &AppState,
    users: impl IntoIterator<Item = &'a UserId>,
) -> Result<BTreeMap<UserId, String>, ApiError> {
    let ids: std::collections::BTreeSet<&str> = users.into_iter().map(UserId::as_str).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut names = BTreeMap::new();
    for (id, name) in app.storage.auth().display_names(&ids).await? {
        names.insert(UserId::new(&id).map_err(internal)?, name);
    }
    Ok(names)
}

/// `GET /api/rooms/{id}`: name, members, pins and tags.
pub async fn get(app: &AppState, who: &Principal, id: &str) -> Result<RoomView, ApiError> {
    let key = readable(app, who, id).await?;
    let doc = app.docs.read(who, &key).await.map_err(doc_error)?;
    let mut view = room_view(&key, &doc)?;
    view.names = names_of(app, view.members.iter().map(|m| &m.user)).await?;
    Ok(view)
}

/// `POST /api/rooms`: creates a room with the caller as owner. Officers over
/// the unit open any kind; a household's own people open its line to a unit.
/// A retry with the same id by the same creator returns the room.
pub async fn create(app: &AppState, who: &Principal, new: NewRoom) -> Result<(bool, RoomView), ApiError> {
    let key = doc_key(&new.id)?;
    if app.docs.exists(&key).await.map_err(doc_error)? {
        let view = get(app, who, &key).await?;
        if view.created_by == who.user {
            return Ok((false, view));
        }
        return Err(ApiError::Conflict(format!("document {key} already exists")));
    }
    let info = RoomInfo {
        id: format!("automerge:{key}"),
        kind: new.kind,
        name: new.name,
        unit: new.unit,
        household: new.household,
        created_by: who.user.clone(),
    };
    let members = new.members.into_iter().map(|m| (m.user, m.role));
    let room = RoomDoc::create(app.docs.server_actor(&who.user), info, members)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let applied = app.docs.create(who, &key, room.into_doc()).await.map_err(doc_error)?;
    refused(&applied)?;
    Ok((true, get(app, who, &key).await?))
}

/// Writes one room edit as the caller and answers the room as it stands after.
async fn edit_room(
    app: &AppState,
    who: &Principal,
    id: &str,
    edit: impl FnOnce(&mut RoomDoc, &mut sync_core::Author, sync_core::Timestamp) -> Result<(), sync_core::SchemaError>,
) -> Result<RoomView, ApiError> {
    let key = readable(app, who, id).await?;
    let (_, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut room = RoomDoc::from_doc(std::mem::take(doc))?;
            let result = edit(&mut room, author, now);
            *doc = room.into_doc();
            result
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    get(app, who, &key).await
}

fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn entry_id(id: &str) -> Result<EntryId, ApiError> {
    EntryId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `PUT /api/rooms/{id}/members/{user}`: adds a member or changes their role (moderators).
pub async fn set_member(
    app: &AppState,
    who: &Principal,
    id: &str,
    user: &str,
    role: MemberRole,
) -> Result<RoomView, ApiError> {
    let user = user_id(user)?;
    if app.storage.auth().get_user(&user).await?.is_none() {
        return Err(ApiError::BadRequest(format!("there is no user {user}")));
    }
    edit_room(app, who, id, |room, _, _| room.set_member(&user, Some(role))).await
}

/// `DELETE /api/rooms/{id}/members/{user}` (moderators).
pub async fn remove_member(app: &AppState, who: &Principal, id: &str, user: &str) -> Result<RoomView, ApiError> {
    let user = user_id(user)?;
    edit_room(app, who, id, |room, _, _| {
        if !room.members()?.contains_key(&user) {
            return Err(sync_core::SchemaError::InvalidValue {
                field: "member".into(),
                reason: format!("{user} is not a member of this room"),
            });
        }
        room.set_member(&user, None)
    })
    .await
}

/// `PUT` / `DELETE /api/rooms/{id}/pins/{entry}` (moderators).
pub async fn set_pin(app: &AppState, who: &Principal, id: &str, entry: &str, on: bool) -> Result<RoomView, ApiError> {
    let entry = entry_id(entry)?;
    edit_room(app, who, id, |room, author, _| room.set_pin(author, &entry, on)).await
}

/// `PUT` / `DELETE /api/rooms/{id}/tags/{tag}`: the room's work-type tags (moderators).
pub async fn set_tag(app: &AppState, who: &Principal, id: &str, tag: &str, on: bool) -> Result<RoomView, ApiError> {
    edit_room(app, who, id, |room, _, _| room.set_tag(tag, on)).await
}

/// `GET /api/rooms/{id}/messages`: a page in stamp order, from the projection.
pub async fn messages(app: &AppState, who: &Principal, id: &str, q: MessagesQuery) -> Result<MessagePage, ApiError> {
    let key = readable(app, who, id).await?;
    let limit = page_limit(q.limit, 50, 200);
    let backward = q.latest || q.before.is_some();
    if backward && q.after.is_some() {
        return Err(ApiError::BadRequest(
            "`after` pages forward; `before` and `latest` page back: give one direction".into(),
        ));
    }
    let storage = app.docs.storage();
    let (rows, next, earlier) = if backward {
        let rows = storage
            .projections()
            .room_messages_before(&key, q.before.as_deref(), limit)
            .await?;
        let earlier = (rows.len() == limit as usize)
            .then(|| rows.first().map(|r| r.entry_id.clone()))
            .flatten();
        (rows, None, earlier)
    } else {
        let rows = storage
            .projections()
            .room_messages(&key, q.after.as_deref(), limit)
            .await?;
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.entry_id.clone()))
            .flatten();
        (rows, next, None)
    };
    let items: Vec<MessageView> = rows
        .into_iter()
        .map(|r| serde_json::from_str::<MessageView>(&r.body).map_err(|e| internal(format!("stored message: {e}"))))
        .collect::<Result<_, _>>()?;
    let names = names_of(app, items.iter().map(|m| &m.message.by)).await?;
    Ok(MessagePage {
        items,
        next,
        earlier,
        names,
    })
}

/// Posts `message` in the room `key` as the caller; the message as readers see it.
async fn post_message(
    app: &AppState,
    who: &Principal,
    key: &str,
    message: Message,
    client_key: Option<&str>,
) -> Result<MessageView, ApiError> {
    // The answer is read from the edited copy under the document's lock: if
    // the change is accepted, that is what was stored.
    let edit = |doc: &mut AutoCommit, author: &mut sync_core::Author, now: sync_core::Timestamp| {
        let mut room = RoomDoc::from_doc(std::mem::take(doc))?;
        let view = room.post_view(author, now, message);
        *doc = room.into_doc();
        view
    };
    let Some(mark) = client_key.map(|k| super::client_mark(who, key, k)).transpose()? else {
        let (view, applied) = app.docs.act(who, key, edit).await.map_err(doc_error)?;
        refused(&applied)?;
        return Ok(view);
    };
    match app
        .docs
        .act_idempotent(who, key, &mark, edit, |view: &MessageView| Some(view.id.to_string()))
        .await
        .map_err(doc_error)?
    {
        crate::docs::Once::Done(view, applied) => {
            refused(&applied)?;
            Ok(view)
        }
        // A retried post: the message the first one became.
        crate::docs::Once::Repeat(entry) => {
            let entry = entry_id(entry.as_deref().unwrap_or_default())?;
            message_in(&app.docs.read(who, key).await.map_err(doc_error)?, &entry)
        }
    }
}

/// `POST /api/rooms/{id}/messages`: the message as readers see it.
pub async fn post(app: &AppState, who: &Principal, id: &str, m: NewMessage) -> Result<MessageView, ApiError> {
    post_once(app, who, id, m, None).await
}

/// [`post`] with the client's idempotency key (the `Idempotency-Key`
/// header): a retried post answers the message the first one became.
pub async fn post_once(
    app: &AppState,
    who: &Principal,
    id: &str,
    m: NewMessage,
    client_key: Option<&str>,
) -> Result<MessageView, ApiError> {
    let key = readable(app, who, id).await?;
    let message = Message {
        mentions: m.mentions,
        reply_to: m.reply_to,
        attachments: m.attachments,
        tag: m.tag,
        ..Message::draft(m.text)
    };
    post_message(app, who, &key, message, client_key).await
}

/// One message of a room as readers see it now.
fn message_in(doc: &AutoCommit, entry: &EntryId) -> Result<MessageView, ApiError> {
    RoomDoc::view(doc)
        .and_then(|r| r.messages())
        .map_err(internal)?
        .into_iter()
        .find(|m| &m.id == entry)
        .ok_or_else(|| ApiError::NotFound(format!("no message {entry} in this room")))
}

/// `POST /api/rooms/{id}/messages/{entry}/redact`: hides the content, keeps
/// who, when and why (the author or a moderator).
pub async fn redact(
    app: &AppState,
    who: &Principal,
    id: &str,
    entry: &str,
    reason: &str,
) -> Result<MessageView, ApiError> {
    let key = readable(app, who, id).await?;
    let entry = entry_id(entry)?;
    let (_, applied) = app
        .docs
        .act(who, &key, |doc, author, now| {
            let mut room = RoomDoc::from_doc(std::mem::take(doc))?;
            let result = room.redact(author, now, &entry, reason);
            *doc = room.into_doc();
            result
        })
        .await
        .map_err(doc_error)?;
    refused(&applied)?;
    message_in(&app.docs.read(who, &key).await.map_err(doc_error)?, &entry)
}

/// `POST /api/rooms/{id}/messages/{entry}/petition`: raises a message as a
/// petition, linked both ways: the petition names the message as its source,
/// the room records the petition against the message. Both writes are
/// checked with policy before either is stored; a retry with the same
/// petition id stores nothing twice.
pub async fn raise(
    app: &AppState,
    who: &Principal,
    id: &str,
    entry: &str,
    req: RaiseAsPetition,
) -> Result<Raised, ApiError> {
    let room_key = readable(app, who, id).await?;
    let entry = entry_id(entry)?;
    let petition_key = doc_key(&req.id)?;
    let petition_url = format!("automerge:{petition_key}");
    let mut room_doc = app.docs.read(who, &room_key).await.map_err(doc_error)?;
    let room = RoomDoc::view(&room_doc).map_err(|_| ApiError::NotFound("no such room".into()))?;
    let info = room.info().map_err(internal)?;
    let message = room
        .raw_messages()
        .map_err(internal)?
        .into_iter()
        .find(|m| m.id() == entry)
        .ok_or_else(|| ApiError::NotFound(format!("no message {entry} in this room")))?;
    let already_linked = room
        .raised()
        .map_err(internal)?
        .iter()
        .any(|r| r.message == entry && r.petition == petition_url);
    let now = app.docs.now();
    let (actor, mut author) = app.docs.server_author(&who.user);

    if !app.docs.exists(&petition_key).await.map_err(doc_error)? {
        let header = PetitionHeader {
            id: petition_url.clone(),
            channel: Channel::VillageRoom,
            category: req.category,
            title: req.title,
            body: req.body.unwrap_or_else(|| message.text.clone()),
            submitter: req.submitter.unwrap_or_else(|| message.by.clone()),
            recorded_by: who.user.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: req.location.unwrap_or_else(|| info.unit.clone()),
                lat: None,
                lon: None,
            },
            attachments: message.attachments.clone(),
            source: Some(SourceRef {
                room: format!("automerge:{room_key}"),
                message: entry.clone(),
            }),
        };
        let petition = PetitionDoc::create(actor.clone(), header, req.routed_to, &mut author, now)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if !already_linked {
            // The link must be allowed too before the petition is stored.
            let mut fork = room_doc.fork().with_actor(actor.clone());
            let heads = fork.get_heads();
            let mut linked = RoomDoc::from_doc(std::mem::take(&mut fork)).map_err(internal)?;
            linked
                .link_petition(&mut author, now, &entry, &petition_url)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut fork = linked.into_doc();
            let org = app.docs.org();
            let ctx = PolicyContext {
                org: &org,
                principal: who,
                now,
            };
            check_local(&ctx, &mut fork, &heads).map_err(|r| ApiError::Refused(vec![r]))?;
        }
        let applied = app
            .docs
            .create(who, &petition_key, petition.into_doc())
            .await
            .map_err(doc_error)?;
        refused(&applied)?;
    } else {
        let existing = super::petitions::view(app, who, &petition_key).await?;
        let from_here = existing
            .header
            .source
            .as_ref()
            .is_some_and(|s| doc_key(&s.room).ok().as_deref() == Some(room_key.as_str()) && s.message == entry);
        if !from_here {
            return Err(ApiError::Conflict(format!(
                "document {petition_key} already exists and was not raised from this message"
            )));
        }
    }
    if !already_linked {
        let (_, applied) = app
            .docs
            .act(who, &room_key, |doc, author, now| {
                let mut room = RoomDoc::from_doc(std::mem::take(doc))?;
                let result = room.link_petition(author, now, &entry, &petition_url);
                *doc = room.into_doc();
                result
            })
            .await
            .map_err(doc_error)?;
        refused(&applied)?;
    }
    let message = message_in(&app.docs.read(who, &room_key).await.map_err(doc_error)?, &entry)?;
    Ok(Raised {
        petition: super::petitions::view(app, who, &petition_key).await?,
        message,
    })
}

/// An appeal id: an id-like text, so it can be matched in stored messages.
fn appeal_id(id: &str) -> Result<String, ApiError> {
    sync_core::EntryId::new(id)
        .map(|e| e.to_string())
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not an appeal id: use letters, digits, - _ . :")))
}

/// `POST /api/appeals`: posts one appeal to several rooms at once, each copy
/// carrying the appeal's id. Rooms that already have it (a retry) are skipped.
pub async fn appeal(app: &AppState, who: &Principal, req: NewAppeal) -> Result<AppealView, ApiError> {
    let id = appeal_id(&req.id)?;
    if req.rooms.is_empty() {
        return Err(ApiError::BadRequest("an appeal goes to at least one room".into()));
    }
    let mut keys = Vec::new();
    for room in &req.rooms {
        let key = readable(app, who, room).await?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let existing = appeal_copies(app, &keys, &id).await?;
    for key in &keys {
        if existing.get(key).is_some_and(|(post, _)| post.is_some()) {
            continue;
        }
        let message = Message {
            mentions: req.mentions.clone(),
            attachments: req.attachments.clone(),
            tag: Some("appeal".into()),
            appeal: Some(id.clone()),
            ..Message::draft(req.text.clone())
        };
        post_message(app, who, key, message, None).await?;
    }
    appeal_view(app, &keys, &id).await
}

/// Each room's appeal post and resolution, by room key.
type Copies = BTreeMap<String, (Option<MessageView>, Option<MessageView>)>;

async fn appeal_copies(app: &AppState, rooms: &[String], id: &str) -> Result<Copies, ApiError> {
    let mut out: Copies = BTreeMap::new();
    for (room, body) in app.storage.projections().appeal_messages(rooms, id).await? {
        let m: MessageView = serde_json::from_str(&body).map_err(|e| internal(format!("stored message: {e}")))?;
        if m.message.appeal.as_deref() != Some(id) {
            continue;
        }
        let slot = out.entry(room).or_default();
        if m.message.reply_to.is_none() {
            slot.0.get_or_insert(m);
        } else {
            slot.1.get_or_insert(m);
        }
    }
    Ok(out)
}

async fn appeal_view(app: &AppState, rooms: &[String], id: &str) -> Result<AppealView, ApiError> {
    let copies = appeal_copies(app, rooms, id).await?;
    let posts: Vec<AppealPost> = copies
        .into_iter()
        .filter_map(|(room, (post, resolution))| {
            post.map(|message| AppealPost {
                room,
                message,
                resolution,
            })
        })
        .collect();
    Ok(AppealView {
        id: id.to_owned(),
        resolved: !posts.is_empty() && posts.iter().all(|p| p.resolution.is_some()),
        posts,
    })
}

/// The rooms the caller may read, as keys.
async fn my_room_keys(app: &AppState, who: &Principal) -> Result<Vec<String>, ApiError> {
    Ok(list_mine(app, who).await?.items.into_iter().map(|r| r.id).collect())
}

/// `GET /api/appeals/{id}`: the appeal's copies in the rooms the caller sees.
pub async fn get_appeal(app: &AppState, who: &Principal, id: &str) -> Result<AppealView, ApiError> {
    let id = appeal_id(id)?;
    let view = appeal_view(app, &my_room_keys(app, who).await?, &id).await?;
    if view.posts.is_empty() {
        return Err(ApiError::NotFound(format!("no appeal {id}")));
    }
    Ok(view)
}

/// `POST /api/appeals/{id}/resolve`: one update that reaches every room of
/// the appeal the caller sees, as a reply to the appeal's post there. Rooms
/// already resolved are skipped.
pub async fn resolve_appeal(app: &AppState, who: &Principal, id: &str, text: &str) -> Result<AppealView, ApiError> {
    let id = appeal_id(id)?;
    let rooms = my_room_keys(app, who).await?;
    let copies = appeal_copies(app, &rooms, &id).await?;
    if copies.values().all(|(post, _)| post.is_none()) {
        return Err(ApiError::NotFound(format!("no appeal {id}")));
    }
    for (room, (post, resolution)) in &copies {
        let (Some(post), None) = (post, resolution) else {
            continue;
        };
        let message = Message {
            reply_to: Some(post.id.clone()),
            tag: Some("appeal_resolved".into()),
            appeal: Some(id.clone()),
            ..Message::draft(text.to_owned())
        };
        post_message(app, who, room, message, None).await?;
    }
    appeal_view(app, &rooms, &id).await
}
