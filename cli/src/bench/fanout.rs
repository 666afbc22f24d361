//! `lianxin bench fanout`: notification fan-out to WebSocket subscribers on loopback, beside a
//! bare tokio broadcast server measured in the same run. Prints `key=value` lines.
//!
//! Set-up: an organisation with `--subscribers` residents, one room with all of them and
//! `--docs` rooms of `--per-doc` residents each, and an access token per resident. Then, for
//! each server in turn (this server as a child process `lianxin serve`, and a bare server as a
//! child process `lianxin bench bare-server`):
//!
//! 1. every resident connects one WebSocket (this server: the automerge-repo endpoint `/sync`,
//!    notifications arrive as `lianxin-notification` frames; bare: `/sub?topics=…`);
//! 2. *room notice*: a message with @all in the big room, posted over HTTP; every
//!    subscriber must receive it. It is posted `--notices` times, each once the one before has
//!    reached everyone: the first finds the room cold (read from the database), the later ones
//!    in the server's cache, and together they show how much one burst varies;
//! 3. *changes*: `--rate` messages with @all per second over `--seconds` seconds, each to one
//!    of the small rooms in turn, so each reaches that room's subscribers.
//!
//! Latency is from just before the HTTP post to the moment a subscriber has decoded its frame,
//! on one clock (the bench process). Throughput is deliveries per second from the first post
//! to the last delivery. Server CPU-seconds are the child's user + system time during the
//! scenario (`/proc/<pid>/stat`). This server stores every notification and inbox row in the
//! database before delivering it; the bare server only forwards in memory. The notice's
//! minimum latency and its post's response time show how much of the burst is that store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use serde_json::json;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, RepoMessage};
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::{Membership, Role, UnitId, UserId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

use lianxin_server::auth::{AuthService, AuthSettings, SmsSender};
use lianxin_server::clock::{Clock, SystemClock};
use lianxin_server::docs::{DocService, DocSettings};
use lianxin_server::storage::{NewUser, Storage, UserKind};

/// What to run.
#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// WebSocket subscribers, one resident each.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Small rooms the changes go to.
    #[arg(long, default_value_t = 1_000)]
    pub docs: usize,
    /// Subscribers per small room.
    #[arg(long, default_value_t = 10)]
    pub per_doc: usize,
    /// Changes per second to the small rooms.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// How long the changes run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Where the bench database lives (a fresh directory; default under /dev/shm when present).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Connections opened at once while subscribers connect.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Room notices posted one after another (each reaching every subscriber).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub notices: u32,
}

const OFFICER: &str = "fan-officer";
const NOTICE_TEXT: &str = "fanout-notice-";
const CHANGE_TEXT: &str = "fanout-change-";

fn resident(i: usize) -> String {
    format!("fan-r{i}")
}

fn random_doc_id() -> DocumentId {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    DocumentId::from_bytes(b)
}

/// Raises the open-file limit to its hard maximum (children inherit it); returns the new limit.
pub(crate) fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The rooms and tokens the scenarios use.
struct Setup {
    dir: PathBuf,
    database_url: String,
    secret: String,
    tokens: Vec<String>,
    officer_token: String,
    big_room: String,
    rooms: Vec<String>,
}

