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
//! Every clock in a petition's summary says which times it ran on
//! ([`ClockBasis`], see `clocks`): the server's receipt times where the
//! host recorded them (a clock starts at the receipt of its starting entry
//! and its step counts at the earlier of device stamp and receipt, so a late
//! sync is never read as a late officer and a stamp running ahead never makes
//! a step late), device stamps otherwise. Each figure says which basis its
//! clocks had: `server_receipt` or `device_stamp` when all had the one,
//! `mixed` when some petitions predate receipt times. Petitions with an
//! entry whose device stamp and receipt differ by more than
//! [`SKEW_FLAG_MS`] are counted in `clock_skew_flagged`.
//!
//! Deadlines are the summary's own: computed with the clock rules and
//! calendar in force when the petition last changed.
//!
//! # Input
//!
//! The functions read [`KpiRow`]s, the flat part of a summary a report
//! needs (`KpiRow::of`), so a host can keep them as columns of its petitions
//! table and read 100,000 of them without decoding summaries.

mod csv;
mod group;

use serde::{Deserialize, Serialize};

use crate::channel::{Category, Channel};
use crate::clocks::{ClockKind, ClockState};
use crate::ids::UnitId;
use crate::petition::{PetitionSummary, Status};
use crate::time::Timestamp;

pub use crate::clocks::{ClockBasis, SKEW_FLAG_MS};
pub use group::{Dimension, GroupKey, KpiGroup, KpiReport, PeriodLength, ReportQuery, StationSync, report};

/// One clock of one petition as the KPI functions read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KpiClock {
    pub start: Timestamp,
    /// When the step was done, on the clock's basis.
    pub done: Option<Timestamp>,
    /// The deadline (inclusive).
    pub due: Timestamp,
    pub basis: ClockBasis,
}

/// One petition as the KPI functions read it: the flat part of its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KpiRow {
    /// The unit it counts for: its lead (its location while it has none).
    pub holder: UnitId,
    pub category: Category,
    pub channel: Channel,
    pub submitted_at: Option<Timestamp>,
    /// Withdrawn and merged petitions count as received but in no rate.
    pub in_rates: bool,
    pub sign: Option<KpiClock>,
    pub contact: Option<KpiClock>,
    pub reply: Option<KpiClock>,
    pub closed_at: Option<Timestamp>,
    pub rating: Option<u8>,
    pub supervised: bool,
    pub escalated: bool,
    /// Some clock's entry has device and receipt times far apart.
    pub skew_flagged: bool,
}

impl KpiRow {
    /// The row of a petition's summary.
    pub fn of(s: &PetitionSummary) -> KpiRow {
        let clock = |kind: ClockKind| {
            s.clocks.iter().find(|c| c.kind == kind).map(|c| KpiClock {
                start: c.started_at,
                done: match c.state {
                    ClockState::MetOnTime { done_at } | ClockState::MetLate { done_at, .. } => Some(done_at),
                    _ => None,
                },
                due: c.due_at,
                basis: c.basis,
            })
        };
        KpiRow {
            holder: s.lead.clone().unwrap_or_else(|| s.location.clone()),
            category: s.category,
            channel: s.channel,
            submitted_at: s.submitted_at,
            in_rates: !matches!(s.status, Status::Withdrawn | Status::Merged),
            sign: clock(ClockKind::Sign),
            contact: clock(ClockKind::Contact),
            reply: clock(ClockKind::Reply),
            closed_at: s.closed_at,
            rating: s.rating,
            supervised: s.supervised,
            escalated: s.escalations > 0,
            skew_flagged: s.clocks.iter().any(|c| c.skew.is_some()),
        }
    }

    fn clock(&self, kind: ClockKind) -> Option<&KpiClock> {
        match kind {
            ClockKind::Sign => self.sign.as_ref(),
            ClockKind::Contact => self.contact.as_ref(),
            ClockKind::Reply => self.reply.as_ref(),
        }
    }
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
    /// Petitions with an entry whose device stamp and receipt differ by more
    /// than [`SKEW_FLAG_MS`] (0 without receipt times).
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

impl KpiClock {
    /// The verdict as of `end`: a step done after `end` is not done yet.
    fn verdict(&self, end: Timestamp) -> Verdict {
        match self.done.filter(|d| *d <= end) {
            Some(d) if d <= self.due => Verdict::OnTime,
            Some(_) => Verdict::Late,
            None if end > self.due => Verdict::Overdue,
            None => Verdict::Open,
        }
    }

