//! The client's side of an exchange, sans IO: build the push parts, handle acks and the pull.
//!
//! The host (a phone's sync service, or a station server syncing upstream)
//! owns the socket and the document store. On connection it calls
//! [`BatchClient::start`] and sends every frame it returns at once; then it
//! passes each frame it receives to [`BatchClient::handle`] until a
//! [`ClientEvent::Done`]. It saves [`BatchClient::state`] after each handled
//! frame. If the connection drops mid-exchange, the host simply calls `start`
//! again on the next connection: documents whose part was acknowledged are
//! not sent again, the others are.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::frame::{DocPull, DocPush, DocResult, Frame, InboxAck, InboxEntry, Push, RefusedChange};
use super::{BatchError, DocId, Encoding, PROTOCOL_VERSION, decode_into, encode_changes, heads_of};
use crate::doc::am;
use crate::time::Timestamp;

/// The most document data bytes (before frame compression) a push part
/// aims to carry; a single change larger than that travels alone. A cut link loses at most one part.
pub const PART_BUDGET: usize = 32 * 1024;

/// What the client must remember between exchanges; the host persists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientState {
    /// The client's cursor into the server's change sequence.
    pub cursor: u64,
    /// Per document, the heads both sides are known to have.
    pub shared: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Documents to mention in the next push even if not dirty: their
    /// acknowledgement arrived but the pull did not (so the server learns the
    /// client has them and does not send them back), or the server lost their
    /// history (so the whole document is pushed again).
    #[serde(default)]
    pub announce: BTreeSet<DocId>,
    /// Encodings the server reads, learnt from its last pull.
    #[serde(default = "universal_encodings")]
    pub server_encodings: Vec<Encoding>,
    /// The highest protocol version the server speaks, learnt from its last
    /// pull (1 until then): pushes use the lower of it and this build's.
    #[serde(default = "first_version")]
    pub server_version: u32,
}

fn first_version() -> u32 {
    1
}

/// What every peer reads: raw change chunks and whole saves.
fn universal_encodings() -> Vec<Encoding> {
    vec![Encoding::Changes, Encoding::Document]
}

impl Default for ClientState {
    /// The state of a client that has never synced.
    fn default() -> Self {
        ClientState {
            cursor: 0,
            shared: BTreeMap::new(),
            announce: BTreeSet::new(),
            server_encodings: universal_encodings(),
            server_version: first_version(),
        }
    }
}

/// The host's document store, as the client sees it.
pub trait ReplicaDocs {
    /// Documents edited locally since their heads in `state.shared` (and
    /// documents created locally). The host tracks this, typically by
    /// comparing each document's current heads, kept in its index, with
    /// `state.shared`, so that unchanged documents are never loaded. Listing
    /// a document that has nothing new is harmless but costs a load.
    fn dirty(&self, state: &ClientState) -> Vec<DocId>;
    /// Loads a document; `None` if the replica does not hold it.
    fn load(&mut self, id: &DocId) -> Option<AutoCommit>;
    /// Stores a document after changes from the server were applied to it.
    fn store(&mut self, id: &DocId, doc: AutoCommit);
    /// Drops a document of which nothing is left: the server refused every
    /// change the replica held of it (see [`ClientEvent::Dropped`]). The
    /// host removes it from its store and from whatever index lists it.
    fn remove(&mut self, id: &DocId);
    /// For a station relaying its people's changes: the user who delivered
    /// `actor`'s changes to it, attested in the push (see [`crate::relay`]).
    /// A phone names nobody: the server knows who it is.
    fn author(&self, _actor: &ActorId) -> Option<String> {
        None
    }
    /// For a station: its receipt times of entries in what it pushes of
    /// `id` that the tier above may lack (see
    /// [`crate::relay::receipts_to_carry`]). A phone sends none.
    fn receipts(&self, _id: &DocId) -> Vec<(String, Timestamp)> {
        Vec::new()
    }
    /// The receipt times the server sent with a pulled document (only a
    /// station is sent any), called before the document is stored: the
    /// host writes the document's new entries as received then.
    fn received(&mut self, _id: &DocId, _receipts: Vec<(String, Timestamp)>) {}
}

