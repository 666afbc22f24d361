//! The `lianxin` binary: parses the configuration and runs `serve` or an admin command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lianxin_server::AppState;
use lianxin_server::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

// Many small, short-lived allocations (documents, frames, rows) across
// threads: mimalloc spends less time on them than the system allocator, and
// returns memory without the page-fault churn measured under fan-out load.
// Built without transparent huge pages (`no_thp`): with them, memory it had
// purged came back as 2 MiB pages zeroed on first touch, and loading a
// 10,000-member room took 85 ms of CPU instead of 15.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run_cli(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("lianxin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.config.log).context("invalid log filter")?)
        .with_writer(std::io::stderr)
        .init();
    match &cli.command {
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(cli.config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", cli.config.listen))?;
            let addr = listener.local_addr()?;
            let clock = std::sync::Arc::new(lianxin_server::clock::SystemClock);
            let state = AppState::from_config_with(&cli.config, clock, args.cache_docs).await?;
            if args.demo {
                let banner = lianxin_server::demo::seed(&state).await?;
                println!("{}", banner.replace("<address>", &addr.to_string()));
            }
            tracing::info!(%addr, database = %redact(&cli.config.database_url()), "serving");
            println!("staff console: http://{addr}/");
            println!("lianxin listening on http://{addr}");
            lianxin_server::serve(listener, state, shutdown_signal()).await?;
        }
        Command::Bench(lianxin_server::config::BenchCommand::Ingest(args)) => {
            let url = cli.config.database_url();
            std::fs::create_dir_all(cli.config.data_dir())?;
            let storage = lianxin_server::storage::Storage::open(&url).await?;
            let backend = if url.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            };
            for line in lianxin_server::bench::ingest(storage, backend, args).await? {
                println!("{line}");
            }
        }
        Command::Bench(lianxin_server::config::BenchCommand::Fanout(args)) => {
            for line in lianxin_server::bench_fanout::fanout(cli.config.database_url.clone(), args).await? {
                println!("{line}");
            }
        }
        Command::Bench(lianxin_server::config::BenchCommand::Kpi(args)) => {
            let url = cli.config.database_url();
            std::fs::create_dir_all(cli.config.data_dir())?;
            let storage = lianxin_server::storage::Storage::open(&url).await?;
            let backend = if url.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            };
            for line in lianxin_server::bench_kpi::kpi(storage, backend, args).await? {
                println!("{line}");
            }
        }
        Command::Bench(lianxin_server::config::BenchCommand::BareServer) => {
            lianxin_server::bench_fanout::bare_server(cli.config.listen).await?;
        }
        Command::Admin(command) => {
            let output = lianxin_server::admin::run(&cli.config, command).await?;
            println!("{output}");
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The database URL without its password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
