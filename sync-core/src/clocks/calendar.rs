//! Working-day calendar: local days and working-day arithmetic over holiday data.
//!
//! Holidays and make-up working days (调休) are data, loaded from JSON, so a
//! new year's State Council notice is a data change, not a code change. The
//! calendar uses one fixed UTC offset (China has no daylight saving time).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::date::{Date, Weekday};
use crate::error::SchemaError;
use crate::time::Timestamp;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// Offsets beyond these are not used anywhere on Earth.
const MIN_OFFSET_MINUTES: i32 = -12 * 60;
const MAX_OFFSET_MINUTES: i32 = 14 * 60;

/// China's calendar, from the State Council holiday notices (see the data file
/// for the years it covers).
const CHINA_JSON: &str = include_str!("../../data/calendar-cn.json");

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SchemaError {
    SchemaError::InvalidValue {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A working-day calendar in one fixed UTC offset.
///
/// A date is a working day when it is a make-up working day, or when it is
/// neither a holiday nor a weekend day. Built only through validation, so a
/// date is never both a holiday and a make-up day, every make-up day falls on
/// a weekend day, and at least one weekday is a working day (which keeps every
/// working-day search finite).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarFile", into = "CalendarFile")]
pub struct Calendar {
    utc_offset_minutes: i32,
    weekend: [bool; 7],
    holidays: BTreeSet<Date>,
    makeup_days: BTreeSet<Date>,
    covers: Option<Coverage>,
    source: Option<String>,
}

impl Default for Calendar {
    /// UTC+8, Saturday and Sunday off, no holidays.
    fn default() -> Self {
        Calendar {
            utc_offset_minutes: 480,
            weekend: weekend_mask(&[Weekday::Saturday, Weekday::Sunday]),
            holidays: BTreeSet::new(),
            makeup_days: BTreeSet::new(),
            covers: None,
            source: None,
        }
    }
}

impl Calendar {
    /// China's public holidays and make-up working days as published by the
    /// State Council, embedded from `sync-core/data/calendar-cn.json`.
    ///
    /// Each call parses the embedded data; a host keeps the result.
    pub fn china() -> Calendar {
        Calendar::from_json(CHINA_JSON).expect("the embedded China calendar is valid")
    }

    /// Reads a calendar from its JSON form, naming the offending field on error.
    pub fn from_json(json: &str) -> Result<Calendar, SchemaError> {
        let file: CalendarFile = serde_json::from_str(json).map_err(|e| invalid("calendar", e.to_string()))?;
        Calendar::try_from(file)
    }

    /// The JSON form read by [`Calendar::from_json`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a calendar always serializes")
    }

    /// Minutes east of UTC of the calendar's local time.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.utc_offset_minutes
    }

    /// Whether the calendar's holiday data claims to cover `date`.
    ///
    /// A calendar without a declared coverage range (a plain weekly calendar)
    /// covers every date. Past the range, only weekends are known, so a host
    /// should warn when today is not covered.
    pub fn covers(&self, date: Date) -> bool {
        self.covers.is_none_or(|c| c.from <= date && date <= c.to)
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, at: Timestamp) -> Date {
        let local_ms = at.millis().saturating_add(self.offset_ms());
        Date::from_days_since_epoch(local_ms.div_euclid(DAY_MS))
    }

    /// The first millisecond of a local date.
    pub fn start_of_day(&self, date: Date) -> Timestamp {
        Timestamp::from_millis(
            date.days_since_epoch()
                .saturating_mul(DAY_MS)
                .saturating_sub(self.offset_ms()),
        )
    }

    /// The last millisecond of a local date.
    pub fn end_of_day(&self, date: Date) -> Timestamp {
        Timestamp::from_millis(self.start_of_day(date.plus_days(1)).millis().saturating_sub(1))
    }

    /// Whether `date` is a working day: a make-up working day, or neither a
    /// holiday nor a weekend day.
    pub fn is_working_day(&self, date: Date) -> bool {
        self.makeup_days.contains(&date) || (!self.holidays.contains(&date) && !self.is_weekend(date))
    }

    /// The deadline `n` working days after `start`.
    ///
    /// Counting starts on the first working day after the local day of
    /// `start` (the day a petition arrives is never counted, whatever the
    /// hour), and the deadline is the last millisecond of the `n`-th working
    /// day in local time. `n = 0` gives the end of the local day of `start`.
    ///
    /// A petition arriving on Tuesday, Saturday or Sunday of an ordinary week
    /// has day 1 on the next working day, so with `n = 5` the deadline is the
    /// end of the following Tuesday for a Tuesday arrival, and the end of
    /// Friday for a weekend one.
    pub fn add_working_days(&self, start: Timestamp, n: u32) -> Timestamp {
        let day = self.local_date(start);
        if n == 0 {
            return self.end_of_day(day);
        }
        self.end_of_day(self.nth_working_day_after(day, n.into()))
    }

    /// The number of working days whose local date is after the local day of
    /// `from` and not after the local day of `to`; negative when `to` is
    /// before `from`.
    ///
    /// It is the inverse of [`Calendar::add_working_days`]:
    /// `working_days_between(s, add_working_days(s, n)) == n`, so "replied on
    /// working day k" is `working_days_between(submitted, replied)`.
    pub fn working_days_between(&self, from: Timestamp, to: Timestamp) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        let first = self.local_date(from).plus_days(1);
        let last = self.local_date(to);
        self.count_working_days(first, last)
    }

    /// Elapsed milliseconds from `from` to `to` that fall on working days
    /// (whole local days; office hours are not modelled); negative when `to`
    /// is before `from`.
    ///
    /// This is the "working time" a median time-to-reply is measured in: a
    /// petition answered on Monday 09:00 after arriving on Friday 18:00 took
    /// 15 working hours, not 63 wall hours.
    pub fn working_millis_between(&self, from: Timestamp, to: Timestamp) -> i64 {
        if to < from {
            return -self.working_millis_between(to, from);
        }
        let (a, b) = (self.local_date(from), self.local_date(to));
        let part = |day: Date, lo: Timestamp, hi: Timestamp| {
            if self.is_working_day(day) {
                hi.millis().saturating_sub(lo.millis())
            } else {
                0
            }
        };
        if a == b {
            return part(a, from, to);
        }
        let head = part(a, from, self.start_of_day(a.plus_days(1)));
        let tail = part(b, self.start_of_day(b), to);
        let middle = self
            .count_working_days(a.plus_days(1), b.plus_days(-1))
            .saturating_mul(DAY_MS);
        head.saturating_add(middle).saturating_add(tail)
    }

    /// The `n`-th working day after `day` (`n >= 1`; `day` itself is not counted).
    pub(crate) fn nth_working_day_after(&self, day: Date, n: i64) -> Date {
        debug_assert!(n >= 1);
        // Count whole spans instead of stepping day by day, so a large `n`
        // costs a few range counts rather than `n` set lookups. A span of
        // `remaining` days holds at most `remaining` working days; when it
        // holds exactly that many, the answer is its last working day.
        let mut lo = day.plus_days(1);
        let mut remaining = n;
        loop {
            let hi = lo.plus_days(remaining - 1);
            let found = self.count_working_days(lo, hi);
            if found == remaining {
                let mut last = hi;
                while !self.is_working_day(last) {
                    last = last.plus_days(-1);
                }
                return last;
            }
            remaining -= found;
            lo = hi.plus_days(1);
        }
    }

    /// Working days in `first..=last`; 0 when the range is empty.
    fn count_working_days(&self, first: Date, last: Date) -> i64 {
        if last < first {
            return 0;
        }
        let total = last.days_since_epoch() - first.days_since_epoch() + 1;
        let weeks = total / 7;
        let per_week = self.weekend.iter().filter(|off| !**off).count() as i64;
        let mut count = weeks * per_week;
        for i in weeks * 7..total {
            if !self.is_weekend(first.plus_days(i)) {
                count += 1;
            }
        }
        // Holidays on weekend days were not counted in the first place;
        // make-up days are all weekend days (checked on load).
        count -= self
            .holidays
            .range(first..=last)
            .filter(|d| !self.is_weekend(**d))
            .count() as i64;
        count += self.makeup_days.range(first..=last).count() as i64;
        count
    }

    fn is_weekend(&self, date: Date) -> bool {
        self.weekend[date.weekday().index()]
    }

    fn offset_ms(&self) -> i64 {
        i64::from(self.utc_offset_minutes) * MINUTE_MS
    }
}

