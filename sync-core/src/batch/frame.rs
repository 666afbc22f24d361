//! Wire frames of the batched sync extension and their codec (CBOR map, raw DEFLATE).
//!
//! The layout is described in the [module docs](super). Decoding skips keys
//! it does not know, so a later version can add keys without breaking this
//! one; it never trusts a length from the wire for a preallocation, and the
//! CBOR's depth and list lengths are checked by [`crate::guard::cbor`]
//! before it starts.

use std::io::{Read, Write};

use automerge::{ActorId, ChangeHash};
use minicbor::{Decoder, Encoder};

use super::{BatchError, DocId, Encoding, PROTOCOL_VERSION, SUPPORTED_VERSIONS};
use crate::time::Timestamp;

/// The largest inflated frame accepted by [`Frame::decode`]: a guard against zip bombs.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One frame of the batched sync extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → server: a part of the push.
    Push(Push),
    /// Server → client: the result of a push part.
    Ack(Ack),
    /// Server → client: what changed, ending the exchange.
    Pull(Pull),
    /// Either way: the exchange cannot go on.
    Error(ErrorFrame),
    /// Client → server (protocol 2): the client has stored its inbox up to a
    /// cursor. Sent after a pull that carried inbox items, without waiting
    /// for an answer; the next push's [`Push::inbox`] says the same again,
    /// so a lost one only delays the acknowledgement.
    InboxAck(InboxAck),
}

/// Client → server: every inbox item up to `cursor` is stored on the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxAck {
    /// The protocol version the client speaks (2 or later).
    pub version: u32,
    /// The client's inbox cursor.
    pub cursor: u64,
}

/// Client → server: one part of the client's push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The protocol version the client speaks.
    pub version: u32,
    /// Part 0 only: the client handles early pulls (see [`Pull::early`]).
    pub early: bool,
    /// Encodings the client can read, preferred first. Sent in part 0 only;
    /// names this build does not know are dropped when decoding.
    pub encodings: Vec<Encoding>,
    /// The exchange this part belongs to, chosen by the client.
    pub exchange: u64,
    /// The part's number in the exchange, from 0.
    pub part: u32,
    /// Whether this is the last part: the server answers with a [`Pull`] after it.
    pub last: bool,
    /// The client's cursor into the server's change sequence.
    pub cursor: u64,
    /// The documents (or slices of a document's changes) carried by this part.
    pub docs: Vec<DocPush>,
    /// Protocol 2, last part only: the client's inbox cursor. The client
    /// has stored every inbox item up to it (the server acknowledges them)
    /// and wants the items after it in the pull ([`Pull::inbox`]). Absent:
    /// the client reads its inbox some other way.
    pub inbox: Option<u64>,
    /// A station relaying its people's changes attests, for each actor of
    /// the part's changes, the user who delivered them to it (see
    /// [`crate::relay`]); empty from phones. Key `w`, written only when set.
    pub authors: Vec<(ActorId, String)>,
}

/// Changes of one document pushed by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocPush {
    /// The document.
    pub id: DocId,
    /// Heads both sides are known to share: `data` holds the changes after
    /// them. Empty for a document new to the server.
    pub base: Vec<ChangeHash>,
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The changes, in `encoding`. Empty data only announces that the client
    /// has `base`.
    pub data: Vec<u8>,
    /// A station's receipt times of entries in `data` (see
    /// [`crate::relay::receipts_to_carry`]), so the tier above starts their
    /// clocks when the station received them. Key `t`: `[[entry, ms], …]`,
    /// written only when there are some; a phone sends none.
    pub receipts: Vec<(String, Timestamp)>,
}

/// Server → client: the result of one push part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The exchange the acknowledged part belongs to.
    pub exchange: u64,
    /// The acknowledged part.
    pub part: u32,
    /// One result per pushed document entry, in the push's order.
    pub docs: Vec<DocResult>,
}

/// What became of one pushed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocResult {
    /// The document.
    pub id: DocId,
    /// The server's heads after applying the accepted changes.
    pub heads: Vec<ChangeHash>,
    /// How many changes were accepted (changes the server already had are not counted).
    pub accepted: u32,
    /// Refused changes. The client keeps them locally; its host decides what to do.
    pub refused: Vec<RefusedChange>,
}

/// A change the server refused, with the rule's stable name and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedChange {
    /// The refused change.
    pub change: ChangeHash,
    /// The rule's text form ([`crate::policy::Rule`]).
    pub rule: String,
    /// Why, in a sentence for people.
    pub detail: String,
}

