//! Status derivation: one test per workflow rule, and the written conflict rules.

mod common;

use common::*;
use sync_core::doc::Message;
use sync_core::petition::status::rules;
use sync_core::petition::{ContactMethod, EventBody, Outcome, PetitionDoc, Status};

fn sign(doc: &mut PetitionDoc, minutes: i64) {
    record(doc, &officer_a(), Some("station-a"), minutes, EventBody::Signed);
}

fn reply(doc: &mut PetitionDoc, unit: &str, minutes: i64) {
    record(
        doc,
        &officer_a(),
        Some(unit),
        minutes,
        EventBody::Replied {
            text: "已协调水利站恢复供水".into(),
        },
    );
}

fn msg_template() -> Message {
    Message {
        by: user("x"),
        at: "0000000000000.00000.x".parse().unwrap(),
        text: String::new(),
        mentions: vec![],
        reply_to: None,
        attachments: vec![],
        tag: None,
        appeal: None,
    }
}

fn superseded_rule(doc: &PetitionDoc, index: usize) -> Option<String> {
    match &doc.state().unwrap().outcomes[index].1 {
        Outcome::Superseded { rule, .. } => Some(rule.clone()),
        Outcome::Applied => None,
    }
}

#[test]
fn a_new_petition_waits_for_the_routed_unit_to_sign() {
    let doc = petition();
    let s = doc.state().unwrap();
    assert_eq!(s.status, Status::Submitted);
    assert_eq!(s.lead, Some(unit("station-a")));
    assert_eq!(s.submitted_at.map(|t| t.millis()), Some(T0.millis()));
    assert!(s.involved_units.contains(&unit("village-a1")) && s.involved_units.contains(&unit("station-a")));
}

#[test]
fn the_full_loop_sign_contact_reply_follow_up_publish_close() {
    let mut doc = petition();
    sign(&mut doc, 3);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        12,
        EventBody::Contacted {
            method: ContactMethod::Phone,
            note: None,
        },
    );
    reply(&mut doc, "station-a", 600);
    record(
        &mut doc,
        &resident(),
        None,
        700,
        EventBody::FollowUp {
            rating: 5,
            comment: Some("满意".into()),
        },
    );
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        710,
        EventBody::Published {
            summary: "已恢复供水".into(),
        },
    );
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        720,
        EventBody::Closed { note: None },
    );
    let s = doc.state().unwrap();
    assert_eq!(s.status, Status::Closed);
    assert_eq!(s.signed_at, Some(T0.plus_minutes(3)));
    assert_eq!(s.contacted_at, Some(T0.plus_minutes(12)));
    assert_eq!(s.replied_at, Some(T0.plus_minutes(600)));
    assert_eq!(s.rating, Some(5));
    assert!(s.published);
    assert!(s.outcomes.iter().all(|(_, o)| *o == Outcome::Applied));
}

#[test]
fn two_offline_signatures_the_earliest_wins_and_the_other_is_kept_as_superseded() {
    let base = petition();
    let mut phone_a = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone_b = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(&mut phone_b, &officer_a2(), Some("station-a"), 5, EventBody::Signed);
    record(&mut phone_a, &officer_a(), Some("station-a"), 4, EventBody::Signed);
    phone_a.doc_mut().merge(phone_b.doc_mut()).unwrap();
    let s = phone_a.state().unwrap();
    assert_eq!(s.status, Status::Signed);
    assert_eq!(s.handler, Some(user("oa")));
    assert_eq!(s.outcomes.len(), 3);
    assert_eq!(superseded_rule(&phone_a, 2).as_deref(), Some(rules::ALREADY_SIGNED));
    assert_eq!(
        phone_a.events().unwrap().len(),
        3,
        "the losing signature stays in the timeline"
    );
}

#[test]
fn transfer_then_concurrent_reply_from_the_old_lead_does_not_move_status() {
    let mut base = petition();
    sign(&mut base, 2);
    let mut desk = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut field = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(
        &mut desk,
        &officer_a(),
        Some("station-a"),
        5,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    );
    reply(&mut field, "station-a", 9);
    desk.doc_mut().merge(field.doc_mut()).unwrap();
    let s = desk.state().unwrap();
    assert_eq!(s.status, Status::Dispatched);
    assert_eq!(s.lead, Some(unit("water")));
    assert_eq!(superseded_rule(&desk, 3).as_deref(), Some(rules::NOT_LEAD));
}

