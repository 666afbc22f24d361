//! Test helpers (feature `testing`): isolated databases on both backends.
//!
//! Every test gets its own database: a fresh SQLite file in a temporary
//! directory, or on PostgreSQL (when `LIANXIN_TEST_POSTGRES_URL` is set) a
//! fresh schema that the pool's connections use as their search path, dropped
//! when the test ends. [`backend_tests!`](crate::backend_tests) turns one
//! `async fn name(db: &mut TestDb) -> anyhow::Result<()>` into a test per backend.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;

use crate::storage::{Backend, Storage};

/// The environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "LIANXIN_TEST_POSTGRES_URL";

/// A database that exists for one test.
pub struct TestDb {
    pub storage: Storage,
    dir: tempfile::TempDir,
    pg: Option<PgSchema>,
}

struct PgSchema {
    url: String,
    schema: String,
}

impl TestDb {
    /// A fresh SQLite file.
    pub async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let storage = Storage::open_sqlite(&dir.path().join("lianxin.sqlite")).await?;
        Ok(TestDb {
            storage,
            dir,
            pg: None,
        })
    }

    /// A fresh schema on the PostgreSQL server named by
    /// `LIANXIN_TEST_POSTGRES_URL`, or `None` when it is unset.
    pub async fn postgres() -> anyhow::Result<Option<Self>> {
        let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
            return Ok(None);
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "lx_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        crate::storage::create_pg_schema(&url, &schema)
            .await
            .with_context(|| format!("creating a schema on {url}"))?;
        let storage = Storage::open_postgres(Self::pg_options(&url, &schema)?).await?;
        Ok(Some(TestDb {
            storage,
            dir: tempfile::tempdir()?,
            pg: Some(PgSchema { url, schema }),
        }))
    }

    fn pg_options(url: &str, schema: &str) -> anyhow::Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(url)?.options([("search_path", schema)]))
    }

    pub fn backend(&self) -> Backend {
        self.storage.backend()
    }

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Closes the pool and opens the same database again, as a restarted
    /// server would.
    pub async fn reopen(&mut self) -> anyhow::Result<Storage> {
        self.storage.close().await;
        self.storage = match &self.pg {
            None => Storage::open_sqlite(&self.dir.path().join("lianxin.sqlite")).await?,
            Some(pg) => Storage::open_postgres(Self::pg_options(&pg.url, &pg.schema)?).await?,
        };
        Ok(self.storage.clone())
    }

    /// The `DATABASE_URL` that reaches this database, for a `Config` (the
    /// admin commands, `run`). On PostgreSQL the schema travels as a
    /// connection option.
    pub fn database_url(&self) -> String {
        match &self.pg {
            None => format!(
                "sqlite:{}",
                self.dir.path().join("lianxin.sqlite").display()
            ),
            Some(pg) => {
                let sep = if pg.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}options=-c%20search_path%3D{}", pg.url, pg.schema)
            }
        }
    }

    /// Drops the database. Called by `backend_tests!` after each test.
    pub async fn cleanup(self) {
        self.storage.close().await;
        if let Some(pg) = self.pg
            && let Err(e) = crate::storage::drop_pg_schema(&pg.url, &pg.schema).await
        {
            eprintln!("could not drop test schema {}: {e}", pg.schema);
        }
    }
}

/// Prints the line a PostgreSQL test prints when it cannot run. Written to
/// the stderr handle directly, which the test harness does not capture, so
/// the skip shows in a normal `cargo test` run.
pub fn postgres_skipped(test: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: {POSTGRES_URL_VAR} not set"
    );
}

/// Declares, for each `async fn NAME(db: &mut TestDb) -> anyhow::Result<()>` in
/// scope, the tests `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> ::anyhow::Result<()> {
                    let db = $crate::testing::TestDb::sqlite().await?;
                    $crate::testing::run_test(db, super::$name).await
                }
            )+
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> ::anyhow::Result<()> {
                    match $crate::testing::TestDb::postgres().await? {
                        Some(db) => $crate::testing::run_test(db, super::$name).await,
                        None => {
                            $crate::testing::postgres_skipped(concat!("postgres::", stringify!($name)));
                            Ok(())
                        }
                    }
                }
            )+
        }
    };
}

/// Runs `test` on `db`, then drops the database even if the test panicked.
pub async fn run_test<F>(mut db: TestDb, test: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&mut TestDb) -> anyhow::Result<()>,
{
    use futures_util::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(test(&mut db))
        .catch_unwind()
        .await;
    db.cleanup().await;
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