/// Server → client after the last part: what changed on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pull {
    /// An early pull, sent while the client is still pushing: it carries
    /// documents only and does not end the exchange (its cursor means
    /// nothing). Sent only to a client whose part 0 asked for one.
    pub early: bool,
    /// The exchange this pull ends.
    pub exchange: u64,
    /// The client's new cursor.
    pub cursor: u64,
    /// The documents the client lacks changes of.
    pub docs: Vec<DocPull>,
    /// The server paged the pull: the client should start another exchange.
    pub more: bool,
    /// Encodings the server reads, preferred first: the client pushes in
    /// them from its next exchange on (before it knows, it uses
    /// [`Encoding::Changes`] and [`Encoding::Document`], which every peer reads).
    pub encodings: Vec<Encoding>,
    /// The highest protocol version the server speaks: the client uses it
    /// from its next exchange on. Pulls of servers that predate version 2
    /// lack the key, which reads as 1.
    pub version: u32,
    /// Protocol 2: the client's inbox after the cursor its push carried,
    /// when it carried one.
    pub inbox: Option<InboxPull>,
    /// Protocol 2: the generation of what the client mirrors of the
    /// server: for a phone its settings (the unit tree, clock rules and
    /// calendar), for a station server its directory
    /// ([`crate::relay::directory_generation`]). It changes whenever they
    /// do, so a client fetches them only when it moved.
    pub settings: Option<u64>,
}

/// The inbox part of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPull {
    /// The client's inbox cursor once it has stored `items` (at least the
    /// cursor it sent).
    pub cursor: u64,
    /// The items after the client's cursor, oldest first, at most a page;
    /// the pull's `more` is set when more wait.
    pub items: Vec<InboxEntry>,
}

/// One notification of a user's inbox, as the batched exchange carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its place in the inbox.
    pub cursor: u64,
    /// The notification's stable key (the same notification always has the same key).
    pub key: String,
    /// What happened (`new_petition`, `mention`, …).
    pub kind: String,
    /// The document it is about (its storage id).
    pub doc: String,
    /// The entry of the document it is about, if any.
    pub entry: Option<String>,
    /// Whether it is urgent.
    pub urgent: bool,
    /// When it happened, UTC milliseconds.
    pub at_ms: i64,
    /// The text shown to the user.
    pub text: String,
}

/// One document's changes the client lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocPull {
    /// The document.
    pub id: DocId,
    /// The heads the server assumed the client has; `data` holds what follows them.
    pub base: Vec<ChangeHash>,
    /// The server's heads: the client has them all once `data` is applied.
    pub heads: Vec<ChangeHash>,
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The changes after `base`, in `encoding` (empty when the entry only
    /// carries refusals).
    pub data: Vec<u8>,
    /// Changes of this document the server refuses although the client may
    /// hold them: a tier above refused them after this server had stored
    /// them, and this server took them back (see [`crate::relay`]). A client
    /// that holds one drops it and what builds on it, as it does with a
    /// refusal of its own push. Key `r`, written only when there are some;
    /// older clients skip it.
    pub refused: Vec<RefusedChange>,
    /// To a station only: this server's receipt times of entries the
    /// station may lack, as in [`DocPush::receipts`]. Key `t`.
    pub receipts: Vec<(String, Timestamp)>,
}

