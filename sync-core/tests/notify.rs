//! Notifications derived from document changes: petitions, rooms, household lines and notices.

mod common;

use std::collections::BTreeSet;

use automerge::AutoCommit;
use common::*;
use sync_core::doc::{Mention, Message};
use sync_core::notice::{Audience, NewNotice, NoticeDoc, NoticeKind};
use sync_core::notify::{
    Notification, NotificationKind as Kind, PetitionSnapshot, Recipient, notice_notifications, petition_changes,
    petition_notifications, room_notifications,
};
use sync_core::petition::{EventBody, Outcome, PetitionDoc};
use sync_core::room::{MemberRole, MessageDelta, MessageView, RoomDoc, RoomInfo, RoomKind};
use sync_core::{HouseholdId, Principal, UserId};

fn household(id: &str) -> HouseholdId {
    HouseholdId::new(id).unwrap()
}

fn to_unit(id: &str) -> Recipient {
    Recipient::Unit(unit(id))
}

fn to_user(id: &str) -> Recipient {
    Recipient::User(user(id))
}

/// What `edit` makes `doc` notify, leaving the edit applied.
fn notified_by(doc: &mut PetitionDoc, edit: impl FnOnce(&mut PetitionDoc)) -> Vec<Notification> {
    let before = doc.clone();
    edit(doc);
    petition_notifications(Some(&before), doc).unwrap()
}

/// The (recipient, kind, urgent) triples, sorted, for comparing sets of notifications.
fn summary(ns: &[Notification]) -> Vec<(Recipient, Kind, bool)> {
    let mut out: Vec<_> = ns.iter().map(|n| (n.recipient.clone(), n.kind, n.urgent)).collect();
    out.sort();
    out
}

fn msg(text: &str) -> Message {
    Message {
        by: user("x"),
        at: "0000000000000.00000.x".parse().unwrap(),
        text: text.into(),
        mentions: vec![],
        reply_to: None,
        attachments: vec![],
        tag: None,
        appeal: None,
    }
}

fn post(doc: &mut PetitionDoc, who: &Principal, minutes: i64, text: &str) {
    doc.post(&mut author(who), T0.plus_minutes(minutes), msg(text)).unwrap();
}

fn transfer(to: &str, assist: &[&str]) -> EventBody {
    EventBody::Transferred {
        to: unit(to),
        assist: assist.iter().map(|a| unit(a)).collect(),
        note: None,
    }
}

fn reply() -> EventBody {
    EventBody::Replied {
        text: "已协调恢复供水".into(),
    }
}

#[test]
fn a_new_petition_lands_in_the_routed_units_queue() {
    let doc = petition();
    let ns = petition_notifications(None, &doc).unwrap();
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::NewPetition, false)]);
    let submitted = doc.events().unwrap()[0].id();
    let n = &ns[0];
    assert_eq!(n.key, format!("p-1/{submitted}/new_petition/unit:station-a"));
    assert_eq!(n.doc, "p-1");
    assert_eq!(n.entry.as_ref(), Some(&submitted));
    assert_eq!(n.at, T0);
    assert!(n.text.starts_with("新诉求待签收：泉水被截流"), "{}", n.text);
    let unchanged = petition_notifications(Some(&doc), &doc).unwrap();
    assert!(unchanged.is_empty(), "nothing new, nothing to say");
}

#[test]
fn a_transfer_goes_to_the_new_lead_the_assisting_units_and_the_submitter() {
    let mut doc = petition();
    record(&mut doc, &officer_a(), Some("station-a"), 2, EventBody::Signed);
    let ns = notified_by(&mut doc, |d| {
        record(d, &officer_a(), Some("station-a"), 5, transfer("station-b", &["water"]))
    });
    assert_eq!(
        summary(&ns),
        vec![
            (to_user("r1"), Kind::StatusChanged, false),
            (to_unit("station-b"), Kind::Assigned, false),
            (to_unit("water"), Kind::AssistRequested, false),
        ]
    );
    let accepted = notified_by(&mut doc, |d| {
        record(d, &officer_b(), Some("station-b"), 8, EventBody::Accepted)
    });
    assert!(accepted.is_empty(), "accepting is the new lead's own step");
}

