//! The policy matrix: each role × action, allowed and refused, with the rule that refuses.

mod common;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use common::*;
use sync_core::directory::{DirectoryDoc, Household};
use sync_core::doc::{Mention, Message};
use sync_core::notice::{Audience, NewNotice, NoticeDoc, NoticeKind, ReceiptKind};
use sync_core::petition::{ContactMethod, EventBody, PetitionDoc};
use sync_core::policy::{Checked, DocFacts, Rule, Visibility, check_changes, check_local, may_read};
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::{HouseholdId, Principal};

fn event_as(who: &Principal, unit_id: Option<&str>, body: EventBody) -> Checked {
    check_edit(&petition(), who, 9, |d| record(d, who, unit_id, 20, body))
}

/// Checks the creation of a whole new document as `who`.
fn create_as(who: &Principal, mut doc: AutoCommit) -> Checked {
    let org = org();
    let changes = doc.get_changes(&[]);
    check_changes(&ctx(&org, who), AutoCommit::new(), changes)
}

/// Checks raw edits made on a fork of `doc` as `who`.
fn raw_edit(doc: &AutoCommit, who: &Principal, edit: impl FnOnce(&mut AutoCommit)) -> Checked {
    let mut base = doc.clone();
    let mut fork = base.fork().with_actor(actor(9));
    edit(&mut fork);
    fork.commit();
    let changes = fork.get_changes(&base.get_heads());
    let org = org();
    check_changes(&ctx(&org, who), base, changes)
}

// ---- petitions: creation ----

#[test]
fn residents_file_petitions_in_their_own_name_only() {
    let r = resident();
    let own = PetitionDoc::create(actor(1), header(&r, &r), unit("station-a"), &mut author(&r), T0).unwrap();
    allowed(&create_as(&r, own.into_doc()));
    let other = PetitionDoc::create(
        actor(1),
        header(&neighbour(), &r),
        unit("station-a"),
        &mut author(&r),
        T0,
    )
    .unwrap();
    refused(&create_as(&r, other.into_doc()), Rule::NotSubmitter);
    let mut walk_in = header(&r, &r);
    walk_in.channel = sync_core::Channel::WalkIn;
    let walk_in = PetitionDoc::create(actor(1), walk_in, unit("station-a"), &mut author(&r), T0).unwrap();
    refused(&create_as(&r, walk_in.into_doc()), Rule::NotAllowedToCreate);
}

#[test]
fn officers_record_walk_ins_within_their_jurisdiction() {
    let (r, oa, ob) = (resident(), officer_a(), officer_b());
    let mut h = header(&r, &oa);
    h.channel = sync_core::Channel::WalkIn;
    let doc = PetitionDoc::create(actor(1), h.clone(), unit("station-a"), &mut author(&oa), T0).unwrap();
    allowed(&create_as(&oa, doc.into_doc()));
    let mut hb = h.clone();
    hb.recorded_by = ob.user.clone();
    let doc = PetitionDoc::create(actor(1), hb, unit("station-a"), &mut author(&ob), T0).unwrap();
    refused(&create_as(&ob, doc.into_doc()), Rule::NotAllowedToCreate);
    let doc = PetitionDoc::create(actor(1), h, unit("station-a"), &mut author(&oa), T0).unwrap();
    refused(&create_as(&ob, doc.into_doc()), Rule::ForgedAuthor);
}

#[test]
fn a_petition_routed_to_an_unknown_unit_is_refused() {
    let r = resident();
    let doc = PetitionDoc::create(actor(1), header(&r, &r), unit("nowhere"), &mut author(&r), T0).unwrap();
    refused(&create_as(&r, doc.into_doc()), Rule::UnknownUnit);
}

#[test]
fn a_new_petition_with_extra_events_or_fields_is_malformed() {
    let r = resident();
    let mut doc = PetitionDoc::create(actor(1), header(&r, &r), unit("station-a"), &mut author(&r), T0)
        .unwrap()
        .into_doc();
    doc.put(ROOT, "status", "closed").unwrap();
    doc.commit();
    // Two changes: the creation is fine, the second writes to the root.
    let c = create_as(&r, doc);
    assert_eq!(c.accepted.len(), 1);
    assert_eq!(c.refused[0].rule, Rule::Immutable);

    let mut raw = AutoCommit::new().with_actor(actor(1));
    raw.put(ROOT, "type", "petition").unwrap();
    raw.put(ROOT, "schema", 1).unwrap();
    raw.commit();
    refused(&create_as(&r, raw), Rule::Malformed);
}

// ---- petitions: the role × action matrix ----

#[test]
fn residents_never_record_handler_events() {
    let r = resident();
    for body in [
        EventBody::Signed,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
        EventBody::Replied { text: "ok".into() },
        EventBody::Closed { note: None },
        EventBody::Escalated {
            to: unit("county"),
            reason: "slow".into(),
            clock: None,
        },
    ] {
        refused(&event_as(&r, Some("station-a"), body), Rule::RoleRequired);
    }
}

