//! Notifications and per-user inboxes: storing a fan-out's notifications
//! and inbox rows, reading an inbox after a cursor, acknowledging it, and
//! the feed every node's dispatcher follows.
//!
//! Inbox rows are appended under the change-log lock (see [`StorageTx::lock_change_log`]), like
//! changes, so inbox seqs become visible in allocation order: a reader that has seen seq `n`
//! never later finds a row below `n`. That makes the seq a cursor for a phone (everything after
//! it, in order) and for a node's dispatcher (one feed of every inbox row).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sync_core::{Timestamp, UserId};

use super::{Backend, StorageError, StorageTx, on_pool, on_tx, placeholders, rows_per_statement, value_rows};

/// The prefix of the PostgreSQL channel a transaction that appended inbox rows
/// notifies at commit; the schema name follows it.
pub const INBOX_CHANNEL: &str = "lianxin_inbox_";

/// A notification as stored: sync-core's `Notification` with the storage id of its document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationRow {
    pub key: String,
    /// The storage id of the document it is about (the cursor-feed id, bs58).
    pub doc_id: String,
    /// The document's own id as written in it (`automerge:…` for petitions).
    pub doc: String,
    pub kind: String,
    /// `user:…`, `unit:…`, `household:…`, or `all` for the members an @all reached.
    pub recipient: String,
    pub entry: Option<String>,
    pub urgent: bool,
    pub at_ms: i64,
    pub text: String,
}

/// One inbox item: a notification as one person receives it. It serializes
/// as one flat object: `cursor`, `user`, the notification's fields, `created_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxItem {
    /// The item's place in its user's inbox: pass it back as `after` or to ack.
    pub cursor: i64,
    pub user: String,
    /// Shared by every item of one fan-out: an @all to ten thousand is one copy.
    pub notification: Arc<NotificationRow>,
    pub created_at: i64,
}

impl Serialize for InboxItem {
    /// Written field by field: `#[serde(flatten)]` would buffer the
    /// notification into an intermediate value for every one of an @all's
    /// ten thousand items.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let n = &*self.notification;
        let mut s = serializer.serialize_struct("InboxItem", 12)?;
        s.serialize_field("cursor", &self.cursor)?;
        s.serialize_field("user", &self.user)?;
        s.serialize_field("key", &n.key)?;
        s.serialize_field("doc_id", &n.doc_id)?;
        s.serialize_field("doc", &n.doc)?;
        s.serialize_field("kind", &n.kind)?;
        s.serialize_field("recipient", &n.recipient)?;
        s.serialize_field("entry", &n.entry)?;
        s.serialize_field("urgent", &n.urgent)?;
        s.serialize_field("at_ms", &n.at_ms)?;
        s.serialize_field("text", &n.text)?;
        s.serialize_field("created_at", &self.created_at)?;
        s.end()
    }
}

#[derive(sqlx::FromRow)]
struct InboxRow {
    seq: i64,
    user_id: String,
    key: String,
    doc_id: String,
    doc: String,
    kind: String,
    recipient: String,
    entry: Option<String>,
    urgent: i64,
    at_ms: i64,
    text: String,
    created_at: i64,
}

impl From<InboxRow> for InboxItem {
    fn from(r: InboxRow) -> Self {
        InboxItem {
            cursor: r.seq,
            user: r.user_id,
            notification: Arc::new(NotificationRow {
                key: r.key,
                doc_id: r.doc_id,
                doc: r.doc,
                kind: r.kind,
                recipient: r.recipient,
                entry: r.entry,
                urgent: r.urgent != 0,
                at_ms: r.at_ms,
                text: r.text,
            }),
            created_at: r.created_at,
        }
    }
}

const INBOX_SELECT: &str = "SELECT i.seq, i.user_id, n.key, n.doc_id, n.doc, n.kind, n.recipient, n.entry, n.urgent, \
     n.at_ms, n.text, i.created_at FROM inbox i JOIN notifications n ON n.id = i.notification_id";

