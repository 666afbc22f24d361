//! The batched sync extension end to end: a phone replica and a server, in memory, counting frames and bytes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{AutoCommit, ChangeHash};
use common::*;
use proptest::prelude::*;
use sync_core::batch::{
    BatchClient, ClientEvent, ClientFrame, ClientState, DocId, Encoding, Frame, InboxEntry, InboxPull, PullExtras,
    ReplicaDocs, ServerExchange, heads_of, parse_client_frame, plan_pull,
};
use sync_core::doc::Message;
use sync_core::petition::{EventBody, PetitionDoc};
use sync_core::policy::PolicyContext;
use sync_core::{OrgTree, Principal};

fn doc_id(n: usize) -> DocId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(n as u64).to_be_bytes());
    DocId(id)
}

/// A petition filed by `resident()`, distinct for each `n`.
fn new_petition(n: usize) -> AutoCommit {
    let r = resident();
    let mut h = header(&r, &r);
    h.id = format!("p-{n}");
    PetitionDoc::create(actor(1), h, unit("station-a"), &mut author(&r), T0)
        .unwrap()
        .into_doc()
}

/// Posts `count` small comments on `doc` as `who`, writing with actor `actor_n`.
fn comment(doc: &mut AutoCommit, who: &Principal, actor_n: u8, count: usize) {
    comment_with(doc, who, actor_n, count, |i| {
        format!("第{i}条：水还是没有来，请尽快派人查看一下")
    });
}

/// Like [`comment`], with 12 to 27 pseudo-random Chinese characters per
/// comment, so documents do not compress against each other.
fn comment_varied(doc: &mut AutoCommit, who: &Principal, actor_n: u8, count: usize, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    comment_with(doc, who, actor_n, count, |_| {
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let len = 12 + next() % 16;
        (0..len)
            .map(|_| char::from_u32(0x4E00 + (next() % 2000) as u32).unwrap())
            .collect()
    });
}

fn comment_with(
    doc: &mut AutoCommit,
    who: &Principal,
    actor_n: u8,
    count: usize,
    mut text: impl FnMut(usize) -> String,
) {
    let mut p = PetitionDoc::from_doc(doc.clone().with_actor(actor(actor_n))).unwrap();
    let mut a = author(who);
    for i in 0..count {
        let m = Message {
            by: who.user.clone(),
            at: "0000000000000.00000.x".parse().unwrap(),
            text: text(i),
            mentions: vec![],
            reply_to: None,
            attachments: vec![],
            tag: None,
            appeal: None,
        };
        p.post(&mut a, T0.plus_minutes(10 + i as i64), m).unwrap();
    }
    *doc = p.into_doc();
}

/// A phone's document store with a heads index, counting loads.
#[derive(Default)]
struct Replica {
    docs: BTreeMap<DocId, AutoCommit>,
    heads: BTreeMap<DocId, Vec<ChangeHash>>,
    loads: usize,
}

impl Replica {
    fn put(&mut self, id: DocId, mut doc: AutoCommit) {
        let mut h = doc.get_heads();
        h.sort();
        self.heads.insert(id, h);
        self.docs.insert(id, doc);
    }

    fn edit(&mut self, id: DocId, f: impl FnOnce(&mut AutoCommit)) {
        let mut doc = self.docs[&id].clone();
        f(&mut doc);
        self.put(id, doc);
    }
}

