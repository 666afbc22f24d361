//! `lianxin admin …`: import the organisation, mint tokens, revoke sessions,
//! check the stored documents.
//!
//! The commands use the same configuration (data dir, `DATABASE_URL`, JWT
//! secret) as `serve`, so they act on the same database a running server
//! uses. A revocation made here is stored at once and raises the revocation
//! counter: running servers refuse the revoked tokens on their next request
//! and close their live connections when their poller next reads the
//! counter (every 200 ms).

mod import;

use std::sync::Arc;
use std::time::Duration;

use sync_core::UserId;
use thiserror::Error;

pub use import::{ImportError, ImportFile, ImportReport, ImportScope, import_file, import_parsed, import_str, scope};

use crate::auth::{AuthError, AuthService, AuthSettings, SmsSender};
use crate::clock::{Clock, SystemClock};
use crate::config::{AdminCommand, Config};
use crate::server::{ServerError, load_or_create_secret};
use crate::storage::Storage;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("invalid user id {0:?}")]
    InvalidUser(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("reading the stored clock rules: {0}")]
    Settings(#[from] crate::ApiError),
    #[error("the check found {} problem(s):\n{}", .0.problems.len(), .0.lines().join("\n"))]
    CheckFailed(crate::check::CheckReport),
}

/// Runs one admin command and returns what it prints.
pub async fn run(config: &Config, command: &AdminCommand) -> Result<String, AdminError> {
    std::fs::create_dir_all(config.data_dir()).map_err(|source| ServerError::DataDir {
        path: config.data_dir().display().to_string(),
        source,
    })?;
    let storage = Storage::open(&config.database_url()).await.map_err(ServerError::from)?;
    let result = run_on(&storage, config, command).await;
    storage.close().await;
    result
}

async fn run_on(storage: &Storage, config: &Config, command: &AdminCommand) -> Result<String, AdminError> {
    match command {
        AdminCommand::Import { file } => {
            let report = import_file(storage, file, SystemClock.now()).await?;
            Ok(report.to_string())
        }
        AdminCommand::MintToken { user, ttl } => {
            let auth = auth_service(storage, config)?;
            let token = auth.mint_access_token(&parse_user(user)?, duration_ms(*ttl)).await?;
            Ok(token)
        }
        AdminCommand::Revoke { user } => {
            let auth = auth_service(storage, config)?;
            let user = parse_user(user)?;
            if storage.auth().get_user(&user).await.map_err(AuthError::from)?.is_none() {
                return Err(AuthError::UnknownUser(user.to_string()).into());
            }
            let n = auth.revoke_user(&user).await?;
            Ok(format!("revoked {n} active session(s) of {user}"))
        }
        AdminCommand::RotateSigningKey { withdraw_previous } => {
            let auth = auth_service(storage, config)?;
            let kid = auth.keys().rotate(auth.now(), *withdraw_previous).await?;
            Ok(format!("signing key {kid}"))
        }
        AdminCommand::Check => {
            // Summaries are recomputed as the server computes them: under the
            // clock rules its administration stored, not the defaults.
            let settings = crate::check::CheckSettings::stored(storage).await?;
            let report = crate::check::check_database(storage, &settings).await?;
            if report.problems.is_empty() {
                Ok(report.lines().join("\n"))
            } else {
                Err(AdminError::CheckFailed(report))
            }
        }
    }
}

fn auth_service(storage: &Storage, config: &Config) -> Result<AuthService, AdminError> {
    let secret = load_or_create_secret(config)?;
    Ok(AuthService::new(
        storage.clone(),
        Arc::new(SystemClock),
        &secret,
        SmsSender::DevLog,
        AuthSettings {
            issuer: config.issuer.clone(),
            ..AuthSettings::default()
        },
    ))
}

fn parse_user(user: &str) -> Result<UserId, AdminError> {
    UserId::new(user).map_err(|_| AdminError::InvalidUser(user.to_owned()))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
