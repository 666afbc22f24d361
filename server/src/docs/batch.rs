//! The document service's part of a batched sync exchange: pushed documents
//! go through the same write path as every other change, pulled documents
//! are read under the document lock with the base the client provably has.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use automerge::{AutoCommit, Change, ChangeHash};
use sync_core::Principal;
use sync_core::batch::{DocId, DocPull, DocPush, Incoming, ServerExchange};
use sync_core::policy::{Refusal, Rule};
use sync_core::write::Origin;

use super::{DocError, DocService};

impl DocService {
    /// Validates and stores one pushed document of a batched exchange
    /// through [`DocService::apply`]'s path and records the outcome in `ex`
    /// for the part's ack. `readable` is whether `who` may read the document
    /// (an unknown document is readable: policy decides its creation); a
    /// push to a document the user may not read is refused whole.
    pub async fn apply_batch_push(
        &self,
        who: &Principal,
        doc_id: &str,
        push: &DocPush,
        readable: bool,
        ex: &mut ServerExchange,
    ) -> Result<(), DocError> {
        let mut guard = self.lock(doc_id).await?;
        let incoming = {
            let loaded = guard.as_mut().expect("loaded");
            ex.incoming(&mut loaded.doc, push)
                .map_err(|e| DocError::Load(format!("pushed document {doc_id}: {e}")))?
        };
        if !readable {
            // Refused whole, and answered with nothing of the stored document.
            let refused: Vec<Refusal> = match incoming {
                Incoming::MissingBase(refused) => refused,
                Incoming::Changes(changes) => changes
                    .iter()
                    .map(|c| {
                        Refusal::new(
                            &c.hash(),
                            Rule::NotInJurisdiction,
                            "this document is not available to you",
                        )
                    })
                    .collect(),
            };
            ex.record(push, &[], &refused, push.base.clone());
            return Ok(());
        }
        let changes = match incoming {
            Incoming::MissingBase(refused) => {
                let heads = guard.as_mut().expect("loaded").doc.get_heads();
                ex.record(push, &[], &refused, heads);
                return Ok(());
            }
            Incoming::Changes(changes) => changes,
        };
        let applied = if changes.is_empty() {
            Default::default()
        } else {
            self.write_locked(&mut guard, who, Origin::Client, doc_id, changes.clone(), &[])
                .await?
        };
        let accepted: BTreeSet<ChangeHash> = applied.accepted.iter().copied().collect();
        let accepted: Vec<Change> = changes.into_iter().filter(|c| accepted.contains(&c.hash())).collect();
        let heads = guard.as_mut().expect("loaded").doc.get_heads();
        ex.record(push, &accepted, &applied.refused, heads);
        Ok(())
    }

    /// What a batched client lacks of a document, for the pull that ends an
    /// exchange. The client is known to have `known_base` if it pushed the
    /// document in this exchange or was sent it in an early pull
    /// (`ServerExchange::known_base`), and otherwise everything stored up to its
    /// `cursor`: the document's heads with every change stored after the
    /// cursor taken away. A document compacted past the cursor is sent
    /// whole (the folded changes kept no seq); the client skips what it has.
    /// Changes the tier above refused after the client's cursor go with it
    /// (`sync_core::relay::unheard_refusals`): the client may hold them.
    /// With `receipts` (a station's exchange), so do the receipt times
    /// recorded after the cursor that travel (`relay::receipts_to_carry`).
    pub async fn batch_pull(
        &self,
        id: DocId,
        doc_id: &str,
        cursor: i64,
        known_base: Option<Vec<ChangeHash>>,
        receipts: bool,
        ex: &ServerExchange,
    ) -> Result<Option<DocPull>, DocError> {
        let mut guard = self.lock(doc_id).await?;
        let base = match known_base {
            Some(base) => base,
            None => match self.inner.storage.documents().hashes_after(doc_id, cursor).await? {
                None => Vec::new(),
                Some(later) => {
                    let later: BTreeSet<ChangeHash> = later.iter().filter_map(|h| h.parse().ok()).collect();
                    heads_without(&mut guard.as_mut().expect("loaded").doc, &later)
                }
            },
        };
        // At a tier whose tier above took changes of this document back:
        // a client that may have pulled one before is told it is refused.
        let refused = if self.inner.refused_upstream.load(Ordering::Relaxed) {
            let taken = self.inner.storage.stations().taken_back_after(doc_id, cursor).await?;
            sync_core::relay::unheard_refusals(cursor.max(0) as u64, &taken)
        } else {
            Vec::new()
        };
        let loaded = guard.as_mut().expect("loaded");
        let Some(mut pull) = ex.pull_doc_refusing(id, &mut loaded.doc, &base, refused) else {
            return Ok(None);
        };
        if receipts && !pull.data.is_empty() {
            let recorded = self.inner.storage.documents().receipts_after(doc_id, cursor).await?;
            pull.receipts = sync_core::relay::receipts_to_carry(&loaded.doc, recorded);
        }
        Ok(Some(pull))
    }
}

/// The heads of `doc`'s history without the changes in `later` (which must
/// be closed under descendants, as "everything stored after a cursor" is).
/// The result may name a change together with one of its ancestors; a base
/// like that only means what the two together mean.
fn heads_without(doc: &mut AutoCommit, later: &BTreeSet<ChangeHash>) -> Vec<ChangeHash> {
    let mut stack = doc.get_heads();
    let mut seen = BTreeSet::new();
    let mut heads = BTreeSet::new();
    while let Some(h) = stack.pop() {
        if !seen.insert(h) {
            continue;
        }
        if later.contains(&h) {
            if let Some(c) = doc.get_change_by_hash(&h) {
                stack.extend(c.deps().iter().copied());
            }
        } else {
            heads.insert(h);
        }
    }
    heads.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    #[test]
    fn heads_without_later_changes_are_the_heads_at_the_cursor() {
        let mut doc = AutoCommit::new();
        let mut at = Vec::new();
        for i in 0..3 {
            doc.put(automerge::ROOT, "n", i as i64).unwrap();
            doc.commit();
            at.push(doc.get_heads());
        }
        let mut fork = doc.fork();
        fork.put(automerge::ROOT, "m", 1).unwrap();
        fork.commit();
        doc.put(automerge::ROOT, "n", 9).unwrap();
        doc.commit();
        doc.merge(&mut fork).unwrap();
        // Stored after the cursor: the two concurrent changes after `at[2]`.
        let later: BTreeSet<ChangeHash> = doc.get_changes(&at[2]).iter().map(|c| c.hash()).collect();
        assert_eq!(later.len(), 2);
        assert_eq!(heads_without(&mut doc, &later), at[2]);
        assert_eq!(heads_without(&mut doc, &BTreeSet::new()), doc.get_heads());
        let all: BTreeSet<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        assert!(heads_without(&mut doc, &all).is_empty());
    }
}