/// Either side: the exchange cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// Why an exchange was stopped. The text form is stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The push's protocol version is not supported; the message lists the supported ones.
    UnsupportedVersion,
    /// The frame did not decode.
    BadFrame,
    /// The user may not sync (token expired, revoked, or no such scope).
    Unauthorized,
    /// The server failed; the client may retry later.
    Internal,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    /// The stable text form.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::BadFrame => "bad-frame",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
            ErrorCode::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "unsupported-version" => ErrorCode::UnsupportedVersion,
            "bad-frame" => ErrorCode::BadFrame,
            "unauthorized" => ErrorCode::Unauthorized,
            "internal" => ErrorCode::Internal,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl Frame {
    /// CBOR-encodes and deflates the frame.
    pub fn encode(&self) -> Vec<u8> {
        deflate(&self.to_cbor())
    }

    /// Inflates and decodes a frame of at most [`MAX_FRAME_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Frame, BatchError> {
        Self::decode_with_limit(bytes, MAX_FRAME_BYTES)
    }

    /// Inflates and decodes a frame that inflates to at most `limit` bytes.
    pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Frame, BatchError> {
        Self::from_cbor(&inflate(bytes, limit)?)
    }

    /// The frame's CBOR form, before compression.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        self.write(&mut e).expect("writing to a Vec cannot fail");
        e.into_writer()
    }

    /// Decodes the CBOR form of a frame, after [`crate::guard::cbor`] has
    /// walked it: lists are collected into vectors, so their lengths and the
    /// nesting are bounded before anything is.
    pub fn from_cbor(bytes: &[u8]) -> Result<Frame, BatchError> {
        match crate::guard::cbor(bytes, &crate::guard::CborLimits::default()) {
            Ok(_) => {}
            Err(r) if r.is_malformed() => return Err(BatchError::Cbor(r.detail)),
            Err(r) => return Err(BatchError::Refused(r)),
        }
        let mut d = Decoder::new(bytes);
        let frame = read_frame(&mut d)?;
        if d.position() != bytes.len() {
            return Err(BatchError::Cbor("trailing bytes after the frame".into()));
        }
        Ok(frame)
    }

    fn write(&self, e: &mut Encoder<Vec<u8>>) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            Frame::Push(p) => {
                let first = !p.encodings.is_empty();
                let attested = !p.authors.is_empty();
                e.map(7 + u64::from(first) + u64::from(p.early) + u64::from(p.inbox.is_some()) + u64::from(attested))?;
                e.str("t")?.str("push")?;
                e.str("v")?.u32(p.version)?;
                if p.early {
                    e.str("y")?.bool(true)?;
                }
                if first {
                    e.str("e")?.array(p.encodings.len() as u64)?;
                    for enc in &p.encodings {
                        e.str(enc.name())?;
                    }
                }
                e.str("x")?.u64(p.exchange)?;
                e.str("p")?.u32(p.part)?;
                e.str("l")?.bool(p.last)?;
                e.str("c")?.u64(p.cursor)?;
                if let Some(n) = p.inbox {
                    e.str("n")?.u64(n)?;
                }
                if attested {
                    e.str("w")?.array(p.authors.len() as u64)?;
                    for (actor, user) in &p.authors {
                        e.array(2)?.bytes(actor.to_bytes())?.str(user)?;
                    }
                }
                e.str("d")?.array(p.docs.len() as u64)?;
                for doc in &p.docs {
                    e.map(4 + u64::from(!doc.receipts.is_empty()))?;
                    e.str("i")?.bytes(&doc.id.0)?;
                    write_hashes(e.str("b")?, &doc.base)?;
                    e.str("e")?.str(doc.encoding.name())?;
                    e.str("a")?.bytes(&doc.data)?;
                    write_receipts(e, &doc.receipts)?;
                }
            }
            Frame::Ack(a) => {
                e.map(4)?;
                e.str("t")?.str("ack")?;
                e.str("x")?.u64(a.exchange)?;
                e.str("p")?.u32(a.part)?;
                e.str("d")?.array(a.docs.len() as u64)?;
                for doc in &a.docs {
                    e.map(4)?;
                    e.str("i")?.bytes(&doc.id.0)?;
                    write_hashes(e.str("h")?, &doc.heads)?;
                    e.str("n")?.u32(doc.accepted)?;
                    write_refused(e, &doc.refused)?;
                }
            }
            Frame::Pull(p) => {
                let extra = u64::from(p.early) + 2 * u64::from(p.inbox.is_some()) + u64::from(p.settings.is_some());
                e.map(7 + extra)?;
                e.str("t")?.str("pull")?;
                e.str("v")?.u32(p.version)?;
                if p.early {
                    e.str("y")?.bool(true)?;
                }
                e.str("e")?.array(p.encodings.len() as u64)?;
                for enc in &p.encodings {
                    e.str(enc.name())?;
                }
                e.str("x")?.u64(p.exchange)?;
                e.str("c")?.u64(p.cursor)?;
                e.str("m")?.bool(p.more)?;
                e.str("d")?.array(p.docs.len() as u64)?;
                for doc in &p.docs {
                    e.map(5 + u64::from(!doc.refused.is_empty()) + u64::from(!doc.receipts.is_empty()))?;
                    e.str("i")?.bytes(&doc.id.0)?;
                    write_hashes(e.str("b")?, &doc.base)?;
                    write_hashes(e.str("h")?, &doc.heads)?;
                    e.str("e")?.str(doc.encoding.name())?;
                    e.str("a")?.bytes(&doc.data)?;
                    if !doc.refused.is_empty() {
                        write_refused(e, &doc.refused)?;
                    }
                    write_receipts(e, &doc.receipts)?;
                }
                if let Some(inbox) = &p.inbox {
                    e.str("n")?.u64(inbox.cursor)?;
                    e.str("o")?.array(inbox.items.len() as u64)?;
                    for item in &inbox.items {
                        write_entry(e, item)?;
                    }
                }
                if let Some(g) = p.settings {
                    e.str("g")?.u64(g)?;
                }
            }
            Frame::InboxAck(a) => {
                e.map(3)?;
                e.str("t")?.str("iack")?;
                e.str("v")?.u32(a.version)?;
                e.str("n")?.u64(a.cursor)?;
            }
            Frame::Error(x) => {
                e.map(3)?;
                e.str("t")?.str("err")?;
                e.str("k")?.str(x.code.as_str())?;
                e.str("s")?.str(&x.message)?;
            }
        }
        Ok(())
    }
}

