//! What a document projects into SQL: computed from the document before and
//! after a change, written by the storage hook in the change's transaction.

use automerge::AutoCommit;
use sync_core::petition::{PetitionDoc, PetitionSummary};
use sync_core::policy::DocFacts;
use sync_core::room::RoomDoc;
use sync_core::{Calendar, ClockRules, DocKind, SchemaError, Timestamp};

use futures_util::future::BoxFuture;

use crate::storage::{AccessRow, AppendOutcome, ChangeHook, MessageRow, RoomRow, StorageError, StorageTx};

/// The rows one change set writes.
#[derive(Debug, Default)]
pub struct Projection {
    pub petition: Option<PetitionSummary>,
    pub access: Vec<AccessRow>,
    pub room: Option<RoomRow>,
    pub messages: Vec<MessageRow>,
}

impl Projection {
    /// Computes the rows for `after`, writing only room messages that are new
    /// or changed since `before`.
    pub fn compute(
        doc_id: &str,
        before: &AutoCommit,
        after: &AutoCommit,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
    ) -> Result<Self, SchemaError> {
        let facts = DocFacts::of(after)?;
        let vis = facts.visibility();
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
            ..Projection::default()
        };
        match facts.kind() {
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
                let old: Vec<_> = match RoomDoc::view(before) {
                    Ok(r) => r.messages()?,
                    Err(_) => Vec::new(),
                };
                for m in room.messages()? {
                    if old.contains(&m) {
                        continue;
                    }
                    out.messages.push(MessageRow {
                        entry_id: m.id.to_string(),
                        author: m.message.by.to_string(),
                        at_ms: m.message.at.wall_ms,
                        body: serde_json::to_string(&m).map_err(|e| SchemaError::InvalidValue {
                            field: "message".into(),
                            reason: e.to_string(),
                        })?,
                    });
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Writes the rows inside the change's transaction (see [`ChangeHook`]).
    pub async fn write(&self, tx: &mut StorageTx, doc_id: &str, seq: i64) -> Result<(), StorageError> {
        tx.replace_doc_access(doc_id, &self.access).await?;
        if let Some(p) = &self.petition {
            tx.upsert_petition(doc_id, p, seq).await?;
        }
        if let Some(r) = &self.room {
            tx.upsert_room(r, seq).await?;
            tx.upsert_room_messages(doc_id, &self.messages).await?;
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
