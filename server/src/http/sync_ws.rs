//! The automerge-repo v1 endpoint: `GET /sync?token=…` upgraded to a WebSocket.
//!
//! Any automerge-repo client (the npm `@automerge/automerge-repo` with its
//! WebSocket adapter) can sync the documents its user may see. The token
//! travels in the URL query because that client sends no headers. A bad token
//! is answered after the upgrade, with an `error` message and a close (an
//! HTTP 401 on the upgrade would crash a Node client).
//!
//! Per connection the server keeps one Automerge sync state per document the
//! peer asked for, answers `request`/`sync` through the document service
//! (which validates and stores changes before the reply is generated), pushes
//! changes stored by anyone else to the documents the peer follows (checking
//! again that the peer may read one whenever a change may have changed its
//! readers), and closes the socket when the token expires or is revoked. A
//! document the peer may not read is `doc-unavailable`, exactly like a
//! missing one. A document the server lacks, offered with `sync`, keeps a
//! sync state until its changes create it; a peer may have at most
//! `HttpSettings::max_offered_docs` of those at once, and one more closes
//! the connection with a reason (`offered-docs`).

use std::collections::{HashMap, HashSet};

use automerge::sync::State as SyncState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use sync_core::Principal;
use sync_core::repo_protocol::{
    self, DocUnavailableMessage, DocumentId, ErrorMessage, PeerId, PeerMessage, PeerMetadata, RepoMessage, SyncMessage,
};
use sync_core::validated_sync::{RefusedChanges, SyncError};
use tokio::sync::broadcast::error::RecvError;

use crate::docs::{Applied, DocError};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
    /// Also replay the caller's inbox items after this cursor; without it
    /// only items arriving from now on are pushed.
    inbox_after: Option<i64>,
}

pub async fn sync_ws(State(state): State<AppState>, Query(q): Query<TokenQuery>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(state.http.max_ws_message_bytes)
        .read_buffer_size(super::WS_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            if let Err(e) = Connection::run(state, socket, q.token, q.inbox_after).await {
                tracing::debug!(error = %e, "sync connection ended");
            }
        })
}

struct Connection {
    state: AppState,
    principal: Principal,
    me: PeerId,
    peer: PeerId,
    docs: HashMap<DocumentId, (SyncState, RefusedChanges)>,
    /// Documents in `docs` the server lacked when the peer offered them
    /// and that are not created yet.
    offered: HashSet<DocumentId>,
}

type Socket = futures_util::stream::SplitSink<WebSocket, Message>;

/// Frames read ahead of the connection loop.
const FRAMES_QUEUED: usize = 8;

/// Stops a connection's reader task when the connection ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send(sink: &mut Socket, message: &RepoMessage) -> Result<(), axum::Error> {
    sink.send(Message::Binary(repo_protocol::encode(message).into())).await
}

/// WebSocket close codes this endpoint uses.
const CLOSE_UNAUTHORIZED: u16 = sync_core::wire::CloseCode::Unauthorized.code();
/// A frame or sync message crossed a limit of `sync_core::guard`.
const CLOSE_REFUSED: u16 = sync_core::wire::CloseCode::BadFrame.code();

async fn refuse_and_close(sink: &mut Socket, me: &PeerId, message: String) -> Result<(), axum::Error> {
    close_with(sink, me, CLOSE_UNAUTHORIZED, message).await
}

/// Sends an `error` message and closes with `code`; the reason is the
/// message's first 100 characters.
async fn close_with(sink: &mut Socket, me: &PeerId, code: u16, message: String) -> Result<(), axum::Error> {
    send(
        sink,
        &RepoMessage::Error(ErrorMessage {
            sender_id: Some(me.clone()),
            target_id: None,
            message: message.clone(),
        }),
    )
    .await?;
    let reason: String = message.chars().take(100).collect();
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })))
    .await
}