/// Refusals as `r`: `[[hash, rule, detail], …]`.
fn write_refused(
    e: &mut Encoder<Vec<u8>>,
    refused: &[RefusedChange],
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.str("r")?.array(refused.len() as u64)?;
    for r in refused {
        e.array(3)?.bytes(&r.change.0)?.str(&r.rule)?.str(&r.detail)?;
    }
    Ok(())
}

/// Receipt times as `t`: `[[entry, ms], …]`; nothing when there are none.
fn write_receipts(
    e: &mut Encoder<Vec<u8>>,
    receipts: &[(String, Timestamp)],
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    if receipts.is_empty() {
        return Ok(());
    }
    e.str("t")?.array(receipts.len() as u64)?;
    for (entry, at) in receipts {
        e.array(2)?.str(entry)?.i64(at.millis())?;
    }
    Ok(())
}

fn read_receipt(d: &mut Decoder<'_>) -> Result<(String, Timestamp), BatchError> {
    if array_len(d)? != 2 {
        return Err(BatchError::Cbor("a receipt is [entry, ms]".into()));
    }
    let entry = d.str()?.to_string();
    Ok((entry, Timestamp::from_millis(d.i64()?)))
}

/// An inbox entry as an array: `[cursor, key, kind, doc, entry or null, urgent, at_ms, text]`.
fn write_entry(
    e: &mut Encoder<Vec<u8>>,
    item: &InboxEntry,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.array(8)?
        .u64(item.cursor)?
        .str(&item.key)?
        .str(&item.kind)?
        .str(&item.doc)?;
    match &item.entry {
        Some(entry) => e.str(entry)?,
        None => e.null()?,
    };
    e.bool(item.urgent)?.i64(item.at_ms)?.str(&item.text)?;
    Ok(())
}

fn read_entry(d: &mut Decoder<'_>) -> Result<InboxEntry, BatchError> {
    if array_len(d)? != 8 {
        return Err(BatchError::Cbor(
            "an inbox entry is [cursor, key, kind, doc, entry, urgent, at_ms, text]".into(),
        ));
    }
    let cursor = d.u64()?;
    let key = d.str()?.to_string();
    let kind = d.str()?.to_string();
    let doc = d.str()?.to_string();
    let entry = if d.datatype()? == minicbor::data::Type::Null {
        d.null()?;
        None
    } else {
        Some(d.str()?.to_string())
    };
    Ok(InboxEntry {
        cursor,
        key,
        kind,
        doc,
        entry,
        urgent: d.bool()?,
        at_ms: d.i64()?,
        text: d.str()?.to_string(),
    })
}

fn write_hashes<'a>(
    e: &'a mut Encoder<Vec<u8>>,
    hashes: &[ChangeHash],
) -> Result<&'a mut Encoder<Vec<u8>>, minicbor::encode::Error<std::convert::Infallible>> {
    e.array(hashes.len() as u64)?;
    for h in hashes {
        e.bytes(&h.0)?;
    }
    Ok(e)
}

/// Raw-deflates `bytes` at the best compression level: on a 2G link bytes cost more than CPU.
pub(crate) fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Inflates raw DEFLATE data, refusing to produce more than `limit` bytes.
pub(crate) fn inflate(bytes: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Deflate(e.to_string()))?;
    if out.len() > limit {
        return Err(BatchError::Oversize { limit });
    }
    Ok(out)
}

/// Reads a definite-length map header; indefinite maps are not part of this protocol.
fn map_len(d: &mut Decoder<'_>) -> Result<u64, BatchError> {
    d.map()?
        .ok_or_else(|| BatchError::Cbor("indefinite-length maps are not used by this protocol".into()))
}

fn array_len(d: &mut Decoder<'_>) -> Result<u64, BatchError> {
    d.array()?
        .ok_or_else(|| BatchError::Cbor("indefinite-length arrays are not used by this protocol".into()))
}

