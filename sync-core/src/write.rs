//! One write, computed before anything is stored: which incoming changes are
//! accepted and which refused (with their rules), the document after them,
//! the projection rows, the notifications they raise and the actor ids to
//! bind. The host executes the [`WriteOutcome`] in one transaction, and only
//! if the document's stored position is still the one the copy was built
//! from; otherwise it catches its copy up and computes again.
//!
//! A write goes in two steps because some writes need facts that no document
//! records (the households living below a new notice's audience units and in
//! its rooms; the officer the village directory assigns to a household, whom
//! its household line and its 户户通 petitions reach; a petition's entry
//! receipts): [`propose`] runs policy and says what it [`Needs`]; the host
//! reads that and calls [`Proposal::finish`].

use std::collections::{BTreeSet, HashMap};

use automerge::{ActorId, AutoCommit, Change};

use crate::channel::Channel;
use crate::clocks::{Calendar, ClockRules, Receipts};
use crate::doc::DocKind;
use crate::doc::cache::{self, EntryCache};
use crate::error::SchemaError;
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::notice::NoticeDoc;
use crate::notify::{
    Notification, notice_notifications, petition_notifications, room_notifications, to_household_officer,
};
use crate::petition::PetitionDoc;
use crate::policy::{PolicyContext, Refusal, Rule, check_changes};
use crate::projection::Projection;
use crate::room::{RoomDoc, RoomKind};
use crate::time::Timestamp;

/// Who an actor id was first delivered by, as the host's store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorBinding {
    pub user: UserId,
    /// Bound by the server for its own writes on the user's behalf (REST
    /// actions, the scheduler): no client may write with it, the user's own
    /// devices included, or two writers would share its sequence numbers.
    pub reserved: bool,
}

/// Where a write's changes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client's own changes (automerge-repo sync, batched sync).
    Client,
    /// Changes the server made on a user's behalf with a reserved actor.
    Server,
    /// Changes the tier above sent a station (see [`crate::relay`]): the
    /// authority already checked them, so policy does not run again and no
    /// actor is bound; they are stored and projected like any other.
    Upstream,
}

/// Facts a [`Proposal`] needs from the host before it can finish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A new notice: the households living in these units (the audience
    /// units and every unit below them)…
    pub households_in_units: Vec<UnitId>,
    /// …and in these rooms (document ids without the `automerge:` prefix).
    pub households_in_rooms: Vec<String>,
    /// A petition: the server's receipt times of the document's stored
    /// entries, which its clocks run on.
    pub entry_receipts: bool,
    /// A household's message on its household line, or a petition it files
    /// on the household line (户户通): the officer the village directory
    /// assigns to this household ([`Facts::household_officer`]).
    pub household_officer: Option<HouseholdId>,
}

impl Needs {
    pub fn is_empty(&self) -> bool {
        self.households_in_units.is_empty()
            && self.households_in_rooms.is_empty()
            && !self.entry_receipts
            && self.household_officer.is_none()
    }
}

/// What the host read for [`Needs`].
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The households of a new notice's audience.
    pub audience_households: Vec<HouseholdId>,
    /// The recorded receipt times of the document's entries.
    pub entry_receipts: Receipts,
    /// The officer the directory assigns to [`Needs::household_officer`]'s
    /// household, if it names one whose account is enabled; `None` sends
    /// what was for the officer to the unit's duty desk instead.
    pub household_officer: Option<UserId>,
}

/// A write after policy, before the facts policy cannot know.
#[derive(Debug)]
pub struct Proposal {
    doc_id: String,
    origin: Origin,
    user: UserId,
    household: Option<HouseholdId>,
    before: AutoCommit,
    after: AutoCommit,
    accepted: Vec<Change>,
    refused: Vec<Refusal>,
    duplicates: usize,
    readers_may_change: bool,
    new_actors: Vec<ActorId>,
    needs: Needs,
    carried: Receipts,
}

