//! The change checker: structure first, then the meaning of each new entry.
//!
//! This file walks a change's operations and sends each to the rules of
//! where it lands; the rules live by document kind (`petition`, `room`,
//! `notice`, `directory`), for new documents (`creation`) and for sizes and
//! shapes (`limits`).

use std::collections::{BTreeSet, HashSet};

use automerge::legacy::{ObjectId, OpId, OpType};
use automerge::{AutoCommit, Change, ChangeHash, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue};

use super::facts::DocFacts;
use super::rule::{Refusal, Rule};
use super::shape::{self, ShapeError};
use crate::access::RoleSet;
use crate::channel::Channel;
use crate::directory::{DirectoryDoc, HOUSEHOLD_FIELDS};
use crate::doc::{DocKind, Mention, Message, am};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::notice::{NoticeDoc, ReceiptKind, parse_receipt_key};
use crate::org::{OrgTree, Principal};
use crate::petition::{EventBody, EventKind, PetitionDoc, TimelineEvent};
use crate::room::{MemberRole, Raised, Redaction, RoomDoc, RoomKind};
use crate::time::Timestamp;

mod creation;
mod directory;
mod limits;
mod notice;
mod petition;
mod room;

pub use petition::{event_refusal, message_refusal};

/// How far past the checker's `now` an entry may be stamped: a phone's clock
/// may run a few minutes fast, but no more. A larger allowance would let one
/// entry stamped hours ahead drag every later stamp with it (hybrid logical
/// clocks never go back), so an officer's sign made a second later would
/// read as hours late. Past stamps stand: offline phones sync late.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

const HANDLERS: RoleSet = RoleSet::HANDLERS;

const OFFICERS: RoleSet = RoleSet::OFFICERS;

/// Who is writing, in which organisation, at what time.
#[derive(Clone, Copy, Debug)]
pub struct PolicyContext<'a> {
    pub org: &'a OrgTree,
    pub principal: &'a Principal,
    pub now: Timestamp,
}

/// The result of checking a batch of changes against a stored document.
#[derive(Debug)]
pub struct Checked {
    /// The stored document plus every accepted change.
    pub doc: AutoCommit,
    /// Accepted changes, in the order they were applied.
    pub accepted: Vec<ChangeHash>,
    /// Refused changes, each with its rule.
    pub refused: Vec<Refusal>,
    /// Changes the document already had (a re-sent change is stored once).
    pub duplicates: Vec<ChangeHash>,
    /// Whether the accepted changes may have changed who reads the document
    /// ([`Visibility`](super::facts::Visibility)): false only when each of them
    /// added to an existing petition's conversation or an existing room's
    /// messages, redactions, raised petitions, tags or pins, which say nothing
    /// about readers. A room's readers are its
    /// members; with this false, nobody needs to read thousands of them again.
    pub readers_may_change: bool,
}

/// Checks `changes` one by one, in dependency order, against `doc`.
///
/// An accepted change is applied before the next is checked, so a batch can
/// create a document and then add to it. A refused change leaves no trace in
/// the returned document; changes that build on it are refused too. Changes
/// from the same batch that do not depend on a refused one are kept.
pub fn check_changes(ctx: &PolicyContext<'_>, mut doc: AutoCommit, changes: Vec<Change>) -> Checked {
    let mut out = Checked {
        doc: AutoCommit::new(),
        accepted: Vec::new(),
        refused: Vec::new(),
        duplicates: Vec::new(),
        readers_may_change: false,
    };
    let mut seen = HashSet::new();
    let mut pending = Vec::new();
    for c in changes {
        let h = c.hash();
        if !seen.insert(h) {
            continue;
        }
        if am::has_change(&mut doc, &h) {
            out.duplicates.push(h);
        } else {
            pending.push(c);
        }
    }
    let mut refused: HashSet<ChangeHash> = HashSet::new();
    loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for c in pending {
            let h = c.hash();
            if let Some(bad) = c.deps().iter().find(|d| refused.contains(*d)) {
                out.refused.push(Refusal::new(
                    &h,
                    Rule::DependsOnRefused,
                    format!("it builds on refused change {bad}"),
                ));
                refused.insert(h);
                progressed = true;
            } else if c.deps().iter().all(|d| am::has_change(&mut doc, d)) {
                match check_one(ctx, &mut doc, &c) {
                    Ok(readers_may_change) => {
                        out.accepted.push(h);
                        out.readers_may_change |= readers_may_change;
                    }
                    Err(r) => {
                        out.refused.push(r);
                        refused.insert(h);
                    }
                }
                progressed = true;
            } else {
                waiting.push(c);
            }
        }
        pending = waiting;
        if !progressed || pending.is_empty() {
            break;
        }
    }
    for c in pending {
        out.refused.push(Refusal::new(
            &c.hash(),
            Rule::MissingDependency,
            "its dependencies are neither stored nor in this batch",
        ));
    }
    out.doc = doc;
    out
}