fn read_id(d: &mut Decoder<'_>) -> Result<DocId, BatchError> {
    let b = d.bytes()?;
    <[u8; 16]>::try_from(b)
        .map(DocId)
        .map_err(|_| BatchError::Cbor(format!("a document id has 16 bytes, not {}", b.len())))
}

fn read_hash(d: &mut Decoder<'_>) -> Result<ChangeHash, BatchError> {
    let b = d.bytes()?;
    ChangeHash::try_from(b).map_err(|_| BatchError::Cbor(format!("a change hash has 32 bytes, not {}", b.len())))
}

fn read_hashes(d: &mut Decoder<'_>) -> Result<Vec<ChangeHash>, BatchError> {
    let n = array_len(d)?;
    (0..n).map(|_| read_hash(d)).collect()
}

fn read_encoding(d: &mut Decoder<'_>) -> Result<Encoding, BatchError> {
    let name = d.str()?;
    Encoding::from_name(name).ok_or_else(|| BatchError::UnknownEncoding(name.to_string()))
}

fn read_list<T>(
    d: &mut Decoder<'_>,
    mut item: impl FnMut(&mut Decoder<'_>) -> Result<T, BatchError>,
) -> Result<Vec<T>, BatchError> {
    let n = array_len(d)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(item(d)?);
    }
    Ok(out)
}

fn need<T>(v: Option<T>, frame: &'static str, key: &'static str) -> Result<T, BatchError> {
    v.ok_or(BatchError::MissingKey { frame, key })
}

fn read_frame(d: &mut Decoder<'_>) -> Result<Frame, BatchError> {
    let n = map_len(d)?;
    // The type key comes first in every frame this build writes, but any
    // order is accepted: keys are collected, then the frame is assembled.
    let mut kind: Option<String> = None;
    let mut f = Fields::default();
    for _ in 0..n {
        match d.str()? {
            "t" => kind = Some(d.str()?.to_string()),
            "v" => f.version = Some(d.u32()?),
            "e" => f.encodings = Some(read_list(d, |d| Ok(Encoding::from_name(d.str()?)))?),
            "x" => f.exchange = Some(d.u64()?),
            "p" => f.part = Some(d.u32()?),
            "l" => f.last = Some(d.bool()?),
            "c" => f.cursor = Some(d.u64()?),
            "m" => f.more = Some(d.bool()?),
            "y" => f.early = Some(d.bool()?),
            "k" => f.code = Some(d.str()?.to_string()),
            "s" => f.message = Some(d.str()?.to_string()),
            "d" => f.docs = Some(read_list(d, read_doc)?),
            "n" => f.inbox = Some(d.u64()?),
            "o" => f.items = Some(read_list(d, read_entry)?),
            "g" => f.settings = Some(d.u64()?),
            "w" => f.authors = Some(read_list(d, read_author)?),
            _ => d.skip()?,
        }
    }
    let kind = need(kind, "any", "t")?;
    match kind.as_str() {
        "push" => {
            let version = need(f.version, "push", "v")?;
            if !SUPPORTED_VERSIONS.contains(&version) {
                return Err(BatchError::UnsupportedVersion {
                    got: version,
                    supported: SUPPORTED_VERSIONS,
                });
            }
            let docs = need(f.docs, "push", "d")?
                .into_iter()
                .map(|x| {
                    Ok(DocPush {
                        id: need(x.id, "push", "d.i")?,
                        base: need(x.base, "push", "d.b")?,
                        encoding: need(x.encoding, "push", "d.e")?,
                        data: need(x.data, "push", "d.a")?,
                        receipts: x.receipts.unwrap_or_default(),
                    })
                })
                .collect::<Result<_, BatchError>>()?;
            Ok(Frame::Push(Push {
                version,
                early: f.early.unwrap_or(false),
                encodings: f.encodings.unwrap_or_default().into_iter().flatten().collect(),
                exchange: need(f.exchange, "push", "x")?,
                part: need(f.part, "push", "p")?,
                last: need(f.last, "push", "l")?,
                cursor: need(f.cursor, "push", "c")?,
                docs,
                // The inbox travels from version 2 on.
                inbox: f.inbox.filter(|_| version >= 2),
                authors: f.authors.unwrap_or_default(),
            }))
        }
        "ack" => {
            let docs = need(f.docs, "ack", "d")?
                .into_iter()
                .map(|x| {
                    Ok(DocResult {
                        id: need(x.id, "ack", "d.i")?,
                        heads: need(x.heads, "ack", "d.h")?,
                        accepted: need(x.accepted, "ack", "d.n")?,
                        refused: x.refused.unwrap_or_default(),
                    })
                })
                .collect::<Result<_, BatchError>>()?;
            Ok(Frame::Ack(Ack {
                exchange: need(f.exchange, "ack", "x")?,
                part: need(f.part, "ack", "p")?,
                docs,
            }))
        }
        "pull" => {
            let docs = need(f.docs, "pull", "d")?
                .into_iter()
                .map(|x| {
                    Ok(DocPull {
                        id: need(x.id, "pull", "d.i")?,
                        base: need(x.base, "pull", "d.b")?,
                        heads: need(x.heads, "pull", "d.h")?,
                        encoding: need(x.encoding, "pull", "d.e")?,
                        data: need(x.data, "pull", "d.a")?,
                        refused: x.refused.unwrap_or_default(),
                        receipts: x.receipts.unwrap_or_default(),
                    })
                })
                .collect::<Result<_, BatchError>>()?;
            Ok(Frame::Pull(Pull {
                early: f.early.unwrap_or(false),
                exchange: need(f.exchange, "pull", "x")?,
                cursor: need(f.cursor, "pull", "c")?,
                docs,
                more: f.more.unwrap_or(false),
                encodings: f.encodings.unwrap_or_default().into_iter().flatten().collect(),
                version: f.version.unwrap_or(1),
                inbox: f.inbox.map(|cursor| InboxPull {
                    cursor,
                    items: f.items.unwrap_or_default(),
                }),
                settings: f.settings,
            }))
        }
        "iack" => {
            let version = need(f.version, "iack", "v")?;
            if !SUPPORTED_VERSIONS.contains(&version) || version < 2 {
                return Err(BatchError::UnsupportedVersion {
                    got: version,
                    supported: SUPPORTED_VERSIONS,
                });
            }
            Ok(Frame::InboxAck(InboxAck {
                version,
                cursor: need(f.inbox, "iack", "n")?,
            }))
        }
        "err" => Ok(Frame::Error(ErrorFrame {
            code: ErrorCode::parse(&need(f.code, "err", "k")?),
            message: f.message.unwrap_or_default(),
        })),
        other => Err(BatchError::UnknownFrame(other.to_string())),
    }
}

