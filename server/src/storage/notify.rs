//! Notification fan-out rows: notifications, per-user inboxes and their cursors, duty rosters,
//! fired clock actions, households, notice deliveries and the outbox.
//!
//! Inbox rows are appended under the change-log lock (see [`StorageTx::lock_change_log`]), like
//! changes, so inbox seqs become visible in allocation order: a reader that has seen seq `n`
//! never later finds a row below `n`. That makes the seq a cursor for a phone (everything after
//! it, in order) and for a node's dispatcher (one feed of every inbox row).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sync_core::{Timestamp, UserId};

use super::{Backend, Storage, StorageError, StorageTx, on_pool, on_tx, placeholders, rows_per_statement};

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

pub use sync_core::projection::HouseholdRow;

/// One household's delivery record of a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NoticeDeliveryRow {
    pub household_id: String,
    pub name: Option<String>,
    pub village_unit: Option<String>,
    pub notified_at: i64,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub forwarded_at: Option<i64>,
}

/// A unit's stored roster and the next shift boundary the scheduler acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterRow {
    pub unit_id: String,
    pub roster: String,
    pub updated_by: String,
    pub updated_at: i64,
    pub next_handover: Option<i64>,
}

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

type NotificationTuple = (String, String, String, String, String, Option<String>, i64, i64, String);

