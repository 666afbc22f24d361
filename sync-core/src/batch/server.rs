//! The server's side of an exchange, sans IO: parse pushes, validate and apply, build acks and pulls.
//!
//! The host (the server crate) owns the connection, the storage and the
//! change sequence; it drives an exchange like this:
//!
//! 1. For each binary message, [`parse_push`]. On error, send the reply frame
//!    it gives (an `Error` frame naming the supported versions, say) and close.
//! 2. [`ServerExchange::begin`] with the push.
//! 3. For each [`DocPush`] in order, load the stored document (an empty
//!    `AutoCommit` for a new one), call [`ServerExchange::apply`], persist
//!    `Received::accepted` with new sequence numbers, then send
//!    [`ServerExchange::ack`] for the part. An acknowledged change is durable.
//! 4. After the `last` part, list the documents in the client's scope with a
//!    change numbered after the client's cursor (from the change log, without
//!    loading them) and page them with [`plan_pull`]. For each planned
//!    document, load it and call [`ServerExchange::pull_doc`] with the
//!    **base** the client is known to have:
//!    * for a document the client pushed in this exchange,
//!      [`ServerExchange::pushed_base`]: its base plus the accepted changes;
//!    * for any other document, its heads as of the client's cursor: the heads
//!      ([`heads_of`](super::heads_of)) of its changes numbered up to the
//!      cursor.
//!
//!
//!    Also call `pull_doc` for every pushed document
//!    ([`ServerExchange::pushed_docs`]) not in the plan: it is in memory
//!    already, and the client may lack part of it. Then send
//!    [`ServerExchange::pull`] with the plan's cursor.
//!
//! Documents that did not change since the cursor and were not pushed are
//! never loaded. A base that is too old only costs bytes (the client ignores
//! changes it has); a base that is too new would lose changes, which is why it
//! must come from what the client provably has.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, Change, ChangeHash};

use super::frame::{
    Ack, DocPull, DocPush, DocResult, ErrorCode, ErrorFrame, Frame, InboxAck, InboxPull, Pull, Push, RefusedChange,
};
use super::{BatchError, DocId, Encoding, PROTOCOL_VERSION, encode_since, heads_of};
use crate::doc::am;
use crate::policy::check_changes;
use crate::policy::{PolicyContext, Refusal, Rule};
use crate::validated_sync::incoming_changes;

pub use crate::validated_sync::Received;

/// A push that could not be accepted, and the frame to answer it with.
#[derive(Debug)]
pub struct Rejected {
    /// What was wrong with the frame.
    pub error: BatchError,
    /// An `Error` frame for the client; the host sends it and closes.
    pub reply: Vec<u8>,
}

/// Decodes a client frame, which must be a push. Its documents' data is
/// checked by [`crate::guard::chunks`] when it is loaded
/// ([`crate::validated_sync::incoming_changes`]); a host that wants the
/// refusal (or the cost) before that calls [`check_push`].
pub fn parse_push(bytes: &[u8]) -> Result<Push, Box<Rejected>> {
    let reject = |error: BatchError, code| {
        let reply = error_frame(code, &error.to_string());
        Box::new(Rejected { error, reply })
    };
    match Frame::decode(bytes) {
        Ok(Frame::Push(p)) => Ok(p),
        Ok(other) => Err(reject(
            BatchError::Unexpected(format!("a client sends push frames, not {}", kind(&other))),
            ErrorCode::BadFrame,
        )),
        Err(e @ BatchError::UnsupportedVersion { .. }) => Err(reject(e, ErrorCode::UnsupportedVersion)),
        Err(e) => Err(reject(e, ErrorCode::BadFrame)),
    }
}

/// A frame a client may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// A part of a push.
    Push(Push),
    /// The client stored its inbox up to a cursor (protocol 2).
    InboxAck(InboxAck),
}

