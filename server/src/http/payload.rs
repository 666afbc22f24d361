//! Admission of sync payloads: the guard's verdict before the document
//! service sees a payload, and one heavy payload at a time per spare core.
//!
//! `sync_core::guard` bounds what one payload can cost (at most
//! [`sync_core::guard::Limits`]: about a second of Automerge's time and a
//! few hundred MB for the worst accepted one). A connection handles its
//! payloads one after another, so that is also what one connection can
//! have in flight. Loading a payload into Automerge runs on the
//! connection's task and holds a worker thread while it does; heavy
//! payloads therefore take a permit first, and there are one fewer
//! permits than worker threads, so however many connections send heavy
//! payloads at once, a worker stays free for `/healthz`, sign-ins and
//! everyone's small edits.

use std::sync::Arc;

use sync_core::guard::Cost;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Payloads whose [`Cost::weight`] reaches this are heavy: about 16,000
/// operations, or a megabyte inflated. A typical phone edit weighs a few
/// kilobytes.
pub const HEAVY_WEIGHT: u64 = 1024 * 1024;

/// The permits heavy payloads share.
#[derive(Clone, Debug)]
pub struct HeavyWork(Arc<Semaphore>);

impl HeavyWork {
    /// One permit fewer than the runtime's worker threads (tokio starts one
    /// per core), and at least one.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HeavyWork(Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))))
    }

    /// Waits for a permit if the payload is heavy; the permit is held
    /// until the returned value is dropped.
    pub async fn admit(&self, cost: &Cost, len: usize) -> Option<OwnedSemaphorePermit> {
        if cost.weight(len) < HEAVY_WEIGHT {
            return None;
        }
        self.0.clone().acquire_owned().await.ok()
    }
}