/// Why an acknowledgement was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("cursor {cursor} is beyond the newest item of this inbox ({head}); acknowledge only cursors you received")]
    BeyondHead { cursor: i64, head: i64 },
    #[error("cursor {0} is negative")]
    Negative(i64),
}

pub(super) type NotificationTuple = (String, String, String, String, String, Option<String>, i64, i64, String);

pub(super) fn notification_from_tuple(t: NotificationTuple) -> NotificationRow {
    let (key, doc_id, doc, kind, recipient, entry, urgent, at_ms, text) = t;
    NotificationRow {
        key,
        doc_id,
        doc,
        kind,
        recipient,
        entry,
        urgent: urgent != 0,
        at_ms,
        text,
    }
}

impl StorageTx {
    /// Stores notifications by key; returns the keys that were new. A key
    /// already stored is skipped, so deriving again delivers nothing twice.
    pub async fn insert_notifications(
        &mut self,
        rows: &[NotificationRow],
        now: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let mut new = Vec::new();
        for chunk in rows.chunks(rows_per_statement(10)) {
            let sql = format!(
                "INSERT INTO notifications (key, doc_id, doc, kind, recipient, entry, urgent, at_ms, text, created_at) \
                 VALUES {} ON CONFLICT (key) DO NOTHING RETURNING key",
                value_rows(chunk.len(), 10)
            );
            let keys: Vec<String> = on_tx!(self, |conn| {
                let mut q = sqlx::query_scalar(&sql);
                for r in chunk {
                    q = q
                        .bind(&r.key)
                        .bind(&r.doc_id)
                        .bind(&r.doc)
                        .bind(&r.kind)
                        .bind(&r.recipient)
                        .bind(r.entry.as_deref())
                        .bind(i64::from(r.urgent))
                        .bind(r.at_ms)
                        .bind(&r.text)
                        .bind(now.millis());
                }
                q.fetch_all(&mut *conn).await
            })?;
            new.extend(keys);
        }
        Ok(new)
    }

    /// Puts notifications into inboxes: one row per `(user, key)` pair;
    /// returns the new `(seq, user, key)` rows in seq order. A pair already
    /// stored is skipped. Seqs follow the order of `pairs`.
    ///
    /// A notification with many recipients (consecutive pairs of one key, as
    /// fan-out lists them) goes in as one statement over its list of users:
    /// an @all in a room of ten thousand is one statement, not a hundred of
    /// bound rows. Notifications with few recipients (a notice to each of ten
    /// thousand households) are batched as bound rows instead.
    pub async fn insert_inbox(
        &mut self,
        pairs: &[(String, String)],
        now: Timestamp,
    ) -> Result<Vec<(i64, String, String)>, StorageError> {
        /// Recipients from which one notification is a statement of its own.
        const LIST_FROM: usize = 64;
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        self.lock_change_log().await?;
        let ids = self.notification_ids(pairs).await?;
        let id_of = |key: &str| {
            ids.get(key)
                .copied()
                .ok_or_else(|| StorageError::corrupt(format!("notification {key} is not stored")))
        };
        let mut out = Vec::new();
        let mut small: Vec<(&str, i64, &str)> = Vec::new();
        for run in pairs.chunk_by(|a, b| a.1 == b.1) {
            let (key, id) = (run[0].1.as_str(), id_of(&run[0].1)?);
            if run.len() < LIST_FROM {
                small.extend(run.iter().map(|(user, _)| (user.as_str(), id, key)));
                continue;
            }
            self.insert_inbox_rows(&small, now, &mut out).await?;
            small.clear();
            self.insert_inbox_list(run, id, now, &mut out).await?;
        }
        self.insert_inbox_rows(&small, now, &mut out).await?;
        out.sort();
        Ok(out)
    }

