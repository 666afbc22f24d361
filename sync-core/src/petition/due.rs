//! The petition's clocks: sign, contact and reply, evaluated at a given `now`.

use serde::{Deserialize, Serialize};

use super::header::PetitionHeader;
use super::status::{PetitionState, Status};
use crate::clocks::{Calendar, ClockBasis, ClockKind, ClockRules, ClockSkew, ClockState, Receipts, SkewedStep};
use crate::ids::{EntryId, UnitId};
use crate::time::Timestamp;

/// One running or finished clock of a petition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionClock {
    pub kind: ClockKind,
    pub started_at: Timestamp,
    pub due_at: Timestamp,
    pub state: ClockState,
    /// The unit the clock is running against (the lead), for open clocks.
    pub holder: Option<UnitId>,
    /// Which times `started_at` and the done time are (see `clocks`).
    #[serde(default)]
    pub basis: ClockBasis,
    /// The clock's start or step whose device stamp and receipt lie far
    /// apart (the step first): a back-dated step shows here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew: Option<ClockSkew>,
    /// The limit that set `due_at` (`{working_days: 5}`, `{wall_minutes: 10}`),
    /// so a client can say the deadline in words without knowing the rules.
    /// Absent in summaries stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<crate::clocks::Limit>,
}

/// One time of a clock on its basis, and the flag if its entry's device
/// stamp and receipt lie far apart.
fn on_basis(
    device: Timestamp,
    entry: Option<&EntryId>,
    receipts: Option<&Receipts>,
    step: SkewedStep,
) -> (Option<Timestamp>, Option<ClockSkew>) {
    let received = receipts.zip(entry).and_then(|(r, e)| r.get(e.as_str()));
    match received {
        Some(r) => (Some(r), ClockSkew::between(step, device, r)),
        None => (None, None),
    }
}

impl PetitionState {
    /// The petition's clocks at `now`, on device stamps. Clocks start at the
    /// submission (the reply clock at the latest reopening). A withdrawn or
    /// merged petition's unmet clocks stop and are left out.
    pub fn clocks(
        &self,
        header: &PetitionHeader,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
    ) -> Vec<PetitionClock> {
        self.clocks_with(header, rules, cal, now, None)
    }

    /// The clocks with the server's receipt times where `receipts` has the
    /// entry that starts a clock: it starts at that receipt, and its step
    /// counts as done at the earlier of the step's device stamp and receipt.
    /// A stamp running ahead of the server (or dragged ahead by another
    /// writer's) cannot make a step late; an offline phone's past stamps
    /// stand, so a late sync is not a late step; device-versus-receipt gaps
    /// over `SKEW_FLAG_MS` are flagged on the clock.
    pub fn clocks_with(
        &self,
        header: &PetitionHeader,
        rules: &ClockRules,
        cal: &Calendar,
        now: Timestamp,
        receipts: Option<&Receipts>,
    ) -> Vec<PetitionClock> {
        let Some(submitted) = self.submitted_at else {
            return Vec::new();
        };
        let steps = &self.steps;
        let reply_from = self.reply_clock_from.unwrap_or(submitted);
        let reply_from_entry = steps.reply_clock_from.as_ref().or(steps.submitted.as_ref());
        let replied = self.replied_at.filter(|r| *r >= reply_from);
        let stopped = matches!(self.status, Status::Withdrawn | Status::Merged);
        [
            (
                ClockKind::Sign,
                (submitted, steps.submitted.as_ref()),
                (self.signed_at, steps.signed.as_ref()),
            ),
            (
                ClockKind::Contact,
                (submitted, steps.submitted.as_ref()),
                (self.contacted_at, steps.contacted.as_ref()),
            ),
            (
                ClockKind::Reply,
                (reply_from, reply_from_entry),
                (replied, steps.replied.as_ref()),
            ),
        ]
        .into_iter()
        .filter(|(_, _, (done, _))| !stopped || done.is_some())
        .map(|(kind, (start_device, start_entry), (done_device, done_entry))| {
            let (start_received, start_skew) = on_basis(start_device, start_entry, receipts, SkewedStep::Start);
            let (basis, start) = match start_received {
                Some(r) => (ClockBasis::ServerReceipt, r),
                None => (ClockBasis::DeviceStamp, start_device),
            };
            let (done, done_skew) = match done_device {
                Some(d) => {
                    let (received, skew) = on_basis(d, done_entry, receipts, SkewedStep::Done);
                    let done = match (basis, received) {
                        (ClockBasis::ServerReceipt, Some(r)) => d.min(r),
                        _ => d,
                    };
                    (Some(done), skew)
                }
                None => (None, None),
            };
            // The category as reclassified: a request found to be no police
            // matter runs on the limits of its real category.
            let limit = rules.limit(kind, header.channel, self.category);
            let state = limit.state(cal, start, done, now);
            PetitionClock {
                kind,
                started_at: start,
                due_at: limit.due_at(cal, start),
                holder: if state.is_met() { None } else { self.lead.clone() },
                state,
                basis,
                skew: done_skew.or(start_skew),
                limit: Some(limit),
            }
        })
        .collect()
    }
}

