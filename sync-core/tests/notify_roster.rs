//! Duty rosters: shifts across midnight and the week's end, the hand-over instant, validation.

use sync_core::notify::{Roster, RosterError, Shift};
use sync_core::{Calendar, Date, Timestamp, UnitId, UserId, Weekday};

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn users(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|u| UserId::new(*u).unwrap()).collect()
}

fn shift(name: &str, days: &[Weekday], start: &str, end: &str, members: &[&str]) -> Shift {
    Shift {
        name: Some(name.into()),
        days: days.to_vec(),
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
        members: users(members),
    }
}

fn station() -> UnitId {
    UnitId::new("station-a").unwrap()
}

/// Day shift 08:00-20:00 and night shift 20:00-08:00, every day.
fn day_and_night() -> Roster {
    Roster::new(
        station(),
        vec![
            shift("白班", &ALL_DAYS, "08:00", "20:00", &["oa"]),
            shift("夜班", &ALL_DAYS, "20:00", "08:00", &["oa2", "ob"]),
        ],
        true,
    )
    .unwrap()
}

/// Local (UTC+8) time on a date of June 2025: the 16th is a Monday.
fn at(cal: &Calendar, day: u32, hh: i64, mm: i64) -> Timestamp {
    cal.start_of_day(Date::from_ymd(2025, 6, day).unwrap())
        .plus_minutes(hh * 60 + mm)
}

#[test]
fn the_hand_over_instant_belongs_to_the_incoming_shift() {
    let cal = Calendar::china();
    let r = day_and_night();
    let handover = at(&cal, 17, 8, 0);
    assert_eq!(r.on_duty(&cal, handover.plus_millis(-1)), users(&["oa2", "ob"]));
    assert_eq!(r.on_duty(&cal, handover), users(&["oa"]));
    assert_eq!(r.shift_at(&cal, handover).unwrap().name.as_deref(), Some("白班"));
    assert_eq!(r.next_handover(&cal, at(&cal, 17, 7, 0)), handover);
    assert_eq!(r.next_handover(&cal, handover.plus_millis(-1)), handover);
    assert_eq!(
        r.next_handover(&cal, handover),
        at(&cal, 17, 20, 0),
        "strictly after now"
    );
}

#[test]
fn a_night_shift_runs_across_midnight_and_across_the_weeks_end() {
    let cal = Calendar::china();
    let r = day_and_night();
    // Tuesday 02:00: the night shift that started on Monday 20:00.
    assert_eq!(r.on_duty(&cal, at(&cal, 17, 2, 0)), users(&["oa2", "ob"]));
    // Sunday 22 June 23:59 and Monday 23 June 00:00 to 07:59: Sunday's night shift.
    assert_eq!(r.on_duty(&cal, at(&cal, 22, 23, 59)), users(&["oa2", "ob"]));
    assert_eq!(r.on_duty(&cal, at(&cal, 23, 0, 0)), users(&["oa2", "ob"]));
    assert_eq!(
        r.next_handover(&cal, at(&cal, 22, 21, 0)),
        at(&cal, 23, 8, 0),
        "midnight and the week's end are not hand-overs"
    );
}

#[test]
fn rotating_24_hour_shifts_and_gaps_in_a_part_time_roster() {
    let cal = Calendar::china();
    let weekdays = &ALL_DAYS[..5];
    let rotating = Roster::new(
        station(),
        ALL_DAYS
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g"])
            .map(|(day, who)| shift(who, &[*day], "08:30", "08:30", &[who]))
            .collect(),
        true,
    )
    .unwrap();
    assert_eq!(
        rotating.on_duty(&cal, at(&cal, 17, 8, 29)),
        users(&["a"]),
        "Monday's 24 hours"
    );
    assert_eq!(rotating.on_duty(&cal, at(&cal, 17, 8, 30)), users(&["b"]));
    assert_eq!(rotating.on_duty(&cal, at(&cal, 16, 8, 0)), users(&["g"]), "Sunday's");

    let office = Roster::new(
        station(),
        vec![shift("窗口", weekdays, "09:00", "17:30", &["oa"])],
        false,
    )
    .unwrap();
    let friday_evening = at(&cal, 20, 18, 0);
    assert!(office.on_duty(&cal, friday_evening).is_empty());
    assert!(office.shift_at(&cal, friday_evening).is_none());
    assert_eq!(office.next_handover(&cal, friday_evening), at(&cal, 23, 9, 0));
    assert_eq!(office.next_handover(&cal, at(&cal, 23, 9, 0)), at(&cal, 23, 17, 30));
}

