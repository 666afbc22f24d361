//! Key performance indicators over petition summaries: pure functions, the
//! one definition every report, console and export uses.
//!
//! # Definitions
//!
//! A report covers the petitions **submitted** in a period `[from, to)` that
//! match its filters (unit subtree, category, channel), evaluated at `now`
//! (the report's own instant, normally the server's clock). Withdrawn and
//! merged petitions count as received, but in no rate: their clocks stopped.
//!
//! | figure | definition |
//! | --- | --- |
//! | received | petitions submitted in the period |
//! | response rate (响应率) | signed within the sign limit, over petitions whose sign clock is decided at the period's end: signed (on time or late), or unsigned past the deadline |
//! | contact-in-time rate | the same for the contact clock (the writer contacted) |
//! | on-time reply rate | the same for the reply clock (a reply within its working days) |
//! | completion rate (办结率) | replied or closed by the period's end, over those completed plus those whose reply was due by then and not given |
//! | satisfaction | from follow-up ratings (1-5): the count rated, the mean, and the share rated 4 or 5 |
//! | median time to sign, contact, reply | over petitions with the step done, from the clock's start (submission, or the latest reopening for replies) to the step |
//! | supervised, escalated | petitions under supervision (督办); escalated at least once (提级) |
//!
//! The period's end is `min(to, now)`: a report on the running month judges
//! only what is decided so far.
//!
//! # Which clock
//!
//! Every time above is a device stamp (the writer's hybrid logical clock)
//! unless the host gives the server's receipt times ([`ReceiptTimes`]). A
//! figure uses receipt times only when every petition it counts has them,
//! and says which it used ([`ClockBasis`]), so one figure never mixes clocks
//! and a late sync is never read as a late officer unless the figure says
//! it used receipt times. Petitions whose device and receipt times differ by
//! more than [`SKEW_FLAG_MS`] are counted in `clock_skew_flagged`.
//!
//! Deadlines on either basis come from the [`ClockRules`] and [`Calendar`]
//! given: for device stamps the summary's own clocks (computed with the
//! rules when the petition last changed), for receipt times the same limit
//! applied to the receipt of the submission.

mod csv;
mod group;

use serde::{Deserialize, Serialize};

use crate::clocks::{Calendar, ClockKind, ClockRules, ClockState};
use crate::petition::{PetitionSummary, Status};
use crate::time::Timestamp;

pub use group::{Dimension, GroupKey, KpiGroup, KpiReport, PeriodLength, ReportQuery, report};

/// Device and receipt times differing by more than this are flagged: five minutes.
pub const SKEW_FLAG_MS: i64 = 5 * 60_000;

/// Which time a figure was computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ClockBasis {
    /// The stamps writers' devices put on events.
    DeviceStamp,
    /// The times the server received the changes carrying the events.
    ServerReceipt,
}

/// The server's receipt times of a petition's steps, where the host has them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptTimes {
    pub submitted: Option<Timestamp>,
    pub signed: Option<Timestamp>,
    pub contacted: Option<Timestamp>,
    pub replied: Option<Timestamp>,
    pub closed: Option<Timestamp>,
}

/// One petition as the KPI functions read it.
#[derive(Clone, Copy, Debug)]
pub struct KpiInput<'a> {
    pub summary: &'a PetitionSummary,
    pub receipts: Option<&'a ReceiptTimes>,
}

/// A share: `numerator / denominator`, `None` when nothing was counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rate {
    pub numerator: u32,
    pub denominator: u32,
    pub value: Option<f64>,
    pub clock: ClockBasis,
}

/// A median duration in milliseconds over `count` petitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Median {
    pub median_ms: Option<i64>,
    pub count: u32,
    pub clock: ClockBasis,
}

/// Follow-up ratings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Satisfaction {
    pub rated: u32,
    pub mean_rating: Option<f64>,
    /// Rated 4 or 5, over rated.
    pub satisfied: Rate,
}

