//! The server's access-token signing keys: public keys in the clear, private
//! keys sealed by the auth module before they get here.

use sync_core::Timestamp;

use super::{Auth, StorageError, on_pool, on_tx};

/// One stored signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    /// base64url of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// The sealed PKCS#8 private key (see `auth::keys`).
    pub sealed_private: String,
    pub created_at: Timestamp,
    /// When it stopped signing; `None` while it signs.
    pub retired_at: Option<Timestamp>,
    /// When it stopped verifying anything.
    pub withdrawn_at: Option<Timestamp>,
}

type Tuple = (String, String, String, i64, Option<i64>, Option<i64>);

fn row((kid, public_key, sealed_private, created_at, retired_at, withdrawn_at): Tuple) -> SigningKeyRow {
    SigningKeyRow {
        kid,
        public_key,
        sealed_private,
        created_at: Timestamp::from_millis(created_at),
        retired_at: retired_at.map(Timestamp::from_millis),
        withdrawn_at: withdrawn_at.map(Timestamp::from_millis),
    }
}

impl Auth<'_> {
    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StorageError> {
        let rows: Vec<Tuple> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kid, public_key, sealed_private, created_at, retired_at, withdrawn_at \
                 FROM signing_keys ORDER BY created_at, kid",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Stores `key` as the signing key: every key that signed until now is
    /// retired at `now`, and with `withdraw_previous` withdrawn too (tokens
    /// they signed are refused from then on). One transaction.
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRow,
        now: Timestamp,
        withdraw_previous: bool,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        if withdraw_previous {
            on_tx!(tx, |conn| {
                sqlx::query("UPDATE signing_keys SET withdrawn_at = $1 WHERE withdrawn_at IS NULL")
                    .bind(now.millis())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO signing_keys (kid, public_key, sealed_private, created_at, retired_at, withdrawn_at) \
                 VALUES ($1, $2, $3, $4, NULL, NULL)",
            )
            .bind(&key.kid)
            .bind(&key.public_key)
            .bind(&key.sealed_private)
            .bind(key.created_at.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// Whether the access token `jti` was revoked here (for tokens another
    /// tier issued, whose session this server does not hold).
    pub async fn jti_revoked(&self, jti: &str) -> Result<bool, StorageError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM revocations WHERE jti = $1")
                .bind(jti)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }
}