/// Checks the local changes made since `heads_before`. On refusal the
/// document is put back to `heads_before` plus the changes that passed, and
/// the first refusal is returned.
pub fn check_local(ctx: &PolicyContext<'_>, doc: &mut AutoCommit, heads_before: &[ChangeHash]) -> Result<(), Refusal> {
    let changes = doc.get_changes(heads_before);
    if changes.is_empty() {
        return Ok(());
    }
    let actor = doc.get_actor().clone();
    let base = doc
        .fork_at(heads_before)
        .expect("heads_before are heads this document had");
    let checked = check_changes(ctx, base, changes);
    match checked.refused.into_iter().next() {
        None => Ok(()),
        Some(refusal) => {
            *doc = checked.doc.with_actor(actor);
            Err(refusal)
        }
    }
}

/// Checks and applies one change; `Ok` says whether it may change who reads
/// the document (see [`Checked::readers_may_change`]).
fn check_one(ctx: &PolicyContext<'_>, doc: &mut AutoCommit, change: &Change) -> Result<bool, Refusal> {
    let hash = change.hash();
    let heads_before = doc.get_heads();
    let facts = DocFacts::of(doc).map_err(|e| {
        Refusal::new(
            &hash,
            Rule::Malformed,
            format!("the stored document does not read: {e}"),
        )
    })?;
    if let Err(e) = doc.apply_changes([change.clone()]) {
        return Err(Refusal::new(
            &hash,
            Rule::Malformed,
            format!("the change does not apply: {e}"),
        ));
    }
    let verdict = Inspector {
        ctx,
        doc,
        facts: &facts,
        change,
        hash,
    }
    .inspect();
    if verdict.is_err() {
        // Entries parsed from the refused change must not stand for
        // another change that reuses its actor and sequence number.
        crate::doc::cache::forget_pending();
        let actor = doc.get_actor().clone();
        *doc = doc
            .fork_at(&heads_before)
            .expect("heads before the change are known")
            .with_actor(actor);
    }
    verdict
}

/// Where an operation lands, by the path of the object it targets.
#[derive(Clone, Debug, PartialEq)]
enum Container {
    Timeline,
    Conversation,
    RoomMessages,
    Redactions,
    Raised,
    Members,
    Tags,
    Pins,
    Receipts,
    Households,
    Household,
    Fixed(String),
}

fn classify(kind: DocKind, path: &[Prop]) -> Container {
    let keys: Vec<Option<&str>> = path
        .iter()
        .map(|p| match p {
            Prop::Map(k) => Some(k.as_str()),
            Prop::Seq(_) => None,
        })
        .collect();
    match (kind, keys.as_slice()) {
        (DocKind::Petition, [Some("timeline")]) => Container::Timeline,
        (DocKind::Petition, [Some("conversation")]) => Container::Conversation,
        (DocKind::Room, [Some("messages")]) => Container::RoomMessages,
        (DocKind::Room, [Some("redactions")]) => Container::Redactions,
        (DocKind::Room, [Some("raised")]) => Container::Raised,
        (DocKind::Room, [Some("members")]) => Container::Members,
        (DocKind::Room, [Some("tags")]) => Container::Tags,
        (DocKind::Room, [Some("pins")]) => Container::Pins,
        (DocKind::Notice, [Some("receipts")]) => Container::Receipts,
        (DocKind::Directory, [Some("households")]) => Container::Households,
        (DocKind::Directory, [Some("households"), Some(_)]) => Container::Household,
        (_, []) => Container::Fixed("the document root".into()),
        (_, [Some(first), ..])
            if path.len() == 2
                && matches!(
                    *first,
                    "timeline" | "conversation" | "messages" | "redactions" | "raised"
                ) =>
        {
            Container::Fixed(format!("an existing entry of {first}"))
        }
        (_, [Some(first), ..]) => Container::Fixed(first.to_string()),
        (_, _) => Container::Fixed("an existing object".into()),
    }
}

