//! The `lianxin` binary: parses the command line and runs `serve`, an admin
//! command or a benchmark. The server itself is the `lianxin_server` library;
//! the demo county and the benchmarks live here and in `lianxin_demo`, so the
//! library carries neither.

mod bench;
mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli::{BenchCommand, Cli, Command};
use lianxin_server::AppState;
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
                let banner = lianxin_demo::seed(&state).await?;
                println!("{}", banner.replace("<address>", &addr.to_string()));
            }
            tracing::info!(%addr, database = %redact(&cli.config.database_url()), "serving");
            println!("staff console: http://{addr}/");
            println!("resident app: http://{addr}/app/ (sign in with a resident's phone; the code is in the log)");
            let upstream = cli.config.upstream().map_err(anyhow::Error::msg)?;
            // A station of the server above: the uplink runs beside the server.
            let _uplink = upstream.map(|u| {
                println!("station of {} (account {})", u.url, u.login);
                lianxin_server::station::spawn(state.clone(), u)
            });
            println!("lianxin listening on http://{addr}");
            lianxin_server::serve(listener, state, shutdown_signal()).await?;
        }
        Command::Bench(BenchCommand::BareServer) => {
            bench::fanout::bare_server(cli.config.listen).await?;
        }
        Command::Bench(command) => {
            for line in bench::run(&cli.config, command).await? {
                println!("{line}");
            }
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
