//! Hostile sync payloads against a real server: each is refused with a close
//! code and a reason naming the limit it crossed, costs the server no more
//! memory than the limits allow (counted by this binary's allocator, not
//! read from RSS), and the server keeps answering everyone else.
//!
//! The tests in this file share the allocation counters, so they take turns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::auth::{AuthSettings, SmsSender};
use lianxin_server::http::ConnectionLimits;
use lianxin_server::state::HttpSettings;
use lianxin_server::testing::{TestDb, TestServer};
use sha2::{Digest, Sha256};
use sync_core::UserId;
use sync_core::batch::{DocId, DocPush, Encoding, Frame, Push};
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, PeerId, PeerMetadata, RepoMessage, SyncMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// ---- allocation accounting ----

/// The system allocator, counting the bytes currently allocated and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes allocated at once while `f` ran, above what was allocated when it started.
async fn peak_growth<T>(f: impl AsyncFnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f().await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// Tests here take turns, every one of them: they share the counters (which
/// see every allocation in the process) and measure latency.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MB: usize = 1024 * 1024;
const STEP: Duration = Duration::from_secs(10);

// ---- set-up ----

async fn demo_server(db: &TestDb) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn token(server: &TestServer, user: &str) -> anyhow::Result<String> {
    Ok(server
        .state
        .auth
        .mint_access_token(&UserId::new(user)?, 60 * 60 * 1000)
        .await?)
}

/// Ids of demo petitions the director may read.
async fn petitions(server: &TestServer, n: usize) -> anyhow::Result<Vec<DocumentId>> {
    let director = token(server, "director").await?;
    let (status, page) = server.get("/api/petitions?limit=200", Some(&director)).await?;
    ensure!(status == 200, "{page}");
    let ids: Vec<DocumentId> = page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p["doc_id"].as_str()?.parse().ok())
        .take(n)
        .collect();
    ensure!(ids.len() == n, "only {} demo petitions", ids.len());
    Ok(ids)
}

/// Milliseconds of one `/healthz` answer.
async fn healthz_ms(server: &TestServer) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), server.get("/healthz", None)).await??;
    ensure!(status == 200, "healthz: {status} {body}");
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The median of `n` sequential `/healthz` answers, in milliseconds.
async fn healthz_median(server: &TestServer, n: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        times.push(healthz_ms(server).await?);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[n / 2])
}

/// The server still answers a signed-in user's REST read.
async fn still_serving(server: &TestServer) -> anyhow::Result<()> {
    let t = token(server, "director").await?;
    let (status, page) = server.get("/api/petitions?limit=5", Some(&t)).await?;
    ensure!(status == 200, "after the attack: {status} {page}");
    healthz_ms(server).await?;
    Ok(())
}

// ---- hostile clients ----

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(server: &TestServer, path: &str, token: &str) -> anyhow::Result<Stream> {
    let url = format!("ws://{}{path}?token={token}", server.addr);
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url)).await??;
    Ok(ws)
}

/// An automerge-repo connection after `join` / `peer`: the socket and the server's peer id.
async fn sync_join(server: &TestServer, token: &str) -> anyhow::Result<(Stream, PeerId)> {
    let mut ws = open(server, "/sync", token).await?;
    let join = RepoMessage::Join(JoinMessage {
        sender_id: PeerId::from("hostile"),
        peer_metadata: Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(true),
        }),
        supported_protocol_versions: vec!["1".into()],
    });
    ws.send(Ws::Binary(repo_protocol::encode(&join).into())).await?;
    loop {
        match tokio::time::timeout(STEP, ws.next()).await? {
            Some(Ok(Ws::Binary(b))) => match repo_protocol::decode(&b)? {
                RepoMessage::Peer(p) => return Ok((ws, p.sender_id)),
                other => bail!("expected peer, got {other:?}"),
            },
            Some(Ok(_)) => {}
            other => bail!("no peer message: {other:?}"),
        }
    }
}