/// Something the host or the app should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server stored the pushed changes of a document (all of them,
    /// or all but the refused ones): both sides now share `shared`.
    Acked {
        /// The document.
        id: DocId,
        /// Its new shared heads.
        shared: Vec<ChangeHash>,
    },
    /// The server refused some changes this replica holds: pushed ones (in
    /// an ack), or, in a pull, changes it had received and a tier above
    /// refused since (only those the replica holds are listed). They stay
    /// in the local document; until the host rebases or drops them, they
    /// are pushed (and refused) again with every exchange.
    Refused {
        /// The document.
        id: DocId,
        /// The refused changes with their rules.
        refused: Vec<RefusedChange>,
    },
    /// A pull refused changes this replica holds of a document, and once
    /// they and every change built on them are gone nothing of it is left
    /// (a tier above refused the change that created it, and the server
    /// keeps no history of it): the client dropped the document
    /// ([`ReplicaDocs::remove`]) and shares nothing of it with the server
    /// any more. The host tells its user as it tells a [`ClientEvent::Refused`].
    Dropped {
        /// The document.
        id: DocId,
        /// The refused changes it held, with their rules.
        refused: Vec<RefusedChange>,
        /// Every change it held, in history order: the refused ones and
        /// those built on them.
        changes: Vec<ChangeHash>,
    },
    /// Changes from the server were applied to a local document.
    DocUpdated {
        /// The document.
        id: DocId,
        /// Its local heads now.
        heads: Vec<ChangeHash>,
    },
    /// A document new to this replica arrived and was stored.
    DocCreated {
        /// The document.
        id: DocId,
        /// Its heads.
        heads: Vec<ChangeHash>,
    },
    /// A pulled document did not end up with the server's heads (the server
    /// assumed history this replica lacks); it is pushed whole next time so
    /// the server can send the rest.
    Resync {
        /// The document.
        id: DocId,
    },
    /// The pull carried the user's inbox after the cursor the push sent
    /// (protocol 2). The host stores the items, moves its inbox cursor to
    /// `cursor` and then sends [`BatchClient::inbox_ack`].
    Inbox {
        /// The notifications, oldest first.
        items: Vec<InboxEntry>,
        /// The inbox cursor once they are stored.
        cursor: u64,
    },
    /// The generation of the server's settings (protocol 2): when it differs
    /// from the one the host last fetched, the settings changed.
    Settings {
        /// The generation.
        generation: u64,
    },
    /// The server paged the pull: start another exchange for the rest.
    More,
    /// The exchange is complete.
    Done {
        /// The client's new cursor.
        cursor: u64,
    },
}

/// One pushed slice of a document's changes, awaiting its ack.
#[derive(Debug)]
struct Sent {
    id: DocId,
    changes: Vec<Change>,
}

#[derive(Debug)]
struct Pending {
    exchange: u64,
    parts: BTreeMap<u32, Vec<Sent>>,
    acked: BTreeSet<DocId>,
    /// Per document, the changes refused so far in this exchange.
    refused: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    /// Documents found to need a whole push; later acks for them are moot.
    resynced: BTreeSet<DocId>,
    /// Documents an early pull dropped; later acks for them are moot too.
    dropped: BTreeSet<DocId>,
}

/// The sans-IO batched sync client.
#[derive(Debug)]
pub struct BatchClient {
    state: ClientState,
    encodings: Vec<Encoding>,
    part_budget: usize,
    early: bool,
    inbox: Option<u64>,
    pending: Option<Pending>,
}

impl BatchClient {
    /// A client resuming from `state` that reads every encoding this build knows.
    pub fn new(state: ClientState) -> Self {
        BatchClient {
            state,
            encodings: Encoding::ALL.to_vec(),
            part_budget: PART_BUDGET,
            early: false,
            inbox: None,
            pending: None,
        }
    }

    /// Carries the inbox in the exchanges (protocol 2, once the server
    /// speaks it): `cursor` is the host's inbox cursor, up to which it has
    /// stored every notification. `None` stops carrying it. Call before
    /// each [`BatchClient::start`] with the cursor the host holds.
    pub fn carry_inbox(&mut self, cursor: Option<u64>) {
        self.inbox = cursor;
    }

    /// The protocol version the next push speaks: this build's, or the
    /// server's if that is older.
    pub fn version(&self) -> u32 {
        PROTOCOL_VERSION.min(self.state.server_version.max(1))
    }

    /// Whether the next exchange carries the inbox: the host asked for it
    /// and the server speaks protocol 2. When it does not, the host reads
    /// the inbox some other way.
    pub fn carries_inbox(&self) -> bool {
        self.inbox.is_some() && self.version() >= 2
    }

