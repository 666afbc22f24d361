//! The local SQLite store: documents with a heads index, client state, the edit journal,
//! refused edits and the notification inbox.
//!
//! Documents are kept as Automerge `save()` bytes beside their sorted heads
//! and a small JSON summary, so that listing and deciding what is dirty read
//! only the index columns and never load a document.

use std::path::Path;

use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, params};
use sync_core::batch::DocId;

use crate::error::Result;

/// Each entry moves the schema one version up; `PRAGMA user_version` says how far a file is.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE docs (
    id         BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    heads      TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    title      TEXT NOT NULL,
    summary    TEXT NOT NULL,
    sort_ms    INTEGER NOT NULL
);
CREATE INDEX docs_kind ON docs (kind, sort_ms);
CREATE TABLE journal (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    doc     BLOB NOT NULL,
    change  TEXT NOT NULL,
    intent  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX journal_doc ON journal (doc);
CREATE TABLE refused (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    doc     BLOB NOT NULL,
    change  TEXT NOT NULL,
    rule    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    what    TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE TABLE notifications (
    cursor  INTEGER PRIMARY KEY,
    key     TEXT NOT NULL UNIQUE,
    kind    TEXT NOT NULL,
    doc     TEXT NOT NULL,
    entry   TEXT,
    text    TEXT NOT NULL,
    urgent  INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    read    INTEGER NOT NULL DEFAULT 0
);
"#];

/// One row of the document index.
#[derive(Clone, Debug)]
pub struct IndexRow {
    pub id: DocId,
    /// The kind-specific summary, JSON.
    pub summary: String,
}

/// What is stored with a document besides its bytes.
pub struct DocMeta {
    pub kind: String,
    pub title: String,
    pub summary: String,
    pub sort_ms: i64,
}

/// A journal entry: a local edit, kept until the server has it so it can be replayed.
#[derive(Clone, Debug)]
pub struct JournalRow {
    pub seq: i64,
    pub change: ChangeHash,
    pub intent: String,
    pub at_ms: i64,
}

/// An edit the server refused.
#[derive(Clone, Debug)]
pub struct RefusedRow {
    pub seq: i64,
    pub doc: DocId,
    pub change: String,
    pub rule: String,
    pub detail: String,
    pub what: String,
    pub at_ms: i64,
}

/// A notification from the server inbox, kept locally.
#[derive(Clone, Debug)]
pub struct NotificationRow {
    pub cursor: i64,
    pub key: String,
    pub kind: String,
    pub doc: String,
    pub entry: Option<String>,
    pub text: String,
    pub urgent: bool,
    pub at_ms: i64,
    pub read: bool,
}

pub struct Store {
    conn: Connection,
}

/// Heads in their index form: sorted, hex, comma-separated.
pub fn heads_key(heads: &[ChangeHash]) -> String {
    let mut h: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    h.sort();
    h.join(",")
}

fn parse_heads(s: &str) -> Vec<ChangeHash> {
    s.split(',')
        .filter(|h| !h.is_empty())
        .filter_map(|h| h.parse().ok())
        .collect()
}

fn doc_id(bytes: Vec<u8>) -> rusqlite::Result<DocId> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(DocId)
        .map_err(|_| rusqlite::Error::InvalidColumnType(0, "id".into(), rusqlite::types::Type::Blob))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store { conn })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Every document's id and heads: what dirty detection reads.
    pub fn heads_index(&self) -> Result<Vec<(DocId, Vec<ChangeHash>)>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, heads FROM docs")?;
        let rows = stmt.query_map([], |r| {
            let heads: String = r.get(1)?;
            Ok((doc_id(r.get(0)?)?, parse_heads(&heads)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn load(&self, id: &DocId) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT bytes FROM docs WHERE id = ?1", [&id.0[..]], |r| r.get(0))
            .optional()?)
    }

    pub fn kind_of(&self, id: &DocId) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT kind FROM docs WHERE id = ?1", [&id.0[..]], |r| r.get(0))
            .optional()?)
    }

    pub fn save(&self, id: &DocId, heads: &[ChangeHash], bytes: &[u8], meta: &DocMeta) -> Result<()> {
        self.conn.execute(
            "INSERT INTO docs (id, kind, heads, bytes, title, summary, sort_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, heads = excluded.heads, bytes = excluded.bytes,
               title = excluded.title, summary = excluded.summary, sort_ms = excluded.sort_ms",
            params![
                &id.0[..],
                meta.kind,
                heads_key(heads),
                bytes,
                meta.title,
                meta.summary,
                meta.sort_ms
            ],
        )?;
        Ok(())
    }

    pub fn delete(&self, id: &DocId) -> Result<()> {
        self.conn.execute("DELETE FROM docs WHERE id = ?1", [&id.0[..]])?;
        Ok(())
    }

    /// The index rows of one kind, most recent first.
    pub fn list(&self, kind: &str) -> Result<Vec<IndexRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, summary FROM docs WHERE kind = ?1 ORDER BY sort_ms DESC")?;
        let rows = stmt.query_map([kind], |r| {
            Ok(IndexRow {
                id: doc_id(r.get(0)?)?,
                summary: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn journal_add(&self, doc: &DocId, change: &ChangeHash, intent: &str, at_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO journal (doc, change, intent, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![&doc.0[..], change.to_string(), intent, at_ms],
        )?;
        Ok(())
    }

    pub fn journal_for(&self, doc: &DocId) -> Result<Vec<JournalRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, change, intent, at_ms FROM journal WHERE doc = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([&doc.0[..]], |r| {
            let change: String = r.get(1)?;
            Ok((r.get::<_, i64>(0)?, change, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, change, intent, at_ms) = row?;
            if let Ok(change) = change.parse() {
                out.push(JournalRow {
                    seq,
                    change,
                    intent,
                    at_ms,
                });
            }
        }
        Ok(out)
    }

    pub fn journal_remove(&self, seqs: &[i64]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached("DELETE FROM journal WHERE seq = ?1")?;
        for s in seqs {
            stmt.execute([s])?;
        }
        Ok(())
    }

    pub fn refused_add(&self, row: &RefusedRow) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO refused (doc, change, rule, detail, what, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![&row.doc.0[..], row.change, row.rule, row.detail, row.what, row.at_ms],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn refused_list(&self) -> Result<Vec<RefusedRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, doc, change, rule, detail, what, at_ms FROM refused ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(RefusedRow {
                seq: r.get(0)?,
                doc: doc_id(r.get(1)?)?,
                change: r.get(2)?,
                rule: r.get(3)?,
                detail: r.get(4)?,
                what: r.get(5)?,
                at_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn refused_dismiss(&self, seq: i64) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM refused WHERE seq = ?1", [seq])? > 0)
    }

    /// Stores notifications; a key already held is kept as it is. Call it
    /// inside [`Store::transaction`] with the cursor update.
    pub fn notifications_add(&self, rows: &[NotificationRow]) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO notifications (cursor, key, kind, doc, entry, text, urgent, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )?;
        let mut added = 0;
        for n in rows {
            added += stmt.execute(params![
                n.cursor, n.key, n.kind, n.doc, n.entry, n.text, n.urgent, n.at_ms
            ])?;
        }
        Ok(added)
    }

    pub fn notifications(&self, unread_only: bool) -> Result<Vec<NotificationRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cursor, key, kind, doc, entry, text, urgent, at_ms, read FROM notifications
             WHERE read = 0 OR ?1 = 0 ORDER BY cursor",
        )?;
        let rows = stmt.query_map([unread_only], |r| {
            Ok(NotificationRow {
                cursor: r.get(0)?,
                key: r.get(1)?,
                kind: r.get(2)?,
                doc: r.get(3)?,
                entry: r.get(4)?,
                text: r.get(5)?,
                urgent: r.get(6)?,
                at_ms: r.get(7)?,
                read: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets the notifications about `doc` (a document the replica dropped).
    pub fn notifications_remove_for(&self, doc: &str) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM notifications WHERE doc = ?1", [doc])?)
    }

    pub fn mark_notifications_read(&self, up_to_cursor: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE notifications SET read = 1 WHERE cursor <= ?1 AND read = 0",
            [up_to_cursor],
        )?)
    }

    /// Runs `f` in one transaction: either everything it wrote is kept, or nothing.
    pub fn transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_and_the_index_reads_without_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let id = DocId([7; 16]);
        let h = ChangeHash([3; 32]);
        let meta = DocMeta {
            kind: "petition".into(),
            title: "水管".into(),
            summary: "{\"n\":1}".into(),
            sort_ms: 5,
        };
        store.save(&id, &[h], b"bytes", &meta).unwrap();
        assert_eq!(store.heads_index().unwrap(), vec![(id, vec![h])]);
        assert_eq!(store.load(&id).unwrap().unwrap(), b"bytes");
        assert_eq!(store.list("petition").unwrap()[0].summary, r#"{"n":1}"#);
        // Reopening keeps everything and does not run the migrations again.
        drop(store);
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        assert_eq!(store.kind_of(&id).unwrap().as_deref(), Some("petition"));
    }

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let r: Result<()> = store.transaction(|s| {
            s.set_meta("a", "1")?;
            Err(crate::error::LianxinError::invalid("no"))
        });
        assert!(r.is_err());
        assert_eq!(store.meta("a").unwrap(), None);
    }
}