fn request(server: &PeerId, doc: DocumentId, data: Vec<u8>) -> Ws {
    let m = RepoMessage::Request(SyncMessage {
        sender_id: PeerId::from("hostile"),
        target_id: server.clone(),
        document_id: doc,
        data,
    });
    Ws::Binary(repo_protocol::encode(&m).into())
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Default)]
struct Ending {
    /// Error messages (automerge-repo `error`, batch `err` frames) received.
    errors: Vec<String>,
    /// The close frame's code and reason, if one came.
    close: Option<(u16, String)>,
    /// The connection broke without a close frame (reset, dropped socket).
    broken: bool,
}

/// Reads until the server closes (or `wait` passes).
async fn ending(ws: &mut Stream, wait: Duration) -> Ending {
    let mut out = Ending::default();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return out,
            Ok(None) => {
                out.broken = out.close.is_none();
                return out;
            }
            Ok(Some(Err(_))) => {
                out.broken = out.close.is_none();
                return out;
            }
            Ok(Some(Ok(Ws::Close(frame)))) => {
                out.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                return out;
            }
            Ok(Some(Ok(Ws::Binary(b)))) => {
                if let Ok(RepoMessage::Error(e)) = repo_protocol::decode(&b) {
                    out.errors.push(e.message);
                } else if let Ok(Frame::Error(e)) = Frame::decode(&b) {
                    out.errors.push(format!("{}: {}", e.code.as_str(), e.message));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The connection was closed with code 4002 and a reason naming `limit`.
fn closed_for(ending: &Ending, limit: &str) -> anyhow::Result<()> {
    let Some((code, reason)) = &ending.close else {
        bail!("no close frame: {ending:?}");
    };
    ensure!(*code == 4002, "close code {code}: {ending:?}");
    ensure!(reason.contains(limit), "close reason {reason:?} does not name {limit}");
    ensure!(
        ending.errors.iter().any(|e| e.contains(limit)),
        "no error message names {limit}: {ending:?}"
    );
    Ok(())
}

// ---- payloads ----

fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).expect("to a Vec");
    e.finish().expect("to a Vec")
}

/// A v1 sync message with no heads, needs or changes, and these Bloom
/// filters `(entries, bits per entry, probes)`, each with its bits.
fn filters_message(filters: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut m = vec![0x42, 0, 0];
    leb(filters.len() as u64, &mut m);
    for &(entries, bits, probes) in filters {
        let mut f = Vec::new();
        leb(entries, &mut f);
        leb(bits, &mut f);
        leb(probes, &mut f);
        f.extend(std::iter::repeat_n(0u8, (entries * bits).div_ceil(8) as usize));
        m.push(0);
        leb(f.len() as u64, &mut m);
        m.extend_from_slice(&f);
    }
    m.push(0);
    m
}

/// An Automerge chunk of `kind` around `body`, with a valid checksum.
fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut hashed = vec![kind];
    leb(body.len() as u64, &mut hashed);
    hashed.extend_from_slice(body);
    let hash = Sha256::digest(&hashed);
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&hashed);
    out
}

/// A batch push of one new document whose data is `data` in `encoding`.
fn push_frame(data: Vec<u8>, encoding: Encoding) -> Vec<u8> {
    let mut p = Push::new(1, 0, 0);
    p.last = true;
    p.encodings = vec![Encoding::Changes, Encoding::Document];
    p.docs = vec![DocPush {
        id: DocId(rand::random()),
        base: vec![],
        encoding,
        data,
        receipts: vec![],
    }];
    Frame::Push(p).encode()
}

/// Sends one frame on a fresh `/batch` connection and reads how it ended.
async fn batch_once(server: &TestServer, token: &str, frame: Vec<u8>) -> anyhow::Result<Ending> {
    let mut ws = open(server, "/batch", token).await?;
    ws.send(Ws::Binary(frame.into())).await?;
    Ok(ending(&mut ws, STEP).await)
}

// ---- the attacks ----