async fn setup(args: &FanoutArgs, database_url: Option<String>) -> anyhow::Result<Setup> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let base = if std::path::Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            base.join(format!("lianxin-fanout-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let database_url = database_url.unwrap_or_else(|| format!("sqlite:{}", dir.join("lianxin.sqlite").display()));
    let storage = Storage::open(&database_url).await?;
    let now = SystemClock.now();
    let org = json!({
        "units": [
            {"id": "fan-county", "name": "Fan-out county", "kind": "county"},
            {"id": "fan-station", "name": "Fan-out station", "kind": "station", "parent": "fan-county"},
            {"id": "fan-village", "name": "Fan-out village", "kind": "village", "parent": "fan-station"}
        ],
        "users": []
    });
    lianxin_server::admin::import_str(&storage, &org.to_string(), false, now).await?;
    let mut tx = storage.begin().await?;
    let village = UnitId::new("fan-village")?;
    for i in 0..args.subscribers {
        let id = UserId::new(resident(i))?;
        tx.insert_user(
            &NewUser {
                id: id.clone(),
                login_name: None,
                display_name: resident(i),
                phone: None,
                kind: UserKind::Resident,
                household: None,
            },
            now,
        )
        .await?;
        tx.set_memberships(
            &id,
            &[Membership {
                unit: village.clone(),
                role: Role::Resident,
            }],
        )
        .await?;
    }
    let officer = UserId::new(OFFICER)?;
    tx.insert_user(
        &NewUser {
            id: officer.clone(),
            login_name: None,
            display_name: OFFICER.into(),
            phone: None,
            kind: UserKind::Staff,
            household: None,
        },
        now,
    )
    .await?;
    tx.set_memberships(
        &officer,
        &[Membership {
            unit: UnitId::new("fan-station")?,
            role: Role::Officer,
        }],
    )
    .await?;
    tx.commit().await?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secret = lianxin_server::auth::random_secret();
    let auth = AuthService::new(
        storage.clone(),
        clock.clone(),
        secret.as_bytes(),
        SmsSender::DevLog,
        AuthSettings::default(),
    );
    let docs = DocService::new(storage.clone(), clock, DocSettings::default()).await?;
    let who = auth.principal(&officer).await?;
    let actor = docs.server_actor(&officer);
    let create_room = async |name: String, members: Vec<String>| -> anyhow::Result<String> {
        let id = random_doc_id();
        let info = RoomInfo {
            id: id.to_url(),
            kind: RoomKind::VillageRoom,
            name,
            unit: village.clone(),
            household: None,
            created_by: officer.clone(),
        };
        let members = members
            .into_iter()
            .map(|m| Ok((UserId::new(m)?, MemberRole::Member)))
            .collect::<Result<Vec<_>, sync_core::SchemaError>>()?;
        let room = RoomDoc::create(actor.clone(), info, members)?;
        let applied = docs.create(&who, &id.to_string(), room.into_doc()).await?;
        if !applied.refused.is_empty() {
            bail!("room refused: {:?}", applied.refused);
        }
        Ok(id.to_string())
    };
    let big_room = create_room("all".into(), (0..args.subscribers).map(resident).collect()).await?;
    let mut rooms = Vec::with_capacity(args.docs);
    for d in 0..args.docs {
        let members = (d * args.per_doc..(d + 1) * args.per_doc).map(resident).collect();
        rooms.push(create_room(format!("room-{d}"), members).await?);
    }

    let ttl = 6 * 60 * 60 * 1000;
    let officer_token = auth.mint_access_token(&officer, ttl).await?;
    let mut tokens = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        tokens.push(auth.mint_access_token(&UserId::new(resident(i))?, ttl).await?);
    }
    storage.close().await;
    Ok(Setup {
        dir,
        database_url,
        secret,
        tokens,
        officer_token,
        big_room,
        rooms,
    })
}

/// A server under test, as a child process.
struct Child {
    process: tokio::process::Child,
    addr: String,
}

impl Child {
    async fn spawn(args: &[String], secret: &str) -> anyhow::Result<Child> {
        let exe = std::env::current_exe()?;
        let mut process = tokio::process::Command::new(exe)
            .args(args)
            .env("LIANXIN_JWT_SECRET", secret)
            // The servers log warnings only, unless the caller asks for more.
            .env(
                "RUST_LOG",
                std::env::var("LIANXIN_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = process.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .context("the server did not start in time")??
                .context("the server exited before listening")?;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().to_owned();
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Child { process, addr })
    }

    fn cpu(&self) -> f64 {
        self.process.id().map_or(0.0, cpu_seconds)
    }
}

/// Which server the clients talk to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lianxin,
    Bare,
}

/// A delivery: which post it belongs to and when it was decoded.
type Delivery = (Tag, Instant);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tag {
    Notice(usize),
    Change(usize),
}

