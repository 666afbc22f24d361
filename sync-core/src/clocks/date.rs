//! Civil dates and weekdays, with no time zone and no clock.
//!
//! A small own type rather than a date crate: the calendar needs only
//! days-from-civil arithmetic, weekdays and the `YYYY-MM-DD` form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub(super) const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// Monday is 0, Sunday is 6.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A civil date in the proleptic Gregorian calendar, with no time zone.
///
/// Its text and JSON form is `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    /// Days since 1970-01-01.
    days: i64,
}

impl Date {
    /// The date `year-month-day`; years 1 to 9999.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Result<Date, SchemaError> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year.into(), month);
        if !valid {
            return Err(invalid(format!("{year:04}-{month:02}-{day:02} is not a calendar date")));
        }
        Ok(Date {
            days: days_from_civil(year.into(), month, day),
        })
    }

    /// The year, e.g. 2025.
    pub fn year(self) -> i32 {
        // Dates come from `from_ymd` or from an i64 millisecond timestamp,
        // whose years stay within ±300 million.
        civil_from_days(self.days).0 as i32
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        civil_from_days(self.days).1
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u32 {
        civil_from_days(self.days).2
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday (index 3).
        Weekday::ALL[(self.days + 3).rem_euclid(7) as usize]
    }

    /// The date `days` days after 1970-01-01.
    pub(super) fn from_days_since_epoch(days: i64) -> Date {
        Date { days }
    }

    pub(super) fn days_since_epoch(self) -> i64 {
        self.days
    }

    pub(crate) fn plus_days(self, n: i64) -> Date {
        Date {
            days: self.days.saturating_add(n),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.days);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Date {
    type Err = SchemaError;

    fn from_str(s: &str) -> Result<Date, SchemaError> {
        let bad = || invalid(format!("{s:?} is not a YYYY-MM-DD date"));
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(bad());
        }
        let year = s[0..4].parse().map_err(|_| bad())?;
        let month = s[5..7].parse().map_err(|_| bad())?;
        let day = s[8..10].parse().map_err(|_| bad())?;
        Date::from_ymd(year, month, day)
    }
}

impl TryFrom<String> for Date {
    type Error = SchemaError;
    fn try_from(s: String) -> Result<Date, SchemaError> {
        s.parse()
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`: years are shifted to start in March so that the leap
/// day is the last day of the shifted year).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn invalid(reason: String) -> SchemaError {
    SchemaError::InvalidValue {
        field: "date".into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn civil_dates_round_trip_and_follow_each_other() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(date("2000-03-01").days - date("2000-02-28").days, 2);
        assert_eq!(date("1900-03-01").days - date("1900-02-28").days, 1);
        let mut prev = Date::from_ymd(1600, 1, 1).unwrap();
        let end = Date::from_ymd(2400, 12, 31).unwrap();
        while prev < end {
            let next = prev.plus_days(1);
            let (y, m, d) = civil_from_days(next.days);
            assert_eq!(days_from_civil(y, m, d), next.days);
            let (py, pm, pd) = civil_from_days(prev.days);
            let follows = (y, m, d) == (py, pm, pd + 1)
                || (y == py && m == pm + 1 && d == 1 && pd == days_in_month(py, pm))
                || (y == py + 1 && m == 1 && d == 1 && (pm, pd) == (12, 31));
            assert!(follows, "{prev} -> {next}");
            assert_eq!(next.to_string().parse::<Date>().unwrap(), next);
            prev = next;
        }
    }

    #[test]
    fn weekdays_of_known_dates() {
        assert_eq!(date("1970-01-01").weekday(), Weekday::Thursday);
        assert_eq!(date("2025-10-01").weekday(), Weekday::Wednesday);
        assert_eq!(date("2026-02-14").weekday(), Weekday::Saturday);
        assert_eq!(date("1969-12-31").weekday(), Weekday::Wednesday);
    }

    #[test]
    fn bad_dates_are_refused() {
        for s in [
            "2025-02-29",
            "2024-02-30",
            "2025-13-01",
            "2025-00-10",
            "2025-1-01",
            "2025/01/01",
            "20250101",
            "２025-01-01",
            "2025-01-01T00:00",
            "0000-01-01",
        ] {
            assert!(s.parse::<Date>().is_err(), "{s} accepted");
        }
        assert_eq!(date("2024-02-29").to_string(), "2024-02-29");
        let leap = Date::from_ymd(2024, 2, 29).unwrap();
        assert_eq!((leap.year(), leap.month(), leap.day()), (2024, 2, 29));
    }
}