/// Everything one write produces.
#[derive(Debug)]
pub struct WriteOutcome {
    pub doc_id: String,
    /// `None` when nothing was accepted (then nothing is to be stored).
    pub kind: Option<DocKind>,
    /// The document after the accepted changes.
    pub doc: AutoCommit,
    /// Accepted changes, in the order they were applied.
    pub accepted: Vec<Change>,
    pub refused: Vec<Refusal>,
    /// Changes the document already had.
    pub duplicates: usize,
    /// Actor ids of accepted changes that no binding names yet: the host
    /// binds them to the writer in the write's transaction (reserved when
    /// the write is the server's own).
    pub new_actors: Vec<ActorId>,
    pub origin: Origin,
    /// Whether the accepted changes may have changed who reads the
    /// document (`Checked::readers_may_change`): live connections following
    /// it check their reader again.
    pub readers_may_change: bool,
    pub projection: Projection,
    pub notifications: Vec<Notification>,
    /// The entries (petition timeline events and messages, room messages)
    /// new in this write, by id, each received at the write's `now` (or when
    /// another tier received it, [`Proposal::carrying`]): the host records
    /// them with the changes and never changes them.
    pub receipts: Vec<(String, Timestamp)>,
}

/// Runs policy for `ctx.principal`'s `changes` against `before`.
/// `bindings` holds the stored binding of every actor in `changes` that has
/// one. An actor bound to another user, or reserved for the server when the
/// changes come from a client, refuses the change.
///
/// `cache` holds the parsed entries of `before`'s document (see
/// [`EntryCache`]); what this write parses stays pending in it until the
/// host calls [`EntryCache::keep_pending`] once the write is stored.
pub fn propose(
    ctx: &PolicyContext<'_>,
    origin: Origin,
    doc_id: &str,
    before: &AutoCommit,
    changes: Vec<Change>,
    bindings: &HashMap<ActorId, ActorBinding>,
    cache: &mut EntryCache,
) -> Proposal {
    cache::begin(cache);
    cache::scope(cache, || {
        propose_uncached(ctx, origin, doc_id, before, changes, bindings)
    })
}

fn propose_uncached(
    ctx: &PolicyContext<'_>,
    origin: Origin,
    doc_id: &str,
    before: &AutoCommit,
    changes: Vec<Change>,
    bindings: &HashMap<ActorId, ActorBinding>,
) -> Proposal {
    let who = ctx.principal;
    let mut refused = Vec::new();
    let mut candidates = Vec::with_capacity(changes.len());
    for c in changes {
        if origin == Origin::Upstream {
            candidates.push(c);
            continue;
        }
        match actor_refusal(&c, origin, &who.user, bindings.get(c.actor_id())) {
            Some(r) => refused.push(r),
            None => candidates.push(c),
        }
    }
    let mut proposal = Proposal {
        doc_id: doc_id.to_owned(),
        origin,
        user: who.user.clone(),
        household: who.household.clone(),
        before: before.clone(),
        after: AutoCommit::new(),
        accepted: Vec::new(),
        refused,
        duplicates: 0,
        readers_may_change: false,
        new_actors: Vec::new(),
        needs: Needs::default(),
        carried: Receipts::new(),
    };
    if candidates.is_empty() {
        proposal.after = proposal.before.clone();
        return proposal;
    }
    if origin == Origin::Upstream {
        return trusted(ctx, proposal, candidates);
    }
    let checked = check_changes(ctx, before.clone(), candidates.clone());
    proposal.refused.extend(checked.refused);
    proposal.duplicates = checked.duplicates.len();
    proposal.readers_may_change = checked.readers_may_change;
    let accepted: BTreeSet<_> = checked.accepted.iter().copied().collect();
    // In the order policy applied them.
    let mut by_hash: HashMap<_, _> = candidates.into_iter().map(|c| (c.hash(), c)).collect();
    proposal.accepted = checked.accepted.iter().filter_map(|h| by_hash.remove(h)).collect();
    debug_assert_eq!(proposal.accepted.len(), accepted.len());
    let mut actors: Vec<ActorId> = proposal
        .accepted
        .iter()
        .map(|c| c.actor_id().clone())
        .filter(|a| !bindings.contains_key(a))
        .collect();
    actors.sort();
    actors.dedup();
    proposal.new_actors = actors;
    proposal.after = checked.doc;
    proposal.needs = needs(ctx, &proposal.before, &proposal.after);
    proposal
}

