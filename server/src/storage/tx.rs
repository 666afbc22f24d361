//! Write transactions and the hook through which projections join a change's transaction.
//!
//! A [`StorageTx`] is an open transaction on either backend. Every write the
//! server does that must be atomic with another (a change and the projection
//! rows derived from it, an import of many units and users) goes through one.
//!
//! Projections plug in as a [`ChangeHook`]: [`Documents::append_changes`] stores
//! the new changes, hands the still-open transaction and the
//! [`AppendOutcome`] to the hook, and commits only if the hook succeeds. The
//! hook writes its rows with typed `StorageTx` methods (projection SQL lives
//! in this module's siblings, like all SQL), so a change and its projections
//! become visible together or not at all, and a change is acknowledged only
//! after the commit returned.
//!
//! [`Documents::append_changes`]: super::Documents::append_changes

use futures_util::future::BoxFuture;
use sqlx::{Postgres, Sqlite, Transaction};

use super::{AppendOutcome, StorageError};

pub(crate) enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// An open write transaction. Dropped without [`commit`](Self::commit), it
/// rolls back.
pub struct StorageTx {
    pub(crate) inner: TxInner,
    /// SQLite: told after the commit, to copy the log into the database file.
    pub(crate) checkpoint: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// This process's SQLite writer turn (see [`Storage::begin`]); declared
    /// after `inner`, so it is released only once the transaction is gone.
    ///
    /// [`Storage::begin`]: super::Storage::begin
    pub(crate) _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for StorageTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.inner {
            TxInner::Sqlite(_) => "sqlite",
            TxInner::Postgres(_) => "postgres",
        };
        f.debug_struct("StorageTx").field("backend", &backend).finish()
    }
}

impl StorageTx {
    pub async fn commit(self) -> Result<(), StorageError> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        if let Some(checkpoint) = &self.checkpoint {
            checkpoint.notify_one();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StorageError> {
        match self.inner {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Marks a point this transaction can roll back to without ending
    /// ([`rollback_to_savepoint`](Self::rollback_to_savepoint)), so one write
    /// of a group commit can fail while the others commit. Savepoints nest;
    /// each is released or rolled back before the next outer one.
    pub async fn savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_plain("SAVEPOINT lianxin_write").await
    }

    /// Keeps what was done since the latest savepoint.
    pub async fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_plain("RELEASE SAVEPOINT lianxin_write").await
    }

    /// Undoes what was done since the latest savepoint and releases it. On
    /// PostgreSQL this also clears the error state a failed statement left.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.execute_plain("ROLLBACK TO SAVEPOINT lianxin_write").await?;
        self.release_savepoint().await
    }

    async fn execute_plain(&mut self, sql: &'static str) -> Result<(), StorageError> {
        match &mut self.inner {
            TxInner::Sqlite(t) => sqlx::query(sql).execute(&mut **t).await.map(|_| ())?,
            TxInner::Postgres(t) => sqlx::query(sql).execute(&mut **t).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Serialises change appends across connections and server nodes, so
    /// sequence numbers become visible in allocation order. SQLite needs
    /// nothing: `BEGIN IMMEDIATE` already admits one writer at a time.
    pub(crate) async fn lock_change_log(&mut self) -> Result<(), StorageError> {
        /// Arbitrary key of the advisory lock guarding the change log.
        const CHANGE_LOG_LOCK: i64 = 0x6c69_616e_7869_6e01;
        if let TxInner::Postgres(t) = &mut self.inner {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGE_LOG_LOCK)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected())?;
        }
        Ok(())
    }
}

/// Work done inside the transaction that stores new changes, before it
/// commits: typically writing projections of the changed document.
///
/// It runs only when at least one change was newly stored (a batch made only
/// of re-sent changes commits nothing and calls no hook). Returning an error
/// rolls the whole transaction back, changes included, and the error is
/// returned to the caller of `append_changes`.
pub trait ChangeHook<E>: Send {
    fn on_append<'t>(&'t mut self, tx: &'t mut StorageTx, outcome: &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>>;
}

/// A hook that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl<E> ChangeHook<E> for NoHook {
    fn on_append<'t>(&'t mut self, _: &'t mut StorageTx, _: &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> {
        Box::pin(async { Ok(()) })
    }
}

pub fn no_hook() -> NoHook {
    NoHook
}

/// A hook made from a closure; see [`hook_fn`].
pub struct FnHook<F>(F);

/// Makes a [`ChangeHook`] from a closure, in the style of sqlx's
/// `Connection::transaction`:
///
/// ```no_run
/// # use lianxin_server::storage::{Storage, StorageError, StoredChange, hook_fn};
/// # async fn example(storage: Storage, changes: Vec<StoredChange>) -> Result<(), StorageError> {
/// let outcome = storage
///     .documents()
///     .append_changes("doc-id", "petition", &changes, hook_fn(|tx, outcome| Box::pin(async move {
///         // Projection writes go here, e.g. `tx.upsert_petition_row(…)`; they
///         // commit together with `outcome.inserted`.
///         let _ = (tx, outcome);
///         Ok::<_, StorageError>(())
///     })))
///     .await?;
/// # let _ = outcome;
/// # Ok(())
/// # }
/// ```
pub fn hook_fn<E, F>(f: F) -> FnHook<F>
where
    F: for<'t> FnMut(&'t mut StorageTx, &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> + Send,
{
    FnHook(f)
}

impl<E, F> ChangeHook<E> for FnHook<F>
where
    F: for<'t> FnMut(&'t mut StorageTx, &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> + Send,
{
    fn on_append<'t>(&'t mut self, tx: &'t mut StorageTx, outcome: &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> {
        (self.0)(tx, outcome)
    }
}

impl<E, H: ChangeHook<E> + ?Sized> ChangeHook<E> for &mut H {
    fn on_append<'t>(&'t mut self, tx: &'t mut StorageTx, outcome: &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> {
        (**self).on_append(tx, outcome)
    }
}

impl<E, H: ChangeHook<E> + ?Sized> ChangeHook<E> for Box<H> {
    fn on_append<'t>(&'t mut self, tx: &'t mut StorageTx, outcome: &'t AppendOutcome) -> BoxFuture<'t, Result<(), E>> {
        (**self).on_append(tx, outcome)
    }
}