struct Inspector<'a, 'c> {
    ctx: &'a PolicyContext<'c>,
    doc: &'a mut AutoCommit,
    facts: &'a DocFacts,
    change: &'a Change,
    hash: ChangeHash,
}

impl Inspector<'_, '_> {
    fn refuse(&self, rule: Rule, detail: impl Into<String>) -> Refusal {
        Refusal::new(&self.hash, rule, detail)
    }

    fn malformed(&self, what: &str, e: SchemaError) -> Refusal {
        self.refuse(Rule::Malformed, format!("{what}: {e}"))
    }

    fn me(&self) -> &UserId {
        &self.ctx.principal.user
    }

    fn staff_over(&self, roles: RoleSet, unit: &UnitId) -> bool {
        crate::access::acts_over(self.ctx.org, self.ctx.principal, roles, unit)
    }

    fn unit_exists(&self, unit: &UnitId) -> Result<(), Refusal> {
        if self.ctx.org.get(unit).is_some() {
            Ok(())
        } else {
            Err(self.refuse(Rule::UnknownUnit, format!("there is no unit {unit}")))
        }
    }

    fn check_stamp(&self, at: &Hlc, seen: &mut BTreeSet<Hlc>) -> Result<(), Refusal> {
        if at.wall_ms > self.ctx.now.millis() + MAX_FUTURE_SKEW_MS {
            return Err(self.refuse(
                Rule::FutureStamp,
                format!("stamp {at} is more than 5 minutes ahead of the server's clock"),
            ));
        }
        if !seen.insert(at.clone()) {
            return Err(self.refuse(Rule::DuplicateEntry, format!("an entry stamped {at} already exists")));
        }
        Ok(())
    }

    fn check_by(&self, by: &UserId, what: &str) -> Result<(), Refusal> {
        if by == self.me() {
            Ok(())
        } else {
            Err(self.refuse(
                Rule::ForgedAuthor,
                format!("{what} says it is by {by}, but the change comes from {}", self.me()),
            ))
        }
    }

    fn created_here(&self, obj: &ObjectId) -> bool {
        let start = self.change.start_op().get();
        let end = start + self.change.len() as u64;
        matches!(obj, ObjectId::Id(OpId(c, a)) if a == self.change.actor_id() && (start..end).contains(c))
    }

    fn exid(&self, counter: u64, actor: &automerge::ActorId) -> Result<ObjId, Refusal> {
        self.doc
            .import_obj(&format!("{counter}@{actor}"))
            .map_err(|e| self.refuse(Rule::Malformed, format!("unknown object {counter}@{actor}: {e}")))
    }

    fn path_of(&self, obj: &ObjectId) -> Result<Vec<Prop>, Refusal> {
        let ObjectId::Id(OpId(counter, actor)) = obj else {
            return Ok(Vec::new());
        };
        let id = self.exid(*counter, actor)?;
        self.doc
            .object_type(&id)
            .map_err(|e| self.refuse(Rule::Malformed, format!("unknown object: {e}")))?;
        let parents = self
            .doc
            .parents(&id)
            .map_err(|e| self.refuse(Rule::Malformed, format!("unknown object: {e}")))?;
        Ok(parents.path().into_iter().map(|(_, p)| p).collect())
    }

