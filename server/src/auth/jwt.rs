//! Access tokens: EdDSA JWTs (see [`super::keys`]) whose expiry is checked against the server clock.

use serde::{Deserialize, Serialize};
use sync_core::Timestamp;

use crate::storage::UserKind;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// This token's id, for revoking it alone.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    pub kind: UserKind,
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    /// The issuing server's name (`--issuer`); tokens from before it lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Set by verification, never sent: the trusted tier that issued the
    /// token, `None` for this server's own. Another tier's session is not
    /// held here, so only its expiry and this server's revocations apply.
    #[serde(skip)]
    pub foreign: Option<String>,
}

impl AccessClaims {
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(self.exp.saturating_mul(1000))
    }
}