#[test]
fn residents_rate_withdraw_and_reopen_their_own_petition_only() {
    allowed(&event_as(&resident(), None, EventBody::Withdrawn { reason: None }));
    allowed(&event_as(
        &resident(),
        None,
        EventBody::FollowUp {
            rating: 4,
            comment: None,
        },
    ));
    allowed(&event_as(
        &resident(),
        None,
        EventBody::Reopened { reason: "again".into() },
    ));
    refused(
        &event_as(&neighbour(), None, EventBody::Withdrawn { reason: None }),
        Rule::NotSubmitter,
    );
    refused(
        &event_as(
            &neighbour(),
            None,
            EventBody::FollowUp {
                rating: 1,
                comment: None,
            },
        ),
        Rule::NotSubmitter,
    );
    refused(
        &event_as(&officer_a(), None, EventBody::Withdrawn { reason: None }),
        Rule::NotSubmitter,
    );
}

#[test]
fn officers_act_within_their_jurisdiction_and_the_units_the_petition_was_routed_to() {
    allowed(&event_as(&officer_a(), Some("station-a"), EventBody::Signed));
    allowed(&event_as(
        &officer_a(),
        Some("station-a"),
        EventBody::Contacted {
            method: ContactMethod::Visit,
            note: None,
        },
    ));
    allowed(&event_as(
        &officer_a(),
        Some("station-a"),
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    ));
    allowed(&event_as(&leader(), Some("station-a"), EventBody::Signed));
    refused(
        &event_as(&officer_b(), Some("station-a"), EventBody::Signed),
        Rule::NotInJurisdiction,
    );
    refused(
        &event_as(&officer_b(), Some("station-b"), EventBody::Signed),
        Rule::NotInJurisdiction,
    );
    refused(
        &event_as(&water_staff(), Some("water"), EventBody::Signed),
        Rule::NotInJurisdiction,
    );
    refused(
        &event_as(
            &officer_a(),
            Some("station-a"),
            EventBody::Transferred {
                to: unit("atlantis"),
                assist: vec![],
                note: None,
            },
        ),
        Rule::UnknownUnit,
    );
}

#[test]
fn departments_act_once_the_petition_is_dispatched_to_them() {
    let mut doc = petition();
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        3,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    );
    allowed(&check_edit(&doc, &water_staff(), 9, |d| {
        record(d, &water_staff(), Some("water"), 5, EventBody::Accepted)
    }));
    refused(
        &check_edit(&doc, &water_staff(), 9, |d| {
            record(
                d,
                &water_staff(),
                Some("water"),
                5,
                EventBody::Transferred {
                    to: unit("county"),
                    assist: vec![],
                    note: None,
                },
            )
        }),
        Rule::RoleRequired,
    );
}

#[test]
fn only_leaders_supervise_and_the_server_escalates() {
    let note = || EventBody::Supervised { note: "限期".into() };
    allowed(&event_as(&leader(), Some("station-a"), note()));
    refused(&event_as(&officer_a(), Some("station-a"), note()), Rule::RoleRequired);
    allowed(&event_as(
        &system(),
        Some("station-a"),
        EventBody::Escalated {
            to: unit("county"),
            reason: "overdue".into(),
            clock: None,
        },
    ));
}

#[test]
fn an_event_by_someone_else_is_forged() {
    let c = check_edit(&petition(), &officer_b(), 9, |d| {
        record(d, &officer_a(), Some("station-a"), 5, EventBody::Signed)
    });
    refused(&c, Rule::ForgedAuthor);
}

#[test]
fn a_submission_after_creation_is_refused() {
    refused(
        &event_as(
            &resident(),
            None,
            EventBody::Submitted {
                unit: unit("station-b"),
            },
        ),
        Rule::CreationOnly,
    );
}

#[test]
fn nobody_rewrites_or_deletes_a_timeline_event_or_the_header() {
    let doc = petition().into_doc();
    let timeline = doc.get(ROOT, "timeline").unwrap().unwrap().1;
    let first = doc.get(&timeline, 0).unwrap().unwrap().1;
    let header = doc.get(ROOT, "header").unwrap().unwrap().1;
    for who in [resident(), officer_a(), leader(), system()] {
        let t = first.clone();
        refused(
            &raw_edit(&doc, &who, |d| d.put(&t, "unit", "station-b").unwrap()),
            Rule::Immutable,
        );
        let l = timeline.clone();
        refused(&raw_edit(&doc, &who, |d| d.delete(&l, 0).unwrap()), Rule::AppendOnly);
        let h = header.clone();
        refused(
            &raw_edit(&doc, &who, |d| d.put(&h, "title", "改过的标题").unwrap()),
            Rule::Immutable,
        );
    }
}

