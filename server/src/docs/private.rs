//! The load-time step that closed petitions holding personal data to their
//! handlers: who may read every stored petition is computed again with
//! today's rule (`sync_core::access::petition_units`), once.
//!
//! Petitions stored before the rule kept access rows for the unit they are
//! located in, so that unit's officers could fetch a letter's contact
//! number or an anonymous writer over `/sync` or `/batch`. The history of a
//! stored document cannot lose what it holds without forking every phone's
//! copy of it, so the data stays in the document and the document is closed
//! instead: after this step only the writer, its recorder and the handling
//! units' staff read it, on every path.

use sync_core::policy::Visibility;
use sync_core::projection::access_rows;

use super::{DocError, DocService};

/// The name the step is recorded under in `load_steps`.
pub const PRIVATE_PETITIONS_STEP: &str = "0011-private-petitions";

impl DocService {
    /// Runs the step unless it is recorded as done; the number of petitions
    /// whose access rows it wrote. Each petition is read under its lock, so
    /// a write on this node does not interleave; a node still running the
    /// rule before it could write rows with the old rule until it is
    /// upgraded too.
    pub async fn close_private_petitions(&self) -> Result<usize, DocError> {
        let storage = &self.inner.storage;
        if storage.config().load_step_done(PRIVATE_PETITIONS_STEP).await? {
            return Ok(0);
        }
        let mut after = String::new();
        let mut written = 0;
        loop {
            let ids = storage.projections().petition_ids(&after, 500).await?;
            let Some(last) = ids.last().cloned() else { break };
            for id in &ids {
                let guard = self.lock(id).await?;
                let doc = &guard.as_ref().expect("loaded").doc;
                let rows = access_rows(&Visibility::of(doc)?);
                let stored = storage.projections().doc_access(id).await?;
                let same = stored.len() == rows.len()
                    && rows
                        .iter()
                        .all(|r| stored.iter().any(|s| s.kind == r.kind && s.subject == r.subject));
                if !same {
                    let mut tx = storage.begin().await?;
                    tx.replace_doc_access(id, &rows).await?;
                    tx.commit().await?;
                    written += 1;
                }
            }
            after = last;
        }
        let mut tx = storage.begin().await?;
        tx.mark_load_step(PRIVATE_PETITIONS_STEP, self.now()).await?;
        tx.commit().await?;
        if written > 0 {
            tracing::info!(
                petitions = written,
                "petitions holding personal data closed to their handlers"
            );
        }
        Ok(written)
    }
}