/// Issue item 1: a filter claiming one entry and 0 bits per entry made
/// automerge 0.12 divide by zero; the connection's task panicked and the
/// socket just dropped.
async fn a_filter_without_bits_is_refused_with_a_reason(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let doc = petitions(&server, 1).await?[0];
    let (mut ws, peer) = sync_join(&server, &token(&server, "director").await?).await?;
    ws.send(request(&peer, doc, filters_message(&[(1, 0, 7)]))).await?;
    let end = ending(&mut ws, STEP).await;
    closed_for(&end, "bloom-bits-per-entry")?;
    still_serving(&server).await?;
    server.stop().await
}

/// Issue item 2: 149-byte messages with 16 filters of 2^22 probes each, on
/// 4 connections for 4 readable documents, took `/healthz` to 3-11 s. The
/// attackers reconnect after every refusal; `/healthz` is timed against its
/// own idle median in the same run.
async fn a_probe_storm_does_not_stall_the_server(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = Arc::new(demo_server(db).await?);
    let docs = petitions(&server, 4).await?;
    let token = token(&server, "director").await?;
    let message = filters_message(&[(1, 8, 1 << 22); 16]);
    ensure!(message.len() == 149);
    healthz_median(&server, 5).await?;
    let idle = healthz_median(&server, 21).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for i in 0..4 {
        // Each attacker starts on another document, so none waits for another's document lock.
        let mut docs = docs.clone();
        docs.rotate_left(i);
        let (server, token, message) = (server.clone(), token.clone(), message.clone());
        let (stop, sent, refused) = (stop.clone(), sent.clone(), refused.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut ws, peer)) = sync_join(&server, &token).await else {
                    continue;
                };
                for doc in &docs {
                    if ws.send(request(&peer, *doc, message.clone())).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                let end = ending(&mut ws, Duration::from_secs(30)).await;
                if end.close.as_ref().is_some_and(|(_, r)| r.contains("bloom")) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the attack get going, then time /healthz while it runs.
    while sent.load(Ordering::Relaxed) < 16 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attacked = healthz_median(&server, 21).await?;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await?;
    }
    let ratio = attacked / idle;
    println!(
        "healthz_idle_ms={idle:.2} healthz_attacked_ms={attacked:.2} ratio={ratio:.2} messages={} refused={}",
        sent.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    ensure!(refused.load(Ordering::Relaxed) > 0, "the attackers were never refused");
    ensure!(
        ratio < 50.0,
        "/healthz took {attacked:.1} ms under attack, {idle:.1} ms idle"
    );
    still_serving(&server).await?;
    Arc::try_unwrap(server)
        .ok()
        .context("server still shared")?
        .stop()
        .await
}

/// Issue item 3: a compressed change chunk is inflated by automerge 0.12
/// without a limit and copied about four times. This one inflates to 256 MB
/// from 256 KB, and its push frame is about 1 KB.
async fn a_compressed_chunk_bomb_is_refused_without_inflating_it(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    let bomb = chunk(2, &deflate(&vec![0u8; 256 * MB]));
    let frame = push_frame(bomb, Encoding::Changes);
    ensure!(frame.len() < 4096, "frame of {} bytes", frame.len());
    let (end, grew) = peak_growth(async || batch_once(&server, &token, frame).await).await;
    let end = end?;
    println!("bomb_frame_bytes=~1k peak_growth_mb={}", grew / MB);
    closed_for(&end, "inflated-bytes")?;
    ensure!(grew < 64 * MB, "the server allocated {} MB for it", grew / MB);
    still_serving(&server).await?;
    server.stop().await
}

/// Issue item 4: CBOR nested in an unknown key cost memory per level when
/// skipped: a 15 KB deflated `/batch` frame added 521 MB. The same on `/sync`.
async fn deeply_nested_cbor_is_refused_without_memory_per_level(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    let mut nested = vec![0xa1, 0x62, b'z', b'z'];
    nested.extend(std::iter::repeat_n(0x9fu8, 15 * MB));
    let frame = deflate(&nested);
    ensure!(frame.len() < 20 * 1024, "frame of {} bytes", frame.len());
    let (end, grew) = peak_growth(async || batch_once(&server, &token, frame).await).await;
    let end = end?;
    println!("batch_nested_peak_growth_mb={}", grew / MB);
    closed_for(&end, "cbor-depth")?;
    ensure!(grew < 64 * MB, "the server allocated {} MB for /batch", grew / MB);

    let (mut ws, _) = sync_join(&server, &token).await?;
    let (end, grew) = peak_growth(async || {
        ws.send(Ws::Binary(nested.clone().into())).await?;
        anyhow::Ok(ending(&mut ws, STEP).await)
    })
    .await;
    let end = end?;
    println!("sync_nested_peak_growth_mb={}", grew / MB);
    closed_for(&end, "cbor-depth")?;
    // The frame itself is 15 MB, held by the socket and the client.
    ensure!(grew < 96 * MB, "the server allocated {} MB for /sync", grew / MB);
    still_serving(&server).await?;
    server.stop().await
}

/// Beyond the issue: a change whose op columns are single runs claims
/// millions of operations in a few dozen bytes, and automerge 0.12 loads
/// them one by one (10 million took 47 s and 3.9 GB).
async fn a_run_length_bomb_is_refused(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    let ops: u64 = 4_000_000;
    let run = |value: &[u8]| {
        let mut d = Vec::new();
        // The signed LEB128 of a positive count: a zero bit above its top group.
        leb(ops, &mut d);
        if d.last().is_some_and(|b| b & 0x40 != 0) {
            *d.last_mut().expect("not empty") |= 0x80;
            d.push(0);
        }
        d.extend_from_slice(value);
        d
    };
    let mut insert = Vec::new();
    leb(ops, &mut insert);
    let columns: Vec<(u32, Vec<u8>)> = vec![
        (1 << 4 | 5, run(&[1, b'a'])), // key: "a"
        (3 << 4 | 4, insert),          // insert: false
        (4 << 4 | 2, run(&[1])),       // action: set
        (5 << 4 | 6, run(&[0])),       // value: null
        (7 << 4, run(&[0])),           // no predecessors
    ];
    let mut body = vec![0, 16];
    body.extend_from_slice(&[9u8; 16]);
    body.extend_from_slice(&[1, 1, 0, 0, 0]);
    leb(columns.len() as u64, &mut body);
    for (spec, data) in &columns {
        leb(u64::from(*spec), &mut body);
        leb(data.len() as u64, &mut body);
    }
    for (_, data) in &columns {
        body.extend_from_slice(data);
    }
    let bomb = chunk(1, &body);
    ensure!(bomb.len() < 100);
    // The counter sees the whole test process: the demo seed's compactions
    // and other tests' set-up and tear-down (which run outside `TURN`) add
    // to a window's peak, never take from what the bomb itself costs. So
    // the seed's background work is waited for, and the bomb is sent three
    // times and the least growth is what it costs: loaded, its 4 million
    // operations would cost hundreds of megabytes every time.
    server.state.docs.compactions_done().await;
    let mut least = usize::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let (end, grew) =
            peak_growth(async || batch_once(&server, &token, push_frame(bomb.clone(), Encoding::Changes)).await).await;
        closed_for(&end?, "column-items")?;
        println!(
            "run_bomb_ms={} peak_growth_mb={}",
            started.elapsed().as_millis(),
            grew / MB
        );
        least = least.min(grew);
    }
    ensure!(least < 16 * MB, "the server allocated {} MB for it", least / MB);
    still_serving(&server).await?;
    server.stop().await
}

