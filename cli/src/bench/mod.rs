//! Benchmarks: commands that print `key=value` lines, each comparing with a
//! baseline measured in the same run.

pub mod app;
pub mod fanout;
pub mod federation;
pub mod ingest;
pub mod kpi;
pub mod reconnect;
pub mod storm;
mod tiers;
pub mod write;

use lianxin_server::config::Config;
use lianxin_server::storage::Storage;

use crate::cli::BenchCommand;

/// Runs a benchmark and returns its lines.
pub async fn run(config: &Config, command: &BenchCommand) -> anyhow::Result<Vec<String>> {
    match command {
        BenchCommand::Ingest(args) => {
            let (storage, backend) = open(config).await?;
            ingest::ingest(storage, backend, args).await
        }
        BenchCommand::Write(args) => write::write(config, args).await,
        BenchCommand::App(args) => app::app(config, args).await,
        BenchCommand::Reconnect(args) => reconnect::reconnect(config, args).await,
        BenchCommand::Federation(args) => federation::federation(config, args).await,
        BenchCommand::Storm(args) => storm::storm(config, args).await,
        BenchCommand::Fanout(args) => fanout::fanout(config.database_url.clone(), args).await,
        BenchCommand::Kpi(args) => {
            let (storage, backend) = open(config).await?;
            kpi::kpi(storage, backend, args).await
        }
        BenchCommand::BareServer => anyhow::bail!("the bare server runs until stopped, not as a benchmark"),
    }
}

/// The configured database and its backend's name.
async fn open(config: &Config) -> anyhow::Result<(Storage, &'static str)> {
    let url = config.database_url();
    std::fs::create_dir_all(config.data_dir())?;
    let storage = Storage::open(&url).await?;
    Ok((
        storage,
        if url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        },
    ))
}