impl ReplicaDocs for Replica {
    fn dirty(&self, state: &ClientState) -> Vec<DocId> {
        self.heads
            .iter()
            .filter(|(id, h)| {
                state.shared.get(id).is_none_or(|s| {
                    let mut s = s.clone();
                    s.sort();
                    &s != *h
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
        let doc = self.docs.get(id).cloned();
        self.loads += doc.is_some() as usize;
        doc
    }

    fn store(&mut self, id: &DocId, doc: AutoCommit) {
        self.put(*id, doc);
    }

    fn remove(&mut self, id: &DocId) {
        self.docs.remove(id);
        self.heads.remove(id);
    }
}

/// The server: documents, a change log with sequence numbers, and the policy.
struct Server {
    org: OrgTree,
    who: Principal,
    docs: BTreeMap<DocId, AutoCommit>,
    /// Per document, `(seq, heads after it)` for each stored batch.
    history: BTreeMap<DocId, Vec<(u64, Vec<ChangeHash>)>>,
    seq: u64,
    stored: HashMap<(DocId, ChangeHash), usize>,
    loads: usize,
    max_docs: usize,
    reads: Vec<Encoding>,
    /// The user's inbox, and how far the client acknowledged it.
    inbox: Vec<InboxEntry>,
    acked: u64,
}

impl Server {
    fn new(who: Principal) -> Self {
        Server {
            org: org(),
            who,
            docs: BTreeMap::new(),
            history: BTreeMap::new(),
            seq: 0,
            stored: HashMap::new(),
            loads: 0,
            max_docs: 1000,
            reads: Encoding::ALL.to_vec(),
            inbox: Vec::new(),
            acked: 0,
        }
    }

    /// Stores `doc`'s changes after `before` as if another user had pushed them.
    fn put(&mut self, id: DocId, mut doc: AutoCommit) {
        let before = self.docs.get_mut(&id).map(|d| d.get_heads()).unwrap_or_default();
        let new = doc.get_changes(&before);
        self.log(id, &new);
        self.docs.insert(id, doc);
    }

    fn log(&mut self, id: DocId, changes: &[automerge::Change]) {
        if changes.is_empty() {
            return;
        }
        for c in changes {
            self.seq += 1;
            *self.stored.entry((id, c.hash())).or_default() += 1;
        }
        let heads = self.docs.get_mut(&id).map(|d| d.get_heads()).unwrap_or_default();
        let heads = heads_of(&heads, changes);
        self.history.entry(id).or_default().push((self.seq, heads));
    }

    fn heads_at(&self, id: &DocId, cursor: u64) -> Vec<ChangeHash> {
        self.history[id]
            .iter()
            .take_while(|(s, _)| *s <= cursor)
            .last()
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    /// Handles one frame from the client and returns the frames to send back.
    fn handle(&mut self, ex: &mut ServerExchange, frame: &[u8]) -> Vec<Vec<u8>> {
        let push = match parse_client_frame(frame) {
            Ok(ClientFrame::Push(p)) => p,
            Ok(ClientFrame::InboxAck(a)) => {
                self.acked = self.acked.max(a.cursor);
                return Vec::new();
            }
            Err(rejected) => return vec![rejected.reply],
        };
        ex.begin(&push);
        if push.last
            && let Some(cursor) = ex.inbox()
        {
            self.acked = self.acked.max(cursor);
        }
        let org = self.org.clone();
        let who = self.who.clone();
        let ctx = PolicyContext {
            org: &org,
            principal: &who,
            now: T0.plus_minutes(24 * 60),
        };
        for doc in &push.docs {
            let stored = match self.docs.get(&doc.id) {
                Some(d) => {
                    self.loads += 1;
                    d.clone()
                }
                None => AutoCommit::new(),
            };
            let received = ex.apply(&ctx, stored, doc).unwrap();
            let accepted = received.accepted.clone();
            self.log(doc.id, &accepted);
            self.docs.insert(doc.id, received.doc);
        }
        let mut out: Vec<Vec<u8>> = ex.ack(&push).into_iter().collect();
        if push.last {
            let cursor = ex.cursor();
            let changed: Vec<(DocId, u64)> = self
                .history
                .iter()
                .filter_map(|(id, h)| h.iter().map(|(s, _)| *s).find(|s| *s > cursor).map(|s| (*id, s)))
                .collect();
            let plan = plan_pull(changed, self.max_docs, self.seq);
            let mut docs = Vec::new();
            let pushed: Vec<DocId> = ex.pushed_docs().filter(|id| !plan.docs.contains(id)).copied().collect();
            for id in plan.docs.iter().copied().chain(pushed) {
                // A pushed document is still in memory from applying the push.
                let base = match ex.pushed_base(&id) {
                    Some(b) => b.to_vec(),
                    None => {
                        self.loads += 1;
                        self.heads_at(&id, cursor)
                    }
                };
                let doc = self.docs.get_mut(&id).unwrap();
                docs.extend(ex.pull_doc(id, doc, &base));
            }
            let inbox = ex.inbox().map(|after| {
                let items: Vec<InboxEntry> = self.inbox.iter().filter(|i| i.cursor > after).cloned().collect();
                InboxPull {
                    cursor: items.last().map_or(after, |i| i.cursor),
                    items,
                }
            });
            let extras = PullExtras {
                inbox,
                inbox_more: false,
                settings: Some(7),
            };
            out.push(ex.pull_with(plan.cursor, docs, plan.more, extras));
        }
        out
    }
}

/// What went over the link.
#[derive(Debug, Default)]
struct Wire {
    up_frames: usize,
    up_bytes: usize,
    down_frames: usize,
    down_bytes: usize,
    /// Direction of each delivered frame, in order: `true` for client → server.
    dirs: Vec<bool>,
}

impl Wire {
    fn turns(&self) -> usize {
        self.dirs.windows(2).filter(|w| w[0] != w[1]).count()
    }
}

struct World {
    client: BatchClient,
    phone: Replica,
    server: Server,
    next_exchange: u64,
}

impl World {
    /// `n` petitions held by both sides, in sync, as after an earlier exchange.
    fn new(n: usize, who: Principal) -> Self {
        let mut server = Server::new(who);
        let mut phone = Replica::default();
        let mut shared = BTreeMap::new();
        for i in 0..n {
            let mut doc = new_petition(i);
            shared.insert(doc_id(i), doc.get_heads());
            server.put(doc_id(i), doc.clone());
            phone.put(doc_id(i), doc);
        }
        let state = ClientState {
            cursor: server.seq,
            shared,
            server_encodings: Encoding::ALL.to_vec(),
            ..ClientState::default()
        };
        World {
            client: BatchClient::new(state),
            phone,
            server,
            next_exchange: 1,
        }
    }

    /// Runs one exchange over a fresh connection. With `cut`, the link drops
    /// after that many delivered frames. `on_frame` sees every delivered
    /// frame (`true` for client → server). Returns the client's events.
    fn exchange(
        &mut self,
        cut: Option<usize>,
        wire: &mut Wire,
        mut on_frame: impl FnMut(bool, &Frame),
    ) -> Vec<ClientEvent> {
        let id = self.next_exchange;
        self.next_exchange += 1;
        let mut ex = ServerExchange::reading(self.server.reads.clone());
        let up = self.client.start(id, &mut self.phone);
        let mut down = Vec::new();
        let mut delivered = 0;
        let alive = |delivered: usize| cut.is_none_or(|c| delivered < c);
        for f in &up {
            if !alive(delivered) {
                return Vec::new();
            }
            delivered += 1;
            on_frame(true, &Frame::decode(f).unwrap());
            wire.up_frames += 1;
            wire.up_bytes += f.len();
            wire.dirs.push(true);
            down.extend(self.server.handle(&mut ex, f));
        }
        let mut events = Vec::new();
        for f in &down {
            if !alive(delivered) {
                return events;
            }
            delivered += 1;
            on_frame(false, &Frame::decode(f).unwrap());
            wire.down_frames += 1;
            wire.down_bytes += f.len();
            wire.dirs.push(false);
            events.extend(self.client.handle(f, &mut self.phone).unwrap());
        }
        events
    }

    /// Sends a client frame outside an exchange (an `iack`); nothing answers it.
    fn send(&mut self, frame: Vec<u8>, wire: &mut Wire) {
        wire.up_frames += 1;
        wire.up_bytes += frame.len();
        wire.dirs.push(true);
        let mut ex = ServerExchange::new();
        assert!(self.server.handle(&mut ex, &frame).is_empty());
    }

    fn sync(&mut self, wire: &mut Wire) -> Vec<ClientEvent> {
        let mut all = Vec::new();
        loop {
            let events = self.exchange(None, wire, |_, _| {});
            let more = events.contains(&ClientEvent::More);
            assert!(matches!(events.last(), Some(ClientEvent::Done { .. })), "{events:?}");
            all.extend(events);
            if !more {
                return all;
            }
        }
    }

    #[track_caller]
    fn assert_converged(&mut self) {
        let ids: BTreeSet<DocId> = self.server.docs.keys().chain(self.phone.docs.keys()).copied().collect();
        for id in ids {
            let s = self.server.docs.get_mut(&id).map(|d| d.get_heads());
            let c = self.phone.docs.get_mut(&id).map(|d| d.get_heads());
            assert_eq!(s, c, "document {id} differs");
        }
    }
}

/// The growth of `doc`'s compressed save from `before`: the floor for sending its new changes.
fn save_growth(before: &mut AutoCommit, after: &mut AutoCommit) -> usize {
    after.save().len() - before.save().len()
}

fn notification(cursor: u64) -> InboxEntry {
    InboxEntry {
        cursor,
        key: format!("p-{cursor}/new_petition/unit:station-a"),
        kind: "new_petition".into(),
        doc: format!("doc{cursor}"),
        entry: None,
        urgent: true,
        at_ms: 1_700_000_000_000 + cursor as i64,
        text: "新诉求：停水三天".into(),
    }
}

fn inbox_of(events: &[ClientEvent]) -> Option<(Vec<InboxEntry>, u64)> {
    events.iter().find_map(|e| match e {
        ClientEvent::Inbox { items, cursor } => Some((items.clone(), *cursor)),
        _ => None,
    })
}

#[test]
fn the_inbox_travels_in_the_exchange_and_an_ack_is_never_lost() {
    let mut w = World::new(500, officer_a());
    w.server.inbox = (1..=3).map(notification).collect();
    w.client.carry_inbox(Some(0));
    // Until the client knows the server speaks version 2, it pushes version
    // 1 and the inbox stays out of the exchange.
    assert_eq!(w.client.version(), 1);
    let events = w.sync(&mut Wire::default());
    assert_eq!(inbox_of(&events), None);
    assert!(events.contains(&ClientEvent::Settings { generation: 7 }));
    assert_eq!(w.client.version(), 2);

    // Now the pull carries the inbox after the client's cursor, in one
    // exchange: one frame each way.
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    let (items, cursor) = inbox_of(&events).expect("the pull carries the inbox");
    assert_eq!(items, w.server.inbox);
    assert_eq!(cursor, 3);
    assert_eq!((wire.up_frames, wire.down_frames, wire.turns()), (1, 1, 1));
    // The server does not take delivery for storage: nothing is
    // acknowledged until the client says it stored them.
    assert_eq!(w.server.acked, 0);

    // The client's `iack` is lost; its next exchange says the same.
    w.client.carry_inbox(Some(cursor));
    let events = w.sync(&mut Wire::default());
    assert_eq!(inbox_of(&events), Some((vec![], 3)), "nothing is delivered twice");
    assert_eq!(w.server.acked, 3);

    // A new notification, acknowledged by the `iack` alone.
    w.server.inbox.push(notification(4));
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    let (items, cursor) = inbox_of(&events).unwrap();
    assert_eq!((items.len(), cursor), (1, 4));
    let ack = w.client.inbox_ack(cursor).expect("the server speaks version 2");
    w.send(ack, &mut wire);
    assert_eq!(w.server.acked, 4);
    println!(
        "exchange with one notification and its iack: {} B up, {} B down",
        wire.up_bytes, wire.down_bytes
    );

    // An idle reconnect carrying the inbox is still one small frame each way.
    w.client.carry_inbox(Some(4));
    let mut wire = Wire::default();
    w.sync(&mut wire);
    let total = wire.up_bytes + wire.down_bytes;
    assert!(total < 300, "idle exchange with the inbox cost {total} bytes");
    assert_eq!((w.phone.loads, w.server.loads), (0, 0), "no document was loaded");

    // A client that does not ask for its inbox does not get it.
    w.client.carry_inbox(None);
    w.server.inbox.push(notification(5));
    assert_eq!(inbox_of(&w.sync(&mut Wire::default())), None);
    assert_eq!(w.server.acked, 4);
}

#[test]
fn an_idle_reconnect_with_500_documents_is_one_small_frame_each_way() {
    let mut w = World::new(500, officer_a());
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    assert_eq!(
        events,
        vec![
            ClientEvent::Settings { generation: 7 },
            ClientEvent::Done { cursor: w.server.seq }
        ]
    );
    assert_eq!((wire.up_frames, wire.down_frames), (1, 1));
    let total = wire.up_bytes + wire.down_bytes;
    println!("idle exchange: {} B up, {} B down", wire.up_bytes, wire.down_bytes);
    assert!(total < 300, "idle exchange cost {total} bytes");
    assert_eq!((w.phone.loads, w.server.loads), (0, 0), "no document was loaded");
}

#[test]
fn a_common_reconnect_is_one_round_trip_near_the_floor() {
    let mut w = World::new(50, officer_a());
    // Offline, the officer comments on three petitions; meanwhile another
    // officer comments on two others and a resident files a new petition.
    let mut floor = 0;
    for i in [3, 7, 11] {
        let mut before = w.phone.docs[&doc_id(i)].clone();
        w.phone
            .edit(doc_id(i), |d| comment_varied(d, &officer_a(), 20, 40, i as u64));
        floor += save_growth(&mut before, w.phone.docs.get_mut(&doc_id(i)).unwrap());
    }
    for i in [20, 30] {
        let mut before = w.server.docs[&doc_id(i)].clone();
        let mut doc = before.clone();
        comment_varied(&mut doc, &officer_a2(), 21, 40, i as u64);
        floor += save_growth(&mut before, &mut doc);
        w.server.put(doc_id(i), doc);
    }
    let mut fresh = new_petition(999);
    floor += save_growth(&mut AutoCommit::new(), &mut fresh);
    w.server.put(doc_id(999), fresh);

    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    assert_eq!(wire.turns(), 1, "one round trip: {:?}", wire.dirs);
    assert_eq!((wire.up_frames, wire.down_frames), (1, 2));
    assert!(events.contains(&ClientEvent::DocCreated {
        id: doc_id(999),
        heads: w.server.docs.get_mut(&doc_id(999)).unwrap().get_heads()
    }));
    assert_eq!(
        events.iter().filter(|e| matches!(e, ClientEvent::Acked { .. })).count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::DocUpdated { .. }))
            .count(),
        2
    );
    w.assert_converged();
    assert_eq!(
        w.phone.loads,
        3 + 2,
        "three pushed and two pulled documents were loaded"
    );
    assert_eq!(
        w.server.loads,
        3 + 3,
        "three pushed and three other documents were loaded"
    );
    let total = wire.up_bytes + wire.down_bytes;
    println!(
        "common reconnect: {} B up, {} B down, {} B total for a floor of {floor} B ({:.2}x)",
        wire.up_bytes,
        wire.down_bytes,
        total,
        total as f64 / floor as f64
    );
    assert!(
        total * 10 <= floor * 13,
        "{total} B on the wire for a floor of {floor} B"
    );

    // Nothing is left to say: the next exchange is idle.
    let mut again = Wire::default();
    let (pl, sl) = (w.phone.loads, w.server.loads);
    w.sync(&mut again);
    assert_eq!((again.up_frames, again.down_frames), (1, 1));
    assert_eq!((w.phone.loads, w.server.loads), (pl, sl));
}

#[test]
fn forty_comments_cost_about_their_compressed_save_growth() {
    let mut w = World::new(1, officer_a());
    let mut before = w.phone.docs[&doc_id(0)].clone();
    w.phone.edit(doc_id(0), |d| comment(d, &officer_a(), 20, 40));
    let growth = save_growth(&mut before, w.phone.docs.get_mut(&doc_id(0)).unwrap());
    let mut wire = Wire::default();
    w.sync(&mut wire);
    println!(
        "40 comments: {} B up, {} B down, compressed save growth {growth} B",
        wire.up_bytes, wire.down_bytes
    );
    assert!(
        wire.up_bytes * 10 <= growth * 12,
        "{} B up for {growth} B",
        wire.up_bytes
    );
    assert!(wire.down_bytes < 200, "the ack and an empty pull");
    w.assert_converged();
}

/// The design brief's "offline-day": 500 petitions held; 2,000 changes up
/// across 50 of them, 500 down across 30 others.
#[test]
fn an_offline_day_is_one_round_trip_near_the_floor() {
    let mut w = World::new(500, officer_a());
    let mut floor = 0;
    for i in 0..50 {
        let mut before = w.phone.docs[&doc_id(i)].clone();
        w.phone
            .edit(doc_id(i), |d| comment_varied(d, &officer_a(), 20, 40, i as u64));
        floor += save_growth(&mut before, w.phone.docs.get_mut(&doc_id(i)).unwrap());
    }
    for i in 100..130 {
        let mut before = w.server.docs[&doc_id(i)].clone();
        let mut doc = before.clone();
        comment_varied(&mut doc, &officer_a2(), 21, if i < 110 { 16 } else { 17 }, i as u64);
        floor += save_growth(&mut before, &mut doc);
        w.server.put(doc_id(i), doc);
    }
    let mut wire = Wire::default();
    w.sync(&mut wire);
    assert_eq!(wire.turns(), 1, "one round trip");
    w.assert_converged();
    let total = wire.up_bytes + wire.down_bytes;
    println!(
        "offline day: {} frames up ({} B), {} down ({} B), {total} B for a floor of {floor} B ({:.2}x)",
        wire.up_frames,
        wire.up_bytes,
        wire.down_frames,
        wire.down_bytes,
        total as f64 / floor as f64
    );
    assert!(
        total * 10 <= floor * 13,
        "{total} B on the wire for a floor of {floor} B"
    );
    assert_eq!(w.phone.loads, 50 + 30);
    assert_eq!(w.server.loads, 50 + 30);
}

#[test]
fn a_refused_change_is_reported_and_the_rest_is_kept() {
    let r = resident();
    let mut w = World::new(3, r.clone());
    w.phone.edit(doc_id(0), |d| comment(d, &r, 30, 2));
    // A resident may not sign; the comment after it does not build on it.
    w.phone.edit(doc_id(1), |d| {
        let mut p = PetitionDoc::from_doc(d.clone().with_actor(actor(31))).unwrap();
        record(&mut p, &r, Some("station-a"), 5, EventBody::Signed);
        *d = p.into_doc();
    });
    let signed = w.phone.heads[&doc_id(1)].clone();
    w.phone.edit(doc_id(2), |d| comment(d, &r, 32, 1));
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    let refused: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Refused { id, refused } => Some((*id, refused.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0].0, doc_id(1));
    assert_eq!(refused[0].1[0].rule, "role-required");
    assert_eq!(refused[0].1[0].change, signed[0]);
    // The other documents' comments were stored; the refused change stays local.
    for i in [0, 2] {
        let s = w.server.docs.get_mut(&doc_id(i)).unwrap().get_heads();
        assert_eq!(s, w.phone.docs.get_mut(&doc_id(i)).unwrap().get_heads());
    }
    assert!(
        w.server
            .docs
            .get_mut(&doc_id(1))
            .unwrap()
            .get_change_by_hash(&signed[0])
            .is_none()
    );
    assert!(
        w.phone
            .docs
            .get_mut(&doc_id(1))
            .unwrap()
            .get_change_by_hash(&signed[0])
            .is_some()
    );
}

#[test]
fn a_refused_change_early_in_a_split_push_does_not_block_later_slices_that_do_not_build_on_it() {
    let r = resident();
    let mut w = World::new(1, r.clone());
    w.client = BatchClient::new(w.client.state().clone()).with_part_budget(300);
    // Two offline branches merged on the phone: a forbidden signature, and
    // comments written by another of the resident's apps.
    w.phone.edit(doc_id(0), |d| {
        let mut sign = PetitionDoc::from_doc(d.fork().with_actor(actor(80))).unwrap();
        record(&mut sign, &r, Some("station-a"), 5, EventBody::Signed);
        let mut talk = d.fork().with_actor(actor(81));
        comment(&mut talk, &r, 81, 12);
        d.merge(sign.doc_mut()).unwrap();
        d.merge(&mut talk).unwrap();
    });
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    assert!(wire.up_frames > 2, "the push was split");
    let refused: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Refused { refused, .. } => Some(refused.len()),
            _ => None,
        })
        .collect();
    assert_eq!(refused, vec![1], "{events:?}");
    // The server has every comment; only the signature stays on the phone.
    let server = w.server.docs.get_mut(&doc_id(0)).unwrap();
    let phone = w.phone.docs.get_mut(&doc_id(0)).unwrap();
    assert_eq!(phone.get_changes(&[]).len(), server.get_changes(&[]).len() + 1);
    let mut shared = w.client.state().shared[&doc_id(0)].clone();
    shared.sort();
    let mut heads = server.get_heads();
    heads.sort();
    assert_eq!(shared, heads);
}

#[test]
fn a_server_that_lost_history_gets_the_whole_document_again() {
    let mut w = World::new(2, officer_a());
    w.phone.edit(doc_id(0), |d| comment(d, &officer_a(), 85, 3));
    w.sync(&mut Wire::default());
    // The server is restored from a backup taken before those comments.
    let old = new_petition(0);
    w.server.docs.insert(doc_id(0), old);
    w.phone.edit(doc_id(0), |d| comment(d, &officer_a(), 85, 2));
    let events = w.sync(&mut Wire::default());
    assert!(events.contains(&ClientEvent::Resync { id: doc_id(0) }), "{events:?}");
    let events = w.sync(&mut Wire::default());
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Acked { .. })),
        "{events:?}"
    );
    w.assert_converged();
}

