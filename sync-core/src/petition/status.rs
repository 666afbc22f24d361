//! Status derivation: a pure function from a petition's entries to its state.
//!
//! Replicas may hold the timeline in any list order; derivation sorts events
//! by their hybrid-logical-clock stamp and folds them one by one. Each event
//! either *applies* (changes the state) or is *superseded* (it stays in the
//! timeline and in [`PetitionState::outcomes`], with the rule that set it
//! aside). The rules are listed in the crate documentation, "Workflow rules".

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::event::{EventBody, TimelineEvent};
use super::header::PetitionHeader;
use crate::channel::Category;
use crate::clocks::ClockKind;
use crate::doc::Message;
use crate::hlc::Hlc;
use crate::ids::{EntryId, UnitId, UserId};
use crate::time::Timestamp;

/// Where a petition is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Status {
    /// 待签收: waiting for the holding unit to sign.
    Submitted,
    /// 已签收: the lead unit holds it and handles or routes it.
    Signed,
    /// 已派单: handed to another unit, waiting for it to accept.
    Dispatched,
    /// 办理中: the lead unit accepted it and is handling it.
    Handling,
    /// 已回复: the writer has the answer; follow-up and closing remain.
    Replied,
    /// 已办结.
    Closed,
    /// 已撤回 by the writer.
    Withdrawn,
    /// 已并单 into another petition.
    Merged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Signed => "signed",
            Status::Dispatched => "dispatched",
            Status::Handling => "handling",
            Status::Replied => "replied",
            Status::Closed => "closed",
            Status::Withdrawn => "withdrawn",
            Status::Merged => "merged",
        }
    }

    pub const ALL: &'static [Status] = &[
        Status::Submitted,
        Status::Signed,
        Status::Dispatched,
        Status::Handling,
        Status::Replied,
        Status::Closed,
        Status::Withdrawn,
        Status::Merged,
    ];

    /// Closed, withdrawn and merged petitions are finished; everything else is open.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Withdrawn | Status::Merged)
    }

    /// Open and not yet answered: the states in which handling goes on.
    fn is_in_handling(self) -> bool {
        matches!(
            self,
            Status::Submitted | Status::Signed | Status::Dispatched | Status::Handling
        )
    }
}

impl std::str::FromStr for Status {
    type Err = crate::error::SchemaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.iter().copied().find(|st| st.as_str() == s).ok_or_else(|| crate::error::SchemaError::InvalidValue {
            field: "status".into(),
            reason: format!("unknown status {s:?}; expected one of submitted, signed, dispatched, handling, replied, closed, withdrawn, merged"),
        })
    }
}

/// What became of one timeline event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    Applied,
    /// Set aside by `rule`; `after` names the event that made it inapplicable.
    Superseded {
        rule: String,
        after: Option<EntryId>,
    },
}

/// The entries that set a petition's step times (`PetitionState::submitted_at`…).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntries {
    pub submitted: Option<EntryId>,
    pub signed: Option<EntryId>,
    pub contacted: Option<EntryId>,
    pub replied: Option<EntryId>,
    pub closed: Option<EntryId>,
    pub reply_clock_from: Option<EntryId>,
}

/// Everything derived from a petition's entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PetitionState {
    pub status: Status,
    /// The unit holding the petition (主办).
    pub lead: Option<UnitId>,
    /// Units co-handling it (协办).
    pub assists: Vec<UnitId>,
    /// The unit that dispatched it to the lead, which a return goes back to.
    pub dispatched_by: Option<UnitId>,
    /// The last person to sign or accept it.
    pub handler: Option<UserId>,
    pub submitted_at: Option<Timestamp>,
    pub signed_at: Option<Timestamp>,
    pub contacted_at: Option<Timestamp>,
    pub replied_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// Where the reply clock starts: the submission, or the latest reopening.
    pub reply_clock_from: Option<Timestamp>,
    /// The entries the times above were read from, so a host that knows
    /// when it received each entry can run the clocks on receipts.
    pub steps: StepEntries,
    pub escalations: u32,
    pub supervised: bool,
    pub published: bool,
    /// The text of the latest applied publication (公开晒单), for the public board.
    pub publication: Option<String>,
    /// The rating of the latest follow-up.
    pub rating: Option<u8>,
    /// The category as the latest applied reclassification left it (the
    /// header's until then): what clocks and reports go by.
    pub category: Category,
    pub merged_into: Option<String>,
    /// Every unit the petition was ever routed to or located in. It only
    /// grows, whatever order events merge in; read and write access builds on it.
    pub involved_units: BTreeSet<UnitId>,
    /// The writer spoke after the last word from a handler (for a closed
    /// petition: a comment that came in concurrently with or after closing).
    pub awaiting_handler: bool,
    /// Each event's outcome, in stamp order.
    pub outcomes: Vec<(EntryId, Outcome)>,
}