    /// The numbers of the notifications `pairs` name, by key (inbox rows name
    /// their notification by number).
    async fn notification_ids(&mut self, pairs: &[(String, String)]) -> Result<HashMap<String, i64>, StorageError> {
        let mut keys: Vec<&str> = pairs.iter().map(|(_, key)| key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT key, id FROM notifications WHERE key IN ({})",
                super::placeholders(1, chunk.len())
            );
            let rows: Vec<(String, i64)> = on_tx!(self, |conn| {
                let mut q = sqlx::query_as(&sql);
                for key in chunk {
                    q = q.bind(*key);
                }
                q.fetch_all(&mut *conn).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Inbox rows as bound rows, many to a statement: `(user, notification
    /// id, key)`.
    async fn insert_inbox_rows(
        &mut self,
        rows: &[(&str, i64, &str)],
        now: Timestamp,
        out: &mut Vec<(i64, String, String)>,
    ) -> Result<(), StorageError> {
        for chunk in rows.chunks(rows_per_statement(3)) {
            let sql = format!(
                "INSERT INTO inbox (user_id, notification_id, created_at) VALUES {} \
                 ON CONFLICT (notification_id, user_id) DO NOTHING RETURNING seq, user_id, notification_id",
                value_rows(chunk.len(), 3)
            );
            let added: Vec<(i64, String, i64)> = on_tx!(self, |conn| {
                let mut q = sqlx::query_as(&sql);
                for (user, id, _) in chunk {
                    q = q.bind(*user).bind(*id).bind(now.millis());
                }
                q.fetch_all(&mut *conn).await
            })?;
            let keys: HashMap<i64, &str> = chunk.iter().map(|(_, id, key)| (*id, *key)).collect();
            for (seq, user, id) in added {
                out.extend(keys.get(&id).map(|key| (seq, user, (*key).to_owned())));
            }
        }
        Ok(())
    }

    /// One notification's inbox rows, one statement over the list of its
    /// users. On SQLite the seqs follow from the table's counter when every
    /// user got a row; otherwise the new rows are read back as one JSON value
    /// rather than returned row by row (for 10,000 rows, returning them took
    /// about 45 ms, the insert and the read-back together about 15 ms).
    async fn insert_inbox_list(
        &mut self,
        run: &[(String, String)],
        id: i64,
        now: Timestamp,
        out: &mut Vec<(i64, String, String)>,
    ) -> Result<(), StorageError> {
        let key = &run[0].1;
        let users: Vec<&str> = run.iter().map(|(u, _)| u.as_str()).collect();
        match &mut self.inner {
            super::TxInner::Sqlite(t) => {
                // Only this transaction appends inbox rows (it holds the write
                // lock). AUTOINCREMENT numbers them one after another from the
                // table's counter, in the order the SELECT lists them.
                let counter = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0)";
                let before: i64 = sqlx::query_scalar(counter).fetch_one(&mut **t).await?;
                let inserted = sqlx::query(
                    "INSERT INTO inbox (user_id, notification_id, created_at) \
                     SELECT j.value, $2, $3 FROM json_each($1) AS j WHERE true ORDER BY j.key \
                     ON CONFLICT (notification_id, user_id) DO NOTHING",
                )
                .bind(serde_json::to_string(&users).map_err(StorageError::corrupt)?)
                .bind(id)
                .bind(now.millis())
                .execute(&mut **t)
                .await?
                .rows_affected();
                let after: i64 = sqlx::query_scalar(counter).fetch_one(&mut **t).await?;
                let added: Vec<(i64, String)> =
                    if inserted == users.len() as u64 && after - before == users.len() as i64 {
                        // Every user got a row, numbered before+1, before+2, … in list
                        // order: nothing to read back (for 10,000 rows the read-back
                        // was about 3 ms of a notice's store).
                        (before + 1..).zip(users.iter().map(|u| (*u).to_owned())).collect()
                    } else {
                        // Some already had the notification: read back which rows are new.
                        let added: String = sqlx::query_scalar(
                            "SELECT json_group_array(json_array(seq, user_id)) FROM \
                             (SELECT seq, user_id FROM inbox WHERE seq > $1 ORDER BY seq)",
                        )
                        .bind(before)
                        .fetch_one(&mut **t)
                        .await?;
                        serde_json::from_str(&added).map_err(StorageError::corrupt)?
                    };
                out.extend(added.into_iter().map(|(seq, user)| (seq, user, key.clone())));
            }
            super::TxInner::Postgres(t) => {
                let added: Vec<(i64, String)> = sqlx::query_as(
                    "INSERT INTO inbox (user_id, notification_id, created_at) \
                     SELECT u, $2, $3 FROM unnest($1::text[]) WITH ORDINALITY AS t(u, i) ORDER BY i \
                     ON CONFLICT (notification_id, user_id) DO NOTHING RETURNING seq, user_id",
                )
                .bind(&users)
                .bind(id)
                .bind(now.millis())
                .fetch_all(&mut **t)
                .await?;
                out.extend(added.into_iter().map(|(seq, user)| (seq, user, key.clone())));
            }
        }
        Ok(())
    }

    /// Wakes every node's dispatcher once this transaction commits
    /// (PostgreSQL `NOTIFY`, delivered in commit order); nothing on SQLite,
    /// where only one node writes and it wakes its own dispatcher.
    pub async fn signal_inbox(&mut self) -> Result<(), StorageError> {
        if let super::TxInner::Postgres(t) = &mut self.inner {
            sqlx::query("SELECT pg_notify($1 || current_schema(), '')")
                .bind(INBOX_CHANNEL)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected())?;
        }
        Ok(())
    }
}

impl super::Inbox<'_> {
    /// Up to `limit` items of `user`'s inbox after `after`, in cursor order.
    /// Items about a document the tier above took back whole are not shown:
    /// the document is in no list any more.
    pub async fn after(&self, user: &UserId, after: i64, limit: u32) -> Result<Vec<InboxItem>, StorageError> {
        let sql = format!(
            "{INBOX_SELECT} WHERE i.user_id = $1 AND i.seq > $2 \
             AND NOT EXISTS (SELECT 1 FROM taken_back_docs t WHERE t.doc_id = n.doc_id) ORDER BY i.seq LIMIT $3"
        );
        let rows: Vec<InboxRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(user.as_str())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(InboxItem::from).collect())
    }

    /// Up to `limit` inbox items of every user after `after`: the feed a node's dispatcher reads.
    pub async fn feed(&self, after: i64, limit: u32) -> Result<Vec<InboxItem>, StorageError> {
        let sql = format!("{INBOX_SELECT} WHERE i.seq > $1 ORDER BY i.seq LIMIT $2");
        let rows: Vec<InboxRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(InboxItem::from).collect())
    }

    /// The highest inbox seq of `user`, or of everyone; 0 when empty.
    pub async fn head(&self, user: Option<&UserId>) -> Result<i64, StorageError> {
        let seq: Option<i64> = on_pool!(self, |pool| match user {
            Some(u) => {
                sqlx::query_scalar("SELECT MAX(seq) FROM inbox WHERE user_id = $1")
                    .bind(u.as_str())
                    .fetch_one(pool)
                    .await
            }
            None => sqlx::query_scalar("SELECT MAX(seq) FROM inbox").fetch_one(pool).await,
        })?;
        Ok(seq.unwrap_or(0))
    }

    /// How far `user` has acknowledged their inbox (0 when never).
    pub async fn acked(&self, user: &UserId) -> Result<i64, StorageError> {
        let acked: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT acked FROM inbox_acks WHERE user_id = $1")
                .bind(user.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(acked.unwrap_or(0))
    }

    /// Acknowledges `user`'s inbox up to `cursor`; an older cursor than the
    /// stored one changes nothing. Returns the acknowledged cursor.
    pub async fn ack(&self, user: &UserId, cursor: i64, now: Timestamp) -> Result<Result<i64, AckError>, StorageError> {
        if cursor < 0 {
            return Ok(Err(AckError::Negative(cursor)));
        }
        let head = self.head(Some(user)).await?;
        if cursor > head {
            return Ok(Err(AckError::BeyondHead { cursor, head }));
        }
        let mut tx = self.begin().await?;
        let acked: i64 = on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO inbox_acks (user_id, acked, acked_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE \
                 SET acked = excluded.acked, acked_at = excluded.acked_at WHERE inbox_acks.acked < excluded.acked",
            )
            .bind(user.as_str())
            .bind(cursor)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())?;
            sqlx::query_scalar("SELECT acked FROM inbox_acks WHERE user_id = $1")
                .bind(user.as_str())
                .fetch_one(&mut *conn)
                .await
        })?;
        tx.commit().await?;
        Ok(Ok(acked))
    }

    /// Marks inbox items as delivered over a live connection (so the outbox
    /// does not push them as well).
    pub async fn mark_delivered(&self, seqs: &[i64], now: Timestamp) -> Result<(), StorageError> {
        for chunk in seqs.chunks(rows_per_statement(1)) {
            let list = placeholders(2, chunk.len());
            let sql = format!(
                "UPDATE inbox SET delivered_at = $1 WHERE delivered_at IS NULL AND seq IN ({})",
                list
            );
            on_pool!(self, |pool| {
                let mut q = sqlx::query(&sql).bind(now.millis());
                for s in chunk {
                    q = q.bind(*s);
                }
                q.execute(pool).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// When a live connection delivered the inbox item at `seq`, if one did.
    pub async fn delivered_at(&self, seq: i64) -> Result<Option<i64>, StorageError> {
        let at: Option<Option<i64>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT delivered_at FROM inbox WHERE seq = $1")
                .bind(seq)
                .fetch_optional(pool)
                .await
        })?;
        Ok(at.flatten())
    }

    /// Which of `keys` are stored already.
    pub async fn known_notification_keys(&self, keys: &[String]) -> Result<Vec<String>, StorageError> {
        self.strings_in("SELECT key FROM notifications WHERE key", keys).await
    }

    /// The stored notification with `key`.
    pub async fn notification(&self, key: &str) -> Result<Option<NotificationRow>, StorageError> {
        let row: Option<NotificationTuple> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT key, doc_id, doc, kind, recipient, entry, urgent, at_ms, text FROM notifications WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(notification_from_tuple))
    }

    /// Whether inbox rows wake other nodes through `NOTIFY` (PostgreSQL).
    pub fn shares_inbox_feed(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// A listener on the inbox channel, on its own connection; `None` on SQLite.
    pub async fn listener(&self) -> Result<Option<InboxListener>, StorageError> {
        match (&self.db, self.schema.as_deref()) {
            (super::Db::Postgres(pool), Some(schema)) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(&super::events::channel(INBOX_CHANNEL, schema)).await?;
                Ok(Some(InboxListener(listener)))
            }
            _ => Ok(None),
        }
    }
}

