//! Change events between server nodes sharing one PostgreSQL database.
//!
//! Every transaction that stores changes also sends a `NOTIFY` on the
//! database's change channel, so it is delivered exactly when (and only if)
//! the changes commit. Each node listens on the channel and passes other
//! nodes' events to its own subscribers (sync connections following the
//! document), which then read the new changes from storage. Channels (this
//! one and the inbox's) are named after the schema, so databases (and test
//! schemas) sharing one server never hear each other. SQLite has a single
//! node: nothing is sent.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use super::{Db, StorageError, StorageTx, TxInner};

/// A commit of changes to one document, as other nodes hear of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    pub doc_id: String,
    pub kind: String,
    pub last_seq: i64,
    pub user: String,
    /// The [`Storage::instance`] that stored the changes.
    pub origin: u64,
}

impl StorageTx {
    /// Announces `notice` to the other nodes when this transaction commits.
    pub(crate) async fn announce(&mut self, notice: &ChangeNotice) -> Result<(), StorageError> {
        let TxInner::Postgres(tx) = &mut self.inner else {
            return Ok(());
        };
        let payload = serde_json::to_string(notice).map_err(StorageError::corrupt)?;
        sqlx::query("SELECT pg_notify($1 || current_schema(), $2)")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The prefix of a schema's change channel; the schema name follows it.
pub(crate) const CHANGES_CHANNEL: &str = "lianxin_changes_";

/// The PostgreSQL channel `prefix` names for the schema `schema`. The same
/// name is built in SQL as `prefix || current_schema()`.
pub(crate) fn channel(prefix: &str, schema: &str) -> String {
    format!("{prefix}{schema}")
}

/// Other nodes' change events, in commit order.
pub struct ChangeListener {
    listener: PgListener,
    instance: u64,
}

impl super::Documents<'_> {
    /// Listens for changes stored by other nodes; `None` on SQLite, which
    /// has no other nodes.
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>, StorageError> {
        let (Db::Postgres(pool), Some(schema)) = (&self.db, self.schema.as_deref()) else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(&channel(CHANGES_CHANNEL, schema)).await?;
        Ok(Some(ChangeListener {
            listener,
            instance: self.instance,
        }))
    }
}

impl ChangeListener {
    /// The next event from another node. If the connection drops it is
    /// re-established; events sent meanwhile are lost, which costs only
    /// latency: a follower catches up from storage on its next exchange.
    pub async fn next(&mut self) -> Result<ChangeNotice, StorageError> {
        loop {
            let n = self.listener.recv().await?;
            match serde_json::from_str::<ChangeNotice>(n.payload()) {
                Ok(notice) if notice.origin != self.instance => return Ok(notice),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable change notice"),
            }
        }
    }
}