    /// The frame that acknowledges the inbox up to `cursor`, once the host
    /// has stored the items of an [`ClientEvent::Inbox`]. Nothing answers it;
    /// `None` if the server does not speak protocol 2.
    pub fn inbox_ack(&self, cursor: u64) -> Option<Vec<u8>> {
        (self.version() >= 2).then(|| {
            Frame::InboxAck(InboxAck {
                version: self.version(),
                cursor,
            })
            .encode()
        })
    }

    /// Restricts the encodings this client announces it reads (preferred first).
    pub fn with_encodings(mut self, encodings: Vec<Encoding>) -> Self {
        self.encodings = encodings;
        self
    }

    /// Asks for early pulls: when there is something to push, part 0 carries
    /// only the cursor, so the server can start sending what changed on its
    /// side while the rest of the push is still on its way up. On a slow
    /// link the two directions then overlap instead of taking turns. Costs
    /// one small frame; off by default.
    pub fn with_early_pull(mut self, on: bool) -> Self {
        self.early = on;
        self
    }

    /// Sets the document data bytes per push part (default [`PART_BUDGET`]).
    pub fn with_part_budget(mut self, bytes: usize) -> Self {
        self.part_budget = bytes.max(1);
        self
    }

    /// The state to persist.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Whether an exchange is under way.
    pub fn in_exchange(&self) -> bool {
        self.pending.is_some()
    }

    /// Starts an exchange (abandoning any unfinished one) and returns every
    /// push frame to send, all at once. `exchange` must differ from the
    /// previous exchange's id (a counter or a random number chosen by the host).
    pub fn start(&mut self, exchange: u64, docs: &mut impl ReplicaDocs) -> Vec<Vec<u8>> {
        let mut ids: BTreeSet<DocId> = docs.dirty(&self.state).into_iter().collect();
        ids.extend(self.state.announce.iter().copied());
        let mut slices: Vec<(DocPush, Sent)> = Vec::new();
        for id in ids {
            let Some(mut doc) = docs.load(&id) else {
                // The replica no longer holds it: nothing to push or announce.
                self.state.announce.remove(&id);
                continue;
            };
            let base = self.state.shared.get(&id).cloned().unwrap_or_default();
            let first = slices.len();
            self.slices(id, &mut doc, base, &mut slices);
            // Every slice with changes carries the receipts: the server
            // takes from them those of the entries new in that slice.
            if slices[first..].iter().any(|(p, _)| !p.data.is_empty()) {
                let receipts = docs.receipts(&id);
                for (push, _) in slices[first..].iter_mut().filter(|(p, _)| !p.data.is_empty()) {
                    push.receipts = receipts.clone();
                }
            }
        }
        self.pending = Some(Pending {
            exchange,
            parts: BTreeMap::new(),
            acked: BTreeSet::new(),
            refused: BTreeMap::new(),
            resynced: BTreeSet::new(),
            dropped: BTreeSet::new(),
        });
        // Pack slices into parts of at most `part_budget` data bytes, after a
        // part 0 without documents if early pulls are wanted.
        let mut parts: Vec<(Push, Vec<Sent>)> = Vec::new();
        if self.early && !slices.is_empty() {
            parts.push((Push::new(exchange, 0, self.state.cursor), Vec::new()));
        }
        let first_data_part = parts.len();
        let mut size = 0;
        for (push, sent) in slices {
            if parts.len() == first_data_part || (size > 0 && size + push.data.len() > self.part_budget) {
                parts.push((Push::new(exchange, parts.len() as u32, self.state.cursor), Vec::new()));
                size = 0;
            }
            size += push.data.len();
            let (part, sents) = parts.last_mut().expect("a part was just pushed");
            part.docs.push(push);
            sents.push(sent);
        }
        if parts.is_empty() {
            parts.push((Push::new(exchange, 0, self.state.cursor), Vec::new()));
        }
        parts[0].0.encodings = self.encodings.clone();
        parts[0].0.early = self.early;
        let version = self.version();
        for (push, _) in &mut parts {
            push.version = version;
        }
        let last = &mut parts.last_mut().expect("at least one part").0;
        last.last = true;
        if self.carries_inbox() {
            last.inbox = self.inbox;
        }
        for (push, sents) in &mut parts {
            let actors: BTreeSet<&ActorId> = sents
                .iter()
                .flat_map(|s| s.changes.iter().map(Change::actor_id))
                .collect();
            push.authors = actors
                .into_iter()
                .filter_map(|a| docs.author(a).map(|user| (a.clone(), user)))
                .collect();
        }
        let pending = self.pending.as_mut().expect("set above");
        parts
            .into_iter()
            .map(|(push, sents)| {
                pending.parts.insert(push.part, sents);
                Frame::Push(push).encode()
            })
            .collect()
    }

