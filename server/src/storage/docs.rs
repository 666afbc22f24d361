//! Documents as snapshot + append-only changes, the global change sequence, and actor bindings.
//!
//! Storage does not parse Automerge: callers pass each change's hash and
//! actor (hex) with its bytes, and rebuild documents from what
//! [`Documents::load_document`](super::Documents::load_document) returns (`load` the snapshot, then
//! `load_incremental`/`apply_changes` the changes).
//!
//! Every stored change gets a `seq` from one global, monotonic sequence: a
//! client's cursor. Compaction folds a document's changes up to some seq
//! into a new snapshot and deletes them; the document then remembers that
//! seq (`snapshot_seq`), and [`Documents::changes_since`](super::Documents::changes_since) returns the snapshot
//! in their place to a reader whose cursor is older, so cursors taken before
//! a compaction still lead to the full history.

use sqlx::Row;
use sync_core::{Timestamp, UserId};
use thiserror::Error;

use super::tx::ChangeHook;
use super::{StorageError, StorageTx, on_pool, on_tx};

/// One Automerge change as the server stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    /// The change hash, lower-case hex; unique per document.
    pub hash: String,
    /// The change's actor id, lower-case hex.
    pub actor: String,
    /// The authenticated user who delivered it.
    pub user: UserId,
    pub bytes: Vec<u8>,
    pub received_at: Timestamp,
}

/// A change that [`Documents::append_changes`](super::Documents::append_changes) newly stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendedChange {
    pub seq: i64,
    pub hash: String,
}

/// What an append did; also what a [`ChangeHook`] sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub doc_id: String,
    pub kind: String,
    /// Newly stored changes, in the order given.
    pub inserted: Vec<AppendedChange>,
    /// Hashes of changes that were already stored and were skipped.
    pub duplicates: Vec<String>,
    /// The document's highest change seq after the append.
    pub last_seq: i64,
    /// What is stored since the document's snapshot, after the append.
    pub pending: Pending,
}

/// A document's changes since its snapshot, as stored: what every node
/// decides compaction from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub changes: i64,
    pub bytes: i64,
    /// The size of the snapshot they follow (0 before the first).
    pub snapshot_bytes: i64,
}

/// A stored actor binding: the user who first delivered the actor, and
/// whether it is one of the server's own (reserved) actors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorRecord {
    pub user: UserId,
    pub reserved: bool,
}

/// A document as stored: its latest snapshot and the changes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDoc {
    pub doc_id: String,
    pub kind: String,
    /// An Automerge `save()`; `None` until the first compaction.
    pub snapshot: Option<Vec<u8>>,
    /// Heads of the snapshot, hex.
    pub snapshot_heads: Vec<String>,
    /// The seq up to which changes are folded into the snapshot.
    pub snapshot_seq: i64,
    /// Changes after the snapshot, in seq order.
    pub changes: Vec<Vec<u8>>,
    /// Their hashes, hex, in the same order.
    pub hashes: Vec<String>,
    /// The document's highest change seq: its position. Read in the same
    /// snapshot of the database as the rest, so the document rebuilt from
    /// `snapshot` and `changes` holds every change up to it.
    pub last_seq: i64,
}

/// Which documents a change feed covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocFilter {
    All,
    Docs(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedItemKind {
    /// `bytes` is one change.
    Change,
    /// `bytes` is a whole-document snapshot standing in for compacted changes.
    Snapshot,
}

/// One entry of the change feed. Both kinds can be fed to Automerge's
/// `load_incremental`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedItem {
    pub seq: i64,
    pub doc_id: String,
    pub kind: FeedItemKind,
    pub bytes: Vec<u8>,
    /// The change's hash, hex (`None` for a snapshot).
    pub hash: Option<String>,
}

/// A page of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePage {
    pub items: Vec<FeedItem>,
    /// The cursor to pass next time; equal to the given cursor when empty.
    pub next_cursor: i64,
}

