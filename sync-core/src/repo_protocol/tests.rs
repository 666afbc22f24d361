//! Round trips of every message type and the errors malformed frames produce.

use std::collections::{BTreeMap, BTreeSet};

use minicbor::Encoder;
use minicbor::data::Tag;
use proptest::prelude::*;

use super::*;

const DOC: DocumentId = DocumentId::from_bytes([
    0x11, 0x50, 0x5d, 0xaf, 0x58, 0xa9, 0x4b, 0x9d, 0x89, 0x81, 0xba, 0x6f, 0xa2, 0x74, 0x03, 0x95,
]);
const DOC_TEXT: &str = "EzSPCzksms3McAxtknHrHvKYsWX";

/// A CBOR item, for writing by hand the frames `encode` never produces.
#[derive(Clone)]
enum C {
    Text(String),
    Bytes(Vec<u8>),
    Uint(u64),
    Neg(i64),
    F64(f64),
    Bool(bool),
    Null,
    Undefined,
    Array(Vec<C>),
    Map(Vec<(C, C)>),
    /// Bytes written as they are.
    Raw(Vec<u8>),
}

fn t(text: &str) -> C {
    C::Text(text.into())
}

/// A map with text keys.
fn map(entries: &[(&str, C)]) -> C {
    C::Map(entries.iter().map(|(k, v)| (t(k), v.clone())).collect())
}

fn write(e: &mut Encoder<Vec<u8>>, item: &C) {
    let _ = match item {
        C::Text(s) => e.str(s),
        C::Bytes(b) => e.bytes(b),
        C::Uint(n) => e.u64(*n),
        C::Neg(n) => e.i64(*n),
        C::F64(x) => e.f64(*x),
        C::Bool(b) => e.bool(*b),
        C::Null => e.null(),
        C::Undefined => e.undefined(),
        C::Array(items) => {
            e.array(items.len() as u64).unwrap();
            items.iter().for_each(|i| write(e, i));
            Ok(e)
        }
        C::Map(entries) => {
            e.map(entries.len() as u64).unwrap();
            for (k, v) in entries {
                write(e, k);
                write(e, v);
            }
            Ok(e)
        }
        C::Raw(bytes) => {
            e.writer_mut().extend_from_slice(bytes);
            Ok(e)
        }
    }
    .unwrap();
}

fn frame(item: C) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    write(&mut e, &item);
    e.into_writer()
}

fn sync(data: &[u8]) -> SyncMessage {
    SyncMessage {
        sender_id: "phone-1".into(),
        target_id: "server".into(),
        document_id: DOC,
        data: data.to_vec(),
    }
}