#[test]
fn counters_and_text_objects_are_unsupported() {
    let doc = petition().into_doc();
    refused(
        &raw_edit(&doc, &officer_a(), |d| {
            d.put(ROOT, "n", automerge::ScalarValue::counter(1))
                .and_then(|_| d.increment(ROOT, "n", 1))
                .unwrap()
        }),
        Rule::UnsupportedOp,
    );
    let conv = doc.get(ROOT, "conversation").unwrap().unwrap().1;
    refused(
        &raw_edit(&doc, &resident(), |d| {
            d.insert_object(&conv, 0, ObjType::Text).unwrap();
        }),
        Rule::UnsupportedOp,
    );
}

#[test]
fn conversation_belongs_to_the_submitter_and_the_handlers() {
    let msg = || Message {
        by: user("x"),
        at: "0000000000000.00000.x".parse().unwrap(),
        text: "请尽快处理".into(),
        mentions: vec![],
        reply_to: None,
        attachments: vec![],
        tag: None,
        appeal: None,
    };
    let post = |who: Principal| {
        check_edit(&petition(), &who, 9, |d| {
            d.post(&mut author(&who), T0.plus_minutes(5), msg()).unwrap();
        })
    };
    allowed(&post(resident()));
    allowed(&post(officer_a()));
    refused(&post(neighbour()), Rule::NotSubmitter);
    refused(&post(officer_b()), Rule::NotInJurisdiction);
}

#[test]
fn stamps_far_in_the_future_and_duplicate_stamps_are_refused() {
    let c = check_edit(&petition(), &officer_a(), 9, |d| {
        record(d, &officer_a(), Some("station-a"), 3 * 24 * 60, EventBody::Signed)
    });
    refused(&c, Rule::FutureStamp);
    // Within the day the allowance once was: a stamp 23 hours ahead would
    // drag every later server stamp with it (a sign a second later would be
    // met late by 23 hours), so it is refused too.
    let ahead = |minutes: i64| {
        check_edit(&petition(), &officer_a(), 9, |d| {
            record(d, &officer_a(), Some("station-a"), 60 + minutes, EventBody::Signed)
        })
    };
    refused(&ahead(23 * 60), Rule::FutureStamp);
    refused(&ahead(6), Rule::FutureStamp);
    // A phone clock a few minutes fast is fine.
    allowed(&ahead(4));

    // The same stamp twice, as a replica with a broken clock would write it.
    let mut doc = petition();
    let mut a = author(&officer_a());
    let mut twin = a.clone();
    doc.record(&mut a, T0.plus_minutes(5), Some(unit("station-a")), EventBody::Signed)
        .unwrap();
    let c = check_edit(&doc, &officer_a(), 9, |d| {
        // A clone of the clock that already issued the stamp issues it again.
        let at = twin.clock.tick(T0.plus_minutes(5));
        let ev = sync_core::petition::TimelineEvent {
            by: user("oa"),
            at,
            unit: Some(unit("station-a")),
            body: EventBody::Progress { note: "dup".into() },
        };
        let list = d.doc().get(ROOT, "timeline").unwrap().unwrap().1;
        let doc = d.doc_mut();
        let obj = doc.insert_object(&list, doc.length(&list), ObjType::Map).unwrap();
        doc.put(&obj, "kind", "progress").unwrap();
        doc.put(&obj, "by", ev.by.as_str()).unwrap();
        doc.put(&obj, "at", ev.at.to_string()).unwrap();
        doc.put(&obj, "unit", "station-a").unwrap();
        doc.put(&obj, "note", "dup").unwrap();
        doc.commit();
    });
    refused(&c, Rule::DuplicateEntry);
}

#[test]
fn a_refused_change_drops_its_dependents_but_keeps_independent_ones() {
    let base = petition();
    let mut signing = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(5))).unwrap();
    record(&mut signing, &officer_a(), Some("station-a"), 3, EventBody::Signed);
    let mut other = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(6))).unwrap();
    // A rating in the resident's name, delivered by the officer, then a note built on it.
    record(
        &mut other,
        &resident(),
        None,
        4,
        EventBody::FollowUp {
            rating: 5,
            comment: None,
        },
    );
    record(
        &mut other,
        &officer_a(),
        Some("station-a"),
        5,
        EventBody::Progress { note: "x".into() },
    );
    let mut base_doc = base.doc().clone();
    let heads = base_doc.get_heads();
    let mut changes = signing.doc_mut().get_changes(&heads);
    changes.extend(other.doc_mut().get_changes(&heads));
    let org = org();
    let who = officer_a();
    let c = check_changes(&ctx(&org, &who), base_doc, changes);
    assert_eq!(c.accepted.len(), 1, "the signature is independent and kept");
    let rules: Vec<Rule> = c.refused.iter().map(|r| r.rule).collect();
    assert_eq!(rules, vec![Rule::ForgedAuthor, Rule::DependsOnRefused]);
    let mut kept = PetitionDoc::from_doc(c.doc).unwrap();
    assert_eq!(
        kept.events().unwrap().len(),
        2,
        "nothing of the refused changes is stored"
    );
    assert_eq!(kept.doc_mut().get_heads(), signing.doc_mut().get_heads());
}