/// The figures of one group (or the total) of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpis {
    pub received: u32,
    pub response_rate: Rate,
    pub contact_in_time_rate: Rate,
    pub on_time_reply_rate: Rate,
    pub completion_rate: Rate,
    pub satisfaction: Satisfaction,
    pub median_time_to_sign: Median,
    pub median_time_to_contact: Median,
    pub median_time_to_reply: Median,
    pub supervised: u32,
    pub escalated: u32,
    /// Petitions whose device and receipt times of a step differ by more than
    /// [`SKEW_FLAG_MS`] (0 without receipt times).
    pub clock_skew_flagged: u32,
}

/// What a clock came to by a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    OnTime,
    Late,
    /// Not done and past its deadline.
    Overdue,
    /// Not done, deadline not yet passed: left out of rates.
    Open,
}

/// One clock of one petition on one basis: start, done, deadline.
#[derive(Clone, Copy, Debug)]
struct ClockTimes {
    start: Timestamp,
    done: Option<Timestamp>,
    due: Timestamp,
}

impl ClockTimes {
    /// The verdict as of `end`: a step done after `end` is not done yet.
    fn verdict(&self, end: Timestamp) -> Verdict {
        match self.done.filter(|d| *d <= end) {
            Some(d) if d <= self.due => Verdict::OnTime,
            Some(_) => Verdict::Late,
            None if end > self.due => Verdict::Overdue,
            None => Verdict::Open,
        }
    }

    fn duration(&self, end: Timestamp) -> Option<i64> {
        self.done
            .filter(|d| *d <= end)
            .map(|d| d.millis() - self.start.millis())
    }
}

/// What the KPI functions need besides the petitions.
#[derive(Clone, Copy, Debug)]
pub struct KpiContext<'a> {
    pub rules: &'a ClockRules,
    pub calendar: &'a Calendar,
    /// The end of the period judged: `min(to, now)`.
    pub end: Timestamp,
}

impl KpiInput<'_> {
    /// Whether receipt times cover this petition's submission.
    fn has_receipts(&self) -> bool {
        self.receipts.is_some_and(|r| r.submitted.is_some())
    }

    /// The clock `kind` on the given basis.
    fn clock(&self, kind: ClockKind, basis: ClockBasis, ctx: &KpiContext<'_>) -> Option<ClockTimes> {
        let s = self.summary;
        match basis {
            ClockBasis::DeviceStamp => {
                let c = s.clocks.iter().find(|c| c.kind == kind)?;
                let done = match c.state {
                    ClockState::MetOnTime { done_at } | ClockState::MetLate { done_at, .. } => Some(done_at),
                    _ => None,
                };
                Some(ClockTimes {
                    start: c.started_at,
                    done,
                    due: c.due_at,
                })
            }
            ClockBasis::ServerReceipt => {
                let r = self.receipts?;
                let start = r.submitted?;
                let done = match kind {
                    ClockKind::Sign => r.signed,
                    ClockKind::Contact => r.contacted,
                    // A reply implied by closing counts as the reply.
                    ClockKind::Reply => r.replied.or(r.closed),
                };
                if matches!(s.status, Status::Withdrawn | Status::Merged) && done.is_none() {
                    return None;
                }
                let limit = ctx.rules.limit(kind, s.channel, s.category);
                Some(ClockTimes {
                    start,
                    done,
                    due: limit.due_at(ctx.calendar, start),
                })
            }
        }
    }

    fn counts_in_rates(&self) -> bool {
        !matches!(self.summary.status, Status::Withdrawn | Status::Merged)
    }

    fn skewed(&self) -> bool {
        let (s, Some(r)) = (self.summary, self.receipts) else {
            return false;
        };
        [
            (s.submitted_at, r.submitted),
            (s.signed_at, r.signed),
            (s.contacted_at, r.contacted),
            (s.replied_at, r.replied),
            (s.closed_at, r.closed),
        ]
        .into_iter()
        .any(|(d, r)| matches!((d, r), (Some(d), Some(r)) if (d.millis() - r.millis()).abs() > SKEW_FLAG_MS))
    }
}

fn rate(numerator: u32, denominator: u32, clock: ClockBasis) -> Rate {
    Rate {
        numerator,
        denominator,
        value: (denominator > 0).then(|| f64::from(numerator) / f64::from(denominator)),
        clock,
    }
}