    /// Splits a document's changes since `base` into slices of at most one
    /// part's budget, each with the heads before it as its base.
    fn slices(&self, id: DocId, doc: &mut AutoCommit, base: Vec<ChangeHash>, out: &mut Vec<(DocPush, Sent)>) {
        let changes = doc.get_changes(&base);
        if changes.is_empty() {
            if self.state.announce.contains(&id) {
                let push = DocPush {
                    id,
                    base: base.clone(),
                    encoding: Encoding::Changes,
                    data: Vec::new(),
                    receipts: Vec::new(),
                };
                out.push((push, Sent { id, changes }));
            }
            return;
        }
        let supported = &self.state.server_encodings;
        let (mut encoding, mut data) = encode_changes(doc, &changes, supported);
        if base.is_empty() && supported.contains(&Encoding::Document) {
            let saved = doc.save();
            if saved.len() < data.len() {
                (encoding, data) = (Encoding::Document, saved);
            }
        }
        if data.len() <= self.part_budget {
            let push = DocPush {
                id,
                base: base.clone(),
                encoding,
                data,
                receipts: Vec::new(),
            };
            out.push((push, Sent { id, changes }));
            return;
        }
        // Too big for one part: cut the changes into slices whose encoding
        // should come near the budget, scaling by how well the whole encoded.
        let raw: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
        let raw_budget = (self.part_budget as u128 * raw as u128 * 9 / (10 * data.len() as u128)) as usize;
        let mut base = base;
        let mut rest = changes.as_slice();
        while !rest.is_empty() {
            let mut n = 0;
            let mut size = 0;
            while n < rest.len() && (n == 0 || size + rest[n].raw_bytes().len() <= raw_budget) {
                size += rest[n].raw_bytes().len();
                n += 1;
            }
            let (slice, tail) = rest.split_at(n);
            let (encoding, data) = encode_changes(doc, slice, supported);
            let next = heads_of(&base, slice);
            let push = DocPush {
                id,
                base: base.clone(),
                encoding,
                data,
                receipts: Vec::new(),
            };
            out.push((
                push,
                Sent {
                    id,
                    changes: slice.to_vec(),
                },
            ));
            base = next;
            rest = tail;
        }
    }

