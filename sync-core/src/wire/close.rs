//! WebSocket close codes of `/sync` and `/batch`.

/// Why the server closed a sync connection (the code of its close frame; the
/// frame's reason is a sentence for people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The token is missing, invalid, expired or revoked: sign in again.
    Unauthorized,
    /// A frame could not be read or broke the protocol.
    BadFrame,
    /// The server failed; the client may retry later.
    Internal,
}

impl CloseCode {
    pub const ALL: &'static [CloseCode] = &[CloseCode::Unauthorized, CloseCode::BadFrame, CloseCode::Internal];

    /// The number in the close frame (the 4000-4999 range is the application's).
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Unauthorized => 4001,
            CloseCode::BadFrame => 4002,
            CloseCode::Internal => 4003,
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}
