//! `lianxin bench storm`: thousands of phones reconnecting to one server at
//! once after an outage, some with changes made meanwhile, beside the same
//! phones reconnecting with nothing changed. Prints `key=value` lines.
//!
//! The organisation: `--phones / --phones-per-unit` stations under one
//! county, each with a village and `--phones-per-unit` officers, each officer
//! with one phone. Officers of a station hold its petitions, as they do:
//! each station has `--docs-per-phone` petitions (located in its village,
//! routed to it), held by every officer's phone, so 5,000 phones holding 50
//! documents each are 100 stations' 5,000 distinct documents.
//!
//! Each phone is sync-core's `BatchClient` (the state machine the phone
//! library and the station uplink run) over its own `/batch` WebSocket, with
//! an in-memory store that keeps each document's heads beside its saved bytes
//! (shared by the station's phones until one changes it), so finding what
//! changed loads nothing, as in the phone library; each exchange carries the
//! phone's inbox (protocol 2) and acknowledges what came, as the library's
//! does. One phone per station syncs for real first; the station's other
//! phones start from its state, with their own inbox read up to date.
//!
//! Three storms, each against the server started afresh (an outage: nothing
//! cached) and all phones started at once: `idle` (nothing changed anywhere)
//! twice, as the first storm in the process also pays for what a process
//! does once (memory mapped for the first time), and then `changes`
//! (`--changed-percent` of the phones, spread evenly over the stations, each
//! made `--changes-per-phone` comments on its own one of the station's
//! petitions), compared with the second idle storm. A phone's time is from
//! the storm's start to its exchange's end (everything it pushed
//! acknowledged, everything after its cursor pulled); p50, p99 and max over
//! the phones. Each phone then closes its connection and waits for the
//! server's close, so the server's CPU time covers all its work for them.
//!
//! Server CPU: the server runs in this process on a runtime of its own,
//! whose threads are named `lianxin-server`; its CPU-seconds are the user +
//! system time of those threads and of SQLite's worker threads
//! (`sqlx-sqlite-worker-*`; the phones use no SQLite) from
//! `/proc/self/task/*/stat`. In this process rather than as a child
//! `lianxin serve` so that the document service's own count of documents
//! read from storage (`docs_loaded`) is read directly, with no counter added
//! to the server's HTTP API. The phones share the machine's cores with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use lianxin_demo::writing::{Text, Writer, comment_with, petition_in};
use lianxin_server::config::Config;
use lianxin_server::state::AppState;
use lianxin_server::storage::{NewUser, UserKind};
use serde_json::json;
use sync_core::batch::{BatchClient, ClientEvent, ClientState, DocId, ReplicaDocs};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Membership, Role, UnitId, UserId};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use super::tiers::{config_for, each};