/// Decodes a client frame: a push part or an inbox acknowledgement. Errors
/// as [`parse_push`].
pub fn parse_client_frame(bytes: &[u8]) -> Result<ClientFrame, Box<Rejected>> {
    let reject = |error: BatchError, code| {
        let reply = error_frame(code, &error.to_string());
        Box::new(Rejected { error, reply })
    };
    match Frame::decode(bytes) {
        Ok(Frame::Push(p)) => Ok(ClientFrame::Push(p)),
        Ok(Frame::InboxAck(a)) => Ok(ClientFrame::InboxAck(a)),
        Ok(other) => Err(reject(
            BatchError::Unexpected(format!("a client sends push or iack frames, not {}", kind(&other))),
            ErrorCode::BadFrame,
        )),
        Err(e @ BatchError::UnsupportedVersion { .. }) => Err(reject(e, ErrorCode::UnsupportedVersion)),
        Err(e) => Err(reject(e, ErrorCode::BadFrame)),
    }
}

/// Checks one pushed document's data with [`crate::guard::chunks`]; the
/// refusal names the document.
pub fn check_push(doc: &DocPush, limits: &crate::guard::Limits) -> Result<crate::guard::Cost, BatchError> {
    crate::guard::chunks(&doc.data, limits).map_err(|mut refused| {
        refused.detail = format!("document {}: {}", doc.id, refused.detail);
        BatchError::Refused(refused)
    })
}

fn kind(f: &Frame) -> &'static str {
    match f {
        Frame::Push(_) => "push",
        Frame::Ack(_) => "ack",
        Frame::Pull(_) => "pull",
        Frame::Error(_) => "error",
        Frame::InboxAck(_) => "iack",
    }
}

/// An encoded `Error` frame.
pub fn error_frame(code: ErrorCode, message: &str) -> Vec<u8> {
    Frame::Error(ErrorFrame {
        code,
        message: message.to_string(),
    })
    .encode()
}

/// Validates the changes of `push` against `stored` for `ctx` and applies
/// the accepted ones, exactly as stock sync does
/// ([`crate::validated_sync::receive`]).
///
/// If the server lacks part of the push's base (it lost history the client
/// believes shared), nothing is applied and the missing base hashes are
/// refused by `missing-dependency`; the client then pushes the whole document.
pub fn apply_push(ctx: &PolicyContext<'_>, stored: AutoCommit, push: &DocPush) -> Result<Received, BatchError> {
    apply_after_refusals(ctx, stored, push, &BTreeSet::new())
}

/// What a pushed document brings to the stored one, before policy.
#[derive(Debug)]
pub enum Incoming {
    /// The changes the stored document lacks, in an order that applies
    /// (possibly none). Changes that build on a change refused earlier in
    /// the exchange are not among them.
    Changes(Vec<Change>),
    /// The push builds on base changes the server does not have: one
    /// `missing-dependency` refusal per missing hash; nothing may be applied.
    MissingBase(Vec<Refusal>),
}

/// The changes of `push` that `stored` lacks, given the changes refused
/// from the same document earlier in the exchange (the push's base may name
/// them). `stored` is not modified.
fn incoming(
    stored: &mut AutoCommit,
    push: &DocPush,
    refused_before: &BTreeSet<ChangeHash>,
) -> Result<Incoming, BatchError> {
    let missing: Vec<Refusal> = push
        .base
        .iter()
        .filter(|h| !refused_before.contains(h) && !am::has_change(stored, h))
        .map(|h| {
            Refusal::new(
                h,
                Rule::MissingDependency,
                "the server does not have this base change; push the whole document",
            )
        })
        .collect();
    if !missing.is_empty() {
        return Ok(Incoming::MissingBase(missing));
    }
    if push.data.is_empty() {
        return Ok(Incoming::Changes(Vec::new()));
    }
    incoming_changes(stored, &push.data)
        .map(Incoming::Changes)
        .map_err(|e| BatchError::Load(format!("{} data: {e}", push.encoding)))
}

