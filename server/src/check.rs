//! `lianxin admin check`: reads every stored document back and says what does not hold.
//!
//! For each document: its snapshot and changes must rebuild a document that
//! contains every stored change (none left waiting on a missing dependency)
//! and the snapshot's heads; its projection rows (the petition row, who may
//! read it) must equal a recomputation from the rebuilt document, under the
//! clock rules the administration stored (`CheckSettings::stored`). A
//! document a station took back whole must be empty and in no list. On SQLite
//! the database file must also pass `PRAGMA integrity_check`. Operators run
//! it after an incident; the crash and multi-node tests run it after their
//! load.

use std::collections::BTreeSet;

use automerge::{AutoCommit, Change, ChangeHash};
use sync_core::petition::PetitionSummary;
use sync_core::{Calendar, ClockRules, DocKind};

use crate::storage::{Backend, Storage, StorageError};
use sync_core::projection::Projection;

/// What the check compares projections with.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    pub rules: ClockRules,
    pub calendar: Calendar,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            rules: ClockRules::default(),
            calendar: Calendar::china(),
        }
    }
}

impl CheckSettings {
    /// The clock rules and calendar the server computes summaries with: what
    /// its administration stored (`PUT /api/admin/clock-rules`, or the tier
    /// above's directory at a station), else the defaults.
    pub async fn stored(storage: &Storage) -> Result<CheckSettings, crate::ApiError> {
        Ok(match crate::api::org::stored_clocks(storage).await? {
            Some((rules, calendar)) => CheckSettings { rules, calendar },
            None => CheckSettings::default(),
        })
    }
}

/// What the check found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub documents: usize,
    /// Stored changes read (after the documents' snapshots).
    pub changes: usize,
    /// One sentence per problem, naming the document.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// The report as `key=value` lines and one `problem=` line per problem.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("documents={}", self.documents),
            format!("changes={}", self.changes),
            format!("problems={}", self.problems.len()),
        ];
        out.extend(self.problems.iter().map(|p| format!("problem={p}")));
        out
    }
}

/// Checks every document in `storage`.
pub async fn check_database(storage: &Storage, settings: &CheckSettings) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    if storage.backend() == Backend::Sqlite {
        for line in storage.integrity_check().await? {
            if line != "ok" {
                report.problems.push(format!("sqlite integrity_check: {line}"));
            }
        }
    }
    let mut after = String::new();
    loop {
        let ids = storage.documents().document_ids(&after, 500).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for id in ids {
            report.documents += 1;
            check_document(storage, settings, &id, &mut report).await?;
        }
    }
    Ok(report)
}

async fn check_document(
    storage: &Storage,
    settings: &CheckSettings,
    doc_id: &str,
    report: &mut CheckReport,
) -> Result<(), StorageError> {
    let Some(stored) = storage.documents().load_document(doc_id).await? else {
        return Ok(());
    };
    let mut problem = |p: String| report.problems.push(format!("document {doc_id}: {p}"));
    let mut doc = match &stored.snapshot {
        Some(s) => match AutoCommit::load(s) {
            Ok(d) => d,
            Err(e) => {
                problem(format!("snapshot does not load: {e}"));
                return Ok(());
            }
        },
        None => AutoCommit::new(),
    };
    report.changes += stored.changes.len();
    let mut hashes = Vec::with_capacity(stored.changes.len());
    for bytes in &stored.changes {
        match Change::from_bytes(bytes.clone()) {
            Ok(c) => hashes.push(c.hash()),
            Err(e) => {
                problem(format!("a stored change does not decode: {e}"));
                return Ok(());
            }
        }
        if let Err(e) = doc.load_incremental(bytes) {
            problem(format!("a stored change does not load: {e}"));
            return Ok(());
        }
    }
    let heads: Vec<ChangeHash> = stored.snapshot_heads.iter().filter_map(|h| h.parse().ok()).collect();
    if heads.len() != stored.snapshot_heads.len() {
        problem("snapshot heads do not parse".into());
    }
    let missing: BTreeSet<String> = hashes
        .iter()
        .chain(&heads)
        .filter(|h| doc.get_change_by_hash(h).is_none())
        .map(|h| h.to_string())
        .collect();
    if !missing.is_empty() {
        problem(format!(
            "{} stored changes wait on missing dependencies (e.g. {})",
            missing.len(),
            missing.iter().next().map_or("", String::as_str)
        ));
    }
    let kind = match DocKind::of(&doc) {
        Ok(Some(k)) => k,
        Ok(None) if stored.changes.is_empty() && storage.stations().taken_back_whole(doc_id).await?.is_some() => {
            // Taken back whole at a station: nothing is left, and no list
            // may show it.
            if !storage.projections().doc_access(doc_id).await?.is_empty() {
                problem("taken back whole, yet readers are listed".into());
            }
            if storage.projections().petition_summary(doc_id).await?.is_some() {
                problem("taken back whole, yet a petition row remains".into());
            }
            return Ok(());
        }
        Ok(None) => {
            problem("the stored document is empty".into());
            return Ok(());
        }
        Err(e) => {
            problem(format!("the stored document does not read: {e}"));
            return Ok(());
        }
    };
    if kind.as_str() != stored.kind {
        problem(format!("stored as a {} but reads as a {}", stored.kind, kind.as_str()));
    }
    let now = sync_core::Timestamp::from_millis(0);
    let receipts = storage.documents().entry_receipts(doc_id).await?;
    let expected =
        match Projection::of_document(doc_id, &doc, &settings.rules, &settings.calendar, now, Some(&receipts)) {
            Ok(p) => p,
            Err(e) => {
                problem(format!("projection does not compute: {e}"));
                return Ok(());
            }
        };
    let access: BTreeSet<(String, String)> = expected
        .access
        .iter()
        .flatten()
        .map(|r| (r.kind.as_str().to_owned(), r.subject.clone()))
        .collect();
    let stored_access: BTreeSet<(String, String)> = storage
        .projections()
        .doc_access(doc_id)
        .await?
        .into_iter()
        .map(|r| (r.kind.as_str().to_owned(), r.subject))
        .collect();
    if access != stored_access {
        problem(format!(
            "access rows differ: stored {} rows, recomputed {}",
            stored_access.len(),
            access.len()
        ));
    }
    if let Some(summary) = &expected.petition {
        match storage.projections().petition_summary(doc_id).await {
            Ok(None) => problem("no petition row".into()),
            Err(StorageError::Corrupt(e)) => problem(format!("petition row does not read: {e}")),
            Err(e) => return Err(e),
            Ok(Some(row)) => {
                let (a, b) = (stable(&row), stable(summary));
                if a != b {
                    problem(format!(
                        "petition row differs from the document: stored {a}, recomputed {b}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A summary without what depends on the time it was computed at.
fn stable(s: &PetitionSummary) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("overdue");
        map.remove("clocks");
    }
    v
}
