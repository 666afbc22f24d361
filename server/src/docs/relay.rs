//! The document service's part in tiers (see `sync_core::relay`): at the
//! tier above, a station's pushed changes checked for each change's own
//! author; at a station, the tier above's changes stored without policy,
//! and a document rebuilt without the changes the tier above refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use sync_core::batch::{DocPush, Incoming, RefusedChange, ServerExchange};
use sync_core::clocks::Receipts;
use sync_core::policy::{Refusal, Rule};
use sync_core::relay;
use sync_core::write::Origin;
use sync_core::{Principal, UserId};

use super::{Applied, DocError, DocService, stored_changes};
use crate::write::{JobResult, Rewrite, WriteJob};

/// Who a station may relay changes for, as the tier above decided for the
/// authors one push names: the author's principal, or the rule refusing them.
pub type RelayAuthors = BTreeMap<String, Result<Principal, (Rule, String)>>;

impl DocService {
    /// Validates and stores one document pushed by a station: the changes
    /// are split into runs by author (the actor's user as the station
    /// attests it in `authors`), each run is refused whole if the station
    /// may not speak for its author (`who_for`) and otherwise goes through
    /// the write path with policy for that author, exactly as the author's
    /// own phone would. A change building on a refused one is dropped with
    /// it (the client counts it as refused). Records the outcome in `ex`.
    pub async fn apply_relayed_push(
        &self,
        authors: &BTreeMap<ActorId, String>,
        who_for: &RelayAuthors,
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
        let changes = match incoming {
            Incoming::MissingBase(refused) => {
                let heads = guard.as_mut().expect("loaded").doc.get_heads();
                ex.record(push, &[], &refused, heads);
                return Ok(());
            }
            Incoming::Changes(changes) => changes,
        };
        if !readable {
            let refused: Vec<Refusal> = changes
                .iter()
                .map(|c| {
                    Refusal::new(
                        &c.hash(),
                        Rule::NotInJurisdiction,
                        "this document is not in the station's jurisdiction",
                    )
                })
                .collect();
            ex.record(push, &[], &refused, push.base.clone());
            return Ok(());
        }
        // The station's receipt times of the entries: their clocks start
        // here when they started there.
        let carried: Receipts = push.receipts.iter().cloned().collect();
        let mut accepted: Vec<Change> = Vec::new();
        let mut refused: Vec<Refusal> = Vec::new();
        let mut bad: BTreeSet<ChangeHash> = BTreeSet::new();
        for (author, run) in relay::author_runs(changes, authors) {
            let (run, dropped): (Vec<Change>, Vec<Change>) =
                run.into_iter().partition(|c| !c.deps().iter().any(|d| bad.contains(d)));
            bad.extend(dropped.iter().map(Change::hash));
            if run.is_empty() {
                continue;
            }
            let allowed: Result<&Principal, (Rule, String)> = match author.as_deref().and_then(|a| who_for.get(a)) {
                Some(Ok(principal)) => Ok(principal),
                Some(Err(refusal)) => Err(refusal.clone()),
                None => Err((
                    Rule::RelayUnattested,
                    "the station did not name who made this change".into(),
                )),
            };
            let principal = match allowed {
                Ok(p) => p,
                Err((rule, detail)) => {
                    for c in &run {
                        bad.insert(c.hash());
                        refused.push(Refusal::new(&c.hash(), rule, detail.clone()));
                    }
                    continue;
                }
            };
            let applied = self
                .write_locked_carrying(
                    &mut guard,
                    principal,
                    Origin::Client,
                    doc_id,
                    run.clone(),
                    &[],
                    &carried,
                )
                .await?;
            let ok: BTreeSet<ChangeHash> = applied.accepted.iter().copied().collect();
            for c in run {
                if ok.contains(&c.hash()) {
                    accepted.push(c);
                } else if applied.refused.iter().any(|r| r.change == c.hash().to_string()) {
                    bad.insert(c.hash());
                }
            }
            refused.extend(applied.refused);
        }
        let heads = guard.as_mut().expect("loaded").doc.get_heads();
        ex.record(push, &accepted, &refused, heads);
        Ok(())
    }