/// The number after `prefix` in `text`.
fn numbered(text: &str, prefix: &str) -> Option<usize> {
    let i = text.find(prefix)?;
    let n: String = text[i + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    n.parse().ok()
}

fn tag_of(text: &str) -> Option<Tag> {
    numbered(text, NOTICE_TEXT)
        .map(Tag::Notice)
        .or_else(|| numbered(text, CHANGE_TEXT).map(Tag::Change))
}

/// Opens one subscriber connection and forwards its deliveries.
async fn subscribe(
    kind: Kind,
    addr: &str,
    token: &str,
    topics: &str,
    out: mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let url = match kind {
        Kind::Lianxin => format!("ws://{addr}/sync?token={token}"),
        Kind::Bare => format!("ws://{addr}/sub?topics={topics}"),
    };
    // Both servers' subscribers read with the buffer size the server uses.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(lianxin_server::http::WS_READ_BUFFER_BYTES);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
    if kind == Kind::Lianxin {
        let join = RepoMessage::Join(JoinMessage {
            sender_id: format!("fan-{}", rand::random::<u64>()).into(),
            peer_metadata: None,
            supported_protocol_versions: vec![repo_protocol::PROTOCOL_V1.into()],
        });
        ws.send(Ws::Binary(repo_protocol::encode(&join).into())).await?;
        let peer = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await?
            .context("closed before peer")??;
        if !matches!(repo_protocol::decode(&peer.into_data()), Ok(RepoMessage::Peer(_))) {
            bail!("no peer message");
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            let at = Instant::now();
            let text = match (&frame, kind) {
                (Ws::Binary(b), Kind::Lianxin) => match repo_protocol::decode_notification(b) {
                    Ok(Some(n)) => n.notification,
                    _ => continue,
                },
                (Ws::Text(t), Kind::Bare) => t.as_str().to_owned(),
                _ => continue,
            };
            if let Some(tag) = tag_of(&text)
                && out.send((tag, at)).is_err()
            {
                return;
            }
        }
    }))
}