    /// From the clock's start to the step (never negative: an offline
    /// phone's step may be stamped before the submission reached the server).
    fn duration(&self, end: Timestamp) -> Option<i64> {
        self.done
            .filter(|d| *d <= end)
            .map(|d| (d.millis() - self.start.millis()).max(0))
    }
}

/// What the KPI functions need besides the petitions.
#[derive(Clone, Copy, Debug)]
pub struct KpiContext {
    /// The end of the period judged: `min(to, now)`.
    pub end: Timestamp,
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

/// The basis of a figure over clocks of these bases (device stamps when none).
fn basis_of(bases: impl Iterator<Item = ClockBasis>) -> ClockBasis {
    bases.reduce(ClockBasis::and).unwrap_or(ClockBasis::DeviceStamp)
}

/// The on-time rate and median duration of one clock over `rows`.
fn clock_figures(rows: &[&KpiRow], kind: ClockKind, ctx: &KpiContext) -> (Rate, Median) {
    let (mut on_time, mut decided) = (0u32, 0u32);
    let mut durations = Vec::new();
    let mut bases = None::<ClockBasis>;
    for c in rows.iter().filter(|r| r.in_rates).filter_map(|r| r.clock(kind)) {
        bases = Some(bases.map_or(c.basis, |b| b.and(c.basis)));
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
    let basis = basis_of(bases.into_iter());
    (rate(on_time, decided, basis), median(durations, basis))
}

/// Completion (办结率): replied or closed by the end, over those completed
/// plus those whose reply was due by the end and not given.
fn completion(rows: &[&KpiRow], ctx: &KpiContext) -> Rate {
    let (mut done, mut due) = (0u32, 0u32);
    let mut bases = None::<ClockBasis>;
    for r in rows.iter().filter(|r| r.in_rates) {
        let Some(c) = r.reply.as_ref() else { continue };
        bases = Some(bases.map_or(c.basis, |b| b.and(c.basis)));
        let completed = c.done.or(r.closed_at).is_some_and(|d| d <= ctx.end);
        if completed {
            done += 1;
            due += 1;
        } else if c.due < ctx.end {
            due += 1;
        }
    }
    rate(done, due, basis_of(bases.into_iter()))
}

/// The figures of `rows` (already filtered to the report's period and filters).
pub fn kpis(rows: &[&KpiRow], ctx: &KpiContext) -> Kpis {
    let (response_rate, median_time_to_sign) = clock_figures(rows, ClockKind::Sign, ctx);
    let (contact_in_time_rate, median_time_to_contact) = clock_figures(rows, ClockKind::Contact, ctx);
    let (on_time_reply_rate, median_time_to_reply) = clock_figures(rows, ClockKind::Reply, ctx);
    let ratings: Vec<u8> = rows.iter().filter_map(|r| r.rating).collect();
    let rated = u32::try_from(ratings.len()).unwrap_or(u32::MAX);
    let satisfied = u32::try_from(ratings.iter().filter(|r| **r >= 4).count()).unwrap_or(u32::MAX);
    let count = |f: &dyn Fn(&KpiRow) -> bool| u32::try_from(rows.iter().filter(|r| f(r)).count()).unwrap_or(u32::MAX);
    Kpis {
        received: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        response_rate,
        contact_in_time_rate,
        on_time_reply_rate,
        completion_rate: completion(rows, ctx),
        satisfaction: Satisfaction {
            rated,
            mean_rating: (rated > 0).then(|| ratings.iter().map(|r| f64::from(*r)).sum::<f64>() / f64::from(rated)),
            // Ratings are what residents said: no clock involved.
            satisfied: rate(satisfied, rated, ClockBasis::DeviceStamp),
        },
        median_time_to_sign,
        median_time_to_contact,
        median_time_to_reply,
        supervised: count(&|r| r.supervised),
        escalated: count(&|r| r.escalated),
        clock_skew_flagged: count(&|r| r.skew_flagged),
    }
}

#[cfg(test)]
mod tests;
