//! Persistence: the only module that speaks SQL, for SQLite and PostgreSQL alike.
//!
//! [`Storage`] is a cheap-to-clone handle on a connection pool of either
//! backend. Most statements are written once in a dialect both backends
//! accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`) and run through the
//! [`on_pool!`] / [`on_tx!`] macros, which expand the same code once per
//! backend. The few real differences live in this file and in the two
//! migration directories:
//!
//! - write transactions on SQLite start with `BEGIN IMMEDIATE`, so a
//!   transaction that reads before it writes never fails to upgrade its lock;
//! - appends on PostgreSQL take a transaction-scoped advisory lock, so change
//!   sequence numbers commit in the order they were allocated and a reader's
//!   cursor never skips a change that was still in flight;
//! - column types (`BLOB`/`BYTEA`, autoincrement/identity).
//!
//! Times are stored as milliseconds since the Unix epoch ([`Timestamp`]).

mod auth;
mod checkpoint;
mod clocks;
mod config;
mod directory;
mod docs;
mod events;
mod inbox;
mod notices;
mod outbox;
mod projections;
mod receipts;
mod reports;
mod rooms;
mod rosters;
mod signing_keys;
mod station;
mod tx;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub use auth::{OtpCheck, RefreshRotation, SessionState};
pub use config::{ORG, SETTINGS};
pub use directory::HouseholdRow;
pub use docs::{
    AccessScope, ActorBoundToOther, ActorRecord, AppendOutcome, AppendedChange, ChangePage, DocFilter, DocVersion,
    FeedItem, FeedItemKind, Pending, StoredChange, StoredDoc,
};
pub use events::{ChangeListener, ChangeNotice};
pub use inbox::{AckError, INBOX_CHANNEL, InboxItem, InboxListener, NotificationRow};
pub use notices::{NoticeDeliveryRow, NoticeRow};
pub use outbox::{OutboxJob, OutboxRow};
pub use projections::{AccessRow, MessageRow, PetitionQuery, RoomRow};
pub use reports::ReportRows;
pub use rosters::RosterRow;
pub use signing_keys::SigningKeyRow;
pub use station::{StationSync, UpstreamRefusal};
pub use tx::{ChangeHook, StorageTx, hook_fn, no_hook};
pub use users::{NewUser, UserKind, UserRecord};

pub(crate) use tx::TxInner;

/// Bind parameters per statement. Both backends allow far more, but SQLite
/// looks each parameter's name up in a list as long as the statement's, so
/// binding costs grow with the square of a statement's size (with 4,000
/// parameters a statement, that lookup took a fifth of the database threads'
/// time in `bench fanout`). A few hundred keeps it small beside the cost of a
/// statement.
const PARAMS_PER_STATEMENT: usize = 256;

/// Rows of `width` columns per multi-row statement.
pub(crate) const fn rows_per_statement(width: usize) -> usize {
    let rows = PARAMS_PER_STATEMENT / width;
    if rows == 0 { 1 } else { rows }
}

