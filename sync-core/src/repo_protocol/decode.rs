//! Decoding of automerge-repo v1 frames: one CBOR map per frame.
//!
//! Decoding is tolerant the way the npm packages are: unknown fields and non-text keys are
//! skipped, CBOR `null` and `undefined` count as an absent field (the npm client writes absent
//! optional fields as `undefined`), tags are looked through, non-minimal lengths and
//! indefinite-length items are accepted, and an integral float is accepted where an unsigned
//! integer is expected (cbor-x writes `Date.now()` as a float64). It is strict about what it
//! keeps: required fields must be present with the right CBOR type, document ids must be valid
//! bs58check, a known field may not appear twice, and the frame must hold exactly one map.
//!
//! The frame is first walked by [`crate::guard::cbor`] (nesting depth, container lengths), then
//! scanned once to find where each known field's value starts; unknown values are skipped without
//! being materialised, so a hostile frame costs at most its own length in memory.

use std::borrow::Cow;
use std::collections::BTreeMap;

use minicbor::Decoder;
use minicbor::data::Type;

use super::document_id::DocumentId;
use super::error::ProtocolError;
use super::message::{
    DocUnavailableMessage, EphemeralMessage, ErrorMessage, JoinMessage, LeaveMessage, PeerId, PeerMessage,
    PeerMetadata, RemoteHeads, RemoteHeadsChangedMessage, RemoteSubscriptionChangeMessage, RepoMessage, StorageId,
    SyncMessage,
};

/// The frame size [`decode`] accepts. Sync messages carry whole changes, so this is generous;
/// hosts with other needs call [`decode_with_limit`].
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Decodes one frame, refusing frames larger than [`DEFAULT_MAX_FRAME_LEN`].
pub fn decode(frame: &[u8]) -> Result<RepoMessage, ProtocolError> {
    decode_with_limit(frame, DEFAULT_MAX_FRAME_LEN)
}

/// Decodes one frame, refusing frames larger than `max_len` bytes.
pub fn decode_with_limit(frame: &[u8], max_len: usize) -> Result<RepoMessage, ProtocolError> {
    if frame.len() > max_len {
        return Err(ProtocolError::Oversize {
            len: frame.len(),
            limit: max_len,
        });
    }
    guard(frame)?;
    let fields = Fields::scan(frame)?;
    let message_type = fields.message_type()?;
    let r = Reader { fields, message_type };
    Ok(match message_type {
        "join" => RepoMessage::Join(JoinMessage {
            sender_id: r.peer_id(Field::SenderId)?,
            peer_metadata: r.peer_metadata()?,
            supported_protocol_versions: r
                .text_array(Field::SupportedProtocolVersions)?
                .ok_or_else(|| r.missing(Field::SupportedProtocolVersions))?,
        }),
        "peer" => RepoMessage::Peer(PeerMessage {
            sender_id: r.peer_id(Field::SenderId)?,
            target_id: r.peer_id(Field::TargetId)?,
            peer_metadata: r.peer_metadata()?,
            selected_protocol_version: r.text(Field::SelectedProtocolVersion)?,
        }),
        "error" => RepoMessage::Error(ErrorMessage {
            sender_id: r.optional_text(Field::SenderId)?.map(PeerId::from),
            target_id: r.optional_text(Field::TargetId)?.map(PeerId::from),
            message: r.text(Field::Message)?,
        }),
        "leave" => RepoMessage::Leave(LeaveMessage {
            sender_id: r.peer_id(Field::SenderId)?,
        }),
        "request" => RepoMessage::Request(r.sync_message()?),
        "sync" => RepoMessage::Sync(r.sync_message()?),
        "doc-unavailable" => RepoMessage::DocUnavailable(DocUnavailableMessage {
            sender_id: r.peer_id(Field::SenderId)?,
            target_id: r.peer_id(Field::TargetId)?,
            document_id: r.document_id()?,
        }),
        "ephemeral" => RepoMessage::Ephemeral(EphemeralMessage {
            sender_id: r.peer_id(Field::SenderId)?,
            target_id: r.peer_id(Field::TargetId)?,
            count: r.uint(Field::Count)?,
            session_id: r.text(Field::SessionId)?,
            document_id: r.document_id()?,
            data: r.bytes(Field::Data)?,
        }),
        "remote-subscription-change" => {
            let storage_ids = |ids: Option<Vec<String>>| ids.map(|ids| ids.into_iter().map(StorageId::from).collect());
            RepoMessage::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
                sender_id: r.peer_id(Field::SenderId)?,
                target_id: r.peer_id(Field::TargetId)?,
                add: storage_ids(r.text_array(Field::Add)?),
                remove: storage_ids(r.text_array(Field::Remove)?),
            })
        }
        "remote-heads-changed" => RepoMessage::RemoteHeadsChanged(RemoteHeadsChangedMessage {
            sender_id: r.peer_id(Field::SenderId)?,
            target_id: r.peer_id(Field::TargetId)?,
            document_id: r.document_id()?,
            new_heads: r.new_heads()?,
        }),
        _ => unreachable!("message_type() returns only known types"),
    })
}