impl Connection {
    async fn run(
        state: AppState,
        socket: WebSocket,
        token: Option<String>,
        inbox_after: Option<i64>,
    ) -> Result<(), axum::Error> {
        let (mut sink, mut stream) = socket.split();
        let me = PeerId::from(format!("lianxin-server-{}", state.node_id));
        let claims = match token {
            None => return refuse_and_close(&mut sink, &me, "unauthorized: pass ?token=<access token>".into()).await,
            Some(t) => match state.auth.authenticate(&t).await {
                Ok(c) => c,
                Err(e) => return refuse_and_close(&mut sink, &me, format!("unauthorized: {e}")).await,
            },
        };
        let user = match sync_core::UserId::new(claims.sub.clone()) {
            Ok(u) => u,
            Err(e) => return refuse_and_close(&mut sink, &me, format!("unauthorized: {e}")).await,
        };
        let principal = match state.auth.principal(&user).await {
            Ok(p) => p,
            Err(e) => return refuse_and_close(&mut sink, &me, format!("unauthorized: {e}")).await,
        };
        let mut watch = state.auth.watch(claims);

        // The first message must be `join`.
        let peer = loop {
            let Some(frame) = stream.next().await else {
                return Ok(());
            };
            match frame? {
                Message::Binary(b) => match repo_protocol::decode(&b) {
                    Ok(RepoMessage::Join(join)) if join.supports_v1() => break join.sender_id,
                    Ok(RepoMessage::Join(_)) => {
                        return refuse_and_close(
                            &mut sink,
                            &me,
                            "unsupported protocol version: this server speaks \"1\"".into(),
                        )
                        .await;
                    }
                    Ok(other) => {
                        let m = format!("expected join, got {}", other.message_type());
                        return refuse_and_close(&mut sink, &me, m).await;
                    }
                    Err(e) => return refuse_and_close(&mut sink, &me, format!("bad frame: {e}")).await,
                },
                Message::Close(_) => return Ok(()),
                _ => {}
            }
        };
        send(
            &mut sink,
            &RepoMessage::Peer(PeerMessage {
                sender_id: me.clone(),
                target_id: peer.clone(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: None,
                    is_ephemeral: Some(false),
                }),
                selected_protocol_version: repo_protocol::PROTOCOL_V1.into(),
            }),
        )
        .await?;

