//! A stock automerge-repo v1 client, for comparison with the batched
//! extension: it behaves like the npm `@automerge/automerge-repo` client on
//! connection, offering every document it holds with a fresh sync state, all
//! at once, and answering each sync message until the two sides agree.
//! Like the npm client's WebSocket, it queues what it sends without waiting
//! for the link, so it keeps reading while thousands of messages go out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use sync_core::batch::DocId;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, PeerId, PeerMetadata, RepoMessage, SyncMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The outcome of one stock sync.
#[derive(Clone, Debug, Default)]
pub struct StockOutcome {
    /// Every document reached its target heads on this side and the server
    /// reported having them, before the deadline.
    pub converged: bool,
    /// What the server reported: `error` and `doc-unavailable` messages, a failed socket.
    pub errors: Vec<String>,
}

/// Syncs `docs` (plus `requests`, documents the client knows it should
/// have but does not hold) with the automerge-repo endpoint at `url` until
/// every document has `target` heads on this side and the server's sync
/// messages show it has them too, or `deadline` passes.
pub async fn sync(
    url: &str,
    docs: &mut BTreeMap<DocId, AutoCommit>,
    requests: &[DocId],
    target: &BTreeMap<DocId, Vec<ChangeHash>>,
    deadline: Duration,
) -> anyhow::Result<StockOutcome> {
    let until = Instant::now() + deadline;
    let mut out = StockOutcome::default();
    let (ws, _) = tokio::time::timeout_at(until, tokio_tungstenite::connect_async(url)).await??;
    let (mut sink, mut ws) = ws.split();
    // The send queue: unbounded, as a WebSocket's buffer in the npm client.
    let (queue, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = queued.recv().await {
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let send = |m: &RepoMessage| {
        // The writer stops only when the socket failed, which the reader sees too.
        let _ = queue.send(repo_protocol::encode(m));
    };
    let me = PeerId::from(format!("stock-{:08x}", rand::random::<u32>()));
    send(&RepoMessage::Join(JoinMessage {
        sender_id: me.clone(),
        peer_metadata: Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(false),
        }),
        supported_protocol_versions: vec![repo_protocol::PROTOCOL_V1.into()],
    }));
    let server = loop {
        let Ok(Some(frame)) = tokio::time::timeout_at(until, ws.next()).await else {
            writer.abort();
            return Ok(out);
        };
        if let Message::Binary(b) = frame? {
            match repo_protocol::decode(&b)? {
                RepoMessage::Peer(p) => break p.sender_id,
                other => anyhow::bail!("expected peer, got {other:?}"),
            }
        }
    };

    for id in requests {
        docs.entry(*id).or_default();
    }
    let mut states: BTreeMap<DocId, sync::State> = docs.keys().map(|id| (*id, sync::State::new())).collect();
    // The server has a document's target heads once its sync state says so.
    let mut server_done: BTreeSet<DocId> = BTreeSet::new();
    for (id, doc) in docs.iter_mut() {
        let state = states.get_mut(id).expect("one state per document");
        if let Some(m) = doc.sync().generate_sync_message(state) {
            let body = SyncMessage {
                sender_id: me.clone(),
                target_id: server.clone(),
                document_id: DocumentId::from_bytes(id.0),
                data: m.encode(),
            };
            send(&if requests.contains(id) {
                RepoMessage::Request(body)
            } else {
                RepoMessage::Sync(body)
            });
        }
    }

    let result = loop {
        let converged_here = target
            .iter()
            .all(|(id, heads)| docs.get_mut(id).is_some_and(|d| d.get_heads() == *heads));
        if converged_here && target.keys().all(|id| server_done.contains(id)) {
            out.converged = true;
            break Ok(out);
        }
        let frame = match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) | Ok(None) => break Ok(out),
            Ok(Some(Err(e))) => {
                out.errors.push(e.to_string());
                break Ok(out);
            }
            Ok(Some(Ok(f))) => f,
        };
        let Message::Binary(b) = frame else { continue };
        // Like the npm client, drop message types it does not know (the
        // server's `lianxin-notification`, say).
        let Ok(message) = repo_protocol::decode(&b) else {
            continue;
        };
        let (id, data) = match message {
            RepoMessage::Sync(m) | RepoMessage::Request(m) => (DocId(*m.document_id.as_bytes()), m.data),
            RepoMessage::Error(e) => {
                out.errors.push(e.message);
                continue;
            }
            RepoMessage::DocUnavailable(m) => {
                out.errors.push(format!("unavailable: {}", m.document_id));
                continue;
            }
            _ => continue,
        };
        let (Some(doc), Some(state)) = (docs.get_mut(&id), states.get_mut(&id)) else {
            continue;
        };
        let message = sync::Message::decode(&data)?;
        doc.sync().receive_sync_message(state, message)?;
        if let Some(heads) = target.get(&id)
            && state.shared_heads == *heads
        {
            server_done.insert(id);
        }
        if let Some(m) = doc.sync().generate_sync_message(state) {
            send(&RepoMessage::Sync(SyncMessage {
                sender_id: me.clone(),
                target_id: server.clone(),
                document_id: DocumentId::from_bytes(id.0),
                data: m.encode(),
            }));
        }
    };
    // Closing the queue lets the writer send what is queued and close the socket.
    drop(queue);
    if out_of_time(until) {
        writer.abort();
    } else {
        let _ = tokio::time::timeout_at(until, writer).await;
    }
    result
}

fn out_of_time(until: Instant) -> bool {
    Instant::now() >= until
}
