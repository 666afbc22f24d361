//! A simulated phone: an in-memory replica that syncs with a server over the
//! batched extension (`/batch`), the way the phone library does, reconnecting
//! and resuming when the link drops, and dropping changes the server refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use sync_core::batch::{BatchClient, BatchError, ClientEvent, ClientState, DocId, ReplicaDocs};
use tokio_tungstenite::tungstenite::Message;

/// The documents a phone holds, with a count of loads (the work a sync costs it).
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub docs: BTreeMap<DocId, AutoCommit>,
    pub loads: usize,
}

impl ReplicaDocs for Store {
    fn dirty(&self, state: &ClientState) -> Vec<DocId> {
        // A real store keeps each document's heads in its index; comparing
        // them costs no load.
        self.docs
            .iter()
            .filter(|(id, doc)| state.shared.get(id).is_none_or(|s| *s != heads(doc)))
            .map(|(id, _)| *id)
            .collect()
    }

    fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
        let doc = self.docs.get(id)?.clone();
        self.loads += 1;
        Some(doc)
    }

    fn store(&mut self, id: &DocId, doc: AutoCommit) {
        self.docs.insert(*id, doc);
    }

    fn remove(&mut self, id: &DocId) {
        self.docs.remove(id);
    }
}

fn heads(doc: &AutoCommit) -> Vec<ChangeHash> {
    doc.clone().get_heads()
}

/// What one [`Phone::sync`] did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    /// Every event the client reported, in order.
    pub events: Vec<ClientEvent>,
    /// Connections opened (1 when the link held).
    pub connections: usize,
    /// Exchanges started (more than one when the link dropped or the pull was paged).
    pub exchanges: usize,
}

impl SyncReport {
    /// Whether the sync moved nothing: one exchange that only ended (the
    /// server's settings generation aside).
    pub fn is_idle(&self) -> bool {
        let ends = self
            .events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Done { .. }))
            .count();
        ends == 1
            && self
                .events
                .iter()
                .all(|e| matches!(e, ClientEvent::Done { .. } | ClientEvent::Settings { .. }))
    }

    /// The refusals reported, per document (those of documents dropped whole too).
    pub fn refused(&self) -> Vec<(DocId, ChangeHash, String)> {
        self.events
            .iter()
            .flat_map(|e| match e {
                ClientEvent::Refused { id, refused } | ClientEvent::Dropped { id, refused, .. } => {
                    refused.iter().map(|r| (*id, r.change, r.rule.clone())).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// The documents dropped whole (every change the phone held refused).
    pub fn dropped(&self) -> Vec<DocId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Dropped { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }
}

/// Why a sync gave up.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("no complete exchange after {0} connections")]
    GaveUp(usize),
}

/// A phone replica with its persisted sync state.
#[derive(Debug)]
pub struct Phone {
    pub store: Store,
    client: BatchClient,
    exchange: u64,
}

impl Clone for Phone {
    fn clone(&self) -> Self {
        Phone {
            store: self.store.clone(),
            client: BatchClient::new(self.client.state().clone()).with_early_pull(true),
            exchange: self.exchange,
        }
    }
}

impl Default for Phone {
    fn default() -> Self {
        Phone::new(ClientState::default())
    }
}

impl Phone {
    pub fn new(state: ClientState) -> Self {
        Phone {
            store: Store::default(),
            client: BatchClient::new(state).with_early_pull(true),
            exchange: 0,
        }
    }

    /// Syncs with `url` (`ws://…/batch?token=…`) until an exchange completes
    /// with nothing more to pull, reconnecting up to `max_connections` times
    /// when the link drops. Each reconnect starts a new exchange from the
    /// persisted state: what was acknowledged is not sent again.
    pub async fn sync(&mut self, url: &str, max_connections: usize) -> Result<SyncReport, PhoneError> {
        let mut report = SyncReport::default();
        while report.connections < max_connections {
            report.connections += 1;
            let Ok((ws, _)) = tokio_tungstenite::connect_async(url).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let (mut tx, mut rx) = ws.split();
            'exchanges: loop {
                self.exchange += 1;
                report.exchanges += 1;
                // Every part at once, in one write: the client does not wait
                // between parts.
                let frames = self.client.start(self.exchange, &mut self.store);
                for f in frames {
                    if tx.feed(Message::Binary(f.into())).await.is_err() {
                        break 'exchanges;
                    }
                }
                if tx.flush().await.is_err() {
                    break 'exchanges;
                }
                loop {
                    let bytes = match rx.next().await {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break 'exchanges,
                        Some(Ok(_)) => continue,
                    };
                    let events = match self.client.handle(&bytes, &mut self.store) {
                        Ok(events) => events,
                        Err(BatchError::Peer { code, message }) => {
                            if code == "unauthorized" || code == "unsupported-version" || code == "bad-frame" {
                                return Err(PhoneError::Refused(format!("{code}: {message}")));
                            }
                            break 'exchanges;
                        }
                        Err(e) => return Err(PhoneError::Refused(e.to_string())),
                    };
                    let more = events.contains(&ClientEvent::More);
                    let done = events.iter().any(|e| matches!(e, ClientEvent::Done { .. }));
                    report.events.extend(events);
                    if done {
                        self.drop_refused(&report.events);
                        if more {
                            continue 'exchanges;
                        }
                        // Hang up without a closing handshake: on a slow link
                        // that would cost one more round trip for nothing.
                        return Ok(report);
                    }
                }
            }
        }
        Err(PhoneError::GaveUp(report.connections))
    }

    /// Drops the refused changes the phone holds, and what builds on them,
    /// as the phone library does when an exchange ends (without replaying
    /// anything: a simulated phone keeps no intents).
    fn drop_refused(&mut self, events: &[ClientEvent]) {
        let mut refused: BTreeMap<DocId, BTreeSet<ChangeHash>> = BTreeMap::new();
        for e in events {
            if let ClientEvent::Refused { id, refused: r } = e {
                refused.entry(*id).or_default().extend(r.iter().map(|r| r.change));
            }
        }
        for (id, hashes) in refused {
            if let Some(doc) = self.store.docs.get_mut(&id) {
                let (rebuilt, removed) = sync_core::relay::without(doc, &hashes);
                if !removed.is_empty() {
                    self.store.docs.insert(id, rebuilt);
                }
            }
        }
    }
}
