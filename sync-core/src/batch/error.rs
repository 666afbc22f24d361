//! Errors of the batched sync extension: frames that do not decode and data that does not load.

/// Why a frame or a document's data could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The frame is not valid raw DEFLATE data.
    #[error("frame is not valid raw deflate data: {0}")]
    Deflate(String),
    /// The frame inflates to more than the allowed size (a zip bomb or a broken peer).
    #[error("frame inflates to more than {limit} bytes")]
    Oversize {
        /// The limit in bytes.
        limit: usize,
    },
    /// The inflated frame is not the CBOR map this protocol expects.
    #[error("frame is not valid CBOR for this protocol: {0}")]
    Cbor(String),
    /// A required key is missing from a frame.
    #[error("{frame} frame lacks the required key {key:?}")]
    MissingKey {
        /// The frame type.
        frame: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// The frame's type key names no known frame.
    #[error("unknown frame type {0:?}")]
    UnknownFrame(String),
    /// The peer speaks a protocol version this build does not.
    #[error("protocol version {got} is not supported; supported versions: {supported:?}")]
    UnsupportedVersion {
        /// The version the peer asked for.
        got: u32,
        /// The versions this build speaks.
        supported: &'static [u32],
    },
    /// A document's data names an encoding this build does not know.
    #[error("unknown document encoding {0:?}")]
    UnknownEncoding(String),
    /// A document's data does not load into Automerge.
    #[error("document data does not load: {0}")]
    Load(String),
    /// A frame arrived that the receiver did not expect at this point.
    #[error("unexpected frame: {0}")]
    Unexpected(String),
    /// The frame or a document's data crossed a limit of [`crate::guard`].
    #[error("{0}")]
    Refused(#[from] crate::guard::Refused),
    /// The peer sent an error frame.
    #[error("peer error {code}: {message}")]
    Peer {
        /// The error frame's code.
        code: String,
        /// The error frame's message.
        message: String,
    },
}

impl From<minicbor::decode::Error> for BatchError {
    fn from(e: minicbor::decode::Error) -> Self {
        BatchError::Cbor(e.to_string())
    }
}