#[test]
fn resending_a_stored_change_is_a_duplicate_not_an_error() {
    let mut doc = petition();
    let before = doc.doc().clone();
    record(&mut doc, &officer_a(), Some("station-a"), 3, EventBody::Signed);
    let mut b = before.clone();
    let changes = doc.doc_mut().get_changes(&b.get_heads());
    let org = org();
    let who = officer_a();
    let c = check_changes(&ctx(&org, &who), doc.doc().clone(), changes);
    assert!(c.accepted.is_empty() && c.refused.is_empty());
    assert_eq!(c.duplicates.len(), 1);
}

#[test]
fn check_local_rolls_a_refused_edit_back_and_keeps_the_document_usable() {
    let org = org();
    let who = resident();
    let mut doc = petition();
    let heads = doc.doc_mut().get_heads();
    record(&mut doc, &who, Some("station-a"), 3, EventBody::Signed);
    let err = check_local(&ctx(&org, &who), doc.doc_mut(), &heads).unwrap_err();
    assert_eq!(err.rule, Rule::RoleRequired);
    assert_eq!(doc.doc_mut().get_heads(), heads);
    let heads = doc.doc_mut().get_heads();
    record(&mut doc, &who, None, 4, EventBody::Withdrawn { reason: None });
    check_local(&ctx(&org, &who), doc.doc_mut(), &heads).unwrap();
    assert_eq!(doc.state().unwrap().status, sync_core::petition::Status::Withdrawn);
}

// ---- rooms ----

fn room() -> RoomDoc {
    let info = RoomInfo {
        id: "room-1".into(),
        kind: RoomKind::VillageRoom,
        name: "A1 议事厅".into(),
        unit: unit("village-a1"),
        household: None,
        created_by: user("oa"),
    };
    RoomDoc::create(
        actor(1),
        info,
        [(user("r1"), MemberRole::Member), (user("r2"), MemberRole::Moderator)],
    )
    .unwrap()
}

fn room_edit(doc: &RoomDoc, who: &Principal, edit: impl FnOnce(&mut RoomDoc)) -> Checked {
    let mut base = doc.doc().clone();
    let mut fork = RoomDoc::from_doc(base.fork().with_actor(actor(9))).unwrap();
    edit(&mut fork);
    let changes = fork.doc_mut().get_changes(&base.get_heads());
    let org = org();
    check_changes(&ctx(&org, who), base, changes)
}

fn text(t: &str) -> Message {
    Message {
        by: user("x"),
        at: "0000000000000.00000.x".parse().unwrap(),
        text: t.into(),
        mentions: vec![],
        reply_to: None,
        attachments: vec![],
        tag: None,
        appeal: None,
    }
}

#[test]
fn rooms_are_opened_by_officers_of_their_unit() {
    allowed(&create_as(&officer_a(), room().into_doc()));
    refused(&create_as(&officer_b(), room().into_doc()), Rule::ForgedAuthor);
    let info = RoomInfo {
        id: "room-2".into(),
        kind: RoomKind::VillageRoom,
        name: "x".into(),
        unit: unit("village-a1"),
        household: None,
        created_by: user("r1"),
    };
    refused(
        &create_as(&resident(), RoomDoc::create(actor(1), info, []).unwrap().into_doc()),
        Rule::NotAllowedToCreate,
    );
    let line = RoomInfo {
        id: "line-1".into(),
        kind: RoomKind::HouseholdLine,
        name: "h1 ↔ A".into(),
        unit: unit("station-a"),
        household: Some(HouseholdId::new("h1").unwrap()),
        created_by: user("r1"),
    };
    allowed(&create_as(
        &resident(),
        RoomDoc::create(actor(1), line.clone(), []).unwrap().into_doc(),
    ));
    let mut not_mine = line;
    not_mine.created_by = user("r2");
    refused(
        &create_as(
            &neighbour(),
            RoomDoc::create(actor(1), not_mine, []).unwrap().into_doc(),
        ),
        Rule::NotAllowedToCreate,
    );
}

#[test]
fn members_speak_outsiders_do_not_and_only_moderators_call_everyone() {
    let doc = room();
    let post = |who: Principal, m: Message| {
        room_edit(&doc, &who, |d| {
            d.post(&mut author(&who), T0, m).unwrap();
        })
    };
    allowed(&post(resident(), text("@包国 户口本丢了怎么办")));
    allowed(&post(officer_a(), text("请带身份证来所里")));
    refused(&post(officer_b(), text("hi")), Rule::NotMember);
    let all = Message {
        mentions: vec![Mention::All],
        ..text("明天开会")
    };
    refused(&post(resident(), all.clone()), Rule::NotModerator);
    allowed(&post(neighbour(), all));
}