/// Walks the frame with [`crate::guard::cbor`]: a crossed limit is
/// [`ProtocolError::Refused`], broken CBOR is [`ProtocolError::NotCbor`].
pub(super) fn guard(frame: &[u8]) -> Result<(), ProtocolError> {
    match crate::guard::cbor(frame, &crate::guard::CborLimits::default()) {
        Ok(_) => Ok(()),
        Err(r) if r.is_malformed() => Err(ProtocolError::NotCbor(r.detail)),
        Err(r) => Err(ProtocolError::Refused(r)),
    }
}

const MESSAGE_TYPES: [&str; 10] = [
    "join",
    "peer",
    "error",
    "leave",
    "request",
    "sync",
    "doc-unavailable",
    "ephemeral",
    "remote-subscription-change",
    "remote-heads-changed",
];

/// The top-level fields any message type uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Type,
    SenderId,
    TargetId,
    PeerMetadata,
    SupportedProtocolVersions,
    SelectedProtocolVersion,
    Message,
    DocumentId,
    Data,
    Count,
    SessionId,
    Add,
    Remove,
    NewHeads,
}

impl Field {
    const ALL: [Field; 14] = [
        Field::Type,
        Field::SenderId,
        Field::TargetId,
        Field::PeerMetadata,
        Field::SupportedProtocolVersions,
        Field::SelectedProtocolVersion,
        Field::Message,
        Field::DocumentId,
        Field::Data,
        Field::Count,
        Field::SessionId,
        Field::Add,
        Field::Remove,
        Field::NewHeads,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::SenderId => "senderId",
            Field::TargetId => "targetId",
            Field::PeerMetadata => "peerMetadata",
            Field::SupportedProtocolVersions => "supportedProtocolVersions",
            Field::SelectedProtocolVersion => "selectedProtocolVersion",
            Field::Message => "message",
            Field::DocumentId => "documentId",
            Field::Data => "data",
            Field::Count => "count",
            Field::SessionId => "sessionId",
            Field::Add => "add",
            Field::Remove => "remove",
            Field::NewHeads => "newHeads",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Where each known field's value starts in the frame.
struct Fields<'b> {
    frame: &'b [u8],
    at: [Option<usize>; Field::ALL.len()],
}

impl<'b> Fields<'b> {
    fn scan(frame: &'b [u8]) -> Result<Self, ProtocolError> {
        let mut d = Decoder::new(frame);
        match d.datatype().map_err(not_cbor)? {
            Type::Map | Type::MapIndef => {}
            Type::Break | Type::Unknown(_) => {
                return Err(ProtocolError::NotCbor("frame starts with a reserved byte".into()));
            }
            other => return Err(ProtocolError::NotAMap(kind(other))),
        }
        let mut at = [None; Field::ALL.len()];
        each_entry(&mut d, |d, key| {
            if let Some(field) = key.as_deref().and_then(Field::from_name)
                && at[field as usize].replace(d.position()).is_some()
            {
                return Err(ProtocolError::DuplicateField { field: field.name() });
            }
            d.skip().map_err(not_cbor)
        })?;
        match frame.len() - d.position() {
            0 => Ok(Self { frame, at }),
            extra => Err(ProtocolError::TrailingBytes(extra)),
        }
    }