// ---- framing (issue item 13) ----

/// A frame over the message limit is answered with close code 1009 and a
/// reason; on `/batch` the close follows one `err` frame. The client writes
/// from one task and reads from another, as clients do: the server reads no
/// more of an oversized message, so a client that only wrote would block.
async fn an_oversized_frame_is_closed_with_a_reason(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    let big = vec![0u8; 17 * MB];
    let ws = open(&server, "/batch", &token).await?;
    let end = oversized(ws, big.clone()).await;
    let (code, reason) = end
        .close
        .clone()
        .with_context(|| format!("/batch: no close frame: {end:?}"))?;
    ensure!(code == 1009 && reason.contains("limit"), "/batch: {end:?}");
    ensure!(end.errors.len() == 1, "/batch: {end:?}");

    let (ws, _) = sync_join(&server, &token).await?;
    let end = oversized(ws, big).await;
    let (code, reason) = end
        .close
        .clone()
        .with_context(|| format!("/sync: no close frame: {end:?}"))?;
    ensure!(code == 1009 && reason.contains("limit"), "/sync: {end:?}");
    still_serving(&server).await?;
    server.stop().await
}

/// Sends `message` from a task of its own and reads how the connection ends.
async fn oversized(ws: Stream, message: Vec<u8>) -> Ending {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        let _ = sink.send(Ws::Binary(message.into())).await;
        sink
    });
    let mut out = Ending::default();
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(_))) => {
                out.broken = out.close.is_none();
                break;
            }
            Ok(Some(Ok(Ws::Close(frame)))) => {
                out.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            Ok(Some(Ok(Ws::Binary(b)))) => {
                if let Ok(RepoMessage::Error(e)) = repo_protocol::decode(&b) {
                    out.errors.push(e.message);
                } else if let Ok(Frame::Error(e)) = Frame::decode(&b) {
                    out.errors.push(format!("{}: {}", e.code.as_str(), e.message));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    writer.abort();
    out
}

/// A frame that does not decode gets exactly one `err` frame, then the close.
async fn a_bad_batch_frame_gets_one_error_frame(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    for frame in [vec![0xff, 0xff, 0xff], deflate(b"\xa1\x61t"), {
        let mut p = Push::new(1, 0, 0);
        p.version = 99;
        Frame::Push(p).encode()
    }] {
        let end = batch_once(&server, &token, frame).await?;
        ensure!(end.errors.len() == 1, "{end:?}");
        ensure!(end.close.as_ref().is_some_and(|(code, _)| *code == 4002), "{end:?}");
    }
    server.stop().await
}

// ---- documents accept only the schema (issue item 6) ----

/// The creation change of `doc` with one more put on its header: a field
/// no typed writer writes.
fn with_header_field(doc: &mut automerge::AutoCommit, key: &str, value: &str) -> anyhow::Result<automerge::Change> {
    use automerge::legacy::{Key, ObjectId, Op, OpId, OpType};
    let [creation]: [automerge::Change; 1] = doc
        .get_changes(&[])
        .try_into()
        .map_err(|_| anyhow::anyhow!("one creation change"))?;
    let mut expanded = creation.decode();
    let start = creation.start_op().get();
    let header = expanded
        .operations
        .iter()
        .position(|op| op.obj == ObjectId::Root && op.key == Key::Map("header".into()))
        .context("header")?;
    expanded.operations.push(Op {
        action: OpType::Put(value.into()),
        obj: ObjectId::Id(OpId(start + header as u64, creation.actor_id().clone())),
        key: Key::Map(key.into()),
        pred: Vec::new().into(),
        insert: false,
    });
    expanded.hash = None;
    Ok(automerge::Change::from(expanded))
}

/// Reads frames until the first `ack`.
async fn first_ack(server: &TestServer, token: &str, frame: Vec<u8>) -> anyhow::Result<sync_core::batch::Ack> {
    let mut ws = open(server, "/batch", token).await?;
    ws.send(Ws::Binary(frame.into())).await?;
    loop {
        match tokio::time::timeout(STEP, ws.next()).await? {
            Some(Ok(Ws::Binary(b))) => match Frame::decode(&b)? {
                Frame::Ack(ack) => return Ok(ack),
                Frame::Error(e) => bail!("err frame: {e:?}"),
                _ => {}
            },
            Some(Ok(_)) => {}
            other => bail!("no ack: {other:?}"),
        }
    }
}

/// A new petition whose header carries a field outside the schema (a 5 MB
/// `junk` field was once stored and synced to every handler) is refused on
/// `/batch` with the rule: `unknown-field`, or `change-too-large` for the 5 MB one.
async fn a_new_petition_with_a_junk_header_field_is_refused_on_batch(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    use lianxin_server::clock::Clock;
    use sync_core::petition::{Location, PetitionDoc, PetitionHeader};
    use sync_core::{Author, Category, Channel, HlcClock, UnitId};
    let server = demo_server(db).await?;
    let token = token(&server, "res-zhang").await?;
    let zhang = UserId::new("res-zhang")?;
    for (junk, rule) in [
        ("x".repeat(1000), "unknown-field"),
        ("x".repeat(5 * MB), "change-too-large"),
    ] {
        let header = PetitionHeader {
            id: "p-junk".into(),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: "路灯坏了".into(),
            body: "村口的路灯坏了".into(),
            submitter: zhang.clone(),
            recorded_by: zhang.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("village-shangping")?,
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let mut author = Author::new(zhang.clone(), HlcClock::new("phone".to_owned())?);
        let mut doc = PetitionDoc::create(
            automerge::ActorId::random(),
            header,
            UnitId::new("station-east")?,
            &mut author,
            server.clock.now(),
        )?
        .into_doc();
        let change = with_header_field(&mut doc, "junk", &junk)?;
        let ack = first_ack(
            &server,
            &token,
            push_frame(change.raw_bytes().to_vec(), Encoding::Changes),
        )
        .await?;
        let result = ack.docs.first().context("one document")?;
        ensure!(result.accepted == 0, "{ack:?}");
        let rules: Vec<&str> = result.refused.iter().map(|r| r.rule.as_str()).collect();
        ensure!(rules == [rule], "{rules:?}");
    }
    still_serving(&server).await?;
    server.stop().await
}

// ---- connections (issue item 5) ----

/// A server with a short header timeout and the given per-IP limit.
async fn limited_server(db: &TestDb, header_read_timeout: Duration, max_per_ip: usize) -> anyhow::Result<TestServer> {
    let http = HttpSettings {
        connections: ConnectionLimits {
            header_read_timeout,
            max_per_ip,
        },
        ..HttpSettings::default()
    };
    TestServer::start_with(db.storage.clone(), SmsSender::DevLog, AuthSettings::default(), http).await
}

/// Whether the server closed `tcp` within `wait` (end of stream or an error).
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Issue item 5: 1,200 connections that sent half a request stayed open
/// for good (with 256 file descriptors the server stopped answering). Here
/// 300 of them: `/healthz` keeps answering meanwhile (timed against its own
/// idle median), and every one is closed once the header timeout passes.
async fn half_sent_requests_are_closed_after_the_header_timeout(db: &mut TestDb) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let _turn = TURN.lock().await;
    let server = limited_server(db, Duration::from_secs(1), 10_000).await?;
    healthz_median(&server, 5).await?;
    let idle = healthz_median(&server, 21).await?;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut tcp = TcpStream::connect(server.addr).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: lianxin\r\nX-Slow: ")
            .await?;
        slow.push(tcp);
    }
    let attacked = healthz_median(&server, 21).await?;
    let started = Instant::now();
    let mut open = 0;
    for tcp in &mut slow {
        if !closed_within(tcp, Duration::from_secs(5)).await {
            open += 1;
        }
    }
    println!(
        "slowloris_connections=300 still_open={open} closed_after_ms={} healthz_idle_ms={idle:.2} healthz_attacked_ms={attacked:.2}",
        started.elapsed().as_millis()
    );
    ensure!(open == 0, "{open} of 300 half-sent requests were never closed");
    // A bound for a shared machine: the idle median is a fraction of a millisecond.
    ensure!(
        attacked / idle < 50.0,
        "/healthz took {attacked:.1} ms, {idle:.1} ms idle"
    );
    server.stop().await
}

/// One address holds at most `max_per_ip` connections; the next is closed
/// at once, and a slot frees when a connection ends.
async fn connections_per_ip_are_limited(db: &mut TestDb) -> anyhow::Result<()> {
    let _turn = TURN.lock().await;
    let server = limited_server(db, Duration::from_secs(30), 20).await?;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(server.addr).await?);
    }
    let mut extra = TcpStream::connect(server.addr).await?;
    ensure!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "the 21st connection from one address stayed open"
    );
    held.truncate(15);
    // The server notices the closed sockets; then /healthz gets through again.
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(Ok((200, _))) = tokio::time::timeout(Duration::from_secs(2), server.get("/healthz", None)).await {
            break;
        }
        ensure!(Instant::now() < deadline, "no slot freed after five connections closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await
}

