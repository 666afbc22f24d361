//! Test helpers (feature `testing`): isolated databases on both backends, servers on port 0, a webhook recorder.
//!
//! Every test gets its own database: a fresh SQLite file in a temporary
//! directory, or on PostgreSQL (when `LIANXIN_TEST_POSTGRES_URL` is set) a
//! fresh schema that the pool's connections use as their search path, dropped
//! when the test ends. [`backend_tests!`](crate::backend_tests) turns one
//! `async fn name(db: &mut TestDb) -> anyhow::Result<()>` into a test per backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{AuthService, AuthSettings, SmsSender};
use crate::clock::{Clock, ManualClock};
use crate::notify::NotifySettings;
use crate::state::{AppState, HttpSettings};
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
        Ok(TestDb { storage, dir, pg: None })
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
            None => format!("sqlite:{}", self.dir.path().join("lianxin.sqlite").display()),
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
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {POSTGRES_URL_VAR} not set");
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
    let outcome = std::panic::AssertUnwindSafe(test(&mut db)).catch_unwind().await;
    db.cleanup().await;
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A server on 127.0.0.1:0 over a test database, with a manual clock.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), crate::ServerError>>>,
}

/// Notification settings for test servers: the scheduler's own loop is slow
/// (tests call `state.notify.tick()` after moving the clock) and the
/// dispatcher polls often.
pub fn test_notify_settings() -> NotifySettings {
    NotifySettings {
        tick_every: std::time::Duration::from_secs(3600),
        poll_every: std::time::Duration::from_millis(50),
        ..NotifySettings::default()
    }
}

/// A fixed secret for test servers.
pub const TEST_SECRET: &[u8] = b"lianxin test secret, at least 32 bytes long";

impl TestServer {
    /// Serves `storage`; one-time codes go to `sms`.
    pub async fn start(storage: Storage, sms: SmsSender) -> anyhow::Result<Self> {
        Self::start_with(storage, sms, AuthSettings::default(), HttpSettings::default()).await
    }

    pub async fn start_with(
        storage: Storage,
        sms: SmsSender,
        settings: AuthSettings,
        http: HttpSettings,
    ) -> anyhow::Result<Self> {
        Self::start_full(
            storage,
            sms,
            settings,
            http,
            test_notify_settings(),
            ManualClock::starting_now(),
        )
        .await
    }

    /// Serves `storage` with notification settings and a clock of the test's choosing (a
    /// restarted server keeps the clock of the one it replaces).
    pub async fn start_notify(
        storage: Storage,
        notify: NotifySettings,
        clock: Arc<ManualClock>,
    ) -> anyhow::Result<Self> {
        Self::start_full(
            storage,
            SmsSender::DevLog,
            AuthSettings::default(),
            HttpSettings::default(),
            notify,
            clock,
        )
        .await
    }

