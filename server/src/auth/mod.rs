//! Authentication: password and one-time-code sign-in, access and refresh tokens, revocation.
//!
//! Officers and staff sign in with login name + password (Argon2id); residents
//! with phone + a six-digit code sent by SMS. A sign-in opens a *session*
//! that issues a 15-minute access JWT and a 30-day opaque refresh token;
//! refreshing rotates the refresh token, and presenting an already rotated
//! one revokes the session (it was stolen or replayed). Revoking a token, a
//! session or all of a user's sessions is stored and broadcast, so live
//! connections holding such a token close (see [`revocation`]).

mod jwt;
pub mod keys;
mod password;
mod principal;
pub mod revocation;
mod secrets;
mod sms;

use std::sync::Arc;

use serde::Serialize;
use sync_core::{Principal, Timestamp, UserId};
use thiserror::Error;

pub use jwt::AccessClaims;
pub use keys::{Issuer, KeyRing, StationKeysError};
pub use password::{hash_password, verify_password};
pub use revocation::{Revocation, RevocationHub, TokenEnd, TokenWatch};
pub use sms::{SmsError, SmsMessage, SmsSender};

use crate::clock::Clock;
use crate::storage::{NewUser, OtpCheck, RefreshRotation, SessionState, Storage, StorageError, UserKind, UserRecord};

/// Errors of the auth boundary. Credential failures are deliberately vague.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("invalid login name or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("missing or invalid access token")]
    InvalidToken,
    #[error("access token expired")]
    TokenExpired,
    #[error("access token revoked")]
    TokenRevoked,
    #[error("access token refused: {0}")]
    TokenRefused(String),
    #[error("invalid or expired refresh token")]
    RefreshInvalid,
    #[error("refresh token was already used; the session has been revoked")]
    RefreshReused,
    #[error("too many failed sign-ins for this login; retry in {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: i64 },
    #[error("invalid phone number")]
    InvalidPhone,
    #[error("too many codes requested for this phone; retry in {retry_after_secs} s")]
    OtpRateLimited { retry_after_secs: i64 },
    #[error("wrong code; {attempts_left} attempts left")]
    OtpWrong { attempts_left: i64 },
    #[error("too many wrong codes; request a new one")]
    OtpAttemptsExceeded,
    #[error("no valid code for this phone; it may have expired: request a new one")]
    OtpExpired,
    #[error("no account for this phone")]
    SignupClosed,
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("could not send the code: {0}")]
    Sms(#[from] SmsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// Limits for one-time codes.
#[derive(Clone, Debug)]
pub struct OtpPolicy {
    /// How long a code stays valid.
    pub code_ttl_ms: i64,
    /// Wrong tries before a code is burnt.
    pub max_attempts: i64,
    /// Minimum time between two codes to one phone.
    pub min_interval_ms: i64,
    /// At most this many codes per phone per `window_ms`.
    pub max_per_window: i64,
    pub window_ms: i64,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        OtpPolicy {
            code_ttl_ms: 5 * 60_000,
            max_attempts: 5,
            min_interval_ms: 60_000,
            max_per_window: 5,
            window_ms: 60 * 60_000,
        }
    }
}

/// Throttling of password guessing, per login name.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// Failed sign-ins allowed per `window_ms`; more are refused with 429
    /// until the window has passed, right password or not.
    pub max_failures: i64,
    pub window_ms: i64,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            max_failures: 10,
            window_ms: 15 * 60_000,
        }
    }
}

