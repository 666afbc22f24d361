//! Duty rosters (值班表): who is on duty for a unit's shared inbox at a given instant.
//!
//! A roster is a weekly pattern in the local time of a [`Calendar`] (its UTC
//! offset; holidays do not change who is on duty). Each shift starts on the
//! listed weekdays at `start` and runs to `end`; an `end` at or before `start`
//! is on the next day, so `20:00`–`08:00` is a night shift and `08:00`–`08:00`
//! a 24-hour one. Shifts are half-open: at the hand-over instant the incoming
//! shift is on duty and the outgoing one is not.
//!
//! ```
//! use sync_core::notify::Roster;
//!
//! let roster = Roster::from_json(
//!     r#"{
//!       "unit": "station-a",
//!       "covers_7x24": true,
//!       "shifts": [
//!         { "name": "白班", "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
//!           "start": "08:00", "end": "20:00", "members": ["oa"] },
//!         { "name": "夜班", "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
//!           "start": "20:00", "end": "08:00", "members": ["oa2"] }
//!       ]
//!     }"#,
//! )?;
//! assert_eq!(roster.shifts().len(), 2);
//! # Ok::<(), sync_core::notify::RosterError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clocks::{Calendar, Weekday};
use crate::ids::{UnitId, UserId};
use crate::time::Timestamp;

const MINUTE_MS: i64 = 60_000;
const DAY_MIN: u32 = 24 * 60;
const WEEK_MIN: u32 = 7 * DAY_MIN;
const WEEK_MS: i64 = WEEK_MIN as i64 * MINUTE_MS;
/// 1970-01-05, the first Monday after the epoch, in days since the epoch.
const FIRST_MONDAY_DAYS: i64 = 4;

const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Why a roster is refused. Shifts are named `#n` (from 1, in roster
/// order) with their name; instants of the week as `Monday 08:00`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RosterError {
    /// A time that is not `HH:MM` within a day.
    #[error("{0:?} is not a time of day: use HH:MM from 00:00 to 23:59 (24:00 only as an end)")]
    BadTime(String),
    /// A roster with no shift at all.
    #[error("a roster needs at least one shift")]
    NoShifts,
    /// A shift that starts at `24:00`.
    #[error("shift {shift} starts at 24:00; a shift starting at midnight starts at 00:00")]
    StartsAtEndOfDay {
        /// The shift.
        shift: String,
    },
    /// A shift on no weekday.
    #[error("shift {shift} is on no weekday")]
    NoDays {
        /// The shift.
        shift: String,
    },
    /// A shift that lists a weekday twice.
    #[error("shift {shift} lists {day:?} twice")]
    DuplicateDay {
        /// The shift.
        shift: String,
        /// The repeated day.
        day: Weekday,
    },
    /// A shift with no members.
    #[error("shift {shift} has nobody on it")]
    NoMembers {
        /// The shift.
        shift: String,
    },
    /// Two shifts (or two days of one shift) are on duty at the same time.
    #[error("shifts {first} and {second} overlap from {at}")]
    Overlap {
        /// The shift that starts first.
        first: String,
        /// The shift that starts inside the first.
        second: String,
        /// Where the overlap begins.
        at: String,
    },
    /// A minute of the week nobody covers, in a roster that claims 7x24 coverage.
    #[error("the roster claims 7x24 coverage but nobody is on duty from {from} to {to}")]
    Gap {
        /// The first uncovered minute.
        from: String,
        /// The end of the gap: the next shift's start.
        to: String,
    },
    /// JSON that is not a roster (unknown fields, wrong types, bad times).
    #[error("roster: {0}")]
    Malformed(String),
}

/// A local time of day, in minutes after midnight. Text form `HH:MM`;
/// `24:00` is the end of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime(u16);

impl LocalTime {
    /// `hour:minute`, from 00:00 to 24:00.
    pub fn new(hour: u32, minute: u32) -> Result<LocalTime, RosterError> {
        if minute > 59 || hour > 24 || (hour == 24 && minute > 0) {
            return Err(RosterError::BadTime(format!("{hour:02}:{minute:02}")));
        }
        Ok(LocalTime((hour * 60 + minute) as u16))
    }

    /// Minutes after local midnight, 0 to 1440.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for LocalTime {
    type Err = RosterError;

    fn from_str(s: &str) -> Result<LocalTime, RosterError> {
        let bad = || RosterError::BadTime(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
            return Err(bad());
        }
        let hour = s[0..2].parse().map_err(|_| bad())?;
        let minute = s[3..5].parse().map_err(|_| bad())?;
        LocalTime::new(hour, minute).map_err(|_| bad())
    }
}