    /// A decoder at the field's value, or `None` if the field is absent.
    fn decoder(&self, field: Field) -> Option<Decoder<'b>> {
        self.at[field as usize].map(|pos| {
            let mut d = Decoder::new(self.frame);
            d.set_position(pos);
            d
        })
    }

    fn message_type(&self) -> Result<&'static str, ProtocolError> {
        let mut d = self.decoder(Field::Type).ok_or(ProtocolError::MissingType)?;
        skip_tags(&mut d)?;
        match d.datatype().map_err(not_cbor)? {
            Type::String | Type::StringIndef => {}
            Type::Null | Type::Undefined => return Err(ProtocolError::MissingType),
            other => return Err(ProtocolError::TypeNotText(kind(other))),
        }
        let name = read_text(&mut d)?;
        MESSAGE_TYPES
            .into_iter()
            .find(|known| *known == name)
            .ok_or_else(|| ProtocolError::UnknownType(name.into_owned()))
    }
}

/// Reads the fields of one message, naming the message type in every error.
struct Reader<'b> {
    fields: Fields<'b>,
    message_type: &'static str,
}

impl<'b> Reader<'b> {
    fn ctx(&self, field: &'static str) -> Ctx {
        Ctx {
            message_type: self.message_type,
            field,
        }
    }

    fn missing(&self, field: Field) -> ProtocolError {
        self.ctx(field.name()).missing()
    }