/// Token lifetimes and sign-up rules.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub access_ttl_ms: i64,
    pub refresh_ttl_ms: i64,
    pub otp: OtpPolicy,
    pub login: LoginPolicy,
    /// Whether a verified phone without an account becomes a new resident.
    pub resident_signup: bool,
    /// How long after a refresh token's first use a retry with it (the
    /// answer was lost on the way) is still served instead of treated as
    /// theft.
    pub refresh_reuse_grace_ms: i64,
    /// How often this node reads the storage's revocation counter, which
    /// every revocation raises: when it moved, the tokens its live
    /// connections watch ([`TokenWatch`]) are checked at once, so a
    /// revocation by another process (`lianxin admin revoke`, another node)
    /// closes them within about this long.
    pub revocation_watch_ms: i64,
    /// How often this node checks the watched tokens even when the counter
    /// did not move.
    pub revocation_recheck_ms: i64,
    /// The name this server's tokens carry in `iss` and its key set publishes.
    pub issuer: String,
    /// How long a retired signing key still verifies the tokens it signed.
    pub signing_key_retention_ms: i64,
    /// Other tiers' key sets whose tokens this server accepts.
    pub trusted_key_sets: Vec<sync_core::wire::KeySet>,
    /// Other tiers' key-set URLs (`…/api/auth/keys`) whose tokens this server
    /// accepts, fetched when a token names a key not known yet.
    pub trusted_issuer_urls: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_ttl_ms: 15 * 60_000,
            refresh_ttl_ms: 30 * 24 * 60 * 60_000,
            otp: OtpPolicy::default(),
            login: LoginPolicy::default(),
            resident_signup: true,
            refresh_reuse_grace_ms: 60_000,
            revocation_watch_ms: 200,
            revocation_recheck_ms: 30_000,
            issuer: "lianxin".into(),
            signing_key_retention_ms: 7 * 24 * 60 * 60_000,
            trusted_key_sets: Vec::new(),
            trusted_issuer_urls: Vec::new(),
        }
    }
}

/// What a successful sign-in or refresh returns.
#[derive(Clone, Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub user: UserSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserSummary {
    pub id: UserId,
    pub display_name: String,
    pub kind: UserKind,
}

impl From<&UserRecord> for UserSummary {
    fn from(u: &UserRecord) -> Self {
        UserSummary {
            id: u.id.clone(),
            display_name: u.display_name.clone(),
            kind: u.kind,
        }
    }
}

const OTP_PURPOSE_LOGIN: &str = "login";

/// The auth service: cheap to clone, shared by handlers and connections.
#[derive(Clone, Debug)]
pub struct AuthService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    otp_key: Vec<u8>,
    sms: SmsSender,
    hub: RevocationHub,
    watched: revocation::Watched,
    settings: AuthSettings,
}