/// [`apply_push`] for a later slice of a document whose earlier slice had
/// `refused_before` refused: its base may name them. Changes of the slice
/// that build on them cannot apply; they are dropped without being listed,
/// and the client, which knows their dependencies, counts them as refused.
fn apply_after_refusals(
    ctx: &PolicyContext<'_>,
    mut stored: AutoCommit,
    push: &DocPush,
    refused_before: &BTreeSet<ChangeHash>,
) -> Result<Received, BatchError> {
    let changes = match incoming(&mut stored, push, refused_before)? {
        Incoming::MissingBase(refused) => {
            return Ok(Received {
                doc: stored,
                accepted: Vec::new(),
                refused,
                rejected: Vec::new(),
            });
        }
        Incoming::Changes(changes) => changes,
    };
    if changes.is_empty() {
        return Ok(Received {
            doc: stored,
            accepted: Vec::new(),
            refused: Vec::new(),
            rejected: Vec::new(),
        });
    }
    let checked = check_changes(ctx, stored, changes.clone());
    let (accepted, rejected) = changes.into_iter().partition(|c| checked.accepted.contains(&c.hash()));
    Ok(Received {
        doc: checked.doc,
        accepted,
        refused: checked.refused,
        rejected,
    })
}

/// The server's state for the exchange running on one connection.
#[derive(Debug)]
pub struct ServerExchange {
    /// Encodings this server reads, told to the client in each pull.
    reads: Vec<Encoding>,
    exchange: Option<u64>,
    cursor: u64,
    encodings: Vec<Encoding>,
    pushed: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Heads of the documents sent in an early pull of this exchange.
    early: BTreeMap<DocId, Vec<ChangeHash>>,
    refused: BTreeMap<DocId, BTreeSet<ChangeHash>>,
    results: Vec<DocResult>,
    /// The inbox cursor the exchange's last part carried (protocol 2).
    inbox: Option<u64>,
}

/// What a protocol-2 pull carries besides documents; the host fills it in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullExtras {
    /// The inbox after the cursor the client sent ([`ServerExchange::inbox`]).
    pub inbox: Option<InboxPull>,
    /// The more flag for the inbox: more items wait than the page carries.
    pub inbox_more: bool,
    /// The generation of the settings phones mirror.
    pub settings: Option<u64>,
}

impl Default for ServerExchange {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerExchange {
    /// A connection's exchange state, before any push, for a server that
    /// reads every encoding this build knows.
    pub fn new() -> Self {
        Self::reading(Encoding::ALL.to_vec())
    }

    /// Like [`ServerExchange::new`], for a server that reads only `encodings`
    /// (say, to turn experimental bundles off). Raw change chunks are always read.
    pub fn reading(mut encodings: Vec<Encoding>) -> Self {
        if !encodings.contains(&Encoding::Changes) {
            encodings.push(Encoding::Changes);
        }
        ServerExchange {
            reads: encodings,
            exchange: None,
            cursor: 0,
            encodings: Vec::new(),
            pushed: BTreeMap::new(),
            early: BTreeMap::new(),
            refused: BTreeMap::new(),
            results: Vec::new(),
            inbox: None,
        }
    }

    /// Starts handling a push part. A new exchange id starts a new exchange
    /// (the client gave up on the old one).
    pub fn begin(&mut self, push: &Push) {
        if self.exchange != Some(push.exchange) {
            *self = ServerExchange {
                exchange: Some(push.exchange),
                // Until the client says otherwise, assume only what every peer reads.
                encodings: vec![Encoding::Changes, Encoding::Document],
                ..Self::reading(std::mem::take(&mut self.reads))
            };
        }
        if !push.encodings.is_empty() {
            self.encodings = push.encodings.clone();
        }
        self.cursor = push.cursor;
        if push.last {
            self.inbox = push.inbox;
        }
        self.results.clear();
    }