#[test]
fn redaction_by_author_or_moderator_keeps_the_audit_record() {
    let mut doc = room();
    let id = doc.post(&mut author(&resident()), T0, text("私人电话 138…")).unwrap();
    allowed(&room_edit(&doc, &resident(), |d| {
        d.redact(&mut author(&resident()), T0.plus_minutes(1), &id, "含个人信息")
            .unwrap();
    }));
    allowed(&room_edit(&doc, &officer_a(), |d| {
        d.redact(&mut author(&officer_a()), T0.plus_minutes(1), &id, "含个人信息")
            .unwrap();
    }));
    let mut doc2 = doc.clone();
    let id2 = doc2
        .post(&mut author(&officer_a()), T0.plus_minutes(2), text("通知"))
        .unwrap();
    refused(
        &room_edit(&doc2, &resident(), |d| {
            d.redact(&mut author(&resident()), T0.plus_minutes(3), &id2, "不喜欢")
                .unwrap();
        }),
        Rule::NotModerator,
    );
    doc.redact(&mut author(&officer_a()), T0.plus_minutes(1), &id, "含个人信息")
        .unwrap();
    let view = doc.messages().unwrap();
    assert_eq!(view[0].message.text, "");
    let r = view[0].redacted.as_ref().unwrap();
    assert_eq!((r.by.as_str(), r.reason.as_str()), ("oa", "含个人信息"));
}

#[test]
fn nobody_rewrites_or_deletes_a_room_message() {
    let mut doc = room();
    doc.post(&mut author(&resident()), T0, text("hello")).unwrap();
    let raw = doc.doc().clone();
    let list = raw.get(ROOT, "messages").unwrap().unwrap().1;
    let first = raw.get(&list, 0).unwrap().unwrap().1;
    refused(
        &raw_edit(&raw, &officer_a(), |d| d.put(&first, "text", "edited").unwrap()),
        Rule::Immutable,
    );
    refused(
        &raw_edit(&raw, &officer_a(), |d| d.delete(&list, 0).unwrap()),
        Rule::AppendOnly,
    );
}

#[test]
fn membership_pins_and_tags_are_moderated() {
    let mut doc = room();
    let id = doc.post(&mut author(&resident()), T0, text("hello")).unwrap();
    allowed(&room_edit(&doc, &neighbour(), |d| {
        d.set_member(&user("r3"), Some(MemberRole::Member)).unwrap()
    }));
    refused(
        &room_edit(&doc, &resident(), |d| {
            d.set_member(&user("r3"), Some(MemberRole::Member)).unwrap()
        }),
        Rule::NotModerator,
    );
    refused(
        &room_edit(&doc, &neighbour(), |d| d.set_member(&user("oa"), None).unwrap()),
        Rule::NotModerator,
    );
    allowed(&room_edit(&doc, &officer_a(), |d| {
        d.set_tag("dispute_mediation", true).unwrap()
    }));
    refused(
        &room_edit(&doc, &resident(), |d| d.set_tag("x", true).unwrap()),
        Rule::NotModerator,
    );
    let oa = author(&officer_a());
    allowed(&room_edit(&doc, &officer_a(), |d| d.set_pin(&oa, &id, true).unwrap()));
    refused(
        &room_edit(&doc, &neighbour(), |d| d.set_pin(&oa, &id, true).unwrap()),
        Rule::ForgedAuthor,
    );
}

/// Policy says which accepted changes may change who reads a document, so
/// the server re-reads a room's members only when they may have changed.
#[test]
fn only_membership_edits_and_new_documents_may_change_a_rooms_readers() {
    let mut doc = room();
    let id = doc.post(&mut author(&resident()), T0, text("hello")).unwrap();
    let readers_may_change = |c: Checked| {
        allowed(&c);
        c.readers_may_change
    };
    let oa = author(&officer_a());
    for (what, c) in [
        (
            "a message",
            room_edit(&doc, &resident(), |d| {
                d.post(&mut author(&resident()), T0, text("again")).unwrap();
            }),
        ),
        (
            "a tag",
            room_edit(&doc, &officer_a(), |d| d.set_tag("dispute_mediation", true).unwrap()),
        ),
        (
            "a pin",
            room_edit(&doc, &officer_a(), |d| d.set_pin(&oa, &id, true).unwrap()),
        ),
    ] {
        assert!(!readers_may_change(c), "{what}");
    }
    let joined = room_edit(&doc, &neighbour(), |d| {
        d.set_member(&user("r3"), Some(MemberRole::Member)).unwrap()
    });
    assert!(readers_may_change(joined), "a member added");
    let left = room_edit(&doc, &neighbour(), |d| d.set_member(&user("r1"), None).unwrap());
    assert!(readers_may_change(left), "a member removed");
    let both = room_edit(&doc, &neighbour(), |d| {
        d.post(&mut author(&neighbour()), T0, text("welcome")).unwrap();
        d.set_member(&user("r3"), Some(MemberRole::Member)).unwrap();
    });
    assert!(readers_may_change(both), "a message and a member in one change");
    assert!(
        readers_may_change(create_as(&officer_a(), room().into_doc())),
        "a new room"
    );
    assert!(
        readers_may_change(event_as(&officer_a(), Some("station-a"), EventBody::Signed)),
        "a petition event: its handlers may read it"
    );
}