impl TryFrom<String> for LocalTime {
    type Error = RosterError;
    fn try_from(s: String) -> Result<LocalTime, RosterError> {
        s.parse()
    }
}

impl From<LocalTime> for String {
    fn from(t: LocalTime) -> String {
        t.to_string()
    }
}

/// One shift of a weekly roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// A label for people (白班, 夜班); errors name shifts by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The weekdays the shift starts on.
    pub days: Vec<Weekday>,
    /// When the shift starts, local time.
    pub start: LocalTime,
    /// At or before `start`: on the next day.
    pub end: LocalTime,
    /// Who is on duty during the shift.
    pub members: Vec<UserId>,
}

impl Shift {
    /// How long the shift lasts, 1 minute to 24 hours.
    pub fn length_minutes(&self) -> u32 {
        let (s, e) = (self.start.minutes(), self.end.minutes());
        if e > s { e - s } else { e + DAY_MIN - s }
    }

    fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => format!("#{} ({n})", index + 1),
            None => format!("#{}", index + 1),
        }
    }
}

/// One occurrence of a shift in the week: minutes after Monday 00:00 local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
    shift: usize,
}

impl Span {
    fn end(self) -> u32 {
        (self.start + self.len) % WEEK_MIN
    }

    /// Whether week minute `at` falls in this span, across the week's end too.
    fn contains(self, at: u32) -> bool {
        (at + WEEK_MIN - self.start) % WEEK_MIN < self.len
    }
}

/// A unit's weekly duty roster, validated: shifts never overlap, and a
/// roster that claims 7x24 coverage has no gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RosterFile", into = "RosterFile")]
pub struct Roster {
    unit: UnitId,
    shifts: Vec<Shift>,
    covers_7x24: bool,
    spans: Vec<Span>,
}

/// The JSON form of a [`Roster`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    unit: UnitId,
    #[serde(default)]
    covers_7x24: bool,
    shifts: Vec<Shift>,
}

impl TryFrom<RosterFile> for Roster {
    type Error = RosterError;
    fn try_from(f: RosterFile) -> Result<Roster, RosterError> {
        Roster::new(f.unit, f.shifts, f.covers_7x24)
    }
}

impl From<Roster> for RosterFile {
    fn from(r: Roster) -> RosterFile {
        RosterFile {
            unit: r.unit,
            covers_7x24: r.covers_7x24,
            shifts: r.shifts,
        }
    }
}

impl Roster {
    /// Checks and builds a roster. With `covers_7x24`, every minute of the
    /// week must be in some shift.
    pub fn new(unit: UnitId, shifts: Vec<Shift>, covers_7x24: bool) -> Result<Roster, RosterError> {
        if shifts.is_empty() {
            return Err(RosterError::NoShifts);
        }
        let mut spans = Vec::new();
        for (i, shift) in shifts.iter().enumerate() {
            let label = || shift.label(i);
            if shift.start.minutes() == DAY_MIN {
                return Err(RosterError::StartsAtEndOfDay { shift: label() });
            }
            if shift.days.is_empty() {
                return Err(RosterError::NoDays { shift: label() });
            }
            if shift.members.is_empty() {
                return Err(RosterError::NoMembers { shift: label() });
            }
            for (j, day) in shift.days.iter().enumerate() {
                if shift.days[..j].contains(day) {
                    return Err(RosterError::DuplicateDay {
                        shift: label(),
                        day: *day,
                    });
                }
                spans.push(Span {
                    start: day_index(*day) * DAY_MIN + shift.start.minutes(),
                    len: shift.length_minutes(),
                    shift: i,
                });
            }
        }
        spans.sort_by_key(|s| (s.start, s.shift));
        for (k, a) in spans.iter().enumerate() {
            for b in &spans[k + 1..] {
                // Spans last at most a day, so two overlap exactly when one starts inside the other.
                let at = if a.contains(b.start) {
                    b.start
                } else if b.contains(a.start) {
                    a.start
                } else {
                    continue;
                };
                return Err(RosterError::Overlap {
                    first: shifts[a.shift].label(a.shift),
                    second: shifts[b.shift].label(b.shift),
                    at: week_time(at),
                });
            }
        }
        if covers_7x24 {
            for (k, a) in spans.iter().enumerate() {
                let next = spans[(k + 1) % spans.len()];
                if a.end() != next.start {
                    return Err(RosterError::Gap {
                        from: week_time(a.end()),
                        to: week_time(next.start),
                    });
                }
            }
        }
        Ok(Roster {
            unit,
            shifts,
            covers_7x24,
            spans,
        })
    }

