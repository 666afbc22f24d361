//! `lianxin-notification`: the one message this server adds to the automerge-repo v1 protocol,
//! pushing a user's new inbox items to a connected client.
//!
//! A distinct message type rather than an `ephemeral` one: the npm client (2.x) hands
//! `ephemeral` messages to the document they name (creating a handle and asking peers for the
//! document), while a message of an unknown type is only logged by its network subsystem
//! (`isRepoMessage` fails) and dropped. So a stock automerge-repo client keeps syncing
//! undisturbed, and an application that wants notifications listens for this type on the
//! network adapter's `message` event.
//!
//! ```text
//! { "type": "lianxin-notification", "senderId": <server peer id>, "targetId": <client peer id>,
//!   "cursor": <uint: the inbox cursor, for GET /api/inbox?after= and POST /api/inbox/ack>,
//!   "notification": <text: the inbox item as JSON> }
//! ```

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::error::ProtocolError;
use super::message::PeerId;

/// The message's `type`.
pub const NOTIFICATION_TYPE: &str = "lianxin-notification";

/// One inbox item pushed to a connected client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    /// The item's inbox cursor.
    pub cursor: u64,
    /// The item as JSON text (the shape `GET /api/inbox` lists).
    pub notification: String,
}

/// Encodes the message as one CBOR map, `type` first.
pub fn encode_notification(m: &NotificationMessage) -> Vec<u8> {
    // Field names, CBOR heads and the cursor take well under 128 bytes: one
    // allocation for the frame instead of a doubling series.
    let size = 128 + m.sender_id.as_str().len() + m.target_id.as_str().len() + m.notification.len();
    let mut e = Encoder::new(Vec::with_capacity(size));
    let written: Result<(), minicbor::encode::Error<std::convert::Infallible>> = (|| {
        e.map(5)?;
        e.str("type")?.str(NOTIFICATION_TYPE)?;
        e.str("senderId")?.str(m.sender_id.as_str())?;
        e.str("targetId")?.str(m.target_id.as_str())?;
        e.str("cursor")?.u64(m.cursor)?;
        e.str("notification")?.str(&m.notification)?;
        Ok(())
    })();
    written.expect("writing CBOR into a Vec cannot fail");
    e.into_writer()
}

/// Reads a frame as a notification message: `Ok(None)` when it is a
/// well-formed map of another type (hand it to [`super::decode`]).
pub fn decode_notification(frame: &[u8]) -> Result<Option<NotificationMessage>, ProtocolError> {
    let bad = |e: minicbor::decode::Error| ProtocolError::NotCbor(e.to_string());
    super::decode::guard(frame)?;
    let mut d = Decoder::new(frame);
    let Some(len) = d.map().map_err(bad)? else {
        return Err(ProtocolError::NotAMap("indefinite map"));
    };
    let (mut ty, mut sender, mut target, mut cursor, mut notification) = (None, None, None, None, None);
    for _ in 0..len {
        if d.datatype().map_err(bad)? != Type::String {
            d.skip().map_err(bad)?;
            d.skip().map_err(bad)?;
            continue;
        }
        match d.str().map_err(bad)? {
            "type" => ty = Some(d.str().map_err(bad)?.to_owned()),
            "senderId" => sender = Some(d.str().map_err(bad)?.to_owned()),
            "targetId" => target = Some(d.str().map_err(bad)?.to_owned()),
            "cursor" => cursor = Some(d.u64().map_err(bad)?),
            "notification" => notification = Some(d.str().map_err(bad)?.to_owned()),
            _ => d.skip().map_err(bad)?,
        }
    }
    if ty.as_deref() != Some(NOTIFICATION_TYPE) {
        return Ok(None);
    }
    let missing = |field| ProtocolError::MissingField {
        message_type: NOTIFICATION_TYPE,
        field,
    };
    Ok(Some(NotificationMessage {
        sender_id: PeerId::from(sender.ok_or_else(|| missing("senderId"))?),
        target_id: PeerId::from(target.ok_or_else(|| missing("targetId"))?),
        cursor: cursor.ok_or_else(|| missing("cursor"))?,
        notification: notification.ok_or_else(|| missing("notification"))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_round_trips_and_other_messages_are_not_one() {
        let m = NotificationMessage {
            sender_id: "server".into(),
            target_id: "client".into(),
            cursor: 42,
            notification: r#"{"text":"新诉求待签收"}"#.into(),
        };
        let frame = encode_notification(&m);
        assert_eq!(decode_notification(&frame).unwrap(), Some(m));
        // The stock codec refuses the type, which is what makes stock clients drop it.
        assert!(matches!(super::super::decode(&frame), Err(ProtocolError::UnknownType(t)) if t == NOTIFICATION_TYPE));
        let leave = super::super::encode(&super::super::RepoMessage::Leave(super::super::LeaveMessage {
            sender_id: "x".into(),
        }));
        assert_eq!(decode_notification(&leave).unwrap(), None);
    }
}