fn notification_from_tuple(t: NotificationTuple) -> NotificationRow {
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

/// `$a, $b, …` for `n` rows of `width` columns, numbered from `$1`.
fn value_rows(n: usize, width: usize) -> String {
    (0..n)
        .map(|r| {
            let cols: Vec<String> = (0..width).map(|c| format!("${}", r * width + c + 1)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    /// People who handle a unit's work when no roster says who is on duty:
    /// its officers, leaders and department staff, enabled accounts only.
    pub async fn unit_staff(&mut self, unit: &str) -> Result<Vec<String>, StorageError> {
        // The people of `access::RoleSet::HANDLERS`, as memberships store them.
        let roles = sync_core::access::RoleSet::HANDLERS.people();
        let sql = format!(
            "SELECT DISTINCT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.unit_id = $1 AND m.role IN ({}) AND u.disabled_at IS NULL ORDER BY m.user_id",
            super::placeholders(2, roles.len())
        );
        let rows: Vec<String> = on_tx!(self, |conn| {
            let mut q = sqlx::query_scalar(&sql).bind(unit);
            for r in roles {
                q = q.bind(r.as_str());
            }
            q.fetch_all(&mut *conn).await
        })?;
        Ok(rows)
    }

    /// The people household mail goes to, for each of `households` that has
    /// anyone: its members' enabled accounts and the representative the
    /// directory names, sorted. Many households are read in a few statements.
    pub async fn household_users(&mut self, households: &[&str]) -> Result<HashMap<String, Vec<String>>, StorageError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in households.chunks(rows_per_statement(1)) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT household_id, id FROM users WHERE disabled_at IS NULL AND household_id IN ({list}) \
                 UNION SELECT household_id, representative FROM households \
                 WHERE representative IS NOT NULL AND household_id IN ({list})"
            );
            let rows: Vec<(String, String)> = on_tx!(self, |conn| {
                let mut q = sqlx::query_as(&sql);
                for h in chunk {
                    q = q.bind(*h);
                }
                q.fetch_all(&mut *conn).await
            })?;
            for (household, user) in rows {
                out.entry(household).or_default().push(user);
            }
        }
        for people in out.values_mut() {
            people.sort();
            people.dedup();
        }
        Ok(out)
    }

    /// A unit's roster JSON, if it has one.
    pub async fn roster_json(&mut self, unit: &str) -> Result<Option<String>, StorageError> {
        let row: Option<String> = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT roster FROM rosters WHERE unit_id = $1")
                .bind(unit)
                .fetch_optional(&mut *conn)
                .await
        })?;
        Ok(row)
    }

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

    /// Records that a notice went to `households`, one delivery record each
    /// (kept as it is when there is one already).
    pub async fn insert_notice_deliveries(
        &mut self,
        doc_id: &str,
        households: &[&str],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        for chunk in households.chunks(rows_per_statement(3)) {
            let sql = format!(
                "INSERT INTO notice_deliveries (doc_id, household_id, notified_at) VALUES {} \
                 ON CONFLICT (doc_id, household_id) DO NOTHING",
                value_rows(chunk.len(), 3)
            );
            on_tx!(self, |conn| {
                let mut q = sqlx::query(&sql);
                for h in chunk {
                    q = q.bind(doc_id).bind(*h).bind(now.millis());
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Copies a household's receipts from the notice document onto its delivery record.
    pub async fn update_notice_receipts(
        &mut self,
        doc_id: &str,
        household: &str,
        delivered: Option<i64>,
        read: Option<i64>,
        forwarded: Option<i64>,
    ) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE notice_deliveries SET delivered_at = $3, read_at = $4, forwarded_at = $5 \
                 WHERE doc_id = $1 AND household_id = $2",
            )
            .bind(doc_id)
            .bind(household)
            .bind(delivered)
            .bind(read)
            .bind(forwarded)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Writes the households of a village directory.
    pub async fn upsert_households(&mut self, doc_id: &str, rows: &[HouseholdRow]) -> Result<(), StorageError> {
        for h in rows {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO households (household_id, village_unit, name, representative, moved_out, doc_id) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (household_id) DO UPDATE SET \
                     village_unit = excluded.village_unit, name = excluded.name, \
                     representative = excluded.representative, moved_out = excluded.moved_out, doc_id = excluded.doc_id",
                )
                .bind(&h.household_id)
                .bind(&h.village_unit)
                .bind(&h.name)
                .bind(h.representative.as_deref())
                .bind(i64::from(h.moved_out))
                .bind(doc_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

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

impl Storage {
    /// Up to `limit` items of `user`'s inbox after `after`, in cursor order.
    pub async fn inbox_after(&self, user: &UserId, after: i64, limit: u32) -> Result<Vec<InboxItem>, StorageError> {
        let sql = format!("{INBOX_SELECT} WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3");
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
    pub async fn inbox_feed(&self, after: i64, limit: u32) -> Result<Vec<InboxItem>, StorageError> {
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
    pub async fn inbox_head(&self, user: Option<&UserId>) -> Result<i64, StorageError> {
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
    pub async fn inbox_acked(&self, user: &UserId) -> Result<i64, StorageError> {
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
    pub async fn inbox_ack(
        &self,
        user: &UserId,
        cursor: i64,
        now: Timestamp,
    ) -> Result<Result<i64, AckError>, StorageError> {
        if cursor < 0 {
            return Ok(Err(AckError::Negative(cursor)));
        }
        let head = self.inbox_head(Some(user)).await?;
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

    /// Stores a unit's roster; the scheduler hands over to the shift on duty at its next tick.
    pub async fn put_roster(&self, unit: &str, json: &str, by: &UserId, now: Timestamp) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO rosters (unit_id, roster, updated_by, updated_at, next_handover) \
                 VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (unit_id) DO UPDATE SET roster = excluded.roster, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at, next_handover = NULL",
            )
            .bind(unit)
            .bind(json)
            .bind(by.as_str())
            .bind(now.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every stored roster.
    pub async fn rosters(&self) -> Result<Vec<RosterRow>, StorageError> {
        let rows: Vec<(String, String, String, i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT unit_id, roster, updated_by, updated_at, next_handover FROM rosters ORDER BY unit_id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(unit_id, roster, updated_by, updated_at, next_handover)| RosterRow {
                unit_id,
                roster,
                updated_by,
                updated_at,
                next_handover,
            })
            .collect())
    }

    /// One unit's roster.
    pub async fn roster(&self, unit: &str) -> Result<Option<RosterRow>, StorageError> {
        Ok(self.rosters().await?.into_iter().find(|r| r.unit_id == unit))
    }

    /// Moves a unit's hand-over mark from `expected` to `next`; false when
    /// another node (or the roster's replacement) moved it first.
    pub async fn advance_handover(&self, unit: &str, expected: Option<i64>, next: i64) -> Result<bool, StorageError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE rosters SET next_handover = $3 WHERE unit_id = $1 \
                 AND ((next_handover IS NULL AND $2 IS NULL) OR next_handover = $2)",
            )
            .bind(unit)
            .bind(expected)
            .bind(next)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// The notifications to a unit about petitions the unit still leads and
    /// that are still open: what an incoming shift inherits.
    pub async fn open_unit_notifications(&self, unit: &str) -> Result<Vec<NotificationRow>, StorageError> {
        let rows: Vec<NotificationTuple> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT n.key, n.doc_id, n.doc, n.kind, n.recipient, n.entry, n.urgent, n.at_ms, n.text \
                 FROM notifications n JOIN petitions p ON p.doc_id = n.doc_id \
                 WHERE n.recipient = $1 AND p.lead_unit = $2 \
                 AND p.status NOT IN ('closed', 'withdrawn', 'merged') ORDER BY n.at_ms, n.key",
            )
            .bind(format!("unit:{unit}"))
            .bind(unit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(notification_from_tuple).collect())
    }

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

    /// Households in the villages `units` (directory households and residents' accounts).
    pub async fn households_in_units(&self, units: &[String]) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for chunk in units.chunks(rows_per_statement(2)) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT household_id FROM households WHERE moved_out = 0 AND village_unit IN ({list}) \
                 UNION SELECT u.household_id FROM users u JOIN memberships m ON m.user_id = u.id \
                 WHERE u.household_id IS NOT NULL AND m.unit_id IN ({list})"
            );
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut q = sqlx::query_scalar(&sql);
                for u in chunk {
                    q = q.bind(u);
                }
                q.fetch_all(pool).await
            })?;
            out.extend(rows);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Households of a room's members, and the household of a household line.
    pub async fn room_households(&self, room_doc_id: &str) -> Result<Vec<String>, StorageError> {
        let mut rows: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT u.household_id FROM doc_access a JOIN users u ON u.id = a.subject \
                 WHERE a.doc_id = $1 AND a.kind = 'user' AND u.household_id IS NOT NULL \
                 UNION SELECT household_id FROM rooms WHERE doc_id = $1 AND household_id IS NOT NULL",
            )
            .bind(room_doc_id)
            .fetch_all(pool)
            .await
        })?;
        rows.sort();
        rows.dedup();
        Ok(rows)
    }

    /// A notice's delivery records, with names from the directories.
    pub async fn notice_deliveries(&self, doc_id: &str) -> Result<Vec<NoticeDeliveryRow>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT d.household_id, h.name, h.village_unit, d.notified_at, d.delivered_at, d.read_at, d.forwarded_at \
                 FROM notice_deliveries d LEFT JOIN households h ON h.household_id = d.household_id \
                 WHERE d.doc_id = $1 ORDER BY d.household_id",
            )
            .bind(doc_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Claims up to `limit` due outbox jobs for `lease_ms`: another worker
    /// (on this or another node) skips them until the lease runs out.
    pub async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxJob>, StorageError> {
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
             u.phone, i.delivered_at, a.acked FROM outbox o JOIN notifications n ON n.key = o.key \
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
    pub async fn finish_outbox(
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
    pub async fn retry_outbox(&self, id: i64, attempts: i64, next: Timestamp, error: &str) -> Result<(), StorageError> {
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
    pub async fn outbox_rows(&self, status: &str, limit: u32) -> Result<Vec<OutboxRow>, StorageError> {
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

    /// Whether inbox rows wake other nodes through `NOTIFY` (PostgreSQL).
    pub fn shares_inbox_feed(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// A listener on the inbox channel, on its own connection; `None` on SQLite.
    pub async fn inbox_listener(&self) -> Result<Option<InboxListener>, StorageError> {
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
