//! The outbox: pushes and text messages queued for inbox items, claimed by
//! one node at a time, retried with backoff, and kept as dead letters.

use serde::Serialize;
use sync_core::Timestamp;

use super::{StorageError, StorageTx, on_pool, on_tx, placeholders, rows_per_statement, value_rows};

/// An outbox job claimed for delivery, with what the gateway needs.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxJob {
    pub id: i64,
    pub inbox_seq: i64,
    pub key: String,
    pub user_id: String,
    /// `push` or `sms`.
    pub channel: String,
    pub attempts: i64,
    pub kind: String,
    pub text: String,
    pub doc: String,
    pub urgent: i64,
    pub phone: Option<String>,
    /// Set when a live connection delivered the item.
    pub delivered_at: Option<i64>,
    /// How far the user has acknowledged their inbox.
    pub acked: Option<i64>,
    /// Whether the item's document was taken back whole by the tier above
    /// since: it is in no list, so nothing about it goes out.
    pub taken_back: bool,
}

/// An outbox row as the dead-letter view lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub inbox_seq: i64,
    pub key: String,
    pub user_id: String,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

const OUTBOX_COLUMNS: &str =
    "id, inbox_seq, key, user_id, channel, status, attempts, next_attempt_at, last_error, created_at, done_at";

impl StorageTx {
    /// Queues pushes or text messages for inbox items, `(inbox seq, key, user, channel)`
    /// each, unless one is queued already.
    pub async fn enqueue_outbox(
        &mut self,
        jobs: &[(i64, &str, &str, &str)],
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        for chunk in jobs.chunks(rows_per_statement(7)) {
            let sql = format!(
                "INSERT INTO outbox (inbox_seq, key, user_id, channel, status, next_attempt_at, created_at) \
                 VALUES {} ON CONFLICT (key, user_id, channel) DO NOTHING",
                value_rows(chunk.len(), 7)
            );
            on_tx!(self, |conn| {
                let mut q = sqlx::query(&sql);
                for (seq, key, user, channel) in chunk {
                    q = q
                        .bind(seq)
                        .bind(key)
                        .bind(user)
                        .bind(channel)
                        .bind("pending")
                        .bind(not_before.millis())
                        .bind(now.millis());
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

impl super::Outbox<'_> {
    /// Claims up to `limit` due outbox jobs for `lease_ms`: another worker
    /// (on this or another node) skips them until the lease runs out.
    pub async fn claim(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<OutboxJob>, StorageError> {
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = on_tx!(tx, |conn| {
            sqlx::query_scalar(
                "UPDATE outbox SET lease_until = $2 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' \
                 AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) ORDER BY id LIMIT $3) \
                 AND (lease_until IS NULL OR lease_until <= $1) RETURNING id",
            )
            .bind(now.millis())
            .bind(now.millis() + lease_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
        })?;
        tx.commit().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT o.id, o.inbox_seq, o.key, o.user_id, o.channel, o.attempts, n.kind, n.text, n.doc, n.urgent, \
             u.phone, i.delivered_at, a.acked, \
             EXISTS (SELECT 1 FROM taken_back_docs t WHERE t.doc_id = n.doc_id) AS taken_back \
             FROM outbox o JOIN notifications n ON n.key = o.key \
             JOIN inbox i ON i.seq = o.inbox_seq LEFT JOIN users u ON u.id = o.user_id \
             LEFT JOIN inbox_acks a ON a.user_id = o.user_id WHERE o.id IN ({}) ORDER BY o.id",
            placeholders(1, ids.len())
        );
        let jobs = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql);
            for id in &ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await
        })?;
        Ok(jobs)
    }

    /// Ends an outbox job: `sent`, `skipped` (delivered live or read already) or `dead`.
    pub async fn finish(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET status = $2, attempts = $3, last_error = COALESCE($4, last_error), done_at = $5, \
                 lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(attempts)
            .bind(error)
            .bind(now.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Schedules another attempt of an outbox job.
    pub async fn retry(&self, id: i64, attempts: i64, next: Timestamp, error: &str) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(attempts)
            .bind(next.millis())
            .bind(error)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Outbox rows with `status` (`pending`, `sent`, `skipped`, `dead`), oldest first.
    pub async fn rows(&self, status: &str, limit: u32) -> Result<Vec<OutboxRow>, StorageError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = $1 ORDER BY id LIMIT $2");
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }
}
