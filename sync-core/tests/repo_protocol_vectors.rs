//! Checks the automerge-repo v1 codec against frames and ids captured from the real npm packages
//! (`tests/vectors/automerge-repo-v1.json`, see its `about` and `packages` fields).
//!
//! Every captured frame must decode, and re-encoding the decoded message must give the same CBOR
//! data model (same keys and values; absent fields, which cbor-x writes as `undefined`, and
//! number widths aside), so what we send is what the npm packages expect.

use minicbor::Decoder;
use minicbor::data::Type;
use serde_json::{Map, Value, json};
use sync_core::repo_protocol::{AutomergeUrl, DocumentId, PeerMetadata, RepoMessage, StorageId, decode, encode};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/automerge-repo-v1.json")).expect("vectors are JSON")
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CBOR data model of a frame as JSON, in the form the vectors' `decoded` field uses:
/// byte strings as `{"hex": …}`, map entries whose value is null or undefined left out, and
/// integral floats as integers.
fn data_model(frame: &[u8]) -> Value {
    let mut d = Decoder::new(frame);
    let value = item(&mut d);
    assert_eq!(d.position(), frame.len(), "one CBOR item per frame");
    value
}

fn item(d: &mut Decoder<'_>) -> Value {
    match d.datatype().unwrap() {
        Type::Map | Type::MapIndef => {
            let len = d.map().unwrap();
            let mut object = Map::new();
            let mut i = 0;
            while len.is_none_or(|len| i < len) {
                if len.is_none() && d.datatype().unwrap() == Type::Break {
                    d.skip().unwrap();
                    break;
                }
                let key = d.str().unwrap().to_owned();
                let value = item(d);
                if !value.is_null() {
                    object.insert(key, value);
                }
                i += 1;
            }
            Value::Object(object)
        }
        Type::Array => {
            let len = d.array().unwrap().unwrap();
            Value::Array((0..len).map(|_| item(d)).collect())
        }
        Type::Bytes => json!({ "hex": hex(d.bytes().unwrap()) }),
        Type::String => json!(d.str().unwrap()),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => json!(d.u64().unwrap()),
        Type::F32 | Type::F64 => {
            let float = d.f64().unwrap();
            assert_eq!(float.fract(), 0.0, "only whole numbers occur in these frames");
            json!(float as u64)
        }
        Type::Bool => json!(d.bool().unwrap()),
        Type::Null | Type::Undefined => {
            d.skip().unwrap();
            Value::Null
        }
        other => panic!("unexpected CBOR {other} in a captured frame"),
    }
}

/// The vectors write CBOR undefined as the string "<undefined>"; drop those entries.
fn without_undefined(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(_, v)| v.as_str() != Some("<undefined>"))
                .map(|(k, v)| (k.clone(), without_undefined(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_undefined).collect()),
        other => other.clone(),
    }
}

#[test]
fn captured_frames_decode_and_reencode_to_the_same_data() {
    let vectors = vectors();
    let frames = vectors["frames"].as_array().unwrap();
    let mut types = std::collections::BTreeSet::new();
    for frame in frames {
        let name = frame["name"].as_str().unwrap();
        let bytes = unhex(frame["hex"].as_str().unwrap());
        let expected = without_undefined(&frame["decoded"]);
        assert_eq!(
            data_model(&bytes),
            expected,
            "{name}: the vector file is self-consistent"
        );

        let message = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(message.message_type(), expected["type"], "{name}");
        types.insert(message.message_type());

        let reencoded = encode(&message);
        assert_eq!(decode(&reencoded).as_ref(), Ok(&message), "{name}: round trip");
        assert_eq!(data_model(&reencoded), expected, "{name}: same data as the npm frame");
    }
    let expected_types = [
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
    assert_eq!(types, expected_types.into_iter().collect());
}

fn frame(name: &str) -> RepoMessage {
    let vectors = vectors();
    let frame = vectors["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no frame {name}"));
    decode(&unhex(frame["hex"].as_str().unwrap())).unwrap()
}