#[test]
fn reply_then_concurrent_transfer_keeps_the_reply() {
    let mut base = petition();
    sign(&mut base, 2);
    let mut desk = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut field = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    reply(&mut field, "station-a", 4);
    record(
        &mut desk,
        &officer_a(),
        Some("station-a"),
        6,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    );
    field.doc_mut().merge(desk.doc_mut()).unwrap();
    let s = field.state().unwrap();
    assert_eq!(s.status, Status::Replied);
    assert_eq!(s.lead, Some(unit("station-a")));
    assert_eq!(superseded_rule(&field, 3).as_deref(), Some(rules::NOT_IN_HANDLING));
}

#[test]
fn a_resident_comment_concurrent_with_close_flags_the_petition_without_reopening() {
    let mut base = petition();
    sign(&mut base, 2);
    reply(&mut base, "station-a", 30);
    let mut officer = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(
        &mut officer,
        &officer_a(),
        Some("station-a"),
        40,
        EventBody::Closed { note: None },
    );
    let msg = Message {
        text: "水还是没来".into(),
        ..msg_template()
    };
    phone.post(&mut author(&resident()), T0.plus_minutes(41), msg).unwrap();
    officer.doc_mut().merge(phone.doc_mut()).unwrap();
    let s = officer.state().unwrap();
    assert_eq!(s.status, Status::Closed, "a comment alone does not reopen");
    assert!(s.awaiting_handler, "the holder must see the comment");
    record(
        &mut officer,
        &officer_a(),
        Some("station-a"),
        50,
        EventBody::Progress {
            note: "已再次联系".into(),
        },
    );
    assert!(
        officer.state().unwrap().awaiting_handler,
        "a superseded event (progress on a closed petition) answers nobody"
    );
    let answer = Message {
        text: "明天上门查看".into(),
        ..msg_template()
    };
    officer
        .post(&mut author(&officer_a()), T0.plus_minutes(51), answer)
        .unwrap();
    assert!(
        !officer.state().unwrap().awaiting_handler,
        "a handler's message after the comment answers it"
    );
}

