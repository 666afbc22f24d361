//! Clock actions: which were carried out (each exactly once, on any node),
//! and which petitions still have clocks running.

use sync_core::Timestamp;

use super::{StorageError, StorageTx, on_pool, on_tx};

impl StorageTx {
    /// Records that a clock action was carried out. Fails if it already was,
    /// which rolls back the transaction that would have done it again.
    pub async fn mark_fired(&mut self, key: &str, now: Timestamp) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("INSERT INTO fired_keys (key, fired_at) VALUES ($1, $2)")
                .bind(key)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Conflict(format!("clock action {key} was already carried out"))
            }
            _ => StorageError::Database(e),
        })?;
        Ok(())
    }
}

impl super::Clocks<'_> {
    /// Open petitions with a running clock, as `(doc_id, summary JSON)`, for the clock sweep.
    pub async fn petitions_with_running_clocks(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT doc_id, summary FROM petitions WHERE next_due IS NOT NULL \
                 AND status NOT IN ('closed', 'withdrawn', 'merged') ORDER BY doc_id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Whether a clock action was carried out.
    pub async fn is_fired(&self, key: &str) -> Result<bool, StorageError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM fired_keys WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// Deletes clients' idempotency keys (`client:…`, and what each
    /// recorded beside it) stored before `before`; clock actions' marks
    /// stay. Returns how many.
    pub async fn purge_client_keys(&self, before: Timestamp) -> Result<u64, StorageError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM fired_keys WHERE substr(key, 1, 7) = 'client:' AND fired_at < $1")
                .bind(before.millis())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// The first stored key that starts with `prefix`, without the prefix:
    /// what an idempotent write recorded beside its key (the entry it made).
    pub async fn fired_after_prefix(&self, prefix: &str) -> Result<Option<String>, StorageError> {
        let len = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        let key: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT key FROM fired_keys WHERE substr(key, 1, $1) = $2 AND key <> $2 ORDER BY key LIMIT 1",
            )
            .bind(len)
            .bind(prefix)
            .fetch_optional(pool)
            .await
        })?;
        Ok(key.map(|k| k[prefix.len()..].to_owned()))
    }
}