#[test]
fn the_calendars_offset_decides_the_local_time() {
    let utc = Calendar::from_json(r#"{ "utc_offset_minutes": 0 }"#).unwrap();
    let beijing = Calendar::china();
    let r = day_and_night();
    // 01:00 UTC is 09:00 in Beijing.
    let t = utc.start_of_day(Date::from_ymd(2025, 6, 17).unwrap()).plus_minutes(60);
    assert_eq!(r.on_duty(&utc, t), users(&["oa2", "ob"]));
    assert_eq!(r.on_duty(&beijing, t), users(&["oa"]));
}

#[test]
fn rosters_are_checked_with_errors_that_say_where() {
    let err = |shifts: Vec<Shift>, full: bool| Roster::new(station(), shifts, full).unwrap_err();
    let overlap = err(
        vec![
            shift("白班", &ALL_DAYS, "08:00", "20:00", &["oa"]),
            shift("夜班", &ALL_DAYS, "19:00", "08:00", &["oa2"]),
        ],
        true,
    );
    assert!(matches!(overlap, RosterError::Overlap { .. }), "{overlap}");
    assert_eq!(
        overlap.to_string(),
        "shifts #1 (白班) and #2 (夜班) overlap from Monday 19:00"
    );

    let sunday_night = err(
        vec![
            shift("白班", &ALL_DAYS, "08:00", "20:00", &["oa"]),
            shift("夜班", &[Weekday::Sunday], "20:00", "09:00", &["oa2"]),
        ],
        false,
    );
    assert_eq!(
        sunday_night.to_string(),
        "shifts #1 (白班) and #2 (夜班) overlap from Monday 08:00",
        "overlaps are found across the week's end"
    );

    let gap = err(vec![shift("白班", &ALL_DAYS[..5], "00:00", "24:00", &["oa"])], true);
    assert_eq!(
        gap.to_string(),
        "the roster claims 7x24 coverage but nobody is on duty from Saturday 00:00 to Monday 00:00"
    );
    assert!(matches!(err(vec![], false), RosterError::NoShifts));
    assert!(matches!(
        err(vec![shift("x", &[], "08:00", "20:00", &["oa"])], false),
        RosterError::NoDays { .. }
    ));
    assert!(matches!(
        err(vec![shift("x", &ALL_DAYS, "08:00", "20:00", &[])], false),
        RosterError::NoMembers { .. }
    ));
    assert!(matches!(
        err(
            vec![shift(
                "x",
                &[Weekday::Monday, Weekday::Monday],
                "08:00",
                "20:00",
                &["oa"]
            )],
            false
        ),
        RosterError::DuplicateDay { .. }
    ));
    assert!(matches!(
        err(vec![shift("x", &[Weekday::Monday], "24:00", "08:00", &["oa"])], false),
        RosterError::StartsAtEndOfDay { .. }
    ));
}

#[test]
fn rosters_round_trip_through_json_and_bad_json_is_refused() {
    let r = day_and_night();
    let json = r.to_json();
    assert!(json.contains(r#""start": "20:00""#), "{json}");
    assert_eq!(Roster::from_json(&json).unwrap(), r);
    let bad_time = json.replace(r#""end": "08:00""#, r#""end": "25:00""#);
    let e = Roster::from_json(&bad_time).unwrap_err();
    assert!(e.to_string().contains("25:00"), "{e}");
    let gap = json.replace(r#""end": "08:00""#, r#""end": "07:00""#);
    assert!(matches!(Roster::from_json(&gap), Err(RosterError::Gap { from, .. }) if from == "Tuesday 07:00"));
    assert!(Roster::from_json(r#"{ "unit": "s", "shifts": [], "extra": 1 }"#).is_err());
}