#[test]
fn a_return_goes_back_to_the_unit_that_dispatched_it() {
    let mut doc = petition();
    record(&mut doc, &officer_a(), Some("station-a"), 2, transfer("station-b", &[]));
    let ns = notified_by(&mut doc, |d| {
        record(
            d,
            &officer_b(),
            Some("station-b"),
            9,
            EventBody::Returned {
                reason: "不属于本所辖区".into(),
            },
        )
    });
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::Returned, false)]);
    assert!(ns[0].text.contains("不属于本所辖区"));
}

#[test]
fn supervision_and_escalation_reach_the_lead_urgently() {
    let mut doc = petition();
    let supervise = EventBody::Supervised {
        note: "请今天内答复".into(),
    };
    let ns = notified_by(&mut doc, |d| record(d, &leader(), Some("county"), 3, supervise.clone()));
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::Supervised, true)]);

    let escalate = EventBody::Escalated {
        to: unit("county"),
        reason: "群众反映强烈".into(),
        clock: None,
    };
    let ns = notified_by(&mut doc, |d| record(d, &leader(), Some("county"), 4, escalate));
    assert_eq!(summary(&ns), vec![(to_unit("county"), Kind::Escalated, true)]);

    let ns = notified_by(&mut doc, |d| record(d, &leader(), Some("county"), 5, supervise));
    assert_eq!(
        summary(&ns),
        vec![(to_unit("county"), Kind::Supervised, true)],
        "supervision goes to whoever leads now"
    );
}

#[test]
fn status_changes_reach_the_submitter_and_the_submitters_own_steps_reach_the_lead() {
    let mut doc = petition();
    for (minutes, body, word) in [
        (2, EventBody::Signed, "已签收"),
        (30, reply(), "已回复"),
        (40, EventBody::Closed { note: None }, "已办结"),
    ] {
        let ns = notified_by(&mut doc, |d| record(d, &officer_a(), Some("station-a"), minutes, body));
        assert_eq!(summary(&ns), vec![(to_user("r1"), Kind::StatusChanged, false)]);
        assert!(ns[0].text.contains(word), "{}", ns[0].text);
    }
    let rating = EventBody::FollowUp {
        rating: 2,
        comment: None,
    };
    let ns = notified_by(&mut doc, |d| record(d, &resident(), None, 50, rating));
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::FollowUp, false)]);
    let reopen = EventBody::Reopened {
        reason: "水又断了".into(),
    };
    let ns = notified_by(&mut doc, |d| record(d, &resident(), None, 60, reopen));
    assert_eq!(
        summary(&ns),
        vec![(to_unit("station-a"), Kind::StatusChanged, false)],
        "the submitter is not told of their own reopening"
    );
    let ns = notified_by(&mut doc, |d| {
        record(d, &resident(), None, 70, EventBody::Withdrawn { reason: None })
    });
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::StatusChanged, false)]);
}

#[test]
fn messages_go_from_handlers_to_the_submitter_and_from_the_submitter_to_the_lead() {
    let mut doc = petition();
    record(&mut doc, &officer_a(), Some("station-a"), 2, transfer("station-b", &[]));
    let ns = notified_by(&mut doc, |d| post(d, &officer_b(), 5, "请问具体在哪个水源点？"));
    assert_eq!(summary(&ns), vec![(to_user("r1"), Kind::PetitionMessage, false)]);
    assert!(ns[0].text.contains("请问具体在哪个水源点"));

    let ns = notified_by(&mut doc, |d| post(d, &resident(), 6, "村东头的泉眼"));
    assert_eq!(
        summary(&ns),
        vec![(to_unit("station-b"), Kind::PetitionMessage, false)],
        "the lead at the time hears the submitter"
    );
    assert!(doc.state().unwrap().awaiting_handler);
}

