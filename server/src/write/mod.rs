//! Executing writes: sync-core's [`WriteOutcome`]s become rows, in one
//! transaction per group of concurrent writes, each kept only if its
//! document's stored position is still the one its outcome was computed on.
//!
//! ```text
//!  writer (holds the document's lock)          committer task (one per node)
//!  ───────────────────────────────────         ─────────────────────────────────────────
//!  copy at position p ─ policy, rows,   ─job─▶ BEGIN; lock the change log
//!  notifications (sync-core)                    for each queued job: SAVEPOINT
//!                                                 stored position == p? else Stale
//!                                                 bind actors, append changes, receipts, rows,
//!                                                 fan-out, marks, NOTIFY; RELEASE
//!                      ◀─Committed / Stale ─   COMMIT, then answer every job
//!  Committed: copy = after, position = seq
//!  Stale: catch up, compute again (bounded)
//! ```
//!
//! **Architecture invariant:** a change is acknowledged only after a commit
//! whose document position was current. Jobs queue while a group commits and
//! go in the next group together, so concurrent writers share one commit (and
//! one fsync) while each waits for its own.

pub mod fanout;

use std::sync::Arc;

use sync_core::notify::Notification;
use sync_core::projection::Projection;
use sync_core::{Calendar, DocKind, Timestamp, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::storage::{
    ActorBoundToOther, ChangeNotice, InboxItem, Pending, Storage, StorageError, StorageTx, StoredChange,
};

pub use fanout::FanoutSettings;

/// How many queued writes one transaction takes at most.
pub const MAX_GROUP: usize = 64;

/// One write, ready to store.
#[derive(Debug)]
pub struct WriteJob {
    pub doc_id: String,
    pub kind: DocKind,
    /// The document's position (seq of its latest stored change, 0 if new)
    /// that the outcome was computed on.
    pub position: i64,
    pub user: UserId,
    pub changes: Vec<StoredChange>,
    /// Actor ids (hex) to bind to `user`, and whether as the server's own.
    pub actors: Vec<(String, bool)>,
    pub projection: Projection,
    pub notifications: Vec<Notification>,
    /// Entries new in the write and their receipt time (`WriteOutcome::receipts`).
    pub receipts: Vec<(String, Timestamp)>,
    /// Clock actions this write carries out, recorded with it (see
    /// `DocService::act_once`).
    pub marks: Vec<String>,
    /// The calendar and fan-out settings in force when it was computed.
    pub settings: Arc<CommitSettings>,
    pub now: Timestamp,
    /// At a station, when the tier above refused changes of the document:
    /// the stored history is replaced by `changes` (the history rebuilt
    /// without them) instead of appended to.
    pub rewrite: Option<Rewrite>,
}

/// A stored history replaced by one rebuilt without changes the tier above
/// refused (see `DocService::take_back`).
#[derive(Debug)]
pub struct Rewrite {
    /// The refusals to record.
    pub refusals: Vec<crate::storage::UpstreamRefusal>,
    /// The people whose changes the document held. When nothing is left of
    /// it (the job has no changes) it leaves every list, and these are kept
    /// among those who may hold it, beside its access rows.
    pub writers: Vec<String>,
}

/// What became of a job.
#[derive(Debug)]
pub enum JobResult {
    /// Stored and committed.
    Committed(Committed),
    /// Another writer moved the document since the outcome was computed:
    /// nothing was stored; catch up and compute again.
    Stale { stored: i64 },
    /// An actor of the job was bound to another user meanwhile.
    ActorTaken(ActorBoundToOther),
}

/// A committed write.
#[derive(Debug)]
pub struct Committed {
    /// The document's new position.
    pub position: i64,
    /// Inbox items its fan-out wrote, in cursor order.
    pub inbox: Vec<InboxItem>,
    /// What is stored since the document's snapshot now.
    pub pending: Pending,
}

struct Queued {
    job: WriteJob,
    reply: oneshot::Sender<Result<JobResult, StorageError>>,
}

/// What storing a job needs beyond its outcome (replaced at run time when
/// the calendar changes).
#[derive(Clone, Debug)]
pub struct CommitSettings {
    pub calendar: Calendar,
    pub fanout: FanoutSettings,
}

/// The handle writers queue jobs on. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::UnboundedSender<Queued>,
    stats: Arc<Stats>,
}

/// Counters of the committer since start-up.
#[derive(Debug, Default)]
pub struct Stats {
    pub groups: std::sync::atomic::AtomicU64,
    pub jobs: std::sync::atomic::AtomicU64,
    pub stale: std::sync::atomic::AtomicU64,
    /// Writes computed and stored under the change-log lock, after losing
    /// the race to another node too often.
    pub exclusive: std::sync::atomic::AtomicU64,
}

impl Committer {
    /// Starts the committer task of this node.
    pub fn start(storage: Storage) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(storage, rx, stats.clone()));
        Committer { queue, stats }
    }

    /// Queues `job` and waits until its group has committed (or failed).
    pub async fn commit(&self, job: WriteJob) -> Result<JobResult, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { job, reply })
            .map_err(|_| StorageError::Conflict("the server is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Conflict("the server is shutting down".into()))?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

async fn run(storage: Storage, mut rx: mpsc::UnboundedReceiver<Queued>, stats: Arc<Stats>) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(q) => group.push(q),
                Err(_) => break,
            }
        }
        stats.groups.fetch_add(1, Relaxed);
        stats.jobs.fetch_add(group.len() as u64, Relaxed);
        let (jobs, replies): (Vec<WriteJob>, Vec<_>) = group.into_iter().map(|q| (q.job, q.reply)).unzip();
        match commit_group(&storage, &jobs).await {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    if matches!(result, Ok(JobResult::Stale { .. })) {
                        stats.stale.fetch_add(1, Relaxed);
                    }
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = jobs.len(), "a group of writes did not commit");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Conflict(format!(
                        "the write did not commit: {message}"
                    ))));
                }
            }
        }
    }
}

