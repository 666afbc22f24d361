//! `lianxin bench federation`: a station reconnecting to its county after a
//! day offline, through the link simulator, with the station's uplink
//! (`lianxin_server::station`, the batched extension) beside stock
//! automerge-repo per-document sync of the same documents between the same
//! two servers. Prints `key=value` lines.
//!
//! Set-up, once: a county (the demo organisation, with an account for the
//! east station's server) and the east station, two servers in this process
//! on SQLite. `--docs` petitions of the east station are built in memory and
//! written into both storages (at the county through the write path as their
//! recorder's, at the station as the county's: `apply_upstream`); the
//! station's uplink then runs its first round straight to the county, so the
//! two hold the same documents and the station's cursor and shared heads say
//! so. Both are stopped and their databases copied for each run.
//!
//! The day, the same in every run: the station's officer changed
//! `--station-docs` petitions (`--station-changes` comments of about 20
//! characters) and filed `--new-docs` petitions at the station; the county's
//! director commented `--county-changes` times on `--county-docs` others and
//! filed `--new-docs` there. The floor is the growth of every changed
//! document's compressed `save()` (both sides, new documents from nothing),
//! as the sync benchmark defines it.
//!
//! Each profile runs the uplink and then stock sync, each on fresh copies:
//!
//! - `batched`: the station's uplink goes through the simulated link and
//!   completes a round (signed in, directory read) before the link is cut;
//!   while it is down the day's changes are stored at both tiers (through
//!   each server's write path, as the phones and consoles would). The link
//!   comes back after a failed attempt of the uplink; the run ends when the
//!   uplink reports its next completed round. Every document's heads are
//!   then compared at both tiers and with the expected ones. A day outlasts
//!   the station's 15-minute access token, so after one the uplink signs in
//!   again before it reconnects: with `--expired-token` (the default) its
//!   `silence` is set past the token's life, and as it renews its token once
//!   less than `silence` of it is left, it signs in before every round, as
//!   after a day.
//! - `stock`: the station's documents are read from its storage (every one it
//!   holds: stock automerge-repo has no way to tell which changed) into a
//!   stock automerge-repo v1 client (`lianxin_testkit::stock`, behaving as
//!   the npm client does: every document offered at once, each with its own
//!   sync state) that syncs them with the county's `/sync` and asks for the
//!   county's new documents by id. Stock automerge-repo has no relay, so it
//!   signs in as the officer whose changes it carries (a server account could
//!   not write others' changes through it). Given up after `--stock-timeout`
//!   seconds (`converged=false`).
//!
//! Round trips are the simulator's turns from client data to server data.
//! `round_trips_after_setup` leaves out each WebSocket upgrade (connection
//! set-up, like TCP's handshake, which the simulator never counts as a round
//! trip); each connection's own figures are printed too, named by its
//! request, so a sign-in or a directory read before the exchange shows.
//! `docs_loaded_*` count documents read from storage by each server's
//! document service during the run (its LRU cache holds what the day's
//! writes touched, as a running server's would).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use automerge::{AutoCommit, Change, ChangeHash};
use lianxin_demo::writing::{Text, Writer, comment_with, copy_db, doc_id, petition, save_growth};
use lianxin_server::config::Config;
use lianxin_server::station::{Uplink, UpstreamConfig};
use lianxin_testkit::linksim::{ConnectionStats, CutPlan, Direction, LinkSim, Profile, Stats};
use sync_core::batch::DocId;
use sync_core::relay::Backoff;
use sync_core::repo_protocol::DocumentId;

use super::tiers::{Node, config_for, each};

