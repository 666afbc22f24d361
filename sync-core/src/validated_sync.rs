//! Receiving an Automerge sync message with write validation.
//!
//! Stock Automerge applies every change a sync message carries. Here the
//! changes are first extracted (by loading the message's chunks into a
//! scratch fork of the stored document), then checked with
//! [`crate::policy::check_changes`]; only accepted changes reach the
//! document, and the sync state is then advanced with the message minus its
//! changes. The host persists `accepted` before it sends `reply`, so a
//! change is acknowledged only once it is durable.

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change};

use crate::policy::{PolicyContext, Refusal, check_changes};

/// What became of one incoming sync message.
#[derive(Debug)]
pub struct Received {
    /// The document with every accepted change applied.
    pub doc: AutoCommit,
    /// Accepted changes, for the host to persist before replying.
    pub accepted: Vec<Change>,
    /// Refused changes with their rule.
    pub refused: Vec<Refusal>,
    /// The refused changes themselves (and those built on them).
    pub rejected: Vec<Change>,
}

/// Changes refused from one peer, remembered so that peer's heads can be
/// read without them.
///
/// A peer keeps a refused change in its own history, so its heads name a
/// change this side will never have. Automerge would keep asking for it and
/// the two sides would never fall quiet; reading the peer's heads with each
/// refused change replaced by its dependencies lets the exchange settle.
#[derive(Clone, Debug, Default)]
pub struct RefusedChanges {
    deps: std::collections::BTreeMap<automerge::ChangeHash, Vec<automerge::ChangeHash>>,
}