/// A document and the seq of its latest change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocVersion {
    pub doc_id: String,
    pub kind: String,
    pub last_seq: i64,
}

/// Whom a reader is, for finding the documents they may see: their user id
/// (directly listed, or a member of a room a document names) and every other
/// `doc_access` subject that could grant them access (units in their
/// jurisdiction, units above their home village, their household).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessScope {
    pub user: String,
    pub subjects: Vec<String>,
}

/// An actor id already belongs to another user.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("actor {actor} is bound to another user")]
pub struct ActorBoundToOther {
    pub actor: String,
    pub owner: UserId,
}

impl super::Documents<'_> {
    /// Binds `actor` to `user` if it is unbound. The first user to deliver an
    /// actor keeps it: binding it again to the same user is a no-op, binding
    /// it to another user fails. Atomic under concurrency.
    pub async fn bind_actor(
        &self,
        actor: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Result<(), ActorBoundToOther>, StorageError> {
        let mut tx = self.begin().await?;
        let result = tx.bind_actor(actor, user, now).await?;
        tx.commit().await?;
        if let Ok(record) = &result {
            self.remember_actor(actor, record.clone());
        }
        Ok(result.map(|_| ()))
    }

    pub(crate) fn remember_actor(&self, actor: &str, record: ActorRecord) {
        self.actors
            .lock()
            .expect("actor cache lock")
            .put(actor.to_owned(), record);
    }

    /// The user an actor is bound to.
    pub async fn actor_owner(&self, actor: &str) -> Result<Option<UserId>, StorageError> {
        Ok(self.actor_record(actor).await?.map(|r| r.user))
    }

    /// An actor's binding, if it has one. Bindings never change once
    /// committed, so this handle remembers those it read.
    pub async fn actor_record(&self, actor: &str) -> Result<Option<ActorRecord>, StorageError> {
        if let Some(record) = self.actors.lock().expect("actor cache lock").get(actor) {
            return Ok(Some(record.clone()));
        }
        let row: Option<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT user_id, reserved FROM actor_bindings WHERE actor = $1")
                .bind(actor)
                .fetch_optional(pool)
                .await
        })?;
        let Some((user, reserved)) = row else {
            return Ok(None);
        };
        let record = ActorRecord {
            user: UserId::new(user).map_err(StorageError::corrupt)?,
            reserved: reserved != 0,
        };
        self.remember_actor(actor, record.clone());
        Ok(Some(record))
    }

    /// Stores `changes` of `doc_id` (creating the document row as `kind` if
    /// new) and runs `hook` in the same transaction, then commits. Changes
    /// already stored for this document are skipped. On any error nothing is
    /// stored.
    pub async fn append_changes<E, H>(
        &self,
        doc_id: &str,
        kind: &str,
        changes: &[StoredChange],
        mut hook: H,
    ) -> Result<AppendOutcome, E>
    where
        E: From<StorageError>,
        H: ChangeHook<E>,
    {
        let mut tx = self.begin().await?;
        let outcome = tx.append_changes(doc_id, kind, changes).await?;
        if outcome.inserted.is_empty() {
            tx.rollback().await?;
            return Ok(outcome);
        }
        hook.on_append(&mut tx, &outcome).await?;
        let notice = super::ChangeNotice {
            doc_id: doc_id.to_owned(),
            kind: kind.to_owned(),
            last_seq: outcome.last_seq,
            user: changes.first().map(|c| c.user.to_string()).unwrap_or_default(),
            origin: self.instance(),
        };
        tx.announce(&notice).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// [`append_changes`](Self::append_changes) without a hook.
    pub async fn append(
        &self,
        doc_id: &str,
        kind: &str,
        changes: &[StoredChange],
    ) -> Result<AppendOutcome, StorageError> {
        self.append_changes(doc_id, kind, changes, super::no_hook()).await
    }

    /// The stored snapshot and later changes of a document, all read in one
    /// snapshot of the database (a repeatable-read transaction), so the
    /// position returned is exactly what the snapshot and changes hold even
    /// while other writers append and compact.
    pub async fn load_document(&self, doc_id: &str) -> Result<Option<StoredDoc>, StorageError> {
        type Row = (String, Option<Vec<u8>>, String, i64, i64);
        type ChangeRow = (i64, String, Vec<u8>);
        let (row, changes): (Option<Row>, Vec<ChangeRow>) = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if self.backend() == super::Backend::Postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            let row: Option<Row> = sqlx::query_as(
                "SELECT kind, snapshot, snapshot_heads, snapshot_seq, last_change_seq \
                 FROM documents WHERE doc_id = $1",
            )
            .bind(doc_id)
            .fetch_optional(&mut *tx)
            .await?;
            let changes = sqlx::query_as("SELECT seq, hash, bytes FROM changes WHERE doc_id = $1 ORDER BY seq")
                .bind(doc_id)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((row, changes))
        })?;
        let Some((kind, snapshot, heads, snapshot_seq, last_seq)) = row else {
            return Ok(None);
        };
        let (hashes, changes) = changes.into_iter().map(|(_, hash, bytes)| (hash, bytes)).unzip();
        Ok(Some(StoredDoc {
            doc_id: doc_id.to_owned(),
            kind,
            snapshot,
            snapshot_heads: split_heads(&heads),
            snapshot_seq,
            changes,
            hashes,
            last_seq,
        }))
    }

    /// Up to `limit` feed items with `seq > cursor`, in seq order.
    pub async fn changes_since(&self, cursor: i64, filter: &DocFilter, limit: u32) -> Result<ChangePage, StorageError> {
        /// Bind parameters per statement stay well below both backends'
        /// limits (SQLite 32766, PostgreSQL 65535).
        const IDS_PER_QUERY: usize = 4096;
        let items = match filter {
            DocFilter::All => self.feed_query(cursor, &[], limit).await?,
            DocFilter::Docs(ids) => {
                let mut items = Vec::new();
                for chunk in ids.chunks(IDS_PER_QUERY) {
                    items.extend(self.feed_query(cursor, chunk, limit).await?);
                }
                if ids.len() > IDS_PER_QUERY {
                    items.sort_by_key(|i| i.seq);
                    items.truncate(limit as usize);
                }
                items
            }
        };
        let next_cursor = items.last().map_or(cursor, |i| i.seq);
        Ok(ChangePage { items, next_cursor })
    }

    /// One feed query; `ids` empty means every document.
    async fn feed_query(&self, cursor: i64, ids: &[String], limit: u32) -> Result<Vec<FeedItem>, StorageError> {
        // Placeholders $3.. for the document ids; both backends accept `$n`.
        let filter = if ids.is_empty() {
            String::new()
        } else {
            format!(" AND doc_id IN ({})", super::placeholders(3, ids.len()))
        };
        let sql = format!(
            "SELECT seq, doc_id, bytes, 0 AS is_snapshot, hash FROM changes WHERE seq > $1{filter} \
             UNION ALL \
             SELECT snapshot_seq AS seq, doc_id, snapshot AS bytes, 1 AS is_snapshot, NULL AS hash FROM documents \
             WHERE snapshot_seq > $1 AND snapshot IS NOT NULL{filter} \
             ORDER BY seq LIMIT $2"
        );
        type Row = (i64, String, Vec<u8>, i32, Option<String>);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql).bind(cursor).bind(i64::from(limit));
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(seq, doc_id, bytes, is_snapshot, hash)| FeedItem {
                seq,
                doc_id,
                bytes,
                hash,
                kind: if is_snapshot == 1 {
                    FeedItemKind::Snapshot
                } else {
                    FeedItemKind::Change
                },
            })
            .collect())
    }

    /// Documents whose latest change is after `cursor`, oldest first. Lets a
    /// sync endpoint find what changed without loading unchanged documents.
    pub async fn docs_changed_since(&self, cursor: i64, limit: u32) -> Result<Vec<DocVersion>, StorageError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT doc_id, kind, last_change_seq FROM documents \
                 WHERE last_change_seq > $1 ORDER BY last_change_seq LIMIT $2",
            )
            .bind(cursor)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(doc_id, kind, last_seq)| DocVersion { doc_id, kind, last_seq })
            .collect())
    }

    /// Documents `scope` can see with a change after `cursor`, each with the
    /// lowest such seq, lowest first, at most `limit` of them. A document
    /// whose history was compacted past `cursor` reports `cursor + 1`: its
    /// folded changes kept no seq, and a number too low only makes a paged
    /// pull stop earlier. A document taken back whole after `cursor` is
    /// listed for those who could see it then, with the take-back's number
    /// (its position; it has no changes). `scope` is a superset filter; the
    /// caller makes the exact read decision per document.
    pub async fn changed_in_scope(
        &self,
        cursor: i64,
        scope: &AccessScope,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StorageError> {
        // $1 cursor, $2 limit, $3 the user, $4.. the other subjects.
        let subjects = (0..scope.subjects.len())
            .map(|i| format!("${}", i + 4))
            .chain(std::iter::once("$3".to_owned()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT doc_id, first_seq FROM ( \
               SELECT d.doc_id, CASE WHEN d.snapshot_seq > $1 THEN $1 + 1 ELSE \
                 COALESCE((SELECT MIN(c.seq) FROM changes c WHERE c.doc_id = d.doc_id AND c.seq > $1), \
                          d.last_change_seq) END AS first_seq \
               FROM documents d \
               WHERE d.last_change_seq > $1 AND d.doc_id IN ( \
                 SELECT a.doc_id FROM doc_access a WHERE a.subject IN ({subjects}) \
                 UNION SELECT a.doc_id FROM doc_access a WHERE a.kind = 'room' AND a.subject IN ( \
                   SELECT m.doc_id FROM doc_access m WHERE m.kind = 'user' AND m.subject = $3) \
                 UNION SELECT t.doc_id FROM taken_back_readers t WHERE t.subject IN ({subjects}) \
                 UNION SELECT t.doc_id FROM taken_back_readers t WHERE t.kind = 'room' AND t.subject IN ( \
                   SELECT m.doc_id FROM doc_access m WHERE m.kind = 'user' AND m.subject = $3)) \
             ) s ORDER BY first_seq, doc_id LIMIT $2"
        );
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql)
                .bind(cursor)
                .bind(i64::from(limit))
                .bind(scope.user.as_str());
            for s in &scope.subjects {
                q = q.bind(s);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// The hashes of a document's changes stored after `cursor`, or `None`
    /// if its history up to there was compacted into a snapshot taken after
    /// `cursor` (the seq of the folded changes is gone).
    pub async fn hashes_after(&self, doc_id: &str, cursor: i64) -> Result<Option<Vec<String>>, StorageError> {
        let snapshot_seq: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT snapshot_seq FROM documents WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_optional(pool)
                .await
        })?;
        if snapshot_seq.is_some_and(|s| s > cursor) {
            return Ok(None);
        }
        let hashes: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT hash FROM changes WHERE doc_id = $1 AND seq > $2")
                .bind(doc_id)
                .bind(cursor)
                .fetch_all(pool)
                .await
        })?;
        Ok(Some(hashes))
    }

    /// Up to `limit` document ids after `after`, in id order.
    pub async fn document_ids(&self, after: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        let ids = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT doc_id FROM documents WHERE doc_id > $1 ORDER BY doc_id LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(ids)
    }

    /// The highest seq ever allocated (0 when no change was ever stored).
    pub async fn head_seq(&self) -> Result<i64, StorageError> {
        let seq: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(last_change_seq) FROM documents")
                .fetch_one(pool)
                .await
        })?;
        Ok(seq.unwrap_or(0))
    }

    /// The changes of `doc_id` stored after its snapshot up to `up_to_seq`,
    /// as (seq, hash): what a compaction up to there would fold.
    pub async fn uncompacted(&self, doc_id: &str, up_to_seq: i64) -> Result<Vec<(i64, String)>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as("SELECT seq, hash FROM changes WHERE doc_id = $1 AND seq <= $2 ORDER BY seq")
                .bind(doc_id)
                .bind(up_to_seq)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Replaces the snapshot of `doc_id` with `snapshot`, which holds every
    /// change up to `up_to_seq`, and deletes the changes `folded` (seqs up to
    /// `up_to_seq` whose hashes the caller found in the snapshot), in one
    /// transaction. A change the snapshot lacks is never deleted: the caller
    /// names only what it checked, and seqs past `up_to_seq` are kept. Fails
    /// with [`StorageError::Conflict`] if a newer snapshot is already stored
    /// (another node compacted further) or `up_to_seq` is past the
    /// document's last change. Returns how many changes were deleted.
    pub async fn compact(
        &self,
        doc_id: &str,
        snapshot: &[u8],
        heads: &[String],
        up_to_seq: i64,
        folded: &[i64],
        now: Timestamp,
    ) -> Result<u64, StorageError> {
        let mut tx = self.begin().await?;
        let heads = heads.join(" ");
        let updated = on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE documents SET snapshot = $2, snapshot_heads = $3, snapshot_seq = $4, updated_at = $5 \
                 WHERE doc_id = $1 AND snapshot_seq <= $4 AND last_change_seq >= $4",
            )
            .bind(doc_id)
            .bind(snapshot)
            .bind(&heads)
            .bind(up_to_seq)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        if updated != 1 {
            return Err(StorageError::Conflict(format!(
                "cannot compact document {doc_id} up to seq {up_to_seq}: unknown document, \
                 seq beyond its last change, or an older seq than its snapshot"
            )));
        }
        let mut deleted = 0;
        for chunk in folded.chunks(super::rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM changes WHERE doc_id = $1 AND seq <= $2 AND seq IN ({})",
                super::placeholders(3, chunk.len())
            );
            deleted += on_tx!(tx, |conn| {
                let mut q = sqlx::query(&sql).bind(doc_id).bind(up_to_seq);
                for seq in chunk {
                    q = q.bind(*seq);
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE documents SET \
                 pending_changes = (SELECT COUNT(*) FROM changes c WHERE c.doc_id = $1), \
                 pending_bytes = (SELECT COALESCE(SUM(length(c.bytes)), 0) FROM changes c WHERE c.doc_id = $1) \
                 WHERE doc_id = $1",
            )
            .bind(doc_id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(deleted)
    }
}

impl StorageTx {
    /// Transactional form of [`Documents::bind_actor`](super::Documents::bind_actor), for a client's actor.
    pub async fn bind_actor(
        &mut self,
        actor: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Result<ActorRecord, ActorBoundToOther>, StorageError> {
        self.bind_actor_as(actor, user, false, now).await
    }

    /// Binds `actor` to `user` if it is unbound, as one of the server's own
    /// actors if `reserved`; returns the binding that holds afterwards, or
    /// who holds the actor when it is another user.
    pub async fn bind_actor_as(
        &mut self,
        actor: &str,
        user: &UserId,
        reserved: bool,
        now: Timestamp,
    ) -> Result<Result<ActorRecord, ActorBoundToOther>, StorageError> {
        let (owner, stored_reserved): (String, i64) = on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO actor_bindings (actor, user_id, bound_at, reserved) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (actor) DO NOTHING",
            )
            .bind(actor)
            .bind(user.as_str())
            .bind(now.millis())
            .bind(i64::from(reserved))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())?;
            sqlx::query_as("SELECT user_id, reserved FROM actor_bindings WHERE actor = $1")
                .bind(actor)
                .fetch_one(&mut *conn)
                .await
        })?;
        if owner == user.as_str() {
            Ok(Ok(ActorRecord {
                user: user.clone(),
                reserved: stored_reserved != 0,
            }))
        } else {
            let owner = UserId::new(owner).map_err(StorageError::corrupt)?;
            Ok(Err(ActorBoundToOther {
                actor: actor.to_owned(),
                owner,
            }))
        }
    }

    /// The document's kind and position (the seq of its latest stored
    /// change), read under the change-log lock so that no other writer can
    /// move it before this transaction ends. `None` for a new document.
    pub async fn document_position(&mut self, doc_id: &str) -> Result<Option<(String, i64)>, StorageError> {
        self.lock_change_log().await?;
        let row: Option<(String, i64)> = on_tx!(self, |conn| {
            sqlx::query_as("SELECT kind, last_change_seq FROM documents WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_optional(&mut *conn)
                .await
        })?;
        Ok(row)
    }

    /// Stores changes inside this transaction; see [`Documents::append_changes`](super::Documents::append_changes).
    pub async fn append_changes(
        &mut self,
        doc_id: &str,
        kind: &str,
        changes: &[StoredChange],
    ) -> Result<AppendOutcome, StorageError> {
        self.lock_change_log().await?;
        let now = changes.iter().map(|c| c.received_at.millis()).max().unwrap_or(0);
        // One statement creates the row if new and reads what is stored.
        let (stored_kind, stored_last_seq): (String, i64) = on_tx!(self, |conn| {
            sqlx::query_as(
                "INSERT INTO documents (doc_id, kind, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (doc_id) DO UPDATE SET updated_at = documents.updated_at \
                 RETURNING kind, last_change_seq",
            )
            .bind(doc_id)
            .bind(kind)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
        })?;
        if stored_kind != kind {
            return Err(StorageError::KindMismatch {
                doc_id: doc_id.to_owned(),
                stored: stored_kind,
                requested: kind.to_owned(),
            });
        }
        let mut inserted = Vec::new();
        let mut duplicates = Vec::new();
        for change in changes {
            let seq: Option<i64> = on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO changes (doc_id, hash, bytes, actor, user_id, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (doc_id, hash) DO NOTHING RETURNING seq",
                )
                .bind(doc_id)
                .bind(&change.hash)
                .bind(&change.bytes)
                .bind(&change.actor)
                .bind(change.user.as_str())
                .bind(change.received_at.millis())
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()
            })?;
            match seq {
                Some(seq) => inserted.push(AppendedChange {
                    seq,
                    hash: change.hash.clone(),
                }),
                None => duplicates.push(change.hash.clone()),
            }
        }
        // Seqs only grow, so a newly stored change is the document's last.
        let added_bytes: i64 = changes
            .iter()
            .filter(|c| inserted.iter().any(|i| i.hash == c.hash))
            .map(|c| c.bytes.len() as i64)
            .sum();
        let (last_seq, pending) = match inserted.last() {
            Some(last) => {
                let (changes, bytes, snapshot_bytes): (i64, i64, i64) = on_tx!(self, |conn| {
                    sqlx::query_as(
                        "UPDATE documents SET last_change_seq = $2, updated_at = $3, \
                         pending_changes = pending_changes + $4, pending_bytes = pending_bytes + $5 \
                         WHERE doc_id = $1 \
                         RETURNING pending_changes, pending_bytes, CAST(COALESCE(length(snapshot), 0) AS BIGINT)",
                    )
                    .bind(doc_id)
                    .bind(last.seq)
                    .bind(now)
                    .bind(inserted.len() as i64)
                    .bind(added_bytes)
                    .fetch_one(&mut *conn)
                    .await
                })?;
                (
                    last.seq,
                    Pending {
                        changes,
                        bytes,
                        snapshot_bytes,
                    },
                )
            }
            None => (stored_last_seq, Pending::default()),
        };
        Ok(AppendOutcome {
            doc_id: doc_id.to_owned(),
            kind: kind.to_owned(),
            inserted,
            duplicates,
            last_seq,
            pending,
        })
    }
}

fn split_heads(heads: &str) -> Vec<String> {
    heads.split_whitespace().map(str::to_owned).collect()
}
