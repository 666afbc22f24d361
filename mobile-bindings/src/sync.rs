//! Sync, sans IO: the app (or the built-in client in [`crate::net`]) moves
//! the bytes; the replica builds the push, applies what comes back, and
//! rebases the user's edits when the server refuses one. A document of
//! which a tier above refused every change is dropped whole.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ChangeHash};
use sync_core::batch::{ClientEvent, ClientState, DocId, RefusedChange, ReplicaDocs};
use sync_core::policy::Rule;
use sync_core::{HouseholdId, Timestamp};

use crate::error::{LianxinError, Result, guard};
use crate::index::describe;
use crate::intent::Intent;
use crate::records::{RefusedEditRecord, SyncEvent};
use crate::replica::{Inner, Replica, doc_name, now};
use crate::store::{RefusedRow, Store, heads_key};

/// The store as the batch client sees it. Failures are kept and reported
/// after the frame is handled, since the client's trait cannot return them.
struct Docs<'a> {
    store: &'a Store,
    now: Timestamp,
    household: Option<&'a HouseholdId>,
    clocks: &'a sync_core::wire::ClockSettings,
    failed: RefCell<Option<LianxinError>>,
    /// Documents the client dropped: deleted with their refusal reports in
    /// one transaction once the frame is handled.
    removed: BTreeSet<DocId>,
}

impl Docs<'_> {
    fn fail(&self, e: LianxinError) {
        self.failed.borrow_mut().get_or_insert(e);
    }
}

impl ReplicaDocs for Docs<'_> {
    fn dirty(&self, state: &ClientState) -> Vec<DocId> {
        match self.store.heads_index() {
            Ok(index) => index
                .into_iter()
                .filter(|(id, heads)| state.shared.get(id).is_none_or(|s| heads_key(s) != heads_key(heads)))
                .map(|(id, _)| id)
                .collect(),
            Err(e) => {
                self.fail(e);
                Vec::new()
            }
        }
    }

    fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
        match self.store.load(id) {
            Ok(Some(bytes)) => match AutoCommit::load(&bytes) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    self.fail(LianxinError::Storage(format!(
                        "document {} does not load: {e}",
                        doc_name(id)
                    )));
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn store(&mut self, id: &DocId, mut doc: AutoCommit) {
        let meta = describe(&doc, self.now, self.household, self.clocks);
        if let Err(e) = self.store.save(id, &doc.get_heads(), &doc.save(), &meta) {
            self.fail(e);
        }
    }

    fn remove(&mut self, id: &DocId) {
        self.removed.insert(*id);
    }
}

impl Inner {
    /// Starts an exchange: the push frames to send, all at once. With
    /// `carry_inbox`, the exchange also carries the notification inbox when
    /// the server speaks protocol 2 ([`sync_core::batch::BatchClient::carries_inbox`]).
    pub fn start_exchange(&mut self, early_pull: bool, carry_inbox: bool) -> Result<Vec<Vec<u8>>> {
        if early_pull != self.early_pull {
            // Starting abandons any unfinished exchange anyway, so the client
            // can be rebuilt from its state with the other setting.
            let state = self.client.state().clone();
            self.client = sync_core::batch::BatchClient::new(state).with_early_pull(early_pull);
            self.early_pull = early_pull;
        }
        self.next_exchange = self.next_exchange.wrapping_add(1);
        self.store.set_meta("exchange", &self.next_exchange.to_string())?;
        self.notes = Default::default();
        let docs = Docs {
            store: &self.store,
            now: now(),
            household: self.session.principal.household.as_ref(),
            clocks: &self.session.clocks,
            failed: RefCell::new(None),
            removed: BTreeSet::new(),
        };
        let mut docs = docs;
        let inbox = if carry_inbox {
            let cursor: i64 = self
                .store
                .meta("inbox_cursor")?
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            Some(cursor.max(0) as u64)
        } else {
            None
        };
        self.client.carry_inbox(inbox);
        let frames = self.client.start(self.next_exchange, &mut docs);
        if let Some(e) = docs.failed.into_inner() {
            return Err(e);
        }
        self.persist_client_state()?;
        Ok(frames)
    }

