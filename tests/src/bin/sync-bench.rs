//! The sync benchmark: the "offline-day" scenario through the same server,
//! once with stock automerge-repo v1 per-document sync and once with the
//! batched extension, over each link profile of the link simulator. Prints
//! `key=value` lines.
//!
//! ```sh
//! cargo run --release -p lianxin-tests --bin sync-bench
//! cargo run --release -p lianxin-tests --bin sync-bench -- --profiles rural-2g --stock-timeout 300
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use automerge::{AutoCommit, ChangeHash};
use clap::Parser;
use lianxin_tests::linksim::{LinkSim, Profile, Stats};
use lianxin_tests::scenario::{self, OfflineDay, PHONE_USER, Prepared, Site, copy_db};
use lianxin_tests::stock;
use sync_core::batch::DocId;

#[derive(Debug, Parser)]
#[command(about = "Stock automerge-repo sync against the batched extension, over simulated links")]
struct Args {
    /// Link profiles to run, comma-separated: loopback, rural-2g, edge-lossy, 3g-slow.
    #[arg(long, default_value = "loopback,rural-2g,edge-lossy,3g-slow", value_delimiter = ',')]
    profiles: Vec<String>,
    /// Petitions the phone holds.
    #[arg(long, default_value_t = OfflineDay::FULL.held)]
    held: usize,
    /// Changes the phone made offline, across `--phone-docs` petitions.
    #[arg(long, default_value_t = OfflineDay::FULL.phone_changes)]
    phone_changes: usize,
    #[arg(long, default_value_t = OfflineDay::FULL.phone_docs)]
    phone_docs: usize,
    /// Changes the server gained, across `--server-docs` petitions of which `--new-docs` are new to the phone.
    #[arg(long, default_value_t = OfflineDay::FULL.server_changes)]
    server_changes: usize,
    #[arg(long, default_value_t = OfflineDay::FULL.server_docs)]
    server_docs: usize,
    #[arg(long, default_value_t = OfflineDay::FULL.new_docs)]
    new_docs: usize,
    /// Comment text: `phrases` (words of petition conversations, ~20
    /// characters) or `random` (uniformly random CJK characters, the worst case).
    #[arg(long, default_value = "phrases")]
    text: scenario::Text,
    /// Give up on a stock sync after this many seconds (it then reports `stock_converged=false`).
    #[arg(long, default_value_t = 900)]
    stock_timeout: u64,
    /// Seed of the link simulator's losses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only the batched extension.
    #[arg(long)]
    skip_stock: bool,
}

/// What one run moved and how long it took.
#[derive(Clone, Copy, Debug)]
struct Run {
    stats: Stats,
    seconds: f64,
    converged: bool,
    loads: u64,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.stats.bytes_up + self.stats.bytes_down
    }
}

fn profile(name: &str) -> anyhow::Result<Profile> {
    let canonical = match name {
        "3g-slow" | "3g_slow" => "g3_slow".to_owned(),
        other => other.replace('-', "_"),
    };
    Profile::by_name(&canonical).with_context(|| format!("unknown profile {name:?}"))
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "inf".into()
    } else {
        format!("{:.3}", a / b)
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profiles: Vec<Profile> = args
        .profiles
        .iter()
        .map(|p| profile(p))
        .collect::<anyhow::Result<_>>()?;
    let shape = OfflineDay {
        held: args.held,
        phone_docs: args.phone_docs,
        phone_changes: args.phone_changes,
        server_docs: args.server_docs,
        new_docs: args.new_docs,
        server_changes: args.server_changes,
        text: args.text,
    };
    ensure!(
        shape.phone_docs + shape.server_docs - shape.new_docs <= shape.held && shape.new_docs <= shape.server_docs,
        "the changed documents must fit among the held ones"
    );
    let tmp = tempfile::tempdir()?;
    eprintln!("preparing the offline day ({} petitions held)…", shape.held);
    let started = Instant::now();
    let prepared = scenario::prepare(&tmp.path().join("base"), shape).await?;
    eprintln!("prepared in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "scenario=offline-day held={} phone_docs={} phone_changes={} server_docs={} new_docs={} server_changes={} text={} floor_bytes={}",
        shape.held,
        shape.phone_docs,
        shape.phone_changes,
        shape.server_docs,
        shape.new_docs,
        shape.server_changes,
        if shape.text == scenario::Text::Random {
            "random"
        } else {
            "phrases"
        },
        prepared.floor_bytes
    );

    for (n, p) in profiles.iter().enumerate() {
        let name = match p.name.as_str() {
            "g3_slow" => "3g-slow".to_owned(),
            other => other.replace('_', "-"),
        };
        let dir = tmp.path().join(format!("run-{n}"));
        eprintln!("{name}: batched…");
        let (batched, idle) = batched(&prepared, &dir.join("batched"), p, args.seed).await?;
        line(&name, "batched", &batched, &idle, prepared.floor_bytes);
        let stock_runs = if args.skip_stock {
            None
        } else {
            eprintln!("{name}: stock (up to {} s)…", args.stock_timeout);
            let timeout = Duration::from_secs(args.stock_timeout);
            let runs = stock_run(&prepared, &dir.join("stock"), p, args.seed, timeout).await?;
            line(&name, "stock", &runs.0, &runs.1, prepared.floor_bytes);
            Some(runs)
        };
        let mut summary = format!(
            "profile={name} bytes_up={} bytes_down={} round_trips={} seconds_to_converge={:.2} docs_loaded_server={} floor_bytes={} ratio_bytes_vs_floor={} idle_bytes={} idle_round_trips={}",
            batched.stats.bytes_up,
            batched.stats.bytes_down,
            batched.stats.round_trips,
            batched.seconds,
            batched.loads,
            prepared.floor_bytes,
            ratio(batched.bytes() as f64, prepared.floor_bytes as f64),
            idle.bytes(),
            idle.stats.round_trips,
        );
        if let Some((stock, _)) = stock_runs {
            summary.push_str(&format!(
                " ratio_bytes_vs_stock={} stock_converged={}",
                ratio(batched.bytes() as f64, stock.bytes() as f64),
                stock.converged
            ));
            if stock.converged {
                summary.push_str(&format!(
                    " ratio_time_vs_stock={}",
                    ratio(batched.seconds, stock.seconds)
                ));
            }
        }
        println!("{summary}");
    }
    Ok(())
}