/// An upstream write: the changes are applied as they are. Only a change
/// whose dependencies are still missing afterwards is refused (storing it
/// would leave the document unloadable).
fn trusted(ctx: &PolicyContext<'_>, mut proposal: Proposal, candidates: Vec<Change>) -> Proposal {
    let mut after = proposal.before.clone();
    let (new, old): (Vec<Change>, Vec<Change>) = candidates
        .into_iter()
        .partition(|c| after.get_change_by_hash(&c.hash()).is_none());
    proposal.duplicates = old.len();
    if let Err(e) = after.apply_changes(new.clone()) {
        proposal.refused.extend(
            new.iter()
                .map(|c| Refusal::new(&c.hash(), Rule::Malformed, format!("does not apply: {e}"))),
        );
        proposal.after = proposal.before.clone();
        return proposal;
    }
    for c in new {
        if after.get_change_by_hash(&c.hash()).is_some() {
            proposal.accepted.push(c);
        } else {
            proposal.refused.push(Refusal::new(
                &c.hash(),
                Rule::MissingDependency,
                "its dependencies were not sent",
            ));
        }
    }
    if !proposal.refused.is_empty() {
        // Leave out what could not apply: rebuild from what did.
        after = proposal.before.clone();
        after
            .apply_changes(proposal.accepted.clone())
            .expect("these changes applied a moment ago");
    }
    proposal.readers_may_change = true;
    proposal.after = after;
    proposal.needs = needs(ctx, &proposal.before, &proposal.after);
    proposal
}

/// Why `change` may not be written with its actor, if it may not.
fn actor_refusal(change: &Change, origin: Origin, user: &UserId, binding: Option<&ActorBinding>) -> Option<Refusal> {
    let actor = change.actor_id();
    match binding {
        Some(b) if b.user != *user => Some(Refusal::new(
            &change.hash(),
            Rule::ActorBoundToOther,
            format!("actor {actor} belongs to another user; each device writes with its own actor"),
        )),
        Some(b) if b.reserved && origin == Origin::Client => Some(Refusal::new(
            &change.hash(),
            Rule::ActorReserved,
            format!("actor {actor} is the server's own; a device writes with an actor of its own"),
        )),
        Some(b) if !b.reserved && origin == Origin::Server => Some(Refusal::new(
            &change.hash(),
            Rule::ActorReserved,
            format!("actor {actor} was first used by a device, not by the server"),
        )),
        _ => None,
    }
}