fn median(mut values: Vec<i64>, clock: ClockBasis) -> Median {
    values.sort_unstable();
    let n = values.len();
    let median_ms = match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2),
    };
    Median {
        median_ms,
        count: u32::try_from(n).unwrap_or(u32::MAX),
        clock,
    }
}

/// The basis every petition in `inputs` supports: receipts only if all have them.
fn basis(inputs: &[KpiInput<'_>]) -> ClockBasis {
    if !inputs.is_empty() && inputs.iter().all(KpiInput::has_receipts) {
        ClockBasis::ServerReceipt
    } else {
        ClockBasis::DeviceStamp
    }
}

/// The on-time rate and median duration of one clock over `inputs`.
fn clock_figures(inputs: &[KpiInput<'_>], kind: ClockKind, ctx: &KpiContext<'_>) -> (Rate, Median) {
    let basis = basis(inputs);
    let (mut on_time, mut decided) = (0u32, 0u32);
    let mut durations = Vec::new();
    for i in inputs.iter().filter(|i| i.counts_in_rates()) {
        let Some(c) = i.clock(kind, basis, ctx) else { continue };
        match c.verdict(ctx.end) {
            Verdict::OnTime => {
                on_time += 1;
                decided += 1;
            }
            Verdict::Late | Verdict::Overdue => decided += 1,
            Verdict::Open => {}
        }
        durations.extend(c.duration(ctx.end));
    }
    (rate(on_time, decided, basis), median(durations, basis))
}

/// Completion (办结率): replied or closed by the end, over those completed
/// plus those whose reply was due by the end and not given.
fn completion(inputs: &[KpiInput<'_>], ctx: &KpiContext<'_>) -> Rate {
    let basis = basis(inputs);
    let (mut done, mut due) = (0u32, 0u32);
    for i in inputs.iter().filter(|i| i.counts_in_rates()) {
        let Some(c) = i.clock(ClockKind::Reply, basis, ctx) else {
            continue;
        };
        let closed = match basis {
            ClockBasis::DeviceStamp => i.summary.closed_at,
            ClockBasis::ServerReceipt => i.receipts.and_then(|r| r.closed),
        };
        let completed = c.done.or(closed).is_some_and(|d| d <= ctx.end);
        if completed {
            done += 1;
            due += 1;
        } else if c.due < ctx.end {
            due += 1;
        }
    }
    rate(done, due, basis)
}

/// The figures of `inputs` (already filtered to the report's period and filters).
pub fn kpis(inputs: &[KpiInput<'_>], ctx: &KpiContext<'_>) -> Kpis {
    let (response_rate, median_time_to_sign) = clock_figures(inputs, ClockKind::Sign, ctx);
    let (contact_in_time_rate, median_time_to_contact) = clock_figures(inputs, ClockKind::Contact, ctx);
    let (on_time_reply_rate, median_time_to_reply) = clock_figures(inputs, ClockKind::Reply, ctx);
    let ratings: Vec<u8> = inputs.iter().filter_map(|i| i.summary.rating).collect();
    let rated = u32::try_from(ratings.len()).unwrap_or(u32::MAX);
    let satisfied = u32::try_from(ratings.iter().filter(|r| **r >= 4).count()).unwrap_or(u32::MAX);
    let count =
        |f: &dyn Fn(&KpiInput<'_>) -> bool| u32::try_from(inputs.iter().filter(|i| f(i)).count()).unwrap_or(u32::MAX);
    Kpis {
        received: u32::try_from(inputs.len()).unwrap_or(u32::MAX),
        response_rate,
        contact_in_time_rate,
        on_time_reply_rate,
        completion_rate: completion(inputs, ctx),
        satisfaction: Satisfaction {
            rated,
            mean_rating: (rated > 0).then(|| ratings.iter().map(|r| f64::from(*r)).sum::<f64>() / f64::from(rated)),
            // Ratings are what residents said: no clock involved.
            satisfied: rate(satisfied, rated, ClockBasis::DeviceStamp),
        },
        median_time_to_sign,
        median_time_to_contact,
        median_time_to_reply,
        supervised: count(&|i| i.summary.supervised),
        escalated: count(&|i| i.summary.escalations > 0),
        clock_skew_flagged: count(&|i| i.skewed()),
    }
}

#[cfg(test)]
mod tests;