#[derive(Clone, Debug, clap::Args)]
pub struct FederationArgs {
    /// Link profiles, comma-separated (rural-2g, edge-lossy, g3-slow, loopback).
    #[arg(long, default_value = "rural-2g,edge-lossy,loopback", value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Petitions both tiers hold, in sync, before the day.
    #[arg(long, default_value_t = 20_000)]
    pub docs: usize,
    /// Comments made at the station during the day, across `--station-docs` petitions.
    #[arg(long, default_value_t = 5_000)]
    pub station_changes: usize,
    #[arg(long, default_value_t = 500)]
    pub station_docs: usize,
    /// Comments made at the county during the day, across `--county-docs` other petitions.
    #[arg(long, default_value_t = 2_000)]
    pub county_changes: usize,
    #[arg(long, default_value_t = 200)]
    pub county_docs: usize,
    /// Petitions filed during the day at each tier.
    #[arg(long, default_value_t = 50)]
    pub new_docs: usize,
    /// Have the uplink sign in again before it reconnects, as after a day (its token expired).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub expired_token: bool,
    /// Give up on stock sync after this many seconds (it then reports `converged=false`).
    #[arg(long, default_value_t = 600)]
    pub stock_timeout: u64,
    /// Run only the station's uplink.
    #[arg(long)]
    pub skip_stock: bool,
    /// Give up on the uplink's reconnect after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Seed of the link simulator's losses.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const STATION_LOGIN: &str = "station-east";
const STATION_ACCOUNT: &str = "station-east-server";
const STATION_PASSWORD: &str = "east station uplink, benchmark";
/// The station's officer, whose phone's changes the station holds.
const OFFICER: &str = "officer-li";
/// The county's director, who comments on the station's petitions and files new ones.
const DIRECTOR: &str = "director";

/// One document's changes of the day, as one write.
#[derive(Clone)]
struct Write {
    key: String,
    changes: Vec<Change>,
}

/// The set-up and the day, prepared.
struct Prepared {
    county_db: std::path::PathBuf,
    station_db: std::path::PathBuf,
    station_writes: Vec<Write>,
    county_writes: Vec<Write>,
    /// Every document both tiers must end with, and its heads.
    expected: BTreeMap<DocId, Vec<ChangeHash>>,
    /// What the station holds before it reconnects (all but the county's new documents).
    station_held: Vec<DocId>,
    county_new: Vec<DocId>,
    floor_bytes: usize,
}

fn key(id: DocId) -> String {
    DocumentId::from_bytes(id.0).to_string()
}

fn profile(name: &str) -> anyhow::Result<Profile> {
    let canonical = match name {
        "3g-slow" | "g3-slow" => "g3_slow".to_owned(),
        other => other.replace('-', "_"),
    };
    Profile::by_name(&canonical)
        .with_context(|| format!("no link profile {name} (rural-2g, edge-lossy, g3-slow, loopback)"))
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "inf".into()
    } else {
        format!("{:.3}", a / b)
    }
}

pub async fn federation(base: &Config, args: &FederationArgs) -> anyhow::Result<Vec<String>> {
    ensure!(
        args.station_docs + args.county_docs <= args.docs,
        "the changed documents must be among the --docs held"
    );
    let profiles: Vec<Profile> = args
        .profiles
        .iter()
        .map(|p| profile(p))
        .collect::<anyhow::Result<_>>()?;
    let tmp = tempfile::tempdir()?;
    let started = Instant::now();
    let prepared = prepare(base, tmp.path(), args).await?;
    eprintln!("federation: set-up done in {:.0} s", started.elapsed().as_secs_f64());
    let mut lines = vec![format!(
        "scenario=station-day docs={} station_changes={} station_docs={} county_changes={} county_docs={} new_docs_each_side={} \
         docs_changed_station={} docs_changed_county={} floor_bytes={} expired_token={}",
        args.docs,
        args.station_changes,
        args.station_docs,
        args.county_changes,
        args.county_docs,
        args.new_docs,
        prepared.station_writes.len(),
        prepared.county_writes.len(),
        prepared.floor_bytes,
        args.expired_token,
    )];
    eprintln!("federation: {}", lines[0]);
    for (n, p) in profiles.iter().enumerate() {
        let dir = tmp.path().join(format!("run-{n}"));
        eprintln!("federation: {}: the station's uplink…", p.name);
        let (batched, each_conn) = batched(base, &prepared, &dir.join("batched"), p, args).await?;
        let mut out = vec![run_line(p, "batched", &batched, prepared.floor_bytes)];
        for c in &each_conn {
            out.push(format!(
                "profile={} mode=batched connection={} request={} bytes_up={} bytes_down={} round_trips={}",
                p.name,
                c.index,
                if c.opening.is_empty() {
                    "-".to_owned()
                } else {
                    c.opening.replace(' ', ":")
                },
                c.bytes_up,
                c.bytes_down,
                c.round_trips
            ));
        }
        if !args.skip_stock {
            eprintln!(
                "federation: {}: stock automerge-repo (up to {} s)…",
                p.name, args.stock_timeout
            );
            let stock = stock(base, &prepared, &dir.join("stock"), p, args).await?;
            out.push(run_line(p, "stock", &stock, prepared.floor_bytes));
            let mut summary = format!(
                "profile={} ratio_bytes_vs_stock={} stock_converged={}",
                p.name,
                ratio(batched.bytes() as f64, stock.bytes() as f64),
                stock.converged
            );
            if stock.converged {
                summary.push_str(&format!(
                    " ratio_seconds_vs_stock={}",
                    ratio(batched.seconds, stock.seconds)
                ));
            } else {
                summary.push_str(&format!(" stock_gave_up_after_s={}", args.stock_timeout));
            }
            out.push(summary);
        }
        for line in out {
            // On stderr as it comes too, so a later failure loses no figure.
            eprintln!("federation: {line}");
            lines.push(line);
        }
    }
    Ok(lines)
}