    /// A decoder at the field's value, or `None` if it is absent, `null` or `undefined`.
    fn value(&self, field: Field) -> Result<Option<Decoder<'b>>, ProtocolError> {
        let Some(mut d) = self.fields.decoder(field) else {
            return Ok(None);
        };
        Ok(present(&mut d)?.then_some(d))
    }

    fn optional_text(&self, field: Field) -> Result<Option<String>, ProtocolError> {
        match self.value(field)? {
            Some(mut d) => text_at(&mut d, self.ctx(field.name())).map(Some),
            None => Ok(None),
        }
    }

    fn text(&self, field: Field) -> Result<String, ProtocolError> {
        self.optional_text(field)?.ok_or_else(|| self.missing(field))
    }

    fn peer_id(&self, field: Field) -> Result<PeerId, ProtocolError> {
        self.text(field).map(PeerId::from)
    }

    fn bytes(&self, field: Field) -> Result<Vec<u8>, ProtocolError> {
        let mut d = self.value(field)?.ok_or_else(|| self.missing(field))?;
        match d.datatype().map_err(not_cbor)? {
            Type::Bytes | Type::BytesIndef => {}
            other => return Err(self.ctx(field.name()).wrong("byte string", kind(other))),
        }
        let mut bytes = Vec::new();
        for chunk in d.bytes_iter().map_err(not_cbor)? {
            bytes.extend_from_slice(chunk.map_err(not_cbor)?);
        }
        Ok(bytes)
    }

    fn uint(&self, field: Field) -> Result<u64, ProtocolError> {
        let mut d = self.value(field)?.ok_or_else(|| self.missing(field))?;
        uint_at(&mut d, self.ctx(field.name()))
    }

    fn document_id(&self) -> Result<DocumentId, ProtocolError> {
        let text = self.text(Field::DocumentId)?;
        text.parse().map_err(|source| ProtocolError::InvalidDocumentId {
            message_type: self.message_type,
            field: Field::DocumentId.name(),
            source,
        })
    }

    fn text_array(&self, field: Field) -> Result<Option<Vec<String>>, ProtocolError> {
        match self.value(field)? {
            Some(mut d) => text_array_at(&mut d, self.ctx(field.name())).map(Some),
            None => Ok(None),
        }
    }

    fn sync_message(&self) -> Result<SyncMessage, ProtocolError> {
        Ok(SyncMessage {
            sender_id: self.peer_id(Field::SenderId)?,
            target_id: self.peer_id(Field::TargetId)?,
            document_id: self.document_id()?,
            data: self.bytes(Field::Data)?,
        })
    }

    fn peer_metadata(&self) -> Result<Option<PeerMetadata>, ProtocolError> {
        let Some(mut d) = self.value(Field::PeerMetadata)? else {
            return Ok(None);
        };
        let ctx = self.ctx("peerMetadata");
        expect_map(&mut d, ctx)?;
        let mut metadata = PeerMetadata::default();
        let (mut seen_storage_id, mut seen_is_ephemeral) = (false, false);
        each_entry(&mut d, |d, key| match key.as_deref() {
            Some("storageId") => {
                let ctx = self.ctx("peerMetadata.storageId");
                once(&mut seen_storage_id, ctx)?;
                if present(d)? {
                    metadata.storage_id = Some(StorageId::from(text_at(d, ctx)?));
                }
                Ok(())
            }
            Some("isEphemeral") => {
                let ctx = self.ctx("peerMetadata.isEphemeral");
                once(&mut seen_is_ephemeral, ctx)?;
                if present(d)? {
                    match d.datatype().map_err(not_cbor)? {
                        Type::Bool => metadata.is_ephemeral = Some(d.bool().map_err(not_cbor)?),
                        other => return Err(ctx.wrong("bool", kind(other))),
                    }
                }
                Ok(())
            }
            _ => d.skip().map_err(not_cbor),
        })?;
        Ok(Some(metadata))
    }

    fn new_heads(&self) -> Result<BTreeMap<StorageId, RemoteHeads>, ProtocolError> {
        let mut d = self
            .value(Field::NewHeads)?
            .ok_or_else(|| self.missing(Field::NewHeads))?;
        let ctx = self.ctx("newHeads");
        expect_map(&mut d, ctx)?;
        let mut new_heads = BTreeMap::new();
        each_entry(&mut d, |d, key| {
            let Some(storage_id) = key else {
                return Err(ctx.wrong("map with text keys", "map with a non-text key"));
            };
            let heads = remote_heads_at(d, |field| self.ctx(field))?;
            if new_heads
                .insert(StorageId::from(storage_id.into_owned()), heads)
                .is_some()
            {
                return Err(ProtocolError::DuplicateField { field: "newHeads" });
            }
            Ok(())
        })?;
        Ok(new_heads)
    }
}

/// The message type and field an error is about.
#[derive(Clone, Copy)]
struct Ctx {
    message_type: &'static str,
    field: &'static str,
}

impl Ctx {
    fn missing(self) -> ProtocolError {
        ProtocolError::MissingField {
            message_type: self.message_type,
            field: self.field,
        }
    }

    fn wrong(self, expected: &'static str, found: &'static str) -> ProtocolError {
        ProtocolError::WrongType {
            message_type: self.message_type,
            field: self.field,
            expected,
            found,
        }
    }
}

fn once(seen: &mut bool, ctx: Ctx) -> Result<(), ProtocolError> {
    if std::mem::replace(seen, true) {
        return Err(ProtocolError::DuplicateField { field: ctx.field });
    }
    Ok(())
}

