//! The automerge-repo v1 wire protocol, so stock automerge-repo clients (the npm packages
//! `@automerge/automerge-repo` + `@automerge/automerge-repo-network-websocket` 2.x) can sync with us.
//!
//! This module is only the codec: message types, their CBOR encoding (one map per binary
//! WebSocket frame) and document ids. It holds no connection state; the handshake
//! (`join` → `peer` or `error`), access checks and the Automerge sync state machine belong to the
//! hosts and to the sync state machines that drive this codec.
//!
//! Facts the npm client relies on, checked against version 2.5.6 (see
//! `tests/vectors/automerge-repo-v1.json`):
//! - it connects to exactly the URL it was given, query string included, and sends no custom
//!   headers, so a token has to travel in the query (or a cookie);
//! - its first frame is `join`; it waits for `peer` but marks itself ready after one second anyway;
//! - on `error` it only logs the message; when the server then closes the socket it reconnects
//!   every `retryInterval` (5 s by default) for ever;
//! - on `doc-unavailable` in answer to its `request`, `Repo.find()` rejects with
//!   "Document automerge:<id> is unavailable".

mod decode;
mod document_id;
mod encode;
mod error;
mod message;
mod notification;

pub use decode::{DEFAULT_MAX_FRAME_LEN, decode, decode_with_limit};
pub use document_id::{AutomergeUrl, DocumentId, DocumentIdError, URL_PREFIX};
pub use encode::encode;
pub use error::ProtocolError;
pub use message::{
    DocUnavailableMessage, EphemeralMessage, ErrorMessage, JoinMessage, LeaveMessage, PROTOCOL_V1, PeerId, PeerMessage,
    PeerMetadata, RemoteHeads, RemoteHeadsChangedMessage, RemoteSubscriptionChangeMessage, RepoMessage, StorageId,
    SyncMessage,
};
pub use notification::{NOTIFICATION_TYPE, NotificationMessage, decode_notification, encode_notification};

#[cfg(test)]
mod tests;