/// Wakes when any node commits inbox rows (PostgreSQL `LISTEN`).
pub struct InboxListener(sqlx::postgres::PgListener);

impl std::fmt::Debug for InboxListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboxListener")
    }
}

impl InboxListener {
    /// Waits for the next notification. After a lost connection sqlx
    /// reconnects and listens again; notifications sent meanwhile are lost,
    /// so callers also poll the feed now and then.
    pub async fn recv(&mut self) -> Result<(), StorageError> {
        self.0.recv().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_item_json_is_the_notification_with_cursor_user_and_time() {
        let row = NotificationRow {
            key: "k1".into(),
            doc_id: "d1".into(),
            doc: "automerge:d1".into(),
            kind: "mention".into(),
            recipient: "all".into(),
            entry: Some("e\"1".into()),
            urgent: true,
            at_ms: 42,
            text: "诈骗预警".into(),
        };
        let item = InboxItem {
            cursor: 7,
            user: "u1".into(),
            notification: Arc::new(row.clone()),
            created_at: 43,
        };
        let mut expected = serde_json::to_value(&row).expect("row json");
        let fields = expected.as_object_mut().expect("row is an object");
        fields.insert("cursor".into(), 7.into());
        fields.insert("user".into(), "u1".into());
        fields.insert("created_at".into(), 43.into());
        let written = serde_json::to_string(&item).expect("item json");
        let parsed: serde_json::Value = serde_json::from_str(&written).expect("item json parses");
        assert_eq!(parsed, expected);
    }
}