#[derive(Clone, Debug, clap::Args)]
pub struct StormArgs {
    /// Phones reconnecting at once, one officer each.
    #[arg(long, default_value_t = 5_000)]
    pub phones: usize,
    /// Documents each phone holds: its station's petitions.
    #[arg(long, default_value_t = 50)]
    pub docs_per_phone: usize,
    /// Officers per station, who hold the same petitions.
    #[arg(long, default_value_t = 50)]
    pub phones_per_unit: usize,
    /// Share of the phones that made changes during the outage, in percent.
    #[arg(long, default_value_t = 10)]
    pub changed_percent: usize,
    /// Comments each of those phones made (on one petition of its own).
    #[arg(long, default_value_t = 3)]
    pub changes_per_phone: usize,
    /// Give up on a phone after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

fn officer(i: usize) -> String {
    format!("storm-o-{i}")
}

fn station(u: usize) -> String {
    format!("storm-station-{u}")
}

fn village(u: usize) -> String {
    format!("storm-village-{u}")
}

fn doc_id(u: usize, n: usize) -> DocId {
    let mut id = [0u8; 16];
    id[0] = 0x5c;
    id[4..8].copy_from_slice(&(u as u32).to_be_bytes());
    id[8..].copy_from_slice(&(n as u64).to_be_bytes());
    DocId(id)
}

/// A station's petitions as its phones hold them: heads beside saved bytes.
#[derive(Default)]
struct Shelf {
    docs: BTreeMap<DocId, (Vec<ChangeHash>, Arc<Vec<u8>>)>,
}

/// One phone's documents: the station's shelf, and its own copies of what
/// it changed or pulled since.
struct PhoneDocs {
    shelf: Arc<Shelf>,
    own: BTreeMap<DocId, (Vec<ChangeHash>, AutoCommit)>,
    /// Documents of the shelf this phone dropped (refused whole upstream).
    gone: BTreeSet<DocId>,
    /// Documents this phone read from its store (a load of saved bytes).
    loads: usize,
}

impl PhoneDocs {
    fn heads(&self, id: &DocId) -> Option<&Vec<ChangeHash>> {
        self.own.get(id).map(|(h, _)| h).or_else(|| {
            self.shelf
                .docs
                .get(id)
                .filter(|_| !self.gone.contains(id))
                .map(|(h, _)| h)
        })
    }
}

impl ReplicaDocs for PhoneDocs {
    fn dirty(&self, state: &ClientState) -> Vec<DocId> {
        // The heads are kept beside each document: comparing them loads nothing.
        let ids = self
            .shelf
            .docs
            .keys()
            .chain(self.own.keys().filter(|id| !self.shelf.docs.contains_key(id)));
        ids.filter(|id| !self.gone.contains(id) && state.shared.get(id) != self.heads(id))
            .copied()
            .collect()
    }

    fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
        if let Some((_, doc)) = self.own.get(id) {
            return Some(doc.clone());
        }
        let (_, bytes) = self.shelf.docs.get(id).filter(|_| !self.gone.contains(id))?;
        self.loads += 1;
        AutoCommit::load(bytes).ok()
    }

    fn store(&mut self, id: &DocId, mut doc: AutoCommit) {
        let heads = doc.get_heads();
        self.own.insert(*id, (heads, doc));
        self.gone.remove(id);
    }

    fn remove(&mut self, id: &DocId) {
        self.own.remove(id);
        self.gone.insert(*id);
    }
}

struct Phone {
    token: String,
    client: BatchClient,
    docs: PhoneDocs,
    exchange: u64,
}

impl Phone {
    /// Runs exchanges on one connection until one ends with nothing more to
    /// pull, and returns the milliseconds from `t0` to then. Then closes the
    /// connection and waits for the server's close, which it sends once it
    /// has handled everything before (the inbox acknowledgement), so the
    /// server's work for this phone is all done when this returns.
    async fn sync(&mut self, server: std::net::SocketAddr, t0: Instant) -> anyhow::Result<f64> {
        let url = format!("ws://{server}/batch?token={}", self.token);
        let (ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let (mut tx, mut rx) = ws.split();
        loop {
            self.exchange += 1;
            for f in self.client.start(self.exchange, &mut self.docs) {
                tx.feed(Message::Binary(f.into())).await?;
            }
            tx.flush().await?;
            let mut ack = None;
            let more = loop {
                let bytes = match rx.next().await.context("the server hung up")?? {
                    Message::Binary(b) => b,
                    Message::Close(f) => anyhow::bail!("the server closed the connection: {f:?}"),
                    _ => continue,
                };
                let events = self.client.handle(&bytes, &mut self.docs)?;
                for e in &events {
                    // The notifications are the phone's too: stored, then acknowledged.
                    if let ClientEvent::Inbox { cursor, .. } = e {
                        self.client.carry_inbox(Some(*cursor));
                        ack = self.client.inbox_ack(*cursor);
                    }
                }
                if events.iter().any(|e| matches!(e, ClientEvent::Done { .. })) {
                    break events.contains(&ClientEvent::More);
                }
            };
            let converged = t0.elapsed().as_secs_f64() * 1000.0;
            if let Some(frame) = ack {
                tx.send(Message::Binary(frame.into())).await?;
            }
            if !more {
                tx.send(Message::Close(None)).await?;
                while let Some(Ok(m)) = rx.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
                return Ok(converged);
            }
        }
    }
}

/// The server on a runtime of its own, so its threads can be told apart.
struct Served {
    runtime: Option<Runtime>,
    state: AppState,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(config: &Config) -> anyhow::Result<Served> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("lianxin-server")
            // Idle blocking threads would otherwise exit, taking their CPU time out of the sum.
            .thread_keep_alive(Duration::from_secs(24 * 3600))
            .enable_all()
            .build()?;
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = config.clone();
        let task = runtime.spawn(async move {
            let clock = Arc::new(lianxin_server::clock::SystemClock);
            let state = AppState::from_config_with(&config, clock, lianxin_server::docs::DEFAULT_CACHE_DOCS).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let _ = ready.send((state.clone(), listener.local_addr()?));
            lianxin_server::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await?;
            Ok(())
        });
        let (state, addr) = match started.await {
            Ok(s) => s,
            Err(_) => {
                return Err(task.await?.err().context("the server stopped before listening")?);
            }
        };
        Ok(Served {
            runtime: Some(runtime),
            state,
            addr,
            stop: Some(stop),
            task,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        Ok(())
    }
}

/// User + system CPU seconds of this process's server threads so far.
fn server_cpu_seconds() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses (and may hold spaces); utime and stime
        // are the 12th and 13th fields after it.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !(name.starts_with("lianxin-server") || name.starts_with("sqlx-sqlite-wor")) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        ticks += field(11) + field(12);
    }
    ticks / hz
}