    /// `Ok(readers_may_change)`, see [`Checked::readers_may_change`].
    fn inspect(mut self) -> Result<bool, Refusal> {
        self.check_change_size()?;
        let decoded = self.change.decode();
        for op in &decoded.operations {
            if matches!(
                op.action,
                OpType::Increment(_)
                    | OpType::MarkBegin(_)
                    | OpType::MarkEnd(_)
                    | OpType::Make(ObjType::Text | ObjType::Table)
            ) {
                return Err(self.refuse(
                    Rule::UnsupportedOp,
                    "counters, marks, text and table objects are not part of any Lianxin document",
                ));
            }
        }
        self.check_written_once(&decoded.operations)?;
        let Some(kind) = self.facts.kind() else {
            return self.check_creation().map(|()| true);
        };
        let start = self.change.start_op().get();
        let actor = self.change.actor_id().clone();
        let mut new_entries: Vec<(Container, ObjId)> = Vec::new();
        let mut households: Vec<ObjId> = Vec::new();
        let mut touched_households: BTreeSet<String> = BTreeSet::new();
        let mut touched: BTreeSet<&'static str> = BTreeSet::new();
        let mut readers_may_change = false;
        let mut entries = 0usize;
        for (i, op) in decoded.operations.iter().enumerate() {
            if self.created_here(&op.obj) {
                continue;
            }
            entries += 1;
            if entries > shape::MAX_CHANGE_ENTRIES {
                return Err(self.refuse(
                    Rule::ChangeTooLarge,
                    format!(
                        "one change adds at most {} entries or edits to existing lists and maps",
                        shape::MAX_CHANGE_ENTRIES
                    ),
                ));
            }
            let path = self.path_of(&op.obj)?;
            let container = classify(kind, &path);
            touched.insert(container_name(&container));
            if let (Container::Household, Some(Prop::Map(id))) = (&container, path.get(1)) {
                touched_households.insert(id.clone());
            }
            // A petition's readers follow its header and timeline (the units
            // an event routes it to), never its conversation.
            readers_may_change |= !matches!(
                container,
                Container::Conversation
                    | Container::RoomMessages
                    | Container::Redactions
                    | Container::Raised
                    | Container::Tags
                    | Container::Pins
            );
            let key = match &op.key {
                automerge::legacy::Key::Map(k) => Some(k.to_string()),
                automerge::legacy::Key::Seq(_) => None,
            };
            let overwrites = !op.pred.is_empty();
            match container {
                Container::Timeline
                | Container::Conversation
                | Container::RoomMessages
                | Container::Redactions
                | Container::Raised => {
                    if !op.insert || !matches!(op.action, OpType::Make(ObjType::Map)) || overwrites {
                        return Err(self.refuse(
                            Rule::AppendOnly,
                            format!("{} entries are never rewritten or deleted", container_name(&container)),
                        ));
                    }
                    new_entries.push((container, self.exid(start + i as u64, &actor)?));
                }
                Container::Members | Container::Tags | Container::Pins => {
                    self.check_room_map(&container, key.as_deref(), &op.action)?;
                }
                Container::Receipts => {
                    if overwrites || !matches!(op.action, OpType::Put(_)) {
                        return Err(self.refuse(Rule::AppendOnly, "receipts are recorded once and never changed"));
                    }
                    self.check_receipt(key.as_deref().unwrap_or_default(), &op.action)?;
                }
                Container::Households => {
                    let village = self.village()?;
                    if !self.staff_over(OFFICERS, &village) {
                        return Err(self.refuse(
                            Rule::NotInJurisdiction,
                            format!("only officers over {village} edit its directory"),
                        ));
                    }
                    match (&op.action, overwrites) {
                        (OpType::Make(ObjType::Map), false) => {
                            let k = key.unwrap_or_default();
                            HouseholdId::new(k.clone()).map_err(|e| self.malformed("household id", e))?;
                            touched_households.insert(k);
                            households.push(self.exid(start + i as u64, &actor)?);
                        }
                        (OpType::Delete, _) => {
                            return Err(
                                self.refuse(Rule::AppendOnly, "households are never deleted; mark them moved out")
                            );
                        }
                        _ => {
                            return Err(self.refuse(
                                Rule::AppendOnly,
                                "an existing household is edited field by field, not replaced",
                            ));
                        }
                    }
                }
                Container::Household => {
                    let village = self.village()?;
                    if !self.staff_over(OFFICERS, &village) {
                        return Err(self.refuse(
                            Rule::NotInJurisdiction,
                            format!("only officers over {village} edit its directory"),
                        ));
                    }
                    let k = key.unwrap_or_default();
                    if !HOUSEHOLD_FIELDS.contains(&k.as_str()) {
                        return Err(self.refuse(Rule::Malformed, format!("households have no field {k:?}")));
                    }
                    match &op.action {
                        OpType::Put(ScalarValue::Str(v)) if k == "updated_by" && v.as_str() != self.me().as_str() => {
                            return Err(self.refuse(
                                Rule::ForgedAuthor,
                                format!("updated_by says {v}, but the change comes from {}", self.me()),
                            ));
                        }
                        OpType::Put(_) => {}
                        _ => {
                            return Err(self.refuse(Rule::AppendOnly, "household fields are set, never deleted"));
                        }
                    }
                }
                Container::Fixed(what) => {
                    return Err(self.refuse(Rule::Immutable, format!("{what} does not change after it is written")));
                }
            }
        }
        for h in households {
            self.check_new_household(&h)?;
        }
        if kind == DocKind::Directory {
            let all = DirectoryDoc::view(&*self.doc)
                .and_then(|d| d.households())
                .map_err(|e| self.malformed("household", e))?;
            for h in all.iter().filter(|h| touched_households.contains(h.id.as_str())) {
                h.validate().map_err(|e| self.malformed("household", e))?;
                self.check_household_shape(h.id.as_str())?;
            }
        }
        let mut stamps = match self.facts {
            DocFacts::Petition { stamps, .. } | DocFacts::Room { stamps, .. } => stamps.clone(),
            _ => BTreeSet::new(),
        };
        for (container, obj) in new_entries {
            self.check_entry(&container, &obj, &mut stamps)?;
        }
        self.check_document_size(kind, stamps.len(), &touched)?;
        Ok(readers_may_change)
    }

