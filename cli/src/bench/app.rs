//! `lianxin bench app`: the resident app in headless Chromium through the link simulator
//! (`lianxin_testkit::linksim`), on the demo county: bytes on the wire and time to a usable page
//! for a first load (a fresh browser: the sign-in page ready) and a repeat visit (the same
//! browser signed in: the list of my petitions ready), each beside its physical floor.
//!
//! The floor is what the link itself costs: the bytes that crossed it at the profile's rate
//! each way, plus the round trips the page cannot avoid (a first load: the connection, the
//! page, its files; a repeat visit: one API call, plus the connection if none was left open,
//! the shell coming from the service worker). The simulator shapes each connection on its own, so a browser that
//! opens several in parallel may beat a single-link floor; `connections` says how many it
//! opened.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use lianxin_server::config::Config;
use lianxin_server::state::AppState;
use lianxin_testkit::browser::{Chromium, Options, Session};
use lianxin_testkit::linksim::{LinkSim, Profile};
use serde_json::json;
use sync_core::UserId;

#[derive(Clone, Debug, Args)]
pub struct AppArgs {
    /// Link profiles, comma-separated (rural-2g, edge-lossy, g3-slow, loopback).
    #[arg(long, default_value = "rural-2g,edge-lossy", value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Longest wait for a page to become usable, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// The resident whose app is loaded.
    #[arg(long, default_value = "res-zhang")]
    pub user: String,
}

/// The round trips a first load cannot avoid: TCP connection, the page, its files.
const FIRST_LOAD_TURNS: u64 = 3;
/// A repeat visit's: the list of petitions (the shell is local), plus a TCP connection if the
/// browser had none left open.
fn repeat_turns(connections: u64) -> u64 {
    if connections > 0 { 2 } else { 1 }
}

pub async fn app(config: &Config, args: &AppArgs) -> anyhow::Result<Vec<String>> {
    let Some(chromium) = Chromium::start().await? else {
        bail!("bench app needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)");
    };
    let dir = tempfile::tempdir()?;
    let mut config = config.clone();
    config.data_dir = dir.path().to_path_buf();
    config.database_url = None;
    let clock = std::sync::Arc::new(lianxin_server::clock::SystemClock);
    let state = AppState::from_config_with(&config, clock, 1024).await?;
    lianxin_demo::seed(&state).await?;
    let user = UserId::new(args.user.as_str())?;
    let token = state.auth.mint_access_token(&user, 12 * 3_600_000).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lianxin_server::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{upstream}/api/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut lines = Vec::new();
    let timeout = Duration::from_secs(args.timeout_secs);
    for name in &args.profiles {
        let profile = Profile::by_name(&name.replace('-', "_"))
            .with_context(|| format!("no link profile {name} (rural-2g, edge-lossy, g3-slow, loopback)"))?;
        let link = LinkSim::start(upstream, profile.clone(), 7).await?;
        let base = format!("http://{}", link.addr());
        let browser = chromium
            .session(Options {
                javascript: true,
                width: 360,
                height: 740,
            })
            .await?;

        // First load: a browser that has never seen the app.
        link.reset_stats();
        let started = Instant::now();
        browser.goto(&format!("{base}/app/")).await?;
        wait_ready(&browser, "login", timeout).await?;
        let first = (started.elapsed(), link.stats());
        // Let the service worker finish keeping the shell before the next visit.
        browser
            .execute("return navigator.serviceWorker.ready.then(() => true);", json!([]))
            .await?;
        sign_in(&browser, &token, &me).await?;

        // Repeat visit: the same browser, signed in, opening the app again.
        browser.goto("about:blank").await?;
        link.reset_stats();
        let started = Instant::now();
        browser.goto(&format!("{base}/app/#/petitions")).await?;
        wait_ready(&browser, "petitions", timeout).await?;
        let repeat = (started.elapsed(), link.stats());
        browser.close().await?;

        for (visit, (took, stats), turns) in [
            ("first_load", first, FIRST_LOAD_TURNS),
            ("repeat_visit", repeat, repeat_turns(repeat.1.connections)),
        ] {
            let floor = floor_ms(&profile, stats.bytes_down, stats.bytes_up, turns);
            let ms = took.as_secs_f64() * 1000.0;
            lines.push(format!(
                "profile={} visit={visit} bytes_down={} bytes_up={} connections={} round_trips={} \
                 usable_ms={ms:.0} floor_ms={floor:.0} floor_round_trips={turns} ratio_vs_floor={:.2}",
                profile.name,
                stats.bytes_down,
                stats.bytes_up,
                stats.connections,
                stats.round_trips,
                if floor > 0.0 { ms / floor } else { 0.0 },
            ));
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(lines)
}

/// Bytes each way at the link's rate, plus the unavoidable round trips.
fn floor_ms(profile: &Profile, down: u64, up: u64, turns: u64) -> f64 {
    use lianxin_testkit::linksim::Direction;
    let at = |bytes: u64, d: Direction| {
        let bps = profile.bps(d);
        if bps == lianxin_testkit::linksim::UNLIMITED_BPS {
            0.0
        } else {
            bytes as f64 * 8.0 * 1000.0 / bps as f64
        }
    };
    at(down, Direction::Down) + at(up, Direction::Up) + turns as f64 * profile.rtt.as_secs_f64() * 1000.0
}

async fn wait_ready(browser: &Session, page: &str, timeout: Duration) -> anyhow::Result<()> {
    browser.wait_for(&format!("body[data-ready='{page}']"), timeout).await
}

/// Puts the resident's session where the app keeps it (IndexedDB), as signing in would.
async fn sign_in(browser: &Session, token: &str, me: &serde_json::Value) -> anyhow::Result<()> {
    let session = json!({ "access_token": token, "refresh_token": "", "me": me });
    let done = browser
        .execute(
            "const s = arguments[0]; return new Promise((ok) => { const r = indexedDB.open('lianxin', 1); \
             r.onsuccess = () => { const t = r.result.transaction('kv', 'readwrite'); \
             t.objectStore('kv').put(s, 'session'); t.oncomplete = () => ok(true); }; });",
            json!([session]),
        )
        .await?;
    if done != json!(true) {
        bail!("could not store the session: {done}");
    }
    Ok(())
}