/// User + system CPU seconds of this whole process (server and phones).
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only the struct passed by pointer.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub async fn storm(base: &Config, args: &StormArgs) -> anyhow::Result<Vec<String>> {
    ensure!(
        args.phones_per_unit > 0 && args.phones.is_multiple_of(args.phones_per_unit),
        "--phones must be a multiple of --phones-per-unit"
    );
    let fd_limit = super::fanout::raise_fd_limit();
    let units = args.phones / args.phones_per_unit;
    let changers_per_unit = args.phones_per_unit * args.changed_percent / 100;
    ensure!(
        changers_per_unit <= args.docs_per_phone,
        "each changing phone changes its own petition: too few petitions"
    );
    let dir = tempfile::tempdir()?;
    let mut config = config_for(base, dir.path());
    config.max_connections_per_ip = args.phones + 256;

    eprintln!(
        "storm: set-up: {units} stations, {} officers, {} petitions…",
        args.phones,
        units * args.docs_per_phone
    );
    let server = Served::start(&config).await?;
    let now = server.state.clock.now();
    let (mut phones, shelves) = setup(&server, args, units).await?;
    server.stop().await?;
    let mut lines = vec![format!(
        "scenario=setup phones={} docs_per_phone={} phones_per_unit={} units={units} distinct_docs={} changed_phones={} \
         changes_per_phone={} fd_limit={fd_limit}",
        args.phones,
        args.docs_per_phone,
        args.phones_per_unit,
        units * args.docs_per_phone,
        units * changers_per_unit,
        args.changes_per_phone,
    )];
    eprintln!("storm: {}", lines[0]);

    // The first storm after start-up also pays for what this process does
    // once (memory it maps for the first time, say): run the idle storm
    // twice and compare with the second.
    let first = run_storm(&config, &mut phones, args, "idle (first)", 0).await?;
    let idle = run_storm(&config, &mut phones, args, "idle", 0).await?;
    // The outage's changes: each changing phone comments on its own petition.
    let mut changed: Vec<(usize, DocId)> = Vec::new();
    let at = now;
    for (i, phone) in phones.iter_mut().enumerate() {
        let (u, k) = (i / args.phones_per_unit, i % args.phones_per_unit);
        if k >= changers_per_unit {
            continue;
        }
        let id = doc_id(u, k);
        let mut doc = phone.docs.load(&id).context("a held petition")?;
        let mut w = Writer::new(&officer(i), 7);
        comment_with(&mut doc, &mut w, args.changes_per_phone, i as u64, at, Text::Phrases)?;
        phone.docs.store(&id, doc);
        changed.push((i, id));
    }
    drop(shelves);
    let changes = run_storm(&config, &mut phones, args, "changes", changed.len()).await?;

    // Every change each phone made is stored at the server.
    let server = Served::start(&config).await?;
    let mut stored = true;
    for (i, id) in &changed {
        let key = DocumentId::from_bytes(id.0).to_string();
        let mut held = server.state.docs.copy(&key).await?.context("a changed petition")?;
        let heads = phones[*i].docs.heads(id).cloned().unwrap_or_default();
        stored &= heads.iter().all(|h| held.get_change_by_hash(h).is_some());
    }
    server.stop().await?;

    for (name, s) in [("idle run=1", &first), ("idle run=2", &idle), ("changes", &changes)] {
        lines.push(format!(
            "storm={name} phones={} completed={} failed={} server_cpu_s={:.2} server_cpu_ms_per_phone={:.3} \
             p50_ms={:.0} p99_ms={:.0} max_ms={:.0} seconds={:.2} docs_changed={} docs_loaded={} phone_docs_loaded={} \
             process_cpu_s={:.2}{}",
            args.phones,
            s.completed,
            s.failed,
            s.server_cpu,
            s.server_cpu * 1000.0 / args.phones as f64,
            s.p50,
            s.p99,
            s.max,
            s.seconds,
            s.docs_changed,
            s.docs_loaded,
            s.phone_loads,
            s.process_cpu,
            if name == "changes" {
                format!(" changes_stored={stored}")
            } else {
                String::new()
            },
        ));
    }
    lines.push(format!(
        "storm=changes ratio_server_cpu_vs_idle_run_2={:.2} ratio_p99_vs_idle_run_2={:.2}",
        changes.server_cpu / idle.server_cpu.max(1e-9),
        changes.p99 / idle.p99.max(1e-9),
    ));
    for line in &lines[1..] {
        eprintln!("storm: {line}");
    }
    Ok(lines)
}