    fn check_entry(&self, container: &Container, obj: &ObjId, stamps: &mut BTreeSet<Hlc>) -> Result<(), Refusal> {
        match container {
            Container::Timeline => {
                let e = TimelineEvent::read(&*self.doc, obj).map_err(|e| self.malformed("timeline event", e))?;
                let kind = e.kind();
                self.check_record(&format!("a {kind} event"), obj, |k| shape::event_has(kind, k))?;
                self.check_by(&e.by, &format!("the {} event", e.kind()))?;
                self.check_stamp(&e.at, stamps)?;
                self.check_event(&e)
            }
            Container::Conversation => {
                let m = Message::read(&*self.doc, obj).map_err(|e| self.malformed("message", e))?;
                self.check_record("a message", obj, |k| shape::MESSAGE.contains(&k))?;
                self.check_by(&m.by, "the message")?;
                self.check_stamp(&m.at, stamps)?;
                self.check_petition_message()
            }
            Container::RoomMessages => {
                let m = Message::read(&*self.doc, obj).map_err(|e| self.malformed("message", e))?;
                self.check_record("a message", obj, |k| shape::MESSAGE.contains(&k))?;
                self.check_by(&m.by, "the message")?;
                self.check_stamp(&m.at, stamps)?;
                self.check_room_message(&m)
            }
            Container::Redactions => {
                let r = Redaction::read(&*self.doc, obj).map_err(|e| self.malformed("redaction", e))?;
                self.check_record("a redaction", obj, |k| shape::REDACTION.contains(&k))?;
                self.check_by(&r.by, "the redaction")?;
                self.check_stamp(&r.at, stamps)?;
                self.check_moderation(&r.message, "redact")
            }
            Container::Raised => {
                let r = Raised::read(&*self.doc, obj).map_err(|e| self.malformed("raised petition", e))?;
                self.check_record("a raised-petition link", obj, |k| shape::RAISED.contains(&k))?;
                self.check_by(&r.by, "the link")?;
                self.check_stamp(&r.at, stamps)?;
                self.check_moderation(&r.message, "raise as a petition")
            }
            _ => Ok(()),
        }
    }
}

fn container_name(c: &Container) -> &'static str {
    match c {
        Container::Timeline => "timeline",
        Container::Conversation => "conversation",
        Container::RoomMessages => "room message",
        Container::Redactions => "redaction",
        Container::Raised => "raised-petition",
        Container::Members => "members",
        Container::Tags => "tags",
        Container::Pins => "pins",
        Container::Receipts => "receipt",
        Container::Households => "household",
        Container::Household => "household field",
        Container::Fixed(_) => "fixed field",
    }
}
