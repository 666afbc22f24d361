//! What a document projects into SQL: computed from the document before and
//! after a change, written by the storage hook in the change's transaction.

use automerge::AutoCommit;
use sync_core::directory::DirectoryDoc;
use sync_core::notice::NoticeDoc;
use sync_core::notify::Notification;
use sync_core::petition::{PetitionDoc, PetitionSummary};
use sync_core::policy::Visibility;
use sync_core::room::RoomDoc;
use sync_core::{Calendar, ClockRules, DocKind, SchemaError, Timestamp};

use futures_util::future::BoxFuture;

use crate::notify::FanoutSettings;
use crate::storage::{
    AccessRow, AppendOutcome, ChangeHook, HouseholdRow, InboxItem, MessageRow, RoomRow, StorageError, StorageTx,
};

/// A household's earliest receipts of a notice, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeReceipts {
    pub household: String,
    pub delivered: Option<i64>,
    pub read: Option<i64>,
    pub forwarded: Option<i64>,
}

/// The rows one change set writes.
#[derive(Debug, Default)]
pub struct Projection {
    pub petition: Option<PetitionSummary>,
    pub access: Vec<AccessRow>,
    /// The access rows are those already stored.
    pub access_unchanged: bool,
    pub room: Option<RoomRow>,
    pub messages: Vec<MessageRow>,
    /// Households of a village directory.
    pub households: Vec<HouseholdRow>,
    /// A notice's receipts per household.
    pub receipts: Vec<NoticeReceipts>,
    /// Notifications the change raised, with what fan-out needs.
    pub notifications: Vec<Notification>,
    fanout: Option<(Calendar, FanoutSettings)>,
    /// Clock actions this change carries out (see `DocService::act_once`).
    pub marks: Vec<String>,
    now: Option<Timestamp>,
    /// The inbox items fan-out wrote, for live delivery once the transaction commits.
    pub delivered: Vec<InboxItem>,
}

impl Projection {
    /// Computes the rows for `after`, writing only room messages that are new
    /// or read differently since `before` (see `RoomDoc::message_delta`).
    /// `readers_may_change` is policy's word on the changes between them
    /// (`Checked::readers_may_change`); without it, who may read is not read.
    pub fn compute(
        doc_id: &str,
        (before, after): (&AutoCommit, &AutoCommit),
        readers_may_change: bool,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
    ) -> Result<Self, SchemaError> {
        let existed = DocKind::of(before)?.is_some();
        // Most changes (a message, an event) leave visibility as it was; a
        // room of thousands need not rewrite thousands of access rows each
        // time, nor, for a message, read its thousands of members twice.
        let vis = if existed && !readers_may_change {
            None
        } else {
            Some(Visibility::of(after)?)
        };
        let access_unchanged = match &vis {
            None => true,
            Some(vis) => existed && Visibility::of(before)? == *vis,
        };
        let vis = vis.unwrap_or_default();
        let mut access = Vec::new();
        let mut push = |kind: &'static str, subjects: Vec<String>| {
            access.extend(subjects.into_iter().map(|subject| AccessRow { kind, subject }));
        };
        push("unit", vis.units.iter().map(|u| u.to_string()).collect());
        push("user", vis.users.iter().map(|u| u.to_string()).collect());
        push("household", vis.households.iter().map(|h| h.to_string()).collect());
        push("room", vis.rooms.clone());
        push(
            "audience_unit",
            vis.audience_units.iter().map(|u| u.to_string()).collect(),
        );
        let mut out = Projection {
            access,
            access_unchanged,
            now: Some(now),
            ..Projection::default()
        };
        match DocKind::of(after)? {
            Some(DocKind::Petition) => {
                out.petition = Some(PetitionDoc::view(after)?.summary(rules, cal, now)?);
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

    /// Adds the notifications the change raised, to be fanned out in its transaction.
    pub fn notify(&mut self, notifications: Vec<Notification>, cal: &Calendar, fanout: &FanoutSettings) {
        if !notifications.is_empty() {
            self.fanout = Some((cal.clone(), fanout.clone()));
        }
        self.notifications = notifications;
    }

    /// Writes the rows inside the change's transaction (see [`ChangeHook`]).
    pub async fn write(&mut self, tx: &mut StorageTx, doc_id: &str, seq: i64) -> Result<(), StorageError> {
        if !self.access_unchanged {
            tx.replace_doc_access(doc_id, &self.access).await?;
        }
        if let Some(p) = &self.petition {
            tx.upsert_petition(doc_id, p, seq).await?;
        }
        if let Some(r) = &self.room {
            tx.upsert_room(r, seq).await?;
            tx.upsert_room_messages(doc_id, &self.messages).await?;
        }
        tx.upsert_households(doc_id, &self.households).await?;
        if let (Some((cal, fanout)), Some(now)) = (&self.fanout, self.now) {
            self.delivered = crate::notify::fanout::write(tx, doc_id, &self.notifications, now, cal, fanout).await?;
        }
        // After fan-out, so the delivery records of a new notice exist.
        for r in &self.receipts {
            tx.update_notice_receipts(doc_id, &r.household, r.delivered, r.read, r.forwarded)
                .await?;
        }
        for mark in &self.marks {
            tx.mark_fired(mark, self.now.unwrap_or(Timestamp::from_millis(0)))
                .await?;
        }
        Ok(())
    }
}

impl ChangeHook<StorageError> for Projection {
    fn on_append<'t>(
        &'t mut self,
        tx: &'t mut StorageTx,
        outcome: &'t AppendOutcome,
    ) -> BoxFuture<'t, Result<(), StorageError>> {
        Box::pin(async move { self.write(tx, &outcome.doc_id, outcome.last_seq).await })
    }
}
