//! What a document projects into a host's query tables: computed from the
//! document before and after a write, stored by the host in the write's
//! transaction.
//!
//! The rows are plain data (ids as text, times as milliseconds) so a host can
//! store them without reading a document: the petitions list, who may read
//! what, rooms and their messages, village households, notice receipts.

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};

use crate::channel::text_enum;
use crate::clocks::{Calendar, ClockRules, Receipts};
use crate::directory::DirectoryDoc;
use crate::doc::DocKind;
use crate::error::SchemaError;
use crate::notice::NoticeDoc;
use crate::petition::{PetitionDoc, PetitionSummary};
use crate::policy::Visibility;
use crate::room::RoomDoc;
use crate::time::Timestamp;

text_enum!(
    /// What an access row names.
    AccessKind {
        /// A unit whose jurisdiction covers the document.
        Unit = "unit",
        /// A user (a submitter, a room member).
        User = "user",
        /// A household (a notice's audience, a household line).
        Household = "household",
        /// A room whose members may read the document.
        Room = "room",
        /// A unit below which a notice's audience lives.
        AudienceUnit = "audience_unit",
    }
);

/// One row of who may see a document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessRow {
    pub kind: AccessKind,
    pub subject: String,
}

/// A room as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRow {
    pub doc_id: String,
    pub kind: String,
    pub name: String,
    pub unit_id: String,
    pub household_id: Option<String>,
}

/// A room message as listed. `body` is the message view as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRow {
    pub entry_id: String,
    pub author: String,
    pub at_ms: i64,
    pub body: String,
}

/// A household as a village directory lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdRow {
    pub household_id: String,
    pub village_unit: String,
    pub name: String,
    pub representative: Option<String>,
    /// The officer the directory assigns to the household.
    #[serde(default)]
    pub officer: Option<String>,
    pub moved_out: bool,
}

/// A household's earliest receipts of a notice, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeReceipts {
    pub household: String,
    pub delivered: Option<i64>,
    pub read: Option<i64>,
    pub forwarded: Option<i64>,
}

/// The rows one write produces.
#[derive(Clone, Debug, Default)]
pub struct Projection {
    pub petition: Option<PetitionSummary>,
    /// Who may read the document; `None` when the write left that as it was
    /// (the stored rows stand).
    pub access: Option<Vec<AccessRow>>,
    pub room: Option<RoomRow>,
    /// Room messages that are new or read differently since before the write.
    pub messages: Vec<MessageRow>,
    /// Households of a village directory.
    pub households: Vec<HouseholdRow>,
    /// A notice's receipts per household.
    pub receipts: Vec<NoticeReceipts>,
}

impl Projection {
    /// Computes the rows for `after`, writing only room messages that are new
    /// or read differently since `before` (see `RoomDoc::message_delta`).
    /// `readers_may_change` is policy's word on the changes between them
    /// (`Checked::readers_may_change`); without it, who may read is not read.
    /// A petition's clocks run on `receipts` where it has their entries.
    pub fn compute(
        doc_id: &str,
        (before, after): (&AutoCommit, &AutoCommit),
        readers_may_change: bool,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
        receipts: Option<&Receipts>,
    ) -> Result<Self, SchemaError> {
        let existed = DocKind::of(before)?.is_some();
        // Most changes (a message, an event) leave visibility as it was; a
        // room of thousands need not rewrite thousands of access rows each
        // time, nor, for a message, read its thousands of members twice.
        let access = if existed && !readers_may_change {
            None
        } else {
            let vis = Visibility::of(after)?;
            if existed && Visibility::of(before)? == vis {
                None
            } else {
                Some(access_rows(&vis))
            }
        };
        let mut out = Projection {
            access,
            ..Projection::default()
        };
        match DocKind::of(after)? {
            Some(DocKind::Petition) => {
                out.petition = Some(PetitionDoc::view(after)?.summary_with(rules, cal, now, receipts)?);
            }
            Some(DocKind::Room) => {
                let room = RoomDoc::view(after)?;
                let info = room.info()?;
                out.room = Some(RoomRow {
                    doc_id: doc_id.to_owned(),
                    kind: info.kind.as_str().to_owned(),
                    name: info.name,
                    unit_id: info.unit.to_string(),
                    household_id: info.household.map(|h| h.to_string()),
                });
                let before = RoomDoc::view(before).ok();
                let delta = room.message_delta(before.as_ref())?;
                for m in delta.new.iter().chain(&delta.changed) {
                    out.messages.push(MessageRow {
                        entry_id: m.id.to_string(),
                        author: m.message.by.to_string(),
                        at_ms: m.message.at.wall_ms,
                        body: serde_json::to_string(m).map_err(|e| SchemaError::InvalidValue {
                            field: "message".into(),
                            reason: e.to_string(),
                        })?,
                    });
                }
            }
            Some(DocKind::Directory) => {
                let dir = DirectoryDoc::view(after)?;
                let village = dir.village()?.to_string();
                out.households = dir
                    .households()?
                    .into_iter()
                    .map(|h| HouseholdRow {
                        household_id: h.id.to_string(),
                        village_unit: village.clone(),
                        name: h.name,
                        representative: h.representative.map(|u| u.to_string()),
                        officer: h.officer.map(|u| u.to_string()),
                        moved_out: h.moved_out,
                    })
                    .collect();
            }
            Some(DocKind::Notice) => {
                let ms = |t: Option<Timestamp>| t.map(|t| t.millis());
                out.receipts = NoticeDoc::view(after)?
                    .receipts()?
                    .into_iter()
                    .map(|(h, r)| NoticeReceipts {
                        household: h.to_string(),
                        delivered: ms(r.delivered),
                        read: ms(r.read),
                        forwarded: ms(r.forwarded),
                    })
                    .collect();
            }
            None => {}
        }
        Ok(out)
    }

    /// Every row of a document as a whole (as if it were new), for checks
    /// that compare stored rows with the document, with a petition's clocks
    /// on the recorded `receipts`.
    pub fn of_document(
        doc_id: &str,
        doc: &AutoCommit,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
        receipts: Option<&Receipts>,
    ) -> Result<Self, SchemaError> {
        Self::compute(doc_id, (&AutoCommit::new(), doc), true, rules, cal, now, receipts)
    }
}

/// The access rows that say who may read a document of visibility `vis`.
pub fn access_rows(vis: &Visibility) -> Vec<AccessRow> {
    let mut rows = Vec::new();
    let mut push = |kind: AccessKind, subjects: Vec<String>| {
        rows.extend(subjects.into_iter().map(|subject| AccessRow { kind, subject }));
    };
    push(AccessKind::Unit, vis.units.iter().map(|u| u.to_string()).collect());
    push(AccessKind::User, vis.users.iter().map(|u| u.to_string()).collect());
    push(
        AccessKind::Household,
        vis.households.iter().map(|h| h.to_string()).collect(),
    );
    push(AccessKind::Room, vis.rooms.clone());
    push(
        AccessKind::AudienceUnit,
        vis.audience_units.iter().map(|u| u.to_string()).collect(),
    );
    rows
}
