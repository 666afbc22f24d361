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
mod private;
mod relay;
pub use private::PRIVATE_PETITIONS_STEP;
pub use relay::{REBUILT_USER, RelayAuthors};

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use automerge::sync::{self as am_sync};
use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use sha2::{Digest, Sha256};
use sync_core::clocks::Receipts;
use sync_core::doc::cache::EntryCache;
use sync_core::policy::{PolicyContext, Refusal, Visibility, may_read};
use sync_core::projection::{AccessKind, AccessRow};
use sync_core::validated_sync::{self, RefusedChanges, SyncError};
use sync_core::write::{ActorBinding, Facts, Needs, Origin, WriteOutcome, propose};
use sync_core::{
    Author, Calendar, ClockRules, DocKind, HlcClock, HouseholdId, OrgTree, Principal, SchemaError, Timestamp, UserId,
};
use thiserror::Error;
use tokio::sync::{OwnedMutexGuard, broadcast};

use crate::clock::Clock;
use crate::storage::{DocFilter, FeedItemKind, InboxItem, Pending, Storage, StorageError, StoredChange};
use crate::write::{CommitSettings, Committer, FanoutSettings, JobResult, WriteJob};

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
/// How many times a write is computed again after another writer moved its
/// document first, before the caller is told the document is busy.
pub const MAX_WRITE_ATTEMPTS: u32 = 16;
/// Attempts computed on the cached copy and queued for the group committer;
/// later attempts take the change-log lock first, catch up and compute under
/// it, so a write that keeps losing the race to another node wins the next.
pub const OPTIMISTIC_ATTEMPTS: u32 = 3;

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
    #[error("document {0} is being written by other servers too often to write now; try again")]
    Busy(String),
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

/// A document as this node holds it: every stored change up to `position`
/// and nothing that is not stored.
struct Loaded {
    doc: AutoCommit,
    /// The seq of the latest stored change folded into `doc` (0: none).
    position: i64,
    /// The entries of `doc` parsed so far, so a write reads only new ones.
    entries: EntryCache,
    /// A petition's entry receipts as read (or written) when the copy was
    /// at the position beside them; read again once the copy moves on
    /// without this node writing.
    receipts: Option<(i64, Receipts)>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Loaded>>>;

/// Settings the service is built with.
#[derive(Clone, Debug)]
pub struct DocSettings {
    pub cache_docs: usize,
    pub rules: ClockRules,
    pub calendar: Calendar,
    /// How notifications reach people without a live connection.
    pub fanout: FanoutSettings,
    /// Compaction is due after this many changes since the snapshot…
    pub compact_after_changes: usize,
    /// …or once they hold this many bytes (or the snapshot's, if larger).
    pub compact_after_bytes: usize,
    /// Attempts of a write computed on the cached copy before the next ones
    /// are computed under the change-log lock (see [`OPTIMISTIC_ATTEMPTS`]).
    pub optimistic_attempts: u32,
}

impl Default for DocSettings {
    fn default() -> Self {
        DocSettings {
            cache_docs: DEFAULT_CACHE_DOCS,
            rules: ClockRules::default(),
            calendar: Calendar::china(),
            fanout: FanoutSettings::default(),
            compact_after_changes: COMPACT_AFTER_CHANGES,
            compact_after_bytes: COMPACT_AFTER_BYTES,
            optimistic_attempts: OPTIMISTIC_ATTEMPTS,
        }
    }
}

impl DocSettings {
    fn compaction_due(&self, p: &Pending) -> bool {
        let changes = usize::try_from(p.changes).unwrap_or(0);
        let bytes = usize::try_from(p.bytes).unwrap_or(0);
        let snapshot = usize::try_from(p.snapshot_bytes).unwrap_or(0);
        changes >= self.compact_after_changes.max(1) || (changes > 0 && bytes >= self.compact_after_bytes.max(snapshot))
    }
}

/// Counters of the write path since start-up, for logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Writes computed again because another writer moved the document first.
    pub retries: u64,
    /// Writes given up on after [`MAX_WRITE_ATTEMPTS`].
    pub busy: u64,
    /// Cached documents read again from storage because a catch-up left a
    /// change waiting on a dependency the copy did not have.
    pub reloads: u64,
    pub compactions: u64,
    pub compaction_failures: u64,
    /// Transactions the committer ran, and the writes they held.
    pub groups: u64,
    pub grouped_writes: u64,
    /// Writes computed and stored under the change-log lock after
    /// [`OPTIMISTIC_ATTEMPTS`] lost races.
    pub exclusive: u64,
}