    /// Handles one frame from the server.
    pub fn receive(&mut self, frame: &[u8]) -> Result<Vec<SyncEvent>> {
        let saved = self.client.state().clone();
        let now = now();
        let mut docs = Docs {
            store: &self.store,
            now,
            household: self.session.principal.household.as_ref(),
            clocks: &self.session.clocks,
            failed: RefCell::new(None),
            removed: BTreeSet::new(),
        };
        let handled = self.client.handle(frame, &mut docs);
        let removed = std::mem::take(&mut docs.removed);
        if let Some(e) = docs.failed.into_inner() {
            // A document could not be stored: forget what this frame taught
            // the client, so the next exchange asks for it again.
            self.client = sync_core::batch::BatchClient::new(saved).with_early_pull(self.early_pull);
            return Err(e);
        }
        self.persist_client_state()?;
        let mut out = Vec::new();
        for event in handled? {
            match event {
                ClientEvent::Acked { id, .. } => {
                    self.notes.acked.insert(id);
                    out.push(SyncEvent::Acknowledged { doc_id: doc_name(&id) });
                }
                ClientEvent::Refused { id, refused } => {
                    self.notes.refused.entry(id).or_default().extend(refused);
                }
                ClientEvent::Dropped { id, refused, changes } if removed.contains(&id) => {
                    out.extend(self.drop_document(id, refused, changes, now)?);
                }
                ClientEvent::Dropped { .. } => {}
                ClientEvent::DocUpdated { id, .. } | ClientEvent::DocCreated { id, .. } => {
                    let created = matches!(event, ClientEvent::DocCreated { .. });
                    out.push(SyncEvent::DocumentUpdated {
                        doc_id: doc_name(&id),
                        kind: self.store.kind_of(&id)?.unwrap_or_default(),
                        created,
                    });
                }
                ClientEvent::Resync { id } => out.push(SyncEvent::Resync { doc_id: doc_name(&id) }),
                ClientEvent::Inbox { items, cursor } => {
                    let added = self.store_inbox(items, cursor)?;
                    out.push(SyncEvent::Notifications {
                        added,
                        cursor: cursor as i64,
                    });
                }
                ClientEvent::Settings { generation } => out.push(SyncEvent::Settings { generation }),
                ClientEvent::More => out.push(SyncEvent::More),
                ClientEvent::Done { cursor } => {
                    out.extend(self.finish_exchange(now)?);
                    out.push(SyncEvent::Done { cursor });
                }
            }
        }
        Ok(out)
    }

    /// Stores the inbox items a pull carried and moves the inbox cursor, in
    /// one transaction; returns how many were new.
    fn store_inbox(&self, items: Vec<sync_core::batch::InboxEntry>, cursor: u64) -> Result<u32> {
        let rows: Vec<crate::store::NotificationRow> = items
            .into_iter()
            .map(|i| crate::store::NotificationRow {
                cursor: i.cursor as i64,
                key: i.key,
                kind: i.kind,
                doc: i.doc,
                entry: i.entry,
                text: i.text,
                urgent: i.urgent,
                at_ms: i.at_ms,
                read: false,
            })
            .collect();
        self.store.transaction(|s| {
            let added = s.notifications_add(&rows)?;
            let old: i64 = s.meta("inbox_cursor")?.and_then(|c| c.parse().ok()).unwrap_or(0);
            s.set_meta("inbox_cursor", &(cursor as i64).max(old).to_string())?;
            Ok(added as u32)
        })
    }

    /// The frame that tells the server the inbox is stored up to the
    /// replica's cursor; `None` if the server does not speak protocol 2.
    pub fn inbox_ack_frame(&self) -> Result<Option<Vec<u8>>> {
        let cursor: i64 = self
            .store
            .meta("inbox_cursor")?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(self.client.inbox_ack(cursor.max(0) as u64))
    }

    /// After the pull: forget journal entries the server now has, and rebase
    /// documents with refused edits.
    fn finish_exchange(&mut self, now: Timestamp) -> Result<Vec<SyncEvent>> {
        let notes = std::mem::take(&mut self.notes);
        let mut out = Vec::new();
        for (id, refused) in notes.refused {
            out.extend(self.rebase(id, refused, now)?);
        }
        for id in notes.acked {
            self.prune_journal(&id)?;
        }
        Ok(out)
    }

    /// Drops journal entries whose change the server is known to have.
    fn prune_journal(&self, id: &DocId) -> Result<()> {
        let journal = self.store.journal_for(id)?;
        if journal.is_empty() {
            return Ok(());
        }
        let Some(mut doc) = self.load_doc(id)? else {
            return self
                .store
                .journal_remove(&journal.iter().map(|j| j.seq).collect::<Vec<_>>());
        };
        let shared = self.client.state().shared.get(id).cloned().unwrap_or_default();
        if shared.iter().any(|h| !sync_core::doc::has_change(&mut doc, h)) {
            return Ok(());
        }
        let unshared: BTreeSet<ChangeHash> = doc.get_changes(&shared).iter().map(|c| c.hash()).collect();
        let done: Vec<i64> = journal
            .iter()
            .filter(|j| !unshared.contains(&j.change))
            .map(|j| j.seq)
            .collect();
        self.store.journal_remove(&done)
    }

