//! A phone's whole reconnect in one exchange: the phone library
//! (`lianxin-mobile`) against a real server, through the link simulator so
//! connections are counted by something other than the library itself. The
//! inbox must arrive inside the batched exchange and be acknowledged, over
//! the WebSocket and over `POST /batch`; an acknowledgement that did not
//! reach the server is made good by the next exchange.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use lianxin_mobile::{Replica, SessionConfig, SyncOptions, SyncReport, SyncTransport};
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{TestDb, TestServer};
use lianxin_tests::linksim::{LinkSim, Profile, Stats};
use serde_json::{Value, json};
use sync_core::repo_protocol::DocumentId;

/// The phone's user: the director's mailbox task force's duty officer, told
/// of every letter to the mailbox.
const OFFICER: &str = "duty-lin";
const WRITER: &str = "res-zhang";

/// Files a letter to the director's mailbox as the resident.
async fn letter(server: &TestServer, title: &str) -> anyhow::Result<()> {
    let id = DocumentId::from_bytes(rand::random());
    let body = json!({
        "id": id.to_string(), "channel": "director_mailbox", "category": "help",
        "title": title, "body": "家里的水停了三天。",
        "location": {"unit": "village-shangping"}, "routed_to": "mailbox-taskforce",
    });
    let (status, view) = server
        .post("/api/petitions", Some(&server.token(WRITER).await?), &body)
        .await?;
    ensure!(status == 201, "{view}");
    Ok(())
}

/// The officer's inbox on the server: the newest cursor and the acknowledged one.
async fn server_inbox(server: &TestServer) -> anyhow::Result<(i64, i64)> {
    let token = server.token(OFFICER).await?;
    let (status, page) = server.get("/api/inbox?after=0&limit=500", Some(&token)).await?;
    ensure!(status == 200, "{page}");
    let items = page["items"].as_array().context("items")?;
    let acked = page["acked"].as_i64().context("acked")?;
    let newest = items.iter().filter_map(|i| i["cursor"].as_i64()).max().unwrap_or(acked);
    Ok((newest, acked))
}

/// Waits until the server has acknowledged the officer's inbox up to `cursor`
/// (an `iack` frame is answered by nothing, so the phone cannot wait for it).
async fn wait_acked(server: &TestServer, cursor: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, acked) = server_inbox(server).await?;
        if acked >= cursor {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the server acknowledged {acked}, the phone stored {cursor}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct PhoneAt {
    replica: std::sync::Arc<Replica>,
    _dir: tempfile::TempDir,
}

async fn phone(server: &TestServer, url: String) -> anyhow::Result<PhoneAt> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("phone.sqlite").display().to_string();
    let session = SessionConfig {
        server_url: url,
        user_id: OFFICER.to_owned(),
        memberships: vec![],
        household: None,
        units: vec![],
    };
    let replica = Replica::open(path, session)?;
    replica.set_access_token(Some(server.token(OFFICER).await?));
    Ok(PhoneAt { replica, _dir: dir })
}

/// One sync pass with `transport` through `link`: the report and what crossed the link.
async fn sync(p: &PhoneAt, link: &LinkSim, transport: SyncTransport) -> anyhow::Result<(SyncReport, Stats)> {
    let replica = p.replica.clone();
    link.reset_stats();
    let options = SyncOptions {
        transport,
        max_attempts: 1,
        ..lianxin_mobile::default_sync_options()
    };
    let report = tokio::task::spawn_blocking(move || replica.sync_with(options)).await??;
    Ok((report, link.stats()))
}

fn local_keys(p: &PhoneAt) -> anyhow::Result<Vec<String>> {
    Ok(p.replica.notifications(false)?.into_iter().map(|n| n.key).collect())
}