/// What one storm measured.
struct Storm {
    completed: usize,
    failed: usize,
    server_cpu: f64,
    process_cpu: f64,
    p50: f64,
    p99: f64,
    max: f64,
    seconds: f64,
    docs_changed: usize,
    docs_loaded: u64,
    phone_loads: usize,
}

async fn run_storm(
    config: &Config,
    phones: &mut Vec<Phone>,
    args: &StormArgs,
    name: &str,
    docs_changed: usize,
) -> anyhow::Result<Storm> {
    let server = Served::start(config).await?;
    let addr = server.addr;
    for p in phones.iter_mut() {
        p.docs.loads = 0;
    }
    eprintln!("storm: {name}: {} phones at once…", phones.len());
    let (cpu0, process0, loads0) = (server_cpu_seconds(), process_cpu_seconds(), server.state.docs.loads());
    let t0 = Instant::now();
    let timeout = Duration::from_secs(args.timeout);
    let tasks: Vec<_> = std::mem::take(phones)
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                let r = tokio::time::timeout(timeout, p.sync(addr, t0)).await;
                if let Ok(Err(e)) = &r {
                    tracing::warn!(error = %e, "a phone's sync failed");
                }
                (p, r.ok().and_then(Result::ok))
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (p, time) = t.await?;
        match time {
            Some(ms) => times.push(ms),
            None => failed += 1,
        }
        phones.push(p);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let server_cpu = server_cpu_seconds() - cpu0;
    let process_cpu = process_cpu_seconds() - process0;
    let docs_loaded = server.state.docs.loads() - loads0;
    server.stop().await?;
    times.sort_by(f64::total_cmp);
    if failed > 0 {
        eprintln!("storm: {name}: {failed} phones did not complete (see the log)");
    }
    Ok(Storm {
        completed: times.len(),
        failed,
        server_cpu,
        process_cpu,
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        max: times.last().copied().unwrap_or(0.0),
        seconds,
        docs_changed,
        docs_loaded,
        phone_loads: phones.iter().map(|p| p.docs.loads).sum(),
    })
}