#[test]
fn a_submitter_comment_concurrent_with_closing_reaches_the_lead() {
    let mut base = petition();
    record(&mut base, &officer_a(), Some("station-a"), 2, EventBody::Signed);
    record(&mut base, &officer_a(), Some("station-a"), 30, reply());
    let mut server = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(
        &mut server,
        &officer_a(),
        Some("station-a"),
        40,
        EventBody::Closed { note: None },
    );
    post(&mut phone, &resident(), 41, "水还是没来");
    let ns = notified_by(&mut server, |d| d.doc_mut().merge(phone.doc_mut()).map(drop).unwrap());
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::PetitionMessage, false)]);
    assert!(ns[0].text.starts_with("已结束的诉求有新留言"), "{}", ns[0].text);
}

#[test]
fn superseded_events_notify_nobody() {
    // Two officers sign offline; the server first has the earlier signature,
    // then receives the later one, which is superseded.
    let base = petition();
    let mut server = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(&mut server, &officer_a(), Some("station-a"), 4, EventBody::Signed);
    record(&mut phone, &officer_a2(), Some("station-a"), 5, EventBody::Signed);
    let ns = notified_by(&mut server, |d| d.doc_mut().merge(phone.doc_mut()).map(drop).unwrap());
    assert!(ns.is_empty(), "{ns:?}");
    assert!(matches!(
        server.state().unwrap().outcomes[2].1,
        Outcome::Superseded { .. }
    ));

    // A reply from the old lead that sorts after a transfer is superseded:
    // the resident is not told it was answered.
    let mut base = petition();
    record(&mut base, &officer_a(), Some("station-a"), 2, EventBody::Signed);
    let mut desk = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut field = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(&mut desk, &officer_a(), Some("station-a"), 5, transfer("water", &[]));
    record(&mut field, &officer_a2(), Some("station-a"), 9, reply());
    let ns = notified_by(&mut desk, |d| d.doc_mut().merge(field.doc_mut()).map(drop).unwrap());
    assert!(ns.is_empty(), "{ns:?}");
    assert!(matches!(
        desk.state().unwrap().outcomes[3].1,
        Outcome::Superseded { .. }
    ));
}

#[test]
fn a_signature_that_newly_wins_a_merge_notifies_once_under_its_own_key() {
    let base = petition();
    let mut server = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(&mut server, &officer_a(), Some("station-a"), 5, EventBody::Signed);
    record(&mut phone, &officer_a2(), Some("station-a"), 4, EventBody::Signed);
    let first = petition_notifications(Some(&base), &server).unwrap();
    let ns = notified_by(&mut server, |d| d.doc_mut().merge(phone.doc_mut()).map(drop).unwrap());
    assert_eq!(summary(&ns), vec![(to_user("r1"), Kind::StatusChanged, false)]);
    assert_ne!(first[0].key, ns[0].key, "a different event, a different notification");
    let earlier = phone.events().unwrap()[1].id();
    assert_eq!(ns[0].entry.as_ref(), Some(&earlier));
}

#[test]
fn an_event_set_aside_until_an_earlier_one_arrives_notifies_when_it_applies() {
    // One officer closes before the reply written offline by another has
    // synced: the close is superseded (nothing was replied yet) and notifies
    // nobody. When the earlier reply arrives, both apply and both notify.
    let mut base = petition();
    record(&mut base, &officer_a(), Some("station-a"), 2, EventBody::Signed);
    let mut server = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(2))).unwrap();
    let mut phone = PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(3))).unwrap();
    record(&mut phone, &officer_a2(), Some("station-a"), 30, reply());
    let closed = notified_by(&mut server, |d| {
        record(d, &officer_a(), Some("station-a"), 40, EventBody::Closed { note: None })
    });
    assert!(closed.is_empty(), "{closed:?}");
    let ns = notified_by(&mut server, |d| d.doc_mut().merge(phone.doc_mut()).map(drop).unwrap());
    let texts: Vec<&str> = ns.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(ns.len(), 2, "{texts:?}");
    assert!(texts[0].contains("已回复") && texts[1].contains("已办结"), "{texts:?}");
    assert!(ns.iter().all(|n| n.recipient == to_user("r1")));
}

