//! Servers in this process for the benchmarks that run several of them (a
//! county and its station, a server under a reconnect storm): each on a
//! SQLite database in a directory of its own, on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lianxin_server::config::Config;
use lianxin_server::state::AppState;
use sync_core::{Principal, UserId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct Node {
    pub state: AppState,
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), lianxin_server::ServerError>>,
}

/// `base` for a server on `dir`: its own database and JWT secret, and no
/// clock sweep while a benchmark runs (`--scheduler-every` one day), so the
/// figures are the benchmark's work alone.
pub fn config_for(base: &Config, dir: &Path) -> Config {
    let mut config = base.clone();
    config.data_dir = dir.to_path_buf();
    config.database_url = None;
    config.jwt_secret = None;
    config.upstream = None;
    config.scheduler_every = Duration::from_secs(24 * 3600);
    config
}

impl Node {
    /// Starts a server with `config` on the current runtime.
    pub async fn start(config: &Config) -> anyhow::Result<Node> {
        let clock = Arc::new(lianxin_server::clock::SystemClock);
        let state = AppState::from_config_with(config, clock, lianxin_server::docs::DEFAULT_CACHE_DOCS).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(lianxin_server::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Node {
            state,
            addr,
            stop,
            task,
        })
    }

    /// Stops the server and closes its database, so its files can be copied.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the server task")??;
        Ok(())
    }

    pub async fn principal(&self, user: &str) -> anyhow::Result<Principal> {
        Ok(self.state.auth.principal(&UserId::new(user)?).await?)
    }

    pub async fn token(&self, user: &str) -> anyhow::Result<String> {
        Ok(self
            .state
            .auth
            .mint_access_token(&UserId::new(user)?, 12 * 3_600_000)
            .await?)
    }
}

/// Runs `work` over `items` with `concurrency` at once; fails on the first error.
pub async fn each<T, F, Fut>(items: Vec<T>, concurrency: usize, work: F) -> anyhow::Result<()>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut running = futures_util::stream::iter(items.into_iter().map(work)).buffer_unordered(concurrency.max(1));
    while let Some(done) = running.next().await {
        done?;
    }
    Ok(())
}
