//! `GET /api/auth/keys`: the public keys that verify a server's access tokens (JWKS-like).

use serde::{Deserialize, Serialize};

/// A server's token-verification keys. Another tier that trusts this
/// issuer verifies its tokens with these keys alone: no secret is shared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeySet {
    /// The issuer the tokens name in `iss`.
    pub issuer: String,
    /// The keys, the one signing now first.
    pub keys: Vec<PublicKey>,
}

/// One Ed25519 public key as a JSON Web Key (RFC 8037), with its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKey {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The key id tokens carry in their header.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// `current` (signs now) or `retired` (verifies the tokens it signed).
    pub status: String,
    /// When a retired key stopped signing, UTC milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
}
