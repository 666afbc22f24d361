//! Two server processes on one PostgreSQL database: a change accepted by
//! node A reaches a sync client connected to node B, through LISTEN/NOTIFY.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::testing::{TestDb, postgres_skipped};
use serde_json::{Value, json};
use sync_core::petition::PetitionDoc;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, PeerId, PeerMetadata, RepoMessage, SyncMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as Ws;

const SECRET: &str = "a cluster test secret that is long enough to sign";

/// A `lianxin serve` process, killed when dropped.
struct Node {
    _child: Child,
    addr: String,
    /// `(user, token)` pairs a `--demo` start printed.
    tokens: Vec<(String, String)>,
}

async fn start_node(db: &TestDb, name: &str, demo: bool) -> anyhow::Result<Node> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lianxin"));
    cmd.arg("--data-dir")
        .arg(db.dir().join(name))
        .args(["--listen", "127.0.0.1:0", "serve"])
        .env("DATABASE_URL", db.database_url())
        .env("LIANXIN_JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if demo {
        cmd.arg("--demo");
    }
    let mut child = cmd.spawn().context("starting lianxin")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut tokens = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("A 12-hour token for ") {
                let (user, token) = rest.split_once(": ").context("token line")?;
                tokens.push((user.to_owned(), token.trim().to_owned()));
            }
            if let Some(addr) = line.strip_prefix("lianxin listening on http://") {
                return Ok(addr.trim().to_owned());
            }
        }
        bail!("{name} exited before listening")
    })
    .await
    .with_context(|| format!("{name} did not start"))??;
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Node {
        _child: child,
        addr,
        tokens,
    })
}

async fn recv_sync(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    wait: Duration,
) -> anyhow::Result<Option<SyncMessage>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) | Ok(None) => return Ok(None),
            Ok(Some(frame)) => {
                if let Ws::Binary(b) = frame? {
                    match repo_protocol::decode(&b)? {
                        RepoMessage::Sync(m) | RepoMessage::Request(m) => return Ok(Some(m)),
                        RepoMessage::Error(e) => bail!("server error: {}", e.message),
                        _ => {}
                    }
                }
            }
        }
    }
}

fn texts(doc: &AutoCommit) -> anyhow::Result<Vec<String>> {
    let p = PetitionDoc::from_doc(doc.clone())?;
    Ok(p.messages()?.into_iter().map(|m| m.text).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_reaches_a_client_of_another() -> anyhow::Result<()> {
    let Some(db) = TestDb::postgres().await? else {
        postgres_skipped("a_change_on_one_node_reaches_a_client_of_another");
        return Ok(());
    };
    let outcome = run(&db).await;
    db.cleanup().await;
    outcome
}

async fn run(db: &TestDb) -> anyhow::Result<()> {
    let a = start_node(db, "a", true).await?;
    let b = start_node(db, "b", false).await?;
    let token = a
        .tokens
        .iter()
        .find(|(u, _)| u == "officer-li")
        .map(|(_, t)| t.clone())
        .context("officer-li's demo token")?;
    let http = reqwest::Client::new();

    // A petition officer-li handles, listed by node B.
    let page: Value = http
        .get(format!("http://{}/api/petitions?limit=50", b.addr))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let id: DocumentId = page["items"][0]["doc_id"]
        .as_str()
        .with_context(|| format!("no petition listed: {page}"))?
        .parse()?;

    // A sync client of node B follows it.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/sync?token={token}", b.addr)).await?;
    let me = PeerId::from("cluster-test".to_owned());
    let join = RepoMessage::Join(JoinMessage {
        sender_id: me.clone(),
        peer_metadata: Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(true),
        }),
        supported_protocol_versions: vec!["1".into()],
    });
    ws.send(Ws::Binary(repo_protocol::encode(&join).into())).await?;
    let server = loop {
        match ws.next().await.context("closed")?? {
            Ws::Binary(b) => match repo_protocol::decode(&b)? {
                RepoMessage::Peer(p) => break p.sender_id,
                other => bail!("expected peer, got {other:?}"),
            },
            _ => continue,
        }
    };
    let mut doc = AutoCommit::new();
    let mut state = sync::State::new();
    let send = |doc: &mut AutoCommit, state: &mut sync::State, first: bool| {
        doc.sync().generate_sync_message(state).map(|m| {
            let body = SyncMessage {
                sender_id: me.clone(),
                target_id: server.clone(),
                document_id: id,
                data: m.encode(),
            };
            repo_protocol::encode(&if first {
                RepoMessage::Request(body)
            } else {
                RepoMessage::Sync(body)
            })
        })
    };
    let first = send(&mut doc, &mut state, true).context("a request")?;
    ws.send(Ws::Binary(first.into())).await?;
    while let Some(m) = recv_sync(&mut ws, Duration::from_millis(800)).await? {
        doc.sync()
            .receive_sync_message(&mut state, sync::Message::decode(&m.data)?)?;
        if let Some(reply) = send(&mut doc, &mut state, false) {
            ws.send(Ws::Binary(reply.into())).await?;
        }
    }
    ensure!(!doc.get_heads().is_empty(), "the petition arrived from node B");
    let before = texts(&doc)?;

    // Node A takes a comment through its REST API.
    let text = "两个节点，一份数据";
    let resp = http
        .post(format!("http://{}/api/petitions/{id}/actions", a.addr))
        .bearer_auth(&token)
        .json(&json!({"action": "comment", "text": text}))
        .send()
        .await?;
    ensure!(resp.status().is_success(), "comment on node A: {}", resp.text().await?);

    // Node B pushes it to its client without being asked.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(m) = recv_sync(&mut ws, Duration::from_secs(10)).await? else {
                bail!("node B sent nothing");
            };
            doc.sync()
                .receive_sync_message(&mut state, sync::Message::decode(&m.data)?)?;
            if let Some(reply) = send(&mut doc, &mut state, false) {
                ws.send(Ws::Binary(reply.into())).await?;
            }
            if texts(&doc)?.iter().any(|t| t == text) {
                return anyhow::Ok(());
            }
        }
    })
    .await;
    ensure!(got.is_ok(), "node B's client never saw node A's change");
    got??;
    ensure!(texts(&doc)?.len() == before.len() + 1);
    Ok(())
}