/// The organisation, the petitions, a token per officer, and every phone in
/// sync: one per station syncs for real, the others start from its state.
async fn setup(server: &Served, args: &StormArgs, units: usize) -> anyhow::Result<(Vec<Phone>, Vec<Arc<Shelf>>)> {
    let state = &server.state;
    let now = state.clock.now();
    let mut org_units = vec![json!({"id": "storm-county", "name": "风暴县", "kind": "county"})];
    for u in 0..units {
        org_units.push(
            json!({"id": station(u), "name": format!("第{u}派出所"), "kind": "station", "parent": "storm-county"}),
        );
        org_units.push(json!({"id": village(u), "name": format!("第{u}村"), "kind": "village", "parent": station(u)}));
    }
    let org = json!({"units": org_units, "users": []});
    lianxin_server::admin::import_str(&state.storage, &org.to_string(), false, now).await?;
    let mut tx = state.storage.begin().await?;
    for i in 0..args.phones {
        let id = UserId::new(officer(i))?;
        tx.insert_user(
            &NewUser {
                id: id.clone(),
                login_name: None,
                display_name: officer(i),
                phone: None,
                kind: UserKind::Staff,
                household: None,
            },
            now,
        )
        .await?;
        tx.set_memberships(
            &id,
            &[Membership {
                unit: UnitId::new(station(i / args.phones_per_unit))?,
                role: Role::Officer,
            }],
        )
        .await?;
    }
    tx.commit().await?;
    state.docs.reload_org().await?;

    // Each station's petitions, recorded by its first officer.
    let created = now.plus_minutes(-24 * 60);
    let mut items = Vec::new();
    for u in 0..units {
        let first = officer(u * args.phones_per_unit);
        let mut w = Writer::new(&first, 1);
        for n in 0..args.docs_per_phone {
            let id = doc_id(u, n);
            let doc = petition_in(&mut w, id, n, created, &village(u), &station(u))?;
            items.push((first.clone(), DocumentId::from_bytes(id.0).to_string(), doc));
        }
    }
    let docs = state.docs.clone();
    let auth = state.auth.clone();
    each(items, 8, |(user, key, doc)| {
        let (docs, auth) = (docs.clone(), auth.clone());
        async move {
            let who = auth.principal(&UserId::new(user)?).await?;
            let applied = docs.create(&who, &key, doc).await?;
            ensure!(applied.refused.is_empty(), "refused: {:?}", applied.refused);
            Ok(())
        }
    })
    .await?;
    eprintln!("storm: set-up: petitions written; tokens and the first sync of each station…");

    let mut tokens = Vec::with_capacity(args.phones);
    let mut inbox = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let user = UserId::new(officer(i))?;
        tokens.push(state.auth.mint_access_token(&user, 12 * 3_600_000).await?);
        inbox.push(u64::try_from(state.storage.inbox().head(Some(&user)).await?)?);
    }
    let mut phones = Vec::with_capacity(args.phones);
    let mut shelves = Vec::with_capacity(units);
    for u in 0..units {
        let first = u * args.phones_per_unit;
        let mut phone = Phone {
            token: tokens[first].clone(),
            client: BatchClient::new(ClientState::default()).with_early_pull(true),
            docs: PhoneDocs {
                shelf: Arc::new(Shelf::default()),
                own: BTreeMap::new(),
                gone: BTreeSet::new(),
                loads: 0,
            },
            exchange: 0,
        };
        phone.sync(server.addr, Instant::now()).await?;
        ensure!(
            phone.docs.own.len() == args.docs_per_phone,
            "station {u}'s first phone holds {} petitions, not {}",
            phone.docs.own.len(),
            args.docs_per_phone
        );
        let shelf = Arc::new(Shelf {
            docs: std::mem::take(&mut phone.docs.own)
                .into_iter()
                .map(|(id, (heads, mut doc))| (id, (heads, Arc::new(doc.save()))))
                .collect(),
        });
        let state = phone.client.state().clone();
        for i in first..first + args.phones_per_unit {
            // Each phone has read its own notifications so far.
            let mut client = BatchClient::new(state.clone()).with_early_pull(true);
            client.carry_inbox(Some(inbox[i]));
            phones.push(Phone {
                token: tokens[i].clone(),
                client,
                docs: PhoneDocs {
                    shelf: shelf.clone(),
                    own: BTreeMap::new(),
                    gone: BTreeSet::new(),
                    loads: 0,
                },
                exchange: 1,
            });
        }
        shelves.push(shelf);
    }
    Ok((phones, shelves))
}
