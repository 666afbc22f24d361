//! The document service: the one path by which changes reach storage.
//!
//! Documents are loaded on demand into a bounded cache (least recently used
//! documents are evicted, so memory does not grow with the number of
//! documents) and guarded by a per-document lock. Every change, whether it
//! arrives by automerge-repo sync, batched sync or a REST action, goes through
//! [`DocService::apply`]: actor binding, sync-core policy on a copy, storage of
//! the accepted changes with their projections in one transaction, then the
//! cached copy is updated and subscribers are told. A change is acknowledged
//! only after that transaction commits.

mod batch;
mod projection;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use automerge::sync::{self as am_sync};
use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use sha2::{Digest, Sha256};
use sync_core::policy::{PolicyContext, Refusal, Rule, Visibility, check_changes, may_read};
use sync_core::validated_sync::{self, RefusedChanges, SyncError};
use sync_core::{Author, Calendar, ClockRules, DocKind, HlcClock, OrgTree, Principal, SchemaError, Timestamp, UserId};
use thiserror::Error;
use tokio::sync::{OwnedMutexGuard, broadcast};

use crate::clock::Clock;
use crate::notify::FanoutSettings;
use crate::storage::{DocFilter, InboxItem, Storage, StorageError, StoredChange};

pub use projection::Projection;

/// How many documents stay loaded by default.
pub const DEFAULT_CACHE_DOCS: usize = 1024;
/// After this many stored changes a document is compacted into a new snapshot.
pub const COMPACT_AFTER_CHANGES: usize = 256;
/// A document is also compacted once its changes since the snapshot hold this
/// many bytes, or as many as the snapshot itself if that is larger (so a large
/// document is not rewritten for every few changes). Changes carry every op in
/// full, a snapshot packs them in columns: a village room created with 10,000
/// members is one 210 KB change or a 24 KB snapshot, and loads from the
/// snapshot in 4 ms instead of 11 ms.
pub const COMPACT_AFTER_BYTES: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum DocError {
    #[error("document not found")]
    NotFound,
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("document does not read: {0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    Sync(#[from] SyncError),
    #[error("stored document does not load: {0}")]
    Load(String),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::DeriveError),
}

/// A change was stored: who wrote to which document, and its new last seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocEvent {
    pub doc_id: String,
    pub kind: DocKind,
    pub last_seq: i64,
    pub by: UserId,
    /// The inbox items the change's transaction wrote on this node, in
    /// cursor order (empty for other nodes' changes), so the dispatcher
    /// can deliver them without reading them back.
    pub inbox: Arc<[InboxItem]>,
    /// Whether the changes may have changed who reads the document
    /// (`Checked::readers_may_change`; always true for other nodes'
    /// changes): live connections following it check their reader again.
    pub readers_may_change: bool,
}

/// What became of a batch of changes.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub accepted: Vec<ChangeHash>,
    pub refused: Vec<Refusal>,
    /// Changes the document already had.
    pub duplicates: usize,
}

struct Loaded {
    doc: AutoCommit,
    /// The highest change seq folded into `doc`.
    last_seq: i64,
    /// Changes stored since the last compaction seen by this node.
    uncompacted: usize,
    /// Their bytes, and the bytes of the snapshot they follow.
    uncompacted_bytes: usize,
    snapshot_bytes: usize,
}

