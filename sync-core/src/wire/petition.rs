//! Petitions: submit, list, read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::{Category, Channel};
use crate::doc::Message;
use crate::ids::{EntryId, UnitId, UserId};
use crate::petition::{AllowedAction, Location, Outcome, PetitionHeader, PetitionSummary, TimelineEvent};
use crate::time::Timestamp;

/// `POST /api/petitions`: a new petition, as a lightweight client submits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Absent: where the channel goes from the location
    /// ([`crate::org::OrgTree::default_route`]).
    #[serde(default)]
    pub routed_to: Option<UnitId>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// A petition as the API shows it: personal data masked for the reader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionView {
    /// The storage id (bs58).
    pub id: String,
    /// `automerge:<id>`, for automerge-repo clients.
    pub url: String,
    pub header: PetitionHeader,
    pub summary: PetitionSummary,
    /// Every event in stamp order, with what became of it.
    pub timeline: Vec<TimelineEntry>,
    pub conversation: Vec<Message>,
    /// What the reader may do now, with the units they may act for
    /// (`petition::allowed_actions`): clients build their forms from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_actions: Vec<AllowedAction>,
    /// Display names of the people the view names (the writer and recorder
    /// as the header shows them, whoever wrote an event or a message), by
    /// user id, as room messages carry them. An anonymous writer the reader
    /// may not know has no name here.
    #[serde(default)]
    pub names: BTreeMap<UserId, String>,
}

/// One timeline event and its outcome (`applied`, or `superseded` with the rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub id: EntryId,
    #[serde(flatten)]
    pub event: TimelineEvent,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// When the server received the event (absent for events stored before
    /// receipts were recorded). Far from the event's own stamp: a phone that
    /// was offline, or a device clock set wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Timestamp>,
}

/// One row of `GET /api/petitions`: the summary with its clocks as they stand now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionListItem {
    /// The storage id (bs58), as `/api/petitions/{id}` takes it.
    pub doc_id: String,
    #[serde(flatten)]
    pub summary: PetitionSummary,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionPage {
    pub items: Vec<PetitionListItem>,
    /// Pass as `before` to get the next page; absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// One result on the public board (公开晒单): what was asked, what was done,
/// and how it was rated, without who asked or how to reach them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoardItem {
    pub doc_id: String,
    pub title: String,
    pub category: Category,
    pub location: UnitId,
    #[serde(default)]
    pub submitted_at: Option<crate::Timestamp>,
    #[serde(default)]
    pub replied_at: Option<crate::Timestamp>,
    #[serde(default)]
    pub closed_at: Option<crate::Timestamp>,
    /// The published account of the result.
    pub publication: String,
    /// The follow-up rating (1-5), if rated.
    #[serde(default)]
    pub rating: Option<u8>,
}

/// `GET /api/board`: published results located where the caller lives or works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoardPage {
    pub items: Vec<BoardItem>,
    #[serde(default)]
    pub next: Option<String>,
}