    /// Handles one frame from the server.
    pub fn handle(&mut self, frame: &[u8], docs: &mut impl ReplicaDocs) -> Result<Vec<ClientEvent>, BatchError> {
        match Frame::decode(frame)? {
            Frame::Ack(ack) => {
                let pending = self.expect_exchange(ack.exchange)?;
                let sents = pending
                    .parts
                    .remove(&ack.part)
                    .ok_or_else(|| BatchError::Unexpected(format!("ack for part {} that is not pending", ack.part)))?;
                if sents.len() != ack.docs.len() || sents.iter().zip(&ack.docs).any(|(s, r)| s.id != r.id) {
                    return Err(BatchError::Unexpected(format!(
                        "ack for part {} does not match the documents pushed",
                        ack.part
                    )));
                }
                let mut events = Vec::new();
                for (sent, result) in sents.into_iter().zip(ack.docs) {
                    self.acked(sent, result, &mut events);
                }
                Ok(events)
            }
            Frame::Pull(pull) if pull.early => {
                self.expect_exchange(pull.exchange)?;
                let mut events = Vec::new();
                for doc in pull.docs {
                    self.pulled(doc, docs, &mut events)?;
                }
                let pending = self.pending.as_mut().expect("checked above");
                pending.resynced.extend(events.iter().filter_map(|e| match e {
                    ClientEvent::Resync { id } => Some(*id),
                    _ => None,
                }));
                pending.dropped.extend(dropped_in(&events));
                Ok(events)
            }
            Frame::Pull(pull) => {
                self.expect_exchange(pull.exchange)?;
                let pending = self.pending.take().expect("checked above");
                let mut events = Vec::new();
                for doc in pull.docs {
                    self.pulled(doc, docs, &mut events)?;
                }
                // The server now knows what this exchange pushed; the
                // documents still to announce are the ones found incomplete.
                let mut resync = pending.resynced;
                resync.extend(events.iter().filter_map(|e| match e {
                    ClientEvent::Resync { id } => Some(*id),
                    _ => None,
                }));
                self.state
                    .announce
                    .retain(|id| !pending.acked.contains(id) || resync.contains(id));
                self.state.announce.extend(resync);
                // A dropped document is neither announced nor shared, even if
                // an ack of this exchange named it.
                for id in pending.dropped.iter().copied().chain(dropped_in(&events)) {
                    self.state.announce.remove(&id);
                    self.state.shared.remove(&id);
                }
                self.state.cursor = pull.cursor;
                if !pull.encodings.is_empty() {
                    self.state.server_encodings = pull.encodings;
                }
                self.state.server_version = pull.version.max(1);
                if let Some(inbox) = pull.inbox {
                    events.push(ClientEvent::Inbox {
                        items: inbox.items,
                        cursor: inbox.cursor,
                    });
                }
                if let Some(generation) = pull.settings {
                    events.push(ClientEvent::Settings { generation });
                }
                if pull.more {
                    events.push(ClientEvent::More);
                }
                events.push(ClientEvent::Done { cursor: pull.cursor });
                Ok(events)
            }
            Frame::Error(e) => {
                self.pending = None;
                Err(BatchError::Peer {
                    code: e.code.as_str().to_string(),
                    message: e.message,
                })
            }
            Frame::Push(_) | Frame::InboxAck(_) => Err(BatchError::Unexpected(
                "a server does not send push or iack frames".into(),
            )),
        }
    }

    fn expect_exchange(&mut self, exchange: u64) -> Result<&mut Pending, BatchError> {
        match self.pending.as_mut() {
            Some(p) if p.exchange == exchange => Ok(p),
            _ => Err(BatchError::Unexpected(format!(
                "frame for exchange {exchange}, which is not under way"
            ))),
        }
    }

    fn acked(&mut self, sent: Sent, result: DocResult, events: &mut Vec<ClientEvent>) {
        let id = sent.id;
        let shared = self.state.shared.get(&id).cloned().unwrap_or_default();
        let pending = self.pending.as_mut().expect("acks come within an exchange");
        if pending.resynced.contains(&id) || pending.dropped.contains(&id) {
            // Already to be pushed whole; nothing this ack says changes that.
        } else if result.refused.iter().any(|r| shared.contains(&r.change)) {
            // The server lacks what this replica believes shared: it lost
            // history. Push the whole document next time.
            self.state.shared.remove(&id);
            self.state.announce.insert(id);
            pending.resynced.insert(id);
            events.push(ClientEvent::Resync { id });
        } else {
            // A change is refused if it is named, or builds on a refused change
            // (the server may drop those silently when they follow in a later slice).
            let bad = pending.refused.entry(id).or_default();
            bad.extend(result.refused.iter().map(|r| r.change));
            let mut kept: Vec<Change> = Vec::new();
            for c in sent.changes {
                if bad.contains(&c.hash()) || c.deps().iter().any(|d| bad.contains(d)) {
                    bad.insert(c.hash());
                } else {
                    kept.push(c);
                }
            }
            let shared = heads_of(&shared, &kept);
            self.state.shared.insert(id, shared.clone());
            self.state.announce.insert(id);
            pending.acked.insert(id);
            events.push(ClientEvent::Acked { id, shared });
        }
        if !result.refused.is_empty() {
            events.push(ClientEvent::Refused {
                id,
                refused: result.refused,
            });
        }
    }