/// `$first, $first+1, …`: `n` numbered placeholders for an `IN (…)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$a, $b, …` for `n` rows of `width` columns, numbered from `$1`.
pub(crate) fn value_rows(n: usize, width: usize) -> String {
    (0..n)
        .map(|r| {
            let cols: Vec<String> = (0..width).map(|c| format!("${}", r * width + c + 1)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which database engine a [`Storage`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the storage boundary.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("document {doc_id} is a {stored}, not a {requested}")]
    KindMismatch {
        doc_id: String,
        stored: String,
        requested: String,
    },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
}

impl StorageError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StorageError::Corrupt(what.to_string())
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool (`&SqlitePool` or
/// `&PgPool`); the body is compiled once per backend.
macro_rules! on_pool {
    ($storage:expr, |$pool:ident| $body:expr) => {
        match &$storage.db {
            $crate::storage::Db::Sqlite($pool) => $body,
            $crate::storage::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` with `$conn` bound to the transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`); use `&mut *$conn` for
/// each statement.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::storage::TxInner::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::storage::TxInner::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// A handle on the database: cheap to clone, safe to share between tasks.
#[derive(Clone, Debug)]
pub struct Storage {
    pub(crate) db: Db,
    /// Tells this handle's change events from other nodes'.
    instance: u64,
    /// PostgreSQL: the schema, which names the channels events go out on.
    schema: Option<std::sync::Arc<str>>,
    /// SQLite admits one writer at a time; its transactions queue here, in
    /// arrival order, instead of sleeping in SQLite's busy handler.
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: wakes the WAL checkpoint task after a commit (see `checkpoint`).
    checkpoint: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Actor bindings read before. A binding is never changed or removed
    /// once committed, so a remembered one stays true.
    actors: std::sync::Arc<std::sync::Mutex<lru::LruCache<String, docs::ActorRecord>>>,
}

/// Declares the handles on [`Storage`] by concern: each borrows the storage
/// and carries the statements of its own tables, so a caller says which part
/// of the database it touches (`storage.inbox().ack(…)`), and a module's
/// methods are found in one place. Inside, a handle reads the pool through
/// `Deref` to the storage it borrows.
macro_rules! handles {
    ($($(#[$doc:meta])* $accessor:ident => $handle:ident;)+) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $handle<'s>(&'s Storage);

            impl std::ops::Deref for $handle<'_> {
                type Target = Storage;
                fn deref(&self) -> &Storage {
                    self.0
                }
            }
        )+

        impl Storage {
            $(
                $(#[$doc])*
                pub fn $accessor(&self) -> $handle<'_> {
                    $handle(self)
                }
            )+
        }
    };
}

handles! {
    /// Documents: snapshots, the change log and its cursor, actor bindings,
    /// entry receipts, compaction, change events between nodes.
    documents => Documents;
    /// People and sign-in: users, units, memberships, the org tree, sessions,
    /// refresh tokens, one-time codes, the login throttle.
    auth => Auth;
    /// Notifications and each person's inbox with its cursor and acks.
    inbox => Inbox;
    /// Jobs that leave the server (push, SMS): claims, retries, dead letters.
    outbox => Outbox;
    /// Duty rosters and the handover between shifts.
    rosters => Rosters;
    /// Rows derived from documents: petitions, access, rooms and their
    /// messages, households, notices' deliveries, KPI rows.
    projections => Projections;
    /// The clock sweep's running petitions and the marks of actions taken once.
    clocks => Clocks;
    /// Configuration: versions, settings, load steps, disabled units, revocations.
    config => Config;
    /// Tiers: a station's uplink state and the refusals of the tier above;
    /// the tier above's record of its stations' exchanges.
    stations => Stations;
}

/// How many actor bindings a handle remembers.
const ACTORS_REMEMBERED: std::num::NonZeroUsize = std::num::NonZeroUsize::new(65_536).expect("nonzero");

impl Storage {
    /// Opens `url` (`sqlite:PATH`, `sqlite://PATH` or `postgres://…`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StorageError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            Self::open_postgres(options).await
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            Self::open_sqlite_with(options).await
        } else {
            Err(StorageError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StorageError> {
        Self::open_sqlite_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_sqlite_with(options: SqliteConnectOptions) -> Result<Self, StorageError> {
        // FULL synchronous mode: an acknowledged change survives a power cut.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Checkpoints run in a task of their own, not inside a commit.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("src/storage/migrations/sqlite").run(&pool).await?;
        let checkpoint = checkpoint::spawn(pool.clone());
        Ok(Storage {
            db: Db::Sqlite(pool),
            instance: rand::random(),
            schema: None,
            writer: Some(std::sync::Arc::default()),
            checkpoint: Some(checkpoint),
            actors: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(ACTORS_REMEMBERED))),
        })
    }

    /// Opens a PostgreSQL pool with `options` (callers may set a search path
    /// there) and applies pending migrations.
    pub async fn open_postgres(options: PgConnectOptions) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new().max_connections(16).connect_with(options).await?;
        sqlx::migrate!("src/storage/migrations/postgres").run(&pool).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await?;
        Ok(Storage {
            db: Db::Postgres(pool),
            instance: rand::random(),
            schema: Some(schema.into()),
            writer: None,
            checkpoint: None,
            actors: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(ACTORS_REMEMBERED))),
        })
    }

    /// A random number that tells this handle's change events from other nodes'.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. Dropping it without [`StorageTx::commit`]
    /// rolls it back.
    ///
    /// On SQLite the transaction first waits its turn for this process's
    /// writer lock, held until it commits or rolls back: concurrent writers
    /// queue in order rather than retrying `BEGIN IMMEDIATE` in SQLite's busy
    /// handler, which sleeps up to 100 ms between tries and serves waiters in
    /// no order. Do not begin a second transaction while holding one.
    pub async fn begin(&self) -> Result<StorageTx, StorageError> {
        let writer = match &self.writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let inner = match &self.db {
            Db::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(StorageTx {
            inner,
            checkpoint: self.checkpoint.clone(),
            _writer: writer,
        })
    }

    /// Closes every connection; further use fails.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// The first column of `SELECT … WHERE … IN (values)`, a statement per
    /// few hundred values: `select` is the statement up to `IN`, and `values`
    /// bind from `$1`.
    pub(crate) async fn strings_in(&self, select: &str, values: &[String]) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for chunk in values.chunks(rows_per_statement(1)) {
            let sql = format!("{select} IN ({})", placeholders(1, chunk.len()));
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut q = sqlx::query_scalar(&sql);
                for v in chunk {
                    q = q.bind(v);
                }
                q.fetch_all(pool).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// SQLite's `PRAGMA integrity_check` lines (`ok` when sound); nothing on PostgreSQL.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StorageError> {
        match &self.db {
            Db::Sqlite(pool) => Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_all(pool).await?),
            Db::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// Round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// Creates schema `name` (test and benchmark isolation on a shared PostgreSQL server).
pub async fn create_pg_schema(url: &str, name: &str) -> Result<(), StorageError> {
    pg_admin(url, &format!("CREATE SCHEMA {}", quote_ident(name))).await
}

/// Drops schema `name` and everything in it.
pub async fn drop_pg_schema(url: &str, name: &str) -> Result<(), StorageError> {
    pg_admin(url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(name))).await
}

async fn pg_admin(url: &str, statement: &str) -> Result<(), StorageError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