/// Stores `job` in `tx`, a transaction that already holds the change-log
/// lock (see `DocService`'s exclusive writes: the job was computed under
/// it, so no other writer can have moved the document), and commits.
pub(crate) async fn commit_alone(
    mut tx: StorageTx,
    job: &WriteJob,
    origin: u64,
    stats: &Stats,
) -> Result<JobResult, StorageError> {
    use std::sync::atomic::Ordering::Relaxed;
    stats.groups.fetch_add(1, Relaxed);
    stats.jobs.fetch_add(1, Relaxed);
    stats.exclusive.fetch_add(1, Relaxed);
    let result = store(&mut tx, job, origin).await?;
    match &result {
        JobResult::Committed(_) => tx.commit().await?,
        JobResult::Stale { .. } => {
            stats.stale.fetch_add(1, Relaxed);
            tx.rollback().await?
        }
        JobResult::ActorTaken(_) => tx.rollback().await?,
    }
    Ok(result)
}

/// Stores `jobs` in one transaction; the outer error means nothing committed.
async fn commit_group(
    storage: &Storage,
    jobs: &[WriteJob],
) -> Result<Vec<Result<JobResult, StorageError>>, StorageError> {
    let mut tx = storage.begin().await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        tx.savepoint().await?;
        match store(&mut tx, job, storage.instance()).await {
            Ok(JobResult::Committed(c)) => {
                tx.release_savepoint().await?;
                results.push(Ok(JobResult::Committed(c)));
            }
            Ok(other) => {
                tx.rollback_to_savepoint().await?;
                results.push(Ok(other));
            }
            Err(e) => {
                tx.rollback_to_savepoint().await?;
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// One job inside the group's transaction.
async fn store(tx: &mut StorageTx, job: &WriteJob, origin: u64) -> Result<JobResult, StorageError> {
    let stored = tx.document_position(&job.doc_id).await?.map_or(0, |(_, p)| p);
    if stored != job.position {
        return Ok(JobResult::Stale { stored });
    }
    if let Some(rewrite) = &job.rewrite {
        tx.clear_history(&job.doc_id).await?;
        if job.changes.is_empty() {
            // Nothing is left: out of every list, at a change number of its
            // own that every reader who may hold it lies below.
            let seq = tx.take_out_of_lists(&job.doc_id, &rewrite.writers, job.now).await?;
            tx.record_upstream_refusals(&job.doc_id, &rewrite.refusals, job.now, seq)
                .await?;
            tx.announce(&ChangeNotice {
                doc_id: job.doc_id.clone(),
                kind: job.kind.as_str().to_owned(),
                last_seq: seq,
                user: job.user.to_string(),
                origin,
            })
            .await?;
            return Ok(JobResult::Committed(Committed {
                position: seq,
                inbox: Vec::new(),
                pending: Pending::default(),
            }));
        }
    }
    for (actor, reserved) in &job.actors {
        if let Err(taken) = tx.bind_actor_as(actor, &job.user, *reserved, job.now).await? {
            return Ok(JobResult::ActorTaken(taken));
        }
    }
    let outcome = tx.append_changes(&job.doc_id, job.kind.as_str(), &job.changes).await?;
    if outcome.inserted.is_empty() {
        // Only possible if the position check let a stored change through.
        return Err(StorageError::Conflict(format!(
            "document {}: every change of the write was already stored",
            job.doc_id
        )));
    }
    let seq = outcome.last_seq;
    if let Some(rewrite) = &job.rewrite {
        // With the rebuilt history's last seq: every reader below it may
        // hold a refused change and is told of it with the document.
        tx.record_upstream_refusals(&job.doc_id, &rewrite.refusals, job.now, seq)
            .await?;
    }
    tx.record_receipts(&job.doc_id, &job.receipts, seq).await?;
    let p = &job.projection;
    if let Some(access) = &p.access {
        tx.replace_doc_access(&job.doc_id, access).await?;
    }
    if let Some(summary) = &p.petition {
        tx.upsert_petition(&job.doc_id, summary, seq).await?;
    }
    if let Some(room) = &p.room {
        tx.upsert_room(room, seq).await?;
        tx.upsert_room_messages(&job.doc_id, &p.messages).await?;
    }
    tx.upsert_households(&job.doc_id, &p.households).await?;
    let inbox = fanout::write(
        tx,
        &job.doc_id,
        &job.notifications,
        job.now,
        &job.settings.calendar,
        &job.settings.fanout,
    )
    .await?;
    // After fan-out, so the delivery records of a new notice exist.
    for r in &p.receipts {
        tx.update_notice_receipts(&job.doc_id, &r.household, r.delivered, r.read, r.forwarded)
            .await?;
    }
    for mark in &job.marks {
        tx.mark_fired(mark, job.now).await?;
    }
    tx.announce(&ChangeNotice {
        doc_id: job.doc_id.clone(),
        kind: job.kind.as_str().to_owned(),
        last_seq: seq,
        user: job.user.to_string(),
        origin,
    })
    .await?;
    Ok(JobResult::Committed(Committed {
        position: seq,
        inbox,
        pending: outcome.pending,
    }))
}