fn line(profile: &str, mode: &str, run: &Run, idle: &Run, floor: usize) {
    println!(
        "profile={profile} mode={mode} converged={} bytes_up={} bytes_down={} round_trips={} connections={} retransmissions={} seconds_to_converge={:.2} docs_loaded_server={} ratio_bytes_vs_floor={} idle_bytes={} idle_round_trips={} idle_seconds={:.2} idle_docs_loaded_server={}",
        run.converged,
        run.stats.bytes_up,
        run.stats.bytes_down,
        run.stats.round_trips,
        run.stats.connections,
        run.stats.retransmissions,
        run.seconds,
        run.loads,
        ratio(run.bytes() as f64, floor as f64),
        idle.bytes(),
        idle.stats.round_trips,
        idle.seconds,
        idle.loads,
    );
}

/// Checks that the server ended with every document at its expected heads.
async fn check_server(site: &Site, expected: &BTreeMap<DocId, Vec<ChangeHash>>) -> anyhow::Result<bool> {
    for (id, heads) in expected {
        if site.doc(*id).await?.get_heads() != *heads {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn batched(prepared: &Prepared, dir: &std::path::Path, p: &Profile, seed: u64) -> anyhow::Result<(Run, Run)> {
    copy_db(&prepared.db, dir)?;
    let site = Site::start(dir).await?;
    let link = LinkSim::start(site.server.addr, p.clone(), seed).await?;
    let url = site.batch_url(link.addr(), PHONE_USER).await?;
    let mut phone = prepared.phone.clone();

    let loads = site.server.state.docs.loads();
    let t = Instant::now();
    phone.sync(&url, 50).await?;
    let seconds = t.elapsed().as_secs_f64();
    let (stats, loads) = (link.stats(), site.server.state.docs.loads() - loads);
    let mut converged = check_server(&site, &prepared.all_heads).await?;
    for (id, heads) in &prepared.all_heads {
        converged &= phone.store.docs.get_mut(id).is_some_and(|d| d.get_heads() == *heads);
    }
    let run = Run {
        stats,
        seconds,
        converged,
        loads,
    };

    // The idle reconnect meets a restarted server, with nothing cached.
    let site = Site::start(&site.stop().await?).await?;
    let link = LinkSim::start(site.server.addr, p.clone(), seed).await?;
    let url = site.batch_url(link.addr(), PHONE_USER).await?;
    let loads = site.server.state.docs.loads();
    let t = Instant::now();
    let report = phone.sync(&url, 50).await?;
    ensure!(report.is_idle(), "the idle reconnect was not idle: {:?}", report.events);
    let idle = Run {
        stats: link.stats(),
        seconds: t.elapsed().as_secs_f64(),
        converged: true,
        loads: site.server.state.docs.loads() - loads,
    };
    site.stop().await?;
    Ok((run, idle))
}

async fn stock_run(
    prepared: &Prepared,
    dir: &std::path::Path,
    p: &Profile,
    seed: u64,
    timeout: Duration,
) -> anyhow::Result<(Run, Run)> {
    copy_db(&prepared.db, dir)?;
    let site = Site::start(dir).await?;
    let link = LinkSim::start(site.server.addr, p.clone(), seed).await?;
    let url = site.sync_url(link.addr(), PHONE_USER).await?;
    let mut docs: BTreeMap<DocId, AutoCommit> = prepared.phone.store.docs.clone();

    let loads = site.server.state.docs.loads();
    let t = Instant::now();
    let out = stock::sync(&url, &mut docs, &prepared.new_ids, &prepared.all_heads, timeout).await?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.converged {
        eprintln!("{}: stock did not converge; the server said: {:?}", p.name, out.errors);
    }
    let (stats, loads) = (link.stats(), site.server.state.docs.loads() - loads);
    let converged = out.converged && check_server(&site, &prepared.all_heads).await?;
    let run = Run {
        stats,
        seconds,
        converged,
        loads,
    };
    let idle = if converged {
        // The idle reconnect meets a restarted server, with nothing cached.
        let site = Site::start(&site.stop().await?).await?;
        let link = LinkSim::start(site.server.addr, p.clone(), seed).await?;
        let url = site.sync_url(link.addr(), PHONE_USER).await?;
        let loads = site.server.state.docs.loads();
        let t = Instant::now();
        let out = stock::sync(&url, &mut docs, &[], &prepared.all_heads, timeout).await?;
        let idle = Run {
            stats: link.stats(),
            seconds: t.elapsed().as_secs_f64(),
            converged: out.converged,
            loads: site.server.state.docs.loads() - loads,
        };
        site.stop().await?;
        idle
    } else {
        site.stop().await?;
        Run {
            stats: Stats::default(),
            seconds: 0.0,
            converged: false,
            loads: 0,
        }
    };
    Ok((run, idle))
}
