//! Live revocation: a broadcast that open connections watch so a revoked or
//! expired token's connections close.
//!
//! A connection handler holds a [`TokenWatch`] for the token it was opened
//! with and selects on [`TokenWatch::ended`] next to its socket; when that
//! resolves it closes the connection with the given reason. Revocations made
//! in other processes are found by one poller per node: every revocation
//! raises a counter in storage, the poller reads it a few times a second and,
//! when it moved, checks every watched token in a few statements and
//! publishes what ended.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sync_core::UserId;
use tokio::sync::broadcast;

use super::{AccessClaims, AuthService};
use crate::storage::{SessionState, StorageError};

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

/// The tokens this node's connections watch. One task per node asks the
/// database about all of them when the revocation counter moves (read every
/// `AuthSettings::revocation_watch_ms`) and at least every
/// `AuthSettings::revocation_recheck_ms`, and publishes what it finds on the
/// hub, so the database sees one short read per interval instead of
/// statements per connection.
#[derive(Debug, Default)]
pub(super) struct Watched {
    next_id: AtomicU64,
    /// Watch id → (session id, token id).
    tokens: Mutex<HashMap<u64, (String, String)>>,
    poller: OnceLock<()>,
}

impl Watched {
    fn add(&self, claims: &AccessClaims) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if claims.foreign.is_some() {
            // Another tier's session is not held here; the poller would
            // take it for ended. Its revocations come through the hub.
            return id;
        }
        self.tokens
            .lock()
            .expect("watched tokens lock")
            .insert(id, (claims.sid.clone(), claims.jti.clone()));
        id
    }

    fn remove(&self, id: u64) {
        self.tokens.lock().expect("watched tokens lock").remove(&id);
    }

    /// The distinct session ids and token ids watched now.
    fn snapshot(&self) -> (Vec<String>, Vec<String>) {
        let tokens = self.tokens.lock().expect("watched tokens lock");
        let sids: BTreeSet<&String> = tokens.values().map(|(sid, _)| sid).collect();
        let jtis: BTreeSet<&String> = tokens.values().map(|(_, jti)| jti).collect();
        (sids.into_iter().cloned().collect(), jtis.into_iter().cloned().collect())
    }
}

/// Starts the node's revocation poller on the first watch.
fn ensure_poller(auth: &AuthService) {
    auth.inner.watched.poller.get_or_init(|| {
        let ms = |v: i64| Duration::from_millis(u64::try_from(v.max(1)).unwrap_or(1));
        let settings = auth.settings();
        tokio::spawn(poll(
            Arc::downgrade(&auth.inner),
            ms(settings.revocation_recheck_ms),
            ms(settings.revocation_watch_ms),
        ));
    });
}

/// Finds the watched tokens revoked elsewhere (the admin command, another
/// node) and publishes them. Every `watch_every` it reads the storage's
/// revocation counter (one row), which every revocation raises after it
/// commits; when the counter moved, or `every` has passed, it checks every
/// watched token in a few statements. Ends with the auth service.
async fn poll(inner: Weak<super::Inner>, every: Duration, watch_every: Duration) {
    let mut tick = tokio::time::interval(watch_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<i64> = None;
    let mut next_full = tokio::time::Instant::now() + every;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let (sids, jtis) = inner.watched.snapshot();
        if sids.is_empty() && jtis.is_empty() {
            continue;
        }
        let version = match inner.storage.config().revocation_version().await {
            Ok(v) => Some(v),
            Err(StorageError::Database(sqlx::Error::PoolClosed)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the revocation counter");
                None
            }
        };
        let moved = version.is_some() && version != seen;
        if !moved && tokio::time::Instant::now() < next_full {
            continue;
        }
        next_full = tokio::time::Instant::now() + every;
        match inner.storage.auth().ended_tokens(&sids, &jtis, inner.clock.now()).await {
            Ok((sessions, tokens)) => {
                // Read before the check: a revocation committed after it
                // raises the counter again and is found on the next tick.
                seen = version.or(seen);
                for sid in sessions {
                    inner.hub.publish(Revocation::Session { sid });
                }
                for jti in tokens {
                    inner.hub.publish(Revocation::Token { jti });
                }
            }
            Err(StorageError::Database(sqlx::Error::PoolClosed)) => return,
            // Connections stay open: the next round will tell.
            Err(e) => tracing::warn!(error = %e, "could not re-check watched tokens' revocation"),
        }
    }
}

/// Follows one token: resolves when it expires or is revoked.
#[derive(Debug)]
pub struct TokenWatch {
    id: u64,
    claims: AccessClaims,
    receiver: broadcast::Receiver<Revocation>,
    /// The expiry timer, registered once: connection loops call
    /// [`TokenWatch::ended`] again for every frame they handle.
    expiry: Pin<Box<tokio::time::Sleep>>,
    auth: AuthService,
}

impl TokenWatch {
    pub(crate) fn new(auth: AuthService, claims: AccessClaims) -> Self {
        let left_ms = claims.expires_at().millis().saturating_sub(auth.now().millis()).max(0);
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        ensure_poller(&auth);
        TokenWatch {
            id: auth.inner.watched.add(&claims),
            receiver: auth.revocations().subscribe(),
            expiry: Box::pin(tokio::time::sleep(left)),
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
    /// elsewhere (the admin command, another server node) arrive from the
    /// node's poller, within `AuthSettings::revocation_watch_ms` and a query.
    pub async fn ended(&mut self) -> TokenEnd {
        loop {
            tokio::select! {
                () = self.expiry.as_mut() => return TokenEnd::Expired,
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
        if self.claims.foreign.is_some() {
            return self
                .auth
                .storage()
                .auth()
                .jti_revoked(&self.claims.jti)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not re-check a token's revocation");
                    false
                });
        }
        let state = self
            .auth
            .storage()
            .auth()
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

impl Drop for TokenWatch {
    fn drop(&mut self) {
        self.auth.inner.watched.remove(self.id);
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
            iss: None,
            foreign: None,
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