async fn server_keys(server: &TestServer, after: i64) -> anyhow::Result<Vec<String>> {
    let token = server.token(OFFICER).await?;
    // Unacknowledged items only: `after` below the acknowledged cursor reads from it.
    let (_, page): (u16, Value) = server
        .get(&format!("/api/inbox?after={after}&limit=500"), Some(&token))
        .await?;
    Ok(page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["key"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_arrives_in_the_exchange_on_one_connection() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    let link = LinkSim::start(server.addr, Profile::loopback(), 1).await?;
    let p = phone(&server, format!("http://{}", link.addr())).await?;

    // The first pass meets a server whose version the phone does not know
    // yet; afterwards it does.
    sync(&p, &link, SyncTransport::WebSocket).await?;
    let (_, acked) = server_inbox(&server).await?;
    letter(&server, "停水三天").await?;
    letter(&server, "路灯坏了").await?;
    let fresh = server_keys(&server, acked).await?;
    ensure!(fresh.len() >= 2, "the letters told the duty officer nothing: {fresh:?}");

    let (report, stats) = sync(&p, &link, SyncTransport::WebSocket).await?;
    ensure!(
        stats.connections == 1,
        "the reconnect opened {} connections: {stats}",
        stats.connections
    );
    ensure!(
        report.notifications_added as usize == fresh.len(),
        "{} notifications arrived in the exchange, the server holds {}: {report:?}",
        report.notifications_added,
        fresh.len()
    );
    let local = local_keys(&p)?;
    for key in &fresh {
        ensure!(local.contains(key), "{key} did not reach the phone");
    }
    let cursor = p.replica.inbox_cursor()?;
    let (newest, _) = server_inbox(&server).await?;
    ensure!(
        cursor == newest,
        "the phone's inbox cursor {cursor}, the server's newest item {newest}"
    );
    wait_acked(&server, cursor).await?;

    // Nothing new: an idle reconnect is one small exchange on one connection.
    let (report, stats) = sync(&p, &link, SyncTransport::WebSocket).await?;
    ensure!(report.notifications_added == 0, "{report:?}");
    ensure!(stats.connections == 1, "{stats}");
    ensure!(stats.bytes_up + stats.bytes_down < 1000, "idle reconnect: {stats}");
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_post_the_ack_rides_with_the_next_exchange() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    let link = LinkSim::start(server.addr, Profile::loopback(), 2).await?;
    let p = phone(&server, format!("http://{}", link.addr())).await?;

    let (report, _) = sync(&p, &link, SyncTransport::Http).await?;
    ensure!(
        !p.replica.list_petitions()?.is_empty(),
        "POST /batch brought no document: {report:?}"
    );
    let (_, acked) = server_inbox(&server).await?;
    letter(&server, "停水三天").await?;
    let fresh = server_keys(&server, acked).await?;
    ensure!(!fresh.is_empty(), "the letter told the duty officer nothing");

    let (report, stats) = sync(&p, &link, SyncTransport::Http).await?;
    ensure!(stats.connections == 1, "{stats}");
    ensure!(report.notifications_added as usize == fresh.len(), "{report:?}");
    let cursor = p.replica.inbox_cursor()?;
    // Over HTTP nothing follows the answer: the server has not heard yet
    // that the phone stored them, so they stay unacknowledged…
    let (_, acked) = server_inbox(&server).await?;
    ensure!(
        acked < cursor,
        "acknowledged {acked} before the phone said it stored {cursor}"
    );
    // …until the next exchange's push carries the phone's cursor.
    let (report, _) = sync(&p, &link, SyncTransport::Http).await?;
    ensure!(report.notifications_added == 0, "delivered twice: {report:?}");
    let (_, acked) = server_inbox(&server).await?;
    ensure!(
        acked == cursor,
        "the next exchange acknowledged {acked}, the phone stored {cursor}"
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

/// A proxy that forwards plain HTTP to `upstream` and answers every
/// WebSocket upgrade `403`, as some operators' proxies do. Counts both.
struct NoUpgradeProxy {
    addr: std::net::SocketAddr,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl NoUpgradeProxy {
    async fn start(upstream: std::net::SocketAddr) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (r, f) = (refused.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (r, f) = (r.clone(), f.clone());
                tokio::spawn(async move {
                    // Read the request head, then decide.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    if text.contains("upgrade: websocket") {
                        r.fetch_add(1, Ordering::SeqCst);
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    if server.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Ok(NoUpgradeProxy {
            addr,
            refused,
            forwarded,
            task,
        })
    }

    fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.refused.load(Ordering::SeqCst),
            self.forwarded.load(Ordering::SeqCst),
        )
    }
}

impl Drop for NoUpgradeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Behind a proxy that refuses WebSocket upgrades, the phone's default
/// transport falls back to the same exchange as one `POST /batch`, says so
/// in its report, and keeps to the POST for the passes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_refuses_upgrades_the_exchange_goes_as_one_post() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    let proxy = NoUpgradeProxy::start(server.addr).await?;
    let p = phone(&server, format!("http://{}", proxy.addr)).await?;
    let auto = || SyncOptions {
        max_attempts: 2,
        initial_backoff_ms: 10,
        ..lianxin_mobile::default_sync_options()
    };
    let replica = p.replica.clone();
    let options = auto();
    ensure!(
        options.transport == SyncTransport::Auto,
        "the default transport is Auto"
    );
    let report = tokio::task::spawn_blocking(move || replica.sync_with(options)).await??;
    let (refused, forwarded) = proxy.counts();
    ensure!(refused == 1, "the phone tried the upgrade {refused} times");
    ensure!(forwarded >= 1, "nothing went through as plain HTTP");
    ensure!(
        report.inbox_note.as_deref().is_some_and(|n| n.contains("POST /batch")),
        "the report does not say it fell back: {report:?}"
    );
    let held = p.replica.list_petitions()?.len();
    ensure!(held > 0, "the fallback brought no document: {report:?}");

    // A letter arrives; the next pass goes straight to the POST and brings it
    // with its notification, without trying the upgrade again.
    let (_, acked) = server_inbox(&server).await?;
    letter(&server, "停水三天").await?;
    let fresh = server_keys(&server, acked).await?;
    ensure!(!fresh.is_empty(), "the letter told the duty officer nothing");
    let replica = p.replica.clone();
    let report = tokio::task::spawn_blocking(move || replica.sync_with(auto())).await??;
    let (refused_again, _) = proxy.counts();
    ensure!(
        refused_again == 1,
        "the next pass tried the upgrade again ({refused_again} refusals)"
    );
    ensure!(
        p.replica.list_petitions()?.len() == held + 1,
        "the new letter did not arrive over POST: {report:?}"
    );
    ensure!(report.notifications_added as usize == fresh.len(), "{report:?}");
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}