#[test]
fn keys_are_deterministic_and_distinct() {
    let created = petition();
    let mut doc = created.clone();
    record(&mut doc, &officer_a(), Some("station-a"), 2, EventBody::Signed);
    post(&mut doc, &resident(), 3, "谢谢");
    post(&mut doc, &resident(), 4, "什么时候来？");
    record(
        &mut doc,
        &officer_a(),
        Some("station-a"),
        5,
        transfer("station-b", &["water"]),
    );
    record(&mut doc, &officer_b(), Some("station-b"), 6, EventBody::Accepted);
    record(&mut doc, &officer_b(), Some("station-b"), 30, reply());

    let once = petition_notifications(None, &doc).unwrap();
    let again = petition_notifications(None, &doc).unwrap();
    assert_eq!(once, again);
    // Another node loads the same document from bytes, with its own derivation.
    let elsewhere = PetitionDoc::load(&doc.doc_mut().save()).unwrap();
    let snapshot = PetitionSnapshot::read(&elsewhere).unwrap();
    assert_eq!(petition_changes(None, &snapshot), once);

    let keys: BTreeSet<&str> = once.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(keys.len(), once.len(), "every notification has its own key");
    let resident_messages: Vec<&Notification> = once.iter().filter(|n| n.kind == Kind::PetitionMessage).collect();
    assert_eq!(resident_messages.len(), 2);
    assert_ne!(resident_messages[0].key, resident_messages[1].key);

    // Deriving step by step gives the same notifications as deriving all at once.
    let mut stepwise = Vec::new();
    let mut replay = created;
    stepwise.extend(petition_notifications(None, &replay).unwrap());
    for change in doc.doc_mut().get_changes(&replay.doc_mut().get_heads()) {
        let before = replay.clone();
        replay.doc_mut().apply_changes([change.clone()]).unwrap();
        stepwise.extend(petition_notifications(Some(&before), &replay).unwrap());
    }
    let mut stepwise_keys: Vec<&str> = stepwise.iter().map(|n| n.key.as_str()).collect();
    stepwise_keys.sort();
    assert_eq!(stepwise_keys, keys.into_iter().collect::<Vec<_>>());
}