#[test]
fn npm_client_join_has_no_storage_id() {
    let RepoMessage::Join(join) = frame("client-join") else {
        panic!("not a join")
    };
    assert_eq!(join.sender_id.as_str(), "client-peer");
    assert_eq!(
        join.peer_metadata,
        Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(true)
        })
    );
    assert!(join.supports_v1());
}

#[test]
fn npm_server_peer_and_error() {
    let RepoMessage::Peer(peer) = frame("server-peer") else {
        panic!("not a peer")
    };
    assert_eq!(peer.sender_id.as_str(), "npm-server");
    assert_eq!(peer.target_id.as_str(), "raw-client");
    assert_eq!(peer.selected_protocol_version, "1");
    let metadata = peer.peer_metadata.expect("the npm server sends its metadata");
    assert_eq!(metadata.is_ephemeral, Some(false));
    assert!(metadata.storage_id.is_some());

    let RepoMessage::Error(error) = frame("server-error") else {
        panic!("not an error")
    };
    assert_eq!(error.message, "unsupported protocol version");
    assert_eq!(error.sender_id.as_ref().map(|p| p.as_str()), Some("npm-server"));
    assert_eq!(error.target_id.as_ref().map(|p| p.as_str()), Some("raw-client-2"));
}

#[test]
fn npm_sync_data_is_an_automerge_sync_message() {
    for name in ["client-request", "client-sync-announce", "server-sync"] {
        let (RepoMessage::Request(m) | RepoMessage::Sync(m)) = frame(name) else {
            panic!("{name} is not a request or sync")
        };
        automerge::sync::Message::decode(&m.data)
            .unwrap_or_else(|e| panic!("{name}: data is not an Automerge sync message: {e}"));
    }
}

#[test]
fn npm_remote_heads_use_float_timestamps_and_bs58check_heads() {
    let RepoMessage::RemoteHeadsChanged(m) = frame("client-remote-heads-changed") else {
        panic!("not remote-heads-changed")
    };
    let heads = &m.new_heads[&StorageId::from("capture-storage")];
    assert!(heads.timestamp > 1_600_000_000_000, "a Unix time in milliseconds");
    assert_eq!(heads.heads.len(), 1);
    // A head is a bs58check-encoded 32-byte change hash, which the URL parser also reads.
    let url = format!("{}#{}", m.document_id.to_url(), heads.heads[0]);
    assert_eq!(url.parse::<AutomergeUrl>().unwrap().heads.unwrap().len(), 1);

    let RepoMessage::RemoteSubscriptionChange(change) = frame("client-remote-subscription-change") else {
        panic!("not remote-subscription-change")
    };
    assert_eq!(change.add, Some(vec![StorageId::from("capture-storage")]));
    assert_eq!(change.remove, None, "the npm client writes an absent list as undefined");
}

#[test]
fn document_ids_made_by_the_npm_package() {
    let vectors = vectors();
    let ids = vectors["document_ids"].as_array().unwrap();
    assert!(ids.len() >= 5);
    for entry in ids {
        let bytes: [u8; 16] = unhex(entry["bytes_hex"].as_str().unwrap()).try_into().unwrap();
        let text = entry["id"].as_str().unwrap();
        let url = entry["url"].as_str().unwrap();
        let id = DocumentId::from_bytes(bytes);
        assert_eq!(id.to_string(), text);
        assert_eq!(text.parse::<DocumentId>(), Ok(id));
        assert_eq!(id.to_url(), url);
        assert_eq!(DocumentId::from_url(url), Ok(id));
    }
}

#[test]
fn urls_with_heads_made_by_the_npm_package() {
    let vectors = vectors();
    for entry in vectors["urls_with_heads"].as_array().unwrap() {
        let text = entry["url"].as_str().unwrap();
        let url: AutomergeUrl = text.parse().unwrap();
        assert_eq!(url.document_id.to_string(), entry["id"].as_str().unwrap());
        let heads: Vec<String> = url.heads.as_ref().unwrap().iter().map(|h| hex(&h.0)).collect();
        let expected: Vec<&str> = entry["heads_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(heads, expected);
        assert_eq!(url.to_string(), text);
    }
}