    /// Stores changes the tier above sent (a station's pull) without
    /// policy: the authority decided. Projections and notifications follow
    /// as for any write, so the station's people hear of them. `receipts`
    /// are the tier above's receipt times of the entries it sent with them:
    /// an entry new here is received when it was received there.
    pub async fn apply_upstream(
        &self,
        doc_id: &str,
        changes: Vec<Change>,
        receipts: &Receipts,
    ) -> Result<Applied, DocError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let mut guard = self.lock(doc_id).await?;
        let upstream = Principal {
            user: relay::upstream_user(),
            memberships: Vec::new(),
            household: None,
        };
        self.write_locked_carrying(&mut guard, &upstream, Origin::Upstream, doc_id, changes, &[], receipts)
            .await
    }

    /// A copy of a stored document, `None` if it does not exist (the
    /// station's uplink reads what to push with it).
    pub async fn copy(&self, doc_id: &str) -> Result<Option<AutoCommit>, DocError> {
        let guard = self.lock(doc_id).await?;
        let doc = &guard.as_ref().expect("loaded").doc;
        Ok(sync_core::DocKind::of(doc)?.is_some().then(|| doc.clone()))
    }

    /// The tier above refused `refused` of a document this station holds:
    /// records the refusals (the changes are refused here from now on) and
    /// replaces the stored history by the document rebuilt without them and
    /// without what builds on them. When nothing is left (the tier above
    /// refused the change that created it) the document leaves every list,
    /// and who may hold it is kept: its readers then, and the people whose
    /// changes it held (`StorageTx::take_out_of_lists`). Returns the
    /// changes taken out.
    pub async fn take_back(&self, doc_id: &str, refused: &[RefusedChange]) -> Result<BTreeSet<ChangeHash>, DocError> {
        let mut guard = self.lock(doc_id).await?;
        self.inner.refused_upstream.store(true, Ordering::Relaxed);
        let rows: Vec<crate::storage::UpstreamRefusal> = refused
            .iter()
            .map(|r| (r.change.to_string(), r.rule.clone(), r.detail.clone()))
            .collect();
        let refused_hashes: BTreeSet<ChangeHash> = refused.iter().map(|r| r.change).collect();
        let loaded = guard.as_mut().expect("loaded");
        let kind = sync_core::DocKind::of(&loaded.doc).ok().flatten();
        let (mut rebuilt, removed) = relay::without(&mut loaded.doc, &refused_hashes);
        // Nothing left: the people whose changes it held may hold it too.
        let mut writers = BTreeSet::new();
        if rebuilt.get_heads().is_empty() {
            let changes = loaded.doc.get_changes(&[]);
            for binding in self.actor_bindings(&changes).await?.into_values() {
                if !binding.reserved {
                    writers.insert(binding.user.to_string());
                }
            }
        }
        let now = self.now();
        let receipts = self.inner.storage.documents().entry_receipts(doc_id).await?;
        let settings = self.settings();
        let outcome = sync_core::write::rebuild(doc_id, rebuilt, &receipts, &settings.rules, &settings.calendar, now)?;
        let rebuilt_by = UserId::new(REBUILT_USER).expect("a valid user id");
        let job = WriteJob {
            doc_id: doc_id.to_owned(),
            // A document of which nothing is left keeps the kind it had.
            kind: outcome.kind.or(kind).unwrap_or(sync_core::DocKind::Petition),
            position: loaded.position,
            user: rebuilt_by.clone(),
            changes: stored_changes(&rebuilt_by, &outcome.accepted, now),
            actors: Vec::new(),
            projection: outcome.projection,
            notifications: Vec::new(),
            receipts: Vec::new(),
            marks: Vec::new(),
            settings: self.inner.commit_settings.read().expect("settings lock").clone(),
            now,
            rewrite: Some(Rewrite {
                refusals: rows,
                writers: writers.into_iter().collect(),
            }),
        };
        match self.inner.committer.commit(job).await? {
            JobResult::Committed(c) => {
                loaded.doc = outcome.doc;
                loaded.position = c.position;
                loaded.entries = Default::default();
                loaded.receipts = None;
                tracing::info!(doc = %doc_id, removed = removed.len(), "rebuilt without changes the tier above refused");
                Ok(removed)
            }
            other => {
                drop(guard.take());
                self.forget(doc_id);
                Err(DocError::Busy(format!("{doc_id} (rebuild: {other:?})")))
            }
        }
    }

    /// The tier above's refusals of a document's changes, by hash.
    pub(super) async fn upstream_refusals(
        &self,
        doc_id: &str,
    ) -> Result<BTreeMap<ChangeHash, (String, String)>, DocError> {
        Ok(self
            .inner
            .storage
            .stations()
            .upstream_refusals(doc_id)
            .await?
            .into_iter()
            .filter_map(|(h, rule, detail)| Some((h.parse().ok()?, (rule, detail))))
            .collect())
    }
}

/// The user a rebuilt history is stored under at a station: not the tier
/// above's (what it holds of the document is pushed up again if it lacks it).
pub const REBUILT_USER: &str = "lianxin-rebuilt";