/// A `sync` frame with `data` set to the given item.
fn sync_frame(data: C) -> Vec<u8> {
    frame(map(&[
        ("type", t("sync")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("documentId", t(DOC_TEXT)),
        ("data", data),
    ]))
}

/// An `ephemeral` frame with `count` set to the given item.
fn ephemeral_frame(count: C) -> Vec<u8> {
    frame(map(&[
        ("type", t("ephemeral")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("count", count),
        ("sessionId", t("s")),
        ("documentId", t(DOC_TEXT)),
        ("data", C::Bytes(vec![1])),
    ]))
}

fn join_frame(peer_metadata: C, versions: C) -> Vec<u8> {
    frame(map(&[
        ("type", t("join")),
        ("senderId", t("p")),
        ("peerMetadata", peer_metadata),
        ("supportedProtocolVersions", versions),
    ]))
}

fn wrong(
    message_type: &'static str,
    field: &'static str,
    expected: &'static str,
    found: &'static str,
) -> ProtocolError {
    ProtocolError::WrongType {
        message_type,
        field,
        expected,
        found,
    }
}

fn every_message_type() -> Vec<RepoMessage> {
    let metadata = PeerMetadata {
        storage_id: Some("storage-1".into()),
        is_ephemeral: Some(false),
    };
    let heads = |heads: &[&str], timestamp| RemoteHeads {
        heads: heads.iter().map(|h| h.to_string()).collect(),
        timestamp,
    };
    vec![
        RepoMessage::Join(JoinMessage {
            sender_id: "phone-1".into(),
            peer_metadata: Some(metadata),
            supported_protocol_versions: vec![PROTOCOL_V1.into()],
        }),
        RepoMessage::Join(JoinMessage {
            sender_id: "phone-1".into(),
            peer_metadata: None,
            supported_protocol_versions: vec![],
        }),
        RepoMessage::Peer(PeerMessage {
            sender_id: "server".into(),
            target_id: "phone-1".into(),
            peer_metadata: Some(PeerMetadata::default()),
            selected_protocol_version: PROTOCOL_V1.into(),
        }),
        RepoMessage::Error(ErrorMessage {
            sender_id: Some("server".into()),
            target_id: Some("phone-1".into()),
            message: "unsupported protocol version".into(),
        }),
        RepoMessage::Error(ErrorMessage {
            sender_id: None,
            target_id: None,
            message: "".into(),
        }),
        RepoMessage::Leave(LeaveMessage {
            sender_id: "phone-1".into(),
        }),
        RepoMessage::Request(sync(&[0x42, 0, 0, 1])),
        RepoMessage::Sync(sync(&[0x43; 300])),
        RepoMessage::DocUnavailable(DocUnavailableMessage {
            sender_id: "server".into(),
            target_id: "phone-1".into(),
            document_id: DOC,
        }),
        RepoMessage::Ephemeral(EphemeralMessage {
            sender_id: "phone-1".into(),
            target_id: "server".into(),
            count: 1 << 40,
            session_id: "8gy3r3ipihn".into(),
            document_id: DOC,
            data: vec![0xa1, 0x61, 0x78, 0x07],
        }),
        RepoMessage::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
            sender_id: "phone-1".into(),
            target_id: "server".into(),
            add: Some(vec!["storage-1".into(), "storage-2".into()]),
            remove: None,
        }),
        RepoMessage::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
            sender_id: "phone-1".into(),
            target_id: "server".into(),
            add: None,
            remove: Some(vec![]),
        }),
        RepoMessage::RemoteHeadsChanged(RemoteHeadsChangedMessage {
            sender_id: "server".into(),
            target_id: "phone-1".into(),
            document_id: DOC,
            new_heads: BTreeMap::from([
                ("storage-1".into(), heads(&["WBkvA3"], 1_795_328_689_742)),
                ("storage-2".into(), heads(&[], 0)),
            ]),
        }),
    ]
}

#[test]
fn every_message_type_round_trips() {
    let messages = every_message_type();
    let types: BTreeSet<_> = messages.iter().map(RepoMessage::message_type).collect();
    assert_eq!(types.len(), 10, "one example of each of the ten message types");
    for message in messages {
        assert_eq!(
            decode(&encode(&message)),
            Ok(message.clone()),
            "{}",
            message.message_type()
        );
    }
}

#[test]
fn encoding_writes_type_first_and_data_as_a_byte_string() {
    let encoded = encode(&RepoMessage::Sync(sync(&[1, 2, 3])));
    // map(5), "type", "sync"
    assert!(encoded.starts_with(b"\xa5\x64type\x64sync"));
    // "data", bytes(3) 01 02 03
    assert!(encoded.ends_with(b"\x64data\x43\x01\x02\x03"));
}

#[test]
fn accessors_name_sender_target_and_document() {
    let message = RepoMessage::Request(sync(b"x"));
    assert_eq!(message.sender_id().map(PeerId::as_str), Some("phone-1"));
    assert_eq!(message.target_id().map(PeerId::as_str), Some("server"));
    assert_eq!(message.document_id(), Some(&DOC));
    let join = JoinMessage {
        sender_id: "p".into(),
        peer_metadata: None,
        supported_protocol_versions: vec!["1".into()],
    };
    assert!(join.supports_v1());
    let join = RepoMessage::Join(join);
    assert_eq!(join.target_id(), None);
    assert_eq!(join.document_id(), None);
}

fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    text().prop_map(PeerId::from)
}

