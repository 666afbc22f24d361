//! The change checker: structure first, then the meaning of each new entry.

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
    /// added to an existing room's messages, redactions, raised petitions,
    /// tags or pins, which say nothing about readers. A room's readers are its
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
            readers_may_change |= !matches!(
                container,
                Container::RoomMessages | Container::Redactions | Container::Raised | Container::Tags | Container::Pins
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

    /// The change as a whole: its encoded size and its message.
    fn check_change_size(&self) -> Result<(), Refusal> {
        let bytes = self.change.raw_bytes().len();
        if bytes > shape::MAX_CHANGE_BYTES {
            return Err(self.refuse(
                Rule::ChangeTooLarge,
                format!("{bytes} bytes, at most {} in one change", shape::MAX_CHANGE_BYTES),
            ));
        }
        let note = self.change.message().map_or(0, str::len) + self.change.extra_bytes().len();
        if note > shape::MAX_CHANGE_NOTE_BYTES {
            return Err(self.refuse(
                Rule::ChangeTooLarge,
                format!(
                    "a change message of {note} bytes, at most {}",
                    shape::MAX_CHANGE_NOTE_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// Every value a change writes is one a reader will see: no key of a map
    /// is written twice in one change, and inside the objects the change
    /// creates (and anywhere in a new document) nothing is deleted and no
    /// list item overwritten. Otherwise a change could carry megabytes that
    /// no schema read ever looks at.
    fn check_written_once(&self, ops: &[automerge::legacy::Op]) -> Result<(), Refusal> {
        let creating = self.facts.kind().is_none();
        let mut written: HashSet<(&ObjectId, &str)> = HashSet::new();
        for op in ops {
            let fresh = creating || self.created_here(&op.obj);
            match &op.key {
                automerge::legacy::Key::Map(k) => {
                    if !written.insert((&op.obj, k.as_str())) {
                        return Err(self.refuse(
                            Rule::WrittenTwice,
                            format!("the change writes {k:?} of one object twice"),
                        ));
                    }
                }
                automerge::legacy::Key::Seq(_) if fresh && !op.insert => {
                    return Err(self.refuse(
                        Rule::WrittenTwice,
                        "a new list's items are inserted, never overwritten or deleted in the change that makes them",
                    ));
                }
                automerge::legacy::Key::Seq(_) => {}
            }
            if fresh && matches!(op.action, OpType::Delete) {
                return Err(self.refuse(Rule::WrittenTwice, "a change deletes nothing inside what it creates"));
            }
        }
        Ok(())
    }

    /// Refuses a record whose shape `shape::record` refused, or that is over
    /// the entry limit.
    fn check_record(&self, what: &str, obj: &ObjId, has: impl Fn(&str) -> bool) -> Result<shape::Size, Refusal> {
        let size = shape::record(&*self.doc, obj, has).map_err(|e| match e {
            ShapeError::UnknownField(k) => self.refuse(Rule::UnknownField, format!("{what} has no field {k:?}")),
            ShapeError::Conflict(k) => self.refuse(Rule::WrittenTwice, format!("{what} holds two values for {k:?}")),
            ShapeError::Nested(k) => self.refuse(
                Rule::Malformed,
                format!("{what}'s field {k:?} holds an object where the schema has a value"),
            ),
        })?;
        if size.bytes > shape::MAX_ENTRY_BYTES {
            return Err(self.refuse(
                Rule::EntryTooLarge,
                format!("{what} is {} bytes, at most {}", size.bytes, shape::MAX_ENTRY_BYTES),
            ));
        }
        Ok(size)
    }

    fn check_household_shape(&self, id: &str) -> Result<(), Refusal> {
        let obj = am::req_obj(&*self.doc, &ROOT, "households", ObjType::Map)
            .and_then(|hs| am::req_obj(&*self.doc, &hs, id, ObjType::Map))
            .map_err(|e| self.malformed("household", e))?;
        self.check_record("a household", &obj, |k| HOUSEHOLD_FIELDS.contains(&k))
            .map(|_| ())
    }

    /// The document after the change stays under its kind's limits.
    fn check_document_size(&self, kind: DocKind, entries: usize, touched: &BTreeSet<&str>) -> Result<(), Refusal> {
        let full = |what: &str, n: usize, max: usize| {
            if n > max {
                Err(self.refuse(Rule::DocumentFull, format!("{what}: {n}, at most {max}")))
            } else {
                Ok(())
            }
        };
        let count = |key: &str| {
            am::req_obj(&*self.doc, &ROOT, key, ObjType::Map)
                .map(|o| self.doc.length(&o))
                .map_err(|e| self.malformed(key, e))
        };
        match kind {
            DocKind::Petition => full(
                "timeline events and messages of a petition",
                entries,
                shape::MAX_PETITION_ENTRIES,
            ),
            DocKind::Room => {
                full(
                    "messages, redactions and links of a room",
                    entries,
                    shape::MAX_ROOM_ENTRIES,
                )?;
                if touched.contains(container_name(&Container::Members)) {
                    full("members of a room", count("members")?, shape::MAX_ROOM_MEMBERS)?;
                }
                Ok(())
            }
            DocKind::Notice if touched.contains(container_name(&Container::Receipts)) => {
                full("receipts of a notice", count("receipts")?, shape::MAX_NOTICE_RECEIPTS)
            }
            DocKind::Directory if touched.contains(container_name(&Container::Households)) => {
                full("households of a directory", count("households")?, shape::MAX_HOUSEHOLDS)
            }
            DocKind::Notice | DocKind::Directory => Ok(()),
        }
    }

    fn village(&self) -> Result<UnitId, Refusal> {
        match self.facts {
            DocFacts::Directory { village, .. } => Ok(village.clone()),
            _ => Err(self.refuse(Rule::Malformed, "not a directory")),
        }
    }

    fn check_new_household(&mut self, obj: &ObjId) -> Result<(), Refusal> {
        let by = crate::doc::am::opt_str(&*self.doc, obj, "updated_by").map_err(|e| self.malformed("household", e))?;
        match by {
            Some(by) if by == self.me().as_str() => Ok(()),
            Some(by) => Err(self.refuse(
                Rule::ForgedAuthor,
                format!("updated_by says {by}, but the change comes from {}", self.me()),
            )),
            None => Err(self.refuse(Rule::Malformed, "a new household records updated_by")),
        }
    }

    fn check_room_map(&self, container: &Container, key: Option<&str>, action: &OpType) -> Result<(), Refusal> {
        let DocFacts::Room {
            info,
            members,
            messages,
            ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let my_role = members.get(self.me()).copied();
        let staff = self.staff_over(OFFICERS, &info.unit);
        if !staff && !my_role.is_some_and(MemberRole::moderates) {
            return Err(self.refuse(
                Rule::NotModerator,
                format!("only moderators of the room change its {}", container_name(container)),
            ));
        }
        let key = key.unwrap_or_default();
        match (container, action) {
            (Container::Members, OpType::Put(ScalarValue::Str(_)) | OpType::Delete) => {
                let user = UserId::new(key).map_err(|e| self.malformed("member", e))?;
                if let OpType::Put(ScalarValue::Str(role)) = action {
                    role.parse::<MemberRole>()
                        .map_err(|e| self.malformed("member role", e))?;
                }
                let touches_owner = members.get(&user) == Some(&MemberRole::Owner)
                    || matches!(action, OpType::Put(ScalarValue::Str(r)) if r.as_str() == "owner");
                if touches_owner && !staff && my_role != Some(MemberRole::Owner) {
                    return Err(self.refuse(
                        Rule::NotModerator,
                        "only the owner or an officer over the room's unit changes ownership",
                    ));
                }
                Ok(())
            }
            (Container::Tags, OpType::Put(ScalarValue::Boolean(true)) | OpType::Delete) => {
                crate::doc::check_text("tag", key, crate::doc::limits::SHORT, true)
                    .map_err(|e| self.malformed("tag", e))
            }
            (Container::Pins, OpType::Put(ScalarValue::Str(_)) | OpType::Delete) => {
                if let OpType::Put(ScalarValue::Str(by)) = action
                    && by.as_str() != self.me().as_str()
                {
                    return Err(self.refuse(
                        Rule::ForgedAuthor,
                        format!("the pin says it is by {by}, but the change comes from {}", self.me()),
                    ));
                }
                if !messages.keys().any(|m| m.as_str() == key) {
                    return Err(self.refuse(Rule::Malformed, format!("there is no message {key} to pin")));
                }
                Ok(())
            }
            _ => Err(self.refuse(
                Rule::Malformed,
                format!("{} hold only their own kind of values", container_name(container)),
            )),
        }
    }

    fn check_receipt(&self, key: &str, action: &OpType) -> Result<(), Refusal> {
        let DocFacts::Notice { unit, audience } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a notice"));
        };
        let (household, kind, user) = parse_receipt_key(key).map_err(|e| self.malformed("receipt", e))?;
        self.check_by(&user, "the receipt")?;
        let OpType::Put(ScalarValue::Str(stamp)) = action else {
            return Err(self.refuse(Rule::Malformed, "a receipt's value is its stamp"));
        };
        let at: Hlc = stamp.parse().map_err(|e| self.malformed("receipt", e))?;
        self.check_stamp(&at, &mut BTreeSet::new())?;
        let p = self.ctx.principal;
        let own_household = p.household.as_ref() == Some(&household);
        let server_delivery = p.is_system() && kind == ReceiptKind::Delivered;
        let officer = self.staff_over(OFFICERS, unit);
        if !own_household && !server_delivery && !officer {
            return Err(self.refuse(
                Rule::NotMember,
                format!("receipts for household {household} are written by its own people"),
            ));
        }
        if !audience.households.is_empty()
            && !audience.households.contains(&household)
            && audience.units.is_empty()
            && audience.rooms.is_empty()
        {
            return Err(self.refuse(
                Rule::Malformed,
                format!("household {household} is not in the notice's audience"),
            ));
        }
        Ok(())
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

    fn check_event(&self, e: &TimelineEvent) -> Result<(), Refusal> {
        let DocFacts::Petition {
            submitter, involved, ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a petition"));
        };
        event_refusal(self.ctx, submitter, involved, e).map_err(|(rule, detail)| self.refuse(rule, detail))
    }

    fn check_petition_message(&self) -> Result<(), Refusal> {
        let DocFacts::Petition {
            submitter, involved, ..
        } = self.facts
        else {
            return Err(self.refuse(Rule::Malformed, "not a petition"));
        };
        message_refusal(self.ctx, submitter, involved).map_err(|(rule, detail)| self.refuse(rule, detail))
    }

    fn room_standing(&self) -> Result<(bool, bool), Refusal> {
        let DocFacts::Room { info, members, .. } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let p = self.ctx.principal;
        let staff = self.staff_over(OFFICERS, &info.unit);
        let role = members.get(&p.user).copied();
        let line_party = info.kind == RoomKind::HouseholdLine && p.household.is_some() && p.household == info.household;
        let member = staff || role.is_some() || line_party;
        let moderator = staff || role.is_some_and(MemberRole::moderates);
        Ok((member, moderator))
    }

    fn check_room_message(&self, m: &Message) -> Result<(), Refusal> {
        let (member, moderator) = self.room_standing()?;
        if !member {
            return Err(self.refuse(Rule::NotMember, "only members write in this room"));
        }
        if m.mentions.contains(&Mention::All) && !moderator {
            return Err(self.refuse(Rule::NotModerator, "only moderators call on @all"));
        }
        if let (Some(r), DocFacts::Room { messages, .. }) = (&m.reply_to, self.facts)
            && !messages.contains_key(r)
        {
            return Err(self.refuse(Rule::Malformed, format!("reply to unknown message {r}")));
        }
        Ok(())
    }

    fn check_moderation(&self, message: &crate::ids::EntryId, action: &str) -> Result<(), Refusal> {
        let DocFacts::Room { messages, .. } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a room"));
        };
        let Some(author) = messages.get(message) else {
            return Err(self.refuse(Rule::Malformed, format!("there is no message {message}")));
        };
        let (_, moderator) = self.room_standing()?;
        if author == self.me() || moderator {
            Ok(())
        } else {
            Err(self.refuse(
                Rule::NotModerator,
                format!("only the author or a moderator may {action} a message"),
            ))
        }
    }

    fn check_creation(&self) -> Result<(), Refusal> {
        let kind = DocKind::of(&*self.doc)
            .map_err(|e| self.malformed("new document", e))?
            .ok_or_else(|| self.refuse(Rule::Malformed, "the first change of a document must create it"))?;
        let expected: &[&str] = match kind {
            DocKind::Petition => &["type", "schema", "header", "conversation", "timeline"],
            DocKind::Room => &[
                "type",
                "schema",
                "info",
                "members",
                "tags",
                "pins",
                "messages",
                "redactions",
                "raised",
            ],
            DocKind::Notice => &["type", "schema", "info", "audience", "receipts"],
            DocKind::Directory => &["type", "schema", "info", "households"],
        };
        let keys: BTreeSet<String> = self.doc.keys(ROOT).collect();
        if keys != expected.iter().map(|s| s.to_string()).collect() {
            return Err(self.refuse(
                Rule::Malformed,
                format!("a new {kind} has exactly the fields {expected:?}"),
            ));
        }
        self.check_creation_shape(kind)?;
        let p = self.ctx.principal;
        let mut stamps = BTreeSet::new();
        match kind {
            DocKind::Petition => {
                let doc = PetitionDoc::view(&*self.doc).map_err(|e| self.malformed("petition", e))?;
                let header = doc.header().map_err(|e| self.malformed("petition header", e))?;
                let events = doc.events().map_err(|e| self.malformed("timeline", e))?;
                let messages = doc.messages().map_err(|e| self.malformed("conversation", e))?;
                let [event] = events.as_slice() else {
                    return Err(self.refuse(Rule::Malformed, "a new petition holds exactly its submitted event"));
                };
                let EventBody::Submitted { unit } = &event.body else {
                    return Err(self.refuse(Rule::Malformed, "a new petition's first event is submitted"));
                };
                if !messages.is_empty() {
                    return Err(self.refuse(Rule::Malformed, "a new petition has an empty conversation"));
                }
                self.check_by(&event.by, "the submitted event")?;
                self.check_by(&header.recorded_by, "recorded_by")?;
                self.check_stamp(&event.at, &mut stamps)?;
                self.unit_exists(unit)?;
                self.unit_exists(&header.location.unit)?;
                if p.is_system() {
                    return Ok(());
                }
                if p.is_staff() {
                    if self.staff_over(OFFICERS, unit) || self.staff_over(OFFICERS, &header.location.unit) {
                        return Ok(());
                    }
                    return Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        "officers record petitions for their own jurisdiction",
                    ));
                }
                if header.submitter != p.user {
                    return Err(self.refuse(Rule::NotSubmitter, "residents file petitions in their own name"));
                }
                if matches!(header.channel, Channel::WalkIn | Channel::Api) {
                    return Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("the {} channel is for officers and systems", header.channel),
                    ));
                }
                Ok(())
            }
            DocKind::Room => {
                let doc = RoomDoc::view(&*self.doc).map_err(|e| self.malformed("room", e))?;
                let info = doc.info().map_err(|e| self.malformed("room info", e))?;
                let members = doc.members().map_err(|e| self.malformed("room members", e))?;
                let empty = doc.raw_messages().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.redactions().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.raised().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.pins().map(|m| m.is_empty()).unwrap_or(false);
                doc.tags().map_err(|e| self.malformed("room tags", e))?;
                if !empty {
                    return Err(self.refuse(
                        Rule::Malformed,
                        "a new room starts with no messages, pins or redactions",
                    ));
                }
                self.check_by(&info.created_by, "created_by")?;
                self.unit_exists(&info.unit)?;
                if members.get(&p.user) != Some(&MemberRole::Owner) {
                    return Err(self.refuse(Rule::Malformed, "the creator of a room is its owner"));
                }
                let line_party =
                    info.kind == RoomKind::HouseholdLine && p.household.is_some() && p.household == info.household;
                if self.staff_over(OFFICERS, &info.unit) || line_party {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("rooms of {} are opened by its officers", info.unit),
                    ))
                }
            }
            DocKind::Notice => {
                let doc = NoticeDoc::view(&*self.doc).map_err(|e| self.malformed("notice", e))?;
                let info = doc.info().map_err(|e| self.malformed("notice info", e))?;
                let audience = doc.audience().map_err(|e| self.malformed("notice audience", e))?;
                if !doc.receipts().map_err(|e| self.malformed("receipts", e))?.is_empty() {
                    return Err(self.refuse(Rule::Malformed, "a new notice has no receipts"));
                }
                self.check_by(&info.by, "the notice")?;
                self.check_stamp(&info.at, &mut stamps)?;
                self.unit_exists(&info.unit)?;
                audience.units.iter().try_for_each(|u| self.unit_exists(u))?;
                if self.staff_over(OFFICERS, &info.unit) {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("notices of {} are issued by its officers", info.unit),
                    ))
                }
            }
            DocKind::Directory => {
                let doc = DirectoryDoc::view(&*self.doc).map_err(|e| self.malformed("directory", e))?;
                let village = doc.village().map_err(|e| self.malformed("directory", e))?;
                if !doc
                    .households()
                    .map_err(|e| self.malformed("households", e))?
                    .is_empty()
                {
                    return Err(self.refuse(Rule::Malformed, "a new directory has no households yet"));
                }
                let created_by = crate::doc::am::opt_str(
                    &*self.doc,
                    &crate::doc::am::req_obj(&*self.doc, &ROOT, "info", ObjType::Map)
                        .map_err(|e| self.malformed("directory", e))?,
                    "created_by",
                )
                .map_err(|e| self.malformed("directory", e))?
                .unwrap_or_default();
                if created_by != p.user.as_str() {
                    return Err(self.refuse(
                        Rule::ForgedAuthor,
                        format!("created_by says {created_by}, but the change comes from {}", p.user),
                    ));
                }
                self.unit_exists(&village)?;
                if self.staff_over(OFFICERS, &village) {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("the directory of {village} is kept by its officers"),
                    ))
                }
            }
        }
    }
}

