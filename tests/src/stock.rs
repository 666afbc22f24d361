//! A stock automerge-repo v1 client, for comparison with the batched
//! extension: it behaves like the npm `@automerge/automerge-repo` client on
//! connection, offering every document it holds with a fresh sync state, all
//! at once, and answering each sync message until the two sides agree.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use sync_core::batch::DocId;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, PeerId, PeerMetadata, RepoMessage, SyncMessage};
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
    let (mut ws, _) = tokio::time::timeout_at(until, tokio_tungstenite::connect_async(url)).await??;
    let me = PeerId::from(format!("stock-{:08x}", rand::random::<u32>()));
    let join = RepoMessage::Join(JoinMessage {
        sender_id: me.clone(),
        peer_metadata: Some(PeerMetadata {
            storage_id: None,
            is_ephemeral: Some(false),
        }),
        supported_protocol_versions: vec![repo_protocol::PROTOCOL_V1.into()],
    });
    ws.send(Message::Binary(repo_protocol::encode(&join).into())).await?;
    let server = loop {
        let Ok(Some(frame)) = tokio::time::timeout_at(until, ws.next()).await else {
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
    let mut outgoing = Vec::new();
    for (id, doc) in docs.iter_mut() {
        let state = states.get_mut(id).expect("one state per document");
        if let Some(m) = doc.sync().generate_sync_message(state) {
            let body = SyncMessage {
                sender_id: me.clone(),
                target_id: server.clone(),
                document_id: DocumentId::from_bytes(id.0),
                data: m.encode(),
            };
            outgoing.push(if requests.contains(id) {
                RepoMessage::Request(body)
            } else {
                RepoMessage::Sync(body)
            });
        }
    }
    for m in &outgoing {
        ws.send(Message::Binary(repo_protocol::encode(m).into())).await?;
    }

    loop {
        let converged_here = target
            .iter()
            .all(|(id, heads)| docs.get_mut(id).is_some_and(|d| d.get_heads() == *heads));
        if converged_here && target.keys().all(|id| server_done.contains(id)) {
            out.converged = true;
            let _ = ws.close(None).await;
            return Ok(out);
        }
        let frame = match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) | Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => {
                out.errors.push(e.to_string());
                return Ok(out);
            }
            Ok(Some(Ok(f))) => f,
        };
        let Message::Binary(b) = frame else { continue };
        let (id, data) = match repo_protocol::decode(&b)? {
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
            let body = SyncMessage {
                sender_id: me.clone(),
                target_id: server.clone(),
                document_id: DocumentId::from_bytes(id.0),
                data: m.encode(),
            };
            ws.send(Message::Binary(repo_protocol::encode(&RepoMessage::Sync(body)).into()))
                .await?;
        }
    }
}