/// What a write needs read: a stored petition's entry receipts, the households
/// below a new notice's audience, the officer of a household writing on its
/// household line or filing a petition on it.
fn needs(ctx: &PolicyContext<'_>, before: &AutoCommit, after: &AutoCommit) -> Needs {
    let (Ok(was), Ok(is)) = (DocKind::of(before), DocKind::of(after)) else {
        // The document does not read; `finish` reports it.
        return Needs::default();
    };
    if was == Some(DocKind::Petition) {
        return Needs {
            entry_receipts: true,
            ..Needs::default()
        };
    }
    let household_officer = || Needs {
        household_officer: ctx.principal.household.clone(),
        ..Needs::default()
    };
    match (was, is) {
        (None, Some(DocKind::Petition)) => {
            let header = PetitionDoc::view(after).and_then(|p| p.header());
            return match header {
                Ok(h) if h.channel == Channel::HouseholdLine && h.submitter == ctx.principal.user => {
                    household_officer()
                }
                _ => Needs::default(),
            };
        }
        (_, Some(DocKind::Room)) => {
            // Only the household's own messages on its line go to its officer;
            // an officer's writes (with no household) need nothing.
            let Some(household) = &ctx.principal.household else {
                return Needs::default();
            };
            let info = RoomDoc::view(after).and_then(|r| r.info());
            return match info {
                Ok(i) if i.kind == RoomKind::HouseholdLine && i.household.as_ref() == Some(household) => {
                    household_officer()
                }
                _ => Needs::default(),
            };
        }
        (None, Some(DocKind::Notice)) => {}
        _ => return Needs::default(),
    }
    let Ok(audience) = NoticeDoc::view(after).and_then(|n| n.audience()) else {
        // The notice does not read; `finish` reports it.
        return Needs::default();
    };
    let org = ctx.org;
    let units: BTreeSet<UnitId> = org
        .units()
        .filter(|u| audience.units.iter().any(|a| org.is_within(&u.id, a)))
        .map(|u| u.id.clone())
        .chain(audience.units.iter().cloned())
        .collect();
    let rooms: BTreeSet<String> = audience
        .rooms
        .iter()
        .map(|r| r.strip_prefix(crate::repo_protocol::URL_PREFIX).unwrap_or(r).to_owned())
        .collect();
    Needs {
        households_in_units: units.into_iter().collect(),
        households_in_rooms: rooms.into_iter().collect(),
        ..Needs::default()
    }
}

impl Proposal {
    /// The facts [`Proposal::finish`] needs (empty for most writes).
    pub fn needs(&self) -> &Needs {
        &self.needs
    }

    /// Receipt times another tier recorded for entries of these changes
    /// (a station's push, the tier above's pull): an entry new here is
    /// received at its carried time, bounded by
    /// [`crate::relay::carried_receipt`], so its clocks start where they
    /// started there. Only for changes a tier relays; a phone's carry none.
    pub fn carrying(mut self, receipts: Receipts) -> Self {
        self.carried = receipts;
        self
    }

    /// Whether policy accepted any change.
    pub fn accepts_anything(&self) -> bool {
        !self.accepted.is_empty()
    }

    /// Computes the rows and notifications of the accepted changes at `now`,
    /// the write's receipt time: every entry new in it is received at `now`,
    /// and a petition's clocks run on the receipts of its entries. Entries
    /// are read through the `cache` given to [`propose`].
    pub fn finish(
        self,
        facts: &Facts,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
        cache: &mut EntryCache,
    ) -> Result<WriteOutcome, SchemaError> {
        cache::scope(cache, || self.finish_uncached(facts, rules, cal, now))
    }

    fn finish_uncached(
        self,
        facts: &Facts,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
    ) -> Result<WriteOutcome, SchemaError> {
        let mut out = WriteOutcome {
            doc_id: self.doc_id,
            kind: None,
            doc: self.after,
            accepted: self.accepted,
            refused: self.refused,
            duplicates: self.duplicates,
            new_actors: self.new_actors,
            origin: self.origin,
            readers_may_change: self.readers_may_change,
            projection: Projection::default(),
            notifications: Vec::new(),
            receipts: Vec::new(),
        };
        if out.accepted.is_empty() {
            return Ok(out);
        }
        let kind = DocKind::of(&out.doc)?.ok_or_else(|| SchemaError::InvalidValue {
            field: "type".into(),
            reason: "an empty document cannot be stored".into(),
        })?;
        out.kind = Some(kind);
        out.receipts = new_entries(kind, &self.before, &out.doc)?
            .into_iter()
            .map(|id| {
                let at = crate::relay::carried_receipt(&id, self.carried.get(&id), now);
                (id, at)
            })
            .collect();
        let mut receipts = facts.entry_receipts.clone();
        for (id, at) in &out.receipts {
            receipts.insert(id.clone(), *at);
        }
        out.projection = Projection::compute(
            &out.doc_id,
            (&self.before, &out.doc),
            self.readers_may_change,
            rules,
            cal,
            now,
            (kind == DocKind::Petition).then_some(&receipts),
        )?;
        out.notifications = notifications(kind, &self.before, &out.doc, &self.user, self.household, facts)?;
        Ok(out)
    }
}

