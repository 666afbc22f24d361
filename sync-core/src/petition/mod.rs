//! Petitions (诉求单): header, conversation and append-only timeline.

pub mod action;
pub mod allowed;
pub mod due;
pub mod event;
pub mod header;
pub mod status;
pub mod summary;

use std::borrow::Borrow;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT};

use crate::author::Author;
use crate::doc::{DocKind, Message, init_root};
use crate::doc::{am, cache};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, UnitId};
use crate::time::Timestamp;

pub use action::{PetitionAction, SetAside};
pub use allowed::{AllowedAction, allowed_actions};
pub use due::{PetitionClock, most_urgent};
pub use event::{ContactMethod, EventBody, EventKind, TimelineEvent};
pub use header::{Location, PetitionHeader, SourceRef};
pub use status::{Outcome, PetitionState, Status, StepEntries, derive};
pub use summary::PetitionSummary;

/// A petition document with typed access.
#[derive(Debug, Clone)]
pub struct PetitionDoc<D = AutoCommit> {
    doc: D,
}

impl PetitionDoc {
    /// Creates the petition in one change: header, empty conversation, and a
    /// timeline holding the `submitted` event that routes it to `unit`.
    pub fn create(
        actor: ActorId,
        header: PetitionHeader,
        unit: UnitId,
        author: &mut Author,
        now: Timestamp,
    ) -> Result<Self, SchemaError> {
        let mut doc = AutoCommit::new().with_actor(actor);
        init_root(&mut doc, DocKind::Petition)?;
        header.write(&mut doc, &ROOT, "header")?;
        doc.put_object(ROOT, "conversation", ObjType::List)?;
        let timeline = doc.put_object(ROOT, "timeline", ObjType::List)?;
        let event = TimelineEvent {
            by: author.user.clone(),
            at: author.stamp(None, now),
            unit: None,
            body: EventBody::Submitted { unit },
        };
        event.append(&mut doc, &timeline)?;
        doc.commit();
        Ok(PetitionDoc { doc })
    }
}

impl<D: Borrow<AutoCommit>> PetitionDoc<D> {
    pub fn header(&self) -> Result<PetitionHeader, SchemaError> {
        let obj = am::req_obj(self.d(), &ROOT, "header", ObjType::Map)?;
        cache::entry(&obj, || PetitionHeader::read(self.d(), &obj))
    }

    /// The timeline in list order (use [`PetitionDoc::state`] for the derived order).
    pub fn events(&self) -> Result<Vec<TimelineEvent>, SchemaError> {
        let list = am::req_obj(self.d(), &ROOT, "timeline", ObjType::List)?;
        am::list_maps(self.d(), &list, "timeline")?
            .iter()
            .map(|obj| cache::entry(obj, || TimelineEvent::read(self.d(), obj)))
            .collect()
    }

    /// The conversation between the writer and the handlers.
    pub fn messages(&self) -> Result<Vec<Message>, SchemaError> {
        let list = am::req_obj(self.d(), &ROOT, "conversation", ObjType::List)?;
        am::list_maps(self.d(), &list, "conversation")?
            .iter()
            .map(|obj| cache::entry(obj, || Message::read(self.d(), obj)))
            .collect()
    }

    /// The summary a store indexes: derived state and clocks at `now`, on
    /// device stamps (what a phone computes from its own replica).
    pub fn summary(
        &self,
        rules: &crate::clocks::ClockRules,
        cal: &crate::clocks::Calendar,
        now: Timestamp,
    ) -> Result<PetitionSummary, SchemaError> {
        self.summary_with(rules, cal, now, None)
    }

    /// The summary with clocks on the server's receipt times of the entries
    /// `receipts` holds (see `clocks`).
    pub fn summary_with(
        &self,
        rules: &crate::clocks::ClockRules,
        cal: &crate::clocks::Calendar,
        now: Timestamp,
        receipts: Option<&crate::clocks::Receipts>,
    ) -> Result<PetitionSummary, SchemaError> {
        let header = self.header()?;
        let state = derive(&header, &self.events()?, &self.messages()?);
        Ok(PetitionSummary::with_receipts(
            &header, &state, rules, cal, now, receipts,
        ))
    }

    /// The ids of every entry (timeline events and messages): what a host
    /// records receipt times for.
    pub fn entry_ids(&self) -> Result<Vec<String>, SchemaError> {
        let mut ids: Vec<String> = self.events()?.iter().map(|e| e.at.to_string()).collect();
        ids.extend(self.messages()?.iter().map(|m| m.at.to_string()));
        Ok(ids)
    }

    /// The derived state: status, holder, clocks' inputs, outcomes.
    pub fn state(&self) -> Result<PetitionState, SchemaError> {
        Ok(derive(&self.header()?, &self.events()?, &self.messages()?))
    }

    /// The stamps of every entry, timeline first: each entry's id written out
    /// ([`PetitionDoc::entry_ids`]).
    pub(crate) fn stamps(&self) -> Result<Vec<Hlc>, SchemaError> {
        let events = self.events()?.into_iter().map(|e| e.at);
        let messages = self.messages()?.into_iter().map(|m| m.at);
        Ok(events.chain(messages).collect())
    }
}

impl PetitionDoc {
    /// Appends a timeline event written by `author` for `unit`, as one change.
    pub fn record(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        unit: Option<UnitId>,
        body: EventBody,
    ) -> Result<EntryId, SchemaError> {
        let at = author.stamp(&self.stamps()?, now);
        let event = TimelineEvent {
            by: author.user.clone(),
            at,
            unit,
            body,
        };
        let list = am::req_obj(self.d(), &ROOT, "timeline", ObjType::List)?;
        let result = event.append(&mut self.doc, &list);
        crate::doc::finish(&mut self.doc, result)?;
        Ok(event.id())
    }

    /// Appends a conversation message written by `author`, as one change.
    pub fn post(&mut self, author: &mut Author, now: Timestamp, mut message: Message) -> Result<EntryId, SchemaError> {
        message.by = author.user.clone();
        message.at = author.stamp(&self.stamps()?, now);
        let list = am::req_obj(self.d(), &ROOT, "conversation", ObjType::List)?;
        let result = message.append(&mut self.doc, &list);
        crate::doc::finish(&mut self.doc, result)?;
        Ok(message.id())
    }
}

crate::doc::typed_doc!(PetitionDoc, DocKind::Petition);