/// Keys of a frame, collected before the frame type is known.
#[derive(Default)]
struct Fields {
    version: Option<u32>,
    encodings: Option<Vec<Option<Encoding>>>,
    exchange: Option<u64>,
    part: Option<u32>,
    last: Option<bool>,
    cursor: Option<u64>,
    more: Option<bool>,
    early: Option<bool>,
    code: Option<String>,
    message: Option<String>,
    docs: Option<Vec<DocFields>>,
    inbox: Option<u64>,
    items: Option<Vec<InboxEntry>>,
    settings: Option<u64>,
    authors: Option<Vec<(ActorId, String)>>,
}

/// Keys of one entry of a frame's `d` list, whatever the frame type.
#[derive(Default)]
struct DocFields {
    id: Option<DocId>,
    base: Option<Vec<ChangeHash>>,
    heads: Option<Vec<ChangeHash>>,
    encoding: Option<Encoding>,
    data: Option<Vec<u8>>,
    accepted: Option<u32>,
    refused: Option<Vec<RefusedChange>>,
    receipts: Option<Vec<(String, Timestamp)>>,
}

fn read_doc(d: &mut Decoder<'_>) -> Result<DocFields, BatchError> {
    let n = map_len(d)?;
    let mut x = DocFields::default();
    for _ in 0..n {
        match d.str()? {
            "i" => x.id = Some(read_id(d)?),
            "b" => x.base = Some(read_hashes(d)?),
            "h" => x.heads = Some(read_hashes(d)?),
            "e" => x.encoding = Some(read_encoding(d)?),
            "a" => x.data = Some(d.bytes()?.to_vec()),
            "n" => x.accepted = Some(d.u32()?),
            "r" => x.refused = Some(read_list(d, read_refused)?),
            "t" => x.receipts = Some(read_list(d, read_receipt)?),
            _ => d.skip()?,
        }
    }
    Ok(x)
}

fn read_author(d: &mut Decoder<'_>) -> Result<(ActorId, String), BatchError> {
    if array_len(d)? != 2 {
        return Err(BatchError::Cbor("an author is [actor, user]".into()));
    }
    let actor = ActorId::from(d.bytes()?);
    Ok((actor, d.str()?.to_string()))
}