/// Figures of one scenario.
struct Figures {
    deliveries: usize,
    min_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    throughput: f64,
    cpu_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn figures(latencies: &mut [f64], start: Instant, last: Option<Instant>, cpu_s: f64) -> Figures {
    latencies.sort_by(|a, b| a.total_cmp(b));
    let span = last.map_or(0.0, |l| l.duration_since(start).as_secs_f64());
    Figures {
        deliveries: latencies.len(),
        min_ms: latencies.first().copied().unwrap_or(f64::NAN),
        p50_ms: percentile(latencies, 0.5),
        p99_ms: percentile(latencies, 0.99),
        throughput: if span > 0.0 { latencies.len() as f64 / span } else { 0.0 },
        cpu_s,
    }
}

/// Posts one message with @all to `room`.
async fn post(
    client: &reqwest::Client,
    kind: Kind,
    addr: &str,
    token: &str,
    room: &str,
    text: &str,
) -> anyhow::Result<()> {
    let response = match kind {
        Kind::Lianxin => {
            client
                .post(format!("http://{addr}/api/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&json!({"text": text, "mentions": ["all"]}))
                .send()
                .await?
        }
        Kind::Bare => {
            client
                .post(format!("http://{addr}/publish"))
                .json(&json!({"topic": room, "text": text}))
                .send()
                .await?
        }
    };
    if !response.status().is_success() {
        bail!("post to {room}: {}", response.status());
    }
    Ok(())
}

/// What one server achieved: deliveries per second in each scenario and over both, and the
/// worst p99.
struct Outcome {
    notice: f64,
    changes: f64,
    overall: f64,
    p99_ms: f64,
}

/// Connects every subscriber to `child` and runs both scenarios; returns `key=value` lines
/// prefixed with `name_` and the figures the comparison needs.
async fn run_against(
    kind: Kind,
    name: &str,
    child: &Child,
    setup: &Setup,
    args: &FanoutArgs,
) -> anyhow::Result<(Vec<String>, Outcome)> {
    let mut out = Vec::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(args.subscribers);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let mut connecting = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let topics = match i / args.per_doc.max(1) {
            d if d < setup.rooms.len() => format!("{},{}", setup.big_room, setup.rooms[d]),
            _ => setup.big_room.clone(),
        };
        let (addr, token, tx, semaphore) = (
            child.addr.clone(),
            setup.tokens[i].clone(),
            tx.clone(),
            semaphore.clone(),
        );
        connecting.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await?;
            subscribe(kind, &addr, &token, &topics, tx).await
        }));
    }
    for c in connecting {
        tasks.push(c.await??);
    }
    drop(tx);
    out.push(format!(
        "{name}_connect_s={:.2}",
        connect_started.elapsed().as_secs_f64()
    ));
    // Let the connections settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = reqwest::Client::new();

    // 1. Notices to the big room, each reaching every subscriber before the next is posted.
    let mut latencies = Vec::with_capacity(args.subscribers * args.notices as usize);
    let (mut busy_s, mut cpu_s) = (0.0, 0.0);
    let (mut each_p99, mut each_post) = (Vec::new(), Vec::new());
    for n in 0..args.notices as usize {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let cpu0 = child.cpu();
        let start = Instant::now();
        let text = format!("{NOTICE_TEXT}{n}");
        post(&client, kind, &child.addr, &setup.officer_token, &setup.big_room, &text).await?;
        each_post.push(start.elapsed().as_secs_f64() * 1000.0);
        let mut these = Vec::with_capacity(args.subscribers);
        let mut last = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while these.len() < args.subscribers {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((Tag::Notice(k), at))) if k == n => {
                    these.push(at.duration_since(start).as_secs_f64() * 1000.0);
                    last = Some(at);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let f = figures(&mut these, start, last, child.cpu() - cpu0);
        each_p99.push(f.p99_ms);
        if f.throughput > 0.0 {
            busy_s += f.deliveries as f64 / f.throughput;
        }
        cpu_s += f.cpu_s;
        latencies.extend(these);
    }
    let mut notice = figures(&mut latencies, Instant::now(), None, cpu_s);
    notice.throughput = if busy_s > 0.0 {
        notice.deliveries as f64 / busy_s
    } else {
        0.0
    };

    // 2. `rate` changes per second across the small rooms.
    let total = (u64::from(args.rate) * args.seconds) as usize;
    let sent: Arc<std::sync::Mutex<HashMap<usize, Instant>>> = Arc::default();
    let cpu0 = child.cpu();
    let start = Instant::now();
    let poster = {
        let (client, sent, addr, token) = (
            client.clone(),
            sent.clone(),
            child.addr.clone(),
            setup.officer_token.clone(),
        );
        let rooms = setup.rooms.clone();
        let rate = args.rate.max(1);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = Vec::with_capacity(total);
            for k in 0..total {
                every.tick().await;
                let (client, sent, addr, token) = (client.clone(), sent.clone(), addr.clone(), token.clone());
                let room = rooms[k % rooms.len()].clone();
                inflight.push(tokio::spawn(async move {
                    sent.lock().expect("sent lock").insert(k, Instant::now());
                    post(&client, kind, &addr, &token, &room, &format!("{CHANGE_TEXT}{k}")).await
                }));
            }
            let mut failed = 0usize;
            for f in inflight {
                if !matches!(f.await, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            (Instant::now(), failed)
        })
    };
    let expected = total * args.per_doc;
    let mut latencies = Vec::with_capacity(expected);
    let mut last = None;
    let mut early: Vec<(usize, Instant)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds + 120);
    while latencies.len() + early.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((Tag::Change(k), at))) => {
                last = Some(at);
                match sent.lock().expect("sent lock").get(&k) {
                    Some(t) => latencies.push(at.duration_since(*t).as_secs_f64() * 1000.0),
                    None => early.push((k, at)),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let (posted_at, failed) = poster.await?;
    {
        let sent = sent.lock().expect("sent lock");
        for (k, at) in early {
            if let Some(t) = sent.get(&k) {
                latencies.push(at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
            }
        }
    }
    let changes = figures(&mut latencies, start, last, child.cpu() - cpu0);
    let achieved_rate = total as f64 / posted_at.duration_since(start).as_secs_f64().max(1e-9);

    for t in tasks {
        t.abort();
    }
    for (scenario, f) in [("room_notice", &notice), ("changes", &changes)] {
        out.push(format!("{name}_{scenario}_deliveries={}", f.deliveries));
        out.push(format!("{name}_{scenario}_latency_min_ms={:.1}", f.min_ms));
        out.push(format!("{name}_{scenario}_latency_p50_ms={:.1}", f.p50_ms));
        out.push(format!("{name}_{scenario}_latency_p99_ms={:.1}", f.p99_ms));
        out.push(format!("{name}_{scenario}_throughput_per_s={:.0}", f.throughput));
        out.push(format!("{name}_{scenario}_server_cpu_s={:.2}", f.cpu_s));
    }
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(",");
    out.push(format!(
        "{name}_room_notice_expected={}",
        args.subscribers * args.notices as usize
    ));
    out.push(format!("{name}_room_notice_p99_each_ms={}", list(&each_p99)));
    out.push(format!("{name}_room_notice_post_response_each_ms={}", list(&each_post)));
    out.push(format!("{name}_changes_expected={expected}"));
    out.push(format!("{name}_changes_posted={total}"));
    out.push(format!("{name}_changes_failed_posts={failed}"));
    out.push(format!("{name}_changes_posted_per_s={achieved_rate:.0}"));
    let deliveries = notice.deliveries + changes.deliveries;
    let busy = if notice.throughput > 0.0 {
        notice.deliveries as f64 / notice.throughput
    } else {
        0.0
    } + if changes.throughput > 0.0 {
        changes.deliveries as f64 / changes.throughput
    } else {
        0.0
    };
    let throughput = if busy > 0.0 { deliveries as f64 / busy } else { 0.0 };
    out.push(format!("{name}_throughput_per_s={throughput:.0}"));
    let p99 = notice.p99_ms.max(changes.p99_ms);
    out.push(format!("{name}_latency_p99_ms={p99:.1}"));
    Ok((
        out,
        Outcome {
            notice: notice.throughput,
            changes: changes.throughput,
            overall: throughput,
            p99_ms: p99,
        },
    ))
}

/// Runs the benchmark and returns its `key=value` lines.
pub async fn fanout(database_url: Option<String>, args: &FanoutArgs) -> anyhow::Result<Vec<String>> {
    if args.docs * args.per_doc > args.subscribers {
        bail!("--docs × --per-doc must not exceed --subscribers");
    }
    let mut out = vec![format!("fd_limit={}", raise_fd_limit())];
    let setup_started = Instant::now();
    let setup = setup(args, database_url).await?;
    let backend = if setup.database_url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    out.extend([
        format!("backend={backend}"),
        format!("subscribers={}", args.subscribers),
        format!("docs={}", args.docs),
        format!("subscribers_per_doc={}", args.per_doc),
        format!("changes_per_s={}", args.rate),
        format!("seconds={}", args.seconds),
        format!("notices={}", args.notices),
        format!("setup_s={:.1}", setup_started.elapsed().as_secs_f64()),
    ]);

    let serve_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &setup.dir.display().to_string(),
        "--database-url",
        &setup.database_url,
        "serve",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = Child::spawn(&serve_args, &setup.secret).await?;
    let (lines, lianxin) = run_against(Kind::Lianxin, "lianxin", &child, &setup, args).await?;
    out.extend(lines);
    drop(child);

    let bare_args: Vec<String> = ["bench", "bare-server", "--listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let child = Child::spawn(&bare_args, &setup.secret).await?;
    let (lines, bare) = run_against(Kind::Bare, "bare", &child, &setup, args).await?;
    out.extend(lines);
    drop(child);

    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    // The changes arrive at a fixed rate, so their throughput is capped by it; the room
    // notice is a burst and shows capacity. Both are printed; the headline is over both.
    out.push(format!(
        "room_notice_ratio_throughput_vs_bare={:.2}",
        ratio(lianxin.notice, bare.notice)
    ));
    out.push(format!(
        "changes_ratio_throughput_vs_bare={:.2}",
        ratio(lianxin.changes, bare.changes)
    ));
    let overall = ratio(lianxin.overall, bare.overall);
    out.push(format!("ratio_throughput_vs_bare={overall:.2}"));
    out.push(format!(
        "target_met={}",
        overall >= 0.5 && lianxin.p99_ms.is_finite() && lianxin.p99_ms <= 100.0
    ));
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&setup.dir);
    }
    Ok(out)
}

/// The bare server: WebSocket subscribers to topics and an HTTP publish that broadcasts to
/// them through tokio broadcast channels, nothing stored. The baseline of `bench fanout`.
pub async fn bare_server(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use tokio::sync::broadcast;

    type Topics = Arc<std::sync::Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>;
    fn sender(topics: &Topics, topic: &str) -> broadcast::Sender<Arc<str>> {
        topics
            .lock()
            .expect("topics lock")
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
    #[derive(serde::Deserialize)]
    struct Sub {
        topics: String,
    }
    #[derive(serde::Deserialize)]
    struct Publish {
        topic: String,
        text: String,
    }
    async fn sub(State(topics): State<Topics>, Query(q): Query<Sub>, ws: WebSocketUpgrade) -> axum::response::Response {
        let receivers: Vec<broadcast::Receiver<Arc<str>>> =
            q.topics.split(',').map(|t| sender(&topics, t).subscribe()).collect();
        ws.on_upgrade(move |mut socket| async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
            for mut r in receivers {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Ok(m) = r.recv().await {
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                });
            }
            while let Some(m) = rx.recv().await {
                let frame = serde_json::json!({ "text": &*m }).to_string();
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
        })
    }
    async fn publish(State(topics): State<Topics>, axum::Json(p): axum::Json<Publish>) -> &'static str {
        let _ = sender(&topics, &p.topic).send(Arc::from(p.text.as_str()));
        "ok"
    }
    let topics: Topics = Arc::default();
    let app = axum::Router::new()
        .route("/sub", get(sub))
        .route("/publish", post(publish))
        .with_state(topics);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("bare server listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