/// The ids of the entries (timeline events and messages of a petition, a
/// room's messages) in `after` and not in `before`.
fn new_entries(kind: DocKind, before: &AutoCommit, after: &AutoCommit) -> Result<Vec<String>, SchemaError> {
    let existed = DocKind::of(before)?.is_some();
    Ok(match kind {
        DocKind::Petition => {
            // Compared as stamps; only the new ones are written out as ids.
            let old: BTreeSet<_> = if existed {
                PetitionDoc::view(before)?.stamps()?.into_iter().collect()
            } else {
                BTreeSet::new()
            };
            PetitionDoc::view(after)?
                .stamps()?
                .into_iter()
                .filter(|at| !old.contains(at))
                .map(|at| at.to_string())
                .collect()
        }
        DocKind::Room => {
            let before = existed.then(|| RoomDoc::view(before)).transpose()?;
            let delta = RoomDoc::view(after)?.message_delta(before.as_ref())?;
            delta.new.iter().map(|m| m.id.to_string()).collect()
        }
        DocKind::Notice | DocKind::Directory => Vec::new(),
    })
}

/// The notifications raised by `user`'s changes taking a document of `kind`
/// from `before` to `after`.
fn notifications(
    kind: DocKind,
    before: &AutoCommit,
    after: &AutoCommit,
    user: &UserId,
    household: Option<HouseholdId>,
    facts: &Facts,
) -> Result<Vec<Notification>, SchemaError> {
    let existed = DocKind::of(before)?.is_some();
    Ok(match kind {
        DocKind::Petition => {
            let before = existed.then(|| PetitionDoc::view(before)).transpose()?;
            let after = PetitionDoc::view(after)?;
            let out = petition_notifications(before.as_ref(), &after)?;
            if existed {
                out
            } else {
                to_household_officer(out, &after.header()?, facts.household_officer.as_ref())
            }
        }
        DocKind::Room => {
            let before = existed.then(|| RoomDoc::view(before)).transpose()?;
            // Policy binds every new entry to the user who delivered it, so the
            // writer of every new message is `user`.
            let household_of = |u: &UserId| if u == user { household.clone() } else { None };
            room_notifications(
                before.as_ref(),
                &RoomDoc::view(after)?,
                household_of,
                facts.household_officer.as_ref(),
            )?
        }
        DocKind::Notice if !existed => {
            notice_notifications(None, &NoticeDoc::view(after)?, &facts.audience_households)?
        }
        DocKind::Notice | DocKind::Directory => Vec::new(),
    })
}

/// A station's document rebuilt without the changes the tier above refused
/// ([`crate::relay::without`]): the whole history of `after` as the write's
/// changes (the host replaces what it stored), and the rows computed afresh
/// on the recorded `receipts` of its entries. No notification: nothing new
/// happened, something that happened is taken back.
pub fn rebuild(
    doc_id: &str,
    mut after: AutoCommit,
    receipts: &Receipts,
    rules: &ClockRules,
    cal: &Calendar,
    now: Timestamp,
) -> Result<WriteOutcome, SchemaError> {
    let kind = DocKind::of(&after)?;
    let accepted: Vec<Change> = after.get_changes(&[]);
    let projection = match kind {
        None => Projection::default(),
        Some(kind) => Projection::compute(
            doc_id,
            (&AutoCommit::new(), &after),
            true,
            rules,
            cal,
            now,
            (kind == DocKind::Petition).then_some(receipts),
        )?,
    };
    Ok(WriteOutcome {
        doc_id: doc_id.to_owned(),
        kind,
        doc: after,
        accepted,
        refused: Vec::new(),
        duplicates: 0,
        new_actors: Vec::new(),
        origin: Origin::Upstream,
        readers_may_change: true,
        projection,
        notifications: Vec::new(),
        receipts: Vec::new(),
    })
}