    /// A tier above refused every change the replica held of a document:
    /// deletes it with its journal and notifications, and reports each of
    /// those changes as a refused edit (the refused ones with their rule,
    /// the others as built on them), in one transaction. Nothing is written
    /// again: there is no document left to write on.
    fn drop_document(
        &mut self,
        id: DocId,
        refused: Vec<RefusedChange>,
        changes: Vec<ChangeHash>,
        now: Timestamp,
    ) -> Result<Vec<SyncEvent>> {
        self.notes.refused.remove(&id);
        self.notes.acked.remove(&id);
        let kind = self.store.kind_of(&id)?.unwrap_or_default();
        let reasons: BTreeMap<ChangeHash, RefusedChange> = refused.into_iter().map(|r| (r.change, r)).collect();
        let journal = self.store.journal_for(&id)?;
        let depends = Rule::DependsOnRefused.as_str();
        let mut reports: Vec<RefusedRow> = changes
            .iter()
            .map(|hash| {
                let what = journal
                    .iter()
                    .find(|j| j.change == *hash)
                    .and_then(|j| serde_json::from_str::<Intent>(&j.intent).ok())
                    .map(|i| i.describe())
                    .unwrap_or_else(|| "an edit".into());
                let (rule, detail) = match reasons.get(hash) {
                    Some(r) if r.rule != depends => (r.rule.clone(), r.detail.clone()),
                    _ => (depends.to_owned(), "it was built on a refused edit".to_owned()),
                };
                RefusedRow {
                    seq: 0,
                    doc: id,
                    change: hash.to_string(),
                    rule,
                    detail,
                    what,
                    at_ms: now.millis(),
                }
            })
            .collect();
        let stale: Vec<i64> = journal.iter().map(|j| j.seq).collect();
        self.store.transaction(|s| {
            s.delete(&id)?;
            s.journal_remove(&stale)?;
            s.notifications_remove_for(&doc_name(&id))?;
            for r in &mut reports {
                r.seq = s.refused_add(r)?;
            }
            Ok(())
        })?;
        let mut events: Vec<SyncEvent> = reports
            .iter()
            .map(|r| SyncEvent::EditRefused {
                edit: refused_record(r),
            })
            .collect();
        events.push(SyncEvent::DocumentRemoved {
            doc_id: doc_name(&id),
            kind,
        });
        Ok(events)
    }

    /// Rebuilds a document without the refused changes and everything built
    /// on them, then writes again the user's later edits that did not need them.
    fn rebase(&mut self, id: DocId, refused: Vec<RefusedChange>, now: Timestamp) -> Result<Vec<SyncEvent>> {
        let Some(mut doc) = self.load_doc(&id)? else {
            return Ok(Vec::new());
        };
        let reasons: BTreeMap<ChangeHash, RefusedChange> = refused
            .into_iter()
            .filter(|r| sync_core::doc::has_change(&mut doc, &r.change))
            .map(|r| (r.change, r))
            .collect();
        if reasons.is_empty() {
            return Ok(Vec::new());
        }
        let all = doc.get_changes(&[]);
        let mut dropped: BTreeSet<ChangeHash> = reasons.keys().copied().collect();
        let mut order = Vec::new();
        let mut kept = Vec::new();
        for c in all {
            if dropped.contains(&c.hash()) || c.deps().iter().any(|d| dropped.contains(d)) {
                dropped.insert(c.hash());
                order.push(c.hash());
            } else {
                kept.push(c);
            }
        }
        let mut rebuilt = AutoCommit::new().with_actor(self.actor.clone());
        rebuilt
            .apply_changes(kept)
            .map_err(|e| LianxinError::Internal(format!("rebuilding {} failed: {e}", doc_name(&id))))?;
        let journal: BTreeMap<ChangeHash, crate::store::JournalRow> = self
            .store
            .journal_for(&id)?
            .into_iter()
            .map(|j| (j.change, j))
            .collect();
        let mut reports: Vec<RefusedRow> = Vec::new();
        let mut replayed: Vec<(ChangeHash, String, i64)> = Vec::new();
        let mut stale: Vec<i64> = Vec::new();
        let depends = Rule::DependsOnRefused.as_str();
        for hash in order {
            let entry = journal.get(&hash);
            if let Some(j) = entry {
                stale.push(j.seq);
            }
            let intent: Option<Intent> = entry.and_then(|j| serde_json::from_str(&j.intent).ok());
            let what = intent
                .as_ref()
                .map(Intent::describe)
                .unwrap_or_else(|| "an edit".into());
            let report = |rule: &str, detail: String| RefusedRow {
                seq: 0,
                doc: id,
                change: hash.to_string(),
                rule: rule.to_string(),
                detail,
                what: what.clone(),
                at_ms: now.millis(),
            };
            match reasons.get(&hash) {
                Some(r) if r.rule != depends => {
                    reports.push(report(&r.rule, r.detail.clone()));
                    continue;
                }
                _ => {}
            }
            // Built on a refused edit: write the same intent again, if it is one of ours.
            let Some(intent) = intent.filter(Intent::replayable) else {
                reports.push(report(depends, "it was built on a refused edit".into()));
                continue;
            };
            let at = Timestamp(entry.map(|j| j.at_ms).unwrap_or(now.millis()));
            let before = rebuilt.get_heads();
            let attempt = intent
                .apply(rebuilt.clone(), &mut self.author, at)
                .and_then(|(mut d, _)| self.check(&mut d, &before, now).map(|()| d));
            match attempt {
                Ok(mut d) => {
                    let json = serde_json::to_string(&intent).unwrap_or_default();
                    for c in d.get_changes(&before) {
                        replayed.push((c.hash(), json.clone(), at.millis()));
                    }
                    rebuilt = d;
                }
                Err(e) => reports.push(report(
                    depends,
                    format!("it was built on a refused edit and cannot be written again: {e}"),
                )),
            }
        }
        let mut events = Vec::new();
        let replays = replayed.len() as u32;
        self.store.transaction(|s| {
            if rebuilt.get_heads().is_empty() {
                s.delete(&id)?;
            } else {
                let meta = describe(
                    &rebuilt,
                    now,
                    self.session.principal.household.as_ref(),
                    &self.session.clocks,
                );
                s.save(&id, &rebuilt.get_heads(), &rebuilt.save(), &meta)?;
            }
            s.journal_remove(&stale)?;
            for (hash, json, at) in &replayed {
                s.journal_add(&id, hash, json, *at)?;
            }
            for r in &mut reports {
                r.seq = s.refused_add(r)?;
            }
            Ok(())
        })?;
        for r in reports {
            events.push(SyncEvent::EditRefused {
                edit: refused_record(&r),
            });
        }
        if replays > 0 {
            events.push(SyncEvent::EditsReplayed {
                doc_id: doc_name(&id),
                count: replays,
            });
        }
        Ok(events)
    }
}

