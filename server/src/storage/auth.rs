//! Sessions, refresh tokens, revoked access tokens and one-time codes.
//!
//! A session is one sign-in (a refresh-token family). Every access token
//! names its session, so revoking a session, or all of a user's sessions,
//! invalidates its access tokens too. Tokens and codes are stored hashed;
//! hashing is the caller's job (see `auth`).

use sync_core::{Timestamp, UserId};

use super::{StorageError, on_pool, on_tx, placeholders, rows_per_statement};

/// Whether an access token's session is still usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Active,
    Revoked,
    Unknown,
}

/// Result of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was valid and is now replaced by the new one.
    Rotated { user: UserId, sid: String },
    /// The token had already been rotated: someone replayed it. Its whole
    /// session has been revoked.
    Reused { user: UserId, sid: String },
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

/// Result of checking a one-time code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpCheck {
    Valid,
    /// Wrong code; `attempts_left` more tries on this code.
    Wrong {
        attempts_left: i64,
    },
    /// Too many wrong tries: the code is burnt.
    TooManyAttempts,
    /// No unexpired, unused code for this phone.
    NoActiveCode,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    sid: String,
    user_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    replaced_by: Option<String>,
    revoked_at: Option<i64>,
}

impl super::Auth<'_> {
    pub async fn create_session(
        &self,
        sid: &str,
        user: &UserId,
        origin: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (sid, user_id, origin, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(sid)
            .bind(user.as_str())
            .bind(origin)
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.config().bump_revocations().await
    }

    /// A session with its first refresh token, atomically.
    pub async fn create_session_with_refresh(
        &self,
        sid: &str,
        user: &UserId,
        origin: &str,
        refresh_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO sessions (sid, user_id, origin, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(sid)
            .bind(user.as_str())
            .bind(origin)
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, sid, user_id, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(refresh_hash)
            .bind(sid)
            .bind(user.as_str())
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Whether the session `sid` is still active, and the access token `jti`
    /// not individually revoked.
    pub async fn token_state(&self, sid: &str, jti: &str, now: Timestamp) -> Result<SessionState, StorageError> {
        let session: Option<(Option<i64>, i64, bool)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.revoked_at, s.expires_at, EXISTS (SELECT 1 FROM revocations r WHERE r.jti = $2) \
                 FROM sessions s WHERE s.sid = $1",
            )
            .bind(sid)
            .bind(jti)
            .fetch_optional(pool)
            .await
        })?;
        Ok(match session {
            None => SessionState::Unknown,
            Some((_, _, true)) | Some((Some(_), _, false)) => SessionState::Revoked,
            Some((None, expires, false)) if expires <= now.millis() => SessionState::Revoked,
            Some((None, _, false)) => SessionState::Active,
        })
    }

    /// Of `sids`, those whose session is revoked, expired or gone, and of
    /// `jtis`, the access tokens revoked: [`Auth::token_state`](super::Auth::token_state) for many
    /// tokens at once, a few statements instead of one per token.
    pub async fn ended_tokens(
        &self,
        sids: &[String],
        jtis: &[String],
        now: Timestamp,
    ) -> Result<(Vec<String>, Vec<String>), StorageError> {
        let mut alive = std::collections::HashSet::new();
        for chunk in sids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT sid FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 AND sid IN ({})",
                placeholders(2, chunk.len())
            );
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut q = sqlx::query_scalar(&sql).bind(now.millis());
                for sid in chunk {
                    q = q.bind(sid);
                }
                q.fetch_all(pool).await
            })?;
            alive.extend(rows);
        }
        let ended_sessions = sids.iter().filter(|s| !alive.contains(*s)).cloned().collect();
        let revoked = self.strings_in("SELECT jti FROM revocations WHERE jti", jtis).await?;
        Ok((ended_sessions, revoked))
    }

    /// Revokes one access token until it would have expired anyway.
    pub async fn revoke_jti(
        &self,
        jti: &str,
        user: &UserId,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO revocations (jti, user_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(user.as_str())
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.config().bump_revocations().await
    }

    /// Revokes a session; returns false if it was unknown or already revoked.
    pub async fn revoke_session(&self, sid: &str, now: Timestamp) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL")
                .bind(sid)
                .bind(now.millis())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            self.config().bump_revocations().await?;
        }
        Ok(done > 0)
    }

    /// Revokes every session of `user`; returns how many were active.
    pub async fn revoke_user_sessions(&self, user: &UserId, now: Timestamp) -> Result<u64, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user.as_str())
                .bind(now.millis())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            self.config().bump_revocations().await?;
        }
        Ok(done)
    }

    /// Exchanges the refresh token hashed as `old_hash` for `new_hash`, in
    /// one transaction, detecting replay of an already rotated token.
    ///
    /// On a lossy link a client may send its refresh, lose the answer and
    /// retry with the same token. Within `reuse_grace_ms` of the first use,
    /// and while the token it was exchanged for is still unused, a retry is
    /// served: that unseen successor is retired and a new one issued, so the
    /// session still has exactly one live refresh token. Any other reuse
    /// revokes the session.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: Timestamp,
        new_expires_at: Timestamp,
        reuse_grace_ms: i64,
    ) -> Result<RefreshRotation, StorageError> {
        let mut tx = self.begin().await?;
        let row: Option<RefreshRow> = on_tx!(tx, |conn| {
            sqlx::query_as(
                "SELECT r.sid, r.user_id, r.expires_at, r.used_at, r.replaced_by, s.revoked_at \
                 FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid WHERE r.token_hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(&mut *conn)
            .await
        })?;
        let Some(RefreshRow {
            sid,
            user_id: user,
            expires_at,
            used_at,
            replaced_by,
            revoked_at,
        }) = row
        else {
            return Ok(RefreshRotation::Invalid);
        };
        let user = UserId::new(user).map_err(StorageError::corrupt)?;
        if revoked_at.is_some() || expires_at <= now.millis() {
            return Ok(RefreshRotation::Invalid);
        }
        if let Some(used_at) = used_at {
            let retry = match &replaced_by {
                Some(successor) if now.millis() - used_at <= reuse_grace_ms => {
                    // Retire the successor if nobody has used it yet.
                    let retired = on_tx!(tx, |conn| {
                        sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
                            .bind(successor)
                            .bind(now.millis())
                            .execute(&mut *conn)
                            .await
                            .map(|r| r.rows_affected())
                    })?;
                    retired == 1
                }
                _ => false,
            };
            if !retry {
                on_tx!(tx, |conn| {
                    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE sid = $1")
                        .bind(&sid)
                        .bind(now.millis())
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                tx.commit().await?;
                self.config().bump_revocations().await?;
                return Ok(RefreshRotation::Reused { user, sid });
            }
        }
        // First use keeps its time: the grace period runs from it.
        let used_at = used_at.unwrap_or(now.millis());
        on_tx!(tx, |conn| {
            sqlx::query("UPDATE refresh_tokens SET used_at = $2, replaced_by = $3 WHERE token_hash = $1")
                .bind(old_hash)
                .bind(used_at)
                .bind(new_hash)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, sid, user_id, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new_hash)
            .bind(&sid)
            .bind(user.as_str())
            .bind(now.millis())
            .bind(new_expires_at.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())?;
            sqlx::query("UPDATE sessions SET expires_at = $2 WHERE sid = $1")
                .bind(&sid)
                .bind(new_expires_at.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(RefreshRotation::Rotated { user, sid })
    }

    /// How many codes were sent to `phone` since `since`, and when the last one was.
    pub async fn otp_requests_since(
        &self,
        phone: &str,
        since: Timestamp,
    ) -> Result<(i64, Option<Timestamp>), StorageError> {
        let (count, last): (i64, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*), MAX(created_at) FROM otp_codes WHERE phone = $1 AND created_at > $2")
                .bind(phone)
                .bind(since.millis())
                .fetch_one(pool)
                .await
        })?;
        Ok((count, last.map(Timestamp::from_millis)))
    }

    /// Stores a new code for `phone`, retiring any earlier unused one.
    pub async fn insert_otp(
        &self,
        phone: &str,
        purpose: &str,
        code_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE otp_codes SET consumed_at = $3 WHERE phone = $1 AND purpose = $2 AND consumed_at IS NULL",
            )
            .bind(phone)
            .bind(purpose)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())?;
            sqlx::query(
                "INSERT INTO otp_codes (phone, purpose, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(phone)
            .bind(purpose)
            .bind(code_hash)
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Checks `code_hash` against the active code for `phone`, counting the
    /// attempt; a valid code is consumed.
    pub async fn check_otp(
        &self,
        phone: &str,
        purpose: &str,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> Result<OtpCheck, StorageError> {
        let mut tx = self.begin().await?;
        let row: Option<(i64, String, i64)> = on_tx!(tx, |conn| {
            sqlx::query_as(
                "SELECT id, code_hash, attempts FROM otp_codes \
                 WHERE phone = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(phone)
            .bind(purpose)
            .bind(now.millis())
            .fetch_optional(&mut *conn)
            .await
        })?;
        let Some((id, stored_hash, attempts)) = row else {
            return Ok(OtpCheck::NoActiveCode);
        };
        let attempts = attempts + 1;
        let valid = constant_time_eq(stored_hash.as_bytes(), code_hash.as_bytes());
        let outcome = if valid {
            OtpCheck::Valid
        } else if attempts >= max_attempts {
            OtpCheck::TooManyAttempts
        } else {
            OtpCheck::Wrong {
                attempts_left: max_attempts - attempts,
            }
        };
        let consumed = match outcome {
            OtpCheck::Wrong { .. } => None,
            _ => Some(now.millis()),
        };
        on_tx!(tx, |conn| {
            sqlx::query("UPDATE otp_codes SET attempts = $2, consumed_at = $3 WHERE id = $1")
                .bind(id)
                .bind(attempts)
                .bind(consumed)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(outcome)
    }
}

impl super::Auth<'_> {
    /// Failed password sign-ins for `login_name` since `since`, and the latest.
    pub async fn login_failures_since(
        &self,
        login_name: &str,
        since: Timestamp,
    ) -> Result<(i64, Option<Timestamp>), StorageError> {
        let (count, last): (i64, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), MAX(failed_at) FROM login_failures WHERE login_name = $1 AND failed_at > $2",
            )
            .bind(login_name)
            .bind(since.millis())
            .fetch_one(pool)
            .await
        })?;
        Ok((count, last.map(Timestamp::from_millis)))
    }

    pub async fn record_login_failure(&self, login_name: &str, now: Timestamp) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("INSERT INTO login_failures (login_name, failed_at) VALUES ($1, $2)")
                .bind(login_name)
                .bind(now.millis())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Forgets the failures of a login name after a successful sign-in.
    pub async fn clear_login_failures(&self, login_name: &str) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM login_failures WHERE login_name = $1")
                .bind(login_name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Deletes what can no longer matter: expired sessions (with their
    /// refresh tokens), revocations of expired access tokens, and one-time
    /// codes and sign-in failures older than `codes_before`. Returns the
    /// number of rows.
    pub async fn purge_expired(&self, now: Timestamp, codes_before: Timestamp) -> Result<u64, StorageError> {
        let mut tx = self.begin().await?;
        let n = on_tx!(tx, |conn| {
            let mut n = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())?;
            for sql in [
                "DELETE FROM sessions WHERE expires_at <= $1",
                "DELETE FROM revocations WHERE expires_at <= $1",
            ] {
                n += sqlx::query(sql)
                    .bind(now.millis())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())?;
            }
            n += sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
                .bind(codes_before.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())?;
            n += sqlx::query("DELETE FROM otp_codes WHERE created_at < $1")
                .bind(codes_before.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())?;
            Ok::<_, sqlx::Error>(n)
        })?;
        tx.commit().await?;
        Ok(n)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