/// What one run moved and how long it took.
struct Run {
    stats: Stats,
    round_trips_after_setup: u64,
    seconds: f64,
    converged: bool,
    loads_station: u64,
    loads_county: u64,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.stats.bytes_up + self.stats.bytes_down
    }
}

fn run_line(p: &Profile, mode: &str, run: &Run, floor: usize) -> String {
    format!(
        "profile={} mode={mode} converged={} bytes_up={} bytes_down={} bytes={} floor_bytes={floor} ratio_bytes_vs_floor={} \
         round_trips={} round_trips_after_setup={} connections={} retransmissions={} seconds={:.2} \
         docs_loaded_station={} docs_loaded_county={}",
        p.name,
        run.converged,
        run.stats.bytes_up,
        run.stats.bytes_down,
        run.bytes(),
        ratio(run.bytes() as f64, floor as f64),
        run.stats.round_trips,
        run.round_trips_after_setup,
        run.stats.connections,
        run.stats.retransmissions,
        run.seconds,
        run.loads_station,
        run.loads_county,
    )
}

/// The uplink's settings for a benchmark: no periodic round (the day's
/// local changes start one, which fails while the link is down), a short
/// backoff so the reconnect starts within 0.2 s of the link's return.
/// With `renew_token`, `silence` is longer than the access token's 15
/// minutes, so the uplink renews its token before every round.
fn uplink_config(url: String, renew_token: bool) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(url, STATION_LOGIN, STATION_PASSWORD);
    config.every = Duration::from_secs(24 * 3600);
    config.silence = Duration::from_secs(if renew_token { 20 * 60 } else { 600 });
    config.backoff = Backoff {
        base_ms: 100,
        max_ms: 200,
    };
    config
}

async fn wait_rounds(uplink: &Uplink, rounds: u64, timeout: Duration) -> anyhow::Result<()> {
    let status = tokio::time::timeout(timeout, uplink.wait_for(|s| s.rounds >= rounds))
        .await
        .with_context(|| format!("the uplink did not complete round {rounds}: {:?}", uplink.status()))?;
    ensure!(status.rounds >= rounds, "the uplink stopped: {status:?}");
    Ok(())
}