#[test]
fn dispatch_accept_return_and_assist() {
    let mut doc = petition();
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        3,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![unit("village-a1")],
            note: Some("水利问题".into()),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!(
        (s.status, s.signed_at),
        (Status::Dispatched, Some(T0.plus_minutes(3))),
        "routing an unsigned petition signs it"
    );
    record(
        &mut doc,
        &water_staff(),
        Some("water"),
        5,
        EventBody::Returned {
            reason: "不属于本部门".into(),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!((s.status, s.lead.clone()), (Status::Signed, Some(unit("station-a"))));
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        6,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![unit("village-a1")],
            note: None,
        },
    );
    record(&mut doc, &water_staff(), Some("water"), 8, EventBody::Accepted);
    record(
        &mut doc,
        &officer_a(),
        Some("village-a1"),
        9,
        EventBody::Progress {
            note: "村委会协助".into(),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!((s.status, s.handler.clone()), (Status::Handling, Some(user("w1"))));
    assert!(s.outcomes.iter().all(|(_, o)| *o == Outcome::Applied));
    record(
        &mut doc,
        &officer_a(),
        Some("village-a1"),
        10,
        EventBody::Replied { text: "x".into() },
    );
    assert_eq!(
        superseded_rule(&doc, 6).as_deref(),
        Some(rules::NOT_LEAD),
        "an assisting unit does not reply"
    );
}

#[test]
fn escalation_moves_the_petition_up_and_keeps_signing_due() {
    let mut doc = petition();
    record(
        &mut doc,
        &system(),
        Some("station-a"),
        11,
        EventBody::Escalated {
            to: unit("county"),
            reason: "签收超时".into(),
            clock: None,
        },
    );
    let s = doc.state().unwrap();
    assert_eq!(
        (s.status, s.lead.clone(), s.escalations),
        (Status::Submitted, Some(unit("county")), 1)
    );
    record(&mut doc, &leader(), Some("county"), 12, EventBody::Signed);
    record(
        &mut doc,
        &leader(),
        Some("county"),
        13,
        EventBody::Supervised {
            note: "限期办结".into(),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!(s.status, Status::Signed);
    assert!(s.supervised);
}

/// The server's sweep escalates for `clock` at T0 + `minutes`, on its own replica.
fn auto_escalate(doc: &mut PetitionDoc, minutes: i64, clock: sync_core::ClockKind) {
    record(
        doc,
        &system(),
        Some("station-a"),
        minutes,
        EventBody::Escalated {
            to: unit("county"),
            reason: "签收超时，自动提级".into(),
            clock: Some(clock),
        },
    );
}

#[test]
fn an_automatic_escalation_on_a_stale_view_is_moot_on_every_replica() {
    let base = petition();
    // The station signs offline at minute 5; the county, not having seen
    // it, escalates for the sign clock at minute 11.
    let mut station = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut county = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    sign(&mut station, 5);
    auto_escalate(&mut county, 11, sync_core::ClockKind::Sign);
    assert_eq!(
        county.state().unwrap().lead,
        Some(unit("county")),
        "escalated on its view"
    );
    let mut merged_here = station.doc().clone();
    merged_here.merge(&mut county.doc().clone()).unwrap();
    let mut merged_there = county.doc().clone();
    merged_there.merge(&mut station.doc().clone()).unwrap();
    for doc in [merged_here, merged_there] {
        let doc = PetitionDoc::from_doc(doc).unwrap();
        let s = doc.state().unwrap();
        assert_eq!(
            (s.status, s.lead.clone(), s.escalations),
            (Status::Signed, Some(unit("station-a")), 0)
        );
        assert_eq!(superseded_rule(&doc, 2).as_deref(), Some(rules::CLOCK_MET));
    }

    // Contacting first makes a contact-clock escalation moot too; a sign
    // does not (the contact clock still ran).
    let mut station = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut county = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    sign(&mut station, 5);
    auto_escalate(&mut county, 40, sync_core::ClockKind::Contact);
    station.doc_mut().merge(county.doc_mut()).unwrap();
    assert_eq!(station.state().unwrap().lead, Some(unit("county")));
    let mut station = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut county = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    sign(&mut station, 5);
    record(
        &mut station,
        &officer_a(),
        Some("station-a"),
        20,
        EventBody::Contacted {
            method: ContactMethod::Phone,
            note: None,
        },
    );
    auto_escalate(&mut county, 40, sync_core::ClockKind::Contact);
    station.doc_mut().merge(county.doc_mut()).unwrap();
    assert_eq!(superseded_rule(&station, 3).as_deref(), Some(rules::CLOCK_MET));
}

#[test]
fn an_escalation_stamped_before_the_step_stands_and_a_persons_always_does() {
    // Signed after the sweep escalated (device stamp later): the escalation
    // stands, and the old lead's late signature is set aside.
    let base = petition();
    let mut station = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut county = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    sign(&mut station, 30);
    auto_escalate(&mut county, 11, sync_core::ClockKind::Sign);
    station.doc_mut().merge(county.doc_mut()).unwrap();
    let s = station.state().unwrap();
    assert_eq!((s.lead.clone(), s.escalations), (Some(unit("county")), 1));
    assert_eq!(superseded_rule(&station, 2).as_deref(), Some(rules::NOT_LEAD));
    // A leader's escalation names no clock: signing first does not undo it.
    let mut doc = petition();
    sign(&mut doc, 3);
    record(
        &mut doc,
        &leader(),
        Some("station-a"),
        9,
        EventBody::Escalated {
            to: unit("county"),
            reason: "群众反映强烈".into(),
            clock: None,
        },
    );
    assert_eq!(doc.state().unwrap().lead, Some(unit("county")));
}

#[test]
fn close_needs_a_reply_and_reopen_restarts_the_reply_clock() {
    let mut doc = petition();
    sign(&mut doc, 1);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        2,
        EventBody::Closed { note: None },
    );
    assert_eq!(superseded_rule(&doc, 2).as_deref(), Some(rules::NOT_REPLIED));
    reply(&mut doc, "station-a", 3);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        4,
        EventBody::Closed { note: None },
    );
    record(
        &mut doc,
        &resident(),
        None,
        100,
        EventBody::Reopened {
            reason: "问题复发".into(),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!(s.status, Status::Handling);
    assert_eq!(s.reply_clock_from, Some(T0.plus_minutes(100)));
    assert_eq!(s.closed_at, None);
}

#[test]
fn withdraw_merge_and_finished_petitions() {
    let mut doc = petition();
    record(&mut doc, &resident(), None, 1, EventBody::Withdrawn { reason: None });
    sign(&mut doc, 2);
    assert_eq!(doc.state().unwrap().status, Status::Withdrawn);
    assert_eq!(superseded_rule(&doc, 2).as_deref(), Some(rules::FINISHED));

    let mut doc = petition();
    sign(&mut doc, 1);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        2,
        EventBody::Merged {
            into: "automerge:other".into(),
        },
    );
    let s = doc.state().unwrap();
    assert_eq!(
        (s.status, s.merged_into.as_deref()),
        (Status::Merged, Some("automerge:other"))
    );
}

#[test]
fn follow_up_before_an_answer_is_superseded_and_latest_rating_counts() {
    let mut doc = petition();
    record(
        &mut doc,
        &resident(),
        None,
        1,
        EventBody::FollowUp {
            rating: 1,
            comment: None,
        },
    );
    assert_eq!(superseded_rule(&doc, 1).as_deref(), Some(rules::NOT_ANSWERED));
    sign(&mut doc, 2);
    reply(&mut doc, "station-a", 3);
    record(
        &mut doc,
        &resident(),
        None,
        4,
        EventBody::FollowUp {
            rating: 2,
            comment: None,
        },
    );
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        5,
        EventBody::FollowUp {
            rating: 4,
            comment: Some("回访".into()),
        },
    );
    assert_eq!(doc.state().unwrap().rating, Some(4));
}

#[test]
fn events_stamped_before_the_submission_are_superseded() {
    let doc = petition();
    let header = doc.header().unwrap();
    let mut events = doc.events().unwrap();
    // A writer whose clock never saw the submission: a broken or forged replica.
    let mut early = sync_core::petition::TimelineEvent {
        by: user("oa"),
        at: "1749999000000.00000.early".parse().unwrap(),
        unit: Some(unit("station-a")),
        body: EventBody::Signed,
    };
    events.push(early.clone());
    let s = sync_core::petition::derive(&header, &events, &[]);
    assert_eq!(s.status, Status::Submitted);
    assert_eq!(
        s.outcomes[0].1,
        Outcome::Superseded {
            rule: rules::BEFORE_SUBMISSION.into(),
            after: None
        }
    );
    // `record` observes every stamp in the document first, so a well-behaved writer is never early.
    let mut doc = doc;
    let mut a = author(&officer_a());
    doc.record(&mut a, T0.plus_minutes(-5), Some(unit("station-a")), EventBody::Signed)
        .unwrap();
    early = doc.events().unwrap().pop().unwrap();
    assert!(early.at > doc.events().unwrap()[0].at);
    assert_eq!(doc.state().unwrap().status, Status::Signed);
}

#[test]
fn derivation_ignores_list_order() {
    let mut doc = petition();
    sign(&mut doc, 1);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        2,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    );
    record(&mut doc, &water_staff(), Some("water"), 3, EventBody::Accepted);
    reply(&mut doc, "water", 4);
    let header = doc.header().unwrap();
    let events = doc.events().unwrap();
    let expected = sync_core::petition::derive(&header, &events, &[]);
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(sync_core::petition::derive(&header, &reversed, &[]), expected);
}

#[test]
fn the_summary_carries_status_holder_and_deadlines() {
    let mut doc = petition();
    sign(&mut doc, 3);
    let cal = sync_core::Calendar::china();
    let rules = sync_core::ClockRules::default();
    let s = doc.summary(&rules, &cal, T0.plus_minutes(45)).unwrap();
    assert_eq!((s.status, s.lead.clone()), (Status::Signed, Some(unit("station-a"))));
    assert_eq!(s.sign_due, Some(T0.plus_minutes(10)));
    assert_eq!(s.contact_due, Some(T0.plus_minutes(30)));
    assert!(s.overdue, "nobody contacted the writer within 30 minutes");
    assert_eq!(s.next_due, s.contact_due);
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        46,
        EventBody::Contacted {
            method: ContactMethod::Phone,
            note: None,
        },
    );
    let s = doc.summary(&rules, &cal, T0.plus_minutes(47)).unwrap();
    assert!(!s.overdue);
    assert_eq!(s.next_due, s.reply_due);
}