    fn pulled(
        &mut self,
        pull: DocPull,
        docs: &mut impl ReplicaDocs,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), BatchError> {
        let (mut doc, created) = match docs.load(&pull.id) {
            Some(doc) => (doc, false),
            None if pull.heads.is_empty() => {
                // The server holds nothing of a document this replica never
                // held (a tier above took it back whole): nothing to store
                // and nothing to report.
                return Ok(());
            }
            None => (AutoCommit::new(), true),
        };
        decode_into(&mut doc, pull.encoding, &pull.data)?;
        let complete = pull.heads.iter().all(|h| am::has_change(&mut doc, h));
        // Refusals of changes this replica received before a tier above
        // refused them: the ones it holds are reported like refusals of its
        // own pushes, so the host drops them the same way.
        let held: Vec<RefusedChange> = pull
            .refused
            .into_iter()
            .filter(|r| am::has_change(&mut doc, &r.change))
            .collect();
        if !held.is_empty() {
            let refused: BTreeSet<ChangeHash> = held.iter().map(|r| r.change).collect();
            let (kept, changes) = crate::relay::split_history(&mut doc, &refused);
            if kept.is_empty() {
                docs.remove(&pull.id);
                self.state.shared.remove(&pull.id);
                self.state.announce.remove(&pull.id);
                events.push(ClientEvent::Dropped {
                    id: pull.id,
                    refused: held,
                    changes,
                });
                return Ok(());
            }
        }
        let heads = doc.get_heads();
        if !pull.receipts.is_empty() {
            docs.received(&pull.id, pull.receipts);
        }
        docs.store(&pull.id, doc);
        if complete {
            self.state.shared.insert(pull.id, pull.heads);
            events.push(if created {
                ClientEvent::DocCreated { id: pull.id, heads }
            } else {
                ClientEvent::DocUpdated { id: pull.id, heads }
            });
        } else {
            self.state.shared.remove(&pull.id);
            events.push(ClientEvent::Resync { id: pull.id });
        }
        if !held.is_empty() {
            events.push(ClientEvent::Refused {
                id: pull.id,
                refused: held,
            });
        }
        Ok(())
    }
}

