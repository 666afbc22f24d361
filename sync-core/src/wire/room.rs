//! Rooms: list, create, read, members, pins, tags, messages, moderation,
//! raising a message as a petition, and cross-room appeals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::doc::Mention;
use crate::ids::{EntryId, HouseholdId, UnitId, UserId};
use crate::room::{MemberRole, MessageView, RoomKind};

use super::petition::PetitionView;

/// A room as listed: `GET /api/rooms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomSummary {
    /// The storage id (bs58).
    pub id: String,
    pub kind: RoomKind,
    pub name: String,
    pub unit: UnitId,
    #[serde(default)]
    pub household: Option<HouseholdId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    pub items: Vec<RoomSummary>,
}

/// One member and their standing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomMember {
    pub user: UserId,
    pub role: MemberRole,
}

/// `POST /api/rooms`: an officer's village group (`officer_group`), a
/// party-group room (`village_room`) or a household's line to a unit
/// (`household_line`, naming the household). The caller becomes the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewRoom {
    /// Client-generated document id (bs58check, 16 bytes), so a retried
    /// create makes one room.
    pub id: String,
    pub kind: RoomKind,
    pub name: String,
    /// The unit the room belongs to; for a household line, the unit party.
    pub unit: UnitId,
    #[serde(default)]
    pub household: Option<HouseholdId>,
    #[serde(default)]
    pub members: Vec<RoomMember>,
}

/// A pinned message and who pinned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pin {
    pub message: EntryId,
    pub by: UserId,
}

/// `GET /api/rooms/{id}`: name, members, pins and tags (messages are paged
/// separately).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomView {
    pub id: String,
    pub url: String,
    pub kind: RoomKind,
    pub name: String,
    pub unit: UnitId,
    #[serde(default)]
    pub household: Option<HouseholdId>,
    pub created_by: UserId,
    pub members: Vec<RoomMember>,
    pub pins: Vec<Pin>,
    pub tags: Vec<String>,
    /// Display names of the members, by user id (a reader of the room sees
    /// who is in it by name, not only by id).
    #[serde(default)]
    pub names: BTreeMap<UserId, String>,
}

/// `PUT /api/rooms/{id}/members/{user}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetMember {
    pub role: MemberRole,
}

/// `POST /api/rooms/{id}/messages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMessage {
    pub text: String,
    /// `"@all"` or a user id, each once.
    #[serde(default)]
    pub mentions: Vec<Mention>,
    #[serde(default)]
    pub reply_to: Option<EntryId>,
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Work-type tag (legal publicity, reminders, dispute mediation, …).
    #[serde(default)]
    pub tag: Option<String>,
}

/// A page of messages in stamp order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
    /// Pass as `before` for the earlier page (on pages read with `latest`
    /// or `before`); absent when no earlier message is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<String>,
    /// Display names of the page's authors, by user id.
    #[serde(default)]
    pub names: BTreeMap<UserId, String>,
}

/// `POST /api/rooms/{id}/messages/{entry}/redact`: the content is hidden
/// from every view; who, when and why are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redact {
    pub reason: String,
}

/// `POST /api/rooms/{id}/messages/{entry}/petition`: raise the message as a
/// petition. The petition's channel is `village_room`, its source the
/// message; the room records the petition against the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RaiseAsPetition {
    /// Client-generated document id of the new petition.
    pub id: String,
    pub category: crate::channel::Category,
    pub title: String,
    /// Defaults to the message's text.
    #[serde(default)]
    pub body: Option<String>,
    /// Defaults to the message's writer.
    #[serde(default)]
    pub submitter: Option<UserId>,
    /// Where the matter is; defaults to the room's unit.
    #[serde(default)]
    pub location: Option<UnitId>,
    /// The unit the petition goes to.
    pub routed_to: UnitId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Raised {
    pub petition: PetitionView,
    /// The message, now showing the petition it was raised as.
    pub message: MessageView,
}

/// `POST /api/appeals`: one post (a lost schoolbag, a missing person) to
/// several rooms at once, each copy carrying the appeal's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAppeal {
    /// Client-generated id, the same in every room; a retry posts only to
    /// the rooms that do not have it yet.
    pub id: String,
    pub text: String,
    /// The rooms' storage ids.
    pub rooms: Vec<String>,
    #[serde(default)]
    pub mentions: Vec<Mention>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// `POST /api/appeals/{id}/resolve`: one update ("found") that goes to
/// every room of the appeal, as a reply to the appeal's post there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveAppeal {
    pub text: String,
}

/// One room's copy of an appeal and its resolution there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppealPost {
    pub room: String,
    pub message: MessageView,
    #[serde(default)]
    pub resolution: Option<MessageView>,
}

/// An appeal across the rooms the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppealView {
    pub id: String,
    pub posts: Vec<AppealPost>,
    /// Every room's copy has its resolution.
    pub resolved: bool,
}