impl AuthService {
    /// `secret` seals the signing keys stored in the database and keys the
    /// code hashes; keep it stable across restarts or pending codes become
    /// invalid and a new signing key is made (tokens already issued stay
    /// valid: their public keys are stored in the clear).
    pub fn new(storage: Storage, clock: Arc<dyn Clock>, secret: &[u8], sms: SmsSender, settings: AuthSettings) -> Self {
        let otp_key = secrets::hmac_hex(secret, &["lianxin one-time codes v1"]).into_bytes();
        let keys = KeyRing::new(
            storage.clone(),
            secret,
            settings.issuer.clone(),
            settings.signing_key_retention_ms,
        );
        for set in &settings.trusted_key_sets {
            keys.trust(set);
        }
        for url in &settings.trusted_issuer_urls {
            keys.trust_url(url.clone());
        }
        AuthService {
            inner: Arc::new(Inner {
                storage,
                clock,
                keys,
                otp_key,
                sms,
                hub: RevocationHub::new(),
                watched: revocation::Watched::default(),
                settings,
            }),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub fn revocations(&self) -> &RevocationHub {
        &self.inner.hub
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The signing keys, the published key set and the trusted issuers.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// Signs in with login name and password.
    pub async fn login_password(&self, login: &str, password: &str) -> Result<TokenPair, AuthError> {
        let login = login.trim();
        let policy = &self.inner.settings.login;
        let now = self.now();
        let (failures, last) = self
            .inner
            .storage
            .auth()
            .login_failures_since(login, now.plus_millis(-policy.window_ms))
            .await?;
        if failures >= policy.max_failures {
            let wait = last.map_or(policy.window_ms, |l| l.millis() + policy.window_ms - now.millis());
            tracing::warn!(login, failures, "password sign-in throttled");
            return Err(AuthError::LoginThrottled {
                retry_after_secs: ceil_secs(wait.max(1)),
            });
        }
        let found = self.inner.storage.auth().find_user_by_login(login).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let ok = verify_password(password.to_owned(), hash).await?;
        let Some(user) = user.filter(|_| ok) else {
            tracing::info!(login, "password sign-in refused");
            self.inner.storage.auth().record_login_failure(login, now).await?;
            return Err(AuthError::InvalidCredentials);
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        if failures > 0 {
            self.inner.storage.auth().clear_login_failures(login).await?;
        }
        self.open_session(&user, "password").await
    }

    /// Sends a sign-in code to `phone`. Answers the same whether or not an
    /// account exists for it.
    pub async fn request_otp(&self, phone: &str) -> Result<i64, AuthError> {
        let phone = normalize_phone(phone)?;
        let policy = &self.inner.settings.otp;
        let now = self.now();
        let since = now.plus_millis(-policy.window_ms);
        let (count, last) = self.inner.storage.auth().otp_requests_since(&phone, since).await?;
        if let Some(last) = last {
            let wait = last.millis() + policy.min_interval_ms - now.millis();
            if wait > 0 {
                return Err(AuthError::OtpRateLimited {
                    retry_after_secs: ceil_secs(wait),
                });
            }
        }
        if count >= policy.max_per_window {
            return Err(AuthError::OtpRateLimited {
                retry_after_secs: ceil_secs(policy.window_ms),
            });
        }
        let code = secrets::six_digit_code();
        let hash = self.otp_hash(&phone, &code);
        self.inner
            .storage
            .auth()
            .insert_otp(
                &phone,
                OTP_PURPOSE_LOGIN,
                &hash,
                now,
                now.plus_millis(policy.code_ttl_ms),
            )
            .await?;
        let message = SmsMessage {
            phone,
            code,
            purpose: OTP_PURPOSE_LOGIN.to_owned(),
        };
        self.inner.sms.send(&message).await?;
        Ok(ceil_secs(policy.code_ttl_ms))
    }

    /// Signs in with a code sent by [`request_otp`](Self::request_otp).
    pub async fn verify_otp(&self, phone: &str, code: &str) -> Result<TokenPair, AuthError> {
        let phone = normalize_phone(phone)?;
        let policy = &self.inner.settings.otp;
        let hash = self.otp_hash(&phone, code.trim());
        let check = self
            .inner
            .storage
            .auth()
            .check_otp(&phone, OTP_PURPOSE_LOGIN, &hash, self.now(), policy.max_attempts)
            .await?;
        match check {
            OtpCheck::Valid => {}
            OtpCheck::Wrong { attempts_left } => return Err(AuthError::OtpWrong { attempts_left }),
            OtpCheck::TooManyAttempts => return Err(AuthError::OtpAttemptsExceeded),
            OtpCheck::NoActiveCode => return Err(AuthError::OtpExpired),
        }
        let user = match self.inner.storage.auth().find_user_by_phone(&phone).await? {
            Some(user) => user,
            None if self.inner.settings.resident_signup => self.create_resident(&phone).await?,
            None => return Err(AuthError::SignupClosed),
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        self.open_session(&user, "otp").await
    }

    async fn create_resident(&self, phone: &str) -> Result<UserRecord, AuthError> {
        let id = UserId::new(format!("r-{}", secrets::random_id()))
            .map_err(|e| AuthError::Storage(StorageError::corrupt(e)))?;
        let user = NewUser {
            id: id.clone(),
            login_name: None,
            display_name: String::new(),
            phone: Some(phone.to_owned()),
            kind: UserKind::Resident,
            household: None,
        };
        self.inner.storage.auth().create_user(&user, self.now()).await?;
        tracing::info!(user = %id, "new resident signed up by phone");
        self.inner
            .storage
            .auth()
            .get_user(&id)
            .await?
            .ok_or(AuthError::UnknownUser(id.to_string()))
    }

    /// Exchanges a refresh token for a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let new_refresh = secrets::random_token(32);
        let rotation = self
            .inner
            .storage
            .auth()
            .rotate_refresh_token(
                &secrets::sha256_hex(refresh_token),
                &secrets::sha256_hex(&new_refresh),
                now,
                now.plus_millis(self.inner.settings.refresh_ttl_ms),
                self.inner.settings.refresh_reuse_grace_ms,
            )
            .await?;
        let (user, sid) = match rotation {
            RefreshRotation::Rotated { user, sid } => (user, sid),
            RefreshRotation::Reused { user, sid } => {
                tracing::warn!(user = %user, sid, "refresh token reused: session revoked");
                self.inner.hub.publish(Revocation::Session { sid });
                return Err(AuthError::RefreshReused);
            }
            RefreshRotation::Invalid => return Err(AuthError::RefreshInvalid),
        };
        let user = self
            .inner
            .storage
            .auth()
            .get_user(&user)
            .await?
            .ok_or(AuthError::RefreshInvalid)?;
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let (access_token, expires_in) = self
            .issue_access(&user, &sid, self.inner.settings.access_ttl_ms)
            .await?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: new_refresh,
            user: (&user).into(),
        })
    }

    /// Checks an access token: key and signature (this server's keys or a
    /// trusted tier's), expiry by the server clock, and revocation of the
    /// token or its session. A trusted tier's token has no session here:
    /// only its expiry and this server's revocation of it apply.
    pub async fn authenticate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = self.now();
        let (mut claims, issuer) = self.inner.keys.verify(token, now).await?;
        if claims.expires_at() <= now {
            return Err(AuthError::TokenExpired);
        }
        if let Issuer::Trusted(issuer) = issuer {
            if self.inner.storage.auth().jti_revoked(&claims.jti).await? {
                return Err(AuthError::TokenRevoked);
            }
            claims.foreign = Some(issuer);
            return Ok(claims);
        }
        if let Issuer::Station { station, issuer } = issuer {
            if self.inner.storage.auth().jti_revoked(&claims.jti).await? {
                return Err(AuthError::TokenRevoked);
            }
            self.station_speaks_for(&station, &claims.sub).await?;
            claims.foreign = Some(issuer);
            return Ok(claims);
        }
        match self
            .inner
            .storage
            .auth()
            .token_state(&claims.sid, &claims.jti, self.now())
            .await?
        {
            SessionState::Active => Ok(claims),
            SessionState::Revoked => Err(AuthError::TokenRevoked),
            SessionState::Unknown => Err(AuthError::InvalidToken),
        }
    }

    /// A token a station issued holds here only for someone that station
    /// may speak for (`sync_core::relay::speaks_for`): a station's key
    /// cannot sign in a county director, another station's officer or a
    /// server, and a station account disabled here or no longer a station
    /// vouches for nobody.
    async fn station_speaks_for(&self, station: &str, sub: &str) -> Result<(), AuthError> {
        let refused = |why: String| AuthError::TokenRefused(why);
        let station_id = UserId::new(station).map_err(|_| AuthError::InvalidToken)?;
        let station_principal = match principal::load(&self.inner.storage, &station_id).await {
            Ok(p) if sync_core::relay::is_station(&p) => p,
            Ok(_) | Err(AuthError::Disabled) | Err(AuthError::UnknownUser(_)) => {
                return Err(refused(format!(
                    "it was issued by station {station}, which is no longer a station of this server"
                )));
            }
            Err(e) => return Err(e),
        };
        let user = UserId::new(sub).map_err(|_| AuthError::InvalidToken)?;
        let author = match principal::load(&self.inner.storage, &user).await {
            Ok(p) => Some(p),
            Err(AuthError::UnknownUser(_)) => None,
            Err(e) => return Err(e),
        };
        let org = self.inner.storage.auth().org_tree().await?;
        sync_core::relay::speaks_for(&org, &station_principal, author.as_ref())
            .map_err(|(rule, detail)| refused(format!("station {station} may not sign in {sub} ({rule}: {detail})")))
    }

    /// Ends the session of `claims` (or every session of its user).
    pub async fn logout(&self, claims: &AccessClaims, all_sessions: bool) -> Result<(), AuthError> {
        let now = self.now();
        let user = UserId::new(claims.sub.clone()).map_err(|_| AuthError::InvalidToken)?;
        self.inner
            .storage
            .auth()
            .revoke_jti(&claims.jti, &user, claims.expires_at(), now)
            .await?;
        if all_sessions {
            self.revoke_user(&user).await?;
        } else {
            self.inner.storage.auth().revoke_session(&claims.sid, now).await?;
            self.inner.hub.publish(Revocation::Session {
                sid: claims.sid.clone(),
            });
        }
        Ok(())
    }

    /// Revokes every session of `user`; returns how many were active.
    pub async fn revoke_user(&self, user: &UserId) -> Result<u64, AuthError> {
        let n = self.inner.storage.auth().revoke_user_sessions(user, self.now()).await?;
        self.inner.hub.publish(Revocation::User { user: user.clone() });
        tracing::info!(user = %user, sessions = n, "all sessions revoked");
        Ok(n)
    }

    /// Issues an access token outside any sign-in (admin tooling, tests). It
    /// gets its own session, so revoking the user's sessions revokes it.
    pub async fn mint_access_token(&self, user: &UserId, ttl_ms: i64) -> Result<String, AuthError> {
        let record = self
            .inner
            .storage
            .auth()
            .get_user(user)
            .await?
            .ok_or_else(|| AuthError::UnknownUser(user.to_string()))?;
        let sid = secrets::random_id();
        let now = self.now();
        self.inner
            .storage
            .auth()
            .create_session(&sid, user, "minted", now, now.plus_millis(ttl_ms))
            .await?;
        Ok(self.issue_access(&record, &sid, ttl_ms).await?.0)
    }

    /// The principal (memberships, household) of a user.
    pub async fn principal(&self, user: &UserId) -> Result<Principal, AuthError> {
        principal::load(&self.inner.storage, user).await
    }

    /// A watch that resolves when the token with `claims` expires or is revoked.
    pub fn watch(&self, claims: AccessClaims) -> TokenWatch {
        TokenWatch::new(self.clone(), claims)
    }

    async fn open_session(&self, user: &UserRecord, origin: &str) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let sid = secrets::random_id();
        let refresh_token = secrets::random_token(32);
        self.inner
            .storage
            .auth()
            .create_session_with_refresh(
                &sid,
                &user.id,
                origin,
                &secrets::sha256_hex(&refresh_token),
                now,
                now.plus_millis(self.inner.settings.refresh_ttl_ms),
            )
            .await?;
        let (access_token, expires_in) = self.issue_access(user, &sid, self.inner.settings.access_ttl_ms).await?;
        tracing::info!(user = %user.id, origin, "signed in");
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token,
            user: user.into(),
        })
    }

    async fn issue_access(&self, user: &UserRecord, sid: &str, ttl_ms: i64) -> Result<(String, i64), AuthError> {
        let now = self.now();
        let now_s = now.millis().div_euclid(1000);
        let ttl_s = ceil_secs(ttl_ms);
        let claims = AccessClaims {
            sub: user.id.to_string(),
            jti: secrets::random_id(),
            iat: now_s,
            exp: now_s + ttl_s,
            kind: user.kind,
            sid: sid.to_owned(),
            iss: Some(self.inner.keys.issuer().to_owned()),
            foreign: None,
        };
        Ok((self.inner.keys.sign(&claims, now).await?, ttl_s))
    }

    fn otp_hash(&self, phone: &str, code: &str) -> String {
        secrets::hmac_hex(&self.inner.otp_key, &[phone, code])
    }
}

/// Strips spaces and dashes; accepts an optional leading `+` and 5 to 20 digits.
pub fn normalize_phone(phone: &str) -> Result<String, AuthError> {
    let cleaned: String = phone.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
    if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(cleaned)
    } else {
        Err(AuthError::InvalidPhone)
    }
}

/// A fresh server secret: 32 random bytes, base64.
pub fn random_secret() -> String {
    secrets::random_token(32)
}

fn ceil_secs(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised() {
        assert_eq!(normalize_phone(" 138-0000 1111 ").ok().as_deref(), Some("13800001111"));
        assert_eq!(
            normalize_phone("+8613800001111").ok().as_deref(),
            Some("+8613800001111")
        );
        assert!(normalize_phone("12ab5678").is_err());
        assert!(normalize_phone("123").is_err());
    }
}