fn weekend_mask(days: &[Weekday]) -> [bool; 7] {
    let mut mask = [false; 7];
    for d in days {
        mask[d.index()] = true;
    }
    mask
}

/// The dates a calendar's holiday data was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Coverage {
    from: Date,
    to: Date,
}

/// The JSON form of a [`Calendar`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    /// Where the holiday data comes from; free text kept with the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default = "default_offset")]
    utc_offset_minutes: i32,
    #[serde(default = "default_weekend")]
    weekend: Vec<Weekday>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covers: Option<Coverage>,
    #[serde(default)]
    holidays: Vec<Date>,
    #[serde(default)]
    makeup_working_days: Vec<Date>,
}

fn default_offset() -> i32 {
    480
}

fn default_weekend() -> Vec<Weekday> {
    vec![Weekday::Saturday, Weekday::Sunday]
}

impl TryFrom<CalendarFile> for Calendar {
    type Error = SchemaError;

    fn try_from(file: CalendarFile) -> Result<Calendar, SchemaError> {
        let offset = file.utc_offset_minutes;
        if !(MIN_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&offset) {
            return Err(invalid(
                "calendar.utc_offset_minutes",
                format!("{offset} is outside -720..=840"),
            ));
        }
        let weekend = weekend_mask(&file.weekend);
        if weekend.iter().all(|off| *off) {
            return Err(invalid(
                "calendar.weekend",
                "every day of the week is a weekend day, so nothing is a working day",
            ));
        }
        if let Some(c) = file.covers
            && c.to < c.from
        {
            return Err(invalid(
                "calendar.covers",
                format!("ends ({}) before it starts ({})", c.to, c.from),
            ));
        }
        let holidays = unique_dates("calendar.holidays", &file.holidays, file.covers)?;
        let makeup_days = unique_dates("calendar.makeup_working_days", &file.makeup_working_days, file.covers)?;
        if let Some(both) = holidays.intersection(&makeup_days).next() {
            return Err(invalid(
                "calendar.makeup_working_days",
                format!("{both} is also listed as a holiday"),
            ));
        }
        if let Some(d) = makeup_days.iter().find(|d| !weekend[d.weekday().index()]) {
            return Err(invalid(
                "calendar.makeup_working_days",
                format!("{d} is a {:?}, already a working day", d.weekday()),
            ));
        }
        Ok(Calendar {
            utc_offset_minutes: offset,
            weekend,
            holidays,
            makeup_days,
            covers: file.covers,
            source: file.source,
        })
    }
}

