//! What the document index keeps about each document, so lists never load one.

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use sync_core::directory::DirectoryDoc;
use sync_core::notice::NoticeDoc;
use sync_core::petition::PetitionDoc;
use sync_core::room::RoomDoc;
use sync_core::wire::ClockSettings;
use sync_core::{Calendar, ClockRules, DocKind, HouseholdId, SchemaError, Timestamp};

use crate::store::DocMeta;

/// The clock settings a replica starts with until the server's are fetched
/// (`Replica::refresh_settings`): the built-in limits (10 minutes to sign,
/// 30 to contact, 5 working days to reply) on China's official calendar.
pub fn default_clocks() -> ClockSettings {
    ClockSettings {
        rules: ClockRules::default(),
        calendar: Calendar::china(),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomIndex {
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub household: Option<String>,
    pub members: u32,
    pub messages: u32,
    pub last_message_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NoticeIndex {
    pub kind: String,
    pub title: String,
    pub body: String,
    pub unit: String,
    pub by: String,
    pub at_ms: i64,
    pub read: bool,
    pub forwarded: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirectoryIndex {
    pub village: String,
    pub households: u32,
}

/// The index entry of `doc` at `now`, from the point of view of a user in `household`.
/// A document that does not read (half-synced, or of a newer schema) is
/// indexed as `unknown` rather than refused: it is still synced.
pub fn describe(doc: &AutoCommit, now: Timestamp, household: Option<&HouseholdId>, clocks: &ClockSettings) -> DocMeta {
    describe_kind(doc, now, household, clocks).unwrap_or_else(|_| DocMeta {
        kind: "unknown".into(),
        title: String::new(),
        summary: "{}".into(),
        sort_ms: 0,
    })
}

fn describe_kind(
    doc: &AutoCommit,
    now: Timestamp,
    household: Option<&HouseholdId>,
    clocks: &ClockSettings,
) -> Result<DocMeta, SchemaError> {
    let kind = DocKind::of(doc)?.ok_or_else(|| SchemaError::Missing("type".into()))?;
    Ok(match kind {
        DocKind::Petition => {
            let p = PetitionDoc::view(doc)?;
            let summary = p.summary(&clocks.rules, &clocks.calendar, now)?;
            let latest = p
                .events()?
                .iter()
                .map(|e| e.at.wall_ms)
                .chain(p.messages()?.iter().map(|m| m.at.wall_ms))
                .max()
                .unwrap_or(0);
            DocMeta {
                kind: kind.as_str().into(),
                title: summary.title.clone(),
                summary: json(&summary),
                sort_ms: latest,
            }
        }
        DocKind::Room => {
            let r = RoomDoc::view(doc)?;
            let info = r.info()?;
            let messages = r.raw_messages()?;
            let last = messages.iter().map(|m| m.at.wall_ms).max();
            let index = RoomIndex {
                name: info.name.clone(),
                kind: info.kind.as_str().into(),
                unit: info.unit.to_string(),
                household: info.household.map(|h| h.to_string()),
                members: r.members()?.len() as u32,
                messages: messages.len() as u32,
                last_message_ms: last,
            };
            DocMeta {
                kind: kind.as_str().into(),
                title: info.name,
                summary: json(&index),
                sort_ms: last.unwrap_or(0),
            }
        }
        DocKind::Notice => {
            let n = NoticeDoc::view(doc)?;
            let info = n.info()?;
            let mine = household.and_then(|h| n.receipts().ok().and_then(|mut r| r.remove(h)));
            let index = NoticeIndex {
                kind: info.kind.as_str().into(),
                title: info.title.clone(),
                body: info.body,
                unit: info.unit.to_string(),
                by: info.by.to_string(),
                at_ms: info.at.wall_ms,
                read: mine.as_ref().is_some_and(|r| r.read.is_some()),
                forwarded: mine.as_ref().is_some_and(|r| r.forwarded.is_some()),
            };
            DocMeta {
                kind: kind.as_str().into(),
                title: info.title,
                summary: json(&index),
                sort_ms: info.at.wall_ms,
            }
        }
        DocKind::Directory => {
            let d = DirectoryDoc::view(doc)?;
            let index = DirectoryIndex {
                village: d.village()?.to_string(),
                households: d.households()?.len() as u32,
            };
            DocMeta {
                kind: kind.as_str().into(),
                title: index.village.clone(),
                summary: json(&index),
                sort_ms: 0,
            }
        }
    })
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}