impl RefusedChanges {
    pub fn remember(&mut self, changes: &[Change]) {
        for c in changes {
            self.deps.insert(c.hash(), c.deps().to_vec());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// `heads` with every refused change replaced by its dependencies.
    pub fn mask(&self, heads: &[automerge::ChangeHash]) -> Vec<automerge::ChangeHash> {
        let mut out = std::collections::BTreeSet::new();
        let mut stack: Vec<automerge::ChangeHash> = heads.to_vec();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            match self.deps.get(&h) {
                Some(deps) => stack.extend(deps.iter().copied()),
                None => {
                    out.insert(h);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Why a sync message could not be processed at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("not an Automerge sync message: {0}")]
    Decode(String),
    #[error("the changes in the sync message do not load: {0}")]
    Load(String),
    #[error("sync state: {0}")]
    State(String),
    /// The message or its changes crossed a limit of [`crate::guard`]
    /// before Automerge saw them.
    #[error("sync message {0}")]
    Refused(crate::guard::Refused),
}

/// Decodes `message`, validates its changes for `ctx`, and advances `state`.
pub fn receive(
    ctx: &PolicyContext<'_>,
    doc: AutoCommit,
    state: &mut sync::State,
    refused: &mut RefusedChanges,
    message: &[u8],
) -> Result<Received, SyncError> {
    let (mut message, chunks) = split(message)?;
    let mut received = receive_chunks(ctx, doc, &chunks)?;
    refused.remember(&received.rejected);
    message.heads = refused.mask(&message.heads);
    advance(&mut received.doc, state, message, !chunks.is_empty())?;
    Ok(received)
}

/// Splits a sync message into the message without its changes and the
/// changes' bytes (Automerge chunks, possibly empty). The message is first
/// checked by [`crate::guard::sync_message_envelope`] (hash lists, Bloom
/// filters) with the default limits; [`incoming_changes`] checks the chunks
/// before it loads them.
pub fn split(message: &[u8]) -> Result<(sync::Message, Vec<u8>), SyncError> {
    crate::guard::sync_message_envelope(message, &crate::guard::Limits::default()).map_err(|r| {
        if r.is_malformed() {
            SyncError::Decode(r.detail)
        } else {
            SyncError::Refused(r)
        }
    })?;
    let mut message = sync::Message::decode(message).map_err(|e| SyncError::Decode(e.to_string()))?;
    let bytes: Vec<u8> = message.changes.iter().flat_map(|c| c.iter().copied()).collect();
    message.changes = sync::ChunkList::empty();
    Ok((message, bytes))
}

/// The changes that `chunks` (change chunks, a bundle or a saved document:
/// anything `load_incremental` reads) would add to `doc`, in causal order,
/// found by loading them into a scratch fork so nothing reaches `doc` before
/// it is checked. Changes `doc` already has are not returned. Automerge
/// sees the chunks only once [`crate::guard::chunks`] has passed them.
pub fn incoming_changes(doc: &mut AutoCommit, chunks: &[u8]) -> Result<Vec<Change>, SyncError> {
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    crate::guard::chunks(chunks, &crate::guard::Limits::default()).map_err(|r| {
        if r.is_malformed() {
            SyncError::Load(r.detail)
        } else {
            SyncError::Refused(r)
        }
    })?;
    let before = doc.get_heads();
    let mut scratch = doc.fork();
    scratch
        .load_incremental(chunks)
        .map_err(|e| SyncError::Load(e.to_string()))?;
    Ok(scratch.get_changes(&before))
}

/// Advances `state` with a message whose changes (if it `carried_changes`)
/// were already dealt with.
///
/// Automerge, seeing a change-less message whose heads it already has, would
/// take those heads as sent and answer nothing, so the peer would never learn
/// its changes were stored; a stock receiver acknowledges them, so the heads
/// really last sent are kept.
pub fn advance(
    doc: &mut AutoCommit,
    state: &mut sync::State,
    message: sync::Message,
    carried_changes: bool,
) -> Result<(), SyncError> {
    let last_sent = carried_changes.then(|| state.last_sent_heads.clone());
    doc.sync()
        .receive_sync_message(state, message)
        .map_err(|e| SyncError::State(e.to_string()))?;
    if let Some(last_sent) = last_sent {
        state.last_sent_heads = last_sent;
    }
    Ok(())
}

/// Validates the changes carried by `chunks` against `doc` for `ctx`, and
/// applies the accepted ones; only [`crate::policy::check_changes`] decides
/// what reaches `doc`.
pub(crate) fn receive_chunks(
    ctx: &PolicyContext<'_>,
    mut doc: AutoCommit,
    chunks: &[u8],
) -> Result<Received, SyncError> {
    let incoming = incoming_changes(&mut doc, chunks)?;
    if incoming.is_empty() {
        return Ok(Received {
            doc,
            accepted: Vec::new(),
            refused: Vec::new(),
            rejected: Vec::new(),
        });
    }
    let checked = check_changes(ctx, doc, incoming.clone());
    let (accepted, rejected) = incoming.into_iter().partition(|c| checked.accepted.contains(&c.hash()));
    Ok(Received {
        doc: checked.doc,
        accepted,
        refused: checked.refused,
        rejected,
    })
}

/// The next message to send to the peer, if any.
pub fn generate(doc: &mut AutoCommit, state: &mut sync::State) -> Option<Vec<u8>> {
    doc.sync().generate_sync_message(state).map(|m| m.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{Membership, OrgTree, Principal, Role, Unit, UnitKind};
    use crate::petition::{EventBody, Location, PetitionDoc, PetitionHeader, Status};
    use crate::{Author, Category, Channel, HlcClock, Timestamp, UnitId, UserId};
    use automerge::ActorId;

    fn who(id: &str, unit: &str, role: Role) -> Principal {
        Principal {
            user: UserId::new(id).unwrap(),
            memberships: vec![Membership {
                unit: UnitId::new(unit).unwrap(),
                role,
            }],
            household: None,
        }
    }

    /// Runs a client/server exchange until neither side has anything to say.
    fn sync_until_quiet(ctx: &PolicyContext<'_>, client: &mut AutoCommit, server: &mut AutoCommit) -> Vec<Refusal> {
        let (mut cs, mut ss) = (sync::State::new(), sync::State::new());
        let mut refused_memory = RefusedChanges::default();
        let mut refusals = Vec::new();
        for _ in 0..20 {
            let mut quiet = true;
            if let Some(m) = generate(client, &mut cs) {
                quiet = false;
                let r = receive(ctx, server.clone(), &mut ss, &mut refused_memory, &m).unwrap();
                *server = r.doc;
                refusals.extend(r.refused);
            }
            if let Some(m) = generate(server, &mut ss) {
                quiet = false;
                client
                    .sync()
                    .receive_sync_message(&mut cs, sync::Message::decode(&m).unwrap())
                    .unwrap();
            }
            if quiet {
                return refusals;
            }
        }
        panic!("client and server never fell quiet (refusals so far: {refusals:?})");
    }

    #[test]
    fn accepted_changes_sync_and_refused_ones_never_reach_the_server() {
        let org = OrgTree::new([
            Unit {
                id: UnitId::new("station").unwrap(),
                name: "s".into(),
                kind: UnitKind::Station,
                parent: None,
            },
            Unit {
                id: UnitId::new("village").unwrap(),
                name: "v".into(),
                kind: UnitKind::Village,
                parent: Some(UnitId::new("station").unwrap()),
            },
        ]);
        let resident = who("r1", "village", Role::Resident);
        let mut author = Author::new(resident.user.clone(), HlcClock::new("r1").unwrap());
        let header = PetitionHeader {
            id: "p".into(),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: "t".into(),
            body: "b".into(),
            submitter: resident.user.clone(),
            recorded_by: resident.user.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("village").unwrap(),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let now = Timestamp(1_750_000_000_000);
        let mut phone = PetitionDoc::create(
            ActorId::random(),
            header,
            UnitId::new("station").unwrap(),
            &mut author,
            now,
        )
        .unwrap();
        let mut server = AutoCommit::new();
        let ctx = PolicyContext {
            org: &org,
            principal: &resident,
            now,
        };
        assert!(sync_until_quiet(&ctx, phone.doc_mut(), &mut server).is_empty());
        assert_eq!(
            PetitionDoc::view(&server).unwrap().state().unwrap().status,
            Status::Submitted
        );

        // The resident's phone signs (refused) and withdraws (allowed) offline.
        phone
            .record(
                &mut author,
                now.plus_minutes(1),
                Some(UnitId::new("station").unwrap()),
                EventBody::Signed,
            )
            .unwrap();
        let refusals = sync_until_quiet(&ctx, phone.doc_mut(), &mut server);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].rule, crate::policy::Rule::RoleRequired);
        let heads = server.get_heads();
        phone = PetitionDoc::from_doc(phone.doc_mut().fork_at(&heads).unwrap()).unwrap();
        phone
            .record(
                &mut author,
                now.plus_minutes(2),
                None,
                EventBody::Withdrawn { reason: None },
            )
            .unwrap();
        assert!(sync_until_quiet(&ctx, phone.doc_mut(), &mut server).is_empty());
        let state = PetitionDoc::view(&server).unwrap().state().unwrap();
        assert_eq!(state.status, Status::Withdrawn);
        assert_eq!(
            PetitionDoc::view(&server).unwrap().events().unwrap().len(),
            2,
            "the refused signature was never stored"
        );
    }

    #[test]
    fn a_receiver_acknowledges_the_changes_it_stored() {
        let org = OrgTree::new([Unit {
            id: UnitId::new("v").unwrap(),
            name: "v".into(),
            kind: UnitKind::Village,
            parent: None,
        }]);
        let resident = who("r1", "v", Role::Resident);
        let mut author = Author::new(resident.user.clone(), HlcClock::new("r1").unwrap());
        let header = PetitionHeader {
            id: "p".into(),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: "t".into(),
            body: "b".into(),
            submitter: resident.user.clone(),
            recorded_by: resident.user.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("v").unwrap(),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let now = Timestamp(1_750_000_000_000);
        let mut phone =
            PetitionDoc::create(ActorId::random(), header, UnitId::new("v").unwrap(), &mut author, now).unwrap();
        let ctx = PolicyContext {
            org: &org,
            principal: &resident,
            now,
        };
        let (mut cs, mut ss) = (sync::State::new(), sync::State::new());
        let mut server = AutoCommit::new();
        for _ in 0..10 {
            let Some(m) = generate(phone.doc_mut(), &mut cs) else {
                break;
            };
            let r = receive(&ctx, server, &mut ss, &mut RefusedChanges::default(), &m).unwrap();
            server = r.doc;
            let reply = generate(&mut server, &mut ss);
            if !r.accepted.is_empty() {
                // The answer to the message that carried the change acknowledges it.
                let reply = sync::Message::decode(&reply.expect("the receiver answers")).unwrap();
                assert_eq!(reply.heads, phone.doc_mut().get_heads());
                return;
            }
            if let Some(reply) = reply {
                phone
                    .doc_mut()
                    .sync()
                    .receive_sync_message(&mut cs, sync::Message::decode(&reply).unwrap())
                    .unwrap();
            }
        }
        panic!("the change never reached the receiver");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let org = OrgTree::default();
        let p = who("x", "u", Role::Resident);
        let ctx = PolicyContext {
            org: &org,
            principal: &p,
            now: Timestamp(0),
        };
        let err = receive(
            &ctx,
            AutoCommit::new(),
            &mut sync::State::new(),
            &mut RefusedChanges::default(),
            b"not a message",
        )
        .unwrap_err();
        assert!(matches!(err, SyncError::Decode(_)));
    }
}