/// The dates of a list as a set; a date listed twice or outside the declared
/// coverage is a mistake in the data.
fn unique_dates(field: &str, dates: &[Date], covers: Option<Coverage>) -> Result<BTreeSet<Date>, SchemaError> {
    let mut set = BTreeSet::new();
    for (i, d) in dates.iter().enumerate() {
        if !set.insert(*d) {
            return Err(invalid(format!("{field}[{i}]"), format!("{d} is listed twice")));
        }
        if let Some(c) = covers
            && !(c.from <= *d && *d <= c.to)
        {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{d} is outside the covered range {}..={}", c.from, c.to),
            ));
        }
    }
    Ok(set)
}

impl From<Calendar> for CalendarFile {
    fn from(cal: Calendar) -> CalendarFile {
        CalendarFile {
            source: cal.source,
            utc_offset_minutes: cal.utc_offset_minutes,
            weekend: Weekday::ALL.into_iter().filter(|d| cal.weekend[d.index()]).collect(),
            covers: cal.covers,
            holidays: cal.holidays.into_iter().collect(),
            makeup_working_days: cal.makeup_days.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// An instant given in China local time (UTC+8), `YYYY-MM-DD HH:MM`.
    fn cst(s: &str) -> Timestamp {
        let (d, hm) = s.split_once(' ').unwrap();
        let (h, m) = hm.split_once(':').unwrap();
        let minutes: i64 = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
        Timestamp::from_millis(date(d).days_since_epoch() * DAY_MS + (minutes - 480) * MINUTE_MS)
    }

    fn end_cst(d: &str) -> Timestamp {
        Timestamp::from_millis(cst(&format!("{d} 00:00")).millis() + DAY_MS - 1)
    }

    /// The obvious day-by-day definition, to check the span-counting one.
    fn naive_nth_working_day_after(cal: &Calendar, day: Date, n: i64) -> Date {
        let mut d = day;
        let mut left = n;
        while left > 0 {
            d = d.plus_days(1);
            if cal.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    #[test]
    fn local_date_uses_the_utc_offset() {
        let cal = Calendar::default();
        // 15:30 UTC is 23:30 in Beijing: still the same day.
        let late_evening = Timestamp::from_millis(date("2025-03-13").days_since_epoch() * DAY_MS + 930 * MINUTE_MS);
        assert_eq!(late_evening, cst("2025-03-13 23:30"));
        assert_eq!(cal.local_date(late_evening), date("2025-03-13"));
        // 16:00 UTC is already the next day in Beijing.
        let midnight = Timestamp::from_millis(date("2025-03-13").days_since_epoch() * DAY_MS + 960 * MINUTE_MS);
        assert_eq!(cal.local_date(midnight), date("2025-03-14"));
        assert_eq!(cal.start_of_day(date("2025-03-14")), midnight);
        assert_eq!(cal.end_of_day(date("2025-03-13")).millis(), midnight.millis() - 1);
        // Before the epoch, days still start at local midnight.
        assert_eq!(cal.local_date(Timestamp::from_millis(-1)), date("1970-01-01"));
        assert_eq!(
            cal.local_date(Timestamp::from_millis(-8 * 3_600_000 - 1)),
            date("1969-12-31")
        );
    }

    #[test]
    fn timezone_boundary_moves_the_reply_deadline() {
        let cal = Calendar::china();
        // Thursday 23:30 local: Thursday is day 0, day 5 is next Thursday.
        assert_eq!(cal.add_working_days(cst("2025-03-13 23:30"), 5), end_cst("2025-03-20"));
        // Thursday 16:00 UTC is Friday 00:00 local: day 5 is next Friday.
        assert_eq!(cal.add_working_days(cst("2025-03-14 00:00"), 5), end_cst("2025-03-21"));
    }

    #[test]
    fn weekends_are_skipped_and_weekend_arrivals_start_on_monday() {
        let cal = Calendar::default();
        // 2025-03-10 is a Monday.
        assert_eq!(cal.add_working_days(cst("2025-03-11 09:00"), 5), end_cst("2025-03-18"));
        assert_eq!(cal.add_working_days(cst("2025-03-14 17:00"), 1), end_cst("2025-03-17"));
        assert_eq!(cal.add_working_days(cst("2025-03-15 10:00"), 5), end_cst("2025-03-21"));
        assert_eq!(cal.add_working_days(cst("2025-03-16 23:59"), 5), end_cst("2025-03-21"));
        assert_eq!(cal.add_working_days(cst("2025-03-16 23:59"), 0), end_cst("2025-03-16"));
        assert!(!cal.is_working_day(date("2025-03-15")));
        assert!(cal.is_working_day(date("2025-03-17")));
    }

    #[test]
    fn national_day_holiday_and_its_makeup_saturday() {
        let cal = Calendar::china();
        // Submitted on the last working day before the 2025 National Day and
        // Mid-Autumn holiday (1-8 October). Day 1 is Thursday 9 October, day
        // 3 is the make-up Saturday 11 October, day 5 is Tuesday 14 October.
        let start = cst("2025-09-30 10:00");
        assert_eq!(cal.add_working_days(start, 1), end_cst("2025-10-09"));
        assert_eq!(cal.add_working_days(start, 3), end_cst("2025-10-11"));
        assert_eq!(cal.add_working_days(start, 5), end_cst("2025-10-14"));
        // Arriving during the holiday gives the same day 1.
        assert_eq!(cal.add_working_days(cst("2025-10-03 12:00"), 1), end_cst("2025-10-09"));
        // Friday 26 September: the make-up Sunday 28 September is day 1.
        let friday = cst("2025-09-26 16:00");
        assert_eq!(cal.add_working_days(friday, 1), end_cst("2025-09-28"));
        assert_eq!(cal.add_working_days(friday, 5), end_cst("2025-10-10"));
    }

    #[test]
    fn spring_festival_makeup_saturday_shortens_the_count() {
        let cal = Calendar::china();
        // First working day after the 2025 Spring Festival (28 Jan - 4 Feb).
        // Working days: Thu 6, Fri 7, Sat 8 (make-up), Mon 10, Tue 11.
        let start = cst("2025-02-05 09:00");
        assert_eq!(cal.add_working_days(start, 5), end_cst("2025-02-11"));
        assert_eq!(Calendar::default().add_working_days(start, 5), end_cst("2025-02-12"));
        // Submitted on Monday 27 January, the last working day before the
        // holiday: day 1 is Wednesday 5 February and the make-up Saturday is
        // day 4, so day 5 is Monday 10 February.
        let before = cst("2025-01-27 20:00");
        assert_eq!(cal.add_working_days(before, 1), end_cst("2025-02-05"));
        assert_eq!(cal.add_working_days(before, 4), end_cst("2025-02-08"));
        assert_eq!(cal.add_working_days(before, 5), end_cst("2025-02-10"));
    }

    #[test]
    fn span_counting_agrees_with_day_by_day_stepping() {
        for cal in [Calendar::china(), Calendar::default()] {
            let mut day = date("2024-12-01");
            while day <= date("2026-12-31") {
                for n in 1..=12 {
                    let fast = cal.nth_working_day_after(day, n);
                    assert_eq!(fast, naive_nth_working_day_after(&cal, day, n), "{day} + {n}");
                    let start = cal.start_of_day(day).plus_millis(3_600_000);
                    let due = cal.add_working_days(start, n as u32);
                    assert_eq!(cal.working_days_between(start, due), n);
                    assert_eq!(cal.working_days_between(due, start), -n);
                }
                day = day.plus_days(1);
            }
        }
        // Far beyond the data, the weekly pattern alone applies.
        let cal = Calendar::china();
        let far = cal.add_working_days(cst("2030-01-07 09:00"), 1_000_000);
        assert_eq!(cal.working_days_between(cst("2030-01-07 09:00"), far), 1_000_000);
    }

    #[test]
    fn working_days_between_counts_whole_local_days() {
        let cal = Calendar::china();
        assert_eq!(
            cal.working_days_between(cst("2025-09-30 08:00"), cst("2025-09-30 23:00")),
            0
        );
        assert_eq!(
            cal.working_days_between(cst("2025-09-30 08:00"), cst("2025-10-08 23:00")),
            0
        );
        assert_eq!(
            cal.working_days_between(cst("2025-09-30 08:00"), cst("2025-10-09 00:00")),
            1
        );
        // Sun 28 Sep and Sat 11 Oct (make-up days), Mon 29, Tue 30, Thu 9,
        // Fri 10 and Mon 13, whose first millisecond counts as that day.
        assert_eq!(
            cal.working_days_between(cst("2025-09-26 08:00"), cst("2025-10-13 00:00")),
            7
        );
    }

    #[test]
    fn working_millis_skip_weekends_and_holidays() {
        let cal = Calendar::china();
        let hour = 3_600_000;
        // Friday 18:00 to Monday 09:00: 6 hours on Friday and 9 on Monday.
        assert_eq!(
            cal.working_millis_between(cst("2025-03-14 18:00"), cst("2025-03-17 09:00")),
            15 * hour
        );
        assert_eq!(
            cal.working_millis_between(cst("2025-03-17 09:00"), cst("2025-03-14 18:00")),
            -15 * hour
        );
        // Within one working day, and within one holiday.
        assert_eq!(
            cal.working_millis_between(cst("2025-03-17 09:00"), cst("2025-03-17 10:30")),
            hour * 3 / 2
        );
        assert_eq!(
            cal.working_millis_between(cst("2025-10-02 09:00"), cst("2025-10-02 10:30")),
            0
        );
        // Tuesday 30 September 12:00 to the make-up Saturday 11 October 12:00:
        // 12 h + Thu 9 + Fri 10 + 12 h.
        assert_eq!(
            cal.working_millis_between(cst("2025-09-30 12:00"), cst("2025-10-11 12:00")),
            72 * hour
        );
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let cal = Calendar::china();
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let t = Timestamp::from_millis(ms);
            let _ = cal.local_date(t).to_string();
            let _ = cal.add_working_days(t, 5);
            let _ = cal.working_millis_between(Timestamp::from_millis(0), t);
            let _ = cal.working_days_between(t, Timestamp::from_millis(0));
        }
    }

    #[test]
    fn calendar_json_round_trips() {
        let cal = Calendar::china();
        let back = Calendar::from_json(&cal.to_json()).unwrap();
        assert_eq!(back, cal);
        let via_serde: Calendar = serde_json::from_str(&serde_json::to_string(&cal).unwrap()).unwrap();
        assert_eq!(via_serde, cal);
        assert_eq!(Calendar::from_json("{}").unwrap(), Calendar::default());
    }

    #[test]
    fn bad_calendar_json_is_refused_with_the_field_named() {
        let field_of = |json: &str| match Calendar::from_json(json) {
            Err(SchemaError::InvalidValue { field, reason }) => format!("{field}: {reason}"),
            other => panic!("{json} gave {other:?}"),
        };
        let e = field_of(r#"{"holidays": ["2025-10-01"], "makeup_working_days": ["2025-10-01"]}"#);
        assert!(e.contains("also listed as a holiday"), "{e}");
        let e = field_of(r#"{"holidays": ["2025-02-30"]}"#);
        assert!(e.starts_with("calendar:") && e.contains("2025-02-30"), "{e}");
        let e = field_of(r#"{"makeup_working_days": ["2025-09-29"]}"#);
        assert!(e.contains("already a working day"), "{e}");
        let e = field_of(r#"{"holidays": ["2025-10-01", "2025-10-01"]}"#);
        assert!(e.starts_with("calendar.holidays[1]"), "{e}");
        let e = field_of(r#"{"utc_offset_minutes": 900}"#);
        assert!(e.starts_with("calendar.utc_offset_minutes"), "{e}");
        let e = field_of(r#"{"weekend": ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"]}"#);
        assert!(e.starts_with("calendar.weekend"), "{e}");
        let e = field_of(r#"{"weekend": ["caturday"]}"#);
        assert!(e.contains("caturday"), "{e}");
        let e = field_of(r#"{"holiday": ["2025-10-01"]}"#);
        assert!(e.contains("unknown field"), "{e}");
        let e = field_of(r#"{"covers": {"from": "2025-01-01", "to": "2025-12-31"}, "holidays": ["2026-01-01"]}"#);
        assert!(e.contains("outside the covered range"), "{e}");
        let e = field_of(r#"{"covers": {"from": "2025-01-01", "to": "2024-12-31"}}"#);
        assert!(e.starts_with("calendar.covers"), "{e}");
        let e = field_of("[");
        assert!(e.starts_with("calendar:"), "{e}");
    }

    #[test]
    fn china_data_matches_the_state_council_notices() {
        let cal = Calendar::china();
        assert_eq!(cal.utc_offset_minutes(), 480);
        assert!(cal.covers(date("2025-01-01")) && cal.covers(date("2026-12-31")));
        assert!(!cal.covers(date("2027-01-01")));
        // Every holiday span of the two notices, with its length in days.
        let spans = [
            ("2025-01-01", 1),
            ("2025-01-28", 8),
            ("2025-04-04", 3),
            ("2025-05-01", 5),
            ("2025-05-31", 3),
            ("2025-10-01", 8),
            ("2026-01-01", 3),
            ("2026-02-15", 9),
            ("2026-04-04", 3),
            ("2026-05-01", 5),
            ("2026-06-19", 3),
            ("2026-09-25", 3),
            ("2026-10-01", 7),
        ];
        let mut listed = 0;
        for (first, len) in spans {
            let first = date(first);
            for i in 0..len {
                assert!(cal.holidays.contains(&first.plus_days(i)), "{first} + {i}");
            }
            assert!(!cal.holidays.contains(&first.plus_days(len)), "{first} + {len}");
            listed += len;
        }
        assert_eq!(cal.holidays.len() as i64, listed);
        // Make-up working days, with the weekday each notice gives.
        let makeups = [
            ("2025-01-26", Weekday::Sunday),
            ("2025-02-08", Weekday::Saturday),
            ("2025-04-27", Weekday::Sunday),
            ("2025-09-28", Weekday::Sunday),
            ("2025-10-11", Weekday::Saturday),
            ("2026-01-04", Weekday::Sunday),
            ("2026-02-14", Weekday::Saturday),
            ("2026-02-28", Weekday::Saturday),
            ("2026-05-09", Weekday::Saturday),
            ("2026-09-20", Weekday::Sunday),
            ("2026-10-10", Weekday::Saturday),
        ];
        for (d, weekday) in makeups {
            assert_eq!(date(d).weekday(), weekday, "{d}");
            assert!(cal.is_working_day(date(d)), "{d}");
        }
        assert_eq!(cal.makeup_days.len(), makeups.len());
        // Weekdays the notices state for the first day of some spans.
        assert_eq!(date("2025-01-28").weekday(), Weekday::Tuesday);
        assert_eq!(date("2026-02-15").weekday(), Weekday::Sunday);
        assert_eq!(date("2026-10-07").weekday(), Weekday::Wednesday);
    }
}