/// The most urgent unmet clock: overdue first, then the earliest deadline.
pub fn most_urgent(clocks: &[PetitionClock]) -> Option<&PetitionClock> {
    clocks.iter().filter(|c| !c.state.is_met()).min_by_key(|c| c.due_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Category, Channel};
    use crate::clocks::Date;
    use crate::hlc::Hlc;
    use crate::ids::UserId;
    use crate::petition::event::{EventBody, TimelineEvent};
    use crate::petition::header::Location;
    use crate::petition::status::derive;

    fn at(cal: &Calendar, y: i32, m: u32, d: u32, hh: i64, mm: i64) -> Timestamp {
        cal.start_of_day(Date::from_ymd(y, m, d).unwrap())
            .plus_minutes(hh * 60 + mm)
    }

    fn header() -> PetitionHeader {
        PetitionHeader {
            id: "p".into(),
            channel: Channel::DirectorMailbox,
            category: Category::Help,
            title: "t".into(),
            body: "b".into(),
            submitter: UserId::new("r").unwrap(),
            recorded_by: UserId::new("r").unwrap(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("v").unwrap(),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        }
    }

    fn event(t: Timestamp, node: &str, unit: Option<&str>, body: EventBody) -> TimelineEvent {
        TimelineEvent {
            by: UserId::new(node).unwrap(),
            at: Hlc {
                wall_ms: t.millis(),
                counter: 0,
                node: node.into(),
            },
            unit: unit.map(|u| UnitId::new(u).unwrap()),
            body,
        }
    }

    #[test]
    fn clocks_run_from_submission_across_the_national_day_holiday() {
        let cal = Calendar::china();
        let rules = ClockRules::default();
        let h = header();
        let submitted = at(&cal, 2025, 9, 30, 16, 0);
        let mut events = vec![event(
            submitted,
            "r",
            None,
            EventBody::Submitted {
                unit: UnitId::new("s").unwrap(),
            },
        )];
        events.push(event(submitted.plus_minutes(6), "o", Some("s"), EventBody::Signed));
        let s = derive(&h, &events, &[]);
        let now = submitted.plus_minutes(25);
        let clocks = s.clocks(&h, &rules, &cal, now);
        assert_eq!(
            clocks[0].state,
            ClockState::MetOnTime {
                done_at: submitted.plus_minutes(6)
            }
        );
        assert_eq!(clocks[1].kind, ClockKind::Contact);
        assert!(
            matches!(clocks[1].state, ClockState::DueSoon { .. }),
            "{:?}",
            clocks[1].state
        );
        // Five working days from 30 Sep 2025 end on 14 Oct (1-8 Oct holiday, 11 Oct a make-up day).
        assert_eq!(clocks[2].due_at, cal.end_of_day(Date::from_ymd(2025, 10, 14).unwrap()));
        assert_eq!(most_urgent(&clocks).unwrap().kind, ClockKind::Contact);
        let later = s.clocks(&h, &rules, &cal, at(&cal, 2025, 10, 15, 9, 0));
        assert!(matches!(later[2].state, ClockState::Overdue { .. }));
        assert_eq!(later[2].holder, Some(UnitId::new("s").unwrap()));
    }

    #[test]
    fn a_reopened_petition_owes_a_new_reply_and_withdrawn_clocks_stop() {
        let cal = Calendar::china();
        let rules = ClockRules::default();
        let h = header();
        let t0 = at(&cal, 2025, 3, 3, 9, 0);
        let mut events = vec![
            event(
                t0,
                "r",
                None,
                EventBody::Submitted {
                    unit: UnitId::new("s").unwrap(),
                },
            ),
            event(
                t0.plus_minutes(1),
                "o",
                Some("s"),
                EventBody::Replied { text: "x".into() },
            ),
            event(
                t0.plus_minutes(60),
                "r",
                None,
                EventBody::Reopened { reason: "no".into() },
            ),
        ];
        let s = derive(&h, &events, &[]);
        let c = s.clocks(&h, &rules, &cal, t0.plus_minutes(61));
        assert_eq!(c[2].started_at, t0.plus_minutes(60));
        assert!(matches!(c[2].state, ClockState::Pending { .. }));
        events.push(event(
            t0.plus_minutes(70),
            "r",
            None,
            EventBody::Withdrawn { reason: None },
        ));
        let s = derive(&h, &events, &[]);
        let kinds: Vec<ClockKind> = s
            .clocks(&h, &rules, &cal, t0.plus_minutes(71))
            .iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![ClockKind::Sign],
            "only met clocks remain on a withdrawn petition"
        );
    }
}
