//! Tiers: what a station keeps about its uplink (the refusals of the tier
//! above, the uplink's state, the documents changed locally since the last
//! push) and what the tier above keeps about its stations (when each last
//! synced, the token keys each publishes).

use sync_core::projection::AccessRow;
use sync_core::relay::TakenBack;
use sync_core::{Timestamp, UserId};

use super::{StorageError, StorageTx, TxInner, on_pool, on_tx, placeholders, rows_per_statement, value_rows};

/// A change the tier above refused: (hash, rule, detail).
pub type UpstreamRefusal = (String, String, String);

/// When a station last completed an exchange with this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StationSync {
    /// The station's user id at this tier.
    pub station: String,
    pub last_sync_at: Timestamp,
    /// The cursor its last pull ended at.
    pub cursor: i64,
}

impl super::Stations<'_> {
    /// The tier above's refusals of changes to `doc_id`.
    pub async fn upstream_refusals(&self, doc_id: &str) -> Result<Vec<UpstreamRefusal>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as("SELECT hash, rule, detail FROM upstream_refusals WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// The tier above's refusals of changes to `doc_id` recorded with a
    /// rebuilt history stored after `cursor`: what a reader at that cursor
    /// may hold and has not been told (`sync_core::relay::unheard_refusals`).
    pub async fn taken_back_after(&self, doc_id: &str, cursor: i64) -> Result<Vec<TakenBack>, StorageError> {
        let rows: Vec<(String, String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT hash, rule, detail, seq FROM upstream_refusals WHERE doc_id = $1 AND seq > $2 ORDER BY hash",
            )
            .bind(doc_id)
            .bind(cursor)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(hash, rule, detail, seq)| {
                Ok(TakenBack {
                    change: hash.parse().map_err(|_| {
                        StorageError::Corrupt(format!("upstream refusal of {doc_id}: {hash:?} is not a change hash"))
                    })?,
                    rule,
                    detail,
                    seq: seq.max(0) as u64,
                })
            })
            .collect()
    }

    /// The change number a document taken back whole was given
    /// ([`StorageTx::take_out_of_lists`]); `None` for any other document.
    pub async fn taken_back_whole(&self, doc_id: &str) -> Result<Option<i64>, StorageError> {
        let seq = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT seq FROM taken_back_docs WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(seq)
    }

    /// The access rows a document taken back whole had, and its writers,
    /// that can say `user` may hold it: every row but those naming other
    /// users (as `Projections::doc_access_for` reads a listed document).
    pub async fn taken_back_readers_for(&self, doc_id: &str, user: &UserId) -> Result<Vec<AccessRow>, StorageError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, subject FROM taken_back_readers WHERE doc_id = $1 AND (kind <> 'user' OR subject = $2)",
            )
            .bind(doc_id)
            .bind(user.as_str())
            .fetch_all(pool)
            .await
        })?;
        super::projections::access_rows(doc_id, rows)
    }

    /// Whether the tier above ever refused anything here.
    pub async fn any_upstream_refusals(&self) -> Result<bool, StorageError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM upstream_refusals LIMIT 1) s")
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// The uplink's persisted state (JSON), if it ever ran.
    pub async fn uplink_state(&self) -> Result<Option<String>, StorageError> {
        let state = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT state FROM uplink_state WHERE id = 1")
                .fetch_optional(pool)
                .await
        })?;
        Ok(state)
    }

    /// The heads the station shares with the tier above, by document
    /// (table `uplink_shared`), as [`Stations::save_uplink_state`] wrote them.
    pub async fn uplink_shared(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as("SELECT doc_id, heads FROM uplink_shared ORDER BY doc_id")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Saves the uplink's state in one transaction: the state document
    /// `state` (small: the shared heads live in their own rows), the shared
    /// heads that changed since the last save (`(doc_id, heads)`), and the
    /// documents no longer shared.
    pub async fn save_uplink_state(
        &self,
        state: &str,
        changed: &[(String, String)],
        dropped: &[String],
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO uplink_state (id, state) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            )
            .bind(state)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        for chunk in changed.chunks(rows_per_statement(2)) {
            let sql = format!(
                "INSERT INTO uplink_shared (doc_id, heads) VALUES {} \
                 ON CONFLICT (doc_id) DO UPDATE SET heads = excluded.heads",
                value_rows(chunk.len(), 2)
            );
            on_tx!(tx, |conn| {
                let mut q = sqlx::query(&sql);
                for (doc, heads) in chunk {
                    q = q.bind(doc).bind(heads);
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        for chunk in dropped.chunks(rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM uplink_shared WHERE doc_id IN ({})",
                placeholders(1, chunk.len())
            );
            on_tx!(tx, |conn| {
                let mut q = sqlx::query(&sql);
                for doc in chunk {
                    q = q.bind(doc);
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await
    }

    /// Documents with a change stored after `after` by anyone but
    /// `upstream_user` (changes the tier above sent are not sent back), each
    /// with the lowest such seq, lowest first, at most `limit`. A document
    /// compacted past `after` is listed with `after + 1`: its folded changes
    /// kept no author, so it is looked at whole.
    pub async fn locally_changed(
        &self,
        after: i64,
        upstream_user: &str,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT doc_id, MIN(first_seq) AS first_seq FROM ( \
                   SELECT c.doc_id, MIN(c.seq) AS first_seq FROM changes c \
                   WHERE c.seq > $1 AND c.user_id <> $2 GROUP BY c.doc_id \
                   UNION ALL SELECT d.doc_id, $1 + 1 AS first_seq FROM documents d WHERE d.snapshot_seq > $1 \
                 ) s GROUP BY doc_id ORDER BY first_seq, doc_id LIMIT $3",
            )
            .bind(after)
            .bind(upstream_user)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Records that `station` completed an exchange at `now`, its pull ending at `cursor`.
    pub async fn record_sync(&self, station: &str, now: Timestamp, cursor: i64) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO station_syncs (station, last_sync_at, cursor) VALUES ($1, $2, $3) \
                 ON CONFLICT (station) DO UPDATE SET last_sync_at = excluded.last_sync_at, cursor = excluded.cursor",
            )
            .bind(station)
            .bind(now.millis())
            .bind(cursor)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Stores the token key set `station` publishes (JSON, a
    /// `sync_core::wire::KeySet`), replacing the one it published before.
    pub async fn put_key_set(&self, station: &str, key_set: &str, now: Timestamp) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO station_keys (station, key_set, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (station) DO UPDATE SET key_set = excluded.key_set, updated_at = excluded.updated_at",
            )
            .bind(station)
            .bind(key_set)
            .bind(now.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every station's published key set: (station, JSON).
    pub async fn key_sets(&self) -> Result<Vec<(String, String)>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as("SELECT station, key_set FROM station_keys ORDER BY station")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Every station's last exchange, by station.
    pub async fn syncs(&self) -> Result<Vec<StationSync>, StorageError> {
        let rows: Vec<(String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT station, last_sync_at, cursor FROM station_syncs ORDER BY station")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(station, at, cursor)| StationSync {
                station,
                last_sync_at: Timestamp::from_millis(at),
                cursor,
            })
            .collect())
    }
}

impl StorageTx {
    /// Records the tier above's refusals of changes to `doc_id`, taken
    /// back with a rebuilt history whose last change is `seq`.
    pub async fn record_upstream_refusals(
        &mut self,
        doc_id: &str,
        refused: &[UpstreamRefusal],
        now: Timestamp,
        seq: i64,
    ) -> Result<(), StorageError> {
        for (hash, rule, detail) in refused {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO upstream_refusals (doc_id, hash, rule, detail, refused_at, seq) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (doc_id, hash) DO NOTHING",
                )
                .bind(doc_id)
                .bind(hash)
                .bind(rule)
                .bind(detail)
                .bind(now.millis())
                .bind(seq)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Deletes a document's stored history (snapshot and changes), so that
    /// a rebuilt history can be appended in its place with new seqs (which
    /// every reader's cursor is below, so every reader is sent it again).
    /// Receipts and projections stay until the rewrite replaces them.
    pub async fn clear_history(&mut self, doc_id: &str) -> Result<(), StorageError> {
        self.lock_change_log().await?;
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM changes WHERE doc_id = $1")
                .bind(doc_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE documents SET snapshot = NULL, snapshot_heads = '', snapshot_seq = 0, \
                 pending_changes = 0, pending_bytes = 0 WHERE doc_id = $1",
            )
            .bind(doc_id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Takes a document whose whole history was refused by the tier above
    /// (and cleared, [`StorageTx::clear_history`]) out of every list:
    /// nobody reads it and no projection row shows it. Who could have held
    /// it is kept (its access rows, and `writers`, the people whose changes
    /// it held), and it is given a change number of its own, after every
    /// cursor handed out so far, which becomes its position: every reader
    /// below it may hold the document and is told (`Documents::changed_in_scope`
    /// lists it for them). Returns that number.
    pub async fn take_out_of_lists(
        &mut self,
        doc_id: &str,
        writers: &[String],
        now: Timestamp,
    ) -> Result<i64, StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO taken_back_readers (doc_id, kind, subject) \
                 SELECT doc_id, kind, subject FROM doc_access WHERE doc_id = $1 ON CONFLICT DO NOTHING",
            )
            .bind(doc_id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        for user in writers {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO taken_back_readers (doc_id, kind, subject) VALUES ($1, 'user', $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(doc_id)
                .bind(user)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        for sql in [
            "DELETE FROM doc_access WHERE doc_id = $1",
            "DELETE FROM petitions WHERE doc_id = $1",
            "DELETE FROM room_messages WHERE doc_id = $1",
            "DELETE FROM rooms WHERE doc_id = $1",
            "DELETE FROM households WHERE doc_id = $1",
            "DELETE FROM notice_deliveries WHERE doc_id = $1",
            "DELETE FROM entry_receipts WHERE doc_id = $1",
        ] {
            on_tx!(self, |conn| {
                sqlx::query(sql)
                    .bind(doc_id)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        let seq = self.next_change_seq().await?;
        on_tx!(self, |conn| {
            sqlx::query("UPDATE documents SET last_change_seq = $2, updated_at = $3 WHERE doc_id = $1")
                .bind(doc_id)
                .bind(seq)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO taken_back_docs (doc_id, seq, taken_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (doc_id) DO UPDATE SET seq = excluded.seq, taken_at = excluded.taken_at",
            )
            .bind(doc_id)
            .bind(seq)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(seq)
    }

    /// Hands out the next change number without storing a change (the
    /// caller holds the change-log lock, so numbers still commit in order).
    async fn next_change_seq(&mut self) -> Result<i64, StorageError> {
        self.lock_change_log().await?;
        let seq: i64 = match &mut self.inner {
            // AUTOINCREMENT numbers from its sqlite_sequence row, which a
            // table that ever held a change has.
            TxInner::Sqlite(t) => {
                let bumped: Option<i64> =
                    sqlx::query_scalar("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'changes' RETURNING seq")
                        .fetch_optional(&mut **t)
                        .await?;
                match bumped {
                    Some(seq) => seq,
                    None => {
                        sqlx::query_scalar(
                            "INSERT INTO sqlite_sequence (name, seq) \
                             SELECT 'changes', COALESCE(MAX(seq), 0) + 1 FROM changes RETURNING seq",
                        )
                        .fetch_one(&mut **t)
                        .await?
                    }
                }
            }
            TxInner::Postgres(t) => {
                sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('changes', 'seq'))")
                    .fetch_one(&mut **t)
                    .await?
            }
        };
        Ok(seq)
    }
}