/// What [`DocService::act_idempotent`] did.
#[derive(Debug)]
pub enum Once<R> {
    /// The edit was made now.
    Done(R, Applied),
    /// The mark was already stored: nothing was written. Carries the detail
    /// recorded with it, if any.
    Repeat(Option<String>),
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
    /// What the committer needs of `settings`, kept beside them.
    commit_settings: RwLock<Arc<CommitSettings>>,
    org: RwLock<Arc<OrgTree>>,
    cache: Mutex<lru::LruCache<String, Slot>>,
    events: broadcast::Sender<DocEvent>,
    committer: Committer,
    /// Random per process: the server's own actors derive from it.
    actor_seed: [u8; 32],
    /// Documents read from storage into the cache since start-up.
    loads: AtomicU64,
    retries: AtomicU64,
    busy: AtomicU64,
    reloads: AtomicU64,
    compactions: AtomicU64,
    compaction_failures: AtomicU64,
    /// Compactions started and not yet finished, and their end.
    compacting: std::sync::atomic::AtomicUsize,
    compacted: tokio::sync::Notify,
    /// Whether the tier above ever refused a change here (a station): only
    /// then do client writes look their changes up among its refusals.
    refused_upstream: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for DocService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocService")
            .field("cache_docs", &self.settings().cache_docs)
            .finish()
    }
}

