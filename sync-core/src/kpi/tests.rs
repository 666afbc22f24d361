//! The KPI definitions on small hand-counted cases.

use super::*;
use crate::channel::{Category, Channel};
use crate::clocks::{Calendar, ClockRules, Date};
use crate::hlc::Hlc;
use crate::ids::{UnitId, UserId};
use crate::org::{OrgTree, Unit, UnitKind};
use crate::petition::{EventBody, Location, PetitionHeader, PetitionState, TimelineEvent, derive};

const MIN: i64 = 60_000;

fn cal() -> Calendar {
    Calendar::china()
}

/// Monday 2025-03-03 09:00 China time.
fn t0() -> Timestamp {
    cal()
        .start_of_day(Date::from_ymd(2025, 3, 3).unwrap())
        .plus_minutes(9 * 60)
}

fn unit(id: &str) -> UnitId {
    UnitId::new(id).unwrap()
}

fn event(at: Timestamp, by: &str, unit_for: Option<&str>, body: EventBody) -> TimelineEvent {
    TimelineEvent {
        by: UserId::new(by).unwrap(),
        at: Hlc {
            wall_ms: at.millis(),
            counter: 0,
            node: by.into(),
        },
        unit: unit_for.map(unit),
        body,
    }
}

/// A petition to `station` submitted at `at`, with `steps` (minutes after
/// submission, body) written by an officer of the station.
fn petition(
    at: Timestamp,
    channel: Channel,
    station: &str,
    steps: &[(i64, EventBody)],
    now: Timestamp,
) -> PetitionSummary {
    let header = PetitionHeader {
        id: format!("p-{}", at.millis()),
        channel,
        category: Category::Help,
        title: "t".into(),
        body: "b".into(),
        submitter: UserId::new("res").unwrap(),
        recorded_by: UserId::new("res").unwrap(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: unit("village"),
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let mut events = vec![event(at, "res", None, EventBody::Submitted { unit: unit(station) })];
    for (m, body) in steps {
        let by = if matches!(body, EventBody::FollowUp { .. }) {
            "res"
        } else {
            "officer"
        };
        let unit_for = if by == "res" { None } else { Some(station) };
        events.push(event(at.plus_minutes(*m), by, unit_for, body.clone()));
    }
    let state: PetitionState = derive(&header, &events, &[]);
    PetitionSummary::new(&header, &state, &ClockRules::default(), &cal(), now)
}

fn org() -> OrgTree {
    let u = |id: &str, kind, parent: Option<&str>| Unit {
        id: unit(id),
        name: id.into(),
        kind,
        parent: parent.map(unit),
    };
    OrgTree::new([
        u("county", UnitKind::County, None),
        u("east", UnitKind::Station, Some("county")),
        u("west", UnitKind::Station, Some("county")),
        u("village", UnitKind::Village, Some("east")),
    ])
}

fn inputs(s: &[PetitionSummary]) -> Vec<KpiRow> {
    s.iter().map(KpiRow::of).collect()
}

#[test]
fn the_figures_match_a_hand_count() {
    let now = t0().plus_minutes(8 * 24 * 60); // Tuesday of the next week: 6 working days later.
    let replied = || EventBody::Replied { text: "r".into() };
    let contacted = || EventBody::Contacted {
        method: crate::petition::ContactMethod::Phone,
        note: None,
    };
    let s = vec![
        // Signed in 4 min, contacted in 20, replied after a day, rated 5.
        petition(
            t0(),
            Channel::DirectorMailbox,
            "east",
            &[
                (4, EventBody::Signed),
                (20, contacted()),
                (24 * 60, replied()),
                (
                    25 * 60,
                    EventBody::FollowUp {
                        rating: 5,
                        comment: None,
                    },
                ),
            ],
            now,
        ),
        // Signed after 15 min (late), contacted after 40 (late), never replied: reply overdue.
        petition(
            t0().plus_minutes(60),
            Channel::DirectorMailbox,
            "west",
            &[(15, EventBody::Signed), (40, contacted())],
            now,
        ),
        // Never signed: sign, contact and reply overdue; supervised.
        petition(
            t0().plus_minutes(120),
            Channel::ChiefLine,
            "east",
            &[(30, EventBody::Supervised { note: "n".into() })],
            now,
        ),
        // Submitted before the period: not counted.
        petition(
            t0().plus_minutes(-24 * 60),
            Channel::DirectorMailbox,
            "east",
            &[(1, EventBody::Signed)],
            now,
        ),
    ];
    let q = ReportQuery {
        from: t0(),
        to: t0().plus_minutes(30 * 24 * 60),
        unit: Some(unit("county")),
        category: None,
        channel: None,
        group_by: vec![Dimension::Unit],
    };
    let r = report(&inputs(&s), &q, &org(), &cal(), now);
    let k = &r.total;
    assert_eq!(k.received, 3);
    assert_eq!((k.response_rate.numerator, k.response_rate.denominator), (1, 3));
    assert_eq!(
        (k.contact_in_time_rate.numerator, k.contact_in_time_rate.denominator),
        (1, 3)
    );
    // Reply due within 5 working days: all three are decided 6 working days on.
    assert_eq!(
        (k.on_time_reply_rate.numerator, k.on_time_reply_rate.denominator),
        (1, 3)
    );
    assert_eq!((k.completion_rate.numerator, k.completion_rate.denominator), (1, 3));
    assert_eq!(k.satisfaction.rated, 1);
    assert_eq!(k.satisfaction.mean_rating, Some(5.0));
    // Medians over the signed ones: 4 and 15 minutes.
    assert_eq!(k.median_time_to_sign.median_ms, Some((4 + 15) * MIN / 2));
    assert_eq!(k.median_time_to_sign.count, 2);
    assert_eq!(k.median_time_to_reply.median_ms, Some(24 * 60 * MIN));
    assert_eq!((k.supervised, k.escalated), (1, 0));
    assert_eq!(k.response_rate.clock, ClockBasis::DeviceStamp);
    // Rows per station under the county.
    let rows: Vec<(String, u32)> = r
        .groups
        .iter()
        .map(|g| (g.key.unit.as_ref().unwrap().to_string(), g.kpis.received))
        .collect();
    assert_eq!(rows, vec![("east".into(), 2), ("west".into(), 1)]);
    let csv = r.to_csv();
    assert_eq!(csv.lines().count(), 1 + 1 + 2, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("total,,,,,3,0.3333,1,3,device_stamp"),
        "{csv}"
    );
}

#[test]
fn an_open_clock_is_not_judged_before_its_deadline() {
    let now = t0().plus_minutes(5);
    let s = vec![petition(t0(), Channel::DirectorMailbox, "east", &[], now)];
    let q = ReportQuery {
        from: t0(),
        to: t0().plus_minutes(60),
        unit: None,
        category: None,
        channel: None,
        group_by: vec![Dimension::Period(PeriodLength::Day), Dimension::Channel],
    };
    let r = report(&inputs(&s), &q, &org(), &cal(), now);
    assert_eq!(r.total.received, 1);
    assert_eq!(r.total.response_rate.denominator, 0);
    assert_eq!(r.total.response_rate.value, None);
    assert_eq!(r.groups[0].key.period.as_deref(), Some("2025-03-03"));
    assert_eq!(r.groups[0].key.channel, Some(Channel::DirectorMailbox));
}

/// The petition of `petition(t0(), …)` with each step received `received`
/// minutes after submission (the submission at `t0()`).
fn received_petition(steps: &[(i64, EventBody, i64)], now: Timestamp) -> PetitionSummary {
    let header = PetitionHeader {
        id: "p-received".into(),
        channel: Channel::DirectorMailbox,
        category: Category::Help,
        title: "t".into(),
        body: "b".into(),
        submitter: UserId::new("res").unwrap(),
        recorded_by: UserId::new("res").unwrap(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: unit("village"),
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let mut events = vec![event(t0(), "res", None, EventBody::Submitted { unit: unit("east") })];
    let mut receipts = crate::clocks::Receipts::new();
    receipts.insert(events[0].id().to_string(), t0());
    for (m, body, received) in steps {
        let e = event(t0().plus_minutes(*m), "officer", Some("east"), body.clone());
        receipts.insert(e.id().to_string(), t0().plus_minutes(*received));
        events.push(e);
    }
    let state = derive(&header, &events, &[]);
    PetitionSummary::with_receipts(&header, &state, &ClockRules::default(), &cal(), now, Some(&receipts))
}

#[test]
fn figures_say_which_clock_their_petitions_ran_on() {
    let now = t0().plus_minutes(60);
    let q = ReportQuery {
        from: t0().plus_minutes(-10),
        to: t0().plus_minutes(120),
        unit: None,
        category: None,
        channel: None,
        group_by: vec![],
    };
    // Signed at +5 on a phone that synced at +40: the device's time stands
    // (the earlier of stamp and receipt), and the gap is flagged.
    let offline = received_petition(&[(5, EventBody::Signed, 40)], now);
    let r = report(&inputs(std::slice::from_ref(&offline)), &q, &org(), &cal(), now);
    assert_eq!(r.total.response_rate.clock, ClockBasis::ServerReceipt);
    assert_eq!(r.total.response_rate.numerator, 1, "signed 5 minutes in on the device");
    assert_eq!(r.total.clock_skew_flagged, 1);
    // Stamped at +14 (a clock dragged ahead) but received at +9: on time.
    let ahead = received_petition(&[(14, EventBody::Signed, 9)], now);
    let r = report(&inputs(std::slice::from_ref(&ahead)), &q, &org(), &cal(), now);
    assert_eq!(
        (r.total.response_rate.numerator, r.total.response_rate.denominator),
        (1, 1)
    );
    assert_eq!(r.total.median_time_to_sign.median_ms, Some(9 * MIN));
    assert_eq!(r.total.clock_skew_flagged, 0, "5 minutes apart is not flagged");
    // One petition from before receipts were recorded: the figure says mixed.
    let old = petition(t0(), Channel::DirectorMailbox, "east", &[(5, EventBody::Signed)], now);
    let r = report(&inputs(&[offline, old]), &q, &org(), &cal(), now);
    assert_eq!(r.total.response_rate.clock, ClockBasis::Mixed);
    assert!(r.to_csv().lines().nth(1).unwrap().contains(",mixed,"));
}