impl PetitionState {
    fn empty(header: &PetitionHeader) -> Self {
        PetitionState {
            status: Status::Submitted,
            lead: None,
            assists: Vec::new(),
            dispatched_by: None,
            handler: None,
            submitted_at: None,
            signed_at: None,
            contacted_at: None,
            replied_at: None,
            closed_at: None,
            reply_clock_from: None,
            steps: StepEntries::default(),
            escalations: 0,
            supervised: false,
            published: false,
            publication: None,
            rating: None,
            category: header.category,
            merged_into: None,
            involved_units: BTreeSet::from([header.location.unit.clone()]),
            awaiting_handler: false,
            outcomes: Vec::new(),
        }
    }

    pub fn outcome(&self, id: &EntryId) -> Option<&Outcome> {
        self.outcomes.iter().find(|(e, _)| e == id).map(|(_, o)| o)
    }
}

/// The units an event routes the petition to. Counted whether or not the
/// event applies, so involvement never depends on merge order.
pub(crate) fn routed_units(event: &TimelineEvent) -> Vec<&UnitId> {
    match &event.body {
        EventBody::Submitted { unit } => vec![unit],
        EventBody::Transferred { to, assist, .. } => std::iter::once(to).chain(assist).collect(),
        EventBody::AssistsChanged { add, .. } => add.iter().collect(),
        EventBody::Escalated { to, .. } => vec![to],
        _ => Vec::new(),
    }
}

/// Derives the state of a petition. Deterministic: the result depends only
/// on the set of events and messages, not on their order in the lists.
pub fn derive(header: &PetitionHeader, events: &[TimelineEvent], messages: &[Message]) -> PetitionState {
    let mut state = PetitionState::empty(header);
    // Stamps are unique per writer, and policy refuses a repeated stamp; the
    // content tie-break keeps even a forged duplicate from depending on list order.
    // The content is written out only for events whose stamps tie.
    let mut sorted: Vec<&TimelineEvent> = events.iter().collect();
    sorted.sort_by(|a, b| {
        a.at.cmp(&b.at).then_with(|| {
            let content = |e: &TimelineEvent| serde_json::to_string(e).unwrap_or_default();
            content(a).cmp(&content(b))
        })
    });

    for e in &sorted {
        state.involved_units.extend(routed_units(e).into_iter().cloned());
    }

    let mut submitted: Option<EntryId> = None;
    // The last event that changed status or lead: what a superseded event lost to.
    let mut last_transition: Option<EntryId> = None;
    let mut last_handler_word: Option<&Hlc> = None;

    for e in sorted {
        let id = e.id();
        let verdict = apply(&mut state, header, e, &id, submitted.is_some());
        match verdict {
            Ok(transition) => {
                if matches!(e.body, EventBody::Submitted { .. }) {
                    submitted = Some(id.clone());
                }
                if transition {
                    last_transition = Some(id.clone());
                }
                if e.by != header.submitter && e.kind().is_handler_action() {
                    last_handler_word = Some(&e.at);
                }
                state.outcomes.push((id, Outcome::Applied));
            }
            Err(rule) => {
                let after = if rule == rules::BEFORE_SUBMISSION {
                    None
                } else {
                    last_transition.clone()
                };
                state.outcomes.push((
                    id,
                    Outcome::Superseded {
                        rule: rule.to_owned(),
                        after,
                    },
                ));
            }
        }
    }

    for m in messages {
        if m.by != header.submitter && last_handler_word.is_none_or(|w| m.at > *w) {
            last_handler_word = Some(&m.at);
        }
    }
    state.awaiting_handler = messages
        .iter()
        .filter(|m| m.by == header.submitter)
        .any(|m| last_handler_word.is_none_or(|w| m.at > *w));
    state
}

/// The names of the workflow rules that supersede events.
pub mod rules {
    pub const BEFORE_SUBMISSION: &str = "before-submission";
    pub const DUPLICATE_SUBMISSION: &str = "duplicate-submission";
    pub const ALREADY_SIGNED: &str = "already-signed";
    pub const NOT_LEAD: &str = "not-lead";
    pub const NOT_LEAD_OR_ASSIST: &str = "not-lead-or-assist";
    pub const NOT_DISPATCHED: &str = "not-dispatched";
    pub const NOT_IN_HANDLING: &str = "not-in-handling";
    pub const NOT_ANSWERED: &str = "not-answered";
    pub const NOT_REPLIED: &str = "not-replied";
    pub const FINISHED: &str = "finished";
    pub const SAME_UNIT: &str = "same-unit";
    pub const NOT_SUBMITTER: &str = "not-submitter";
    /// An automatic escalation for a clock whose step (signing, contacting)
    /// is stamped before it: whoever swept had not yet seen that step.
    pub const CLOCK_MET: &str = "clock-met";
    /// A reclassification to the category it already has, or an assists
    /// change that adds no new assisting unit and removes none it has.
    pub const NO_CHANGE: &str = "no-change";