    /// Serves `storage` with every setting of the test's choosing.
    pub async fn start_full(
        storage: Storage,
        sms: SmsSender,
        settings: AuthSettings,
        http: HttpSettings,
        notify: NotifySettings,
        clock: Arc<ManualClock>,
    ) -> anyhow::Result<Self> {
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let auth = AuthService::new(storage.clone(), dyn_clock.clone(), TEST_SECRET, sms, settings);
        let docs = crate::docs::DocService::new(
            storage.clone(),
            dyn_clock.clone(),
            crate::docs::DocSettings {
                fanout: notify.fanout(),
                ..crate::docs::DocSettings::default()
            },
        )
        .await?;
        let notify = crate::notify::NotifyService::new(storage.clone(), docs.clone(), dyn_clock.clone(), notify)?;
        let state = AppState {
            storage,
            auth,
            clock: dyn_clock,
            http: Arc::new(http),
            docs,
            notify,
            node_id: format!("{:016x}", rand::random::<u64>()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(crate::serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Ok(TestServer {
            addr,
            state,
            clock,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs `body` as JSON (with a bearer token if given); returns the
    /// status and the JSON answer (`null` when empty).
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = reqwest::Client::new().post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await?).await
    }

    /// GETs `path` with a bearer token if given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await?).await
    }

    /// PUTs `body` as JSON (with a bearer token if given).
    pub async fn put(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = reqwest::Client::new().put(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await?).await
    }

    /// DELETEs `path` with a bearer token if given.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = reqwest::Client::new().delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await?).await
    }

    /// A token for `user`, valid for an hour.
    pub async fn token(&self, user: &str) -> anyhow::Result<String> {
        Ok(self
            .state
            .auth
            .mint_access_token(&sync_core::UserId::new(user)?, 60 * 60 * 1000)
            .await?)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(response: reqwest::Response) -> anyhow::Result<(u16, serde_json::Value)> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Ok((status, body))
}

/// Creates a staff user who signs in with `login` / `password` and holds
/// `memberships`.
pub async fn seed_staff(
    storage: &Storage,
    id: &str,
    login: &str,
    password: &str,
    memberships: &[sync_core::Membership],
) -> anyhow::Result<sync_core::UserId> {
    let now = crate::clock::SystemClock.now();
    let id = sync_core::UserId::new(id)?;
    let user = crate::storage::NewUser {
        id: id.clone(),
        login_name: Some(login.to_owned()),
        display_name: login.to_owned(),
        phone: None,
        kind: crate::storage::UserKind::Staff,
        household: None,
    };
    let hash = crate::auth::hash_password(password.to_owned()).await?;
    let mut tx = storage.begin().await?;
    for m in memberships {
        if !tx.unit_exists(&m.unit).await? {
            let unit = sync_core::Unit {
                id: m.unit.clone(),
                name: m.unit.to_string(),
                kind: sync_core::UnitKind::Station,
                parent: None,
            };
            tx.upsert_unit(&unit, now).await?;
        }
    }
    tx.insert_user(&user, now).await?;
    tx.set_password_hash(&id, &hash, now).await?;
    tx.set_memberships(&id, memberships).await?;
    tx.commit().await?;
    Ok(id)
}

/// A tiny HTTP server that records the JSON bodies POSTed to it: a stand-in
/// SMS gateway (or any outbound webhook). It can be told to fail, answering
/// 503 without recording, like a gateway that is down.
pub struct WebhookRecorder {
    pub url: String,
    hook: Arc<Hook>,
    _task: JoinHandle<()>,
}

#[derive(Default)]
struct Hook {
    received: Mutex<Vec<serde_json::Value>>,
    failing: std::sync::atomic::AtomicBool,
    attempts: AtomicU32,
}

impl WebhookRecorder {
    pub async fn start() -> anyhow::Result<Self> {
        let hook = Arc::new(Hook::default());
        let app = axum::Router::new()
            .route("/hook", post(record))
            .with_state(hook.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookRecorder { url, hook, _task: task })
    }

    /// Everything received (and answered 200) so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.hook.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// From now on answer every request with 503 (`true`) or record it (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.hook.failing.store(failing, Ordering::SeqCst);
    }

    /// Requests seen, failed ones included.
    pub fn attempts(&self) -> u32 {
        self.hook.attempts.load(Ordering::SeqCst)
    }

    /// The code in the latest message to `phone`.
    pub fn last_code_for(&self, phone: &str) -> Option<String> {
        self.received()
            .iter()
            .rev()
            .find(|m| m["phone"] == phone)
            .and_then(|m| m["code"].as_str().map(str::to_owned))
    }

    /// An SMS sender that posts here.
    pub fn sender(&self) -> anyhow::Result<SmsSender> {
        Ok(SmsSender::from_config(
            Some(&self.url),
            std::time::Duration::from_secs(5),
        )?)
    }
}

impl Drop for WebhookRecorder {
    fn drop(&mut self) {
        self._task.abort();
    }
}

async fn record(State(hook): State<Arc<Hook>>, Json(body): Json<serde_json::Value>) -> axum::http::StatusCode {
    hook.attempts.fetch_add(1, Ordering::SeqCst);
    if hook.failing.load(Ordering::SeqCst) {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Ok(mut r) = hook.received.lock() {
        r.push(body);
    }
    axum::http::StatusCode::OK
}

/// How [`NodeProcess::launch`] starts a node besides the defaults.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Arguments after `serve`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Generate its own JWT secret in its data directory instead of the
    /// test secret (tiers that must not share one).
    pub own_secret: bool,
    /// Where its log goes; the test's stderr when `None`.
    pub log: Option<std::path::PathBuf>,
}

/// One `lianxin serve` process on a test database, for tests of several
/// nodes and of crashes. `bin` is the `lianxin` binary
/// (`env!("CARGO_BIN_EXE_lianxin")` in the `lianxin` package's integration tests).
pub struct NodeProcess {
    process: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl NodeProcess {
    /// Starts `lianxin serve` on port 0 against `db` with a data directory
    /// `name` under the database's scratch directory and the test JWT
    /// secret; `env` adds environment variables. Returns once the node
    /// prints its address.
    pub async fn start(bin: &std::path::Path, db: &TestDb, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let options = NodeOptions {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..NodeOptions::default()
        };
        Ok(Self::launch(bin, db, name, options).await?.0)
    }

    /// [`NodeProcess::start`] with `serve` arguments, its own secret or the
    /// test one, and its log in a file; also returns the lines it printed
    /// before its address (the demo's banner, the station's upstream).
    pub async fn launch(
        bin: &std::path::Path,
        db: &TestDb,
        name: &str,
        options: NodeOptions,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let dir = db.dir().join(name);
        std::fs::create_dir_all(&dir)?;
        let mut command = tokio::process::Command::new(bin);
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log",
                "warn,lianxin_server::server=error",
                "--data-dir",
            ])
            .arg(&dir)
            .args(["--database-url", &db.database_url(), "serve"])
            .args(&options.args)
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if !options.own_secret {
            command.env("LIANXIN_JWT_SECRET", std::str::from_utf8(TEST_SECRET)?);
        }
        match &options.log {
            Some(path) => command.stderr(std::fs::File::create(path)?),
            None => command.stderr(std::process::Stdio::inherit()),
        };
        let mut process = command.spawn().with_context(|| format!("starting node {name}"))?;
        let mut lines = BufReader::new(process.stdout.take().context("stdout")?).lines();
        let mut printed = Vec::new();
        let url = loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .with_context(|| format!("node {name} did not start in 60 s"))??
                .with_context(|| format!("node {name} exited before it listened"))?;
            if let Some(url) = line.strip_prefix("lianxin listening on ") {
                break url.trim().to_owned();
            }
            printed.push(line);
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((NodeProcess { process, url }, printed))
    }

    /// Kills the process at once (SIGKILL) and waits for it to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.process.kill().await?;
        Ok(())
    }
}
