//! The automerge-repo v1 messages as Rust types, one struct per message shape.
//!
//! Field names follow the npm packages (`@automerge/automerge-repo` and
//! `@automerge/automerge-repo-network-websocket` 2.x), which are the reference where they differ
//! from the README's CDDL: join and peer carry `peerMetadata` (not `metadata`), and `error`
//! messages carry `senderId` and `targetId`. Optional fields are `Option`s so that a decoded
//! message re-encodes to the same fields.

use std::collections::BTreeMap;
use std::fmt;

use super::document_id::DocumentId;

/// The only protocol version there is, as it appears in `supportedProtocolVersions` and
/// `selectedProtocolVersion`.
pub const PROTOCOL_V1: &str = "1";

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

text_id!(
    /// An ephemeral peer id, chosen by the peer and living as long as its process (a browser tab,
    /// a server). Any text: the npm client uses a random string, the server its configured name.
    PeerId
);
text_id!(
    /// The id of a peer's persistent storage; several peer ids may share one (browser tabs).
    /// The npm package makes these as UUID strings.
    StorageId
);

/// What a peer says about itself in `join` and `peer`. Both fields are optional in the npm
/// types; the npm client without storage sends `storageId` as CBOR `undefined`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    pub storage_id: Option<StorageId>,
    /// Whether the peer expects to come back with the same storage id; a server need not keep
    /// sync state for an ephemeral peer.
    pub is_ephemeral: Option<bool>,
}

/// `join`: the first message of the initiating peer (the WebSocket client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMessage {
    pub sender_id: PeerId,
    pub peer_metadata: Option<PeerMetadata>,
    pub supported_protocol_versions: Vec<String>,
}

impl JoinMessage {
    pub fn supports_v1(&self) -> bool {
        self.supported_protocol_versions.iter().any(|v| v == PROTOCOL_V1)
    }
}

/// `peer`: the receiving peer's answer to `join`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub peer_metadata: Option<PeerMetadata>,
    pub selected_protocol_version: String,
}

/// `error`: a protocol error; the sender closes the connection after it. The spec requires only
/// `message`; the npm server also sends `senderId` and `targetId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    pub sender_id: Option<PeerId>,
    pub target_id: Option<PeerId>,
    pub message: String,
}

/// `leave`: an advisory message before disconnecting (in the spec; the npm packages never send it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveMessage {
    pub sender_id: PeerId,
}

/// The body of both `request` and `sync`: an Automerge sync message about one document.
/// `request` additionally asks for `doc-unavailable` if the target does not have the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    /// An encoded `automerge::sync::Message`.
    pub data: Vec<u8>,
}

/// `doc-unavailable`: the sender does not have the document and neither do its other peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocUnavailableMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
}

/// `ephemeral`: an application message about a document that is relayed but never stored
/// (presence, cursors). `sessionId` and `count` let receivers drop duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EphemeralMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub count: u64,
    pub session_id: String,
    pub document_id: DocumentId,
    /// Opaque bytes (in practice CBOR written by the application).
    pub data: Vec<u8>,
}

/// `remote-subscription-change`: the sender adds or removes storage ids whose heads it wants to
/// hear about. The npm client sends an absent list as CBOR `undefined`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSubscriptionChangeMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub add: Option<Vec<StorageId>>,
    pub remove: Option<Vec<StorageId>>,
}

/// The heads one storage id has of a document, as gossiped in `remote-heads-changed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHeads {
    /// Change hashes as the npm package writes them: bs58check text (the README says base64,
    /// but 2.x sends bs58check).
    pub heads: Vec<String>,
    /// Milliseconds since the Unix epoch on the peer that first reported these heads.
    pub timestamp: u64,
}

/// `remote-heads-changed`: new heads of a document for storage ids the receiver subscribed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHeadsChangedMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    pub new_heads: BTreeMap<StorageId, RemoteHeads>,
}

/// Every automerge-repo v1 message. Each travels as one CBOR map in one binary WebSocket frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoMessage {
    Join(JoinMessage),
    Peer(PeerMessage),
    Error(ErrorMessage),
    Leave(LeaveMessage),
    Request(SyncMessage),
    Sync(SyncMessage),
    DocUnavailable(DocUnavailableMessage),
    Ephemeral(EphemeralMessage),
    RemoteSubscriptionChange(RemoteSubscriptionChangeMessage),
    RemoteHeadsChanged(RemoteHeadsChangedMessage),
}

impl RepoMessage {
    /// The message's `type` field as it appears on the wire.
    pub fn message_type(&self) -> &'static str {
        match self {
            RepoMessage::Join(_) => "join",
            RepoMessage::Peer(_) => "peer",
            RepoMessage::Error(_) => "error",
            RepoMessage::Leave(_) => "leave",
            RepoMessage::Request(_) => "request",
            RepoMessage::Sync(_) => "sync",
            RepoMessage::DocUnavailable(_) => "doc-unavailable",
            RepoMessage::Ephemeral(_) => "ephemeral",
            RepoMessage::RemoteSubscriptionChange(_) => "remote-subscription-change",
            RepoMessage::RemoteHeadsChanged(_) => "remote-heads-changed",
        }
    }

    pub fn sender_id(&self) -> Option<&PeerId> {
        match self {
            RepoMessage::Join(m) => Some(&m.sender_id),
            RepoMessage::Peer(m) => Some(&m.sender_id),
            RepoMessage::Error(m) => m.sender_id.as_ref(),
            RepoMessage::Leave(m) => Some(&m.sender_id),
            RepoMessage::Request(m) | RepoMessage::Sync(m) => Some(&m.sender_id),
            RepoMessage::DocUnavailable(m) => Some(&m.sender_id),
            RepoMessage::Ephemeral(m) => Some(&m.sender_id),
            RepoMessage::RemoteSubscriptionChange(m) => Some(&m.sender_id),
            RepoMessage::RemoteHeadsChanged(m) => Some(&m.sender_id),
        }
    }

    pub fn target_id(&self) -> Option<&PeerId> {
        match self {
            RepoMessage::Join(_) | RepoMessage::Leave(_) => None,
            RepoMessage::Peer(m) => Some(&m.target_id),
            RepoMessage::Error(m) => m.target_id.as_ref(),
            RepoMessage::Request(m) | RepoMessage::Sync(m) => Some(&m.target_id),
            RepoMessage::DocUnavailable(m) => Some(&m.target_id),
            RepoMessage::Ephemeral(m) => Some(&m.target_id),
            RepoMessage::RemoteSubscriptionChange(m) => Some(&m.target_id),
            RepoMessage::RemoteHeadsChanged(m) => Some(&m.target_id),
        }
    }

    /// The document the message is about, for the messages that name one.
    pub fn document_id(&self) -> Option<&DocumentId> {
        match self {
            RepoMessage::Request(m) | RepoMessage::Sync(m) => Some(&m.document_id),
            RepoMessage::DocUnavailable(m) => Some(&m.document_id),
            RepoMessage::Ephemeral(m) => Some(&m.document_id),
            RepoMessage::RemoteHeadsChanged(m) => Some(&m.document_id),
            RepoMessage::Join(_)
            | RepoMessage::Peer(_)
            | RepoMessage::Error(_)
            | RepoMessage::Leave(_)
            | RepoMessage::RemoteSubscriptionChange(_) => None,
        }
    }
}