#[test]
fn raising_a_message_as_a_petition_links_both_ways() {
    let mut doc = room();
    let id = doc.post(&mut author(&resident()), T0, text("村口垃圾成堆")).unwrap();
    let r = resident();
    let mut h = header(&r, &r);
    h.id = "p-raised".into();
    h.channel = sync_core::Channel::VillageRoom;
    let check = room_edit(&doc, &r, |d| {
        let p = d
            .raise_as_petition(
                &mut author(&r),
                T0.plus_minutes(1),
                &id,
                actor(7),
                h.clone(),
                unit("station-a"),
            )
            .unwrap();
        let src = p.header().unwrap().source.unwrap();
        assert_eq!((src.room.as_str(), &src.message), ("room-1", &id));
        allowed(&create_as(&r, p.into_doc()));
    });
    allowed(&check);
    let p = doc
        .raise_as_petition(&mut author(&r), T0.plus_minutes(1), &id, actor(7), h, unit("station-a"))
        .unwrap();
    assert_eq!(doc.messages().unwrap()[0].petition.as_deref(), Some("p-raised"));
    assert_eq!(p.header().unwrap().source.unwrap().message, id);
}

// ---- notices ----

fn notice() -> NoticeDoc {
    let audience = Audience {
        households: vec![HouseholdId::new("h1").unwrap(), HouseholdId::new("h2").unwrap()],
        rooms: vec![],
        units: vec![],
    };
    let notice = NewNotice {
        id: "n-1".into(),
        kind: NoticeKind::AntiFraud,
        title: "警惕冒充客服诈骗".into(),
        body: "不要向陌生账户转账".into(),
        unit: unit("station-a"),
        audience,
    };
    NoticeDoc::create(actor(1), notice, &mut author(&officer_a()), T0).unwrap()
}

fn notice_edit(who: &Principal, household: &str, kind: ReceiptKind) -> Checked {
    let mut base = notice().into_doc();
    let mut fork = NoticeDoc::from_doc(base.fork().with_actor(actor(9))).unwrap();
    fork.record_receipt(
        &mut author(who),
        T0.plus_minutes(1),
        &HouseholdId::new(household).unwrap(),
        kind,
    )
    .unwrap();
    let changes = fork.doc_mut().get_changes(&base.get_heads());
    let org = org();
    check_changes(&ctx(&org, who), base, changes)
}

#[test]
fn notices_are_issued_by_officers_and_receipts_written_by_their_own_household() {
    allowed(&create_as(&officer_a(), notice().into_doc()));
    refused(&create_as(&officer_b(), notice().into_doc()), Rule::ForgedAuthor);
    allowed(&notice_edit(&resident(), "h1", ReceiptKind::Read));
    allowed(&notice_edit(&resident(), "h1", ReceiptKind::Forwarded));
    refused(&notice_edit(&resident(), "h2", ReceiptKind::Read), Rule::NotMember);
    allowed(&notice_edit(&system(), "h2", ReceiptKind::Delivered));
    refused(&notice_edit(&officer_b(), "h2", ReceiptKind::Read), Rule::NotMember);
    allowed(&notice_edit(&officer_a(), "h2", ReceiptKind::Read));
}

#[test]
fn receipts_keep_the_earliest_time_and_cannot_be_rewritten() {
    let mut doc = notice();
    let h1 = HouseholdId::new("h1").unwrap();
    doc.record_receipt(&mut author(&resident()), T0.plus_minutes(5), &h1, ReceiptKind::Read)
        .unwrap();
    doc.record_receipt(&mut author(&system()), T0.plus_minutes(2), &h1, ReceiptKind::Delivered)
        .unwrap();
    let r = &doc.receipts().unwrap()[&h1];
    assert_eq!(
        (r.delivered, r.read, r.forwarded),
        (Some(T0.plus_minutes(2)), Some(T0.plus_minutes(5)), None)
    );
    let raw = doc.into_doc();
    let receipts = raw.get(ROOT, "receipts").unwrap().unwrap().1;
    refused(
        &raw_edit(&raw, &resident(), |d| {
            d.put(&receipts, "h1/read/r1", "1750000000000.00000.r1").unwrap()
        }),
        Rule::AppendOnly,
    );
}

// ---- directory ----

fn household(id: &str) -> Household {
    Household {
        id: HouseholdId::new(id).unwrap(),
        name: "王家".into(),
        representative: Some(user("r1")),
        representative_name: Some("王建国".into()),
        phone: Some("13900000000".into()),
        group_tag: Some("三组".into()),
        officer: Some(user("oa")),
        address: None,
        note: None,
        moved_out: false,
    }
}