fn document_id() -> impl Strategy<Value = DocumentId> {
    any::<[u8; 16]>().prop_map(DocumentId::from_bytes)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn metadata() -> impl Strategy<Value = Option<PeerMetadata>> {
    let fields = (proptest::option::of(text()), proptest::option::of(any::<bool>()));
    proptest::option::of(fields.prop_map(|(storage_id, is_ephemeral)| PeerMetadata {
        storage_id: storage_id.map(StorageId::from),
        is_ephemeral,
    }))
}

fn storage_ids() -> impl Strategy<Value = Option<Vec<StorageId>>> {
    proptest::option::of(proptest::collection::vec(text().prop_map(StorageId::from), 0..4))
}

fn sync_body() -> impl Strategy<Value = SyncMessage> {
    (peer_id(), peer_id(), document_id(), bytes()).prop_map(|(s, t, d, data)| SyncMessage {
        sender_id: s,
        target_id: t,
        document_id: d,
        data,
    })
}

fn new_heads() -> impl Strategy<Value = BTreeMap<StorageId, RemoteHeads>> {
    let heads = (proptest::collection::vec(text(), 0..3), any::<u64>())
        .prop_map(|(heads, timestamp)| RemoteHeads { heads, timestamp });
    proptest::collection::btree_map(text().prop_map(StorageId::from), heads, 0..3)
}

fn arbitrary_message() -> impl Strategy<Value = RepoMessage> {
    let versions = proptest::collection::vec(text(), 0..3);
    let ids = || (peer_id(), peer_id());
    prop_oneof![
        (peer_id(), metadata(), versions).prop_map(|(s, m, v)| RepoMessage::Join(JoinMessage {
            sender_id: s,
            peer_metadata: m,
            supported_protocol_versions: v,
        })),
        (ids(), metadata(), text()).prop_map(|((s, t), m, v)| RepoMessage::Peer(PeerMessage {
            sender_id: s,
            target_id: t,
            peer_metadata: m,
            selected_protocol_version: v,
        })),
        (proptest::option::of(ids()), text()).prop_map(|(ids, message)| {
            let (sender_id, target_id) = ids.unzip();
            RepoMessage::Error(ErrorMessage {
                sender_id,
                target_id,
                message,
            })
        }),
        peer_id().prop_map(|s| RepoMessage::Leave(LeaveMessage { sender_id: s })),
        sync_body().prop_map(RepoMessage::Request),
        sync_body().prop_map(RepoMessage::Sync),
        (ids(), document_id()).prop_map(|((s, t), d)| {
            RepoMessage::DocUnavailable(DocUnavailableMessage {
                sender_id: s,
                target_id: t,
                document_id: d,
            })
        }),
        (ids(), any::<u64>(), text(), document_id(), bytes()).prop_map(|((s, t), count, session_id, d, data)| {
            RepoMessage::Ephemeral(EphemeralMessage {
                sender_id: s,
                target_id: t,
                count,
                session_id,
                document_id: d,
                data,
            })
        }),
        (ids(), storage_ids(), storage_ids()).prop_map(|((s, t), add, remove)| {
            RepoMessage::RemoteSubscriptionChange(RemoteSubscriptionChangeMessage {
                sender_id: s,
                target_id: t,
                add,
                remove,
            })
        }),
        (ids(), document_id(), new_heads()).prop_map(|((s, t), d, new_heads)| {
            RepoMessage::RemoteHeadsChanged(RemoteHeadsChangedMessage {
                sender_id: s,
                target_id: t,
                document_id: d,
                new_heads,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn any_message_round_trips(message in arbitrary_message()) {
        prop_assert_eq!(decode(&encode(&message)), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&frame);
    }

    #[test]
    fn truncated_frames_are_errors(message in arbitrary_message(), cut in any::<prop::sample::Index>()) {
        let frame = encode(&message);
        prop_assert!(decode(&frame[..cut.index(frame.len())]).is_err());
    }
}

// Malformed input.

#[test]
fn not_cbor() {
    let not_cbor = |frame: &[u8]| matches!(decode(frame), Err(ProtocolError::NotCbor(_)));
    assert!(not_cbor(&[]));
    assert!(not_cbor(&[0x1c]), "an unsigned integer with a reserved length code");
    assert!(not_cbor(&[0xff]), "a break outside any indefinite-length item");
    let leave = encode(&RepoMessage::Leave(LeaveMessage { sender_id: "p".into() }));
    assert!(not_cbor(&leave[..leave.len() - 1]));
    assert!(not_cbor(b"\xa1\x64type\x61\xff"), "invalid UTF-8 in a text string");
}

#[test]
fn not_a_map() {
    assert_eq!(decode(&[0x80]), Err(ProtocolError::NotAMap("array")));
    assert_eq!(decode(&frame(t("sync"))), Err(ProtocolError::NotAMap("text string")));
    assert_eq!(decode(&[0xf6]), Err(ProtocolError::NotAMap("null")));
}

#[test]
fn missing_or_unusable_type() {
    let missing = frame(map(&[("senderId", t("p"))]));
    assert_eq!(decode(&missing), Err(ProtocolError::MissingType));
    let undefined = frame(map(&[("type", C::Undefined)]));
    assert_eq!(decode(&undefined), Err(ProtocolError::MissingType));
    let numeric = frame(map(&[("type", C::Uint(1))]));
    assert_eq!(decode(&numeric), Err(ProtocolError::TypeNotText("unsigned integer")));
}

#[test]
fn unknown_type_is_a_distinct_error() {
    let error = decode(&frame(map(&[("type", t("frobnicate")), ("senderId", t("p"))])));
    assert_eq!(error, Err(ProtocolError::UnknownType("frobnicate".into())));
    assert_eq!(error.unwrap_err().to_string(), "unknown message type \"frobnicate\"");
}

#[test]
fn missing_field() {
    let no_data = frame(map(&[
        ("type", t("sync")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("documentId", t(DOC_TEXT)),
    ]));
    let error = decode(&no_data).unwrap_err();
    assert_eq!(
        error,
        ProtocolError::MissingField {
            message_type: "sync",
            field: "data"
        }
    );
    assert_eq!(error.to_string(), "sync message is missing field \"data\"");
    // Absent the npm way: present but undefined.
    let undefined = frame(map(&[("type", t("leave")), ("senderId", C::Undefined)]));
    let missing = ProtocolError::MissingField {
        message_type: "leave",
        field: "senderId",
    };
    assert_eq!(decode(&undefined), Err(missing));
}

#[test]
fn wrong_field_types() {
    // data as an array of numbers, the way a JSON-minded encoder writes a Uint8Array.
    let error = decode(&sync_frame(C::Array(vec![C::Uint(1), C::Uint(2)]))).unwrap_err();
    assert_eq!(error, wrong("sync", "data", "byte string", "array"));
    assert_eq!(
        error.to_string(),
        "field \"data\" of sync message is a CBOR array, expected byte string"
    );
    let numeric_sender = frame(map(&[("type", t("leave")), ("senderId", C::Uint(7))]));
    let error = wrong("leave", "senderId", "text string", "unsigned integer");
    assert_eq!(decode(&numeric_sender), Err(error));

    let versions = "supportedProtocolVersions";
    let texts = "array of text strings";
    let metadata = map(&[("isEphemeral", C::Bool(true))]);
    assert_eq!(
        decode(&join_frame(metadata.clone(), t("1"))),
        Err(wrong("join", versions, texts, "text string"))
    );
    assert_eq!(
        decode(&join_frame(metadata, C::Array(vec![C::Uint(1)]))),
        Err(wrong("join", versions, texts, "array holding an unsigned integer"))
    );
    let metadata = map(&[("isEphemeral", t("yes"))]);
    assert_eq!(
        decode(&join_frame(metadata, C::Array(vec![t("1")]))),
        Err(wrong("join", "peerMetadata.isEphemeral", "bool", "text string"))
    );
    assert_eq!(
        decode(&join_frame(t("ephemeral"), C::Array(vec![t("1")]))),
        Err(wrong("join", "peerMetadata", "map", "text string"))
    );
}

#[test]
fn counts_must_be_unsigned_integers() {
    let count = |item: C| match decode(&ephemeral_frame(item)) {
        Ok(RepoMessage::Ephemeral(m)) => Ok(m.count),
        Ok(other) => panic!("decoded as {other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(count(C::Uint(u64::MAX)), Ok(u64::MAX));
    // cbor-x writes numbers beyond 32 bits, such as Date.now(), as float64.
    assert_eq!(count(C::F64(1_795_328_689_742.0)), Ok(1_795_328_689_742));
    // Half floats: f9 4000 is 2.0, f9 7bff is 65504.
    assert_eq!(count(C::Raw(vec![0xf9, 0x40, 0x00])), Ok(2));
    assert_eq!(count(C::Raw(vec![0xf9, 0x7b, 0xff])), Ok(65504));

    let expected = "unsigned integer";
    let not_whole = wrong(
        "ephemeral",
        "count",
        expected,
        "float that is not a whole non-negative number",
    );
    assert_eq!(count(C::F64(1.5)), Err(not_whole.clone()));
    assert_eq!(count(C::F64(-1.0)), Err(not_whole.clone()));
    assert_eq!(count(C::F64(f64::NAN)), Err(not_whole.clone()));
    assert_eq!(count(C::F64(1e300)), Err(not_whole.clone()));
    assert_eq!(count(C::Raw(vec![0xf9, 0x3e, 0x00])), Err(not_whole), "f9 3e00 is 1.5");
    let negative = wrong("ephemeral", "count", expected, "negative integer");
    assert_eq!(count(C::Neg(-1)), Err(negative));
    assert_eq!(count(t("7")), Err(wrong("ephemeral", "count", expected, "text string")));
}

fn doc_unavailable(document_id: &str) -> Result<RepoMessage, ProtocolError> {
    decode(&frame(map(&[
        ("type", t("doc-unavailable")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("documentId", t(document_id)),
    ])))
}

#[test]
fn bad_document_ids() {
    // Change the last character of a real id: the checksum no longer matches.
    let mut tampered = DOC_TEXT.to_string();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'Y' { 'Z' } else { 'Y' });
    let error = doc_unavailable(&tampered).unwrap_err();
    assert_eq!(
        error,
        ProtocolError::InvalidDocumentId {
            message_type: "doc-unavailable",
            field: "documentId",
            source: DocumentIdError::BadChecksum,
        }
    );
    assert_eq!(
        error.to_string(),
        "field \"documentId\" of doc-unavailable message is not a valid document id: \
         bs58check checksum does not match"
    );
    // A URL where an id belongs, and a legacy UUID-style id.
    assert!(matches!(
        doc_unavailable(&format!("automerge:{DOC_TEXT}")),
        Err(ProtocolError::InvalidDocumentId {
            source: DocumentIdError::NotBase58(_),
            ..
        })
    ));
    assert!(matches!(
        doc_unavailable("7c2a3c4e-1d0e-4a4b-9a77-1b4cbe3d52a6"),
        Err(ProtocolError::InvalidDocumentId { .. })
    ));
}

#[test]
fn oversize_frames_are_refused_before_parsing() {
    let encoded = encode(&RepoMessage::Sync(sync(&[7; 100])));
    assert!(decode_with_limit(&encoded, encoded.len()).is_ok());
    let error = decode_with_limit(&encoded, encoded.len() - 1).unwrap_err();
    assert_eq!(
        error,
        ProtocolError::Oversize {
            len: encoded.len(),
            limit: encoded.len() - 1
        }
    );
    assert!(error.to_string().contains("larger than the limit"));
    let huge = vec![0u8; DEFAULT_MAX_FRAME_LEN + 1];
    assert!(matches!(decode(&huge), Err(ProtocolError::Oversize { .. })));
}

#[test]
fn one_message_per_frame() {
    let mut encoded = encode(&RepoMessage::Leave(LeaveMessage { sender_id: "p".into() }));
    encoded.push(0x00);
    assert_eq!(decode(&encoded), Err(ProtocolError::TrailingBytes(1)));
}

#[test]
fn duplicate_known_fields_are_refused() {
    let twice = frame(map(&[("type", t("leave")), ("senderId", t("a")), ("senderId", t("b"))]));
    assert_eq!(decode(&twice), Err(ProtocolError::DuplicateField { field: "senderId" }));
}

#[test]
fn hostile_lengths_fail_without_allocating() {
    // A map that claims 2^64 - 1 entries.
    let mut claims = vec![0xbb];
    claims.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(decode(&claims), Err(ProtocolError::Refused(r)) if r.limit == crate::guard::Limit::CborItems));
    // An unknown field that claims a byte string of 2^63 bytes.
    let mut huge_bytes = vec![0x5b];
    huge_bytes.extend_from_slice(&(u64::MAX / 2).to_be_bytes());
    let frame = frame(map(&[("type", t("leave")), ("x", C::Raw(huge_bytes))]));
    assert!(matches!(decode(&frame), Err(ProtocolError::NotCbor(_))));
}

// Tolerance.

#[test]
fn unknown_fields_are_skipped() {
    let leave = frame(C::Map(vec![
        (t("type"), t("leave")),
        (
            t("future"),
            map(&[("nested", C::Array(vec![C::Uint(1), C::Bytes(b"xy".to_vec())]))]),
        ),
        (C::Uint(9), t("a non-text key")),
        (t("senderId"), t("p")),
        // [_ {_ "k": null}], indefinite lengths
        (t("indefinite"), C::Raw(vec![0x9f, 0xbf, 0x61, b'k', 0xf6, 0xff, 0xff])),
        (t("data"), t("a known name is ignored where the type does not use it")),
    ]));
    assert_eq!(
        decode(&leave),
        Ok(RepoMessage::Leave(LeaveMessage { sender_id: "p".into() }))
    );
}

#[test]
fn deeply_nested_unknown_fields_do_not_overflow_the_stack() {
    let nested = |raw: Vec<u8>| {
        frame(map(&[
            ("type", t("leave")),
            ("senderId", t("p")),
            ("deep", C::Raw(raw)),
        ]))
    };
    // Up to the guard's depth, unknown nesting is skipped; deeper nesting
    // (which cost `minicbor::Decoder::skip` a stack entry per level) is refused.
    let mut definite = vec![0x81; 14];
    definite.push(0x00);
    assert!(decode(&nested(definite)).is_ok());
    let mut indefinite = vec![0x9f; 14];
    indefinite.extend(vec![0xff; 14]);
    assert!(decode(&nested(indefinite)).is_ok());
    let mut definite = vec![0x81; 100_000];
    definite.push(0x00);
    assert!(
        matches!(decode(&nested(definite)), Err(ProtocolError::Refused(r)) if r.limit == crate::guard::Limit::CborDepth)
    );
    let mut indefinite = vec![0x9f; 100_000];
    indefinite.extend(vec![0xff; 100_000]);
    assert!(
        matches!(decode(&nested(indefinite)), Err(ProtocolError::Refused(r)) if r.limit == crate::guard::Limit::CborDepth)
    );
}

#[test]
fn undefined_and_null_mean_absent() {
    let change = frame(map(&[
        ("type", t("remote-subscription-change")),
        ("senderId", t("a")),
        ("targetId", t("b")),
        ("add", C::Array(vec![t("s")])),
        ("remove", C::Undefined),
    ]));
    let RepoMessage::RemoteSubscriptionChange(m) = decode(&change).unwrap() else {
        panic!()
    };
    assert_eq!((m.add, m.remove), (Some(vec![StorageId::from("s")]), None));

    let metadata = map(&[("storageId", C::Undefined), ("isEphemeral", C::Bool(true))]);
    let RepoMessage::Join(m) = decode(&join_frame(metadata, C::Array(vec![t("1")]))).unwrap() else {
        panic!()
    };
    assert_eq!(
        m.peer_metadata,
        Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(true)
        })
    );

    let error = frame(map(&[
        ("type", t("error")),
        ("message", t("bye")),
        ("senderId", C::Null),
    ]));
    let expected = ErrorMessage {
        sender_id: None,
        target_id: None,
        message: "bye".into(),
    };
    assert_eq!(decode(&error), Ok(RepoMessage::Error(expected)));
}

#[test]
fn tags_and_indefinite_lengths_are_read_through() {
    // Tag 64 (a typed Uint8Array, as cbor-x writes by default) around an indefinite byte string,
    // an indefinite text string, inside an indefinite-length map.
    let mut e = Encoder::new(Vec::new());
    e.begin_map().unwrap().str("type").unwrap().str("sync").unwrap();
    e.str("senderId")
        .unwrap()
        .begin_str()
        .unwrap()
        .str("pho")
        .unwrap()
        .str("ne-1")
        .unwrap();
    e.end().unwrap().str("targetId").unwrap().str("server").unwrap();
    e.str("documentId").unwrap().str(DOC_TEXT).unwrap().str("data").unwrap();
    e.tag(Tag::new(64))
        .unwrap()
        .begin_bytes()
        .unwrap()
        .bytes(&[0x42])
        .unwrap();
    e.bytes(&[0, 0, 1]).unwrap().end().unwrap().end().unwrap();
    assert_eq!(decode(&e.into_writer()), Ok(RepoMessage::Sync(sync(&[0x42, 0, 0, 1]))));
}

#[test]
fn remote_heads_must_be_well_formed() {
    let with_heads = |new_heads: C| {
        decode(&frame(map(&[
            ("type", t("remote-heads-changed")),
            ("senderId", t("a")),
            ("targetId", t("b")),
            ("documentId", t(DOC_TEXT)),
            ("newHeads", new_heads),
        ])))
    };
    let no_timestamp = map(&[("s", map(&[("heads", C::Array(vec![]))]))]);
    assert_eq!(
        with_heads(no_timestamp),
        Err(ProtocolError::MissingField {
            message_type: "remote-heads-changed",
            field: "newHeads.*.timestamp"
        })
    );
    let message_type = "remote-heads-changed";
    assert_eq!(
        with_heads(C::Array(vec![])),
        Err(wrong(message_type, "newHeads", "map", "array"))
    );
    assert_eq!(
        with_heads(C::Map(vec![(C::Uint(1), map(&[]))])),
        Err(wrong(
            message_type,
            "newHeads",
            "map with text keys",
            "map with a non-text key"
        ))
    );
}