impl Inspector<'_, '_> {
    /// A new document's records hold only their schema's fields, within the
    /// entry limit; its member list and audience within theirs.
    fn check_creation_shape(&self, kind: DocKind) -> Result<(), Refusal> {
        let doc = &*self.doc;
        let obj = |key: &str, ty: ObjType| am::req_obj(doc, &ROOT, key, ty).map_err(|e| self.malformed(key, e));
        match kind {
            DocKind::Petition => {
                self.check_record("the header", &obj("header", ObjType::Map)?, |k| {
                    shape::HEADER.contains(&k)
                })?;
                let timeline = obj("timeline", ObjType::List)?;
                for event in am::list_maps(doc, &timeline, "timeline").map_err(|e| self.malformed("timeline", e))? {
                    self.check_record("the submitted event", &event, |k| {
                        shape::event_has(EventKind::Submitted, k)
                    })?;
                }
            }
            DocKind::Room => {
                self.check_record("the room's info", &obj("info", ObjType::Map)?, |k| {
                    shape::ROOM_INFO.contains(&k)
                })?;
                let members = doc.length(obj("members", ObjType::Map)?);
                if members > shape::MAX_ROOM_MEMBERS {
                    return Err(self.refuse(
                        Rule::DocumentFull,
                        format!("members of a room: {members}, at most {}", shape::MAX_ROOM_MEMBERS),
                    ));
                }
                if doc.length(obj("tags", ObjType::Map)?) > 0 {
                    return Err(self.refuse(Rule::Malformed, "a new room has no tags yet"));
                }
            }
            DocKind::Notice => {
                self.check_record("the notice's info", &obj("info", ObjType::Map)?, |k| {
                    shape::NOTICE_INFO.contains(&k)
                })?;
                let audience = shape::record(doc, &obj("audience", ObjType::Map)?, |k| shape::AUDIENCE.contains(&k))
                    .map_err(|e| self.refuse(Rule::UnknownField, format!("the notice's audience: {e:?}")))?;
                if audience.items > shape::MAX_AUDIENCE {
                    return Err(self.refuse(
                        Rule::DocumentFull,
                        format!(
                            "an audience of {} households, rooms and units, at most {}",
                            audience.items,
                            shape::MAX_AUDIENCE
                        ),
                    ));
                }
            }
            DocKind::Directory => {
                self.check_record("the directory's info", &obj("info", ObjType::Map)?, |k| {
                    shape::DIRECTORY_INFO.contains(&k)
                })?;
            }
        }
        Ok(())
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

/// Whether `ctx.principal` may record `e` on a petition filed by
/// `submitter` and routed to `involved`: the rule and why not, if not.
/// What `check_changes` applies to each new timeline event, and what
/// `petition::allowed_actions` asks of each action a reader might take.
pub fn event_refusal(
    ctx: &PolicyContext<'_>,
    submitter: &UserId,
    involved: &BTreeSet<UnitId>,
    e: &TimelineEvent,
) -> Result<(), (Rule, String)> {
    let p = ctx.principal;
    let staff_over = |roles: RoleSet, unit: &UnitId| crate::access::acts_over(ctx.org, p, roles, unit);
    let unit_exists = |unit: &UnitId| {
        if ctx.org.get(unit).is_some() {
            Ok(())
        } else {
            Err((Rule::UnknownUnit, format!("there is no unit {unit}")))
        }
    };
    let kind = e.kind();
    match kind {
        EventKind::Submitted => {
            return Err((
                Rule::CreationOnly,
                "a petition is submitted once, when it is created".into(),
            ));
        }
        EventKind::Withdrawn if p.user != *submitter => {
            return Err((
                Rule::NotSubmitter,
                "only the resident who filed the petition withdraws it".into(),
            ));
        }
        EventKind::Withdrawn => return Ok(()),
        EventKind::FollowUp | EventKind::Reopened if e.unit.is_none() => {
            if p.user != *submitter {
                return Err((
                    Rule::NotSubmitter,
                    format!("a {kind} without a unit comes from the resident who filed the petition"),
                ));
            }
            return Ok(());
        }
        _ => {}
    }
    let Some(unit) = &e.unit else {
        return Err((Rule::Malformed, format!("a {kind} event names the unit acted for")));
    };
    if !p.is_staff() {
        return Err((Rule::RoleRequired, format!("residents do not record {kind} events")));
    }
    let roles = match kind {
        EventKind::Supervised => RoleSet::LEADERS,
        EventKind::Transferred | EventKind::Escalated | EventKind::AssistsChanged => OFFICERS,
        _ => HANDLERS,
    };
    if !involved.contains(unit) {
        return Err((
            Rule::NotInJurisdiction,
            format!("the petition was never routed to {unit}"),
        ));
    }
    if !staff_over(roles, unit) {
        let rule = if staff_over(HANDLERS, unit) {
            Rule::RoleRequired
        } else {
            Rule::NotInJurisdiction
        };
        return Err((rule, format!("{} may not record a {kind} for {unit}", p.user)));
    }
    match &e.body {
        EventBody::Transferred { to, assist, .. } => {
            unit_exists(to)?;
            assist.iter().try_for_each(&unit_exists)
        }
        EventBody::Escalated { to, .. } => unit_exists(to),
        EventBody::AssistsChanged { add, .. } => add.iter().try_for_each(unit_exists),
        _ => Ok(()),
    }
}

/// Whether `ctx.principal` may write in the conversation of a petition filed
/// by `submitter` and routed to `involved`.
pub fn message_refusal(
    ctx: &PolicyContext<'_>,
    submitter: &UserId,
    involved: &BTreeSet<UnitId>,
) -> Result<(), (Rule, String)> {
    let p = ctx.principal;
    let staff_over = |roles: RoleSet, unit: &UnitId| crate::access::acts_over(ctx.org, p, roles, unit);
    if p.user == *submitter || involved.iter().any(|u| staff_over(HANDLERS, u)) {
        Ok(())
    } else if p.is_staff() {
        Err((
            Rule::NotInJurisdiction,
            "the petition is outside the writer's jurisdiction".into(),
        ))
    } else {
        Err((Rule::NotSubmitter, "residents write only on their own petitions".into()))
    }
}