fn directory_edit(doc: &DirectoryDoc, who: &Principal, edit: impl FnOnce(&mut DirectoryDoc)) -> Checked {
    let mut base = doc.doc().clone();
    let mut fork = DirectoryDoc::from_doc(base.fork().with_actor(actor(9))).unwrap();
    edit(&mut fork);
    let changes = fork.doc_mut().get_changes(&base.get_heads());
    let org = org();
    check_changes(&ctx(&org, who), base, changes)
}

#[test]
fn officers_keep_the_village_directory_door_to_door() {
    let dir = DirectoryDoc::create(actor(1), unit("village-a1"), &user("oa")).unwrap();
    allowed(&create_as(&officer_a(), dir.doc().clone()));
    refused(
        &create_as(
            &officer_b(),
            DirectoryDoc::create(actor(1), unit("village-a1"), &user("ob"))
                .unwrap()
                .into_doc(),
        ),
        Rule::NotAllowedToCreate,
    );
    allowed(&directory_edit(&dir, &officer_a(), |d| {
        d.upsert_household(&mut author(&officer_a()), T0, &household("h1"))
            .unwrap()
    }));
    refused(
        &directory_edit(&dir, &resident(), |d| {
            d.upsert_household(&mut author(&resident()), T0, &household("h1"))
                .unwrap()
        }),
        Rule::NotInJurisdiction,
    );
    refused(
        &directory_edit(&dir, &officer_b(), |d| {
            d.upsert_household(&mut author(&officer_a()), T0, &household("h1"))
                .unwrap()
        }),
        Rule::NotInJurisdiction,
    );

    let mut dir = dir;
    dir.upsert_household(&mut author(&officer_a()), T0, &household("h1"))
        .unwrap();
    let moved = Household {
        moved_out: true,
        phone: None,
        ..household("h1")
    };
    allowed(&directory_edit(&dir, &officer_a(), |d| {
        d.upsert_household(&mut author(&officer_a()), T0.plus_minutes(1), &moved)
            .unwrap()
    }));
    let raw = dir.doc().clone();
    let hs = raw.get(ROOT, "households").unwrap().unwrap().1;
    refused(
        &raw_edit(&raw, &officer_a(), |d| d.delete(&hs, "h1").unwrap()),
        Rule::AppendOnly,
    );
    let h1 = raw.get(&hs, "h1").unwrap().unwrap().1;
    refused(
        &raw_edit(&raw, &officer_a(), |d| d.put(&h1, "updated_by", "ob").unwrap()),
        Rule::ForgedAuthor,
    );
    refused(
        &raw_edit(&raw, &officer_a(), |d| d.put(&h1, "secret", "x").unwrap()),
        Rule::Malformed,
    );
}