async fn prepare(base: &Config, dir: &Path, args: &FederationArgs) -> anyhow::Result<Prepared> {
    let county_db = dir.join("base-county");
    let station_db = dir.join("base-station");
    let county = Node::start(&config_for(base, &county_db)).await?;
    let state = &county.state;
    lianxin_server::admin::import_str(&state.storage, &lianxin_demo::org_file(), false, state.clock.now()).await?;
    state.docs.reload_org().await?;
    let admin = county.token("admin").await?;
    let res = reqwest::Client::new()
        .put(format!("http://{}/api/admin/users/{STATION_ACCOUNT}", county.addr))
        .bearer_auth(admin)
        .json(&serde_json::json!({"display_name": "东岭派出所服务器", "login": STATION_LOGIN, "password": STATION_PASSWORD,
               "memberships": [{"unit": "station-east", "role": "station_server"}]}))
        .send()
        .await?;
    ensure!(
        res.status().is_success(),
        "creating the station's account: {}",
        res.text().await?
    );

    // The station learns its jurisdiction's units and people.
    let station = Node::start(&config_for(base, &station_db)).await?;
    let uplink = lianxin_server::station::spawn(
        station.state.clone(),
        uplink_config(format!("http://{}", county.addr), false),
    );
    wait_rounds(&uplink, 1, Duration::from_secs(300)).await?;
    drop(uplink);

    // The petitions both hold, a day and more old.
    let now = county.state.clock.now();
    let start = now.plus_minutes(-26 * 60);
    eprintln!("federation: building {} petitions…", args.docs);
    let mut recorder = Writer::new(OFFICER, 1);
    let mut base_docs: Vec<(DocId, AutoCommit)> = Vec::with_capacity(args.docs);
    for n in 0..args.docs {
        let id = doc_id(1, n);
        base_docs.push((id, petition(&mut recorder, id, n, start)?));
    }
    let li = county.principal(OFFICER).await?;
    let written = Instant::now();
    let docs = county.state.docs.clone();
    let items: Vec<(String, AutoCommit)> = base_docs.iter().map(|(id, d)| (key(*id), d.clone())).collect();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    each(items, 8, |(key, doc)| {
        let (docs, li, done) = (docs.clone(), li.clone(), done.clone());
        async move {
            let applied = docs.create(&li, &key, doc).await?;
            ensure!(
                applied.refused.is_empty(),
                "refused at the county: {:?}",
                applied.refused
            );
            progress(&done, "written at the county");
            Ok(())
        }
    })
    .await?;
    let docs = station.state.docs.clone();
    let items: Vec<(String, Vec<Change>)> = base_docs
        .iter()
        .map(|(id, d)| (key(*id), d.clone().get_changes(&[])))
        .collect();
    done.store(0, std::sync::atomic::Ordering::Relaxed);
    each(items, 8, |(key, changes)| {
        let (docs, done) = (docs.clone(), done.clone());
        async move {
            let applied = docs.apply_upstream(&key, changes, &Default::default()).await?;
            ensure!(
                applied.refused.is_empty(),
                "refused at the station: {:?}",
                applied.refused
            );
            progress(&done, "written at the station");
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "federation: {} petitions written at both tiers in {:.0} s; the uplink's first round…",
        args.docs,
        written.elapsed().as_secs_f64()
    );
    let synced = Instant::now();
    let uplink = lianxin_server::station::spawn(
        station.state.clone(),
        uplink_config(format!("http://{}", county.addr), false),
    );
    wait_rounds(&uplink, 1, Duration::from_secs(args.timeout)).await?;
    let status = uplink.status();
    drop(uplink);
    eprintln!(
        "federation: in sync (cursor {}) in {:.0} s",
        status.cursor,
        synced.elapsed().as_secs_f64()
    );
    station.stop().await?;
    county.stop().await?;

    // The day, in memory.
    let at = now.plus_minutes(-60);
    let mut li_phone = Writer::new(OFFICER, 3);
    let mut director = Writer::new(DIRECTOR, 4);
    let mut expected: BTreeMap<DocId, Vec<ChangeHash>> =
        base_docs.iter_mut().map(|(id, d)| (*id, d.get_heads())).collect();
    let mut floor = 0;
    let mut day =
        |range: std::ops::Range<usize>, changes: usize, w: &mut Writer, seed: u64| -> anyhow::Result<Vec<Write>> {
            let docs = range.len().max(1);
            let mut out = Vec::new();
            for (k, i) in range.enumerate() {
                let (id, before) = &base_docs[i];
                let count = changes / docs + usize::from(k < changes % docs);
                let mut doc = before.clone();
                let heads = doc.get_heads();
                comment_with(&mut doc, w, count, seed + i as u64, at, Text::Phrases)?;
                floor += save_growth(before, &doc);
                expected.insert(*id, doc.get_heads());
                out.push(Write {
                    key: key(*id),
                    changes: doc.get_changes(&heads),
                });
            }
            Ok(out)
        };
    let mut station_writes = day(0..args.station_docs, args.station_changes, &mut li_phone, 1)?;
    let mut county_writes = day(
        args.station_docs..args.station_docs + args.county_docs,
        args.county_changes,
        &mut director,
        100_000,
    )?;
    let mut station_held: Vec<DocId> = base_docs.iter().map(|(id, _)| *id).collect();
    let mut county_new = Vec::new();
    for j in 0..args.new_docs {
        for (tag, w, writes) in [
            (2u8, &mut li_phone, &mut station_writes),
            (3, &mut director, &mut county_writes),
        ] {
            let id = doc_id(tag, j);
            let mut doc = petition(w, id, 100_000 * tag as usize + j, at)?;
            floor += save_growth(&AutoCommit::new(), &doc);
            expected.insert(id, doc.get_heads());
            writes.push(Write {
                key: key(id),
                changes: doc.get_changes(&[]),
            });
            if tag == 2 {
                station_held.push(id);
            } else {
                county_new.push(id);
            }
        }
    }
    Ok(Prepared {
        county_db,
        station_db,
        station_writes,
        county_writes,
        expected,
        station_held,
        county_new,
        floor_bytes: floor,
    })
}

fn progress(done: &std::sync::atomic::AtomicUsize, what: &str) {
    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_multiple_of(2000) {
        eprintln!("federation: {n} {what}");
    }
}

/// Both tiers on fresh copies of the set-up's databases.
async fn start_pair(base: &Config, prepared: &Prepared, dir: &Path) -> anyhow::Result<(Node, Node)> {
    copy_db(&prepared.county_db, &dir.join("county"))?;
    copy_db(&prepared.station_db, &dir.join("station"))?;
    let county = Node::start(&config_for(base, &dir.join("county"))).await?;
    let station = Node::start(&config_for(base, &dir.join("station"))).await?;
    Ok((county, station))
}

/// Stores the day's writes at both tiers, through each one's write path.
async fn the_day(county: &Node, station: &Node, prepared: &Prepared) -> anyhow::Result<()> {
    for (node, user, writes) in [
        (station, OFFICER, &prepared.station_writes),
        (county, DIRECTOR, &prepared.county_writes),
    ] {
        let who = node.principal(user).await?;
        let docs = node.state.docs.clone();
        each(writes.clone(), 8, |w| {
            let (docs, who) = (docs.clone(), who.clone());
            async move {
                let applied = docs.apply(&who, &w.key, w.changes).await?;
                ensure!(applied.refused.is_empty(), "{} refused: {:?}", w.key, applied.refused);
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Whether both tiers hold every expected document at its expected heads.
async fn converged(county: &Node, station: &Node, expected: &BTreeMap<DocId, Vec<ChangeHash>>) -> anyhow::Result<bool> {
    let mut all = true;
    for node in [county, station] {
        for (id, heads) in expected {
            let held = node.state.docs.copy(&key(*id)).await?.map(|mut d| d.get_heads());
            if held.as_ref() != Some(heads) {
                all = false;
            }
        }
    }
    Ok(all)
}

/// Round trips less one per WebSocket upgrade.
fn after_setup(stats: &Stats, each: &[ConnectionStats]) -> u64 {
    let upgrades = each
        .iter()
        .filter(|c| c.opening == "GET /batch" && c.round_trips > 0)
        .count() as u64;
    stats.round_trips.saturating_sub(upgrades)
}

async fn batched(
    base: &Config,
    prepared: &Prepared,
    dir: &Path,
    p: &Profile,
    args: &FederationArgs,
) -> anyhow::Result<(Run, Vec<ConnectionStats>)> {
    let (county, station) = start_pair(base, prepared, dir).await?;
    let link = LinkSim::start(county.addr, p.clone(), args.seed).await?;
    let uplink = lianxin_server::station::spawn(
        station.state.clone(),
        uplink_config(format!("http://{}", link.addr()), args.expired_token),
    );
    wait_rounds(&uplink, 1, Duration::from_secs(args.timeout)).await?;

    // A day offline: the station's own changes start rounds, which fail
    // and are retried with backoff until the link is back.
    link.set_cut_plan(CutPlan::after(Direction::Up, 0).every_connection());
    link.cut_all_now();
    let rounds = uplink.status().rounds;
    eprintln!("federation: {}: the day's changes at both tiers…", p.name);
    the_day(&county, &station, prepared).await?;
    let failed = uplink.status().failures;
    tokio::time::timeout(Duration::from_secs(60), uplink.wait_for(|s| s.failures > failed))
        .await
        .context("the uplink did not try while the link was down")?;
    ensure!(
        uplink.status().rounds == rounds,
        "a round completed while the link was down"
    );

    // The link comes back between two attempts.
    let (loads_station, loads_county) = (station.state.docs.loads(), county.state.docs.loads());
    link.reset_stats();
    link.clear_cut_plan();
    let t = Instant::now();
    eprintln!("federation: {}: the link is back…", p.name);
    wait_rounds(&uplink, rounds + 1, Duration::from_secs(args.timeout)).await?;
    let seconds = t.elapsed().as_secs_f64();
    let (stats, each_conn) = (link.stats(), link.connections());
    let loads_station = station.state.docs.loads() - loads_station;
    let loads_county = county.state.docs.loads() - loads_county;
    drop(uplink);
    eprintln!(
        "federation: {}: comparing every document's heads at both tiers…",
        p.name
    );
    let converged = converged(&county, &station, &prepared.expected).await?;
    station.stop().await?;
    county.stop().await?;
    Ok((
        Run {
            round_trips_after_setup: after_setup(&stats, &each_conn),
            stats,
            seconds,
            converged,
            loads_station,
            loads_county,
        },
        each_conn,
    ))
}

async fn stock(
    base: &Config,
    prepared: &Prepared,
    dir: &Path,
    p: &Profile,
    args: &FederationArgs,
) -> anyhow::Result<Run> {
    let (county, station) = start_pair(base, prepared, dir).await?;
    the_day(&county, &station, prepared).await?;
    // The station offers every document it holds: read from its storage.
    let loads_station = station.state.docs.loads();
    let mut docs: BTreeMap<DocId, AutoCommit> = BTreeMap::new();
    for id in &prepared.station_held {
        let doc = station.state.docs.copy(&key(*id)).await?.context("a held document")?;
        docs.insert(*id, doc);
    }
    let loads_station = station.state.docs.loads() - loads_station;
    let link = LinkSim::start(county.addr, p.clone(), args.seed).await?;
    let url = format!("ws://{}/sync?token={}", link.addr(), county.token(OFFICER).await?);
    let loads_county = county.state.docs.loads();
    let t = Instant::now();
    let out = lianxin_testkit::stock::sync(
        &url,
        &mut docs,
        &prepared.county_new,
        &prepared.expected,
        Duration::from_secs(args.stock_timeout),
    )
    .await?;
    let seconds = t.elapsed().as_secs_f64();
    let stats = link.stats();
    let loads_county = county.state.docs.loads() - loads_county;
    if !out.converged {
        eprintln!(
            "federation: {}: stock did not converge in {} s; the county said: {:?}",
            p.name,
            args.stock_timeout,
            out.errors.iter().take(5).collect::<Vec<_>>()
        );
    }
    // Stock sync ends when the client's copies and the county's agree; the
    // county's are compared here (the client's copies are the station's side).
    let mut converged = out.converged;
    if converged {
        for (id, heads) in &prepared.expected {
            let held = county.state.docs.copy(&key(*id)).await?.map(|mut d| d.get_heads());
            converged &= held.as_ref() == Some(heads) && docs.get_mut(id).is_some_and(|d| d.get_heads() == *heads);
        }
    }
    drop(link);
    station.stop().await?;
    county.stop().await?;
    Ok(Run {
        stats,
        // Stock automerge-repo's only set-up is the WebSocket upgrade.
        round_trips_after_setup: stats.round_trips.saturating_sub(1),
        seconds,
        converged,
        loads_station,
        loads_county,
    })
}