impl Loaded {
    fn compaction_due(&self) -> bool {
        self.uncompacted >= COMPACT_AFTER_CHANGES
            || (self.uncompacted > 0 && self.uncompacted_bytes >= COMPACT_AFTER_BYTES.max(self.snapshot_bytes))
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Loaded>>>;

/// Changes policy accepted: the document before and after them, and
/// whether they may change who reads it (`Checked::readers_may_change`).
struct Edit<'a> {
    before: &'a AutoCommit,
    after: &'a AutoCommit,
    accepted: &'a [Change],
    readers_may_change: bool,
}

/// Settings the service is built with.
#[derive(Clone, Debug)]
pub struct DocSettings {
    pub cache_docs: usize,
    pub rules: ClockRules,
    pub calendar: Calendar,
    /// How notifications reach people without a live connection.
    pub fanout: FanoutSettings,
}

impl Default for DocSettings {
    fn default() -> Self {
        DocSettings {
            cache_docs: DEFAULT_CACHE_DOCS,
            rules: ClockRules::default(),
            calendar: Calendar::china(),
            fanout: FanoutSettings::default(),
        }
    }
}

/// Cheap to clone: all clones share one cache and one event stream.
#[derive(Clone)]
pub struct DocService {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    clock: Arc<dyn Clock>,
    /// Replaced whole when clock rules or the calendar change at run time.
    settings: RwLock<Arc<DocSettings>>,
    org: RwLock<Arc<OrgTree>>,
    cache: Mutex<lru::LruCache<String, Slot>>,
    events: broadcast::Sender<DocEvent>,
    /// Documents read from storage into the cache since start-up.
    loads: AtomicU64,
}

impl std::fmt::Debug for DocService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocService")
            .field("cache_docs", &self.settings().cache_docs)
            .finish()
    }
}

/// The actor id the server writes with on behalf of `user` (REST actions):
/// derived from the user id, so it is stable and bound to that user alone.
pub fn rest_actor(user: &UserId) -> ActorId {
    let digest = Sha256::digest(format!("lianxin-rest-actor:{user}").as_bytes());
    ActorId::from(&digest[..16])
}