    /// Every rule above, for clients that give each its words.
    pub const ALL: &[&str] = &[
        BEFORE_SUBMISSION,
        DUPLICATE_SUBMISSION,
        ALREADY_SIGNED,
        NOT_LEAD,
        NOT_LEAD_OR_ASSIST,
        NOT_DISPATCHED,
        NOT_IN_HANDLING,
        NOT_ANSWERED,
        NOT_REPLIED,
        FINISHED,
        SAME_UNIT,
        NOT_SUBMITTER,
        NO_CHANGE,
        CLOCK_MET,
    ];
}

/// Applies one event. `Ok(true)` when status or lead changed, `Ok(false)`
/// for an applied event that changes neither, `Err(rule)` when superseded.
fn apply(
    s: &mut PetitionState,
    header: &PetitionHeader,
    e: &TimelineEvent,
    id: &EntryId,
    submitted: bool,
) -> Result<bool, &'static str> {
    use rules::*;
    let at = e.at.timestamp();
    // The first time a step is done, and by which entry.
    let first = |time: &mut Option<Timestamp>, entry: &mut Option<EntryId>| {
        if time.is_none() {
            *time = Some(at);
            *entry = Some(id.clone());
        }
    };
    if let EventBody::Submitted { unit } = &e.body {
        if submitted {
            return Err(DUPLICATE_SUBMISSION);
        }
        s.status = Status::Submitted;
        s.lead = Some(unit.clone());
        s.submitted_at = Some(at);
        s.reply_clock_from = Some(at);
        s.steps.submitted = Some(id.clone());
        s.steps.reply_clock_from = Some(id.clone());
        return Ok(true);
    }
    if !submitted {
        return Err(BEFORE_SUBMISSION);
    }
    let acting_for_lead = e.unit.is_some() && e.unit == s.lead;
    let require_lead = || {
        if acting_for_lead { Ok(()) } else { Err(NOT_LEAD) }
    };
    let require_open = |s: &PetitionState| {
        if s.status.is_open() { Ok(()) } else { Err(FINISHED) }
    };

    match &e.body {
        EventBody::Submitted { .. } => unreachable!("handled above"),
        EventBody::Signed => {
            require_open(s)?;
            if s.status != Status::Submitted {
                return Err(ALREADY_SIGNED);
            }
            require_lead()?;
            s.status = Status::Signed;
            s.signed_at = Some(at);
            s.steps.signed = Some(id.clone());
            s.handler = Some(e.by.clone());
            Ok(true)
        }
        EventBody::Transferred { to, assist, .. } => {
            require_open(s)?;
            if !matches!(s.status, Status::Submitted | Status::Signed | Status::Handling) {
                return Err(NOT_IN_HANDLING);
            }
            require_lead()?;
            if Some(to) == s.lead.as_ref() {
                return Err(SAME_UNIT);
            }
            // Routing an unsigned petition signs it: 签收 and 流转 are one step on the duty desk.
            first(&mut s.signed_at, &mut s.steps.signed);
            s.dispatched_by = s.lead.take();
            s.lead = Some(to.clone());
            s.assists = assist.clone();
            s.status = Status::Dispatched;
            s.handler = None;
            Ok(true)
        }
        EventBody::Accepted => {
            require_open(s)?;
            if s.status != Status::Dispatched {
                return Err(NOT_DISPATCHED);
            }
            require_lead()?;
            s.status = Status::Handling;
            s.handler = Some(e.by.clone());
            Ok(true)
        }
        EventBody::Returned { .. } => {
            require_open(s)?;
            if s.status != Status::Dispatched {
                return Err(NOT_DISPATCHED);
            }
            require_lead()?;
            s.lead = s.dispatched_by.take();
            s.assists.clear();
            s.status = Status::Signed;
            s.handler = None;
            Ok(true)
        }
        EventBody::Contacted { .. } | EventBody::Progress { .. } => {
            require_open(s)?;
            let for_assist = e.unit.as_ref().is_some_and(|u| s.assists.contains(u));
            if !acting_for_lead && !for_assist {
                return Err(NOT_LEAD_OR_ASSIST);
            }
            if matches!(e.body, EventBody::Contacted { .. }) {
                first(&mut s.contacted_at, &mut s.steps.contacted);
            }
            Ok(false)
        }
        EventBody::Replied { .. } => {
            require_open(s)?;
            if !s.status.is_in_handling() {
                return Err(NOT_IN_HANDLING);
            }
            require_lead()?;
            // Replying to an unsigned or unaccepted petition implies taking it in.
            first(&mut s.signed_at, &mut s.steps.signed);
            s.status = Status::Replied;
            s.replied_at = Some(at);
            s.steps.replied = Some(id.clone());
            s.handler.get_or_insert_with(|| e.by.clone());
            Ok(true)
        }
        EventBody::Escalated { to, clock, .. } => {
            require_open(s)?;
            if !s.status.is_in_handling() {
                return Err(NOT_IN_HANDLING);
            }
            // An automatic escalation judged its clock still running; if the
            // step that stops it sorts before the escalation (signed or
            // contacted offline, synced after the sweep ran), the sweep saw
            // a stale timeline and would not have escalated.
            let met = match clock {
                Some(ClockKind::Sign) => s.signed_at.is_some(),
                Some(ClockKind::Contact) => s.contacted_at.is_some(),
                // A reply ends handling: `not-in-handling` above.
                Some(ClockKind::Reply) | None => false,
            };
            if met {
                return Err(CLOCK_MET);
            }
            if Some(to) == s.lead.as_ref() {
                return Err(SAME_UNIT);
            }
            // A leader or the server's clock escalates from outside the lead unit;
            // policy has already checked they may act for the unit they named.
            s.dispatched_by = None;
            s.lead = Some(to.clone());
            s.assists.clear();
            s.status = if s.status == Status::Submitted {
                Status::Submitted
            } else {
                Status::Signed
            };
            s.handler = None;
            s.escalations += 1;
            Ok(true)
        }
        EventBody::Supervised { .. } => {
            require_open(s)?;
            s.supervised = true;
            Ok(false)
        }
        EventBody::FollowUp { rating, .. } => {
            if !matches!(s.status, Status::Replied | Status::Closed) {
                return Err(NOT_ANSWERED);
            }
            s.rating = Some(*rating);
            Ok(false)
        }
        EventBody::Published { summary } => {
            if !matches!(s.status, Status::Replied | Status::Closed) {
                return Err(NOT_ANSWERED);
            }
            s.published = true;
            s.publication = Some(summary.clone());
            Ok(false)
        }
        EventBody::Closed { .. } => {
            require_open(s)?;
            if s.status != Status::Replied {
                return Err(NOT_REPLIED);
            }
            require_lead()?;
            s.status = Status::Closed;
            s.closed_at = Some(at);
            s.steps.closed = Some(id.clone());
            Ok(true)
        }
        EventBody::Reopened { .. } => {
            if !matches!(s.status, Status::Replied | Status::Closed) {
                return Err(NOT_ANSWERED);
            }
            s.status = Status::Handling;
            s.closed_at = None;
            s.steps.closed = None;
            s.reply_clock_from = Some(at);
            s.steps.reply_clock_from = Some(id.clone());
            Ok(true)
        }
        EventBody::Merged { into } => {
            require_open(s)?;
            if !s.status.is_in_handling() {
                return Err(NOT_IN_HANDLING);
            }
            require_lead()?;
            s.status = Status::Merged;
            s.merged_into = Some(into.clone());
            Ok(true)
        }
        EventBody::Withdrawn { .. } => {
            require_open(s)?;
            if e.by != header.submitter {
                return Err(NOT_SUBMITTER);
            }
            s.status = Status::Withdrawn;
            Ok(true)
        }
        EventBody::Reclassified { category, .. } => {
            require_open(s)?;
            require_lead()?;
            if *category == s.category {
                return Err(NO_CHANGE);
            }
            s.category = *category;
            Ok(false)
        }
        EventBody::AssistsChanged { add, remove } => {
            require_open(s)?;
            require_lead()?;
            if add.iter().any(|u| Some(u) == s.lead.as_ref()) {
                return Err(SAME_UNIT);
            }
            let adds = add.iter().any(|u| !s.assists.contains(u));
            let removes = remove.iter().any(|u| s.assists.contains(u));
            if !adds && !removes {
                return Err(NO_CHANGE);
            }
            s.assists.retain(|u| !remove.contains(u));
            for u in add {
                if !s.assists.contains(u) {
                    s.assists.push(u.clone());
                }
            }
            Ok(false)
        }
    }
}