impl DocService {
    pub async fn new(storage: Storage, clock: Arc<dyn Clock>, settings: DocSettings) -> Result<Self, DocError> {
        let org = storage.auth().org_tree().await?;
        let cap = NonZeroUsize::new(settings.cache_docs.max(1)).expect("nonzero");
        let (events, _) = broadcast::channel(4096);
        // Changes other nodes store reach this node's subscribers too.
        if let Some(mut listener) = storage.documents().listen_changes().await? {
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
        let committer = Committer::start(storage.clone());
        let refused_upstream = storage.stations().any_upstream_refusals().await?;
        let commit_settings = Arc::new(CommitSettings {
            calendar: settings.calendar.clone(),
            fanout: settings.fanout.clone(),
        });
        let service = DocService {
            inner: Arc::new(Inner {
                storage,
                clock,
                settings: RwLock::new(Arc::new(settings)),
                commit_settings: RwLock::new(commit_settings),
                org: RwLock::new(Arc::new(org)),
                cache: Mutex::new(lru::LruCache::new(cap)),
                events,
                committer,
                actor_seed: rand::random(),
                loads: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                busy: AtomicU64::new(0),
                reloads: AtomicU64::new(0),
                compactions: AtomicU64::new(0),
                compaction_failures: AtomicU64::new(0),
                compacting: std::sync::atomic::AtomicUsize::new(0),
                compacted: tokio::sync::Notify::new(),
                refused_upstream: std::sync::atomic::AtomicBool::new(refused_upstream),
            }),
        };
        service.close_private_petitions().await?;
        Ok(service)
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
        *self.inner.commit_settings.write().expect("settings lock") = Arc::new(CommitSettings {
            calendar: settings.calendar.clone(),
            fanout: settings.fanout.clone(),
        });
    }

    /// The organisation tree policy decides with.
    pub fn org(&self) -> Arc<OrgTree> {
        self.inner.org.read().expect("org lock").clone()
    }

    /// Re-reads the organisation tree (after an admin import).
    pub async fn reload_org(&self) -> Result<(), DocError> {
        let org = self.inner.storage.auth().org_tree().await?;
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

    /// The write path's counters since start-up.
    pub fn write_stats(&self) -> WriteStats {
        let i = &self.inner;
        let c = i.committer.stats();
        WriteStats {
            retries: i.retries.load(Ordering::Relaxed),
            busy: i.busy.load(Ordering::Relaxed),
            reloads: i.reloads.load(Ordering::Relaxed),
            compactions: i.compactions.load(Ordering::Relaxed),
            compaction_failures: i.compaction_failures.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            grouped_writes: c.jobs.load(Ordering::Relaxed),
            exclusive: c.exclusive.load(Ordering::Relaxed),
        }
    }

    /// The actor id this server process writes with on behalf of `user`
    /// (REST actions, the scheduler, documents the server creates). Derived
    /// from a random secret of the process, so no client can guess it and
    /// bind it first, and two processes never write for one user with the
    /// same actor (whose sequence numbers they would both count). It is
    /// bound to `user` as reserved with its first write: no client may
    /// write with it afterwards, not even the user's own devices.
    pub fn server_actor(&self, user: &UserId) -> ActorId {
        let mut hash = Sha256::new();
        hash.update(self.inner.actor_seed);
        hash.update(user.as_str().as_bytes());
        ActorId::from(&hash.finalize()[..16])
    }

    /// An author for `user` writing with [`DocService::server_actor`].
    pub fn server_author(&self, user: &UserId) -> (ActorId, Author) {
        let actor = self.server_actor(user);
        let node = actor.to_hex_string()[..16].to_owned();
        let author = Author::new(user.clone(), HlcClock::new(node).expect("hex is a valid node"));
        (actor, author)
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

    /// Locks a document, loading it or catching it up with changes stored
    /// since (by other nodes) first. An unknown document locks as empty.
    async fn lock(&self, doc_id: &str) -> Result<OwnedMutexGuard<Option<Loaded>>, DocError> {
        let mut guard = self.slot(doc_id).lock_owned().await;
        match guard.as_mut() {
            None => *guard = Some(self.load(doc_id).await?),
            Some(loaded) => {
                if !self.catch_up(doc_id, loaded).await? {
                    *guard = Some(self.load(doc_id).await?);
                }
            }
        }
        Ok(guard)
    }

    /// Reads a document from storage.
    async fn load(&self, doc_id: &str) -> Result<Loaded, DocError> {
        self.inner.loads.fetch_add(1, Ordering::Relaxed);
        let Some(stored) = self.inner.storage.documents().load_document(doc_id).await? else {
            return Ok(Loaded {
                doc: AutoCommit::new(),
                position: 0,
                entries: EntryCache::default(),
                receipts: None,
            });
        };
        let mut doc = match &stored.snapshot {
            Some(s) => AutoCommit::load(s).map_err(|e| DocError::Load(e.to_string()))?,
            None => AutoCommit::new(),
        };
        for c in &stored.changes {
            doc.load_incremental(c).map_err(|e| DocError::Load(e.to_string()))?;
        }
        let missing = stored
            .hashes
            .iter()
            .filter(|h| {
                h.parse::<ChangeHash>()
                    .map_or(true, |h| doc.get_change_by_hash(&h).is_none())
            })
            .count();
        if missing > 0 {
            return Err(DocError::Load(format!(
                "{missing} stored changes of {doc_id} depend on changes that are not stored"
            )));
        }
        Ok(Loaded {
            doc,
            position: stored.last_seq,
            entries: EntryCache::default(),
            receipts: None,
        })
    }

    /// Folds the changes stored after the copy's position into it. Returns
    /// `false` if one of them stays waiting on a dependency the copy lacks
    /// (the copy is then not what its position claims, and must be read
    /// again from storage).
    async fn catch_up(&self, doc_id: &str, loaded: &mut Loaded) -> Result<bool, DocError> {
        const PAGE: u32 = 10_000;
        loop {
            let page = self
                .inner
                .storage
                .documents()
                .changes_since(loaded.position, &DocFilter::Docs(vec![doc_id.to_owned()]), PAGE)
                .await?;
            if page.items.is_empty() {
                return Ok(true);
            }
            for item in &page.items {
                if loaded.doc.load_incremental(&item.bytes).is_err() {
                    self.inner.reloads.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
            }
            for item in &page.items {
                if item.kind != FeedItemKind::Change {
                    continue;
                }
                let held = item
                    .hash
                    .as_deref()
                    .and_then(|h| h.parse::<ChangeHash>().ok())
                    .is_some_and(|h| loaded.doc.get_change_by_hash(&h).is_some());
                if !held {
                    tracing::warn!(doc = %doc_id, seq = item.seq, "a caught-up change waits on a missing dependency; reloading the document");
                    self.inner.reloads.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
            }
            loaded.position = page.next_cursor;
            if page.items.len() < PAGE as usize {
                return Ok(true);
            }
        }
    }

    /// Whether `who` may read `doc_id`, from the who-can-see-what projection;
    /// `false` for a document that does not exist.
    pub async fn may_read(&self, who: &Principal, doc_id: &str) -> Result<bool, DocError> {
        let rows = self
            .inner
            .storage
            .projections()
            .doc_access_for(doc_id, &who.user)
            .await?;
        self.may_read_by(who, rows).await
    }

    /// Whether `who` may hold a document the tier above took back whole
    /// (`take_back`): they could read it when it was listed, by the access
    /// rows it had then as their memberships stand now, or a change of
    /// theirs was in it. `false` for any other document. Such a reader is
    /// told in its next pull that every change is refused.
    pub async fn may_have_held(&self, who: &Principal, doc_id: &str) -> Result<bool, DocError> {
        if !self.inner.refused_upstream.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let rows = self
            .inner
            .storage
            .stations()
            .taken_back_readers_for(doc_id, &who.user)
            .await?;
        self.may_read_by(who, rows).await
    }

    /// Whether a document taken back whole (`take_back`) is stored under `doc_id`.
    pub async fn taken_back_whole(&self, doc_id: &str) -> Result<bool, DocError> {
        if !self.inner.refused_upstream.load(Ordering::Relaxed) {
            return Ok(false);
        }
        Ok(self.inner.storage.stations().taken_back_whole(doc_id).await?.is_some())
    }

    /// `may_read` on a document's access rows (those naming other users left out).
    async fn may_read_by(&self, who: &Principal, rows: Vec<AccessRow>) -> Result<bool, DocError> {
        if rows.is_empty() {
            return Ok(false);
        }
        let mut vis = Visibility::default();
        let mut member_of = Vec::new();
        for AccessRow { kind, subject } in rows {
            let bad = |e: SchemaError| DocError::Storage(StorageError::corrupt(e));
            match kind {
                AccessKind::Unit => vis.units.push(subject.parse().map_err(bad)?),
                AccessKind::User => vis.users.push(subject.parse().map_err(bad)?),
                AccessKind::Household => vis.households.push(subject.parse().map_err(bad)?),
                AccessKind::AudienceUnit => vis.audience_units.push(subject.parse().map_err(bad)?),
                AccessKind::Room => {
                    if self
                        .inner
                        .storage
                        .projections()
                        .is_room_member(&subject, &who.user)
                        .await?
                    {
                        member_of.push(subject.clone());
                    }
                    vis.rooms.push(subject);
                }
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

    /// Validates and stores `changes` a client of `who` sent.
    pub async fn apply(&self, who: &Principal, doc_id: &str, changes: Vec<Change>) -> Result<Applied, DocError> {
        let mut guard = self.lock(doc_id).await?;
        self.write_locked(&mut guard, who, Origin::Client, doc_id, changes, &[])
            .await
    }

    /// The write path: policy and everything the write produces are computed
    /// on the locked copy (sync-core), then stored by the committer in a
    /// transaction that commits only if the document's stored position is
    /// still the copy's. When another node moved it first, the copy catches
    /// up and the write is computed again, at most [`MAX_WRITE_ATTEMPTS`]
    /// times. The copy takes the changes only once they are committed.
    async fn write_locked(
        &self,
        guard: &mut OwnedMutexGuard<Option<Loaded>>,
        who: &Principal,
        origin: Origin,
        doc_id: &str,
        changes: Vec<Change>,
        marks: &[String],
    ) -> Result<Applied, DocError> {
        self.write_locked_carrying(guard, who, origin, doc_id, changes, marks, &Receipts::new())
            .await
    }

    /// [`DocService::write_locked`] for changes another tier relays with its
    /// receipt times of their entries (`Proposal::carrying`).
    #[allow(clippy::too_many_arguments)]
    async fn write_locked_carrying(
        &self,
        guard: &mut OwnedMutexGuard<Option<Loaded>>,
        who: &Principal,
        origin: Origin,
        doc_id: &str,
        changes: Vec<Change>,
        marks: &[String],
        carried: &Receipts,
    ) -> Result<Applied, DocError> {
        // At a station, what the tier above refused is refused here too.
        let (changes, refused_above) =
            if origin == Origin::Client && self.inner.refused_upstream.load(Ordering::Relaxed) {
                let known = self.upstream_refusals(doc_id).await?;
                sync_core::relay::refused_upstream(changes, &known)
            } else {
                (changes, Vec::new())
            };
        if changes.is_empty() {
            return Ok(Applied {
                refused: refused_above,
                ..Applied::default()
            });
        }
        let bindings = self.actor_bindings(&changes).await?;
        let optimistic = self.settings().optimistic_attempts;
        for attempt in 1..=MAX_WRITE_ATTEMPTS {
            // After losing the race a few times, hold the change log while
            // catching up and computing: no other node can move the
            // document meanwhile, so this attempt cannot be stale.
            let exclusive = if attempt > optimistic {
                let mut tx = self.inner.storage.begin().await?;
                tx.lock_change_log().await?;
                let loaded = guard.as_mut().expect("locked documents are loaded");
                if !self.catch_up(doc_id, loaded).await? {
                    **guard = Some(self.load(doc_id).await?);
                }
                Some(tx)
            } else {
                None
            };
            let now = self.now();
            let org = self.org();
            let ctx = PolicyContext {
                org: &org,
                principal: who,
                now,
            };
            let loaded = guard.as_mut().expect("locked documents are loaded");
            let proposal = propose(
                &ctx,
                origin,
                doc_id,
                &loaded.doc,
                changes.clone(),
                &bindings,
                &mut loaded.entries,
            )
            .carrying(carried.clone());
            let facts = self.facts(doc_id, proposal.needs(), loaded).await?;
            let settings = self.settings();
            let outcome = proposal.finish(&facts, &settings.rules, &settings.calendar, now, &mut loaded.entries)?;
            let WriteOutcome {
                kind,
                doc,
                accepted,
                refused,
                duplicates,
                new_actors,
                origin,
                readers_may_change,
                projection,
                notifications,
                receipts,
                ..
            } = outcome;
            let mut applied = Applied {
                accepted: Vec::new(),
                refused: refused_above.iter().cloned().chain(refused).collect(),
                duplicates,
            };
            let Some(kind) = kind else {
                return Ok(applied);
            };
            let job = WriteJob {
                doc_id: doc_id.to_owned(),
                kind,
                position: loaded.position,
                user: who.user.clone(),
                changes: stored_changes(&who.user, &accepted, now),
                actors: new_actors
                    .iter()
                    .map(|a| (a.to_hex_string(), origin == Origin::Server))
                    .collect(),
                projection,
                notifications,
                receipts: receipts.clone(),
                marks: marks.to_vec(),
                settings: self.inner.commit_settings.read().expect("settings lock").clone(),
                now,
                rewrite: None,
            };
            let result = match exclusive {
                Some(tx) => {
                    crate::write::commit_alone(tx, &job, self.inner.storage.instance(), self.inner.committer.stats())
                        .await
                }
                None => self.inner.committer.commit(job).await,
            };
            match result {
                Ok(JobResult::Committed(committed)) => {
                    loaded.doc = doc;
                    loaded.position = committed.position;
                    loaded.entries.keep_pending();
                    if let Some((at, known)) = &mut loaded.receipts {
                        for (entry, received) in receipts {
                            known.insert(entry, received);
                        }
                        *at = committed.position;
                    }
                    applied.accepted = accepted.iter().map(Change::hash).collect();
                    let _ = self.inner.events.send(DocEvent {
                        doc_id: doc_id.to_owned(),
                        kind,
                        last_seq: committed.position,
                        by: who.user.clone(),
                        inbox: committed.inbox.into(),
                        readers_may_change,
                    });
                    if settings.compaction_due(&committed.pending) {
                        self.compact_later(doc_id);
                    }
                    return Ok(applied);
                }
                Ok(JobResult::Stale { stored }) => {
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(doc = %doc_id, attempt, copy = loaded.position, stored, "document moved meanwhile; computing the write again");
                    // Another node keeps committing to this document: wait a
                    // random, growing while (at most 256 ms) so its burst of
                    // writes can drain before this one races it again.
                    let ceiling = 1u64 << attempt.min(8);
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random::<u64>() % ceiling + 1)).await;
                    if !self.catch_up(doc_id, loaded).await? {
                        **guard = Some(self.load(doc_id).await?);
                    }
                }
                Ok(JobResult::ActorTaken(taken)) => return Err(DocError::Forbidden(taken.to_string())),
                Err(e) => {
                    // The transaction's outcome is unknown: read the document again next time.
                    drop(guard.take());
                    self.forget(doc_id);
                    return Err(e.into());
                }
            }
        }
        self.inner.busy.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(doc = %doc_id, attempts = MAX_WRITE_ATTEMPTS, "giving up a write: the document kept moving");
        Err(DocError::Busy(doc_id.to_owned()))
    }

    /// The stored bindings of the actors of `changes`.
    async fn actor_bindings(&self, changes: &[Change]) -> Result<HashMap<ActorId, ActorBinding>, DocError> {
        let mut out = HashMap::new();
        for c in changes {
            let actor = c.actor_id();
            if out.contains_key(actor) {
                continue;
            }
            if let Some(r) = self
                .inner
                .storage
                .documents()
                .actor_record(&actor.to_hex_string())
                .await?
            {
                out.insert(
                    actor.clone(),
                    ActorBinding {
                        user: r.user,
                        reserved: r.reserved,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Reads what a proposal needs that no document records.
    async fn facts(&self, doc_id: &str, needs: &Needs, loaded: &mut Loaded) -> Result<Facts, DocError> {
        if needs.is_empty() {
            return Ok(Facts::default());
        }
        let storage = &self.inner.storage;
        let mut facts = Facts::default();
        if needs.entry_receipts {
            // Receipts never change once recorded: the copy keeps them and
            // adds its own writes', and reads them again only when another
            // node moved the document (its receipts are not in the copy's).
            facts.entry_receipts = match &loaded.receipts {
                Some((at, known)) if *at == loaded.position => known.clone(),
                _ => {
                    let known = storage.documents().entry_receipts(doc_id).await?;
                    loaded.receipts = Some((loaded.position, known.clone()));
                    known
                }
            };
        }
        if let Some(household) = &needs.household_officer {
            facts.household_officer = storage
                .projections()
                .household_officer(household.as_str())
                .await?
                .and_then(|u| UserId::new(u).ok());
        }
        if needs.households_in_units.is_empty() && needs.households_in_rooms.is_empty() {
            return Ok(facts);
        }
        let units: Vec<String> = needs.households_in_units.iter().map(|u| u.to_string()).collect();
        let mut households: std::collections::BTreeSet<String> = storage
            .projections()
            .households_in_units(&units)
            .await?
            .into_iter()
            .collect();
        for room in &needs.households_in_rooms {
            households.extend(storage.projections().room_households(room).await?);
        }
        facts.audience_households = households
            .into_iter()
            .filter_map(|h| HouseholdId::new(h).ok())
            .collect();
        Ok(facts)
    }

    /// Imported history (the demo county's seed): records `doc_id`'s entries
    /// as received at the given times, replacing what their delivery
    /// recorded, with the petition row computed on them (see
    /// `Documents::import_receipts`). Under the document's lock, so the
    /// receipts its cached copy keeps are read again afterwards.
    pub async fn import_receipts(
        &self,
        doc_id: &str,
        entries: &[(String, Timestamp)],
        summary: Option<&sync_core::petition::PetitionSummary>,
    ) -> Result<(), DocError> {
        let mut guard = self.lock(doc_id).await?;
        if let Some(loaded) = guard.as_mut() {
            loaded.receipts = None;
        }
        self.inner
            .storage
            .documents()
            .import_receipts(doc_id, entries, summary)
            .await?;
        Ok(())
    }

    /// Compacts `doc_id` soon, in a task of its own, so the write that made
    /// it due is acknowledged without waiting for it.
    fn compact_later(&self, doc_id: &str) {
        let this = self.clone();
        let doc_id = doc_id.to_owned();
        self.inner.compacting.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Err(e) = this.compact(&doc_id).await {
                this.inner.compaction_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(doc = %doc_id, error = %e, "compaction failed; the changes stay as they are");
            }
            if this.inner.compacting.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.inner.compacted.notify_waiters();
            }
        });
    }

    /// Waits until no compaction started by a write is running (tests and
    /// benchmarks that read what compaction stored).
    pub async fn compactions_done(&self) {
        loop {
            let done = self.inner.compacted.notified();
            if self.inner.compacting.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Folds the document's stored changes into a new snapshot, deleting
    /// only changes whose hashes the snapshot holds. Decided from what is
    /// stored, so any node may do it; a newer snapshot stored meanwhile by
    /// another node wins.
    pub async fn compact(&self, doc_id: &str) -> Result<u64, DocError> {
        let mut guard = self.lock(doc_id).await?;
        let loaded = guard.as_mut().expect("loaded");
        if loaded.position == 0 {
            return Ok(0);
        }
        let storage = &self.inner.storage;
        let stored = storage.documents().uncompacted(doc_id, loaded.position).await?;
        let mut folded = Vec::with_capacity(stored.len());
        for (seq, hash) in &stored {
            let held = hash
                .parse::<ChangeHash>()
                .is_ok_and(|h| loaded.doc.get_change_by_hash(&h).is_some());
            if held {
                folded.push(*seq);
            } else {
                tracing::warn!(doc = %doc_id, seq, %hash, "a stored change is missing from the cached copy; compaction keeps it");
            }
        }
        let snapshot = loaded.doc.save();
        let heads: Vec<String> = loaded.doc.get_heads().iter().map(|h| h.to_string()).collect();
        match storage
            .documents()
            .compact(doc_id, &snapshot, &heads, loaded.position, &folded, self.now())
            .await
        {
            Ok(deleted) => {
                self.inner.compactions.fetch_add(1, Ordering::Relaxed);
                Ok(deleted)
            }
            // Another node stored a newer snapshot: nothing to do.
            Err(StorageError::Conflict(reason)) => {
                tracing::debug!(doc = %doc_id, %reason, "compaction skipped");
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
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
        let (result, changes) = self.edit_locked(&mut guard, who, edit)?;
        let applied = self
            .write_locked(&mut guard, who, Origin::Server, doc_id, changes, &[])
            .await?;
        Ok((result, applied))
    }

    /// Runs `edit` on a fork of the locked document with `who`'s server actor;
    /// returns its result and the changes it made.
    fn edit_locked<R>(
        &self,
        guard: &mut OwnedMutexGuard<Option<Loaded>>,
        who: &Principal,
        edit: impl FnOnce(&mut AutoCommit, &mut Author, Timestamp) -> Result<R, SchemaError>,
    ) -> Result<(R, Vec<Change>), DocError> {
        let loaded = guard.as_mut().expect("loaded");
        if DocKind::of(&loaded.doc)?.is_none() {
            return Err(DocError::NotFound);
        }
        let heads = loaded.doc.get_heads();
        let (actor, mut author) = self.server_author(&who.user);
        let mut work = loaded.doc.fork().with_actor(actor);
        let now = self.now();
        let result = loaded.entries.reading(|| edit(&mut work, &mut author, now))?;
        Ok((result, work.get_changes(&heads)))
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
        if self.inner.storage.clocks().is_fired(mark).await? {
            return Ok(None);
        }
        let (result, changes) = self.edit_locked(&mut guard, who, edit)?;
        if changes.is_empty() {
            return Ok(None);
        }
        let applied = self
            .write_locked(&mut guard, who, Origin::Server, doc_id, changes, &[mark.to_owned()])
            .await?;
        Ok(Some((result, applied)))
    }

    /// Runs `edit` as [`DocService::act`] does, once per `mark`: a client's
    /// idempotency key, so a request retried after a lost answer is not
    /// carried out twice. The mark is stored with the change, in its
    /// transaction (two nodes racing on one mark cannot both commit); so is
    /// `mark>detail` when `detail` names something of the result (the entry
    /// a message became). A repeat answers [`Once::Repeat`] with that detail.
    pub async fn act_idempotent<R>(
        &self,
        who: &Principal,
        doc_id: &str,
        mark: &str,
        edit: impl FnOnce(&mut AutoCommit, &mut Author, Timestamp) -> Result<R, SchemaError>,
        detail: impl FnOnce(&R) -> Option<String>,
    ) -> Result<Once<R>, DocError> {
        let mut guard = self.lock(doc_id).await?;
        if self.inner.storage.clocks().is_fired(mark).await? {
            let detail = self
                .inner
                .storage
                .clocks()
                .fired_after_prefix(&format!("{mark}>"))
                .await?;
            return Ok(Once::Repeat(detail));
        }
        let (result, changes) = self.edit_locked(&mut guard, who, edit)?;
        let mut marks = vec![mark.to_owned()];
        marks.extend(detail(&result).map(|d| format!("{mark}>{d}")));
        let applied = self
            .write_locked(&mut guard, who, Origin::Server, doc_id, changes, &marks)
            .await?;
        Ok(Once::Done(result, applied))
    }

    /// Stores a document the server created on behalf of `who` (REST
    /// submit, with [`DocService::server_actor`]). Re-sending the same
    /// document is idempotent: its changes are duplicates.
    pub async fn create(&self, who: &Principal, doc_id: &str, mut doc: AutoCommit) -> Result<Applied, DocError> {
        let changes = doc.get_changes(&[]);
        let mut guard = self.lock(doc_id).await?;
        self.write_locked(&mut guard, who, Origin::Server, doc_id, changes, &[])
            .await
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
                .write_locked(&mut guard, who, Origin::Client, doc_id, incoming.clone(), &[])
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

/// Accepted changes as the store keeps them.
fn stored_changes(user: &UserId, accepted: &[Change], now: Timestamp) -> Vec<StoredChange> {
    accepted
        .iter()
        .map(|c| StoredChange {
            hash: c.hash().to_string(),
            actor: c.actor_id().to_hex_string(),
            user: user.clone(),
            bytes: c.raw_bytes().to_vec(),
            received_at: now,
        })
        .collect()
}