    /// Reads a roster from its JSON form (shown in the module documentation).
    pub fn from_json(json: &str) -> Result<Roster, RosterError> {
        let file: RosterFile = serde_json::from_str(json).map_err(|e| RosterError::Malformed(e.to_string()))?;
        Roster::try_from(file)
    }

    /// The JSON form read by [`Roster::from_json`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a roster always serializes")
    }

    /// The unit whose shared inbox the roster staffs.
    pub fn unit(&self) -> &UnitId {
        &self.unit
    }

    /// The shifts, in the order they were given.
    pub fn shifts(&self) -> &[Shift] {
        &self.shifts
    }

    /// Whether the roster was checked to leave no minute of the week uncovered.
    pub fn covers_7x24(&self) -> bool {
        self.covers_7x24
    }

    /// The shift on duty at `now`, in the calendar's local time; `None` in a
    /// gap of a roster that does not claim 7x24 coverage.
    pub fn shift_at(&self, cal: &Calendar, now: Timestamp) -> Option<&Shift> {
        let (minute, _) = week_position(cal, now);
        self.spans
            .iter()
            .find(|s| s.contains(minute))
            .map(|s| &self.shifts[s.shift])
    }

    /// The people on duty at `now`: the members of [`Roster::shift_at`], or
    /// nobody in a gap (the host then falls back, e.g. to the unit's leaders).
    pub fn on_duty(&self, cal: &Calendar, now: Timestamp) -> Vec<UserId> {
        self.shift_at(cal, now).map(|s| s.members.clone()).unwrap_or_default()
    }

    /// The first instant after `now` at which a shift starts or ends: when
    /// the host hands the unit's open items to the incoming shift. At most a
    /// week away.
    pub fn next_handover(&self, cal: &Calendar, now: Timestamp) -> Timestamp {
        let (minute, within_ms) = week_position(cal, now);
        let now_ms = i64::from(minute) * MINUTE_MS + within_ms;
        let wait = self
            .spans
            .iter()
            .flat_map(|s| [s.start, s.end()])
            .map(|b| match (i64::from(b) * MINUTE_MS - now_ms).rem_euclid(WEEK_MS) {
                0 => WEEK_MS,
                d => d,
            })
            .min()
            .expect("a roster has at least one shift");
        now.plus_millis(wait)
    }
}

fn day_index(day: Weekday) -> u32 {
    WEEK.iter().position(|d| *d == day).expect("every weekday is in WEEK") as u32
}

/// `now` as a minute of the local week (Monday 00:00 is 0) and the
/// milliseconds into that minute.
fn week_position(cal: &Calendar, now: Timestamp) -> (u32, i64) {
    let local = now
        .millis()
        .saturating_add(i64::from(cal.utc_offset_minutes()) * MINUTE_MS);
    let in_week = (local - FIRST_MONDAY_DAYS * 24 * 60 * MINUTE_MS).rem_euclid(WEEK_MS);
    ((in_week / MINUTE_MS) as u32, in_week % MINUTE_MS)
}

/// A minute of the week for people: `Monday 08:00`.
fn week_time(minute: u32) -> String {
    let day = WEEK[(minute / DAY_MIN) as usize % 7];
    let m = minute % DAY_MIN;
    format!("{day:?} {:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clocks::Date;

    #[test]
    fn the_local_week_starts_on_monday_in_the_calendars_offset() {
        let cal = Calendar::china();
        let monday = cal.start_of_day(Date::from_ymd(2025, 6, 16).unwrap());
        assert_eq!(cal.local_date(monday).weekday(), Weekday::Monday);
        assert_eq!(week_position(&cal, monday), (0, 0));
        assert_eq!(week_position(&cal, monday.plus_millis(-1)), (WEEK_MIN - 1, 59_999));
        assert_eq!(week_time(DAY_MIN * 6 + 20 * 60 + 5), "Sunday 20:05");
    }

    #[test]
    fn local_times_parse_strictly() {
        assert_eq!("08:30".parse::<LocalTime>().unwrap().minutes(), 510);
        assert_eq!("24:00".parse::<LocalTime>().unwrap().minutes(), 1440);
        for bad in ["8:30", "24:01", "25:00", "12:60", "1230", "12:3x", "１2:00"] {
            assert!(bad.parse::<LocalTime>().is_err(), "{bad}");
        }
    }
}