#[test]
fn directory_edits_from_two_officers_merge_field_by_field() {
    let mut dir = DirectoryDoc::create(actor(1), unit("village-a1"), &user("oa")).unwrap();
    dir.upsert_household(&mut author(&officer_a()), T0, &household("h1"))
        .unwrap();
    let mut a = DirectoryDoc::from_doc(dir.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut b = DirectoryDoc::from_doc(dir.doc().clone().fork().with_actor(actor(3))).unwrap();
    a.upsert_household(
        &mut author(&officer_a()),
        T0.plus_minutes(1),
        &Household {
            phone: Some("13911111111".into()),
            ..household("h1")
        },
    )
    .unwrap();
    b.upsert_household(
        &mut author(&officer_a2()),
        T0.plus_minutes(1),
        &Household {
            group_tag: Some("五组".into()),
            ..household("h1")
        },
    )
    .unwrap();
    a.doc_mut().merge(b.doc_mut()).unwrap();
    let h = &a.households().unwrap()[0];
    assert_eq!(
        (h.phone.as_deref(), h.group_tag.as_deref()),
        (Some("13911111111"), Some("五组"))
    );
}

// ---- reading ----

/// The sample petition, transferred by station A to the water department.
fn dispatched_to_water() -> PetitionDoc {
    let mut p = petition();
    record(
        &mut p,
        &officer_a(),
        Some("station-a"),
        1,
        EventBody::Transferred {
            to: unit("water"),
            assist: vec![],
            note: None,
        },
    );
    p
}

#[test]
fn visibility_read_on_its_own_is_what_the_facts_say() {
    let same = |doc: &AutoCommit| {
        assert_eq!(Visibility::of(doc).unwrap(), DocFacts::of(doc).unwrap().visibility());
    };
    same(petition().doc());
    let dispatched = dispatched_to_water();
    same(dispatched.doc());
    assert!(Visibility::of(dispatched.doc()).unwrap().units.contains(&unit("water")));
    let mut r = room();
    r.set_member(&user("r3"), Some(MemberRole::Member)).unwrap();
    same(r.doc());
    assert!(Visibility::of(r.doc()).unwrap().users.contains(&user("r3")));
    same(notice().doc());
    same(&AutoCommit::new());
}

/// A petition holding personal data (a contact number, an anonymous
/// writer) is read only by its writer, whoever typed it in and the staff of
/// the units it was routed to (and above them): the village it is about
/// does not open it, so no path hands the data to the village's officer.
/// Without personal data the village's officer reads it.
#[test]
fn a_petition_holding_personal_data_is_read_by_its_writer_recorder_and_handlers_only() {
    let org = org();
    let never = |_: &str| false;
    let village_officer = Principal {
        user: user("vo"),
        memberships: vec![sync_core::Membership {
            unit: unit("village-a1"),
            role: sync_core::Role::Officer,
        }],
        household: None,
    };
    let (r, oa) = (resident(), officer_a());
    let create = |h: sync_core::petition::PetitionHeader, by: &Principal| {
        PetitionDoc::create(actor(1), h, unit("station-a"), &mut author(by), T0).unwrap()
    };
    let mut plain = header(&r, &r);
    plain.contact = None;
    let mut anonymous = plain.clone();
    anonymous.anonymous = true;
    let with_contact = header(&r, &r);
    let mut recorded = header(&r, &oa);
    recorded.channel = sync_core::Channel::WalkIn;

    let vis = |p: &PetitionDoc| {
        let v = Visibility::of(p.doc()).unwrap();
        assert_eq!(v, DocFacts::of(p.doc()).unwrap().visibility());
        v
    };
    let open = vis(&create(plain, &r));
    assert!(may_read(&org, &village_officer, &open, never));
    for (name, h, by) in [
        ("anonymous", anonymous, &r),
        ("contact", with_contact, &r),
        ("recorded", recorded, &oa),
    ] {
        let p = create(h, by);
        let v = vis(&p);
        assert!(!may_read(&org, &village_officer, &v, never), "{name}: {v:?}");
        assert!(!may_read(&org, &neighbour(), &v, never), "{name}");
        assert!(!may_read(&org, &officer_b(), &v, never), "{name}");
        for reader in [&r, &oa, &leader(), &system()] {
            assert!(may_read(&org, reader, &v, never), "{name}: {}", reader.user);
        }
        // The village's officer may not write to it either.
        let c = check_edit(&p, &village_officer, 9, |d| {
            d.post(&mut author(&village_officer), T0.plus_minutes(5), text("我也看看"))
                .unwrap();
        });
        assert_eq!(c.refused.len(), 1, "{name}");
        // Routed on to the water department, it opens to its staff.
        let mut routed = p;
        record(
            &mut routed,
            &oa,
            Some("station-a"),
            1,
            EventBody::Transferred {
                to: unit("water"),
                assist: vec![],
                note: None,
            },
        );
        assert!(may_read(&org, &water_staff(), &vis(&routed), never), "{name}");
        assert!(!may_read(&org, &village_officer, &vis(&routed), never), "{name}");
    }
    let v = vis(&create(
        {
            let mut h = header(&r, &oa);
            h.channel = sync_core::Channel::WalkIn;
            h
        },
        &oa,
    ));
    assert!(
        v.users.contains(&oa.user),
        "the recorder reads what they typed in: {v:?}"
    );
}

#[test]
fn read_access_follows_jurisdiction_ownership_membership_and_audience() {
    let org = org();
    let p = DocFacts::of(petition().doc()).unwrap().visibility();
    let never = |_: &str| false;
    assert!(may_read(&org, &resident(), &p, never));
    assert!(may_read(&org, &officer_a(), &p, never));
    assert!(may_read(&org, &leader(), &p, never));
    assert!(
        !may_read(&org, &neighbour(), &p, never),
        "residents see only their own petitions"
    );
    assert!(
        !may_read(&org, &officer_b(), &p, never),
        "officers see their jurisdiction only"
    );
    assert!(
        !may_read(&org, &water_staff(), &p, never),
        "departments see what was dispatched to them"
    );
    assert!(may_read(
        &org,
        &water_staff(),
        &DocFacts::of(dispatched_to_water().doc()).unwrap().visibility(),
        never
    ));

    let r = DocFacts::of(room().doc()).unwrap().visibility();
    assert!(may_read(&org, &resident(), &r, never));
    assert!(may_read(&org, &officer_a(), &r, never));
    assert!(!may_read(&org, &officer_b(), &r, never));

    let n = DocFacts::of(notice().doc()).unwrap().visibility();
    assert!(may_read(&org, &neighbour(), &n, never));
    let outsider = Principal {
        household: Some(HouseholdId::new("h9").unwrap()),
        ..neighbour()
    };
    assert!(!may_read(&org, &outsider, &n, never));
    let by_room = sync_core::policy::Visibility {
        rooms: vec!["room-1".into()],
        ..Default::default()
    };
    assert!(may_read(&org, &outsider, &by_room, |r| r == "room-1"));
    let by_unit = sync_core::policy::Visibility {
        audience_units: vec![unit("station-a")],
        ..Default::default()
    };
    assert!(
        may_read(&org, &outsider, &by_unit, never),
        "residents living within an audience unit"
    );
    assert!(!may_read(&org, &officer_b(), &by_unit, never));
}