/// The documents `events` report dropped.
fn dropped_in(events: &[ClientEvent]) -> impl Iterator<Item = DocId> + '_ {
    events.iter().filter_map(|e| match e {
        ClientEvent::Dropped { id, .. } => Some(*id),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::frame::Pull;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};

    #[derive(Default)]
    struct Docs(BTreeMap<DocId, AutoCommit>);

    impl ReplicaDocs for Docs {
        fn dirty(&self, _: &ClientState) -> Vec<DocId> {
            Vec::new()
        }
        fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
            self.0.get(id).cloned()
        }
        fn store(&mut self, id: &DocId, doc: AutoCommit) {
            self.0.insert(*id, doc);
        }
        fn remove(&mut self, id: &DocId) {
            self.0.remove(id);
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = ClientState {
            cursor: 17,
            ..ClientState::default()
        };
        state.shared.insert(DocId([1; 16]), vec![ChangeHash([2; 32])]);
        state.announce.insert(DocId([3; 16]));
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ClientState>(&json).unwrap(), state);
        // A state saved before the optional fields existed still loads.
        let old: ClientState = serde_json::from_str(r#"{"cursor":3,"shared":{}}"#).unwrap();
        assert_eq!(old.server_encodings, vec![Encoding::Changes, Encoding::Document]);
    }

    #[test]
    fn an_idle_start_is_one_empty_last_part() {
        let mut client = BatchClient::new(ClientState::default());
        let frames = client.start(5, &mut Docs::default());
        assert_eq!(frames.len(), 1);
        let Frame::Push(p) = Frame::decode(&frames[0]).unwrap() else {
            panic!("not a push")
        };
        assert!(p.last && p.docs.is_empty() && p.part == 0);
        assert_eq!(p.encodings, Encoding::ALL.to_vec());
    }

    #[test]
    fn a_pull_that_does_not_reach_the_server_heads_asks_for_a_resync() {
        let id = DocId([9; 16]);
        let mut doc = AutoCommit::new().with_actor(ActorId::from([1u8; 16].as_slice()));
        doc.put(ROOT, "a", 1).unwrap();
        doc.commit();
        let first = doc.get_heads();
        doc.put(ROOT, "a", 2).unwrap();
        doc.commit();
        // The server wrongly assumes the phone has the first change.
        let later = doc.get_changes(&first);
        let (encoding, data) = encode_changes(&doc, &later, &[Encoding::Changes]);
        let mut client = BatchClient::new(ClientState::default());
        let mut docs = Docs::default();
        client.start(1, &mut docs);
        let pull = Frame::Pull(Pull {
            early: false,
            exchange: 1,
            cursor: 10,
            docs: vec![DocPull {
                id,
                base: first,
                heads: doc.get_heads(),
                encoding,
                data,
                refused: vec![],
                receipts: vec![],
            }],
            more: false,
            encodings: Encoding::ALL.to_vec(),
            version: 1,
            inbox: None,
            settings: None,
        });
        let events = client.handle(&pull.encode(), &mut docs).unwrap();
        assert_eq!(
            events,
            vec![ClientEvent::Resync { id }, ClientEvent::Done { cursor: 10 }]
        );
        assert!(client.state().announce.contains(&id));
        assert!(!client.state().shared.contains_key(&id));
        // The next exchange pushes the document whole (the server fills in the rest).
        let frames = client.start(2, &mut docs);
        let Frame::Push(p) = Frame::decode(&frames[0]).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.docs.len(), 1);
        assert!(p.docs[0].base.is_empty());
    }

    #[test]
    fn a_pull_reports_the_refused_changes_the_replica_holds() {
        let id = DocId([7; 16]);
        let mut server = AutoCommit::new().with_actor(ActorId::from([1u8; 16].as_slice()));
        server.put(ROOT, "a", 1).unwrap();
        server.commit();
        // The replica received a change the tier above refused since.
        let mut held = server.fork().with_actor(ActorId::from([2u8; 16].as_slice()));
        held.put(ROOT, "b", 2).unwrap();
        held.commit();
        let refused_hash = held.get_heads()[0];
        let mut docs = Docs::default();
        docs.0.insert(id, held);
        let mut client = BatchClient::new(ClientState::default());
        client.start(1, &mut docs);
        let refusal = |change| RefusedChange {
            change,
            rule: "role-required".into(),
            detail: "refused by the tier above".into(),
        };
        let pull = Frame::Pull(Pull {
            early: false,
            exchange: 1,
            cursor: 5,
            docs: vec![DocPull {
                id,
                base: server.get_heads(),
                heads: server.get_heads(),
                encoding: Encoding::Changes,
                data: vec![],
                refused: vec![refusal(refused_hash), refusal(ChangeHash([3; 32]))],
                receipts: vec![],
            }],
            more: false,
            encodings: Encoding::ALL.to_vec(),
            version: 2,
            inbox: None,
            settings: None,
        });
        let events = client.handle(&pull.encode(), &mut docs).unwrap();
        // Only the change it holds is reported; the server's heads are shared.
        assert!(
            events.contains(&ClientEvent::Refused {
                id,
                refused: vec![refusal(refused_hash)],
            }),
            "{events:?}"
        );
        assert_eq!(client.state().shared[&id], server.get_heads());
    }

    /// A pull frame of `exchange` carrying `docs`.
    fn pull_frame(exchange: u64, early: bool, cursor: u64, docs: Vec<DocPull>) -> Vec<u8> {
        Frame::Pull(Pull {
            early,
            exchange,
            cursor,
            docs,
            more: false,
            encodings: Encoding::ALL.to_vec(),
            version: 2,
            inbox: None,
            settings: None,
        })
        .encode()
    }

    /// What a server that took a document back whole sends: no history,
    /// and the refusal of the change that created it.
    fn taken_back(id: DocId, created: ChangeHash) -> DocPull {
        DocPull {
            id,
            base: vec![],
            heads: vec![],
            encoding: Encoding::Changes,
            data: vec![],
            refused: vec![RefusedChange {
                change: created,
                rule: "not-allowed-to-create".into(),
                detail: "refused by the tier above: officers record petitions for their own jurisdiction".into(),
            }],
            receipts: vec![],
        }
    }

    /// A document of two changes, the second built on the first.
    fn two_changes() -> (AutoCommit, Vec<ChangeHash>) {
        let mut doc = AutoCommit::new().with_actor(ActorId::from([4u8; 16].as_slice()));
        let mut hashes = Vec::new();
        for i in 0..2 {
            doc.put(ROOT, "n", i as i64).unwrap();
            doc.commit();
            hashes.push(doc.get_heads()[0]);
        }
        (doc, hashes)
    }

    #[test]
    fn a_pull_refusing_the_change_that_created_a_document_drops_it() {
        let id = DocId([6; 16]);
        let (doc, hashes) = two_changes();
        let mut docs = Docs::default();
        docs.0.insert(id, doc);
        let mut state = ClientState::default();
        state.shared.insert(id, vec![hashes[1]]);
        let mut client = BatchClient::new(state);
        client.start(1, &mut docs);
        let events = client
            .handle(&pull_frame(1, false, 9, vec![taken_back(id, hashes[0])]), &mut docs)
            .unwrap();
        let ClientEvent::Dropped {
            id: dropped,
            refused,
            changes,
        } = &events[0]
        else {
            panic!("not dropped: {events:?}")
        };
        assert_eq!(*dropped, id);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].rule, "not-allowed-to-create");
        assert_eq!(*changes, hashes, "every change held, in history order");
        assert_eq!(events[1..], [ClientEvent::Done { cursor: 9 }]);
        assert!(!docs.0.contains_key(&id), "the replica still holds it");
        assert!(!client.state().shared.contains_key(&id) && !client.state().announce.contains(&id));
        // Nothing of it is pushed again.
        let frames = client.start(2, &mut docs);
        let Frame::Push(p) = Frame::decode(&frames[0]).unwrap() else {
            panic!("not a push")
        };
        assert!(p.docs.is_empty());
    }

    #[test]
    fn a_replica_that_never_held_a_document_taken_back_learns_nothing_of_it() {
        let id = DocId([6; 16]);
        let (_, hashes) = two_changes();
        let mut docs = Docs::default();
        let mut client = BatchClient::new(ClientState::default());
        client.start(1, &mut docs);
        let events = client
            .handle(&pull_frame(1, false, 9, vec![taken_back(id, hashes[0])]), &mut docs)
            .unwrap();
        assert_eq!(events, [ClientEvent::Done { cursor: 9 }]);
        assert!(docs.0.is_empty(), "an empty document was stored");
        assert!(!client.state().shared.contains_key(&id));
    }

    #[test]
    fn an_ack_after_an_early_pull_dropped_the_document_does_not_bring_it_back() {
        let id = DocId([6; 16]);
        let (mut doc, hashes) = two_changes();
        // A local edit not yet pushed, built on the refused creation.
        doc.put(ROOT, "local", 1).unwrap();
        doc.commit();
        let mut docs = Docs::default();
        docs.0.insert(id, doc);
        let mut state = ClientState::default();
        state.shared.insert(id, vec![hashes[1]]);
        let mut client = BatchClient::new(state).with_early_pull(true);
        struct Dirty(Docs);
        impl ReplicaDocs for Dirty {
            fn dirty(&self, _: &ClientState) -> Vec<DocId> {
                self.0.0.keys().copied().collect()
            }
            fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
                self.0.load(id)
            }
            fn store(&mut self, id: &DocId, doc: AutoCommit) {
                self.0.store(id, doc)
            }
            fn remove(&mut self, id: &DocId) {
                self.0.remove(id)
            }
        }
        let mut docs = Dirty(docs);
        let frames = client.start(1, &mut docs);
        assert_eq!(frames.len(), 2, "an early part 0, then the document");
        let events = client
            .handle(&pull_frame(1, true, 0, vec![taken_back(id, hashes[0])]), &mut docs)
            .unwrap();
        assert!(matches!(events[..], [ClientEvent::Dropped { .. }]), "{events:?}");
        // The server lost the history the push built on.
        let ack = Frame::Ack(super::super::frame::Ack {
            exchange: 1,
            part: 1,
            docs: vec![DocResult {
                id,
                heads: vec![],
                accepted: 0,
                refused: vec![RefusedChange {
                    change: hashes[1],
                    rule: "missing-dependency".into(),
                    detail: "the server does not have this base change".into(),
                }],
            }],
        });
        client.handle(&ack.encode(), &mut docs).unwrap();
        let events = client.handle(&pull_frame(1, false, 9, vec![]), &mut docs).unwrap();
        assert_eq!(events, [ClientEvent::Done { cursor: 9 }]);
        assert!(!client.state().shared.contains_key(&id) && !client.state().announce.contains(&id));
        assert!(docs.0.0.is_empty());
    }

    #[test]
    fn frames_of_another_exchange_are_refused() {
        let mut client = BatchClient::new(ClientState::default());
        let mut docs = Docs::default();
        client.start(1, &mut docs);
        let stale = Frame::Pull(Pull {
            early: false,
            exchange: 0,
            cursor: 1,
            docs: vec![],
            more: false,
            encodings: vec![],
            version: 1,
            inbox: None,
            settings: None,
        });
        assert!(matches!(
            client.handle(&stale.encode(), &mut docs),
            Err(BatchError::Unexpected(_))
        ));
        assert!(client.in_exchange());
    }
}