pub(crate) fn refused_record(r: &RefusedRow) -> RefusedEditRecord {
    RefusedEditRecord {
        seq: r.seq,
        doc_id: doc_name(&r.doc),
        change: r.change.clone(),
        rule: r.rule.clone(),
        detail: r.detail.clone(),
        what: r.what.clone(),
        at_ms: r.at_ms,
    }
}

#[uniffi::export]
impl Replica {
    /// Starts a sync exchange and returns every frame to send (one WebSocket
    /// binary message each), all at once. For apps that move the bytes
    /// themselves; `sync_now` does it all. With `early_pull`, the first frame
    /// carries only the cursor, so the server starts sending what changed on
    /// its side while the rest of the push is still on its way (worth it on
    /// slow links; one small frame more).
    pub fn start_exchange(&self, early_pull: bool) -> Result<Vec<Vec<u8>>> {
        guard(|| self.lock().start_exchange(early_pull, false))
    }

    /// `start_exchange`, also carrying the notification inbox when the
    /// server speaks protocol 2: the pull then brings the new notifications
    /// (stored by `receive`, which reports them as `Notifications`), and the
    /// app sends `inbox_ack_frame()` once the exchange is done. Against an
    /// older server no `Notifications` event comes: fetch the inbox over
    /// HTTP as before.
    pub fn start_exchange_with_inbox(&self, early_pull: bool) -> Result<Vec<Vec<u8>>> {
        guard(|| self.lock().start_exchange(early_pull, true))
    }

    /// The frame acknowledging the notifications stored so far, to send
    /// after an exchange that brought some; nothing answers it. `None` when
    /// the server does not speak protocol 2.
    pub fn inbox_ack_frame(&self) -> Result<Option<Vec<u8>>> {
        guard(|| self.lock().inbox_ack_frame())
    }

    /// Handles one frame received from the server. The exchange is complete
    /// when the events include `Done`; `More` asks for another exchange.
    pub fn receive(&self, frame: Vec<u8>) -> Result<Vec<SyncEvent>> {
        guard(|| self.lock().receive(&frame))
    }

    /// Whether local edits wait to be sent.
    pub fn has_unsynced_changes(&self) -> Result<bool> {
        guard(|| Ok(!self.lock().dirty()?.is_empty()))
    }

    /// The client's cursor into the server's change sequence.
    pub fn sync_cursor(&self) -> u64 {
        self.lock().client.state().cursor
    }

    /// Edits the server refused, oldest first, until dismissed.
    pub fn refused_edits(&self) -> Result<Vec<RefusedEditRecord>> {
        guard(|| Ok(self.lock().store.refused_list()?.iter().map(refused_record).collect()))
    }

    /// Forgets a refused edit the user has seen. Returns whether it existed.
    pub fn dismiss_refused_edit(&self, seq: i64) -> Result<bool> {
        guard(|| self.lock().store.refused_dismiss(seq))
    }
}
