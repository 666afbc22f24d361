//! A petition's summary: the flat row a store indexes and a console lists.

use serde::{Deserialize, Serialize};

use super::due::{PetitionClock, most_urgent};
use super::header::PetitionHeader;
use super::status::{PetitionState, Status};
use crate::channel::{Category, Channel};
use crate::clocks::{Calendar, ClockKind, ClockRules, ClockState, Receipts};
use crate::ids::{UnitId, UserId};
use crate::time::Timestamp;

/// Everything a list view or a KPI query needs about one petition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionSummary {
    pub id: String,
    pub title: String,
    pub channel: Channel,
    pub category: Category,
    pub status: Status,
    pub lead: Option<UnitId>,
    pub assists: Vec<UnitId>,
    pub submitter: UserId,
    pub anonymous: bool,
    pub location: UnitId,
    pub submitted_at: Option<Timestamp>,
    pub signed_at: Option<Timestamp>,
    pub contacted_at: Option<Timestamp>,
    pub replied_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub sign_due: Option<Timestamp>,
    pub contact_due: Option<Timestamp>,
    pub reply_due: Option<Timestamp>,
    /// The earliest deadline of an unmet clock.
    pub next_due: Option<Timestamp>,
    /// Some unmet clock is past its deadline at the time of summarising.
    pub overdue: bool,
    pub rating: Option<u8>,
    pub supervised: bool,
    /// The result is published on the public board (公开晒单).
    #[serde(default)]
    pub published: bool,
    /// What was published, if anything: the officer's account of the result.
    #[serde(default)]
    pub publication: Option<String>,
    pub escalations: u32,
    pub awaiting_handler: bool,
    pub clocks: Vec<PetitionClock>,
}

impl PetitionSummary {
    /// The summary on device stamps.
    pub fn new(
        header: &PetitionHeader,
        state: &PetitionState,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
    ) -> Self {
        Self::with_receipts(header, state, rules, cal, now, None)
    }

    /// The summary with clocks on the server's receipt times where
    /// `receipts` has them (`PetitionState::clocks_with`).
    pub fn with_receipts(
        header: &PetitionHeader,
        state: &PetitionState,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
        receipts: Option<&Receipts>,
    ) -> Self {
        let clocks = state.clocks_with(header, rules, cal, now, receipts);
        let due = |k: ClockKind| clocks.iter().find(|c| c.kind == k).map(|c| c.due_at);
        PetitionSummary {
            id: header.id.clone(),
            title: header.title.clone(),
            channel: header.channel,
            category: state.category,
            status: state.status,
            lead: state.lead.clone(),
            assists: state.assists.clone(),
            submitter: header.submitter.clone(),
            anonymous: header.anonymous,
            location: header.location.unit.clone(),
            submitted_at: state.submitted_at,
            signed_at: state.signed_at,
            contacted_at: state.contacted_at,
            replied_at: state.replied_at,
            closed_at: state.closed_at,
            sign_due: due(ClockKind::Sign),
            contact_due: due(ClockKind::Contact),
            reply_due: due(ClockKind::Reply),
            next_due: most_urgent(&clocks).map(|c| c.due_at),
            overdue: clocks.iter().any(|c| matches!(c.state, ClockState::Overdue { .. })),
            rating: state.rating,
            supervised: state.supervised,
            published: state.published,
            publication: state.publication.clone(),
            escalations: state.escalations,
            awaiting_handler: state.awaiting_handler,
            clocks,
        }
    }

    /// The same summary with its running clocks re-evaluated at `now`: what a
    /// scheduler needs from a stored summary without loading the document.
    /// Met clocks and everything derived from the timeline stay as they are;
    /// a running clock becomes due soon or overdue as `now` passes its
    /// thresholds, with the limits `rules` give for the petition's channel
    /// and category.
    pub fn at(&self, rules: &ClockRules, cal: &Calendar, now: Timestamp) -> PetitionSummary {
        let mut out = self.clone();
        for clock in &mut out.clocks {
            if clock.state.is_met() {
                continue;
            }
            let limit = rules.limit(clock.kind, self.channel, self.category);
            clock.state = limit.state(cal, clock.started_at, None, now);
            clock.limit = Some(limit);
        }
        out.overdue = out.clocks.iter().any(|c| matches!(c.state, ClockState::Overdue { .. }));
        out
    }
}