fn remote_heads_at<'b>(d: &mut Decoder<'b>, ctx: impl Fn(&'static str) -> Ctx) -> Result<RemoteHeads, ProtocolError> {
    expect_map(d, ctx("newHeads.*"))?;
    let (heads_ctx, timestamp_ctx) = (ctx("newHeads.*.heads"), ctx("newHeads.*.timestamp"));
    let (mut heads, mut timestamp) = (None, None);
    let (mut seen_heads, mut seen_timestamp) = (false, false);
    each_entry(d, |d, key| match key.as_deref() {
        Some("heads") => {
            once(&mut seen_heads, heads_ctx)?;
            if present(d)? {
                heads = Some(text_array_at(d, heads_ctx)?);
            }
            Ok(())
        }
        Some("timestamp") => {
            once(&mut seen_timestamp, timestamp_ctx)?;
            if present(d)? {
                timestamp = Some(uint_at(d, timestamp_ctx)?);
            }
            Ok(())
        }
        _ => d.skip().map_err(not_cbor),
    })?;
    Ok(RemoteHeads {
        heads: heads.ok_or_else(|| heads_ctx.missing())?,
        timestamp: timestamp.ok_or_else(|| timestamp_ctx.missing())?,
    })
}

/// Calls `each` for every entry of the map at `d`, with the key if it is a text string (other
/// keys are skipped). `each` must consume the value.
fn each_entry<'b>(
    d: &mut Decoder<'b>,
    mut each: impl FnMut(&mut Decoder<'b>, Option<Cow<'b, str>>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let mut remaining = d.map().map_err(not_cbor)?;
    loop {
        match &mut remaining {
            Some(0) => return Ok(()),
            Some(n) => *n -= 1,
            None if at_break(d)? => return Ok(()),
            None => {}
        }
        let key = match d.datatype().map_err(not_cbor)? {
            Type::String | Type::StringIndef => Some(read_text(d)?),
            _ => {
                d.skip().map_err(not_cbor)?;
                None
            }
        };
        each(d, key)?;
    }
}

/// Calls `each` for every element of the array at `d`; `each` must consume the element.
fn each_element<'b>(
    d: &mut Decoder<'b>,
    mut each: impl FnMut(&mut Decoder<'b>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let mut remaining = d.array().map_err(not_cbor)?;
    loop {
        match &mut remaining {
            Some(0) => return Ok(()),
            Some(n) => *n -= 1,
            None if at_break(d)? => return Ok(()),
            None => {}
        }
        each(d)?;
    }
}

/// Consumes the break byte that ends an indefinite-length item, if `d` is at one.
fn at_break(d: &mut Decoder<'_>) -> Result<bool, ProtocolError> {
    if d.datatype().map_err(not_cbor)? == Type::Break {
        // A break is the single byte 0xff.
        d.set_position(d.position() + 1);
        return Ok(true);
    }
    Ok(false)
}

fn skip_tags(d: &mut Decoder<'_>) -> Result<(), ProtocolError> {
    while d.datatype().map_err(not_cbor)? == Type::Tag {
        d.tag().map_err(not_cbor)?;
    }
    Ok(())
}

/// Looks through tags; consumes and returns false for `null` and `undefined`, which the npm
/// packages write for absent fields.
fn present(d: &mut Decoder<'_>) -> Result<bool, ProtocolError> {
    skip_tags(d)?;
    match d.datatype().map_err(not_cbor)? {
        Type::Null | Type::Undefined => {
            d.skip().map_err(not_cbor)?;
            Ok(false)
        }
        _ => Ok(true),
    }
}

fn expect_map(d: &mut Decoder<'_>, ctx: Ctx) -> Result<(), ProtocolError> {
    skip_tags(d)?;
    match d.datatype().map_err(not_cbor)? {
        Type::Map | Type::MapIndef => Ok(()),
        other => Err(ctx.wrong("map", kind(other))),
    }
}

fn read_text<'b>(d: &mut Decoder<'b>) -> Result<Cow<'b, str>, ProtocolError> {
    if d.datatype().map_err(not_cbor)? == Type::String {
        return d.str().map(Cow::Borrowed).map_err(not_cbor);
    }
    let mut text = String::new();
    for chunk in d.str_iter().map_err(not_cbor)? {
        text.push_str(chunk.map_err(not_cbor)?);
    }
    Ok(Cow::Owned(text))
}

