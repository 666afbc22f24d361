//! `lianxin bench reconnect`: a phone's reconnect through the link simulator
//! (`lianxin_testkit::linksim`), the phone library's way before and after the
//! inbox moved into the batched exchange, in the same run.
//!
//! The phone is the real phone library (`lianxin-mobile`), holding `--docs`
//! petitions (letters to the director's mailbox, whose duty officer it
//! belongs to) and its inbox, synced and settled before anything is
//! measured. Each profile runs three ways:
//!
//! - `separate_requests`: the library with `inbox_in_exchange` off, as it
//!   synced before: the `/batch` WebSocket, then `GET /api/inbox` (and
//!   `POST /api/inbox/ack` when something new came), then the clock rules
//!   and the unit tree;
//! - `one_exchange`: the `/batch` WebSocket carrying the inbox, its
//!   acknowledgement and the settings generation;
//! - `one_post`: the same exchange as one `POST /batch`.
//!
//! and two scenarios: `idle` (nothing changed) and `news` (`--news` letters
//! arrived while the phone was away: new documents and notifications). Every
//! figure is what crossed the simulated link: bytes each way, connections,
//! round trips (turns from client data to server data), and the time the
//! library's `sync_with` took.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Args;
use lianxin_mobile::{Replica, SessionConfig, SyncOptions, SyncReport, SyncTransport};
use lianxin_server::config::Config;
use lianxin_server::state::AppState;
use lianxin_testkit::linksim::{LinkSim, Profile, Stats};
use serde_json::json;
use sync_core::UserId;
use sync_core::repo_protocol::DocumentId;

#[derive(Clone, Debug, Args)]
pub struct ReconnectArgs {
    /// Link profiles, comma-separated (rural-2g, edge-lossy, g3-slow, loopback).
    #[arg(long, default_value = "rural-2g", value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Documents the phone holds.
    #[arg(long, default_value_t = 500)]
    pub docs: usize,
    /// Letters (new documents and notifications) waiting at the `news` reconnect.
    #[arg(long, default_value_t = 3)]
    pub news: usize,
}

/// The phone's user: the director's mailbox duty officer.
const OFFICER: &str = "duty-lin";
const WRITER: &str = "res-zhang";

const MODES: [(&str, bool, SyncTransport); 3] = [
    ("separate_requests", false, SyncTransport::WebSocket),
    ("one_exchange", true, SyncTransport::WebSocket),
    ("one_post", true, SyncTransport::Http),
];

