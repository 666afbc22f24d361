//! Two server processes on one PostgreSQL database: a change accepted by node A reaches a
//! client connected to node B, through PostgreSQL `LISTEN`/`NOTIFY`: the notifications it
//! raises (over SSE and the sync WebSocket) and the document change itself (pushed to a sync
//! client following the document). The nodes are the real
//! `lianxin` binary, started twice, sharing nothing but the database and the JWT secret.
//! Skipped (with a line saying so) without `LIANXIN_TEST_POSTGRES_URL`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{TEST_SECRET, TestDb, TestServer, postgres_skipped, run_test};
use serde_json::{Value, json};
use sync_core::UserId;
use sync_core::petition::PetitionDoc;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, PeerId, RepoMessage, SyncMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message as Ws;

const STEP: Duration = Duration::from_secs(15);

/// One `lianxin serve` process.
struct Node {
    _process: tokio::process::Child,
    url: String,
}

impl Node {
    async fn start(db: &TestDb, name: &str) -> anyhow::Result<Node> {
        let dir = db.dir().join(name);
        std::fs::create_dir_all(&dir)?;
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_lianxin"))
            .args(["--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
            .arg(&dir)
            .args(["--database-url", &db.database_url(), "serve"])
            .env("LIANXIN_JWT_SECRET", std::str::from_utf8(TEST_SECRET)?)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(process.stdout.take().context("stdout")?).lines();
        let url = loop {
            let line = tokio::time::timeout(STEP, lines.next_line())
                .await
                .context("node did not start")??
                .context("node exited")?;
            if let Some(url) = line.strip_prefix("lianxin listening on ") {
                break url.trim().to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Node { _process: process, url })
    }
}

async fn two_nodes(db: &mut TestDb) -> anyhow::Result<()> {
    // Seed the county in-process, mint tokens, then leave the database to the two nodes.
    let seeder = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&seeder.state).await?;
    let auth = seeder.state.auth.clone();
    let mint = |user: &'static str| {
        let auth = auth.clone();
        async move {
            auth.mint_access_token(&UserId::new(user)?, 60 * 60 * 1000)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let zhang = mint("res-zhang").await?;
    let wang = mint("officer-wang").await?;
    let li = mint("officer-li").await?;
    seeder.stop().await?;
    db.reopen().await?;

    let a = Node::start(db, "a").await?;
    let b = Node::start(db, "b").await?;

    // On node B: officer-wang follows his inbox over SSE, officer-li over the sync WebSocket.
    let client = reqwest::Client::new();
    let mut sse = client
        .get(format!("{}/api/inbox/stream?token={wang}", b.url))
        .send()
        .await?;
    ensure!(sse.status() == 200, "stream on B: {}", sse.status());
    let ws_url = format!("{}/sync?token={li}", b.url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let join = RepoMessage::Join(JoinMessage {
        sender_id: "li-phone".into(),
        peer_metadata: None,
        supported_protocol_versions: vec!["1".into()],
    });
    ws.send(Ws::Binary(repo_protocol::encode(&join).into())).await?;
    let peer = tokio::time::timeout(STEP, ws.next()).await?.context("closed")??;
    ensure!(matches!(
        repo_protocol::decode(&peer.into_data())?,
        RepoMessage::Peer(_)
    ));
    // Both subscriptions are live once the handshakes are done; give B's listener a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // On node A: a resident files a petition with the east station.
    let id = {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut b);
        DocumentId::from_bytes(b).to_string()
    };
    let response = client
        .post(format!("{}/api/petitions", a.url))
        .bearer_auth(&zhang)
        .json(&json!({
            "id": id, "channel": "chief_line", "category": "help", "title": "两个节点",
            "body": "节点A受理。", "location": {"unit": "village-shangping"}, "routed_to": "station-east",
        }))
        .send()
        .await?;
    ensure!(response.status() == 201, "submit on A: {}", response.status());

    // SSE on B.
    let mut buffer = String::new();
    let item: Value = 'found: loop {
        let chunk = tokio::time::timeout(STEP, sse.chunk())
            .await
            .context("no event on node B in time")??
            .context("stream ended")?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                let item: Value = serde_json::from_str(data.trim())?;
                if item["doc_id"] == id {
                    break 'found item;
                }
            }
        }
    };
    assert_eq!(item["kind"], "new_petition");
    assert_eq!(item["user"], "officer-wang");

    // The sync WebSocket on B.
    let pushed = loop {
        let frame = tokio::time::timeout(STEP, ws.next()).await?.context("closed")??;
        if let Some(n) = repo_protocol::decode_notification(&frame.into_data())? {
            let item: Value = serde_json::from_str(&n.notification)?;
            if item["doc_id"] == id {
                break item;
            }
        }
    };
    assert_eq!(
        (pushed["kind"].as_str(), pushed["user"].as_str()),
        (Some("new_petition"), Some("officer-li"))
    );

    // The same connection follows the petition; a comment node A takes
    // through REST is pushed to it by node B without being asked.
    let doc_id: DocumentId = id.parse()?;
    let server_peer: PeerId = "unknown".into();
    let mut doc = AutoCommit::new();
    let mut state = sync::State::new();
    let message = |doc: &mut AutoCommit, state: &mut sync::State, request: bool| {
        doc.sync().generate_sync_message(state).map(|m| {
            let body = SyncMessage {
                sender_id: "li-phone".into(),
                target_id: server_peer.clone(),
                document_id: doc_id,
                data: m.encode(),
            };
            repo_protocol::encode(&if request {
                RepoMessage::Request(body)
            } else {
                RepoMessage::Sync(body)
            })
        })
    };
    let request = message(&mut doc, &mut state, true).context("a request")?;
    ws.send(Ws::Binary(request.into())).await?;
    let text = "两个节点，一份数据";
    let mut commented = false;
    loop {
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .context("node B did not push the change in time")?
            .context("closed")??;
        let Ok(RepoMessage::Sync(m) | RepoMessage::Request(m)) = repo_protocol::decode(&frame.into_data()) else {
            continue;
        };
        doc.sync()
            .receive_sync_message(&mut state, sync::Message::decode(&m.data)?)?;
        if let Some(reply) = message(&mut doc, &mut state, false) {
            ws.send(Ws::Binary(reply.into())).await?;
        }
        let texts: Vec<String> = PetitionDoc::from_doc(doc.clone())
            .and_then(|p| p.messages())
            .map(|ms| ms.into_iter().map(|m| m.text).collect())
            .unwrap_or_default();
        if texts.iter().any(|t| t == text) {
            break;
        }
        if !commented && !doc.get_heads().is_empty() {
            // Node B has sent the petition: now comment on node A.
            commented = true;
            let response = client
                .post(format!("{}/api/petitions/{id}/actions", a.url))
                .bearer_auth(&li)
                .json(&json!({"action": "comment", "text": text}))
                .send()
                .await?;
            ensure!(response.status().is_success(), "comment on A: {}", response.status());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_node_a_reaches_a_client_on_node_b() -> anyhow::Result<()> {
    match TestDb::postgres().await? {
        Some(db) => run_test(db, two_nodes).await,
        None => {
            postgres_skipped("multinode::a_change_on_node_a_reaches_a_client_on_node_b");
            Ok(())
        }
    }
}
