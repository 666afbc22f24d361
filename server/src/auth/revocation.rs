//! Live revocation: a broadcast that open connections watch so a revoked or
//! expired token's connections close.
//!
//! A connection handler holds a [`TokenWatch`] for the token it was opened
//! with and selects on [`TokenWatch::ended`] next to its socket; when that
//! resolves it closes the connection with the given reason.

use std::time::Duration;

use sync_core::UserId;
use tokio::sync::broadcast;

use super::{AccessClaims, AuthService};
use crate::storage::SessionState;

/// Something was revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// One access token.
    Token { jti: String },
    /// One session and every access token issued in it.
    Session { sid: String },
    /// Every session of a user.
    User { user: UserId },
}

impl Revocation {
    /// Whether this revocation invalidates a token with `claims`.
    pub fn covers(&self, claims: &AccessClaims) -> bool {
        match self {
            Revocation::Token { jti } => *jti == claims.jti,
            Revocation::Session { sid } => *sid == claims.sid,
            Revocation::User { user } => user.as_str() == claims.sub,
        }
    }
}

/// The in-process revocation channel.
#[derive(Clone, Debug)]
pub struct RevocationHub {
    sender: broadcast::Sender<Revocation>,
}

impl Default for RevocationHub {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationHub {
    pub fn new() -> Self {
        RevocationHub {
            sender: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.sender.subscribe()
    }

    /// Tells every watcher; nobody listening is fine.
    pub fn publish(&self, revocation: Revocation) {
        let _ = self.sender.send(revocation);
    }
}

/// Why a watched token stopped being valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenEnd {
    Expired,
    Revoked,
}

/// Follows one token: resolves when it expires or is revoked.
#[derive(Debug)]
pub struct TokenWatch {
    claims: AccessClaims,
    receiver: broadcast::Receiver<Revocation>,
    deadline: tokio::time::Instant,
    next_check: tokio::time::Instant,
    recheck: Duration,
    auth: AuthService,
}

impl TokenWatch {
    pub(crate) fn new(auth: AuthService, claims: AccessClaims) -> Self {
        let left_ms = claims.expires_at().millis().saturating_sub(auth.now().millis()).max(0);
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let recheck = Duration::from_millis(u64::try_from(auth.settings().revocation_recheck_ms).unwrap_or(30_000));
        TokenWatch {
            receiver: auth.revocations().subscribe(),
            deadline: tokio::time::Instant::now() + left,
            next_check: tokio::time::Instant::now() + recheck,
            recheck,
            claims,
            auth,
        }
    }

    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// Waits until the token expires or is revoked. Cancel-safe.
    ///
    /// Revocations published in this process arrive at once. Those made
    /// elsewhere (the admin command, another server node) are found by
    /// asking the database every `AuthSettings::revocation_recheck_ms`.
    pub async fn ended(&mut self) -> TokenEnd {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return TokenEnd::Expired,
                () = tokio::time::sleep_until(self.next_check) => {
                    self.next_check = tokio::time::Instant::now() + self.recheck;
                    if self.revoked_in_db().await {
                        return TokenEnd::Revoked;
                    }
                }
                received = self.receiver.recv() => match received {
                    Ok(revocation) if revocation.covers(&self.claims) => return TokenEnd::Revoked,
                    Ok(_) => {}
                    // Missed messages: ask the database instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if self.revoked_in_db().await {
                            return TokenEnd::Revoked;
                        }
                    }
                    // The hub is gone: the server is shutting down.
                    Err(broadcast::error::RecvError::Closed) => return TokenEnd::Revoked,
                },
            }
        }
    }

    /// True when the database says the token or its session is revoked. A
    /// database error keeps the connection: the next check will tell.
    async fn revoked_in_db(&self) -> bool {
        let state = self
            .auth
            .storage()
            .token_state(&self.claims.sid, &self.claims.jti, self.auth.now())
            .await;
        match state {
            Ok(SessionState::Active) => false,
            Ok(SessionState::Revoked | SessionState::Unknown) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a token's revocation");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UserKind;

    #[test]
    fn revocations_cover_the_right_tokens() {
        let claims = AccessClaims {
            sub: "u1".into(),
            jti: "j1".into(),
            iat: 0,
            exp: 1,
            kind: UserKind::Staff,
            sid: "s1".into(),
        };
        let user = |id: &str| UserId::new(id).expect("valid id");
        assert!(Revocation::Token { jti: "j1".into() }.covers(&claims));
        assert!(!Revocation::Token { jti: "j2".into() }.covers(&claims));
        assert!(Revocation::Session { sid: "s1".into() }.covers(&claims));
        assert!(!Revocation::Session { sid: "s2".into() }.covers(&claims));
        assert!(Revocation::User { user: user("u1") }.covers(&claims));
        assert!(!Revocation::User { user: user("u2") }.covers(&claims));
    }
}
