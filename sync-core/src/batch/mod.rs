//! The batched sync extension: one round trip for every document a phone or station changed.
//!
//! Stock Automerge sync talks per document and needs several round trips
//! each; over a 2G link (1.3 s round trip, 20 kbit/s) that is minutes for a
//! day offline. Here one exchange moves everything:
//!
//! ```text
//! client                                      server
//!   Push{part 0, encodings, cursor, docs} ──▶   validate + apply, Ack part 0
//!   Push{part 1 … last}                   ──▶   validate + apply, Ack part 1
//!                                         ◀──   Ack{part 0}, Ack{part 1}
//!                                         ◀──   Pull{cursor', docs changed since cursor}
//! ```
//!
//! The client sends all its parts at once, without waiting, so an exchange
//! costs one round trip after connection set-up. Each part is acknowledged on
//! its own: if the link is cut, acknowledged parts are never sent again and
//! at most one part's bytes are lost. An idle client sends one small empty
//! `last` part and receives one `Pull` (an empty part is acknowledged by the
//! `Pull` itself, not by an `Ack`).
//!
//! # Early pulls
//!
//! On a slow link the push and the pull should overlap, not take turns. A
//! client built [`BatchClient::with_early_pull`] that has something to push
//! sends a part 0 without documents, flagged `y`; as soon as it arrives the
//! server sends an *early* pull with every document that changed in the
//! client's scope since its cursor, while the rest of the push is still on
//! its way up. The final pull, after the last part, then carries only what
//! changed since (the pushed documents' missing parts, later changes) and
//! the new cursor. If the link is cut in between, the early documents are
//! kept and nothing else changes: the cursor has not moved.
//!
//! # Frames
//!
//! Each WebSocket binary message is one frame: raw DEFLATE (RFC 1951) of a
//! CBOR map with short text keys. Every frame has `"t"` (type) and `"v"`
//! (protocol version, [`PROTOCOL_VERSION`]). Hashes are 32-byte strings,
//! document ids 16-byte strings.
//!
//! | frame | keys |
//! | --- | --- |
//! | push | `x` exchange id, `p` part, `l` last, `c` cursor, `e` encodings (part 0 only), `y` early pulls wanted (part 0 only), `d` docs: `{i id, b base, e encoding, a data, t receipts (optional): [[entry, ms]]}` |
//! | ack | `x`, `p`, `d`: `{i id, h heads, n accepted, r refused: [[hash, rule, detail]]}` |
//! | pull | `x`, `c` new cursor, `m` more, `e` encodings the server reads, `y` early, `d`: `{i id, b base, h heads, e encoding, a data, r refused (optional): [[hash, rule, detail]], t receipts (optional, to a station): [[entry, ms]]}` |
//! | err | `k` code, `s` message |
//! | iack (2) | `v`, `n` inbox cursor |
//!
//! # Versions
//!
//! A push says the version it speaks in `v`; a pull says the highest
//! version the server speaks, and the client uses the lower of its own and
//! the server's from its next exchange on ([`ClientState::server_version`]),
//! so a new phone keeps working against an old server and an old phone
//! against a new one. Version 2 adds:
//!
//! - **The inbox in the exchange.** The last push part carries `n`, the
//!   client's inbox cursor: the client has stored every notification up to
//!   it (the server acknowledges them) and wants the ones after it. The
//!   pull carries `n` (the cursor after the items) and `o`, the items, each
//!   `[cursor, key, kind, doc, entry, urgent, at_ms, text]`, a page at most
//!   (the pull's `m` asks for another exchange when more wait). Having
//!   stored them, the client sends one `iack` frame and waits for nothing;
//!   if that frame is lost, the next push's `n` acknowledges the same. A
//!   phone's whole reconnect, documents and notifications, is then one
//!   exchange on one connection.
//! - **Settings generation.** The pull's `g` changes whenever the unit
//!   tree, the clock rules or the calendar change, so a phone fetches them
//!   only when it moved.
//!
//! # Refusals in a pull
//!
//! A pulled document may carry `r`: changes the server refuses although the
//! client may hold them, because a tier above refused them after this
//! server had stored them and handed them on (see [`crate::relay`]). The
//! client reports those it holds as [`ClientEvent::Refused`], exactly like
//! refusals of its own push, and its host drops them. When they leave
//! nothing of the document (the tier above refused the change that created
//! it, and the server holds no history of it any more), the client drops
//! the document itself ([`ReplicaDocs::remove`]) and reports
//! [`ClientEvent::Dropped`]; a replica that holds none of the changes
//! ignores such a pull. Clients that predate the key skip it and hear the
//! refusal when they push the change again.
//!
//! # Receipt times between tiers
//!
//! A document pushed by a station, or pulled by one, may carry `t`: the
//! sender's receipt times of entries the receiver may lack, each
//! `[entry id, ms]` (see [`crate::relay::receipts_to_carry`]). The receiver
//! records an entry new to it as received then, so a petition's clocks
//! agree at every tier. Phones neither send nor are sent any; older peers
//! skip the key.
//!
//! # Over plain HTTP
//!
//! Where a network refuses WebSocket upgrades, the same exchange runs as one
//! `POST /batch`: the body is the client's frames, the answer the server's,
//! each frame prefixed by its length ([`join_frames`], [`split_frames`]).
//!
//! # Encodings
//!
//! A document's data is one of [`Encoding`]: an Automerge bundle (compact,
//! but experimental in automerge 0.12, so used only when both sides list
//! `am-bundle-0.12`), raw change chunks (always understood), or a whole
//! `save()` for a document new to the receiver when that is smaller. All
//! three load with `load_incremental`.
//!
//! # Cursors
//!
//! The server numbers every change it stores with a monotonic sequence. A
//! client's cursor says "I have every change numbered up to here"; the pull
//! carries every document in the client's scope with a change numbered after
//! it, and a new cursor. Documents that did not change are never loaded on
//! either side: the client pushes only documents its host marks dirty, and
//! the server pulls only documents its change log names.

#![warn(missing_docs)]

mod client;
mod encoding;
mod error;
mod frame;
mod http;
mod server;

pub use client::{BatchClient, ClientEvent, ClientState, PART_BUDGET, ReplicaDocs};
pub use encoding::{Encoding, decode_into, encode_changes, encode_since, heads_of};
pub use error::BatchError;
pub use frame::{
    Ack, DocPull, DocPush, DocResult, ErrorCode, ErrorFrame, Frame, InboxAck, InboxEntry, InboxPull, MAX_FRAME_BYTES,
    Pull, Push, RefusedChange,
};
pub use http::{BODY_CONTENT_TYPE, join_frames, split_frames};
pub use server::{
    ClientFrame, Incoming, PullExtras, PullPlan, Received, Rejected, ServerExchange, apply_push, check_push,
    error_frame, parse_client_frame, parse_push, plan_pull, pull_doc,
};

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// Every protocol version this build understands, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1, 2];

/// A document id: 16 random bytes (the same ids automerge-repo uses).
/// Its text and serde form is 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocId(pub [u8; 16]);

impl std::str::FromStr for DocId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("a document id is 32 hex digits, not {s:?}");
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(DocId(id))
    }
}

impl Serialize for DocId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