// ---- sync states ----

/// Documents the server lacks, offered with `sync` and never created, each
/// kept a sync state on the connection, without end. Past the limit the
/// connection is closed with a reason; below it, every offer is answered.
async fn offered_unknown_documents_are_bounded_per_connection(db: &mut TestDb) -> anyhow::Result<()> {
    use automerge::sync::SyncDoc;
    let _turn = TURN.lock().await;
    let limit = 4;
    let http = HttpSettings {
        max_offered_docs: limit,
        ..HttpSettings::default()
    };
    let server = TestServer::start_with(db.storage.clone(), SmsSender::DevLog, AuthSettings::default(), http).await?;
    lianxin_demo::seed(&server.state).await?;
    let token = token(&server, "res-zhang").await?;
    let (mut ws, server_peer) = sync_join(&server, &token).await?;
    let offer = |doc: DocumentId| {
        let mut d = automerge::AutoCommit::new();
        automerge::transaction::Transactable::put(&mut d, automerge::ROOT, "x", 1).expect("put");
        let mut state = automerge::sync::State::new();
        let data = d
            .sync()
            .generate_sync_message(&mut state)
            .expect("a first message")
            .encode();
        Ws::Binary(
            repo_protocol::encode(&RepoMessage::Sync(SyncMessage {
                sender_id: PeerId::from("hostile"),
                target_id: server_peer.clone(),
                document_id: doc,
                data,
            }))
            .into(),
        )
    };
    for _ in 0..limit {
        ws.send(offer(DocumentId::from_bytes(rand::random()))).await?;
    }
    // Each offer is answered (the server asks for the changes).
    let mut answered = 0;
    while answered < limit {
        match tokio::time::timeout(STEP, ws.next()).await? {
            Some(Ok(Ws::Binary(b))) => {
                if let RepoMessage::Sync(_) = repo_protocol::decode(&b)? {
                    answered += 1;
                }
            }
            Some(Ok(Ws::Close(c))) => bail!("closed after {answered} answers: {c:?}"),
            Some(Ok(_)) => {}
            other => bail!("after {answered} answers: {other:?}"),
        }
    }
    ws.send(offer(DocumentId::from_bytes(rand::random()))).await?;
    let end = ending(&mut ws, STEP).await;
    closed_for(&end, "offered-docs")?;
    still_serving(&server).await?;
    server.stop().await
}

lianxin_server::backend_tests!(
    offered_unknown_documents_are_bounded_per_connection,
    a_filter_without_bits_is_refused_with_a_reason,
    a_probe_storm_does_not_stall_the_server,
    a_compressed_chunk_bomb_is_refused_without_inflating_it,
    deeply_nested_cbor_is_refused_without_memory_per_level,
    a_run_length_bomb_is_refused,
    an_oversized_frame_is_closed_with_a_reason,
    a_bad_batch_frame_gets_one_error_frame,
    a_new_petition_with_a_junk_header_field_is_refused_on_batch,
    half_sent_requests_are_closed_after_the_header_timeout,
    connections_per_ip_are_limited,
);