#[test]
fn notifications_round_trip_through_json() {
    let doc = petition();
    for n in petition_notifications(None, &doc).unwrap() {
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains(r#""recipient":{"unit":"station-a"}"#), "{json}");
        assert!(json.contains(r#""kind":"new_petition""#), "{json}");
        assert_eq!(serde_json::from_str::<Notification>(&json).unwrap(), n);
    }
}

fn village_room() -> RoomDoc {
    let info = RoomInfo {
        id: "room-1".into(),
        kind: RoomKind::VillageRoom,
        name: "A1 议事厅".into(),
        unit: unit("village-a1"),
        household: None,
        created_by: user("oa"),
    };
    let members = [(user("r1"), MemberRole::Member), (user("r2"), MemberRole::Moderator)];
    RoomDoc::create(actor(1), info, members).unwrap()
}

fn no_households(_: &UserId) -> Option<HouseholdId> {
    None
}

fn room_post(
    room: &mut RoomDoc,
    who: &Principal,
    minutes: i64,
    text: &str,
    mentions: Vec<Mention>,
) -> Vec<Notification> {
    let before = room.clone();
    let m = Message { mentions, ..msg(text) };
    room.post(&mut author(who), T0.plus_minutes(minutes), m).unwrap();
    room_notifications(Some(&before), room, no_households, None).unwrap()
}

#[test]
fn mentions_reach_the_mentioned_members_and_all_reaches_everyone_but_the_writer() {
    let mut room = village_room();
    assert!(room_notifications(None, &room, no_households, None).unwrap().is_empty());
    let ns = room_post(
        &mut room,
        &neighbour(),
        1,
        "@r1 明天修路",
        vec![Mention::User(user("r1"))],
    );
    assert_eq!(summary(&ns), vec![(to_user("r1"), Kind::Mention, false)]);
    assert!(ns[0].text.contains("A1 议事厅"));

    let ns = room_post(&mut room, &neighbour(), 2, "@外人", vec![Mention::User(user("ob"))]);
    assert!(ns.is_empty(), "a non-member is not told what they cannot read");

    let ns = room_post(
        &mut room,
        &officer_a(),
        3,
        "@所有人 今晚八点开会",
        vec![Mention::All, Mention::User(user("r1"))],
    );
    assert_eq!(
        summary(&ns),
        vec![(Recipient::Members(vec![user("r1"), user("r2")]), Kind::Mention, false)],
        "one notification for every member but the writer, whoever else it names"
    );
    assert!(ns[0].key.ends_with("/mention/all"), "{}", ns[0].key);
    assert!(ns[0].text.contains("@所有人"));
    let plain = room_post(&mut room, &resident(), 4, "收到", vec![]);
    assert!(plain.is_empty());

    let ns = room_post(
        &mut room,
        &resident(),
        5,
        "@所有人 @r2 收到",
        vec![Mention::All, Mention::User(user("r2"))],
    );
    assert_eq!(
        summary(&ns),
        vec![(Recipient::Members(vec![user("oa"), user("r2")]), Kind::Mention, false)],
        "a member's @all reaches the others, once each"
    );
}

/// The messages whose view differs between `before` and `after`, read the
/// slow way: every message of both states.
fn differing_views(before: Option<&RoomDoc>, after: &RoomDoc) -> Vec<MessageView> {
    let old = before.map(|b| b.messages().unwrap()).unwrap_or_default();
    after
        .messages()
        .unwrap()
        .into_iter()
        .filter(|v| !old.contains(v))
        .collect()
}

fn with_actor(room: &RoomDoc, n: u8) -> RoomDoc {
    RoomDoc::from_doc(room.doc().clone().with_actor(actor(n))).unwrap()
}

#[test]
fn a_message_delta_holds_new_messages_merged_from_offline_phones_and_moderated_ones() {
    let mut room = village_room();
    let first = room.post(&mut author(&officer_a()), T0, msg("停水通知")).unwrap();
    let delta = room.message_delta::<AutoCommit>(None).unwrap();
    assert_eq!(delta.new, room.messages().unwrap(), "a new room: every message is new");
    assert!(delta.changed.is_empty());

    // Two phones post offline, then merge: the other phone's message is new
    // to each, wherever the merge put it in the list.
    let before = room.clone();
    let mut a = with_actor(&room, 2);
    let mut b = with_actor(&room, 3);
    a.post(&mut author(&resident()), T0.plus_minutes(2), msg("几点来水？"))
        .unwrap();
    b.post(&mut author(&neighbour()), T0.plus_minutes(1), msg("我家也没水"))
        .unwrap();
    let mut merged = a.clone().into_doc();
    merged.merge(&mut b.clone().into_doc()).unwrap();
    let merged = RoomDoc::from_doc(merged).unwrap();
    let delta = merged.message_delta(Some(&before)).unwrap();
    let texts: Vec<&str> = delta.new.iter().map(|v| v.message.text.as_str()).collect();
    assert_eq!(texts, ["我家也没水", "几点来水？"], "in stamp order");
    assert!(delta.changed.is_empty());
    assert_eq!(delta.new, differing_views(Some(&before), &merged));
    let only_b = merged.message_delta(Some(&a)).unwrap();
    assert_eq!(only_b.new.len(), 1);
    assert_eq!(only_b.new[0].message.text, "我家也没水");

    // Moderation changes the view of an old message, not the message list.
    let before = merged.clone();
    let mut room = with_actor(&merged, 4);
    room.redact(&mut author(&officer_a()), T0.plus_minutes(3), &first, "重复")
        .unwrap();
    let pinned = before.messages().unwrap()[1].id.clone();
    room.set_pin(&author(&officer_a()), &pinned, true).unwrap();
    let delta = room.message_delta(Some(&before)).unwrap();
    assert!(delta.new.is_empty());
    assert_eq!(delta.changed, differing_views(Some(&before), &room));
    assert_eq!(delta.changed.len(), 2);
    assert!(delta.changed[0].redacted.is_some() && delta.changed[0].message.text.is_empty());
    assert!(delta.changed[1].pinned);

    // Nothing changed: nothing to tell.
    assert_eq!(room.message_delta(Some(&room)).unwrap(), MessageDelta::default());
}

#[test]
fn a_message_redacted_before_fan_out_notifies_nobody() {
    let mut room = village_room();
    let before = room.clone();
    let m = Message {
        mentions: vec![Mention::User(user("r1"))],
        ..msg("@r1 身份证号 5201…")
    };
    let id = room.post(&mut author(&neighbour()), T0, m).unwrap();
    room.redact(&mut author(&officer_a()), T0.plus_minutes(1), &id, "含个人信息")
        .unwrap();
    assert!(
        room_notifications(Some(&before), &room, no_households, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_household_line_carries_messages_between_the_household_and_the_units_duty_desk() {
    let info = RoomInfo {
        id: "line-h1".into(),
        kind: RoomKind::HouseholdLine,
        name: "h1 ↔ A".into(),
        unit: unit("station-a"),
        household: Some(household("h1")),
        created_by: user("r1"),
    };
    let mut line = RoomDoc::create(actor(1), info, []).unwrap();
    let household_of = |u: &UserId| (u.as_str() == "r1").then(|| household("h1"));
    let mut say = |who: &Principal, minutes: i64, text: &str| {
        let before = line.clone();
        line.post(&mut author(who), T0.plus_minutes(minutes), msg(text))
            .unwrap();
        room_notifications(Some(&before), &line, household_of, None).unwrap()
    };
    let ns = say(&resident(), 1, "户口本丢了怎么办");
    assert_eq!(summary(&ns), vec![(to_unit("station-a"), Kind::LineMessage, false)]);
    let ns = say(&officer_a2(), 2, "请带身份证来所里补办");
    assert_eq!(
        summary(&ns),
        vec![(Recipient::Household(household("h1")), Kind::LineMessage, false)]
    );
    assert_ne!(ns[0].key, say(&officer_a(), 3, "我们周三上门")[0].key);
}

fn notice(kind: NoticeKind) -> NoticeDoc {
    let new = NewNotice {
        id: "notice-1".into(),
        kind,
        title: "警惕冒充客服退款诈骗".into(),
        body: "凡是自称客服要求转账的，都是诈骗。".into(),
        unit: unit("station-a"),
        audience: Audience {
            households: vec![household("h1")],
            rooms: vec!["room-1".into()],
            units: vec![unit("village-a1")],
        },
    };
    NoticeDoc::create(actor(1), new, &mut author(&officer_a()), T0).unwrap()
}

#[test]
fn a_notice_reaches_each_audience_household_once() {
    let doc = notice(NoticeKind::AntiFraud);
    let expanded = [household("h2"), household("h1"), household("h3")];
    let ns = notice_notifications(None, &doc, &expanded).unwrap();
    let hs: Vec<&Recipient> = ns.iter().map(|n| &n.recipient).collect();
    assert_eq!(
        hs,
        ["h1", "h2", "h3"]
            .map(|h| Recipient::Household(household(h)))
            .iter()
            .collect::<Vec<_>>()
    );
    assert!(
        ns.iter()
            .all(|n| n.urgent && n.kind == Kind::Notice && n.text.starts_with("反诈提醒"))
    );
    assert_eq!(ns[0].key, "notice-1/issued/notice/household:h1");
    assert_eq!(notice_notifications(None, &doc, &expanded).unwrap(), ns);
    assert!(notice_notifications(Some(&doc), &doc, &expanded).unwrap().is_empty());

    let general = notice(NoticeKind::General);
    let ns = notice_notifications(None, &general, &[]).unwrap();
    assert_eq!(
        summary(&ns),
        vec![(Recipient::Household(household("h1")), Kind::Notice, false)]
    );
    // A reminder (提醒) reaches the same households, not urgently.
    let reminder = notice(NoticeKind::Reminder);
    let ns = notice_notifications(None, &reminder, &[]).unwrap();
    assert_eq!(
        summary(&ns),
        vec![(Recipient::Household(household("h1")), Kind::Notice, false)]
    );
    assert!(ns[0].text.starts_with("提醒："), "{}", ns[0].text);
}