    /// The inbox cursor the client sent with its last part (protocol 2):
    /// the host acknowledges the client's inbox up to it and carries the
    /// items after it in the pull ([`ServerExchange::pull_with`]). `None`
    /// when the client did not ask for its inbox.
    pub fn inbox(&self) -> Option<u64> {
        self.inbox
    }

    /// The client's cursor, from its latest push.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The encodings the client reads.
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    /// Validates and applies one pushed document (see [`apply_push`]) and
    /// records its result for the part's ack and its base for the pull.
    pub fn apply(
        &mut self,
        ctx: &PolicyContext<'_>,
        stored: AutoCommit,
        push: &DocPush,
    ) -> Result<Received, BatchError> {
        let refused_before = self.refused.entry(push.id).or_default();
        let mut received = apply_after_refusals(ctx, stored, push, refused_before)?;
        let heads = received.doc.get_heads();
        self.record(push, &received.accepted, &received.refused, heads);
        Ok(received)
    }

    /// For a host whose own write path runs policy and storage (the server's
    /// document service): the changes of `push` that `stored` lacks. Pass
    /// them through the write path, then call [`ServerExchange::record`]
    /// with the outcome. For a [`Incoming::MissingBase`], record the
    /// refusals it lists with nothing accepted.
    pub fn incoming(&mut self, stored: &mut AutoCommit, push: &DocPush) -> Result<Incoming, BatchError> {
        incoming(stored, push, self.refused.entry(push.id).or_default())
    }

    /// Records what became of one pushed document, for the part's ack and
    /// the pull: the changes accepted (stored durably), the refusals, and
    /// the document's heads afterwards.
    pub fn record(&mut self, push: &DocPush, accepted: &[Change], refused: &[Refusal], heads: Vec<ChangeHash>) {
        let refused: Vec<RefusedChange> = refused
            .iter()
            .map(|r| RefusedChange {
                change: r.change.parse().expect("a refusal names a change by its hex hash"),
                rule: r.rule.to_string(),
                detail: r.detail.clone(),
            })
            .collect();
        self.refused
            .entry(push.id)
            .or_default()
            .extend(refused.iter().map(|r| r.change));
        let lost_base = refused.iter().any(|r| push.base.contains(&r.change));
        if !lost_base {
            let base = self.pushed.get(&push.id).cloned().unwrap_or_else(|| push.base.clone());
            self.pushed.insert(push.id, heads_of(&base, accepted));
        }
        self.results.push(DocResult {
            id: push.id,
            heads,
            accepted: accepted.len() as u32,
            refused,
        });
    }

    /// The ack frame for `push`, with one result per pushed document in
    /// order; `None` for a part without documents (the pull acknowledges it).
    pub fn ack(&mut self, push: &Push) -> Option<Vec<u8>> {
        if push.docs.is_empty() {
            return None;
        }
        Some(
            Frame::Ack(Ack {
                exchange: push.exchange,
                part: push.part,
                docs: std::mem::take(&mut self.results),
            })
            .encode(),
        )
    }

    /// Whether to answer this part with an early pull: it is a client's
    /// part 0 asking for one, with more parts to come. The host then lists
    /// what changed in the client's scope since [`ServerExchange::cursor`],
    /// as for the final pull, and sends [`ServerExchange::early_pull`] at
    /// once, before handling the part's documents.
    pub fn wants_early_pull(&self, push: &Push) -> bool {
        push.early && push.part == 0 && !push.last
    }

    /// An early pull carrying `docs`. Their heads are remembered: the final
    /// pull, which travels on the same connection behind it, sends only what
    /// changed since (see [`ServerExchange::known_base`]).
    pub fn early_pull(&mut self, docs: Vec<DocPull>) -> Vec<u8> {
        for d in &docs {
            self.early.insert(d.id, d.heads.clone());
        }
        Frame::Pull(Pull {
            early: true,
            exchange: self.exchange.unwrap_or_default(),
            cursor: self.cursor,
            docs,
            more: false,
            encodings: self.reads.clone(),
            version: PROTOCOL_VERSION,
            inbox: None,
            settings: None,
        })
        .encode()
    }