pub async fn reconnect(config: &Config, args: &ReconnectArgs) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let mut config = config.clone();
    config.data_dir = dir.path().to_path_buf();
    config.database_url = None;
    let clock = Arc::new(lianxin_server::clock::SystemClock);
    let state = AppState::from_config_with(&config, clock, 1024).await?;
    lianxin_demo::seed(&state).await?;
    let writer = state
        .auth
        .mint_access_token(&UserId::new(WRITER)?, 12 * 3_600_000)
        .await?;
    let officer = state
        .auth
        .mint_access_token(&UserId::new(OFFICER)?, 12 * 3_600_000)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lianxin_server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://{upstream}");
    letters(&http, &base, &writer, args.docs).await?;

    // The phone syncs everything over loopback and settles: a second pass
    // learns the server's protocol version, a third finds nothing new.
    let phone_dir = tempfile::tempdir()?;
    let path = phone_dir.path().join("phone.sqlite").display().to_string();
    let direct = open(&path, &base, &officer)?;
    for _ in 0..3 {
        pass(
            &direct,
            SyncOptions {
                max_exchanges: 64,
                ..lianxin_mobile::default_sync_options()
            },
        )
        .await?;
    }
    let held = direct.list_petitions()?.len();
    ensure!(held >= args.docs, "the phone holds {held} petitions, not {}", args.docs);
    drop(direct);

    let mut lines = Vec::new();
    for name in &args.profiles {
        let profile = Profile::by_name(&name.replace('-', "_"))
            .with_context(|| format!("no link profile {name} (rural-2g, edge-lossy, g3-slow, loopback)"))?;
        let link = LinkSim::start(upstream, profile.clone(), 11).await?;
        let phone = open(&path, &format!("http://{}", link.addr()), &officer)?;
        for scenario in ["idle", "news"] {
            let mut runs = Vec::new();
            for (mode, inbox_in_exchange, transport) in MODES {
                if scenario == "news" {
                    letters(&http, &base, &writer, args.news).await?;
                }
                let options = SyncOptions {
                    inbox_in_exchange,
                    transport,
                    max_attempts: 1,
                    timeout_ms: 600_000,
                    ..lianxin_mobile::default_sync_options()
                };
                link.reset_stats();
                let started = Instant::now();
                let report = pass(&phone, options).await?;
                let seconds = started.elapsed().as_secs_f64();
                let stats = link.stats();
                if scenario == "news" {
                    ensure!(
                        report.notifications_added as usize >= args.news,
                        "{mode}: {} notifications arrived for {} letters",
                        report.notifications_added,
                        args.news
                    );
                }
                lines.push(line(&profile, held, scenario, mode, &stats, seconds, &report));
                runs.push((mode, stats, seconds));
            }
            let (_, old, old_s) = runs[0];
            for (mode, stats, seconds) in &runs[1..] {
                lines.push(format!(
                    "profile={} docs={held} scenario={scenario} mode={mode} ratio_bytes_vs_separate_requests={:.2} \
                     ratio_seconds_vs_separate_requests={:.2} round_trips_saved={}",
                    profile.name,
                    total(stats) as f64 / total(&old) as f64,
                    seconds / old_s,
                    old.round_trips as i64 - stats.round_trips as i64,
                ));
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(lines)
}

fn total(s: &Stats) -> u64 {
    s.bytes_up + s.bytes_down
}

fn line(
    profile: &Profile,
    docs: usize,
    scenario: &str,
    mode: &str,
    s: &Stats,
    seconds: f64,
    report: &SyncReport,
) -> String {
    format!(
        "profile={} docs={docs} scenario={scenario} mode={mode} bytes={} bytes_up={} bytes_down={} connections={} \
         round_trips={} retransmissions={} seconds={seconds:.2} exchanges={} notifications={}",
        profile.name,
        total(s),
        s.bytes_up,
        s.bytes_down,
        s.connections,
        s.round_trips,
        s.retransmissions,
        report.exchanges,
        report.notifications_added,
    )
}

fn open(path: &str, url: &str, token: &str) -> anyhow::Result<Arc<Replica>> {
    let replica = Replica::open(
        path.to_owned(),
        SessionConfig {
            server_url: url.to_owned(),
            user_id: OFFICER.to_owned(),
            memberships: vec![],
            household: None,
            units: vec![],
        },
    )?;
    replica.set_access_token(Some(token.to_owned()));
    Ok(replica)
}

/// One sync pass of the phone library, on a blocking thread as an app runs it.
async fn pass(phone: &Arc<Replica>, options: SyncOptions) -> anyhow::Result<SyncReport> {
    let phone = phone.clone();
    Ok(tokio::task::spawn_blocking(move || phone.sync_with(options)).await??)
}

/// Files `n` letters to the director's mailbox, four at a time.
async fn letters(http: &reqwest::Client, base: &str, token: &str, n: usize) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let batch = left.min(4);
        let posts = (0..batch).map(|i| {
            let id = DocumentId::from_bytes(rand::random());
            let body = json!({
                "id": id.to_string(), "channel": "director_mailbox", "category": "help",
                "title": format!("停水求助 {}", left - i), "body": "家里的水停了三天，请帮忙联系水利站。",
                "location": {"unit": "village-shangping"}, "routed_to": "mailbox-taskforce",
            });
            http.post(format!("{base}/api/petitions"))
                .bearer_auth(token)
                .json(&body)
                .send()
        });
        for response in futures_util::future::join_all(posts).await {
            let response = response?;
            ensure!(
                response.status().as_u16() == 201,
                "filing a letter: {}",
                response.text().await?
            );
        }
        left -= batch;
    }
    Ok(())
}
