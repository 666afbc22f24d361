//! Housekeeping: what can no longer matter is deleted every hour, so the
//! tables that grow with use stay bounded on a station's small disk:
//! expired sessions with their refresh tokens, revocations of access tokens
//! that have expired anyway, one-time codes and sign-in failures past every
//! throttling window, and clients' idempotency keys older than
//! [`CLIENT_KEY_RETENTION_MS`] (a phone retries a request whose answer it
//! lost within days, not months). The marks of clock actions stay: they keep
//! an escalation from being carried out twice for as long as the petition
//! lives.

use std::time::Duration;

use sync_core::Timestamp;
use tokio::task::JoinHandle;

use crate::state::AppState;
use crate::storage::StorageError;

/// How often housekeeping runs (and once at start-up).
pub const EVERY: Duration = Duration::from_secs(60 * 60);

/// How long a client's idempotency key is kept: thirty days.
pub const CLIENT_KEY_RETENTION_MS: i64 = 30 * 24 * 60 * 60_000;

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sessions, refresh tokens, revocations, one-time codes, sign-in failures.
    pub auth: u64,
    /// Clients' idempotency keys (with what each recorded beside it).
    pub client_keys: u64,
}

/// Deletes what can no longer matter at `now`.
pub async fn purge(app: &AppState, now: Timestamp) -> Result<Purged, StorageError> {
    let s = app.auth.settings();
    // A failure or a code counts within its window and no longer.
    let windows = s.login.window_ms.max(s.otp.window_ms).max(s.otp.code_ttl_ms);
    let auth = app.storage.auth().purge_expired(now, now.plus_millis(-windows)).await?;
    let client_keys = app
        .storage
        .clocks()
        .purge_client_keys(now.plus_millis(-CLIENT_KEY_RETENTION_MS))
        .await?;
    Ok(Purged { auth, client_keys })
}

/// Runs [`purge`] at start-up and every [`EVERY`]; a failed run is logged
/// and tried again next time.
pub fn spawn(app: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match purge(&app, app.clock.now()).await {
                Ok(p) if p != Purged::default() => {
                    tracing::info!(
                        auth = p.auth,
                        client_keys = p.client_keys,
                        "housekeeping deleted what expired"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed; trying again later"),
            }
            tokio::time::sleep(EVERY).await;
        }
    })
}