        // Document events only matter once the peer follows a document: a
        // client that only listens for notifications is not woken by every change.
        let mut events: Option<tokio::sync::broadcast::Receiver<crate::docs::DocEvent>> = None;
        let inbox = match inbox_after {
            Some(after) => state.notify.subscribe(&principal.user, after).await,
            None => state.notify.subscribe_live(&principal.user).await,
        };
        let mut inbox = match inbox {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no notifications on this connection");
                None
            }
        };
        let mut conn = Connection {
            state,
            principal,
            me,
            peer,
            docs: HashMap::new(),
            offered: HashSet::new(),
        };
        // Frames are read by a task of their own and handed over through a
        // short queue (the peer still feels back-pressure). The loop below
        // wakes for every notification; polling the socket itself each time
        // costs a read attempt and a cleared read buffer, polling the queue
        // next to nothing. The expiry watch, likewise, is one future for the
        // whole connection.
        let (frames_tx, mut frames) = tokio::sync::mpsc::channel(FRAMES_QUEUED);
        let _reader = AbortOnDrop(tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let failed = frame.is_err();
                if frames_tx.send(frame).await.is_err() {
                    return;
                }
                if failed {
                    // Read on while the loop sends its close, so the peer
                    // gets the close frame instead of a reset.
                    let _ = super::drain(stream).await;
                    return;
                }
            }
        }));
        let ended = watch.ended();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                frame = frames.recv() => {
                    let Some(frame) = frame else { return Ok(()) };
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(e) => match super::too_large(&e) {
                            Some(why) => {
                                close_with(&mut sink, &conn.me, super::CLOSE_TOO_BIG, why).await?;
                                // The reader drains what the peer still sends, then ends.
                                let _ = tokio::time::timeout(std::time::Duration::from_secs(6), async {
                                    while frames.recv().await.is_some() {}
                                })
                                .await;
                                return Ok(());
                            }
                            None => return Err(e),
                        },
                    };
                    match frame {
                        Message::Binary(b) => {
                            if events.is_none() {
                                events = Some(conn.state.docs.subscribe());
                            }
                            if let Some(reason) = conn.on_frame(&mut sink, &b).await? {
                                tracing::info!(user = %conn.principal.user, %reason, "sync connection refused a payload");
                                return close_with(&mut sink, &conn.me, CLOSE_REFUSED, reason).await;
                            }
                        }
                        Message::Close(_) => return Ok(()),
                        _ => {}
                    }
                }
                event = next_event(&mut events) => match event {
                    Ok(ev) => {
                        if let Ok(id) = ev.doc_id.parse::<DocumentId>() {
                            conn.push_doc(&mut sink, &id, ev.readers_may_change).await?;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let ids: Vec<DocumentId> = conn.docs.keys().copied().collect();
                        for id in ids {
                            conn.push_doc(&mut sink, &id, true).await?;
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                item = next_item(&mut inbox) => match item {
                    Ok(item) => {
                        let cursor = item.cursor;
                        conn.send_notification(&mut sink, &item).await?;
                        if let Some(s) = &inbox {
                            s.delivered(cursor);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "notifications stopped on this connection");
                        inbox = None;
                    }
                },
                end = &mut ended => {
                    let why = format!("token {}", match end { crate::auth::TokenEnd::Expired => "expired", crate::auth::TokenEnd::Revoked => "revoked" });
                    return refuse_and_close(&mut sink, &conn.me, why).await;
                }
            }
        }
    }

    /// Handles one frame. `Some(reason)` ends the connection: the frame or
    /// its sync message crossed a limit (a well-behaved client never does).
    async fn on_frame(&mut self, sink: &mut Socket, bytes: &[u8]) -> Result<Option<String>, axum::Error> {
        let message = match repo_protocol::decode(bytes) {
            Ok(m) => m,
            Err(e @ repo_protocol::ProtocolError::Refused(_)) => return Ok(Some(format!("bad frame: {e}"))),
            Err(e) => return self.error(sink, format!("bad frame: {e}")).await.map(|()| None),
        };
        match message {
            RepoMessage::Request(m) => self.on_sync(sink, m, true).await,
            RepoMessage::Sync(m) => self.on_sync(sink, m, false).await,
            // Presence, subscriptions and heads gossip are not needed by a server peer.
            _ => Ok(None),
        }
    }

    async fn error(&self, sink: &mut Socket, message: String) -> Result<(), axum::Error> {
        send(
            sink,
            &RepoMessage::Error(ErrorMessage {
                sender_id: Some(self.me.clone()),
                target_id: Some(self.peer.clone()),
                message,
            }),
        )
        .await
    }

    async fn unavailable(&self, sink: &mut Socket, id: DocumentId) -> Result<(), axum::Error> {
        send(
            sink,
            &RepoMessage::DocUnavailable(DocUnavailableMessage {
                sender_id: self.me.clone(),
                target_id: self.peer.clone(),
                document_id: id,
            }),
        )
        .await
    }

    /// One `request` (the peer asks for a document it lacks) or `sync` (the
    /// peer holds the document) message.
    /// `Some(reason)` when the message crossed a limit and the connection closes.
    async fn on_sync(
        &mut self,
        sink: &mut Socket,
        m: SyncMessage,
        request: bool,
    ) -> Result<Option<String>, axum::Error> {
        let id = m.document_id;
        let key = id.to_string();
        // Refused before anything is read for it; heavy ones wait their turn.
        let cost = match sync_core::guard::sync_message(&m.data, &sync_core::guard::Limits::default()) {
            Ok(cost) => cost,
            Err(e) => return Ok(Some(format!("document {key}: sync message {e}"))),
        };
        let _permit = self.state.http.heavy_work.admit(&cost, m.data.len()).await;
        let docs = self.state.docs.clone();
        let exists = match docs.exists(&key).await {
            Ok(e) => e,
            Err(e) => return self.error(sink, format!("document {key}: {e}")).await.map(|()| None),
        };
        if exists {
            match docs.may_read(&self.principal, &key).await {
                Ok(true) => {}
                Ok(false) => return self.unavailable(sink, id).await.map(|()| None),
                Err(e) => return self.error(sink, format!("document {key}: {e}")).await.map(|()| None),
            }
        }
        if !exists && !request && !self.offered.contains(&id) {
            let limit = self.state.http.max_offered_docs;
            if self.offered.len() >= limit {
                return Ok(Some(format!(
                    "document {key}: offered-docs: more than {limit} documents the server lacks are offered and not created"
                )));
            }
        }
        let (state, refused) = self.docs.entry(id).or_default();
        match docs.receive_sync(&self.principal, &key, state, refused, &m.data).await {
            Ok((applied, reply)) => {
                if !applied.refused.is_empty() {
                    self.error(sink, refusal_message(&key, &applied)).await?;
                }
                let created = !exists && !applied.accepted.is_empty();
                // A peer that created a document (a stock `Repo.create()`)
                // offers it with `sync`, first with only its heads: the
                // exchange goes on, our answer asks for the changes, and the
                // document exists once they pass policy. Asked for with
                // `request`, an unknown document is unavailable.
                if !exists && !created && (request || !applied.refused.is_empty()) {
                    self.forget(&id);
                    return self.unavailable(sink, id).await.map(|()| None);
                }
                if exists || created {
                    self.offered.remove(&id);
                } else {
                    self.offered.insert(id);
                }
                if let Some(data) = reply {
                    self.send_sync(sink, id, data).await?;
                }
                Ok(None)
            }
            Err(DocError::Sync(e @ SyncError::Refused(_))) => {
                self.forget(&id);
                Ok(Some(format!("document {key}: {e}")))
            }
            Err(DocError::Sync(e)) => self.error(sink, format!("document {key}: {e}")).await.map(|()| None),
            Err(e) => {
                tracing::warn!(doc = %key, error = %e, "sync failed");
                self.error(
                    sink,
                    format!("document {key}: the server could not process this message"),
                )
                .await
                .map(|()| None)
            }
        }
    }

    /// Stops following a document.
    fn forget(&mut self, id: &DocumentId) {
        self.docs.remove(id);
        self.offered.remove(id);
    }

    async fn send_sync(&self, sink: &mut Socket, id: DocumentId, data: Vec<u8>) -> Result<(), axum::Error> {
        send(
            sink,
            &RepoMessage::Sync(SyncMessage {
                sender_id: self.me.clone(),
                target_id: self.peer.clone(),
                document_id: id,
                data,
            }),
        )
        .await
    }

    /// Pushes an inbox item as a `lianxin-notification` message (see
    /// `sync_core::repo_protocol::NotificationMessage`), which stock
    /// automerge-repo clients drop.
    async fn send_notification(&self, sink: &mut Socket, item: &crate::storage::InboxItem) -> Result<(), axum::Error> {
        let frame = repo_protocol::encode_notification(&repo_protocol::NotificationMessage {
            sender_id: self.me.clone(),
            target_id: self.peer.clone(),
            cursor: u64::try_from(item.cursor).unwrap_or(0),
            notification: serde_json::to_string(item).unwrap_or_default(),
        });
        sink.send(Message::Binary(frame.into())).await
    }

    /// Sends what a followed document gained since the peer last heard.
    /// When the change may have changed who reads it (a member removed, a
    /// petition routed elsewhere), the peer's reading is checked again
    /// first: one who may no longer read it stops following it and hears
    /// `doc-unavailable`, as for a document it never could read.
    async fn push_doc(&mut self, sink: &mut Socket, id: &DocumentId, recheck: bool) -> Result<(), axum::Error> {
        if !self.docs.contains_key(id) {
            return Ok(());
        }
        if recheck {
            match self.state.docs.may_read(&self.principal, &id.to_string()).await {
                Ok(true) => {}
                Ok(false) => {
                    self.forget(id);
                    return self.unavailable(sink, *id).await;
                }
                Err(e) => {
                    // Not knowing is not reading: stop pushing it.
                    tracing::warn!(doc = %id, error = %e, "could not re-check read access; the document stops syncing");
                    self.forget(id);
                    return self.unavailable(sink, *id).await;
                }
            }
        }
        let Some((state, _)) = self.docs.get_mut(id) else {
            return Ok(());
        };
        match self.state.docs.generate_sync(&id.to_string(), state).await {
            Ok(Some(data)) => self.send_sync(sink, *id, data).await,
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(doc = %id, error = %e, "could not push changes");
                Ok(())
            }
        }
    }
}

/// The next document event, or never before the peer follows a document.
async fn next_event(
    events: &mut Option<tokio::sync::broadcast::Receiver<crate::docs::DocEvent>>,
) -> Result<crate::docs::DocEvent, RecvError> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// The next inbox item, or never when the connection has no subscription.
async fn next_item(
    inbox: &mut Option<crate::notify::InboxSubscription>,
) -> Result<crate::storage::InboxItem, crate::storage::StorageError> {
    match inbox {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The refusal as text a person can read and a program can parse: a fixed
/// prefix followed by JSON `{document, refused: [{change, rule, detail}]}`.
fn refusal_message(doc: &str, applied: &Applied) -> String {
    let body = serde_json::json!({ "document": doc, "refused": applied.refused });
    format!("lianxin-refusal {body}")
}