impl DocService {
    pub async fn new(storage: Storage, clock: Arc<dyn Clock>, settings: DocSettings) -> Result<Self, DocError> {
        let org = storage.org_tree().await?;
        let cap = NonZeroUsize::new(settings.cache_docs.max(1)).expect("nonzero");
        let (events, _) = broadcast::channel(4096);
        // Changes other nodes store reach this node's subscribers too.
        if let Some(mut listener) = storage.listen_changes().await? {
            let events = events.clone();
            tokio::spawn(async move {
                loop {
                    match listener.next().await {
                        Ok(n) => {
                            let (Ok(kind), Ok(by)) = (n.kind.parse::<DocKind>(), UserId::new(n.user)) else {
                                continue;
                            };
                            let _ = events.send(DocEvent {
                                doc_id: n.doc_id,
                                kind,
                                last_seq: n.last_seq,
                                by,
                                inbox: Arc::new([]),
                                readers_may_change: true,
                            });
                        }
                        Err(StorageError::Database(sqlx::Error::PoolClosed)) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for other nodes' changes failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
        Ok(DocService {
            inner: Arc::new(Inner {
                storage,
                clock,
                settings: RwLock::new(Arc::new(settings)),
                org: RwLock::new(Arc::new(org)),
                cache: Mutex::new(lru::LruCache::new(cap)),
                events,
                loads: AtomicU64::new(0),
            }),
        })
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The settings in force now (clock rules and calendar can change at run time).
    pub fn settings(&self) -> Arc<DocSettings> {
        self.inner.settings.read().expect("settings lock").clone()
    }

    /// Replaces the clock rules and the working-day calendar: changes stored
    /// from now on are projected with them.
    pub fn set_clocks(&self, rules: ClockRules, calendar: Calendar) {
        let mut settings = self.inner.settings.write().expect("settings lock");
        *settings = Arc::new(DocSettings {
            rules,
            calendar,
            ..(**settings).clone()
        });
    }

    /// The organisation tree policy decides with.
    pub fn org(&self) -> Arc<OrgTree> {
        self.inner.org.read().expect("org lock").clone()
    }

    /// Re-reads the organisation tree (after an admin import).
    pub async fn reload_org(&self) -> Result<(), DocError> {
        let org = self.inner.storage.org_tree().await?;
        *self.inner.org.write().expect("org lock") = Arc::new(org);
        Ok(())
    }

    /// Stored changes, as they happen (on this node).
    pub fn subscribe(&self) -> broadcast::Receiver<DocEvent> {
        self.inner.events.subscribe()
    }

    /// How many documents are loaded now.
    pub fn cached_docs(&self) -> usize {
        self.inner.cache.lock().expect("cache lock").len()
    }

    /// How many times a document was read from storage into the cache
    /// (unchanged documents a sync skips never count).
    pub fn loads(&self) -> u64 {
        self.inner.loads.load(Ordering::Relaxed)
    }

    fn slot(&self, doc_id: &str) -> Slot {
        let mut cache = self.inner.cache.lock().expect("cache lock");
        if let Some(slot) = cache.get(doc_id) {
            return slot.clone();
        }
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(None));
        cache.put(doc_id.to_owned(), slot.clone());
        slot
    }

    fn forget(&self, doc_id: &str) {
        self.inner.cache.lock().expect("cache lock").pop(doc_id);
    }

    /// Locks a document, loading it (or catching up with changes other server
    /// nodes stored) first. An unknown document locks as empty.
    async fn lock(&self, doc_id: &str) -> Result<OwnedMutexGuard<Option<Loaded>>, DocError> {
        let mut guard = self.slot(doc_id).lock_owned().await;
        let storage = &self.inner.storage;
        match guard.as_mut() {
            None => {
                self.inner.loads.fetch_add(1, Ordering::Relaxed);
                let loaded = match storage.load_document(doc_id).await? {
                    None => Loaded {
                        doc: AutoCommit::new(),
                        last_seq: 0,
                        uncompacted: 0,
                        uncompacted_bytes: 0,
                        snapshot_bytes: 0,
                    },
                    Some(stored) => {
                        let mut doc = match &stored.snapshot {
                            Some(s) => AutoCommit::load(s).map_err(|e| DocError::Load(e.to_string()))?,
                            None => AutoCommit::new(),
                        };
                        for c in &stored.changes {
                            doc.load_incremental(c).map_err(|e| DocError::Load(e.to_string()))?;
                        }
                        Loaded {
                            doc,
                            last_seq: stored.last_seq,
                            uncompacted: stored.changes.len(),
                            uncompacted_bytes: stored.changes.iter().map(Vec::len).sum(),
                            snapshot_bytes: stored.snapshot.as_ref().map_or(0, Vec::len),
                        }
                    }
                };
                *guard = Some(loaded);
            }
            Some(loaded) => {
                let page = storage
                    .changes_since(loaded.last_seq, &DocFilter::Docs(vec![doc_id.to_owned()]), 10_000)
                    .await?;
                for item in &page.items {
                    loaded
                        .doc
                        .load_incremental(&item.bytes)
                        .map_err(|e| DocError::Load(e.to_string()))?;
                }
                loaded.last_seq = loaded.last_seq.max(page.next_cursor);
            }
        }
        Ok(guard)
    }

    /// Whether `who` may read `doc_id`, from the who-can-see-what projection;
    /// `false` for a document that does not exist.
    pub async fn may_read(&self, who: &Principal, doc_id: &str) -> Result<bool, DocError> {
        let rows = self.inner.storage.doc_access_for(doc_id, &who.user).await?;
        if rows.is_empty() {
            return Ok(false);
        }
        let mut vis = Visibility::default();
        let mut member_of = Vec::new();
        for (kind, subject) in rows {
            let bad = |e: SchemaError| DocError::Storage(StorageError::corrupt(e));
            match kind.as_str() {
                "unit" => vis.units.push(subject.parse().map_err(bad)?),
                "user" => vis.users.push(subject.parse().map_err(bad)?),
                "household" => vis.households.push(subject.parse().map_err(bad)?),
                "audience_unit" => vis.audience_units.push(subject.parse().map_err(bad)?),
                "room" => {
                    if self.inner.storage.is_room_member(&subject, &who.user).await? {
                        member_of.push(subject.clone());
                    }
                    vis.rooms.push(subject);
                }
                _ => {}
            }
        }
        Ok(may_read(&self.org(), who, &vis, |r| member_of.iter().any(|m| m == r)))
    }

    /// A copy of a document `who` may read.
    pub async fn read(&self, who: &Principal, doc_id: &str) -> Result<AutoCommit, DocError> {
        if !self.may_read(who, doc_id).await? {
            return Err(DocError::NotFound);
        }
        let guard = self.lock(doc_id).await?;
        Ok(guard.as_ref().expect("loaded").doc.clone())
    }

    /// Validates and stores `changes` from `who`.
    pub async fn apply(&self, who: &Principal, doc_id: &str, changes: Vec<Change>) -> Result<Applied, DocError> {
        let mut guard = self.lock(doc_id).await?;
        self.apply_locked(&mut guard, who, doc_id, changes, &[]).await
    }

    async fn apply_locked(
        &self,
        guard: &mut OwnedMutexGuard<Option<Loaded>>,
        who: &Principal,
        doc_id: &str,
        changes: Vec<Change>,
        marks: &[String],
    ) -> Result<Applied, DocError> {
        let storage = &self.inner.storage;
        let now = self.now();
        let mut applied = Applied::default();

        // An actor id belongs to the user who first delivered it.
        let mut candidates = Vec::with_capacity(changes.len());
        let mut owners: Vec<(ActorId, Option<UserId>)> = Vec::new();
        for c in changes {
            let actor = c.actor_id().clone();
            let owner = match owners.iter().find(|(a, _)| *a == actor) {
                Some((_, o)) => o.clone(),
                None => {
                    let o = storage.actor_owner(&actor.to_hex_string()).await?;
                    owners.push((actor.clone(), o.clone()));
                    o
                }
            };
            match owner {
                Some(o) if o != who.user => applied.refused.push(Refusal::new(
                    &c.hash(),
                    Rule::ActorBoundToOther,
                    format!("actor {actor} belongs to another user; each device writes with its own actor"),
                )),
                _ => candidates.push(c),
            }
        }
        if candidates.is_empty() {
            return Ok(applied);
        }

        let loaded = guard.as_mut().expect("locked documents are loaded");
        let before = std::mem::take(&mut loaded.doc);
        let org = self.org();
        let ctx = PolicyContext {
            org: &org,
            principal: who,
            now,
        };
        let checked = check_changes(&ctx, before.clone(), candidates.clone());
        applied.refused.extend(checked.refused);
        applied.duplicates = checked.duplicates.len();
        let accepted: Vec<Change> = candidates
            .into_iter()
            .filter(|c| checked.accepted.contains(&c.hash()))
            .collect();
        if accepted.is_empty() {
            loaded.doc = before;
            return Ok(applied);
        }
        let edit_readers_may_change = checked.readers_may_change;
        let edit = Edit {
            before: &before,
            after: &checked.doc,
            accepted: &accepted,
            readers_may_change: edit_readers_may_change,
        };
        let result = self.store(doc_id, who, edit, now, marks).await;
        match result {
            Ok((kind, last_seq, inbox)) => {
                loaded.doc = checked.doc;
                loaded.last_seq = loaded.last_seq.max(last_seq);
                loaded.uncompacted += accepted.len();
                loaded.uncompacted_bytes += accepted.iter().map(|c| c.raw_bytes().len()).sum::<usize>();
                applied.accepted = checked.accepted;
                let _ = self.inner.events.send(DocEvent {
                    doc_id: doc_id.to_owned(),
                    kind,
                    last_seq,
                    by: who.user.clone(),
                    inbox: inbox.into(),
                    readers_may_change: edit_readers_may_change,
                });
                if loaded.compaction_due() {
                    let snapshot = loaded.doc.save();
                    let heads: Vec<String> = loaded.doc.get_heads().iter().map(|h| h.to_string()).collect();
                    if storage
                        .compact(doc_id, &snapshot, &heads, loaded.last_seq, now)
                        .await
                        .is_ok()
                    {
                        loaded.uncompacted = 0;
                        loaded.uncompacted_bytes = 0;
                        loaded.snapshot_bytes = snapshot.len();
                    }
                }
                Ok(applied)
            }
            Err(e) => {
                // Nothing was stored: the cached copy must not keep the changes.
                drop(std::mem::take(&mut **guard));
                self.forget(doc_id);
                Err(e)
            }
        }
    }

    /// Binds actors, stores accepted changes and their projections in one transaction.
    /// `marks` are the clock actions they carry out (see [`DocService::act_once`]). Returns
    /// the kind, the new last seq and the inbox items written.
    async fn store(
        &self,
        doc_id: &str,
        who: &Principal,
        edit: Edit<'_>,
        now: Timestamp,
        marks: &[String],
    ) -> Result<(DocKind, i64, Vec<InboxItem>), DocError> {
        let Edit {
            before,
            after,
            accepted,
            readers_may_change,
        } = edit;
        let storage = &self.inner.storage;
        let kind =
            DocKind::of(after)?.ok_or_else(|| DocError::Forbidden("an empty document cannot be stored".into()))?;
        let mut actors: Vec<String> = accepted.iter().map(|c| c.actor_id().to_hex_string()).collect();
        actors.sort();
        actors.dedup();
        for actor in &actors {
            // Most changes come from an actor bound long ago: a read, not a write transaction.
            if storage.actor_owner(actor).await?.as_ref() == Some(&who.user) {
                continue;
            }
            if let Err(bound) = storage.bind_actor(actor, &who.user, now).await? {
                return Err(DocError::Forbidden(bound.to_string()));
            }
        }
        let settings = self.settings();
        let mut projection = Projection::compute(
            doc_id,
            (before, after),
            readers_may_change,
            &settings.rules,
            &settings.calendar,
            now,
        )?;
        let notifications = crate::notify::derive(storage, &self.org(), who, kind, before, after).await?;
        projection.notify(notifications, &settings.calendar, &settings.fanout);
        projection.marks = marks.to_vec();
        let stored: Vec<StoredChange> = accepted
            .iter()
            .map(|c| StoredChange {
                hash: c.hash().to_string(),
                actor: c.actor_id().to_hex_string(),
                user: who.user.clone(),
                bytes: c.raw_bytes().to_vec(),
                received_at: now,
            })
            .collect();
        let outcome = storage
            .append_changes::<StorageError, _>(doc_id, kind.as_str(), &stored, &mut projection)
            .await?;
        Ok((kind, outcome.last_seq, projection.delivered))
    }

    /// Writes on behalf of `who` (REST): `edit` runs on the current document
    /// with the user's server-side actor and author, and its changes go through
    /// [`DocService::apply`]'s checks. Refusals come back in `Applied`.
    pub async fn act<R>(
        &self,
        who: &Principal,
        doc_id: &str,
        edit: impl FnOnce(&mut AutoCommit, &mut Author, Timestamp) -> Result<R, SchemaError>,
    ) -> Result<(R, Applied), DocError> {
        let mut guard = self.lock(doc_id).await?;
        let loaded = guard.as_mut().expect("loaded");
        if DocKind::of(&loaded.doc)?.is_none() {
            return Err(DocError::NotFound);
        }
        let heads = loaded.doc.get_heads();
        let actor = rest_actor(&who.user);
        let mut work = loaded.doc.fork().with_actor(actor.clone());
        let node = actor.to_hex_string()[..16].to_owned();
        let mut author = Author::new(who.user.clone(), HlcClock::new(node).expect("hex is a valid node"));
        let result = edit(&mut work, &mut author, self.now())?;
        let changes = work.get_changes(&heads);
        let applied = self.apply_locked(&mut guard, who, doc_id, changes, &[]).await?;
        Ok((result, applied))
    }

    /// Like [`DocService::act`], at most once per `mark`: the mark is
    /// recorded in the transaction that stores the edit, and an edit whose
    /// mark is already recorded (on any node, before any restart) is not
    /// made. `None` when it was made before or the edit changed nothing.
    /// The scheduler's clock actions (auto-escalation) go through here.
    pub async fn act_once<R>(
        &self,
        who: &Principal,
        doc_id: &str,
        mark: &str,
        edit: impl FnOnce(&mut AutoCommit, &mut Author, Timestamp) -> Result<R, SchemaError>,
    ) -> Result<Option<(R, Applied)>, DocError> {
        let mut guard = self.lock(doc_id).await?;
        if self.inner.storage.is_fired(mark).await? {
            return Ok(None);
        }
        let loaded = guard.as_mut().expect("loaded");
        if DocKind::of(&loaded.doc)?.is_none() {
            return Err(DocError::NotFound);
        }
        let heads = loaded.doc.get_heads();
        let actor = rest_actor(&who.user);
        let mut work = loaded.doc.fork().with_actor(actor.clone());
        let node = actor.to_hex_string()[..16].to_owned();
        let mut author = Author::new(who.user.clone(), HlcClock::new(node).expect("hex is a valid node"));
        let result = edit(&mut work, &mut author, self.now())?;
        let changes = work.get_changes(&heads);
        if changes.is_empty() {
            return Ok(None);
        }
        let applied = self
            .apply_locked(&mut guard, who, doc_id, changes, &[mark.to_owned()])
            .await?;
        Ok(Some((result, applied)))
    }

    /// Stores a document created on behalf of `who` (REST submit). Re-sending
    /// the same document is idempotent: its changes are duplicates.
    pub async fn create(&self, who: &Principal, doc_id: &str, mut doc: AutoCommit) -> Result<Applied, DocError> {
        let changes = doc.get_changes(&[]);
        self.apply(who, doc_id, changes).await
    }

    /// Handles one automerge sync message from `who`: its changes are
    /// validated and stored before the reply is generated, so the reply
    /// acknowledges only durable changes.
    pub async fn receive_sync(
        &self,
        who: &Principal,
        doc_id: &str,
        state: &mut am_sync::State,
        refused: &mut RefusedChanges,
        message: &[u8],
    ) -> Result<(Applied, Option<Vec<u8>>), DocError> {
        let (mut message, chunks) = validated_sync::split(message)?;
        let mut guard = self.lock(doc_id).await?;
        let incoming = {
            let loaded = guard.as_mut().expect("loaded");
            validated_sync::incoming_changes(&mut loaded.doc, &chunks)?
        };
        let applied = if incoming.is_empty() {
            Applied::default()
        } else {
            let applied = self
                .apply_locked(&mut guard, who, doc_id, incoming.clone(), &[])
                .await?;
            let rejected: Vec<Change> = incoming
                .into_iter()
                .filter(|c| applied.refused.iter().any(|r| r.change == c.hash().to_string()))
                .collect();
            refused.remember(&rejected);
            applied
        };
        // The peer keeps what we refused in its history; read its heads without it.
        message.heads = refused.mask(&message.heads);
        let loaded = guard.as_mut().expect("loaded");
        validated_sync::advance(&mut loaded.doc, state, message, !chunks.is_empty())?;
        Ok((applied, validated_sync::generate(&mut loaded.doc, state)))
    }

    /// The next sync message for a peer, if it lacks anything.
    pub async fn generate_sync(&self, doc_id: &str, state: &mut am_sync::State) -> Result<Option<Vec<u8>>, DocError> {
        let mut guard = self.lock(doc_id).await?;
        let loaded = guard.as_mut().expect("loaded");
        Ok(validated_sync::generate(&mut loaded.doc, state))
    }

    /// Whether a document exists in storage or in the cache.
    pub async fn exists(&self, doc_id: &str) -> Result<bool, DocError> {
        let guard = self.lock(doc_id).await?;
        Ok(DocKind::of(&guard.as_ref().expect("loaded").doc)?.is_some())
    }
}
