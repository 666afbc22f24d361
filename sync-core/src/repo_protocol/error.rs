//! Why a frame could not be read as an automerge-repo v1 message.

use thiserror::Error;

use super::document_id::DocumentIdError;

/// A frame that is not a valid automerge-repo v1 message. The `Display` text is meant to be sent
/// back to the peer in an `error` message, so it names the message type and field at fault but
/// never echoes large parts of the frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame of {len} bytes is larger than the limit of {limit} bytes")]
    Oversize { len: usize, limit: usize },
    /// The frame nests deeper or holds longer containers than
    /// [`crate::guard::CborLimits`] allow.
    #[error("frame {0}")]
    Refused(#[from] crate::guard::Refused),
    #[error("frame is not valid CBOR: {0}")]
    NotCbor(String),
    #[error("frame has {0} bytes after the end of the CBOR message")]
    TrailingBytes(usize),
    #[error("frame is a CBOR {0}, expected a map")]
    NotAMap(&'static str),
    #[error("message has no \"type\" field")]
    MissingType,
    #[error("message field \"type\" is a CBOR {0}, expected a text string")]
    TypeNotText(&'static str),
    /// A well-formed message of a type this codec does not know. The host can answer it with an
    /// `error` message.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("field {field:?} appears more than once in the message")]
    DuplicateField { field: &'static str },
    #[error("{message_type} message is missing field {field:?}")]
    MissingField {
        message_type: &'static str,
        field: &'static str,
    },
    #[error("field {field:?} of {message_type} message is a CBOR {found}, expected {expected}")]
    WrongType {
        message_type: &'static str,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field {field:?} of {message_type} message is not a valid document id: {source}")]
    InvalidDocumentId {
        message_type: &'static str,
        field: &'static str,
        #[source]
        source: DocumentIdError,
    },
}