    /// The heads the client is known to have of a document it pushed or was
    /// sent in an early pull of this exchange; `None` for any other document
    /// (its base is then its heads at the client's cursor).
    pub fn known_base(&self, id: &DocId) -> Option<Vec<ChangeHash>> {
        let (pushed, early) = (self.pushed.get(id), self.early.get(id));
        if pushed.is_none() && early.is_none() {
            return None;
        }
        let mut base: Vec<ChangeHash> = pushed.into_iter().chain(early).flatten().copied().collect();
        base.sort();
        base.dedup();
        Some(base)
    }

    /// For a document pushed in this exchange, the heads the client is known
    /// to have: its pushed base plus the changes the server accepted.
    pub fn pushed_base(&self, id: &DocId) -> Option<&[ChangeHash]> {
        self.pushed.get(id).map(Vec::as_slice)
    }

    /// The documents pushed in this exchange. The pull considers each of
    /// them, changed since the cursor or not: the client may lack part of it
    /// (a refusal, or a document it asked to receive again).
    pub fn pushed_docs(&self) -> impl Iterator<Item = &DocId> {
        self.pushed.keys()
    }

    /// What the client lacks of `doc`, given the `base` it is known to have
    /// (see the module docs), or `None` if it lacks nothing.
    pub fn pull_doc(&self, id: DocId, doc: &mut AutoCommit, base: &[ChangeHash]) -> Option<DocPull> {
        pull_doc(id, doc, base, &self.encodings)
    }

    /// [`ServerExchange::pull_doc`] for a document of which the client may
    /// hold changes this server refuses (`refused`, from
    /// [`crate::relay::unheard_refusals`]): the entry carries them, and is
    /// sent for them even when the client lacks nothing else.
    pub fn pull_doc_refusing(
        &self,
        id: DocId,
        doc: &mut AutoCommit,
        base: &[ChangeHash],
        mut refused: Vec<RefusedChange>,
    ) -> Option<DocPull> {
        if self.early.contains_key(&id) {
            // The early pull of this exchange carried them already.
            refused.clear();
        }
        if refused.is_empty() {
            return self.pull_doc(id, doc, base);
        }
        let (encoding, data) = encode_since(doc, base, &self.encodings);
        Some(DocPull {
            id,
            base: base.to_vec(),
            heads: doc.get_heads(),
            encoding,
            data,
            refused,
            receipts: Vec::new(),
        })
    }

    /// The pull frame that ends the exchange.
    pub fn pull(&self, cursor: u64, docs: Vec<DocPull>, more: bool) -> Vec<u8> {
        self.pull_with(cursor, docs, more, PullExtras::default())
    }

    /// The pull frame that ends the exchange, with the inbox and settings
    /// generation of protocol 2. The inbox goes only to a client that asked
    /// for it ([`ServerExchange::inbox`]).
    pub fn pull_with(&self, cursor: u64, docs: Vec<DocPull>, more: bool, extras: PullExtras) -> Vec<u8> {
        let inbox = extras.inbox.filter(|_| self.inbox.is_some());
        Frame::Pull(Pull {
            early: false,
            exchange: self.exchange.unwrap_or_default(),
            cursor,
            docs,
            more: more || (inbox.is_some() && extras.inbox_more),
            encodings: self.reads.clone(),
            version: PROTOCOL_VERSION,
            inbox,
            settings: extras.settings,
        })
        .encode()
    }
}

/// What a client that has `base` lacks of `doc`, encoded for a client that
/// reads `encodings`; `None` if it lacks nothing.
pub fn pull_doc(id: DocId, doc: &mut AutoCommit, base: &[ChangeHash], encodings: &[Encoding]) -> Option<DocPull> {
    let (encoding, data) = encode_since(doc, base, encodings);
    if data.is_empty() {
        return None;
    }
    Some(DocPull {
        id,
        base: base.to_vec(),
        heads: doc.get_heads(),
        encoding,
        data,
        refused: Vec::new(),
        receipts: Vec::new(),
    })
}

/// Which changed documents one pull carries, and the cursor that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullPlan {
    /// The documents to pull, lowest first new change first.
    pub docs: Vec<DocId>,
    /// The client's cursor after this pull.
    pub cursor: u64,
    /// Whether documents were left for another exchange.
    pub more: bool,
    /// The lowest new change number of each planned document, then of the
    /// first one left out, if any: what [`PullPlan::truncate`] needs.
    firsts: Vec<u64>,
}

