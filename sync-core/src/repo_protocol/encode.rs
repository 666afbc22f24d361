//! CBOR encoding of automerge-repo v1 messages: one definite-length map per frame, `type`
//! first, absent optional fields left out, `data` as a byte string.

use std::convert::Infallible;

use minicbor::Encoder;

use super::message::{PeerMetadata, RepoMessage, StorageId};

/// Encodes a message as the CBOR map that goes in one binary WebSocket frame.
pub fn encode(message: &RepoMessage) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    // A Vec<u8> writer cannot fail and every value written here is a plain CBOR item.
    write_message(&mut e, message).expect("writing CBOR into a Vec cannot fail");
    e.into_writer()
}

type Written = Result<(), minicbor::encode::Error<Infallible>>;

/// Writes a message with `type` first and the other fields in the order the npm packages use.
fn write_message(e: &mut Encoder<Vec<u8>>, message: &RepoMessage) -> Written {
    let ty = message.message_type();
    match message {
        RepoMessage::Join(m) => {
            e.map(3 + u64::from(m.peer_metadata.is_some()))?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            if let Some(metadata) = &m.peer_metadata {
                e.str("peerMetadata")?;
                write_peer_metadata(e, metadata)?;
            }
            e.str("supportedProtocolVersions")?;
            write_texts(e, m.supported_protocol_versions.iter().map(String::as_str))?;
        }
        RepoMessage::Peer(m) => {
            e.map(4 + u64::from(m.peer_metadata.is_some()))?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            if let Some(metadata) = &m.peer_metadata {
                e.str("peerMetadata")?;
                write_peer_metadata(e, metadata)?;
            }
            e.str("selectedProtocolVersion")?.str(&m.selected_protocol_version)?;
            e.str("targetId")?.str(m.target_id.as_str())?;
        }
        RepoMessage::Error(m) => {
            e.map(2 + u64::from(m.sender_id.is_some()) + u64::from(m.target_id.is_some()))?;
            e.str("type")?.str(ty)?;
            if let Some(sender_id) = &m.sender_id {
                e.str("senderId")?.str(sender_id.as_str())?;
            }
            e.str("message")?.str(&m.message)?;
            if let Some(target_id) = &m.target_id {
                e.str("targetId")?.str(target_id.as_str())?;
            }
        }
        RepoMessage::Leave(m) => {
            e.map(2)?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
        }
        RepoMessage::Request(m) | RepoMessage::Sync(m) => {
            e.map(5)?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            e.str("targetId")?.str(m.target_id.as_str())?;
            e.str("documentId")?.str(&m.document_id.to_string())?;
            e.str("data")?.bytes(&m.data)?;
        }
        RepoMessage::DocUnavailable(m) => {
            e.map(4)?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            e.str("targetId")?.str(m.target_id.as_str())?;
            e.str("documentId")?.str(&m.document_id.to_string())?;
        }
        RepoMessage::Ephemeral(m) => {
            e.map(7)?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            e.str("targetId")?.str(m.target_id.as_str())?;
            e.str("count")?.u64(m.count)?;
            e.str("sessionId")?.str(&m.session_id)?;
            e.str("documentId")?.str(&m.document_id.to_string())?;
            e.str("data")?.bytes(&m.data)?;
        }
        RepoMessage::RemoteSubscriptionChange(m) => {
            e.map(3 + u64::from(m.add.is_some()) + u64::from(m.remove.is_some()))?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            e.str("targetId")?.str(m.target_id.as_str())?;
            if let Some(add) = &m.add {
                e.str("add")?;
                write_texts(e, add.iter().map(StorageId::as_str))?;
            }
            if let Some(remove) = &m.remove {
                e.str("remove")?;
                write_texts(e, remove.iter().map(StorageId::as_str))?;
            }
        }
        RepoMessage::RemoteHeadsChanged(m) => {
            e.map(5)?;
            e.str("type")?.str(ty)?;
            e.str("senderId")?.str(m.sender_id.as_str())?;
            e.str("targetId")?.str(m.target_id.as_str())?;
            e.str("documentId")?.str(&m.document_id.to_string())?;
            e.str("newHeads")?.map(m.new_heads.len() as u64)?;
            for (storage_id, heads) in &m.new_heads {
                e.str(storage_id.as_str())?.map(2)?;
                e.str("heads")?;
                write_texts(e, heads.heads.iter().map(String::as_str))?;
                e.str("timestamp")?.u64(heads.timestamp)?;
            }
        }
    }
    Ok(())
}

fn write_peer_metadata(e: &mut Encoder<Vec<u8>>, metadata: &PeerMetadata) -> Written {
    let PeerMetadata {
        storage_id,
        is_ephemeral,
    } = metadata;
    e.map(u64::from(storage_id.is_some()) + u64::from(is_ephemeral.is_some()))?;
    if let Some(storage_id) = storage_id {
        e.str("storageId")?.str(storage_id.as_str())?;
    }
    if let Some(is_ephemeral) = is_ephemeral {
        e.str("isEphemeral")?.bool(*is_ephemeral)?;
    }
    Ok(())
}

fn write_texts<'a>(e: &mut Encoder<Vec<u8>>, texts: impl ExactSizeIterator<Item = &'a str>) -> Written {
    e.array(texts.len() as u64)?;
    for text in texts {
        e.str(text)?;
    }
    Ok(())
}