#[test]
fn a_paged_pull_completes_over_several_exchanges() {
    let mut w = World::new(10, officer_a());
    w.server.max_docs = 2;
    for i in 0..10 {
        let mut doc = w.server.docs[&doc_id(i)].clone();
        comment(&mut doc, &officer_a2(), 40, 3);
        w.server.put(doc_id(i), doc);
    }
    let mut wire = Wire::default();
    let events = w.sync(&mut wire);
    assert_eq!(events.iter().filter(|e| **e == ClientEvent::More).count(), 4);
    w.assert_converged();
}

#[test]
fn a_large_push_is_split_into_parts_each_acknowledged() {
    let mut w = World::new(4, officer_a());
    w.client = BatchClient::new(w.client.state().clone()).with_part_budget(600);
    for i in 0..4 {
        w.phone.edit(doc_id(i), |d| comment(d, &officer_a(), 50, 30));
    }
    let mut wire = Wire::default();
    w.sync(&mut wire);
    assert!(wire.up_frames > 4, "{} parts", wire.up_frames);
    assert_eq!(wire.down_frames, wire.up_frames + 1, "an ack per part, then the pull");
    assert_eq!(wire.turns(), 1);
    w.assert_converged();
}

/// The encodings of the documents in each pushed frame.
fn push_encodings(f: &Frame) -> Vec<Encoding> {
    match f {
        Frame::Push(p) => p.docs.iter().map(|d| d.encoding).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn bundles_are_used_only_once_both_sides_said_they_read_them() {
    // A client that has not heard from this server yet pushes raw changes,
    // then learns from the pull that the server reads bundles.
    let mut w = World::new(2, officer_a());
    w.client = BatchClient::new(ClientState {
        server_encodings: ClientState::default().server_encodings,
        ..w.client.state().clone()
    });
    let mut seen = Vec::new();
    w.phone.edit(doc_id(0), |d| comment(d, &officer_a(), 70, 3));
    w.exchange(None, &mut Wire::default(), |_, f| seen.extend(push_encodings(f)));
    w.phone.edit(doc_id(0), |d| comment(d, &officer_a(), 70, 3));
    w.exchange(None, &mut Wire::default(), |_, f| seen.extend(push_encodings(f)));
    assert_eq!(seen, vec![Encoding::Changes, Encoding::Bundle]);

    // A server that does not read bundles never gets one.
    w.server.reads = vec![Encoding::Changes];
    let mut seen = Vec::new();
    for _ in 0..2 {
        w.phone.edit(doc_id(1), |d| comment(d, &officer_a(), 71, 3));
        w.exchange(None, &mut Wire::default(), |_, f| seen.extend(push_encodings(f)));
    }
    assert_eq!(
        seen,
        vec![Encoding::Bundle, Encoding::Changes],
        "the first push predates the news"
    );

    // A client that does not read bundles never receives one.
    w.client = BatchClient::new(w.client.state().clone()).with_encodings(vec![Encoding::Changes]);
    let mut doc = w.server.docs[&doc_id(1)].clone();
    comment(&mut doc, &officer_a2(), 72, 3);
    w.server.put(doc_id(1), doc);
    let up = w.client.start(99, &mut w.phone);
    let mut ex = ServerExchange::new();
    let down: Vec<Vec<u8>> = up.iter().flat_map(|f| w.server.handle(&mut ex, f)).collect();
    let Frame::Pull(pull) = Frame::decode(down.last().unwrap()).unwrap() else {
        panic!("no pull")
    };
    assert_eq!(pull.docs[0].encoding, Encoding::Changes);
    for f in &down {
        w.client.handle(f, &mut w.phone).unwrap();
    }
    w.assert_converged();
}

/// Hashes carried by each pushed document slice, read against the phone's copy.
fn pushed_hashes(phone: &Replica, frame: &Frame) -> Vec<Vec<ChangeHash>> {
    let Frame::Push(p) = frame else { return Vec::new() };
    p.docs
        .iter()
        .map(|d| {
            let mut full = phone.docs[&d.id].clone();
            let mut doc = full.fork_at(&d.base).unwrap();
            sync_core::batch::decode_into(&mut doc, d.encoding, &d.data).unwrap();
            doc.get_changes(&d.base).iter().map(|c| c.hash()).collect()
        })
        .collect()
}

proptest! {
    // PROPTEST_CASES overrides the case count (CI runs the default).
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24), ..ProptestConfig::default() })]

    #[test]
    fn cut_exchanges_resume_without_resending_acknowledged_parts(
        cuts in proptest::collection::vec(0usize..12, 0..5),
        edits in proptest::collection::vec((0usize..6, 1usize..15), 1..6),
    ) {
        let mut w = World::new(6, officer_a());
        w.client = BatchClient::new(w.client.state().clone()).with_part_budget(1500);
        for (n, (i, count)) in edits.iter().enumerate() {
            w.phone.edit(doc_id(*i), |d| comment(d, &officer_a(), 60 + n as u8, *count));
        }
        let mut doc = w.server.docs[&doc_id(5)].clone();
        comment(&mut doc, &officer_a2(), 90, 5);
        w.server.put(doc_id(5), doc);

        // Which changes the server acknowledged to the client, read from the
        // delivered frames (not from the client's own bookkeeping).
        let mut acked: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut wire = Wire::default();
        for cut in cuts.iter().copied().map(Some).chain([None]) {
            let snapshot = Replica { docs: w.phone.docs.clone(), ..Replica::default() };
            let mut parts: BTreeMap<u32, Vec<Vec<ChangeHash>>> = BTreeMap::new();
            let mut resent = Vec::new();
            w.exchange(cut, &mut wire, |up, f| match f {
                Frame::Push(p) if up => {
                    let hashes = pushed_hashes(&snapshot, f);
                    resent.extend(hashes.iter().flatten().filter(|h| acked.contains(*h)).copied());
                    parts.insert(p.part, hashes);
                }
                Frame::Ack(a) => {
                    for (r, hashes) in a.docs.iter().zip(&parts[&a.part]) {
                        let refused: BTreeSet<_> = r.refused.iter().map(|r| r.change).collect();
                        acked.extend(hashes.iter().filter(|h| !refused.contains(*h)));
                    }
                }
                _ => {}
            });
            prop_assert!(resent.is_empty(), "changes sent again after their ack: {:?}", resent);
        }
        w.sync(&mut wire);
        w.assert_converged();
        for (key, n) in &w.server.stored {
            prop_assert_eq!(*n, 1, "change {:?} stored {} times", key, n);
        }
    }
}
