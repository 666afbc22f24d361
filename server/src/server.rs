//! Start-up: data directory, JWT secret, storage, and serving the app until shutdown.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::auth::{AuthService, AuthSettings, SmsError, SmsSender};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::docs::{DocError, DocService, DocSettings};
use crate::notify::NotifyService;
use crate::state::{AppState, HttpSettings};
use crate::storage::{Storage, StorageError};

/// Errors while starting or running the server.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}")]
    DataDir { path: String, source: io::Error },
    #[error("cannot read or write JWT secret file {path}")]
    Secret { path: String, source: io::Error },
    #[error("JWT secret must be at least 32 bytes")]
    WeakSecret,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Sms(#[from] SmsError),
    #[error(transparent)]
    Docs(#[from] DocError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("server I/O: {0}")]
    Io(#[from] io::Error),
}

impl AppState {
    /// Builds the state `lianxin serve` runs with: creates the data
    /// directory, opens (and migrates) the database, loads or creates the
    /// JWT secret.
    pub async fn from_config(config: &Config) -> Result<Self, ServerError> {
        Self::from_config_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn from_config_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, ServerError> {
        Self::from_config_with(config, clock, crate::docs::DEFAULT_CACHE_DOCS).await
    }

    /// Like [`AppState::from_config`], with the clock and document cache size given.
    pub async fn from_config_with(
        config: &Config,
        clock: Arc<dyn Clock>,
        cache_docs: usize,
    ) -> Result<Self, ServerError> {
        let dir = config.data_dir();
        std::fs::create_dir_all(dir).map_err(|source| ServerError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let storage = Storage::open(&config.database_url()).await?;
        let secret = load_or_create_secret(config)?;
        let sms = SmsSender::from_config(config.sms_webhook_url.as_deref(), config.sms_timeout)?;
        if sms.is_dev() {
            tracing::warn!("no SMS gateway configured: one-time codes are written to the log (dev mode)");
        }
        let mut trusted_key_sets = Vec::new();
        for path in &config.trusted_keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ServerError::Config(format!("trusted keys file {}: {e}", path.display())))?;
            let set: sync_core::wire::KeySet = serde_json::from_str(&text).map_err(|e| {
                ServerError::Config(format!("trusted keys file {} is not a key set: {e}", path.display()))
            })?;
            trusted_key_sets.push(set);
        }
        let settings = AuthSettings {
            resident_signup: config.resident_signup,
            issuer: config.issuer.clone(),
            signing_key_retention_ms: i64::try_from(config.signing_key_retention.as_millis()).unwrap_or(i64::MAX),
            trusted_key_sets,
            trusted_issuer_urls: config.trust_issuer_url.clone(),
            ..AuthSettings::default()
        };
        let auth = AuthService::new(storage.clone(), clock.clone(), &secret, sms, settings);
        let notify_settings = config.notify_settings().map_err(ServerError::Config)?;
        let docs = DocService::new(
            storage.clone(),
            clock.clone(),
            DocSettings {
                cache_docs,
                fanout: notify_settings.fanout(),
                compact_after_changes: config.compact_after_changes,
                ..DocSettings::default()
            },
        )
        .await?;
        let notify = NotifyService::new(storage.clone(), docs.clone(), clock.clone(), notify_settings)?;
        Ok(AppState {
            storage,
            auth,
            clock,
            http: Arc::new(HttpSettings::from_config(config)),
            docs,
            notify,
            node_id: format!("{:016x}", rand::random::<u64>()),
        })
    }
}

/// The JWT secret: `--jwt-secret` / `LIANXIN_JWT_SECRET`, else the contents
/// of `<data-dir>/jwt-secret`, created with 32 random bytes (mode 0600) on
/// first use.
pub fn load_or_create_secret(config: &Config) -> Result<Vec<u8>, ServerError> {
    if let Some(secret) = &config.jwt_secret {
        if secret.len() < 32 {
            return Err(ServerError::WeakSecret);
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.jwt_secret_path();
    let err = |source| ServerError::Secret {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => return Err(ServerError::WeakSecret),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    // Written whole to a file of its own, then linked into place: a link
    // does not replace an existing file, so when two processes start on a
    // new data folder at once (a server and an admin command), one secret
    // wins, the other reads it, and nobody ever reads a half-written one.
    let secret = crate::auth::random_secret();
    let staged = path.with_extension(format!("new-{:016x}", rand::random::<u64>()));
    write_private(&staged, secret.as_bytes()).map_err(err)?;
    let linked = std::fs::hard_link(&staged, &path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new JWT secret");
            Ok(secret.into_bytes())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
            Ok(_) => Err(ServerError::WeakSecret),
            Err(e) => Err(err(e)),
        },
        Err(e) => Err(err(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Serves the app built from `config` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let state = AppState::from_config(&config).await?;
    let upstream = config.upstream().map_err(ServerError::Config)?;
    // A station: the uplink runs beside the server and stops with it.
    let _uplink = upstream.map(|u| {
        tracing::info!(upstream = %u.url, login = %u.login, "serving as a station of the server above");
        crate::station::spawn(state.clone(), u)
    });
    serve(listener, state, shutdown).await
}

/// Serves `state`'s app on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish and closes the database.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let storage = state.storage.clone();
    let limits = state.http.connections;
    let mut workers = state.notify.spawn_workers();
    // Organisation and clock-rule changes from any node or command apply here too.
    crate::api::org::apply_config(&state)
        .await
        .map_err(|e| ServerError::Config(format!("stored configuration: {e}")))?;
    workers.push(crate::api::org::spawn_config_watch(state.clone()));
    workers.push(crate::housekeeping::spawn(state.clone()));
    let notify = state.notify.clone();
    let app = crate::http::app(state);
    // Small sync frames go out at once; a peer that vanished (a phone that
    // lost signal for good) is found by TCP keepalive, which probes only after
    // a minute without a single byte either way, so a slow transfer is never
    // taken for a dead one.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(20))
        .with_retries(5);
    let tune = move |tcp: &tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
        if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(error = %e, "could not enable TCP keepalive");
        }
    };
    // Event streams never end on their own; end them so the graceful shutdown can finish.
    let shutdown = async move {
        shutdown.await;
        notify.close();
    };
    let served = crate::http::serve(listener, app, limits, tune, shutdown).await;
    for w in &workers {
        w.abort();
    }
    for w in workers {
        let _ = w.await;
    }
    served?;
    storage.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starters_racing_on_a_new_data_folder_share_one_secret() -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..20 {
            let dir = tempfile::tempdir()?;
            let mut config = Config::with_data_dir(dir.path())?;
            config.jwt_secret = None;
            let barrier = std::sync::Barrier::new(8);
            let secrets: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            load_or_create_secret(&config)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panic").expect("every starter gets the secret"))
                    .collect()
            });
            assert!(secrets.windows(2).all(|w| w[0] == w[1]), "one secret for all");
            let left: Vec<_> = std::fs::read_dir(dir.path())?.collect();
            assert_eq!(left.len(), 1, "only the secret file is left: {left:?}");
        }
        Ok(())
    }

    #[test]
    fn the_generated_secret_is_private_and_stable() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::with_data_dir(dir.path())?;
        config.jwt_secret = None;
        let first = load_or_create_secret(&config)?;
        assert!(first.len() >= 32);
        assert_eq!(load_or_create_secret(&config)?, first, "read back, not regenerated");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(config.jwt_secret_path())?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        config.jwt_secret = Some("short".into());
        assert!(matches!(load_or_create_secret(&config), Err(ServerError::WeakSecret)));
        Ok(())
    }
}
