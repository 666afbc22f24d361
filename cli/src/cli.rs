//! The command line of `lianxin`: the settings every command shares (from
//! the server's [`Config`]) and the commands.

use clap::{Parser, Subcommand};
use lianxin_server::config::{AdminCommand, Config, ServeArgs};

/// Lianxin (连心): offline-first petitions and village discussions.
#[derive(Debug, Parser)]
#[command(name = "lianxin", version)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Benchmarks that print `key=value` lines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Administration against the same database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Documents created and changes acknowledged per second, and memory held, on the configured database.
    Ingest(crate::bench::ingest::IngestArgs),
    /// Concurrent writers through the write path, one node and two, beside raw inserts of the same changes.
    Write(crate::bench::write::WriteArgs),
    /// Notification fan-out to WebSocket subscribers, beside a bare tokio broadcast server.
    Fanout(crate::bench::fanout::FanoutArgs),
    /// The KPI report's time over many petitions, beside a plain COUNT(*) over the same table.
    Kpi(crate::bench::kpi::KpiArgs),
    /// The resident app in headless Chromium through the link simulator: bytes and time to a
    /// usable page, first load and repeat visit, beside the physical floor.
    App(crate::bench::app::AppArgs),
    /// A phone's reconnect through the link simulator (500 documents held): the phone library's
    /// separate requests beside the one exchange that carries the inbox, WebSocket and POST.
    Reconnect(crate::bench::reconnect::ReconnectArgs),
    /// A station reconnecting to its county after a day offline (20,000 documents held), through
    /// the link simulator: its uplink beside stock automerge-repo sync, against the floor.
    Federation(crate::bench::federation::FederationArgs),
    /// 5,000 phones reconnecting to one server at once after an outage, some with changes:
    /// server CPU per phone and p99 time, beside the same phones with nothing changed.
    Storm(crate::bench::storm::StormArgs),
    /// The bare broadcast server `bench fanout` compares with (started by it).
    #[command(hide = true)]
    BareServer,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn serve_alone_has_working_defaults() {
        let cli = Cli::try_parse_from(["lianxin", "serve"]).expect("parses");
        assert!(matches!(cli.command, Command::Serve(_)));
        assert_eq!(cli.config.listen.port(), 8470);
        assert_eq!(cli.config.body_limit, 1024 * 1024);
        if std::env::var_os("DATABASE_URL").is_none() && std::env::var_os("LIANXIN_DATA_DIR").is_none() {
            assert_eq!(cli.config.database_url(), "sqlite:./data/lianxin.sqlite");
        }
    }

    #[test]
    fn admin_commands_parse() {
        let cli =
            Cli::try_parse_from(["lianxin", "admin", "mint-token", "--user", "u1", "--ttl", "1h"]).expect("parses");
        match cli.command {
            Command::Admin(AdminCommand::MintToken { user, ttl }) => {
                assert_eq!(user, "u1");
                assert_eq!(ttl, Duration::from_secs(3600));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
