//! Petition clocks: the working-day calendar, the time limits and their state.
//!
//! A clock runs from a start instant (normally the petition's submission) to
//! a deadline given by a [`Limit`]: wall minutes for the 7x24 duty steps (sign
//! within 10 minutes, contact the submitter within 30) or working days on a
//! [`Calendar`] (reply within 5 working days). [`ClockRules`] chooses the
//! limit for a petition's channel and category. [`ClockState::evaluate`] says
//! where a clock stands at a given `now`; nothing here reads a clock.
//!
//! Which times a clock runs on ([`ClockBasis`]): where the host knows when
//! it received each entry ([`Receipts`]), a clock starts at the server's
//! receipt of the entry that starts it, and a step counts as done at the
//! earlier of its device stamp and its receipt. A device clock running ahead
//! (or a stamp dragged ahead by another writer's) cannot make a step late,
//! and a phone that was offline keeps the times it stamped, so a late sync is
//! never read as a late officer. Device and receipt times further apart than
//! [`SKEW_FLAG_MS`] are flagged on the clock ([`ClockSkew`]): a back-dated
//! step is visible as such. Without receipts (a phone's own replica, entries
//! stored before receipts were recorded) clocks run on device stamps and say so.
//!
//! Boundaries, everywhere in this module: a deadline `due_at` is the last
//! millisecond that is still on time, and a clock is due soon from
//! `due_soon_at` inclusive.

mod calendar;
mod date;
mod receipts;
mod rules;

pub use calendar::Calendar;
pub use date::{Date, Weekday};
pub use receipts::{ClockBasis, ClockSkew, Receipts, SKEW_FLAG_MS, SkewedStep};
pub use rules::{ClockRules, Limit, LimitUnit};

use serde::{Deserialize, Serialize};

use crate::channel::text_enum;
use crate::time::Timestamp;

text_enum!(
    /// One of the time limits every petition runs against.
    ClockKind {
        /// 签收: a handler signs for the petition.
        Sign = "sign",
        /// 联系来信人: a handler contacts the submitter.
        Contact = "contact",
        /// 回复: the submitter receives a reply.
        Reply = "reply",
    }
);

impl ClockKind {
    fn index(self) -> usize {
        self as usize
    }
}

/// Where a clock stands at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ClockState {
    /// Running, not yet due soon.
    Pending { due_at: Timestamp },
    /// Running, and the deadline is near (a due-soon notification is due).
    DueSoon { due_at: Timestamp },
    /// Running past its deadline.
    Overdue { due_at: Timestamp, overdue_by_ms: i64 },
    /// Stopped by the step being done at or before the deadline.
    MetOnTime { done_at: Timestamp },
    /// Stopped by the step being done after the deadline.
    MetLate { done_at: Timestamp, late_by_ms: i64 },
}

impl ClockState {
    /// The state of a clock with deadline `due_at` (inclusive) and due-soon
    /// threshold `due_soon_at` (inclusive), done at `done_at` if it has been,
    /// as seen at `now`.
    ///
    /// A done step stops the clock whatever `now` is, so a completion recorded
    /// with a device clock that runs ahead never raises a false overdue. To
    /// ask how a clock stood at some past instant, pass `done_at` only if the
    /// step had been done by then.
    pub fn evaluate(
        due_at: Timestamp,
        due_soon_at: Timestamp,
        done_at: Option<Timestamp>,
        now: Timestamp,
    ) -> ClockState {
        match done_at {
            Some(done_at) if done_at <= due_at => ClockState::MetOnTime { done_at },
            Some(done_at) => ClockState::MetLate {
                done_at,
                late_by_ms: done_at.millis().saturating_sub(due_at.millis()),
            },
            None if now > due_at => ClockState::Overdue {
                due_at,
                overdue_by_ms: now.millis().saturating_sub(due_at.millis()),
            },
            None if now >= due_soon_at => ClockState::DueSoon { due_at },
            None => ClockState::Pending { due_at },
        }
    }

    /// Whether the step has been done (on time or late).
    pub fn is_met(&self) -> bool {
        matches!(self, ClockState::MetOnTime { .. } | ClockState::MetLate { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUE: Timestamp = Timestamp::from_millis(1_000_000);
    const SOON: Timestamp = Timestamp::from_millis(820_000);

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn running_clock_changes_state_at_exact_boundaries() {
        let state = |now: i64| ClockState::evaluate(DUE, SOON, None, at(now));
        assert_eq!(state(0), ClockState::Pending { due_at: DUE });
        assert_eq!(state(819_999), ClockState::Pending { due_at: DUE });
        assert_eq!(state(820_000), ClockState::DueSoon { due_at: DUE });
        assert_eq!(state(1_000_000), ClockState::DueSoon { due_at: DUE });
        assert_eq!(
            state(1_000_001),
            ClockState::Overdue {
                due_at: DUE,
                overdue_by_ms: 1
            }
        );
        assert_eq!(
            state(4_600_000),
            ClockState::Overdue {
                due_at: DUE,
                overdue_by_ms: 3_600_000
            }
        );
    }

    #[test]
    fn done_clock_is_met_on_time_up_to_the_deadline_inclusive() {
        let state = |done: i64, now: i64| ClockState::evaluate(DUE, SOON, Some(at(done)), at(now));
        assert_eq!(state(1_000_000, 5_000_000), ClockState::MetOnTime { done_at: DUE });
        assert_eq!(
            state(1_000_001, 5_000_000),
            ClockState::MetLate {
                done_at: at(1_000_001),
                late_by_ms: 1
            }
        );
        // Done during the due-soon window, seen while still before the deadline.
        assert_eq!(state(900_000, 950_000), ClockState::MetOnTime { done_at: at(900_000) });
        // A device clock ahead of the server's: the completion still counts.
        assert!(state(990_000, 10).is_met());
        assert!(!ClockState::evaluate(DUE, SOON, None, at(10)).is_met());
    }

    #[test]
    fn clock_kinds_have_stable_text_forms() {
        assert_eq!(ClockKind::ALL.len(), 3);
        for kind in ClockKind::ALL {
            assert_eq!(kind.as_str().parse::<ClockKind>().unwrap(), *kind);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(serde_json::from_str::<ClockKind>(&json).unwrap(), *kind);
        }
        assert_eq!(ClockKind::Reply.to_string(), "reply");
        assert!("answer".parse::<ClockKind>().is_err());
    }
}