fn read_refused(d: &mut Decoder<'_>) -> Result<RefusedChange, BatchError> {
    if array_len(d)? != 3 {
        return Err(BatchError::Cbor("a refusal is [hash, rule, detail]".into()));
    }
    Ok(RefusedChange {
        change: read_hash(d)?,
        rule: d.str()?.to_string(),
        detail: d.str()?.to_string(),
    })
}

impl Push {
    /// A push part in this build's protocol version.
    pub fn new(exchange: u64, part: u32, cursor: u64) -> Self {
        Push {
            version: PROTOCOL_VERSION,
            early: false,
            encodings: Vec::new(),
            exchange,
            part,
            last: false,
            cursor,
            docs: Vec::new(),
            inbox: None,
            authors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    fn round_trip(f: Frame) -> usize {
        let bytes = f.encode();
        assert_eq!(Frame::decode(&bytes).unwrap(), f);
        bytes.len()
    }

    #[test]
    fn push_round_trips_with_and_without_encodings() {
        let mut p = Push::new(7, 0, 42);
        p.encodings = vec![Encoding::Bundle, Encoding::Changes, Encoding::Document];
        p.docs = vec![
            DocPush {
                id: DocId([1; 16]),
                base: vec![h(1), h(2)],
                encoding: Encoding::Bundle,
                data: vec![1, 2, 3],
                receipts: vec![(
                    "1764990000000.00000.li".into(),
                    Timestamp::from_millis(1_764_990_004_000),
                )],
            },
            DocPush {
                id: DocId([2; 16]),
                base: vec![],
                encoding: Encoding::Document,
                data: vec![],
                receipts: vec![],
            },
        ];
        round_trip(Frame::Push(p.clone()));
        p.encodings.clear();
        p.part = 3;
        p.last = true;
        round_trip(Frame::Push(p.clone()));
        // A station's part names the authors of its actors.
        p.authors = vec![(automerge::ActorId::from([9u8; 16].as_slice()), "officer-a".into())];
        round_trip(Frame::Push(p));
    }

    #[test]
    fn an_idle_push_is_a_few_bytes() {
        let mut p = Push::new(u64::MAX, 0, 123_456);
        p.encodings = vec![Encoding::Bundle, Encoding::Changes, Encoding::Document];
        p.last = true;
        let n = round_trip(Frame::Push(p));
        assert!(n < 80, "idle push is {n} bytes");
    }

    #[test]
    fn ack_round_trips() {
        round_trip(Frame::Ack(Ack {
            exchange: 1,
            part: 2,
            docs: vec![DocResult {
                id: DocId([9; 16]),
                heads: vec![h(3)],
                accepted: 4,
                refused: vec![RefusedChange {
                    change: h(5),
                    rule: "role-required".into(),
                    detail: "只有民警可以签收".into(),
                }],
            }],
        }));
    }

    #[test]
    fn pull_round_trips() {
        round_trip(Frame::Pull(Pull {
            early: true,
            exchange: 1,
            cursor: 99,
            more: true,
            encodings: vec![Encoding::Bundle, Encoding::Changes],
            docs: vec![DocPull {
                id: DocId([3; 16]),
                base: vec![],
                heads: vec![h(7), h(8)],
                encoding: Encoding::Changes,
                data: vec![0; 100],
                refused: vec![],
                receipts: vec![(
                    "1764990000000.00003.wang".into(),
                    Timestamp::from_millis(1_764_990_000_100),
                )],
            }],
            version: 2,
            inbox: None,
            settings: None,
        }));
    }

    #[test]
    fn a_pulled_document_carries_the_refusals_of_a_tier_above() {
        let pulled = |refused: Vec<RefusedChange>| {
            Frame::Pull(Pull {
                early: false,
                exchange: 2,
                cursor: 40,
                more: false,
                encodings: vec![Encoding::Changes],
                docs: vec![DocPull {
                    id: DocId([4; 16]),
                    base: vec![],
                    heads: vec![h(9)],
                    encoding: Encoding::Changes,
                    data: vec![],
                    refused,
                    receipts: vec![],
                }],
                version: 2,
                inbox: None,
                settings: None,
            })
        };
        let without = round_trip(pulled(vec![]));
        let with = round_trip(pulled(vec![RefusedChange {
            change: h(6),
            rule: "role-required".into(),
            detail: "refused by the tier above: 只有领导可以督办".into(),
        }]));
        assert!(with > without);
        // A pull without refusals is written as before (no `r` key).
        let Frame::Pull(p) = pulled(vec![]) else { unreachable!() };
        let cbor = Frame::Pull(p).to_cbor();
        assert!(!cbor.windows(2).any(|w| w == [0x61, b'r']), "an empty `r` was written");
    }

    #[test]
    fn the_inbox_round_trips_in_a_pull_and_an_iack() {
        let entry = |cursor, entry: Option<&str>| InboxEntry {
            cursor,
            key: format!("p/{cursor}/mention/user:li"),
            kind: "mention".into(),
            doc: "2xK9pZ".into(),
            entry: entry.map(str::to_string),
            urgent: cursor % 2 == 0,
            at_ms: -5 + cursor as i64,
            text: "李警官，请看一下".into(),
        };
        round_trip(Frame::Pull(Pull {
            early: false,
            exchange: 4,
            cursor: 10,
            more: false,
            encodings: vec![Encoding::Changes],
            docs: vec![],
            version: 2,
            inbox: Some(InboxPull {
                cursor: 12,
                items: vec![entry(11, Some("e1")), entry(12, None)],
            }),
            settings: Some(77),
        }));
        round_trip(Frame::InboxAck(InboxAck { version: 2, cursor: 12 }));
        let mut p = Push::new(1, 0, 3);
        p.last = true;
        p.inbox = Some(9);
        round_trip(Frame::Push(p.clone()));
        // A version-1 push's inbox cursor is not read: version 1 has none.
        p.version = 1;
        let Frame::Push(back) = Frame::decode(&Frame::Push(p).encode()).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(back.inbox, None);
        // An iack claiming version 1 is refused: version 1 has no inbox.
        let v1 = Frame::InboxAck(InboxAck { version: 1, cursor: 1 }).encode();
        assert!(matches!(Frame::decode(&v1), Err(BatchError::UnsupportedVersion { .. })));
    }

    #[test]
    fn a_pull_without_a_version_reads_as_version_1() {
        let mut e = Encoder::new(Vec::new());
        e.map(6).unwrap();
        e.str("t").unwrap().str("pull").unwrap();
        e.str("e").unwrap().array(0).unwrap();
        e.str("x").unwrap().u64(1).unwrap();
        e.str("c").unwrap().u64(5).unwrap();
        e.str("m").unwrap().bool(false).unwrap();
        e.str("d").unwrap().array(0).unwrap();
        let Frame::Pull(p) = Frame::decode(&deflate(&e.into_writer())).unwrap() else {
            panic!("not a pull")
        };
        assert_eq!((p.version, p.inbox, p.settings), (1, None, None));
    }

    #[test]
    fn error_round_trips_with_unknown_codes() {
        round_trip(Frame::Error(ErrorFrame {
            code: ErrorCode::UnsupportedVersion,
            message: "supported versions: [1]".into(),
        }));
        round_trip(Frame::Error(ErrorFrame {
            code: ErrorCode::Other("slow-down".into()),
            message: String::new(),
        }));
    }

    #[test]
    fn unknown_keys_and_encodings_are_skipped() {
        let mut e = Encoder::new(Vec::new());
        e.map(9).unwrap();
        e.str("t").unwrap().str("push").unwrap();
        e.str("v").unwrap().u32(1).unwrap();
        e.str("e")
            .unwrap()
            .array(2)
            .unwrap()
            .str("am-bundle-9")
            .unwrap()
            .str("am-changes")
            .unwrap();
        e.str("x").unwrap().u64(1).unwrap();
        e.str("p").unwrap().u32(0).unwrap();
        e.str("l").unwrap().bool(true).unwrap();
        e.str("c").unwrap().u64(0).unwrap();
        e.str("zz").unwrap().array(1).unwrap().map(0).unwrap();
        e.str("d").unwrap().array(0).unwrap();
        let Frame::Push(p) = Frame::decode(&deflate(&e.into_writer())).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.encodings, vec![Encoding::Changes]);
    }

    #[test]
    fn bad_input_gives_clear_errors() {
        let err = Frame::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, BatchError::Deflate(_)), "{err}");

        let err = Frame::decode(&deflate(b"\xa1\x61t")).unwrap_err();
        assert!(matches!(err, BatchError::Cbor(_)), "{err}");

        let mut p = Push::new(1, 0, 0);
        p.version = 99;
        let err = Frame::decode(&Frame::Push(p).encode()).unwrap_err();
        assert!(matches!(err, BatchError::UnsupportedVersion { got: 99, .. }));
        assert!(err.to_string().contains("supported versions: [1, 2]"), "{err}");

        // A zip bomb: a megabyte of zeros deflates to about a kilobyte.
        let bomb = deflate(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048);
        let err = Frame::decode_with_limit(&bomb, 64 * 1024).unwrap_err();
        assert!(matches!(err, BatchError::Oversize { limit: 65536 }), "{err}");
    }
}