fn text_at(d: &mut Decoder<'_>, ctx: Ctx) -> Result<String, ProtocolError> {
    skip_tags(d)?;
    match d.datatype().map_err(not_cbor)? {
        Type::String | Type::StringIndef => read_text(d).map(Cow::into_owned),
        other => Err(ctx.wrong("text string", kind(other))),
    }
}

fn text_array_at(d: &mut Decoder<'_>, ctx: Ctx) -> Result<Vec<String>, ProtocolError> {
    skip_tags(d)?;
    match d.datatype().map_err(not_cbor)? {
        Type::Array | Type::ArrayIndef => {}
        other => return Err(ctx.wrong("array of text strings", kind(other))),
    }
    let mut texts = Vec::new();
    each_element(d, |d| {
        skip_tags(d)?;
        match d.datatype().map_err(not_cbor)? {
            Type::String | Type::StringIndef => {
                texts.push(read_text(d)?.into_owned());
                Ok(())
            }
            other => Err(ctx.wrong("array of text strings", array_of(other))),
        }
    })?;
    Ok(texts)
}

/// The largest integer a float64 (and so a JavaScript number) holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn uint_at(d: &mut Decoder<'_>, ctx: Ctx) -> Result<u64, ProtocolError> {
    skip_tags(d)?;
    let float = match d.datatype().map_err(not_cbor)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => return d.u64().map_err(not_cbor),
        Type::F16 => read_f16(d)?,
        Type::F32 => f64::from(d.f32().map_err(not_cbor)?),
        Type::F64 => d.f64().map_err(not_cbor)?,
        other => return Err(ctx.wrong("unsigned integer", kind(other))),
    };
    if float.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&float) {
        // Exact: the value is a whole number no larger than 2^53 - 1.
        Ok(float as u64)
    } else {
        Err(ctx.wrong("unsigned integer", "float that is not a whole non-negative number"))
    }
}

/// Reads a half-precision float (0xf9 and two bytes), which minicbor reads only with an extra
/// crate; RFC 8949 appendix D gives the conversion.
fn read_f16(d: &mut Decoder<'_>) -> Result<f64, ProtocolError> {
    let start = d.position();
    let Some(&[_, high, low]) = d.input().get(start..start + 3) else {
        return Err(ProtocolError::NotCbor("half float cut short".into()));
    };
    d.set_position(start + 3);
    let bits = u16::from_be_bytes([high, low]);
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + mantissa) * 2f64.powi(exponent - 25),
    };
    Ok(if bits & 0x8000 == 0 { magnitude } else { -magnitude })
}

fn kind(t: Type) -> &'static str {
    match t {
        Type::Bool => "bool",
        Type::Null => "null",
        Type::Undefined => "undefined",
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => "unsigned integer",
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => "negative integer",
        Type::F16 | Type::F32 | Type::F64 => "float",
        Type::Simple => "simple value",
        Type::Bytes | Type::BytesIndef => "byte string",
        Type::String | Type::StringIndef => "text string",
        Type::Array | Type::ArrayIndef => "array",
        Type::Map | Type::MapIndef => "map",
        Type::Tag => "tag",
        Type::Break => "break",
        Type::Unknown(_) => "reserved value",
    }
}

fn array_of(t: Type) -> &'static str {
    match t {
        Type::Bool => "array holding a bool",
        Type::Null | Type::Undefined => "array holding a null",
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => "array holding an unsigned integer",
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => "array holding a negative integer",
        Type::F16 | Type::F32 | Type::F64 => "array holding a float",
        Type::Bytes | Type::BytesIndef => "array holding a byte string",
        Type::Array | Type::ArrayIndef => "array holding an array",
        Type::Map | Type::MapIndef => "array holding a map",
        _ => "array holding another CBOR item",
    }
}

fn not_cbor(e: minicbor::decode::Error) -> ProtocolError {
    ProtocolError::NotCbor(e.to_string())
}