impl PullPlan {
    /// Keeps only the first `n` documents, say because the pull frame grew
    /// past the host's byte budget, and moves the cursor back accordingly.
    pub fn truncate(&mut self, n: usize) {
        if n < self.docs.len() {
            self.docs.truncate(n);
            self.cursor = self.firsts[n].saturating_sub(1);
            self.more = true;
            self.firsts.truncate(n + 1);
        }
    }
}

/// Pages a pull. `changed` lists each document in the client's scope with a
/// change numbered after its cursor, with the lowest such number;
/// `latest` is the highest number the server has assigned (taken before the
/// documents are read, so a change that lands meanwhile is pulled next time).
///
/// The new cursor must not pass a change that was not delivered: when
/// documents are left out it stops just before the lowest new change among
/// them, so they come with the next exchange. To bound the pull by bytes
/// instead, plan generously and [`PullPlan::truncate`] once the frame is full.
pub fn plan_pull(mut changed: Vec<(DocId, u64)>, max_docs: usize, latest: u64) -> PullPlan {
    changed.sort_by_key(|&(id, seq)| (seq, id));
    let more = changed.len() > max_docs;
    changed.truncate(max_docs.saturating_add(1));
    let firsts: Vec<u64> = changed.iter().map(|&(_, seq)| seq).collect();
    let mut plan = PullPlan {
        docs: changed.into_iter().map(|(id, _)| id).collect(),
        cursor: latest,
        more: false,
        firsts,
    };
    if more {
        plan.truncate(max_docs);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_versions_are_answered_with_an_error_frame() {
        let mut p = Push::new(1, 0, 0);
        p.version = 7;
        let rejected = parse_push(&Frame::Push(p).encode()).unwrap_err();
        let Frame::Error(e) = Frame::decode(&rejected.reply).unwrap() else {
            panic!("not an error frame")
        };
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        assert!(e.message.contains("[1, 2]"), "{}", e.message);

        let rejected = parse_push(b"junk").unwrap_err();
        let Frame::Error(e) = Frame::decode(&rejected.reply).unwrap() else {
            panic!("not an error frame")
        };
        assert_eq!(e.code, ErrorCode::BadFrame);
    }

    #[test]
    fn paging_never_passes_an_undelivered_change() {
        let d = |n: u8| DocId([n; 16]);
        let changed = vec![(d(1), 50), (d(2), 5), (d(3), 70)];
        let all = plan_pull(changed.clone(), 10, 100);
        assert_eq!((all.docs.len(), all.cursor, all.more), (3, 100, false));
        let page = plan_pull(changed.clone(), 1, 100);
        assert_eq!(page.docs, vec![d(2)]);
        assert_eq!((page.cursor, page.more), (49, true));
        let mut cut = plan_pull(changed, 10, 100);
        cut.truncate(2);
        assert_eq!(cut.docs, vec![d(2), d(1)]);
        assert_eq!((cut.cursor, cut.more), (69, true));
        cut.truncate(5);
        assert_eq!(cut.docs.len(), 2, "truncating to more does nothing");
        cut.truncate(0);
        assert_eq!((cut.docs.len(), cut.cursor), (0, 4));
    }
}
